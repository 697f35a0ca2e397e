"""The memory alarm: resident memory above vm_memory_high_watermark
(.absolute here, a size; .relative a share of the machine's memory, 0.4 by
default as RabbitMQ) blocks publishers as RabbitMQ does: AMQP publishers
get connection.blocked "low on memory" at their first publish and are not
read any more, MQTT publishers are not read (MQTT has no way to say it);
consumers go on draining; the alarm shows in the health check, /api/nodes
and the Prometheus metrics.

`vm_memory_high_watermark.absolute = 1MB` is below what any broker
process resides in, so the alarm is set from the start. Each test starts
its own broker (skipped with CONEY_TEST_TARGET)."""

import signal

import pika
import pytest

import mqtt_raw as M
from coney_util import (SLOW, TIMEOUT, drain, message_count, mqtt_id, mqtt_target, pump_until,
                        restart_broker, start_broker, uname, wait_for)
from http_client import Api


def _conf(tmp_path, line):
    conf = tmp_path / "coney.conf"
    conf.write_text(line + "\n")
    return str(conf)


@pytest.fixture
def alarmed(coney_bin, tmp_path):
    b = start_broker(coney_bin, extra_args=[
        "--config", _conf(tmp_path, "vm_memory_high_watermark.absolute = 1MB")])
    try:
        yield b
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def test_memory_alarm_blocks_an_amqp_publisher_with_a_memory_reason(alarmed):
    q = uname("q-mem")
    watcher = alarmed.connect()
    watcher.channel().queue_declare(q)
    pub = alarmed.connect()
    events = []
    pub.add_on_connection_blocked_callback(
        lambda c, frame: events.append(frame.method.reason))
    ch = pub.channel()
    ch.basic_publish("", q, b"first")
    pump_until(pub, lambda: events, timeout=TIMEOUT, what="connection.blocked")
    assert events == ["low on memory"], events
    at_block = message_count(watcher, q)
    assert at_block <= 1, at_block
    for i in range(5):
        ch.basic_publish("", q, b"after %d" % i)
    drain(pub, 1.0 * SLOW)
    assert message_count(watcher, q) == at_block, "a blocked publisher's messages were routed"
    watcher.close()


def test_memory_alarm_is_in_health_checks_nodes_and_metrics(alarmed):
    api = Api(alarmed)
    r = api.get("/api/health/checks/alarms")
    assert r.status == 503, r
    assert {"resource": "memory"}.items() <= r.json["alarms"][0].items(), r.json
    (node,) = api.ok("GET", "/api/nodes")
    assert node["mem_alarm"] is True and node["mem_limit"] == 1000 * 1000, node
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % alarmed.prom_port,
                                timeout=TIMEOUT) as m:
        text = m.read().decode()
    assert "\nrabbitmq_alarms_memory_used_watermark 1" in text


def test_memory_alarm_stops_reading_an_mqtt_publisher(alarmed):
    mq = mqtt_target(alarmed)
    topic = "mem/" + uname("t").rsplit(".", 1)[1]
    with mq.raw() as sub, mq.raw() as pub:
        sub.connect(mqtt_id("sub"))
        sub.subscribe(1, [(topic, 1)])
        pub.connect(mqtt_id("pub"))
        # as with AMQP, the publish that meets the alarm may be taken;
        # after it the broker reads nothing more from this client
        pub.send(M.publish(topic, b"first", qos=1, pid=1))
        try:
            pub.read(1.0 * SLOW)
        except TimeoutError:
            pass
        pub.send(M.publish(topic, b"second", qos=1, pid=2))
        pub.quiet(1.0 * SLOW)     # no PUBACK for the second
        got = []
        try:
            while True:
                got.append(sub.read(0.3 * SLOW))
        except TimeoutError:
            pass
        assert [p for p in got if b"second" in p.raw] == [], got
        sub.alive()               # the subscriber's connection still answers


def test_consumers_drain_under_the_memory_alarm(coney_bin, tmp_path):
    """Messages stored before the alarm are consumed while it holds."""
    b = start_broker(coney_bin)
    try:
        q = uname("q-drain")
        c = b.connect()
        ch = c.channel()
        ch.queue_declare(q, durable=True)
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=2))
        c.close()
        # the same broker again, now with the tiny watermark
        b.proc.args.extend(["--config",
                            _conf(tmp_path, "vm_memory_high_watermark.absolute = 1MB")])
        restart_broker(b)
        api = Api(b)
        wait_for(lambda: api.get("/api/health/checks/alarms").status == 503,
                 what="the memory alarm after the restart")
        c = b.connect()
        ch = c.channel()
        got = [ch.basic_get(q, auto_ack=True)[2] for _ in range(3)]
        assert got == [b"m0", b"m1", b"m2"]
        c.close()
    finally:
        b.cleanup()
