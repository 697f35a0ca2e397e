#!/usr/bin/python3
"""Coney's mixed soak (`make soak`; docs/operations.md, "Soak").

One broker process (CONEY_BIN, free ports, a temporary data dir) takes
CONEY_SOAK_SECONDS (default 3600) of mixed AMQP (pika, a little
amqp-tools) and MQTT (paho-mqtt) traffic with churn: connections,
channels, queues of every kind, consumers and MQTT sessions come and go.
Then three questions, and the exit status says whether each was yes.

1. Is every message accounted for? Each body starts with a unique id,
   "soak:<stream>:<seq>:<size>;". A message the broker confirmed (AMQP
   basic.ack in confirm mode, MQTT PUBACK or PUBCOMP, amqp-publish's clean
   close) must end exactly once: delivered to a consumer that acked it (or
   a no-ack consumer), or dead-lettered into soak.dlq (TTL expiry,
   x-max-length drop-head, basic.reject without requeue). Every queue
   with a TTL or a length limit has the dead-letter exchange, so the
   broker drops nothing by rule without it being counted; a queue with
   x-overflow reject-publish nacks instead, and a nacked message must not
   be delivered. A publish that was never confirmed (its connection went
   first, MQTT QoS 0, a QoS 0 subscription) may arrive or not, but at most
   once. A second delivery of an id is a redelivery when it is flagged
   (AMQP redelivered, MQTT DUP) and a duplicate when it is not. Every queue
   is drained at the end: lost = confirmed ids found nowhere.
2. Do file descriptors and RSS come back? A warm-up phase (5% of the
   time, 3 to 60 s) runs the same traffic and tears everything down; the
   broker's fds and RSS, idle, are the baseline. The main phase ends the
   same way, and the idle broker must be back at the baseline fds (plus
   FD_SLACK) and its anonymous RSS within RSS_SLACK_MB or RSS_SLACK_PCT
   of the baseline's; after it stops, its store must hold no message,
   queue index entry, retained message or MQTT session.
3. Does the broker stop cleanly on SIGTERM (status 0; under
   CONEY_SOAK_WRAPPER, e.g. valgrind, the wrapper's status)?

Environment: CONEY_BIN, CONEY_SOAK_SECONDS, CONEY_SOAK_RATE (messages a
second offered in all, default 1500), CONEY_SOAK_SEED, CONEY_SOAK_WRAPPER
(a command the broker runs under: `make valgrind`), CONEY_SANITIZED=1 (an
ASan build: slower, and its quarantine makes RSS meaningless),
CONEY_SOAK_RSS_SLACK_MB, CONEY_SOAK_RSS_SLACK_PCT, CONEY_SOAK_FD_SLACK,
CONEY_SOAK_REPORT_SECONDS, CONEY_KEEP_DATA=1 (keep the data dir and log).
"""

import base64
import collections
import ctypes
import json
import os
import random
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt
import pika
import pika.exceptions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def env_float(name, default):
    v = os.environ.get(name)
    return float(v) if v else default


SECONDS = env_float("CONEY_SOAK_SECONDS", 3600)
RATE = env_float("CONEY_SOAK_RATE", 1500)
SEED = int(os.environ.get("CONEY_SOAK_SEED") or random.SystemRandom().randrange(2 ** 32))
WRAPPER = shlex.split(os.environ.get("CONEY_SOAK_WRAPPER", ""))
SANITIZED = bool(os.environ.get("CONEY_SANITIZED"))
# Deadlines stretch for slow builds; valgrind runs the broker ~20x slower.
SLOW = 20.0 if WRAPPER else 3.0 if SANITIZED else 1.0
REPORT_EVERY = env_float("CONEY_SOAK_REPORT_SECONDS", 60 if SECONDS >= 600 else 10)
SAMPLE_EVERY = 10.0
# The RSS bound, on RssAnon (heap and stacks: where a leak shows). The
# idle broker's after an hour should be its idle one after warm-up give
# or take what malloc keeps in its free lists (glibc returns little of a
# fragmented heap once queues have been long): 16 MB or 20%, whichever is
# larger. A leak of 100 bytes a message is ~400 MB an hour and fails;
# even 4 bytes a message, 16 MB, does. RssFile is reported, not bounded:
# it is the store file's pages that LMDB has mapped, clean page cache that
# follows data.mdb's size, which LMDB never shrinks (it reuses free
# pages); the empty store at the end (mdb_stat) answers for its content.
RSS_SLACK_MB = env_float("CONEY_SOAK_RSS_SLACK_MB", 16)
RSS_SLACK_PCT = env_float("CONEY_SOAK_RSS_SLACK_PCT", 20)
# fds: the same listeners, store files and loop fds; 2 for a file the
# broker opens for a moment (/proc/self/statm for the memory alarm) when
# we happen to look.
FD_SLACK = int(env_float("CONEY_SOAK_FD_SLACK", 2))
CHECK_RSS = not WRAPPER and not SANITIZED
GRACE = 30.0 * SLOW            # a closed stream's dead letters have arrived by then
IDLE_TIMEOUT = 60.0 * SLOW     # for the broker to forget the last client

ACK, NACK, DLV, DEAD, RET, SENT = 1, 2, 4, 8, 16, 32

FILLER = "".join(random.Random(7).choice(string.ascii_letters + string.digits)
                 for _ in range(256 * 1024)).encode()


