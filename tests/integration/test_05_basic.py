"""Basic class: qos, consume/cancel, publish flags, get, acknowledgements
(ack/nack/reject/recover), redelivery, large and empty bodies, properties."""

import datetime
import decimal
import hashlib
import os
import struct
import time

import pika
import pika.exceptions
import pytest

import coney_raw as R
from coney_util import (SLOW, TIMEOUT, assert_closed_with, channel_close_reason, drain, get_one,
                        message_count, pump_until, uname, wait_for)


class Sink:
    """Collects deliveries for a pika consumer callback."""

    def __init__(self):
        self.items = []

    def __call__(self, ch, method, props, body):
        self.items.append((method, props, body))

    def __len__(self):
        return len(self.items)

    @property
    def bodies(self):
        return [b for _, _, b in self.items]


def _queue_with(ch, n, prefix=b"m"):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(n):
        ch.basic_publish("", q, prefix + b"%d" % i)
    return q


def _settle(conn, sink, n, extra=0.3):
    """Wait for n deliveries, then a little longer to catch any excess."""
    pump_until(conn, lambda: len(sink) >= n, what="%d deliveries" % n)
    drain(conn, extra * SLOW)


# ------------------------------------------------------------------ qos

def test_qos_prefetch_count_limits_unacked_deliveries(conn, ch):
    q = _queue_with(ch, 5)
    ch.basic_qos(prefetch_count=2)
    sink = Sink()
    ch.basic_consume(q, sink)
    _settle(conn, sink, 2)
    assert sink.bodies == [b"m0", b"m1"]
    ch.basic_ack(sink.items[0][0].delivery_tag)
    _settle(conn, sink, 3)
    assert sink.bodies == [b"m0", b"m1", b"m2"]
    ch.basic_ack(sink.items[2][0].delivery_tag, multiple=True)
    _settle(conn, sink, 5)
    assert len(sink) == 5


def test_qos_prefetch_applies_per_consumer_when_not_global(conn, ch):
    q1, q2 = _queue_with(ch, 5), _queue_with(ch, 5)
    ch.basic_qos(prefetch_count=2, global_qos=False)
    s1, s2 = Sink(), Sink()
    ch.basic_consume(q1, s1)
    ch.basic_consume(q2, s2)
    pump_until(conn, lambda: len(s1) >= 2 and len(s2) >= 2, what="2 deliveries each")
    drain(conn, 0.3 * SLOW)
    assert (len(s1), len(s2)) == (2, 2)


def test_qos_global_is_shared_by_consumers_on_the_channel(conn, ch):
    """RabbitMQ's reading of global=true: one limit for the whole channel,
    shared by all its consumers (not per connection)."""
    q1, q2 = _queue_with(ch, 5), _queue_with(ch, 5)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    s1, s2 = Sink(), Sink()
    ch.basic_consume(q1, s1)
    ch.basic_consume(q2, s2)
    pump_until(conn, lambda: len(s1) + len(s2) >= 3, what="3 deliveries")
    drain(conn, 0.3 * SLOW)
    assert len(s1) + len(s2) == 3
    # Acking one frees one slot for the channel.
    first = (s1.items or s2.items)[0][0]
    ch.basic_ack(first.delivery_tag)
    pump_until(conn, lambda: len(s1) + len(s2) >= 4, what="a 4th delivery")
    drain(conn, 0.3 * SLOW)
    assert len(s1) + len(s2) == 4


def test_qos_global_and_per_consumer_limits_combine(conn, ch):
    q1, q2 = _queue_with(ch, 5), _queue_with(ch, 5)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    ch.basic_qos(prefetch_count=1, global_qos=False)
    s1, s2 = Sink(), Sink()
    ch.basic_consume(q1, s1)
    ch.basic_consume(q2, s2)
    pump_until(conn, lambda: len(s1) + len(s2) >= 2, what="2 deliveries")
    drain(conn, 0.3 * SLOW)
    assert (len(s1), len(s2)) == (1, 1)


