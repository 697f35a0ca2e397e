"""The mixed soak (tests/soak/soak.py, `make soak`) for 20 seconds, so that
`make test` runs it: AMQP and MQTT traffic with churn against a broker of
its own, every confirmed message accounted for (lost 0, dup 0), fds (and
RSS, unless the build is sanitized) back at their baseline, a clean exit
on SIGTERM. The hour-long run is `make soak`. Skipped with
CONEY_TEST_TARGET, since it starts its own broker."""

import os
import subprocess

import pytest

from coney_util import SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
SOAK = os.path.join(os.path.dirname(HERE), "soak", "soak.py")


@pytest.mark.timeout(60)
def test_soak_smoke(coney_bin):
    env = dict(os.environ, CONEY_BIN=coney_bin, CONEY_SOAK_SECONDS="20",
               CONEY_SOAK_REPORT_SECONDS="10")
    env.pop("CONEY_SOAK_WRAPPER", None)
    try:
        r = subprocess.run(["/usr/bin/python3", SOAK], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=55 * SLOW)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        pytest.fail("the soak did not finish within %.0f s:\n%s" % (55 * SLOW, out[-6000:]),
                    pytrace=False)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "the soak failed (exit %d):\n%s" % (r.returncode, out[-8000:])
    assert "soak passed" in out, out[-4000:]
