"""Exchange class: the four types, declare rules, reserved names, delete,
exchange-to-exchange bindings, alternate exchanges and headers matching."""

import pika
import pika.exceptions
import pytest

import coney_raw as R
from coney_util import (TIMEOUT, assert_closed_with, channel_close_reason, drain, get_one,
                        skip_if_rabbitmq_before, uname)


def _bound_queue(ch, exchange, routing_key="", arguments=None):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, exchange, routing_key, arguments=arguments)
    return q


def _bodies(ch, q, expect_at_least=0):
    """All messages currently in q (no-ack), after the first arrives if any are expected."""
    out = []
    if expect_at_least:
        out.append(get_one(ch, q, auto_ack=True)[2])
    drain(ch.connection, 0.1)
    while True:
        m, _, b = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append(b)


@pytest.mark.parametrize("etype", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type(ch, etype):
    x = uname(etype)
    ch.exchange_declare(x, etype)
    ch.exchange_declare(x, etype)  # idempotent redeclare
    ch.exchange_declare(x, passive=True)
    ch.exchange_delete(x)


@pytest.mark.parametrize("name,etype", [("amq.direct", "direct"), ("amq.fanout", "fanout"),
                                        ("amq.topic", "topic"), ("amq.headers", "headers"),
                                        ("amq.match", "headers")])
def test_predeclared_exchanges_exist(ch, name, etype):
    ch.exchange_declare(name, passive=True)
    # Redeclaring a predeclared exchange with its own type is allowed.
    ch.exchange_declare(name, etype, durable=True)


def test_redeclare_predeclared_exchange_with_other_type_is_precondition_failed(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.direct", "fanout")
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' "
                       "in vhost '/': received 'fanout' but current is 'direct'")


def test_durable_and_auto_delete_exchange_declare(ch):
    x = uname("durable")
    ch.exchange_declare(x, "topic", durable=True)
    ch.exchange_delete(x)


def test_passive_declare_of_missing_exchange_is_not_found(ch):
    x = uname("missing")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, passive=True)
    assert_closed_with(ei.value, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_redeclare_with_different_type_is_precondition_failed(conn):
    ch = conn.channel()
    x = uname("x")
    ch.exchange_declare(x, "direct")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "fanout")
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in "
                       "vhost '/': received 'fanout' but current is 'direct'" % x)
    conn.channel().exchange_delete(x)


def test_redeclare_with_different_durable_is_precondition_failed(conn):
    ch = conn.channel()
    x = uname("x")
    ch.exchange_declare(x, "direct", durable=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "direct", durable=True)
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '%s'" % x)
    conn.channel().exchange_delete(x)


def test_unknown_exchange_type_is_precondition_failed_channel_error(conn, rabbitmq):
    # Required: 406 channel error, as current RabbitMQ gives. RabbitMQ 3.10
    # closes the whole connection with 503 COMMAND_INVALID
    # "COMMAND_INVALID - unknown exchange type 'no-such-type'".
    skip_if_rabbitmq_before(rabbitmq, (3, 11),
                            "unknown exchange type is a 503 connection error before 3.11")
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(uname("x"), "no-such-type")
    assert_closed_with(ei.value, 406)
    assert "no-such-type" in ei.value.reply_text
    assert conn.is_open
    conn.channel().queue_declare("", exclusive=True)


def test_delete_exchange(conn):
    ch = conn.channel()
    x = uname("x")
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, passive=True)
    assert ei.value.reply_code == 404


def test_delete_missing_exchange_is_ok(ch):
    # RabbitMQ: exchange.delete of a missing exchange is idempotent.
    ch.exchange_delete(uname("missing"))


def test_delete_if_unused_on_bound_exchange_is_precondition_failed(conn):
    ch = conn.channel()
    x = uname("x")
    ch.exchange_declare(x, "fanout")
    _bound_queue(ch, x)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete(x, if_unused=True)
    assert_closed_with(ei.value, 406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x)
    ch2 = conn.channel()
    ch2.exchange_delete(x, if_unused=False)


def test_delete_if_unused_on_unbound_exchange(ch):
    x = uname("x")
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x, if_unused=True)


def test_declare_reserved_amq_name_is_access_refused(ch):
    x = "amq.coney-test-" + uname()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "direct")
    assert_closed_with(ei.value, 403,
                       "ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'" % x)


