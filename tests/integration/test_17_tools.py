"""The measuring tools keep working: coney-perf moves exact counts through
the broker and reports them, and the bench driver runs a scenario end to
end against Coney alone (RabbitMQ is only for `make bench`)."""

import json
import os
import subprocess

import pytest

from coney_util import SLOW

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PERF = os.path.join(os.path.dirname(os.environ.get("CONEY_BIN", "")), "coney-perf")


def _perf(broker, *args):
    if not os.path.exists(PERF):
        pytest.skip("coney-perf not built next to CONEY_BIN")
    p = subprocess.run([PERF, "--host", broker.host, "--port", str(broker.port),
                        "--interval", "0", "--json"] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60 * SLOW)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert lines, out
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("extra", [["-a"], ["-q", "50", "--multiple-ack-every", "10"],
                                   ["--persistent", "-c", "100", "-q", "100"],
                                   ["-t", "fanout", "--queues", "3", "-y", "3", "-a"]],
                         ids=["auto-ack", "manual-ack", "persistent-confirms", "fanout-3"])
def test_coney_perf_counts_exactly(broker, extra):
    r = _perf(broker, "-x", "1", "-y", "1", "-s", "64", "-C", "2000", *extra)
    assert r["ok"] is True
    assert r["sent"] == 2000
    queues = 3 if "fanout" in extra else 1
    assert r["received"] == 2000 * queues
    if "-c" in extra:
        assert r["confirmed"] == 2000 and r["nacked"] == 0
    assert 0 < r["p50_us"] <= r["p99_us"] <= r["max_us"]


def test_bench_driver_runs_a_scenario_against_coney(tmp_path):
    if os.environ.get("CONEY_TEST_TARGET") or os.environ.get("CONEY_SANITIZED"):
        pytest.skip("the driver starts its own optimised broker")
    if not os.path.exists(PERF):
        pytest.skip("coney-perf not built")
    # its own BUILD dir, so a developer's build/bench.md is left alone
    bin_dir = tmp_path / "build"
    bin_dir.mkdir()
    os.symlink(os.environ["CONEY_BIN"], bin_dir / "coney")
    os.symlink(PERF, bin_dir / "coney-perf")
    env = dict(os.environ, BENCH_BROKERS="coney", BENCH_ONLY="1to1-auto", BENCH_ROUNDS="1",
               BENCH_SECONDS="1", BUILD=str(bin_dir))
    p = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "scripts", "bench.py")],
                       cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120 * SLOW)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert "1→1, 16 B, transient, auto-ack" in out and "fail" not in out.split("| scenario")[-1], out
    assert (bin_dir / "bench.md").exists() and (bin_dir / "bench.json").exists()


def test_coney_perf_paces_in_bursts_not_one_write_per_message(broker):
    # At a million messages a second a write() takes longer than the gap
    # between two messages. The paced producer must still send its
    # messages in bursts (one every --pace-us, 100 µs: about 100 messages,
    # two writes of at most 64); a pacer that sends whatever fell due
    # during the last write ends up near one write per message and takes
    # a core from the broker it measures.
    r = _perf(broker, "-x", "1", "-y", "1", "-s", "16", "-a", "-r", "1000000",
              "-C", "500000")
    assert r["ok"] is True and r["sent"] == 500000 and r["received"] == 500000
    assert r["writes"] > 0
    per_write = r["sent"] / r["writes"]
    assert per_write >= 16, r
    # and the schedule still holds the rate (loosely: the broker may lag)
    assert r["sent_rate"] <= 1000000 * 1.05, r
