"""Access control over MQTT (docs/access.md): the broker's users,
permissions, topic permissions and limits apply to MQTT as RabbitMQ's MQTT
plugin applies them. A user name "vhost:user" picks the vhost, a plain one
means "/". PUBLISH needs write on the MQTT exchange (amq.topic); SUBSCRIBE
needs configure, write and read on the session's queue and read on the
exchange; topic permissions are checked with MQTT topics in their AMQP
form ('/' as '.'). The AMQP side is test_24_access.py."""

import time

import pytest

import mqtt_raw as M
from coney_util import TIMEOUT, message_count, mqtt_target
from test_24_access import ALL, Ctl, user

V311_V5 = pytest.mark.parametrize("version", [M.V311, M.V5], ids=["3.1.1", "5.0"])


@pytest.fixture
def ctl(fresh_broker, coney_bin):
    return Ctl(coney_bin, fresh_broker.data_dir)


@pytest.fixture
def mq(fresh_broker):
    return mqtt_target(fresh_broker)


def connected(mq, client_id, version, username="u", password="pw"):
    r = mq.raw(version)
    r.connect(client_id, username=username, password=password)
    return r


def publish_qos1(r, topic, payload, pid):
    """A QoS 1 PUBLISH; returns (its PUBACK, the PUBLISHes that came first:
    our own subscription may deliver before the broker acks)."""
    r.send(M.publish(topic, payload, qos=1, pid=pid, version=r.version))
    got = []
    while True:
        p = r.read()
        if p.type == M.PUBACK:
            assert p.pid == pid, p
            return p, got
        assert p.type == M.PUBLISH, "expected PUBACK or PUBLISH, got %r" % p
        got.append(p)


# ------------------------------------------------------------ PUBLISH

def test_mqtt5_publish_without_write_permission_gets_puback_0x87(mq, ctl):
    user(ctl, "u", "pw", "/", (ALL, "^mqtt-subscription-", ALL))
    with connected(mq, "pub5", M.V5) as r:
        p = r.publish("a/b", b"refused", qos=1, pid=7)
        assert p.rc == 0x87, p
        r.alive()                      # 5.0 says no and carries on
        r.send(M.publish("a/b", b"refused at QoS 2", qos=2, pid=8, version=M.V5))
        p = r.expect(M.PUBREC)
        assert (p.pid, p.rc) == (8, 0x87), p
        r.alive()
        r.disconnect()


def test_mqtt311_publish_without_write_permission_closes_the_connection(mq, ctl):
    user(ctl, "u", "pw", "/", (ALL, "", ALL))
    with connected(mq, "pub311", M.V311) as r:
        r.send(M.publish("a/b", b"refused", qos=1, pid=7))
        r.expect_closed()              # no PUBACK: 3.1.1 cannot say no


def test_publish_with_write_permission_is_delivered(mq, ctl, fresh_broker):
    user(ctl, "u", "pw", "/", ("", r"^amq\.topic$", ""))
    c = fresh_broker.connect()
    ch = c.channel()
    ch.queue_declare("seen")
    ch.queue_bind("seen", "amq.topic", "a.b")
    with connected(mq, "pubok", M.V5) as r:
        p = r.publish("a/b", b"allowed", qos=1, pid=1)
        assert p.rc == 0, p
        r.disconnect()
    assert message_count(c, "seen") == 1
    c.close()


# ------------------------------------------------------------ SUBSCRIBE

SQ = "^mqtt-subscription-"
SUBSCRIBE_MATRIX = [
    # (configure, write, read) -> granted?
    ("all", (ALL, ALL, ALL), True),
    ("no read", (ALL, ALL, ""), False),
    ("no configure on the session queue", ("", ALL, ALL), False),
    ("no write on the session queue", (ALL, "", ALL), False),
    ("session queue only, no read on amq.topic", (SQ, SQ, SQ), False),
    ("session queue and read on amq.topic", (SQ, SQ, SQ + r"|^amq\.topic$"), True),
]


@V311_V5
@pytest.mark.parametrize("perms,granted", [r[1:] for r in SUBSCRIBE_MATRIX],
                         ids=[r[0] for r in SUBSCRIBE_MATRIX])
def test_subscribe_permission_matrix(mq, ctl, version, perms, granted):
    """Refused filters get SUBACK 0x80 (3.1.1) / 0x87 (5.0); the connection
    stays."""
    user(ctl, "u", "pw", "/", perms)
    code = 1 if granted else (0x87 if version == M.V5 else 0x80)
    with connected(mq, "subm%d" % version, version) as r:
        assert r.subscribe(1, [("a/b", 1), ("c/#", 1)]) == [code, code]
        r.alive()
        r.disconnect()


