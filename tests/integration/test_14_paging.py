"""Paging: a queue that receives far more than its memory budget keeps the
excess on disk (transient messages too) and reads it back in order, so the
broker's memory stays bounded by the budget, not by the backlog.

The broker runs with `queue_memory_budget = 8MB` from a config file. Bodies
carry their queue, sequence number and a crc32, and the reader recomputes
each one, so a lost, duplicated, reordered or damaged message is caught.

Each test starts its own broker (skipped with CONEY_TEST_TARGET). Under
CONEY_SANITIZED=1 (ASan: slower, and its shadow memory and quarantine make
RSS meaningless) counts are smaller and the memory bound is not asserted."""

import hashlib
import signal
import struct
import time
import zlib

import pytest

import coney_util
from coney_util import SANITIZED, SLOW, BulkChannel, start_broker, uname

MB = 1000 * 1000
BUDGET = 8 * MB
BODY = 1024
TOTAL = 20000 if SANITIZED else 150000     # messages, over two queues
CHUNK = 2000                               # messages per send() while publishing

FLAGS = 0x1000                             # property flags: delivery-mode only
MODE_PROPS = {1: b"\x01", 2: b"\x02"}

# 4 KB of varied bytes that filler is sliced from
_NOISE = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(128))


def body_for(queue_no, seq):
    """queue number, sequence number, filler, crc32 of what precedes it:
    exactly BODY bytes, different for every (queue, seq)."""
    head = struct.pack("!BI", queue_no, seq)
    off = (seq * 37 + queue_no * 11) % (2 * BODY)
    data = head + _NOISE[off:off + BODY - len(head) - 4]
    return data + struct.pack("!I", zlib.crc32(data))


