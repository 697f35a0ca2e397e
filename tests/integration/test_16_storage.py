"""The store's settings and its failure path.

- Every `storage.sync` mode keeps what was confirmed across a clean
  restart and across kill -9 (the modes differ only on power loss, which a
  test here cannot cause).
- A write that fails is answered with basic.nack, never silence, it
  raises the disk alarm at once, and the broker goes on serving what does
  not publish: the data directory is a small tmpfs that fills up (needs
  root to mount; skipped otherwise).

Each test starts its own broker (skipped with CONEY_TEST_TARGET)."""

import os
import shutil
import signal
import subprocess
import tempfile

import pika
import pika.exceptions
import pytest

from coney_util import SLOW, get_one, restart_broker, start_broker, uname

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def _config(tmp_path, text):
    conf = tmp_path / "coney.conf"
    conf.write_text(text)
    return ["--config", str(conf)]


def _drain(ch, q):
    out = []
    while True:
        m = ch.basic_get(q, auto_ack=True)
        if m[0] is None:
            return out
        out.append(m[2])


@pytest.mark.parametrize("mode", ["always", "batch", "none"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_every_sync_mode_keeps_confirmed_messages(coney_bin, tmp_path, mode, sig):
    b = start_broker(coney_bin, extra_args=_config(
        tmp_path, "storage.sync = %s\nstorage.sync_interval = 50\n" % mode))
    try:
        q = uname("q-sync-" + mode)
        conn = b.connect()
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        ch.confirm_delivery()        # every publish below returns once acked
        sent = [b"%s-%d" % (mode.encode(), i) for i in range(200)]
        for body in sent:
            ch.basic_publish("", q, body, PERSISTENT)
        if sig == signal.SIGTERM:
            conn.close()
        restart_broker(b, sig)
        conn = b.connect()
        ch = conn.channel()
        assert _drain(ch, q) == sent
        conn.close()
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def test_unknown_sync_mode_is_refused_at_start(coney_bin, tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("storage.sync = sometimes\n")
    p = subprocess.run([coney_bin, "--config", str(conf), "--port", "1"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10 * SLOW)
    assert p.returncode != 0
    assert b"storage.sync" in p.stderr, p.stderr


@pytest.fixture
def small_disk():
    """A 6 MB tmpfs, unmounted afterwards."""
    if os.environ.get("CONEY_TEST_TARGET"):
        pytest.skip("needs a broker this test starts")
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    d = tempfile.mkdtemp(prefix="coney-small-disk-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", d],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs: %s" % p.stdout.decode().strip())
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d])
        os.rmdir(d)


def test_failed_write_is_nacked_and_the_broker_keeps_serving(coney_bin, tmp_path, small_disk):
    # disk_free_limit = 1 byte: the alarm must not block first; the write
    # itself has to fail.
    args = _config(tmp_path, "disk_free_limit.absolute = 1\n") + ["--data-dir", small_disk]
    b = start_broker(coney_bin, extra_args=args)
    try:
        q = uname("q-full")
        conn = b.connect()
        ch = conn.channel()
        ch.queue_declare(q, durable=True)
        ch.confirm_delivery()
        body = os.urandom(256 * 1024)            # random: no compression helps
        acked = nacked = 0
        for _ in range(60):                      # 15 MB, the disk holds 6
            try:
                ch.basic_publish("", q, body, PERSISTENT)
                acked += 1
            except pika.exceptions.NackError:
                nacked += 1
                break
        assert nacked == 1, "no basic.nack after %d acked 256 kB messages on a 6 MB disk" % acked
        with open(b.log_path, errors="replace") as f:
            log = f.read()
        assert "failed" in log
        # the failed write raised the disk alarm (the 1-byte limit never
        # would), so publishers are blocked; the rest is served: a new
        # connection declares and consumes what was stored
        assert "disk resource limit alarm set: the disk is full" in log, log[-2000:]
        other = b.connect()
        och = other.channel()
        och.queue_declare("", exclusive=True)
        assert get_one(och, q, auto_ack=True)[2] == body
        other.close()
        conn.close()
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()
