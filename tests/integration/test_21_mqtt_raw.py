"""MQTT conformance cases on the wire: each case sends bytes a well-behaved
client never sends (or the simplest exchange a rule is about) and names
what the server must answer. Cases are data; each name starts with the
normative statement it checks (MQTT 3.1.1 ids for protocol level 4, MQTT
5.0 ids for level 5).

state: "none" sends on a fresh socket; "connected" first does CONNECT
(clean session, the case's version) and reads a successful CONNACK.

expect:
  Reply(bytes)      exactly these bytes come back and the connection stays
                    open (a PINGREQ/PINGRESP round trip follows)
  Close()           the server closes the connection without sending
                    anything (3.1.1, section 4.8: close on protocol errors)
  Close(bytes)      the server sends exactly these bytes, then closes
  Close(bytes, optional=True)
                    MQTT 5.0 4.13: the server MAY send the CONNACK or
                    DISCONNECT with the reason code before closing; if it
                    sends something, it must be exactly this
  Disconnect(rc, others=(), bare=False)
                    MQTT 5.0: a DISCONNECT with reason rc (either encoding:
                    with or without the empty property block), then the
                    close. Coney must send rc; another broker (validation
                    against Mosquitto) may send one of `others` instead, or
                    with bare=True close without a DISCONNECT (4.13 makes
                    the DISCONNECT a MAY). Where Mosquitto's choice differs,
                    the case says so.
  OneOf(a, b)       either expectation (the spec allows both)

coney: the reason, when the case pins a choice of Coney's that Mosquitto
does not share (skipped with CONEY_MQTT_TARGET; checked against Coney)."""

import struct
from collections import namedtuple

import pytest

import mqtt_raw as M
from mqtt_raw import hexbytes, hexdump
from coney_util import TIMEOUT, mqtt_id, mqtt_target, mqtt_topic, start_broker

Reply = namedtuple("Reply", "data")


class Close:
    def __init__(self, data=None, optional=False):
        self.data = data
        self.optional = optional

    def __repr__(self):
        return "Close(%s%s)" % (self.data.hex() if self.data else "",
                                ", optional" if self.optional else "")


class Disconnect:
    def __init__(self, rc, others=(), bare=False):
        self.rc = rc
        self.others = tuple(others)
        self.bare = bare

    def __repr__(self):
        return "Disconnect(0x%02x%s%s)" % (self.rc, "".join(", 0x%02x" % o for o in self.others),
                                           ", bare" if self.bare else "")


class OneOf:
    def __init__(self, *alts):
        self.alts = alts


Case = namedtuple("Case", "name version state send expect coney")


def case(name, version, state, send, expect, coney=None):
    return Case(name, version, state, send, expect, coney)


V4, V5 = M.V311, M.V5
TOPIC = "coney-test/raw21"          # no retained messages, no subscribers
DEEP_200 = TOPIC + "/l" * 198       # 200 levels
DEEP_201 = DEEP_200 + "/l"          # one too many
LEVELS = "mqtt.max_topic_levels: how another broker treats it is its own choice"


def connack5(rc):
    return M.packet(M.CONNACK, 0, bytes([0, rc]) + b"\x00")


def good_connect(version=V4, **kw):
    return M.connect("ct-raw21-" + str(version), version=version, **kw)


def connect_with_flags(flags, version=V4, payload=None):
    """CONNECT with the connect flags octet given verbatim."""
    name = M.mstr("MQTT") + struct.pack("!BBH", version, flags, 60)
    if version == V5:
        name += b"\x00"
    return M.packet(M.CONNECT, 0, name + (payload or M.mstr("ct-raw21-flags")))


