"""Routing extensions of RabbitMQ's: direct reply-to (amq.rabbitmq.reply-to),
sender-selected distribution (CC and BCC headers), x-queue-type, and
delayed messages (the x-delayed-message exchange type of RabbitMQ's
rabbitmq_delayed_message_exchange plugin, which Debian does not ship:
those tests are coney_only).
Validated against RabbitMQ 3.10.8 with CONEY_TEST_TARGET, except the
coney_only tests."""

import signal
import time

import pika
import pika.exceptions
import pytest

import coney_util
from coney_util import TIMEOUT, channel_close_reason, drain, get_one, pump_until, uname
from ext_util import Sink, bodies, coney_only, count, props, settle

REPLY_TO = "amq.rabbitmq.reply-to"


# ------------------------------------------------------------ direct reply-to

def test_direct_reply_to_round_trip(conn):
    client, server = conn.channel(), conn.channel()
    service = server.queue_declare("", exclusive=True).method.queue
    replies = Sink()
    client.basic_consume(REPLY_TO, replies, auto_ack=True)
    client.basic_publish("", service, b"ping", props(reply_to=REPLY_TO, correlation_id="c-1"))
    _, p, body = get_one(server, service, auto_ack=True)
    assert body == b"ping"
    assert p.reply_to.startswith(REPLY_TO + ".") and len(p.reply_to) > len(REPLY_TO) + 8
    assert p.correlation_id == "c-1"
    server.basic_publish("", p.reply_to, b"pong", props(correlation_id="c-1"))
    settle(conn, replies, 1)
    m, rp, body = replies.items[0]
    assert body == b"pong" and rp.correlation_id == "c-1"
    assert m.routing_key == p.reply_to and m.exchange == ""


def test_direct_reply_to_from_another_connection(conn, broker):
    client = conn.channel()
    service = client.queue_declare(uname("service")).method.queue
    replies = Sink()
    client.basic_consume(REPLY_TO, replies, auto_ack=True)
    for i in range(3):
        client.basic_publish("", service, b"q%d" % i, props(reply_to=REPLY_TO))
    other = broker.connect()
    try:
        sch = other.channel()
        names = set()
        for i in range(3):
            _, p, body = get_one(sch, service, auto_ack=True)
            names.add(p.reply_to)
            sch.basic_publish("", p.reply_to, b"a" + body[1:])
        assert len(names) == 1, "one reply address per consuming channel"
    finally:
        other.close()
    settle(conn, replies, 3)
    assert replies.bodies == [b"a0", b"a1", b"a2"]
    client.queue_delete(service)


def test_direct_reply_to_generated_names_differ_per_channel(conn):
    a, b, server = conn.channel(), conn.channel(), conn.channel()
    service = server.queue_declare("", exclusive=True).method.queue
    for ch in (a, b):
        ch.basic_consume(REPLY_TO, Sink(), auto_ack=True)
        ch.basic_publish("", service, b"x", props(reply_to=REPLY_TO))
    r1 = get_one(server, service, auto_ack=True)[1].reply_to
    r2 = get_one(server, service, auto_ack=True)[1].reply_to
    assert r1 != r2


