"""Helpers shared by the integration tests: broker process control, pika
connections with timeouts, unique names, and waiting for asynchronous
events (broker-initiated channel closes, returns, cancels) with a deadline."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid

import pika
import pytest
import pika.exceptions

SANITIZED = bool(os.environ.get("CONEY_SANITIZED"))
# Generous deadlines: the ASan+UBSan build is several times slower.
SLOW = 3.0 if SANITIZED else 1.0
TIMEOUT = 10.0 * SLOW

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def uname(prefix="t"):
    """A queue/exchange name no other test uses."""
    return "coney-test.%s.%s" % (prefix, uuid.uuid4().hex[:12])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def closed_by_peer(s, within):
    """True if the other end closes socket s (end of stream, or a reset)
    within `within` seconds; what it sends before that (heartbeats, say)
    is read and dropped."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True


def wait_for(predicate, timeout=TIMEOUT, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Broker:
    """A broker under test: host/port always; process, log and data dir when
    the tests started it (None when CONEY_TEST_TARGET points elsewhere)."""

    def __init__(self, host, port, proc=None, log_path=None, data_dir=None, workdir=None,
                 mqtt_port=None, http_port=None, prom_port=None):
        self.host = host
        self.port = port
        self.mqtt_port = mqtt_port  # None: no MQTT listener (a target, or --mqtt-port 0)
        self.http_port = http_port  # the management API; None: not known or off
        self.prom_port = prom_port  # Prometheus metrics; None: not known or off
        self.proc = proc
        self.log_path = log_path
        self.data_dir = data_dir
        self.workdir = workdir
        self.stopped = False

    @property
    def controlled(self):
        return self.proc is not None

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_tail(self, lines=60):
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self):
        return self.proc is None or self.proc.poll() is None

    def sanitizer_report(self):
        log = self.log()
        for m in SANITIZER_MARKERS:
            i = log.find(m)
            if i >= 0:
                return log[max(0, i - 200):i + 3000]
        return None

    def params(self, **kw):
        return connection_params(self.host, self.port, **kw)

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the process and wait; returns its exit code."""
        if self.proc is None or self.stopped:
            return self.proc.returncode if self.proc else None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout or 15 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("broker did not exit within %.0fs of %s\n--- log tail ---\n%s"
                                 % (timeout or 15 * SLOW, signal.Signals(sig).name,
                                    self.log_tail()))

    def check_clean_exit(self, rc):
        report = self.sanitizer_report()
        assert report is None, "sanitizer report in broker log:\n" + report
        assert rc == 0, "broker exited with %r\n--- log tail ---\n%s" % (rc, self.log_tail())

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.workdir and not os.environ.get("CONEY_KEEP_DATA"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def _flag_port(extra, flag, pass_flag, args, taken):
    """The port for a listener flag: the one extra_args chose (None for 0),
    or a free one added to args, distinct from those in taken (free_port
    may hand out the same port twice in a row); None when the config file
    decides."""
    if not pass_flag:
        return None
    if flag in extra:
        return int(extra[extra.index(flag) + 1]) or None
    p = free_port()
    while p in taken:
        p = free_port()
    taken.add(p)
    args += [flag, str(p)]
    return p


def start_broker(binary, extra_args=None, port=None, use_port_flag=True, env=None,
                 mqtt_port_flag=True, http_port_flag=True):
    """Start CONEY_BIN on a free port with its own data dir and log file and
    wait until the port accepts connections. The MQTT, management and
    Prometheus listeners get free ports of their own too (Broker.mqtt_port,
    .http_port, .prom_port), passed even when the AMQP port comes from a
    config file, so that no two brokers of the suite meet on 1883 or 15672;
    extra_args may choose them instead."""
    workdir = tempfile.mkdtemp(prefix="coney-it-")
    data_dir = os.path.join(workdir, "data")
    os.mkdir(data_dir)
    log_path = os.path.join(workdir, "coney.log")
    port = port or free_port()
    args = [binary]
    if use_port_flag:
        args += ["--port", str(port)]
    extra = list(extra_args or [])
    taken = {port}
    mqtt_port = _flag_port(extra, "--mqtt-port", mqtt_port_flag, args, taken)
    http_port = _flag_port(extra, "--management-port", http_port_flag, args, taken)
    prom_port = _flag_port(extra, "--prometheus-port", http_port_flag, args, taken)
    args += ["--data-dir", data_dir] + list(extra_args or [])
    penv = dict(os.environ)
    penv.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    penv.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    penv.update(env or {})
    logf = open(log_path, "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            cwd=workdir, env=penv)
    logf.close()
    b = Broker("127.0.0.1", port, proc, log_path, data_dir, workdir, mqtt_port,
               http_port, prom_port)
    for p in (port, mqtt_port, http_port, prom_port):
        if p is not None and not wait_port("127.0.0.1", p, 20 * SLOW, proc):
            rc = proc.poll()
            tail = b.log_tail()
            b.cleanup()
            raise AssertionError("broker %s did not accept on port %d (exit %r)\n--- log ---\n%s"
                                 % (" ".join(args), p, rc, tail))
    return b


def connection_params(host, port, user="guest", password="guest", vhost="/", **kw):
    kw.setdefault("socket_timeout", TIMEOUT)
    kw.setdefault("stack_timeout", 3 * TIMEOUT)
    kw.setdefault("blocked_connection_timeout", 3 * TIMEOUT)
    kw.setdefault("connection_attempts", 1)
    return pika.ConnectionParameters(host=host, port=port, virtual_host=vhost,
                                     credentials=pika.PlainCredentials(user, password),
                                     **kw)


def channel_close_reason(ch, timeout=TIMEOUT):
    """Wait until the broker closes `ch`; returns pika's ChannelClosedByBroker
    (reply_code, reply_text). Fails if the channel stays open."""
    deadline = time.monotonic() + timeout
    while not ch.is_closed:
        if time.monotonic() >= deadline:
            raise AssertionError("channel %d still open after %.1fs" % (ch.channel_number, timeout))
        try:
            ch.connection.process_data_events(time_limit=0.05)
        except pika.exceptions.ChannelClosedByBroker as e:
            return e
    reason = ch._closing_reason
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker), \
        "channel closed, but not by the broker: %r" % (reason,)
    return reason


def connection_close_reason(conn, timeout=TIMEOUT):
    """Wait until the broker closes `conn`; returns ConnectionClosedByBroker."""
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() >= deadline:
            raise AssertionError("connection still open after %.1fs" % timeout)
        try:
            conn.process_data_events(time_limit=0.05)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e
        except pika.exceptions.StreamLostError as e:
            raise AssertionError("connection lost without connection.close: %r" % (e,))
        except pika.exceptions.ChannelClosedByBroker:
            continue
        if conn.is_closed:
            raise AssertionError("connection closed without ConnectionClosedByBroker")


def assert_closed_with(exc, code, text_prefix=None):
    assert exc.reply_code == code, "expected reply code %d, got %d %r" % (
        code, exc.reply_code, exc.reply_text)
    if text_prefix is not None:
        assert exc.reply_text.startswith(text_prefix), \
            "reply text %r does not start with %r" % (exc.reply_text, text_prefix)


def drain(conn, seconds):
    """Let the connection process events for a while (deliveries, returns)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=min(0.05, max(0, deadline - time.monotonic())))


