#!/usr/bin/python3
"""Coney against RabbitMQ and Mosquitto, side by side (`make bench`,
docs/bench.md).

Starts a private Coney and, when they are installed, a private RabbitMQ node
(for the AMQP scenarios) and a private Mosquitto (for the MQTT scenarios) on
free ports in a temporary directory, runs every scenario of SCENARIOS with
coney-perf (AMQP) or coney-mqtt-perf (MQTT) against Coney and the scenario's
peer in turn for ROUNDS rounds, and prints the medians as one table per
peer.  Writes build/bench.md (the tables as Markdown), build/bench.json
(every round's raw RESULT) and build/bench-logs/ (broker logs and each load
tool run's output).  Everything it starts it stops, at the end, on an error
and on Ctrl-C.

Standard library only; run by /usr/bin/python3 from scripts/bench.sh.
"""

import ctypes
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# --------------------------------------------------------------------------
# The scenarios: one row each.  args are coney-perf's (the driver adds
# --host, --port, -z SECONDS unless -C is given, --queue-prefix and --json);
# metrics are (RESULT key, label, "hi" if higher is better else "lo").
# rate "half-peak" means -r is half of Coney's median recv_rate in
# 1to1-auto, which must run first (it is added when BENCH_ONLY leaves it out).
# kind "memory" runs against a freshly started broker and reports RSS growth.
#
# proto "mqtt" rows run coney-mqtt-perf against Coney's MQTT listener and
# against Mosquitto (the driver adds --host, --port, -z SECONDS unless -C is
# given, --topic-prefix and --json).  Both brokers hold at most 10
# unacknowledged QoS 1 messages per subscriber (Coney's mqtt.prefetch
# default, Mosquitto's max_inflight_messages as MOSQUITTO_CONF sets it); each
# publisher keeps at most 100 unacknowledged (-w 100, MQTT 3.1.1, so neither
# broker's Receive Maximum applies).  kind "mqtt-memory" holds N idle
# subscribed clients and reports RSS growth per connection.

SENT = ("sent_rate", "published msg/s", "hi")
RECV = ("recv_rate", "received msg/s", "hi")
P50 = ("p50_us", "p50 latency µs", "lo")
P99 = ("p99_us", "p99 latency µs", "lo")
ACHIEVED = ("recv_rate", "achieved msg/s", "hi")  # did it keep up with -r?

