"""MQTT 5.0: reason codes, session and message expiry, topic aliases, flow
control (Receive Maximum, Maximum Packet Size), forwarded properties,
subscription options and identifiers, shared subscriptions, will delay.

Properties are checked on the wire (mqtt_raw decodes them) wherever a
library could hide a detail such as order or presence; paho-mqtt's v5 API
drives the plain flows. Normative references are MQTT 5.0's
(MQTT-x.y.z-n). Tests marked coney_only are Coney's (RabbitMQ's) choices;
the others also pass against Mosquitto (CONEY_MQTT_TARGET=host:port)."""

import shutil
import subprocess
import time

import pytest

import mqtt_raw as M
from coney_util import SLOW, TIMEOUT, mqtt_id, mqtt_topic

V5 = M.V5


def raw5(mqtt):
    return mqtt.raw(V5)


def connect5(r, client_id, rc=0, clean=True, expiry=None, **kw):
    p = dict(kw.pop("properties", None) or {})
    if expiry is not None:
        p["session_expiry"] = expiry
    return r.connect(client_id, rc=rc, clean=clean, properties=p, **kw)


def end_session(mqtt, client_id):
    with raw5(mqtt) as r:
        connect5(r, client_id, clean=True, expiry=0)
        r.disconnect()


def clear_retained(mqtt, *topics):
    with raw5(mqtt) as r:
        connect5(r, mqtt_id("clr"))
        for t in topics:
            r.publish(t, b"", qos=1, retain=True, pid=1)
        r.disconnect()


def ack(r, p):
    """Acknowledges a received PUBLISH (QoS 1 or 2, whole flow)."""
    if p.qos == 1:
        r.send(M.puback(p.pid, version=V5))
    elif p.qos == 2:
        r.send(M.pubrec(p.pid, version=V5))
        r.expect(M.PUBREL)
        r.send(M.pubcomp(p.pid, version=V5))


def raw_subscriber(mqtt, filters, expiry=None, properties=None, sub_props=None,
                   client_id=None):
    """A raw 5.0 connection subscribed to filters [(filter, options)]."""
    r = raw5(mqtt)
    connect5(r, client_id or mqtt_id("sub"), expiry=expiry, properties=properties)
    codes = r.subscribe(1, filters, sub_props)
    assert codes == [o & 3 for _, o in filters], codes
    return r


def publisher(mqtt):
    r = raw5(mqtt)
    connect5(r, mqtt_id("pub"))
    return r


# ------------------------------------------------------------ CONNECT / CONNACK

def test_connack_success_with_reason_code_0(mqtt):
    with raw5(mqtt) as r:
        p = connect5(r, mqtt_id("c5"))
        assert not p.session_present
        assert p.props.get("maximum_qos", 2) == 2, "QoS 2 is supported"
        r.alive()


def test_empty_client_id_gets_an_assigned_client_identifier(mqtt):
    """MQTT-3.1.3-6 / 3.2.2.3.7: the CONNACK carries the id the server chose."""
    with raw5(mqtt) as r:
        p = connect5(r, "")
        cid = p.props.get("assigned_client_id")
        assert cid, "no Assigned Client Identifier in %r" % (p.props,)
        r.alive()


def test_wrong_password_is_refused_with_0x86_then_close(mqtt):
    """MQTT-3.2.2-7: a refusing CONNACK, then the close. Coney says 0x86 Bad
    User Name or Password (as RabbitMQ); Mosquitto 2.0 says 0x87 Not
    authorized, which the spec also allows, so only Coney's code is pinned."""
    with raw5(mqtt) as r:
        r.send(M.connect(mqtt_id("badpw"), version=V5, username="guest", password="wrong"))
        p = r.expect(M.CONNACK)
        assert p.rc == 0x86 if mqtt.is_coney else p.rc in (0x86, 0x87), p
        r.expect_closed()


@pytest.mark.coney_only("RabbitMQ's vhost:user user names")
def test_unknown_vhost_is_refused_with_0x87(mqtt):
    """Right credentials, no such vhost: 0x87 Not authorized (3.1.1: 5)."""
    with raw5(mqtt) as r:
        connect5(r, mqtt_id("vh"), rc=0x87, username="coney-no-such-vhost:guest",
                 password="guest")
        r.expect_closed()


