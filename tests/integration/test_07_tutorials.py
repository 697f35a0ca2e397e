"""RabbitMQ's six Python tutorials (https://www.rabbitmq.com/getstarted.html),
written as pika programs would be, each with its own queue/exchange names."""

import threading
import time
import uuid

import pika

from coney_util import SLOW, TIMEOUT, drain, pump_until, uname


def test_tutorial_1_hello_world(broker):
    q = uname("hello")
    sender = broker.connect()
    sender.channel().queue_declare(q)
    sender.channel().basic_publish(exchange="", routing_key=q, body=b"Hello World!")
    sender.close()

    receiver = broker.connect()
    ch = receiver.channel()
    ch.queue_declare(q)
    got = []

    def callback(ch_, method, properties, body):
        got.append(body)

    ch.basic_consume(queue=q, on_message_callback=callback, auto_ack=True)
    pump_until(receiver, lambda: got, what="Hello World!")
    assert got == [b"Hello World!"]
    ch.queue_delete(q)
    receiver.close()


def test_tutorial_2_work_queues_fair_dispatch(broker):
    """Durable task queue, persistent messages, prefetch_count=1 and manual
    acks: a busy worker gets no new task until it acks, so the idle worker
    takes the rest."""
    q = uname("task_queue")
    producer = broker.connect()
    pch = producer.channel()
    pch.queue_declare(q, durable=True)

    workers = []
    for name in ("slow", "fast"):
        c = broker.connect()
        ch = c.channel()
        ch.queue_declare(q, durable=True)
        ch.basic_qos(prefetch_count=1)
        w = {"name": name, "conn": c, "ch": ch, "pending": [], "done": []}

        def on_task(ch_, method, props, body, w=w):
            w["pending"].append((method.delivery_tag, body))

        ch.basic_consume(queue=q, on_message_callback=on_task)
        workers.append(w)
    slow, fast = workers

    tasks = [b"task %d%s" % (i, b"." * (i % 3)) for i in range(10)]
    for t in tasks:
        pch.basic_publish("", q, t, pika.BasicProperties(delivery_mode=2))

    # The slow worker takes one task and sits on it; the fast one acks each
    # task as soon as it arrives.
    deadline = time.monotonic() + TIMEOUT
    while len(slow["done"]) + len(fast["done"]) + len(slow["pending"]) < len(tasks):
        assert time.monotonic() < deadline, "tasks not dispatched: %r %r" % (slow, fast)
        for w in workers:
            w["conn"].process_data_events(time_limit=0.02)
        while fast["pending"]:
            tag, body = fast["pending"].pop(0)
            fast["ch"].basic_ack(tag)
            fast["done"].append(body)
        assert len(slow["pending"]) <= 1, "prefetch_count=1 exceeded"
    assert len(slow["pending"]) == 1
    assert len(fast["done"]) == len(tasks) - 1
    # Now the slow worker finishes: everything was processed exactly once.
    tag, body = slow["pending"].pop()
    slow["ch"].basic_ack(tag)
    assert sorted(fast["done"] + [body]) == sorted(tasks)

    pch.queue_delete(q)
    for w in workers:
        w["conn"].close()
    producer.close()


def test_tutorial_2_two_workers_share_work_round_robin(broker):
    q = uname("task_queue")
    producer = broker.connect()
    pch = producer.channel()
    pch.queue_declare(q, durable=True)
    workers = []
    for _ in range(2):
        c = broker.connect()
        ch = c.channel()
        ch.basic_qos(prefetch_count=1)
        got = []

        def cb(ch_, method, props, body, got=got):
            got.append(body)
            ch_.basic_ack(delivery_tag=method.delivery_tag)

        ch.basic_consume(queue=q, on_message_callback=cb)
        c.process_data_events(time_limit=0)
        workers.append((c, got))
    for i in range(10):
        pch.basic_publish("", q, b"%d" % i, pika.BasicProperties(delivery_mode=2))
    deadline = time.monotonic() + TIMEOUT
    while sum(len(g) for _, g in workers) < 10:
        assert time.monotonic() < deadline
        for c, _ in workers:
            c.process_data_events(time_limit=0.02)
    a, b = (g for _, g in workers)
    assert len(a) >= 3 and len(b) >= 3, (a, b)  # both got a fair share
    assert sorted(a + b) == sorted(b"%d" % i for i in range(10))
    pch.queue_delete(q)
    for c, _ in workers:
        c.close()
    producer.close()


def test_tutorial_3_publish_subscribe_fanout(broker):
    x = uname("logs")
    subscribers = []
    for _ in range(3):
        c = broker.connect()
        ch = c.channel()
        ch.exchange_declare(exchange=x, exchange_type="fanout")
        result = ch.queue_declare(queue="", exclusive=True)
        queue_name = result.method.queue
        assert queue_name.startswith("amq.gen-")
        ch.queue_bind(exchange=x, queue=queue_name)
        got = []
        ch.basic_consume(queue=queue_name, auto_ack=True,
                         on_message_callback=lambda c_, m, p, b, got=got: got.append(b))
        subscribers.append((c, got))
    emitter = broker.connect()
    ech = emitter.channel()
    ech.exchange_declare(exchange=x, exchange_type="fanout")
    ech.basic_publish(exchange=x, routing_key="", body=b"info: Hello World!")
    for c, got in subscribers:
        pump_until(c, lambda: got, what="log line")
        assert got == [b"info: Hello World!"]
    ech.exchange_delete(x)
    emitter.close()
    for c, _ in subscribers:
        c.close()


