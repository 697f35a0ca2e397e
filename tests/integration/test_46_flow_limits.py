"""Back-pressure and allocation limits (issue 9): what a client can make the
broker hold is bounded.

- Credit flow: a publisher whose queue falls behind a consumer that has
  credit but does not drain its socket stops being read (its connection
  shows state "flow") until the backlog is down, then goes on; nothing is
  lost.
- A client that writes but never reads (mandatory publishes that come back
  as basic.return) stops being read once its pending output passes 16 MB,
  and is closed after 15 s without taking a byte (RabbitMQ's send_timeout).
- consumer_max_per_channel (RabbitMQ's key and error), and
  coney.unacked_max_per_channel (ours: a cap on unacked deliveries per
  channel whatever the prefetch).
- Frame size before login, field-table nesting.

Each test starts its own broker (skipped with CONEY_TEST_TARGET)."""

import json
import resource
import os
import signal
import socket
import struct
import threading
import time

import pika
import pytest

import coney_raw as R
from coney_util import (SLOW, TIMEOUT, BulkChannel, closed_by_peer, drain, message_count,
                        start_broker, uname, wait_for)
from http_client import Api, q as qpath


@pytest.fixture
def own_broker(coney_bin, request):
    env = getattr(request, "param", None) or {}
    b = start_broker(coney_bin, env=env)
    try:
        yield b
        assert b.alive(), "broker died\n" + b.log_tail()
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def _declare(b, name, **kw):
    with b.connect() as c:
        c.channel().queue_declare(name, **kw)


def _connections(api):
    r = api.get("/api/connections")
    assert r.status == 200, r
    return r.json


class Sender(threading.Thread):
    """Sends one big buffer from a thread in 64 KB slices; counts what the
    kernel took. Stops when done, on error, or when told to."""

    def __init__(self, sock, data):
        super().__init__(daemon=True)
        self.sock, self.data = sock, data
        self.sent = 0
        self.error = None
        self.stop = False

    def run(self):
        self.sock.settimeout(0.5)
        view = memoryview(self.data)
        while self.sent < len(view) and not self.stop:
            try:
                self.sent += self.sock.send(view[self.sent:self.sent + 65536])
            except socket.timeout:
                continue
            except OSError as e:
                self.error = e
                return


def _consumer_that_does_not_read(b, queue):
    """A raw no-ack consumer of queue that then reads nothing: its
    deliveries fill the socket and the broker's output buffer for it."""
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT)
    raw.open()
    raw.open_channel(1)
    raw.rpc(1, "basic.consume", "basic.consume-ok", queue=queue, consumer_tag="slow",
            no_ack=True)
    return raw


def test_credit_flow_brakes_a_publisher_while_its_consumer_socket_is_full(own_broker):
    b = own_broker
    api = Api(b)
    queue = uname("flow")
    _declare(b, queue)
    slow = _consumer_that_does_not_read(b, queue)

    n, body = 40000, b"x" * 1024           # 40 MB: far more than the sockets and
    pub = BulkChannel(b)                   # the 4 MB output high-water hold
    data = b"".join(pub.publish_bytes("", queue, body) for _ in range(n))
    sender = Sender(pub.sock, data)
    sender.start()

    # The consumer takes nothing: the queue fills to the credit-flow mark,
    # then the publisher is no longer read.
    def braked():
        conns = [c for c in _connections(api) if c["state"] == "flow"]
        return conns and message_count_api(api, queue) > 4096
    wait_for(braked, timeout=TIMEOUT * 2, what="the publisher in state flow")
    time.sleep(1.0)
    held = message_count_api(api, queue)
    sent_while_braked = sender.sent
    time.sleep(1.0)
    assert sender.sent - sent_while_braked < len(data) // 4, \
        "the publisher kept being read while braked"
    # about QUEUE_BACKLOG_HIGH plus what one read held, not the 40,000 sent
    assert held < 12000, "queue grew to %d ready while its publisher should be braked" % held
    assert sender.sent < len(data)

    # The consumer reads again: everything arrives, the publisher finishes.
    got = [0]
    stop = threading.Event()

    def reader():
        slow.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                chunk = slow.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                return
            got[0] += len(chunk)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sender.join(timeout=60 * SLOW)
    assert not sender.is_alive() and sender.sent == len(data), \
        "the publisher was not released (sent %d of %d)" % (sender.sent, len(data))
    wait_for(lambda: message_count_api(api, queue) == 0, timeout=30 * SLOW,
             what="the queue drained")
    wait_for(lambda: _queue(api, queue).get("message_stats", {}).get("deliver_no_ack", 0) == n,
             timeout=TIMEOUT, what="every message delivered")
    assert all(c["state"] == "running" for c in _connections(api))
    stop.set()
    t.join(timeout=5)
    slow.close()
    pub.close()


