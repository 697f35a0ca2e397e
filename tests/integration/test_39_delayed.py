"""Delayed messages: the x-delayed-message exchange type of RabbitMQ's
rabbitmq_delayed_message_exchange plugin (docs/extensions.md).

An exchange declared with type x-delayed-message routes by the type its
x-delayed-type argument names; a message with a positive integer x-delay
header waits that many milliseconds first. Debian ships no RabbitMQ with
the plugin, so every test here is coney_only."""

import signal
import time

import pika
import pika.exceptions
import pytest

import coney_util
from coney_util import SLOW, TIMEOUT, get_one, uname
from ext_util import TARGET, Sink, count, http_api, props, settle
from http_client import q as quote

WHY = "the x-delayed-message exchange is a RabbitMQ plugin Debian does not ship"
pytestmark = [pytest.mark.skipif(bool(TARGET), reason="coney-only: " + WHY),
              pytest.mark.coney_only(WHY)]

DAY_MS = 24 * 3600 * 1000


def declare(ch, kind="direct", durable=False, name=None):
    x = name or uname("delayed")
    ch.exchange_declare(x, "x-delayed-message", durable=durable, auto_delete=False,
                        arguments={"x-delayed-type": kind})
    return x


def delay(ms, **kw):
    return props(headers={"x-delay": ms}, **kw)


def bound_queue(ch, x, key="k", arguments=None, durable=False):
    if durable:
        q = uname("delayed-q")
        ch.queue_declare(q, durable=True)
    else:
        q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, key, arguments=arguments)
    return q


def exchange_info(broker, x):
    return http_api(broker).ok("GET", "/api/exchanges/%2F/" + quote(x))


# ------------------------------------------------------------ declaring

@pytest.mark.parametrize("args", [{}, {"x-delayed-type": "no-such-type"},
                                  {"x-delayed-type": "x-delayed-message"},
                                  {"x-delayed-type": 1}])
def test_declare_needs_an_existing_delayed_type(conn, args):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(uname("delayed"), "x-delayed-message", arguments=args)
    assert e.value.reply_code == 406
    assert e.value.reply_text == ("PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' "
                                  "must be an existing exchange type")


