"""Access control over AMQP, as RabbitMQ has it: users, vhosts, permissions
(configure/write/read regular expressions), topic permissions, limits,
login throttling, RabbitMQ password hashes, durability of all of it, and
coney-ctl, the rabbitmqctl-style command line that manages it
(docs/access.md). MQTT's side is test_25_access_mqtt.py.

Every test runs a broker of its own and sets users up with coney-ctl
against that broker's data directory. guest's loopback-only rule is
test_11_loopback_users.py; frame_max is test_08_raw_protocol.py ("frame
larger than negotiated frame_max is a frame error")."""

import base64
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from collections import namedtuple

import pika
import pika.exceptions
import pytest

import coney_raw as R
import mqtt_raw as M
from coney_util import (SLOW, TIMEOUT, message_count, mqtt_target,
                        queue_exists, restart_broker, start_broker)


# ------------------------------------------------------------ helpers

class Ctl:
    """coney-ctl (next to the broker binary) against one broker's data dir."""

    def __init__(self, coney_bin, data_dir):
        self.path = os.path.join(os.path.dirname(coney_bin), "coney-ctl")
        self.data_dir = data_dir

    def run(self, *args, data_dir=None):
        return subprocess.run([self.path, "--data-dir", data_dir or self.data_dir] + list(args),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=TIMEOUT)

    def __call__(self, *args):
        p = self.run(*args)
        assert p.returncode == 0, "coney-ctl %s exited %d: %s" % (
            " ".join(args), p.returncode, p.stderr)
        return p.stdout

    def fails(self, code, *args, **kw):
        """Runs a command that must exit `code`; returns its stderr."""
        p = self.run(*args, **kw)
        assert p.returncode == code, "coney-ctl %s exited %d, expected %d\n%s%s" % (
            " ".join(args), p.returncode, code, p.stdout, p.stderr)
        return p.stderr

    def rows(self, *args):
        """A listing's rows (without the header line) as a set of tuples."""
        lines = self(*args).splitlines()
        assert lines, "coney-ctl %s printed no header" % " ".join(args)
        return {tuple(line.split("\t")) for line in lines[1:]}


@pytest.fixture
def ctl(fresh_broker, coney_bin):
    return Ctl(coney_bin, fresh_broker.data_dir)


@contextlib.contextmanager
def broker_with_config(coney_bin, tmp_path, text):
    conf = tmp_path / "coney.conf"
    conf.write_text(text)
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        yield b
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()


def user(ctl, name="u", password="pw", vhost=None, perms=None):
    """Adds a user, with permissions (conf, write, read) on vhost if given."""
    ctl("add_user", name, password)
    if perms is not None:
        ctl("set_permissions", "-p", vhost or "/", name, *perms)


def raw_login(b, user, password, vhost="/"):
    """A raw handshake; returns (connection, the frame answering start-ok or
    connection.open). The caller closes the connection."""
    raw = R.RawConnection(b.host, b.port, timeout=TIMEOUT)
    return raw, raw.handshake(user=user, password=password, vhost=vhost)


def assert_connection_refused(b, user, password, vhost, code, text, method=(10, 40)):
    raw, f = raw_login(b, user, password, vhost)
    with raw:
        assert f.method == "connection.close", "expected connection.close, got %r" % f
        assert (f.args["reply_code"], f.args["reply_text"]) == (code, text), f.args
        assert (f.args["class_id"], f.args["method_id"]) == method, f.args


LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                 "For details see the broker logfile.")


def assert_login_refused(b, user, password):
    assert_connection_refused(b, user, password, "/", R.ACCESS_REFUSED, LOGIN_REFUSED,
                              method=(10, 11))


def refused(kind, name, vhost, user):
    return "ACCESS_REFUSED - access to %s '%s' in vhost '%s' refused for user '%s'" % (
        kind, name, vhost, user)


def exchange_exists(conn, name):
    ch = conn.channel()
    try:
        ch.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    ch.close()
    return True


def publish_confirmed(conn, exchange, key, body=b"m"):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(exchange, key, body)
    ch.close()