def test_takeover_sends_disconnect_0x8e_to_the_first_connection(mqtt):
    """MQTT-3.1.4-3: the existing connection is closed, after a DISCONNECT
    with reason 0x8E Session taken over. The DISCONNECT is a MAY (4.13);
    Coney sends it, Mosquitto 2.0.11 only closes the socket."""
    cid = mqtt_id("take")
    with raw5(mqtt) as first, raw5(mqtt) as second:
        connect5(first, cid)
        connect5(second, cid)
        got = [p.rc for p in first.expect_closed(allow=(M.DISCONNECT,))]
        assert got == [0x8E] or (got == [] and not mqtt.is_coney), got
        second.alive()


# ------------------------------------------------------------ session expiry

def test_session_within_its_expiry_is_resumed_with_queued_messages(mqtt):
    t = mqtt_topic("s5")
    cid = mqtt_id("s5")
    try:
        s = raw_subscriber(mqtt, [(t, 1)], expiry=60, client_id=cid)
        s.disconnect()
        with publisher(mqtt) as pub:
            pub.publish(t, b"while away", qos=1, pid=1)
        with raw5(mqtt) as s:
            p = connect5(s, cid, clean=False, expiry=60)
            assert p.session_present
            m = s.expect(M.PUBLISH)
            assert (m.topic, m.payload, m.qos) == (t, b"while away", 1)
            ack(s, m)
            s.disconnect()
    finally:
        end_session(mqtt, cid)


def test_session_expiry_zero_ends_the_session_at_disconnect(mqtt):
    """3.1.2.11.2: absent Session Expiry Interval means 0: the session ends
    when the connection closes, also with clean start 0."""
    cid = mqtt_id("s0")
    with raw5(mqtt) as r:
        connect5(r, cid, clean=False)
        r.subscribe(1, [(mqtt_topic("s0"), 1)])
        r.disconnect()
    with raw5(mqtt) as r:
        assert not connect5(r, cid, clean=False).session_present
        r.disconnect()


def test_session_is_discarded_after_its_expiry_interval(mqtt):
    t = mqtt_topic("sexp")
    cid = mqtt_id("sexp")
    s = raw_subscriber(mqtt, [(t, 1)], expiry=1, client_id=cid)
    s.disconnect()
    time.sleep(2.5)
    with publisher(mqtt) as pub:
        pub.publish(t, b"nobody home", qos=1, pid=1)
    with raw5(mqtt) as s:
        p = connect5(s, cid, clean=False, expiry=0)
        assert not p.session_present
        s.quiet(0.3)
        s.disconnect()


# ------------------------------------------------------------ message expiry

def test_expired_message_is_not_delivered_and_remaining_expiry_is_forwarded(mqtt):
    """MQTT-3.3.2-5: an expired message is not delivered to a subscriber that
    comes back late; MQTT-3.3.2-6: the interval forwarded is the received
    one minus the time the message waited in the server."""
    t = mqtt_topic("mexp")
    cid = mqtt_id("mexp")
    try:
        s = raw_subscriber(mqtt, [(t, 1)], expiry=60, client_id=cid)
        s.disconnect()
        with publisher(mqtt) as pub:
            pub.publish(t, b"short-lived", qos=1, pid=1, properties={"message_expiry": 1})
            pub.publish(t, b"long-lived", qos=1, pid=2, properties={"message_expiry": 30})
        time.sleep(2.2)
        with raw5(mqtt) as s:
            assert connect5(s, cid, clean=False, expiry=60).session_present
            m = s.expect(M.PUBLISH)
            assert m.payload == b"long-lived", m
            left = m.props.get("message_expiry")
            assert left is not None and 0 < left <= 28, m.props
            ack(s, m)
            s.quiet(0.3)
            s.disconnect()
    finally:
        end_session(mqtt, cid)


# ------------------------------------------------------------ topic aliases