def test_direct_reply_to_consume_needs_no_ack(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(REPLY_TO, Sink(), auto_ack=False)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_direct_reply_to_publish_without_consuming_is_406(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"req", props(reply_to=REPLY_TO))
    e = channel_close_reason(ch)
    assert e.reply_code == 406
    assert e.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_direct_reply_to_second_consumer_on_channel_is_406(conn):
    ch = conn.channel()
    ch.basic_consume(REPLY_TO, Sink(), auto_ack=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(REPLY_TO, Sink(), auto_ack=True)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - reply consumer already set"


def test_direct_reply_to_pseudo_queue_declare_and_get(conn):
    ch = conn.channel()
    ok = ch.queue_declare(REPLY_TO, passive=True).method
    assert ok.queue == REPLY_TO and ok.message_count == 0
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_get(REPLY_TO, auto_ack=True)
    assert e.value.reply_code == 404


def test_direct_reply_to_generated_name_is_declarable_passively(conn):
    client, server = conn.channel(), conn.channel()
    service = server.queue_declare("", exclusive=True).method.queue
    client.basic_consume(REPLY_TO, Sink(), auto_ack=True)
    client.basic_publish("", service, b"x", props(reply_to=REPLY_TO))
    name = get_one(server, service, auto_ack=True)[1].reply_to
    server.queue_declare(name, passive=True)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(REPLY_TO + ".no-such-requester", passive=True)
    assert e.value.reply_code == 404


def test_direct_reply_to_reply_to_a_gone_requester_is_dropped(conn, broker):
    other = broker.connect()
    och = other.channel()
    och.basic_consume(REPLY_TO, Sink(), auto_ack=True)
    ch = conn.channel()
    service = ch.queue_declare("", exclusive=True).method.queue
    och.basic_publish("", service, b"x", props(reply_to=REPLY_TO))
    name = get_one(ch, service, auto_ack=True)[1].reply_to
    other.close()
    ch.basic_publish("", name, b"too late")
    ch.basic_publish("", REPLY_TO + ".garbage", b"nobody")
    drain(conn, 0.2)
    assert ch.is_open


# ------------------------------------------------------------ CC / BCC

@pytest.fixture
def four(ch):
    """A direct exchange with queues bound as a, b, c, d."""
    ch.confirm_delivery()
    x = uname("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    qs = {}
    for k in "abcd":
        qs[k] = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(qs[k], x, k)
    return x, qs


def test_cc_and_bcc_route_to_more_keys_and_bcc_is_removed(ch, four):
    x, qs = four
    ch.basic_publish(x, "a", b"m", props(headers={"CC": ["b"], "BCC": ["c"], "other": 1}))
    for k in "abc":
        m, p, body = get_one(ch, qs[k], auto_ack=True)
        assert body == b"m"
        assert m.routing_key == "a", "the delivered routing key is the published one"
        assert p.headers == {"CC": ["b"], "other": 1}, "BCC must not reach the consumer"
    assert count(ch, qs["d"]) == 0


def test_cc_with_the_default_exchange(ch):
    ch.confirm_delivery()
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q1, b"both", props(headers={"CC": [q2]}))
    assert get_one(ch, q1)[2] == b"both"
    assert get_one(ch, q2)[2] == b"both"


def test_cc_and_bcc_deliver_one_copy_per_queue(ch, four):
    x, qs = four
    ch.basic_publish(x, "a", b"m", props(headers={"CC": ["a", "b"], "BCC": ["b"]}))
    assert [count(ch, qs[k]) for k in "abcd"] == [1, 1, 0, 0]


def test_cc_with_a_topic_exchange_matches_patterns(ch):
    ch.confirm_delivery()
    x = uname("t")
    ch.exchange_declare(x, "topic", auto_delete=True)
    eu = ch.queue_declare("", exclusive=True).method.queue
    us = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(eu, x, "eu.*")
    ch.queue_bind(us, x, "us.#")
    ch.basic_publish(x, "eu.de", b"m", props(headers={"BCC": ["us.ny.nyc"]}))
    assert get_one(ch, eu)[1].headers == {}
    assert get_one(ch, us)[2] == b"m"


def test_cc_headers_are_case_sensitive(ch, four):
    x, qs = four
    ch.basic_publish(x, "a", b"m", props(headers={"cc": ["b"], "bcc": ["c"]}))
    assert [count(ch, qs[k]) for k in "abcd"] == [1, 0, 0, 0]
    assert get_one(ch, qs["a"])[1].headers == {"cc": ["b"], "bcc": ["c"]}


def test_cc_must_be_an_array(conn):
    ch = conn.channel()
    ch.basic_publish("amq.direct", "a", b"m", props(headers={"CC": "b"}))
    e = channel_close_reason(ch)
    assert e.reply_code == 406
    assert e.reply_text == ('PRECONDITION_FAILED - invalid message: '
                            '{unacceptable_type_in_header,"CC",longstr}')


# ------------------------------------------------------------ x-queue-type

def test_queue_type_classic_is_accepted(ch):
    q = uname("classic")
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "classic"})
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "classic"})
    ch.queue_delete(q)


