"""The management plugin's HTTP core (docs/management.md): the server on
the broker's loop, basic auth and user tags, the router's 401/403/404/405
answers, list parameters (name, use_regex, sort, sort_reverse, columns,
page, page_size), overview, nodes, whoami, cluster name, health checks,
the aliveness test, and connections, channels and consumers with
RabbitMQ's field names, including closing a connection with X-Reason.

One broker for the module, its users made with coney-ctl; tests that
need a config of their own (the disk alarm) start another."""

import base64
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pika.exceptions
import pytest

from coney_util import TIMEOUT, connection_close_reason, start_broker, uname, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

pytestmark = pytest.mark.skipif(bool(os.environ.get("CONEY_TEST_TARGET")),
                                reason="starts brokers of its own")


def _binary():
    return os.path.abspath(os.environ.get("CONEY_BIN") or os.path.join(REPO, "build", "coney"))


# ------------------------------------------------------------ helpers

class Resp:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


class Api:
    """The management API of one broker, as one user."""

    def __init__(self, port, user="guest", password="guest"):
        self.base = "http://127.0.0.1:%d" % port
        self.user, self.password = user, password

    def as_user(self, user, password):
        return Api(int(self.base.rsplit(":", 1)[1]), user, password)

    def request(self, method, path, body=None, headers=None, auth=True, raw=None):
        h = dict(headers or {})
        if auth:
            cred = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
            h["Authorization"] = "Basic " + cred
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return Resp(r.status, r.read(), r.headers)
        except urllib.error.HTTPError as e:
            return Resp(e.code, e.read(), e.headers)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def ok(self, path):
        r = self.get(path)
        assert r.status == 200, "GET %s: %r" % (path, r)
        return r.json


def q(s):
    return urllib.parse.quote(s, safe="")


class Ctl:
    def __init__(self, data_dir):
        self.path = os.path.join(os.path.dirname(_binary()), "coney-ctl")
        self.data_dir = data_dir

    def __call__(self, *args):
        p = subprocess.run([self.path, "--data-dir", self.data_dir] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        assert p.returncode == 0, "coney-ctl %s: %s" % (" ".join(args), p.stderr)
        return p.stdout


def stop(b):
    try:
        if not b.stopped:
            rc = b.stop(signal.SIGTERM)
            b.check_clean_exit(rc)
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def mb():
    b = start_broker(_binary())
    ctl = Ctl(b.data_dir)
    for user, tags in (("mgmt", "management"), ("mon", "monitoring"), ("pol", "policymaker"),
                       ("adm", "administrator"), ("plain", ""), ("other", "impersonator")):
        ctl("add_user", user, user + "pw")
        if tags:
            ctl("set_user_tags", user, tags)
        ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    try:
        yield b
    finally:
        stop(b)


@pytest.fixture
def api(mb):
    return Api(mb.http_port)


def as_(api, user):
    return api.as_user(user, user + "pw")


def connect(b, user="guest", password="guest", name=None):
    props = {"connection_name": name} if name else None
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=b.port, credentials=pika.PlainCredentials(user, password),
        client_properties=props, socket_timeout=TIMEOUT, connection_attempts=1))


def conn_named(api, cname):
    """The API's record of the connection whose client_properties name it."""
    def find():
        for c in api.ok("/api/connections"):
            if c.get("client_properties", {}).get("connection_name") == cname:
                return c
        return None
    return wait_for(find, what="connection %s in /api/connections" % cname)


# ------------------------------------------------------------ auth and the router

def test_no_credentials_get_401_with_rabbitmq_body_and_challenge(api):
    r = api.get("/api/overview", auth=False)
    assert r.status == 401
    assert r.json == {"error": "not_authorised", "reason": "Login failed"}
    assert r.headers.get("WWW-Authenticate", "").startswith("Basic")
    assert r.headers.get("Content-Type", "").startswith("application/json")


def test_wrong_password_and_unknown_user_get_401(api):
    assert api.as_user("guest", "nope").get("/api/whoami").status == 401
    r = api.as_user("nobody", "x").get("/api/whoami")
    assert r.status == 401 and r.json["reason"] == "Login failed"
    r = api.get("/api/whoami", auth=False, headers={"Authorization": "Basic !!!notbase64"})
    assert r.status == 401


