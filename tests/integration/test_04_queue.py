"""Queue class: declare (server-named, passive, equivalence), exclusive and
auto-delete lifetimes, counts, bind/unbind, purge and delete."""

import pika.exceptions
import pytest

import coney_raw as R
from coney_util import (TIMEOUT, assert_closed_with, get_one, message_count, queue_exists,
                        uname, wait_for)


def test_server_named_queue(ch):
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    assert len(ok.queue) > len("amq.gen-")
    assert ok.message_count == 0 and ok.consumer_count == 0
    other = ch.queue_declare("", exclusive=True).method.queue
    assert other != ok.queue


def test_declare_named_queue_returns_its_name(ch):
    q = uname("q")
    assert ch.queue_declare(q, exclusive=True).method.queue == q


def test_declare_reserved_amq_queue_name_is_access_refused(ch):
    q = "amq.coney-test-" + uname()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q)
    assert_closed_with(ei.value, 403,
                       "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'" % q)


def test_passive_declare_of_missing_queue_is_not_found(ch):
    q = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert_closed_with(ei.value, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)
    assert ei.value.reply_text == "NOT_FOUND - no queue '%s' in vhost '/'" % q


def test_passive_declare_reports_counts(conn, ch):
    q = uname("q")
    ch.queue_declare(q, exclusive=True)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    ch2 = conn.channel()
    ch2.basic_consume(q, lambda *a: None, auto_ack=False)
    ch2.basic_qos(prefetch_count=1)
    ok = wait_for(lambda: (lambda m: m if m.consumer_count == 1 else None)(
        ch.queue_declare(q, passive=True).method), what="consumer_count 1")
    assert ok.queue == q
    assert ok.consumer_count == 1
    # The consumer may hold messages unacked: declare-ok counts ready ones.
    assert ok.message_count <= 3


def test_declare_ok_message_and_consumer_count(ch):
    q = uname("q")
    ch.queue_declare(q, exclusive=True)
    for i in range(5):
        ch.basic_publish("", q, b"x")
    ok = wait_for(lambda: (lambda m: m if m.message_count == 5 else None)(
        ch.queue_declare(q, exclusive=True).method), what="message_count 5")
    assert ok.consumer_count == 0


def test_redeclare_with_different_durable_is_precondition_failed(conn):
    ch = conn.channel()
    q = uname("q")
    ch.queue_declare(q, durable=False, auto_delete=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, durable=True, auto_delete=True)
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in "
                       "vhost '/': received 'true' but current is 'false'" % q)
    conn.channel().queue_delete(q)


def test_redeclare_with_different_auto_delete_is_precondition_failed(conn):
    ch = conn.channel()
    q = uname("q")
    ch.queue_declare(q, auto_delete=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, auto_delete=True)
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s'" % q)
    conn.channel().queue_delete(q)


def test_redeclare_with_different_arguments_is_precondition_failed(conn):
    ch = conn.channel()
    q = uname("q")
    ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": 60000})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": 1000})
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue "
                       "'%s' in vhost '/': received '1000' but current is '60000'" % q)


def test_redeclare_same_properties_is_ok(ch):
    q = uname("q")
    args = {"x-max-length": 10}
    ch.queue_declare(q, exclusive=True, arguments=args)
    ch.queue_declare(q, exclusive=True, arguments=args)
    # Passive declare ignores the properties altogether.
    ch.queue_declare(q, passive=True, durable=True)


def test_exclusive_queue_from_another_connection_is_resource_locked(broker, conn):
    ch = conn.channel()
    q = uname("excl")
    ch.queue_declare(q, exclusive=True)
    other = broker.connect()
    try:
        for op in (lambda c: c.queue_declare(q, exclusive=True),
                   lambda c: c.queue_declare(q, passive=True),
                   lambda c: c.basic_consume(q, lambda *a: None),
                   lambda c: c.queue_delete(q)):
            och = other.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
                op(och)
            assert_closed_with(ei.value, 405,
                               "RESOURCE_LOCKED - cannot obtain exclusive access to locked "
                               "queue '%s' in vhost '/'" % q)
    finally:
        other.close()


def test_exclusive_queue_dies_with_its_connection(broker, conn):
    owner = broker.connect()
    q = uname("excl")
    owner.channel().queue_declare(q, exclusive=True)
    assert queue_exists(conn, q)
    owner.close()
    wait_for(lambda: not queue_exists(conn, q), what="exclusive queue to be deleted")


def test_exclusive_queue_survives_its_channel(conn):
    ch = conn.channel()
    q = uname("excl")
    ch.queue_declare(q, exclusive=True)
    ch.close()
    assert queue_exists(conn, q)