@V311_V5
def test_topic_read_permission_refuses_one_filter_and_grants_another(mq, ctl, version):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "u", "amq.topic", ALL, r"^allowed\.")
    refusal = 0x87 if version == M.V5 else 0x80
    with connected(mq, "mixed%d" % version, version) as r:
        assert r.subscribe(1, [("allowed/#", 1), ("other/#", 1)]) == [1, refusal]
        # the granted filter works, the refused one was not made
        r.publish("other/x", b"not for me", qos=0)
        r.publish("allowed/x", b"for me", qos=0)
        p = r.expect(M.PUBLISH)
        assert (p.topic, p.payload) == ("allowed/x", b"for me"), p
        r.quiet(0.3)
        r.disconnect()


def test_topic_permission_expands_client_id(mq, ctl):
    """'^{client_id}\\.' lets client dev1 publish to dev1/temp (dev1.temp in
    AMQP form) but not to dev2/temp."""
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_topic_permissions", "u", "amq.topic", r"^{client_id}\.", ALL)
    with connected(mq, "dev1", M.V5) as r:
        assert r.subscribe(1, [("+/temp", 0)]) == [0]
        ack, got = publish_qos1(r, "dev1/temp", b"21.5", 2)
        assert ack.rc == 0, ack
        if not got:
            got = [r.expect(M.PUBLISH)]
        assert [(g.topic, g.payload) for g in got] == [("dev1/temp", b"21.5")], got
        ack, got = publish_qos1(r, "dev2/temp", b"not mine", 3)
        assert ack.rc == 0x87 and not got, (ack, got)
        r.quiet(0.3)
        r.disconnect()
    with connected(mq, "dev2", M.V5) as r:
        p = r.publish("dev2/temp", b"mine", qos=1, pid=1)
        assert p.rc in (0, 0x10), p
        r.disconnect()


# ------------------------------------------------------------ CONNECT

@V311_V5
def test_connect_to_a_vhost_without_permissions_is_refused(mq, ctl, version):
    ctl("add_vhost", "v")
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    refusal = 0x87 if version == M.V5 else 5
    with mq.raw(version) as r:
        r.connect("novh%d" % version, rc=refusal, username="v:u", password="pw")
        r.expect_closed()
    # a user with no permissions anywhere, plain name (vhost "/")
    ctl("add_user", "nobody", "pw")
    with mq.raw(version) as r:
        r.connect("nobody%d" % version, rc=refusal, username="nobody", password="pw")
        r.expect_closed()
    # and with permissions there, the same user name gets in
    ctl("set_permissions", "-p", "v", "u", ALL, ALL, ALL)
    with mq.raw(version) as r:
        r.connect("vh%d" % version, username="v:u", password="pw")
        r.alive()
        r.disconnect()


def test_vhost_user_name_publishes_into_that_vhost_only(mq, ctl, fresh_broker):
    ctl("add_vhost", "v")
    ctl("set_permissions", "-p", "v", "guest", ALL, ALL, ALL)
    user(ctl, "u", "pw", "v", (ALL, ALL, ALL))
    cv = fresh_broker.connect(vhost="v")
    c = fresh_broker.connect()
    for conn in (cv, c):
        ch = conn.channel()
        ch.queue_declare("sensors")
        ch.queue_bind("sensors", "amq.topic", "s.#")
    with mq.raw(M.V311) as r:
        r.connect("vhpub", username="v:u", password="pw")
        r.publish("s/1", b"in v", qos=1, pid=1)
        r.disconnect()
    assert message_count(cv, "sensors") == 1
    assert message_count(c, "sensors") == 0
    cv.close()
    c.close()


@V311_V5
def test_mqtt_connection_limit(mq, ctl, version):
    """Documented: CONNACK 5 (3.1.1) / 0x97 quota exceeded (5.0)."""
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    ctl("set_user_limits", "u", '{"max-connections": 1}')
    first = connected(mq, "first", version)
    with first:
        with mq.raw(version) as r:
            r.connect("second", rc=0x97 if version == M.V5 else 5, username="u", password="pw")
            r.expect_closed()
        first.alive()
        first.disconnect()
    ctl("clear_user_limits", "u", "all")
    with connected(mq, "third", version) as a, connected(mq, "fourth", version) as b:
        a.alive()
        b.alive()


@V311_V5
def test_wrong_password_is_refused_after_a_delay(mq, ctl, version):
    user(ctl, "u", "pw", "/", (ALL, ALL, ALL))
    with mq.raw(version, timeout=TIMEOUT) as r:
        t0 = time.monotonic()
        r.connect("wrong", rc=0x86 if version == M.V5 else 4, username="u", password="nope")
        assert time.monotonic() - t0 >= 0.09
        r.expect_closed()