def test_user_without_management_tag_is_refused(api):
    for user in ("plain", "other"):
        r = as_(api, user).get("/api/whoami")
        assert r.status == 401, user
        assert r.json == {"error": "not_authorised", "reason": "Not management user"}


def test_whoami_names_the_user_and_its_tags(api):
    assert api.ok("/api/whoami")["name"] == "guest"
    assert api.ok("/api/whoami")["tags"] == ["administrator"]
    me = as_(api, "mon").ok("/api/whoami")
    assert me["name"] == "mon" and me["tags"] == ["monitoring"]


def test_route_needs_are_enforced_by_tag(api):
    mgmt, mon, pol, adm = (as_(api, u) for u in ("mgmt", "mon", "pol", "adm"))
    # management: the overview yes, the node no
    assert mgmt.get("/api/overview").status == 200
    r = mgmt.get("/api/nodes")
    assert r.status == 403
    assert r.json == {"error": "not_authorised", "reason": "Not monitor user"}
    assert pol.get("/api/nodes").status == 403
    assert mon.get("/api/nodes").status == 200
    assert adm.get("/api/nodes").status == 200
    # administrator only
    r = mon.request("PUT", "/api/cluster-name", body={"name": "x"})
    assert r.status == 403
    assert r.json == {"error": "not_authorised", "reason": "Not administrator user"}


def test_unknown_path_is_404_json(api):
    for path in ("/api/no-such-thing", "/api/overview/extra", "/api/nodes/a/b/c/d"):
        r = api.get(path)
        assert r.status == 404, path
        assert r.json == {"error": "Object Not Found", "reason": "Not Found"}


def test_known_path_with_another_method_is_405(api):
    r = api.request("DELETE", "/api/overview")
    assert r.status == 405
    assert r.json["error"] == "method_not_allowed"
    assert api.request("POST", "/api/whoami", raw=b"").status == 405


def test_head_is_answered_like_get(api):
    r = api.request("HEAD", "/api/overview")
    assert r.status == 200 and r.raw == b""


def test_trailing_slash_and_percent_encoded_segments(api):
    assert api.get("/api/overview/").status == 200
    assert api.get("/api/vhosts/%2F/connections").status == 200
    assert api.get("/api/vhosts/%2f/channels").status == 200
    assert api.get("/api/vhosts/nope/connections").status == 404


def test_body_over_the_limit_is_413(api):
    big = b'{"name":"' + b"x" * 20000000 + b'"}'   # management.http.max_body_size
    try:
        r = api.request("PUT", "/api/cluster-name", raw=big,
                        headers={"Content-Type": "application/json"})
    except (ConnectionError, urllib.error.URLError):
        return   # closed while we were still sending: refused all the same
    assert r.status == 413


def test_request_headers_over_the_limit_are_431_and_the_api_goes_on(api):
    """Headers are held in libmicrohttpd's per-connection memory: a
    request whose headers do not fit is refused with 431 (its own HTML
    body, the one reply that is not JSON), and the next request is served."""
    try:
        r = api.request("GET", "/api/overview", headers={"X-Big": "a" * 100000})
    except (ConnectionError, urllib.error.URLError):
        r = None   # closed while we were still sending: refused all the same
    assert r is None or r.status == 431
    assert api.get("/api/overview").status == 200