def test_auto_delete_queue_dies_when_last_consumer_cancels(conn):
    ch = conn.channel()
    q = uname("ad")
    ch.queue_declare(q, auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert queue_exists(conn, q), "deleted while a consumer remained"
    ch.basic_cancel(t2)
    wait_for(lambda: not queue_exists(conn, q), what="auto-delete queue to be deleted")


def test_auto_delete_queue_without_consumers_stays(conn):
    ch = conn.channel()
    q = uname("ad")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish("", q, b"x")
    get_one(ch, q, auto_ack=True)
    assert queue_exists(conn, q)
    ch.queue_delete(q)


def test_auto_delete_queue_dies_when_consumer_channel_closes(conn):
    ch = conn.channel()
    q = uname("ad")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    ch.close()
    wait_for(lambda: not queue_exists(conn, q), what="auto-delete queue to be deleted")


def test_bind_and_unbind(ch):
    x = uname("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k")  # idempotent
    ch.basic_publish(x, "k", b"bound")
    assert get_one(ch, q, auto_ack=True)[2] == b"bound"
    ch.queue_unbind(q, x, "k")
    ch.basic_publish(x, "k", b"unbound")
    ch.basic_publish("", q, b"marker")
    assert get_one(ch, q, auto_ack=True)[2] == b"marker"
    assert ch.basic_get(q, auto_ack=True)[0] is None
    ch.exchange_delete(x)


def test_unbind_missing_binding_is_ok(ch):
    x = uname("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, x, "never-bound")
    ch.exchange_delete(x)


def test_bind_to_missing_exchange_is_not_found(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    x = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "k")
    assert_closed_with(ei.value, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_bind_missing_queue_is_not_found(ch):
    q = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, "amq.direct", "k")
    assert_closed_with(ei.value, 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_purge_returns_count(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for _ in range(7):
        ch.basic_publish("", q, b"p")
    wait_for(lambda: ch.queue_declare(q, passive=True).method.message_count == 7,
             what="7 messages")
    assert ch.queue_purge(q).method.message_count == 7
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert ch.queue_purge(q).method.message_count == 0


def test_purge_leaves_unacked_messages(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"held")
    ch.basic_publish("", q, b"ready")
    m, _, b = get_one(ch, q)
    assert b == b"held"
    wait_for(lambda: ch.queue_declare(q, passive=True).method.message_count == 1, what="1 ready")
    assert ch.queue_purge(q).method.message_count == 1
    ch.basic_reject(m.delivery_tag, requeue=True)
    assert get_one(ch, q, auto_ack=True)[2] == b"held"


def test_delete_returns_message_count(conn):
    ch = conn.channel()
    q = uname("q")
    ch.queue_declare(q)
    for _ in range(4):
        ch.basic_publish("", q, b"d")
    wait_for(lambda: ch.queue_declare(q, passive=True).method.message_count == 4,
             what="4 messages")
    assert ch.queue_delete(q).method.message_count == 4
    assert not queue_exists(conn, q)


def test_delete_missing_queue_is_ok(ch):
    # RabbitMQ: queue.delete of a missing queue answers delete-ok with 0.
    assert ch.queue_delete(uname("missing")).method.message_count == 0


def test_delete_if_empty_on_non_empty_queue_is_precondition_failed(conn):
    ch = conn.channel()
    q = uname("q")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish("", q, b"x")
    wait_for(lambda: message_count(conn, q) == 1, what="1 message")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_delete(q, if_empty=True)
    assert_closed_with(ei.value, 406, "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q)
    ch2 = conn.channel()
    assert ch2.queue_delete(q).method.message_count == 1


def test_delete_if_unused_on_consumed_queue_is_precondition_failed(conn):
    ch = conn.channel()
    q = uname("q")
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_delete(q, if_unused=True)
    assert_closed_with(ei.value, 406, "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q)
    conn.channel().queue_delete(q)


def test_delete_if_empty_and_if_unused_on_idle_empty_queue(ch):
    q = uname("q")
    ch.queue_declare(q)
    assert ch.queue_delete(q, if_unused=True, if_empty=True).method.message_count == 0


def test_deleted_queue_bindings_go_with_it(conn):
    ch = conn.channel()
    x, q = uname("x"), uname("q")
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    ch.queue_declare(q)
    ch.basic_publish(x, "", b"should not arrive")
    ch.basic_publish("", q, b"marker")
    assert get_one(ch, q, auto_ack=True)[2] == b"marker"
    assert ch.basic_get(q, auto_ack=True)[0] is None
    ch.queue_delete(q)
    ch.exchange_delete(x)


def test_queue_declare_nowait_raw(broker):
    q = uname("nowait")
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "queue.declare", queue=q, exclusive=True, nowait=True)
        ok = raw.rpc(1, "queue.declare", "queue.declare-ok", queue=q, passive=True)
        assert ok == {"queue": q, "message_count": 0, "consumer_count": 0}


def test_server_named_queue_name_usable_as_empty_string_raw(broker):
    """The spec lets a client name 'the last queue declared on this channel'
    with an empty queue name; RabbitMQ supports it for bind/consume/get."""
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        ok = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)
        raw.rpc(1, "queue.bind", "queue.bind-ok", queue="", exchange="amq.direct",
                routing_key="k-" + ok["queue"])
        raw.publish(1, "amq.direct", "k-" + ok["queue"], b"via last queue")
        raw.send_method(1, "basic.get", queue="", no_ack=True)
        f = raw.recv_non_heartbeat()
        while f.method == "basic.get-empty":
            raw.send_method(1, "basic.get", queue="", no_ack=True)
            f = raw.recv_non_heartbeat()
        assert f.method == "basic.get-ok", f
        _, body = raw.read_content()
        assert body == b"via last queue"