def test_client_topic_alias_sets_and_reuses_a_mapping(mqtt):
    """3.3.2.3.4: a PUBLISH with topic and alias sets the mapping; an empty
    topic with that alias uses it; a new topic with the alias replaces it."""
    t = mqtt_topic("alias")
    s = raw_subscriber(mqtt, [(t + "/#", 0)])
    with raw5(mqtt) as pub:
        c = connect5(pub, mqtt_id("pub"))
        assert c.props.get("topic_alias_maximum", 0) >= 1, \
            "server accepts no topic aliases: %r" % (c.props,)
        pub.publish(t + "/one", b"a", properties={"topic_alias": 1})
        pub.publish("", b"b", properties={"topic_alias": 1})
        pub.publish(t + "/two", b"c", properties={"topic_alias": 1})
        pub.publish("", b"d", properties={"topic_alias": 1})
        pub.alive()
    got = [(p.topic, p.payload) for p in (s.expect(M.PUBLISH) for _ in range(4))]
    assert got == [(t + "/one", b"a"), (t + "/one", b"b"), (t + "/two", b"c"),
                   (t + "/two", b"d")]
    s.close()


def test_topic_alias_above_the_server_maximum_is_disconnect_0x94(mqtt):
    """MQTT-3.3.2-9/-10: an alias greater than the Topic Alias Maximum the
    server sent is a protocol error, reason 0x94 Topic Alias invalid."""
    with raw5(mqtt) as r:
        c = connect5(r, mqtt_id("alias"))
        top = c.props.get("topic_alias_maximum", 0)
        r.send(M.publish(mqtt_topic("alias"), b"x", version=V5,
                         properties={"topic_alias": top + 1}))
        got = r.expect_closed(allow=(M.DISCONNECT,))
        assert [p.rc for p in got] == [0x94], got


@pytest.mark.parametrize("client_max", [0, 2])
def test_server_respects_the_client_topic_alias_maximum(mqtt, client_max):
    """MQTT-3.1.2-26/-27: no alias above what the client allows (none when
    it sends no Topic Alias Maximum); whatever the server sends resolves to
    the right topic. Using aliases is the server's choice."""
    t = mqtt_topic("salias")
    topics = [t + "/a", t + "/b", t + "/c"] * 3
    props = {"topic_alias_maximum": client_max} if client_max else None
    s = raw_subscriber(mqtt, [(t + "/+", 0)], properties=props)
    with publisher(mqtt) as pub:
        for i, topic in enumerate(topics):
            pub.publish(topic, b"%d" % i)
    aliases = {}
    for i, topic in enumerate(topics):
        p = s.expect(M.PUBLISH)
        alias = p.props.get("topic_alias")
        if alias is None:
            assert p.topic, p
            resolved = p.topic
        else:
            assert 1 <= alias <= client_max, "alias %d, client maximum %d" % (alias, client_max)
            if p.topic:
                aliases[alias] = p.topic
            assert alias in aliases, "alias %d used before it was set" % alias
            resolved = aliases[alias]
        assert (resolved, p.payload) == (topic, b"%d" % i)
    s.close()


# ------------------------------------------------------------ flow control

def _receive_maximum_subscriber(mqtt):
    t = mqtt_topic("rmax")
    s = raw_subscriber(mqtt, [(t, 1)], properties={"receive_maximum": 2})
    with publisher(mqtt) as pub:
        for i in range(5):
            pub.publish(t, b"m%d" % i, qos=1, pid=i + 1)
    return s


def test_server_sends_no_more_unacknowledged_publishes_than_receive_maximum(mqtt):
    """MQTT-3.3.4-9: at most Receive Maximum QoS>0 PUBLISHes in flight."""
    s = _receive_maximum_subscriber(mqtt)
    got = [s.expect(M.PUBLISH), s.expect(M.PUBLISH)]
    assert [p.payload for p in got] == [b"m0", b"m1"]
    s.quiet(0.5)
    for p in got:
        ack(s, p)
    got = [s.expect(M.PUBLISH) for _ in range(2)]
    assert [p.payload for p in got] == [b"m2", b"m3"]
    s.close()


@pytest.mark.coney_only("Mosquitto 2.0.11 sends two more PUBLISHes after one PUBACK, "
                        "three in flight with Receive Maximum 2")