def test_delete_predeclared_amq_exchange_is_access_refused(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete("amq.direct")
    assert_closed_with(ei.value, 403, "ACCESS_REFUSED - deletion of system exchange "
                                      "'amq.direct' in vhost '/' not allowed")


def test_default_exchange_cannot_be_bound(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, "", "some-key")
    assert_closed_with(ei.value, 403,
                       "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_default_exchange_cannot_be_deleted(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete("")
    assert_closed_with(ei.value, 403,
                       "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_default_exchange_routes_by_queue_name(ch):
    q = ch.queue_declare(uname("q"), exclusive=True).method.queue
    ch.basic_publish("", q, b"direct to queue")
    assert get_one(ch, q, auto_ack=True)[2] == b"direct to queue"


def test_publish_to_internal_exchange_is_access_refused(conn):
    ch = conn.channel()
    x = uname("internal")
    ch.exchange_declare(x, "fanout", internal=True)
    ch.basic_publish(x, "", b"nope")
    reason = channel_close_reason(ch)
    assert_closed_with(reason, 403,
                       "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '/'" % x)
    conn.channel().exchange_delete(x)


def test_internal_exchange_still_routes_from_exchange_binding(ch):
    src, internal = uname("src"), uname("internal")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(internal, "fanout", internal=True)
    ch.exchange_bind(internal, src)
    q = _bound_queue(ch, internal)
    ch.basic_publish(src, "", b"via internal")
    assert get_one(ch, q, auto_ack=True)[2] == b"via internal"
    ch.exchange_delete(src)
    ch.exchange_delete(internal)


def test_publish_to_missing_exchange_is_not_found(conn):
    ch = conn.channel()
    x = uname("missing")
    ch.basic_publish(x, "rk", b"lost")
    reason = channel_close_reason(ch)
    assert_closed_with(reason, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_direct_exchange_routes_on_exact_key(ch):
    x = uname("direct")
    ch.exchange_declare(x, "direct")
    qa, qb = _bound_queue(ch, x, "a"), _bound_queue(ch, x, "b")
    ch.basic_publish(x, "a", b"to-a")
    ch.basic_publish(x, "b", b"to-b")
    ch.basic_publish(x, "c", b"to-nobody")
    assert _bodies(ch, qa, 1) == [b"to-a"]
    assert _bodies(ch, qb, 1) == [b"to-b"]
    ch.exchange_delete(x)


def test_fanout_exchange_ignores_key(ch):
    x = uname("fanout")
    ch.exchange_declare(x, "fanout")
    qs = [_bound_queue(ch, x, k) for k in ("", "x", "y")]
    ch.basic_publish(x, "whatever", b"all")
    for q in qs:
        assert _bodies(ch, q, 1) == [b"all"]
    ch.exchange_delete(x)


@pytest.mark.parametrize("pattern,key,matches", [
    ("a.b.c", "a.b.c", True),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.b.b.c", False),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("#.c", "a.b.c", True),
    ("#", "", True),
    ("*", "", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.x.y.c", True),
    ("*.*", "a", False),
    ("#.#", "a.b", True),
    ("a.*", "a.", True),
])
def test_topic_exchange_matching(ch, pattern, key, matches):
    x = uname("topic")
    ch.exchange_declare(x, "topic")
    q = _bound_queue(ch, x, pattern)
    ch.basic_publish(x, key, b"m")
    # A marker through a catch-all binding proves routing finished.
    marker = _bound_queue(ch, x, "#")
    ch.basic_publish(x, key, b"marker")
    get_one(ch, marker, auto_ack=True)
    got = _bodies(ch, q)
    # q's own binding also takes the marker when the pattern matches.
    assert got == ([b"m", b"marker"] if matches else []), (pattern, key, got)
    ch.exchange_delete(x)


def test_exchange_to_exchange_bind_and_unbind(ch):
    src, dst = uname("src"), uname("dst")
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "direct")
    ch.exchange_bind(dst, src, "k.*")
    q = _bound_queue(ch, dst, "k.1")
    ch.basic_publish(src, "k.1", b"through e2e")
    ch.basic_publish(src, "k.2", b"filtered by dst")
    assert _bodies(ch, q, 1) == [b"through e2e"]
    ch.exchange_unbind(dst, src, "k.*")
    ch.basic_publish(src, "k.1", b"after unbind")
    ch.basic_publish(dst, "k.1", b"direct marker")
    assert _bodies(ch, q, 1) == [b"direct marker"]
    ch.exchange_delete(src)
    ch.exchange_delete(dst)


def test_exchange_bind_cycle_delivers_once(ch):
    a, b = uname("a"), uname("b")
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(b, a)
    ch.exchange_bind(a, b)
    q = _bound_queue(ch, a)
    ch.queue_bind(q, b)
    ch.basic_publish(a, "", b"once")
    assert _bodies(ch, q, 1) == [b"once"]
    ch.exchange_delete(a)
    ch.exchange_delete(b)


def test_exchange_bind_to_missing_source_is_not_found(conn):
    ch = conn.channel()
    dst, src = uname("dst"), uname("missing")
    ch.exchange_declare(dst, "fanout")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_bind(dst, src)
    assert_closed_with(ei.value, 404, "NOT_FOUND - no exchange '%s' in vhost '/'" % src)
    conn.channel().exchange_delete(dst)


def test_alternate_exchange_receives_unroutable(ch):
    ae, x = uname("ae"), uname("main")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    routed = _bound_queue(ch, x, "known")
    unrouted = _bound_queue(ch, ae)
    ch.basic_publish(x, "known", b"routed")
    ch.basic_publish(x, "unknown", b"to the AE")
    assert _bodies(ch, routed, 1) == [b"routed"]
    assert _bodies(ch, unrouted, 1) == [b"to the AE"]
    ch.exchange_delete(x)
    ch.exchange_delete(ae)


def test_alternate_exchange_mandatory_not_returned(conn):
    """A message the AE routes counts as routed: no basic.return."""
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ae, x = uname("ae"), uname("main")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    q = _bound_queue(ch, ae)
    ch.basic_publish(x, "nowhere", b"m", mandatory=True)
    assert _bodies(ch, q, 1) == [b"m"]
    drain(conn, 0.2)
    assert returned == []
    ch.exchange_delete(x)
    ch.exchange_delete(ae)


def _headers_case(ch, match, binding, headers):
    x = uname("headers")
    ch.exchange_declare(x, "headers")
    args = dict(binding)
    if match:
        args["x-match"] = match
    q = _bound_queue(ch, x, "", arguments=args)
    marker = _bound_queue(ch, x, "", arguments={"x-match": "any", "marker": 1})
    ch.basic_publish(x, "", b"m", pika.BasicProperties(headers=headers))
    ch.basic_publish(x, "", b"marker", pika.BasicProperties(headers={"marker": 1}))
    get_one(ch, marker, auto_ack=True)
    got = _bodies(ch, q)
    ch.exchange_delete(x)
    return b"m" in got


@pytest.mark.parametrize("match,binding,headers,expected", [
    ("all", {"a": 1, "b": "two"}, {"a": 1, "b": "two"}, True),
    ("all", {"a": 1, "b": "two"}, {"a": 1, "b": "two", "c": 3}, True),
    ("all", {"a": 1, "b": "two"}, {"a": 1}, False),
    ("all", {"a": 1, "b": "two"}, {"a": 1, "b": "three"}, False),
    ("any", {"a": 1, "b": "two"}, {"a": 1}, True),
    ("any", {"a": 1, "b": "two"}, {"b": "two", "z": 0}, True),
    ("any", {"a": 1, "b": "two"}, {"a": 2, "b": "three"}, False),
    ("any", {"a": 1}, None, False),
    (None, {"a": 1, "b": 2}, {"a": 1}, False),  # x-match defaults to all
    (None, {"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ("all", {}, {"anything": 1}, True),
])
def test_headers_exchange_x_match(ch, match, binding, headers, expected):
    assert _headers_case(ch, match, binding, headers) is expected


def test_headers_exchange_ignores_routing_key(ch):
    x = uname("headers")
    ch.exchange_declare(x, "headers")
    q = _bound_queue(ch, x, "some-key", arguments={"x-match": "all", "k": "v"})
    ch.basic_publish(x, "other-key", b"m", pika.BasicProperties(headers={"k": "v"}))
    assert _bodies(ch, q, 1) == [b"m"]
    ch.exchange_delete(x)


def test_amq_headers_predeclared_routes(ch):
    q = _bound_queue(ch, "amq.headers", "", arguments={"x-match": "any", "id": uname()})
    # Only our own binding's value routes here.
    ch.basic_publish("amq.headers", "", b"nope", pika.BasicProperties(headers={"id": "x"}))
    assert _bodies(ch, q) == []


def test_exchange_declare_nowait_raw(broker):
    x = uname("nowait")
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "exchange.declare", exchange=x, type="fanout", nowait=True)
        raw.send_method(1, "exchange.declare", exchange=x, type="fanout", passive=True)
        raw.expect(1, "exchange.declare-ok")
        raw.rpc(1, "exchange.delete", "exchange.delete-ok", exchange=x)


def test_deleting_a_queue_removes_every_auto_delete_exchange_left_unbound(conn, ch):
    """RabbitMQ deletes an auto-delete exchange when its last binding goes,
    however many go at once: here 70 lose their only binding together."""
    q = ch.queue_declare("", exclusive=True).method.queue
    names = [uname("x-ad") for _ in range(70)]
    for x in names:
        ch.exchange_declare(x, "fanout", auto_delete=True)
        ch.queue_bind(q, x)
    ch.queue_delete(q)
    for x in names:
        probe = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            probe.exchange_declare(x, "fanout", passive=True)
        assert ei.value.reply_code == 404, x