def mode_for(seq):
    return 2 if (seq // 3) % 2 else 1      # runs of three transient, three persistent


@pytest.fixture
def paging_broker(coney_bin, tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("queue_memory_budget = 8MB\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        yield b
        if not b.stopped:
            b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def private_bytes(b):
    """The broker's resident memory that is its own: heap and stacks
    (RssAnon) plus shared anonymous memory (RssShmem). File-backed resident
    pages (RssFile: the binary, libraries, an mmap'ed LMDB file) are page
    cache the kernel can drop and are left out."""
    m = coney_util.broker_memory(b)
    return m["RssAnon"] + m["RssShmem"], m


def publish(bulk, queues, count_per_queue, sample=None, first_seq=1):
    """Publishes seq first_seq.. to every queue in turn (seq-major, so the
    queues fill side by side), CHUNK messages per send."""
    msgs = []
    for seq in range(first_seq, first_seq + count_per_queue):
        for qno, q in enumerate(queues):
            msgs.append(bulk.publish_bytes("", q, body_for(qno, seq),
                                           MODE_PROPS[mode_for(seq)], FLAGS))
            if len(msgs) == CHUNK:
                bulk.send(b"".join(msgs))
                msgs = []
                if sample:
                    sample()
    if msgs:
        bulk.send(b"".join(msgs))


def consume_in_order(b, queue, qno, expected_seqs, sample=None, never_delivered=True):
    """Consumes the whole queue (prefetch 2000, acks every 500) and checks
    that it holds exactly expected_seqs, in order, intact (and, with
    never_delivered, none flagged redelivered)."""
    bulk = BulkChannel(b, timeout=30 * SLOW)
    try:
        bulk.rpc("basic.qos", "basic.qos-ok", prefetch_count=2000)
        bulk.rpc("basic.consume", "basic.consume-ok", queue=queue, no_ack=False)
        for i, seq in enumerate(expected_seqs):
            tag, redelivered, flags, props, body = bulk.delivery()
            got_q, got_seq = struct.unpack_from("!BI", body)
            assert (got_q, got_seq) == (qno, seq), \
                "%s: delivery %d is queue %d seq %d, expected seq %d" % (
                    queue, i, got_q, got_seq, seq)
            assert body == body_for(qno, seq), "%s: seq %d damaged" % (queue, seq)
            assert (flags, props) == (FLAGS, MODE_PROPS[mode_for(seq)]), \
                "%s: seq %d properties %#x %r" % (queue, seq, flags, props)
            assert not (never_delivered and redelivered), "%s: seq %d redelivered" % (queue, seq)
            if i % 500 == 499:
                bulk.send(bulk.R.method_frame(1, "basic.ack", delivery_tag=tag, multiple=True))
                if sample:
                    sample()
        bulk.send(bulk.R.method_frame(1, "basic.ack", delivery_tag=0, multiple=True))
        left = bulk.rpc("queue.declare", "queue.declare-ok", queue=queue, passive=True)
        assert left["message_count"] == 0, "%s: %d messages beyond the expected ones" % (
            queue, left["message_count"])
    finally:
        bulk.close()


def bound_for(base):
    """The memory bound, from the numbers. The backlog is TOTAL * BODY =
    150,000 x 1 KB = 154 MB of bodies alone; a broker that keeps it in
    memory is above base + 154 MB. A paging one needs the budget per queue
    (2 x 8 MB = 16 MB), a per-message allowance for whatever bookkeeping it
    keeps of paged messages (64 B x 150,000 = 9.6 MB), and slack for socket
    and frame buffers, storage batches in flight and allocator
    fragmentation (48 MB): base + 74 MB, half way between "bounded" and
    "holds everything"."""
    return base + 2 * BUDGET + 64 * TOTAL + 48 * MB


class Backlog:
    """A durable and a transient queue on b, each given TOTAL / 2 messages
    of BODY bytes (transient and persistent in runs of three) through one
    channel, with the broker's private memory sampled after every send."""

    def __init__(self, b):
        self.b = b
        self.queues = [uname("q-paged-durable"), uname("q-paged-transient")]
        self.per_queue = TOTAL // 2
        self.base = private_bytes(b)[0]
        self.bound = bound_for(self.base)
        self.peak = 0
        bulk = BulkChannel(b, timeout=60 * SLOW)
        bulk.rpc("queue.declare", "queue.declare-ok", queue=self.queues[0], durable=True)
        bulk.rpc("queue.declare", "queue.declare-ok", queue=self.queues[1], durable=False)
        t0 = time.monotonic()
        publish(bulk, self.queues, self.per_queue, self.sample)
        # the channel works in order: these replies come after every publish
        for q in self.queues:
            n = bulk.rpc("queue.declare", "queue.declare-ok", queue=q,
                         passive=True)["message_count"]
            assert n == self.per_queue, "%s holds %d of %d messages" % (q, n, self.per_queue)
        self.seconds = time.monotonic() - t0
        self.after, self.mem = private_bytes(b)
        self.peak = max(self.peak, self.after)
        bulk.close()

    def sample(self):
        self.peak = max(self.peak, private_bytes(self.b)[0])

    def consume(self, sample=None):
        for qno, q in enumerate(self.queues):
            consume_in_order(self.b, q, qno, range(1, self.per_queue + 1), sample)

    def report(self, capsys, what):
        with capsys.disabled():
            print("\n  paging, %s: %d x %d B published in %.1fs; private memory: start %.1f MB, "
                  "after publishing %.1f MB (VmRSS %.1f MB, VmHWM %.1f MB), peak %.1f MB, "
                  "bound %.1f MB%s"
                  % (what, TOTAL, BODY, self.seconds, self.base / MB, self.after / MB,
                     self.mem["VmRSS"] / MB, self.mem["VmHWM"] / MB, self.peak / MB,
                     self.bound / MB, " (not asserted: sanitized build)" if SANITIZED else ""))


@pytest.mark.timeout(120)
def test_backlog_far_over_the_memory_budget_stays_out_of_memory_and_in_order(paging_broker,
                                                                            capsys):
    backlog = Backlog(paging_broker)
    backlog.report(capsys, "publishing")
    if not SANITIZED:
        assert backlog.after < backlog.bound, "%.1f MB after publishing, bound %.1f MB" % (
            backlog.after / MB, backlog.bound / MB)
        assert backlog.peak < backlog.bound, "peaked at %.1f MB while publishing, bound " \
            "%.1f MB" % (backlog.peak / MB, backlog.bound / MB)
    backlog.consume()


@pytest.mark.timeout(120)
def test_consuming_a_paged_backlog_keeps_memory_bounded(paging_broker, capsys):
    backlog = Backlog(paging_broker)
    backlog.peak = 0  # from here on: the consuming phase
    backlog.consume(backlog.sample)
    backlog.report(capsys, "consuming")
    if not SANITIZED:
        assert backlog.peak < backlog.bound, "peaked at %.1f MB while consuming, bound " \
            "%.1f MB" % (backlog.peak / MB, backlog.bound / MB)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_paged_out_transient_messages_are_dropped_at_restart_and_persistent_ones_kept(
        paging_broker, sig):
    b = paging_broker
    q = uname("q-paged-restart")
    per_queue = 6000 if SANITIZED else 30000   # 30 MB against an 8 MB budget
    bulk = BulkChannel(b, timeout=60 * SLOW)
    bulk.rpc("queue.declare", "queue.declare-ok", queue=q, durable=True)
    bulk.confirm_select()  # kill -9 keeps only what was confirmed
    publish(bulk, [q], per_queue)
    bulk.wait_confirms(timeout=60 * SLOW)
    assert bulk.confirm[1:] == b"\x01" * per_queue, "a publish was nacked"
    bulk.close()

    coney_util.restart_broker(b, sig)

    persistent = [s for s in range(1, per_queue + 1) if mode_for(s) == 2]
    # after a crash a broker may flag recovered messages redelivered
    consume_in_order(b, q, 0, persistent, never_delivered=(sig == signal.SIGTERM))