SCENARIOS = [
    dict(name="1to1-auto", title="1→1, 16 B, transient, auto-ack",
         args="-x 1 -y 1 -s 16 -t direct --queues 1 -a",
         metrics=[SENT, RECV]),
    dict(name="1to1-ack", title="1→1, 16 B, manual ack, prefetch 100",
         args="-x 1 -y 1 -s 16 -t direct --queues 1 -q 100",
         metrics=[RECV]),
    dict(name="1to1-1kb", title="1→1, 1 KB, transient, auto-ack",
         args="-x 1 -y 1 -s 1024 -t direct --queues 1 -a",
         metrics=[RECV]),
    dict(name="1to1-confirm",
         title="1→1, 16 B, persistent, durable queue, confirms (window 100)",
         args="-x 1 -y 1 -s 16 -t direct --queues 1 -f persistent -c 100 -a",
         metrics=[("confirm_rate", "confirmed msg/s", "hi")]),
    # Every confirm below waits for a commit: a manual-ack consumer holds
    # messages that must survive a crash; with no consumer every message
    # is stored. (Above, an auto-ack consumer may take a message before it
    # reaches the disk; both brokers then confirm it as consumed.)
    dict(name="confirm-ack",
         title="1→1, 16 B, persistent, confirms (window 100), manual ack, prefetch 100",
         args="-x 1 -y 1 -s 16 -t direct --queues 1 -f persistent -c 100 -q 100",
         metrics=[("confirm_rate", "confirmed msg/s", "hi")]),
    dict(name="confirm-store",
         title="16 B, persistent, confirms (window 100), no consumer: every message stored",
         args="-x 1 -y 0 -s 16 -t direct --queues 1 -f persistent -c 100",
         metrics=[("confirm_rate", "confirmed msg/s", "hi")]),
    dict(name="fanout-10", title="fan-out: 1 producer → fanout exchange → 10 queues, 10 consumers",
         args="-x 1 -y 10 -s 16 -t fanout --queues 10 -a",
         metrics=[("recv_rate", "deliveries/s", "hi"), SENT]),
    dict(name="4to4", title="4 producers → 4 consumers, 16 B, one queue",
         args="-x 4 -y 4 -s 16 -t direct --queues 1 -a",
         metrics=[SENT, RECV]),
    dict(name="queues-1000", title="1,000 queues, 1 consumer each, 4 producers spread over them",
         args="-x 4 -y 1000 -s 16 -t direct --queues 1000 -a",
         metrics=[RECV]),
    dict(name="lat-10k", title="latency at 10,000 msg/s, 1→1, 16 B",
         args="-x 1 -y 1 -s 16 -t direct --queues 1 -a -r 10000",
         metrics=[P50, P99, ACHIEVED]),
    dict(name="lat-half", title="latency at half of Coney's 1→1 peak, 16 B",
         args="-x 1 -y 1 -s 16 -t direct --queues 1 -a", rate="half-peak",
         metrics=[P50, P99, ACHIEVED]),
    dict(name="memory", title="memory: 1,000,000 × 16 B messages in one queue, no consumer",
         args="-x 1 -y 0 -s 16 -t direct --queues 1 -C 1000000 -c 1000 --keep",
         kind="memory",
         metrics=[("rss_per_msg", "RSS bytes/msg", "lo"),
                  ("anon_per_msg", "anon RSS bytes/msg", "lo")]),
    # ---- MQTT, against Mosquitto
    dict(name="mqtt-qos0-1to1", proto="mqtt", title="MQTT 1→1, 16 B, QoS 0",
         args="-x 1 -y 1 -s 16 -q 0", metrics=[SENT, RECV]),
    dict(name="mqtt-qos1-1to1", proto="mqtt",
         title="MQTT 1→1, 16 B, QoS 1 (publisher window 100)",
         args="-x 1 -y 1 -s 16 -q 1 -w 100", metrics=[SENT, RECV]),
    dict(name="mqtt-qos0-10to1-wildcard", proto="mqtt",
         title="MQTT 10 publishers → 1 subscriber on P/#, 16 B, QoS 0",
         args="-x 10 -y 1 -s 16 -q 0 --wildcard", metrics=[SENT, RECV]),
    dict(name="mqtt-qos1-10to1-wildcard", proto="mqtt",
         title="MQTT 10 publishers → 1 subscriber on P/#, 16 B, QoS 1 (window 100 each)",
         args="-x 10 -y 1 -s 16 -q 1 -w 100 --wildcard", metrics=[SENT, RECV]),
    dict(name="mqtt-lat-qos1-10k", proto="mqtt",
         title="MQTT latency at 10,000 msg/s, 1→1, 16 B, QoS 1",
         args="-x 1 -y 1 -s 16 -q 1 -w 100 -r 10000", metrics=[P50, P99, ACHIEVED]),
    dict(name="mqtt-memory", proto="mqtt", kind="mqtt-memory",
         title="MQTT memory: 1,000 idle clients, each subscribed to its own topic (QoS 1)",
         args="-x 0 -y 1000 --topics 1000 -q 1",
         metrics=[("rss_per_conn", "RSS bytes/connection", "lo"),
                  ("anon_per_conn", "anon RSS bytes/connection", "lo")]),
]
PEAK_SCENARIO = "1to1-auto"
PEERS = {"amqp": "rabbitmq", "mqtt": "mosquitto"}

MOSQUITTO = "/usr/sbin/mosquitto"
# Mosquitto's configuration, made as comparable as we can to Coney's
# defaults (docs/bench.md, "Fairness"): loopback only, anonymous, nothing
# on disk, no per-client queue limit (Coney's queues have none, and
# Mosquitto's default of 1,000 drops QoS 0 and QoS 1 messages for a
# subscriber that falls behind), 10 unacknowledged QoS 1/2 messages per
# client (Coney's mqtt.prefetch), Nagle off (Coney sets TCP_NODELAY).
MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 10
set_tcp_nodelay true
log_dest stdout
log_type error
log_type warning
log_type notice
connection_messages false
"""

RMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RMQ_CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def log(msg):
    print(msg, flush=True)


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# --------------------------------------------------------------------------
# Small helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def amqp_ready(port, timeout=1.0):
    """True when the port answers an AMQP 0-9-1 header with connection.start."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            buf = b""
            while len(buf) < 11:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            # frame type 1 (method), channel 0, then class 10 method 10
            return buf[0] == 1 and buf[1:3] == b"\0\0" and buf[7:11] == b"\x00\x0a\x00\x0a"
    except OSError:
        return False


