"""Policies set over the management HTTP API (PUT /api/policies/{vhost}/{name}
with pattern, definition, priority, apply-to) and what they do to queues
and exchanges, as RabbitMQ 3.10 applies them: to matching queues that
exist and to new ones, at once; one policy per object (the highest
priority; definitions do not merge); a queue argument beats the policy for
dead-letter-exchange, the lower value wins for numeric limits; apply-to
queues / exchanges / all; changes and deletion apply to existing objects.

Against a target, CONEY_TEST_HTTP names its management API (ext_util).
Validated against RabbitMQ 3.10.8 with its management plugin."""

import time

import pika
import pika.exceptions
import pytest

from coney_util import drain, get_one, queue_exists, uname, wait_for
from ext_util import bodies, count, http_api, props, wait_count, x_death
from http_client import q as quote


class Policies:
    """Sets policies whose patterns match only names under this test's own
    prefix, and deletes them all at teardown."""

    def __init__(self, api):
        self.api = api
        self.prefix = uname("pol")
        self.names = set()

    def name(self, suffix):
        """A queue/exchange name the prefix's patterns match."""
        return "%s.%s" % (self.prefix, suffix)

    def pattern(self, suffix=""):
        return "^" + (self.prefix + "." + suffix).replace(".", "\\.")

    def set(self, name, definition, pattern=None, priority=0, apply_to="queues", status=None):
        body = {"pattern": pattern or self.pattern(), "definition": definition,
                "priority": priority, "apply-to": apply_to}
        r = self.api.put("/api/policies/%2F/" + quote(self.prefix + "-" + name), body)
        self.names.add(name)
        if status is not None:
            assert r.status == status, r
        else:
            assert r.status in (201, 204), r
        return r

    def delete(self, name):
        r = self.api.delete("/api/policies/%2F/" + quote(self.prefix + "-" + name))
        assert r.status == 204, r
        self.names.discard(name)

    def cleanup(self):
        for n in list(self.names):
            self.api.delete("/api/policies/%2F/" + quote(self.prefix + "-" + n))


@pytest.fixture
def pol(broker):
    p = Policies(http_api(broker))
    yield p
    p.cleanup()


def publish(ch, q, n, prefix=b"m", exchange=""):
    for i in range(n):
        ch.basic_publish(exchange, q, prefix + b"%d" % i)


# ------------------------------------------------------------ the API

def test_policy_put_get_delete(pol):
    api = pol.api
    path = "/api/policies/%2F/" + quote(pol.prefix + "-p")
    pol.set("p", {"max-length": 3}, priority=7, status=201)
    pol.set("p", {"max-length": 4}, priority=7, status=204)     # an update
    got = api.get(path)
    assert got.status == 200, got
    assert got.json == {"vhost": "/", "name": pol.prefix + "-p", "pattern": pol.pattern(),
                        "apply-to": "queues", "definition": {"max-length": 4}, "priority": 7}
    listed = [p["name"] for p in api.ok("GET", "/api/policies/%2F")]
    assert pol.prefix + "-p" in listed
    pol.delete("p")
    assert api.get(path).status == 404
    assert api.delete(path).status == 404


def test_policy_validation_errors_are_400(pol):
    bad = [
        {"pattern": pol.pattern(), "definition": {"max-length": "abc"}},
        {"pattern": pol.pattern(), "definition": {"no-such-key": 1}},
        {"pattern": pol.pattern(), "definition": {"max-length": 1}, "apply-to": "sideways"},
        {"pattern": "(", "definition": {"max-length": 1}},
    ]
    for body in bad:
        r = pol.api.put("/api/policies/%2F/" + quote(pol.prefix + "-bad"), body)
        assert r.status == 400, (body, r)
        assert r.json["error"] == "bad_request", r
    assert pol.api.get("/api/policies/%2F/" + quote(pol.prefix + "-bad")).status == 404


# ------------------------------------------------------------ queue policies

