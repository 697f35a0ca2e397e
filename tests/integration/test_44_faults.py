"""Faults (issue 9): what the broker does when the machine, the disk or the
clients misbehave. Each test starts brokers of its own (skipped with
CONEY_TEST_TARGET) and names the fault it injects:

- kill -9 during mixed AMQP and MQTT load (test_13_crash.py covers
  AMQP-only crash cycles): confirmed and PUBACK/PUBCOMP'd messages, durable
  objects and MQTT sessions survive; nothing comes back twice unless it
  was unsettled at the kill and, where its delivery was on disk, flagged
  as a redelivery; the store opens without repair;
- a full disk (a tmpfs of 40 MB the test mounts, so it needs root): the
  store's writes fail with ENOSPC, publishers get basic.nack, or with the
  disk alarm connection.blocked; nothing confirmed is lost, the broker
  serves other connections and confirms again once space returns;
- clients that vanish mid-frame or stop answering (half-open TCP), a
  consumer that never acks, 10,000 connections opened and dropped at once,
  running out of file descriptors, and a slowloris on the management port:
  everyone else keeps being served and the broker's file descriptors and
  memory come back.

Sizes shrink under the sanitizer build (CONEY_SANITIZED); deadlines only
bound liveness, nothing here times the broker's speed.
"""

import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import pika
import pytest

import coney_raw as R
import coney_util
import mqtt_raw as M
from coney_util import (SANITIZED, SLOW, TIMEOUT, BulkChannel, closed_by_peer, mqtt_id,
                        mqtt_topic, start_broker, uname, wait_for)
from http_client import Api

PERSISTENT_FLAGS, PERSISTENT_PROPS = 0x1000, b"\x02"   # delivery-mode = 2 only
SCALE = 3 if SANITIZED else 1                             # divides volumes under ASan


# ------------------------------------------------------------ brokers and helpers

@pytest.fixture
def brokers(coney_bin, tmp_path):
    """start(conf=None, data_dir=None, env=None): a broker of the test's own
    with that config text. Each is stopped at the end (SIGTERM, clean exit,
    no sanitizer report) unless the test killed it."""
    started = []

    def start(conf=None, data_dir=None, env=None):
        extra = []
        if conf:
            path = tmp_path / ("coney-%d.conf" % len(started))
            path.write_text(conf)
            extra += ["--config", str(path)]
        if data_dir:
            extra += ["--data-dir", str(data_dir)]
        b = start_broker(coney_bin, extra_args=extra, env=env)
        started.append(b)
        return b

    yield start
    problems = []
    for b in started:
        try:
            if b.alive() and not b.stopped:
                b.check_clean_exit(b.stop(signal.SIGTERM))
            else:
                report = b.sanitizer_report()
                if report:
                    problems.append("sanitizer report in broker log:\n" + report)
        except AssertionError as e:
            problems.append(str(e))
        finally:
            b.cleanup()
    assert not problems, "\n\n".join(problems)


def fd_count(b):
    return len(os.listdir("/proc/%d/fd" % b.proc.pid))


def seq_body(seq, size=200):
    return struct.pack("!Q", seq) + bytes([seq % 251]) * size


def body_seq(body):
    return struct.unpack_from("!Q", body)[0]


def parse_deliver(payload):
    """(delivery tag, redelivered) of a basic.deliver method payload."""
    n = payload[4]
    tag, bits = struct.unpack_from("!QB", payload, 5 + n)
    return tag, bool(bits & 1)


def read_content(bulk):
    """The body that follows a deliver/get-ok on a BulkChannel."""
    ftype, _, header = bulk.frame()
    assert ftype == R.FRAME_HEADER, "expected a content header, got frame type %d" % ftype
    size = struct.unpack_from("!Q", header, 4)[0]
    parts, got = [], 0
    while got < size:
        ftype, _, body = bulk.frame()
        assert ftype == R.FRAME_BODY, "expected a body frame, got type %d" % ftype
        parts.append(body)
        got += len(body)
    return b"".join(parts)


def read_queue(b, queue, ack, where):
    """Every message in `queue` in delivery order as [(body, redelivered)],
    and exactly message_count of them: a count the broker cannot deliver
    (a tail lost on disk) times out here. ack=False leaves them in the
    queue (they go back when the channel closes)."""
    bulk = BulkChannel(b, timeout=30 * SLOW)
    try:
        count = bulk.rpc("queue.declare", "queue.declare-ok", queue=queue,
                         passive=True)["message_count"]
        bulk.rpc("basic.qos", "basic.qos-ok", prefetch_count=0)
        bulk.rpc("basic.consume", "basic.consume-ok", queue=queue, no_ack=ack)
        out = []
        for i in range(count):
            try:
                ftype, _, payload = bulk.frame()
            except TimeoutError:
                raise AssertionError("%s: queue %s: message_count said %d, only %d delivered"
                                     % (where, queue, count, i))
            assert ftype == R.FRAME_METHOD and payload[:4] == b"\x00\x3c\x00\x3c", \
                "%s: expected basic.deliver, got frame type %d %r" % (where, ftype, payload[:8])
            _, redelivered = parse_deliver(payload)
            out.append((read_content(bulk), redelivered))
        ok = bulk.rpc("queue.declare", "queue.declare-ok", queue=queue, passive=True)
        if ack:
            assert ok["message_count"] == 0, "%s: %d more messages appeared in %s" % (
                where, ok["message_count"], queue)
        return out
    finally:
        bulk.close()


def log_since(b, offset):
    return b.log()[offset:]


REPAIR_MARKERS = ("[error]", "coney: storage:", "corrupt", "repair", "cannot be read",
                  "are missing", "skipping")


def assert_opened_without_repair(text, where):
    bad = [line for line in text.splitlines() if any(m in line for m in REPAIR_MARKERS)]
    assert not bad, "%s: the store did not open cleanly:\n%s" % (where, "\n".join(bad[:20]))
    assert "recovered" in text, "%s: no recovery line in the log:\n%s" % (where, text[-2000:])


# ------------------------------------------------------------ kill -9 under mixed load

