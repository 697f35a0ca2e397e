"""MQTT 3.1.1 and 3.1 through the MQTT listener: paho-mqtt for the ordinary
flows, mosquitto_pub/mosquitto_sub for the command-line tools users run, and
raw packets (mqtt_raw) where a library would hide what is checked (flags,
packet ids, DUP, the exact bytes of a reply).

Spec references are the OASIS MQTT 3.1.1 normative statements
(MQTT-x.y.z-n). Tests marked coney_only check Coney's (RabbitMQ's) choices
where the spec leaves room or where another broker has no equivalent; every
other test also passes against Mosquitto (CONEY_MQTT_TARGET=host:port)."""

import shutil
import subprocess
import time

import pytest

import mqtt_raw as M
from coney_util import SLOW, TIMEOUT, mqtt_id, mqtt_target, mqtt_topic, restart_broker


def clear_retained(mqtt, *topics):
    """Empty retained publishes, so that no retained message of this test
    reaches a later test's "#" subscription."""
    with mqtt.raw() as r:
        r.connect(mqtt_id("clr"))
        for t in topics:
            r.publish(t, b"", qos=1, retain=True, pid=1)
        r.disconnect()


def end_session(mqtt, client_id, version=M.V311):
    """Connect with a clean session and leave: discards a persistent session."""
    with mqtt.raw(version) as r:
        if version == M.V5:
            r.connect(client_id, clean=True, properties={"session_expiry": 0})
        else:
            r.connect(client_id, clean=True)
        r.disconnect()


def subscriber(mqtt, topic, qos=1, version=M.V311, **kw):
    c = mqtt.client(mqtt_id("sub"), version, **kw)
    c.connect()
    assert c.subscribe(topic, qos) == [qos]
    return c


# ------------------------------------------------------------ CONNECT / CONNACK

@pytest.mark.parametrize("version", [M.V31, M.V311], ids=["3.1", "3.1.1"])
def test_connack_accepts_clean_session_with_return_code_0(mqtt, version):
    """MQTT-3.2.2-1/-4: clean session -> session present 0, return code 0:
    exactly 20 02 00 00 for 3.1 ("MQIsdp", level 3) and 3.1.1 ("MQTT", 4)."""
    with mqtt.raw(version) as r:
        r.send(M.connect(mqtt_id("v%d" % version), version=version))
        r.expect_bytes(M.hexbytes("20 02 00 00"), what="CONNACK")
        r.alive()


def test_mqtt31_client_round_trip_with_paho(mqtt):
    t = mqtt_topic("v31")
    sub = subscriber(mqtt, t, 1, version=M.V31)
    pub = mqtt.client(mqtt_id("pub"), M.V31)
    pub.connect()
    pub.publish(t, b"three-one", qos=1)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == (t, b"three-one", 1)
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("version", [M.V31, M.V311], ids=["3.1", "3.1.1"])
def test_wrong_password_is_refused_with_connack_4_then_close(mqtt, version):
    """MQTT-3.2.2-5: a refusing CONNACK is followed by the close. Coney (as
    RabbitMQ) answers 4 "bad user name or password", the 3.1.1 twin of 5.0's
    0x86; Mosquitto answers 5 "not authorized", which the spec's wording
    also allows, so only Coney's code is pinned."""
    with mqtt.raw(version) as r:
        r.send(M.connect(mqtt_id("badpw"), version=version, username="guest",
                         password="not-the-password"))
        p = r.expect(M.CONNACK)
        assert p.rc == 4 if mqtt.is_coney else p.rc in (4, 5), p
        r.expect_closed()


def test_anonymous_connect_is_accepted(mqtt):
    """No user name: accepted, as with RabbitMQ's mqtt.allow_anonymous
    (Coney maps it to the default user; Mosquitto: allow_anonymous true)."""
    with mqtt.raw() as r:
        r.connect(mqtt_id("anon"))
        r.alive()


def test_guest_with_password_is_accepted(mqtt):
    with mqtt.raw() as r:
        r.connect(mqtt_id("guest"), username="guest", password="guest")
        r.alive()


@pytest.mark.coney_only("RabbitMQ's vhost:user user names")
def test_vhost_prefix_in_user_name_selects_vhost(mqtt):
    """The credentials are right, the vhost is not there: 5 not authorized."""
    with mqtt.raw() as r:
        r.connect(mqtt_id("vh"), username="/:guest", password="guest")
        r.alive()
    with mqtt.raw() as r:
        r.connect(mqtt_id("vh"), rc=5, username="coney-no-such-vhost:guest",
                  password="guest")
        r.expect_closed()


