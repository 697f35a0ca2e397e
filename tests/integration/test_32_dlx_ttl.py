"""Dead-lettering and TTLs as RabbitMQ 3.10 does them: x-dead-letter-exchange
and -routing-key; dead-lettering on reject/nack without requeue, on expiry
(queue TTL, per-message expiration) and on overflow; the x-death header
(one entry per queue and reason, newest first, counted) and the
x-first-death-* headers; cycles without a rejection dropped; x-expires.
Validated against RabbitMQ 3.10.8 with CONEY_TEST_TARGET."""

import datetime
import time

import pika
import pytest

from coney_util import SLOW, TIMEOUT, drain, get_one, queue_exists, uname, wait_for
from ext_util import Sink, bodies, count, props, settle, wait_count, x_death

TTL = 150  # ms: short enough to keep the tests fast


def dlx_pair(ch, rk="dead", **qargs):
    """A direct DLX with a queue bound under `rk`; returns (dlx, dead queue)."""
    dlx = uname("dlx")
    ch.exchange_declare(dlx, "direct", auto_delete=True)
    dead = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dead, dlx, rk)
    return dlx, dead


def source(ch, dlx, rk=None, **extra):
    args = {"x-dead-letter-exchange": dlx}
    if rk is not None:
        args["x-dead-letter-routing-key"] = rk
    args.update(extra)
    return ch.queue_declare(uname("src"), exclusive=True, arguments=args).method.queue


# ------------------------------------------------------------ reject / nack

def test_reject_without_requeue_dead_letters_with_reason_rejected(ch):
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead")
    ch.basic_publish("", q, b"body", props(content_type="text/plain", headers={"h": "v"}))
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, body = get_one(ch, dead)
    assert body == b"body"
    assert p.content_type == "text/plain" and p.headers["h"] == "v"
    assert m.exchange == dlx and m.routing_key == "dead"
    (d,) = x_death(p)
    assert d["queue"] == q and d["reason"] == "rejected" and d["count"] == 1
    assert d["exchange"] == "" and d["routing-keys"] == [q]
    assert count(ch, q) == 0


