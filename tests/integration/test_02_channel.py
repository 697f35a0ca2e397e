"""Channel class: open/close, flow, channel errors that close only their
channel, and reuse of channel numbers."""

import pika.exceptions
import pytest

import coney_raw as R
from coney_util import TIMEOUT, assert_closed_with, get_one, uname


def test_open_and_close_channel(conn):
    ch = conn.channel()
    assert ch.is_open
    ch.close()
    assert ch.is_closed
    assert conn.is_open


def test_channel_open_ok_and_close_ok_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        ok = raw.open_channel(7)
        assert ok["channel_id"] == b""
        raw.send_method(7, "channel.close", reply_code=200, reply_text="done")
        raw.expect(7, "channel.close-ok")
        # The number is free again.
        raw.open_channel(7)


def test_many_channels_on_one_connection(conn):
    chans = [conn.channel() for _ in range(50)]
    assert len({c.channel_number for c in chans}) == 50
    for c in chans:
        c.close()


def test_flow_active_true_is_acknowledged(ch):
    assert ch.flow(True) is True


def test_flow_active_true_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        ok = raw.rpc(1, "channel.flow", "channel.flow-ok", active=True)
        assert ok["active"] is True


def test_flow_active_false_is_not_implemented(broker):
    """RabbitMQ refuses channel.flow active=false from a client: connection
    error 540 'NOT_IMPLEMENTED - active=false' naming channel.flow."""
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "channel.flow", active=False)
        args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.NOT_IMPLEMENTED
    assert args["reply_text"] == "NOT_IMPLEMENTED - active=false"
    assert (args["class_id"], args["method_id"]) == (20, 20)


def test_channel_error_closes_only_that_channel(conn):
    bad = conn.channel()
    good = conn.channel()
    q = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        bad.queue_declare(q, passive=True)
    assert_closed_with(ei.value, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)
    assert bad.is_closed
    assert conn.is_open and good.is_open
    own = good.queue_declare("", exclusive=True).method.queue
    good.basic_publish("", own, b"still fine")
    assert get_one(good, own, auto_ack=True)[2] == b"still fine"


def test_channel_error_close_names_the_method_raw(broker):
    q = uname("missing")
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.open_channel(2)
        raw.send_method(1, "queue.declare", queue=q, passive=True)
        close = raw.expect(1, "channel.close")
        assert close["reply_code"] == 404
        assert close["reply_text"] == "NOT_FOUND - no queue '%s' in vhost '/'" % q
        assert (close["class_id"], close["method_id"]) == (50, 10)
        raw.send_method(1, "channel.close-ok")
        # channel 2 unaffected
        ok = raw.rpc(2, "queue.declare", "queue.declare-ok", queue="", exclusive=True)
        assert ok["queue"].startswith("amq.gen-")


def test_methods_after_channel_close_sent_are_ignored_until_close_ok(broker):
    """After the server sends channel.close it discards everything on that
    channel except close/close-ok (spec 2.3.5.1); the connection survives."""
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "queue.declare", queue=uname("missing"), passive=True)
        raw.send_method(1, "queue.declare", queue="", exclusive=True)
        raw.expect(1, "channel.close")
        raw.send_method(1, "channel.close-ok")
        raw.open_channel(1)
        ok = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)
        assert ok["queue"].startswith("amq.gen-")


def test_reopen_channel_number_after_close(conn):
    ch = conn.channel(channel_number=5)
    ch.close()
    ch2 = conn.channel(channel_number=5)
    assert ch2.is_open and ch2.channel_number == 5
    q = ch2.queue_declare("", exclusive=True).method.queue
    ch2.basic_publish("", q, b"again")
    assert get_one(ch2, q, auto_ack=True)[2] == b"again"


def test_reopen_channel_number_after_broker_closed_it(conn):
    ch = conn.channel(channel_number=9)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare(uname("missing"), passive=True)
    ch2 = conn.channel(channel_number=9)
    assert ch2.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")


def test_client_channel_close_with_error_code_is_acknowledged(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "channel.close", reply_code=406, reply_text="client gave up",
                        class_id=60, method_id=40)
        raw.expect(1, "channel.close-ok")
