"""Durable state across a clean restart: SIGTERM, then the same binary on the
same data dir and port. What survives is what RabbitMQ keeps: durable
exchanges, durable queues, the bindings between durable things, and
persistent messages (delivery_mode 2) on durable queues, with their
properties, order and delivered state. Transient exchanges and queues, and
transient messages, are gone.

Each test starts its own broker (skipped with CONEY_TEST_TARGET)."""

import datetime
import decimal
import signal
import time

import pika
import pika.exceptions
import pytest

import coney_util
from coney_util import SLOW, BulkChannel, channel_close_reason, uname

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


@pytest.fixture
def b(fresh_broker):
    return fresh_broker


def restart(b):
    """Clean restart on the same data dir and port; returns the seconds
    until the port accepted again."""
    return coney_util.restart_broker(b, signal.SIGTERM)


def close(conn):
    if conn.is_open:
        conn.close()


def get_all(ch, queue, ack=True):
    """Every message basic.get returns until get-empty, as (method,
    properties, body); acked unless ack=False."""
    out = []
    while True:
        m, p, body = ch.basic_get(queue, auto_ack=False)
        if m is None:
            return out
        out.append((m, p, body))
        if ack:
            ch.basic_ack(m.delivery_tag)
        assert len(out) < 100000, "queue %s does not run dry" % queue


def bodies(ch, queue, ack=True):
    return [body for _, _, body in get_all(ch, queue, ack)]


def exchange_declare_fails(conn, code, name, exchange_type, **kw):
    """exchange.declare on a throwaway channel; the broker must close that
    channel with `code`."""
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(name, exchange_type, **kw)
    assert e.value.reply_code == code, e.value


def queue_declare_fails(conn, code, name, **kw):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(name, **kw)
    assert e.value.reply_code == code, e.value


def passive_exchange_exists(conn, name):
    ch = conn.channel()
    try:
        ch.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    ch.close()
    return True


# ------------------------------------------------------------ topology

def test_durable_exchanges_survive_restart_with_type_flags_and_arguments(b):
    x = {t: uname("x-" + t) for t in ("direct", "fanout", "topic", "headers")}
    ae, q_ae = uname("x-ae"), uname("q-ae")
    internal, transient = uname("x-internal"), uname("x-transient")
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(ae, "fanout", durable=True)
    ch.queue_declare(q_ae, durable=True)
    ch.queue_bind(q_ae, ae)
    for t, name in x.items():
        ch.exchange_declare(name, t, durable=True, arguments={"alternate-exchange": ae})
    ch.exchange_declare(internal, "topic", durable=True, internal=True)
    ch.exchange_declare(transient, "direct", durable=False)
    close(conn)

    restart(b)

    conn = b.connect()
    for name in list(x.values()) + [ae, internal]:
        assert passive_exchange_exists(conn, name), "durable exchange %s lost" % name
    assert not passive_exchange_exists(conn, transient), "transient exchange survived"

    ch = conn.channel()
    for t, name in x.items():  # the same declaration is still equivalent
        ch.exchange_declare(name, t, durable=True, arguments={"alternate-exchange": ae})
    ch.exchange_declare(internal, "topic", durable=True, internal=True)
    # ... and a different one is not: type, durable flag and arguments were kept
    exchange_declare_fails(conn, 406, x["topic"], "direct", durable=True,
                           arguments={"alternate-exchange": ae})
    exchange_declare_fails(conn, 406, x["direct"], "direct", durable=False,
                           arguments={"alternate-exchange": ae})
    exchange_declare_fails(conn, 406, x["fanout"], "fanout", durable=True,
                           arguments={"alternate-exchange": uname("other-ae")})
    exchange_declare_fails(conn, 406, internal, "topic", durable=True, internal=False)

    # the alternate-exchange argument still acts: unroutable -> q_ae
    ch.confirm_delivery()
    ch.basic_publish(x["direct"], "no-binding", b"to-the-ae", TRANSIENT)
    assert bodies(ch, q_ae) == [b"to-the-ae"]

    # and the internal flag still refuses publishes
    ch2 = conn.channel()
    ch2.basic_publish(internal, "k", b"nope")
    assert channel_close_reason(ch2).reply_code == 403
    close(conn)


