"""Connection class: connection.start contents, authentication, vhost
access, tuning and heartbeats, and closing from either side."""

import time

import pika
import pika.exceptions
import pytest

import coney_raw as R
from coney_util import SLOW, TIMEOUT, uname, get_one


REQUIRED_CAPABILITIES = (
    "publisher_confirms", "exchange_exchange_bindings", "basic.nack",
    "consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
    "per_consumer_qos",
)


def test_connection_start_offers_0_9_plain_and_server_properties(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        start = raw.start()
    assert (start["version_major"], start["version_minor"]) == (0, 9)
    assert b"PLAIN" in start["mechanisms"].split()
    assert b"en_US" in start["locales"].split()
    props = start["server_properties"]
    for key in ("product", "version", "platform", "copyright", "information"):
        assert isinstance(props.get(key), str) and props[key], key
    caps = props["capabilities"]
    for cap in REQUIRED_CAPABILITIES:
        assert caps.get(cap) is True, "capability %s missing or false in %r" % (cap, caps)


def test_pika_sees_capabilities(conn):
    props = conn._impl.server_properties
    caps = props["capabilities"]
    for cap in REQUIRED_CAPABILITIES:
        assert caps.get(cap) is True, cap
    assert conn.basic_nack_supported
    assert conn.consumer_cancel_notify_supported
    assert conn.exchange_exchange_bindings_supported
    assert conn.publisher_confirms_supported


def test_plain_auth_ok_and_open_ok(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        f = raw.handshake()
        assert f.method == "connection.open-ok", f
        assert f.channel == 0


def test_amqplain_auth_ok(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        f = raw.handshake(mechanism="AMQPLAIN")
        assert f.method == "connection.open-ok", f


def test_amqplain_wrong_password_is_access_refused(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        f = raw.handshake(mechanism="AMQPLAIN", password="nope")
        assert f.method == "connection.close", f
        assert f.args["reply_code"] == R.ACCESS_REFUSED
        assert f.args["reply_text"].startswith(
            "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN")
        raw.send_method(0, "connection.close-ok")


def test_update_secret_is_acknowledged(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        ok = raw.rpc(0, "connection.update-secret", "connection.update-secret-ok",
                     new_secret=b"guest", reason="rotation")
        assert ok == {}
        raw.open_channel(1)    # the connection still works afterwards


def test_wrong_password_is_access_refused_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        f = raw.handshake(password="not-the-password")
        assert f.method == "connection.close", f
        assert f.args["reply_code"] == R.ACCESS_REFUSED
        assert f.args["reply_text"].startswith(
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")
        raw.send_method(0, "connection.close-ok")
        assert raw.read_until_eof() == b""


def test_wrong_password_pika_raises_authentication_error(broker):
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)) as ei:
        broker.connect(password="not-the-password")
    assert "ACCESS_REFUSED" in str(ei.value)


def test_unknown_user_is_access_refused(broker):
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        broker.connect(user="no-such-user-" + uname(), password="x")


def test_unknown_vhost_is_not_allowed(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        f = raw.handshake(vhost="no-such-vhost")
        assert f.method == "connection.close", f
        assert f.args["reply_code"] == R.NOT_ALLOWED
        assert f.args["reply_text"] == "NOT_ALLOWED - vhost no-such-vhost not found"
        assert (f.args["class_id"], f.args["method_id"]) == (10, 40)


def test_unknown_vhost_pika(broker):
    with pytest.raises((pika.exceptions.ProbableAccessDeniedError,
                        pika.exceptions.ConnectionClosedByBroker)) as ei:
        broker.connect(vhost="no-such-vhost")
    assert "NOT_ALLOWED" in str(ei.value) or "530" in str(ei.value)


def test_tune_proposes_rabbitmq_defaults(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
    assert raw.tune["channel_max"] == 2047
    assert raw.tune["frame_max"] == 131072
    assert raw.tune["heartbeat"] == 60


def test_heartbeat_negotiated_by_pika(broker):
    c = broker.connect(heartbeat=5)
    try:
        assert c._impl.params.heartbeat == 5
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        assert get_one(ch, q)[2] == b"x"
    finally:
        c.close()


def test_server_sends_heartbeats_when_negotiated(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open(heartbeat=1)
        f = raw.recv_frame(timeout=5 * SLOW)
        assert f.type == R.FRAME_HEARTBEAT and f.channel == 0, f
        assert f.raw == R.hexbytes("08 0000 00000000 ce")


@pytest.mark.timeout(40)
def test_silent_peer_is_dropped_after_two_missed_heartbeats(broker):
    """Negotiate heartbeat=1 and send nothing at all: the server must give up
    on us after about two intervals (RabbitMQ: socket closed, no close)."""
    raw = R.RawConnection(broker.host, broker.port, timeout=TIMEOUT)
    try:
        raw.open(heartbeat=1)
        t0 = time.monotonic()
        heartbeats = 0
        while True:
            try:
                f = raw.recv_frame(timeout=15 * SLOW)
            except EOFError:
                break
            assert f.type == R.FRAME_HEARTBEAT or f.method == "connection.close", f
            heartbeats += f.type == R.FRAME_HEARTBEAT
        elapsed = time.monotonic() - t0
    finally:
        raw.close()
    assert elapsed >= 1.5, "dropped too early (%.2fs)" % elapsed
    assert elapsed <= 6 * SLOW, "dropped too late (%.2fs)" % elapsed


def test_active_peer_with_heartbeats_stays_connected(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open(heartbeat=1)
        raw.open_channel(1)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            raw.send(R.heartbeat_frame())
            time.sleep(0.4)
        raw.send_method(1, "queue.declare", queue="", exclusive=True)
        ok = None
        while ok is None:
            f = raw.recv_frame()
            if f.type != R.FRAME_HEARTBEAT:
                ok = f
        assert ok.method == "queue.declare-ok", ok


def test_client_close_gets_close_ok(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(0, "connection.close", reply_code=200, reply_text="bye")
        f = raw.recv_non_heartbeat()
        assert f.method == "connection.close-ok" and f.channel == 0, f
        # The client, having received close-ok, closes the socket (RabbitMQ
        # waits for that); nothing but EOF may follow.


def test_pika_close_and_reconnect(broker):
    c = broker.connect()
    ch = c.channel()
    q = uname("q")
    ch.queue_declare(q, auto_delete=False)
    c.close()
    assert c.is_closed
    c2 = broker.connect()
    try:
        ch2 = c2.channel()
        assert ch2.queue_declare(q, passive=True).method.queue == q
        ch2.queue_delete(q)
    finally:
        c2.close()


def test_many_connections_at_once(broker):
    conns = [broker.connect() for _ in range(20)]
    try:
        for c in conns:
            assert c.channel().is_open
    finally:
        for c in conns:
            c.close()


def test_connection_blocked_capability_client_properties_accepted(broker):
    """A client announcing every capability RabbitMQ clients send is served."""
    props = {"product": "coney-tests", "platform": "Python", "version": "1",
             "connection_name": "caps",
             "capabilities": {"authentication_failure_close": True, "basic.nack": True,
                              "connection.blocked": True, "consumer_cancel_notify": True,
                              "publisher_confirms": True,
                              "exchange_exchange_bindings": True,
                              "per_consumer_qos": True}}
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        f = raw.handshake(client_properties=props)
        assert f.method == "connection.open-ok", f
