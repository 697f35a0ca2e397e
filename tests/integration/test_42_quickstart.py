"""docs/quickstart.md, run as written: every ```sh, ```python and ```js
block in order, in a network namespace of their own (so the page's
default ports, 5672, 1883, 15672 and 15692, are free whatever else runs
on this machine) with a private /tmp (so its /tmp paths are too)."""

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from coney_util import SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(REPO, "docs", "quickstart.md")
NODE_DIR = os.path.join(REPO, "tests", "quickstart")

pytestmark = pytest.mark.usefixtures("coney_bin")

# Runs inside the namespace: reads [[lang, code], ...] on stdin, runs each
# block from the repository's top directory, prints [[rc, output], ...].
DRIVER = r"""
import json, os, subprocess, sys
blocks = json.load(sys.stdin)
env = dict(os.environ)
results = []
for lang, code in blocks:
    if lang == "sh":
        argv = ["sh", "-e", "-c", code]
    elif lang == "python":
        argv = ["/usr/bin/python3", "-c", code]
    else:
        argv = ["node", "-e", code]
    try:
        r = subprocess.run(argv, cwd=env["QS_REPO"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=float(env["QS_TIMEOUT"]))
        results.append([r.returncode, r.stdout.decode(errors="replace")])
    except subprocess.TimeoutExpired as e:
        results.append([-1, "timed out: %r" % (e.output,)])
    if results[-1][0] != 0:
        break
import time
try:
    pid = int(open("/tmp/coney-quickstart.pid").read())
    for _ in range(200):                 # the page's last block stops it: let it finish
        os.kill(pid, 0)
        time.sleep(0.05)
    os.kill(pid, 9)                      # still there after 10 s: do not leave it behind
except (OSError, ValueError):
    pass
try:
    log = open("/tmp/coney-quickstart.log").read()
except OSError:
    log = ""
json.dump({"results": results, "log": log}, sys.stdout)
"""


def doc_blocks():
    with open(DOC) as f:
        text = f.read()
    return [[lang, code] for lang, code in
            re.findall(r"^```(sh|python|js)\n(.*?)^```$", text, re.M | re.S)]


def npm_amqplib():
    """tests/quickstart/node_modules with amqplib, or None when npm cannot
    install it here (the js block is then left out, and said so)."""
    if not shutil.which("node") or not shutil.which("npm"):
        return None
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "amqplib")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           capture_output=True, timeout=300)
        if r.returncode != 0:
            return None
    return os.path.join(NODE_DIR, "node_modules")


@pytest.mark.timeout(400)
def test_quickstart_runs_as_written(coney_bin):
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a network namespace of its own")
    blocks = doc_blocks()
    langs = [lang for lang, _ in blocks]
    assert langs.count("sh") >= 5 and langs.count("python") >= 3 and "js" in langs
    node_path = npm_amqplib()
    if node_path is None:
        blocks = [b for b in blocks if b[0] != "js"]
    # the page builds with make; point it at the binaries under test
    build = os.path.dirname(coney_bin)
    if os.path.realpath(build) != os.path.realpath(os.path.join(REPO, "build")):
        pytest.skip("the quickstart runs build/coney; CONEY_BIN is elsewhere")
    env = dict(os.environ, QS_REPO=REPO, QS_TIMEOUT=str(60 * SLOW),
               NODE_PATH=node_path or "")
    # a private /tmp too; a checkout that lives in /tmp is bound back into
    # it (a tmpfs over /tmp would hide it)
    repo = os.path.realpath(REPO)
    keep = ""
    if repo.startswith("/tmp/"):
        keep = ("d=$(mktemp -d /run/coney-qs.XXXXXX) && mount --bind %s $d && "
                "mount -t tmpfs tmpfs /tmp && mkdir -p %s && mount --bind $d %s && "
                % (shlex.quote(repo), shlex.quote(repo), shlex.quote(repo)))
    else:
        keep = "mount -t tmpfs tmpfs /tmp && "
    inner = keep + "ip link set lo up && exec /usr/bin/python3 -c \"$0\""
    r = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private",
                        "sh", "-c", inner, DRIVER], input=json.dumps(blocks).encode(),
                       capture_output=True, env=env, timeout=380 * SLOW)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    out = json.loads(r.stdout)
    results, log = out["results"], out["log"]
    for (lang, code), (rc, text) in zip(blocks, results):
        assert rc == 0, "this %s block failed (%d):\n%s\n--- output ---\n%s\n--- log ---\n%s" % (
            lang, rc, code, text, log[-3000:])
    assert len(results) == len(blocks)
    everything = "\n".join(t for _, t in results)

    assert "Hello from amqp-publish" in everything
    assert "sent 3 tasks" in everything
    for i in range(3):
        assert "got task %d" % i in everything
    if node_path:
        assert "got Hello from amqplib" in everything
    assert "21.5" in everything
    assert "sensors.garden.humidity 64" in everything
    assert re.search(r"^rabbitmq_queues \d", everything, re.M)
    assert "tasks" in everything and "hello" in everything
    # what the broker said: the connections with their users, and a clean stop
    assert re.search(r"accepting AMQP connection .*user 'app', vhost '/'", log)
    assert re.search(r"accepted MQTT .*user 'app'", log)
    assert "received SIGTERM" in log and "stopped" in log


def test_every_block_is_a_kind_the_test_runs():
    with open(DOC) as f:
        fences = re.findall(r"^```(\w*)$", f.read(), re.M)
    opening = fences[0::2]
    assert set(opening) <= {"sh", "python", "js"}, opening