# ------------------------------------------------------------ keepalive, takeover

def test_silent_client_is_disconnected_after_one_and_a_half_keepalives_and_will_sent(mqtt):
    """MQTT-3.1.2-24: no packet within 1.5 x Keep Alive -> the server
    disconnects; the will is published (MQTT-3.1.2-8)."""
    wt = mqtt_topic("ka-will")
    w = subscriber(mqtt, wt, 1)
    with mqtt.raw() as r:
        r.connect(mqtt_id("ka"), keepalive=1,
                  will={"topic": wt, "payload": b"timed out", "qos": 1})
        t0 = time.monotonic()
        r.expect_closed(timeout=6 * SLOW)
        elapsed = time.monotonic() - t0
    # The client may stay silent for the keepalive itself.
    assert elapsed >= 1.0, "disconnected after %.2fs with keepalive 1s" % elapsed
    m = w.get(what="the will")
    assert (m.topic, m.payload, m.qos) == (wt, b"timed out", 1)
    w.disconnect()


def test_client_that_pings_within_keepalive_stays_connected(mqtt):
    with mqtt.raw() as r:
        r.connect(mqtt_id("ping"), keepalive=1)
        for _ in range(6):
            time.sleep(0.5)
            r.alive()


def test_second_connection_with_same_client_id_takes_over(mqtt):
    """MQTT-3.1.4-2: the server disconnects the existing client."""
    cid = mqtt_id("take")
    with mqtt.raw() as first, mqtt.raw() as second:
        first.connect(cid)
        second.connect(cid)
        first.expect_closed()
        second.alive()


def test_empty_client_id_with_clean_session_is_accepted(mqtt):
    """MQTT-3.1.3-6: the server assigns a unique id."""
    with mqtt.raw() as r:
        r.send(M.connect("", clean=True))
        r.expect_bytes(M.hexbytes("20 02 00 00"), what="CONNACK")
        r.alive()


# ------------------------------------------------------------ PUBLISH / QoS

@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_delivered_qos_is_minimum_of_published_and_granted(mqtt, pub_qos, sub_qos):
    """MQTT-3.8.4-6 / 3.3.5: delivered at min(published QoS, granted QoS)."""
    t = mqtt_topic("qos")
    sub = subscriber(mqtt, t, sub_qos)
    pub = mqtt.client(mqtt_id("pub"))
    pub.connect()
    body = b"q%d->%d" % (pub_qos, sub_qos)
    pub.publish(t, body, qos=pub_qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos, m.retain) == (t, body, min(pub_qos, sub_qos), False)
    sub.none(0.2)
    pub.disconnect()
    sub.disconnect()


def test_qos1_puback_carries_the_publish_packet_id(mqtt):
    """MQTT-2.3.1-6 (3.3.4): PUBACK with the PUBLISH's packet id."""
    with mqtt.raw() as r:
        r.connect(mqtt_id("pid"))
        r.send(M.publish(mqtt_topic("pid"), b"x", qos=1, pid=0x1234))
        r.expect_bytes(M.hexbytes("40 02 12 34"), what="PUBACK")


def test_qos2_full_flow_in_both_directions(mqtt):
    """4.3.3: PUBLISH -> PUBREC, PUBREL -> PUBCOMP from the publisher; the
    same four packets towards a QoS 2 subscriber, PUBREL with flags 0010."""
    t = mqtt_topic("qos2")
    with mqtt.raw() as pub, mqtt.raw() as sub:
        sub.connect(mqtt_id("sub"))
        assert sub.subscribe(1, [(t, 2)]) == [2]
        pub.connect(mqtt_id("pub"))
        pub.send(M.publish(t, b"exactly once", qos=2, pid=5))
        pub.expect_bytes(M.hexbytes("50 02 00 05"), what="PUBREC")
        pub.send(M.pubrel(5))
        pub.expect_bytes(M.hexbytes("70 02 00 05"), what="PUBCOMP")

        p = sub.expect(M.PUBLISH)
        assert (p.topic, p.payload, p.qos, p.dup, p.retain) == (t, b"exactly once", 2,
                                                                  False, False)
        assert p.pid != 0
        sub.send(M.pubrec(p.pid))
        sub.expect_bytes(M.pubrel(p.pid), what="PUBREL")
        sub.send(M.pubcomp(p.pid))
        sub.quiet(0.3)      # the flow is finished: nothing is resent
        sub.alive()


