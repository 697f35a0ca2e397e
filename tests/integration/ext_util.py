"""Helpers for the tests of RabbitMQ's extensions (test_32 .. test_37):
dead-lettering, TTLs, length limits, priorities, consumer features,
policies, delayed messages, direct reply-to, sender-selected distribution.

Environment, for validating these tests against another broker together
with CONEY_TEST_TARGET:
  CONEY_TEST_HTTP=host:port          the target's management API (policy
                                     tests skip without it)
  CONEY_TEST_CONSUMER_TIMEOUT=ms     the target's configured consumer_timeout
                                     (its tests skip without it); RabbitMQ
                                     checks it on the channel tick, so give it
                                     a short channel_tick_interval too
"""

import os
import time
import types

import pika
import pytest

from coney_util import SLOW, TIMEOUT, drain, pump_until, start_broker

TARGET = os.environ.get("CONEY_TEST_TARGET")


def coney_only(why):
    """Marks a test of behaviour that RabbitMQ 3.10 does not share (or needs
    a plugin or process control for): skipped when CONEY_TEST_TARGET is set."""
    skip = pytest.mark.skipif(bool(TARGET), reason="coney-only: " + why)
    mark = pytest.mark.coney_only(why)

    def apply(f):
        return skip(mark(f))
    return apply


class Sink:
    """Collects deliveries for a pika consumer callback."""

    def __init__(self):
        self.items = []

    def __call__(self, ch, method, props, body):
        self.items.append((method, props, body))

    def __len__(self):
        return len(self.items)

    @property
    def bodies(self):
        return [b for _, _, b in self.items]


def settle(conn, sink, n, extra=0.3):
    """Wait for n deliveries, then a little longer to catch any excess."""
    pump_until(conn, lambda: len(sink) >= n, what="%d deliveries" % n)
    drain(conn, extra * SLOW)


def props(**kw):
    return pika.BasicProperties(**kw)


def get_all(ch, queue, ack=True):
    """(method, properties, body) of every message basic.get returns until
    get-empty, acked unless ack=False."""
    out = []
    while True:
        m, p, body = ch.basic_get(queue, auto_ack=False)
        if m is None:
            return out
        out.append((m, p, body))
        if ack:
            ch.basic_ack(m.delivery_tag)
        assert len(out) < 10000, "queue %s does not run dry" % queue


def bodies(ch, queue, ack=True):
    return [b for _, _, b in get_all(ch, queue, ack)]


def count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_count(ch, queue, n, timeout=TIMEOUT):
    """Wait until the queue holds exactly n ready messages."""
    deadline = time.monotonic() + timeout
    while True:
        c = count(ch, queue)
        if c == n:
            return
        if time.monotonic() >= deadline:
            raise AssertionError("queue %s holds %d messages, expected %d after %.1fs"
                                 % (queue, c, n, timeout))
        time.sleep(0.02)


def text(v):
    """A table value as str (pika hands back long strings as str or bytes)."""
    return v.decode() if isinstance(v, bytes) else v


def x_death(p):
    """The x-death header of a delivered message's properties, each entry
    with string values as str."""
    headers = p.headers or {}
    assert "x-death" in headers, "no x-death header in %r" % (headers,)
    out = []
    for e in headers["x-death"]:
        out.append({text(k): ([text(x) for x in v] if isinstance(v, list) else text(v))
                    for k, v in e.items()})
    return out


# ------------------------------------------------------------ management API

def http_api(broker):
    """An http_client.Api for the broker under test: Coney's management
    listener, or CONEY_TEST_HTTP for a target (skips without one)."""
    from http_client import Api
    if TARGET:
        http = os.environ.get("CONEY_TEST_HTTP")
        if not http:
            pytest.skip("CONEY_TEST_TARGET without CONEY_TEST_HTTP: no management API")
        host, _, port = http.rpartition(":")
        return Api(types.SimpleNamespace(host=host or "127.0.0.1", http_port=int(port)))
    if not broker.http_port:
        pytest.skip("the broker under test has no known management port")
    return Api(broker)


# ------------------------------------------------------------ consumer timeout

class TimeoutBroker:
    """A broker with a global consumer_timeout of `ms` milliseconds: a fresh
    Coney started with a config file, or the target when
    CONEY_TEST_CONSUMER_TIMEOUT says how it is configured."""

    def __init__(self, broker, ms, owned):
        self.broker = broker
        self.ms = ms
        self.owned = owned


def consumer_timeout_broker(request, tmp_path, ms=1000):
    """A TimeoutBroker; a Coney one is started here and must be stopped by
    the caller (TimeoutBroker.owned)."""
    if TARGET:
        configured = os.environ.get("CONEY_TEST_CONSUMER_TIMEOUT")
        if not configured:
            pytest.skip("CONEY_TEST_TARGET without CONEY_TEST_CONSUMER_TIMEOUT")
        return TimeoutBroker(request.getfixturevalue("broker"), int(configured), False)
    binary = request.getfixturevalue("coney_bin")
    conf = tmp_path / "coney.conf"
    conf.write_text("consumer_timeout = %d\n" % ms)
    return TimeoutBroker(start_broker(binary, extra_args=["--config", str(conf)]), ms, True)