def test_redeclare_must_be_equivalent(conn):
    ch = conn.channel()
    x = declare(ch, "topic")
    declare(ch, "topic", name=x)               # the same: fine
    ch.exchange_declare(x, passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        declare(ch, "fanout", name=x)
    assert e.value.reply_code == 406
    assert "inequivalent arg 'x-delayed-type'" in e.value.reply_text
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(x, "topic")
    assert e.value.reply_code == 406
    assert ("inequivalent arg 'type' for exchange '%s' in vhost '/': received 'topic' "
            "but current is 'x-delayed-message'" % x) in e.value.reply_text
    conn.channel().exchange_delete(x)


def test_http_api_lists_and_declares_delayed_exchanges(broker, ch):
    api = http_api(broker)
    x = declare(ch, "headers")
    info = exchange_info(broker, x)
    assert info["type"] == "x-delayed-message"
    assert info["arguments"] == {"x-delayed-type": "headers"}
    assert info["messages_delayed"] == 0
    y = uname("delayed-http")
    path = "/api/exchanges/%2F/" + quote(y)
    r = api.put(path, {"type": "x-delayed-message", "durable": False})
    assert r.status == 400 and "x-delayed-type" in r.json["reason"], r
    api.ok("PUT", path, {"type": "x-delayed-message", "durable": False,
                         "arguments": {"x-delayed-type": "fanout"}}, status=201)
    assert api.ok("GET", path)["type"] == "x-delayed-message"
    # it works like one declared over AMQP
    q = bound_queue(ch, y, "")
    ch.basic_publish(y, "any", b"via-http-declared", delay(100))
    assert get_one(ch, q, auto_ack=True)[2] == b"via-http-declared"
    api.ok("DELETE", path)
    ch.exchange_delete(x)


# ------------------------------------------------------------ holding and releasing

def test_messages_come_out_in_deadline_order_and_never_early(conn, ch):
    x = declare(ch, "direct")
    q = bound_queue(ch, x)
    arrived = []
    sink = Sink()

    def on_message(c, m, p, body):
        arrived.append((body, time.monotonic()))
        sink(c, m, p, body)
    ch.basic_consume(q, on_message, auto_ack=True)
    t0 = time.monotonic()
    for ms in (600, 200, 400):
        ch.basic_publish(x, "k", str(ms).encode(), delay(ms))
    settle(conn, sink, 3)
    assert [b for b, _ in arrived] == [b"200", b"400", b"600"]
    for body, t in arrived:
        assert t - t0 >= int(body) / 1000.0 - 0.01, "%s came after %.3fs" % (body, t - t0)


@pytest.mark.parametrize("headers", [None, {"x-delay": 0}, {"x-delay": -500},
                                     {"x-delay": "1000"}, {"other": 1}])
def test_without_a_positive_integer_delay_routes_at_once(ch, headers):
    x = declare(ch, "direct")
    q = bound_queue(ch, x)
    ch.basic_publish(x, "k", b"now", props(headers=headers))
    assert count(ch, q) == 1
    assert get_one(ch, q, auto_ack=True)[2] == b"now"


@pytest.mark.parametrize("kind,key,bind_key,bind_args,headers", [
    ("direct", "a", "a", None, {}),
    ("fanout", "anything", "", None, {}),
    ("topic", "a.b.c", "a.#", None, {}),
    ("headers", "", "", {"x-match": "all", "colour": "red"}, {"colour": "red"}),
])
def test_routes_by_the_delayed_type(ch, kind, key, bind_key, bind_args, headers):
    x = declare(ch, kind)
    q = bound_queue(ch, x, bind_key, arguments=bind_args)
    other = bound_queue(ch, x, "nothing.matches",
                        arguments={"x-match": "all", "colour": "blue"} if kind == "headers"
                        else None) if kind != "fanout" else None
    h = dict(headers, **{"x-delay": 150})
    ch.basic_publish(x, key, b"held", props(headers=h))
    assert count(ch, q) == 0
    m, p, body = get_one(ch, q, auto_ack=True)
    assert body == b"held" and m.exchange == x and m.routing_key == key
    assert p.headers["x-delay"] == 150
    if other:
        assert count(ch, other) == 0
    if kind == "topic":
        # and a key that does not match the pattern goes nowhere
        ch.basic_publish(x, "b.a", b"unmatched", delay(50))
        time.sleep(0.3 * SLOW)
        assert count(ch, q) == 0


def test_routing_uses_the_bindings_at_release(conn, ch):
    x = declare(ch, "direct")
    early = bound_queue(ch, x, "k")
    ch.basic_publish(x, "k", b"m", delay(400))
    ch.queue_unbind(early, x, "k")
    late = bound_queue(ch, x, "k")
    assert get_one(ch, late, auto_ack=True)[2] == b"m"
    assert count(ch, early) == 0


def test_held_messages_are_counted_and_go_with_the_exchange(broker, conn, ch):
    x = declare(ch, "fanout")
    q = bound_queue(ch, x, "")
    ch.confirm_delivery()          # so all three are held before we look
    for _ in range(3):
        ch.basic_publish(x, "", b"m", delay(int(1000 * SLOW)))
    assert exchange_info(broker, x)["messages_delayed"] == 3
    ch.exchange_delete(x)
    time.sleep(1.3 * SLOW)
    assert count(ch, q) == 0


# ------------------------------------------------------------ publishing

def test_confirms_come_when_held_not_when_released(ch):
    ch.confirm_delivery()
    x = declare(ch, "direct", durable=True)
    q = bound_queue(ch, x)
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"transient", delay(1500))
    ch.basic_publish(x, "k", b"persistent", delay(1500, delivery_mode=2))
    assert time.monotonic() - t0 < 1.0 * SLOW, "the confirms waited for the release"
    assert count(ch, q) == 0
    got = sorted(get_one(ch, q, auto_ack=True)[2] for _ in range(2))
    assert got == [b"persistent", b"transient"]
    ch.exchange_delete(x)


def test_a_held_mandatory_message_is_not_returned(conn, ch):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    x = declare(ch, "direct")
    ch.basic_publish(x, "unbound", b"held", delay(100), mandatory=True)
    # held: no basic.return, now or when it turns out to be unroutable
    coney_util.drain(conn, 0.4 * SLOW)
    assert returned == []
    # not held: an unroutable mandatory message is returned as usual
    ch.basic_publish(x, "unbound", b"now", mandatory=True)
    coney_util.pump_until(conn, lambda: returned, what="basic.return")
    assert returned[0][3] == b"now"