def rabbit_hash(password, digest=hashlib.sha256, salt=None):
    """RabbitMQ's password_hash: base64(salt + H(salt + password)), 4 bytes of
    random salt (rabbit_password_hashing_sha256 / _sha512)."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + digest(salt + password.encode()).digest()).decode()


def rabbit_hash_verifies(b64, password, digest=hashlib.sha256):
    raw = base64.b64decode(b64, validate=True)
    salt, want = raw[:4], raw[4:]
    return digest(salt + password.encode()).digest() == want


# ------------------------------------------------------------ the default user

def test_fresh_broker_has_guest_administrator_with_all_permissions_on_root(fresh_broker, ctl):
    assert ctl.rows("list_users") == {("guest", "administrator", "-1", "-1")}
    assert ctl.rows("list_vhosts") == {("/", "-1", "-1")}
    assert ctl.rows("list_permissions", "-p", "/") == {("guest", "/", ".*", ".*", ".*")}
    assert ctl.rows("list_topic_permissions") == set()
    c = fresh_broker.connect()
    ch = c.channel()
    ch.exchange_declare("anything", "fanout")
    ch.queue_declare("any-queue")
    ch.queue_bind("any-queue", "anything")
    publish_confirmed(c, "anything", "")
    assert message_count(c, "any-queue") == 1
    c.close()


# ------------------------------------------------------------ the permission matrix (AMQP)
# Each operation runs as user 'u' in vhost 'v' after guest has made the queue
# 'q' and the direct exchanges 'x' and 'x2' there (and whatever the
# operation's setup adds). `effect` tells from guest's side whether the
# operation happened, so a refusal is seen to change nothing.

Op = namedtuple("Op", "method setup run effect")


def _put_message(c):
    publish_confirmed(c, "", "q")


def _consumer_count(c, q):
    ch = c.channel()
    n = ch.queue_declare(q, passive=True).method.consumer_count
    ch.close()
    return n


def _publish(exchange, key):
    def run(ch):
        ch.confirm_delivery()
        ch.basic_publish(exchange, key, b"m")
    return run


OPS = {
    "queue.declare": Op(
        "queue.declare", None,
        lambda ch: ch.queue_declare("q-new"),
        lambda c: queue_exists(c, "q-new")),
    "queue.declare xa": Op(
        "queue.declare", None,
        lambda ch: ch.queue_declare("xa"),
        lambda c: queue_exists(c, "xa")),
    "queue.declare server-named": Op(
        "queue.declare", None,
        lambda ch: ch.queue_declare("", exclusive=True),
        None),
    "exchange.declare": Op(
        "exchange.declare", None,
        lambda ch: ch.exchange_declare("x-new", "direct"),
        lambda c: exchange_exists(c, "x-new")),
    "queue.delete": Op(
        "queue.delete", None,
        lambda ch: ch.queue_delete("q"),
        lambda c: not queue_exists(c, "q")),
    "exchange.delete": Op(
        "exchange.delete", None,
        lambda ch: ch.exchange_delete("x2"),
        lambda c: not exchange_exists(c, "x2")),
    "queue.bind": Op(
        "queue.bind", None,
        lambda ch: ch.queue_bind("q", "x", "k"),
        lambda c: (publish_confirmed(c, "x", "k"), message_count(c, "q") == 1)[1]),
    "exchange.bind": Op(
        "exchange.bind", lambda ch: ch.queue_bind("q", "x2", "k"),
        lambda ch: ch.exchange_bind(destination="x2", source="x", routing_key="k"),
        lambda c: (publish_confirmed(c, "x", "k"), message_count(c, "q") == 1)[1]),
    "queue.unbind": Op(
        "queue.unbind", lambda ch: ch.queue_bind("q", "x", "k"),
        lambda ch: ch.queue_unbind("q", "x", "k"),
        lambda c: (publish_confirmed(c, "x", "k"), message_count(c, "q") == 0)[1]),
    "exchange.unbind": Op(
        "exchange.unbind",
        lambda ch: (ch.queue_bind("q", "x2", "k"),
                    ch.exchange_bind(destination="x2", source="x", routing_key="k")),
        lambda ch: ch.exchange_unbind(destination="x2", source="x", routing_key="k"),
        lambda c: (publish_confirmed(c, "x", "k"), message_count(c, "q") == 0)[1]),
    "basic.publish": Op(
        "basic.publish", lambda ch: ch.queue_bind("q", "x", "k"),
        _publish("x", "k"),
        lambda c: message_count(c, "q") == 1),
    "basic.publish default exchange": Op(
        "basic.publish", None,
        _publish("", "q"),
        lambda c: message_count(c, "q") == 1),
    "basic.consume": Op(
        "basic.consume", None,
        lambda ch: ch.basic_consume("q", lambda *a: None),
        lambda c: _consumer_count(c, "q") == 1),
    "basic.get": Op(
        "basic.get", lambda ch: _put_message(ch.connection),
        lambda ch: ch.basic_get("q", auto_ack=True),
        lambda c: message_count(c, "q") == 0),
    "queue.purge": Op(
        "queue.purge", lambda ch: _put_message(ch.connection),
        lambda ch: ch.queue_purge("q"),
        lambda c: message_count(c, "q") == 0),
}

Row = namedtuple("Row", "id op perms refusal")
ALL = ".*"
GEN = "amq.gen-"   # a server-named queue: the refusal names amq.gen-<random>

MATRIX = [
    # op, (configure, write, read), None or the refused (kind, name)
    Row("queue.declare configure ok", "queue.declare", ("^q-new$", "", ""), None),
    Row("queue.declare without configure 403", "queue.declare", ("", ALL, ALL),
        ("queue", "q-new")),
    Row("queue.declare server-named checked as amq.gen ok", "queue.declare server-named",
        (r"^amq\.gen-", "", ""), None),
    Row("queue.declare server-named without configure on amq.gen 403",
        "queue.declare server-named", ("^q", ALL, ALL), ("queue", GEN)),
    Row("exchange.declare configure ok", "exchange.declare", ("^x-new$", "", ""), None),
    Row("exchange.declare without configure 403", "exchange.declare", ("^q", ALL, ALL),
        ("exchange", "x-new")),
    Row("queue.delete configure ok", "queue.delete", ("^q$", "", ""), None),
    Row("queue.delete without configure 403", "queue.delete", ("", ALL, ALL), ("queue", "q")),
    Row("exchange.delete configure ok", "exchange.delete", ("^x2$", "", ""), None),
    Row("exchange.delete without configure 403", "exchange.delete", ("^x$", ALL, ALL),
        ("exchange", "x2")),
    Row("queue.bind write on queue read on exchange ok", "queue.bind", ("", "^q$", "^x$"), None),
    Row("queue.bind without write on queue 403", "queue.bind", (ALL, "^x", ALL),
        ("queue", "q")),
    Row("queue.bind without read on exchange 403", "queue.bind", (ALL, ALL, "^q"),
        ("exchange", "x")),
    Row("exchange.bind write on destination read on source ok", "exchange.bind",
        ("", "^x2$", "^x$"), None),
    Row("exchange.bind without write on destination 403", "exchange.bind", (ALL, "^x$", ALL),
        ("exchange", "x2")),
    Row("exchange.bind without read on source 403", "exchange.bind", (ALL, ALL, "^x2$"),
        ("exchange", "x")),
    Row("queue.unbind write on queue read on exchange ok", "queue.unbind", ("", "^q$", "^x$"),
        None),
    Row("queue.unbind without read on exchange 403", "queue.unbind", (ALL, ALL, "^q$"),
        ("exchange", "x")),
    Row("exchange.unbind write on destination read on source ok", "exchange.unbind",
        ("", "^x2$", "^x$"), None),
    Row("exchange.unbind without write on destination 403", "exchange.unbind", (ALL, "^q$", ALL),
        ("exchange", "x2")),
    Row("basic.publish write on exchange ok", "basic.publish", ("", "^x$", ""), None),
    Row("basic.publish without write on exchange 403", "basic.publish", (ALL, "^q$", ALL),
        ("exchange", "x")),
    Row("basic.publish default exchange write on amq.default ok",
        "basic.publish default exchange", ("", r"^amq\.default$", ""), None),
    Row("basic.publish default exchange without write on amq.default 403",
        "basic.publish default exchange", (ALL, "^q$", ALL), ("exchange", "amq.default")),
    Row("basic.consume read ok", "basic.consume", ("", "", "^q$"), None),
    Row("basic.consume without read 403", "basic.consume", (ALL, ALL, "^x"), ("queue", "q")),
    Row("basic.get read ok", "basic.get", ("", "", "^q$"), None),
    Row("basic.get without read 403", "basic.get", (ALL, ALL, ""), ("queue", "q")),
    Row("queue.purge read ok", "queue.purge", ("", "", "^q$"), None),
    Row("queue.purge without read 403", "queue.purge", (ALL, ALL, "x"), ("queue", "q")),
    # the patterns: unanchored, as re:run; "" matches nothing
    Row("pattern a matches xa unanchored", "queue.declare xa", ("a", "", ""), None),
    Row("pattern ^a does not match xa", "queue.declare xa", ("^a", ALL, ALL), ("queue", "xa")),
    Row("pattern ^xa$ matches xa", "queue.declare xa", ("^xa$", "", ""), None),
    Row("empty pattern matches nothing", "queue.declare xa", ("", ALL, ALL), ("queue", "xa")),
]


@pytest.mark.parametrize("row", MATRIX, ids=[r.id for r in MATRIX])
def test_amqp_permission_matrix(fresh_broker, ctl, row):
    op = OPS[row.op]
    ctl("add_vhost", "v")
    ctl("set_permissions", "-p", "v", "guest", ALL, ALL, ALL)
    user(ctl, "u", "pw", "v", row.perms)
    admin = fresh_broker.connect(vhost="v")
    ach = admin.channel()
    ach.queue_declare("q")
    ach.exchange_declare("x", "direct")
    ach.exchange_declare("x2", "direct")
    if op.setup:
        op.setup(ach)
    c = fresh_broker.connect(user="u", password="pw", vhost="v")
    try:
        ch = c.channel()
        if row.refusal is None:
            op.run(ch)
            assert ch.is_open
            if op.effect:
                assert op.effect(admin), "%s was allowed but did nothing" % op.method
        else:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
                op.run(ch)
                pytest.fail("%s was allowed" % op.method)
            e = ei.value
            kind, name = row.refusal
            assert e.reply_code == R.ACCESS_REFUSED, (e.reply_code, e.reply_text)
            if name == GEN:
                head, tail = refused(kind, GEN + "*", "v", "u").split("*")
                assert re.fullmatch(re.escape(head) + r"[\w.-]+" + re.escape(tail),
                                    e.reply_text), e.reply_text
            else:
                assert e.reply_text == refused(kind, name, "v", "u")
            if op.effect:
                assert not op.effect(admin), "%s was refused but happened" % op.method
            assert c.is_open, "a refusal closes the channel, not the connection"
            c.channel().close()
    finally:
        if c.is_open:
            c.close()
        admin.close()


# ------------------------------------------------------------ topic permissions (AMQP)

def test_topic_write_permission_checks_the_publish_routing_key(fresh_broker, ctl):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "u", "amq.topic", r"^allowed\.", r"^readable\.")
    admin = fresh_broker.connect()
    ach = admin.channel()
    ach.queue_declare("tq")
    ach.queue_bind("tq", "amq.topic", "#")
    c = fresh_broker.connect(user="u", password="pw")
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "allowed.x", b"ok")
    assert message_count(admin, "tq") == 1
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_publish("amq.topic", "other.x", b"no")
    assert (ei.value.reply_code, ei.value.reply_text) == (
        R.ACCESS_REFUSED, "ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' "
                          "in vhost '/' refused for user 'u'")
    assert message_count(admin, "tq") == 1
    c.close()
    admin.close()


def test_topic_read_permission_checks_the_queue_bind_key(fresh_broker, ctl):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "u", "amq.topic", r"^allowed\.", r"^readable\.")
    c = fresh_broker.connect(user="u", password="pw")
    ch = c.channel()
    ch.queue_declare("tq")
    ch.queue_bind("tq", "amq.topic", "readable.#")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind("tq", "amq.topic", "other.#")
    assert (ei.value.reply_code, ei.value.reply_text) == (
        R.ACCESS_REFUSED, "ACCESS_REFUSED - access to topic 'other.#' in exchange 'amq.topic' "
                          "in vhost '/' refused for user 'u'")
    # exchange.bind from a topic exchange is checked the same way
    ch = c.channel()
    ch.exchange_declare("u-dest", "fanout")
    ch.exchange_bind(destination="u-dest", source="amq.topic", routing_key="readable.x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_bind(destination="u-dest", source="amq.topic", routing_key="other.x")
    assert (ei.value.reply_code, ei.value.reply_text) == (
        R.ACCESS_REFUSED, "ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' "
                          "in vhost '/' refused for user 'u'")
    c.close()


def test_without_topic_permissions_on_an_exchange_every_key_is_allowed(fresh_broker, ctl):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    user(ctl, "free", "pw", "/", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "u", "amq.topic", r"^allowed\.", r"^allowed\.")
    admin = fresh_broker.connect()
    ach = admin.channel()
    ach.exchange_declare("other-topic", "topic")
    ach.queue_declare("tq")
    ach.queue_bind("tq", "other-topic", "#")
    ach.queue_bind("tq", "amq.topic", "#")
    # u is restricted on amq.topic only
    c = fresh_broker.connect(user="u", password="pw")
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("other-topic", "anything.at.all", b"1")
    ch.queue_bind("tq", "other-topic", "any.#")
    # a user with no topic permissions at all is not restricted anywhere
    f = fresh_broker.connect(user="free", password="pw")
    fch = f.channel()
    fch.confirm_delivery()
    fch.basic_publish("amq.topic", "whatever.key", b"2")
    fch.queue_bind("tq", "amq.topic", "whatever.#")
    assert message_count(admin, "tq") == 2
    f.close()
    c.close()
    admin.close()


def test_topic_permission_expands_username(fresh_broker, ctl):
    for name in ("bob", "alice"):
        user(ctl, name, "pw", "/", (ALL, ALL, ALL))
        ctl("set_topic_permissions", name, "amq.topic", r"^{username}\.", r"^{username}\.")
    c = fresh_broker.connect(user="bob", password="pw")
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "bob.x", b"mine")
    ch.queue_declare("bq")
    ch.queue_bind("bq", "amq.topic", "bob.#")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_publish("amq.topic", "alice.x", b"hers")
    assert ei.value.reply_code == R.ACCESS_REFUSED
    assert "topic 'alice.x'" in ei.value.reply_text and "user 'bob'" in ei.value.reply_text
    c.close()
    a = fresh_broker.connect(user="alice", password="pw")
    ach = a.channel()
    ach.confirm_delivery()
    ach.basic_publish("amq.topic", "alice.x", b"hers")
    a.close()


def test_topic_permission_expansions_match_literally_and_expand_vhost(fresh_broker, ctl):
    """{username} is quoted: for user 'a.b' it matches 'a.b', not 'axb'.
    {vhost} is the connection's vhost."""
    ctl("add_vhost", "site1")
    user(ctl, "a.b", "pw", "site1", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "-p", "site1", "a.b", "amq.topic", r"^{username}\.{vhost}\.",
        ALL)
    c = fresh_broker.connect(user="a.b", password="pw", vhost="site1")
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "a.b.site1.temp", b"ok")
    for key in ("axb.site1.temp", "a.b.site2.temp"):
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.basic_publish("amq.topic", key, b"no")
        assert ei.value.reply_text == (
            "ACCESS_REFUSED - access to topic '%s' in exchange 'amq.topic' in vhost 'site1' "
            "refused for user 'a.b'" % key)
        ch = c.channel()
        ch.confirm_delivery()
    c.close()