def test_durable_queues_survive_restart_with_arguments_and_transient_ones_do_not(b):
    durable, plain, transient = uname("q-durable"), uname("q-plain"), uname("q-transient")
    args = {"x-message-ttl": 3600000, "x-max-length": 1000}
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(durable, durable=True, arguments=args)
    ch.queue_declare(plain, durable=True)
    ch.queue_declare(transient, durable=False)
    close(conn)

    restart(b)

    conn = b.connect()
    assert coney_util.queue_exists(conn, durable)
    assert coney_util.queue_exists(conn, plain)
    assert not coney_util.queue_exists(conn, transient), "transient queue survived"
    ch = conn.channel()
    ok = ch.queue_declare(durable, durable=True, arguments=args)
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == (durable, 0, 0)
    # durable flag and arguments were kept: different ones are inequivalent
    queue_declare_fails(conn, 406, durable, durable=False, arguments=args)
    queue_declare_fails(conn, 406, durable, durable=True,
                        arguments={"x-message-ttl": 60000, "x-max-length": 1000})
    queue_declare_fails(conn, 406, plain, durable=True, arguments={"x-max-length": 5})
    close(conn)


def test_bindings_between_durable_exchanges_and_queues_survive_restart(b):
    X = {k: uname("x-" + k) for k in ("direct", "topic", "headers", "src", "dst", "transient")}
    Q = {k: uname("q-" + k) for k in ("direct", "topic", "all", "any", "e2e", "amq", "transient")}
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(X["direct"], "direct", durable=True)
    ch.exchange_declare(X["topic"], "topic", durable=True)
    ch.exchange_declare(X["headers"], "headers", durable=True)
    ch.exchange_declare(X["src"], "topic", durable=True)
    ch.exchange_declare(X["dst"], "headers", durable=True)
    ch.exchange_declare(X["transient"], "fanout", durable=False)
    for k, q in Q.items():
        ch.queue_declare(q, durable=(k != "transient"))
    ch.queue_bind(Q["direct"], X["direct"], "k1")
    ch.queue_bind(Q["transient"], X["direct"], "k1")
    ch.queue_bind(Q["direct"], X["transient"])
    ch.queue_bind(Q["topic"], X["topic"], "a.*.c")
    ch.queue_bind(Q["topic"], X["topic"], "#.z")
    ch.queue_bind(Q["all"], X["headers"], arguments={"x-match": "all", "color": "red", "size": 1})
    ch.queue_bind(Q["any"], X["headers"],
                  arguments={"x-match": "any", "color": "blue", "shape": "round"})
    # exchange to exchange, with arguments on both hops
    ch.exchange_bind(X["dst"], X["src"], "e2e.#")
    ch.queue_bind(Q["e2e"], X["dst"], arguments={"x-match": "all", "tier": "gold"})
    ch.queue_bind(Q["amq"], "amq.direct", "amq-key")
    close(conn)

    restart(b)

    conn = b.connect()
    assert not coney_util.queue_exists(conn, Q["transient"])
    assert not passive_exchange_exists(conn, X["transient"])
    ch = conn.channel()
    ch.confirm_delivery()

    def pub(exchange, key, body, headers=None):
        ch.basic_publish(exchange, key, body, pika.BasicProperties(headers=headers))

    pub(X["direct"], "k1", b"d1")
    pub(X["direct"], "k2", b"d-none")
    pub(X["topic"], "a.b.c", b"t1")
    pub(X["topic"], "x.y.z", b"t2")
    pub(X["topic"], "a.b", b"t-none")
    pub(X["headers"], "", b"h-all", {"color": "red", "size": 1})
    pub(X["headers"], "", b"h-none", {"color": "red"})
    pub(X["headers"], "", b"h-any", {"color": "blue"})
    pub(X["headers"], "", b"h-both", {"color": "red", "size": 1, "shape": "round"})
    pub(X["src"], "e2e.one", b"e-gold", {"tier": "gold"})
    pub(X["src"], "e2e.two", b"e-silver", {"tier": "silver"})
    pub(X["src"], "other", b"e-none", {"tier": "gold"})
    pub("amq.direct", "amq-key", b"amq")

    assert bodies(ch, Q["direct"]) == [b"d1"]
    assert bodies(ch, Q["topic"]) == [b"t1", b"t2"]
    assert bodies(ch, Q["all"]) == [b"h-all", b"h-both"]
    assert bodies(ch, Q["any"]) == [b"h-any", b"h-both"]
    assert bodies(ch, Q["e2e"]) == [b"e-gold"]
    assert bodies(ch, Q["amq"]) == [b"amq"]
    close(conn)


