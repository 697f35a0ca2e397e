"""Celery's way of using the broker, through kombu (Debian's python3-kombu
over py-amqp): a priority task queue (x-max-priority, message priority),
acks late (a worker that dies before acking hands its task to the next
one, marked redelivered), and a task that keeps failing moved aside by a
dead-letter exchange.
Validated against RabbitMQ 3.10.8 with CONEY_TEST_TARGET."""

import socket
import warnings

import pytest

from coney_util import TIMEOUT, uname

# kombu 5.2 on Python 3.11 looks up its transports through a deprecated
# importlib.metadata interface
pytestmark = pytest.mark.filterwarnings("ignore:SelectableGroups:DeprecationWarning")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "SelectableGroups", DeprecationWarning)
    kombu = pytest.importorskip("kombu")
    from kombu import Connection, Consumer, Exchange, Producer, Queue


def url(broker):
    return "amqp://guest:guest@%s:%d//" % (broker.host, broker.port)


def connect(broker):
    c = Connection(url(broker), connect_timeout=TIMEOUT, transport_options={"max_retries": 1})
    c.connect()
    return c


def drain_until(conn, pred, timeout=TIMEOUT):
    """Let kombu dispatch until pred() holds."""
    import time
    deadline = time.monotonic() + timeout
    while not pred():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out waiting for kombu deliveries")
        try:
            conn.drain_events(timeout=min(0.1, left))
        except socket.timeout:
            pass


def task(body_id, name="tasks.add"):
    """A Celery protocol 2 style message: headers name the task and id."""
    return dict(body=[[body_id], {}, {"callbacks": None, "errbacks": None}],
                headers={"lang": "py", "task": name, "id": "id-%s" % body_id,
                         "retries": 0, "root_id": "id-%s" % body_id},
                serializer="json")


def test_kombu_priority_task_queue(broker):
    x = Exchange(uname("celery"), type="direct", auto_delete=True)
    q = Queue(uname("tasks"), x, routing_key="tasks", max_priority=9, auto_delete=True)
    with connect(broker) as conn:
        ch = conn.channel()
        q(ch).declare()
        producer = Producer(ch, exchange=x, routing_key="tasks")
        order = [(0, "a"), (9, "b"), (5, "c"), (9, "d"), (0, "e"), (5, "f")]
        for prio, ident in order:
            producer.publish(**task(ident), priority=prio)
        got = []

        def on_message(body, message):
            got.append((message.properties.get("priority"), body[0][0],
                        message.headers["task"]))
            message.ack()

        with Consumer(conn, [q], callbacks=[on_message], prefetch_count=1):
            drain_until(conn, lambda: len(got) >= 6)
    assert [g[1] for g in got] == ["b", "d", "c", "f", "a", "e"]
    assert [g[0] for g in got] == [9, 9, 5, 5, 0, 0]
    assert {g[2] for g in got} == {"tasks.add"}


def test_kombu_acks_late_redelivers_a_dead_workers_task(broker):
    qname = uname("tasks")
    q = Queue(qname, Exchange("", type="direct"), routing_key=qname, durable=True,
              auto_delete=False)
    with connect(broker) as conn:
        q(conn.channel()).declare()
        Producer(conn.channel(), routing_key=qname).publish(**task("slow"),
                                                            delivery_mode=2)
    try:
        # worker 1 takes the task and dies before it acks (acks_late)
        w1 = connect(broker)
        seen1 = []
        Consumer(w1, [q], callbacks=[lambda b, m: seen1.append(m)], prefetch_count=1).consume()
        drain_until(w1, lambda: seen1)
        assert not seen1[0].delivery_info["redelivered"]
        w1.release()
        # worker 2 gets it again, marked redelivered, and acks it
        with connect(broker) as w2:
            seen2 = []

            def run(body, message):
                seen2.append((body, message.delivery_info["redelivered"], message.headers["id"]))
                message.ack()

            with Consumer(w2, [q], callbacks=[run], prefetch_count=1):
                drain_until(w2, lambda: seen2)
            assert seen2 == [([["slow"], {}, {"callbacks": None, "errbacks": None}], True,
                              "id-slow")]
            name, count, consumers = w2.default_channel.queue_declare(qname, passive=True)
            assert count == 0
    finally:
        with connect(broker) as conn:
            conn.default_channel.queue_delete(qname)


def test_kombu_rejected_task_goes_to_dead_letter_queue(broker):
    dead = Queue(uname("dead"), Exchange("", type="direct"), auto_delete=True)
    dead.routing_key = dead.name
    work = Queue(uname("work"), Exchange("", type="direct"), auto_delete=True,
                 queue_arguments={"x-dead-letter-exchange": "",
                                  "x-dead-letter-routing-key": dead.name})
    work.routing_key = work.name
    with connect(broker) as conn:
        ch = conn.channel()
        dead(ch).declare()
        work(ch).declare()
        Producer(ch, routing_key=work.name).publish(**task("bad"))
        failed, parked = [], []

        def fail(body, message):
            failed.append(body)
            message.reject(requeue=False)

        def park(body, message):
            parked.append(message)
            message.ack()

        with Consumer(conn, [work], callbacks=[fail]), Consumer(conn, [dead], callbacks=[park]):
            drain_until(conn, lambda: parked)
    assert len(failed) == 1
    (d,) = parked[0].headers["x-death"]
    assert d["queue"] == work.name and d["reason"] == "rejected" and d["count"] == 1
    assert parked[0].headers["task"] == "tasks.add"
