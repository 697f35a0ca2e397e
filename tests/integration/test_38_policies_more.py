"""Policies beyond test_35: operator policies (administrator only; their
numeric keys cap the policy's and the queue's), what RabbitMQ refuses in a
definition, who may manage policies (policymaker in its vhosts,
administrator everywhere), the policy fields of /api/queues and
/api/exchanges, policies in the definitions export and import, coney-ctl's
policy commands, and (coney-only) policies surviving a restart.

Against a target, CONEY_TEST_HTTP names its management API (ext_util);
the tests that start their own broker are coney-only."""

import json
import os
import subprocess

import pika
import pytest

from coney_util import TIMEOUT, restart_broker, start_broker, uname
from ext_util import bodies, coney_only, count, http_api, wait_count
from http_client import Api, q as quote


def publish(ch, q, n, prefix=b"m", persistent=False):
    p = pika.BasicProperties(delivery_mode=2) if persistent else None
    for i in range(n):
        ch.basic_publish("", q, prefix + b"%d" % i, p)


class Pol:
    """Policies and operator policies under this test's own prefix,
    deleted at teardown."""

    def __init__(self, api, vhost="/"):
        self.api = api
        self.vhost = vhost
        self.prefix = uname("pol38")
        self.made = set()

    def name(self, suffix):
        return "%s.%s" % (self.prefix, suffix)

    def pattern(self):
        return "^" + (self.prefix + ".").replace(".", "\\.")

    def path(self, kind, name):
        return "/api/%s/%s/%s" % (kind, quote(self.vhost), quote(self.prefix + "-" + name))

    def put(self, name, definition, kind="policies", priority=0, apply_to="queues",
            api=None, pattern=None):
        self.made.add((kind, name))
        return (api or self.api).put(self.path(kind, name), {
            "pattern": pattern or self.pattern(), "definition": definition,
            "priority": priority, "apply-to": apply_to})

    def set(self, name, definition, kind="policies", **kw):
        r = self.put(name, definition, kind, **kw)
        assert r.status in (201, 204), r
        return r

    def cleanup(self):
        for kind, name in self.made:
            self.api.delete(self.path(kind, name))


@pytest.fixture
def pol(broker):
    p = Pol(http_api(broker))
    yield p
    p.cleanup()


# ------------------------------------------------------------ operator policies

def test_operator_policy_put_get_delete(pol):
    api = pol.api
    path = pol.path("operator-policies", "cap")
    r = pol.put("cap", {"max-length": 5}, kind="operator-policies", priority=2)
    assert r.status == 201, r
    assert pol.put("cap", {"max-length": 6}, kind="operator-policies", priority=2).status == 204
    got = api.get(path)
    assert got.status == 200, got
    assert got.json == {"vhost": "/", "name": pol.prefix + "-cap", "pattern": pol.pattern(),
                        "apply-to": "queues", "definition": {"max-length": 6}, "priority": 2}
    assert pol.prefix + "-cap" in [p["name"] for p in api.ok("GET", "/api/operator-policies")]
    assert pol.prefix + "-cap" in [p["name"] for p in api.ok("GET",
                                                             "/api/operator-policies/%2F")]
    # operator policies are not policies
    assert api.get(pol.path("policies", "cap")).status == 404
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404


def test_operator_policy_refuses_keys_only_policies_take(pol):
    for definition in ({"dead-letter-exchange": "x"}, {"alternate-exchange": "ae"},
                       {"overflow": "reject-publish"}):
        r = pol.put("bad", definition, kind="operator-policies")
        assert r.status == 400, (definition, r)
        assert r.json["error"] == "bad_request"
        assert r.json["reason"].startswith("Validation failed"), r.json
    assert pol.api.get(pol.path("operator-policies", "bad")).status == 404


def test_operator_policy_caps_policy_and_argument(ch, pol):
    ch.confirm_delivery()
    plain = ch.queue_declare(pol.name("plain"), exclusive=True).method.queue
    arg = ch.queue_declare(pol.name("arg"), exclusive=True,
                           arguments={"x-max-length": 1}).method.queue
    pol.set("user", {"max-length": 4})
    pol.set("op", {"max-length": 2}, kind="operator-policies")
    publish(ch, plain, 6)
    publish(ch, arg, 6)
    assert count(ch, plain) == 2, "the operator's lower max-length did not win"
    assert count(ch, arg) == 1, "the argument's lower max-length did not win"
    # a higher operator value does not raise the policy's
    pol.set("op", {"max-length": 10}, kind="operator-policies")
    publish(ch, plain, 6, b"n")
    assert count(ch, plain) == 4
    # without the policy the operator policy applies alone
    pol.api.delete(pol.path("policies", "user"))
    pol.made.discard(("policies", "user"))
    publish(ch, plain, 10, b"o")
    assert count(ch, plain) == 10