def _queue(api, name):
    r = api.get("/api/queues/%s/%s" % (qpath("/"), qpath(name)))
    assert r.status == 200, r
    return r.json


def message_count_api(api, name):
    return _queue(api, name).get("messages_ready", 0)


def test_a_client_that_does_not_read_its_returns_stops_being_read(own_broker):
    b = own_broker
    api = Api(b)
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.open()
    raw.open_channel(1)
    body = b"r" * 60000
    one = (R.method_frame(1, "basic.publish", exchange="", routing_key=uname("nowhere"),
                          mandatory=True) + R.header_frame(1, len(body)) + R.body_frame(1, body))
    data = one * 2000                      # 120 MB of returns it never reads
    sender = Sender(raw.sock, data)
    sender.start()
    wait_for(lambda: any(c["state"] == "flow" for c in _connections(api)), timeout=TIMEOUT * 2,
             what="the connection paused")
    time.sleep(1.0)
    stalled_at = sender.sent
    time.sleep(1.0)
    assert sender.sent == stalled_at, "still read while its output is over the limit"
    # 16 MB of output, a read's worth of input and the kernel's buffers;
    # without the pause the broker reads all 120 MB and queues them back
    assert sender.sent < 60 * 1000 * 1000, "the broker took %d bytes" % sender.sent

    # others are served meanwhile
    with b.connect() as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"fine")
        assert ch.basic_get(q, auto_ack=True)[2] == b"fine"

    # 15 s without taking a byte: closed, as RabbitMQ's send_timeout does
    wait_for(lambda: len(_connections(api)) == 0, timeout=30 * SLOW,
             what="the stuck connection closed")
    assert "read nothing for 15s" in b.log()
    sender.stop = True
    sender.join(timeout=5)
    raw.close()


@pytest.mark.parametrize("own_broker", [{"CONEY_CONSUMER_MAX_PER_CHANNEL": "3"}],
                         indirect=True)
def test_consumer_max_per_channel_closes_with_not_allowed(own_broker):
    b = own_broker
    queue = uname("cmax")
    _declare(b, queue)
    c = b.connect()
    ch = c.channel()
    for _ in range(3):
        ch.basic_consume(queue, lambda *a: None)
    other = c.channel()                    # the limit is per channel
    for _ in range(3):
        other.basic_consume(queue, lambda *a: None)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_consume(queue, lambda *a: None)
        drain(c, 0.5)
    assert e.value.reply_code == 530
    assert e.value.reply_text == "NOT_ALLOWED - reached maximum (3) of consumers per channel"


@pytest.mark.parametrize("own_broker", [{"CONEY_UNACKED_MAX_PER_CHANNEL": "50"}],
                         indirect=True)
def test_unacked_max_per_channel_holds_deliveries_until_acks(own_broker):
    b = own_broker
    queue = uname("ucap")
    _declare(b, queue)
    c = b.connect()
    ch = c.channel()
    for i in range(200):
        ch.basic_publish("", queue, b"%d" % i)
    got = []
    ch.basic_consume(queue, lambda _c, m, p, body: got.append(m.delivery_tag))  # prefetch 0
    wait_for(lambda: drain(c, 0.05) or len(got) >= 50, what="50 deliveries")
    drain(c, 0.5)
    assert len(got) == 50, "prefetch 0 got %d deliveries past the cap of 50" % len(got)
    # basic.get on the capped channel answers get-empty; another channel is not capped
    assert ch.basic_get(queue)[0] is None
    other = c.channel()
    m, _, body = other.basic_get(queue)
    assert m is not None
    other.basic_ack(m.delivery_tag)
    # one ack lets one more through; a multiple ack lets the next 50 through
    ch.basic_ack(got[0])
    wait_for(lambda: drain(c, 0.05) or len(got) >= 51, what="one more delivery")
    drain(c, 0.3)
    assert len(got) == 51
    ch.basic_ack(got[-1], multiple=True)
    wait_for(lambda: drain(c, 0.05) or len(got) >= 101, what="50 more deliveries")
    drain(c, 0.3)
    assert len(got) == 101
    c.close()


def test_a_frame_over_4096_bytes_before_login_is_a_frame_error(own_broker):
    b = own_broker
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT)
    raw.start()
    # a start-ok whose SASL response makes the frame 6,000 bytes: before
    # tune the only size a client may assume is the spec's minimum, 4096
    response = b"\0guest\0" + b"g" * 5900
    raw.send_method(0, "connection.start-ok", client_properties={}, mechanism="PLAIN",
                    response=response, locale="en_US")
    args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.FRAME_ERROR
    assert "frame_too_large" in args["reply_text"] and ",4088}" in args["reply_text"]
    raw.close()
    with b.connect() as c:                 # the broker is fine
        c.channel()