def test_nack_multiple_without_requeue_dead_letters_all(ch):
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead")
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    tags = [get_one(ch, q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    wait_count(ch, dead, 3)
    got = [(b, x_death(p)[0]["reason"]) for _, p, b in
           [get_one(ch, dead, auto_ack=True) for _ in range(3)]]
    assert got == [(b"m0", "rejected"), (b"m1", "rejected"), (b"m2", "rejected")]


def test_reject_with_requeue_does_not_dead_letter(ch):
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead")
    ch.basic_publish("", q, b"x")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, _ = get_one(ch, q)
    assert m.redelivered
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert count(ch, q) == 1 and count(ch, dead) == 0


def test_dead_letter_keeps_routing_key_without_dead_letter_routing_key(ch):
    dlx = uname("dlx")
    ch.exchange_declare(dlx, "topic", auto_delete=True)
    dead = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dead, dlx, "orders.#")
    x = uname("x")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = source(ch, dlx)
    ch.queue_bind(q, x, "orders.*")
    ch.basic_publish(x, "orders.new", b"o")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, body = get_one(ch, dead)
    assert m.routing_key == "orders.new" and body == b"o"
    (d,) = x_death(p)
    assert d["exchange"] == x and d["routing-keys"] == ["orders.new"]


def test_dead_letter_to_default_exchange_by_routing_key(ch):
    dead = ch.queue_declare("", exclusive=True).method.queue
    q = source(ch, "", dead)
    ch.basic_publish("", q, b"d")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert get_one(ch, dead)[2] == b"d"


def test_dead_letter_to_missing_exchange_drops_the_message(ch):
    q = source(ch, uname("no-such-dlx"))
    ch.basic_publish("", q, b"gone")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    drain(ch.connection, 0.2)
    assert ch.is_open and count(ch, q) == 0


def test_rejected_by_consumer_and_x_first_death_headers(conn, ch):
    dlx, dead = dlx_pair(ch)
    x = uname("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = source(ch, dlx, "dead")
    ch.queue_bind(q, x, "k")
    sink = Sink()
    ch.basic_consume(q, sink)
    ch.basic_publish(x, "k", b"c")
    settle(conn, sink, 1, 0)
    ch.basic_reject(sink.items[0][0].delivery_tag, requeue=False)
    _, p, _ = get_one(ch, dead)
    h = p.headers
    assert h["x-first-death-queue"] == q
    assert h["x-first-death-reason"] == "rejected"
    assert h["x-first-death-exchange"] == x


# ------------------------------------------------------------ x-death shape

def test_x_death_entry_has_rabbitmq_fields_and_time(ch):
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead")
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    ch.basic_publish("", q, b"t")
    m, _, _ = get_one(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _, p, _ = get_one(ch, dead)
    (d,) = x_death(p)
    assert set(d) == {"queue", "reason", "count", "exchange", "routing-keys", "time"}
    assert isinstance(d["time"], datetime.datetime)
    t = d["time"].replace(tzinfo=None)
    # an AMQP timestamp has whole seconds
    assert before - datetime.timedelta(seconds=2) <= t <= before + datetime.timedelta(seconds=30)


def test_x_death_count_increments_when_queue_and_reason_repeat(ch):
    """A queue that dead-letters rejected messages back to itself: the one
    x-death entry counts the rejections (a rejection is never a cycle)."""
    q = uname("loop")
    ch.queue_declare(q, exclusive=True, arguments={"x-dead-letter-exchange": ""})
    ch.basic_publish("", q, b"again")
    for n in range(1, 4):
        m, p, _ = get_one(ch, q)
        if n > 1:
            (d,) = x_death(p)
            assert d["count"] == n - 1 and d["reason"] == "rejected" and d["queue"] == q
        ch.basic_reject(m.delivery_tag, requeue=False)
    _, p, _ = get_one(ch, q)
    (d,) = x_death(p)
    assert d["count"] == 3


def test_x_death_lists_newest_first_and_first_death_stays(ch):
    """rejected in A, then expired in B, then seen in C: x-death is
    [B expired, A rejected]; x-first-death-* keep A."""
    c = ch.queue_declare("", exclusive=True).method.queue
    b = ch.queue_declare(uname("b"), exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": c}).method.queue
    a = source(ch, "", b)
    ch.basic_publish("", a, b"m")
    m, _, _ = get_one(ch, a)
    ch.basic_reject(m.delivery_tag, requeue=False)
    _, p, body = get_one(ch, c)
    assert body == b"m"
    deaths = x_death(p)
    assert [(d["queue"], d["reason"]) for d in deaths] == [(b, "expired"), (a, "rejected")]
    assert deaths[0]["routing-keys"] == [b] and deaths[1]["routing-keys"] == [a]
    assert [d["count"] for d in deaths] == [1, 1]
    assert p.headers["x-first-death-queue"] == a
    assert p.headers["x-first-death-reason"] == "rejected"


def test_x_death_repeated_entry_moves_to_the_front(ch):
    """The retry loop A -reject-> R -expire-> A twice: two entries, counted,
    the one that changed last first."""
    a, r = uname("work"), uname("retry")
    ch.queue_declare(r, exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
    ch.queue_declare(a, exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r})
    ch.basic_publish("", a, b"job")
    m, _, _ = get_one(ch, a)
    ch.basic_reject(m.delivery_tag, requeue=False)   # A rejected 1
    m, p, _ = get_one(ch, a)                         # R expired 1
    assert [(d["queue"], d["reason"], d["count"]) for d in x_death(p)] == [
        (r, "expired", 1), (a, "rejected", 1)]
    ch.basic_reject(m.delivery_tag, requeue=False)   # A rejected 2
    m, p, _ = get_one(ch, r)                         # a look in R, put back
    assert [(d["queue"], d["reason"], d["count"]) for d in x_death(p)] == [
        (a, "rejected", 2), (r, "expired", 1)]
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, _ = get_one(ch, a)                         # R expired 2
    assert [(d["queue"], d["reason"], d["count"]) for d in x_death(p)] == [
        (r, "expired", 2), (a, "rejected", 2)]
    ch.basic_ack(m.delivery_tag)


# ------------------------------------------------------------ expiry

def test_queue_ttl_expires_at_head_without_consumer_and_dead_letters(ch):
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead", **{"x-message-ttl": 3 * TTL})
    ch.confirm_delivery()  # the count below sees the routed messages
    for i in range(3):
        ch.basic_publish("", q, b"e%d" % i)
    assert count(ch, q) == 3
    wait_count(ch, q, 0)
    wait_count(ch, dead, 3)
    got = [get_one(ch, dead, auto_ack=True) for _ in range(3)]
    assert [b for _, _, b in got] == [b"e0", b"e1", b"e2"]
    for _, p, _ in got:
        (d,) = x_death(p)
        assert d["reason"] == "expired" and d["queue"] == q and d["count"] == 1
        assert p.headers["x-first-death-reason"] == "expired"


def test_queue_ttl_expired_message_is_not_delivered_by_basic_get(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-message-ttl": TTL}).method.queue
    ch.basic_publish("", q, b"old")
    time.sleep(2 * TTL / 1000)
    m, _, _ = ch.basic_get(q)
    assert m is None
    ch.basic_publish("", q, b"new")
    assert get_one(ch, q, auto_ack=True)[2] == b"new"


def test_queue_ttl_zero_delivers_only_to_a_waiting_consumer(conn, ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-message-ttl": 0}).method.queue
    ch.basic_publish("", q, b"nobody")
    drain(conn, 0.1)
    assert count(ch, q) == 0
    sink = Sink()
    ch.basic_consume(q, sink, auto_ack=True)
    ch.basic_publish("", q, b"somebody")
    settle(conn, sink, 1)
    assert sink.bodies == [b"somebody"]


def test_per_message_expiration_dead_letters_and_records_original_expiration(ch):
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead")
    ch.basic_publish("", q, b"short", props(expiration=str(TTL)))
    ch.basic_publish("", q, b"forever")
    wait_count(ch, dead, 1)
    _, p, body = get_one(ch, dead)
    assert body == b"short"
    assert p.expiration is None, "the expiration property is removed when dead-lettered"
    (d,) = x_death(p)
    assert d["reason"] == "expired"
    assert d["original-expiration"] == str(TTL)
    assert bodies(ch, q) == [b"forever"]


def test_per_message_expiration_is_never_delivered_even_behind_the_head(ch):
    """An expired message behind a live one is not delivered when it reaches
    the head, by basic.get or to a consumer."""
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"head")
    ch.basic_publish("", q, b"expires", props(expiration="50"))
    ch.basic_publish("", q, b"tail")
    time.sleep(0.2)
    assert bodies(ch, q) == [b"head", b"tail"]


def test_per_message_expiration_and_queue_ttl_the_lower_wins(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-message-ttl": 60000}).method.queue
    ch.basic_publish("", q, b"x", props(expiration=str(TTL)))
    wait_count(ch, q, 0)
    q2 = ch.queue_declare("", exclusive=True, arguments={"x-message-ttl": TTL}).method.queue
    ch.basic_publish("", q2, b"y", props(expiration="60000"))
    wait_count(ch, q2, 0)


def test_expiration_zero_expires_at_once_without_consumer(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"now", props(expiration="0"))
    time.sleep(0.05)
    assert ch.basic_get(q)[0] is None


def test_unacked_message_does_not_expire_while_held(ch):
    """TTL applies to messages in the queue: one delivered and then
    requeued after its TTL passed is dropped, but not while held."""
    dlx, dead = dlx_pair(ch)
    q = source(ch, dlx, "dead", **{"x-message-ttl": TTL})
    ch.basic_publish("", q, b"held")
    m, _, _ = get_one(ch, q)
    time.sleep(2 * TTL / 1000)
    assert count(ch, dead) == 0
    ch.basic_reject(m.delivery_tag, requeue=True)
    wait_count(ch, dead, 1)
    assert x_death(get_one(ch, dead)[1])[0]["reason"] == "expired"


# ------------------------------------------------------------ cycles

def test_expiry_cycle_to_the_same_queue_is_dropped(ch):
    """A queue dead-lettering expired messages to itself: RabbitMQ drops the
    message on its first return (an automatic cycle, no rejection)."""
    q = uname("cycle")
    ch.queue_declare(q, exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": ""})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"loop")
    wait_count(ch, q, 0)
    deadline = time.monotonic() + 4 * TTL / 1000
    while time.monotonic() < deadline:
        assert count(ch, q) == 0, "the message came back"
        time.sleep(0.02)


def test_expiry_cycle_through_two_queues_is_dropped(ch):
    a, b = uname("ca"), uname("cb")
    ch.queue_declare(a, exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": b})
    ch.queue_declare(b, exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
    ch.basic_publish("", a, b"loop")
    wait_for(lambda: count(ch, b) == 1, what="the message in B")
    wait_for(lambda: count(ch, a) + count(ch, b) == 0, what="the cycle dropped")
    deadline = time.monotonic() + 4 * TTL / 1000
    while time.monotonic() < deadline:
        assert count(ch, a) + count(ch, b) == 0, "the message came back"
        time.sleep(0.02)


def test_cycle_with_a_rejection_is_not_dropped(ch):
    """Work -reject-> retry (TTL) -expire-> work: the rejection breaks the
    cycle rule, so the message keeps coming back."""
    w, r = uname("w"), uname("r")
    ch.queue_declare(r, exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": w})
    ch.queue_declare(w, exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": r})
    ch.basic_publish("", w, b"retry-me")
    for _ in range(3):
        m, _, body = get_one(ch, w)
        assert body == b"retry-me"
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, _ = get_one(ch, w)
    assert {(d["queue"], d["reason"]): d["count"] for d in x_death(p)} == {
        (w, "rejected"): 3, (r, "expired"): 3}


# ------------------------------------------------------------ queue expiry

def gone(conn, q, expires_ms):
    """Wait for q to expire. A passive declare counts as use and restarts
    the countdown, so look less often than the queue's x-expires."""
    wait_for(lambda: not queue_exists(conn, q), interval=2 * expires_ms / 1000,
             what="queue %s to expire" % q)


def test_x_expires_deletes_an_unused_queue(conn, ch):
    q = uname("exp")
    ch.queue_declare(q, arguments={"x-expires": 300})
    ch.basic_publish("", q, b"lost with the queue")
    assert queue_exists(conn, q)
    gone(conn, q, 300)


def test_x_expires_spares_a_queue_with_a_consumer(conn, ch):
    q = uname("exp")
    ch.queue_declare(q, arguments={"x-expires": 200})
    tag = ch.basic_consume(q, Sink())
    drain(conn, 0.6)
    assert queue_exists(conn, q)
    ch.basic_cancel(tag)
    gone(conn, q, 200)


def test_x_expires_is_reset_by_use(conn, ch):
    q = uname("exp")
    ch.queue_declare(q, arguments={"x-expires": 400})
    for _ in range(4):
        time.sleep(0.2)
        ch.basic_get(q)          # use: the countdown starts again
    assert queue_exists(conn, q)
    gone(conn, q, 400)


# ------------------------------------------------------------ retry with backoff

def test_retry_with_backoff_via_dlx_and_ttl(conn, ch):
    """The usual pattern: a work queue dead-letters rejected jobs to a retry
    exchange; a retry queue holds them for a TTL and dead-letters them back
    to the work exchange. The worker reads the attempt count from x-death and
    gives up to a parking queue after three attempts."""
    work_x, retry_x = uname("work-x"), uname("retry-x")
    ch.exchange_declare(work_x, "direct", auto_delete=True)
    ch.exchange_declare(retry_x, "direct", auto_delete=True)
    work = source(ch, retry_x)
    retry = ch.queue_declare(uname("retry"), exclusive=True, arguments={
        "x-message-ttl": TTL, "x-dead-letter-exchange": work_x}).method.queue
    parked = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(work, work_x, "job")
    ch.queue_bind(retry, retry_x, "job")

    seen = []

    def worker(wch, method, p, body):
        attempts = 0
        if p.headers and "x-death" in p.headers:
            attempts = sum(d["count"] for d in x_death(p) if d["reason"] == "rejected")
        seen.append((attempts, time.monotonic()))
        if attempts >= 3:
            wch.basic_publish("", parked, body, pika.BasicProperties(headers=p.headers))
            wch.basic_ack(method.delivery_tag)
        else:
            wch.basic_reject(method.delivery_tag, requeue=False)

    ch.basic_consume(work, worker)
    out = Sink()
    ch.basic_consume(parked, out, auto_ack=True)
    t0 = time.monotonic()
    ch.basic_publish(work_x, "job", b"flaky")
    settle(conn, out, 1, 0)
    _, p, body = out.items[0]
    assert body == b"flaky"
    assert [a for a, _ in seen] == [0, 1, 2, 3]
    # each retry waited out the TTL
    assert seen[-1][1] - t0 >= 3 * TTL / 1000 * 0.9
    counts = {(d["queue"], d["reason"]): d["count"] for d in x_death(p)}
    assert counts == {(work, "rejected"): 3, (retry, "expired"): 3}
    assert p.headers["x-first-death-queue"] == work
    assert p.headers["x-first-death-exchange"] == work_x
