"""Raw AMQP 0-9-1 for the tests: a frame builder, a method table and a tiny
blocking client that reads frames with a deadline.

The method layer is data (as in protocol/): METHODS maps (class, method) to a
name and its field types, and one encoder and one decoder walk it. Tests that
need bytes a real client library would never send build them here, and
compare replies with a hexdump on mismatch.
"""

import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8

# Reply codes (AMQP 0-9-1 spec, section "Constants").
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

# name -> (class id, method id, [(field name, type)]); types: octet short long
# longlong shortstr longstr bit table timestamp
_M = {
    "connection.start": (10, 10, [("version_major", "octet"), ("version_minor", "octet"),
                                   ("server_properties", "table"), ("mechanisms", "longstr"),
                                   ("locales", "longstr")]),
    "connection.start-ok": (10, 11, [("client_properties", "table"), ("mechanism", "shortstr"),
                                      ("response", "longstr"), ("locale", "shortstr")]),
    "connection.secure": (10, 20, [("challenge", "longstr")]),
    "connection.secure-ok": (10, 21, [("response", "longstr")]),
    "connection.tune": (10, 30, [("channel_max", "short"), ("frame_max", "long"),
                                  ("heartbeat", "short")]),
    "connection.tune-ok": (10, 31, [("channel_max", "short"), ("frame_max", "long"),
                                     ("heartbeat", "short")]),
    "connection.open": (10, 40, [("virtual_host", "shortstr"), ("capabilities", "shortstr"),
                                  ("insist", "bit")]),
    "connection.open-ok": (10, 41, [("known_hosts", "shortstr")]),
    "connection.close": (10, 50, [("reply_code", "short"), ("reply_text", "shortstr"),
                                   ("class_id", "short"), ("method_id", "short")]),
    "connection.close-ok": (10, 51, []),
    "connection.blocked": (10, 60, [("reason", "shortstr")]),
    "connection.unblocked": (10, 61, []),
    "connection.update-secret": (10, 70, [("new_secret", "longstr"), ("reason", "shortstr")]),
    "connection.update-secret-ok": (10, 71, []),
    "channel.open": (20, 10, [("out_of_band", "shortstr")]),
    "channel.open-ok": (20, 11, [("channel_id", "longstr")]),
    "channel.flow": (20, 20, [("active", "bit")]),
    "channel.flow-ok": (20, 21, [("active", "bit")]),
    "channel.close": (20, 40, [("reply_code", "short"), ("reply_text", "shortstr"),
                                ("class_id", "short"), ("method_id", "short")]),
    "channel.close-ok": (20, 41, []),
    "exchange.declare": (40, 10, [("ticket", "short"), ("exchange", "shortstr"),
                                   ("type", "shortstr"), ("passive", "bit"), ("durable", "bit"),
                                   ("auto_delete", "bit"), ("internal", "bit"),
                                   ("nowait", "bit"), ("arguments", "table")]),
    "exchange.declare-ok": (40, 11, []),
    "exchange.delete": (40, 20, [("ticket", "short"), ("exchange", "shortstr"),
                                  ("if_unused", "bit"), ("nowait", "bit")]),
    "exchange.delete-ok": (40, 21, []),
    "queue.declare": (50, 10, [("ticket", "short"), ("queue", "shortstr"), ("passive", "bit"),
                                ("durable", "bit"), ("exclusive", "bit"),
                                ("auto_delete", "bit"), ("nowait", "bit"),
                                ("arguments", "table")]),
    "queue.declare-ok": (50, 11, [("queue", "shortstr"), ("message_count", "long"),
                                   ("consumer_count", "long")]),
    "queue.bind": (50, 20, [("ticket", "short"), ("queue", "shortstr"), ("exchange", "shortstr"),
                             ("routing_key", "shortstr"), ("nowait", "bit"),
                             ("arguments", "table")]),
    "queue.bind-ok": (50, 21, []),
    "queue.purge": (50, 30, [("ticket", "short"), ("queue", "shortstr"), ("nowait", "bit")]),
    "queue.purge-ok": (50, 31, [("message_count", "long")]),
    "queue.delete": (50, 40, [("ticket", "short"), ("queue", "shortstr"), ("if_unused", "bit"),
                               ("if_empty", "bit"), ("nowait", "bit")]),
    "queue.delete-ok": (50, 41, [("message_count", "long")]),
    "basic.qos": (60, 10, [("prefetch_size", "long"), ("prefetch_count", "short"),
                            ("global", "bit")]),
    "basic.qos-ok": (60, 11, []),
    "basic.consume": (60, 20, [("ticket", "short"), ("queue", "shortstr"),
                                ("consumer_tag", "shortstr"), ("no_local", "bit"),
                                ("no_ack", "bit"), ("exclusive", "bit"), ("nowait", "bit"),
                                ("arguments", "table")]),
    "basic.consume-ok": (60, 21, [("consumer_tag", "shortstr")]),
    "basic.cancel": (60, 30, [("consumer_tag", "shortstr"), ("nowait", "bit")]),
    "basic.cancel-ok": (60, 31, [("consumer_tag", "shortstr")]),
    "basic.publish": (60, 40, [("ticket", "short"), ("exchange", "shortstr"),
                                ("routing_key", "shortstr"), ("mandatory", "bit"),
                                ("immediate", "bit")]),
    "basic.return": (60, 50, [("reply_code", "short"), ("reply_text", "shortstr"),
                               ("exchange", "shortstr"), ("routing_key", "shortstr")]),
    "basic.deliver": (60, 60, [("consumer_tag", "shortstr"), ("delivery_tag", "longlong"),
                                ("redelivered", "bit"), ("exchange", "shortstr"),
                                ("routing_key", "shortstr")]),
    "basic.get": (60, 70, [("ticket", "short"), ("queue", "shortstr"), ("no_ack", "bit")]),
    "basic.get-ok": (60, 71, [("delivery_tag", "longlong"), ("redelivered", "bit"),
                               ("exchange", "shortstr"), ("routing_key", "shortstr"),
                               ("message_count", "long")]),
    "basic.get-empty": (60, 72, [("cluster_id", "shortstr")]),
    "basic.ack": (60, 80, [("delivery_tag", "longlong"), ("multiple", "bit")]),
    "basic.reject": (60, 90, [("delivery_tag", "longlong"), ("requeue", "bit")]),
    "basic.recover": (60, 110, [("requeue", "bit")]),
    "basic.recover-ok": (60, 111, []),
    "basic.nack": (60, 120, [("delivery_tag", "longlong"), ("multiple", "bit"),
                              ("requeue", "bit")]),
    "tx.select": (90, 10, []),
    "tx.select-ok": (90, 11, []),
    "tx.commit": (90, 20, []),
    "tx.commit-ok": (90, 21, []),
    "tx.rollback": (90, 30, []),
    "tx.rollback-ok": (90, 31, []),
    "confirm.select": (85, 10, [("nowait", "bit")]),
    "confirm.select-ok": (85, 11, []),
}
METHODS = {(c, m): (name, fields) for name, (c, m, fields) in _M.items()}


