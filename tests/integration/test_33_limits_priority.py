"""Queue length limits (x-max-length, x-max-length-bytes, x-overflow
drop-head / reject-publish / reject-publish-dlx), the argument checks
RabbitMQ 3.10 makes on queue.declare and basic.publish, and priority
queues (x-max-priority, per-message priority).
Validated against RabbitMQ 3.10.8 with CONEY_TEST_TARGET, except the
coney_only tests."""

import signal

import pika
import pika.exceptions
import pytest

import coney_util
from coney_util import channel_close_reason, drain, get_one, uname
from ext_util import Sink, bodies, coney_only, count, props, settle, wait_count, x_death


def limited(ch, dead=None, **args):
    """An exclusive queue with the given x- arguments (keyword names with
    '_' for '-', without the x- prefix), dead-lettering to queue `dead`."""
    a = {"x-" + k.replace("_", "-"): v for k, v in args.items()}
    if dead is not None:
        a.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
    return ch.queue_declare("", exclusive=True, arguments=a).method.queue


def declare_fails(conn, args):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True, arguments=args)
    return e.value


# ------------------------------------------------------------ max-length

def test_max_length_drops_oldest_by_default(ch):
    ch.confirm_delivery()
    q = limited(ch, max_length=3)
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    assert count(ch, q) == 3
    assert bodies(ch, q) == [b"m2", b"m3", b"m4"]


def test_drop_head_dead_letters_with_reason_maxlen(ch):
    ch.confirm_delivery()
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = limited(ch, dead, max_length=2, overflow="drop-head")
    for i in range(4):
        ch.basic_publish("", q, b"m%d" % i)
    wait_count(ch, dead, 2)
    got = [get_one(ch, dead, auto_ack=True) for _ in range(2)]
    assert [b for _, _, b in got] == [b"m0", b"m1"]
    for _, p, _ in got:
        (d,) = x_death(p)
        assert (d["queue"], d["reason"], d["count"]) == (q, "maxlen", 1)
        assert p.headers["x-first-death-reason"] == "maxlen"
    assert bodies(ch, q) == [b"m2", b"m3"]


def test_max_length_zero_dead_letters_every_message(ch):
    ch.confirm_delivery()
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = limited(ch, dead, max_length=0)
    ch.basic_publish("", q, b"z")
    assert count(ch, q) == 0
    _, p, body = get_one(ch, dead)
    assert body == b"z" and x_death(p)[0]["reason"] == "maxlen"


def test_max_length_counts_ready_messages_not_unacked(ch):
    ch.confirm_delivery()
    q = limited(ch, max_length=2)
    ch.basic_publish("", q, b"a")
    held, _, _ = get_one(ch, q)               # unacked: not counted
    ch.basic_publish("", q, b"b")
    ch.basic_publish("", q, b"c")
    assert count(ch, q) == 2
    ch.basic_ack(held.delivery_tag)
    assert bodies(ch, q) == [b"b", b"c"]


def test_max_length_bytes_counts_bodies(ch):
    ch.confirm_delivery()
    q = limited(ch, max_length_bytes=10)
    for i in range(5):
        ch.basic_publish("", q, b"abc%d" % i)      # 4 bytes each
    assert count(ch, q) == 2
    assert bodies(ch, q) == [b"abc3", b"abc4"]


def test_max_length_and_bytes_together_the_tighter_wins(ch):
    ch.confirm_delivery()
    q = limited(ch, max_length=3, max_length_bytes=100)
    for i in range(5):
        ch.basic_publish("", q, b"x" * 40)
    assert count(ch, q) == 2


def test_reject_publish_nacks_the_refused_message(ch):
    ch.confirm_delivery()
    q = limited(ch, max_length=2, overflow="reject-publish")
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"c")
    assert ch.is_open
    assert bodies(ch, q) == [b"a", b"b"]
    ch.basic_publish("", q, b"d")                  # room again: acked
    assert bodies(ch, q) == [b"d"]


def test_reject_publish_does_not_dead_letter(ch):
    ch.confirm_delivery()
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = limited(ch, dead, max_length=1, overflow="reject-publish")
    ch.basic_publish("", q, b"a")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"b")
    drain(ch.connection, 0.2)
    assert count(ch, dead) == 0


def test_reject_publish_silently_drops_for_a_publisher_without_confirms(conn, ch):
    q = limited(ch, max_length=1, overflow="reject-publish")
    for b in (b"a", b"b", b"c"):
        ch.basic_publish("", q, b)
    drain(conn, 0.2)
    assert ch.is_open
    assert bodies(ch, q) == [b"a"]


def test_reject_publish_dlx_nacks_and_dead_letters(ch):
    ch.confirm_delivery()
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = limited(ch, dead, max_length=1, overflow="reject-publish-dlx")
    ch.basic_publish("", q, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"refused")
    _, p, body = get_one(ch, dead)
    assert body == b"refused"
    (d,) = x_death(p)
    assert (d["queue"], d["reason"]) == (q, "maxlen")
    assert bodies(ch, q) == [b"kept"]


