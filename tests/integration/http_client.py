"""A small client for the management HTTP API in tests: urllib only (the
suite runs on Debian's python3, which has no `requests`), basic auth, JSON
in and out, and every answer returned rather than raised, so a test can
check 4xx statuses and RabbitMQ's {"error", "reason"} bodies."""

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

from coney_util import TIMEOUT


def q(name):
    """A path segment as RabbitMQ's clients quote it ("/" is "%2F")."""
    return urllib.parse.quote(name, safe="")


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<HTTP %d %s>" % (self.status, self.raw[:300])


class Api:
    def __init__(self, broker, user="guest", password="guest"):
        assert broker.http_port, "the broker has no management listener"
        self.base = "http://%s:%d" % (broker.host, broker.http_port)
        self.user = user
        self.password = password

    def as_user(self, user, password):
        other = Api.__new__(Api)
        other.base, other.user, other.password = self.base, user, password
        return other

    def call(self, method, path, body=None, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if self.user is not None:
            cred = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
            req.add_header("Authorization", "Basic " + cred)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return Reply(r.status, r.headers, r.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.headers, e.read().decode("utf-8", "replace"))

    def get(self, path):
        return self.call("GET", path)

    def put(self, path, body=None):
        return self.call("PUT", path, body if body is not None else {})

    def post(self, path, body=None):
        return self.call("POST", path, body if body is not None else {})

    def delete(self, path):
        return self.call("DELETE", path)

    def ok(self, method, path, body=None, status=None):
        """A call that must succeed (2xx, or exactly `status`); returns its JSON."""
        r = self.call(method, path, body)
        if status is not None:
            assert r.status == status, "%s %s: expected %d, got %r" % (method, path, status, r)
        else:
            assert 200 <= r.status < 300, "%s %s: %r" % (method, path, r)
        return r.json
