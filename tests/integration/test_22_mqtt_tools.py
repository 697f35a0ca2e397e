"""coney-mqtt-perf keeps working: it moves exact counts through the broker's
MQTT listener at each QoS, on both protocol versions and both I/O paths,
and its RESULT line parses (the bench driver reads nothing else)."""

import json
import os
import subprocess

import pytest

from coney_util import SLOW

PERF = os.path.join(os.path.dirname(os.environ.get("CONEY_BIN", "")), "coney-mqtt-perf")


def _perf(target, *args):
    if not os.path.exists(PERF):
        pytest.skip("coney-mqtt-perf not built next to CONEY_BIN")
    p = subprocess.run([PERF, "--host", target.host, "--port", str(target.port),
                        "--interval", "0", "--json"] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60 * SLOW)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert lines, out
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("extra", [["-q", "0"], ["-q", "1"], ["-q", "2", "-w", "10"],
                                   ["-q", "1", "-V", "5"], ["-q", "1", "--io", "lib"]],
                         ids=["qos0", "qos1", "qos2", "qos1-v5", "qos1-lib"])
def test_mqtt_perf_counts_exactly(mqtt, extra):
    r = _perf(mqtt, "-x", "1", "-y", "1", "-s", "64", "-C", "2000", *extra)
    assert r["ok"] is True
    assert r["sent"] == 2000 and r["expected"] == 2000
    assert r["received"] == 2000
    if "-q" in extra and extra[extra.index("-q") + 1] != "0":
        assert r["acked"] == 2000 and r["refused"] == 0
        assert r["ack_rate"] > 0
    assert r["sent_rate"] > 0 and r["recv_rate"] > 0
    assert 0 < r["p50_us"] <= r["p95_us"] <= r["p99_us"] <= r["max_us"]
    assert r["latency_samples"] == 2000


def test_mqtt_perf_wildcard_fan_in(mqtt):
    # 3 publishers on P/1..P/3, 2 subscribers on P/#: every message twice
    r = _perf(mqtt, "-x", "3", "-y", "2", "--wildcard", "-q", "1", "-C", "500")
    assert r["ok"] is True
    assert r["sent"] == 1500 and r["acked"] == 1500
    assert r["received"] == r["expected"] == 3000


def test_mqtt_perf_timed_run(mqtt):
    r = _perf(mqtt, "-x", "1", "-y", "1", "-q", "0", "-z", "1", "-r", "2000")
    assert r["ok"] is True
    assert r["sent"] > 0 and r["received"] > 0
    assert r["received"] <= r["sent"]
    assert 500 < r["recv_rate"] < 4000


def test_mqtt_perf_paces_in_bursts_not_one_write_per_message(mqtt):
    # as coney-perf (test_17): at a million messages a second a write()
    # outlasts the gap between two messages, and the paced publisher must
    # still write a burst every --pace-us (about 100 messages), not what
    # fell due during the last write
    r = _perf(mqtt, "-x", "1", "-y", "1", "-s", "16", "-q", "0", "-r", "1000000",
              "-C", "500000")
    assert r["ok"] is True and r["sent"] == 500000
    assert r["writes"] > 0
    assert r["sent"] / r["writes"] >= 16, r
    assert r["sent_rate"] <= 1000000 * 1.05, r


def test_mqtt_perf_fails_on_a_closed_port(mqtt):
    if not os.path.exists(PERF):
        pytest.skip("coney-mqtt-perf not built next to CONEY_BIN")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here
    p = subprocess.run([PERF, "--port", str(port), "-C", "10", "--json", "--interval", "0"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30 * SLOW)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 1, out
    assert '"ok":false' in out