def _count_until_marker(sub, body, marker):
    """Reads PUBLISHes until `marker`, acknowledging as it goes (a server may
    interleave the next PUBLISH with a QoS 2 flow), and counts `body`."""
    n = 0
    while True:
        p = sub.read()
        if p.type == M.PUBREL:
            sub.send(M.pubcomp(p.pid))
            continue
        assert p.type == M.PUBLISH, p
        if p.qos == 1:
            sub.send(M.puback(p.pid))
        elif p.qos == 2:
            sub.send(M.pubrec(p.pid))
        if p.payload == marker:
            return n
        assert p.payload == body, p
        n += 1


def test_qos2_publish_resent_with_dup_before_pubrel_is_delivered_once(mqtt):
    """4.3.3: until PUBREL the server must not deliver a resent PUBLISH with
    the same packet id again (MQTT-4.3.3-2)."""
    t = mqtt_topic("dup2")
    with mqtt.raw() as pub, mqtt.raw() as sub:
        sub.connect(mqtt_id("sub"))
        sub.subscribe(1, [(t, 2)])
        pub.connect(mqtt_id("pub"))
        pub.send(M.publish(t, b"once", qos=2, pid=9))
        pub.expect_bytes(M.pubrec(9), what="PUBREC")
        pub.send(M.publish(t, b"once", qos=2, pid=9, dup=True))
        pub.expect_bytes(M.pubrec(9), what="PUBREC for the resent PUBLISH")
        pub.send(M.pubrel(9))
        pub.expect_bytes(M.pubcomp(9), what="PUBCOMP")
        pub.publish(t, b"marker", qos=2, pid=10)
        assert _count_until_marker(sub, b"once", b"marker") == 1


def test_qos2_publish_resent_after_reconnect_is_delivered_once(mqtt):
    """MQTT-4.4.0-1: the session (clean session 0) keeps the QoS 2 state, so
    a PUBLISH resent with DUP on a new connection is still a duplicate."""
    t = mqtt_topic("dup2r")
    cid = mqtt_id("pub")
    try:
        with mqtt.raw() as sub:
            sub.connect(mqtt_id("sub"))
            sub.subscribe(1, [(t, 2)])
            with mqtt.raw() as pub:
                pub.connect(cid, clean=False)
                pub.send(M.publish(t, b"once", qos=2, pid=11))
                pub.expect_bytes(M.pubrec(11), what="PUBREC")
            with mqtt.raw() as pub:       # PUBREC "lost": resend the PUBLISH
                p = pub.connect(cid, clean=False)
                assert p.session_present
                pub.send(M.publish(t, b"once", qos=2, pid=11, dup=True))
                pub.expect_bytes(M.pubrec(11), what="PUBREC")
                pub.send(M.pubrel(11))
                pub.expect_bytes(M.pubcomp(11), what="PUBCOMP")
                pub.publish(t, b"marker", qos=2, pid=12)
                pub.disconnect()
            assert _count_until_marker(sub, b"once", b"marker") == 1
    finally:
        end_session(mqtt, cid)


def test_unacked_qos1_is_redelivered_with_dup_and_same_packet_id_after_reconnect(mqtt):
    """MQTT-4.4.0-1 and MQTT-3.3.1-1: on reconnect with clean session 0 the
    server resends unacknowledged PUBLISHes with their original packet ids
    and DUP set."""
    t = mqtt_topic("redeliver")
    cid = mqtt_id("sub")
    try:
        with mqtt.raw() as sub:
            sub.connect(cid, clean=False)
            sub.subscribe(1, [(t, 1)])
            with mqtt.raw() as pub:
                pub.connect(mqtt_id("pub"))
                pub.publish(t, b"ack me", qos=1, pid=1)
                pub.disconnect()
            p = sub.expect(M.PUBLISH)
            assert (p.payload, p.qos, p.dup) == (b"ack me", 1, False)
            first_pid = p.pid
        with mqtt.raw() as sub:            # left without PUBACK
            c = sub.connect(cid, clean=False)
            assert c.session_present
            p = sub.expect(M.PUBLISH)
            assert (p.topic, p.payload, p.qos) == (t, b"ack me", 1)
            assert p.dup, "redelivery without DUP: %r" % p
            assert p.pid == first_pid, "redelivered with packet id %d, first sent as %d" % (
                p.pid, first_pid)
            sub.send(M.puback(p.pid))
            sub.quiet(0.3)
            sub.disconnect()
    finally:
        end_session(mqtt, cid)