class AmqpPublisher(threading.Thread):
    """Persistent publishes with confirms to a durable fanout exchange, at
    most `window` unconfirmed, until the connection dies."""

    def __init__(self, b, exchange, window=300):
        super().__init__(daemon=True)
        self.bulk = BulkChannel(b)
        self.bulk.confirm_select()
        self.exchange = exchange
        self.window = window
        self.error = None

    def run(self):
        bulk = self.bulk
        try:
            while True:
                if bulk.unresolved() < self.window:
                    n = min(50, self.window - bulk.unresolved())
                    bulk.send(b"".join(
                        bulk.publish_bytes(self.exchange, "", seq_body(bulk.published + 1),
                                           PERSISTENT_PROPS, PERSISTENT_FLAGS)
                        for _ in range(n)))
                r = bulk.poll(timeout=TIMEOUT)
                if r is not None:
                    self.error = "publisher got %s %r" % r
                    return
        except (EOFError, OSError, TimeoutError):
            return

    def confirmed(self):
        c = self.bulk.confirm
        return {t for t in range(1, self.bulk.published + 1) if c[t] == 1}

    def max_confirmed(self):
        c = self.bulk.confirm
        return max((t for t in range(1, self.bulk.published + 1) if c[t] == 1), default=0)


class AmqpConsumer(threading.Thread):
    """Consumes a queue with manual acks (multiple, every 25 deliveries) and
    now and then a fence: a basic.qos round trip after which the broker has
    handled every ack sent before it. For each delivery and each fence it
    notes how many messages the publisher had sent by then: a confirm for a
    later one proves the delivery's mark, or the acks, reached the disk."""

    def __init__(self, b, queue, publisher):
        super().__init__(daemon=True)
        self.bulk = BulkChannel(b)
        self.bulk.rpc("basic.qos", "basic.qos-ok", prefetch_count=200)
        self.bulk.rpc("basic.consume", "basic.consume-ok", queue=queue, no_ack=False)
        self.publisher = publisher
        self.deliveries = []   # (seq, redelivered, publisher's count at receipt)
        self.acked = 0         # deliveries[:acked] are acked
        self.fences = []       # (deliveries acked before it, publisher's count after it)
        self.error = None

    def run(self):
        bulk = self.bulk
        fence_pending = None
        try:
            while True:
                ftype, _, payload = bulk.frame(timeout=TIMEOUT)
                if payload[:4] == b"\x00\x3c\x00\x0b":            # basic.qos-ok
                    self.fences.append((fence_pending, self.publisher.bulk.published))
                    fence_pending = None
                    continue
                if ftype != R.FRAME_METHOD or payload[:4] != b"\x00\x3c\x00\x3c":
                    self.error = "consumer got frame type %d %r" % (ftype, payload[:16])
                    return
                tag, redelivered = parse_deliver(payload)
                seq = body_seq(read_content(bulk))
                self.deliveries.append((seq, redelivered, self.publisher.bulk.published))
                if tag % 25 == 0:
                    bulk.send(R.method_frame(1, "basic.ack", delivery_tag=tag, multiple=True))
                    self.acked = tag
                    if fence_pending is None and tag % 100 == 0:
                        fence_pending = tag
                        bulk.send(R.method_frame(1, "basic.qos", prefetch_count=200))
        except (EOFError, OSError, TimeoutError):
            return


class Declarer(threading.Thread):
    """Declares durable exchanges, queues and bindings one after another and
    remembers each whose -ok arrived."""

    def __init__(self, b):
        super().__init__(daemon=True)
        self.conn = b.connect()
        self.exchanges, self.queues, self.bindings = [], [], []

    def run(self):
        try:
            ch = self.conn.channel()
            while True:
                x, q = uname("x-kill"), uname("q-kill")
                ch.exchange_declare(x, "topic", durable=True)
                self.exchanges.append(x)
                ch.queue_declare(q, durable=True)
                self.queues.append(q)
                ch.queue_bind(q, x, "k.#")
                self.bindings.append((q, x))
        except Exception:
            return


# the kill comes at the latest once an MQTT publisher has sent four fifths
# of this: what a lagging QoS 2 session can catch up on after the restart
MQTT_CAP = 4000 // SCALE
# A publisher itself stops only far past that point: between noticing it
# and the kill (a poll and up to 0.2 s) a fast one must still have
# publishes out, or the test has nothing MQTT in flight to check.
MQTT_STOP = MQTT_CAP * 10


class MqttPublisher(threading.Thread):
    """paho, clean_session=False, publishing "<tag>:<seq>" at one QoS with
    at most 20 unfinished; PUBACK (QoS 1) or PUBCOMP (QoS 2) confirms.
    After CONNACK this thread runs paho's network loop itself: publishing
    from a second thread races paho's own socket handling when the
    connection drops."""

    def __init__(self, b, topic, qos, tag):
        super().__init__(daemon=True)
        self.client = M.PahoClient(b.host, b.mqtt_port, mqtt_id("pub%d" % qos), clean=False,
                                   timeout=TIMEOUT)
        self.client.connect()
        self.client._stop = True          # hand the network loop over to run()
        self.client._thread.join(TIMEOUT)
        self.client._stop = False
        self.topic, self.qos, self.tag = topic, qos, tag
        self.mids = {}   # mid -> seq
        self.sent = 0

    def run(self):
        c = self.client
        cap = MQTT_STOP
        while True:
            if self.sent < cap and self.sent - len(c.published) < 20:
                self.sent += 1
                info = c.c.publish(self.topic, b"%s:%d" % (self.tag, self.sent), self.qos)
                self.mids[info.mid] = self.sent
                if info.rc != 0:
                    return
            if c.c.loop(timeout=0.01) != 0:
                return

    def confirmed(self):
        done = set(self.client.published)
        return {seq for mid, seq in self.mids.items() if mid in done}