def test_operator_policy_message_ttl_applies_to_waiting_messages(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    publish(ch, q, 3)
    pol.set("ttl", {"message-ttl": 50}, kind="operator-policies")
    wait_count(ch, q, 0)


def test_queue_and_exchange_show_their_policies(ch, pol):
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    x = pol.name("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.queue_bind(q, x, "k")
    pol.set("p", {"max-length": 7, "dead-letter-exchange": "dlx"}, apply_to="all")
    pol.set("o", {"max-length": 3, "message-ttl": 9000}, kind="operator-policies")
    item = pol.api.ok("GET", "/api/queues/%2F/" + quote(q))
    assert item["policy"] == pol.prefix + "-p"
    assert item["operator_policy"] == pol.prefix + "-o"
    assert item["effective_policy_definition"] == {"max-length": 3, "dead-letter-exchange": "dlx",
                                                   "message-ttl": 9000}
    xitem = pol.api.ok("GET", "/api/exchanges/%2F/" + quote(x))
    assert xitem["policy"] == pol.prefix + "-p"
    other = ch.queue_declare("", exclusive=True).method.queue
    oitem = pol.api.ok("GET", "/api/queues/%2F/" + quote(other))
    assert oitem["policy"] is None and oitem["operator_policy"] is None
    assert oitem["effective_policy_definition"] == {}


# ------------------------------------------------------------ what a definition may hold

def test_definition_keys_rabbitmq_refuses(pol):
    for definition in ({"max-priority": 10}, {"single-active-consumer": True},
                       {"queue-type": "quorum"}, {}, {"expires": 0}, {"message-ttl": -1},
                       {"overflow": "sideways"}, {"dead-letter-exchange": 5},
                       {"queue-mode": "eager"}, {"ha-mode": "some"}):
        r = pol.put("bad", definition)
        assert r.status == 400, (definition, r)
        assert r.json["error"] == "bad_request", r
        assert r.json["reason"].startswith("Validation failed\n\n"), r.json
    assert pol.api.get(pol.path("policies", "bad")).status == 404


def test_definition_keys_accepted(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    for definition in ({"queue-mode": "lazy"}, {"ha-mode": "all", "ha-sync-mode": "automatic"},
                       {"consumer-timeout": 60000}, {"max-length-bytes": 4, "overflow":
                                                     "reject-publish-dlx"},
                       {"alternate-exchange": "amq.fanout"}):
        pol.set("ok", definition)
    publish(ch, q, 3)
    assert count(ch, q) == 3, "the last policy set (alternate-exchange only) still limits"


def test_priority_as_string_and_default_apply_to(pol):
    r = pol.api.put(pol.path("policies", "s"), {"pattern": "^x", "definition": {"max-length": 1},
                                                "priority": "3"})
    pol.made.add(("policies", "s"))
    assert r.status == 201, r
    got = pol.api.ok("GET", pol.path("policies", "s"))
    assert (got["priority"], got["apply-to"]) == (3, "all")
    r = pol.api.put(pol.path("policies", "s2"), {"pattern": "^x",
                                                 "definition": {"max-length": 1},
                                                 "priority": "high"})
    assert r.status == 400, r


# ------------------------------------------------------------ who may

@coney_only("creates users and vhosts on a broker of its own")
def test_policymaker_in_its_vhosts_administrator_everywhere(fresh_broker):
    api = Api(fresh_broker)
    api.ok("PUT", "/api/vhosts/other", {}, 201)
    for user, tags in (("pm", "policymaker"), ("mg", "management"), ("ad", "administrator")):
        api.ok("PUT", "/api/users/" + user, {"password": user + "pw", "tags": tags}, 201)
        api.ok("PUT", "/api/permissions/%2F/" + user,
               {"configure": ".*", "write": ".*", "read": ".*"}, 201)
    body = {"pattern": "^p\\.", "definition": {"max-length": 1}}
    pm, mg, ad = (api.as_user(u, u + "pw") for u in ("pm", "mg", "ad"))
    assert pm.put("/api/policies/%2F/by-pm", body).status == 201
    assert [p["name"] for p in pm.ok("GET", "/api/policies")] == ["by-pm"]
    assert pm.put("/api/policies/other/by-pm", body).status in (401, 403, 404)
    assert mg.put("/api/policies/%2F/by-mg", body).status == 403
    assert mg.get("/api/policies").status == 403
    assert pm.put("/api/operator-policies/%2F/op", body).status == 403
    assert ad.put("/api/policies/other/by-ad", body).status == 201
    assert ad.put("/api/operator-policies/other/op", body).status == 201
    # the policymaker does not see the other vhost's policies
    assert [p["name"] for p in pm.ok("GET", "/api/policies")] == ["by-pm"]
    assert {p["name"] for p in ad.ok("GET", "/api/policies")} == {"by-pm", "by-ad"}
    assert pm.delete("/api/policies/%2F/by-pm").status == 204


# ------------------------------------------------------------ durable

@coney_only("restarts the broker")
def test_policies_survive_a_restart(fresh_broker):
    b = fresh_broker
    api = Api(b)
    api.ok("PUT", "/api/policies/%2F/len", {"pattern": "^pq\\.", "definition": {"max-length": 2},
                                            "priority": 4, "apply-to": "queues"}, 201)
    api.ok("PUT", "/api/policies/%2F/gone", {"pattern": "^pq\\.",
                                             "definition": {"max-length": 1}}, 201)
    api.ok("DELETE", "/api/policies/%2F/gone", None, 204)
    api.ok("PUT", "/api/policies/%2F/ae", {"pattern": "^px$", "apply-to": "exchanges",
                                           "definition": {"alternate-exchange": "amq.fanout"}},
           201)
    api.ok("PUT", "/api/operator-policies/%2F/cap", {"pattern": ".*",
                                                     "definition": {"message-ttl": 600000}},
           201)
    c = b.connect()
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("pq.durable", durable=True)
    ch.exchange_declare("px", "direct", durable=True)
    caught = ch.queue_declare("caught", durable=True).method.queue
    ch.queue_bind(caught, "amq.fanout")
    publish(ch, "pq.durable", 5, persistent=True)
    assert count(ch, "pq.durable") == 2
    c.close()
    before = sorted((p["name"], p["priority"]) for p in api.ok("GET", "/api/policies"))

    restart_broker(b)
    assert sorted((p["name"], p["priority"]) for p in api.ok("GET", "/api/policies")) == before
    assert [p["name"] for p in api.ok("GET", "/api/operator-policies/%2F")] == ["cap"]
    item = api.ok("GET", "/api/queues/%2F/pq.durable")
    assert (item["policy"], item["operator_policy"]) == ("len", "cap")
    c = b.connect()
    ch = c.channel()
    ch.confirm_delivery()
    assert bodies(ch, "pq.durable") == [b"m3", b"m4"]
    publish(ch, "pq.durable", 4, b"n")
    assert count(ch, "pq.durable") == 2, "the recovered queue lost its policy"
    ch.queue_declare("pq.new", exclusive=True)
    publish(ch, "pq.new", 4)
    assert count(ch, "pq.new") == 2
    ch.basic_publish("px", "nowhere", b"stray")
    assert bodies(ch, caught) == [b"stray"], "the exchange lost its policy's alternate"
    c.close()
    # a cleared policy stays cleared, and deleting a vhost takes its policies
    api.ok("DELETE", "/api/policies/%2F/len", None, 204)
    api.ok("PUT", "/api/vhosts/tmp", {}, 201)
    api.ok("PUT", "/api/policies/tmp/p", {"pattern": ".*", "definition": {"expires": 1000}}, 201)
    api.ok("DELETE", "/api/vhosts/tmp", None, 204)
    restart_broker(b)
    assert [p["name"] for p in api.ok("GET", "/api/policies")] == ["ae"]
    api.ok("PUT", "/api/vhosts/tmp", {}, 201)
    assert api.ok("GET", "/api/policies/tmp") == []


# ------------------------------------------------------------ definitions

@coney_only("starts a second broker")
def test_definitions_round_trip_policies(fresh_broker, coney_bin):
    a = Api(fresh_broker)
    a.ok("PUT", "/api/vhosts/dv", {}, 201)
    pols = [
        {"vhost": "/", "name": "ttl", "pattern": "^t\\.", "apply-to": "queues",
         "definition": {"message-ttl": 1000, "dead-letter-exchange": "dlx"}, "priority": 1},
        {"vhost": "dv", "name": "ae", "pattern": ".*", "apply-to": "exchanges",
         "definition": {"alternate-exchange": "amq.fanout"}, "priority": 0},
    ]
    for p in pols:
        a.ok("PUT", "/api/policies/%s/%s" % (quote(p["vhost"]), p["name"]),
             {k: p[k] for k in ("pattern", "apply-to", "definition", "priority")}, 201)
    exported = a.ok("GET", "/api/definitions")
    assert sorted(exported["policies"], key=lambda p: p["name"]) == sorted(
        pols, key=lambda p: p["name"])
    one = a.ok("GET", "/api/definitions/dv")
    assert one["policies"] == [{k: v for k, v in pols[1].items() if k != "vhost"}]

    b = start_broker(coney_bin)
    try:
        bapi = Api(b)
        bapi.ok("POST", "/api/definitions", exported, 204)
        got = sorted(bapi.ok("GET", "/api/policies"), key=lambda p: p["name"])
        assert got == sorted(pols, key=lambda p: p["name"])
        # importing again replaces in place
        bapi.ok("POST", "/api/definitions", exported, 204)
        assert len(bapi.ok("GET", "/api/policies")) == 2
        # a vhost's definitions import into another vhost
        bapi.ok("PUT", "/api/vhosts/v2", {}, 201)
        bapi.ok("POST", "/api/definitions/v2", one, 204)
        assert bapi.ok("GET", "/api/policies/v2/ae")["definition"] == {
            "alternate-exchange": "amq.fanout"}
        # an invalid policy stops the import with RabbitMQ's 400
        r = bapi.post("/api/definitions", {"policies": [
            {"vhost": "/", "name": "bad", "pattern": ".*", "definition": {"max-priority": 3}}]})
        assert r.status == 400 and "Validation failed" in r.json["reason"], r
        assert bapi.get("/api/policies/%2F/bad").status == 404
        # the imported policy applies
        c = b.connect()
        ch = c.channel()
        ch.queue_declare("t.q", exclusive=True)
        item = bapi.ok("GET", "/api/queues/%2F/t.q")
        assert item["policy"] == "ttl"
        c.close()
        rc = b.stop()
        b.check_clean_exit(rc)
    finally:
        b.cleanup()


# ------------------------------------------------------------ coney-ctl

class Ctl:
    def __init__(self, coney_bin, broker):
        self.path = os.path.join(os.path.dirname(coney_bin), "coney-ctl")
        self.broker = broker

    def run(self, *args):
        return subprocess.run([self.path, "--data-dir", self.broker.data_dir] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=TIMEOUT)

    def __call__(self, *args):
        p = self.run(*args)
        assert p.returncode == 0, "coney-ctl %s exited %d: %s" % (" ".join(args), p.returncode,
                                                                 p.stderr)
        return p.stdout

    def fails(self, code, *args):
        p = self.run(*args)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        return p.stderr

    def rows(self, *args):
        lines = self(*args).splitlines()
        head = lines[0].split("\t")
        return head, [dict(zip(head, line.split("\t"))) for line in lines[1:]]


@coney_only("runs coney-ctl on the broker's socket")
def test_ctl_policy_commands(fresh_broker, coney_bin):
    ctl = Ctl(coney_bin, fresh_broker)
    api = Api(fresh_broker)
    ctl("set_policy", "--priority", "5", "--apply-to", "queues", "cap", "^c\\.",
        '{"max-length": 3}')
    ctl("add_vhost", "v1")
    ctl("set_policy", "-p", "v1", "ae", ".*", '{"alternate-exchange": "amq.fanout"}')
    got = api.ok("GET", "/api/policies/%2F/cap")
    assert (got["pattern"], got["priority"], got["apply-to"], got["definition"]) == (
        "^c\\.", 5, "queues", {"max-length": 3})
    assert api.ok("GET", "/api/policies/v1/ae")["apply-to"] == "all"
    head, rows = ctl.rows("list_policies")
    assert head == ["vhost", "name", "pattern", "apply-to", "definition", "priority"]
    assert rows == [{"vhost": "/", "name": "cap", "pattern": "^c\\.", "apply-to": "queues",
                     "definition": '{"max-length":3}', "priority": "5"}]
    assert [r["name"] for r in ctl.rows("list_policies", "-p", "v1")[1]] == ["ae"]
    assert json.loads(ctl("--json", "list_policies"))[0]["name"] == "cap"
    # RabbitMQ's refusals, and usage errors before anything is sent
    assert "Validation failed" in ctl.fails(1, "set_policy", "p", ".*", '{"max-priority": 2}')
    ctl.fails(64, "set_policy", "p", ".*", "not json")
    ctl.fails(64, "set_policy", "--priority", "x", "p", ".*", '{"max-length": 1}')
    ctl.fails(64, "set_policy", "p", ".*")
    assert "not found" in ctl.fails(1, "clear_policy", "nope")
    assert "no such vhost" in ctl.fails(1, "clear_policy", "-p", "nowhere", "cap")
    ctl("clear_policy", "cap")
    assert ctl.rows("list_policies")[1] == []

    ctl("set_operator_policy", "--apply-to", "queues", "ops", ".*", '{"message-ttl": 1000}')
    head, rows = ctl.rows("list_operator_policies")
    assert [(r["name"], r["definition"], r["priority"]) for r in rows] == [
        ("ops", '{"message-ttl":1000}', "0")]
    assert "Validation failed" in ctl.fails(1, "set_operator_policy", "o2", ".*",
                                            '{"dead-letter-exchange": "x"}')
    ctl("clear_operator_policy", "ops")
    assert ctl.rows("list_operator_policies")[1] == []
    assert "not found" in ctl.fails(1, "clear_operator_policy", "ops")
    assert "set_policy" in ctl("--help")