CASES = [
    # ---- CONNECT
    case("MQTT-3.1.0-1 first packet not CONNECT (PINGREQ) closes", V4, "none",
         M.pingreq(), Close()),
    case("MQTT-3.1.0-1 first packet not CONNECT (PUBLISH) closes", V4, "none",
         M.publish(TOPIC, b"x"), Close()),
    case("MQTT-3.1.0-2 second CONNECT closes", V4, "connected",
         good_connect(), Close()),
    case("MQTT-3.1.0-2 second CONNECT is a protocol error (5.0)", V5, "connected",
         good_connect(V5), Disconnect(0x82, bare=True)),      # Mosquitto 2.0.11: bare close
    case("MQTT-3.1.2-3 CONNECT reserved flag set closes", V4, "none",
         connect_with_flags(0x03), Close()),
    case("MQTT-3.1.2-3 CONNECT reserved flag set is malformed (5.0)", V5, "none",
         connect_with_flags(0x03, V5), Close(connack5(0x81), optional=True)),
    case("MQTT-3.1.2-2 unknown protocol level gets CONNACK 0x01 then close", V4, "none",
         M.connect("ct-raw21-lvl", version=6, proto_name="MQTT"),
         OneOf(Close(hexbytes("20 02 00 01")), Close())),
    case("MQTT-3.1.2-11 will QoS 3 closes", V4, "none",
         connect_with_flags(0x02 | 0x04 | 0x18, payload=M.mstr("ct-raw21-wq")
                            + M.mstr("w") + M.mstr("x")), Close()),
    case("MQTT-3.1.2-13 will flag 0 with will QoS 1 closes", V4, "none",
         connect_with_flags(0x02 | 0x08), Close()),
    case("MQTT-3.1.2-15 will flag 0 with will retain 1 closes", V4, "none",
         connect_with_flags(0x02 | 0x20), Close()),
    case("MQTT-3.1.2-22 password flag without user name flag closes", V4, "none",
         connect_with_flags(0x02 | 0x40, payload=M.mstr("ct-raw21-pw") + M.mstr("pw")),
         Close()),
    case("MQTT-3.1.3-8 empty client id with clean session 0 gets CONNACK 0x02", V4, "none",
         M.connect("", clean=False), Close(hexbytes("20 02 00 02"))),
    case("MQTT-3.1.2-1 protocol name 'MQTX' closes", V4, "none",
         M.connect("ct-raw21-name", proto_name="MQTX"), Close()),
    case("3.1.2.11.2 Session Expiry Interval twice is a protocol error (5.0)", V5, "none",
         M.connect("ct-raw21-twice", version=V5,
                   properties=[("session_expiry", 1), ("session_expiry", 2)]),
         Close(connack5(0x82), optional=True)),
    case("3.1.2.11.3 Receive Maximum 0 is a protocol error (5.0)", V5, "none",
         M.connect("ct-raw21-rm0", version=V5, properties={"receive_maximum": 0}),
         Close(connack5(0x82), optional=True)),

    # ---- fixed header
    case("MQTT-2.2.3 remaining length longer than 4 octets closes", V4, "connected",
         hexbytes("30 ff ff ff ff 7f"), Close()),
    case("MQTT-2.2.3 remaining length longer than 4 octets is malformed (5.0)", V5, "connected",
         hexbytes("30 ff ff ff ff 7f"), Disconnect(0x81, bare=True)),  # Mosquitto: bare close
    case("MQTT-2.2.2-2 PINGREQ with flags 0001 closes", V4, "connected",
         hexbytes("c1 00"), Close(),
         coney="Mosquitto 2.0.11 ignores the reserved flags of PINGREQ and answers"),
    case("MQTT-2.2.2-2 PUBREL with flags 0000 closes", V4, "connected",
         hexbytes("60 02 00 01"), Close()),
    case("MQTT-2.2.2-2 DISCONNECT with flags 0001 closes", V4, "connected",
         hexbytes("e1 00"), Close()),
    case("2.2.1 packet type 0 closes", V4, "connected", hexbytes("00 00"), Close()),
    case("2.2.1 AUTH (type 15) in 3.1.1 closes", V4, "connected", hexbytes("f0 00"), Close()),

    # ---- PINGREQ
    case("MQTT-3.12.4-1 PINGREQ gets PINGRESP", V4, "connected", M.pingreq(),
         Reply(M.PINGRESP_BYTES)),
    case("MQTT-3.12.4-1 PINGREQ gets PINGRESP (5.0)", V5, "connected", M.pingreq(),
         Reply(M.PINGRESP_BYTES)),

    # ---- PUBLISH
    case("MQTT-3.3.1-4 PUBLISH with QoS 3 closes", V4, "connected",
         M.packet(M.PUBLISH, 0x06, M.mstr(TOPIC) + b"\x00\x01x"), Close()),
    case("MQTT-3.3.1-4 PUBLISH with QoS 3 is malformed (5.0)", V5, "connected",
         M.packet(M.PUBLISH, 0x06, M.mstr(TOPIC) + b"\x00\x01\x00x"), Disconnect(0x81)),
    case("MQTT-3.3.2-2 PUBLISH topic with '+' closes", V4, "connected",
         M.publish(TOPIC + "/+", b"x"), Close()),
    case("MQTT-3.3.2-2 PUBLISH topic with '#' closes", V4, "connected",
         M.publish(TOPIC + "/#", b"x", qos=1, pid=1), Close()),
    case("MQTT-3.3.2-2 PUBLISH topic with wildcard is Topic Name invalid (5.0)", V5,
         "connected", M.publish(TOPIC + "/+", b"x", version=V5),
         # Mosquitto 2.0.11: 0x82 Protocol Error
         Disconnect(0x90, others=(0x82, 0x81))),
    case("MQTT-1.5.3-1 PUBLISH topic that is not UTF-8 closes", V4, "connected",
         M.packet(M.PUBLISH, 0, b"\x00\x03a\xc3(" + b"x"), Close()),
    case("MQTT-1.5.4-1 PUBLISH topic with a UTF-16 surrogate is malformed (5.0)", V5,
         "connected", M.packet(M.PUBLISH, 0, b"\x00\x05a/\xed\xa0\x80" + b"\x00" + b"x"),
         Disconnect(0x81, others=(0x82,))),
    case("MQTT-1.5.4-2 PUBLISH topic with U+0000 is malformed (5.0)", V5, "connected",
         M.packet(M.PUBLISH, 0, b"\x00\x03a\x00b" + b"\x00" + b"x"),
         Disconnect(0x81, others=(0x82,))),
    case("MQTT-4.7.3-1 PUBLISH with empty topic closes", V4, "connected",
         M.publish("", b"x"), Close()),
    case("MQTT-2.3.1-1 QoS 1 PUBLISH with packet id 0 closes", V4, "connected",
         M.publish(TOPIC, b"x", qos=1, pid=0), Close()),
    case("MQTT-3.3.4-1 QoS 1 PUBLISH gets PUBACK with its packet id", V4, "connected",
         M.publish(TOPIC, b"x", qos=1, pid=0x4142), Reply(hexbytes("40 02 41 42"))),
    case("MQTT-4.3.3 QoS 2 PUBLISH gets PUBREC with its packet id", V4, "connected",
         M.publish(TOPIC, b"x", qos=2, pid=0x0203), Reply(hexbytes("50 02 02 03"))),
    case("MQTT-4.3.3 PUBREL gets PUBCOMP with its packet id", V4, "connected",
         M.pubrel(0x0304), Reply(hexbytes("70 02 03 04"))),
    # A PUBREL resent after its PUBCOMP was lost also has an unknown id, so
    # success is as right as 0x92 Packet Identifier not found (Mosquitto: 0).
    case("MQTT-4.3.3 PUBREL for an unknown packet id gets PUBCOMP (5.0)", V5, "connected",
         M.pubrel(0x0305, version=V5),
         OneOf(Reply(hexbytes("70 03 03 05 92")), Reply(hexbytes("70 02 03 05")),
               Reply(hexbytes("70 03 03 05 00")))),
    case("MQTT-3.3.2-8 Topic Alias 0 is Topic Alias invalid (5.0)", V5, "connected",
         M.publish(TOPIC, b"x", version=V5, properties={"topic_alias": 0}),
         Disconnect(0x94, others=(0x81,))),          # Mosquitto 2.0.11: 0x81
    case("3.3.2.3.4 empty topic with an unmapped alias is a protocol error (5.0)", V5,
         "connected", M.publish("", b"x", version=V5, properties={"topic_alias": 1}),
         Disconnect(0x82)),
    case("MQTT-3.3.4-6 PUBLISH from a client with a Subscription Identifier is a "
         "protocol error (5.0)", V5, "connected",
         M.publish(TOPIC, b"x", version=V5, properties={"subscription_id": 1}),
         Disconnect(0x82), coney="Mosquitto 2.0.11 accepts the PUBLISH"),

    # ---- SUBSCRIBE / UNSUBSCRIBE
    case("MQTT-3.8.1-1 SUBSCRIBE with flags 0000 closes", V4, "connected",
         M.subscribe(1, [(TOPIC, 0)], flags=0), Close()),
    case("MQTT-3.8.1-1 SUBSCRIBE with flags 0000 is malformed (5.0)", V5, "connected",
         M.subscribe(1, [(TOPIC, 0)], version=V5, flags=0), Disconnect(0x81)),
    case("MQTT-3.8.3-3 SUBSCRIBE without topic filters closes", V4, "connected",
         M.packet(M.SUBSCRIBE, 2, b"\x00\x01"), Close()),
    case("MQTT-3.8.3-4 SUBSCRIBE requested QoS 3 closes", V4, "connected",
         M.subscribe(1, [(TOPIC, 3)]), Close()),
    case("MQTT-2.3.1-1 SUBSCRIBE with packet id 0 closes", V4, "connected",
         M.subscribe(0, [(TOPIC, 0)]), Close()),
    case("MQTT-4.7.1-2 filter 'a/#/b' gets SUBACK 0x80 or a close", V4, "connected",
         M.subscribe(7, [(TOPIC + "/#/b", 0)]),
         OneOf(Reply(hexbytes("90 03 00 07 80")), Close())),
    case("MQTT-4.7.1-3 filter 'a/b+' gets SUBACK 0x80 or a close", V4, "connected",
         M.subscribe(7, [(TOPIC + "/b+", 0)]),
         OneOf(Reply(hexbytes("90 03 00 07 80")), Close())),
    case("MQTT-4.7.1-2 filter 'a/#/b' gets SUBACK 0x8F or DISCONNECT (5.0)", V5, "connected",
         M.subscribe(7, [(TOPIC + "/#/b", 0)], version=V5),
         # Mosquitto 2.0.11: DISCONNECT 0x81
         OneOf(Reply(hexbytes("90 04 00 07 00 8f")), Disconnect(0x8F, others=(0x81, 0x82)))),
    case("MQTT-3.8.3-4 no local on a shared subscription is a protocol error (5.0)", V5,
         "connected", M.subscribe(1, [("$share/g/" + TOPIC, M.sub_options(0, no_local=True))],
                                  version=V5),
         Disconnect(0x82), coney="Mosquitto 2.0.11 grants it (SUBACK 0x00)"),
    case("3.8.2.1.2 Subscription Identifier 0 is a protocol error (5.0)", V5, "connected",
         M.subscribe(1, [(TOPIC, 0)], version=V5, properties={"subscription_id": 0}),
         Disconnect(0x82, others=(0x81,))),          # Mosquitto 2.0.11: 0x81
    case("MQTT-3.10.1-1 UNSUBSCRIBE with flags 0000 closes", V4, "connected",
         M.unsubscribe(1, [TOPIC], flags=0), Close()),
    case("MQTT-3.10.3-2 UNSUBSCRIBE without topic filters closes", V4, "connected",
         M.packet(M.UNSUBSCRIBE, 2, b"\x00\x01"), Close()),
    case("MQTT-3.10.4-5 UNSUBSCRIBE of a filter never subscribed gets UNSUBACK", V4,
         "connected", M.unsubscribe(0x0809, [TOPIC]), Reply(hexbytes("b0 02 08 09"))),
    case("MQTT-3.8.4-1 SUBSCRIBE gets SUBACK with the granted QoS", V4, "connected",
         M.subscribe(0x0a0b, [(TOPIC + "/sub", 2)]), Reply(hexbytes("90 03 0a 0b 02"))),

    # ---- limits (issue 9): topic levels, as Mosquitto's 200 (mqtt.max_topic_levels)
    case("limit: PUBLISH topic of 200 levels is taken", V4, "connected",
         M.publish(DEEP_200, b"x", qos=1, pid=0x0c0d), Reply(hexbytes("40 02 0c 0d"))),
    case("limit: PUBLISH topic of 201 levels closes", V4, "connected",
         M.publish(DEEP_201, b"x", qos=1, pid=1), Close(), coney=LEVELS),
    case("limit: PUBLISH topic of 201 levels is Topic Name invalid (5.0)", V5, "connected",
         M.publish(DEEP_201, b"x", version=V5), Disconnect(0x90), coney=LEVELS),
    case("limit: SUBSCRIBE filter of 200 levels is granted", V4, "connected",
         M.subscribe(0x0e0f, [(DEEP_200[:-1] + "#", 1)]), Reply(hexbytes("90 03 0e 0f 01"))),
    case("limit: SUBSCRIBE filter of 201 levels gets SUBACK 0x80", V4, "connected",
         M.subscribe(9, [(DEEP_201[:-1] + "+", 1), (TOPIC + "/ok", 1)]),
         Reply(hexbytes("90 04 00 09 80 01")), coney=LEVELS),
    case("limit: SUBSCRIBE filter of 201 levels gets SUBACK 0x8F (5.0)", V5, "connected",
         M.subscribe(9, [(DEEP_201, 1), (TOPIC + "/ok", 1)], version=V5),
         Reply(hexbytes("90 05 00 09 00 8f 01")), coney=LEVELS),
    case("limit: shared SUBSCRIBE filter of 201 levels gets SUBACK 0x8F (5.0)", V5,
         "connected", M.subscribe(9, [("$share/g/" + DEEP_201, 1)], version=V5),
         Reply(hexbytes("90 04 00 09 00 8f")), coney=LEVELS),

    # ---- DISCONNECT
    case("MQTT-3.14.4-1 DISCONNECT: the server closes the connection", V4, "connected",
         M.disconnect(), Close()),
    case("3.14.2.1 DISCONNECT 0x00: the server closes the connection (5.0)", V5, "connected",
         M.disconnect(version=V5), Close()),
]