# ------------------------------------------------------------ vhosts

def test_vhosts_are_isolated(fresh_broker, ctl):
    for v in ("A", "B"):
        ctl("add_vhost", v)
        ctl("set_permissions", "-p", v, "guest", ALL, ALL, ALL)
    ca = fresh_broker.connect(vhost="A")
    cb = fresh_broker.connect(vhost="B")
    cha, chb = ca.channel(), cb.channel()
    for ch in (cha, chb):
        ch.queue_declare("q")
        ch.queue_bind("q", "amq.direct", "k")
    cha.queue_declare("only-in-a")
    # a queue of A is not visible from B
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        cb.channel().queue_declare("only-in-a", passive=True)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        R.NOT_FOUND, "NOT_FOUND - no queue 'only-in-a' in vhost 'B'")
    # a message published in A reaches A's q, not B's queue of the same name
    publish_confirmed(ca, "amq.direct", "k", b"in A")
    assert message_count(ca, "q") == 1
    assert message_count(cb, "q") == 0
    assert queue_exists(ca, "only-in-a")
    ca.close()
    cb.close()


def test_user_with_permissions_only_in_one_vhost_is_refused_the_other(fresh_broker, ctl):
    for v in ("A", "B"):
        ctl("add_vhost", v)
    user(ctl, "u", "pw", "A", (ALL, ALL, ALL))
    fresh_broker.connect(user="u", password="pw", vhost="A").close()
    assert_connection_refused(fresh_broker, "u", "pw", "B", R.NOT_ALLOWED,
                              "NOT_ALLOWED - access to vhost 'B' refused for user 'u'")
    # nor "/" (no entry there either)
    assert_connection_refused(fresh_broker, "u", "pw", "/", R.NOT_ALLOWED,
                              "NOT_ALLOWED - access to vhost '/' refused for user 'u'")