def _nested(depth):
    t = {"leaf": 1}
    for _ in range(depth - 1):
        t = {"n": t}
    return t


def test_field_tables_nested_too_deep_are_refused(own_broker):
    b = own_broker
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT).open()
    raw.open_channel(1)
    # 32 levels decode; 40 do not: the method cannot be read, a syntax error
    ok = raw.rpc(1, "queue.declare", "queue.declare-ok", queue=uname("deep"),
                 arguments={"x-coney-test": _nested(30)})
    assert ok["queue"]
    raw.send_method(1, "queue.declare", queue=uname("deep"),
                    arguments={"x-coney-test": _nested(40)})
    args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.SYNTAX_ERROR, args
    raw.close()
    with b.connect() as c:
        c.channel()


def _closed_at_once(host, port):
    """True if the broker closes a fresh connection without a word."""
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    try:
        return closed_by_peer(s, 2.0 * SLOW)
    finally:
        s.close()


def _accepted_from(pid, client_ports):
    """How many of the broker's (pid's) sockets are connections from one of
    client_ports on 127.0.0.1: its accepted ends of our sockets, and nothing
    else (not the probes start_broker made, which it may not have closed
    yet)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[9] in inodes and int(cols[2].split(":")[1], 16) in client_ports:
                n += 1
    return n


AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
MQTT_CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01w"


def _hello(host, port, hello):
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    s.sendall(hello)
    return s


def _silent_for(s, seconds):
    """True if the broker neither answers nor closes s for that long."""
    s.settimeout(seconds)
    try:
        s.recv(1)
        return False
    except socket.timeout:
        return True
    except ConnectionResetError:
        return False
    finally:
        s.settimeout(TIMEOUT)


@pytest.mark.parametrize("own_broker", [{"CONEY_HANDSHAKE_MAX_PER_IP": "20"}], indirect=True)
def test_connections_not_logged_in_wait_their_turn_per_address(own_broker):
    b = own_broker
    # logged-in connections do not count
    logged_in = [b.connect() for _ in range(25)]
    silent = [socket.create_connection((b.host, b.port), timeout=TIMEOUT) for _ in range(12)]
    silent += [socket.create_connection((b.host, b.mqtt_port), timeout=TIMEOUT)
               for _ in range(8)]
    time.sleep(0.3 * SLOW)
    # the address has 20 connections that have not logged in, over both
    # protocols: the next ones are accepted but not read, on either port
    w_amqp = _hello(b.host, b.port, AMQP_HEADER)
    w_mqtt = _hello(b.host, b.mqtt_port, MQTT_CONNECT)
    assert _silent_for(w_amqp, 1.0 * SLOW)
    assert _silent_for(w_mqtt, 0.2 * SLOW)
    assert "coney.handshake_max_per_ip" in b.log()
    for c in logged_in:                    # those already in are served
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        assert ch.basic_get(q, auto_ack=True)[2] == b"x"
    # two silent ones leave: the waiting two are let in and answered, the
    # bytes they sent while waiting read then
    silent[0].close()
    silent[19].close()
    start = w_amqp.recv(7)
    assert start[:3] == b"\x01\x00\x00", start      # a method frame on channel 0
    assert w_mqtt.recv(4) == b"\x20\x02\x00\x00"   # CONNACK, accepted
    for s in silent[1:19] + [w_amqp, w_mqtt]:
        s.close()
    with b.connect() as c:
        c.channel()
    for c in logged_in:
        c.close()


@pytest.mark.parametrize("own_broker", [{"CONEY_HANDSHAKE_MAX_PER_IP": "4"}], indirect=True)
def test_at_most_4096_connections_wait_and_more_are_closed_at_once(own_broker):
    b = own_broker
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(old[0], min(old[1], 6000)), old[1]))
    socks = []
    try:
        socks = [socket.create_connection((b.host, b.port), timeout=TIMEOUT)
                 for _ in range(4 + 4096)]
        ports = {s.getsockname()[1] for s in socks}
        accepted = lambda: _accepted_from(b.proc.pid, ports)
        # all accepted: 4 served, 4096 waiting (for 10 s at most)
        wait_for(lambda: accepted() == len(socks), timeout=TIMEOUT,
                 what="the broker to accept all %d" % len(socks))
        assert _closed_at_once(b.host, b.port)
        wait_for(lambda: "too many connections wait to log in" in b.log(), timeout=TIMEOUT,
                 what="the warning for the connection closed at once")
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    wait_for(lambda: not _closed_at_once(b.host, b.port), timeout=TIMEOUT,
             what="room again once the waiting ones left")
