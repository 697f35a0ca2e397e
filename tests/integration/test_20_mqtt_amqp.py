"""MQTT and AMQP on the same messages (RabbitMQ's MQTT plugin model, which
Coney follows): an MQTT PUBLISH goes to the vhost's amq.topic exchange with
the topic as routing key ('/' -> '.', and '.' -> '/'), an MQTT subscription
is a queue bound to amq.topic ('+' -> '*', '#' -> '#'), a persistent session
is a durable queue named mqtt-subscription-<client id>qos1. MQTT QoS 1 is
published persistent (delivery mode 2); an AMQP message reaches a QoS 1
subscription at QoS 1 only if it is persistent.

Everything here is Coney's (and RabbitMQ's) design, so every test needs
AMQP and is skipped with CONEY_MQTT_TARGET."""

import pika
import pytest

import mqtt_raw as M
from coney_util import (TIMEOUT, get_one, kill_broker, message_count, mqtt_id, mqtt_target,
                        queue_exists, start_again, uname, wait_for)


def uid():
    return uname("m").rsplit(".", 1)[1]


def bound_queue(ch, *keys, durable=False):
    q = ch.queue_declare(uname("mq"), durable=durable, exclusive=not durable).method.queue
    for k in keys:
        ch.queue_bind(q, "amq.topic", k)
    return q


@pytest.mark.parametrize("qos", [0, 1])
def test_mqtt_publish_reaches_amqp_queues_bound_to_amq_topic(broker, qos):
    mq = mqtt_target(broker)
    u = uid()
    conn = broker.connect()
    ch = conn.channel()
    exact = bound_queue(ch, "s%s.room1.temp" % u)
    star = bound_queue(ch, "s%s.*.temp" % u)
    with mq.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish("s%s/room1/temp" % u, b"21.5", qos=qos, pid=1 if qos else None)
    for q in (exact, star):
        m, p, body = get_one(ch, q, auto_ack=True)
        assert body == b"21.5"
        assert (m.exchange, m.routing_key) == ("amq.topic", "s%s.room1.temp" % u)
        assert p.delivery_mode == (2 if qos else 1), p   # RabbitMQ's rule
    conn.close()


def test_amqp_publish_reaches_mqtt_subscriptions_with_wildcards(broker):
    mq = mqtt_target(broker)
    u = uid()
    exact = mq.client(mqtt_id("exact"))
    exact.connect()
    exact.subscribe("a%s/b" % u, 0)
    plus = mq.client(mqtt_id("plus"))
    plus.connect()
    plus.subscribe("a%s/+" % u, 0)
    hash_ = mq.client(mqtt_id("hash"))
    hash_.connect()
    hash_.subscribe("a%s/#" % u, 0)
    conn = broker.connect()
    conn.channel().basic_publish("amq.topic", "a%s.b" % u, b"from amqp")
    for c in (exact, plus, hash_):
        m = c.get()
        assert (m.topic, m.payload) == ("a%s/b" % u, b"from amqp")
        c.disconnect()
    conn.close()


def test_dot_in_a_topic_maps_to_slash_in_the_routing_key_and_back(broker):
    """RabbitMQ's mapping swaps '.' and '/': MQTT "x/v1.2" is AMQP
    "x.v1/2"."""
    mq = mqtt_target(broker)
    u = uid()
    topic, key = "x%s/v1.2" % u, "x%s.v1/2" % u
    conn = broker.connect()
    ch = conn.channel()
    q = bound_queue(ch, key)
    sub = mq.client(mqtt_id("sub"))
    sub.connect()
    sub.subscribe(topic, 1)
    with mq.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(topic, b"mqtt side", qos=1, pid=1)
    m, _, body = get_one(ch, q, auto_ack=True)
    assert (m.routing_key, body) == (key, b"mqtt side")
    assert sub.get().topic == topic
    ch.basic_publish("amq.topic", key, b"amqp side")
    m = sub.get()
    assert (m.topic, m.payload) == (topic, b"amqp side")
    sub.disconnect()
    conn.close()