class MqttSubscriber:
    """paho, clean_session=False, subscribed to one topic; records every
    message with its DUP flag and the AMQP publisher's count at receipt."""

    def __init__(self, b, client_id, topic, qos, publisher, subscribe=True):
        self.publisher = publisher
        self.got = []    # (seq, dup, publisher's count)
        self.client = M.PahoClient(b.host, b.mqtt_port, client_id, clean=False, timeout=TIMEOUT)
        self.client.c.on_message = self._on_message
        self.connack = self.client.connect()
        if subscribe:
            assert self.client.subscribe(topic, qos) == [qos]

    def _on_message(self, c, u, m):
        self.got.append((int(m.payload.split(b":")[1]), bool(m.dup),
                         self.publisher.bulk.published if self.publisher else 0))

    def received(self):
        """[(seq, dup)] this client received, with the QoS 2 messages it
        answered with PUBREC whose PUBREL had not come: they are the
        client's from then on, but paho hands them over only at PUBREL and
        keeps them in memory, where a new client object for the session
        cannot see them."""
        held = [(int(m.payload.split(b":")[1]), bool(m.dup))
                for m in self.client.c._in_messages.values()]
        return [(s, d) for s, d, _ in self.got] + held


def fenced(mark, max_confirmed):
    """A delivery, or a fence, seen when the publisher had sent `mark`
    messages is on disk if a later publish was confirmed."""
    return max_confirmed > mark


def check_stream(where, confirmed, before, after, settled, on_disk_delivered):
    """The crash rule for one consumed stream. before/after: [(seq,
    redelivered or dup)] seen before the kill and after the restart;
    settled: seqs whose ack is known on disk; on_disk_delivered: seqs whose
    delivery mark is known on disk."""
    seen_before = {s for s, _ in before}
    seqs_after = [s for s, _ in after]
    twice = sorted({s for s in seqs_after if seqs_after.count(s) > 1})
    assert not twice, "%s: delivered twice after the restart: %r" % (where, twice[:20])
    lost = sorted(confirmed - seen_before - set(seqs_after))
    assert not lost, "%s: %d confirmed messages lost, e.g. %r" % (where, len(lost), lost[:20])
    back = sorted(set(seqs_after) & settled)
    assert not back, "%s: %d messages settled before the kill came back, e.g. %r" % (
        where, len(back), back[:20])
    unflagged = sorted(s for s, flag in after if s in on_disk_delivered and not flag)
    assert not unflagged, "%s: %d redeliveries not flagged as such, e.g. %r" % (
        where, len(unflagged), unflagged[:20])


