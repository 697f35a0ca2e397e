"""guest may log in only from loopback addresses, as in RabbitMQ, unless the
config says `loopback_users.guest = false`. A second host is made with a
network namespace and a veth pair (10.213.7.0/30, private to this test), so
the broker sees a real non-loopback peer. Needs root and iproute2; skipped
otherwise, and when CONEY_TEST_TARGET points at an outside broker."""

import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from coney_util import SLOW, start_broker

HOST_ADDR = "10.213.7.1"
NS_ADDR = "10.213.7.2"

CLIENT = r"""
import sys, pika, pika.exceptions
params = pika.ConnectionParameters(sys.argv[1], int(sys.argv[2]),
                                   credentials=pika.PlainCredentials('guest', 'guest'),
                                   connection_attempts=1, socket_timeout=5)
try:
    c = pika.BlockingConnection(params)
except pika.exceptions.ProbableAccessDeniedError as e:
    print('refused', e); sys.exit(3)
except pika.exceptions.AMQPConnectionError as e:
    print('refused', repr(e)); sys.exit(3)
ch = c.channel()
q = ch.queue_declare('', exclusive=True).method.queue
ch.basic_publish('', q, b'from-namespace')
print('ok', ch.basic_get(q, auto_ack=True)[2].decode())
c.close()
"""


def _ip(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip"] + list(args)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def remote_host():
    if os.environ.get("CONEY_TEST_TARGET"):
        pytest.skip("needs a broker this test starts")
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 for a network namespace")
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = "coney-" + tag, "cnyh" + tag, "cnyn" + tag
    try:
        _ip("netns", "add", ns)
    except subprocess.CalledProcessError as e:
        pytest.skip("cannot make a network namespace: %s" % e.stderr.decode().strip())
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", HOST_ADDR + "/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", NS_ADDR + "/30", "dev", ns_if, ns=ns)
        _ip("link", "set", ns_if, "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_if], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def _connect_from(ns, port):
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT,
                           HOST_ADDR, str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=30 * SLOW)


def test_guest_is_refused_from_a_non_loopback_address(coney_bin, remote_host):
    b = start_broker(coney_bin)
    try:
        p = _connect_from(remote_host, b.port)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 3, out
        with open(b.log_path) as f:
            log = f.read()
        assert "can only connect via localhost" in log, log
        assert NS_ADDR in log, log
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def test_loopback_users_false_lets_guest_in_from_anywhere(coney_bin, remote_host, tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("loopback_users.guest = false\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        p = _connect_from(remote_host, b.port)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 0 and "ok from-namespace" in out, out
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()
