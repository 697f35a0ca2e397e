"""Harness for the integration suite.

Environment:
  CONEY_BIN=/abs/path/coney    broker binary to start (default: build/coney)
  CONEY_SANITIZED=1            the binary is an ASan/UBSan build: longer deadlines
  CONEY_TEST_TARGET=host:port  use an already running broker (e.g. RabbitMQ, to
                               validate the suite); tests that must control the
                               process are skipped
  CONEY_TEST_TIMEOUT=seconds   per-test deadline (default 60, x3 when sanitized)
  CONEY_MQTT_TARGET=host:port  run the MQTT tests against another MQTT broker
                               (e.g. Mosquitto, to validate them); every test
                               that needs AMQP, Coney itself or the process
                               (marked coney_only, or using an AMQP broker
                               fixture) is skipped

Fixtures:
  broker        the shared broker (one process for the session, restarted if a
                test kills it; such a test fails)
  fresh_broker  a broker process of the test's own (skipped with a target)
  coney_bin     path of the binary (skipped with a target)
  conn, ch      a pika BlockingConnection / channel on the shared broker
  rabbitmq      (product, version) when the target is RabbitMQ, else None
  mqtt          an MqttTarget (coney_util): the shared broker's MQTT listener,
                or CONEY_MQTT_TARGET

Markers:
  coney_only(why)  behaviour of Coney's (or RabbitMQ's) that another MQTT
                   broker need not share; skipped with CONEY_MQTT_TARGET
"""

import os
import signal

import pytest

import coney_util
from coney_util import Broker, SLOW, start_broker

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CONEY_TEST_TARGET")
MQTT_TARGET = os.environ.get("CONEY_MQTT_TARGET")


def _binary():
    b = os.environ.get("CONEY_BIN") or os.path.join(REPO, "build", "coney")
    if not os.path.isabs(b):
        b = os.path.abspath(b)
    return b


def _target():
    host, _, port = TARGET.rpartition(":")
    return Broker(host or "127.0.0.1", int(port))


# ------------------------------------------------------------ per-test deadline

class DeadlineExceeded(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = float(os.environ.get("CONEY_TEST_TIMEOUT", "60")) * SLOW
    marker = item.get_closest_marker("timeout")
    if marker:
        limit = float(marker.args[0]) * SLOW

    def on_alarm(signum, frame):
        raise DeadlineExceeded("test exceeded its %.0fs deadline" % limit)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        seen = set()
        for name in ("broker", "fresh_broker", "mqtt"):
            b = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(b, coney_util.MqttTarget):
                b = b.broker
            if isinstance(b, Broker) and b.log_path and b.log_path not in seen:
                seen.add(b.log_path)
                rep.sections.append(("coney log tail (%s)" % b.log_path, b.log_tail(80)))


# ------------------------------------------------------------ brokers

class _Shared:
    def __init__(self):
        self.broker = None
        self.crashed = []

    def get(self):
        if TARGET:
            if self.broker is None:
                self.broker = _target()
            return self.broker
        if self.broker is not None and not self.broker.alive():
            self.crashed.append(self.broker)
            self.broker = None
        if self.broker is None:
            binary = _binary()
            if not os.path.exists(binary):
                pytest.fail("broker binary %s does not exist (set CONEY_BIN or "
                            "CONEY_TEST_TARGET)" % binary, pytrace=False)
            self.broker = start_broker(binary)
        return self.broker


@pytest.fixture(scope="session")
def _shared():
    s = _Shared()
    yield s
    problems = []
    for b in s.crashed:
        problems.append("shared broker died during the session (exit %r):\n%s"
                        % (b.proc.returncode, b.log_tail()))
        b.cleanup()
    b = s.broker
    if b is not None and b.controlled:
        try:
            rc = b.stop(signal.SIGTERM)
            b.check_clean_exit(rc)
        except AssertionError as e:
            problems.append(str(e))
        finally:
            b.cleanup()
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def broker(_shared):
    b = _shared.get()
    yield b
    if b.controlled and not b.alive():
        pytest.fail("the broker died during this test (exit %r)\n--- log tail ---\n%s"
                    % (b.proc.returncode, b.log_tail()), pytrace=False)
    if b.controlled:
        report = b.sanitizer_report()
        if report:
            pytest.fail("sanitizer report in broker log:\n" + report, pytrace=False)


@pytest.fixture
def coney_bin():
    if TARGET:
        pytest.skip("needs to control the broker process (CONEY_TEST_TARGET is set)")
    b = _binary()
    if not os.path.exists(b):
        pytest.fail("broker binary %s does not exist" % b, pytrace=False)
    return b


@pytest.fixture
def fresh_broker(coney_bin):
    b = start_broker(coney_bin)
    try:
        yield b
        if not b.stopped:
            rc = b.stop(signal.SIGTERM)
            b.check_clean_exit(rc)
        else:
            report = b.sanitizer_report()
            assert report is None, "sanitizer report in broker log:\n" + report
    finally:
        b.cleanup()


@pytest.fixture
def conn(broker):
    c = broker.connect()
    yield c
    if c.is_open:
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture(scope="session")
def rabbitmq(_shared):
    """(product, version) when the broker under test is RabbitMQ, else None."""
    if not TARGET:
        return None
    product, version = coney_util.server_product(_shared.get())
    return (product, version) if product == "RabbitMQ" else None


# ------------------------------------------------------------ MQTT

# Fixtures that need a Coney process or its AMQP port; with CONEY_MQTT_TARGET
# a test that uses one of them is not an MQTT-only test.
_AMQP_FIXTURES = ("broker", "fresh_broker", "coney_bin", "conn", "ch", "_shared", "rabbitmq")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "coney_only(why): Coney behaviour other MQTT brokers need not share; "
                   "skipped with CONEY_MQTT_TARGET")


def pytest_collection_modifyitems(config, items):
    if not MQTT_TARGET:
        return
    for item in items:
        m = item.get_closest_marker("coney_only")
        if m is not None:
            why = m.args[0] if m.args else ""
            item.add_marker(pytest.mark.skip(reason="coney-only (CONEY_MQTT_TARGET is set): "
                                             + why))
        elif any(f in item.fixturenames for f in _AMQP_FIXTURES):
            item.add_marker(pytest.mark.skip(reason="needs AMQP or the broker process "
                                             "(CONEY_MQTT_TARGET is set)"))


@pytest.fixture
def mqtt(request):
    if MQTT_TARGET:
        host, _, port = MQTT_TARGET.rpartition(":")
        return coney_util.MqttTarget(host or "127.0.0.1", int(port))
    return coney_util.mqtt_target(request.getfixturevalue("broker"))