@pytest.mark.timeout(90)
def test_kill_9_during_mixed_amqp_and_mqtt_load_loses_and_duplicates_nothing(brokers, capsys):
    b = brokers()
    rng = random.Random()
    x, qa, qb, qm = uname("x-mixed"), uname("q-live"), uname("q-kept"), uname("q-mqtt")
    base = mqtt_topic("kill")
    t1, t2 = base + "/q1", base + "/q2"
    setup = b.connect()
    ch = setup.channel()
    ch.exchange_declare(x, "fanout", durable=True)
    for q in (qa, qb):
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x)
    ch.queue_declare(qm, durable=True)        # every MQTT publish, seen from AMQP
    ch.queue_bind(qm, "amq.topic", base.replace("/", ".") + ".#")
    setup.close()

    publisher = AmqpPublisher(b, x)
    consumer = AmqpConsumer(b, qa, publisher)
    declarer = Declarer(b)
    sub_ids = (mqtt_id("s1"), mqtt_id("s2"))
    sub1 = MqttSubscriber(b, sub_ids[0], t1, 1, publisher)
    sub2 = MqttSubscriber(b, sub_ids[1], t2, 2, publisher)
    mpub1 = MqttPublisher(b, t1, 1, b"1")
    mpub2 = MqttPublisher(b, t2, 2, b"2")
    threads = (publisher, consumer, declarer, mpub1, mpub2)
    for t in threads:
        t.start()

    want = {"amqp confirmed": 3000 // SCALE, "amqp acked": 600 // SCALE,
            "declared": 10, "mqtt qos1 done": 150 // SCALE, "mqtt qos2 done": 80 // SCALE,
            "mqtt qos1 received": 100 // SCALE, "mqtt qos2 received": 20 // SCALE}

    def progress():
        return {"amqp confirmed": publisher.bulk.low - 1, "amqp acked": consumer.acked,
                "declared": len(declarer.bindings),
                "mqtt qos1 done": len(mpub1.client.published),
                "mqtt qos2 done": len(mpub2.client.published),
                "mqtt qos1 received": len(sub1.got), "mqtt qos2 received": len(sub2.got)}

    try:
        # kill once every kind of load runs, or before an MQTT publisher
        # reaches its cap (then it would have nothing in flight)
        wait_for(lambda: all(progress()[k] >= v for k, v in want.items())
                 or max(mpub1.sent, mpub2.sent) >= MQTT_CAP * 4 // 5
                 or not all(t.is_alive() for t in threads),
                 timeout=40 * SLOW, what="every kind of load to get going")
    except AssertionError:
        raise AssertionError("load did not get going: %r (want %r); errors %r %r" % (
            progress(), want, publisher.error, consumer.error))
    for t in threads:
        assert t.is_alive(), "a load thread ended before the kill: %r; errors %r %r" % (
            t, publisher.error, consumer.error)
    time.sleep(rng.uniform(0.0, 0.2))
    coney_util.kill_broker(b)
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "%r still running after the kill" % (t,)
    assert publisher.error is None and consumer.error is None, (publisher.error, consumer.error)
    for c in (sub1.client, sub2.client, mpub1.client, mpub2.client):
        c.stop()

    confirmed = publisher.confirmed()
    max_conf = publisher.max_confirmed()
    mq_confirmed = {1: mpub1.confirmed(), 2: mpub2.confirmed()}
    assert len(confirmed) < publisher.bulk.published, "no AMQP publish was in flight at the kill"
    assert mpub1.sent > len(mq_confirmed[1]) or mpub2.sent > len(mq_confirmed[2]), \
        "no MQTT publish was in flight at the kill"
    before_restart = len(b.log())
    coney_util.start_again(b, note="start after kill -9 under mixed load")
    assert_opened_without_repair(log_since(b, before_restart), "restart")

    # Durable objects whose -ok arrived before the kill
    conn = b.connect()
    for kind, names in (("exchange", declarer.exchanges), ("queue", declarer.queues)):
        for name in names:
            c = conn.channel()
            try:
                if kind == "exchange":
                    c.exchange_declare(name, passive=True)
                else:
                    c.queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                raise AssertionError("durable %s %s, declared-ok before the kill, is gone: %s"
                                     % (kind, name, e))
            c.close()
    # a binding declared-ok before the kill still routes
    c = conn.channel()
    c.confirm_delivery()
    for q, xx in declarer.bindings[-3:]:
        c.basic_publish(xx, "k.check", b"bound")
        m, _, body = c.basic_get(q, auto_ack=True)
        assert body == b"bound", "binding %s -> %s lost" % (xx, q)
    conn.close()

    # AMQP: the unconsumed queue holds every confirmed message once
    kept = [body_seq(body) for body, _ in read_queue(b, qb, True, "kept queue")]
    assert len(kept) == len(set(kept)), "kept queue: duplicates %r" % sorted(
        {s for s in kept if kept.count(s) > 1})[:20]
    lost = sorted(confirmed - set(kept))
    assert not lost, "kept queue: %d confirmed messages lost, e.g. %r" % (len(lost), lost[:20])
    stray = [s for s in kept if s > publisher.bulk.published]
    assert not stray, "kept queue: messages never published: %r" % stray[:10]

    # AMQP: the consumed queue, against what was delivered and acked before
    settled = set()
    for acked_upto, mark in consumer.fences:
        if fenced(mark, max_conf):
            settled.update(s for s, _, _ in consumer.deliveries[:acked_upto])
    marked = {s for s, _, mark in consumer.deliveries if fenced(mark, max_conf)}
    after = [(body_seq(body), r) for body, r in read_queue(b, qa, True, "consumed queue")]
    check_stream("consumed AMQP queue", confirmed,
                 [(s, r) for s, r, _ in consumer.deliveries], after, settled, marked)
    assert settled, "no ack was fenced before the kill: the check above checked nothing"
    summary = ["AMQP: %d published, %d confirmed, %d delivered, %d acked on disk, %d back "
               "after the restart (%d flagged)" % (
                   publisher.bulk.published, len(confirmed), len(consumer.deliveries),
                   len(settled), len(after), sum(1 for _, r in after if r))]

    # MQTT, seen from AMQP: every PUBACK'd and PUBCOMP'd message, once
    mq = [body for body, _ in read_queue(b, qm, True, "MQTT messages queue")]
    assert len(mq) == len(set(mq)), "MQTT publishes stored twice: %r" % sorted(
        {m for m in mq if mq.count(m) > 1})[:10]
    for qos in (1, 2):
        got = {int(m.split(b":")[1]) for m in mq if m.startswith(b"%d:" % qos)}
        lost = sorted(mq_confirmed[qos] - got)
        assert not lost, "QoS %d: %d acknowledged publishes lost, e.g. %r" % (
            qos, len(lost), lost[:20])

    # MQTT sessions: back without subscribing again, with what they missed
    for sub, client_id, topic, qos in ((sub1, sub_ids[0], t1, 1), (sub2, sub_ids[1], t2, 2)):
        again = MqttSubscriber(b, client_id, topic, qos, None, subscribe=False)
        assert again.connack[1], "session %s not present after the restart" % client_id
        confirmed_q = mq_confirmed[qos]
        before = sub.received()
        seen = {s for s, _ in before}
        wait_for(lambda: confirmed_q <= seen | {s for s, _, _ in again.got},
                 timeout=3 * TIMEOUT, what="QoS %d session to get what it missed" % qos)
        time.sleep(0.3 * SLOW)    # anything extra, such as a duplicate
        after = [(s, dup) for s, dup, _ in again.got]
        marked = {s for s, _, mark in sub.got if fenced(mark, max_conf)}
        # what the subscriber acknowledged is not known to be on disk:
        # paho sends its PUBACK/PUBCOMP after the message is handed over
        check_stream("MQTT QoS %d session" % qos, confirmed_q, before, after, set(), marked)
        summary.append("MQTT QoS %d: %d acknowledged, %d received before, %d after (%d DUP)"
                       % (qos, len(confirmed_q), len(sub.got), len(after),
                          sum(1 for _, d in after if d)))
        # the subscription itself survived: a new publish reaches it
        p = M.PahoClient(b.host, b.mqtt_port, mqtt_id("p"), timeout=TIMEOUT)
        p.connect()
        p.publish(topic, b"%d:999999" % qos, qos)
        wait_for(lambda: any(s == 999999 for s, _, _ in again.got), timeout=TIMEOUT,
                 what="a publish after the restart to reach session %s" % client_id)
        p.disconnect()
        again.client.disconnect()
    with capsys.disabled():
        print("\n  kill -9 under load: %d durable objects declared; %s" % (
            len(declarer.exchanges) + len(declarer.queues), "; ".join(summary)))


# ------------------------------------------------------------ a full disk

@pytest.fixture
def small_fs(tmp_path):
    """A 40 MB tmpfs for the data dir, unmounted at the end."""
    d = tmp_path / "smallfs"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the disk-full tests needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(d)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        pytest.skip("cannot mount a 40 MB tmpfs (%s)" % r.stdout.decode().strip())
    yield d
    if subprocess.run(["umount", str(d)]).returncode != 0:
        subprocess.run(["umount", "-l", str(d)])


@pytest.fixture
def fs_brokers(small_fs, brokers):
    """brokers() whose data dir is on the small file system (torn down
    before it is unmounted)."""
    def start(conf):
        return brokers(conf, data_dir=small_fs / "data")
    start.fs = small_fs
    return start


def fill(fs, leave):
    """Writes a filler file so that about `leave` bytes stay free; returns
    its path."""
    path = os.path.join(str(fs), "filler")
    st = os.statvfs(str(fs))
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            f.write(chunk[:min(size, len(chunk))])
            size -= len(chunk)
    return path


def publish_until_refused(bulk, queue, deadline, enough_nacks):
    """Publishes 8 KB persistent messages with confirms until the broker
    refuses: `enough_nacks` nacks, or connection.blocked and no confirm for
    a while. Returns the methods (other than confirms) the broker sent."""
    events = []
    stall = 0
    while time.monotonic() < deadline:
        if not events and bulk.unresolved() < 300:
            bulk.send(b"".join(bulk.publish_bytes("", queue, seq_body(bulk.published + 1, 8192),
                                                  PERSISTENT_PROPS, PERSISTENT_FLAGS)
                               for _ in range(50)))
        try:
            r = bulk.poll(timeout=0.5 * SLOW)
        except TimeoutError:
            stall += 1
            if events and stall >= 3 or bulk.unresolved() == 0:
                return events
            continue
        stall = 0
        if r is not None:
            events.append(r)
        if bulk.confirm.count(2) >= enough_nacks:
            return events
    return events


def publish_confirmed_again(b, queue, first_seq, n):
    """After space returned: publishes until confirms are acks again (a
    nack or two as the store catches up is allowed), then n more that must
    all be acked. Returns the confirmed seqs."""
    bulk = BulkChannel(b)
    bulk.confirm_select()
    confirmed = set()
    seq = first_seq

    def one():
        nonlocal seq
        seq += 1
        bulk.send(bulk.publish_bytes("", queue, seq_body(seq, 8192), PERSISTENT_PROPS,
                                     PERSISTENT_FLAGS))
        while bulk.unresolved():       # an alarm still clearing may block it a moment
            r = bulk.poll()
            assert r is None or r[0] in ("connection.blocked", "connection.unblocked"), r
        if bulk.confirm[bulk.published] == 1:
            confirmed.add(seq)
            return True
        return False

    wait_for(one, timeout=TIMEOUT, interval=0.2, what="a publish confirmed after space returned")
    for _ in range(n):
        assert one(), "a publish was nacked after space returned"
    bulk.close()
    return confirmed


def other_connection_works(b, queue):
    """A new connection that does not publish (under the disk alarm no one
    may) is served: it declares, and takes a message from `queue` and puts
    it back."""
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)
    m, _, body = coney_util.get_one(ch, queue)
    ch.basic_reject(m.delivery_tag, requeue=True)
    ch.queue_declare(queue, passive=True)
    conn.close()
    return len(body) > 8