def test_qos_prefetch_zero_means_unlimited(conn, ch):
    q = _queue_with(ch, 20)
    ch.basic_qos(prefetch_count=0)
    sink = Sink()
    ch.basic_consume(q, sink)
    _settle(conn, sink, 20)
    assert len(sink) == 20


def test_qos_does_not_limit_no_ack_consumers(conn, ch):
    q = _queue_with(ch, 10)
    ch.basic_qos(prefetch_count=1)
    sink = Sink()
    ch.basic_consume(q, sink, auto_ack=True)
    _settle(conn, sink, 10)
    assert len(sink) == 10


# ------------------------------------------------------------------ consume

def test_consume_no_ack(conn, ch):
    q = _queue_with(ch, 3)
    sink = Sink()
    ch.basic_consume(q, sink, auto_ack=True)
    _settle(conn, sink, 3)
    assert sink.bodies == [b"m0", b"m1", b"m2"]
    assert all(not m.redelivered for m, _, _ in sink.items)
    assert [m.delivery_tag for m, _, _ in sink.items] == [1, 2, 3]
    ch.close()
    assert message_count(conn, q) == 0


def test_deliver_fields(conn, ch):
    x = uname("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "rk")
    sink = Sink()
    tag = ch.basic_consume(q, sink, consumer_tag="my-tag")
    assert tag == "my-tag"
    ch.basic_publish(x, "rk", b"hello")
    _settle(conn, sink, 1, 0)
    m = sink.items[0][0]
    assert (m.consumer_tag, m.delivery_tag, m.redelivered, m.exchange, m.routing_key) == \
        ("my-tag", 1, False, x, "rk")
    ch.exchange_delete(x)


def test_exclusive_consume_refuses_second_consumer(broker, conn, ch):
    q = ch.queue_declare(uname("q"), auto_delete=True).method.queue
    ch.basic_consume(q, Sink(), exclusive=True)
    other = broker.connect()
    try:
        och = other.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            och.basic_consume(q, Sink())
        assert_closed_with(ei.value, 403,
                           "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
        # Same connection, another channel: refused as well.
        ch2 = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch2.basic_consume(q, Sink())
        assert ei.value.reply_code == 403
    finally:
        other.close()


def test_exclusive_consume_refused_when_queue_has_consumers(conn, ch):
    q = ch.queue_declare(uname("q"), auto_delete=True).method.queue
    ch.basic_consume(q, Sink())
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, Sink(), exclusive=True)
    assert_closed_with(ei.value, 403,
                       "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


def test_consume_from_missing_queue_is_not_found(ch):
    q = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(q, Sink())
    assert_closed_with(ei.value, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_server_generates_consumer_tags(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        t1 = raw.rpc(1, "basic.consume", "basic.consume-ok", queue=q)["consumer_tag"]
        t2 = raw.rpc(1, "basic.consume", "basic.consume-ok", queue=q)["consumer_tag"]
        assert t1.startswith("amq.ctag-") and t2.startswith("amq.ctag-")
        assert t1 != t2
        ok = raw.rpc(1, "basic.cancel", "basic.cancel-ok", consumer_tag=t1)
        assert ok["consumer_tag"] == t1


def test_reused_consumer_tag_is_not_allowed(broker):
    """RabbitMQ: a consumer tag already in use on the channel is a
    connection error 530 NOT_ALLOWED naming basic.consume."""
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        raw.rpc(1, "basic.consume", "basic.consume-ok", queue=q, consumer_tag="dup")
        raw.send_method(1, "basic.consume", queue=q, consumer_tag="dup")
        args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.NOT_ALLOWED
    assert args["reply_text"] == "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"
    assert (args["class_id"], args["method_id"]) == (60, 20)


def test_cancel_stops_deliveries(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    sink = Sink()
    tag = ch.basic_consume(q, sink, auto_ack=True)
    ch.basic_publish("", q, b"before")
    _settle(conn, sink, 1, 0)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"after")
    drain(conn, 0.3 * SLOW)
    assert sink.bodies == [b"before"]
    assert get_one(ch, q, auto_ack=True)[2] == b"after"


def test_cancel_unknown_consumer_tag_is_ok(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        ok = raw.rpc(1, "basic.cancel", "basic.cancel-ok", consumer_tag="never-existed")
        assert ok["consumer_tag"] == "never-existed"


def test_broker_cancels_consumer_when_queue_is_deleted(conn, ch):
    q = ch.queue_declare(uname("q")).method.queue
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame))
    tag = ch.basic_consume(q, Sink())
    conn.channel().queue_delete(q)
    pump_until(conn, lambda: cancels, what="broker-sent basic.cancel")
    assert cancels[0].method.consumer_tag == tag
    assert ch.is_open


def test_broker_cancel_raw_has_no_wait_set(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.open_channel(2)
        q = uname("q")
        raw.rpc(1, "queue.declare", "queue.declare-ok", queue=q)
        raw.rpc(1, "basic.consume", "basic.consume-ok", queue=q, consumer_tag="c1")
        raw.send_method(2, "queue.delete", queue=q)
        # Frames of different channels may interleave in either order.
        frames = [raw.recv_non_heartbeat(), raw.recv_non_heartbeat()]
        got = {(f.channel, f.method): f.args for f in frames}
        assert (2, "queue.delete-ok") in got, frames
        assert got[(1, "basic.cancel")] == {"consumer_tag": "c1", "nowait": True}


def test_round_robin_among_consumers(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    s1, s2, s3 = Sink(), Sink(), Sink()
    for s in (s1, s2, s3):
        ch.basic_consume(q, s, auto_ack=True)
    for i in range(9):
        ch.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(s1) + len(s2) + len(s3) >= 9, what="9 deliveries")
    assert (len(s1), len(s2), len(s3)) == (3, 3, 3)
    assert sorted(s1.bodies + s2.bodies + s3.bodies) == sorted(b"%d" % i for i in range(9))


# ------------------------------------------------------------------ publish

def test_mandatory_unroutable_is_returned_no_route(conn, ch):
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    key = uname("nowhere")
    ch.basic_publish("amq.direct", key, b"bounce", pika.BasicProperties(message_id="r1"),
                     mandatory=True)
    pump_until(conn, lambda: returned, what="basic.return")
    m, p, b = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == \
        (312, "NO_ROUTE", "amq.direct", key)
    assert p.message_id == "r1" and b == b"bounce"


def test_mandatory_routable_is_not_returned(conn, ch):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"kept", mandatory=True)
    assert get_one(ch, q, auto_ack=True)[2] == b"kept"
    drain(conn, 0.2)
    assert returned == []


def test_non_mandatory_unroutable_is_dropped_silently(conn, ch):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("amq.direct", uname("nowhere"), b"dropped")
    drain(conn, 0.3)
    assert returned == [] and ch.is_open


def test_immediate_publish_is_not_implemented(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.publish(1, "", "whatever", b"now!", immediate=True)
        args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.NOT_IMPLEMENTED
    assert args["reply_text"] == "NOT_IMPLEMENTED - immediate=true"
    assert (args["class_id"], args["method_id"]) == (60, 40)


# ------------------------------------------------------------------ get

def test_get_and_get_empty(ch):
    q = _queue_with(ch, 2)
    wait_for(lambda: ch.queue_declare(q, passive=True).method.message_count == 2, what="2")
    m, p, b = ch.basic_get(q, auto_ack=True)
    assert b == b"m0" and m.message_count == 1 and not m.redelivered
    assert m.exchange == "" and m.routing_key == q
    m, p, b = ch.basic_get(q, auto_ack=True)
    assert b == b"m1" and m.message_count == 0
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)


def test_get_empty_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        assert raw.rpc(1, "basic.get", "basic.get-empty", queue=q) == {"cluster_id": ""}


def test_get_from_missing_queue_is_not_found(ch):
    q = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_get(q)
    assert_closed_with(ei.value, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)


# ------------------------------------------------------------------ acks

def _take(ch, q, n):
    """basic.get n messages without ack; returns their methods and bodies."""
    out = []
    for _ in range(n):
        m, _, b = get_one(ch, q)
        out.append((m, b))
    return out


def test_ack_single_and_multiple(conn, ch):
    q = _queue_with(ch, 4)
    got = _take(ch, q, 4)
    ch.basic_ack(got[0][0].delivery_tag)
    ch.basic_ack(got[2][0].delivery_tag, multiple=True)  # acks 2 and 3
    ch.close()
    ch2 = conn.channel()
    m, _, b = get_one(ch2, q, auto_ack=True)
    assert b == b"m3" and m.redelivered
    assert ch2.basic_get(q, auto_ack=True)[0] is None


def test_ack_zero_multiple_acks_everything(conn, ch):
    q = _queue_with(ch, 3)
    _take(ch, q, 3)
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert message_count(conn, q) == 0


def test_nack_multiple_requeue_puts_all_back_in_order(ch):
    q = _queue_with(ch, 3)
    got = _take(ch, q, 3)
    ch.basic_nack(got[-1][0].delivery_tag, multiple=True, requeue=True)
    again = [(m.redelivered, b) for m, b in _take(ch, q, 3)]
    assert again == [(True, b"m0"), (True, b"m1"), (True, b"m2")]


def test_nack_without_requeue_drops(conn, ch):
    q = _queue_with(ch, 3)
    got = _take(ch, q, 3)
    ch.basic_nack(got[1][0].delivery_tag, multiple=True, requeue=False)
    ch.basic_nack(got[2][0].delivery_tag, multiple=False, requeue=False)
    assert ch.basic_get(q)[0] is None
    ch.close()
    assert message_count(conn, q) == 0


def test_reject_requeue_comes_back_redelivered_ahead_of_newer(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"old")
    m, _, b = get_one(ch, q)
    assert b == b"old" and not m.redelivered
    ch.basic_publish("", q, b"new")
    wait_for(lambda: ch.queue_declare(q, passive=True).method.message_count == 1, what="new")
    ch.basic_reject(m.delivery_tag, requeue=True)
    m1, _, b1 = get_one(ch, q, auto_ack=True)
    m2, _, b2 = get_one(ch, q, auto_ack=True)
    assert (b1, m1.redelivered) == (b"old", True)
    assert (b2, m2.redelivered) == (b"new", False)


def test_reject_requeue_to_consumer_is_redelivered(conn, ch):
    q = _queue_with(ch, 1)
    ch.basic_qos(prefetch_count=1)
    sink = Sink()
    ch.basic_consume(q, sink)
    _settle(conn, sink, 1, 0)
    ch.basic_reject(sink.items[0][0].delivery_tag, requeue=True)
    _settle(conn, sink, 2, 0)
    m = sink.items[1][0]
    assert sink.bodies == [b"m0", b"m0"] and m.redelivered
    assert m.delivery_tag == 2


def test_reject_without_requeue_drops(conn, ch):
    q = _queue_with(ch, 1)
    m, _ = _take(ch, q, 1)[0]
    ch.basic_reject(m.delivery_tag, requeue=False)
    ch.close()
    assert message_count(conn, q) == 0


def test_recover_requeue_redelivers_unacked(conn, ch):
    q = _queue_with(ch, 2)
    sink = Sink()
    ch.basic_consume(q, sink)
    _settle(conn, sink, 2, 0)
    ch.basic_recover(requeue=True)
    _settle(conn, sink, 4)
    assert sink.bodies == [b"m0", b"m1", b"m0", b"m1"]
    assert [m.redelivered for m, _, _ in sink.items] == [False, False, True, True]


def test_unacked_messages_return_when_channel_closes(conn, ch):
    q = _queue_with(ch, 2)
    sink = Sink()
    ch.basic_consume(q, sink)
    _settle(conn, sink, 2, 0)
    ch.close()
    ch2 = conn.channel()
    got = [(m.redelivered, b) for m, b in _take(ch2, q, 2)]
    assert got == [(True, b"m0"), (True, b"m1")]


def test_unacked_messages_return_when_connection_closes(broker, conn):
    q = uname("q")
    conn.channel().queue_declare(q, auto_delete=False)
    other = broker.connect()
    och = other.channel()
    och.basic_publish("", q, b"held")
    m, _, b = get_one(och, q)
    assert b == b"held"
    other.close()
    ch = conn.channel()
    m, _, b = get_one(ch, q, auto_ack=True)
    assert b == b"held" and m.redelivered
    ch.queue_delete(q)


def test_ack_of_unknown_delivery_tag_is_precondition_failed(conn, ch):
    ch.basic_ack(99)
    reason = channel_close_reason(ch)
    assert_closed_with(reason, 406, "PRECONDITION_FAILED - unknown delivery tag 99")
    assert conn.is_open


def test_double_ack_is_precondition_failed(conn, ch):
    q = _queue_with(ch, 1)
    m, _ = _take(ch, q, 1)[0]
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    reason = channel_close_reason(ch)
    assert_closed_with(reason, 406, "PRECONDITION_FAILED - unknown delivery tag %d"
                       % m.delivery_tag)


def test_ack_close_names_basic_ack_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "basic.ack", delivery_tag=7)
        close = raw.expect(1, "channel.close")
    assert close == {"reply_code": 406, "reply_text": "PRECONDITION_FAILED - unknown delivery tag 7",
                     "class_id": 60, "method_id": 80}


def test_delivery_tags_are_per_channel(conn):
    a, b = conn.channel(), conn.channel()
    q = _queue_with(a, 2)
    ma, _ = _take(a, q, 1)[0]
    mb, _ = _take(b, q, 1)[0]
    assert ma.delivery_tag == 1 and mb.delivery_tag == 1


# ------------------------------------------------------------------ content

@pytest.mark.timeout(120)
def test_ten_megabyte_message_arrives_intact(conn, ch):
    body = os.urandom(10 * 1024 * 1024)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, body)
    _, _, got = get_one(ch, q, auto_ack=True, timeout=6 * TIMEOUT)
    assert len(got) == len(body)
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_large_message_is_split_into_frame_max_frames_raw(broker):
    body = bytes(range(256)) * 1200  # 307200 bytes: 3 body frames at 131072
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        raw.publish(1, "", q, body)
        raw.rpc(1, "basic.get", "basic.get-ok", queue=q, no_ack=True)
        h = raw.recv_non_heartbeat()
        assert h.type == R.FRAME_HEADER
        assert struct.unpack("!Q", h.payload[4:12])[0] == len(body)
        frames = []
        while sum(len(x) for x in frames) < len(body):
            b = raw.recv_non_heartbeat()
            assert b.type == R.FRAME_BODY and b.channel == 1
            assert len(b.raw) <= raw.tune["frame_max"]
            frames.append(b.payload)
        assert b"".join(frames) == body
        assert len(frames) == 3


def test_zero_length_body(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"", pika.BasicProperties(content_type="text/plain"))
    m, p, b = get_one(ch, q, auto_ack=True)
    assert b == b"" and p.content_type == "text/plain"


def test_zero_length_body_has_no_body_frame_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        raw.publish(1, "", q, b"")
        raw.rpc(1, "basic.get", "basic.get-ok", queue=q, no_ack=True)
        h = raw.recv_non_heartbeat()
        assert h.type == R.FRAME_HEADER and struct.unpack("!Q", h.payload[4:12])[0] == 0
        # The next frame is the reply to the next method, not an empty body.
        assert raw.rpc(1, "basic.get", "basic.get-empty", queue=q)


def test_all_basic_properties_round_trip(ch):
    ts = 1700000000
    headers = {
        "str": "text ünïcode",
        "int": 42,
        "negative": -7,
        "big": 2 ** 40,
        "true": True,
        "false": False,
        "bytes": b"\x00\x01\xff",
        "decimal": decimal.Decimal("3.14"),
        "timestamp": datetime.datetime.utcfromtimestamp(ts),
        "nested": {"a": 1, "b": {"c": "deep"}},
        "list": [1, "two", True, {"x": 3}, [4]],
        "void": None,
        "empty": "",
    }
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="gzip", headers=headers,
        delivery_mode=2, priority=7, correlation_id="corr-1", reply_to="reply-q",
        expiration="60000", message_id="msg-1", timestamp=ts, type="my.type",
        user_id="guest", app_id="coney-tests", cluster_id="c1")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"{}", props)
    _, p, b = get_one(ch, q, auto_ack=True)
    assert b == b"{}"
    for name in ("content_type", "content_encoding", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
                 "user_id", "app_id", "cluster_id"):
        assert getattr(p, name) == getattr(props, name), name
    got = dict(p.headers)
    assert got["str"] == "text ünïcode"
    assert got["int"] == 42 and got["negative"] == -7 and got["big"] == 2 ** 40
    assert got["true"] is True and got["false"] is False
    assert got["bytes"] == b"\x00\x01\xff"
    assert got["decimal"] == decimal.Decimal("3.14")
    assert got["timestamp"] == datetime.datetime.utcfromtimestamp(ts)
    assert got["nested"] == {"a": 1, "b": {"c": "deep"}}
    assert got["list"] == [1, "two", True, {"x": 3}, [4]]
    assert got["void"] is None and got["empty"] == ""
    assert set(got) == set(headers)