def test_predeclared_exchanges_exist_once_and_route_after_several_restarts(b):
    names = {"amq.direct": "direct", "amq.fanout": "fanout", "amq.topic": "topic",
             "amq.headers": "headers", "amq.match": "headers"}
    q = uname("q-amq-fanout")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, "amq.fanout")
    close(conn)

    for round_ in range(3):
        restart(b)
        conn = b.connect()
        for name, t in names.items():
            assert passive_exchange_exists(conn, name), "%s missing after restart %d" % (
                name, round_ + 1)
        ch = conn.channel()
        for name, t in names.items():
            ch.exchange_declare(name, t, durable=True)  # its own type: fine
        exchange_declare_fails(conn, 406, "amq.direct", "topic", durable=True)
        ch.confirm_delivery()
        # one binding, one exchange: exactly one copy arrives
        ch.basic_publish("amq.fanout", "", b"fan-%d" % round_)
        assert bodies(ch, q) == [b"fan-%d" % round_]
        # the default exchange still routes by queue name
        ch.basic_publish("", q, b"default-%d" % round_)
        assert bodies(ch, q) == [b"default-%d" % round_]
        close(conn)


# ------------------------------------------------------------ messages

def _props_variants():
    headers = {
        "str": "text \u00fc", "int": 42, "negative": -7, "long": 2 ** 40, "true": True,
        "false": False, "bytes": b"\x00\xff\x01", "decimal": decimal.Decimal("3.14"),
        "time": datetime.datetime(2021, 6, 1, 12, 30, 45), "table": {"a": 1, "b": "two"},
        "array": [1, "x", False], "void": None,
    }
    full = pika.BasicProperties(
        content_type="application/json", content_encoding="identity", headers=headers,
        delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="reply-queue",
        expiration="3600000", message_id="msg-1", timestamp=1622550645, type="order.created",
        user_id="guest", app_id="coney-tests")
    return [
        (full, b'{"order": 1}'),
        (pika.BasicProperties(delivery_mode=2), b""),
        (pika.BasicProperties(delivery_mode=2, content_type="application/octet-stream",
                              message_id="big"),
         bytes(range(256)) * 4096),  # 1 MiB, spans many frames
        (pika.BasicProperties(delivery_mode=2, headers={"only": "headers"}), b"last"),
    ]


PROPERTY_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                  "type", "user_id", "app_id", "cluster_id")


def test_persistent_messages_survive_restart_in_order_with_properties_and_bodies(b):
    q = uname("q-props")
    sent = _props_variants()
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for props, body in sent:
        ch.basic_publish("", q, body, props)
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    got = get_all(ch, q)
    assert len(got) == len(sent), "%d of %d messages came back" % (len(got), len(sent))
    for i, ((props, body), (m, p, gbody)) in enumerate(zip(sent, got)):
        assert gbody == body, "message %d: body of %d bytes differs (got %d bytes)" % (
            i, len(body), len(gbody))
        for name in PROPERTY_NAMES:
            assert getattr(p, name) == getattr(props, name), "message %d: %s %r != %r" % (
                i, name, getattr(p, name), getattr(props, name))
        assert (m.exchange, m.routing_key, m.redelivered) == ("", q, False)
    close(conn)


def test_transient_messages_on_a_durable_queue_are_gone_after_restart(b):
    q = uname("q-mixed")
    modes = [2, 1, None, 2, 1, 2, None, 2]
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i, mode in enumerate(modes):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=mode))
    assert coney_util.message_count(conn, q) == len(modes)
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    assert bodies(ch, q) == [b"m%d" % i for i, mode in enumerate(modes) if mode == 2]
    close(conn)


def test_queue_holding_recovered_messages_takes_new_ones_after_them(b):
    # the only queue on this broker: new messages must not collide with the
    # positions of the recovered ones, whatever counter numbers them
    x, q = uname("x-after"), uname("q-after")
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(x, "direct", durable=True)
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, x, "k")
    ch.confirm_delivery()
    ch.basic_publish(x, "k", b"p0", PERSISTENT)
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(x, "k", b"t1", TRANSIENT)
    ch.basic_publish("", q, b"t2", pika.BasicProperties())
    assert [ch.basic_get(q, auto_ack=True)[2] for _ in range(4)] == [b"p0", b"t1", b"t2", None]
    ch.basic_publish(x, "k", b"p-new", PERSISTENT)
    ch.basic_publish(x, "k", b"t3", TRANSIENT)
    ch.basic_publish("", q, b"p-last", PERSISTENT)
    assert bodies(ch, q, ack=False) == [b"p-new", b"t3", b"p-last"]
    close(conn)  # the three go back to the queue, delivered once

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    got = [(body, m.redelivered) for m, p, body in get_all(ch, q)]
    assert got == [(b"p-new", True), (b"p-last", True)]
    close(conn)