# ------------------------------------------------------------ limits

def test_vhost_connection_limit(fresh_broker, ctl):
    ctl("add_vhost", "V")
    user(ctl, "u", "pw", "V", (ALL, ALL, ALL))
    ctl("set_vhost_limits", "-p", "V", '{"max-connections": 1}')
    assert ("V", "1", "-1") in ctl.rows("list_vhosts")
    first = fresh_broker.connect(user="u", password="pw", vhost="V")
    assert_connection_refused(fresh_broker, "u", "pw", "V", R.NOT_ALLOWED,
                              "NOT_ALLOWED - access to vhost 'V' refused for user 'u': "
                              "connection limit (1) is reached")
    # the limit is the vhost's: other vhosts are not counted
    fresh_broker.connect().close()
    # a closed connection frees its place
    first.close()
    second = fresh_broker.connect(user="u", password="pw", vhost="V")
    ctl("clear_vhost_limits", "-p", "V")
    assert ("V", "-1", "-1") in ctl.rows("list_vhosts")
    third = fresh_broker.connect(user="u", password="pw", vhost="V")
    third.close()
    second.close()


def test_vhost_queue_limit(fresh_broker, ctl):
    ctl("add_vhost", "V")
    user(ctl, "u", "pw", "V", (ALL, ALL, ALL))
    ctl("set_vhost_limits", "-p", "V", '{"max-queues": 1}')
    c = fresh_broker.connect(user="u", password="pw", vhost="V")
    ch = c.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q1")            # redeclaring the one there is fine
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("q2")
    assert (ei.value.reply_code, ei.value.reply_text) == (
        R.PRECONDITION_FAILED,
        "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost 'V' (1) is reached")
    ch = c.channel()
    ch.queue_delete("q1")             # deleting frees a place
    ch.queue_declare("q2")
    ctl("set_vhost_limits", "-p", "V", '{"max-queues": -1}')
    ch.queue_declare("q3")
    ch.queue_declare("q4")
    c.close()