def test_user_id_must_match_the_connection_user(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="somebody-else"))
    reason = channel_close_reason(ch)
    assert_closed_with(reason, 406, "PRECONDITION_FAILED - user_id property set to "
                       "'somebody-else' but authenticated user was 'guest'")


# Every field-table value type RabbitMQ accepts, hand-encoded. The header
# frame must come back byte for byte.
_ALL_TYPES_TABLE = b"".join([
    R.shortstr("t") + b"t\x01",
    R.shortstr("b") + b"b\xfe",
    R.shortstr("B") + b"B\xfe",
    R.shortstr("s") + b"s" + struct.pack("!h", -2),
    R.shortstr("u") + b"u" + struct.pack("!H", 65535),
    R.shortstr("I") + b"I" + struct.pack("!i", -100000),
    R.shortstr("i") + b"i" + struct.pack("!I", 4000000000),
    R.shortstr("l") + b"l" + struct.pack("!q", -2 ** 62),
    R.shortstr("f") + b"f" + struct.pack("!f", 1.5),
    R.shortstr("d") + b"d" + struct.pack("!d", -2.25),
    R.shortstr("D") + b"D\x02" + struct.pack("!i", 314),
    R.shortstr("S") + b"S" + R.longstr("long string"),
    R.shortstr("x") + b"x" + R.longstr(b"\x00bytes\xff"),
    R.shortstr("A") + b"A" + struct.pack("!I", 8) + b"I" + struct.pack("!i", 1) + b"t\x00" + b"V",
    R.shortstr("T") + b"T" + struct.pack("!Q", 1700000000),
    R.shortstr("F") + b"F" + R.table({"k": "v"}),
    R.shortstr("V") + b"V",
])