def test_each_puback_opens_room_for_exactly_one_more_publish(mqtt):
    """MQTT-3.3.4-9, as the window slides."""
    s = _receive_maximum_subscriber(mqtt)
    got = [s.expect(M.PUBLISH), s.expect(M.PUBLISH)]
    s.quiet(0.5)
    ack(s, got[0])
    got.append(s.expect(M.PUBLISH))
    s.quiet(0.3)
    for p in got[1:]:
        ack(s, p)
    got += [s.expect(M.PUBLISH), s.expect(M.PUBLISH)]
    assert [p.payload for p in got] == [b"m%d" % i for i in range(5)]
    for p in got[3:]:
        ack(s, p)
    s.alive()
    s.close()


def test_message_larger_than_client_maximum_packet_size_is_not_sent(mqtt):
    """MQTT-3.1.2-24/-25: the server does not send that client a packet above
    its Maximum Packet Size; it discards the message for it and carries on."""
    t = mqtt_topic("cmax")
    s = raw_subscriber(mqtt, [(t, 1)], properties={"maximum_packet_size": 200})
    with publisher(mqtt) as pub:
        pub.publish(t, b"small-1", qos=1, pid=1)
        pub.publish(t, b"x" * 1000, qos=1, pid=2)
        pub.publish(t, b"small-2", qos=1, pid=3)
    for want in (b"small-1", b"small-2"):
        p = s.expect(M.PUBLISH)
        assert len(p.raw) <= 200
        assert p.payload == want, p
        ack(s, p)
    s.quiet(0.3)
    s.close()


# ------------------------------------------------------------ properties

def test_publish_properties_are_forwarded_with_user_property_order(mqtt):
    """MQTT-3.3.2-15..-20: payload format, content type, response topic,
    correlation data and user properties (in order) reach the subscriber."""
    t = mqtt_topic("props")
    s = raw_subscriber(mqtt, [(t, 1)])
    sent = {"payload_format": 1, "content_type": "application/json",
            "response_topic": t + "/reply", "correlation_data": b"\x00\x01corr\xff",
            "user_property": [("k", "v1"), ("a", "b"), ("k", "v2")]}
    with publisher(mqtt) as pub:
        pub.publish(t, b'{"x": 1}', qos=1, pid=1, properties=sent)
    p = s.expect(M.PUBLISH)
    assert p.payload == b'{"x": 1}'
    got = {k: v for k, v in p.props.items() if k in sent}
    assert got == sent, p.props
    ack(s, p)
    s.close()


def test_subscription_identifier_is_delivered(mqtt):
    """MQTT-3.3.4-3: the Subscription Identifier of the matching
    subscription is in the PUBLISH; with two matching subscriptions the ids
    of both reach the client (one copy with both, or one copy each:
    MQTT-3.3.4-4/-5)."""
    t = mqtt_topic("subid")
    with raw5(mqtt) as s, publisher(mqtt) as pub:
        connect5(s, mqtt_id("sub"))
        s.subscribe(1, [(t + "/x", 1)], {"subscription_id": 7})
        pub.publish(t + "/x", b"one", qos=1, pid=1)
        p = s.expect(M.PUBLISH)
        assert p.props.get("subscription_id") == [7], p.props
        ack(s, p)
        s.subscribe(2, [(t + "/+", 1)], {"subscription_id": 300})
        pub.publish(t + "/x", b"two", qos=1, pid=2)
        ids = []
        copies = [s.expect(M.PUBLISH)]
        ack(s, copies[0])
        try:
            while True:
                p = s.read(0.4)
                copies.append(p)
                ack(s, p)
        except TimeoutError:
            pass
        for p in copies:
            assert p.payload == b"two"
            ids += p.props.get("subscription_id", [])
        assert sorted(ids) == [7, 300], copies
        if mqtt.is_coney:
            assert len(copies) == 1, "Coney sends one copy with both ids: %r" % copies


def test_no_local_subscription_does_not_get_own_messages(mqtt):
    """MQTT-3.8.3-3."""
    t = mqtt_topic("nolocal")
    with raw5(mqtt) as a, publisher(mqtt) as other:
        connect5(a, mqtt_id("self"))
        assert a.subscribe(1, [(t, M.sub_options(1, no_local=True))]) == [1]
        a.send(M.publish(t, b"own", qos=1, pid=1, version=V5))
        a.expect(M.PUBACK)
        other.publish(t, b"other", qos=1, pid=1)
        p = a.expect(M.PUBLISH)
        assert p.payload == b"other", p
        ack(a, p)
        a.quiet(0.3)