def test_persistent_messages_on_a_transient_queue_are_gone_with_the_queue(b):
    q = uname("q-transient")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=False)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"p%d" % i, PERSISTENT)
    close(conn)

    restart(b)

    conn = b.connect()
    assert not coney_util.queue_exists(conn, q)
    close(conn)


def test_fanned_out_message_stays_in_each_durable_queue_until_acked_there(b):
    x = uname("x-fan")
    qs = [uname("q-fan%d" % i) for i in range(3)]
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(x, "fanout", durable=True)
    for q in qs:
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x)
    ch.confirm_delivery()
    ch.basic_publish(x, "", b"fanned", PERSISTENT)
    close(conn)

    restart(b)
    conn = b.connect()
    assert [coney_util.message_count(conn, q) for q in qs] == [1, 1, 1]
    ch = conn.channel()
    for q in qs[:2]:
        m, p, body = ch.basic_get(q)
        assert body == b"fanned"
        ch.basic_ack(m.delivery_tag)
    close(conn)

    restart(b)
    conn = b.connect()
    assert [coney_util.message_count(conn, q) for q in qs] == [0, 0, 1]
    ch = conn.channel()
    m, p, body = ch.basic_get(qs[2])
    assert (body, p.delivery_mode) == (b"fanned", 2)
    ch.basic_ack(m.delivery_tag)
    close(conn)

    restart(b)
    conn = b.connect()
    assert [coney_util.message_count(conn, q) for q in qs] == [0, 0, 0]
    close(conn)


def test_unacked_deliveries_come_back_redelivered_and_undelivered_ones_do_not(b):
    q_get, q_consume = uname("q-get"), uname("q-consume")
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for q in (q_get, q_consume):
        ch.queue_declare(q, durable=True)
        for i in range(6):
            ch.basic_publish("", q, b"m%d" % i, PERSISTENT)
    # three taken by basic.get, three by a consumer; none acked
    for i in range(3):
        m, p, body = ch.basic_get(q_get)
        assert (body, m.redelivered) == (b"m%d" % i, False)
    ch2 = conn.channel()
    ch2.basic_qos(prefetch_count=3)
    got = []
    ch2.basic_consume(q_consume, lambda c, m, p, body: got.append(body))
    coney_util.pump_until(conn, lambda: len(got) == 3, what="3 deliveries")
    assert got == [b"m0", b"m1", b"m2"]

    restart(b)  # the connection is still open: the broker closes it

    conn = b.connect()
    ch = conn.channel()
    for q in (q_get, q_consume):
        got = [(body, m.redelivered) for m, p, body in get_all(ch, q)]
        assert got == [(b"m0", True), (b"m1", True), (b"m2", True),
                       (b"m3", False), (b"m4", False), (b"m5", False)], q
    close(conn)


def test_purge_removes_messages_from_disk(b):
    q = uname("q-purge")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"old%d" % i, PERSISTENT)
    assert ch.queue_purge(q).method.message_count == 5
    close(conn)

    restart(b)
    conn = b.connect()
    assert coney_util.message_count(conn, q) == 0
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"new0", PERSISTENT)
    ch.basic_publish("", q, b"new1", PERSISTENT)
    close(conn)

    restart(b)
    conn = b.connect()
    ch = conn.channel()
    assert bodies(ch, q) == [b"new0", b"new1"]
    close(conn)


def test_delete_removes_the_queue_and_its_messages_from_disk(b):
    gone, reused = uname("q-deleted"), uname("q-reused")
    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for q in (gone, reused):
        ch.queue_declare(q, durable=True)
        for i in range(5):
            ch.basic_publish("", q, b"old%d" % i, PERSISTENT)
        assert ch.queue_delete(q).method.message_count == 5
    # the same name again: a new, empty queue
    ch.queue_declare(reused, durable=True)
    ch.basic_publish("", reused, b"new", PERSISTENT)
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(gone, passive=True)
    assert e.value.reply_code == 404
    ch = conn.channel()
    assert bodies(ch, reused) == [b"new"]
    close(conn)