def test_server_packet_ids_are_nonzero_and_distinct_while_unacknowledged(mqtt):
    """MQTT-2.3.1-1/-2."""
    t = mqtt_topic("pids")
    with mqtt.raw() as sub, mqtt.raw() as pub:
        sub.connect(mqtt_id("sub"))
        sub.subscribe(1, [(t, 1)])
        pub.connect(mqtt_id("pub"))
        for i in range(5):
            pub.publish(t, b"m%d" % i, qos=1, pid=i + 1)
        got = [sub.expect(M.PUBLISH) for _ in range(5)]
        assert [p.payload for p in got] == [b"m%d" % i for i in range(5)]
        pids = [p.pid for p in got]
        assert 0 not in pids and len(set(pids)) == 5, pids
        for p in got:
            sub.send(M.puback(p.pid))
        sub.alive()


# ------------------------------------------------------------ SUBSCRIBE

def test_suback_grants_the_requested_qos_per_filter(mqtt):
    """MQTT-3.8.4-5/-6: one return code per filter, in order."""
    t = mqtt_topic("grant")
    with mqtt.raw() as r:
        r.connect(mqtt_id("grant"))
        r.send(M.subscribe(0x0102, [(t + "/0", 0), (t + "/1", 1), (t + "/2", 2)]))
        r.expect_bytes(M.hexbytes("90 05 01 02 00 01 02"), what="SUBACK")


WILDCARD_TOPICS = ["a/temp", "b/temp", "a/hum", "a", "", "a/b/temp", "/x"]
WILDCARD_MATCHES = {          # filter (relative to T) -> topics (relative to T)
    "/+/temp": ["a/temp", "b/temp"],
    "/#": ["a/temp", "b/temp", "a/hum", "a", "", "a/b/temp", "/x"],
    "/a/+": ["a/temp", "a/hum"],
    "/+": ["a"],
    "/a/#": ["a/temp", "a/hum", "a", "a/b/temp"],
    "/+/+/temp": ["a/b/temp"],
    "/+/x": ["/x"],             # '+' matches an empty level
}


def test_wildcards_match_per_the_topic_rules(mqtt):
    """4.7.1: '+' matches exactly one level (also an empty one), '#' any
    number of levels including the parent ("sport/#" matches "sport")."""
    base = mqtt_topic("wild")
    subs = {}
    for f in WILDCARD_MATCHES:
        subs[f] = subscriber(mqtt, base + f, 1)
    pub = mqtt.client(mqtt_id("pub"))
    pub.connect()
    for t in WILDCARD_TOPICS:
        topic = base + ("/" + t if t else "")
        pub.publish(topic, t.encode(), qos=1)
    for f, want in WILDCARD_MATCHES.items():
        got = [subs[f].get(what="%s: %d messages" % (f, len(want))).payload.decode()
               for _ in want]
        got += [m.payload.decode() for m in M.drain(subs[f], 0.2)]
        assert sorted(got) == sorted(want), "filter %s got %r" % (base + f, got)
    pub.disconnect()
    for c in subs.values():
        c.disconnect()


def test_unsubscribe_is_acked_and_stops_delivery(mqtt):
    t = mqtt_topic("unsub")
    with mqtt.raw() as r, mqtt.raw() as pub:
        r.connect(mqtt_id("sub"))
        r.subscribe(1, [(t, 1)])
        pub.connect(mqtt_id("pub"))
        pub.publish(t, b"before", qos=1, pid=1)
        p = r.expect(M.PUBLISH)
        r.send(M.puback(p.pid))
        r.send(M.unsubscribe(0x0a0b, [t]))
        r.expect_bytes(M.hexbytes("b0 02 0a 0b"), what="UNSUBACK")
        pub.publish(t, b"after", qos=1, pid=2)
        r.quiet(0.4)


