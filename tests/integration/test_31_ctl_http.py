"""coney-ctl as a client of the management HTTP API (docs/management.md,
docs/access.md): every command it gained with the API, over both ways
in, the broker's Unix socket <data-dir>/coney.sock (where it is the local
administrator, no password) and the management port over TCP (--url, as
guest); --json prints JSON a script can parse; an unreachable broker exits
69 with "no broker answers on ..."; close_connection reaches a pika client
as connection.close 320; definitions exported from one broker import into
a fresh one. The older user, vhost, permission and limit commands are
test_24_access.py."""

import json
import os
import signal
import stat
import subprocess

import pytest

from coney_util import (TIMEOUT, assert_closed_with, connection_close_reason, free_port,
                        start_broker, uname, wait_for)

CONNECTION_FORCED = 320


class Ctl:
    """coney-ctl (next to the broker binary) against one broker, over its
    socket or its management port."""

    def __init__(self, coney_bin, broker, transport="socket"):
        self.path = os.path.join(os.path.dirname(coney_bin), "coney-ctl")
        self.broker = broker
        self.transport = transport

    def where(self):
        if self.transport == "socket":
            return ["--data-dir", self.broker.data_dir]
        return ["--url", "http://127.0.0.1:%d" % self.broker.http_port,
                "--user", "guest", "--password", "guest"]

    def run(self, *args, where=None, stdin=None):
        return subprocess.run([self.path] + (where if where is not None else self.where())
                              + list(args), input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)

    def __call__(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, "coney-ctl %s exited %d: %s" % (
            " ".join(args), p.returncode, p.stderr)
        return p.stdout

    def fails(self, code, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == code, "coney-ctl %s exited %d, expected %d\n%s%s" % (
            " ".join(args), p.returncode, code, p.stdout, p.stderr)
        return p.stderr

    def table(self, *args):
        """A listing as (header, rows): the header's columns and a list of
        dicts, one per row."""
        lines = self(*args).splitlines()
        assert lines, "coney-ctl %s printed no header" % " ".join(args)
        head = lines[0].split("\t")
        rows = []
        for line in lines[1:]:
            cells = line.split("\t")
            assert len(cells) == len(head), "row %r does not fit header %r" % (line, head)
            rows.append(dict(zip(head, cells)))
        return head, rows

    def rows(self, *args):
        return self.table(*args)[1]

    def json(self, *args):
        return json.loads(self("--json", *args))


def _binary():
    return os.path.abspath(os.environ.get("CONEY_BIN") or
                           os.path.join(os.path.dirname(__file__), "..", "..", "build", "coney"))


@pytest.fixture(scope="module")
def mb():
    """One broker for the module; tests use names of their own."""
    if os.environ.get("CONEY_TEST_TARGET"):
        pytest.skip("needs to control the broker process (CONEY_TEST_TARGET is set)")
    b = start_broker(_binary())
    try:
        yield b
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


@pytest.fixture(params=["socket", "tcp"])
def ctl(request, mb, coney_bin):
    return Ctl(coney_bin, mb, request.param)


@pytest.fixture
def sock_ctl(mb, coney_bin):
    return Ctl(coney_bin, mb, "socket")


def by(rows, key, value):
    found = [r for r in rows if r[key] == value]
    assert len(found) == 1, "%s=%r in %r" % (key, value, rows)
    return found[0]


# ------------------------------------------------------------ objects

def test_declare_and_list_exchanges_queues_and_bindings(ctl, mb):
    v = uname("v")
    x, qn = uname("x"), uname("q")
    ctl("add_vhost", v)
    ctl("set_permissions", "-p", v, "guest", ".*", ".*", ".*")
    ctl("declare_exchange", "-p", v, x, "fanout", "--durable")
    ctl("declare_queue", "-p", v, qn, "--durable")
    ctl("declare_queue", "-p", v, qn + "-ad", "--auto-delete")
    c = mb.connect(vhost=v)
    c.channel().queue_bind(qn, x, routing_key="k")
    c.close()

    head, rows = ctl.table("list_exchanges", "-p", v)
    assert head == ["name", "type", "durable", "auto_delete", "internal"]
    assert by(rows, "name", x) == {"name": x, "type": "fanout", "durable": "true",
                                   "auto_delete": "false", "internal": "false"}
    assert by(rows, "name", "amq.topic")["type"] == "topic"

    head, rows = ctl.table("list_queues", "-p", v)
    assert head == ["name", "messages", "messages_unacknowledged", "consumers"]
    assert {r["name"] for r in rows} == {qn, qn + "-ad"}

    head, rows = ctl.table("list_bindings", "-p", v)
    assert head == ["source", "destination", "destination_type", "routing_key", "arguments"]
    assert {"source": x, "destination": qn, "destination_type": "queue", "routing_key": "k",
            "arguments": "{}"} in rows
    # the default exchange's binding, as RabbitMQ lists it
    assert {"source": "", "destination": qn, "destination_type": "queue", "routing_key": qn,
            "arguments": "{}"} in rows

    # --json: the API's objects
    xs = ctl.json("list_exchanges", "-p", v)
    mine = [e for e in xs if e["name"] == x]
    assert mine and mine[0]["durable"] is True and mine[0]["vhost"] == v
    qs = {q["name"]: q for q in ctl.json("list_queues", "-p", v)}
    assert qs[qn]["durable"] is True and qs[qn + "-ad"]["auto_delete"] is True
    assert any(b["source"] == x for b in ctl.json("list_bindings", "-p", v))

    ctl("delete_exchange", "-p", v, x)
    assert x not in {r["name"] for r in ctl.rows("list_exchanges", "-p", v)}
    ctl("delete_queue", "-p", v, qn)
    assert {r["name"] for r in ctl.rows("list_queues", "-p", v)} == {qn + "-ad"}
    ctl("delete_vhost", v)


def test_refusals_name_the_missing_object(ctl):
    qn = uname("q")
    assert "no such queue: '%s' in vhost '/'" % qn in ctl.fails(1, "delete_queue", qn)
    assert "no such queue" in ctl.fails(1, "purge_queue", qn)
    assert "no such queue" in ctl.fails(1, "get", qn)
    assert "no such exchange: 'nope-x' in vhost '/'" in ctl.fails(1, "delete_exchange", "nope-x")
    assert "no such exchange" in ctl.fails(1, "publish", "nope-x", "k", "m")
    assert "no such vhost: 'nowhere'" in ctl.fails(1, "list_exchanges", "-p", "nowhere")
    assert "no such vhost: 'nowhere'" in ctl.fails(1, "declare_queue", "-p", "nowhere", qn)
    assert "no such connection: 'nope'" in ctl.fails(1, "close_connection", "nope")
    # the API's own reasons come through
    ctl("declare_queue", qn)
    err = ctl.fails(1, "declare_queue", qn, "--durable")
    assert "inequivalent arg 'durable'" in err, err
    err = ctl.fails(1, "declare_exchange", uname("x"), "no-such-type")
    assert "type" in err, err
    ctl("delete_queue", qn)


def test_publish_get_and_purge(ctl):
    qn = uname("q")
    ctl("declare_queue", qn)
    assert ctl("publish", "", qn, "one").strip() == "Message published"
    ctl("publish", "amq.direct", qn, "unbound")   # amq.direct has no binding for it
    assert "NOT routed" in ctl("publish", "amq.direct", qn, "unbound")
    ctl("publish", "", qn, "two\tand a tab")
    ctl("publish", "", qn, "three")
    assert by(ctl.rows("list_queues"), "name", qn)["messages"] == "3"

    # get requeues by default (rabbitmqadmin's ack_requeue_true)
    head, rows = ctl.table("get", qn, "2")
    assert head == ["routing_key", "exchange", "message_count", "redelivered", "payload_bytes",
                    "payload_encoding", "payload"]
    assert [r["payload"] for r in rows] == ["one", "two\\tand a tab"]
    assert rows[0]["routing_key"] == qn and rows[0]["exchange"] == ""
    assert by(ctl.rows("list_queues"), "name", qn)["messages"] == "3"

    got = ctl.json("get", qn, "--ackmode", "ack_requeue_false")
    assert len(got) == 1 and got[0]["payload"] == "one" and got[0]["redelivered"] is True
    assert by(ctl.rows("list_queues"), "name", qn)["messages"] == "2"

    ctl("purge_queue", qn)
    assert by(ctl.rows("list_queues"), "name", qn)["messages"] == "0"
    assert ctl.rows("get", qn) == []
    assert ctl.json("publish", "", qn, "x") == {"routed": True}
    ctl("delete_queue", qn)


def test_clients_channels_and_consumers(ctl, mb):
    qn = uname("q")
    c = mb.connect(client_properties={"connection_name": "ctl-test"})
    ch = c.channel()
    ch.queue_declare(qn)
    ch.basic_qos(prefetch_count=7)
    tag = ch.basic_consume(qn, lambda *a: None)
    try:
        conns = ctl.json("list_connections")
        mine = [x for x in conns if x.get("client_properties", {}).get("connection_name")
                == "ctl-test"]
        assert len(mine) == 1, conns
        name = mine[0]["name"]
        head, rows = ctl.table("list_connections")
        assert head == ["name", "user", "vhost", "protocol", "state", "channels"]
        row = by(rows, "name", name)
        assert row["user"] == "guest" and row["vhost"] == "/" and row["channels"] == "1"
        assert row["state"] == "running"

        chans = [r for r in ctl.rows("list_channels") if r["name"].startswith(name)]
        assert len(chans) == 1
        assert chans[0]["consumer_count"] == "1" and chans[0]["prefetch_count"] == "7"

        head, rows = ctl.table("list_consumers")
        assert head[:3] == ["queue", "channel", "consumer_tag"]
        row = by(rows, "consumer_tag", tag)
        assert row["queue"] == qn and row["ack_required"] == "true"
        assert row["prefetch_count"] == "7" and row["channel"].startswith(name)
        assert any(k["consumer_tag"] == tag for k in ctl.json("list_consumers"))
    finally:
        c.close()


def test_close_connection_reaches_the_client_as_320(ctl, mb):
    c = mb.connect(client_properties={"connection_name": "to-close"})
    name = [x["name"] for x in ctl.json("list_connections")
            if x.get("client_properties", {}).get("connection_name") == "to-close"][0]
    ctl("close_connection", name, "maintenance window")
    e = connection_close_reason(c)
    assert_closed_with(e, CONNECTION_FORCED, "CONNECTION_FORCED - maintenance window")
    wait_for(lambda: name not in {r["name"] for r in ctl.rows("list_connections")},
             what="the connection to leave the listing")


def test_local_administrator_needs_no_permissions(sock_ctl, mb, coney_bin):
    """On the socket coney-ctl is the local administrator: it may publish
    and get in a vhost where nobody has permissions."""
    v, qn = uname("v"), uname("q")
    sock_ctl("add_vhost", v)
    assert sock_ctl.rows("list_permissions", "-p", v) == []
    sock_ctl("declare_queue", "-p", v, qn)
    sock_ctl("publish", "-p", v, "amq.topic", "a.b", "x")
    assert "Message published" in sock_ctl("publish", "-p", v, "", qn, "hello")
    assert [r["payload"] for r in sock_ctl.rows("get", "-p", v, qn)] == ["hello"]
    # guest over TCP is refused there: it has no permissions in v
    tcp = Ctl(coney_bin, mb, "tcp")
    assert "Access refused" in tcp.fails(1, "publish", "-p", v, "", qn, "hello")
    sock_ctl("delete_vhost", v)


def test_user_commands_over_tcp(mb, coney_bin):
    tcp = Ctl(coney_bin, mb, "tcp")
    u = uname("u")
    tcp("add_user", u, "pw")
    assert "user '%s' already exists" % u in tcp.fails(1, "add_user", u, "x")
    tcp("set_user_tags", u, "monitoring", "management")
    tcp("set_permissions", u, "^%s-" % u, ".*", ".*")
    assert {"user": u, "vhost": "/", "configure": "^%s-" % u, "write": ".*", "read": ".*"} \
        in tcp.rows("list_permissions")
    assert by(tcp.rows("list_users"), "user", u)["tags"] == "monitoring,management"
    tcp("authenticate_user", u, "pw")
    assert "could not be authenticated" in tcp.fails(1, "authenticate_user", u, "bad")
    # a user without management tags still authenticates
    tcp("set_user_tags", u)
    tcp("authenticate_user", u, "pw")
    tcp("delete_user", u)
    assert "no such user: '%s'" % u in tcp.fails(1, "delete_user", u)


def test_tcp_login_refused_exits_1(mb, coney_bin):
    tcp = Ctl(coney_bin, mb, "tcp")
    err = tcp.fails(1, "list_vhosts", where=["--url", "http://127.0.0.1:%d" % mb.http_port,
                                             "--user", "guest", "--password", "wrong"])
    assert "Login failed" in err and "guest" in err, err


# ------------------------------------------------------------ node

def test_status_and_health(ctl, mb):
    head, rows = ctl.table("status")
    kv = {r["key"]: r["value"] for r in rows}
    assert head == ["key", "value"]
    assert kv["pid"] == str(mb.proc.pid)
    assert os.path.samefile(kv["data_dir"], mb.data_dir)
    assert kv["version"] and kv["node"].startswith("coney@")
    assert kv["listener amqp"] == str(mb.port)
    st = ctl.json("status")
    assert st["overview"]["product_name"] == "Coney"
    assert st["node"]["os_pid"] == str(mb.proc.pid)

    head, rows = ctl.table("health")
    assert head == ["check", "status", "reason"]
    checks = {r["check"]: r["status"] for r in rows}
    assert checks["alarms"] == "ok" and checks["is-in-service"] == "ok"
    assert checks["port-listener/%d" % mb.port] == "ok"
    assert all(s == "ok" for s in checks.values()), checks
    assert all(c["status"] == 200 for c in ctl.json("health"))


def test_health_exits_1_when_a_check_fails(coney_bin, tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("disk_free_limit.absolute = 1000000TB\n")
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        p = Ctl(coney_bin, b).run("health")
        assert p.returncode == 1, p.stderr
        rows = dict(line.split("\t")[:2] for line in p.stdout.splitlines()[1:])
        assert rows["alarms"] == "failed" and rows["virtual-hosts"] == "ok"
        assert "alarm" in p.stdout
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


# ------------------------------------------------------------ definitions

def test_export_import_round_trip_into_a_fresh_broker(mb, coney_bin, tmp_path):
    src = Ctl(coney_bin, mb)
    v, u, x, qn = uname("v"), uname("u"), uname("x"), uname("q")
    src("add_vhost", v)
    src("add_user", u, "pw")
    src("set_permissions", "-p", v, u, ".*", ".*", ".*")
    src("declare_exchange", "-p", v, x, "topic", "--durable")
    src("declare_queue", "-p", v, qn, "--durable")
    c = mb.connect(vhost=v, user=u, password="pw")
    c.channel().queue_bind(qn, x, routing_key="a.#")
    c.close()
    path = str(tmp_path / "defs.json")
    src("export_definitions", path)
    with open(path) as f:
        defs = json.load(f)
    assert any(q["name"] == qn for q in defs["queues"])
    # "-" is standard output
    assert json.loads(src("export_definitions", "-"))["vhosts"]

    b = start_broker(coney_bin, extra_args=["--management-port", "0"])
    try:
        dst = Ctl(coney_bin, b)
        assert v not in {r["name"] for r in dst.rows("list_vhosts")}
        dst("import_definitions", path)
        assert v in {r["name"] for r in dst.rows("list_vhosts")}
        assert by(dst.rows("list_queues", "-p", v), "name", qn)
        assert by(dst.rows("list_exchanges", "-p", v), "name", x)["type"] == "topic"
        assert {"source": x, "destination": qn, "destination_type": "queue",
                "routing_key": "a.#", "arguments": "{}"} in dst.rows("list_bindings", "-p", v)
        dst("authenticate_user", u, "pw")
        b.connect(vhost=v, user=u, password="pw").close()
        # and from standard input, again (import merges)
        with open(path) as f:
            dst("import_definitions", "-", stdin=f.read())
        assert "JSON" in dst.fails(1, "import_definitions", "-", stdin="{not json")
        assert "cannot read" in dst.fails(64, "import_definitions", str(tmp_path / "missing"))
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()
    src("delete_vhost", v)
    src("delete_user", u)


# ------------------------------------------------------------ the socket

def test_socket_serves_with_the_management_port_off(coney_bin):
    b = start_broker(coney_bin, extra_args=["--management-port", "0"])
    try:
        sock = os.path.join(b.data_dir, "coney.sock")
        mode = os.stat(sock).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
        ctl = Ctl(coney_bin, b)
        assert {"name": "/", "max-connections": "-1", "max-queues": "-1"} \
            in ctl.rows("list_vhosts")
        assert json.loads(ctl("--json", "status"))["overview"]["listeners"]
        b.check_clean_exit(b.stop(signal.SIGTERM))
        assert not os.path.exists(sock), "the socket outlived the broker"
    finally:
        b.cleanup()


def test_unreachable_broker_exits_69(mb, coney_bin, tmp_path):
    ctl = Ctl(coney_bin, mb)
    err = ctl.fails(69, "list_queues", where=["--data-dir", str(tmp_path)])
    assert "no broker answers on %s/coney.sock" % tmp_path in err, err
    port = free_port()
    err = ctl.fails(69, "status", where=["--url", "http://127.0.0.1:%d" % port])
    assert "no broker answers on http://127.0.0.1:%d" % port in err, err
    err = ctl.fails(69, "list_vhosts", where=["--host", "127.0.0.1", "--port", str(port)])
    assert "no broker answers on http://127.0.0.1:%d" % port in err, err


def test_usage_errors_exit_64_before_the_broker(mb, coney_bin, tmp_path):
    ctl = Ctl(coney_bin, mb, "socket")
    nowhere = ["--data-dir", str(tmp_path)]         # no broker: usage comes first
    for args in (("declare_queue",), ("declare_queue", "q", "--ackmode", "x"),
                 ("list_queues", "--durable"), ("get", "q", "0"), ("get", "q", "x"),
                 ("publish", "x", "k"), ("declare_exchange", "x"),
                 ("close_connection",), ("export_definitions",), ("health", "extra")):
        ctl.fails(64, *args, where=nowhere)
    ctl.fails(64, "status", where=["--url", "https://127.0.0.1:1"])
    out = ctl("--help", where=[])
    for name in ("list_exchanges", "list_bindings", "list_connections", "list_channels",
                 "list_consumers", "declare_queue", "declare_exchange", "delete_queue",
                 "delete_exchange", "purge_queue", "publish", "get", "export_definitions",
                 "import_definitions", "close_connection", "status", "health", "--json",
                 "--url"):
        assert name in out, name
