"""Durable state across kill -9: nothing is flushed and no shutdown code runs,
so what a restart finds is what the broker had made durable when it died.

The rule checked after every crash, per queue: every message the broker
confirmed is there exactly once; messages it had not confirmed may or may not
be there, but nothing is duplicated and nothing is out of order; bodies and
properties are intact; messages that had been delivered before the crash
come back with redelivered=True.

CONEY_SOAK=1 turns the cycle test into a soak (scripts/soak.sh, `make soak`):
CONEY_SOAK_SECONDS (default 300) of cycles with bigger volumes and bodies.
The random schedule (kill delays, which cycles hold unacked deliveries or
kill again during recovery) comes from CONEY_CRASH_SEED, or a fresh seed
that the test prints; the same seed replays the same schedule.

Each test starts its own broker (skipped with CONEY_TEST_TARGET)."""

import hashlib
import os
import random
import signal
import struct
import threading
import time
import zlib

import pika
import pytest

import coney_util
from coney_util import SLOW, TIMEOUT, BulkChannel, uname

SOAK = bool(os.environ.get("CONEY_SOAK"))
SOAK_SECONDS = float(os.environ.get("CONEY_SOAK_SECONDS", "300"))
CYCLES = 12                           # the normal suite's cycle count
SEED = int(os.environ.get("CONEY_CRASH_SEED") or random.SystemRandom().randrange(2 ** 32))

PERSISTENT_FLAGS, PERSISTENT_PROPS = 0x1000, b"\x02"   # delivery-mode = 2 only


# ------------------------------------------------------------ message bodies