def test_overlapping_subscriptions_deliver_at_the_maximum_granted_qos(mqtt):
    """MQTT-3.3.5-1: the message goes out respecting the maximum QoS of all
    matching subscriptions. The spec allows one copy or one per
    subscription; Coney (as RabbitMQ) sends one, Mosquitto one per filter."""
    t = mqtt_topic("overlap")
    sub = mqtt.client(mqtt_id("sub"))
    sub.connect()
    assert sub.subscribe([(t + "/#", 0), (t + "/+", 1)]) == [0, 1]
    pub = mqtt.client(mqtt_id("pub"))
    pub.connect()
    pub.publish(t + "/x", b"overlap", qos=1)
    copies = [sub.get()] + M.drain(sub, 0.4)
    assert all(m.payload == b"overlap" for m in copies)
    assert max(m.qos for m in copies) == 1, copies
    if mqtt.is_coney:
        assert len(copies) == 1, "Coney delivers one copy: %r" % (copies,)
    pub.disconnect()
    sub.disconnect()


def test_dollar_topics_are_not_matched_by_leading_wildcards(mqtt):
    """MQTT-4.7.2-1: "#" and "+/..." do not match topics beginning with '$';
    a filter that starts with the '$' level does."""
    uid = mqtt_topic("x").rsplit("/", 1)[1]
    dollar = "$ct-%s/x" % uid
    plain = "coney-test/x"    # "+/x" matches this one
    wild = mqtt.client(mqtt_id("wild"))
    wild.connect()
    assert wild.subscribe([("#", 0), ("+/x", 0)]) == [0, 0]
    exact = subscriber(mqtt, "$ct-%s/+" % uid, 1)
    pub = mqtt.client(mqtt_id("pub"))
    pub.connect()
    pub.publish(dollar, b"dollar", qos=1)
    m = exact.get(what="the $-topic message at a filter starting with '$'")
    assert (m.topic, m.payload) == (dollar, b"dollar")
    pub.publish(plain, b"marker-" + uid.encode(), qos=1)
    seen = []
    while True:
        m = wild.get(what="the marker at '#'")
        seen.append(m.topic)
        if m.payload == b"marker-" + uid.encode():
            break
    seen += [m.topic for m in M.drain(wild, 0.3)]
    assert not [s for s in seen if s.startswith("$")], seen
    for c in (pub, exact, wild):
        c.disconnect()


# ------------------------------------------------------------ retained

def test_retained_message_goes_to_new_subscribers_with_retain_flag(mqtt):
    """MQTT-3.3.1-5/-8/-9: stored, sent to a new subscription with RETAIN 1;
    a subscriber that was already there gets it with RETAIN 0."""
    t = mqtt_topic("ret")
    try:
        live = subscriber(mqtt, t, 1)
        pub = mqtt.client(mqtt_id("pub"))
        pub.connect()
        pub.publish(t, b"first", qos=1, retain=True)
        pub.publish(t, b"kept", qos=1, retain=True)
        got = [live.get(), live.get()]
        assert [(m.payload, m.retain) for m in got] == [(b"first", False), (b"kept", False)]
        late = mqtt.client(mqtt_id("late"))
        late.connect()
        assert late.subscribe(t, 1) == [1]
        m = late.get(what="the retained message")
        assert (m.topic, m.payload, m.retain, m.qos) == (t, b"kept", True, 1)
        late.none(0.3)     # only the last retained message is kept
        for c in (pub, live, late):
            c.disconnect()
    finally:
        clear_retained(mqtt, t)


def test_retained_messages_match_wildcard_subscriptions(mqtt):
    t = mqtt_topic("retw")
    try:
        with mqtt.raw() as pub:
            pub.connect(mqtt_id("pub"))
            pub.publish(t + "/a", b"A", qos=1, retain=True, pid=1)
            pub.publish(t + "/b", b"B", qos=1, retain=True, pid=2)
            pub.publish(t + "/b/deeper", b"C", qos=1, retain=True, pid=3)
        sub = mqtt.client(mqtt_id("sub"))
        sub.connect()
        sub.subscribe(t + "/+", 1)
        got = sorted((m.topic, m.payload, m.retain) for m in [sub.get(), sub.get()])
        assert got == [(t + "/a", b"A", True), (t + "/b", b"B", True)]
        sub.none(0.3)
        sub.disconnect()
    finally:
        clear_retained(mqtt, t + "/a", t + "/b", t + "/b/deeper")