def test_requeued_messages_keep_their_position_across_restart(b):
    q = uname("q-requeue")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(1, 6):
        ch.basic_publish("", q, b"m%d" % i, PERSISTENT)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]  # m1 m2 m3
    ch.basic_nack(tags[1], requeue=True)                        # m2 back in place
    ch.basic_ack(tags[0])                                       # m1 done
    # m3 stays unacked until the broker shuts down
    assert coney_util.message_count(conn, q) == 3               # m2 m4 m5

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    got = [(body, m.redelivered) for m, p, body in get_all(ch, q)]
    assert got == [(b"m2", True), (b"m3", True), (b"m4", False), (b"m5", False)]
    close(conn)


def test_message_count_right_after_restart_counts_persistent_messages(b):
    q = uname("q-count")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(12):
        ch.basic_publish("", q, b"m%d" % i, PERSISTENT if i % 3 else TRANSIENT)
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.message_count == 8  # i % 3 != 0 for 8 of 0..11
    close(conn)


def test_confirmed_persistent_messages_are_all_there_after_restart(b):
    q = uname("q-confirmed")
    n = 500
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", q, b"c%05d" % i, PERSISTENT, mandatory=True)  # raises on nack
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    assert bodies(ch, q) == [b"c%05d" % i for i in range(n)]
    close(conn)


def test_committed_transactions_survive_restart_and_rolled_back_ones_do_not(b):
    q = uname("q-tx")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.tx_select()
    for body in (b"c1", b"c2", b"c3"):
        ch.basic_publish("", q, body, PERSISTENT)
    ch.tx_commit()
    for body in (b"r1", b"r2"):
        ch.basic_publish("", q, body, PERSISTENT)
    ch.tx_rollback()
    ch.basic_publish("", q, b"c4", PERSISTENT)
    ch.tx_commit()
    ch.basic_publish("", q, b"uncommitted", PERSISTENT)  # never committed
    close(conn)

    restart(b)

    conn = b.connect()
    ch = conn.channel()
    assert bodies(ch, q) == [b"c1", b"c2", b"c3", b"c4"]
    close(conn)


@pytest.mark.timeout(180)
def test_ten_thousand_durable_queues_survive_restart(b, capsys):
    n, every = 10000, 50  # every 50th queue also holds 3 persistent messages
    prefix = uname("many") + "."
    names = ["%s%05d" % (prefix, i) for i in range(n)]
    bulk = BulkChannel(b, timeout=30 * SLOW)
    R = bulk.R
    t0 = time.monotonic()
    bulk.send(b"".join(R.method_frame(1, "queue.declare", queue=q, durable=True, nowait=True)
                       for q in names))
    bulk.rpc("queue.declare", "queue.declare-ok", queue=names[-1], passive=True)
    declared = time.monotonic() - t0
    bulk.confirm_select()
    bulk.send(b"".join(bulk.publish_bytes("", names[i], b"%s/%d" % (names[i].encode(), k),
                                          props=b"\x02", flags=0x1000)
                       for i in range(0, n, every) for k in range(3)))
    bulk.wait_confirms(timeout=30 * SLOW)
    assert bulk.confirm[1:] == b"\x01" * bulk.published, "a publish was nacked"
    bulk.close()

    startup = restart(b)
    t1 = time.monotonic()
    bulk = BulkChannel(b, timeout=60 * SLOW)
    # every queue, passively, in one pipelined round trip; a missing one
    # closes the channel with 404 and the next expect says so
    bulk.send(b"".join(R.method_frame(1, "queue.declare", queue=q, passive=True)
                       for q in names))
    for i, q in enumerate(names):
        ok = bulk.expect("queue.declare-ok")
        want = 3 if i % every == 0 else 0
        assert (ok["queue"], ok["message_count"]) == (q, want), "queue %d of %d" % (i, n)
    first_answer = time.monotonic() - t1
    for k in range(3):  # and the messages are the right ones
        bulk.send(R.method_frame(1, "basic.get", queue=names[0], no_ack=True))
        bulk.expect("basic.get-ok")
        _, _, header = bulk.frame()
        _, _, body = bulk.frame()
        assert body == b"%s/%d" % (names[0].encode(), k)
    bulk.close()
    with capsys.disabled():
        print("\n  10,000 durable queues: declared in %.2fs; after restart the port accepted "
              "in %.2fs and all %d passive declares answered in %.2fs"
              % (declared, startup, n, first_answer))