def test_retain_as_published_keeps_the_retain_flag_on_live_delivery(mqtt):
    """MQTT-3.3.1-12/-13: RETAIN forwarded as published only with Retain As
    Published; otherwise 0 on a live delivery."""
    t = mqtt_topic("rap")
    try:
        rap = raw_subscriber(mqtt, [(t, M.sub_options(1, retain_as_published=True))])
        plain = raw_subscriber(mqtt, [(t, M.sub_options(1))])
        with publisher(mqtt) as pub:
            pub.publish(t, b"r", qos=1, retain=True, pid=1)
        p, q = rap.expect(M.PUBLISH), plain.expect(M.PUBLISH)
        assert (p.payload, p.retain) == (b"r", True)
        assert (q.payload, q.retain) == (b"r", False)
        rap.close()
        plain.close()
    finally:
        clear_retained(mqtt, t)


def test_retain_handling_0_1_2(mqtt):
    """MQTT-3.3.1-9..-11 / 3.8.3.1: 0 sends retained messages at every
    subscribe, 1 only if the subscription did not exist, 2 never."""
    t = mqtt_topic("rh")
    try:
        with publisher(mqtt) as pub:
            pub.publish(t, b"kept", qos=1, retain=True, pid=1)
        expected = {0: [True, True], 1: [True, False], 2: [False, False]}
        for rh, want in expected.items():
            with raw5(mqtt) as s:
                connect5(s, mqtt_id("rh%d" % rh))
                for i, get_it in enumerate(want):
                    s.subscribe(i + 1, [(t, M.sub_options(1, retain_handling=rh))])
                    if get_it:
                        p = s.expect(M.PUBLISH)
                        assert (p.payload, p.retain) == (b"kept", True)
                        ack(s, p)
                    else:
                        s.quiet(0.3)
    finally:
        clear_retained(mqtt, t)


def test_unsuback_reason_codes(mqtt):
    """3.11.3: 0x00 for a removed subscription, 0x11 No subscription existed."""
    t = mqtt_topic("unsub5")
    with raw5(mqtt) as r:
        connect5(r, mqtt_id("unsub"))
        r.subscribe(1, [(t, 1)])
        r.send(M.unsubscribe(2, [t, t + "/never"], version=V5))
        p = r.expect(M.UNSUBACK)
        assert (p.pid, p.codes) == (2, [0x00, 0x11])


# ------------------------------------------------------------ shared subscriptions

def test_shared_subscription_gives_each_message_to_one_member_per_group(mqtt):
    """4.8.2: each message to exactly one member of a group, and to every
    group. Coney distributes round-robin, so with ten messages each member
    gets some (Mosquitto does the same)."""
    t = mqtt_topic("share")
    g1 = [raw_subscriber(mqtt, [("$share/g1/" + t, 1)]) for _ in range(2)]
    g2 = raw_subscriber(mqtt, [("$share/g2/" + t, 1)])
    with publisher(mqtt) as pub:
        for i in range(10):
            pub.publish(t, b"%d" % i, qos=1, pid=i + 1)
    every = [b"%d" % i for i in range(10)]

    def collect(r, n=None):
        out = []
        while True:
            try:
                p = r.read(0.5 if n is None or len(out) >= n else TIMEOUT)
            except TimeoutError:
                return out
            out.append(p.payload)
            ack(r, p)

    got2 = collect(g2, 10)
    assert got2 == every
    parts = [collect(r) for r in g1]
    assert sorted(parts[0] + parts[1], key=int) == every, parts
    assert parts[0] and parts[1], "one member got every message: %r" % (parts,)
    for r in g1 + [g2]:
        r.close()


# ------------------------------------------------------------ will