@coney_only("RabbitMQ accepts quorum and stream queues; Coney refuses them")
@pytest.mark.parametrize("qtype", ["quorum", "stream"])
def test_queue_type_quorum_and_stream_are_refused(conn, qtype):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(uname(qtype), durable=True, arguments={"x-queue-type": qtype})
    assert e.value.reply_code == 406
    assert qtype in e.value.reply_text


# ------------------------------------------------------------ delayed messages

def delayed(ch, durable=False, kind="direct"):
    x = uname("delayed")
    ch.exchange_declare(x, "x-delayed-message", durable=durable, auto_delete=not durable,
                        arguments={"x-delayed-type": kind})
    return x


def delay(ms, **kw):
    return props(headers={"x-delay": ms}, **kw)


@coney_only("the x-delayed-message exchange is a RabbitMQ plugin Debian does not ship")
def test_delayed_message_is_routed_after_its_delay(ch):
    x = delayed(ch)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"later", delay(400))
    ch.basic_publish(x, "other", b"unrouted", delay(50))
    time.sleep(0.2)
    assert count(ch, q) == 0
    m, p, body = get_one(ch, q)
    assert body == b"later" and time.monotonic() - t0 >= 0.38
    assert p.headers["x-delay"] == 400
    assert count(ch, q) == 0


@coney_only("the x-delayed-message exchange is a RabbitMQ plugin")
def test_delayed_messages_come_out_in_delay_order(conn, ch):
    x = delayed(ch, kind="fanout")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x)
    sink = Sink()
    ch.basic_consume(q, sink, auto_ack=True)
    for ms, body in ((450, b"third"), (150, b"first"), (300, b"second")):
        ch.basic_publish(x, "", body, delay(ms))
    ch.basic_publish(x, "", b"now")
    settle(conn, sink, 4, 0.1)
    assert sink.bodies == [b"now", b"first", b"second", b"third"]


@coney_only("the x-delayed-message exchange is a RabbitMQ plugin")
def test_delayed_message_without_or_with_negative_delay_is_routed_at_once(ch):
    x = delayed(ch, kind="topic")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a.#")
    ch.basic_publish(x, "a.b", b"plain")
    ch.basic_publish(x, "a.c", b"negative", delay(-100))
    got = [get_one(ch, q, auto_ack=True)[2] for _ in range(2)]
    assert got == [b"plain", b"negative"]


@coney_only("the x-delayed-message exchange is a RabbitMQ plugin")
def test_delayed_exchange_needs_a_valid_delayed_type(conn):
    for args in ({}, {"x-delayed-type": "no-such-type"}):
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.exchange_declare(uname("delayed"), "x-delayed-message", auto_delete=True,
                                arguments=args)
        assert e.value.reply_code == 406, (args, e.value)


@coney_only("restarts the broker process; the delayed exchange is a RabbitMQ plugin")
def test_delayed_message_survives_restart(fresh_broker):
    b = fresh_broker
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    x = delayed(ch, durable=True)
    q = uname("delayed-q")
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, x, "k")
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"persistent", delay(1500, delivery_mode=2))
    conn.close()
    coney_util.restart_broker(b, signal.SIGTERM)
    conn = b.connect()
    ch = conn.channel()
    if time.monotonic() - t0 < 1.3:
        assert count(ch, q) == 0, "delivered before its delay"
    m, p, body = get_one(ch, q, timeout=TIMEOUT)
    assert body == b"persistent" and p.delivery_mode == 2
    assert time.monotonic() - t0 >= 1.45
    conn.close()