def check_after_disk_full(b, q, confirmed, published, where):
    """Every confirmed message is in q once: first in the running broker
    (whose queue paged part of itself to the disk that filled), then after
    a clean restart (what the disk holds)."""
    for phase in ("running", "after restart"):
        got = [body_seq(body) for body, _ in read_queue(b, q, phase != "running",
                                                        "%s, %s" % (where, phase))]
        dups = sorted({s for s in got if got.count(s) > 1})
        assert not dups, "%s, %s: duplicated %r" % (where, phase, dups[:20])
        lost = sorted(confirmed - set(got))
        assert not lost, "%s, %s: %d confirmed messages lost, e.g. %r" % (
            where, phase, len(lost), lost[:20])
        if phase == "running":
            coney_util.restart_broker(b)


@pytest.mark.timeout(90)
def test_disk_full_nacks_publishers_loses_nothing_confirmed_and_recovers(fs_brokers):
    # a 1-byte disk_free_limit: no alarm, the store's writes meet ENOSPC;
    # a small queue memory budget makes the queue page to the full disk too
    b = fs_brokers("disk_free_limit.absolute = 1\nqueue_memory_budget = 1MB\n")
    filler = fill(fs_brokers.fs, 12 << 20)
    q = uname("q-full")
    bulk = BulkChannel(b)
    bulk.rpc("queue.declare", "queue.declare-ok", queue=q, durable=True)
    bulk.confirm_select()
    events = publish_until_refused(bulk, q, time.monotonic() + 40 * SLOW,
                                   enough_nacks=1500 // SCALE)
    nacked = bulk.confirm.count(2)
    assert nacked, "no publish was nacked: the disk never filled (events %r)" % (events,)
    confirmed = {t for t in range(1, bulk.published + 1) if bulk.confirm[t] == 1}
    published = bulk.published
    assert b.alive(), "the broker died on a full disk:\n" + b.log_tail()
    assert other_connection_works(b, q)
    bulk.close()

    os.unlink(filler)
    confirmed |= publish_confirmed_again(b, q, published, 20)
    check_after_disk_full(b, q, confirmed, published, "ENOSPC")
    log = b.log()
    assert log.count("storage: batch") < 20, "a failed batch per log line:\n" + b.log_tail()


@pytest.mark.timeout(90)
def test_disk_alarm_blocks_publishers_before_the_disk_is_full_and_unblocks(fs_brokers):
    b = fs_brokers("disk_free_limit.absolute = 8MB\n")
    filler = fill(fs_brokers.fs, 16 << 20)
    q = uname("q-alarm")
    bulk = BulkChannel(b)
    bulk.rpc("queue.declare", "queue.declare-ok", queue=q, durable=True)
    bulk.confirm_select()
    events = publish_until_refused(bulk, q, time.monotonic() + 40 * SLOW, enough_nacks=10 ** 9)
    names = [name for name, _ in events]
    assert names[:1] == ["connection.blocked"], "expected connection.blocked, got %r" % (events,)
    assert "disk" in events[0][1]["reason"], events
    confirmed = {t for t in range(1, bulk.published + 1) if bulk.confirm[t] == 1}
    assert b.alive()
    assert other_connection_works(b, q)

    os.unlink(filler)
    got = bulk.method(timeout=TIMEOUT)     # confirms of what it read go on arriving
    assert got[0] == "connection.unblocked", got
    bulk.wait_confirms()
    confirmed |= {t for t in range(1, bulk.published + 1) if bulk.confirm[t] == 1}
    published = bulk.published
    bulk.close()
    confirmed |= publish_confirmed_again(b, q, published, 20)
    check_after_disk_full(b, q, confirmed, published, "disk alarm")


# ------------------------------------------------------------ clients that misbehave

def linger_rst(s):
    """Close with RST instead of FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def amqp_open(b):
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT)
    raw.open()
    raw.open_channel(1)
    return raw


def keeper_round(ch, q, tag):
    """One publish and get on a connection that must keep working."""
    ch.basic_publish("", q, tag)
    _, _, body = coney_util.get_one(ch, q, auto_ack=True)
    assert body == tag


def test_clients_that_vanish_mid_frame_are_cleaned_up_and_route_nothing(brokers):
    b = brokers()
    keeper = b.connect()
    kch = keeper.channel()
    kq = kch.queue_declare("", exclusive=True).method.queue
    target = uname("q-half")
    kch.queue_declare(target, durable=True)
    mq = M.MqttSocket(b.host, b.mqtt_port, TIMEOUT)
    mq.connect(mqtt_id("watch"))
    topic = mqtt_topic("half")
    mq.subscribe(1, [(topic, 1)])
    keeper_round(kch, kq, b"warm")
    base = fd_count(b)

    publish = R.method_frame(1, "basic.publish", exchange="", routing_key=target)
    header = R.header_frame(1, 1000, flags=PERSISTENT_FLAGS, props=PERSISTENT_PROPS)
    body = R.body_frame(1, b"b" * 1000)
    cases = [
        ("half a protocol header", None, b"AMQP\x00", "fin"),
        ("half a protocol header", None, b"AMQP\x00\x00", "rst"),
        ("half a frame header", "open", publish[:4], "fin"),
        ("half a frame header", "open", publish[:5], "rst"),
        ("half a method frame", "open", publish[:len(publish) - 3], "fin"),
        ("half a body", "open", publish + header + body[:500], "fin"),
        ("half a body", "open", publish + header + body[:500], "rst"),
        ("a body without its frame end", "open", publish + header + body[:-1], "rst"),
    ]
    for name, state, data, how in cases:
        if state == "open":
            raw = amqp_open(b)
            s = raw.sock
        else:
            s = socket.create_connection((b.host, b.port), timeout=TIMEOUT)
        s.sendall(data)
        time.sleep(0.05)
        if how == "rst":
            linger_rst(s)
        else:
            s.close()
        keeper_round(kch, kq, name.encode())

    mqtt_cases = [
        ("half a CONNECT", False, M.connect(mqtt_id("h"))[:7]),
        ("half a PUBLISH", True, M.publish(topic, b"m" * 300, qos=1, pid=7)[:150]),
        ("a PUBLISH header that promises more", True, M.publish(topic, b"x", qos=1, pid=8)[:2]),
    ]
    for name, connected, data in mqtt_cases:
        for how in ("fin", "rst"):
            s = M.MqttSocket(b.host, b.mqtt_port, TIMEOUT)
            if connected:
                s.connect(mqtt_id("h"))
            s.sock.sendall(data)
            time.sleep(0.05)
            if how == "rst":
                linger_rst(s.sock)
            else:
                s.close()
            keeper_round(kch, kq, name.encode())

    wait_for(lambda: fd_count(b) <= base, timeout=TIMEOUT,
             what="the broker's file descriptors to return to %d (now %d)" % (base, fd_count(b)))
    assert coney_util.message_count(keeper, target) == 0, "a half-sent message was routed"
    mq.quiet(0.3 * SLOW)            # no half-sent PUBLISH reached the subscriber
    mq.alive()
    keeper.close()
    mq.disconnect()


@pytest.mark.timeout(60)
def test_half_open_connections_are_closed_by_heartbeat_keepalive_and_handshake_timeouts(brokers):
    b = brokers()
    keeper = b.connect()
    kch = keeper.channel()
    kq = kch.queue_declare("", exclusive=True).method.queue
    base = fd_count(b)
    t0 = time.monotonic()
    # silent from the start: no protocol header, or half of one; no CONNECT
    silent = [socket.create_connection((b.host, b.port), timeout=TIMEOUT) for _ in range(2)]
    silent[1].sendall(b"AMQP")
    silent += [socket.create_connection((b.host, b.mqtt_port), timeout=TIMEOUT) for _ in range(2)]
    silent[3].sendall(b"\x10")
    # heartbeat 1 s negotiated, then silence (no FIN: the socket stays open)
    hb = R.RawConnection(b.host, b.port, timeout=TIMEOUT)
    hb.open(heartbeat=1)
    hb.open_channel(1)
    # MQTT keepalive 1 s, then silence
    ka = M.MqttSocket(b.host, b.mqtt_port, TIMEOUT)
    ka.connect(mqtt_id("ka"), keepalive=1)

    assert closed_by_peer(hb.sock, 10 * SLOW), "no close after missed heartbeats"
    assert closed_by_peer(ka.sock, 10 * SLOW), "no close after a missed MQTT keepalive"
    keeper_round(kch, kq, b"between")
    for i, s in enumerate(silent):
        assert closed_by_peer(s, 20 * SLOW), "silent connection %d still open after %.0fs" % (
            i, time.monotonic() - t0)
    assert "missed heartbeats" in b.log(), b.log_tail()
    wait_for(lambda: fd_count(b) <= base, timeout=TIMEOUT,
             what="file descriptors back to %d (now %d)" % (base, fd_count(b)))
    keeper_round(kch, kq, b"after")
    keeper.close()


@pytest.mark.timeout(90)
def test_a_consumer_that_never_acks_stalls_no_one_else_and_memory_stays_bounded(brokers):
    env = None
    if SANITIZED:   # freed memory would sit in ASan's quarantine and count as resident
        env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4"}
    b = brokers("queue_memory_budget = 2MB\n", env=env)
    stalled, slow, other = uname("q-stalled"), uname("q-prefetch"), uname("q-other")
    setup = b.connect()
    sch = setup.channel()
    for q in (stalled, slow, other):
        sch.queue_declare(q, durable=True)

    # prefetch 0 (unlimited) and never reads its socket, so never acks
    never_reads = BulkChannel(b)
    never_reads.rpc("basic.consume", "basic.consume-ok", queue=stalled, no_ack=False)
    # prefetch 10, reads its 10 deliveries, never acks
    holds = BulkChannel(b)
    holds.rpc("basic.qos", "basic.qos-ok", prefetch_count=10)
    holds.rpc("basic.consume", "basic.consume-ok", queue=slow, no_ack=False)
    # a normal consumer of another queue, and its publisher
    normal = b.connect()
    nch = normal.channel()
    received = []
    nch.basic_consume(other, lambda c, m, p, body: (received.append(body),
                                                     c.basic_ack(m.delivery_tag)))
    oconn = b.connect()
    och = oconn.channel()
    och.confirm_delivery()

    body_size = 64 * 1024
    half = (48 << 20) // SCALE // body_size      # messages per queue and phase
    pub = BulkChannel(b)
    pub.confirm_select()
    sent_other = 0
    rss = []
    for phase in range(2):
        for i in range(phase * half, (phase + 1) * half, 64):
            pub.send(b"".join(pub.publish_bytes("", q, seq_body(i + j, body_size),
                                                PERSISTENT_PROPS, PERSISTENT_FLAGS)
                              for j in range(64) for q in (stalled, slow)))
            pub.wait_confirms(timeout=60 * SLOW)
            och.basic_publish("", other, b"other %d" % sent_other,
                              pika.BasicProperties(delivery_mode=2))
            sent_other += 1
            normal.process_data_events(time_limit=0)
        rss.append(coney_util.broker_memory(b)["RssAnon"])
    n = 2 * half
    assert pub.confirm[1:] == b"\x01" * pub.published, "publishes nacked"
    coney_util.pump_until(normal, lambda: len(received) == sent_other, timeout=TIMEOUT,
                          what="the other queue's %d messages" % sent_other)
    assert received == [b"other %d" % i for i in range(sent_other)]
    for _ in range(10):
        holds.delivery()
    with pytest.raises(TimeoutError):
        holds.delivery(timeout=0.3 * SLOW)   # prefetch 10 holds: no 11th

    # the second half queued as much as the first behind the same consumers:
    # memory that followed the volume would grow by as much again
    phase_bytes = 2 * half * body_size
    assert rss[1] - rss[0] < phase_bytes // 4, "broker anonymous memory grew by %d MB while " \
        "%d MB more queued behind consumers that never ack (%d MB after the first %d MB)" % (
            (rss[1] - rss[0]) >> 20, phase_bytes >> 20, rss[0] >> 20, phase_bytes >> 20)
    counts = [coney_util.message_count(setup, q) for q in (stalled, slow)]
    assert counts[1] == n - 10, counts
    assert counts[0] < n, "the stalled consumer got nothing: %r" % counts
    # the stalled consumer still answers once it reads: its deliveries flow
    tag, _, _, _, body = never_reads.delivery(timeout=TIMEOUT)
    assert body_seq(body) == 0
    for c in (never_reads, holds, pub):
        c.close()
    for c in (setup, normal, oconn):
        c.close()


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d is below the %d this test needs" % (hard, need))
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def client_socket():
    """A TCP socket whose TIME_WAIT remnant, once closed, will not keep a
    later broker from binding the same port number (a bind conflicts with
    a TIME_WAIT socket unless both set SO_REUSEADDR)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def open_many(host, port, n, partial, every=3, per_address=None):
    """n connections, every `every`th sending `partial`; with per_address,
    from that many at most per loopback address (127.0.1.x), so that
    coney.handshake_max_per_ip (256 not logged in per address) lets them
    all stay."""
    out = []
    for i in range(n):
        s = client_socket()
        if per_address:
            s.bind(("127.0.%d.%d" % (1 + i // per_address // 250, 1 + i // per_address % 250), 0))
        s.settimeout(TIMEOUT)
        s.connect((host, port))
        if i % every == 0:
            s.sendall(partial)
        out.append(s)
    return out


def close_all(socks):
    """Closes them all at once: one in ten with FIN, the rest with RST
    (which leaves no TIME_WAIT behind on the ephemeral ports)."""
    for i, s in enumerate(socks):
        if i % 10:
            linger_rst(s)
        else:
            s.close()


@pytest.mark.timeout(90)
def test_10000_connections_opened_and_dropped_at_once_leave_the_broker_serving(brokers):
    n_amqp, n_mqtt = 6000 // SCALE, 4000 // SCALE
    old = raise_nofile(n_amqp + n_mqtt + 1000)
    try:
        b = brokers()
        keeper = b.connect()
        kch = keeper.channel()
        kq = kch.queue_declare("", exclusive=True).method.queue
        keeper_round(kch, kq, b"warm")
        base = fd_count(b)
        # many clients at once: 200 from each of 50 addresses
        socks = open_many(b.host, b.port, n_amqp, b"AMQP\x00", per_address=120)
        socks += open_many(b.host, b.mqtt_port, n_mqtt, b"\x10\x20\x00", per_address=80)
        wait_for(lambda: fd_count(b) >= base + len(socks), timeout=30 * SLOW,
                 what="the broker to accept %d connections (holds %d fds, base %d)"
                 % (len(socks), fd_count(b), base))
        keeper_round(kch, kq, b"while open")
        close_all(socks)
        keeper_round(kch, kq, b"after close")
        wait_for(lambda: fd_count(b) <= base, timeout=30 * SLOW,
                 what="file descriptors back to %d (now %d)" % (base, fd_count(b)))
        fresh = b.connect()
        fch = fresh.channel()
        keeper_round(fch, fch.queue_declare("", exclusive=True).method.queue, b"new")
        fresh.close()
        with M.MqttSocket(b.host, b.mqtt_port, TIMEOUT) as mq:
            mq.connect(mqtt_id("after"))
            mq.alive()
        keeper_round(kch, kq, b"end")
        keeper.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def accept_warnings(b):
    return sum(1 for line in b.log().splitlines()
               if "accept" in line and ("open files" in line or "descriptors" in line))


@pytest.mark.timeout(60)
def test_running_out_of_file_descriptors_pauses_accepting_instead_of_spinning(brokers):
    b = brokers()
    keeper = b.connect()
    kch = keeper.channel()
    kq = kch.queue_declare("", exclusive=True).method.queue
    base = fd_count(b)
    limit = base + 100
    resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
    socks = open_many(b.host, b.port, 300, b"AMQP\x00")   # the rest wait in the backlog
    wait_for(lambda: fd_count(b) >= limit - 1, timeout=TIMEOUT,
             what="the broker to reach its descriptor limit")
    # and one for the management listener (libmicrohttpd accepts for itself)
    socks.append(socket.create_connection((b.host, b.http_port), timeout=TIMEOUT))
    with open("/proc/%d/stat" % b.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu0 = int(fields[11]) + int(fields[12])
    time.sleep(2.0)
    keeper_round(kch, kq, b"at the limit")
    with open("/proc/%d/stat" % b.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) - cpu0
    warned = accept_warnings(b)
    assert warned >= 1, "nothing logged about the descriptor limit:\n" + b.log_tail()
    assert warned < 30, "%d accept warnings in 2 s: accept spins on EMFILE" % warned
    hz = os.sysconf("SC_CLK_TCK")
    assert ticks < 1.5 * hz * SLOW, "the broker used %.1f s of CPU in 2 s at its descriptor " \
        "limit: accept spins on EMFILE" % (ticks / hz)
    close_all(socks)
    wait_for(lambda: fd_count(b) <= base, timeout=30 * SLOW,
             what="file descriptors back to %d (now %d)" % (base, fd_count(b)))
    fresh = b.connect()
    fresh.close()
    keeper_round(kch, kq, b"after")
    keeper.close()


HTTP_PER_IP_LIMIT = 100        # coney.management.max_connections_per_ip, docs/operations.md
HTTP_HEADER_TIMEOUT = 10.0     # coney.management.header_timeout


@pytest.mark.timeout(90)
def test_http_slowloris_does_not_starve_the_management_api(brokers):
    b = brokers()
    api = Api(b)
    assert api.get("/api/overview").status == 200
    n = 1100                   # past libmicrohttpd's whole connection limit
    request = b"GET /api/overview HTTP/1.1\r\nHost: coney\r\nX-Slow: " + b"a" * 100
    socks = []
    for _ in range(n):
        s = client_socket()
        s.bind(("127.0.0.2", 0))       # another client address than the API's caller
        s.settimeout(TIMEOUT)
        s.connect((b.host, b.http_port))
        s.setblocking(False)
        socks.append(s)
    open_ = list(range(n))
    t0 = time.monotonic()
    rounds = 0
    answered = 0
    while open_ and time.monotonic() - t0 < HTTP_HEADER_TIMEOUT + 8 * SLOW:
        still = []
        for i in open_:
            s = socks[i]
            try:
                if s.recv(4096) == b"":
                    continue            # closed by the server
            except BlockingIOError:
                pass
            except OSError:
                continue
            try:
                s.send(request[rounds % len(request):rounds % len(request) + 1])
            except OSError:
                continue
            still.append(i)
        open_ = still
        r = api.get("/api/overview")
        assert r.status == 200, "GET /api/overview under slowloris: %r" % (r,)
        answered += 1
        if rounds == 1:
            assert len(open_) <= HTTP_PER_IP_LIMIT, \
                "%d slow connections from one address still open" % len(open_)
        rounds += 1
        time.sleep(1.0)
    assert not open_, "%d slowloris connections still open after %.0f s" % (
        len(open_), time.monotonic() - t0)
    for s in socks:
        s.close()
    assert api.get("/api/overview").status == 200


def _silent_http_clients(b, n):
    """n connections to the management port from 127.0.0.2 that send nothing."""
    socks = []
    for _ in range(n):
        s = client_socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(TIMEOUT)
        s.connect((b.host, b.http_port))
        socks.append(s)
    return socks


def test_http_connection_limits_follow_the_configuration(brokers):
    """coney.management.max_connections_per_ip and management.tcp.idle_timeout:
    past 3 from one address a connection is closed at once, and the 3 that
    stay are closed after 2 s of silence, long before the (default) 10 s
    header deadline."""
    b = brokers(conf="coney.management.max_connections_per_ip = 3\n"
                     "management.tcp.idle_timeout = 2000\n")
    socks = _silent_http_clients(b, 5)
    t0 = time.monotonic()
    closed = [closed_by_peer(s, 0.5) for s in socks]
    assert closed.count(True) == 2 and closed.count(False) == 3, closed
    for s, c in zip(socks, closed):
        if not c:
            assert closed_by_peer(s, 2 + 4 * SLOW), "silent connection not closed"
    assert time.monotonic() - t0 < HTTP_HEADER_TIMEOUT - 1
    for s in socks:
        s.close()
    assert Api(b).get("/api/overview").status == 200   # from 127.0.0.1: not counted


def test_http_header_deadline_and_body_limit_follow_the_configuration(brokers):
    """coney.management.header_timeout and management.http.max_body_size."""
    b = brokers(conf="coney.management.header_timeout = 1000\n"
                     "management.http.max_body_size = 1000\n")
    slow = _silent_http_clients(b, 1)[0]
    slow.sendall(b"GET /api/overview HTTP/1.1\r\nHost: coney\r\n")   # never finished
    t0 = time.monotonic()
    assert closed_by_peer(slow, 1 + 4 * SLOW), "half-sent headers not cut off"
    assert time.monotonic() - t0 < HTTP_HEADER_TIMEOUT - 1
    slow.close()

    api = Api(b)
    text = "d" * (1000 - len(json.dumps({"description": ""})))   # the body Api.put sends
    assert api.put("/api/vhosts/big", {"description": text}).status == 201   # 1000 bytes
    r = api.put("/api/vhosts/bigger", {"description": text + "d"})
    assert r.status == 413
    assert "1000 bytes" in r.json["reason"]
    assert api.get("/api/vhosts/big").json["description"] == text
    assert api.get("/api/vhosts/bigger").status == 404