def body_for(seq):
    """The one body that message `seq` carries: its sequence number, a crc32
    of the rest, and deterministic filler of a size drawn from seq (mostly
    under 2 KB; every 101st 40 KB, spanning frames; in a soak every 997th
    600 KB). The reader recomputes it, so any damaged byte is caught."""
    h = hashlib.blake2b(struct.pack("!Q", seq), digest_size=32).digest()
    if SOAK and seq % 997 == 0:
        size = 600 * 1024
    elif seq % 101 == 0:
        size = 40 * 1024
    else:
        size = struct.unpack_from("!H", h)[0] % 2048
    filler = (h * (size // 32 + 1))[:size]
    return struct.pack("!QI", seq, zlib.crc32(filler)) + filler


def seq_of(body):
    seq, crc = struct.unpack_from("!QI", body)
    return seq


# ------------------------------------------------------------ broker and queues

def seed_banner(capsys):
    with capsys.disabled():
        print("\n  crash test seed %d (CONEY_CRASH_SEED=%d replays this schedule)" % (SEED, SEED))


def declare_topology(b, exchange, queues):
    bulk = BulkChannel(b)
    bulk.rpc("exchange.declare", "exchange.declare-ok", exchange=exchange, type="fanout",
             durable=True)
    for q in queues:
        bulk.rpc("queue.declare", "queue.declare-ok", queue=q, durable=True)
        bulk.rpc("queue.bind", "queue.bind-ok", queue=q, exchange=exchange)
    bulk.close()


def read_queue(b, queue, consume_all, where):
    """Every message in `queue`, in delivery order, as [(seq, redelivered)];
    bodies and properties are checked on the way. consume_all=True takes
    them with no_ack (the queue ends empty); otherwise they stay unacked and
    go back when the connection closes."""
    bulk = BulkChannel(b, timeout=60 * SLOW)
    try:
        count = bulk.rpc("queue.declare", "queue.declare-ok", queue=queue,
                         passive=True)["message_count"]
        bulk.rpc("basic.qos", "basic.qos-ok", prefetch_count=0)
        bulk.rpc("basic.consume", "basic.consume-ok", queue=queue, no_ack=consume_all)
        out = []
        for _ in range(count):
            tag, redelivered, flags, props, body = bulk.delivery()
            seq = seq_of(body)
            assert body == body_for(seq), "%s: message %d has a damaged body (%d bytes)" % (
                where, seq, len(body))
            assert (flags, props) == (PERSISTENT_FLAGS, PERSISTENT_PROPS), \
                "%s: message %d has properties %#x %r" % (where, seq, flags, props)
            out.append((seq, redelivered))
        # nothing beyond message_count: the next frame must be this reply
        ok = bulk.rpc("queue.declare", "queue.declare-ok", queue=queue, passive=True)
        assert ok["message_count"] == 0, "%s: %d more messages appeared" % (
            where, ok["message_count"])
        return out
    finally:
        bulk.close()


class Killer:
    """SIGKILLs the broker after `delay` seconds on its own thread, unless
    cancelled; remembers that it fired so a publisher that loses its
    connection can tell a planned kill from a broker that died by itself."""

    def __init__(self, b, delay):
        self.b = b
        self.delay = delay
        self.cancelled = threading.Event()
        self.fired = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        if self.cancelled.wait(self.delay):
            return
        self.fired.set()
        try:
            coney_util.kill_broker(self.b)
        except BaseException as e:  # reported by join()
            self.error = e

    def join(self):
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "killer thread hung"
        if self.error:
            raise self.error


def crash_restart(b, rng, where):
    """Start the killed broker again; sometimes kill it again during its
    recovery first (a random moment after spawn), up to three times."""
    while rng.random() < 0.3:
        coney_util.start_again(b, wait=False, note="%s: start, to be killed in recovery" % where)
        time.sleep(rng.uniform(0.0, 0.3) * SLOW)
        coney_util.kill_broker(b)
    coney_util.start_again(b, note="%s: start after kill -9" % where)


# ------------------------------------------------------------ publisher

class Publisher:
    """Publishes persistent messages seq, seq+1, ... to a fanout exchange in
    confirm mode, keeping at most `window` unconfirmed, until the broker
    dies or `cap` messages are out."""

    def __init__(self, b, exchange, first_seq, window):
        self.bulk = BulkChannel(b)
        self.bulk.confirm_select()
        self.exchange = exchange
        self.first = first_seq
        self.window = window

    def seq_of_tag(self, tag):
        return self.first + tag - 1

    def step(self, cap):
        """Sends what the window allows, then reads one confirm. Socket
        errors propagate (the broker is gone)."""
        bulk = self.bulk
        if bulk.unresolved() < self.window and bulk.published < cap:
            n = min(50, self.window - bulk.unresolved(), cap - bulk.published)
            bulk.send(b"".join(
                bulk.publish_bytes(self.exchange, "", body_for(self.first + bulk.published),
                                   props=PERSISTENT_PROPS, flags=PERSISTENT_FLAGS)
                for _ in range(n)))
        if bulk.unresolved() > 0:
            r = bulk.poll(timeout=TIMEOUT)
        else:  # all out and confirmed: wait for the kill to close the socket
            try:
                r = bulk.poll(timeout=0.05)
            except TimeoutError:
                return
        assert r is None, "publisher got %s %r" % r

    def confirmed(self):
        """Sequence numbers the broker acked (nacked ones count as unconfirmed)."""
        c = self.bulk.confirm
        return {self.seq_of_tag(t) for t in range(1, self.bulk.published + 1) if c[t] == 1}

    def sent_range(self):
        return self.first, self.first + self.bulk.published  # [first, end)


def publish_until_killed(b, publisher, kill_at, delay, on_step=None):
    """Runs the publisher until a SIGKILL cuts it off: once kill_at
    messages are out, a Killer fires after `delay` seconds while publishing
    goes on (up to kill_at + 100,000). Fails if the connection ends before
    the kill."""
    killer = None
    try:
        while True:
            publisher.step(kill_at + 100000)
            if killer is None and publisher.bulk.published >= kill_at:
                killer = Killer(b, delay)
            if on_step:
                on_step()
    except (EOFError, OSError) as e:
        if killer is None or not killer.fired.is_set():
            if killer:
                killer.cancelled.set()
            raise AssertionError("the publisher's connection ended before the kill: %r\n"
                                 "--- log tail ---\n%s" % (e, b.log_tail()))
    finally:
        publisher.bulk.close()
    killer.join()


def check_queue(got, kept, first, end, confirmed, delivered, where):
    """The consistency rule for one queue after a crash. kept: what the
    queue held at the previous check (all of it delivered then); [first,
    end): sent this cycle; confirmed: acked this cycle; delivered: seqs that
    had been delivered and must come back redelivered=True."""
    seqs = [s for s, _ in got]
    assert len(set(seqs)) == len(seqs), "%s: duplicated messages %s" % (
        where, sorted({s for s in seqs if seqs.count(s) > 1})[:20])
    out_of_order = [(a, c) for a, c in zip(seqs, seqs[1:]) if c <= a]
    assert not out_of_order, "%s: out of order, e.g. %r" % (where, out_of_order[:5])
    assert seqs[:len(kept)] == kept, "%s: of the %d messages there before, %s" % (
        where, len(kept), "some are missing" if len(seqs) < len(kept) else "the prefix differs")
    new = seqs[len(kept):]
    stray = [s for s in new if not first <= s < end]
    assert not stray, "%s: messages never sent in this cycle came back: %r" % (where, stray[:10])
    lost = sorted(confirmed - set(new))
    assert not lost, "%s: %d confirmed messages lost, e.g. %r" % (where, len(lost), lost[:10])
    not_redelivered = [s for s, r in got if s in delivered and not r]
    assert not not_redelivered, "%s: %d delivered messages came back with redelivered=False, " \
        "e.g. %r" % (where, len(not_redelivered), not_redelivered[:10])


# ------------------------------------------------------------ tests

SOAK_TIMEOUT = SOAK_SECONDS + 600 if SOAK else 120


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_confirmed_messages_survive_kill_9_cycles_exactly_once_and_in_order(fresh_broker,
                                                                           capsys):
    b = fresh_broker
    seed_banner(capsys)
    rng = random.Random(SEED)
    exchange = uname("x-crash")
    queues = [uname("q-crash-a"), uname("q-crash-b")]
    declare_topology(b, exchange, queues)
    window = 2000 if SOAK else 500
    max_per_cycle = 150000 if SOAK else 12000   # messages out before the kill, at most
    drain_above = 400000 if SOAK else 50000     # messages in both queues that trigger a drain
    kept = {q: [] for q in queues}
    held_checked = 0
    next_seq = 1
    started = time.monotonic()
    cycle = 0
    while (time.monotonic() - started < SOAK_SECONDS) if SOAK else cycle < CYCLES:
        cycle += 1
        where = "seed %d cycle %d" % (SEED, cycle)
        publisher = Publisher(b, exchange, next_seq, window)
        kill_at = rng.randint(3 * window + 500, max_per_cycle)  # out before the kill
        delay = rng.uniform(0.0, 0.05) * SLOW       # ... and then this long

        # In some cycles a consumer holds deliveries of the second queue,
        # unacked, when the broker dies. Those deliveries must be followed by
        # a confirmed publish (a write that reached the store after them)
        # before the kill for the redelivered check to apply.
        holder = {"on": cycle % 2 == 0, "bulk": None, "seqs": [], "fence": None}

        def maybe_hold():
            if not holder["on"] or holder["bulk"] is not None or publisher.bulk.low < 200:
                return
            h = holder["bulk"] = BulkChannel(b)
            h.rpc("basic.qos", "basic.qos-ok", prefetch_count=25)
            h.rpc("basic.consume", "basic.consume-ok", queue=queues[1], no_ack=False)
            for _ in range(25):
                holder["seqs"].append(seq_of(h.delivery()[4]))
            holder["fence"] = publisher.bulk.published  # tags above: sent after

        publish_until_killed(b, publisher, kill_at, delay, on_step=maybe_hold)
        first, end = publisher.sent_range()
        confirmed = publisher.confirmed()
        held = set()
        if holder["bulk"] is not None:
            holder["bulk"].close()
            fence_passed = any(publisher.bulk.confirm[t] == 1
                               for t in range(holder["fence"] + 1, publisher.bulk.published + 1))
            if fence_passed:
                held = set(holder["seqs"])
                held_checked += 1
        crash_restart(b, rng, where)

        total = sum(len(v) for v in kept.values()) + 2 * (end - first)
        drain = not SOAK and cycle == CYCLES or total > drain_above
        for q in queues:
            got = read_queue(b, q, consume_all=drain, where="%s %s" % (where, q))
            delivered = set(kept[q]) | (held if q == queues[1] else set())
            check_queue(got, kept[q], first, end, confirmed, delivered, "%s %s" % (where, q))
            kept[q] = [] if drain else [s for s, _ in got]
        with capsys.disabled():
            print("  %s: sent %d, confirmed %d, %d unacked held%s; queues hold %s%s"
                  % (where, end - first, len(confirmed), len(held),
                     "" if holder["on"] else " (none)",
                     [len(v) for v in kept.values()], ", drained" if drain else ""))
        if drain:  # what was consumed stays consumed across a clean restart
            coney_util.restart_broker(b, signal.SIGTERM)
            for q in queues:
                assert read_queue(b, q, True, "%s %s after drain" % (where, q)) == []
        next_seq = end
    # kill_at leaves room for the fence: held deliveries were checked
    assert held_checked >= cycle // 2, "held deliveries were checked in only %d of %d " \
        "cycles" % (held_checked, cycle // 2)


def test_unacked_deliveries_are_redelivered_after_kill_9(fresh_broker):
    b = fresh_broker
    q = uname("q-unacked")
    bulk = BulkChannel(b)
    bulk.rpc("queue.declare", "queue.declare-ok", queue=q, durable=True)
    bulk.confirm_select()
    bulk.send(b"".join(bulk.publish_bytes("", q, body_for(s), PERSISTENT_PROPS,
                                          PERSISTENT_FLAGS) for s in range(1, 101)))
    bulk.wait_confirms()
    consumer = BulkChannel(b)
    consumer.rpc("basic.qos", "basic.qos-ok", prefetch_count=30)
    consumer.rpc("basic.consume", "basic.consume-ok", queue=q, no_ack=False)
    taken = [seq_of(consumer.delivery()[4]) for _ in range(30)]
    assert taken == list(range(1, 31))
    # more confirmed writes after the deliveries, then the crash
    bulk.send(b"".join(bulk.publish_bytes("", q, body_for(s), PERSISTENT_PROPS,
                                          PERSISTENT_FLAGS) for s in range(101, 111)))
    bulk.wait_confirms()
    assert bulk.confirm[1:] == b"\x01" * 110
    coney_util.kill_broker(b)
    bulk.close()
    consumer.close()

    coney_util.start_again(b)

    got = read_queue(b, q, True, "after kill -9")
    assert [s for s, _ in got] == list(range(1, 111))
    assert [s for s, r in got[:30] if not r] == [], "unacked deliveries not marked redelivered"


def test_declarations_before_a_confirmed_publish_survive_kill_9(fresh_broker):
    b = fresh_broker
    src, dst, q = uname("x-src"), uname("x-dst"), uname("q-declared")
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(src, "topic", durable=True)
    ch.exchange_declare(dst, "headers", durable=True)
    ch.queue_declare(q, durable=True)
    ch.exchange_bind(dst, src, "a.#")
    ch.queue_bind(q, dst, arguments={"x-match": "any", "k": "v"})
    ch.confirm_delivery()
    ch.basic_publish(src, "a.b", b"before", pika.BasicProperties(delivery_mode=2,
                                                                 headers={"k": "v"}))
    coney_util.kill_broker(b)

    coney_util.start_again(b)

    conn = b.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    props = {k: pika.BasicProperties(delivery_mode=2, headers={"k": k}) for k in ("v", "w")}
    ch.basic_publish(src, "a.c", b"after", props["v"])
    ch.basic_publish(src, "b.c", b"wrong key", props["v"])
    ch.basic_publish(src, "a.c", b"wrong header", props["w"])
    got = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append(body)
    assert got == [b"before", b"after"]
    conn.close()


def test_durable_declarations_survive_kill_9_once_their_ok_arrived(fresh_broker):
    """No publish follows: the declare-ok / bind-ok replies alone promise
    the declarations (RabbitMQ answers after its schema write)."""
    b = fresh_broker
    x, q = uname("x-only"), uname("q-only")
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(x, "direct", durable=True)
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, x, "key")
    coney_util.kill_broker(b)

    coney_util.start_again(b)

    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(x, passive=True)
    ch.queue_declare(q, passive=True)
    ch.confirm_delivery()
    ch.basic_publish(x, "key", b"routed")
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"routed"
    conn.close()


def test_kill_9_during_recovery_loses_no_confirmed_message(fresh_broker, capsys):
    b = fresh_broker
    seed_banner(capsys)
    rng = random.Random(SEED + 1)
    exchange = uname("x-recovery")
    queues = [uname("q-recovery-a"), uname("q-recovery-b")]
    declare_topology(b, exchange, queues)
    n = 20000
    bulk = BulkChannel(b, timeout=60 * SLOW)
    bulk.confirm_select()
    for lo in range(1, n + 1, 1000):
        bulk.send(b"".join(bulk.publish_bytes(exchange, "", body_for(s), PERSISTENT_PROPS,
                                              PERSISTENT_FLAGS)
                           for s in range(lo, min(lo + 1000, n + 1))))
        bulk.wait_confirms(timeout=60 * SLOW)
    assert bulk.confirm[1:] == b"\x01" * n, "a publish was nacked"
    coney_util.kill_broker(b)
    bulk.close()

    for i in range(4):  # four starts cut short by kill -9 at a random moment
        coney_util.start_again(b, wait=False, note="recovery %d, to be killed" % (i + 1))
        time.sleep(rng.uniform(0.0, 0.4) * SLOW)
        coney_util.kill_broker(b)
    coney_util.start_again(b)

    for q in queues:
        got = read_queue(b, q, True, "seed %d %s" % (SEED, q))
        assert [s for s, _ in got] == list(range(1, n + 1)), "seed %d %s" % (SEED, q)