def method_id(name):
    c, m, _ = _M[name]
    return c, m


# ---------------------------------------------------------------- encoding

def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack("!B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!I", len(s)) + s


def _value(v):
    if isinstance(v, bool):
        return b"t" + struct.pack("!B", int(v))
    if isinstance(v, int):
        return b"l" + struct.pack("!q", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, (list, tuple)):
        body = b"".join(_value(x) for x in v)
        return b"A" + struct.pack("!I", len(body)) + body
    if v is None:
        return b"V"
    if isinstance(v, float):
        return b"d" + struct.pack("!d", v)
    raise TypeError(v)


def table(d):
    body = b"".join(shortstr(k) + _value(v) for k, v in (d or {}).items())
    return struct.pack("!I", len(body)) + body


def encode_args(fields, values):
    out = bytearray()
    bits, nbits = 0, 0
    for name, typ in fields:
        v = values.get(name)
        if typ == "bit":
            if v:
                bits |= 1 << nbits
            nbits += 1
            continue
        if nbits:
            out.append(bits)
            bits, nbits = 0, 0
        if typ == "octet":
            out += struct.pack("!B", v or 0)
        elif typ == "short":
            out += struct.pack("!H", v or 0)
        elif typ == "long":
            out += struct.pack("!I", v or 0)
        elif typ == "longlong":
            out += struct.pack("!Q", v or 0)
        elif typ == "shortstr":
            out += shortstr(v or "")
        elif typ == "longstr":
            out += longstr(v or b"")
        elif typ == "table":
            out += table(v)
        else:
            raise ValueError(typ)
    if nbits:
        out.append(bits)
    return bytes(out)


def frame(ftype, channel, payload, end=FRAME_END, size=None):
    """One frame; `end` and `size` may be overridden to build broken frames."""
    if size is None:
        size = len(payload)
    return struct.pack("!BHI", ftype, channel, size) + payload + bytes([end])


def method_payload(name, **values):
    c, m, fields = _M[name]
    return struct.pack("!HH", c, m) + encode_args(fields, values)


def method_frame(channel, name, **values):
    return frame(FRAME_METHOD, channel, method_payload(name, **values))


def header_frame(channel, body_size, class_id=60, flags=0, props=b""):
    return frame(FRAME_HEADER, channel,
                 struct.pack("!HHQH", class_id, 0, body_size, flags) + props)


