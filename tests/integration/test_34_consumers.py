"""Consumer features of RabbitMQ's: consumer priorities (x-priority on
basic.consume), single active consumer (x-single-active-consumer) and the
delivery acknowledgement timeout (consumer_timeout, and Coney's per-queue
x-consumer-timeout, which RabbitMQ only gained in 3.12).
Validated against RabbitMQ 3.10.8 with CONEY_TEST_TARGET (and, for the
timeout, CONEY_TEST_CONSUMER_TIMEOUT; see ext_util), except the coney_only
tests."""

import signal
import time

import pika
import pika.exceptions
import pytest

from coney_util import SLOW, TIMEOUT, channel_close_reason, drain, get_one, pump_until, uname
from ext_util import Sink, bodies, coney_only, consumer_timeout_broker, count, settle

TIMEOUT_TEXT = ("PRECONDITION_FAILED - delivery acknowledgement on channel %d timed out. "
                "Timeout value used: %d ms. This timeout value can be configured, see "
                "consumers doc guide to learn more")


def fill(ch, q, n, prefix=b"m"):
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", q, prefix + b"%d" % i)


# ------------------------------------------------------------ consumer priorities

def test_higher_priority_consumer_gets_all_while_it_has_capacity(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    low, high = Sink(), Sink()
    ch.basic_consume(q, low, auto_ack=True, arguments={"x-priority": 1})
    ch.basic_consume(q, high, auto_ack=True, arguments={"x-priority": 10})
    fill(ch, q, 10)
    settle(conn, high, 10)
    assert len(low) == 0


def test_lower_priority_consumer_gets_messages_when_higher_is_full(conn):
    hch, lch = conn.channel(), conn.channel()
    q = hch.queue_declare("", exclusive=True).method.queue
    hch.basic_qos(prefetch_count=2)
    high, low = Sink(), Sink()
    hch.basic_consume(q, high, arguments={"x-priority": 5})
    lch.basic_consume(q, low, arguments={"x-priority": -5})
    fill(hch, q, 6)
    pump_until(conn, lambda: len(high) + len(low) >= 6, what="6 deliveries")
    drain(conn, 0.2)
    assert high.bodies == [b"m0", b"m1"]
    assert low.bodies == [b"m2", b"m3", b"m4", b"m5"]
    # capacity again: the next message goes to the higher priority
    hch.basic_ack(high.items[-1][0].delivery_tag, multiple=True)
    fill(hch, q, 1, b"n")
    settle(conn, high, 3)
    assert high.bodies[-1] == b"n0" and len(low) == 4


def test_equal_priority_consumers_share_round_robin(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    a, b = Sink(), Sink()
    ch.basic_consume(q, a, auto_ack=True, arguments={"x-priority": 3})
    ch.basic_consume(q, b, auto_ack=True, arguments={"x-priority": 3})
    fill(ch, q, 6)
    pump_until(conn, lambda: len(a) + len(b) >= 6, what="6 deliveries")
    assert (len(a), len(b)) == (3, 3)


def test_default_consumer_priority_is_zero(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    plain, neg = Sink(), Sink()
    ch.basic_consume(q, neg, auto_ack=True, arguments={"x-priority": -1})
    ch.basic_consume(q, plain, auto_ack=True)
    fill(ch, q, 4)
    settle(conn, plain, 4)
    assert len(neg) == 0


# ------------------------------------------------------------ single active consumer

def sac_queue(ch):
    return ch.queue_declare(uname("sac"), exclusive=True,
                            arguments={"x-single-active-consumer": True}).method.queue


def test_single_active_consumer_only_the_first_receives(conn):
    ch = conn.channel()
    q = sac_queue(ch)
    first, second = Sink(), Sink()
    ch.basic_consume(q, first, auto_ack=True)
    ch.basic_consume(q, second, auto_ack=True)
    fill(ch, q, 8)
    settle(conn, first, 8)
    assert len(second) == 0
    assert first.bodies == [b"m%d" % i for i in range(8)]


def test_single_active_consumer_next_takes_over_on_cancel(conn):
    ch1, ch2 = conn.channel(), conn.channel()
    q = sac_queue(ch1)
    ch1.basic_qos(prefetch_count=2)
    first, second = Sink(), Sink()
    tag1 = ch1.basic_consume(q, first)
    ch2.basic_consume(q, second)
    fill(ch1, q, 5)
    settle(conn, first, 2)
    assert len(second) == 0
    ch1.basic_ack(first.items[0][0].delivery_tag)   # m0 done, m1 held
    settle(conn, first, 3)
    ch1.basic_cancel(tag1)                          # m1, m2 unacked on ch1
    drain(conn, 0.3)
    assert len(second) == 0, "the takeover waits for the old consumer's unacked messages"
    ch1.basic_recover(requeue=True)
    pump_until(conn, lambda: len(second) >= 4, what="the second consumer to take over")
    drain(conn, 0.2)
    assert sorted(second.bodies) == [b"m1", b"m2", b"m3", b"m4"]
    assert len(first) == 3


def test_single_active_consumer_next_takes_over_when_channel_closes(conn, broker):
    other = broker.connect()
    try:
        och = other.channel()
        ch = conn.channel()
        q = ch.queue_declare(uname("sac"), auto_delete=True,
                             arguments={"x-single-active-consumer": True}).method.queue
        mine = Sink()
        theirs = []
        och.basic_consume(q, lambda c, m, p, b: theirs.append(b))   # active
        ch.basic_consume(q, mine)                                  # waiting
        fill(ch, q, 2)
        pump_until(other, lambda: len(theirs) >= 2, what="deliveries to the active one")
        drain(conn, 0.2)
        assert len(mine) == 0
        other.close()                                              # unacked requeued
        pump_until(conn, lambda: len(mine) >= 2, what="the waiting consumer to take over")
        assert mine.bodies == [b"m0", b"m1"]
        assert all(m.redelivered for m, _, _ in mine.items)
        fill(ch, q, 1, b"n")
        settle(conn, mine, 3)
    finally:
        if other.is_open:
            other.close()


def test_single_active_consumer_argument_must_be_boolean(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True, arguments={"x-single-active-consumer": "yes"})
    assert e.value.reply_code == 406


def test_single_active_consumer_with_basic_get_still_works(conn):
    ch = conn.channel()
    q = sac_queue(ch)
    fill(ch, q, 2)
    assert bodies(ch, q) == [b"m0", b"m1"]


# ------------------------------------------------------------ consumer timeout

@pytest.fixture
def tb(request, tmp_path):
    t = consumer_timeout_broker(request, tmp_path, ms=1000)
    yield t
    if t.owned:
        b = t.broker
        try:
            if not b.stopped:
                b.check_clean_exit(b.stop(signal.SIGTERM))
        finally:
            b.cleanup()


def test_consumer_timeout_closes_channel_with_406(tb):
    conn = tb.broker.connect()
    try:
        conn.channel()                                  # channel 1 stays idle
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"slow")
        sink = Sink()
        ch.basic_consume(q, sink)
        t0 = time.monotonic()
        e = channel_close_reason(ch, timeout=tb.ms / 1000 + TIMEOUT)
        elapsed = time.monotonic() - t0
        assert len(sink) == 1
        assert e.reply_code == 406
        assert e.reply_text == TIMEOUT_TEXT % (ch.channel_number, tb.ms)
        assert elapsed >= tb.ms / 1000 * 0.9
        # the message goes back to the queue, redelivered
        ch2 = conn.channel()
        m, _, body = get_one(ch2, q, auto_ack=True)
        assert body == b"slow" and m.redelivered
        assert conn.is_open
    finally:
        if conn.is_open:
            conn.close()


def test_consumer_timeout_spares_acked_and_no_ack_deliveries(tb):
    conn = tb.broker.connect()
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        acking = Sink()
        ch.basic_consume(q, lambda c, m, p, b: (acking(c, m, p, b), c.basic_ack(m.delivery_tag)))
        q2 = ch.queue_declare("", exclusive=True).method.queue
        noack = Sink()
        ch.basic_consume(q2, noack, auto_ack=True)
        deadline = time.monotonic() + 2 * tb.ms / 1000
        while time.monotonic() < deadline:
            ch.basic_publish("", q, b"a")
            ch.basic_publish("", q2, b"b")
            drain(conn, 0.1)
        drain(conn, 0.5 * tb.ms / 1000)
        assert ch.is_open
        assert len(acking) > 5 and len(noack) > 5
    finally:
        if conn.is_open:
            conn.close()


def test_consumer_timeout_counts_from_each_delivery(tb):
    """Acking an old delivery in time, then holding a newer one: the newer
    one times out on its own clock."""
    conn = tb.broker.connect()
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        sink = Sink()
        ch.basic_consume(q, sink)
        ch.basic_publish("", q, b"first")
        settle(conn, sink, 1, 0)
        drain(conn, 0.6 * tb.ms / 1000)
        ch.basic_ack(sink.items[0][0].delivery_tag)
        ch.basic_publish("", q, b"second")
        settle(conn, sink, 2, 0)
        drain(conn, 0.6 * tb.ms / 1000)
        assert ch.is_open, "closed although no delivery was unacked for the timeout"
        e = channel_close_reason(ch, timeout=tb.ms / 1000 + TIMEOUT)
        assert e.reply_code == 406
    finally:
        if conn.is_open:
            conn.close()


@coney_only("x-consumer-timeout is a queue argument from RabbitMQ 3.12 on")
def test_queue_consumer_timeout_argument(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True, arguments={"x-consumer-timeout": 500}).method.queue
    ch.basic_publish("", q, b"slow")
    sink = Sink()
    ch.basic_consume(q, sink)
    e = channel_close_reason(ch, timeout=TIMEOUT)
    assert len(sink) == 1
    assert e.reply_code == 406
    assert e.reply_text == TIMEOUT_TEXT % (ch.channel_number, 500)
    # a queue without the argument on the same broker: no timeout
    ch = conn.channel()
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q2, b"patient")
    sink = Sink()
    ch.basic_consume(q2, sink)
    settle(conn, sink, 1, 1.0)
    assert ch.is_open