def test_queue_arguments_are_checked_as_rabbitmq_does(conn):
    cases = [
        ({"x-max-length": -1}, "{value_negative,-1}"),
        ({"x-message-ttl": -1}, "{value_negative,-1}"),
        ({"x-expires": 0}, "{value_zero,0}"),
        ({"x-overflow": "bogus"}, "invalid_overflow"),
        ({"x-max-priority": 256}, "{max_value_exceeded,256}"),
        ({"x-max-priority": -1}, "{value_negative,-1}"),
        ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
    ]
    for args, why in cases:
        e = declare_fails(conn, args)
        (name,) = args
        assert e.reply_code == 406, (args, e)
        assert e.reply_text.startswith("PRECONDITION_FAILED - invalid arg '%s' for queue '"
                                       % name), e.reply_text
        assert e.reply_text.endswith("in vhost '/': " + why), e.reply_text


def test_invalid_expiration_closes_the_channel(conn):
    for value, why in (("abc", "no_integer"), ("-5", "{value_negative,-5}")):
        ch = conn.channel()
        ch.basic_publish("", "no-such-queue", b"x", props(expiration=value))
        e = channel_close_reason(ch)
        assert e.reply_code == 406
        assert e.reply_text == "PRECONDITION_FAILED - invalid expiration '%s': %s" % (value, why)


# ------------------------------------------------------------ priorities

def test_priority_queue_delivers_higher_priority_first_fifo_within(ch):
    ch.confirm_delivery()
    q = limited(ch, max_priority=5)
    sent = [(1, b"a1"), (5, b"a5"), (None, b"a0"), (3, b"a3"), (5, b"b5"), (1, b"b1"),
            (0, b"b0"), (3, b"b3")]
    for prio, body in sent:
        ch.basic_publish("", q, body, props(priority=prio))
    assert bodies(ch, q) == [b"a5", b"b5", b"a3", b"b3", b"a1", b"b1", b"a0", b"b0"]


def test_priority_above_max_counts_as_max(ch):
    ch.confirm_delivery()
    q = limited(ch, max_priority=3)
    ch.basic_publish("", q, b"two", props(priority=2))
    ch.basic_publish("", q, b"nine", props(priority=9))
    ch.basic_publish("", q, b"three", props(priority=3))
    ch.basic_publish("", q, b"255", props(priority=255))
    assert bodies(ch, q) == [b"nine", b"three", b"255", b"two"]


def test_priority_is_kept_on_the_delivered_message(ch):
    q = limited(ch, max_priority=10)
    ch.basic_publish("", q, b"p", props(priority=7))
    _, p, _ = get_one(ch, q, auto_ack=True)
    assert p.priority == 7


def test_queue_without_max_priority_ignores_priority(ch):
    ch.confirm_delivery()
    q = limited(ch)
    for prio, body in ((0, b"a"), (9, b"b"), (4, b"c")):
        ch.basic_publish("", q, body, props(priority=prio))
    assert bodies(ch, q) == [b"a", b"b", b"c"]


def test_priority_order_for_a_consumer_with_prefetch(conn, ch):
    """Messages wait in the queue while the consumer is at its prefetch
    limit; the next delivery is the highest priority that is ready."""
    ch.confirm_delivery()
    q = limited(ch, max_priority=10)
    ch.basic_publish("", q, b"low", props(priority=1))
    ch.basic_qos(prefetch_count=1)
    sink = Sink()
    ch.basic_consume(q, sink)
    settle(conn, sink, 1)
    for prio, body in ((2, b"mid"), (9, b"high"), (0, b"zero")):
        ch.basic_publish("", q, body, props(priority=prio))
    for n in range(2, 5):
        ch.basic_ack(sink.items[-1][0].delivery_tag)
        settle(conn, sink, n, 0.1)
    ch.basic_ack(sink.items[-1][0].delivery_tag)
    assert sink.bodies == [b"low", b"high", b"mid", b"zero"]


def test_requeued_message_keeps_its_priority_place(ch):
    ch.confirm_delivery()
    q = limited(ch, max_priority=5)
    ch.basic_publish("", q, b"low", props(priority=1))
    ch.basic_publish("", q, b"high", props(priority=5))
    m, _, body = get_one(ch, q)
    assert body == b"high"
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert bodies(ch, q) == [b"high", b"low"]


def test_priority_queue_drop_head_drops_the_next_to_be_delivered(ch):
    """RabbitMQ's head of a priority queue is the message it would deliver
    next: drop-head throws away the highest-priority message, not the oldest
    or the lowest."""
    ch.confirm_delivery()
    q = limited(ch, max_priority=5, max_length=2)
    ch.basic_publish("", q, b"high", props(priority=5))
    ch.basic_publish("", q, b"low1", props(priority=1))
    ch.basic_publish("", q, b"low2", props(priority=1))
    assert bodies(ch, q) == [b"low1", b"low2"]


@coney_only("restarts the broker process")
def test_priority_order_survives_restart(fresh_broker):
    b = fresh_broker
    q = uname("prio-durable")
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True, arguments={"x-max-priority": 4})
    for prio, body in ((1, b"a1"), (4, b"a4"), (2, b"a2"), (4, b"b4"), (1, b"b1")):
        ch.basic_publish("", q, body, props(priority=prio, delivery_mode=2))
    conn.close()
    coney_util.restart_broker(b, signal.SIGTERM)
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments={"x-max-priority": 4})
    assert bodies(ch, q) == [b"a4", b"b4", b"a2", b"a1", b"b1"]
    conn.close()