def body_frame(channel, body):
    return frame(FRAME_BODY, channel, body)


def heartbeat_frame():
    return frame(FRAME_HEARTBEAT, 0, b"")


def hexbytes(text):
    """Bytes from a hex string; whitespace and '|' separators are ignored."""
    return bytes.fromhex("".join(text.replace("|", " ").split()))


def hexdump(data, limit=512):
    data = bytes(data)
    lines = []
    for off in range(0, min(len(data), limit), 16):
        chunk = data[off:off + 16]
        hx = " ".join("%02x" % b for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append("%08x  %-47s  |%s|" % (off, hx, asc))
    if len(data) > limit:
        lines.append("... (%d bytes total)" % len(data))
    return "\n".join(lines) if lines else "(no bytes)"


# ---------------------------------------------------------------- decoding

class Reader:
    def __init__(self, data):
        self.data = data
        self.off = 0

    def take(self, n):
        if n > len(self.data) - self.off:
            raise ValueError("short read: need %d at %d of %d" % (n, self.off, len(self.data)))
        b = self.data[self.off:self.off + n]
        self.off += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def shortstr(self):
        return self.take(self.unpack("!B")).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.unpack("!I"))

    def table(self):
        r = Reader(self.longstr())
        out = {}
        while r.off < len(r.data):
            k = r.shortstr()
            out[k] = r.value()
        return out

    def value(self):
        t = self.take(1)
        simple = {b"t": "!B", b"b": "!b", b"B": "!B", b"s": "!h", b"u": "!H", b"I": "!i",
                  b"i": "!I", b"l": "!q", b"L": "!Q", b"f": "!f", b"d": "!d", b"T": "!Q"}
        if t in simple:
            v = self.unpack(simple[t])
            return bool(v) if t == b"t" else v
        if t == b"S":
            return self.longstr().decode("utf-8", "replace")
        if t == b"x":
            return self.longstr()
        if t == b"F":
            return self.table()
        if t == b"A":
            r = Reader(self.longstr())
            arr = []
            while r.off < len(r.data):
                arr.append(r.value())
            return arr
        if t == b"D":
            scale = self.unpack("!B")
            return (scale, self.unpack("!i"))
        if t == b"V":
            return None
        raise ValueError("unknown field type %r" % t)


def decode_args(fields, data):
    r = Reader(data)
    out = {}
    bits, bitpos = 0, 8
    for name, typ in fields:
        if typ == "bit":
            if bitpos == 8:
                bits, bitpos = r.unpack("!B"), 0
            out[name] = bool(bits & (1 << bitpos))
            bitpos += 1
            continue
        bitpos = 8
        if typ == "octet":
            out[name] = r.unpack("!B")
        elif typ == "short":
            out[name] = r.unpack("!H")
        elif typ == "long":
            out[name] = r.unpack("!I")
        elif typ == "longlong":
            out[name] = r.unpack("!Q")
        elif typ == "shortstr":
            out[name] = r.shortstr()
        elif typ == "longstr":
            out[name] = r.longstr()
        elif typ == "table":
            out[name] = r.table()
    return out


class Frame:
    def __init__(self, ftype, channel, payload, raw):
        self.type = ftype
        self.channel = channel
        self.payload = payload
        self.raw = raw
        self.method = None
        self.args = None
        if ftype == FRAME_METHOD and len(payload) >= 4:
            c, m = struct.unpack("!HH", payload[:4])
            name, fields = METHODS.get((c, m), ("%d.%d" % (c, m), None))
            self.method = name
            self.args = decode_args(fields, payload[4:]) if fields is not None else {}

    def __repr__(self):
        if self.method:
            return "<Frame ch=%d %s %r>" % (self.channel, self.method, self.args)
        return "<Frame type=%d ch=%d %d bytes>" % (self.type, self.channel, len(self.payload))


class ProtocolMismatch(AssertionError):
    pass