def test_amqp_persistent_message_arrives_at_qos1_and_transient_at_qos0(broker):
    mq = mqtt_target(broker)
    u = uid()
    conn = broker.connect()
    ch = conn.channel()
    with mq.raw() as sub:
        sub.connect(mqtt_id("sub"))
        assert sub.subscribe(1, [("p%s/x" % u, 1)]) == [1]
        ch.basic_publish("amq.topic", "p%s.x" % u, b"persistent",
                         pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("amq.topic", "p%s.x" % u, b"transient",
                         pika.BasicProperties(delivery_mode=1))
        a, b = sub.expect(M.PUBLISH), sub.expect(M.PUBLISH)
        assert (a.payload, a.qos) == (b"persistent", 1)
        assert (b.payload, b.qos) == (b"transient", 0)
        sub.send(M.puback(a.pid))
        sub.alive()
    conn.close()


def test_persistent_session_is_a_durable_queue_named_after_the_client(broker):
    """RabbitMQ's naming: mqtt-subscription-<client id>qos1, holding what
    arrives while the client is away; a clean session removes it."""
    mq = mqtt_target(broker)
    u = uid()
    cid = mqtt_id("q")
    qname = "mqtt-subscription-%sqos1" % cid
    with mq.raw() as s:
        s.connect(cid, clean=False)
        s.subscribe(1, [("d%s/x" % u, 1)])
        s.disconnect()
    conn = broker.connect()
    assert queue_exists(conn, qname)
    conn.channel().basic_publish("amq.topic", "d%s.x" % u, b"queued",
                                 pika.BasicProperties(delivery_mode=2))
    wait_for(lambda: message_count(conn, qname) == 1, TIMEOUT,
             what="the message in %s" % qname)
    with mq.raw() as s:
        assert s.connect(cid, clean=False).session_present
        p = s.expect(M.PUBLISH)
        assert (p.payload, p.qos) == (b"queued", 1)
        s.send(M.puback(p.pid))
        s.disconnect()
    with mq.raw() as s:
        s.connect(cid, clean=True)
        s.disconnect()
    wait_for(lambda: not queue_exists(conn, qname), TIMEOUT,
             what="%s deleted by the clean session" % qname)
    conn.close()


def test_mqtt_qos1_publish_acked_only_once_stored_survives_kill9(fresh_broker):
    """PUBACK comes after the message is routed and written: a SIGKILL right
    after it loses nothing, neither for a persistent MQTT session that
    subscribed before nor for a durable AMQP queue bound to amq.topic."""
    mq = mqtt_target(fresh_broker)
    u = uid()
    cid = mqtt_id("k9")
    conn = fresh_broker.connect()
    q = bound_queue(conn.channel(), "k%s.x" % u, durable=True)
    conn.close()
    with mq.raw() as s:
        s.connect(cid, clean=False)
        s.subscribe(1, [("k%s/x" % u, 1)])
        s.disconnect()
    with mq.raw() as pub:
        pub.connect(mqtt_id("pub"))
        for i in range(20):
            pub.publish("k%s/x" % u, b"m%d" % i, qos=1, pid=i + 1)   # each PUBACKed
    kill_broker(fresh_broker)
    start_again(fresh_broker)
    with mq.raw() as s:
        assert s.connect(cid, clean=False).session_present
        got = []
        for _ in range(20):
            p = s.expect(M.PUBLISH)
            got.append(p.payload)
            s.send(M.puback(p.pid))
        assert got == [b"m%d" % i for i in range(20)]
        s.disconnect()
    conn = fresh_broker.connect()
    ch = conn.channel()
    bodies = []
    for _ in range(20):
        bodies.append(get_one(ch, q, auto_ack=True)[2])
    assert bodies == [b"m%d" % i for i in range(20)]
    conn.close()


def test_anonymous_mqtt_client_publishes_into_the_default_vhost(broker):
    """No user name: the default user in vhost "/" (mqtt.allow_anonymous)."""
    mq = mqtt_target(broker)
    u = uid()
    conn = broker.connect(vhost="/")
    ch = conn.channel()
    q = bound_queue(ch, "n%s.x" % u)
    with mq.raw() as pub:
        pub.connect(mqtt_id("anon"))
        pub.publish("n%s/x" % u, b"anonymous", qos=1, pid=1)
    assert get_one(ch, q, auto_ack=True)[2] == b"anonymous"
    conn.close()


ALL_BYTES = bytes(range(256)) * 4


def test_mqtt5_properties_reach_amqp_as_properties_and_headers(broker):
    """Content type, correlation data, user properties and message expiry
    of an MQTT 5 PUBLISH become AMQP content-type, correlation-id, string
    headers and expiration (ms); the payload passes byte for byte."""
    mq = mqtt_target(broker)
    u = uid()
    conn = broker.connect()
    ch = conn.channel()
    q = bound_queue(ch, "p%s.x" % u)
    pub = mq.client(mqtt_id("p5"), version=M.V5)
    pub.connect()
    pub.publish("p%s/x" % u, ALL_BYTES, qos=1, properties={
        "ContentType": "application/octet-stream", "CorrelationData": b"req-42",
        "UserProperty": [("site", "north"), ("unit", "C")], "MessageExpiryInterval": 60})
    pub.disconnect()
    m, p, body = get_one(ch, q, auto_ack=True)
    assert body == ALL_BYTES
    assert p.content_type == "application/octet-stream"
    assert p.correlation_id == "req-42"
    assert p.headers["site"] == "north" and p.headers["unit"] == "C", p.headers
    assert p.headers["x-mqtt-publish-qos"] == 1
    assert p.expiration == "60000"
    conn.close()


def test_amqp_properties_reach_mqtt5_subscribers(broker):
    """The other way: AMQP content-type, correlation-id and string headers
    arrive as MQTT 5 content type, correlation data and user properties,
    the body byte for byte."""
    mq = mqtt_target(broker)
    u = uid()
    sub = mq.client(mqtt_id("s5"), version=M.V5)
    sub.connect()
    sub.subscribe("r%s/#" % u, 1)
    conn = broker.connect()
    conn.channel().basic_publish(
        "amq.topic", "r%s.y" % u, ALL_BYTES,
        pika.BasicProperties(content_type="text/plain", correlation_id="c-7",
                             headers={"site": "south", "count": 3}))
    m = sub.get()
    assert (m.topic, m.payload) == ("r%s/y" % u, ALL_BYTES)
    assert m.props.ContentType == "text/plain"
    assert m.props.CorrelationData == b"c-7"
    # string headers become user properties; other types have no MQTT form
    assert m.props.UserProperty == [("site", "south")]
    sub.disconnect()
    conn.close()


def test_mqtt_connections_are_listed_and_closed_by_the_management_api(broker):
    """MQTT clients appear in /api/connections beside AMQP ones, with their
    protocol, user, vhost and client id, and DELETE closes one."""
    from http_client import Api, q
    mq = mqtt_target(broker)
    api = Api(broker)
    cid = mqtt_id("listed")
    c = mq.client(cid, version=M.V5)
    c.connect()
    mine = wait_for(lambda: [x for x in api.ok("GET", "/api/connections")
                             if x.get("client_properties", {}).get("client_id") == cid],
                    what="the MQTT connection in /api/connections")
    assert len(mine) == 1, mine
    rec = mine[0]
    assert (rec["protocol"], rec["user"], rec["vhost"]) == ("MQTT 5.0", "guest", "/"), rec
    assert api.ok("GET", "/api/connections/" + q(rec["name"]))["name"] == rec["name"]
    r = api.call("DELETE", "/api/connections/" + q(rec["name"]))
    assert r.status == 204, r
    c.wait_disconnected()
    assert c.disconnected is not None
