"""The web UI on the management port: its static files (served without a
login, compiled into the binary, nothing fetched from elsewhere), and the
whole UI in a real browser, Debian's chromium driven by playwright-core
(tests/browser/ui.test.mjs), whose screenshots stay in
build/browser-artifacts/."""

import base64
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from coney_util import SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BROWSER_DIR = os.path.join(REPO, "tests", "browser")
ARTIFACTS = os.path.join(REPO, "build", "browser-artifacts")
CHROMIUM = os.environ.get("CONEY_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
NPM = shutil.which("npm")

ASSETS = {
    "/": "text/html",
    "/index.html": "text/html",
    "/style.css": "text/css",
    "/app.js": "text/javascript",
    "/api.js": "text/javascript",
    "/chart.js": "text/javascript",
    "/queues.js": "text/javascript",
    "/favicon.svg": "image/svg+xml",
}


def http(broker, path, auth=None, method="GET"):
    """(status, headers, body bytes) of one request to the management port."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (broker.http_port, path), method=method)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10 * SLOW) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture
def ui_broker(fresh_broker):
    if not fresh_broker.http_port:
        pytest.fail("the broker has no management port", pytrace=False)
    return fresh_broker


def test_static_files_are_served_without_login(ui_broker):
    for path, ctype in ASSETS.items():
        status, headers, body = http(ui_broker, path)
        assert status == 200, (path, status, body[:200])
        assert headers["Content-Type"].startswith(ctype), (path, headers["Content-Type"])
        assert "no-cache" in (headers.get("Cache-Control") or ""), path
        assert body, path
    status, _, body = http(ui_broker, "/")
    assert b'<script type="module" src="/app.js">' in body
    # the API itself still wants a user
    assert http(ui_broker, "/api/overview")[0] == 401
    assert http(ui_broker, "/api/overview", auth="guest:guest")[0] == 200


def test_unknown_files_are_not_found(ui_broker):
    for path in ("/nope.js", "/ui/app.js", "/../Makefile", "/index.htm"):
        assert http(ui_broker, path)[0] == 404, path


def test_no_file_reaches_outside_the_broker(ui_broker):
    """No CDN, no web fonts, no external scripts or images: every URL the UI
    loads is relative to the broker."""
    external = re.compile(rb"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|"""
                          rb"""@import|fetch\(\s*["'`]https?:|import\s[^;]*from\s*["']https?:""")
    for path in ASSETS:
        body = http(ui_broker, path)[2]
        m = external.search(body)
        assert m is None, "%s refers outside the broker: %r" % (path, body[max(0, m.start() - 60):m.end() + 60])


def _playwright_ready():
    """playwright-core as package-lock.json pins it, installed with npm ci
    only when node_modules does not already hold that version."""
    with open(os.path.join(BROWSER_DIR, "package-lock.json")) as f:
        lock = json.load(f)
    want = lock["packages"]["node_modules/playwright-core"]["version"]
    have_path = os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")
    if os.path.exists(have_path):
        with open(have_path) as f:
            if json.load(f).get("version") == want:
                return
    if not NPM:
        pytest.skip("npm is not installed (scripts/deps.sh installs it)")
    r = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BROWSER_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode == 0, "npm ci in tests/browser failed:\n" + r.stdout.decode(errors="replace")


@pytest.mark.timeout(240)
def test_ui_in_chromium(ui_broker):
    """Log in, declare a queue, publish to it, watch its count reach 1, get
    the message back; then page and filter 2,000 queues."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed at %s (scripts/deps.sh installs it)" % CHROMIUM)
    if not NODE:
        pytest.skip("node is not installed (scripts/deps.sh installs it)")
    _playwright_ready()
    os.makedirs(ARTIFACTS, exist_ok=True)
    for f in os.listdir(ARTIFACTS):
        if f.endswith(".png"):
            os.unlink(os.path.join(ARTIFACTS, f))
    env = dict(os.environ, CONEY_UI_URL="http://127.0.0.1:%d" % ui_broker.http_port,
               CONEY_CHROMIUM=CHROMIUM, CONEY_ARTIFACTS=ARTIFACTS)
    if SLOW > 1:
        env["CONEY_SANITIZED"] = "1"
    r = subprocess.run([NODE, os.path.join(BROWSER_DIR, "ui.test.mjs")], cwd=REPO, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=220 * SLOW)
    out = r.stdout.decode(errors="replace")
    print(out)
    assert r.returncode == 0, "the browser test failed (screenshots in %s):\n%s" % (ARTIFACTS, out)
    shots = sorted(f for f in os.listdir(ARTIFACTS) if f.endswith(".png"))
    for want in ("login", "overview", "queue-declared", "message-published", "message-got",
                 "many-queues", "queues-filtered"):
        assert any(want in s for s in shots), "no %s screenshot among %s" % (want, shots)