def _bystander_round_trip(by, topic):
    """The bystander publishes to its own subscription and gets it back: a
    malformed neighbour disturbed nothing."""
    by.publish(topic, b"still here")
    p = by.expect(M.PUBLISH)
    assert p.raw.endswith(b"still here"), p


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_conformance(mqtt, c):
    if c.coney and not mqtt.is_coney:
        pytest.skip("coney-only: " + c.coney)
    topic = mqtt_topic("bystander")
    with mqtt.raw(M.V311) as by, mqtt.raw(c.version) as raw:
        by.connect(mqtt_id("by"))
        assert by.subscribe(1, [(topic, 0)]) == [0]
        _conformance_case(raw, c, mqtt.is_coney)
        _bystander_round_trip(by, topic)


def _conformance_case(raw, c, is_coney):
    """Runs one case on raw and asserts what came back."""
    if c.state == "connected":
        raw.send(good_connect(c.version))
        p = raw.expect(M.CONNACK)
        assert p.rc == 0, p
    raw.send(c.send)
    # Cases are judged on everything received from here on.
    raw.log = b""
    received = []
    closed = False
    try:
        while True:
            received.append(raw.read(1.0 if received else TIMEOUT))
    except M.Closed:
        closed = True
    except TimeoutError:
        pass
    err = _judge(c.expect, received, closed, is_coney)
    assert err is None, "%s\nsent:\n%s\n%s" % (c.name, hexdump(c.send), err)
    if not closed:
        raw.alive()