def log(msg):
    sys.stdout.write("%s soak: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


def mb(n):
    return "%.1f MB" % (n / 1048576.0) if n is not None else "-"


# ------------------------------------------------------------ the ledger

class Stream:
    """A run of ids of one kind whose messages go to one place. st[seq]
    is the message's state, a set of the bits above."""
    __slots__ = ("id", "kind", "st", "closed", "checked", "trace")

    def __init__(self, sid, kind):
        self.id = sid
        self.kind = kind
        self.st = bytearray()
        self.closed = None     # when its sink was drained or went away
        self.checked = False
        self.trace = None      # a lane's events, printed if the stream loses messages

    def note(self, what):
        if self.trace is not None:
            self.trace.append("%d published: %s" % (len(self.st), what))


class Ledger:
    """Every id handed out and what became of it. One lock: a few thousand
    updates a second."""

    def __init__(self):
        self.lock = threading.Lock()
        self.streams = []
        self.flagged = collections.Counter()       # kind -> deliveries flagged redelivered/DUP
        self.redelivered = collections.Counter()   # kind -> flagged second deliveries
        self.dups = collections.Counter()          # kind -> unflagged second deliveries
        self.dead_reasons = collections.Counter()
        self.samples = []                          # first problems, for the report
        self.unknown = 0                           # ids never handed out
        self.corrupt = 0                           # bodies that are not what was sent
        self.deliveries = 0
        self.early_lost = 0

    def stream(self, kind):
        with self.lock:
            s = Stream(len(self.streams), kind)
            self.streams.append(s)
            return s

    def new(self, s, size):
        """(seq, body) of a new message of stream s."""
        with self.lock:
            seq = len(s.st)
            s.st.append(SENT)
        head = b"soak:%d:%d:%d;" % (s.id, seq, size)
        return seq, head + FILLER[:max(0, size - len(head))]

    def mark(self, s, seq, bit):
        with self.lock:
            s.st[seq] |= bit

    def sample(self, what):
        if len(self.samples) < 20:
            self.samples.append(what)

    def arrived(self, body, flagged, bit=DLV, reason=None, once=False):
        """A delivery (bit DLV) or a dead letter (DEAD) of body; flagged: the
        broker said it may have been delivered before; once: exactly once
        was promised (MQTT QoS 2), so even a flagged repeat is a duplicate."""
        if isinstance(body, str):
            body = body.encode()
        with self.lock:
            self.deliveries += 1
            try:
                head, _, rest = body.partition(b";")
                tag, sid, seq, size = head.split(b":")
                sid, seq, size = int(sid), int(seq), int(size)
                assert tag == b"soak"
                s = self.streams[sid]
                v = s.st[seq]
            except (ValueError, IndexError, AssertionError):
                self.unknown += 1
                self.sample("unknown id in body %r" % body[:60])
                return
            if s.kind == "amqp-tools" and body.endswith(b"\n"):
                body, rest = body[:-1], rest[:-1]   # amqp-publish -l keeps the newline
            if len(body) != max(size, len(head) + 1) or rest != FILLER[:len(rest)]:
                self.corrupt += 1
                self.sample("corrupt body of %s:%d (%s), %d bytes" % (sid, seq, s.kind, len(body)))
            if reason:
                self.dead_reasons[reason] += 1
            if flagged:
                self.flagged[s.kind] += 1
            if v & (DLV | DEAD):
                if flagged and not once:
                    self.redelivered[s.kind] += 1
                else:
                    self.dups[s.kind] += 1
                    self.sample("duplicate %d:%d (%s), state %#x, now %s" % (
                        sid, seq, s.kind, v, "dead-lettered" if bit == DEAD else "delivered"))
                return
            s.st[seq] = v | bit

    def close(self, streams):
        now = time.monotonic()
        with self.lock:
            for s in streams:
                if s.closed is None:
                    s.closed = now

    def unsettled(self, s):
        """Confirmed ids of s that have not arrived yet."""
        with self.lock:
            return sum(1 for v in s.st if v & ACK and not v & (DLV | DEAD))

    def settled_check(self):
        """Streams closed longer than GRACE ago must have nothing confirmed
        and missing: loss found during the run, not only at the end."""
        now = time.monotonic()
        found = 0
        with self.lock:
            for s in self.streams:
                if s.checked or s.closed is None or now - s.closed < GRACE:
                    continue
                s.checked = True
                for seq, v in enumerate(s.st):
                    if v & ACK and not v & (DLV | DEAD):
                        found += 1
                        self.sample("lost %d:%d (%s), state %#x" % (s.id, seq, s.kind, v))
            self.early_lost += found
        return found

    def totals(self):
        """Per kind: the counts of the summary table."""
        with self.lock:
            snap = [(s.kind, bytes(s.st)) for s in self.streams]
            red, dups, flagged = dict(self.redelivered), dict(self.dups), dict(self.flagged)
        kinds = collections.OrderedDict()
        for kind, st in snap:
            t = kinds.setdefault(kind, collections.Counter())
            for v, n in collections.Counter(st).items():
                t["published"] += n
                if v & ACK:
                    t["confirmed"] += n
                    if v & DLV:
                        t["delivered"] += n
                    elif v & DEAD:
                        t["dead"] += n
                    else:
                        t["open"] += n
                elif v & (NACK | RET):
                    t["nacked" if v & NACK else "returned"] += n
                    if v & DLV:
                        t["bad"] += n      # refused, yet delivered
                    elif v & DEAD:
                        t["dead"] += n     # reject-publish-dlx
                else:
                    t["unconfirmed"] += n
                    if v & (DLV | DEAD):
                        t["unconf_arrived"] += n
        for kind in kinds:
            kinds[kind]["redelivered"] = flagged.get(kind, 0)
            kinds[kind]["again"] = red.get(kind, 0)
            kinds[kind]["dup"] = dups.get(kind, 0)
        return kinds

    def lost_traces(self, limit=2):
        out = []
        with self.lock:
            for s in self.streams:
                if s.trace and any(v & ACK and not v & (DLV | DEAD) for v in s.st):
                    lost = [seq for seq, v in enumerate(s.st) if v & ACK and not v & (DLV | DEAD)]
                    out.append("stream %d (%s), lost seqs %s%s:\n    %s" % (
                        s.id, s.kind, lost[:20], "..." if len(lost) > 20 else "",
                        "\n    ".join(s.trace)))
                    if len(out) >= limit:
                        break
        return out

    def lost_samples(self, limit=10):
        out = []
        with self.lock:
            for s in self.streams:
                for seq, v in enumerate(s.st):
                    if v & ACK and not v & (DLV | DEAD):
                        out.append("%d:%d (%s) state %#x" % (s.id, seq, s.kind, v))
                        if len(out) >= limit:
                            return out
        return out


# ------------------------------------------------------------ the broker

def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def die_with_parent():
    """In the child: SIGKILL when the soak dies (a test deadline kills it
    with SIGKILL, and an orphaned broker would run on)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class PortTaken(RuntimeError):
    pass


class Broker:
    def __init__(self, binary):
        self.workdir = tempfile.mkdtemp(prefix="coney-soak-")
        self.data_dir = os.path.join(self.workdir, "data")
        os.mkdir(self.data_dir)
        self.log_path = os.path.join(self.workdir, "coney.log")
        self.port, self.mqtt_port, self.http_port = free_ports(3)
        args = WRAPPER + [binary, "--port", str(self.port), "--mqtt-port", str(self.mqtt_port),
                          "--management-port", str(self.http_port), "--prometheus-port", "0",
                          "--data-dir", self.data_dir]
        penv = dict(os.environ)
        penv.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, cwd=self.workdir, env=penv,
                                         preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30 * SLOW
        for p in (self.port, self.mqtt_port, self.http_port):
            while True:
                if self.proc.poll() is not None:
                    tail = self.log_tail()
                    self.cleanup()
                    err = PortTaken if "Address already in use" in tail else RuntimeError
                    raise err("broker exited with %r:\n%s" % (self.proc.returncode, tail))
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("broker does not accept on port %d:\n%s"
                                           % (p, self.log_tail()))
                    time.sleep(0.1)
        auth = base64.b64encode(b"guest:guest").decode()
        self.auth = {"Authorization": "Basic " + auth}

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def sample(self):
        """VmRSS, RssAnon, RssFile (bytes) and the number of open fds."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(rest.split()[0]) * 1024
        out["fds"] = len(os.listdir("/proc/%d/fd" % self.proc.pid))
        return out

    TCP_STATES = {"01": "established", "06": "time-wait", "07": "close", "08": "close-wait",
                  "09": "last-ack", "0A": "listen", "04": "fin-wait1", "05": "fin-wait2"}

    def fd_targets(self):
        """What each fd is: a path, an anon_inode, or a socket named by
        listener and TCP state ("tcp mqtt close-wait"), so that two samples
        compare and a leaked connection says which port it came in on."""
        ports = {self.port: "amqp", self.mqtt_port: "mqtt", self.http_port: "http"}
        tcp = {}
        for name in ("tcp", "tcp6"):
            try:
                with open("/proc/%d/net/%s" % (self.proc.pid, name)) as f:
                    for line in f.readlines()[1:]:
                        fields = line.split()
                        port = int(fields[1].rsplit(":", 1)[1], 16)
                        tcp[fields[9]] = "tcp %s %s" % (ports.get(port, port),
                                                        self.TCP_STATES.get(fields[3], fields[3]))
            except OSError:
                pass
        out = collections.Counter()
        d = "/proc/%d/fd" % self.proc.pid
        for fd in os.listdir(d):
            try:
                t = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                t = tcp.get(t[8:-1], "socket (not tcp)")
            elif t.startswith("pipe:"):
                t = "pipe"
            out[t] += 1
        return out

    def cpu(self):
        """Seconds of CPU the broker has used, user and system."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def api(self, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path),
                                     headers=self.auth)
        with urllib.request.urlopen(req, timeout=30 * SLOW) as r:
            return json.loads(r.read().decode())

    def queue_info(self, name):
        return self.api("/api/queues/%%2F/%s" % urllib.parse.quote(name, safe=""))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "no exit %.0f s after SIGTERM" % (120 * SLOW)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not os.environ.get("CONEY_KEEP_DATA"):
            shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------ AMQP helpers

def amqp_connect(b, **kw):
    kw.setdefault("heartbeat", 30)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=b.port, credentials=pika.PlainCredentials("guest", "guest"),
        socket_timeout=30 * SLOW, stack_timeout=60 * SLOW,
        blocked_connection_timeout=120 * SLOW, connection_attempts=3, retry_delay=1, **kw))


def amqp_vanish(conn):
    """The client disappears: FIN without connection.close; the broker must
    requeue what the connection held."""
    try:
        conn._impl._transport._sock.shutdown(socket.SHUT_RDWR)
    except Exception:
        pass
    try:
        conn.process_data_events(time_limit=0.2)
    except Exception:
        pass
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


def quiet_close(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:
        pass


def size_of(rng):
    r = rng.random()
    if r < 0.002:
        return rng.randint(100_000, 250_000)     # spans many frames
    if r < 0.05:
        return rng.randint(8_000, 20_000)
    return rng.randint(24, 1024)


def dead_reason(props):
    deaths = (props.headers or {}).get("x-death") or []
    r = deaths[0].get("reason") if deaths else None
    return r.decode() if isinstance(r, bytes) else (r or "no-x-death")


class Consumer:
    """One basic.consume on its own channel. Acks most messages; now and
    then nacks with requeue, rejects into the dead-letter exchange (only
    where the queue has one), holds a message unacked until its channel
    closes, or acks a batch with `multiple`."""

    def __init__(self, soak, rng, conn, queue, has_dlx):
        self.soak, self.rng, self.conn = soak, rng, conn
        self.auto_ack = rng.random() < 0.1
        self.batch = 0 if self.auto_ack or rng.random() < 0.7 else rng.choice([5, 20, 50])
        self.has_dlx = has_dlx
        self.pending = []         # batch mode: (tag, body, redelivered) to ack together
        self.ch = conn.channel()
        self.prefetch = rng.choice([1, 10, 50, 200, 0 if self.auto_ack else 20])
        self.ch.basic_qos(prefetch_count=self.prefetch)
        self.tag = self.ch.basic_consume(queue, self.on_message, auto_ack=self.auto_ack)
        if self.auto_ack:
            self.catch_dropped()

    def catch_dropped(self):
        """pika (1.2) drops a no-ack delivery that arrives after it sent
        basic.cancel and before cancel-ok, though the broker rightly sent it
        (channel.py, _on_deliver): count it where pika drops it."""
        impl = self.ch._impl
        orig = impl._on_deliver
        L = self.soak.ledger

        def on_deliver(method_frame, header_frame, body):
            tag = method_frame.method.consumer_tag
            if tag in impl._cancelled and tag in impl._consumers_with_noack:
                L.arrived(body, method_frame.method.redelivered)
            return orig(method_frame, header_frame, body)

        impl._on_deliver = on_deliver

    def describe(self):
        return "%s, prefetch %d%s" % ("no-ack" if self.auto_ack else "ack", self.prefetch,
                                      ", batches of %d" % self.batch if self.batch else "")

    def on_message(self, ch, method, props, body):
        L = self.soak.ledger
        if self.auto_ack:
            L.arrived(body, method.redelivered)
            return
        if self.batch:
            self.pending.append((method.delivery_tag, body, method.redelivered))
            if len(self.pending) >= self.batch:
                self.flush()
            return
        r = self.rng.random()
        if r < 0.01:
            ch.basic_nack(method.delivery_tag, requeue=True)
        elif r < 0.02 and self.has_dlx:
            ch.basic_reject(method.delivery_tag, requeue=False)
        elif r < 0.025:
            pass   # held: back in the queue, flagged, when the channel closes
        else:
            L.arrived(body, method.redelivered)
            ch.basic_ack(method.delivery_tag)

    def flush(self):
        if self.pending:
            for _, body, red in self.pending:
                self.soak.ledger.arrived(body, red)
            self.ch.basic_ack(self.pending[-1][0], multiple=True)
            self.pending = []

    def cancel(self):
        """basic.cancel, then close the channel (unacked messages requeue)."""
        for m, p, body in self.ch.basic_cancel(self.tag) or []:
            self.soak.ledger.arrived(body, m.redelivered)
        self.flush()
        self.ch.close()

    def close_channel(self):
        """channel.close without a cancel; a no-ack consumer cancels first,
        since deliveries pika has read but not dispatched would be gone."""
        if self.auto_ack:
            self.cancel()
        else:
            self.ch.close()


class ConsumerConn:
    def __init__(self, soak):
        self.conn = amqp_connect(soak.b)
        self.consumers = []

    def pump(self):
        self.conn.process_data_events(time_limit=0)


# ------------------------------------------------------------ MQTT helpers

def mqtt_client(cid, proto, clean):
    if proto == mqtt.MQTTv5:
        c = mqtt.Client(cid, protocol=mqtt.MQTTv5)
    else:
        c = mqtt.Client(cid, clean_session=clean, protocol=proto)
    c._soak_clean = clean
    c._soak_state = {"connack": None, "flags": None, "subacks": set()}

    def on_connect(client, userdata, flags, rc, *rest):
        c._soak_state["connack"] = rc
        c._soak_state["flags"] = flags

    def on_subscribe(client, userdata, mid, granted, *rest):
        c._soak_state["subacks"].add(mid)

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    return c


def mqtt_wait(c, pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        rc = c.loop(0.05)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("mqtt %s: connection lost (rc %d) waiting for %s"
                               % (c._client_id.decode(), rc, what))
        if time.monotonic() > deadline:
            raise RuntimeError("mqtt %s: no %s within %.0f s"
                               % (c._client_id.decode(), what, timeout))


def mqtt_connect(soak, c, first=True):
    c._soak_state["connack"] = None
    kw = {}
    if c._protocol == mqtt.MQTTv5:
        kw["clean_start"] = c._soak_clean
    if first:
        c.connect("127.0.0.1", soak.b.mqtt_port, keepalive=30, **kw)
    else:
        c.reconnect()
    mqtt_wait(c, lambda: c._soak_state["connack"] is not None, 30 * SLOW, "CONNACK")
    if c._soak_state["connack"] != 0:
        raise RuntimeError("mqtt %s: CONNACK %s"
                           % (c._client_id.decode(), c._soak_state["connack"]))
    return c._soak_state["flags"]


def mqtt_subscribe(c, topic, qos):
    rc, mid = c.subscribe(topic, qos)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        raise RuntimeError("mqtt subscribe: rc %d" % rc)
    mqtt_wait(c, lambda: mid in c._soak_state["subacks"], 30 * SLOW, "SUBACK")


def mqtt_vanish(c):
    try:
        c.socket().shutdown(socket.SHUT_RDWR)
    except Exception:
        pass
    for _ in range(5):
        if c.loop(0.02) != mqtt.MQTT_ERR_SUCCESS:
            break


def mqtt_disconnect(c):
    c.disconnect()
    for _ in range(20):
        if c.loop(0.01) != mqtt.MQTT_ERR_SUCCESS:
            break


class Pace:
    """Tokens at `rate` a second; `due()` is how many may go now."""

    def __init__(self, rate):
        self.rate = max(rate, 1.0)
        self.t0 = time.monotonic()
        self.sent = 0

    def due(self):
        allowed = (time.monotonic() - self.t0) * self.rate - self.sent
        if allowed < -self.rate:          # far behind schedule after a stall: forget it
            self.t0 = time.monotonic()
            self.sent = 0
        return int(allowed)

    def took(self, n=1):
        self.sent += n


# ------------------------------------------------------------ workers

class Worker(threading.Thread):
    """A thread of one phase. Errors are recorded, not raised: the phase
    goes on and the soak fails at the end."""

    def __init__(self, phase, name, fn, *args):
        super().__init__(name=name, daemon=True)
        self.phase, self.fn, self.args = phase, fn, args

    def run(self):
        try:
            self.fn(*self.args)
        except Exception:
            self.phase.soak.error(self.name, traceback.format_exc())


QUEUE_PROFILES = [
    # name, weight
    ("durable", 3), ("transient", 3), ("ttl", 2), ("maxlen", 2), ("reject", 1), ("priority", 1),
]


class Phase:
    N_LANES = 3
    N_MQTT_PUB = 2
    N_SUBS = 3        # persistent sessions: 3.1.1 QoS 1, 3.1.1 QoS 2, 3.1 QoS 1
    SUB_PROTO = [mqtt.MQTTv311, mqtt.MQTTv311, mqtt.MQTTv31]
    SUB_QOS = [1, 2, 1]

    def __init__(self, soak, number, name, seconds):
        self.soak, self.number, self.name, self.seconds = soak, number, name, seconds
        self.b, self.ledger = soak.b, soak.ledger
        self.stop = threading.Event()          # publishers stop
        self.drain = threading.Event()         # sinks drain and finish
        self.subs_ready = threading.Barrier(self.N_SUBS + 1, timeout=120 * SLOW)
        self.streams = []                      # closed when the phase's sinks are gone
        self.streams_lock = threading.Lock()
        self.prefix = "soak%d" % number
        self.dlx = self.prefix + ".dlx"
        self.dlq = self.prefix + ".dlq"
        self.from_mqtt = self.prefix + ".from-mqtt"
        scale = RATE / 1500.0
        self.lane_rate = 300 * scale
        self.mqtt_rate = 120 * scale
        self.echo_rate = 100 * scale
        self.bridge_rate = 60 * scale

    def rng(self, name):
        return random.Random("%d/%d/%s" % (SEED, self.number, name))

    def phase_stream(self, kind):
        s = self.ledger.stream(kind)
        with self.streams_lock:
            self.streams.append(s)
        return s

    def sub_id(self, i):
        return "soak%d-sub%d" % (self.number, i)

    # ---- the phase

    def run(self):
        log("%s: %.0f s of traffic" % (self.name, self.seconds))
        conn = amqp_connect(self.b)
        ch = conn.channel()
        ch.exchange_declare(self.dlx, "fanout", durable=True)
        ch.queue_declare(self.dlq, durable=True)
        ch.queue_bind(self.dlq, self.dlx)
        ch.queue_declare(self.from_mqtt, durable=True)
        ch.queue_bind(self.from_mqtt, "amq.topic", "soak.x.#")
        conn.close()

        sinks = [Worker(self, "sub%d" % i, self.mqtt_sub, i) for i in range(self.N_SUBS)]
        dlq = Worker(self, "dlq", self.dlq_consumer)
        for w in sinks + [dlq]:
            w.start()
        try:
            self.subs_ready.wait()
        except threading.BrokenBarrierError:
            self.soak.error("phase", "the MQTT subscribers did not subscribe")
        pubs = [Worker(self, "lane%d" % i, self.lane, i) for i in range(self.N_LANES)]
        pubs += [Worker(self, "mqttpub%d" % i, self.mqtt_pub, i) for i in range(self.N_MQTT_PUB)]
        pubs += [Worker(self, "echo", self.echo), Worker(self, "bridge", self.bridge),
                 Worker(self, "churn", self.churn)]
        for w in pubs:
            w.start()
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and not self.soak.abort.is_set():
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        log("%s: stopping publishers, draining" % self.name)
        self.stop.set()
        t = time.monotonic()
        self.join(pubs, "publishers")
        t1 = time.monotonic()
        self.drain.set()
        self.join(sinks, "MQTT subscribers")
        self.join([dlq], "dead-letter consumer")
        self.clear_retained()
        self.ledger.close(self.streams)
        log("%s: publishers stopped in %.1f s, sinks drained in %.1f s"
            % (self.name, t1 - t, time.monotonic() - t1))

    def join(self, workers, what):
        deadline = time.monotonic() + 300 * SLOW
        for w in workers:
            t = time.monotonic()
            w.join(max(1.0, deadline - time.monotonic()))
            if time.monotonic() - t > 5 * SLOW:
                log("%s: %s took %.1f s to finish" % (self.name, w.name, time.monotonic() - t))
            if w.is_alive():
                self.soak.error(w.name, "%s did not finish within %.0f s of the stop"
                                % (what, 300 * SLOW))

    def clear_retained(self):
        c = mqtt_client("soak%d-clear" % self.number, mqtt.MQTTv311, True)
        mqtt_connect(self.soak, c)
        for i in range(20):
            c.publish("soak/r/%d" % i, b"", qos=1, retain=True)
        c.loop(0.1)
        mqtt_disconnect(c)

    # ---- AMQP lanes: a queue per cycle

    def lane(self, i):
        rng = self.rng("lane%d" % i)
        names, weights = zip(*QUEUE_PROFILES)
        n = 0
        while not self.stop.is_set():
            n += 1
            profile = rng.choices(names, weights)[0]
            try:
                self.lane_cycle(rng, i, n, profile)
            except Exception:
                self.soak.error("lane%d" % i, "cycle %d (%s):\n%s"
                                % (n, profile, traceback.format_exc()))
                time.sleep(1)

    def lane_cycle(self, rng, lane, n, profile):
        L = self.ledger
        q = "%s.l%d.%d.%s" % (self.prefix, lane, n, profile)
        durable = profile == "durable" or (profile in ("ttl", "maxlen", "reject")
                                           and rng.random() < 0.5)
        args = {}
        if profile == "ttl":
            args = {"x-message-ttl": rng.choice([100, 500, 2000]),
                    "x-dead-letter-exchange": self.dlx}
        elif profile == "maxlen":
            args = {"x-max-length": rng.choice([10, 50, 300]), "x-dead-letter-exchange": self.dlx}
            if rng.random() < 0.5:
                args["x-max-length-bytes"] = rng.choice([20_000, 200_000])
        elif profile == "reject":
            args = {"x-max-length": rng.choice([10, 100]), "x-overflow": "reject-publish"}
        elif profile == "priority":
            args = {"x-max-priority": 5}
        has_dlx = "x-dead-letter-exchange" in args
        pub = amqp_connect(self.b)
        ch = pub.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=durable, arguments=args)
        stream = L.stream("amqp-" + profile)
        stream.trace = []
        stream.note("queue %s durable %s args %r" % (q, durable, args))
        conns = []
        # a queue lives 1 to 10 s at the lane's rate
        total = rng.randint(int(self.lane_rate), int(self.lane_rate * 10))
        pace = Pace(self.lane_rate)
        # how eager consumers are: a TTL or length limit only bites on a backlog
        eager = 0.3 if profile in ("ttl", "maxlen", "reject") else 0.8
        next_event = time.monotonic() + rng.expovariate(2.0)
        sent = 0
        try:
            while sent < total and not self.stop.is_set() and not self.soak.abort.is_set():
                k = min(pace.due(), total - sent, 50)
                for _ in range(max(0, k)):
                    props = pika.BasicProperties(
                        delivery_mode=2 if durable and rng.random() < 0.8 else 1,
                        priority=rng.randrange(6) if profile == "priority" else None,
                        expiration=str(rng.choice([50, 300])) if profile == "ttl"
                        and rng.random() < 0.2 else None)
                    seq, body = L.new(stream, size_of(rng))
                    try:
                        ch.basic_publish("", q, body, props, mandatory=True)
                        L.mark(stream, seq, ACK)
                    except pika.exceptions.NackError:
                        L.mark(stream, seq, NACK)
                    except pika.exceptions.UnroutableError:
                        L.mark(stream, seq, RET)
                    sent += 1
                    pace.took()
                for cc in list(conns):
                    cc.pump()
                now = time.monotonic()
                if now >= next_event:
                    next_event = now + rng.expovariate(2.0)
                    self.lane_event(rng, conns, q, has_dlx, eager, ch, stream)
                if k <= 0:
                    time.sleep(0.005)
            # the end of the queue's life: consumers go, the rest is drained
            note = stream.note
            note("end: cancel every consumer, drain")
            for cc in conns:
                for c in cc.consumers:
                    c.cancel()
                cc.conn.close()
            conns = []
            self.drain_queue(ch, q)
            left = ch.queue_delete(q).method.message_count
            if left:
                raise RuntimeError("queue %s had %d messages at delete after draining" % (q, left))
        finally:
            for cc in conns:
                amqp_vanish(cc.conn)
            quiet_close(pub)
            L.close([stream])

    def lane_event(self, rng, conns, q, has_dlx, eager, pub_ch, stream):
        note = stream.note
        nconsumers = sum(len(cc.consumers) for cc in conns)
        r = rng.random()
        if nconsumers == 0 or (r < eager * 0.5 and nconsumers < 6):
            if conns and rng.random() < 0.5:
                cc = rng.choice(conns)          # another channel of a connection
            else:
                cc = ConsumerConn(self.soak)
                conns.append(cc)
            c = Consumer(self.soak, rng, cc.conn, q, has_dlx)
            cc.consumers.append(c)
            note("consumer %s on conn %x: %s" % (c.tag, id(cc), c.describe()))
            return
        cc = rng.choice(conns)
        r = rng.random()
        if r < 0.35 and cc.consumers:
            c = cc.consumers.pop(rng.randrange(len(cc.consumers)))
            note("cancel %s" % c.tag)
            c.cancel()
        elif r < 0.55 and cc.consumers:
            c = cc.consumers.pop(rng.randrange(len(cc.consumers)))
            note("close the channel of %s" % c.tag)
            c.close_channel()
        elif r < 0.7:
            conns.remove(cc)
            note("conn %x goes (%s)" % (id(cc), " ".join(c.tag for c in cc.consumers)))
            if any(c.auto_ack for c in cc.consumers):
                for c in cc.consumers:
                    c.cancel()
                cc.conn.close()
            else:
                amqp_vanish(cc.conn)            # unacked and held messages requeue
        elif r < 0.8:
            conns.remove(cc)
            note("conn %x closes (%s)" % (id(cc), " ".join(c.tag for c in cc.consumers)))
            for c in cc.consumers:
                if c.auto_ack:
                    c.cancel()
            cc.conn.close()
        else:
            note("basic.get")
            for _ in range(rng.randint(1, 20)):  # basic.get on the publisher's channel
                m, p, body = pub_ch.basic_get(q, auto_ack=False)
                if m is None:
                    break
                self.ledger.arrived(body, m.redelivered)
                pub_ch.basic_ack(m.delivery_tag)
        for cc in list(conns):
            if not cc.consumers and rng.random() < 0.5:
                note("conn %x closes, no consumers" % id(cc))
                conns.remove(cc)
                cc.conn.close()

    def drain_queue(self, ch, q, bit=DLV):
        """Take everything left in q with basic.get until the broker says it
        holds nothing, ready or unacked, and has no consumer (a vanished
        connection's deliveries come back once the broker has seen the EOF)."""
        deadline = time.monotonic() + 120 * SLOW
        slow = time.monotonic() + 5 * SLOW
        while True:
            while True:
                m, p, body = ch.basic_get(q, auto_ack=False)
                if m is None:
                    break
                self.ledger.arrived(body, m.redelivered, bit,
                                    dead_reason(p) if bit == DEAD else None)
                ch.basic_ack(m.delivery_tag)
            info = self.b.queue_info(q)
            if info.get("messages", 0) == 0 and info.get("consumers", 0) == 0:
                return
            if time.monotonic() > slow:
                log("queue %s is slow to drain: %r" % (q, {
                    k: info.get(k) for k in ("messages", "messages_ready",
                                             "messages_unacknowledged", "consumers")}))
                slow += 5 * SLOW
            if time.monotonic() > deadline:
                raise RuntimeError("queue %s does not drain: %r" % (q, {
                    k: info.get(k) for k in ("messages", "messages_ready",
                                             "messages_unacknowledged", "consumers")}))
            ch.connection.process_data_events(time_limit=0.05)

    # ---- dead letters

    def dlq_consumer(self):
        rng = self.rng("dlq")
        L = self.ledger

        def on_message(ch, m, p, body):
            L.arrived(body, m.redelivered, DEAD, dead_reason(p))
            ch.basic_ack(m.delivery_tag)

        while not self.drain.is_set():
            conn = amqp_connect(self.b)
            ch = conn.channel()
            ch.basic_qos(prefetch_count=100)
            tag = ch.basic_consume(self.dlq, on_message)
            until = time.monotonic() + rng.uniform(5, 30)
            while time.monotonic() < until and not self.drain.is_set():
                conn.process_data_events(time_limit=0.05)
            ch.basic_cancel(tag)
            if self.drain.is_set():
                self.drain_queue(ch, self.dlq, bit=DEAD)
                ch.queue_delete(self.dlq)
                ch.exchange_delete(self.dlx)
            if rng.random() < 0.3 and not self.drain.is_set():
                amqp_vanish(conn)
            else:
                conn.close()

    # ---- MQTT: persistent subscribers, publishers, echo clients

    def mqtt_sub(self, i):
        """A persistent session (clean session off) that goes offline and
        comes back; its queue keeps what arrives meanwhile."""
        rng = self.rng("sub%d" % i)
        cid, proto, qos = self.sub_id(i), self.SUB_PROTO[i], self.SUB_QOS[i]
        L = self.ledger
        last = [time.monotonic()]

        def on_message(client, userdata, m):
            last[0] = time.monotonic()
            L.arrived(m.payload, m.dup, once=m.qos == 2)

        c = mqtt_client(cid, proto, False)
        c.on_message = on_message
        try:
            mqtt_connect(self.soak, c)
            mqtt_subscribe(c, "soak/p/%d/#" % i, qos)
        finally:
            try:
                self.subs_ready.wait()
            except threading.BrokenBarrierError:
                pass
        online = True
        while not self.drain.is_set():
            until = time.monotonic() + rng.uniform(1, 12)
            while time.monotonic() < until and not self.drain.is_set():
                rc = c.loop(0.05)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    raise RuntimeError("%s lost its connection (rc %d)" % (cid, rc))
                if rng.random() < 0.002:        # subscription churn on the side
                    mqtt_subscribe(c, "soak/z/%d/%d" % (i, rng.randrange(5)), rng.randrange(3))
                    c.unsubscribe("soak/z/%d/%d" % (i, rng.randrange(5)))
            if self.drain.is_set():
                break
            if rng.random() < 0.3:
                mqtt_vanish(c)
            else:
                mqtt_disconnect(c)
            online = False
            until = time.monotonic() + rng.uniform(0.2, 4)
            while time.monotonic() < until and not self.drain.is_set():
                time.sleep(0.1)
            flags = mqtt_connect(self.soak, c, first=False)
            online = True
            if proto != mqtt.MQTTv31 and not flags.get("session present"):   # 3.1 has no flag
                raise RuntimeError("%s came back without its session" % cid)
        if not online:
            mqtt_connect(self.soak, c, first=False)
        # drain: wait for the session's queue to be empty and quiet
        qname = "mqtt-subscription-%sqos1" % cid
        deadline = time.monotonic() + 120 * SLOW
        while True:
            c.loop(0.05)
            if time.monotonic() - last[0] > 1.0:
                info = self.b.queue_info(qname)
                if info.get("messages", 0) == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("%s: session queue does not drain: %r" % (
                        cid, {k: info.get(k) for k in ("messages", "messages_ready",
                                                        "messages_unacknowledged")}))
        mqtt_disconnect(c)
        # end the session: a clean-session connect discards it and its queue
        c = mqtt_client(cid, proto, True)
        mqtt_connect(self.soak, c)
        mqtt_disconnect(c)

    def mqtt_pub(self, k):
        """Clean-session publishers, QoS 0/1/2 to the persistent sessions'
        topics, a connection per batch; some leave without DISCONNECT."""
        rng = self.rng("mqttpub%d" % k)
        L = self.ledger
        n = 0
        protos = [mqtt.MQTTv311, mqtt.MQTTv311, mqtt.MQTTv5, mqtt.MQTTv31]
        while not self.stop.is_set():
            n += 1
            cid = "soak%d-p%d-%d" % (self.number, k, n)
            c = mqtt_client(cid, rng.choice(protos), True)
            c.max_inflight_messages_set(rng.choice([10, 20, 100]))
            if rng.random() < 0.2:      # a will to a topic no one hears
                c.will_set("soak/will/%s" % cid, b"gone", qos=1)
            streams = {q: self.phase_stream("mqtt-qos%d" % q) for q in (0, 1, 2)}
            inflight = {}

            def on_publish(client, userdata, mid, inflight=inflight):
                t = inflight.pop(mid, None)
                if t:
                    L.mark(t[0], t[1], ACK)

            c.on_publish = on_publish
            mqtt_connect(self.soak, c)
            sub = rng.randrange(self.N_SUBS)
            count = rng.randint(int(self.mqtt_rate * 0.4) + 5, int(self.mqtt_rate * 3.3) + 10)
            pace = Pace(self.mqtt_rate)
            sent = 0
            while sent < count and not self.stop.is_set():
                for _ in range(max(0, min(pace.due(), count - sent))):
                    qos = rng.choice([0, 1, 1, 2, 2])
                    seq, body = L.new(streams[qos], size_of(rng))
                    info = c.publish("soak/p/%d/%d" % (sub, k), body, qos)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        raise RuntimeError("%s: publish rc %d" % (cid, info.rc))
                    if qos:
                        inflight[info.mid] = (streams[qos], seq)
                    sent += 1
                    pace.took()
                    if rng.random() < 0.002:
                        c.publish("soak/r/%d" % rng.randrange(20), body[:64], qos=1, retain=True)
                if c.loop(0.005) != mqtt.MQTT_ERR_SUCCESS:
                    raise RuntimeError("%s lost its connection" % cid)
            mqtt_wait(c, lambda: not inflight, 60 * SLOW, "PUBACK/PUBCOMP of every publish")
            if rng.random() < 0.1:
                mqtt_vanish(c)
            else:
                mqtt_disconnect(c)

    def echo(self):
        """Clean sessions that subscribe to their own topic, publish to it
        and wait for every confirmed message to come back before leaving:
        the subscription dies with the connection, so anything missing
        then is lost."""
        rng = self.rng("echo")
        L = self.ledger
        n = 0
        protos = [mqtt.MQTTv311, mqtt.MQTTv5, mqtt.MQTTv31]
        while not self.stop.is_set():
            n += 1
            cid = "soak%d-e%d" % (self.number, n)
            c = mqtt_client(cid, rng.choice(protos), True)
            c.on_message = lambda client, u, m: L.arrived(m.payload, m.dup, once=m.qos == 2)
            sq, pq = rng.randrange(3), rng.randrange(3)
            eff = min(sq, pq)
            stream = L.stream("mqtt-echo-q%d" % eff)
            inflight = {}

            def on_publish(client, userdata, mid, inflight=inflight):
                t = inflight.pop(mid, None)
                if t:
                    L.mark(stream, t, ACK)

            c.on_publish = on_publish
            mqtt_connect(self.soak, c)
            topic = "soak/e/%s" % cid
            mqtt_subscribe(c, topic, sq)
            count = rng.randint(int(self.echo_rate * 0.2) + 5, int(self.echo_rate * 3) + 10)
            pace = Pace(self.echo_rate)
            sent = 0
            while sent < count and not self.stop.is_set():
                for _ in range(max(0, min(pace.due(), count - sent))):
                    seq, body = L.new(stream, size_of(rng))
                    info = c.publish(topic, body, pq)
                    if eff:                   # a QoS 0 delivery promises nothing
                        inflight[info.mid] = seq
                    sent += 1
                    pace.took()
                if c.loop(0.005) != mqtt.MQTT_ERR_SUCCESS:
                    raise RuntimeError("%s lost its connection" % cid)
            mqtt_wait(c, lambda: not inflight, 60 * SLOW, "PUBACK/PUBCOMP of every publish")
            deadline = time.monotonic() + (0.3 if not eff else 30 * SLOW)
            while time.monotonic() < deadline and (not eff or L.unsettled(stream)):
                c.loop(0.02)
            if rng.random() < 0.3:
                c.unsubscribe(topic)
                c.loop(0.05)
            if rng.random() < 0.1:
                mqtt_vanish(c)
            else:
                mqtt_disconnect(c)
            L.close([stream])

    # ---- across protocols

    def bridge(self):
        """AMQP publishes to amq.topic that MQTT sessions receive, and MQTT
        publishes that an AMQP queue bound to amq.topic receives."""
        rng = self.rng("bridge")
        L = self.ledger
        to_mqtt = self.phase_stream("amqp-to-mqtt")
        # RabbitMQ's rule, which Coney follows: a transient AMQP message
        # reaches MQTT subscribers at QoS 0, at most once, so it counts as
        # unconfirmed however the publish went
        to_mqtt_q0 = self.phase_stream("amqp-to-mqtt-q0")
        to_amqp = self.phase_stream("mqtt-to-amqp")
        conn = amqp_connect(self.b)
        pub = conn.channel()
        pub.confirm_delivery()
        cons = None
        c = None
        inflight = {}

        def on_publish(client, userdata, mid):
            t = inflight.pop(mid, None)
            if t is not None:
                L.mark(to_amqp, t, ACK)

        pace = Pace(self.bridge_rate * 2)
        next_churn = time.monotonic() + rng.uniform(2, 10)
        n = 0
        try:
            while not self.stop.is_set():
                if cons is None:
                    cons = Consumer(self.soak, rng, conn, self.from_mqtt, False)
                if c is None:
                    n += 1
                    c = mqtt_client("soak%d-b%d" % (self.number, n), mqtt.MQTTv311, True)
                    c.on_publish = on_publish
                    mqtt_connect(self.soak, c)
                for _ in range(max(0, pace.due())):
                    if rng.random() < 0.5:
                        mode = rng.choice([1, 2])
                        st = to_mqtt if mode == 2 else to_mqtt_q0
                        seq, body = L.new(st, size_of(rng))
                        props = pika.BasicProperties(delivery_mode=mode)
                        try:
                            pub.basic_publish("amq.topic", "soak.p.%d.amqp" % rng.randrange(
                                self.N_SUBS), body, props, mandatory=True)
                            if mode == 2:
                                L.mark(st, seq, ACK)
                        except pika.exceptions.NackError:
                            L.mark(st, seq, NACK)
                        except pika.exceptions.UnroutableError:
                            L.mark(st, seq, RET)
                    else:
                        seq, body = L.new(to_amqp, size_of(rng))
                        info = c.publish("soak/x/%d" % rng.randrange(10), body, rng.choice([1, 2]))
                        inflight[info.mid] = seq
                    pace.took()
                if c.loop(0.005) != mqtt.MQTT_ERR_SUCCESS:
                    raise RuntimeError("bridge MQTT client lost its connection")
                conn.process_data_events(time_limit=0)
                if time.monotonic() >= next_churn:
                    next_churn = time.monotonic() + rng.uniform(2, 10)
                    if rng.random() < 0.5:
                        cons.cancel()
                        cons = None
                    else:
                        mqtt_wait(c, lambda: not inflight, 60 * SLOW, "PUBACK/PUBCOMP")
                        mqtt_disconnect(c)
                        c = None
            if c is not None:
                mqtt_wait(c, lambda: not inflight, 60 * SLOW, "PUBACK/PUBCOMP")
                mqtt_disconnect(c)
            if cons is not None:
                cons.cancel()
            ch = conn.channel()
            self.drain_queue(ch, self.from_mqtt)
            ch.queue_delete(self.from_mqtt)
        finally:
            quiet_close(conn)

    # ---- churn for its own sake

    def churn(self):
        rng = self.rng("churn")
        n = 0
        last_tools = time.monotonic()
        actions = ["exclusive", "exchanges", "channels", "raw", "http"]
        weights = [5, 2, 2, 1, 1]
        while not self.stop.is_set():
            n += 1
            a = rng.choices(actions, weights)[0]
            if time.monotonic() - last_tools > 20 and shutil.which("amqp-publish"):
                a, last_tools = "tools", time.monotonic()
            try:
                getattr(self, "churn_" + a)(rng, n)
            except Exception:
                self.soak.error("churn", "%s %d:\n%s" % (a, n, traceback.format_exc()))
                time.sleep(1)
            time.sleep(rng.uniform(0.05, 0.4))

    def churn_exclusive(self, rng, n):
        """An RPC-like round trip: a server-named exclusive queue, a few
        confirmed messages to it, consumed back on another channel, then
        the connection goes (and the queue with it)."""
        L = self.ledger
        conn = amqp_connect(self.b)
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            q = ch.queue_declare("", exclusive=True).method.queue
            stream = L.stream("amqp-exclusive")
            for _ in range(rng.randint(1, 30)):
                seq, body = L.new(stream, size_of(rng))
                ch.basic_publish("", q, body, pika.BasicProperties(reply_to=q), mandatory=True)
                L.mark(stream, seq, ACK)
            cons = Consumer(self.soak, rng, conn, q, False)
            deadline = time.monotonic() + 30 * SLOW
            while L.unsettled(stream) and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.02)
                if cons.batch:
                    cons.flush()
                elif not L.unsettled(stream):
                    break
                elif rng.random() < 0.05:       # a held message comes back after a requeue
                    cons.close_channel()
                    cons = Consumer(self.soak, rng, conn, q, False)
            for _ in range(rng.randint(0, 10)):
                conn.channel()
            if rng.random() < 0.2:
                amqp_vanish(conn)
            else:
                conn.close()
            L.close([stream])
        finally:
            quiet_close(conn)

    def churn_exchanges(self, rng, n):
        """Exchanges of every type chained exchange-to-exchange, a message
        through them, then everything deleted."""
        L = self.ledger
        conn = amqp_connect(self.b)
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            top = "%s.cx%d.topic" % (self.prefix, n)
            mid = "%s.cx%d.headers" % (self.prefix, n)
            fan = "%s.cx%d.fanout" % (self.prefix, n)
            ch.exchange_declare(top, "topic", auto_delete=rng.random() < 0.5)
            ch.exchange_declare(mid, "headers")
            ch.exchange_declare(fan, "fanout", durable=rng.random() < 0.5)
            ch.exchange_bind(mid, top, "a.#")
            ch.exchange_bind(fan, mid, "", arguments={"x-match": "any", "k": "v"})
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(q, fan)
            stream = L.stream("amqp-e2e")
            for _ in range(rng.randint(1, 20)):
                seq, body = L.new(stream, size_of(rng))
                ch.basic_publish(top, "a.b.c", body, pika.BasicProperties(headers={"k": "v"}),
                                 mandatory=True)
                L.mark(stream, seq, ACK)
            self.drain_queue(ch, q)
            for e in (top, mid, fan):
                ch.exchange_delete(e)
            conn.close()
            L.close([stream])
        finally:
            quiet_close(conn)

    def churn_channels(self, rng, n):
        conn = amqp_connect(self.b)
        try:
            chans = [conn.channel() for _ in range(rng.randint(1, 40))]
            for ch in chans:
                if rng.random() < 0.5:
                    ch.close()
            if rng.random() < 0.3:
                amqp_vanish(conn)
            else:
                conn.close()
        finally:
            quiet_close(conn)

    def churn_raw(self, rng, n):
        """Clients that go mid-handshake or mid-packet."""
        for port, data in ((self.b.port, b"AMQP\x00\x00\x09\x01"),
                           (self.b.port, b"AMQP\x00\x00\x09\x01\x01\x00\x00"),
                           (self.b.mqtt_port, b"\x10\x20\x00\x04MQTT\x04"),
                           (self.b.http_port, b"GET /api/overview HTTP/1.1\r\nHost: x\r\n")):
            s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
            s.sendall(data)
            if rng.random() < 0.5:
                s.settimeout(0.2)           # a reply, or the broker still waiting
                try:
                    s.recv(100)
                except OSError:
                    pass
            s.close()

    def churn_http(self, rng, n):
        for path in ("/api/overview", "/api/connections", "/api/queues", "/api/channels",
                     "/api/exchanges"):
            self.b.api(path)

    def churn_tools(self, rng, n):
        """amqp-tools: amqp-publish -l sends lines as messages and exits 0
        after connection.close-ok, which the broker sends only after it has
        routed them all: as good as a confirm. amqp-get takes one."""
        L = self.ledger
        conn = amqp_connect(self.b)
        try:
            ch = conn.channel()
            q = "%s.tools%d" % (self.prefix, n)
            ch.queue_declare(q)
            stream = L.stream("amqp-tools")
            seqs, lines = [], []
            for _ in range(rng.randint(1, 20)):
                seq, body = L.new(stream, rng.randint(24, 200))
                seqs.append(seq)
                lines.append(body)
            url = "amqp://guest:guest@127.0.0.1:%d" % self.b.port
            r = subprocess.run(["amqp-publish", "--url", url, "-r", q, "-l"],
                               input=b"\n".join(lines) + b"\n", capture_output=True,
                               timeout=60 * SLOW)
            if r.returncode != 0:
                raise RuntimeError("amqp-publish: %d %s" % (r.returncode, r.stderr[-300:]))
            for seq in seqs:
                L.mark(stream, seq, ACK)
            for _ in range(rng.randint(0, min(2, len(seqs)))):   # it exits 2 on an empty queue
                r = subprocess.run(["amqp-get", "--url", url, "-q", q], capture_output=True,
                                   timeout=60 * SLOW)
                if r.returncode != 0:
                    raise RuntimeError("amqp-get: %d %s" % (r.returncode, r.stderr[-300:]))
                L.arrived(r.stdout.rstrip(b"\n"), False)
            self.drain_queue(ch, q)
            ch.queue_delete(q)
            conn.close()
            L.close([stream])
        finally:
            quiet_close(conn)


# ------------------------------------------------------------ the soak

class Soak:
    def __init__(self, binary):
        self.binary = binary
        self.ledger = Ledger()
        self.abort = threading.Event()
        self.errors = []
        self.errors_lock = threading.Lock()
        self.samples = []
        self.b = None
        self.phase = None

    def error(self, who, text):
        with self.errors_lock:
            self.errors.append((who, text))
            if len(self.errors) <= 10:
                log("ERROR in %s: %s" % (who, text.rstrip()))

    def sampler(self):
        """Every SAMPLE_EVERY s: RSS and fds; every REPORT_EVERY s a progress
        line; a broker that dies ends the soak."""
        t0 = last_report = time.monotonic()
        last_count = 0
        while not self.done.wait(SAMPLE_EVERY):
            if not self.b.alive():
                self.error("broker", "the broker died (exit %r):\n%s"
                           % (self.b.proc.returncode, self.b.log_tail()))
                self.abort.set()
                return
            s = self.b.sample()
            self.samples.append((time.monotonic(), s))
            lost = self.ledger.settled_check()
            if lost:
                log("LOST %d confirmed messages (first: %s)" % (lost, self.ledger.samples[-1]))
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY - 0.5:
                with self.ledger.lock:
                    count = sum(len(st.st) for st in self.ledger.streams)
                    dlv = self.ledger.deliveries
                    dups = sum(self.ledger.dups.values())
                log("%5.0f s  %4.0f msg/s  published %d  arrived %d  lost %d  dup %d  "
                    "rss %s (anon %s)  fds %d  errors %d"
                    % (now - t0, (count - last_count) / (now - last_report), count, dlv,
                       self.ledger.early_lost, dups, mb(s["VmRSS"]), mb(s["RssAnon"]),
                       s["fds"], len(self.errors)))
                last_report, last_count = now, count

    def idle_sample(self, what, target_fds=None):
        """Wait until the broker has no client and its fd count holds
        still, then sample it. The management API says when the clients
        are gone; the fds are counted a second after asking, when the
        broker has closed the API's own connection too. Above target_fds
        or with a socket in CLOSE_WAIT, wait up to 15 s more: an HTTP client
        that sent half its headers and left can sit there until the
        broker's 10 s header sweep."""
        deadline = time.monotonic() + IDLE_TIMEOUT
        settle = None
        while True:
            t = self.b.api("/api/overview")["object_totals"]
            idle = t["connections"] == 0 and t["channels"] == 0 and t["consumers"] == 0
            time.sleep(1.0)
            s = self.b.sample()
            s["fd_targets"] = self.b.fd_targets()
            time.sleep(0.5)
            again = self.b.sample()
            closing = sum(n for k, n in s["fd_targets"].items() if k.endswith("close-wait"))
            if idle and again["fds"] == s["fds"] and (
                    closing or target_fds is not None and s["fds"] > target_fds):
                settle = settle or time.monotonic() + 15 * SLOW
                if time.monotonic() < settle:
                    continue
            if idle and again["fds"] == s["fds"]:
                s["objects"] = t
                log("%s: rss %s (anon %s, file %s), fds %d, queues %d, exchanges %d"
                    % (what, mb(s["VmRSS"]), mb(s["RssAnon"]), mb(s["RssFile"]), s["fds"],
                       t["queues"], t["exchanges"]))
                return s
            if time.monotonic() > deadline:
                self.error("idle", "%s: the broker is not idle after %.0f s: %r, fds %d"
                           % (what, IDLE_TIMEOUT, t, s["fds"]))
                s["objects"] = t
                return s

    def run(self):
        log("broker %s%s, %.0f s, about %.0f msg/s, seed %d (CONEY_SOAK_SEED=%d replays the "
            "choices)" % (" ".join(WRAPPER) + " " if WRAPPER else "", self.binary, SECONDS,
                          RATE, SEED, SEED))
        for attempt in range(5):
            try:
                self.b = Broker(self.binary)
                break
            except PortTaken as e:             # a free port someone else took meanwhile
                log(str(e))
        log("data dir %s, AMQP %d, MQTT %d, HTTP %d, pid %d" % (
            self.b.data_dir, self.b.port, self.b.mqtt_port, self.b.http_port, self.b.proc.pid))
        self.done = threading.Event()
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        warm = min(60.0, max(3.0, SECONDS * 0.05))
        t0 = time.monotonic()
        try:
            Phase(self, 1, "warm-up", warm).run()
            self.baseline = self.idle_sample("baseline")
            self.samples.append((time.monotonic(), self.baseline))
            if not self.abort.is_set():
                Phase(self, 2, "main", max(1.0, SECONDS - warm)).run()
            self.end = self.idle_sample("end", self.baseline["fds"])
        except Exception:
            self.error("soak", traceback.format_exc())
            self.end = None
            self.baseline = getattr(self, "baseline", None)
        self.elapsed = time.monotonic() - t0
        self.cpu = self.b.cpu() if self.b.alive() else None
        self.done.set()
        sampler.join(5)
        alive = self.b.alive()
        rc = self.b.stop() if alive else self.b.proc.returncode
        ok = self.report(rc)
        if not ok or os.environ.get("CONEY_KEEP_DATA"):
            log("broker log: %s (kept)" % self.b.log_path)
            os.environ["CONEY_KEEP_DATA"] = "1"
        self.b.cleanup()
        return ok

    def report(self, rc):
        L = self.ledger
        kinds = L.totals()
        cols = ["published", "confirmed", "nacked", "delivered", "dead", "unconfirmed",
                "redelivered", "again", "lost", "dup"]
        heads = ["published", "confirmed", "nacked", "delivered", "dead", "unconf",
                 "redeliv", "again", "lost", "dup"]
        print()
        print("%-17s" % "kind" + "".join("%10s" % c for c in heads))
        sums = collections.Counter()
        for kind, t in sorted(kinds.items()):
            t["lost"] = t["open"]
            sums.update(t)
            print("%-17s" % kind + "".join("%10d" % t[c] for c in cols))
        print("%-17s" % "total" + "".join("%10d" % sums[c] for c in cols))
        print("(confirmed: the broker took it, so it must arrive; dead: dead-lettered; unconf:"
              " never\n confirmed, or QoS 0; redeliv: deliveries flagged redelivered or DUP;"
              " again: an id\n delivered a second time, flagged; dup: the same unflagged,"
              " or at QoS 2)")
        print()
        if L.dead_reasons:
            print("dead-lettered by reason: " + ", ".join(
                "%s %d" % kv for kv in sorted(L.dead_reasons.items())))
        print("unconfirmed messages that arrived anyway: %d of %d; refused yet delivered: %d"
              % (sums["unconf_arrived"], sums["unconfirmed"], sums["bad"]))
        problems = []
        if sums["lost"]:
            problems.append("%d confirmed messages lost: %s" % (sums["lost"],
                                                                "; ".join(L.lost_samples())))
        if sums["dup"]:
            problems.append("%d unflagged duplicate deliveries" % sums["dup"])
        if sums["bad"]:
            problems.append("%d nacked or returned messages delivered" % sums["bad"])
        if sums["returned"]:
            problems.append("%d publishes returned unroutable" % sums["returned"])
        if L.unknown or L.corrupt:
            problems.append("%d bodies with an unknown id, %d corrupt" % (L.unknown, L.corrupt))
        if L.samples:
            print("first problems seen: " + "\n  ".join([""] + L.samples))
        for t in L.lost_traces() if sums["lost"] else []:
            print(t)

        base, end = self.baseline, self.end
        run = [s for t, s in self.samples]
        if base and end and run:
            peak_rss = max(s["VmRSS"] for s in run)
            peak_fds = max(s["fds"] for s in run)
            bound = base["RssAnon"] + max(RSS_SLACK_MB * 1048576,
                                          base["RssAnon"] * RSS_SLACK_PCT / 100)
            print()
            print("%-22s%14s%14s%14s" % ("", "baseline", "peak", "end"))
            print("%-22s%14s%14s%14s" % ("RSS (VmRSS)", mb(base["VmRSS"]), mb(peak_rss),
                                         mb(end["VmRSS"])))
            print("%-22s%14s%14s%14s" % ("  anonymous (RssAnon)", mb(base["RssAnon"]),
                                         mb(max(s["RssAnon"] for s in run)), mb(end["RssAnon"])))
            print("%-22s%14s%14s%14s" % ("  files (RssFile)", mb(base["RssFile"]),
                                         mb(max(s["RssFile"] for s in run)), mb(end["RssFile"])))
            print("%-22s%14d%14d%14d" % ("file descriptors", base["fds"], peak_fds, end["fds"]))
            bo, eo = base["objects"], end["objects"]
            print("%-22s%14d%14s%14d" % ("queues", bo["queues"], "", eo["queues"]))
            print("%-22s%14d%14s%14d" % ("exchanges", bo["exchanges"], "", eo["exchanges"]))
            print("anonymous RSS bound: baseline + max(%.0f MB, %.0f%%) = %s%s" % (
                RSS_SLACK_MB, RSS_SLACK_PCT, mb(bound), "" if CHECK_RSS else
                " (not checked: %s)" % ("valgrind" if WRAPPER else "sanitizer build")))
            if end["fds"] != base["fds"]:
                more = end["fd_targets"] - base["fd_targets"]
                fewer = base["fd_targets"] - end["fd_targets"]
                print("fds at the end, not at the baseline: %s; gone: %s" % (
                    dict(more) or "none", dict(fewer) or "none"))
            if end["fds"] > base["fds"] + FD_SLACK:
                problems.append("fds did not return: %d at the end, baseline %d (+%d allowed)"
                                % (end["fds"], base["fds"], FD_SLACK))
            if CHECK_RSS and end["RssAnon"] > bound:
                problems.append("RSS did not return: anonymous %s at the end, bound %s"
                                % (mb(end["RssAnon"]), mb(bound)))
            if eo["queues"] != bo["queues"] or eo["exchanges"] != bo["exchanges"]:
                problems.append("objects left behind: %r, baseline %r" % (eo, bo))
        else:
            problems.append("no baseline or end sample")

        store = os.path.join(self.b.data_dir, "store")
        if rc == 0 and shutil.which("mdb_stat"):
            r = subprocess.run(["mdb_stat", "-a", store], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True)
            entries, db = {}, None
            for line in r.stdout.splitlines():
                if line.startswith("Status of "):
                    db = line[len("Status of "):].strip()
                elif line.strip().startswith("Entries:") and db:
                    entries[db] = int(line.split(":")[1])
            want = ("msgs", "qidx", "retained", "sessions")
            print("store after the stop: data.mdb %s; entries: %s" % (
                mb(os.path.getsize(os.path.join(store, "data.mdb"))),
                ", ".join("%s %s" % (d, entries.get(d, "?")) for d in want)))
            left = {d: entries[d] for d in want if entries.get(d)}
            if r.returncode != 0 or left:
                problems.append("the store is not empty: %r (mdb_stat exit %d)"
                                % (left, r.returncode))

        log_text = self.b.log_text()
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            if marker in log_text:
                problems.append("sanitizer report in the broker log (%s)" % marker)
        vg = [ln for ln in log_text.splitlines()
              if "ERROR SUMMARY" in ln or "definitely lost" in ln or "indirectly lost" in ln]
        if vg:
            print("valgrind: " + "\n          ".join(ln.split("== ", 1)[-1] for ln in vg))
        if rc != 0:
            problems.append("the broker's exit after SIGTERM: %r\n%s" % (rc, self.b.log_tail(30)))
        if self.errors:
            problems.append("%d errors in the traffic, the first:\n%s: %s" % (
                len(self.errors), self.errors[0][0], self.errors[0][1]))
        print("%.0f s, %d messages (%.0f a second), %d arrivals; broker CPU %s; exit %r"
              % (self.elapsed, sums["published"], sums["published"] / max(self.elapsed, 1),
                 L.deliveries, "%.0f s (%.0f%% of a core)" % (self.cpu, 100 * self.cpu
                                                             / max(self.elapsed, 1))
                 if self.cpu is not None else "-", rc))
        if problems:
            print("\nSOAK FAILED:\n- " + "\n- ".join(problems))
            return False
        print("soak passed: lost 0, dup 0, fds%s back at the baseline"
              % (" and RSS" if CHECK_RSS else ""))
        return True


def main():
    binary = os.environ.get("CONEY_BIN") or os.path.join(REPO, "build", "coney")
    if not os.path.exists(binary):
        print("soak: %s does not exist (set CONEY_BIN)" % binary, file=sys.stderr)
        return 2
    return 0 if Soak(os.path.abspath(binary)).run() else 1


if __name__ == "__main__":
    sys.exit(main())