def test_user_connection_limit(fresh_broker, ctl):
    ctl("add_vhost", "V")
    user(ctl, "u", "pw", "V", (ALL, ALL, ALL))
    ctl("set_permissions", "u", ALL, ALL, ALL)
    ctl("set_user_limits", "u", '{"max-connections": 1}')
    assert ("u", "", "1", "-1") in ctl.rows("list_users")
    first = fresh_broker.connect(user="u", password="pw", vhost="V")
    # the user's limit counts connections to every vhost
    assert_connection_refused(fresh_broker, "u", "pw", "/", R.NOT_ALLOWED,
                              "NOT_ALLOWED - Connection refused for user 'u'. "
                              "User connection limit (1) is reached")
    fresh_broker.connect().close()    # another user is not counted
    ctl("clear_user_limits", "u", "max-connections")
    second = fresh_broker.connect(user="u", password="pw", vhost="V")
    second.close()
    first.close()


def test_user_channel_limit(fresh_broker, ctl):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_user_limits", "u", '{"max-channels": 2}')
    raw, f = raw_login(fresh_broker, "u", "pw")
    with raw:
        assert f.method == "connection.open-ok", f
        raw.open_channel(1)
        raw.open_channel(2)
        raw.send_method(3, "channel.open")
        args, _ = raw.expect_connection_close()
    assert (args["reply_code"], args["reply_text"]) == (
        R.NOT_ALLOWED, "NOT_ALLOWED - number of channels opened for user 'u' has reached the "
                       "maximum allowed user limit of (2)")
    assert (args["class_id"], args["method_id"]) == (20, 10)
    # that connection's channels are given back when it closes; the limit
    # counts the user's channels on all connections together
    c = fresh_broker.connect(user="u", password="pw")
    c.channel()
    d = fresh_broker.connect(user="u", password="pw")
    d.channel()
    raw, f = raw_login(fresh_broker, "u", "pw")
    with raw:
        raw.send_method(1, "channel.open")
        args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.NOT_ALLOWED, args
    d.close()
    c.channel()
    ctl("clear_user_limits", "u", "all")
    c.channel()
    c.channel()
    c.close()


def test_channel_max_from_config_refuses_a_higher_channel(coney_bin, tmp_path):
    """Documented (docs/access.md): a channel above the negotiated
    channel_max is 504 CHANNEL_ERROR."""
    with broker_with_config(coney_bin, tmp_path, "channel_max = 2\n") as b:
        with R.RawConnection(b.host, b.port, timeout=TIMEOUT) as raw:
            raw.open()
            assert raw.tune["channel_max"] == 2
            raw.open_channel(1)
            raw.open_channel(2)
            raw.send_method(3, "channel.open")
            args, _ = raw.expect_connection_close()
        assert (args["reply_code"], args["reply_text"]) == (
            R.CHANNEL_ERROR, "CHANNEL_ERROR - channel number 3 exceeds negotiated channel_max 2")
        c = b.connect()
        assert c._impl.params.channel_max == 2
        c.close()