def test_tutorial_4_routing_direct(broker):
    x = uname("direct_logs")
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare(exchange=x, exchange_type="direct")
    received = {}
    for severities in (("error",), ("info", "warning", "error")):
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        for severity in severities:
            ch.queue_bind(exchange=x, queue=q, routing_key=severity)
        received[severities] = []
        ch.basic_consume(queue=q, auto_ack=True,
                         on_message_callback=lambda c_, m, p, b, s=severities:
                         received[s].append((m.routing_key, b)))
    for severity in ("info", "warning", "error", "debug"):
        ch.basic_publish(exchange=x, routing_key=severity, body=severity.encode())
    pump_until(c, lambda: len(received[("error",)]) == 1
               and len(received[("info", "warning", "error")]) == 3, what="routed logs")
    drain(c, 0.2 * SLOW)
    assert received[("error",)] == [("error", b"error")]
    assert received[("info", "warning", "error")] == [
        ("info", b"info"), ("warning", b"warning"), ("error", b"error")]
    ch.exchange_delete(x)
    c.close()


def test_tutorial_5_topics(broker):
    x = uname("topic_logs")
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare(exchange=x, exchange_type="topic")
    patterns = {"all": ["#"], "kern": ["kern.*"], "critical": ["*.critical"],
                "kern+critical": ["kern.*", "*.critical"]}
    got = {k: [] for k in patterns}
    for name, keys in patterns.items():
        q = ch.queue_declare("", exclusive=True).method.queue
        for k in keys:
            ch.queue_bind(exchange=x, queue=q, routing_key=k)
        ch.basic_consume(q, lambda c_, m, p, b, n=name: got[n].append(m.routing_key),
                         auto_ack=True)
    keys = ["kern.critical", "kern.info", "cron.critical", "cron.info", "anonymous.info",
            "kern.info.extra"]
    for k in keys:
        ch.basic_publish(exchange=x, routing_key=k, body=b"msg " + k.encode())
    pump_until(c, lambda: len(got["all"]) == len(keys), what="all topics")
    drain(c, 0.2 * SLOW)
    assert got["all"] == keys
    assert got["kern"] == ["kern.critical", "kern.info"]
    assert got["critical"] == ["kern.critical", "cron.critical"]
    # One copy per queue even when two bindings match.
    assert got["kern+critical"] == ["kern.critical", "kern.info", "cron.critical"]
    ch.exchange_delete(x)
    c.close()


def _fib(n):
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def test_tutorial_6_rpc(broker):
    rpc_queue = uname("rpc_queue")
    stop = threading.Event()
    server_ready = threading.Event()
    server_error = []

    def server():
        try:
            conn = broker.connect()
            ch = conn.channel()
            ch.queue_declare(queue=rpc_queue)
            ch.basic_qos(prefetch_count=1)

            def on_request(ch_, method, props, body):
                response = _fib(int(body))
                ch_.basic_publish(exchange="", routing_key=props.reply_to,
                                  properties=pika.BasicProperties(
                                      correlation_id=props.correlation_id),
                                  body=str(response).encode())
                ch_.basic_ack(delivery_tag=method.delivery_tag)

            ch.basic_consume(queue=rpc_queue, on_message_callback=on_request)
            server_ready.set()
            while not stop.is_set():
                conn.process_data_events(time_limit=0.05)
            ch.queue_delete(rpc_queue)
            conn.close()
        except Exception as e:  # reported by the main thread
            server_error.append(e)
            server_ready.set()

    t = threading.Thread(target=server, daemon=True)
    t.start()
    try:
        assert server_ready.wait(TIMEOUT) and not server_error, server_error

        conn = broker.connect()
        ch = conn.channel()
        callback_queue = ch.queue_declare(queue="", exclusive=True).method.queue
        assert callback_queue.startswith("amq.gen-")
        responses = {}
        ch.basic_consume(queue=callback_queue, auto_ack=True,
                         on_message_callback=lambda c_, m, p, b:
                         responses.__setitem__(p.correlation_id, b))
        corr = {}
        for n in (1, 10, 20, 5):
            cid = str(uuid.uuid4())
            corr[cid] = n
            ch.basic_publish(exchange="", routing_key=rpc_queue,
                             properties=pika.BasicProperties(reply_to=callback_queue,
                                                             correlation_id=cid),
                             body=str(n).encode())
        pump_until(conn, lambda: len(responses) == len(corr), timeout=3 * TIMEOUT,
                   what="RPC responses")
        for cid, n in corr.items():
            assert int(responses[cid]) == _fib(n)
        conn.close()
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert not server_error, server_error
