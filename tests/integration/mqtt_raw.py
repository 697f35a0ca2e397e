"""Raw MQTT for the tests: packet builders, a packet reader with deadlines,
and a small paho-mqtt wrapper that turns callbacks into waits.

Packets are built from fields (connect(), publish(), ...) or from hex
(hexbytes), so a test can send what no client library would. Replies are
read one packet at a time with a deadline and compared byte for byte, with
a hexdump of both sides on mismatch. MQTT 5 properties are data: PROPS maps
each property id to its name and wire type, and one encoder and one decoder
walk it.

Versions are the CONNECT protocol level: 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1)
and 5 (5.0). Builders take `version` where the wire format differs.
"""

import queue
import socket
import struct
import threading
import time
from collections import namedtuple

from coney_raw import hexbytes, hexdump  # noqa: F401 (hexbytes: re-exported for the tests)

V31, V311, V5 = 3, 4, 5

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
              7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
              12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# MQTT 5 property id -> (name, type); types: byte u16 u32 varint str bin pair
PROPS = {
    0x01: ("payload_format", "byte"),
    0x02: ("message_expiry", "u32"),
    0x03: ("content_type", "str"),
    0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"),
    0x0B: ("subscription_id", "varint"),
    0x11: ("session_expiry", "u32"),
    0x12: ("assigned_client_id", "str"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("auth_method", "str"),
    0x16: ("auth_data", "bin"),
    0x17: ("request_problem_info", "byte"),
    0x18: ("will_delay", "u32"),
    0x19: ("request_response_info", "byte"),
    0x1A: ("response_info", "str"),
    0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_sub_available", "byte"),
    0x29: ("subscription_id_available", "byte"),
    0x2A: ("shared_sub_available", "byte"),
}
PROP_IDS = {name: (pid, t) for pid, (name, t) in PROPS.items()}
# Properties that may appear more than once; decoded as lists.
MULTI = ("user_property", "subscription_id")


# ---------------------------------------------------------------- encoding

def varint(n):
    assert 0 <= n <= 268435455, n
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    """A UTF-8 string (or bytes) with its two-octet length."""
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def props(p=None):
    """MQTT 5 property block from a dict {name: value} or a list of (name,
    value) pairs (for repeats and chosen order); user_property values are
    (key, value) pairs, a list of them under the dict form."""
    items = []
    for name, value in (p.items() if isinstance(p, dict) else (p or [])):
        if name in MULTI and isinstance(value, list):
            items += [(name, v) for v in value]
        else:
            items.append((name, value))
    out = bytearray()
    for name, value in items:
        pid, t = PROP_IDS[name]
        out += varint(pid)
        if t == "byte":
            out += struct.pack("!B", value)
        elif t == "u16":
            out += struct.pack("!H", value)
        elif t == "u32":
            out += struct.pack("!I", value)
        elif t == "varint":
            out += varint(value)
        elif t in ("str", "bin"):
            out += mstr(value)
        elif t == "pair":
            out += mstr(value[0]) + mstr(value[1])
    return varint(len(out)) + bytes(out)


def packet(ptype, flags, body, remaining=None):
    """A control packet; `remaining` overrides the computed remaining length
    (to lie about it)."""
    return bytes([(ptype << 4) | flags]) + varint(len(body) if remaining is None
                                                   else remaining) + body


def connect(client_id="", version=V311, clean=True, keepalive=60, username=None,
            password=None, will=None, properties=None, flags_extra=0, proto_name=None):
    """CONNECT. will: dict(topic, payload, qos=0, retain=False, properties=None).
    flags_extra is OR-ed into the connect flags (reserved bit 0 and such)."""
    if proto_name is None:
        proto_name = "MQIsdp" if version == V31 else "MQTT"
    flags = (0x02 if clean else 0) | flags_extra
    payload = mstr(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == V5:
            payload += props(will.get("properties"))
        payload += mstr(will["topic"]) + mstr(will.get("payload", b""))
    if username is not None:
        flags |= 0x80
        payload += mstr(username)
    if password is not None:
        flags |= 0x40
        payload += mstr(password)
    vh = mstr(proto_name) + struct.pack("!BBH", version, flags, keepalive)
    if version == V5:
        vh += props(properties)
    return packet(CONNECT, 0, vh + payload)


def connack(rc=0, session_present=False, version=V311, properties=None):
    body = struct.pack("!BB", 1 if session_present else 0, rc)
    if version == V5:
        body += props(properties)
    return packet(CONNACK, 0, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, version=V311,
            properties=None):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | ((qos & 3) << 1) | (0x01 if retain else 0)
    body = mstr(topic)
    if qos:
        body += struct.pack("!H", pid if pid is not None else 1)
    if version == V5:
        body += props(properties)
    return packet(PUBLISH, flags, body + payload)


def _ack(ptype, flags, pid, rc, version, properties):
    body = struct.pack("!H", pid)
    if version == V5 and (rc or properties):
        body += struct.pack("!B", rc)
        if properties:
            body += props(properties)
    return packet(ptype, flags, body)


def puback(pid, rc=0, version=V311, properties=None):
    return _ack(PUBACK, 0, pid, rc, version, properties)


def pubrec(pid, rc=0, version=V311, properties=None):
    return _ack(PUBREC, 0, pid, rc, version, properties)


def pubrel(pid, rc=0, version=V311, properties=None):
    return _ack(PUBREL, 2, pid, rc, version, properties)


def pubcomp(pid, rc=0, version=V311, properties=None):
    return _ack(PUBCOMP, 0, pid, rc, version, properties)


def subscribe(pid, filters, version=V311, properties=None, flags=2):
    """filters: [(filter, options)] where options is the requested QoS, or
    for 5.0 the whole options octet (qos | no_local<<2 | rap<<3 | rh<<4)."""
    body = struct.pack("!H", pid)
    if version == V5:
        body += props(properties)
    for f, opt in filters:
        body += mstr(f) + struct.pack("!B", opt)
    return packet(SUBSCRIBE, flags, body)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return qos | (4 if no_local else 0) | (8 if retain_as_published else 0) | (retain_handling << 4)


def suback(pid, codes, version=V311, properties=None):
    body = struct.pack("!H", pid)
    if version == V5:
        body += props(properties)
    return packet(SUBACK, 0, body + bytes(codes))


def unsubscribe(pid, filters, version=V311, properties=None, flags=2):
    body = struct.pack("!H", pid)
    if version == V5:
        body += props(properties)
    for f in filters:
        body += mstr(f)
    return packet(UNSUBSCRIBE, flags, body)


def pingreq():
    return b"\xc0\x00"


PINGRESP_BYTES = b"\xd0\x00"


def disconnect(rc=0, version=V311, properties=None):
    if version == V5 and (rc or properties):
        return packet(DISCONNECT, 0, struct.pack("!B", rc) + (props(properties) if properties
                                                              else b""))
    return b"\xe0\x00"


# ---------------------------------------------------------------- decoding

class Decoder:
    def __init__(self, data):
        self.data = bytes(data)
        self.off = 0

    def left(self):
        return len(self.data) - self.off

    def take(self, n):
        if n > self.left():
            raise AssertionError("packet too short: need %d at %d of %d\n%s"
                                 % (n, self.off, len(self.data), hexdump(self.data)))
        b = self.data[self.off:self.off + n]
        self.off += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        n, shift = 0, 0
        for i in range(4):
            b = self.u8()
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
        raise AssertionError("variable byte integer longer than 4 octets")

    def bin(self):
        return self.take(self.u16())

    def str(self):
        return self.bin().decode("utf-8")

    def props(self):
        n = self.varint()
        end = self.off + n
        out = {}
        while self.off < end:
            pid = self.varint()
            if pid not in PROPS:
                raise AssertionError("unknown property id 0x%02x" % pid)
            name, t = PROPS[pid]
            if t == "byte":
                v = self.u8()
            elif t == "u16":
                v = self.u16()
            elif t == "u32":
                v = self.u32()
            elif t == "varint":
                v = self.varint()
            elif t == "str":
                v = self.str()
            elif t == "bin":
                v = self.bin()
            else:
                v = (self.str(), self.str())
            if name in MULTI:
                out.setdefault(name, []).append(v)
            else:
                assert name not in out, "property %s appears twice" % name
                out[name] = v
        assert self.off == end, "property block overruns its length"
        return out


class Packet:
    """One control packet read from the wire; decoded fields as attributes
    (see decode())."""

    def __init__(self, raw, ptype, flags, body):
        self.raw = raw
        self.type = ptype
        self.flags = flags
        self.body = body

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "type%d" % self.type)

    def decode(self, version=V311):
        """Fills in, by type: CONNACK session_present rc props; PUBLISH topic
        payload qos retain dup pid props; PUBACK..PUBCOMP pid rc props;
        SUBACK/UNSUBACK pid codes props; DISCONNECT rc props."""
        d = Decoder(self.body)
        self.props = {}
        if self.type == CONNACK:
            self.session_present = bool(d.u8() & 1)
            self.rc = d.u8()
            if version == V5:
                self.props = d.props()
        elif self.type == PUBLISH:
            self.dup = bool(self.flags & 8)
            self.qos = (self.flags >> 1) & 3
            self.retain = bool(self.flags & 1)
            self.topic = d.str()
            self.pid = d.u16() if self.qos else None
            if version == V5:
                self.props = d.props()
            self.payload = d.take(d.left())
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = d.u16()
            self.rc = d.u8() if d.left() else 0
            if version == V5 and d.left():
                self.props = d.props()
        elif self.type in (SUBACK, UNSUBACK):
            self.pid = d.u16()
            if version == V5:
                self.props = d.props()
            self.codes = list(d.take(d.left()))
        elif self.type == DISCONNECT:
            self.rc = d.u8() if d.left() else 0
            if d.left():
                self.props = d.props()
        return self

    def __repr__(self):
        return "<%s flags=%x %s>" % (self.name, self.flags, self.raw.hex())


class Closed(Exception):
    """The peer closed the connection (EOF or reset)."""


class MqttSocket:
    """A blocking MQTT connection that reads one packet at a time with a
    deadline. Everything received is kept in `log` for failure messages."""

    def __init__(self, host, port, timeout=10.0, version=V311):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.version = version
        self.buf = b""
        self.log = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no packet within the deadline; received so far:\n"
                               + hexdump(self.log))
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet within the deadline; received so far:\n"
                               + hexdump(self.log))
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed("connection closed by the peer")
        self.buf += chunk
        self.log += chunk

    def read(self, timeout=None):
        """The next packet, decoded for self.version. Raises Closed on EOF
        and TimeoutError when nothing complete arrives in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                n, shift, i = 0, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    n |= (b & 0x7F) << shift
                    shift += 7
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + n:
                    raw = self.buf[:i + n]
                    self.buf = self.buf[i + n:]
                    p = Packet(raw, raw[0] >> 4, raw[0] & 15, raw[i:])
                    return p.decode(self.version)
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        p = self.read(timeout)
        assert p.type == ptype, "expected %s, got %r" % (TYPE_NAMES[ptype], p)
        return p

    def expect_bytes(self, want, timeout=None, what="reply"):
        """The next packet must be exactly `want`."""
        try:
            p = self.read(timeout)
        except (Closed, TimeoutError) as e:
            raise AssertionError("expected %s:\n%s\nbut %s" % (what, hexdump(want), e))
        assert p.raw == want, "%s differs\nexpected:\n%s\ngot:\n%s" % (
            what, hexdump(want), hexdump(p.raw))
        return p

    def expect_closed(self, timeout=None, allow=()):
        """Reads until EOF; packets of the types in `allow` may come first
        (returned as a list). Anything else, or no EOF in time, fails."""
        got = []
        while True:
            try:
                p = self.read(timeout)
            except Closed:
                return got
            except TimeoutError:
                raise AssertionError("connection still open after %.1fs; received:\n%s"
                                     % (self.timeout if timeout is None else timeout,
                                        hexdump(self.log)))
            if p.type not in allow:
                raise AssertionError("expected the connection to close, got %r" % p)
            got.append(p)

    def quiet(self, seconds):
        """Asserts that nothing arrives (and the connection stays open) for
        `seconds`."""
        try:
            p = self.read(seconds)
        except TimeoutError:
            return
        except Closed:
            raise AssertionError("connection closed; received:\n" + hexdump(self.log))
        raise AssertionError("expected nothing, got %r" % p)

    def alive(self, timeout=None):
        """PINGREQ gets PINGRESP: the connection is open and in sync."""
        self.send(pingreq())
        self.expect_bytes(PINGRESP_BYTES, timeout, "PINGRESP")

    # -- conveniences over the builders
    def connect(self, client_id, rc=0, **kw):
        """CONNECT and read the CONNACK; asserts its return/reason code."""
        kw.setdefault("version", self.version)
        self.send(connect(client_id, **kw))
        p = self.expect(CONNACK)
        assert p.rc == rc, "CONNACK code 0x%02x, expected 0x%02x (%r)" % (p.rc, rc, p)
        return p

    def subscribe(self, pid, filters, properties=None):
        self.send(subscribe(pid, filters, self.version, properties))
        p = self.expect(SUBACK)
        assert p.pid == pid, p
        return p.codes

    def publish(self, topic, payload=b"", qos=0, retain=False, pid=None, dup=False,
                properties=None):
        """PUBLISH and, for QoS 1, read the PUBACK; for QoS 2, run the whole
        PUBREC/PUBREL/PUBCOMP exchange. Returns the last packet read."""
        self.send(publish(topic, payload, qos, retain, dup, pid, self.version, properties))
        if qos == 1:
            p = self.expect(PUBACK)
            assert p.pid == pid, p
            return p
        if qos == 2:
            p = self.expect(PUBREC)
            assert p.pid == pid, p
            self.send(pubrel(pid, version=self.version))
            p = self.expect(PUBCOMP)
            assert p.pid == pid, p
            return p
        return None

    def disconnect(self, rc=0, properties=None):
        self.send(disconnect(rc, self.version, properties))
        self.close()


# ---------------------------------------------------------------- paho-mqtt

Message = namedtuple("Message", "topic payload qos retain dup mid props")


class PahoClient:
    """paho-mqtt 1.6 with waits: connect() returns after CONNACK, subscribe()
    after SUBACK, publish() after the QoS flow completes. Received messages
    queue up for get()/none(). The network loop is a thread of our own that
    stops when the connection drops: paho's loop_start would reconnect, which
    would disturb takeover and will tests."""

    def __init__(self, host, port, client_id="", version=V311, clean=True, timeout=10.0,
                 username=None, password=None, will=None, keepalive=60,
                 connect_props=None, clean_start=None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        self.mqtt, self.Properties, self.PacketTypes = mqtt, Properties, PacketTypes
        self.host, self.port, self.version, self.timeout = host, port, version, timeout
        self.keepalive = keepalive
        proto = {V31: mqtt.MQTTv31, V311: mqtt.MQTTv311, V5: mqtt.MQTTv5}[version]
        if version == V5:
            self.c = mqtt.Client(client_id=client_id, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=proto)
        self.clean_start = clean if clean_start is None else clean_start
        self.connect_props = connect_props
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            wp = None
            if will.get("properties"):
                wp = self.props(PacketTypes.WILLMESSAGE, will["properties"])
            self.c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                            will.get("retain", False), properties=wp)
        self.messages = queue.Queue()
        self.cond = threading.Condition()
        self.connack = None        # (rc, session_present, props)
        self.subacks = {}          # mid -> [codes]
        self.unsubacks = {}        # mid -> [codes] (5.0) or []
        self.published = set()     # mids whose flow completed
        self.disconnected = None   # rc/reason of the disconnect, once it happened
        self._stop = False
        self._thread = None
        c = self.c
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect

    # -- properties
    def props(self, ptype, d):
        """paho Properties from a dict of paho attribute names
        (UserProperty takes a list of pairs)."""
        p = self.Properties(ptype)
        for k, v in d.items():
            setattr(p, k, v)
        return p

    # -- callbacks (network thread)
    def _on_connect(self, c, u, flags, rc, properties=None):
        with self.cond:
            code = rc.value if hasattr(rc, "value") else rc
            self.connack = (code, bool(flags.get("session present")), properties)
            self.cond.notify_all()

    def _on_message(self, c, u, m):
        self.messages.put(Message(m.topic, m.payload, m.qos, bool(m.retain), bool(m.dup),
                                  m.mid, getattr(m, "properties", None)))

    def _on_subscribe(self, c, u, mid, granted, properties=None):
        with self.cond:
            self.subacks[mid] = [g.value if hasattr(g, "value") else g for g in granted]
            self.cond.notify_all()

    def _on_unsubscribe(self, c, u, mid, properties=None, codes=None):
        with self.cond:
            if codes is None:
                codes = []
            elif not isinstance(codes, list):
                codes = [codes]
            self.unsubacks[mid] = [x.value if hasattr(x, "value") else x for x in codes]
            self.cond.notify_all()

    def _on_publish(self, c, u, mid):
        with self.cond:
            self.published.add(mid)
            self.cond.notify_all()

    def _on_disconnect(self, c, u, rc, properties=None):
        with self.cond:
            self.disconnected = rc.value if hasattr(rc, "value") else rc
            self.cond.notify_all()

    def _loop(self):
        while not self._stop:
            try:
                rc = self.c.loop(timeout=0.05)
            except OSError:
                # paho's disconnect() writes from the caller's thread and
                # closes the socket under this one's recv(): gone all the same
                rc = self.mqtt.MQTT_ERR_CONN_LOST
            if rc != 0:
                with self.cond:
                    if self.disconnected is None:
                        self.disconnected = rc
                    self.cond.notify_all()
                return

    def _wait(self, pred, what, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s" % what)
                self.cond.wait(min(left, 0.05))

    # -- API
    def connect(self, expect_rc=0):
        """Connects and waits for CONNACK; returns (rc, session_present,
        props). Asserts rc == expect_rc unless expect_rc is None."""
        kw = {}
        if self.version == V5:
            kw["clean_start"] = self.clean_start
            if self.connect_props:
                kw["properties"] = self.props(self.PacketTypes.CONNECT, self.connect_props)
        self.c.connect(self.host, self.port, self.keepalive, **kw)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self._wait(lambda: self.connack is not None or self.disconnected is not None,
                   "CONNACK")
        assert self.connack is not None, "connection dropped before CONNACK (%r)" % (
            self.disconnected,)
        if expect_rc is not None:
            assert self.connack[0] == expect_rc, "CONNACK code %r, expected %r" % (
                self.connack[0], expect_rc)
        return self.connack

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """topic: a filter, or a list of (filter, qos or SubscribeOptions).
        Returns the SUBACK codes."""
        kw = {}
        if properties:
            kw["properties"] = self.props(self.PacketTypes.SUBSCRIBE, properties)
        if options is not None:
            kw["options"] = options
        else:
            kw["qos"] = qos
        rc, mid = self.c.subscribe(topic, **kw)
        assert rc == 0, "subscribe failed locally: %r" % rc
        return self._wait(lambda: self.subacks.get(mid), "SUBACK")

    def options(self, qos=0, no_local=False, retain_as_published=False, retain_handling=0):
        from paho.mqtt.subscribeoptions import SubscribeOptions
        return SubscribeOptions(qos=qos, noLocal=no_local,
                                retainAsPublished=retain_as_published,
                                retainHandling=retain_handling)

    def unsubscribe(self, topic, properties=None):
        kw = {}
        if properties:
            kw["properties"] = self.props(self.PacketTypes.UNSUBSCRIBE, properties)
        rc, mid = self.c.unsubscribe(topic, **kw)
        assert rc == 0, rc
        self._wait(lambda: mid in self.unsubacks, "UNSUBACK")
        return self.unsubacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True):
        kw = {}
        if properties:
            kw["properties"] = self.props(self.PacketTypes.PUBLISH, properties)
        info = self.c.publish(topic, payload, qos, retain, **kw)
        assert info.rc == 0, "publish failed locally: %r" % info.rc
        if wait:
            self._wait(lambda: info.mid in self.published, "publish of mid %d" % info.mid)
        return info.mid

    def get(self, timeout=None, what="a message"):
        try:
            return self.messages.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise AssertionError("timed out waiting for %s" % what)

    def none(self, seconds=0.5):
        """Asserts no message arrives within `seconds`."""
        try:
            m = self.messages.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %r" % (m,))

    def wait_disconnected(self, timeout=None):
        self._wait(lambda: self.disconnected is not None, "disconnect", timeout)
        return self.disconnected

    def disconnect(self):
        """A clean DISCONNECT, then stop the thread."""
        if self.disconnected is None:
            self.c.disconnect()
            try:
                self._wait(lambda: self.disconnected is not None, "disconnect", 5)
            except AssertionError:
                pass
        self.stop()

    def stop(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def drain(client, seconds=0.3):
    """Messages that arrive within `seconds` (for counting)."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            out.append(client.messages.get(timeout=left))
        except queue.Empty:
            return out