def test_max_message_size_from_config_refuses_a_larger_message(coney_bin, tmp_path):
    with broker_with_config(coney_bin, tmp_path, "max_message_size = 1000\n") as b:
        c = b.connect()
        ch = c.channel()
        ch.queue_declare("q")
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"x" * 1000)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.basic_publish("", "q", b"x" * 1001)
        assert (ei.value.reply_code, ei.value.reply_text) == (
            R.PRECONDITION_FAILED,
            "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000")
        assert message_count(c, "q") == 1
        c.close()


# ------------------------------------------------------------ login throttling

THROTTLE_PROPS = {"product": "coney-tests",
                  "capabilities": {"authentication_failure_close": True}}


class FailedLogin:
    """A raw connection that has sent a wrong password; wait() returns the
    seconds from sending start-ok until the broker's connection.close."""

    def __init__(self, b, user="u", password="wrong"):
        self.raw = R.RawConnection(b.host, b.port, timeout=10 * SLOW)
        self.raw.start()
        self.raw.send_method(0, "connection.start-ok", client_properties=THROTTLE_PROPS,
                             mechanism="PLAIN",
                             response=b"\0" + user.encode() + b"\0" + password.encode(),
                             locale="en_US")
        self.t0 = time.monotonic()

    def wait(self):
        with self.raw:
            f = self.raw.recv_non_heartbeat()
            took = time.monotonic() - self.t0
            assert f.method == "connection.close", f
            assert (f.args["reply_code"], f.args["reply_text"]) == (R.ACCESS_REFUSED,
                                                                  LOGIN_REFUSED)
        return took


@pytest.mark.timeout(40)
def test_failed_logins_are_throttled_but_a_good_login_is_not(fresh_broker, ctl):
    """Five wrong passwords in a row from one address are answered after
    0.1, 0.2, 0.4, 0.8 and 1.6 s at least (a lower bound, not a speed); a
    correct login from another connection meanwhile is answered at once."""
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    expected = [0.1, 0.2, 0.4, 0.8, 1.6]
    took = [FailedLogin(fresh_broker).wait() for _ in expected[:4]]
    last = FailedLogin(fresh_broker)
    t0 = time.monotonic()
    good = fresh_broker.connect(user="u", password="pw")
    good_took = time.monotonic() - t0
    good.channel().queue_declare("", exclusive=True)
    good.close()
    took.append(last.wait())
    for want, got in zip(expected, took):
        assert got >= want - 0.01, "refusal after %.3fs, expected at least %.1fs (all: %r)" % (
            got, want, took)
    assert sum(took) >= sum(expected) - 0.05, took
    assert good_took < 1.0, "a correct login took %.2fs during the throttling of another" % (
        good_took,)


# ------------------------------------------------------------ RabbitMQ password hashes

@pytest.mark.parametrize("algorithm,digest", [
    ("rabbit_password_hashing_sha256", hashlib.sha256),
    ("rabbit_password_hashing_sha512", hashlib.sha512),
], ids=["sha256", "sha512"])
def test_rabbitmq_password_hash_logs_in(fresh_broker, ctl, algorithm, digest):
    user(ctl, "u", "initial", "/", (ALL, ALL, ALL))
    h = rabbit_hash("s3cret-pass", digest)
    ctl("set_password_hash", "u", h, algorithm)
    c = fresh_broker.connect(user="u", password="s3cret-pass")
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    c.close()
    assert q.startswith("amq.gen-")
    ctl("authenticate_user", "u", "s3cret-pass")
    assert "could not be authenticated" in ctl.fails(1, "authenticate_user", "u", "initial")
    with mqtt_target(fresh_broker).raw(M.V311) as r:
        r.connect("hash-login", username="u", password="s3cret-pass")
        r.alive()
        r.disconnect()
    assert_login_refused(fresh_broker, "u", "initial")
    assert_login_refused(fresh_broker, "u", "s3cret-pasS")


def test_password_hash_without_algorithm_is_sha256(fresh_broker, ctl):
    user(ctl, "u", "initial", "/", (ALL, ALL, ALL))
    ctl("set_password_hash", "u", rabbit_hash("other"))
    fresh_broker.connect(user="u", password="other").close()


def test_user_without_password_cannot_log_in_with_plain(fresh_broker, ctl):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    fresh_broker.connect(user="u", password="pw").close()
    ctl("clear_password", "u")
    assert_login_refused(fresh_broker, "u", "pw")
    assert_login_refused(fresh_broker, "u", "")
    with mqtt_target(fresh_broker).raw(M.V311) as r:
        r.connect("no-password", rc=4, username="u", password="")