def _judge(expect, got, closed, coney):
    """None if what was received (packets, then EOF or not) matches
    `expect`, else why not."""
    data = b"".join(p.raw for p in got)
    if isinstance(expect, OneOf):
        errors = [(alt, _judge(alt, got, closed, coney)) for alt in expect.alts]
        if any(e is None for _, e in errors):
            return None
        return "no alternative matched:\n" + "\n".join("  %r: %s" % ae for ae in errors)
    if isinstance(expect, Reply):
        if not got or got[0].raw != expect.data:
            return "expected reply\n%s\ngot\n%s%s" % (hexdump(expect.data), hexdump(data),
                                                       " (then closed)" if closed else "")
        if closed or len(got) > 1:
            return "reply as expected, but then %s" % ("a close" if closed else got[1:])
        return None
    if not closed:
        return "connection not closed; received\n" + hexdump(data)
    if isinstance(expect, Disconnect):
        if not got and expect.bare and not coney:
            return None
        codes = (expect.rc,) + (() if coney else expect.others)
        if len(got) == 1 and got[0].type == M.DISCONNECT:
            d = M.Packet(got[0].raw, got[0].type, got[0].flags, got[0].body).decode(M.V5)
            if d.rc in codes and not d.props:
                return None
        return "expected DISCONNECT %s then the close, got\n%s" % (
            "/".join("0x%02x" % c for c in codes), hexdump(data))
    if expect.data is None:
        return None if not got else "expected a close without a reply, got\n" + hexdump(data)
    if not got and expect.optional:
        return None
    if data != expect.data:
        return "expected before the close\n%s\ngot\n%s" % (hexdump(expect.data),
                                                           hexdump(data))
    return None


