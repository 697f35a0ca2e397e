"""TLS on the AMQP and MQTT listeners, and SASL EXTERNAL.

A CA, server and client certificates are made with the `openssl` command
in a temporary directory (an expired one with `openssl ca -startdate
-enddate`, since `x509 -days` cannot go negative); real clients (pika,
paho-mqtt, Python's ssl) connect to brokers started with a config file of
RabbitMQ's ssl_options.* keys. These tests start their own brokers and are
skipped when CONEY_TEST_TARGET is set."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pika
import pika.credentials
import pika.exceptions
import pytest

import coney_raw as R
import mqtt_raw
from coney_util import (SLOW, TIMEOUT, free_port, mqtt_id, mqtt_topic, start_broker, uname,
                        wait_for, wait_port)

HOST = "127.0.0.1"


# ------------------------------------------------------------ certificates

def openssl(*args, cwd=None):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), p.stderr.decode())
    return p.stdout


CA_CONF = """[ ca ]
default_ca = test_ca

[ test_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = copy
x509_extensions = leaf

[ policy_any ]
commonName = supplied
organizationName = optional

[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class Cert:
    def __init__(self, pem, key):
        self.pem, self.key = pem, key

    def der(self):
        with open(self.pem) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())


class CA:
    """A test certificate authority in its own directory, signing with
    `openssl ca` so that validity periods can lie in the past."""

    def __init__(self, directory, name):
        self.dir = directory
        os.makedirs(os.path.join(directory, "newcerts"))
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        self.conf = os.path.join(directory, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write(CA_CONF.format(dir=directory))
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "30",
                "-subj", "/CN=%s" % name)

    def issue(self, prefix, cn, san=None, org=None, start=None, end=None):
        """A key and a certificate at prefix.key/.pem; start/end as
        YYYYMMDDHHMMSSZ for a period other than the next 30 days."""
        key, csr, pem = prefix + ".key", prefix + ".csr", prefix + ".pem"
        subj = "/CN=%s" % cn + ("/O=%s" % org if org else "")
        req = ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-keyout", key, "-out", csr, "-subj", subj]
        if san:
            req += ["-addext", "subjectAltName=%s" % san]
        openssl(*req)
        sign = ["ca", "-batch", "-notext", "-config", self.conf, "-in", csr, "-out", pem]
        sign += ["-startdate", start, "-enddate", end] if start else ["-days", "30"]
        openssl(*sign)
        return Cert(pem, key)


class Pki:
    def __init__(self, d):
        self.dir = d
        self.ca = CA(os.path.join(d, "ca"), "Coney test CA")
        self.other_ca = CA(os.path.join(d, "other-ca"), "Some other CA")
        self.server = self.ca.issue(os.path.join(d, "server"), "localhost",
                                    san="DNS:localhost,IP:127.0.0.1")
        self.guest = self.ca.issue(os.path.join(d, "guest"), "guest")
        self.nobody = self.ca.issue(os.path.join(d, "nobody"), "nobody-we-know")
        self.guest_san = self.ca.issue(os.path.join(d, "guest-san"), "not-a-user",
                                       san="DNS:guest")
        self.expired = self.ca.issue(os.path.join(d, "expired"), "guest",
                                     start="20200101000000Z", end="20200201000000Z")
        self.untrusted = self.other_ca.issue(os.path.join(d, "untrusted"), "guest")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing (scripts/deps.sh installs it)")
    return Pki(str(tmp_path_factory.mktemp("pki")))


def client_ctx(pki, cert=None, ca=None):
    ctx = ssl.create_default_context(cafile=ca or pki.ca.cert)
    if cert is not None:
        ctx.load_cert_chain(cert.pem, cert.key)
    return ctx


# ------------------------------------------------------------ brokers

class TlsBroker:
    def __init__(self, b, tls_port, mqtt_tls_port):
        self.b, self.tls_port, self.mqtt_tls_port = b, tls_port, mqtt_tls_port

    def __getattr__(self, name):
        return getattr(self.b, name)


def write_conf(path, pki, server=None, **extra):
    server = server or pki.server
    lines = {
        "ssl_options.cacertfile": pki.ca.cert,
        "ssl_options.certfile": server.pem,
        "ssl_options.keyfile": server.key,
        "ssl_options.verify": "verify_peer",
        "ssl_options.fail_if_no_peer_cert": "false",
        "auth_mechanisms.1": "PLAIN",
        "auth_mechanisms.2": "AMQPLAIN",
        "auth_mechanisms.3": "EXTERNAL",
    }
    lines.update(extra)
    with open(path, "w") as f:
        for k, v in lines.items():
            if v is not None:
                f.write("%s = %s\n" % (k, v))
    return path


def start_tls_broker(coney_bin, conf):
    tls_port, mqtt_tls_port = free_port(), free_port()
    b = start_broker(coney_bin, extra_args=["--config", conf, "--tls-port", str(tls_port),
                                            "--mqtt-tls-port", str(mqtt_tls_port)])
    for p in (tls_port, mqtt_tls_port):
        if not wait_port(HOST, p, 20 * SLOW, b.proc):
            tail = b.log_tail()
            b.cleanup()
            raise AssertionError("no TLS listener on %d\n%s" % (p, tail))
    return TlsBroker(b, tls_port, mqtt_tls_port)


def stop_clean(tb):
    try:
        rc = tb.b.stop(signal.SIGTERM)
        tb.b.check_clean_exit(rc)
    finally:
        tb.b.cleanup()


@pytest.fixture(scope="module")
def tls_broker(pki, tmp_path_factory):
    """verify_peer without fail_if_no_peer_cert; EXTERNAL offered; MQTT
    logs in by certificate and refuses anonymous clients."""
    from conftest import TARGET, _binary
    if TARGET:
        pytest.skip("needs to control the broker process (CONEY_TEST_TARGET is set)")
    conf = write_conf(str(tmp_path_factory.mktemp("conf") / "coney.conf"), pki,
                      **{"mqtt.ssl_cert_login": "true", "mqtt.allow_anonymous": "false"})
    tb = start_tls_broker(_binary(), conf)
    yield tb
    stop_clean(tb)


@pytest.fixture(scope="module")
def strict_broker(pki, tmp_path_factory):
    """verify_peer with fail_if_no_peer_cert: no valid certificate, no TLS."""
    from conftest import TARGET, _binary
    if TARGET:
        pytest.skip("needs to control the broker process (CONEY_TEST_TARGET is set)")
    conf = write_conf(str(tmp_path_factory.mktemp("conf") / "coney.conf"), pki,
                      **{"ssl_options.fail_if_no_peer_cert": "true"})
    tb = start_tls_broker(_binary(), conf)
    yield tb
    stop_clean(tb)


@pytest.fixture(autouse=True)
def _no_sanitizer_reports(request):
    yield
    for name in ("tls_broker", "strict_broker"):
        if name in request.fixturenames:
            tb = request.getfixturevalue(name)
            assert tb.b.alive(), "the broker died:\n" + tb.b.log_tail()
            report = tb.b.sanitizer_report()
            assert report is None, "sanitizer report in broker log:\n" + report


# ------------------------------------------------------------ clients

def amqp_params(port, ctx, credentials=None, **kw):
    kw.setdefault("socket_timeout", TIMEOUT)
    kw.setdefault("stack_timeout", 3 * TIMEOUT)
    kw.setdefault("blocked_connection_timeout", 3 * TIMEOUT)
    kw.setdefault("connection_attempts", 1)
    return pika.ConnectionParameters(
        host=HOST, port=port, ssl_options=pika.SSLOptions(ctx, HOST),
        credentials=credentials or pika.PlainCredentials("guest", "guest"), **kw)


def amqp_round_trip(conn, body=b"over TLS"):
    ch = conn.channel()
    q = ch.queue_declare(uname("tls"), exclusive=True).method.queue
    got = []
    ch.basic_consume(q, lambda c, m, p, b: (got.append(b), c.basic_ack(m.delivery_tag)))
    ch.basic_publish("", q, body)
    deadline = time.monotonic() + TIMEOUT
    while not got and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert got == [body]


def tls_socket(port, ctx):
    s = socket.create_connection((HOST, port), timeout=TIMEOUT)
    return ctx.wrap_socket(s, server_hostname=HOST)


def tls_raw_amqp(port, ctx):
    """A coney_raw.RawConnection over TLS."""
    raw = R.RawConnection.__new__(R.RawConnection)
    R.RawConnection.__init__(raw, HOST, port, timeout=TIMEOUT)
    raw.sock = ctx.wrap_socket(raw.sock, server_hostname=HOST)
    return raw


def refused_after_handshake(sock, first=R.PROTOCOL_HEADER):
    """Sends the protocol's first bytes and reads: True when the broker
    ends the connection without a byte of the protocol (TLS 1.3 reports a
    refused client certificate only after the client's side is done)."""
    try:
        sock.sendall(first)
        sock.settimeout(TIMEOUT)
        data = sock.recv(4096)
        return data == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.close()


def log_lines_for(b, local_port):
    pat = re.compile(r"127\.0\.0\.1:%d(?!\d)" % local_port)
    return [line for line in b.log().splitlines() if pat.search(line)]


def mqtt_client(port, ctx, **kw):
    c = mqtt_raw.PahoClient(HOST, port, mqtt_id("tls"), timeout=TIMEOUT, **kw)
    c.c.tls_set_context(ctx)
    return c


def mqtt_close(c):
    """DISCONNECT once the client's loop thread has stopped: paho writes it
    and closes the socket from the calling thread, which would race an SSL
    read in the loop thread (PahoClient.disconnect does not wait)."""
    c._stop = True
    if c._thread is not None:
        c._thread.join(5)
    if c.disconnected is None and c.connack is not None:
        c.c.disconnect()
    c.stop()


# ------------------------------------------------------------ round trips

def test_amqp_publish_and_consume_over_tls(tls_broker, pki):
    with pika.BlockingConnection(amqp_params(tls_broker.tls_port, client_ctx(pki))) as conn:
        amqp_round_trip(conn, os.urandom(300000))   # several TLS records each way


def test_mqtt_publish_and_subscribe_over_tls(tls_broker, pki):
    topic = mqtt_topic("tls")
    sub = mqtt_client(tls_broker.mqtt_tls_port, client_ctx(pki), username="guest",
                      password="guest")
    pub = mqtt_client(tls_broker.mqtt_tls_port, client_ctx(pki), username="guest",
                      password="guest")
    try:
        sub.connect()
        assert sub.subscribe(topic, qos=1) == [1]
        pub.connect()
        pub.publish(topic, b"mqtt over TLS", qos=1)
        m = sub.get()
        assert (m.topic, m.payload) == (topic, b"mqtt over TLS")
    finally:
        mqtt_close(sub)
        mqtt_close(pub)


def test_tls_1_2_and_1_3_are_both_served(tls_broker, pki):
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(pki)
        ctx.minimum_version = ctx.maximum_version = v
        with tls_socket(tls_broker.tls_port, ctx) as s:
            assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]