# ------------------------------------------------------------ durability

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "kill-9"])
def test_access_control_is_durable(fresh_broker, ctl, sig):
    b = fresh_broker
    ctl("add_vhost", "v")
    user(ctl, "u", "pw", "v", ("^u-", "^u-|^amq\\.topic$", "^u-"))
    ctl("set_user_tags", "u", "monitoring", "management")
    ctl("set_topic_permissions", "-p", "v", "u", "amq.topic", r"^u\.", r"^u\.")
    ctl("set_vhost_limits", "-p", "v", '{"max-connections": 7, "max-queues": 5}')
    ctl("set_user_limits", "u", '{"max-connections": 3, "max-channels": 4}')
    user(ctl, "hashed", "x", "/", (ALL, ALL, ALL))
    ctl("set_password_hash", "hashed", rabbit_hash("from-rabbit", hashlib.sha512),
        "rabbit_password_hashing_sha512")
    user(ctl, "gone", "pw", "/", (ALL, ALL, ALL))
    ctl("delete_user", "gone")
    ctl("add_vhost", "gone-vhost")
    ctl("delete_vhost", "gone-vhost")
    ctl("change_password", "guest", "guest2")
    listings = [("list_users",), ("list_vhosts",), ("list_permissions", "-p", "v"),
                ("list_permissions", "-p", "/"), ("list_topic_permissions", "-p", "v")]
    before = [ctl.rows(*args) for args in listings]
    assert ("u", "monitoring,management", "3", "4") in before[0]
    assert ("v", "7", "5") in before[1]
    assert ("u", "v", "amq.topic", r"^u\.", r"^u\.") in before[4]

    restart_broker(b, sig)

    after = [ctl.rows(*args) for args in listings]
    assert after == before
    # and they still act
    c = b.connect(user="u", password="pw", vhost="v")
    ch = c.channel()
    ch.queue_declare("u-q")
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "u.ok", b"m")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_publish("amq.topic", "other.key", b"m")
    assert ei.value.reply_code == R.ACCESS_REFUSED
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        c.channel().queue_declare("not-u")
    assert ei.value.reply_text == refused("queue", "not-u", "v", "u")
    c.close()
    b.connect(user="hashed", password="from-rabbit").close()
    b.connect(user="guest", password="guest2").close()
    assert_login_refused(b, "gone", "pw")


# ------------------------------------------------------------ coney-ctl

def test_ctl_lists_users_vhosts_and_permissions(fresh_broker, ctl):
    ctl("add_vhost", "dev")
    user(ctl, "bob", "pw", "dev", ("^bob-.*", ".*", ".*"))
    ctl("set_permissions", "bob", "", "", "^bob$")
    ctl("set_user_tags", "bob", "monitoring")
    ctl("set_topic_permissions", "-p", "dev", "bob", "amq.topic", r"^{username}\.", ".*")
    assert ctl.rows("list_users") == {("guest", "administrator", "-1", "-1"),
                                      ("bob", "monitoring", "-1", "-1")}
    assert ctl.rows("list_vhosts") == {("/", "-1", "-1"), ("dev", "-1", "-1")}
    assert ctl.rows("list_permissions", "-p", "dev") == {("bob", "dev", "^bob-.*", ".*", ".*")}
    assert ctl.rows("list_permissions") == {("guest", "/", ".*", ".*", ".*"),
                                            ("bob", "/", "", "", "^bob$")}
    assert ctl.rows("list_user_permissions", "bob") == {("bob", "dev", "^bob-.*", ".*", ".*"),
                                                        ("bob", "/", "", "", "^bob$")}
    assert ctl.rows("list_topic_permissions", "-p", "dev") == {
        ("bob", "dev", "amq.topic", r"^{username}\.", ".*")}
    out = ctl("list_users")
    assert out.splitlines()[0] == "user\ttags\tmax-connections\tmax-channels"
    # -q leaves the header out
    assert "user\t" not in ctl("-q", "list_users")
    # clearing removes the rows
    ctl("clear_permissions", "bob")
    ctl("clear_topic_permissions", "-p", "dev", "bob", "amq.topic")
    assert ctl.rows("list_user_permissions", "bob") == {("bob", "dev", "^bob-.*", ".*", ".*")}
    assert ctl.rows("list_topic_permissions", "-p", "dev") == set()


def test_ctl_delete_user_stops_its_logins(fresh_broker, ctl):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "u", "amq.topic", ALL, ALL)
    c = fresh_broker.connect(user="u", password="pw")
    # documented difference: refused while the user has connections
    assert "user 'u' has open connections" in ctl.fails(1, "delete_user", "u")
    c.close()
    ctl("delete_user", "u")
    assert "u" not in {r[0] for r in ctl.rows("list_users")}
    assert ctl.rows("list_permissions") == {("guest", "/", ".*", ".*", ".*")}
    assert_login_refused(fresh_broker, "u", "pw")
    # a user of the same name later starts without the old permissions
    ctl("add_user", "u", "pw")
    assert ctl.rows("list_topic_permissions") == set()
    assert_connection_refused(fresh_broker, "u", "pw", "/", R.NOT_ALLOWED,
                              "NOT_ALLOWED - access to vhost '/' refused for user 'u'")