# ---------------------------------------------------------------- cases that need state

def _packet_above_maximum_is_disconnect_0x95(mq):
    with mq.raw(V5) as raw:
        p = raw.connect(mqtt_id("big"), properties={})
        limit = p.props.get("maximum_packet_size")
        if limit is None:
            pytest.skip("the server announces no Maximum Packet Size")
        # Only the fixed header: a server can refuse on the length alone.
        # The whole packet would be 1 + len(varint) + limit octets.
        raw.send(bytes([0x30]) + M.varint(limit))
        got = raw.expect_closed(allow=(M.DISCONNECT,))
        assert [d.rc for d in got] == [0x95], got


def test_packet_above_server_maximum_packet_size_is_disconnect_0x95(mqtt):
    """3.2.2.3.6 / 4.13: a packet larger than the Maximum Packet Size the
    server announced in CONNACK gets DISCONNECT 0x95 Packet too large.
    (Skipped when the server announces none, as Coney by default.)"""
    _packet_above_maximum_is_disconnect_0x95(mqtt)


@pytest.mark.coney_only("Coney's config key (RabbitMQ's name)")
def test_configured_maximum_packet_size_is_announced_and_enforced(coney_bin, tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("mqtt.max_packet_size_authenticated = 1000\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        mq = mqtt_target(b)
        with mq.raw(V5) as raw:
            p = raw.connect(mqtt_id("cfg"), properties={})
            assert p.props.get("maximum_packet_size") == 1000, p.props
        _packet_above_maximum_is_disconnect_0x95(mq)
        b.check_clean_exit(b.stop())
    finally:
        b.cleanup()


def test_qos2_exchange_then_same_packet_id_reused(mqtt):
    """MQTT-2.3.1-3/4.3.3: once PUBCOMP is sent the packet id is free and a
    new PUBLISH with it is a new message (PUBREC again)."""
    with mqtt.raw() as raw:
        raw.connect(mqtt_id("reuse"))
        t = mqtt_topic("reuse")
        for _ in range(2):
            raw.send(M.publish(t, b"x", qos=2, pid=77))
            raw.expect_bytes(hexbytes("50 02 00 4d"), what="PUBREC")
            raw.send(M.pubrel(77))
            raw.expect_bytes(hexbytes("70 02 00 4d"), what="PUBCOMP")


# ---------------------------------------------------------------- limits (issue 9)

@pytest.mark.coney_only("Coney's config key")
def test_configured_topic_levels_limit_applies_to_publish_subscribe_and_will(coney_bin, tmp_path):
    """mqtt.max_topic_levels: a PUBLISH topic over it ends the connection
    (DISCONNECT 0x90 in 5.0), a SUBSCRIBE filter over it fails in SUBACK
    (0x80, 0x8F in 5.0), a will topic over it is refused at CONNECT
    (CONNACK 0x90 in 5.0); at the limit all is well, and other clients
    never notice."""
    conf = tmp_path / "coney.conf"
    conf.write_text("mqtt.max_topic_levels = 5\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        mq = mqtt_target(b)
        base = mqtt_topic("lvl")           # 3 levels
        ok, deep = base + "/a/b", base + "/a/b/c"
        with mq.raw(V4) as by:
            by.connect(mqtt_id("lvl-by"))
            assert by.subscribe(1, [(base + "/+/+", 0)]) == [0]
            with mq.raw(V4) as raw:
                raw.connect(mqtt_id("lvl4"))
                assert raw.subscribe(2, [(deep, 0), (base + "/#", 0)]) == [0x80, 0]
                raw.send(M.publish(ok, b"x", qos=1, pid=3))
                # the PUBACK, and the message again through base/# (either first)
                assert sorted(raw.read().type for _ in range(2)) == [M.PUBLISH, M.PUBACK]
                raw.send(M.publish(deep, b"x", qos=1, pid=4))
                raw.expect_closed()
            assert by.expect(M.PUBLISH).topic == ok
            with mq.raw(V5) as raw:
                raw.connect(mqtt_id("lvl5"), properties={})
                assert raw.subscribe(2, [(deep, 0), ("$share/g/" + deep, 0)]) == [0x8F, 0x8F]
                raw.send(M.publish(deep, b"x", version=V5))
                got = raw.expect_closed(allow=(M.DISCONNECT,))
                assert [d.rc for d in got] == [0x90], got
            with mq.raw(V5) as raw:
                raw.send(M.connect(mqtt_id("lvl-will"), version=V5,
                                   will={"topic": deep, "payload": b"w"}))
                p = raw.expect(M.CONNACK)
                assert p.rc == 0x90, p
                raw.expect_closed()
            _bystander_round_trip(by, base + "/z/y")
        b.check_clean_exit(b.stop())
    finally:
        b.cleanup()


def _qos2_until_refused(raw, version, n):
    """Sends QoS 2 PUBLISHes with packet ids 1.. and no PUBREL; returns how
    many got PUBREC before the server closed the connection."""
    t = mqtt_topic("q2flood")
    for i in range(1, n + 1):
        raw.send(M.publish(t, b"x", qos=2, pid=i, version=version))
    recs = 0
    got = []
    try:
        while True:
            p = raw.read(TIMEOUT)
            if p.type == M.PUBREC:
                recs += 1
            else:
                got.append(p)
    except M.Closed:
        pass
    return recs, got


@pytest.mark.parametrize("version", [V4, V5], ids=["3.1.1", "5.0"])
def test_qos2_awaiting_pubrel_is_bounded_by_the_receive_maximum(mqtt, version):
    """QoS 2 publishes waiting for PUBREL are bounded per session by the
    Receive Maximum the server announces (1024): one more is DISCONNECT
    0x93 Receive Maximum exceeded in 5.0 (MQTT-3.3.4-8), a plain close in
    3.1.1, which has no way to say it; the neighbours go on."""
    topic = mqtt_topic("q2by")
    with mqtt.raw(V4) as by, mqtt.raw(version) as raw:
        by.connect(mqtt_id("q2by"))
        assert by.subscribe(1, [(topic, 0)]) == [0]
        if not mqtt.is_coney and version == V4:
            pytest.skip("3.1.1 has no Receive Maximum; the bound is Coney's")
        p = raw.connect(mqtt_id("q2flood"), **({"properties": {}} if version == V5 else {}))
        limit = p.props.get("receive_maximum", 65535) if version == V5 else 1024
        recs, got = _qos2_until_refused(raw, version, limit + 1)
        assert recs == limit, (recs, got)
        if version == V5:
            assert [d.rc for d in got if d.type == M.DISCONNECT] == [0x93], got
        else:
            assert got == [], got
        _bystander_round_trip(by, topic)


@pytest.mark.coney_only("Coney's config key (RabbitMQ's name)")
def test_user_properties_are_bounded_by_the_maximum_packet_size(coney_bin, tmp_path):
    """User properties have no count of their own: what bounds them is the
    packet, and a PUBLISH whose properties take it past the maximum packet
    size is DISCONNECT 0x95 Packet too large, while one under it is taken
    with every property."""
    conf = tmp_path / "coney.conf"
    conf.write_text("mqtt.max_packet_size_authenticated = 1000\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        mq = mqtt_target(b)
        topic = mqtt_topic("uprops")
        with mq.raw(V5) as by, mq.raw(V5) as raw:
            by.connect(mqtt_id("up-by"), properties={})
            assert by.subscribe(1, [(topic, 0)]) == [0]
            raw.connect(mqtt_id("up"), properties={})
            few = [("user_property", ("k%d" % i, "v")) for i in range(100)]   # about 800 bytes
            raw.send(M.publish(topic, b"x", qos=1, pid=1, version=V5, properties=few))
            raw.expect(M.PUBACK)
            got = by.expect(M.PUBLISH)
            assert len(got.props.get("user_property", [])) == 100, got.props
            many = [("user_property", ("k%d" % i, "v")) for i in range(200)]  # about 1600 bytes
            raw.send(M.publish(topic, b"x", qos=1, pid=2, version=V5, properties=many))
            got = raw.expect_closed(allow=(M.DISCONNECT,))
            assert [d.rc for d in got] == [0x95], got
            by.publish(topic, b"still here")
            assert by.expect(M.PUBLISH).raw.endswith(b"still here")
        b.check_clean_exit(b.stop())
    finally:
        b.cleanup()


@pytest.mark.coney_only("Coney's limit on user properties (4,096)")
def test_more_than_4096_user_properties_is_disconnect_0x97(mqtt):
    """Each user property becomes an AMQP header entry, forty bytes for
    five on the wire: a PUBLISH with more than 4,096 of them is refused
    with DISCONNECT 0x97 Quota exceeded rather than converted; 4,096 pass."""
    topic = mqtt_topic("uprops-count")
    with mqtt.raw(V5) as by, mqtt.raw(V5) as raw:
        by.connect(mqtt_id("upc-by"), properties={})
        assert by.subscribe(1, [(topic, 0)]) == [0]
        raw.connect(mqtt_id("upc"), properties={})
        ok = [("user_property", ("", ""))] * 4096
        raw.send(M.publish(topic, b"x", qos=1, pid=1, version=V5, properties=ok))
        raw.expect(M.PUBACK)
        assert len(by.expect(M.PUBLISH).props.get("user_property", [])) == 4096
        over = [("user_property", ("", ""))] * 4097
        raw.send(M.publish(topic, b"x", qos=1, pid=2, version=V5, properties=over))
        got = raw.expect_closed(allow=(M.DISCONNECT,))
        assert [d.rc for d in got] == [0x97], got
        _bystander_round_trip(by, topic)


@pytest.mark.coney_only("Coney's config key (mqtt.prefetch)")
def test_retained_messages_on_subscribe_respect_the_inflight_limit(coney_bin, tmp_path):
    """MQTT-3.3.4-9 for retained messages too: a subscription that matches
    more retained QoS 1 messages than may be in flight gets as many as
    the limit, the next one as each is acknowledged, and none twice."""
    conf = tmp_path / "coney.conf"
    conf.write_text("mqtt.prefetch = 2\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        mq = mqtt_target(b)
        base = mqtt_topic("retlim")
        with mq.raw(V4) as pub:
            pub.connect(mqtt_id("retpub"))
            for i in range(5):
                pub.publish("%s/%d" % (base, i), b"r%d" % i, qos=1, retain=True, pid=i + 1)
        with mq.raw(V4) as raw:
            raw.connect(mqtt_id("retsub"))
            assert raw.subscribe(1, [(base + "/+", 1)]) == [1]
            got = [raw.expect(M.PUBLISH), raw.expect(M.PUBLISH)]
            raw.quiet(0.5)                 # two in flight: the limit
            seen = set()
            while got:
                p = got.pop(0)
                assert p.retain and p.qos == 1 and p.topic not in seen, p
                seen.add(p.topic)
                raw.send(M.puback(p.pid))
                if len(seen) + len(got) < 5:
                    got.append(raw.expect(M.PUBLISH))
            assert seen == {"%s/%d" % (base, i) for i in range(5)}
            raw.quiet(0.3)
            raw.alive()
        b.check_clean_exit(b.stop())
    finally:
        b.cleanup()
