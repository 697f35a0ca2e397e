"""Exchanges, queues and bindings over the management HTTP API, as
RabbitMQ's management plugin serves them: paths, bodies, status codes,
JSON fields and error texts (the same as AMQP's for the same mistake);
publish and get over HTTP meeting pika on the other side; access by user
tag and vhost permission; pagination; and rabbitmqadmin (v1, from Debian's
rabbitmq-server) driving Coney. Users, vhosts, permissions and definitions
are test_29_http_definitions.py."""

import base64
import os
import shutil
import subprocess

import pika
import pika.exceptions
import pytest

from coney_util import TIMEOUT, channel_close_reason, get_one, message_count, uname
from http_client import Api, q


@pytest.fixture
def api(broker):
    if not broker.http_port:
        pytest.skip("the broker under test has no known management port")
    return Api(broker)


def reason(r):
    assert r.json and "reason" in r.json, r
    return r.json["reason"]


# ------------------------------------------------------------ exchanges

def test_exchange_put_get_delete(api):
    x = uname("x")
    path = "/api/exchanges/%2F/" + q(x)
    assert api.put(path, {"type": "topic", "durable": True, "auto_delete": False,
                          "internal": False, "arguments": {}}).status == 201
    assert api.put(path, {"type": "topic", "durable": True}).status == 204
    got = api.ok("GET", path)
    for k, v in {"name": x, "vhost": "/", "type": "topic", "durable": True,
                 "auto_delete": False, "internal": False, "arguments": {}}.items():
        assert got[k] == v, (k, got)
    assert "message_stats" in got
    r = api.put(path, {"type": "direct", "durable": True})
    assert r.status == 400 and r.json["error"] == "bad_request"
    assert reason(r) == ("inequivalent arg 'type' for exchange '%s' in vhost '/': "
                         "received 'direct' but current is 'topic'" % x)
    r = api.put(path, {"type": "topic", "durable": False})
    assert r.status == 400 and reason(r).startswith("inequivalent arg 'durable'")
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404


def test_exchange_alternate_exchange_argument_is_compared(api):
    x = uname("x")
    path = "/api/exchanges/%2F/" + q(x)
    api.ok("PUT", path, {"type": "fanout", "arguments": {"alternate-exchange": "ae1"}}, 201)
    r = api.put(path, {"type": "fanout", "arguments": {"alternate-exchange": "ae2"}})
    assert r.status == 400
    assert reason(r) == ("inequivalent arg 'alternate-exchange' for exchange '%s' in vhost "
                         "'/': received 'ae2' but current is 'ae1'" % x)
    assert api.get(path).json["arguments"] == {"alternate-exchange": "ae1"}
    api.ok("DELETE", path)