def test_will_delay_publishes_the_will_after_the_delay(mqtt):
    """3.1.3.2.2: the will goes out Will Delay Interval after the connection
    is lost (the session lives longer than that here)."""
    wt = mqtt_topic("wdelay")
    cid = mqtt_id("wdelay")
    w = raw_subscriber(mqtt, [(wt, 1)])
    try:
        r = raw5(mqtt)
        connect5(r, cid, expiry=30, will={"topic": wt, "payload": b"late", "qos": 1,
                                         "properties": {"will_delay": 2}})
        r.close()
        w.quiet(1.0)
        p = w.expect(M.PUBLISH, timeout=5 * SLOW)
        assert p.payload == b"late"
        ack(w, p)
    finally:
        w.close()
        end_session(mqtt, cid)


def test_will_delay_no_will_if_the_client_reconnects_in_time(mqtt):
    """MQTT-3.1.3-9: a new connection to the session within the delay
    cancels the will."""
    wt = mqtt_topic("wcancel")
    cid = mqtt_id("wcancel")
    w = raw_subscriber(mqtt, [(wt, 1)])
    try:
        will = {"topic": wt, "payload": b"must not", "qos": 1,
                "properties": {"will_delay": 2}}
        r = raw5(mqtt)
        connect5(r, cid, expiry=30, will=will)
        r.close()
        time.sleep(0.5)
        with raw5(mqtt) as r:
            assert connect5(r, cid, clean=False, expiry=30).session_present
            w.quiet(2.5)
            r.disconnect()
        w.quiet(0.3)
    finally:
        w.close()
        end_session(mqtt, cid)


def test_disconnect_with_reason_0x04_publishes_the_will(mqtt):
    """3.14.2.1: DISCONNECT 0x04 Disconnect with Will Message."""
    wt = mqtt_topic("will04")
    w = raw_subscriber(mqtt, [(wt, 1)])
    with raw5(mqtt) as r:
        connect5(r, mqtt_id("will04"), will={"topic": wt, "payload": b"as asked", "qos": 1})
        r.disconnect(rc=0x04)
    p = w.expect(M.PUBLISH)
    assert p.payload == b"as asked"
    w.close()


def test_normal_disconnect_discards_the_will(mqtt):
    wt = mqtt_topic("will00")
    w = raw_subscriber(mqtt, [(wt, 1)])
    with raw5(mqtt) as r:
        connect5(r, mqtt_id("will00"), will={"topic": wt, "payload": b"no", "qos": 1})
        r.disconnect(rc=0x00)
    w.quiet(0.5)
    w.close()


# ------------------------------------------------------------ paho / tools

def test_paho_v5_round_trip_with_properties(mqtt):
    t = mqtt_topic("paho5")
    sub = mqtt.client(mqtt_id("sub"), V5)
    sub.connect()
    assert sub.subscribe(t, 2) == [2]
    pub = mqtt.client(mqtt_id("pub"), V5)
    pub.connect()
    pub.publish(t, b"five", qos=2, properties={"ContentType": "text/plain",
                                               "UserProperty": [("who", "paho")]})
    m = sub.get()
    assert (m.payload, m.qos) == (b"five", 2)
    assert m.props.ContentType == "text/plain"
    assert m.props.UserProperty == [("who", "paho")]
    pub.disconnect()
    sub.disconnect()


def test_mosquitto_sub_v5_receives_user_properties_from_mosquitto_pub(mqtt):
    sub_bin, pub_bin = shutil.which("mosquitto_sub"), shutil.which("mosquitto_pub")
    if not sub_bin or not pub_bin:
        pytest.skip("mosquitto-clients not installed (scripts/deps.sh)")
    t = mqtt_topic("cli5")
    common = ["-h", mqtt.host, "-p", str(mqtt.port), "-V", "mqttv5", "-q", "1"]
    sub = subprocess.Popen([sub_bin] + common + ["-t", t, "-C", "1", "-W", str(int(TIMEOUT)),
                                                 "-F", "%t %p %P"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT
        while sub.poll() is None and time.monotonic() < deadline:
            subprocess.run([pub_bin] + common + ["-t", t, "-m", "hello",
                                                 "-D", "publish", "user-property", "k", "v"],
                           check=True, timeout=TIMEOUT, capture_output=True)
            try:
                sub.wait(0.3)
            except subprocess.TimeoutExpired:
                pass
        out, err = sub.communicate(timeout=TIMEOUT)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0, err
    assert out.decode() == "%s hello k:v\n" % t
