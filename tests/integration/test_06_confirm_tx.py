"""Publisher confirms (confirm.select) and transactions (tx.*)."""

import pika
import pika.exceptions
import pytest

import coney_raw as R
from coney_util import (TIMEOUT, assert_closed_with, drain, get_one, message_count, uname,
                        wait_for)


# ------------------------------------------------------------------ confirms

def test_confirm_routed_message(ch):
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"confirmed")  # raises on nack
    assert get_one(ch, q, auto_ack=True)[2] == b"confirmed"


def test_confirm_unroutable_non_mandatory_is_acked(ch):
    ch.confirm_delivery()
    ch.basic_publish("amq.direct", uname("nowhere"), b"dropped but acked")


def test_confirm_unroutable_mandatory_is_returned_then_acked(ch):
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        ch.basic_publish("amq.direct", uname("nowhere"), b"bounce", mandatory=True)
    (ret,) = ei.value.messages
    assert ret.method.reply_code == 312 and ret.method.reply_text == "NO_ROUTE"
    assert ret.body == b"bounce"


def test_confirm_many_with_persistent_messages_on_durable_queue(conn, ch):
    q = uname("durable")
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", q, b"p%d" % i, pika.BasicProperties(delivery_mode=2))
    assert message_count(conn, q) == 20
    ch.queue_delete(q)


def _collect_confirms(raw, n):
    """Read basic.ack frames on channel 1 until tags 1..n are all confirmed.
    Returns the ack frames' args."""
    acks, confirmed = [], set()
    while len(confirmed) < n:
        f = raw.recv_non_heartbeat()
        assert f.method == "basic.ack" and f.channel == 1, f
        tag = f.args["delivery_tag"]
        new = set(range(1, tag + 1)) - confirmed if f.args["multiple"] else {tag}
        assert new and not (new & confirmed), "tag %d confirmed twice: %r" % (tag, f.args)
        assert tag <= n, f.args
        confirmed |= new
        acks.append(f.args)
    return acks


def test_confirm_select_ok_and_sequential_tags_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        assert raw.rpc(1, "confirm.select", "confirm.select-ok") == {}
        raw.publish(1, "", q, b"one")
        assert raw.expect(1, "basic.ack") == {"delivery_tag": 1, "multiple": False}
        raw.publish(1, "amq.direct", uname("nowhere"), b"two")
        assert raw.expect(1, "basic.ack") == {"delivery_tag": 2, "multiple": False}


def test_confirm_burst_every_tag_acked_once_multiple_allowed_raw(broker):
    n = 500
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        q = raw.rpc(1, "queue.declare", "queue.declare-ok", queue="", exclusive=True)["queue"]
        raw.rpc(1, "confirm.select", "confirm.select-ok")
        data = b""
        for i in range(n):
            data += R.method_frame(1, "basic.publish", routing_key=q)
            data += R.header_frame(1, 3) + R.body_frame(1, b"%03d" % (i % 1000))
        raw.send(data)
        acks = _collect_confirms(raw, n)
        # Tags only grow.
        tags = [a["delivery_tag"] for a in acks]
        assert tags == sorted(tags)
        ok = raw.rpc(1, "queue.declare", "queue.declare-ok", queue=q, passive=True)
        assert ok["message_count"] == n


def test_confirm_mandatory_unroutable_return_precedes_ack_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.rpc(1, "confirm.select", "confirm.select-ok")
        key = uname("nowhere")
        raw.publish(1, "amq.direct", key, b"r", mandatory=True)
        ret = raw.expect(1, "basic.return")
        assert ret == {"reply_code": 312, "reply_text": "NO_ROUTE", "exchange": "amq.direct",
                       "routing_key": key}
        _, body = raw.read_content()
        assert body == b"r"
        assert raw.expect(1, "basic.ack") == {"delivery_tag": 1, "multiple": False}


def test_confirm_select_nowait_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        raw.send_method(1, "confirm.select", nowait=True)
        raw.publish(1, "amq.direct", uname("nowhere"), b"x")
        assert raw.expect(1, "basic.ack") == {"delivery_tag": 1, "multiple": False}


def test_confirm_select_on_transactional_channel_is_precondition_failed(ch):
    ch.tx_select()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.confirm_delivery()
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


def test_tx_select_on_confirm_channel_is_precondition_failed(ch):
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.tx_select()
    assert_closed_with(ei.value, 406,
                       "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


# ------------------------------------------------------------------ tx

def test_tx_published_messages_invisible_until_commit(conn):
    tx = conn.channel()
    q = tx.queue_declare("", exclusive=True).method.queue
    tx.tx_select()
    tx.basic_publish("", q, b"a")
    tx.basic_publish("", q, b"b")
    drain(conn, 0.2)
    assert message_count(conn, q) == 0
    tx.tx_commit()
    wait_for(lambda: message_count(conn, q) == 2, what="2 committed messages")
    obs = conn.channel()
    assert get_one(obs, q, auto_ack=True)[2] == b"a"
    assert get_one(obs, q, auto_ack=True)[2] == b"b"


def test_tx_rollback_drops_published_messages(conn):
    tx = conn.channel()
    q = tx.queue_declare("", exclusive=True).method.queue
    tx.tx_select()
    tx.basic_publish("", q, b"dropped")
    tx.tx_rollback()
    tx.basic_publish("", q, b"kept")
    tx.tx_commit()
    obs = conn.channel()
    assert get_one(obs, q, auto_ack=True)[2] == b"kept"
    assert obs.basic_get(q, auto_ack=True)[0] is None


def test_tx_acks_applied_on_commit(conn):
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    pub = conn.channel()
    pub.basic_publish("", q, b"m")
    tx = conn.channel()
    tx.tx_select()
    m, _, _ = get_one(tx, q)
    tx.basic_ack(m.delivery_tag)
    tx.tx_commit()
    tx.close()
    assert message_count(conn, q) == 0


def test_tx_acks_discarded_on_rollback(conn):
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    conn.channel().basic_publish("", q, b"m")
    tx = conn.channel()
    tx.tx_select()
    m, _, _ = get_one(tx, q)
    tx.basic_ack(m.delivery_tag)
    tx.tx_rollback()
    tx.close()  # still unacked after the rollback: closing requeues it
    obs = conn.channel()
    m, _, b = get_one(obs, q, auto_ack=True)
    assert b == b"m" and m.redelivered


def test_tx_uncommitted_publishes_dropped_when_channel_closes(conn):
    q = conn.channel().queue_declare("", exclusive=True).method.queue
    tx = conn.channel()
    tx.tx_select()
    tx.basic_publish("", q, b"never")
    tx.close()
    drain(conn, 0.2)
    assert message_count(conn, q) == 0


def test_tx_commit_without_select_is_precondition_failed(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.tx_commit()
    assert_closed_with(ei.value, 406, "PRECONDITION_FAILED - channel is not transactional")


def test_tx_rollback_without_select_is_precondition_failed(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.tx_rollback()
    assert_closed_with(ei.value, 406, "PRECONDITION_FAILED - channel is not transactional")


def test_tx_select_ok_raw(broker):
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.open()
        raw.open_channel(1)
        assert raw.rpc(1, "tx.select", "tx.select-ok") == {}
        assert raw.rpc(1, "tx.commit", "tx.commit-ok") == {}
        assert raw.rpc(1, "tx.rollback", "tx.rollback-ok") == {}