def test_exchange_reserved_names_and_default(api):
    r = api.put("/api/exchanges/%2F/amq.custom", {"type": "direct"})
    assert r.status == 403
    assert reason(r) == "exchange name 'amq.custom' contains reserved prefix 'amq.*'"
    r = api.delete("/api/exchanges/%2F/amq.direct")
    assert r.status == 403
    assert reason(r) == "deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    r = api.put("/api/exchanges/%2F/amq.default", {"type": "direct"})
    assert r.status == 403 and reason(r) == "operation not permitted on the default exchange"
    d = api.ok("GET", "/api/exchanges/%2F/amq.default")
    assert d["name"] == "" and d["type"] == "direct"
    names = {e["name"] for e in api.ok("GET", "/api/exchanges/%2F")}
    assert {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"} <= names
    assert api.get("/api/exchanges/no-such-vhost").status == 404


def test_exchange_delete_if_unused(api, ch):
    x, qn = uname("x"), uname("q")
    api.ok("PUT", "/api/exchanges/%2F/" + q(x), {"type": "direct"})
    ch.queue_declare(qn, auto_delete=True)
    ch.queue_bind(qn, x, "k")
    r = api.delete("/api/exchanges/%2F/" + q(x) + "?if-unused=true")
    assert r.status == 400 and reason(r) == "exchange '%s' in vhost '/' in use" % x
    assert api.delete("/api/exchanges/%2F/" + q(x)).status == 204
    ch.queue_delete(qn)


def test_exchange_declared_over_amqp_is_listed_and_checked_alike(api, conn):
    ch = conn.channel()
    x = uname("x")
    ch.exchange_declare(x, "headers", durable=False, auto_delete=False)
    got = api.ok("GET", "/api/exchanges/%2F/" + q(x))
    assert got["type"] == "headers" and got["durable"] is False
    # the same mistake over HTTP and over AMQP reads the same
    r = api.put("/api/exchanges/%2F/" + q(x), {"type": "headers", "durable": True})
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch2.exchange_declare(x, "headers", durable=True)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - " + reason(r)
    ch.exchange_delete(x)


# ------------------------------------------------------------ queues

QUEUE_FIELDS = ("name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "node",
                "state", "type", "consumers", "messages", "messages_ready",
                "messages_unacknowledged", "messages_details", "messages_ready_details",
                "messages_unacknowledged_details", "message_stats")


def test_queue_put_get_delete(api):
    n = uname("q")
    path = "/api/queues/%2F/" + q(n)
    assert api.put(path, {"durable": True, "auto_delete": False,
                          "arguments": {"x-message-ttl": 60000}}).status == 201
    assert api.put(path, {"durable": True, "arguments": {"x-message-ttl": 60000}}).status == 204
    got = api.ok("GET", path)
    for f in QUEUE_FIELDS:
        assert f in got, f
    assert got["name"] == n and got["vhost"] == "/" and got["durable"] is True
    assert got["type"] == "classic" and got["state"] == "running"
    assert got["arguments"] == {"x-message-ttl": 60000}
    assert got["messages"] == 0 and got["consumers"] == 0
    r = api.put(path, {"durable": False})
    assert r.status == 400
    assert reason(r) == ("inequivalent arg 'durable' for queue '%s' in vhost '/': received "
                         "'false' but current is 'true'" % n)
    r = api.put(path, {"durable": True, "arguments": {"x-message-ttl": 1}})
    assert r.status == 400
    assert reason(r) == ("inequivalent arg 'x-message-ttl' for queue '%s' in vhost '/': "
                         "received '1' but current is '60000'" % n)
    assert any(x["name"] == n for x in api.ok("GET", "/api/queues"))
    assert any(x["name"] == n for x in api.ok("GET", "/api/queues/%2F"))
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404


def test_queue_reserved_name_and_bad_body(api):
    r = api.put("/api/queues/%2F/amq.mine", {})
    assert r.status == 403
    assert reason(r) == "queue name 'amq.mine' contains reserved prefix 'amq.*'"
    r = api.call("PUT", "/api/queues/%2F/" + q(uname("q")), raw=b"{not json")
    assert r.status == 400 and r.json["error"] == "bad_request"
    r = api.put("/api/queues/%2F/" + q(uname("q")), {"durable": "maybe"})
    assert r.status == 400


def test_queue_delete_if_empty_and_if_unused(api, conn):
    ch = conn.channel()
    n = uname("q")
    path = "/api/queues/%2F/" + q(n)
    api.ok("PUT", path, {"durable": False})
    ch.basic_publish("", n, b"x")
    get_one(ch, n, auto_ack=False)    # leaves it unacked...
    ch.basic_recover(requeue=True)    # ...and back
    assert message_count(conn, n) == 1
    r = api.delete(path + "?if-empty=true")
    assert r.status == 400 and reason(r) == "queue '%s' in vhost '/' not empty" % n
    tag = ch.basic_consume(n, lambda *a: None)
    r = api.delete(path + "?if-unused=true")
    assert r.status == 400 and reason(r) == "queue '%s' in vhost '/' in use" % n
    ch.basic_cancel(tag)
    assert api.delete(path + "?if-unused=true").status == 204
    assert api.get(path).status == 404


def test_queue_counts_follow_amqp(api, conn):
    ch = conn.channel()
    n = uname("q")
    ch.queue_declare(n, auto_delete=False, arguments={"x-max-length": 100})
    for i in range(5):
        ch.basic_publish("", n, b"m%d" % i)
    message_count(conn, n)          # a round trip: the publishes have arrived
    ch.basic_qos(prefetch_count=2)
    ch.basic_consume(n, lambda *a: None)
    conn.process_data_events(time_limit=0.3)
    got = api.ok("GET", "/api/queues/%2F/" + q(n))
    assert got["consumers"] == 1
    assert got["messages_unacknowledged"] == 2
    assert got["messages_ready"] == 3
    assert got["messages"] == 5
    assert got["arguments"] == {"x-max-length": 100}
    assert got["message_stats"]["publish"] == 5
    assert got["message_stats"]["deliver"] == 2
    # a pika declare against the HTTP view's flags passes; a wrong one fails alike
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch2.queue_declare(n, durable=True)
    r = api.put("/api/queues/%2F/" + q(n), {"durable": True})
    assert e.value.reply_text == "PRECONDITION_FAILED - " + reason(r)
    ch.close()
    api.ok("DELETE", "/api/queues/%2F/" + q(n))


def test_http_declared_objects_work_over_amqp(api, conn):
    x, n = uname("x"), uname("q")
    api.ok("PUT", "/api/exchanges/%2F/" + q(x), {"type": "direct", "durable": False}, 201)
    api.ok("PUT", "/api/queues/%2F/" + q(n), {"durable": False, "auto_delete": False}, 201)
    api.ok("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(n)), {"routing_key": "rk"}, 201)
    ch = conn.channel()
    ch.exchange_declare(x, "direct", passive=True)
    ch.queue_declare(n, passive=True)
    ch.queue_declare(n, durable=False)            # equivalent redeclare is fine
    ch.basic_publish(x, "rk", b"via-http-binding")
    _, _, body = get_one(ch, n, auto_ack=True)
    assert body == b"via-http-binding"
    api.ok("DELETE", "/api/queues/%2F/" + q(n))
    api.ok("DELETE", "/api/exchanges/%2F/" + q(x))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(n, passive=True)
    assert e.value.reply_code == 404


def test_purge(api, conn):
    ch = conn.channel()
    n = uname("q")
    ch.queue_declare(n, auto_delete=False)
    for _ in range(4):
        ch.basic_publish("", n, b"p")
    assert message_count(conn, n) == 4
    assert api.delete("/api/queues/%2F/" + q(n) + "/contents").status == 204
    assert message_count(conn, n) == 0
    assert api.delete("/api/queues/%2F/nope-" + q(n) + "/contents").status == 404
    ch.queue_delete(n)


# ------------------------------------------------------------ publish and get

def test_publish_over_http_then_consume_with_pika(api, conn):
    ch = conn.channel()
    n = uname("q")
    ch.queue_declare(n, auto_delete=False)
    r = api.ok("POST", "/api/exchanges/%2F/amq.default/publish", {
        "properties": {"content_type": "text/plain", "delivery_mode": 2, "priority": 3,
                       "message_id": "m-1", "headers": {"h1": "v", "n": 7, "b": True}},
        "routing_key": n, "payload": "héllo", "payload_encoding": "string"})
    assert r == {"routed": True}
    m, p, body = get_one(ch, n, auto_ack=True)
    assert body == "héllo".encode()
    assert p.content_type == "text/plain" and p.delivery_mode == 2 and p.priority == 3
    assert p.message_id == "m-1"
    assert p.headers == {"h1": b"v", "n": 7, "b": True} or p.headers == {"h1": "v", "n": 7,
                                                                          "b": True}
    assert m.exchange == "" and m.routing_key == n
    raw = bytes(range(256))
    r = api.ok("POST", "/api/exchanges/%2F/amq.default/publish", {
        "properties": {}, "routing_key": n, "payload": base64.b64encode(raw).decode(),
        "payload_encoding": "base64"})
    assert r["routed"] is True
    assert get_one(ch, n, auto_ack=True)[2] == raw
    r = api.ok("POST", "/api/exchanges/%2F/amq.direct/publish", {
        "properties": {}, "routing_key": "nobody-" + n, "payload": "x",
        "payload_encoding": "string"})
    assert r == {"routed": False}
    assert api.post("/api/exchanges/%2F/no-such-x/publish", {
        "properties": {}, "routing_key": "", "payload": "", "payload_encoding": "string"
    }).status == 404
    r = api.post("/api/exchanges/%2F/amq.direct/publish", {
        "properties": {"user_id": "somebody-else"}, "routing_key": n, "payload": "x",
        "payload_encoding": "string"})
    assert r.status == 400
    assert reason(r) == ("user_id property set to 'somebody-else' but authenticated user "
                         "was 'guest'")
    r = api.post("/api/exchanges/%2F/amq.direct/publish", {
        "routing_key": n, "payload": "x", "payload_encoding": "rot13"})
    assert r.status == 400
    ch.queue_delete(n)


def test_publish_to_internal_exchange_is_refused(api):
    x = uname("x")
    api.ok("PUT", "/api/exchanges/%2F/" + q(x), {"type": "fanout", "internal": True})
    r = api.post("/api/exchanges/%2F/" + q(x) + "/publish", {
        "properties": {}, "routing_key": "", "payload": "x", "payload_encoding": "string"})
    assert r.status == 403
    assert reason(r) == "cannot publish to internal exchange '%s' in vhost '/'" % x
    api.ok("DELETE", "/api/exchanges/%2F/" + q(x))


def test_get_ackmodes_encoding_and_truncate(api, conn):
    ch = conn.channel()
    n = uname("q")
    ch.queue_declare(n, auto_delete=False)
    props = pika.BasicProperties(content_type="application/json", headers={"k": "v"},
                                 correlation_id="c-9")
    for i in range(3):
        ch.basic_publish("", n, b"message-%d" % i, props)
    assert message_count(conn, n) == 3
    path = "/api/queues/%2F/" + q(n) + "/get"
    got = api.ok("POST", path, {"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert [m["payload"] for m in got] == ["message-0", "message-1"]
    first = got[0]
    assert first["payload_encoding"] == "string" and first["payload_bytes"] == 9
    assert first["redelivered"] is False and first["exchange"] == ""
    assert first["routing_key"] == n and first["message_count"] == 2
    assert first["properties"]["content_type"] == "application/json"
    assert first["properties"]["headers"] == {"k": "v"}
    assert first["properties"]["correlation_id"] == "c-9"
    assert message_count(conn, n) == 3        # requeued
    got = api.ok("POST", path, {"count": 1, "ackmode": "reject_requeue_true",
                                "encoding": "base64", "truncate": 4})
    assert got[0]["redelivered"] is True
    assert got[0]["payload_encoding"] == "base64"
    assert base64.b64decode(got[0]["payload"]) == b"mess"
    assert got[0]["payload_bytes"] == 9
    got = api.ok("POST", path, {"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"})
    assert [m["payload"] for m in got] == ["message-0", "message-1", "message-2"]
    assert message_count(conn, n) == 0
    assert api.ok("POST", path, {"count": 1, "ackmode": "ack_requeue_false",
                                 "encoding": "auto"}) == []
    ch.basic_publish("", n, b"\xff\xfe binary")
    message_count(conn, n)
    got = api.ok("POST", path, {"count": 1, "ackmode": "reject_requeue_false",
                                "encoding": "auto"})
    assert got[0]["payload_encoding"] == "base64"
    assert base64.b64decode(got[0]["payload"]) == b"\xff\xfe binary"
    r = api.post(path, {"count": 1, "ackmode": "sometimes", "encoding": "auto"})
    assert r.status == 400
    ch.queue_delete(n)


def test_get_delivers_requeued_messages_to_waiting_consumers(api, conn):
    ch = conn.channel()
    n = uname("q")
    ch.queue_declare(n, auto_delete=False)
    ch.basic_publish("", n, b"one")
    assert message_count(conn, n) == 1
    api.ok("POST", "/api/queues/%2F/" + q(n) + "/get",
           {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    got = []
    ch.basic_consume(n, lambda c, m, p, b: got.append((m.redelivered, b)), auto_ack=True)
    from coney_util import pump_until
    pump_until(conn, lambda: got, what="the requeued message")
    assert got == [(True, b"one")]
    ch.close()
    api.ok("DELETE", "/api/queues/%2F/" + q(n))


# ------------------------------------------------------------ bindings

def test_bindings_create_list_get_delete(api, conn):
    x, x2, n = uname("x"), uname("x2"), uname("q")
    api.ok("PUT", "/api/exchanges/%2F/" + q(x), {"type": "topic", "durable": False})
    api.ok("PUT", "/api/exchanges/%2F/" + q(x2), {"type": "fanout", "durable": False})
    api.ok("PUT", "/api/queues/%2F/" + q(n), {"durable": False})
    eq = "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(n))
    r = api.post(eq, {"routing_key": "", "arguments": {}})
    assert r.status == 201
    assert r.headers["Location"].endswith(eq + "/~")
    r = api.post(eq, {"routing_key": "a.b/c d", "arguments": {}})
    assert r.status == 201
    assert r.headers["Location"].endswith(eq + "/" + q("a.b%2Fc+d"))
    r = api.post(eq, {"routing_key": "k", "arguments": {"x-any": 1}})
    assert r.status == 201
    listed = api.ok("GET", eq)
    assert len(listed) == 3
    keys = {b["routing_key"]: b for b in listed}
    assert keys[""]["properties_key"] == "~"
    assert keys["a.b/c d"]["properties_key"] == "a.b%2Fc+d"
    pk = keys["k"]["properties_key"]
    assert pk.startswith("k~") and len(pk) > 2
    for b in listed:
        assert b["source"] == x and b["destination"] == n and b["vhost"] == "/"
        assert b["destination_type"] == "queue"
    assert keys["k"]["arguments"] == {"x-any": 1}
    one = api.ok("GET", eq + "/" + q(pk))
    assert one["routing_key"] == "k" and one["arguments"] == {"x-any": 1}
    assert api.get(eq + "/no-such-key").status == 404
    # exchange to exchange
    ee = "/api/bindings/%%2F/e/%s/e/%s" % (q(x), q(x2))
    assert api.post(ee, {"routing_key": "r.#"}).status == 201
    assert [b["destination_type"] for b in api.ok("GET", ee)] == ["exchange"]
    src = api.ok("GET", "/api/exchanges/%2F/" + q(x) + "/bindings/source")
    assert len(src) == 4
    dst = api.ok("GET", "/api/exchanges/%2F/" + q(x2) + "/bindings/destination")
    assert [(b["source"], b["routing_key"]) for b in dst] == [(x, "r.#")]
    # the queue's bindings include the default exchange's implicit one
    qb = api.ok("GET", "/api/queues/%2F/" + q(n) + "/bindings")
    assert {"source": "", "vhost": "/", "destination": n, "destination_type": "queue",
            "routing_key": n, "arguments": {}, "properties_key": n} in qb
    assert len(qb) == 4
    allb = api.ok("GET", "/api/bindings")
    assert sum(1 for b in allb if b["source"] == x) == 4
    assert sum(1 for b in api.ok("GET", "/api/bindings/%2F") if b["source"] == x) == 4
    # a binding made over HTTP routes for AMQP publishers; deleting it stops that
    ch = conn.channel()
    ch.basic_publish(x, "a.b/c d", b"routed")
    assert get_one(ch, n, auto_ack=True)[2] == b"routed"
    assert api.delete(eq + "/" + q("a.b%2Fc+d")).status == 204
    assert api.delete(eq + "/" + q("a.b%2Fc+d")).status == 404
    assert api.delete(eq + "/" + q(pk)).status == 204
    assert api.delete(eq + "/~").status == 204
    assert api.delete(ee + "/" + q("r.#")).status == 204
    assert api.ok("GET", eq) == []
    ch.basic_publish(x, "a.b/c d", b"dropped")
    assert message_count(conn, n) == 0
    for p in ("/api/queues/%2F/" + q(n), "/api/exchanges/%2F/" + q(x),
              "/api/exchanges/%2F/" + q(x2)):
        api.ok("DELETE", p)


def test_binding_errors(api, ch):
    n = uname("q")
    api.ok("PUT", "/api/queues/%2F/" + q(n), {"durable": False})
    r = api.post("/api/bindings/%%2F/e/amq.default/q/%s" % q(n), {"routing_key": "x"})
    assert r.status == 403 and reason(r) == "operation not permitted on the default exchange"
    assert api.post("/api/bindings/%%2F/e/no-such-x/q/%s" % q(n), {}).status == 404
    assert api.post("/api/bindings/%2F/e/amq.direct/q/no-such-q", {}).status == 404
    r = api.post("/api/bindings/%%2F/e/amq.headers/q/%s" % q(n),
                 {"arguments": {"x-match": "sometimes"}})
    assert r.status == 400 and reason(r) == "invalid binding arguments"
    api.ok("DELETE", "/api/queues/%2F/" + q(n))


def test_amqp_bindings_are_listed(api, ch):
    n = uname("q")
    ch.queue_declare(n, auto_delete=True)
    ch.queue_bind(n, "amq.headers", "", arguments={"x-match": "any", "a": "1"})
    ch.queue_bind(n, "amq.topic", "t.*")
    got = api.ok("GET", "/api/queues/%2F/" + q(n) + "/bindings")
    srcs = sorted((b["source"], b["routing_key"]) for b in got)
    assert srcs == [("", n), ("amq.headers", ""), ("amq.topic", "t.*")]
    h = next(b for b in got if b["source"] == "amq.headers")
    assert h["arguments"] == {"x-match": "any", "a": "1"}
    assert h["properties_key"].startswith("~")
    # deleting it over HTTP is an AMQP unbind
    assert api.delete("/api/bindings/%%2F/e/amq.headers/q/%s/%s"
                      % (q(n), q(h["properties_key"]))).status == 204
    assert len(api.ok("GET", "/api/queues/%2F/" + q(n) + "/bindings")) == 2
    ch.queue_delete(n)


# ------------------------------------------------------------ lists

def test_pagination_and_filters(api):
    prefix = uname("page")
    for i in range(7):
        api.ok("PUT", "/api/queues/%2F/" + q("%s-%d" % (prefix, i)), {"durable": False})
    r = api.ok("GET", "/api/queues/%%2F?page=2&page_size=3&name=%s&sort=name" % q(prefix))
    assert r["filtered_count"] == 7 and r["page"] == 2 and r["page_count"] == 3
    assert r["page_size"] == 3 and r["item_count"] == 3
    assert [x["name"] for x in r["items"]] == ["%s-%d" % (prefix, i) for i in (3, 4, 5)]
    cols = api.ok("GET", "/api/queues?columns=name,messages&name=%s" % q(prefix))
    assert len(cols) == 7 and all(set(c) == {"name", "messages"} for c in cols)
    assert api.get("/api/queues?page=1&page_size=501").status == 400
    for i in range(7):
        api.ok("DELETE", "/api/queues/%2F/" + q("%s-%d" % (prefix, i)))


# ------------------------------------------------------------ who may

@pytest.fixture
def users(api):
    """Makes users over HTTP (as guest, an administrator) and removes them."""
    made, vhosts = [], []

    def make(tags, perms=None, vhost="/"):
        name = uname("u")
        api.ok("PUT", "/api/users/" + q(name), {"password": "pw", "tags": tags})
        if vhost != "/" and vhost not in vhosts:
            api.ok("PUT", "/api/vhosts/" + q(vhost))
            vhosts.append(vhost)
        if perms is not None:
            api.ok("PUT", "/api/permissions/%s/%s" % (q(vhost), q(name)),
                   dict(zip(("configure", "write", "read"), perms)))
        made.append(name)
        return api.as_user(name, "pw"), name
    yield make
    for name in made:
        api.delete("/api/users/" + q(name))
    for v in vhosts:
        api.delete("/api/vhosts/" + q(v))


def test_access_by_tag(api, users):
    none, _ = users("", (".*", ".*", ".*"))
    r = none.get("/api/queues")
    assert r.status == 401
    bad = api.as_user("guest", "wrong")
    assert bad.get("/api/queues").status == 401
    assert api.as_user(None, None).get("/api/queues").status == 401
    mgmt, _ = users("management", (".*", ".*", ".*"))
    assert mgmt.get("/api/queues").status == 200
    r = mgmt.put("/api/vhosts/" + q(uname("v")))
    assert r.status == 403 and r.json["error"] == "not_authorised"
    assert mgmt.get("/api/users").status == 403
    assert mgmt.get("/api/definitions").status == 403


def test_management_user_sees_only_its_vhosts(api, users):
    v = uname("vh")
    mine, _ = users("management", (".*", ".*", ".*"), vhost=v)
    qa, qb = uname("qa"), uname("qb")
    api.ok("PUT", "/api/queues/%2F/" + q(qa), {"durable": False})
    api.ok("PUT", "/api/queues/%s/%s" % (q(v), q(qb)), {"durable": False})
    names = {x["name"] for x in mine.ok("GET", "/api/queues")}
    assert qb in names and qa not in names
    assert {x["name"] for x in mine.ok("GET", "/api/vhosts")} == {v}
    assert mine.get("/api/queues/%2F/" + q(qa)).status == 404
    assert mine.get("/api/exchanges/%2F").status == 404
    assert all(b["vhost"] == v for b in mine.ok("GET", "/api/bindings"))
    mon, _ = users("monitoring")
    assert qa in {x["name"] for x in mon.ok("GET", "/api/queues")}
    api.ok("DELETE", "/api/queues/%2F/" + q(qa))


def test_changes_need_the_users_own_permissions(api, users):
    # configure nothing, write and read everything
    u, name = users("management", ("^$", ".*", ".*"))
    n = uname("q")
    r = u.put("/api/queues/%2F/" + q(n), {"durable": False})
    assert r.status == 403
    assert r.json == {"error": "not_authorised", "reason": "Access refused."}
    api.ok("PUT", "/api/queues/%2F/" + q(n), {"durable": False})
    assert u.delete("/api/queues/%2F/" + q(n)).status == 403
    assert u.put("/api/exchanges/%2F/" + q(uname("x")), {"type": "direct"}).status == 403
    # write and read suffice to publish, get, purge and bind
    assert u.ok("POST", "/api/exchanges/%2F/amq.default/publish",
                {"properties": {}, "routing_key": n, "payload": "a",
                 "payload_encoding": "string"}) == {"routed": True}
    assert len(u.ok("POST", "/api/queues/%2F/" + q(n) + "/get",
                    {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})) == 1
    assert u.delete("/api/queues/%2F/" + q(n) + "/contents").status == 204
    assert u.post("/api/bindings/%%2F/e/amq.direct/q/%s" % q(n), {"routing_key": "k"}).status \
        == 201
    # read nothing: no get, no purge, no binding from an exchange
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(name),
           {"configure": ".*", "write": ".*", "read": "^$"})
    for r in (u.post("/api/queues/%2F/" + q(n) + "/get",
                     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
              u.delete("/api/queues/%2F/" + q(n) + "/contents"),
              u.post("/api/bindings/%%2F/e/amq.fanout/q/%s" % q(n), {})):
        assert r.status == 403 and r.json["reason"] == "Access refused."
    # write nothing: no publish
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(name),
           {"configure": ".*", "write": "^$", "read": ".*"})
    r = u.post("/api/exchanges/%2F/amq.default/publish",
               {"properties": {}, "routing_key": n, "payload": "a", "payload_encoding": "string"})
    assert r.status == 403
    api.ok("DELETE", "/api/queues/%2F/" + q(n))


def test_topic_permissions_apply_to_http_publish(api, users):
    u, name = users("management", (".*", ".*", ".*"))
    api.ok("PUT", "/api/topic-permissions/%%2F/%s" % q(name),
           {"exchange": "amq.topic", "write": "^allowed\\.", "read": ".*"})
    body = {"properties": {}, "payload": "x", "payload_encoding": "string"}
    assert u.ok("POST", "/api/exchanges/%2F/amq.topic/publish",
                dict(body, routing_key="allowed.k"))["routed"] is False
    r = u.post("/api/exchanges/%2F/amq.topic/publish", dict(body, routing_key="other.k"))
    assert r.status == 403
    assert reason(r) == ("access to topic 'other.k' in exchange 'amq.topic' in vhost '/' "
                         "refused for user '%s'" % name)


# ------------------------------------------------------------ durable over HTTP

def test_http_declared_durable_objects_survive_restart(fresh_broker):
    from coney_util import restart_broker
    api = Api(fresh_broker)
    api.ok("PUT", "/api/exchanges/%2F/dx", {"type": "direct", "durable": True}, 201)
    api.ok("PUT", "/api/queues/%2F/dq", {"durable": True}, 201)
    api.ok("PUT", "/api/queues/%2F/tq", {"durable": False}, 201)
    api.ok("POST", "/api/bindings/%2F/e/dx/q/dq", {"routing_key": "k"}, 201)
    api.ok("POST", "/api/exchanges/%2F/dx/publish", {
        "properties": {"delivery_mode": 2}, "routing_key": "k", "payload": "kept",
        "payload_encoding": "string"})
    restart_broker(fresh_broker)
    assert api.get("/api/exchanges/%2F/dx").status == 200
    assert api.ok("GET", "/api/queues/%2F/dq")["messages"] == 1
    assert api.get("/api/queues/%2F/tq").status == 404
    assert [b["routing_key"] for b in api.ok("GET", "/api/bindings/%2F/e/dx/q/dq")] == ["k"]
    got = api.ok("POST", "/api/queues/%2F/dq/get",
                 {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
    assert got[0]["payload"] == "kept" and got[0]["properties"]["delivery_mode"] == 2
    api.ok("DELETE", "/api/exchanges/%2F/dx")
    restart_broker(fresh_broker)
    assert api.get("/api/exchanges/%2F/dx").status == 404
    assert api.ok("GET", "/api/queues/%2F/dq")["messages"] == 0


# ------------------------------------------------------------ rabbitmqadmin

def _rabbitmqadmin():
    for p in (shutil.which("rabbitmqadmin"),
              "/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/plugins/rabbitmq_management-3.10.8"
              "/priv/www/cli/rabbitmqadmin"):
        if p and os.path.exists(p):
            return p
    import glob
    found = glob.glob("/usr/lib/rabbitmq/lib/*/plugins/rabbitmq_management-*/priv/www/cli/"
                      "rabbitmqadmin")
    return found[0] if found else None


def test_rabbitmqadmin_drives_coney(api, broker):
    tool = _rabbitmqadmin()
    if not tool:
        pytest.skip("rabbitmqadmin not installed (it comes with Debian's rabbitmq-server: "
                    "scripts/deps.sh bench)")

    def run(*args):
        p = subprocess.run(["/usr/bin/python3", tool, "-H", broker.host, "-P",
                            str(broker.http_port), "-u", "guest", "-p", "guest"] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        assert p.returncode == 0, "rabbitmqadmin %s: %s %s" % (" ".join(args), p.stdout,
                                                              p.stderr)
        return p.stdout

    n, x = uname("q"), uname("x")
    run("declare", "queue", "name=" + n, "durable=false")
    run("declare", "exchange", "name=" + x, "type=fanout", "durable=false")
    run("declare", "binding", "source=" + x, "destination=" + n)
    assert n in run("-f", "tsv", "-q", "list", "queues", "name")
    assert x in run("-f", "tsv", "-q", "list", "exchanges", "name")
    assert x in run("-f", "tsv", "-q", "list", "bindings", "source", "destination")
    out = run("publish", "exchange=" + x, "routing_key=any", "payload=from-rabbitmqadmin")
    assert "Message published" in out
    out = run("-f", "tsv", "get", "queue=" + n, "ackmode=ack_requeue_false")
    assert "from-rabbitmqadmin" in out
    run("purge", "queue", "name=" + n)
    run("delete", "binding", "source=" + x, "destination=" + n, "destination_type=queue",
        "properties_key=~")
    assert api.ok("GET", "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(n))) == []
    run("delete", "exchange", "name=" + x)
    run("delete", "queue", "name=" + n)
    assert api.get("/api/queues/%2F/" + q(n)).status == 404


def test_tilde_routing_key_is_not_the_empty_one(api):
    n = uname("q")
    api.ok("PUT", "/api/queues/%2F/" + q(n), {"durable": False})
    eq = "/api/bindings/%%2F/e/amq.direct/q/%s" % q(n)
    assert api.post(eq, {"routing_key": "~"}).headers["Location"].endswith("/" + q("%7E"))
    api.ok("POST", eq, {"routing_key": ""}, 201)
    assert sorted(b["properties_key"] for b in api.ok("GET", eq)) == ["%7E", "~"]
    api.ok("DELETE", eq + "/~", status=204)
    assert [b["routing_key"] for b in api.ok("GET", eq)] == ["~"]
    api.ok("DELETE", eq + "/" + q("%7E"), status=204)
    assert api.ok("GET", eq) == []
    assert n in {x["name"] for x in api.ok("GET", "/api/queues/detailed")}
    api.ok("DELETE", "/api/queues/%2F/" + q(n))
