"""Helpers shared by the integration tests: broker process control, pika
connections with timeouts, unique names, and waiting for asynchronous
events (broker-initiated channel closes, returns, cancels) with a deadline."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pika
import pytest
import pika.exceptions

SANITIZED = bool(os.environ.get("CONEY_SANITIZED"))
# Generous deadlines: the ASan+UBSan build is several times slower.
SLOW = 3.0 if SANITIZED else 1.0
TIMEOUT = 10.0 * SLOW

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def uname(prefix="t"):
    """A queue/exchange name no other test uses."""
    return "coney-test.%s.%s" % (prefix, uuid.uuid4().hex[:12])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_for(predicate, timeout=TIMEOUT, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Broker:
    """A broker under test: host/port always; process, log and data dir when
    the tests started it (None when CONEY_TEST_TARGET points elsewhere)."""

    def __init__(self, host, port, proc=None, log_path=None, data_dir=None, workdir=None):
        self.host = host
        self.port = port
        self.proc = proc
        self.log_path = log_path
        self.data_dir = data_dir
        self.workdir = workdir
        self.stopped = False

    @property
    def controlled(self):
        return self.proc is not None

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_tail(self, lines=60):
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self):
        return self.proc is None or self.proc.poll() is None

    def sanitizer_report(self):
        log = self.log()
        for m in SANITIZER_MARKERS:
            i = log.find(m)
            if i >= 0:
                return log[max(0, i - 200):i + 3000]
        return None

    def params(self, **kw):
        return connection_params(self.host, self.port, **kw)

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the process and wait; returns its exit code."""
        if self.proc is None or self.stopped:
            return self.proc.returncode if self.proc else None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout or 15 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("broker did not exit within %.0fs of %s\n--- log tail ---\n%s"
                                 % (timeout or 15 * SLOW, signal.Signals(sig).name,
                                    self.log_tail()))

    def check_clean_exit(self, rc):
        report = self.sanitizer_report()
        assert report is None, "sanitizer report in broker log:\n" + report
        assert rc == 0, "broker exited with %r\n--- log tail ---\n%s" % (rc, self.log_tail())

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.workdir and not os.environ.get("CONEY_KEEP_DATA"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_broker(binary, extra_args=None, port=None, use_port_flag=True, env=None):
    """Start CONEY_BIN on a free port with its own data dir and log file and
    wait until the port accepts connections."""
    workdir = tempfile.mkdtemp(prefix="coney-it-")
    data_dir = os.path.join(workdir, "data")
    os.mkdir(data_dir)
    log_path = os.path.join(workdir, "coney.log")
    port = port or free_port()
    args = [binary]
    if use_port_flag:
        args += ["--port", str(port)]
    args += ["--data-dir", data_dir] + list(extra_args or [])
    penv = dict(os.environ)
    penv.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    penv.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    penv.update(env or {})
    logf = open(log_path, "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            cwd=workdir, env=penv)
    logf.close()
    b = Broker("127.0.0.1", port, proc, log_path, data_dir, workdir)
    if not wait_port("127.0.0.1", port, 20 * SLOW, proc):
        rc = proc.poll()
        tail = b.log_tail()
        b.cleanup()
        raise AssertionError("broker %s did not accept on port %d (exit %r)\n--- log ---\n%s"
                             % (" ".join(args), port, rc, tail))
    return b


def connection_params(host, port, user="guest", password="guest", vhost="/", **kw):
    kw.setdefault("socket_timeout", TIMEOUT)
    kw.setdefault("stack_timeout", 3 * TIMEOUT)
    kw.setdefault("blocked_connection_timeout", 3 * TIMEOUT)
    kw.setdefault("connection_attempts", 1)
    return pika.ConnectionParameters(host=host, port=port, virtual_host=vhost,
                                     credentials=pika.PlainCredentials(user, password),
                                     **kw)


def channel_close_reason(ch, timeout=TIMEOUT):
    """Wait until the broker closes `ch`; returns pika's ChannelClosedByBroker
    (reply_code, reply_text). Fails if the channel stays open."""
    deadline = time.monotonic() + timeout
    while not ch.is_closed:
        if time.monotonic() >= deadline:
            raise AssertionError("channel %d still open after %.1fs" % (ch.channel_number, timeout))
        try:
            ch.connection.process_data_events(time_limit=0.05)
        except pika.exceptions.ChannelClosedByBroker as e:
            return e
    reason = ch._closing_reason
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker), \
        "channel closed, but not by the broker: %r" % (reason,)
    return reason


def connection_close_reason(conn, timeout=TIMEOUT):
    """Wait until the broker closes `conn`; returns ConnectionClosedByBroker."""
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() >= deadline:
            raise AssertionError("connection still open after %.1fs" % timeout)
        try:
            conn.process_data_events(time_limit=0.05)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e
        except pika.exceptions.StreamLostError as e:
            raise AssertionError("connection lost without connection.close: %r" % (e,))
        except pika.exceptions.ChannelClosedByBroker:
            continue
        if conn.is_closed:
            raise AssertionError("connection closed without ConnectionClosedByBroker")


def assert_closed_with(exc, code, text_prefix=None):
    assert exc.reply_code == code, "expected reply code %d, got %d %r" % (
        code, exc.reply_code, exc.reply_text)
    if text_prefix is not None:
        assert exc.reply_text.startswith(text_prefix), \
            "reply text %r does not start with %r" % (exc.reply_text, text_prefix)


def drain(conn, seconds):
    """Let the connection process events for a while (deliveries, returns)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=min(0.05, max(0, deadline - time.monotonic())))


def pump_until(conn, predicate, timeout=TIMEOUT, what="event"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        conn.process_data_events(time_limit=0.05)


def get_one(ch, queue, auto_ack=False, timeout=TIMEOUT):
    """basic.get with retries until a message is there (routing may lag a
    publish that went out on another channel)."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        if time.monotonic() >= deadline:
            raise AssertionError("queue %r stayed empty for %.1fs" % (queue, timeout))
        time.sleep(0.02)


def queue_exists(conn, queue):
    """Passive declare on a throwaway channel; True if the queue exists
    (405: it exists, exclusive to another connection)."""
    ch = conn.channel()
    try:
        ch.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code in (404, 405), e
        return e.reply_code == 405
    ch.close()
    return True


def message_count(conn, queue):
    ch = conn.channel()
    n = ch.queue_declare(queue, passive=True).method.message_count
    ch.close()
    return n


def server_product(broker):
    """(product, version tuple) from connection.start, via a raw socket."""
    from coney_raw import RawConnection
    with RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.start()
        props = raw.server_properties
    product = props.get("product", "")
    ver = []
    for part in str(props.get("version", "0")).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        ver.append(int(digits or 0))
    return product, tuple(ver)


def skip_if_rabbitmq_before(rabbitmq, version, why):
    """Skip a test whose requirement follows a newer RabbitMQ than the one
    the suite is being validated against."""
    if rabbitmq is not None and rabbitmq[1] < version:
        pytest.skip("RabbitMQ %s differs here: %s" % (".".join(map(str, rabbitmq[1])), why))