def pump_until(conn, predicate, timeout=TIMEOUT, what="event"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        conn.process_data_events(time_limit=0.05)


def get_one(ch, queue, auto_ack=False, timeout=TIMEOUT):
    """basic.get with retries until a message is there (routing may lag a
    publish that went out on another channel)."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        if time.monotonic() >= deadline:
            raise AssertionError("queue %r stayed empty for %.1fs" % (queue, timeout))
        time.sleep(0.02)


def queue_exists(conn, queue):
    """Passive declare on a throwaway channel; True if the queue exists
    (405: it exists, exclusive to another connection)."""
    ch = conn.channel()
    try:
        ch.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code in (404, 405), e
        return e.reply_code == 405
    ch.close()
    return True


def message_count(conn, queue):
    ch = conn.channel()
    n = ch.queue_declare(queue, passive=True).method.message_count
    ch.close()
    return n


def server_product(broker):
    """(product, version tuple) from connection.start, via a raw socket."""
    from coney_raw import RawConnection
    with RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.start()
        props = raw.server_properties
    product = props.get("product", "")
    ver = []
    for part in str(props.get("version", "0")).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        ver.append(int(digits or 0))
    return product, tuple(ver)


def skip_if_rabbitmq_before(rabbitmq, version, why):
    """Skip a test whose requirement follows a newer RabbitMQ than the one
    the suite is being validated against."""
    if rabbitmq is not None and rabbitmq[1] < version:
        pytest.skip("RabbitMQ %s differs here: %s" % (".".join(map(str, rabbitmq[1])), why))


# ------------------------------------------------------------ durable state
# Restarting a broker on the same data dir and port, killing it, reading its
# memory. These mutate the Broker in place (new process, same everything
# else), so a fixture that holds it still stops and cleans up the live one.

def kill_broker(b):
    """SIGKILL the broker and reap it; nothing is flushed, nothing runs."""
    assert b.controlled, "kill_broker needs a broker the tests started"
    rc = b.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL, "broker exited with %r before SIGKILL\n--- log tail ---\n%s" % (
        rc, b.log_tail())


def start_again(b, wait=True, note="start again"):
    """Start the command line b was started with (same port, data dir,
    config) after it has exited; its log is appended to. Returns the
    seconds from spawn until the port accepted, or None with wait=False."""
    assert b.controlled and b.proc.poll() is not None, "start_again: broker still running"
    args = list(b.proc.args)
    penv = dict(os.environ)
    penv.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    penv.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    logf = open(b.log_path, "ab")
    logf.write(("==== coney-tests: %s ====\n" % note).encode())
    logf.flush()
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            cwd=b.workdir, env=penv)
    logf.close()
    b.proc = proc
    b.stopped = False
    if not wait:
        return None
    for p in (b.port, b.mqtt_port, b.http_port, b.prom_port):
        if p is not None and not wait_port(b.host, p, 60 * SLOW, proc):
            raise AssertionError("broker did not accept on port %d after %s (exit %r)\n"
                                 "--- log ---\n%s" % (p, note, proc.poll(), b.log_tail()))
    return time.monotonic() - t0


def restart_broker(b, sig=signal.SIGTERM, wait=True):
    """Stop b with sig and start it again on the same data dir and port.
    SIGTERM must end in a clean exit (0, no sanitizer report); SIGKILL is
    kill_broker. Returns start_again's seconds-until-accepting."""
    if sig == signal.SIGKILL:
        kill_broker(b)
    else:
        rc = b.stop(sig)
        b.check_clean_exit(rc)
    return start_again(b, wait=wait, note="restart after %s" % signal.Signals(sig).name)


def broker_memory(b):
    """The broker's memory from /proc/PID/status, in bytes: VmRSS, VmHWM
    (peak RSS), RssAnon (heap, stacks), RssFile (file mappings such as an
    LMDB map: page cache, reclaimable) and RssShmem."""
    out = {}
    with open("/proc/%d/status" % b.proc.pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class BulkChannel:
    """Raw AMQP for volume (paging, crash and many-queue tests): one
    connection with channel 1 open, pipelined publishes, and a frame reader
    that parses by offset (coney_raw's reader copies its buffer per frame,
    too slow for 100,000 deliveries). Any method it does not expect, such as
    channel.close, fails the test with the method's arguments."""

    def __init__(self, broker, timeout=TIMEOUT):
        import coney_raw
        self.R = coney_raw
        self.raw = coney_raw.RawConnection(broker.host, broker.port, timeout=timeout).open()
        self.raw.open_channel(1)
        self.sock = self.raw.sock
        self.buf = bytearray(self.raw.buf)
        self.raw.buf = b""
        self.off = 0
        self.timeout = timeout
        self.frame_max = self.raw.frame_max
        self.confirming = False
        self.published = 0           # delivery tags handed out in confirm mode
        self.confirm = bytearray(1)  # per tag: 0 pending, 1 acked, 2 nacked
        self.low = 1                 # every tag below this one is resolved

    def close(self):
        self.raw.close()

    # -- sending
    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def publish_bytes(self, exchange, routing_key, body, props=b"", flags=0):
        """The frames of one basic.publish on channel 1 (props: the encoded
        property list that `flags` describes). In confirm mode each call takes
        the next delivery tag, so build messages in the order they are sent."""
        R = self.R
        out = [R.method_frame(1, "basic.publish", exchange=exchange, routing_key=routing_key),
               struct.pack("!BHIHHQH", R.FRAME_HEADER, 1, 14 + len(props), 60, 0,
                           len(body), flags) + props + b"\xce"]
        step = self.frame_max - 8
        for off in range(0, len(body), step):
            chunk = body[off:off + step]
            out.append(struct.pack("!BHI", R.FRAME_BODY, 1, len(chunk)) + chunk + b"\xce")
        if self.confirming:
            self.published += 1
            self.confirm.append(0)
        return b"".join(out)

    def rpc(self, name, reply, **values):
        self.send(self.R.method_frame(1, name, **values))
        return self.expect(reply)

    def confirm_select(self):
        self.rpc("confirm.select", "confirm.select-ok")
        self.confirming = True

    # -- receiving
    def _fill(self, deadline):
        if self.off > (1 << 20):
            del self.buf[:self.off]
            self.off = 0
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no frame from the broker within the deadline")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("no frame from the broker within the deadline")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("broker closed the connection")
        self.buf += chunk

    def frame(self, timeout=None):
        """(type, channel, payload) of the next frame that is not a heartbeat."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            avail = len(self.buf) - self.off
            if avail >= 7:
                ftype, chan, size = struct.unpack_from("!BHI", self.buf, self.off)
                if avail >= size + 8:
                    start = self.off + 7
                    payload = bytes(self.buf[start:start + size])
                    if self.buf[start + size] != 0xCE:
                        raise AssertionError("frame without frame-end")
                    self.off = start + size + 1
                    if ftype == self.R.FRAME_HEARTBEAT:
                        continue
                    return ftype, chan, payload
            self._fill(deadline)

    def poll(self, timeout=None):
        """Reads one method frame. A basic.ack/nack in confirm mode is
        recorded and gives None; anything else gives (name, args)."""
        ftype, chan, payload = self.frame(timeout)
        if ftype != self.R.FRAME_METHOD:
            raise AssertionError("expected a method frame, got type %d" % ftype)
        cm = struct.unpack_from("!HH", payload)
        if self.confirming and (cm == (60, 80) or cm == (60, 120)):
            tag, bits = struct.unpack_from("!QB", payload, 4)
            self._resolve(tag, bool(bits & 1), 1 if cm == (60, 80) else 2)
            return None
        name, fields = self.R.METHODS.get(cm, ("%d.%d" % cm, []))
        return name, self.R.decode_args(fields, payload[4:])

    def method(self, timeout=None):
        """(name, args) of the next method frame that is not a confirm."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            r = self.poll(max(0.0, deadline - time.monotonic()))
            if r is not None:
                return r

    def expect(self, name, timeout=None):
        got, args = self.method(timeout)
        if got != name:
            raise AssertionError("expected %s, got %s %r" % (name, got, args))
        return args

    def _resolve(self, tag, multiple, status):
        if tag > self.published:
            raise AssertionError("confirm for tag %d, only %d published" % (tag, self.published))
        lo = self.low if multiple else tag
        for t in range(lo, tag + 1):
            if self.confirm[t] == 0:
                self.confirm[t] = status
        while self.low <= self.published and self.confirm[self.low]:
            self.low += 1

    def unresolved(self):
        """An upper bound on the published messages not yet acked or nacked."""
        return self.published - self.low + 1

    def wait_confirms(self, timeout=None):
        """Read until every published message is acked or nacked."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.low <= self.published:
            r = self.poll(max(0.0, deadline - time.monotonic()))
            if r is not None:
                raise AssertionError("unexpected %s %r while waiting for confirms" % r)

    def delivery(self, timeout=None):
        """The next basic.deliver on channel 1 with its content:
        (delivery_tag, redelivered, property flags, property bytes, body)."""
        ftype, chan, payload = self.frame(timeout)
        if ftype != self.R.FRAME_METHOD or payload[:4] != b"\x00\x3c\x00\x3c":
            if ftype == self.R.FRAME_METHOD:
                cm = struct.unpack_from("!HH", payload)
                name, fields = self.R.METHODS.get(cm, ("%d.%d" % cm, []))
                raise AssertionError("expected basic.deliver, got %s %r"
                                     % (name, self.R.decode_args(fields, payload[4:])))
            raise AssertionError("expected basic.deliver, got frame type %d" % ftype)
        n = payload[4]
        tag, bits = struct.unpack_from("!QB", payload, 5 + n)
        ftype, chan, header = self.frame(timeout)
        assert ftype == self.R.FRAME_HEADER, "expected a content header, got type %d" % ftype
        size, flags = struct.unpack_from("!QH", header, 4)
        props = header[14:]
        parts = []
        got = 0
        while got < size:
            ftype, chan, body = self.frame(timeout)
            assert ftype == self.R.FRAME_BODY, "expected a body frame, got type %d" % ftype
            parts.append(body)
            got += len(body)
        return tag, bool(bits & 1), flags, props, b"".join(parts)


# ------------------------------------------------------------ MQTT
# The MQTT tests reach a broker through an MqttTarget: Coney's MQTT listener
# (the shared or a fresh broker), or with CONEY_MQTT_TARGET=host:port any
# other MQTT broker (Mosquitto, to check that the tests encode the spec).

class MqttTarget:
    """host and MQTT port; `broker` is the Coney Broker behind it (None for
    CONEY_MQTT_TARGET)."""

    def __init__(self, host, port, broker=None):
        self.host = host
        self.port = port
        self.broker = broker

    @property
    def is_coney(self):
        return self.broker is not None

    def raw(self, version=4, timeout=TIMEOUT):
        """A raw MQTT socket (mqtt_raw.MqttSocket), not yet connected."""
        import mqtt_raw
        return mqtt_raw.MqttSocket(self.host, self.port, timeout, version)

    def client(self, client_id="", version=4, **kw):
        """A paho-mqtt client wrapper (mqtt_raw.PahoClient), not yet connected."""
        import mqtt_raw
        kw.setdefault("timeout", TIMEOUT)
        return mqtt_raw.PahoClient(self.host, self.port, client_id, version, **kw)


def mqtt_target(b):
    """The MqttTarget of a Coney broker. A broker the tests started always
    has an MQTT listener (a missing one fails the test); CONEY_TEST_TARGET
    points at an AMQP broker, so MQTT tests skip there."""
    if b.mqtt_port is None:
        assert not b.controlled, "the broker under test has no MQTT listener"
        pytest.skip("CONEY_TEST_TARGET has no MQTT port; set CONEY_MQTT_TARGET")
    return MqttTarget(b.host, b.mqtt_port, b)


def mqtt_id(prefix="c"):
    """A client id no other test uses (23 characters at most, the limit a
    3.1 server may enforce)."""
    return "ct-%s-%s" % (prefix[:6], uuid.uuid4().hex[:12])


def mqtt_topic(prefix="t"):
    """A topic prefix no other test uses (no '.', which maps to '/' in AMQP)."""
    return "coney-test/%s/%s" % (prefix, uuid.uuid4().hex[:12])
