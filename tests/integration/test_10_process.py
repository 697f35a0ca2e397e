"""The broker as a process: command line, config file, signals. These tests
start their own broker and are skipped when CONEY_TEST_TARGET is set."""

import os
import signal
import socket
import subprocess

import coney_raw as R
from coney_util import (SLOW, TIMEOUT, connection_close_reason, free_port, get_one,
                        start_broker, uname)

# What RabbitMQ 3.10 sends every client when it is stopped.
SHUTDOWN_TEXT = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(binary, *args):
    return subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=10 * SLOW)


def test_help_exits_zero_and_lists_options(coney_bin):
    p = _run(coney_bin, "--help")
    assert p.returncode == 0, p
    text = (p.stdout + p.stderr).decode(errors="replace")
    for opt in ("--port", "--mqtt-port", "--data-dir", "--config", "--help", "--version"):
        assert opt in text, "%s missing from --help output:\n%s" % (opt, text)


def test_version_exits_zero_and_prints_version(coney_bin):
    p = _run(coney_bin, "--version")
    assert p.returncode == 0, p
    text = (p.stdout + p.stderr).decode(errors="replace")
    with open(os.path.join(REPO, "VERSION")) as f:
        version = f.read().strip()
    assert version in text, "version %s not in %r" % (version, text)
    assert len(text.strip().splitlines()) <= 3, text


def test_unknown_option_fails(coney_bin):
    p = _run(coney_bin, "--no-such-option")
    assert p.returncode != 0
    assert p.stderr.strip(), "no diagnostic on stderr"


def _shutdown_with_clients(b, sig):
    """Open a pika connection (with a consumer) and a raw one, signal the
    broker, check both see connection.close 320, then a clean exit 0."""
    conn = b.connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None)
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT).open()
    raw.open_channel(1)

    b.proc.send_signal(sig)

    reason = connection_close_reason(conn, timeout=10 * SLOW)
    assert reason.reply_code == 320, reason
    assert reason.reply_text == SHUTDOWN_TEXT, reason
    args, _ = raw.expect_connection_close(timeout=10 * SLOW)
    raw.close()
    assert args == {"reply_code": 320, "reply_text": SHUTDOWN_TEXT, "class_id": 0, "method_id": 0}

    rc = b.stop(sig)  # already signalled: just waits for the exit
    b.check_clean_exit(rc)


def test_sigterm_closes_connections_with_320_and_exits_zero(fresh_broker):
    _shutdown_with_clients(fresh_broker, signal.SIGTERM)


def test_sigint_closes_connections_with_320_and_exits_zero(fresh_broker):
    _shutdown_with_clients(fresh_broker, signal.SIGINT)


def test_sigterm_without_clients_exits_zero(fresh_broker):
    rc = fresh_broker.stop(signal.SIGTERM)
    fresh_broker.check_clean_exit(rc)


def test_logs_go_to_stderr(fresh_broker):
    c = fresh_broker.connect()
    c.close()
    rc = fresh_broker.stop(signal.SIGTERM)
    fresh_broker.check_clean_exit(rc)
    assert fresh_broker.log().strip(), "broker wrote no log lines on stderr"


def test_config_file_listener_port_is_honoured(coney_bin, tmp_path):
    port = free_port()
    conf = tmp_path / "coney.conf"
    conf.write_text("# Coney test configuration, RabbitMQ style\n"
                    "\n"
                    "listeners.tcp.default = %d\n" % port)
    b = start_broker(coney_bin, extra_args=["--config", str(conf)], port=port,
                     use_port_flag=False)
    try:
        assert b.port == port
        c = b.connect()
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"configured")
        assert get_one(ch, q, auto_ack=True)[2] == b"configured"
        c.close()
        rc = b.stop(signal.SIGTERM)
        b.check_clean_exit(rc)
    finally:
        b.cleanup()


def _mqtt_connack(port):
    """CONNECT as MQTT 3.1.1 and return the CONNACK's bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(bytes.fromhex("100e00044d5154540402003c0002") + b"id")
        return s.recv(4)


def test_config_file_sets_the_mqtt_listener(coney_bin, tmp_path):
    mport = free_port()
    conf = tmp_path / "coney.conf"
    conf.write_text("mqtt.listeners.tcp.default = 127.0.0.1:%d\n" % mport)
    b = start_broker(coney_bin, extra_args=["--config", str(conf)], mqtt_port_flag=False)
    try:
        assert _mqtt_connack(mport) == bytes.fromhex("20020000")
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def test_mqtt_listeners_none_turns_mqtt_off(coney_bin, tmp_path):
    """RabbitMQ's `listeners.tcp = none` form: AMQP serves, nothing listens
    for MQTT (not even the default 1883 is tried)."""
    conf = tmp_path / "coney.conf"
    conf.write_text("mqtt.listeners.tcp = none\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)], mqtt_port_flag=False)
    try:
        c = b.connect()
        c.close()
        assert "MQTT" not in b.log()
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def test_two_brokers_with_own_data_dirs_run_side_by_side(coney_bin):
    a = start_broker(coney_bin)
    b = start_broker(coney_bin)
    try:
        for x in (a, b):
            c = x.connect()
            c.channel().queue_declare(uname("q"), exclusive=True)
            c.close()
        for x in (a, b):
            x.check_clean_exit(x.stop(signal.SIGTERM))
    finally:
        a.cleanup()
        b.cleanup()