def test_empty_retained_publish_clears_the_retained_message(mqtt):
    """MQTT-3.3.1-10/-11: a zero-byte retained PUBLISH removes the retained
    message, and is still delivered to current subscribers."""
    t = mqtt_topic("retclr")
    live = subscriber(mqtt, t, 1)
    pub = mqtt.client(mqtt_id("pub"))
    pub.connect()
    pub.publish(t, b"to be cleared", qos=1, retain=True)
    pub.publish(t, b"", qos=1, retain=True)
    assert [m.payload for m in (live.get(), live.get())] == [b"to be cleared", b""]
    late = mqtt.client(mqtt_id("late"))
    late.connect()
    late.subscribe(t, 1)
    late.none(0.5)
    for c in (pub, live, late):
        c.disconnect()


@pytest.mark.coney_only("restarts the broker process")
def test_retained_message_survives_broker_restart(fresh_broker):
    mq = mqtt_target(fresh_broker)
    t = mqtt_topic("retrs")
    with mq.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(t, b"durable retained", qos=1, retain=True, pid=1)
        pub.disconnect()
    restart_broker(fresh_broker)
    sub = mq.client(mqtt_id("sub"))
    sub.connect()
    sub.subscribe(t, 1)
    m = sub.get(what="the retained message after restart")
    assert (m.topic, m.payload, m.retain) == (t, b"durable retained", True)
    sub.disconnect()


# ------------------------------------------------------------ will

def test_will_is_published_when_the_socket_closes_without_disconnect(mqtt):
    """MQTT-3.1.2-8, with the will's QoS."""
    wt = mqtt_topic("will")
    w = subscriber(mqtt, wt, 2)
    r = mqtt.raw()
    r.connect(mqtt_id("will"), will={"topic": wt, "payload": b"gone", "qos": 2})
    r.alive()
    r.close()
    m = w.get(what="the will")
    assert (m.topic, m.payload, m.qos, m.retain) == (wt, b"gone", 2, False)
    w.disconnect()


def test_will_is_not_published_after_disconnect(mqtt):
    """MQTT-3.1.2-10 / MQTT-3.14.4-3: DISCONNECT discards the will."""
    wt = mqtt_topic("nowill")
    w = subscriber(mqtt, wt, 1)
    with mqtt.raw() as r:
        r.connect(mqtt_id("nowill"), will={"topic": wt, "payload": b"must not", "qos": 1})
        r.disconnect()
    time.sleep(0.3)
    with mqtt.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(wt, b"marker", qos=1, pid=1)
    assert w.get().payload == b"marker"
    w.none(0.3)
    w.disconnect()


def test_will_retain_flag_is_honoured(mqtt):
    """MQTT-3.1.2-17: a will with Will Retain 1 is published as retained."""
    wt = mqtt_topic("willret")
    try:
        w = subscriber(mqtt, wt, 1)
        r = mqtt.raw()
        r.connect(mqtt_id("willret"), will={"topic": wt, "payload": b"last words",
                                              "qos": 1, "retain": True})
        r.close()
        assert w.get(what="the will").payload == b"last words"
        late = mqtt.client(mqtt_id("late"))
        late.connect()
        late.subscribe(wt, 1)
        m = late.get(what="the retained will")
        assert (m.payload, m.retain) == (b"last words", True)
        w.disconnect()
        late.disconnect()
    finally:
        clear_retained(mqtt, wt)


# ------------------------------------------------------------ sessions

def test_persistent_session_keeps_subscription_and_queues_messages(mqtt):
    """MQTT-3.1.2-4/-5 and MQTT-3.2.2-2: with clean session 0 the
    subscription and QoS 1/2 messages for it outlive the connection;
    CONNACK says session present."""
    t = mqtt_topic("sess")
    cid = mqtt_id("sess")
    try:
        s = mqtt.client(cid, clean=False)
        _, present, _ = s.connect()
        assert not present
        assert s.subscribe(t, 2) == [2]
        s.disconnect()
        pub = mqtt.client(mqtt_id("pub"))
        pub.connect()
        pub.publish(t, b"away-1", qos=1)
        pub.publish(t, b"away-2", qos=2)
        pub.disconnect()
        s = mqtt.client(cid, clean=False)
        _, present, _ = s.connect()
        assert present
        got = [s.get(), s.get()]
        assert [(m.payload, m.qos) for m in got] == [(b"away-1", 1), (b"away-2", 2)]
        s.disconnect()
    finally:
        end_session(mqtt, cid)