def mqtt_ready(port, timeout=1.0):
    """True when the port answers an MQTT 3.1.1 CONNECT with an accepting
    CONNACK; the probe then disconnects politely."""
    cid = f"bench-probe-{os.getpid()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(cid).to_bytes(2, "big") + cid
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(bytes([0x10, len(body)]) + body)
            buf = b""
            while len(buf) < 4:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            ok = buf[:4] == b"\x20\x02\x00\x00"
            if ok:
                s.sendall(b"\xe0\x00")
            return ok
    except OSError:
        return False


def _pdeathsig():
    """In the child: die with SIGKILL if the driver itself is killed."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def proc_status(pid):
    """VmRSS and RssAnon of a process, in bytes (None if gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        return None
    return out


def pids_in_group(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parens
        rest = st[st.rindex(")") + 2:].split()
        if rest[0] != "Z" and int(rest[2]) == pgid:
            pids.append(int(d))
    return pids


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def environ_has(pid, entry):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry.encode() in f.read().split(b"\0")
    except OSError:
        return False


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(pred, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def cmd_out(argv, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --------------------------------------------------------------------------
# The brokers

class Coney:
    key, label = "coney", "Coney"

    def __init__(self, build, tmp, logdir):
        self.bin = os.path.join(build, "coney")
        self.data = os.path.join(tmp, "coney-data")
        self.logpath = self.logfile = os.path.join(logdir, "coney.log")
        self.port = self.mqtt_port = None
        self.want_mqtt = False  # set when an MQTT scenario will run
        self.proc = None
        self.dirty = self.broken = False

    def version(self):
        v = cmd_out([self.bin, "--version"])
        return v.split()[-1] if v else "?"

    def start(self):
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data)
        self.port = free_port()
        # An MQTT listener on a free port only when MQTT scenarios run
        # (1883 may be taken); 0 = none.
        self.mqtt_port = free_port() if self.want_mqtt else None
        with open(self.logpath, "a") as logf:
            logf.write(f"--- bench: starting coney on port {self.port}, "
                       f"MQTT port {self.mqtt_port or 'none'}\n")
            logf.flush()
            self.proc = subprocess.Popen(
                [self.bin, "--port", str(self.port), "--mqtt-port", str(self.mqtt_port or 0),
                 "--data-dir", self.data],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_pdeathsig)
        t0 = time.monotonic()

        def ready():
            return amqp_ready(self.port) and (not self.mqtt_port or mqtt_ready(self.mqtt_port))
        if not wait_until(lambda: self.proc.poll() is not None or ready(), 20):
            raise RuntimeError(f"coney did not accept AMQP and MQTT within 20 s; see {self.logpath}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"coney exited with {self.proc.returncode}:\n{tail(self.logpath)}")
        log(f"coney: pid {self.proc.pid}, port {self.port}"
            + (f", MQTT port {self.mqtt_port}" if self.mqtt_port else "")
            + f", ready in {time.monotonic() - t0:.1f} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def memory(self):
        return proc_status(self.proc.pid) if self.alive() else None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("coney: no exit 15 s after SIGTERM, killing")
        kill_group(self.proc.pid, signal.SIGKILL)  # anything it left behind
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


class RabbitMQ:
    key, label = "rabbitmq", "RabbitMQ"

    def __init__(self, tmp, logdir):
        self.base = os.path.join(tmp, "rabbitmq")
        self.logdir = os.path.join(logdir, "rabbitmq")
        self.node = f"coneybench-{os.getpid()}@localhost"
        self.port = None
        self.proc = None
        self.epmd_port = None
        self.dirty = self.broken = False

    @staticmethod
    def installed():
        return os.access(RMQ_SERVER, os.X_OK)

    def version(self):
        v = cmd_out(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]) or "?"
        e = cmd_out(["dpkg-query", "-W", "-f=${Version}", "erlang-base"])
        return f"{v}" + (f" (Erlang {e})" if e else "")

    def env(self):
        env = dict(os.environ)
        b = self.base
        env.update(
            HOME=b,  # a private .erlang.cookie, shared with rabbitmqctl
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(b, "mnesia"),
            RABBITMQ_LOG_BASE=self.logdir,
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(b, "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=os.path.join(b, "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(b, "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(b, "rabbitmq-env.conf"),
            # our own epmd on a private port, so stopping it harms nobody
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def start(self):
        if self.epmd_port is None:  # keep one epmd across restarts
            self.epmd_port = free_port()
        shutil.rmtree(os.path.join(self.base, "mnesia"), ignore_errors=True)
        os.makedirs(os.path.join(self.base, "mnesia"), exist_ok=True)
        os.makedirs(self.logdir, exist_ok=True)
        for name, text in (("enabled_plugins", "[].\n"), ("rabbitmq.conf", ""),
                           ("advanced.config", "[].\n"), ("rabbitmq-env.conf", "")):
            with open(os.path.join(self.base, name), "w") as f:
                f.write(text)
        self.port = free_port()
        self.dist_port = free_port()
        self.stdout = self.logfile = os.path.join(self.logdir, "stdout.log")
        with open(self.stdout, "a") as logf:
            logf.write(f"--- bench: starting {self.node} on port {self.port}\n")
            logf.flush()
            # its own session and process group (setsid), killed as a group
            self.proc = subprocess.Popen(
                [RMQ_SERVER], env=self.env(), cwd=self.base,
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True)
        t0 = time.monotonic()
        if not wait_until(lambda: self.proc.poll() is not None or amqp_ready(self.port), 120, 0.5):
            raise RuntimeError(f"RabbitMQ did not accept AMQP within 120 s; see {self.logdir}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}:\n"
                               f"{tail(self.stdout)}")
        log(f"rabbitmq: node {self.node}, pid {self.beam_pid()}, port {self.port}, "
            f"ready in {time.monotonic() - t0:.1f} s")

    def beam_pid(self):
        if self.proc is None:
            return None
        for pid in pids_in_group(self.proc.pid):
            if comm(pid).startswith("beam"):
                return pid
        mark = f"RABBITMQ_NODENAME={self.node}"  # fallback: not in its command line
        for p in os.listdir("/proc"):
            if p.isdigit() and comm(int(p)).startswith("beam") and environ_has(int(p), mark):
                return int(p)
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and self.beam_pid() is not None

    def memory(self):
        pid = self.beam_pid()
        return proc_status(pid) if pid else None

    def stop(self):
        if self.proc is not None:
            pgid = self.proc.pid
            grace = 2  # a node that is still booting ignores rabbitmqctl
            if self.proc.poll() is None:
                try:
                    if subprocess.run([RMQ_CTL, "-n", self.node, "stop"], env=self.env(),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, timeout=60).returncode == 0:
                        grace = 30
                except (OSError, subprocess.SubprocessError):
                    pass
            if not wait_until(lambda: not pids_in_group(pgid), grace):
                log(f"rabbitmq: node still up {grace} s after rabbitmqctl stop, "
                    "sending its process group SIGTERM")
                kill_group(pgid, signal.SIGTERM)
                if not wait_until(lambda: not pids_in_group(pgid), 10):
                    kill_group(pgid, signal.SIGKILL)
                    wait_until(lambda: not pids_in_group(pgid), 10)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None

    def stop_epmd(self):
        """The epmd our node started (it daemonizes out of the group)."""
        if self.epmd_port is None:
            return
        env = self.env()
        cmd_out(["epmd", "-port", str(self.epmd_port), "-kill"], env=env)
        mark = f"ERL_EPMD_PORT={self.epmd_port}"

        def ours():
            return [int(p) for p in os.listdir("/proc") if p.isdigit()
                    and comm(int(p)) == "epmd" and environ_has(int(p), mark)]
        if not wait_until(lambda: not ours(), 5):
            for pid in ours():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.epmd_port = None


class Mosquitto:
    key, label = "mosquitto", "Mosquitto"

    def __init__(self, tmp, logdir):
        self.conf = os.path.join(tmp, "mosquitto.conf")
        self.logpath = self.logfile = os.path.join(logdir, "mosquitto.log")
        self.port = self.mqtt_port = None
        self.proc = None
        self.dirty = self.broken = False

    @staticmethod
    def installed():
        return os.access(MOSQUITTO, os.X_OK)

    def version(self):
        return cmd_out(["dpkg-query", "-W", "-f=${Version}", "mosquitto"]) or "?"

    def start(self):
        self.mqtt_port = self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(MOSQUITTO_CONF.format(port=self.port))
        with open(self.logpath, "a") as logf:
            logf.write(f"--- bench: starting mosquitto on port {self.port}\n")
            logf.flush()
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", self.conf],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_pdeathsig)
        t0 = time.monotonic()
        if not wait_until(lambda: self.proc.poll() is not None or mqtt_ready(self.port), 20):
            raise RuntimeError(f"mosquitto did not accept MQTT within 20 s; see {self.logpath}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n"
                               f"{tail(self.logpath)}")
        log(f"mosquitto: pid {self.proc.pid}, port {self.port}, "
            f"ready in {time.monotonic() - t0:.1f} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def memory(self):
        return proc_status(self.proc.pid) if self.alive() else None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("mosquitto: no exit 15 s after SIGTERM, killing")
        kill_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


# --------------------------------------------------------------------------
# Running the load tools

class Runner:
    def __init__(self, perf, mqtt_perf, seconds, logdir):
        self.tools = {"amqp": perf, "mqtt": mqtt_perf}
        self.seconds = seconds
        self.logdir = logdir
        self.proc = None

    def run(self, broker, args, prefix, logname, proto="amqp", hold=None):
        """One load tool run.  With hold, the tool runs until it prints its
        `ready:` line; then hold() is called while it keeps its connections,
        and the tool is stopped with SIGINT (it still reports)."""
        tool = self.tools[proto]
        port = broker.mqtt_port if proto == "mqtt" else broker.port
        argv = [tool, "--host", "127.0.0.1", "--port", str(port)] + args
        if hold:
            argv += ["-z", "3600"]
        elif "-C" not in args:
            argv += ["-z", str(self.seconds)]
        argv += ["--topic-prefix" if proto == "mqtt" else "--queue-prefix", prefix, "--json"]
        timeout = 1800 if "-C" in args or hold else self.seconds * 3 + 60
        rec = dict(command=shlex.join(argv[1:]), ok=False)
        t0 = time.monotonic()
        logpath = os.path.join(self.logdir, logname)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         start_new_session=True, preexec_fn=_pdeathsig)
            try:
                if hold:
                    out = self._held(hold, timeout, rec)
                else:
                    out, _ = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.proc.pid, signal.SIGKILL)
                out, _ = self.proc.communicate()
                rec["error"] = f"timed out after {timeout} s"
            rc = self.proc.returncode
        except OSError as e:
            rec["error"] = f"cannot run {tool}: {e}"
            return rec
        finally:
            if self.proc is not None and self.proc.poll() is None:
                kill_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        rec["elapsed"] = round(time.monotonic() - t0, 2)
        rec["exit"] = rc
        with open(logpath, "w") as f:
            f.write(shlex.join(argv) + "\n" + out)
        result = None
        for line in reversed(out.splitlines()):
            if line.startswith("RESULT "):
                try:
                    result = json.loads(line[len("RESULT "):])
                except ValueError:
                    pass
                break
        if isinstance(result, dict):
            rec["result"] = result
        name = os.path.basename(tool)
        if "error" in rec:
            pass
        elif rc != 0:
            rec["error"] = f"{name} exited with {rc}"
        elif not isinstance(result, dict):
            rec["error"] = "no RESULT line"
        elif result.get("ok") is False:
            rec["error"] = f"{name} reported ok: false"
        else:
            rec["ok"] = True
        if not rec["ok"]:
            last = [l for l in out.splitlines() if l.strip()][-3:]
            rec["output_tail"] = last
        return rec

    def _held(self, hold, timeout, rec):
        """Read the tool's output until `ready:`, run hold(), stop the tool
        with SIGINT; returns the whole output."""
        lines, ready = [], threading.Event()

        def reader():
            for line in self.proc.stdout:
                lines.append(line)
                if line.startswith("ready:"):
                    ready.set()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        end = time.monotonic() + timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > end:
                break
        if ready.is_set() and self.proc.poll() is None:
            try:
                rec["held"] = hold()
            finally:
                try:
                    os.kill(self.proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        elif self.proc.poll() is None:
            kill_group(self.proc.pid, signal.SIGKILL)
            rec["error"] = "the clients never became ready"
        self.proc.wait(max(1, end - time.monotonic()))
        t.join(10)
        return "".join(lines)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc.pid, signal.SIGKILL)


def count_arg(args):
    return int(args[args.index("-C") + 1])


def settled_memory(broker, at_least=20, window=10, limit=180):
    """The broker's memory once VmRSS has moved less than 1 % for `window`
    seconds, and no sooner than `at_least` seconds from now; after `limit`
    seconds, as it is.  RabbitMQ needs it: its RSS drops by tens of MB in
    the first seconds after boot, and after a million messages it peaks
    near 2 GB, holds a few seconds, then falls to about 40 % of that over
    some 30 s."""
    samples = []
    t0 = time.monotonic()
    n = int(window / 0.5) + 1
    while True:
        m = broker.memory()
        if m is None:
            return None
        samples.append(m["VmRSS"])
        w = samples[-n:]
        elapsed = time.monotonic() - t0
        if elapsed >= limit or (elapsed >= at_least and len(w) == n
                                and max(w) - min(w) <= 0.01 * max(w)):
            m["settle_s"] = round(elapsed, 1)
            return m
        time.sleep(0.5)


def mqtt_memory_run(runner, broker, args, prefix, logname):
    """RSS growth per connection of N idle MQTT clients, each subscribed:
    a fresh broker, settled; the clients connect and subscribe; settled
    again while they stay connected; then they disconnect."""
    broker.stop()
    broker.start()
    before = settled_memory(broker, at_least=10, window=5)
    rec = runner.run(broker, args, prefix, logname, proto="mqtt",
                     hold=lambda: settled_memory(broker, at_least=10, window=5))
    after = rec.pop("held", None)
    if not rec["ok"]:
        return rec
    if before is None or after is None:
        rec.update(ok=False, error="broker gone while measuring memory")
        return rec
    n = int(args[args.index("-y") + 1])
    rec["memory"] = dict(before=before, after=after, connections=n)
    rec["result"]["rss_per_conn"] = (after["VmRSS"] - before["VmRSS"]) / n
    rec["result"]["anon_per_conn"] = (after.get("RssAnon", 0) - before.get("RssAnon", 0)) / n
    return rec


def memory_run(runner, broker, args, prefix, logname):
    """RSS growth per message of one queue filled with -C messages."""
    broker.stop()
    broker.start()  # a fresh broker: nothing allocated by earlier scenarios
    before = settled_memory(broker)
    rec = runner.run(broker, args, prefix, logname)
    if not rec["ok"]:
        return rec
    after = settled_memory(broker)
    if before is None or after is None:
        rec.update(ok=False, error="broker gone while measuring memory")
        return rec
    n = count_arg(args)
    rec["memory"] = dict(before=before, after=after, messages=n)
    rec["result"]["rss_per_msg"] = (after["VmRSS"] - before["VmRSS"]) / n
    rec["result"]["anon_per_msg"] = (after.get("RssAnon", 0) - before.get("RssAnon", 0)) / n
    return rec


# --------------------------------------------------------------------------
# Reporting

def fmt(value, metric):
    if value is None:
        return "fail"
    if metric.endswith(("per_msg", "per_conn")):
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def medians(runs, brokers, metric):
    """{broker: (median or None, ok rounds, rounds)}"""
    out = {}
    for b in brokers:
        vals = []
        rs = [r for r in runs if r["broker"] == b]
        for r in rs:
            v = r.get("result", {}).get(metric) if r["ok"] else None
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                vals.append(float(v))
        out[b] = (statistics.median(vals) if vals else None, len(vals), len(rs))
    return out


def table_rows(results, brokers, peer):
    """The rows of the scenarios compared with `peer`."""
    rows = []
    for sc in results:
        if sc["peer"] != peer:
            continue
        for key, label, better in sc["metrics"]:
            med = medians(sc["runs"], brokers, key)
            cells = []
            for b in ("coney", peer):
                if b not in brokers:
                    cells.append("-")
                    continue
                v, ok, n = med[b]
                c = fmt(v, key) if n else "-"  # not run (stopped early)
                if v is not None and ok < n:
                    c += f" ({ok}/{n} ok)"
                cells.append(c)
            c, r = med.get("coney", (None,))[0], med.get(peer, (None,))[0]
            ratio = "-"
            if c is not None and r:
                x = c / r  # two significant digits when it is tiny
                digits = 2 if abs(x) >= 0.01 or x == 0 else 1 - math.floor(math.log10(abs(x)))
                ratio = f"{x:.{digits}f}×"
            arrow = "↑" if better == "hi" else "↓"
            rows.append([sc["title"], f"{label} {arrow}", cells[0], cells[1], ratio])
    return rows


def render(rows, header, peer_label):
    cols = ["scenario", "metric", "Coney (median)", f"{peer_label} (median)",
            f"Coney/{peer_label}"]
    widths = [max(len(r[i]) for r in rows + [cols]) for i in range(len(cols))]
    right = {2, 3, 4}

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "| " + " | ".join(("-" * (w - 1) + ":") if i in right else "-" * w
                            for i, w in enumerate(widths)) + " |"
    lastscen, out = None, []
    for r in rows:  # the scenario named once, on its first metric
        cells = list(r)
        if cells[0] == lastscen:
            cells[0] = ""
        lastscen = r[0]
        out.append(line(cells))
    return "\n".join(header + ([""] if header else []) + [line(cols), sep] + out) + "\n"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    cpu = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(nproc=os.cpu_count(), cpu=cpu, kernel=platform.release(),
                date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))


# --------------------------------------------------------------------------

def env_int(name, default):
    v = os.environ.get(name, "").strip()
    return int(v) if v else default


def main():
    build = os.path.abspath(os.environ.get("BUILD", "build"))
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    rounds = env_int("BENCH_ROUNDS", 1 if quick else 3)
    seconds = env_int("BENCH_SECONDS", 3 if quick else 10)
    perf = os.environ.get("BENCH_PERF") or os.path.join(build, "coney-perf")
    mqtt_perf = os.environ.get("BENCH_MQTT_PERF") or os.path.join(build, "coney-mqtt-perf")
    names = [s["name"] for s in SCENARIOS]

    only = [n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()]
    bad = [n for n in only if n not in names]
    if bad or only == ["list"]:
        if bad and only != ["list"]:
            print(f"bench: unknown scenario {', '.join(bad)}", file=sys.stderr)
        for s in SCENARIOS:
            print(f"  {s['name']:<24} {s['title']}", file=sys.stdout if only == ["list"] else sys.stderr)
        return 0 if only == ["list"] else 2
    if only:
        if "lat-half" in only and PEAK_SCENARIO not in only:
            log(f"bench: lat-half needs Coney's 1→1 peak, adding {PEAK_SCENARIO}")
            only.append(PEAK_SCENARIO)
        scenarios = [s for s in SCENARIOS if s["name"] in only]
    else:
        scenarios = [s for s in SCENARIOS
                     if not (quick and s.get("kind") in ("memory", "mqtt-memory"))]
    protos = {s.get("proto", "amqp") for s in scenarios}

    want = [b.strip().lower() for b in
            os.environ.get("BENCH_BROKERS", "coney,rabbitmq,mosquitto").split(",") if b.strip()]
    if not set(want) <= {"coney", "rabbitmq", "mosquitto"} or not want:
        print("bench: BENCH_BROKERS takes coney, rabbitmq and/or mosquitto", file=sys.stderr)
        return 2
    tools = [os.path.join(build, "coney")]
    tools += [perf] if "amqp" in protos else []
    tools += [mqtt_perf] if "mqtt" in protos else []
    for path in tools:
        if not os.access(path, os.X_OK):
            print(f"bench: {path} is missing; run make {os.path.relpath(path)} first",
                  file=sys.stderr)
            return 2
    perf, mqtt_perf = os.path.abspath(perf), os.path.abspath(mqtt_perf)

    logdir = os.path.join(build, "bench-logs")
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    tmp = tempfile.mkdtemp(prefix="coney-bench-")
    brokers, missing = [], []
    if "coney" in want:
        coney = Coney(build, tmp, logdir)
        coney.want_mqtt = "mqtt" in protos
        brokers.append(coney)
    # a peer is started only when one of its scenarios runs
    for cls, proto in ((RabbitMQ, "amqp"), (Mosquitto, "mqtt")):
        if cls.key in want and proto in protos:
            if cls.installed():
                brokers.append(cls(tmp, logdir))
            else:
                missing.append(cls.label)
    keys = [b.key for b in brokers]

    info = dict(machine=machine(), rounds=rounds, seconds=seconds,
                versions={b.key: b.version() for b in brokers})
    m = info["machine"]
    header = [
        f"Machine: {m['nproc']} × {m['cpu']}, Linux {m['kernel']}, {m['date']}",
        "Versions: " + ", ".join(f"{b.label} {info['versions'][b.key]}" for b in brokers)
        + "".join(f", {m} not installed" for m in missing),
        f"Medians of {rounds} round{'s' if rounds != 1 else ''} of {seconds} s per scenario "
        "and broker; ↑ higher is better, ↓ lower is better.",
    ]
    results = []
    runner = Runner(perf, mqtt_perf, seconds, logdir)
    state = dict(interrupted=None)

    def save():
        with open(os.path.join(build, "bench.json"), "w") as f:
            json.dump(dict(info, scenarios=[
                {k: v for k, v in sc.items() if k != "metrics"} for sc in results]), f, indent=1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        for b in brokers:
            if b.key == "coney":  # the peers start with their first scenario
                b.start()
        log(f"bench: {len(scenarios)} scenarios × {rounds} rounds × {seconds} s, "
            f"brokers: {', '.join(keys)}, logs in {logdir}")
        started = time.monotonic()
        peak = None
        for sc in scenarios:
            args = sc["args"].split()
            title = sc["title"]
            if sc.get("rate") == "half-peak":
                if peak is None:
                    log(f"bench: skipping {sc['name']}: no 1→1 peak measured")
                    continue
                rate = max(1, int(peak / 2))
                args += ["-r", str(rate)]
                title = f"{title} ({rate:,} msg/s)"
            proto = sc.get("proto", "amqp")
            peer = PEERS[proto]
            entry = dict(name=sc["name"], title=title, args=" ".join(args), proto=proto,
                         peer=peer, metrics=sc["metrics"], runs=[])
            results.append(entry)
            for b in brokers:  # an idle peer (RabbitMQ's schedulers) must not take CPU
                if b.key not in ("coney", peer) and b.proc is not None:
                    log(f"{b.key}: stopping while {proto.upper()} scenarios run")
                    b.stop()
            for rnd in range(1, rounds + 1):
                for b in brokers:
                    if b.key not in ("coney", peer):
                        continue
                    kind = sc.get("kind")
                    fresh = kind in ("memory", "mqtt-memory")  # these restart it themselves
                    if not b.broken and not fresh and (b.dirty or not b.alive()):
                        if not b.alive() and b.proc is not None:
                            log(f"{b.key}: not running, restarting")
                        try:
                            b.stop()
                            b.start()
                            b.dirty = False
                        except RuntimeError as e:
                            b.broken = str(e)
                            log(f"{b.key}: {e}\n{b.key}: giving up on it, its runs count as failed")
                    if b.broken:
                        entry["runs"].append(dict(broker=b.key, round=rnd, ok=False,
                                                  error=f"broker down: {b.broken}"))
                        continue
                    prefix = f"bench-{sc['name']}-r{rnd}"  # queues P-1 .. P-N
                    logname = f"{sc['name']}-r{rnd}-{b.key}.log"
                    time.sleep(1)  # let the last run's queues go before timing again
                    if fresh:
                        b.dirty = True  # a full queue is left behind
                        run = memory_run if kind == "memory" else mqtt_memory_run
                        try:
                            rec = run(runner, b, args, prefix, logname)
                        except RuntimeError as e:
                            b.broken = str(e)
                            rec = dict(ok=False, error=f"broker down: {e}")
                    else:
                        rec = runner.run(b, args, prefix, logname, proto=proto)
                    if not b.alive():
                        err = rec.get("error")
                        rec.update(ok=False, error=f"{err} (broker died)" if err else "broker died")
                        log(f"{b.key}: died; the end of {b.logfile}:\n{tail(b.logfile, 5)}")
                        b.dirty = True
                    rec.update(broker=b.key, round=rnd)
                    entry["runs"].append(rec)
                    save()
                    res = rec.get("result", {})
                    shown = ", ".join(f"{label} {fmt(res.get(k), k)}"
                                      for k, label, _ in sc["metrics"]) if rec["ok"] else \
                        f"FAILED: {rec.get('error')}"
                    log(f"[{sc['name']} {rnd}/{rounds}] {b.label}: {shown}")
            if sc["name"] == PEAK_SCENARIO:
                med = medians(entry["runs"], keys, "recv_rate")
                peak = (med.get("coney") or (None,))[0] or (med.get("rabbitmq") or (None,))[0]
                if peak and "coney" not in keys:
                    log("bench: no Coney run; lat-half uses RabbitMQ's 1→1 peak")
        log(f"bench: done in {time.monotonic() - started:.0f} s")
    except (KeyboardInterrupt, Interrupted) as e:
        state["interrupted"] = str(e) or "SIGINT"
    except RuntimeError as e:
        state["interrupted"] = str(e)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        runner.kill()
        for b in brokers:
            try:
                b.stop()
                if isinstance(b, RabbitMQ):
                    b.stop_epmd()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {b.key}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)

    if state["interrupted"]:
        log(f"bench: stopped early: {state['interrupted']}")
        info["stopped_early"] = state["interrupted"]
    if results:
        save()
        tables = []
        for proto, peer_label, what in (("amqp", "RabbitMQ", "AMQP 0-9-1, coney-perf"),
                                        ("mqtt", "Mosquitto", "MQTT 3.1.1, coney-mqtt-perf")):
            rows = table_rows(results, keys, PEERS[proto])
            if rows:
                tables.append(f"{what}: Coney against {peer_label}\n\n"
                              + render(rows, [], peer_label))
        text = "\n".join(header) + "\n\n" + "\n".join(tables)
        with open(os.path.join(build, "bench.md"), "w") as f:
            f.write(text)
            f.write("\nScenarios (load tool arguments):\n\n")
            for sc in results:
                tool = "coney-mqtt-perf" if sc["proto"] == "mqtt" else "coney-perf"
                f.write(f"- `{sc['name']}`: {sc['title']}: `{tool} {sc['args']}`\n")
        log("")
        log(text)
        log(f"bench: wrote {build}/bench.md, {build}/bench.json, logs in {logdir}/")
    if state["interrupted"]:
        return 130 if "SIG" in state["interrupted"] else 1
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
