"""Vhosts, users, permissions, topic permissions, limits and definitions
over the management HTTP API, as RabbitMQ's management plugin serves them:
changes made over HTTP hold for AMQP logins, definitions exported by one
Coney import into a fresh one (durable objects persisted across a
restart), and a definitions file in RabbitMQ 3.x's format, with a password
hash made here by RabbitMQ's documented scheme, imports and its user logs
in. Exchanges, queues and bindings are test_27_http_objects.py."""

import base64
import hashlib
import json
import os

import pika
import pika.exceptions
import pytest

from coney_util import restart_broker, start_broker, uname
from http_client import Api, q


@pytest.fixture
def api(broker):
    if not broker.http_port:
        pytest.skip("the broker under test has no known management port")
    return Api(broker)


def rabbit_hash(password, salt=None):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt4 + sha256(salt4 + password))."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def amqp_login(broker, user, password, vhost="/"):
    """True if the user can open a connection (and a channel) to vhost."""
    try:
        c = broker.connect(user=user, password=password, vhost=vhost)
    except (pika.exceptions.ProbableAuthenticationError,
            pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker,
            pika.exceptions.AMQPConnectionError):
        return False
    c.channel()
    c.close()
    return True


# ------------------------------------------------------------ vhosts

def test_vhost_put_get_delete(api, broker):
    v = uname("vh")
    path = "/api/vhosts/" + q(v)
    assert api.put(path, {"description": "for tests", "tags": "a,b"}).status == 201
    got = api.ok("GET", path)
    assert got["name"] == v and got["description"] == "for tests"
    assert got["tags"] == ["a", "b"]
    assert got["metadata"]["description"] == "for tests"
    for f in ("messages", "messages_ready", "messages_unacknowledged", "cluster_state",
              "default_queue_type", "tracing"):
        assert f in got, f
    assert api.put(path, {"description": "changed", "tags": ["c"]}).status == 204
    got = api.ok("GET", path)
    assert got["description"] == "changed" and got["tags"] == ["c"]
    assert v in {x["name"] for x in api.ok("GET", "/api/vhosts")}
    # its creator got full permissions, as with RabbitMQ's handler
    perms = api.ok("GET", path + "/permissions")
    assert perms == [{"user": "guest", "vhost": v, "configure": ".*", "write": ".*",
                      "read": ".*"}]
    assert amqp_login(broker, "guest", "guest", v)
    assert api.ok("GET", path + "/topic-permissions") == []
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404
    assert not amqp_login(broker, "guest", "guest", v)


def test_vhost_delete_takes_its_objects(api, broker):
    v = uname("vh")
    api.ok("PUT", "/api/vhosts/" + q(v), status=201)
    api.ok("PUT", "/api/queues/%s/qq" % q(v), {"durable": True}, 201)
    api.ok("PUT", "/api/exchanges/%s/xx" % q(v), {"type": "fanout"}, 201)
    api.ok("DELETE", "/api/vhosts/" + q(v), status=204)
    api.ok("PUT", "/api/vhosts/" + q(v), status=201)
    assert api.get("/api/queues/%s/qq" % q(v)).status == 404
    assert api.get("/api/exchanges/%s/xx" % q(v)).status == 404
    api.ok("DELETE", "/api/vhosts/" + q(v), status=204)


# ------------------------------------------------------------ users

def test_user_put_get_delete(api, broker):
    u = uname("u")
    path = "/api/users/" + q(u)
    assert api.put(path, {"password": "s3cret", "tags": "management,monitoring"}).status == 201
    got = api.ok("GET", path)
    assert got["name"] == u and got["tags"] == ["management", "monitoring"]
    assert got["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    raw = base64.b64decode(got["password_hash"])
    assert len(raw) == 36
    assert hashlib.sha256(raw[:4] + b"s3cret").digest() == raw[4:]
    assert got["limits"] == {}
    assert u in {x["name"] for x in api.ok("GET", "/api/users")}
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(u), {"configure": ".*", "write": ".*",
                                                     "read": ".*"}, 201)
    assert amqp_login(broker, u, "s3cret")
    # a new password by hash, tags as an array
    assert api.put(path, {"password_hash": rabbit_hash("other"),
                          "hashing_algorithm": "rabbit_password_hashing_sha256",
                          "tags": ["administrator"]}).status == 204
    assert api.ok("GET", path)["tags"] == ["administrator"]
    assert amqp_login(broker, u, "other")
    assert not amqp_login(broker, u, "s3cret")
    assert api.put(path, {"password": "third"}).status == 204
    assert api.ok("GET", path)["tags"] == ["administrator"]     # kept when not given
    assert amqp_login(broker, u, "third")
    r = api.put("/api/users/" + q(uname("u")), {"tags": ""})
    assert r.status == 400
    r = api.put(path, {"password_hash": "not base64!", "tags": ""})
    assert r.status == 400
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404
    assert not amqp_login(broker, u, "third")