def test_bad_json_body_is_400(api):
    r = api.request("PUT", "/api/cluster-name", raw=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json["error"] == "bad_request"
    r = api.request("PUT", "/api/cluster-name", raw=b"[1]",
                    headers={"Content-Type": "application/json"})
    assert r.status == 400


# ------------------------------------------------------------ overview and nodes

def test_overview_fields(api, mb):
    o = api.ok("/api/overview")
    assert o["product_name"] == "Coney"
    assert o["rabbitmq_version"].startswith("3.")
    assert o["product_version"] and o["management_version"]
    assert o["node"].startswith("coney@")
    assert {t["name"] for t in o["exchange_types"]} == {"direct", "fanout", "headers", "topic"}
    ports = {(l["protocol"], l["port"]) for l in o["listeners"]}
    assert ("amqp", mb.port) in ports and ("mqtt", mb.mqtt_port) in ports
    assert ("http", mb.http_port) in ports
    for k in ("connections", "channels", "exchanges", "queues", "consumers"):
        assert isinstance(o["object_totals"][k], int)
    for k in ("messages", "messages_ready", "messages_unacknowledged"):
        assert isinstance(o["queue_totals"][k], int)
        assert "rate" in o["queue_totals"][k + "_details"]
    # counters appear once they have counted something, as RabbitMQ's
    for k, v in o["message_stats"].items():
        assert v > 0 if not k.endswith("_details") else "rate" in v, k
    assert "connection_created" in o["churn_rates"]


def test_overview_counts_objects_and_messages(api, mb):
    before = api.ok("/api/overview")
    c = connect(mb)
    try:
        ch = c.channel()
        qn = uname("ov")
        ch.queue_declare(qn)
        for i in range(3):
            ch.basic_publish("", qn, b"m%d" % i)
        ch.queue_declare(qn, passive=True)   # a round trip: the publishes are in
        o = api.ok("/api/overview")
        assert o["object_totals"]["queues"] == before["object_totals"]["queues"] + 1
        assert o["object_totals"]["connections"] >= 1
        assert o["object_totals"]["channels"] >= 1
        assert o["queue_totals"]["messages_ready"] >= 3
        assert o["message_stats"]["publish"] >= before["message_stats"].get("publish", 0) + 3
        assert "rate" in o["message_stats"]["publish_details"]
        ch.queue_delete(qn)
    finally:
        c.close()


def test_management_user_sees_no_node_details_in_overview(api):
    o = as_(api, "mgmt").ok("/api/overview")
    assert o["listeners"] == []
    assert o["product_name"] == "Coney"


def test_nodes_and_node(api, mb):
    nodes = api.ok("/api/nodes")
    assert len(nodes) == 1
    n = nodes[0]
    for k in ("mem_used", "mem_limit", "disk_free", "disk_free_limit", "fd_used", "fd_total",
              "sockets_used", "proc_used", "uptime"):
        assert isinstance(n[k], int) and n[k] >= 0, k
    assert n["mem_used"] > 0 and n["fd_total"] > 0
    assert n["running"] is True and n["partitions"] == []
    assert n["mem_alarm"] is False and n["disk_free_alarm"] is False
    one = api.ok("/api/nodes/" + q(n["name"]))
    assert one["name"] == n["name"] and one["uptime"] >= n["uptime"]
    assert "memory" not in one
    assert "memory" in api.ok("/api/nodes/%s?memory=true" % q(n["name"]))
    assert "memory" in api.ok("/api/nodes/%s/memory" % q(n["name"]))
    r = api.get("/api/nodes/rabbit@elsewhere")
    assert r.status == 404


def test_cluster_name_get_put_survives_restart(api, mb):
    from coney_util import restart_broker
    assert api.ok("/api/cluster-name")["name"]
    assert api.request("PUT", "/api/cluster-name", body={"name": "burrow"}).status == 204
    assert api.ok("/api/cluster-name") == {"name": "burrow"}
    assert api.ok("/api/overview")["cluster_name"] == "burrow"
    assert api.request("PUT", "/api/cluster-name", body={"name": ""}).status == 400
    restart_broker(mb)
    assert api.ok("/api/cluster-name") == {"name": "burrow"}


def test_extensions_is_an_empty_list(api):
    assert api.ok("/api/extensions") == []


# ------------------------------------------------------------ health checks

def test_health_checks_pass_on_a_healthy_node(api, mb):
    for path in ("alarms", "local-alarms", "virtual-hosts", "node-is-quorum-critical",
                 "is-in-service", "ready-to-serve-clients", "below-node-connection-limit",
                 "port-listener/%d" % mb.port, "port-listener/%d" % mb.http_port,
                 "protocol-listener/amqp", "protocol-listener/amqp091",
                 "protocol-listener/mqtt", "protocol-listener/http",
                 "protocol-listener/prometheus"):
        r = api.get("/api/health/checks/" + path)
        assert r.status == 200, (path, r)
        assert r.json["status"] == "ok"


def test_health_listener_checks_fail_with_503(api, mb):
    r = api.get("/api/health/checks/port-listener/1")
    assert r.status == 503
    assert r.json["status"] == "failed" and r.json["missing"] == 1
    assert mb.port in r.json["ports"]
    r = api.get("/api/health/checks/protocol-listener/mqtt%2Fssl")
    assert r.status == 503 and r.json["status"] == "failed"
    assert "amqp" in r.json["protocols"]
    assert api.get("/api/health/checks/port-listener/notaport").status == 400


def test_health_alarms_503_while_the_disk_alarm_holds(tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("disk_free_limit.absolute = 1000TB\n")
    b = start_broker(_binary(), ["--config", str(conf)])
    try:
        a = Api(b.http_port)
        for path in ("alarms", "local-alarms"):
            r = a.get("/api/health/checks/" + path)
            assert r.status == 503, r
            assert r.json["status"] == "failed" and r.json["reason"]
            assert r.json["alarms"][0]["resource"] == "disk"
        assert a.ok("/api/nodes")[0]["disk_free_alarm"] is True
        assert a.get("/api/health/checks/virtual-hosts").status == 200
    finally:
        stop(b)


def test_aliveness_test(api, mb):
    assert api.ok("/api/aliveness-test/%2F") == {"status": "ok"}
    assert api.ok("/api/aliveness-test/%2F") == {"status": "ok"}   # again: the queue stays
    c = connect(mb)
    try:
        ch = c.channel()
        ok = ch.queue_declare("aliveness-test", passive=True)
        assert ok.method.message_count == 0
    finally:
        c.close()
    assert api.get("/api/aliveness-test/nope").status == 404


# ------------------------------------------------------------ connections

def test_connection_fields(api, mb):
    cname = uname("conn")
    c = connect(mb, name=cname)
    try:
        rec = conn_named(api, cname)
        assert rec["protocol"] == "AMQP 0-9-1"
        assert rec["vhost"] == "/" and rec["user"] == "guest"
        assert rec["port"] == mb.port and rec["peer_host"] == "127.0.0.1"
        assert isinstance(rec["peer_port"], int) and rec["peer_port"] > 0
        assert rec["state"] == "running" and rec["ssl"] is False
        assert rec["channels"] == 0
        assert rec["connected_at"] > (time.time() - 600) * 1000
        assert rec["recv_oct"] > 0 and rec["send_oct"] > 0
        assert "rate" in rec["recv_oct_details"] and "rate" in rec["send_oct_details"]
        assert rec["client_properties"]["product"].startswith("Pika")
        assert rec["client_properties"]["capabilities"]["publisher_confirms"] is True
        one = api.ok("/api/connections/" + q(rec["name"]))
        assert one["name"] == rec["name"]
        assert any(x["name"] == rec["name"] for x in api.ok("/api/vhosts/%2F/connections"))
        assert any(x["name"] == rec["name"] for x in api.ok("/api/connections/username/guest"))
        c.channel()
        assert api.ok("/api/connections/" + q(rec["name"]))["channels"] == 1
    finally:
        c.close()
    wait_for(lambda: api.get("/api/connections/" + q(rec["name"])).status == 404,
             what="the closed connection to go")


def test_delete_connection_closes_it_with_320_and_x_reason(api, mb):
    cname = uname("kill")
    c = connect(mb, name=cname)
    rec = conn_named(api, cname)
    r = api.request("DELETE", "/api/connections/" + q(rec["name"]),
                    headers={"X-Reason": "go away now"})
    assert r.status == 204
    e = connection_close_reason(c)
    assert e.reply_code == 320
    assert e.reply_text == "CONNECTION_FORCED - go away now"


def test_delete_connection_without_reason_says_management(api, mb):
    cname = uname("kill")
    c = connect(mb, name=cname)
    rec = conn_named(api, cname)
    assert api.request("DELETE", "/api/connections/" + q(rec["name"])).status == 204
    e = connection_close_reason(c)
    assert e.reply_code == 320 and "Closed via management plugin" in e.reply_text
    assert api.request("DELETE", "/api/connections/nope").status == 404


def test_management_user_sees_only_its_own_connections(api, mb):
    mine, theirs = uname("mine"), uname("theirs")
    cm = connect(mb, "mgmt", "mgmtpw", name=mine)
    cg = connect(mb, name=theirs)
    try:
        conn_named(api, mine)
        conn_named(api, theirs)
        names = {c["client_properties"].get("connection_name")
                 for c in as_(api, "mgmt").ok("/api/connections")}
        assert mine in names and theirs not in names
        names = {c["client_properties"].get("connection_name")
                 for c in as_(api, "mon").ok("/api/connections")}
        assert {mine, theirs} <= names
        guest_conn = conn_named(api, theirs)["name"]
        assert as_(api, "mgmt").get("/api/connections/" + q(guest_conn)).status == 404
        # monitoring may look but not close another user's connection
        assert as_(api, "mon").get("/api/connections/" + q(guest_conn)).status == 200
        assert as_(api, "mon").request("DELETE", "/api/connections/" + q(guest_conn)).status == 403
        assert as_(api, "mgmt").get("/api/connections/username/guest").status == 403
        assert len(as_(api, "mgmt").ok("/api/connections/username/mgmt")) >= 1
        # its own it may close
        own = conn_named(api, mine)["name"]
        assert as_(api, "mgmt").request("DELETE", "/api/connections/" + q(own)).status == 204
        assert connection_close_reason(cm).reply_code == 320
    finally:
        cg.close()
        if cm.is_open:
            cm.close()


def test_channels_and_consumers(api, mb):
    cname = uname("chan")
    c = connect(mb, name=cname)
    try:
        ch = c.channel()
        ch.basic_qos(prefetch_count=7)
        ch.confirm_delivery()
        qn = uname("cq")
        ch.queue_declare(qn, auto_delete=True)
        tag = ch.basic_consume(qn, lambda *a: None, consumer_tag="ctag-" + qn)
        ch.basic_publish("", qn, b"x")
        rec = conn_named(api, cname)
        chs = api.ok("/api/connections/%s/channels" % q(rec["name"]))
        assert len(chs) == 1
        cj = chs[0]
        assert cj["number"] == ch.channel_number
        assert cj["name"] == "%s (%d)" % (rec["name"], ch.channel_number)
        assert cj["connection_details"] == {"name": rec["name"], "peer_host": rec["peer_host"],
                                            "peer_port": rec["peer_port"]}
        assert cj["prefetch_count"] == 7 and cj["confirm"] is True
        assert cj["transactional"] is False and cj["consumer_count"] == 1
        assert isinstance(cj["message_stats"], dict)
        one = api.ok("/api/channels/" + q(cj["name"]))
        assert one["name"] == cj["name"]
        assert any(x["name"] == cj["name"] for x in api.ok("/api/channels"))
        assert any(x["name"] == cj["name"] for x in api.ok("/api/vhosts/%2F/channels"))
        assert api.get("/api/channels/" + q(rec["name"] + " (99)")).status == 404
        assert api.get("/api/channels/garbage").status == 404
        cons = [x for x in api.ok("/api/consumers") if x["consumer_tag"] == tag]
        assert len(cons) == 1
        k = cons[0]
        assert k["queue"] == {"name": qn, "vhost": "/"}
        assert k["channel_details"]["name"] == cj["name"]
        assert k["channel_details"]["connection_name"] == rec["name"]
        assert k["ack_required"] is True and k["exclusive"] is False and k["active"] is True
        assert k["prefetch_count"] == 7
        assert any(x["consumer_tag"] == tag for x in api.ok("/api/consumers/%2F"))
        assert api.get("/api/consumers/nope").status == 404
        # unacknowledged: the message went to the consumer
        wait_for(lambda: (c.process_data_events(0.05), api.ok(
            "/api/channels/" + q(cj["name"]))["messages_unacknowledged"] == 1)[1],
            what="one unacked message")
    finally:
        c.close()


# ------------------------------------------------------------ list parameters

@pytest.fixture
def twelve_channels(api, mb):
    cname = uname("list")
    c = connect(mb, name=cname)
    chans = [c.channel() for _ in range(12)]
    rec = conn_named(api, cname)
    yield rec["name"], chans
    c.close()


def test_list_sort_and_reverse(api, twelve_channels):
    name, _ = twelve_channels
    path = "/api/connections/%s/channels" % q(name)
    nums = [c["number"] for c in api.ok(path + "?sort=number")]
    assert nums == sorted(nums) and len(nums) == 12
    nums = [c["number"] for c in api.ok(path + "?sort=number&sort_reverse=true")]
    assert nums == sorted(nums, reverse=True)
    # dotted paths sort too
    assert len(api.ok(path + "?sort=message_stats.publish")) == 12
    # default: by name (strings, so "(10)" before "(2)")
    names = [c["name"] for c in api.ok(path)]
    assert names == sorted(names)


def test_list_columns_keep_structure(api, twelve_channels):
    name, _ = twelve_channels
    items = api.ok("/api/connections/%s/channels?columns=number,connection_details.name,nope"
                   % q(name))
    assert items and all(set(i) == {"number", "connection_details"} for i in items)
    assert all(i["connection_details"] == {"name": name} for i in items)


def test_list_name_filter_and_regex(api, twelve_channels):
    name, _ = twelve_channels
    path = "/api/connections/%s/channels" % q(name)
    got = api.ok(path + "?name=" + q(name + " (1"))    # (1), (10), (11), (12)
    assert sorted(c["number"] for c in got) == [1, 10, 11, 12]
    got = api.ok(path + "?name=" + q(name.upper() + " (1"))   # case does not matter
    assert len(got) == 4
    got = api.ok(path + "?use_regex=true&name=" + q(re.escape(name) + r" \(1\d\)$"))
    assert sorted(c["number"] for c in got) == [10, 11, 12]
    r = api.get(path + "?use_regex=true&name=" + q("(unclosed"))
    assert r.status == 400 and r.json["error"] == "bad_request"


def test_list_pagination(api, twelve_channels):
    name, _ = twelve_channels
    path = "/api/connections/%s/channels?sort=number" % q(name)
    p = api.ok(path + "&page=2&page_size=5")
    assert p["page"] == 2 and p["page_size"] == 5 and p["page_count"] == 3
    assert p["total_count"] == 12 and p["filtered_count"] == 12 and p["item_count"] == 5
    assert [c["number"] for c in p["items"]] == [6, 7, 8, 9, 10]
    p = api.ok(path + "&page=3&page_size=5")
    assert p["item_count"] == 2 and [c["number"] for c in p["items"]] == [11, 12]
    p = api.ok(path + "&page=1&name=" + q(name + " (1"))
    assert p["filtered_count"] == 4 and p["total_count"] == 12 and p["page_size"] == 100
    p = api.ok(path + "&page=1&page_size=2&columns=number")
    assert p["items"] == [{"number": 1}, {"number": 2}]
    for bad in ("&page=1&page_size=501", "&page=0", "&page=x", "&page=1&page_size=0",
                "&page=9&page_size=5"):
        r = api.get(path + bad)
        assert r.status == 400, bad
        assert r.json["error"] == "bad_request"


# ------------------------------------------------------------ 10,000 queues

def test_ten_thousand_queues_list_and_page(api, mb):
    """Correctness with 10,000 queues; the times are printed, not checked."""
    if api.get("/api/queues").status == 404:
        pytest.skip("/api/queues is not served yet (api_objects.c)")
    c = connect(mb)
    try:
        ch = c.channel()
        prefix = uname("tenk")
        for i in range(10000):
            ch.queue_declare("%s.%05d" % (prefix, i), auto_delete=False)
        t0 = time.monotonic()
        r = api.get("/api/queues")
        t_all = time.monotonic() - t0
        assert r.status == 200
        mine = [x for x in r.json if x["name"].startswith(prefix)]
        assert len(mine) == 10000
        t0 = time.monotonic()
        p = api.ok("/api/queues?page=1&page_size=100")
        t_page = time.monotonic() - t0
        assert p["item_count"] == 100 and p["total_count"] >= 10000
        t0 = time.monotonic()
        p = api.ok("/api/queues?page=3&page_size=100&name=%s&sort=name&sort_reverse=true"
                   % q(prefix))
        t_filtered = time.monotonic() - t0
        assert p["filtered_count"] == 10000
        assert p["items"][0]["name"] == "%s.%05d" % (prefix, 9799)
        print("\n10,000 queues: GET /api/queues %.3f s (%d bytes), page 1 of 100 %.3f s, "
              "filtered+sorted page %.3f s" % (t_all, len(r.raw), t_page, t_filtered))
        for i in range(10000):
            ch.queue_delete("%s.%05d" % (prefix, i))
    finally:
        c.close()