class RawConnection:
    """A blocking AMQP peer over a plain socket. Every read has a deadline."""

    def __init__(self, host, port, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.received = b""  # everything read, for hexdumps
        self.server_properties = None
        self.tune = None
        self.frame_max = 131072

    # -- bytes
    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from broker within the deadline; received so far:\n"
                               + hexdump(self.received[-256:]))
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from broker within the deadline; received so far:\n"
                               + hexdump(self.received[-256:]))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("broker closed the socket; received so far:\n"
                           + hexdump(self.received[-256:]))
        self.buf += chunk
        self.received += chunk

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_eof(self, timeout=None):
        """Read until the peer closes; returns what arrived. Raises on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self._fill(deadline)
            except EOFError:
                out, self.buf = self.buf, b""
                return out

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < 7:
            self._fill(deadline)
        ftype, channel, size = struct.unpack("!BHI", self.buf[:7])
        while len(self.buf) < 8 + size:
            self._fill(deadline)
        raw = self.buf[:8 + size]
        self.buf = self.buf[8 + size:]
        if raw[-1] != FRAME_END:
            raise ProtocolMismatch("broker sent a frame without frame-end:\n" + hexdump(raw))
        return Frame(ftype, channel, raw[7:-1], raw)

    def recv_non_heartbeat(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            f = self.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
            if f.type != FRAME_HEARTBEAT:
                return f

    # -- methods
    def send_method(self, channel, name, **values):
        self.send(method_frame(channel, name, **values))

    def expect(self, channel, name, timeout=None):
        f = self.recv_non_heartbeat(timeout)
        if f.type != FRAME_METHOD or f.method != name or f.channel != channel:
            raise ProtocolMismatch("expected %s on channel %d, got %r\n%s"
                                   % (name, channel, f, hexdump(f.raw)))
        return f.args

    def rpc(self, channel, name, reply, **values):
        self.send_method(channel, name, **values)
        return self.expect(channel, reply)

    def publish(self, channel, exchange, routing_key, body, mandatory=False,
                immediate=False, flags=0, props=b""):
        data = method_frame(channel, "basic.publish", exchange=exchange,
                            routing_key=routing_key, mandatory=mandatory,
                            immediate=immediate)
        data += header_frame(channel, len(body), flags=flags, props=props)
        step = self.frame_max - 8
        for off in range(0, len(body), step):
            data += body_frame(channel, body[off:off + step])
        self.send(data)

    def read_content(self, timeout=None):
        """After a deliver/get-ok/return: read the header and body frames."""
        h = self.recv_non_heartbeat(timeout)
        assert h.type == FRAME_HEADER, "expected content header, got %r" % h
        size = struct.unpack("!Q", h.payload[4:12])[0]
        body = b""
        while len(body) < size:
            b = self.recv_non_heartbeat(timeout)
            assert b.type == FRAME_BODY, "expected body frame, got %r" % b
            body += b.payload
        return h, body

    # -- handshake
    def start(self, header=PROTOCOL_HEADER):
        self.send(header)
        f = self.recv_frame()
        if f.method != "connection.start":
            raise ProtocolMismatch("expected connection.start, got %r\n%s" % (f, hexdump(f.raw)))
        self.server_properties = f.args["server_properties"]
        return f.args

    def handshake(self, user="guest", password="guest", vhost="/", heartbeat=0,
                  frame_max=None, channel_max=None, client_properties=None,
                  mechanism="PLAIN"):
        self.start()
        props = client_properties or {
            "product": "coney-tests",
            "capabilities": {"authentication_failure_close": True,
                             "consumer_cancel_notify": True,
                             "publisher_confirms": True, "basic.nack": True,
                             "connection.blocked": True},
        }
        if mechanism == "AMQPLAIN":
            # a field table without its 4-byte length prefix
            response = table({"LOGIN": user, "PASSWORD": password})[4:]
        else:
            response = b"\0" + user.encode() + b"\0" + password.encode()
        self.send_method(0, "connection.start-ok", client_properties=props,
                         mechanism=mechanism, response=response, locale="en_US")
        f = self.recv_non_heartbeat()
        if f.method != "connection.tune":
            return f  # connection.close on failed login
        self.tune = f.args
        fm = frame_max if frame_max is not None else f.args["frame_max"]
        cm = channel_max if channel_max is not None else f.args["channel_max"]
        self.frame_max = fm or 131072
        self.send_method(0, "connection.tune-ok", channel_max=cm, frame_max=fm,
                         heartbeat=heartbeat)
        self.send_method(0, "connection.open", virtual_host=vhost)
        f = self.recv_non_heartbeat()
        return f  # connection.open-ok, or connection.close

    def open(self, **kw):
        f = self.handshake(**kw)
        if f.method != "connection.open-ok":
            raise ProtocolMismatch("handshake failed: %r" % f)
        return self

    def open_channel(self, channel=1):
        return self.rpc(channel, "channel.open", "channel.open-ok")

    def expect_connection_close(self, timeout=None):
        """Read until connection.close arrives (skipping heartbeats and stray
        frames), answer close-ok, and check that the broker then closes the
        socket. Returns (args, frames skipped)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        skipped = []
        while True:
            f = self.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
            if f.method == "connection.close" and f.channel == 0:
                break
            if f.type != FRAME_HEARTBEAT:
                skipped.append(f)
        try:
            self.send_method(0, "connection.close-ok")
        except OSError:
            pass
        return f.args, skipped

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