def test_user_lists_and_bulk_delete(api):
    a, b, c = uname("ua"), uname("ub"), uname("uc")
    for n in (a, b, c):
        api.ok("PUT", "/api/users/" + q(n), {"password": "pw", "tags": ""}, 201)
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(a), {"configure": "", "write": "", "read": ".*"})
    without = {x["name"] for x in api.ok("GET", "/api/users/without-permissions")}
    assert b in without and c in without and a not in without
    assert api.ok("GET", "/api/users/%s/permissions" % q(a)) == [
        {"user": a, "vhost": "/", "configure": "", "write": "", "read": ".*"}]
    assert api.get("/api/users/no-such-%s/permissions" % q(a)).status == 404
    api.ok("POST", "/api/users/bulk-delete", {"users": [a, b, "nobody-" + c]}, 204)
    assert api.get("/api/users/" + q(a)).status == 404
    assert api.get("/api/users/" + q(b)).status == 404
    assert api.get("/api/users/" + q(c)).status == 200
    api.ok("DELETE", "/api/users/" + q(c))


def test_hash_password(api):
    got = api.ok("GET", "/api/auth/hash_password/" + q("pa ss/wörd"))
    raw = base64.b64decode(got["ok"])
    assert len(raw) == 36
    assert hashlib.sha256(raw[:4] + "pa ss/wörd".encode()).digest() == raw[4:]


# ------------------------------------------------------------ permissions

