"""The disk alarm: with less free space on the data dir's file system than
`disk_free_limit.absolute`, the broker blocks publishing connections as
RabbitMQ does. A connection that publishes is sent connection.blocked (it
advertised the connection.blocked capability, as pika does) with a reason
naming the disk, and the broker stops reading from it, so what it publishes
next is not routed. Connections that do not publish keep working.

`disk_free_limit.absolute = 1000GB` is more than the test machine's disk has
(written in GB: RabbitMQ 3.10 rejects "1TB");
`= 1` (one byte) is always satisfied. Each test starts its own broker with
that config file (skipped with CONEY_TEST_TARGET)."""

import shutil
import signal
import tempfile

import pika
import pytest

from coney_util import SLOW, TIMEOUT, drain, message_count, pump_until, start_broker, uname


def _broker(coney_bin, tmp_path, limit):
    conf = tmp_path / "coney.conf"
    conf.write_text("disk_free_limit.absolute = %s\n" % limit)
    return start_broker(coney_bin, extra_args=["--config", str(conf)])


@pytest.fixture
def alarmed_broker(coney_bin, tmp_path):
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free >= 1000 * 10 ** 9:
        pytest.skip("%d GB free: more than the 1000GB limit that should raise the alarm"
                    % (free // 10 ** 9))
    b = _broker(coney_bin, tmp_path, "1000GB")
    try:
        yield b
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


@pytest.fixture
def roomy_broker(coney_bin, tmp_path):
    b = _broker(coney_bin, tmp_path, "1")
    try:
        yield b
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def watch_blocked(conn):
    """Records connection.blocked reasons and unblocks on conn."""
    events = []
    conn.add_on_connection_blocked_callback(
        lambda c, frame: events.append(("blocked", frame.method.reason)))
    conn.add_on_connection_unblocked_callback(lambda c, frame: events.append(("unblocked",)))
    return events


def test_disk_alarm_blocks_a_publishing_connection_with_a_disk_reason(alarmed_broker):
    b = alarmed_broker
    q = uname("q-alarm")
    watcher = b.connect()
    watcher.channel().queue_declare(q)

    pub = b.connect()
    events = watch_blocked(pub)
    ch = pub.channel()
    ch.basic_publish("", q, b"first")
    pump_until(pub, lambda: events, timeout=TIMEOUT, what="connection.blocked")
    assert len(events) == 1 and events[0][0] == "blocked", events
    assert "disk" in events[0][1], "connection.blocked reason %r does not name the disk" % (
        events[0][1],)

    # The publish that got the connection blocked may have been read before
    # the broker stopped reading; nothing published after it is.
    at_block = message_count(watcher, q)
    assert at_block <= 1, at_block
    for i in range(5):
        ch.basic_publish("", q, b"after %d" % i)
    drain(pub, 1.0 * SLOW)
    assert message_count(watcher, q) == at_block, "publishes of a blocked connection were routed"
    assert events == [("blocked", events[0][1])], "unexpected events %r" % (events,)
    watcher.close()
    # pub is left open: the broker no longer reads it, so a connection.close
    # would go unanswered; the broker's shutdown closes it.


def test_disk_alarm_leaves_a_connection_that_does_not_publish_working(alarmed_broker):
    b = alarmed_broker
    q = uname("q-alarm-consumer")
    conn = b.connect()
    events = watch_blocked(conn)
    ch = conn.channel()
    ok = ch.queue_declare(q, durable=True)
    assert (ok.method.queue, ok.method.message_count) == (q, 0)
    ch.queue_bind(q, "amq.direct", "k")
    ch.exchange_declare(uname("x-alarm"), "topic")
    assert ch.basic_get(q) == (None, None, None)
    got = []
    ch.basic_consume(q, lambda c, m, p, body: got.append(body))
    ch.queue_declare(q, passive=True)  # still answering after the consume
    drain(conn, 0.5 * SLOW)
    assert events == [], "a connection that never published was told %r" % (events,)
    assert conn.is_open
    conn.close()


def test_disk_free_limit_below_the_free_space_blocks_nothing(roomy_broker):
    b = roomy_broker
    q = uname("q-roomy")
    conn = b.connect()
    events = watch_blocked(conn)
    ch = conn.channel()
    ch.queue_declare(q)
    for i in range(10):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    drain(conn, 0.5 * SLOW)
    assert events == []
    assert message_count(conn, q) == 10
    conn.close()