def test_ctl_delete_vhost_removes_its_queues(fresh_broker, ctl):
    ctl("add_vhost", "V")
    ctl("set_permissions", "-p", "V", "guest", ALL, ALL, ALL)
    c = fresh_broker.connect(vhost="V")
    ch = c.channel()
    ch.queue_declare("durable-q", durable=True)
    ch.queue_declare("transient-q")
    ch.basic_publish("", "durable-q", b"m", pika.BasicProperties(delivery_mode=2))
    c.close()
    assert {r[0] for r in ctl.rows("list_queues", "-p", "V")} == {"durable-q", "transient-q"}
    ctl("delete_vhost", "V")
    assert "V" not in {r[0] for r in ctl.rows("list_vhosts")}
    assert "no such vhost" in ctl.fails(1, "list_queues", "-p", "V")
    assert_connection_refused(fresh_broker, "guest", "guest", "V", R.NOT_ALLOWED,
                              "NOT_ALLOWED - vhost V not found")
    # a new vhost of that name is empty, also after a restart, and nobody
    # has the old vhost's permissions there
    ctl("add_vhost", "V")
    assert ctl.rows("list_permissions", "-p", "V") == set()
    assert_connection_refused(fresh_broker, "guest", "guest", "V", R.NOT_ALLOWED,
                              "NOT_ALLOWED - access to vhost 'V' refused for user 'guest'")
    ctl("set_permissions", "-p", "V", "guest", ALL, ALL, ALL)
    assert ctl.rows("list_queues", "-p", "V") == set()
    restart_broker(fresh_broker)
    assert ctl.rows("list_queues", "-p", "V") == set()
    c = fresh_broker.connect(vhost="V")
    assert not queue_exists(c, "durable-q")
    c.close()


def test_ctl_commands_that_print_no_rows_keep_the_broker_running(coney_bin):
    """An "ok" with no rows appends an empty body (UBSan once stopped the
    broker there: memcpy from NULL); its own broker, so that a sanitizer
    report fails here rather than in a fixture's teardown."""
    b = start_broker(coney_bin)
    try:
        ctl = Ctl(coney_bin, b.data_dir)
        ctl("add_vhost", "v")                       # "ok" and no rows
        assert ctl.rows("list_topic_permissions") == set()
        assert b.alive() and b.sanitizer_report() is None, b.log_tail()
        assert ctl.rows("list_vhosts") == {("/", "-1", "-1"), ("v", "-1", "-1")}
    finally:
        b.cleanup()


def test_ctl_refusals_exit_1_with_the_reason(fresh_broker, ctl):
    user(ctl, "u", "pw")
    cases = [
        (("add_user", "u", "again"), "user 'u' already exists"),
        (("delete_user", "nobody"), "no such user: 'nobody'"),
        (("change_password", "nobody", "x"), "no such user: 'nobody'"),
        (("add_vhost", "/"), "vhost '/' already exists"),
        (("delete_vhost", "nowhere"), "no such vhost: 'nowhere'"),
        (("set_permissions", "-p", "nowhere", "u", ".*", ".*", ".*"), "no such vhost: 'nowhere'"),
        (("set_permissions", "nobody", ".*", ".*", ".*"), "no such user: 'nobody'"),
        (("set_permissions", "u", "(", ".*", ".*"), "invalid pattern '('"),
        (("set_topic_permissions", "u", "amq.topic", "[", ".*"), "invalid pattern '['"),
        (("set_password_hash", "u", "not base64!"), "is not base64 of salt and digest"),
        (("set_password_hash", "u", rabbit_hash("x"), "rabbit_password_hashing_rot13"),
         "unknown hashing algorithm 'rabbit_password_hashing_rot13'"),
        (("set_vhost_limits", '{"max-bananas": 1}'), "unknown vhost limit 'max-bananas'"),
        (("set_user_limits", "u", '{"max-connections": -5}'), "limit 'max-connections' must be"),
    ]
    for args, message in cases:
        err = ctl.fails(1, *args)
        assert message in err, "coney-ctl %s: %r lacks %r" % (" ".join(args), err, message)
    # nothing changed
    assert ctl.rows("list_permissions") == {("guest", "/", ".*", ".*", ".*")}
    assert ctl.rows("list_users") == {("guest", "administrator", "-1", "-1"),
                                      ("u", "", "-1", "-1")}


def test_ctl_exits_69_when_no_broker_listens(fresh_broker, ctl, tmp_path):
    err = ctl.fails(69, "list_users", data_dir=str(tmp_path))
    assert "no broker answers" in err
    fresh_broker.check_clean_exit(fresh_broker.stop(signal.SIGTERM))
    assert "no broker answers" in ctl.fails(69, "list_users")
    # offline commands do not need one
    assert len(ctl("hash_password", "x").strip()) == 48


def test_ctl_usage_errors_exit_64(fresh_broker, ctl):
    ctl.fails(64)                              # no command
    ctl.fails(64, "--no-such-option", "list_users")
    ctl.fails(64, "set_vhost_limits", "not json")
    ctl.fails(64, "hash_password")


def test_ctl_missing_arguments_exit_64(fresh_broker, ctl):
    ctl.fails(64, "add_user")
    ctl.fails(64, "set_permissions", "u", ".*")
    ctl.fails(64, "no_such_command")


def test_ctl_hash_password_is_rabbitmq_sha256(fresh_broker, ctl):
    a = ctl("hash_password", "s3cret").strip()
    b = ctl("hash_password", "s3cret").strip()
    for h in (a, b):
        assert re.fullmatch(r"[A-Za-z0-9+/]{48}", h), h
        assert rabbit_hash_verifies(h, "s3cret")
        assert not rabbit_hash_verifies(h, "s3creT")
    assert a != b, "each hash has its own random salt"
    # and the broker takes it
    user(ctl, "u", "old", "/", (ALL, ALL, ALL))
    ctl("set_password_hash", "u", a)
    fresh_broker.connect(user="u", password="s3cret").close()