def test_message_ttl_policy_applies_to_existing_and_new_queues(conn, ch, pol):
    ch.confirm_delivery()
    old = ch.queue_declare(pol.name("old"), exclusive=True).method.queue
    other = ch.queue_declare(uname("unmatched"), exclusive=True).method.queue
    pol.set("ttl", {"message-ttl": 150})
    new = ch.queue_declare(pol.name("new"), exclusive=True).method.queue
    for q in (old, new, other):
        ch.basic_publish("", q, b"x")
    wait_count(ch, old, 0)
    wait_count(ch, new, 0)
    assert count(ch, other) == 1


def test_max_length_policy_trims_an_existing_queue_at_once(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    publish(ch, q, 5)
    pol.set("len", {"max-length": 3})
    wait_count(ch, q, 3)
    publish(ch, q, 2, b"n")
    assert bodies(ch, q) == [b"m4", b"n0", b"n1"]


def test_dead_letter_exchange_policy(ch, pol):
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    pol.set("dlx", {"dead-letter-exchange": "", "dead-letter-routing-key": dead})
    ch.basic_publish("", q, b"r")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _, p, body = get_one(ch, dead)
    assert body == b"r"
    (d,) = x_death(p)
    assert (d["queue"], d["reason"]) == (q, "rejected")


def test_overflow_policy_reject_publish(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    pol.set("of", {"max-length": 1, "overflow": "reject-publish"})
    ch.basic_publish("", q, b"a")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"b")
    assert bodies(ch, q) == [b"a"]


def test_expires_policy_deletes_unused_queue(conn, ch, pol):
    q = pol.name("exp")
    pol.set("exp", {"expires": 300})
    ch.queue_declare(q)
    # a passive declare is a use: look less often than the expiry
    wait_for(lambda: not queue_exists(conn, q), interval=0.6, what="queue %s to expire" % q)


def test_queue_argument_beats_policy_for_dead_letter_exchange(ch, pol):
    by_arg = ch.queue_declare("", exclusive=True).method.queue
    by_policy = ch.queue_declare("", exclusive=True).method.queue
    q = ch.queue_declare(pol.name("q"), exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": by_arg}).method.queue
    pol.set("dlx", {"dead-letter-exchange": "", "dead-letter-routing-key": by_policy})
    ch.basic_publish("", q, b"r")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert get_one(ch, by_arg)[2] == b"r"
    assert count(ch, by_policy) == 0


def test_numeric_limits_the_lower_of_argument_and_policy_wins(ch, pol):
    """For max-length (and message-ttl, expires, max-length-bytes) RabbitMQ
    takes the minimum of the queue argument and the policy value."""
    ch.confirm_delivery()
    arg_lower = ch.queue_declare(pol.name("a"), exclusive=True,
                                 arguments={"x-max-length": 2}).method.queue
    policy_lower = ch.queue_declare(pol.name("b"), exclusive=True,
                                    arguments={"x-max-length": 6}).method.queue
    pol.set("len", {"max-length": 4})
    publish(ch, arg_lower, 8)
    publish(ch, policy_lower, 8)
    assert count(ch, arg_lower) == 2
    assert count(ch, policy_lower) == 4


def test_highest_priority_policy_wins_and_definitions_do_not_merge(ch, pol):
    ch.confirm_delivery()
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    pol.set("low", {"max-length": 1}, priority=1)
    pol.set("high", {"dead-letter-exchange": "", "dead-letter-routing-key": dead}, priority=5)
    publish(ch, q, 3)
    drain(ch.connection, 0.1)
    assert count(ch, q) == 3, "the lower-priority policy's max-length applied"
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert get_one(ch, dead)[2] == b"m0"
    # raise the other one above: now max-length applies and the DLX does not
    pol.set("low", {"max-length": 1}, priority=9)
    wait_count(ch, q, 1)
    assert bodies(ch, q) == [b"m2"]
    assert count(ch, dead) == 0, "the DLX of the now-losing policy applied"


def test_policy_change_applies_to_existing_queue(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    pol.set("len", {"max-length": 3})
    publish(ch, q, 5)
    assert count(ch, q) == 3
    pol.set("len", {"max-length": 1})
    wait_count(ch, q, 1)
    assert bodies(ch, q) == [b"m4"]
    # max-length gone, a TTL now: it applies to messages enqueued from here on
    pol.set("len", {"message-ttl": 100})
    publish(ch, q, 4, b"n")
    wait_count(ch, q, 0)


def test_deleting_a_policy_lifts_it_from_existing_queues(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    pol.set("p", {"max-length": 1, "message-ttl": 60000})
    publish(ch, q, 3)
    assert count(ch, q) == 1
    pol.delete("p")
    publish(ch, q, 3, b"n")
    assert count(ch, q) == 4


def test_pattern_is_a_regular_expression(ch, pol):
    ch.confirm_delivery()
    hit = ch.queue_declare(pol.name("orders-1"), exclusive=True).method.queue
    miss = ch.queue_declare(pol.name("invoices-1"), exclusive=True).method.queue
    pol.set("re", {"max-length": 1}, pattern=pol.pattern("orders-[0-9]+$"))
    publish(ch, hit, 3)
    publish(ch, miss, 3)
    assert (count(ch, hit), count(ch, miss)) == (1, 3)


# ------------------------------------------------------------ apply-to

def test_apply_to_exchanges_leaves_queues_alone(ch, pol):
    ch.confirm_delivery()
    q = ch.queue_declare(pol.name("q"), exclusive=True).method.queue
    pol.set("x", {"alternate-exchange": "amq.fanout"}, apply_to="exchanges")
    pol.set("q", {"max-length": 1}, apply_to="exchanges", priority=1)
    publish(ch, q, 3)
    assert count(ch, q) == 3


def test_alternate_exchange_via_policy(ch, pol):
    ch.confirm_delivery()
    x, ae = pol.name("x"), uname("ae")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    caught = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(caught, ae)
    ch.exchange_declare(x, "direct", auto_delete=True)
    bound = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(bound, x, "known")
    pol.set("ae", {"alternate-exchange": ae}, apply_to="exchanges")
    ch.basic_publish(x, "unknown", b"stray")
    ch.basic_publish(x, "known", b"home")
    assert get_one(ch, caught)[2] == b"stray"
    assert bodies(ch, bound) == [b"home"]
    # the argument beats the policy
    y, ae2 = pol.name("y"), uname("ae2")
    ch.exchange_declare(ae2, "fanout", auto_delete=True)
    caught2 = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(caught2, ae2)
    ch.exchange_declare(y, "direct", auto_delete=True, arguments={"alternate-exchange": ae2})
    ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, y, "k")
    ch.basic_publish(y, "unknown", b"arg")
    assert get_one(ch, caught2)[2] == b"arg"
    assert count(ch, caught) == 0
    # deleting the policy ends the alternate route of x: unroutable, dropped
    pol.delete("ae")
    ch.basic_publish(x, "unknown", b"dropped")
    drain(ch.connection, 0.1)
    assert count(ch, caught) == 0


def test_apply_to_queues_leaves_exchanges_alone(ch, pol):
    ch.confirm_delivery()
    x, ae = pol.name("x"), uname("ae")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    caught = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(caught, ae)
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, x, "k")
    pol.set("ae", {"alternate-exchange": ae}, apply_to="queues")
    ch.basic_publish(x, "unknown", b"stray")
    drain(ch.connection, 0.1)
    assert count(ch, caught) == 0


def test_apply_to_all_applies_to_queues_and_exchanges(ch, pol):
    ch.confirm_delivery()
    x, ae = pol.name("x"), uname("ae")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    caught = ch.queue_declare(pol.name("caught"), exclusive=True).method.queue
    ch.queue_bind(caught, ae)
    ch.exchange_declare(x, "direct", auto_delete=True)
    pol.set("all", {"alternate-exchange": ae, "max-length": 2}, apply_to="all")
    publish(ch, "unknown", 4, exchange=x)
    wait_count(ch, caught, 2)
    assert bodies(ch, caught) == [b"m2", b"m3"]