def test_tls_1_1_is_refused(tls_broker, pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    ctx.check_hostname = False
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")   # lets this OpenSSL offer 1.1 at all
    with pytest.raises(ssl.SSLError) as e:
        tls_socket(tls_broker.tls_port, ctx).close()
    text = str(e.value).upper()
    if "NO_PROTOCOLS_AVAILABLE" in text or "NO PROTOCOLS AVAILABLE" in text:
        # this client cannot even try 1.1; the refusal above is then the
        # client's, and the server's minimum is covered by the 1.2 test
        pytest.skip("the local OpenSSL cannot offer TLS 1.1")
    assert "PROTOCOL_VERSION" in text or "PROTOCOL VERSION" in text, text
    assert tls_broker.b.alive()


# ------------------------------------------------------------ SASL EXTERNAL

def test_external_is_offered_over_tls_only(tls_broker, pki):
    raw = tls_raw_amqp(tls_broker.tls_port, client_ctx(pki))
    try:
        mechs = raw.start()["mechanisms"].split()
    finally:
        raw.close()
    assert mechs == [b"PLAIN", b"AMQPLAIN", b"EXTERNAL"]
    with R.RawConnection(HOST, tls_broker.port, timeout=TIMEOUT) as plain:
        assert plain.start()["mechanisms"].split() == [b"PLAIN", b"AMQPLAIN"]


def test_external_login_with_a_client_certificate(tls_broker, pki):
    params = amqp_params(tls_broker.tls_port, client_ctx(pki, pki.guest),
                         credentials=pika.credentials.ExternalCredentials())
    with pika.BlockingConnection(params) as conn:
        amqp_round_trip(conn)
    assert re.search(r"accepting AMQP connection .*user 'guest'", tls_broker.b.log())


def test_external_login_refused_for_an_unknown_common_name(tls_broker, pki):
    params = amqp_params(tls_broker.tls_port, client_ctx(pki, pki.nobody),
                         credentials=pika.credentials.ExternalCredentials())
    with pytest.raises(pika.exceptions.AMQPConnectionError) as e:
        pika.BlockingConnection(params)
    assert "403" in repr(e.value) or "ACCESS_REFUSED" in repr(e.value), repr(e.value)
    wait_for(lambda: "nobody-we-know" in tls_broker.b.log(), what="the refusal in the log")


def test_external_login_refused_without_a_client_certificate(tls_broker, pki):
    raw = tls_raw_amqp(tls_broker.tls_port, client_ctx(pki))
    try:
        raw.start()
        raw.send_method(0, "connection.start-ok",
                        client_properties={"capabilities": {"authentication_failure_close": True}},
                        mechanism="EXTERNAL", response=b"", locale="en_US")
        args, _ = raw.expect_connection_close()
    finally:
        raw.close()
    assert args["reply_code"] == 403, args
    assert "EXTERNAL" in args["reply_text"], args


def test_external_refused_on_a_plain_tcp_port(tls_broker):
    with R.RawConnection(HOST, tls_broker.port, timeout=TIMEOUT) as raw:
        raw.start()
        raw.send_method(0, "connection.start-ok",
                        client_properties={"capabilities": {"authentication_failure_close": True}},
                        mechanism="EXTERNAL", response=b"", locale="en_US")
        args, _ = raw.expect_connection_close()
    assert args["reply_code"] == 403, args


def test_mqtt_logs_in_as_the_certificate_user(tls_broker, pki):
    c = mqtt_client(tls_broker.mqtt_tls_port, client_ctx(pki, pki.guest))
    try:
        c.connect()                                # no user name: the certificate's
        topic = mqtt_topic("cert")
        assert c.subscribe(topic) == [0]
        c.publish(topic, b"by certificate")
        assert c.get().payload == b"by certificate"
    finally:
        mqtt_close(c)
    assert re.search(r"accepted MQTT .*user 'guest'", tls_broker.b.log())
    # no certificate and no user name: anonymous, which this broker refuses
    anon = mqtt_client(tls_broker.mqtt_tls_port, client_ctx(pki))
    try:
        rc, _, _ = anon.connect(expect_rc=None)
        assert rc != 0
    finally:
        mqtt_close(anon)


# ------------------------------------------------------------ refusals

def test_plaintext_on_the_amqp_tls_port_is_refused(tls_broker, pki):
    with R.RawConnection(HOST, tls_broker.tls_port, timeout=TIMEOUT) as raw:
        local = raw.sock.getsockname()[1]
        raw.send(R.PROTOCOL_HEADER)
        data = raw.read_until_eof()
    assert not data.startswith(b"AMQP") and b"connection.start" not in data
    wait_for(lambda: log_lines_for(tls_broker.b, local), what="a log line")
    time.sleep(0.2)
    lines = log_lines_for(tls_broker.b, local)
    assert len(lines) == 1, lines
    assert "TLS handshake failed" in lines[0], lines
    # and the listener goes on serving TLS
    with pika.BlockingConnection(amqp_params(tls_broker.tls_port, client_ctx(pki))):
        pass


def test_plaintext_on_the_mqtt_tls_port_is_refused(tls_broker, pki):
    s = socket.create_connection((HOST, tls_broker.mqtt_tls_port), timeout=TIMEOUT)
    local = s.getsockname()[1]
    # CONNECT, MQTT 3.1.1, clean session, keepalive 60, client id "x"
    s.sendall(bytes.fromhex("100d00044d5154540402003c000178"))
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    assert not data.startswith(b"\x20"), "got a CONNACK in plaintext"
    wait_for(lambda: log_lines_for(tls_broker.b, local), what="a log line")
    time.sleep(0.2)
    lines = log_lines_for(tls_broker.b, local)
    assert len(lines) == 1, lines
    assert "TLS handshake failed" in lines[0], lines


def test_client_without_certificate_refused_when_required(strict_broker, pki):
    s = tls_socket(strict_broker.tls_port, client_ctx(pki))
    assert refused_after_handshake(s)


def test_expired_client_certificate_refused(strict_broker, pki):
    try:
        s = tls_socket(strict_broker.tls_port, client_ctx(pki, pki.expired))
    except ssl.SSLError as e:                      # TLS 1.2 says so in the handshake
        assert "EXPIRED" in str(e).upper(), e
    else:
        assert refused_after_handshake(s)
    wait_for(lambda: "certificate has expired" in strict_broker.b.log(),
             what="the reason in the log")


def test_client_certificate_from_another_ca_refused(strict_broker, pki):
    for port, first in ((strict_broker.tls_port, R.PROTOCOL_HEADER),
                        (strict_broker.mqtt_tls_port, bytes.fromhex("100d00044d5154540402003c000178"))):
        try:
            s = tls_socket(port, client_ctx(pki, pki.untrusted))
        except ssl.SSLError as e:
            assert "UNKNOWN_CA" in str(e).upper() or "UNKNOWN CA" in str(e).upper(), e
        else:
            assert refused_after_handshake(s, first)
    wait_for(lambda: "unable to get local issuer certificate" in strict_broker.b.log(),
             what="the reason in the log")


def test_valid_client_certificate_accepted_when_required(strict_broker, pki):
    with pika.BlockingConnection(amqp_params(strict_broker.tls_port,
                                             client_ctx(pki, pki.guest))) as conn:
        amqp_round_trip(conn)
    c = mqtt_client(strict_broker.mqtt_tls_port, client_ctx(pki, pki.guest),
                    username="guest", password="guest")
    try:
        c.connect()
    finally:
        mqtt_close(c)


# ------------------------------------------------------------ slow clients

@pytest.mark.timeout(60)
def test_silent_clients_do_not_block_handshakes_and_time_out(tls_broker, pki):
    silent = [socket.create_connection((HOST, p), timeout=TIMEOUT)
              for p in (tls_broker.tls_port, tls_broker.mqtt_tls_port)]
    # half a ClientHello: a record header announcing more than follows
    half = socket.create_connection((HOST, tls_broker.tls_port), timeout=TIMEOUT)
    half.sendall(bytes.fromhex("160301020001"))
    silent.append(half)
    try:
        t0 = time.monotonic()
        with pika.BlockingConnection(amqp_params(tls_broker.tls_port, client_ctx(pki))) as conn:
            amqp_round_trip(conn)
        c = mqtt_client(tls_broker.mqtt_tls_port, client_ctx(pki), username="guest",
                        password="guest")
        try:
            c.connect()
        finally:
            mqtt_close(c)
        assert time.monotonic() - t0 < 5 * SLOW
        # the handshake (AMQP) and CONNECT (MQTT) timeouts, 10 s, drop them
        for s in silent:
            s.settimeout(20 * SLOW)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"", data
    finally:
        for s in silent:
            s.close()
    log = tls_broker.b.log()
    assert "handshake timeout" in log and "no CONNECT in time" in log


# ------------------------------------------------------------ reload

def test_sighup_reloads_the_certificate(coney_bin, pki, tmp_path):
    live = pki.ca.issue(str(tmp_path / "live"), "localhost", san="DNS:localhost,IP:127.0.0.1",
                        org="First")
    conf = write_conf(str(tmp_path / "coney.conf"), pki, server=live)
    tb = start_tls_broker(coney_bin, conf)
    try:
        first = live.der()
        with tls_socket(tb.tls_port, client_ctx(pki)) as s:
            assert s.getpeercert(binary_form=True) == first
        old = pika.BlockingConnection(amqp_params(tb.tls_port, client_ctx(pki)))

        # a broken file: the reload fails and the old certificate stays
        with open(live.pem, "w") as f:
            f.write("not a certificate\n")
        tb.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS reload failed" in tb.b.log(), what="the failed reload")
        with tls_socket(tb.tls_port, client_ctx(pki)) as s:
            assert s.getpeercert(binary_form=True) == first

        fresh = pki.ca.issue(str(tmp_path / "fresh"), "localhost",
                             san="DNS:localhost,IP:127.0.0.1", org="Second")
        shutil.copy(fresh.pem, live.pem)
        shutil.copy(fresh.key, live.key)
        tb.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS reloaded certificate" in tb.b.log(), what="the reload")
        with tls_socket(tb.tls_port, client_ctx(pki)) as s:
            assert s.getpeercert(binary_form=True) == fresh.der()
            assert ("organizationName", "Second") in [
                kv for rdn in s.getpeercert()["subject"] for kv in rdn]
        # the connection made before keeps working on its session
        amqp_round_trip(old)
        old.close()
    finally:
        stop_clean(tb)


# ------------------------------------------------------------ configuration

def test_subject_alternative_name_login(coney_bin, pki, tmp_path):
    conf = write_conf(str(tmp_path / "coney.conf"), pki,
                      **{"ssl_cert_login_from": "subject_alternative_name"})
    tb = start_tls_broker(coney_bin, conf)
    try:
        params = amqp_params(tb.tls_port, client_ctx(pki, pki.guest_san),
                             credentials=pika.credentials.ExternalCredentials())
        with pika.BlockingConnection(params) as conn:
            amqp_round_trip(conn)
    finally:
        stop_clean(tb)


def test_old_tls_versions_in_the_config_are_refused(coney_bin, pki, tmp_path):
    conf = write_conf(str(tmp_path / "coney.conf"), pki, **{"ssl_options.versions.1": "tlsv1.1"})
    p = subprocess.run([coney_bin, "--config", conf, "--port", str(free_port()),
                        "--mqtt-port", "0", "--data-dir", str(tmp_path / "data")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10 * SLOW)
    assert p.returncode != 0
    assert b"ssl_options.versions.1" in p.stderr, p.stderr


def test_tls_1_3_only(coney_bin, pki, tmp_path):
    conf = write_conf(str(tmp_path / "coney.conf"), pki, **{"ssl_options.versions.1": "tlsv1.3"})
    tb = start_tls_broker(coney_bin, conf)
    try:
        ctx = client_ctx(pki)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            tls_socket(tb.tls_port, ctx).close()
        with tls_socket(tb.tls_port, client_ctx(pki)) as s:
            assert s.version() == "TLSv1.3"
    finally:
        stop_clean(tb)


def test_missing_certificate_file_stops_the_start(coney_bin, pki, tmp_path):
    conf = write_conf(str(tmp_path / "coney.conf"), pki,
                      **{"ssl_options.certfile": str(tmp_path / "nope.pem")})
    p = subprocess.run([coney_bin, "--config", conf, "--port", str(free_port()),
                        "--mqtt-port", "0", "--tls-port", str(free_port()),
                        "--data-dir", str(tmp_path / "data")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10 * SLOW)
    assert p.returncode != 0
    assert b"nope.pem" in p.stdout, p.stdout


# ------------------------------------------------------------ the management API over TLS

def test_management_api_over_https(pki, tmp_path):
    """management.ssl.port serves the same API over TLS (RabbitMQ's 15671):
    basic auth, JSON, the UI; plaintext on that port gets no HTTP answer."""
    import base64
    import json
    import urllib.request
    from conftest import TARGET, _binary
    if TARGET:
        pytest.skip("needs to control the broker process (CONEY_TEST_TARGET is set)")
    port = free_port()
    conf = write_conf(str(tmp_path / "coney.conf"), pki,
                      **{"management.ssl.port": str(port)})
    b = start_broker(_binary(), extra_args=["--config", conf])
    try:
        assert wait_port(HOST, port, 20 * SLOW, b.proc), b.log_tail()
        ctx = client_ctx(pki, cert=pki.guest)
        auth = base64.b64encode(b"guest:guest").decode()
        req = urllib.request.Request("https://localhost:%d/api/overview" % port,
                                     headers={"Authorization": "Basic " + auth})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            assert r.status == 200
            assert json.loads(r.read())["product_name"] == "Coney"
        # a PUT goes through the same server (bodies both ways)
        req = urllib.request.Request("https://localhost:%d/api/queues/%%2F/over-https" % port,
                                     data=b'{"durable": false}', method="PUT",
                                     headers={"Authorization": "Basic " + auth,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            assert r.status in (201, 204)
        with urllib.request.urlopen("https://localhost:%d/" % port, context=ctx,
                                    timeout=10) as r:
            assert b"<html" in r.read().lower()
        # plaintext HTTP on the TLS port: no HTTP reply
        with socket.create_connection((HOST, port), timeout=5) as s:
            s.sendall(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except (ConnectionResetError, socket.timeout):
                data = b""
            assert not data.startswith(b"HTTP/"), data
        stop_clean(TlsBroker(b, None, None))
    finally:
        b.cleanup()