def test_clean_session_discards_subscriptions_and_queued_messages(mqtt):
    """MQTT-3.1.2-6: clean session 1 discards the previous session."""
    t = mqtt_topic("clean")
    cid = mqtt_id("clean")
    s = mqtt.client(cid, clean=False)
    s.connect()
    s.subscribe(t, 1)
    s.disconnect()
    with mqtt.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(t, b"queued", qos=1, pid=1)
    s = mqtt.client(cid, clean=True)
    _, present, _ = s.connect()
    assert not present
    s.none(0.4)                       # queued message discarded
    with mqtt.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(t, b"after", qos=1, pid=1)
    s.none(0.4)                       # subscription discarded
    s.disconnect()
    with mqtt.raw() as r:             # nothing left behind either
        assert not r.connect(cid, clean=False).session_present
        r.disconnect()
    end_session(mqtt, cid)


@pytest.mark.coney_only("restarts the broker process")
def test_persistent_session_survives_broker_restart(fresh_broker):
    mq = mqtt_target(fresh_broker)
    t = mqtt_topic("sessrs")
    cid = mqtt_id("sessrs")
    s = mq.client(cid, clean=False)
    s.connect()
    s.subscribe(t, 1)
    s.disconnect()
    with mq.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(t, b"before restart", qos=1, pid=1)
    restart_broker(fresh_broker)
    with mq.raw() as pub:
        pub.connect(mqtt_id("pub"))
        pub.publish(t, b"after restart", qos=1, pid=1)
    s = mq.client(cid, clean=False)
    _, present, _ = s.connect()
    assert present
    assert [s.get().payload, s.get().payload] == [b"before restart", b"after restart"]
    s.disconnect()


# ------------------------------------------------------------ command-line clients

def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s not installed (Debian mosquitto-clients; scripts/deps.sh)" % name)
    return path


@pytest.mark.parametrize("v", ["mqttv31", "mqttv311"])
def test_mosquitto_sub_receives_what_mosquitto_pub_sends(mqtt, v):
    sub_bin, pub_bin = _tool("mosquitto_sub"), _tool("mosquitto_pub")
    t = mqtt_topic("cli")
    common = ["-h", mqtt.host, "-p", str(mqtt.port), "-V", v, "-q", "1"]
    sub = subprocess.Popen([sub_bin] + common + ["-t", t, "-C", "1", "-W", str(int(TIMEOUT)),
                                                 "-v", "-i", mqtt_id("msub")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # mosquitto_sub says nothing when it has subscribed: publish until
        # it has a message and exits.
        deadline = time.monotonic() + TIMEOUT
        while sub.poll() is None and time.monotonic() < deadline:
            subprocess.run([pub_bin] + common + ["-t", t, "-m", "hello " + v,
                                                 "-u", "guest", "-P", "guest"],
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
    assert out.decode() == "%s hello %s\n" % (t, v)


def test_mosquitto_pub_retained_then_mosquitto_sub_retained_only(mqtt):
    sub_bin, pub_bin = _tool("mosquitto_sub"), _tool("mosquitto_pub")
    t = mqtt_topic("cliret")
    common = ["-h", mqtt.host, "-p", str(mqtt.port), "-q", "1"]
    try:
        subprocess.run([pub_bin] + common + ["-t", t, "-m", "kept", "-r"], check=True,
                       timeout=TIMEOUT, capture_output=True)
        out = subprocess.run([sub_bin] + common + ["-t", t, "--retained-only", "-C", "1",
                                                   "-W", str(int(TIMEOUT)), "-v"],
                             check=True, timeout=TIMEOUT + 5, capture_output=True).stdout
        assert out.decode() == "%s kept\n" % t
    finally:
        subprocess.run([pub_bin] + common + ["-t", t, "-r", "-n"], timeout=TIMEOUT,
                       capture_output=True)


def test_mosquitto_pub_with_wrong_password_fails(mqtt):
    pub_bin = _tool("mosquitto_pub")
    r = subprocess.run([pub_bin, "-h", mqtt.host, "-p", str(mqtt.port), "-t",
                        mqtt_topic("clibad"), "-m", "x", "-u", "guest", "-P", "wrong"],
                       timeout=TIMEOUT, capture_output=True)
    assert r.returncode != 0
    assert b"Connection Refused" in r.stderr + r.stdout, r.stderr