def test_permissions(api, broker):
    u = uname("u")
    api.ok("PUT", "/api/users/" + q(u), {"password": "pw", "tags": ""})
    path = "/api/permissions/%%2F/%s" % q(u)
    assert api.get(path).status == 404
    assert not amqp_login(broker, u, "pw")
    assert api.put(path, {"configure": "^c", "write": "^w", "read": "^r"}).status == 201
    assert api.ok("GET", path) == {"user": u, "vhost": "/", "configure": "^c", "write": "^w",
                                   "read": "^r"}
    assert amqp_login(broker, u, "pw")
    assert api.put(path, {"configure": ".*", "write": ".*", "read": ".*"}).status == 204
    assert {"user": u, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"} in \
        api.ok("GET", "/api/permissions")
    assert u in {p["user"] for p in api.ok("GET", "/api/vhosts/%2F/permissions")}
    r = api.put(path, {"configure": "(", "write": "", "read": ""})
    assert r.status == 400 and "invalid pattern" in r.json["reason"]
    assert api.put(path, {"configure": ".*"}).status == 400
    assert api.put("/api/permissions/no-such-vhost/%s" % q(u),
                   {"configure": "", "write": "", "read": ""}).status == 404
    assert api.delete(path).status == 204
    assert api.delete(path).status == 404
    assert not amqp_login(broker, u, "pw")
    api.ok("DELETE", "/api/users/" + q(u))


def test_topic_permissions(api, broker):
    u = uname("u")
    api.ok("PUT", "/api/users/" + q(u), {"password": "pw", "tags": ""})
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(u), {"configure": ".*", "write": ".*",
                                                     "read": ".*"})
    path = "/api/topic-permissions/%%2F/%s" % q(u)
    assert api.get(path).status == 404
    assert api.put(path, {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"}).status == 201
    assert api.put(path, {"exchange": "amq.topic", "write": "^b\\.", "read": ".*"}).status == 204
    want = {"user": u, "vhost": "/", "exchange": "amq.topic", "write": "^b\\.", "read": ".*"}
    assert api.ok("GET", path) == [want]
    assert want in api.ok("GET", "/api/topic-permissions")
    assert api.ok("GET", "/api/users/%s/topic-permissions" % q(u)) == [want]
    assert want in api.ok("GET", "/api/vhosts/%2F/topic-permissions")
    # it holds for AMQP publishers
    c = broker.connect(user=u, password="pw")
    ch = c.channel()
    ch.basic_publish("amq.topic", "b.ok", b"x")
    ch.basic_publish("amq.topic", "a.no", b"x")
    from coney_util import channel_close_reason
    e = channel_close_reason(ch)
    assert e.reply_code == 403
    c.close()
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404
    api.ok("DELETE", "/api/users/" + q(u))


# ------------------------------------------------------------ limits

def test_vhost_limits(api, broker):
    v = uname("vh")
    api.ok("PUT", "/api/vhosts/" + q(v), status=201)
    assert api.ok("GET", "/api/vhost-limits/" + q(v)) == []
    api.ok("PUT", "/api/vhost-limits/%s/max-connections" % q(v), {"value": 1}, 204)
    api.ok("PUT", "/api/vhost-limits/%s/max-queues" % q(v), {"value": 5}, 204)
    want = {"vhost": v, "value": {"max-connections": 1, "max-queues": 5}}
    assert api.ok("GET", "/api/vhost-limits/" + q(v)) == [want]
    assert want in api.ok("GET", "/api/vhost-limits")
    c1 = broker.connect(vhost=v)
    assert not amqp_login(broker, "guest", "guest", v)
    c1.close()
    r = api.put("/api/vhost-limits/%s/max-bananas" % q(v), {"value": 1})
    assert r.status == 400
    assert api.put("/api/vhost-limits/%s/max-queues" % q(v), {"value": "x"}).status == 400
    api.ok("DELETE", "/api/vhost-limits/%s/max-connections" % q(v), status=204)
    assert api.ok("GET", "/api/vhost-limits/" + q(v)) == [{"vhost": v,
                                                           "value": {"max-queues": 5}}]
    api.ok("DELETE", "/api/vhosts/" + q(v))


def test_user_limits(api, broker):
    u = uname("u")
    api.ok("PUT", "/api/users/" + q(u), {"password": "pw", "tags": ""})
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(u), {"configure": ".*", "write": ".*",
                                                     "read": ".*"})
    assert api.ok("GET", "/api/user-limits/" + q(u)) == []
    api.ok("PUT", "/api/user-limits/%s/max-connections" % q(u), {"value": 1}, 204)
    want = {"user": u, "value": {"max-connections": 1}}
    assert api.ok("GET", "/api/user-limits/" + q(u)) == [want]
    assert want in api.ok("GET", "/api/user-limits")
    assert api.ok("GET", "/api/users/" + q(u))["limits"] == {"max-connections": 1}
    c1 = broker.connect(user=u, password="pw")
    assert not amqp_login(broker, u, "pw")
    c1.close()
    api.ok("DELETE", "/api/user-limits/%s/max-connections" % q(u), status=204)
    assert api.ok("GET", "/api/user-limits/" + q(u)) == []
    api.ok("DELETE", "/api/users/" + q(u))


# ------------------------------------------------------------ who may

def test_access_endpoints_need_administrator(api):
    u = uname("u")
    api.ok("PUT", "/api/users/" + q(u), {"password": "pw", "tags": "management,monitoring"})
    api.ok("PUT", "/api/permissions/%%2F/%s" % q(u), {"configure": ".*", "write": ".*",
                                                     "read": ".*"})
    m = api.as_user(u, "pw")
    for method, path in (("GET", "/api/users"), ("GET", "/api/users/guest"),
                         ("PUT", "/api/users/" + q(uname("x"))), ("GET", "/api/permissions"),
                         ("PUT", "/api/vhosts/" + q(uname("v"))),
                         ("DELETE", "/api/vhosts/%2F"),
                         ("PUT", "/api/permissions/%%2F/%s" % q(u)),
                         ("PUT", "/api/vhost-limits/%2F/max-queues"),
                         ("GET", "/api/definitions"), ("POST", "/api/definitions"),
                         ("GET", "/api/user-limits")):
        r = m.call(method, path, {})
        assert r.status == 403, (method, path, r)
        assert r.json["error"] == "not_authorised"
    assert m.get("/api/vhosts").status == 200
    assert m.get("/api/vhost-limits").status == 200
    api.ok("DELETE", "/api/users/" + q(u))


def test_parameters_are_not_implemented(api):
    """Runtime parameters are not implemented (policies are: test_35,
    test_38)."""
    for path in ("/api/parameters", "/api/parameters/shovel", "/api/parameters/shovel/%2F",
                 "/api/global-parameters"):
        assert api.ok("GET", path) == [], path
    r = api.put("/api/parameters/shovel/%2F/s1", {"value": {}})
    assert r.status == 501 and r.json["error"] == "not_implemented"
    assert api.get("/api/parameters/shovel/%2F/s1").status == 404


# ------------------------------------------------------------ definitions

def test_export_shape(api, ch):
    x, n = uname("x"), uname("q")
    api.ok("PUT", "/api/exchanges/%2F/" + q(x), {"type": "topic", "durable": True,
                                                 "arguments": {"alternate-exchange": "ae"}})
    ch.queue_declare(n, durable=True, arguments={"x-max-length": 10})
    ch.queue_bind(n, x, "a.*")
    excl = ch.queue_declare("", exclusive=True).method.queue
    d = api.ok("GET", "/api/definitions")
    for k in ("rabbit_version", "rabbitmq_version", "product_name", "product_version", "users",
              "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
              "policies", "queues", "exchanges", "bindings"):
        assert k in d, k
    assert d["product_name"] == "Coney"
    assert d["parameters"] == [] and d["global_parameters"] == []
    assert isinstance(d["policies"], list)
    guest = next(u for u in d["users"] if u["name"] == "guest")
    assert set(guest) >= {"name", "password_hash", "hashing_algorithm", "tags", "limits"}
    assert guest["tags"] == ["administrator"]
    assert any(v["name"] == "/" for v in d["vhosts"])
    assert {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*",
            "read": ".*"} in d["permissions"]
    assert {"name": x, "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
            "internal": False, "arguments": {"alternate-exchange": "ae"}} in d["exchanges"]
    assert not any(e["name"] == "" or e["name"].startswith("amq.") for e in d["exchanges"])
    assert {"name": n, "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 10}} in d["queues"]
    assert not any(qq["name"] == excl for qq in d["queues"])
    assert {"source": x, "vhost": "/", "destination": n, "destination_type": "queue",
            "routing_key": "a.*", "arguments": {}} in d["bindings"]
    assert not any(b["source"] == "" for b in d["bindings"])
    one = api.ok("GET", "/api/definitions/%2F")
    assert "users" not in one and "vhosts" not in one
    assert {"name": n, "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 10}} in one["queues"]
    ch.queue_delete(n)
    api.ok("DELETE", "/api/exchanges/%2F/" + q(x))


def _strip_export(d):
    """What must match between two brokers' exports (hash salts differ
    only for the default user each broker made itself)."""
    d = dict(d)
    d["users"] = sorted((u for u in d["users"] if u["name"] != "guest"),
                        key=lambda u: u["name"])
    for k in ("vhosts", "permissions", "topic_permissions", "queues", "exchanges",
              "bindings"):
        d[k] = sorted(d[k], key=lambda o: json.dumps(o, sort_keys=True))
    return d


def test_definitions_round_trip(fresh_broker, coney_bin):
    a = Api(fresh_broker)
    v = "round/trip"
    a.ok("PUT", "/api/vhosts/" + q(v), {"description": "moved", "tags": "t1,t2"}, 201)
    a.ok("PUT", "/api/vhost-limits/%s/max-queues" % q(v), {"value": 50})
    a.ok("PUT", "/api/users/alice", {"password": "alice-pw", "tags": "management"}, 201)
    a.ok("PUT", "/api/user-limits/alice/max-channels", {"value": 7})
    a.ok("PUT", "/api/permissions/%s/alice" % q(v), {"configure": "^a", "write": ".*",
                                                      "read": ".*"})
    a.ok("PUT", "/api/topic-permissions/%s/alice" % q(v),
         {"exchange": "amq.topic", "write": "^x", "read": ".*"})
    a.ok("PUT", "/api/exchanges/%s/ex1" % q(v), {"type": "topic", "durable": True}, 201)
    a.ok("PUT", "/api/exchanges/%s/ex2" % q(v), {"type": "headers", "durable": True}, 201)
    a.ok("PUT", "/api/exchanges/%s/tx" % q(v), {"type": "fanout", "durable": False}, 201)
    a.ok("PUT", "/api/queues/%s/dq" % q(v), {"durable": True,
                                             "arguments": {"x-message-ttl": 5000}}, 201)
    a.ok("PUT", "/api/queues/%s/tq" % q(v), {"durable": False}, 201)
    a.ok("POST", "/api/bindings/%s/e/ex1/q/dq" % q(v), {"routing_key": "k.#"}, 201)
    a.ok("POST", "/api/bindings/%s/e/ex1/e/ex2" % q(v), {"routing_key": "r"}, 201)
    a.ok("POST", "/api/bindings/%s/e/ex2/q/dq" % q(v),
         {"routing_key": "", "arguments": {"x-match": "all", "h": 1}}, 201)
    a.ok("POST", "/api/bindings/%s/e/tx/q/tq" % q(v), {"routing_key": ""}, 201)
    exported = a.ok("GET", "/api/definitions")

    b = start_broker(coney_bin)
    try:
        bapi = Api(b)
        bapi.ok("POST", "/api/definitions", exported, 204)
        assert _strip_export(bapi.ok("GET", "/api/definitions")) == _strip_export(exported)
        # importing again merges: nothing changes, nothing fails
        bapi.ok("POST", "/api/definitions", exported, 204)
        assert _strip_export(bapi.ok("GET", "/api/definitions")) == _strip_export(exported)
        assert amqp_login(b, "alice", "alice-pw", v)
        # the durable half survives a restart, the transient half does not
        restart_broker(b)
        after = bapi.ok("GET", "/api/definitions")
        assert {x["name"] for x in after["exchanges"]} == {"ex1", "ex2"}
        assert {x["name"] for x in after["queues"]} == {"dq"}
        assert sorted((x["source"], x["destination"]) for x in after["bindings"]) == [
            ("ex1", "dq"), ("ex1", "ex2"), ("ex2", "dq")]
        assert next(x for x in after["vhosts"] if x["name"] == v)["limits"] == {
            "max-queues": 50}
        assert next(u for u in after["users"] if u["name"] == "alice")["limits"] == {
            "max-channels": 7}
        assert amqp_login(b, "alice", "alice-pw", v)
        # and the bindings route
        c = b.connect(user="guest", password="guest", vhost=v)
        ch = c.channel()
        ch.basic_publish("ex1", "k.1", b"routed-after-import")
        from coney_util import get_one
        assert get_one(ch, "dq", auto_ack=True)[2] == b"routed-after-import"
        c.close()
        rc = b.stop()
        b.check_clean_exit(rc)
    finally:
        b.cleanup()


def test_import_rabbitmq_definitions_file(fresh_broker, tmp_path):
    """A file as RabbitMQ 3.x's `rabbitmqctl export_definitions` writes it,
    with sections Coney does not implement."""
    doc = {
        "rabbit_version": "3.12.13",
        "rabbitmq_version": "3.12.13",
        "product_name": "RabbitMQ",
        "product_version": "3.12.13",
        "users": [
            {"name": "migrated", "password_hash": rabbit_hash("from-rabbit"),
             "hashing_algorithm": "rabbit_password_hashing_sha256",
             "tags": "administrator", "limits": {}},
            {"name": "legacy", "password_hash": rabbit_hash("older"),
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"],
             "limits": {"max-connections": 3}},
            {"name": "nopass", "password_hash": "",
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
        ],
        "vhosts": [{"name": "/"}, {"name": "prod", "description": "production",
                                   "tags": ["critical"], "metadata": {
                                       "description": "production", "tags": ["critical"]}}],
        "permissions": [
            {"user": "migrated", "vhost": "prod", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "legacy", "vhost": "/", "configure": "", "write": ".*", "read": ".*"},
        ],
        "topic_permissions": [{"user": "legacy", "vhost": "/", "exchange": "amq.topic",
                               "write": "^legacy\\.", "read": ".*"}],
        "parameters": [
            {"value": {"max-connections": 20}, "vhost": "prod", "component": "vhost-limits",
             "name": "limits"},
            {"value": {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://",
                       "dest-queue": "b"}, "vhost": "prod", "component": "shovel",
             "name": "my-shovel"},
        ],
        "global_parameters": [{"name": "cluster_name", "value": "rabbit@old"},
                              {"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
        "policies": [{"vhost": "prod", "name": "ttl", "pattern": ".*", "apply-to": "queues",
                      "definition": {"message-ttl": 1000}, "priority": 0}],
        "queues": [
            {"name": "orders", "vhost": "prod", "durable": True, "auto_delete": False,
             "arguments": {"x-queue-type": "classic", "x-max-length": 1000}},
            {"name": "scratch", "vhost": "prod", "durable": False, "auto_delete": False,
             "arguments": {}},
        ],
        "exchanges": [
            {"name": "events", "vhost": "prod", "type": "topic", "durable": True,
             "auto_delete": False, "internal": False, "arguments": {}},
            {"name": "dlx", "vhost": "prod", "type": "fanout", "durable": True,
             "auto_delete": False, "internal": True, "arguments": {}},
        ],
        "bindings": [
            {"source": "events", "vhost": "prod", "destination": "orders",
             "destination_type": "queue", "routing_key": "order.*", "arguments": {}},
            {"source": "events", "vhost": "prod", "destination": "dlx",
             "destination_type": "exchange", "routing_key": "#", "arguments": {}},
        ],
        "some_future_section": [{"x": 1}],
    }
    path = tmp_path / "rabbitmq-definitions.json"
    path.write_text(json.dumps(doc, indent=2))
    api = Api(fresh_broker)
    r = api.call("POST", "/api/definitions", raw=path.read_bytes())
    assert r.status == 204, r
    log = fresh_broker.log()
    assert "skipping unknown section 'some_future_section'" in log
    assert "shovel" in log
    assert api.ok("GET", "/api/policies/prod/ttl")["definition"] == {"message-ttl": 1000}
    # the users log in with the passwords RabbitMQ hashed
    assert amqp_login(fresh_broker, "migrated", "from-rabbit", "prod")
    assert not amqp_login(fresh_broker, "migrated", "wrong", "prod")
    assert amqp_login(fresh_broker, "legacy", "older", "/")
    assert not amqp_login(fresh_broker, "nopass", "", "/")
    assert api.ok("GET", "/api/users/migrated")["tags"] == ["administrator"]
    assert api.ok("GET", "/api/users/legacy")["limits"] == {"max-connections": 3}
    assert api.as_user("migrated", "from-rabbit").get("/api/users").status == 200
    prod = api.ok("GET", "/api/vhosts/prod")
    assert prod["description"] == "production" and prod["tags"] == ["critical"]
    assert api.ok("GET", "/api/vhost-limits/prod") == [{"vhost": "prod",
                                                        "value": {"max-connections": 20}}]
    assert api.ok("GET", "/api/topic-permissions/%2F/legacy")[0]["write"] == "^legacy\\."
    assert api.ok("GET", "/api/queues/prod/orders")["arguments"] == {
        "x-queue-type": "classic", "x-max-length": 1000}
    assert api.ok("GET", "/api/exchanges/prod/dlx")["internal"] is True
    c = fresh_broker.connect(user="migrated", password="from-rabbit", vhost="prod")
    ch = c.channel()
    ch.basic_publish("events", "order.new", b"o1")
    from coney_util import get_one
    assert get_one(ch, "orders", auto_ack=True)[2] == b"o1"
    c.close()
    restart_broker(fresh_broker)
    assert api.get("/api/queues/prod/orders").status == 200
    assert api.get("/api/queues/prod/scratch").status == 404
    assert amqp_login(fresh_broker, "migrated", "from-rabbit", "prod")


def test_import_errors(api):
    r = api.call("POST", "/api/definitions", raw=b'{"queues": [')
    assert r.status == 400 and r.json["error"] == "bad_request"
    r = api.post("/api/definitions", {"queues": [{"name": "q", "vhost": "no-such-vhost",
                                                  "durable": True}]})
    assert r.status == 400 and "no-such-vhost" in r.json["reason"]
    r = api.post("/api/definitions", {"queues": {"name": "not-a-list"}})
    assert r.status == 400
    r = api.post("/api/definitions", {"exchanges": [{"name": uname("x"), "vhost": "/",
                                                     "type": "no-such-type"}]})
    assert r.status == 400 and "invalid exchange type" in r.json["reason"]


def test_import_into_one_vhost(api):
    v = uname("vh")
    api.ok("PUT", "/api/vhosts/" + q(v), status=201)
    doc = {"queues": [{"name": "only-here", "vhost": "ignored", "durable": False,
                       "auto_delete": False, "arguments": {}}],
           "exchanges": [{"name": "xh", "type": "direct", "durable": False,
                          "auto_delete": False, "internal": False, "arguments": {}}],
           "bindings": [{"source": "xh", "destination": "only-here",
                         "destination_type": "queue", "routing_key": "r", "arguments": {}}]}
    api.ok("POST", "/api/definitions/" + q(v), doc, 204)
    assert api.get("/api/queues/%s/only-here" % q(v)).status == 200
    got = api.ok("GET", "/api/definitions/" + q(v))
    assert [x["name"] for x in got["queues"]] == ["only-here"]
    assert got["bindings"] == [{"source": "xh", "destination": "only-here",
                                "destination_type": "queue", "routing_key": "r",
                                "arguments": {}}]
    api.ok("DELETE", "/api/vhosts/" + q(v))