def test_header_frame_properties_round_trip_byte_exact_raw(broker):
    flags = 0xFFFC  # every property bit from content-type (15) to cluster-id (2)
    props = b"".join([
        R.shortstr("text/plain"), R.shortstr("utf-8"),
        struct.pack("!I", len(_ALL_TYPES_TABLE)) + _ALL_TYPES_TABLE,
        b"\x01", b"\x05", R.shortstr("cid"), R.shortstr("rq"), R.shortstr("5000"),
        R.shortstr("mid"), struct.pack("!Q", 1234567890), R.shortstr("typ"),
        R.shortstr("guest"), R.shortstr("app"), R.shortstr("cluster"),
    ])
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        raw.publish(1, "", q, b"body", flags=flags, props=props)
        for _ in range(100):
            raw.send_method(1, "basic.get", queue=q, no_ack=True)
            f = raw.recv_non_heartbeat()
            if f.method == "basic.get-ok":
                break
            time.sleep(0.02)
        assert f.method == "basic.get-ok", f
        h, body = raw.read_content()
    sent = struct.pack("!HHQH", 60, 0, 4, flags) + props
    assert h.payload == sent, "header frame changed in transit\nsent:\n%s\ngot:\n%s" % (
        R.hexdump(sent, 2048), R.hexdump(h.payload, 2048))
    assert body == b"body"