def test_a_delay_beyond_49_days_is_held(broker, ch):
    x = declare(ch, "direct")
    q = bound_queue(ch, x)
    ch.basic_publish(x, "k", b"much-later", delay(50 * DAY_MS))       # > 2^32 ms
    ch.basic_publish(x, "k", b"sooner", delay(200))
    assert get_one(ch, q, auto_ack=True)[2] == b"sooner"
    time.sleep(0.2)
    assert count(ch, q) == 0
    assert exchange_info(broker, x)["messages_delayed"] == 1
    ch.exchange_delete(x)


def test_the_store_queue_is_hidden(broker, conn, ch):
    x = declare(ch, "direct", durable=True)
    bound_queue(ch, x)
    ch.basic_publish(x, "k", b"m", delay(60000, delivery_mode=2))
    names = [q["name"] for q in http_api(broker).ok("GET", "/api/queues")]
    assert not [n for n in names if n.startswith("amq.delayed.")], names
    assert not coney_util.queue_exists(conn, "amq.delayed." + x)
    ch.exchange_delete(x)


# ------------------------------------------------------------ restarts

def test_a_persistent_held_message_survives_a_restart(fresh_broker):
    b = fresh_broker
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    x = declare(ch, "direct", durable=True)
    q = bound_queue(ch, x, durable=True)
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"persistent", delay(1500, delivery_mode=2))
    conn.close()
    coney_util.restart_broker(b, signal.SIGTERM)
    conn = b.connect()
    ch = conn.channel()
    if time.monotonic() - t0 < 1.3:
        assert count(ch, q) == 0, "released before its time"
    m, p, body = get_one(ch, q, auto_ack=True, timeout=TIMEOUT)
    assert time.monotonic() - t0 >= 1.49
    assert body == b"persistent" and p.delivery_mode == 2 and p.headers["x-delay"] == 1500
    time.sleep(0.5)
    assert count(ch, q) == 0, "released twice"
    conn.close()
    # released and consumed: nothing comes back after another restart
    coney_util.restart_broker(b, signal.SIGTERM)
    conn = b.connect()
    ch = conn.channel()
    time.sleep(0.3)
    assert count(ch, q) == 0
    conn.close()


def test_a_held_message_past_due_at_start_goes_at_once_and_transient_ones_are_lost(
        fresh_broker):
    b = fresh_broker
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    x = declare(ch, "fanout", durable=True)
    q = bound_queue(ch, x, "", durable=True)
    ch.basic_publish(x, "", b"persistent", delay(300, delivery_mode=2))
    ch.basic_publish(x, "", b"transient", delay(300))
    conn.close()
    coney_util.kill_broker(b)                  # kill -9: the confirm meant it was written
    time.sleep(0.6)
    coney_util.start_again(b)
    conn = b.connect()
    ch = conn.channel()
    assert get_one(ch, q, auto_ack=True, timeout=2 * SLOW)[2] == b"persistent"
    time.sleep(0.3)
    assert count(ch, q) == 0
    conn.close()


def test_a_long_delay_is_kept_across_restarts_and_deleting_drops_it(fresh_broker):
    b = fresh_broker
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    x = declare(ch, "direct", durable=True)
    q = bound_queue(ch, x, durable=True)
    ch.basic_publish(x, "k", b"far", delay(60 * DAY_MS, delivery_mode=2))
    conn.close()
    coney_util.restart_broker(b, signal.SIGTERM)
    info = exchange_info(b, x)
    assert info["type"] == "x-delayed-message" and info["messages_delayed"] == 1
    conn = b.connect()
    ch = conn.channel()
    assert count(ch, q) == 0
    ch.exchange_delete(x)
    conn.close()
    coney_util.restart_broker(b, signal.SIGTERM)
    api = http_api(b)
    r = api.get("/api/exchanges/%2F/" + quote(x))
    assert r.status == 404
    names = [e["name"] for e in api.ok("GET", "/api/queues")]
    assert names == [q]
