"""Prometheus metrics on their own port (docs/management.md): the text
exposition format 0.0.4, read here by a small parser that checks every
line; RabbitMQ's metric names; counters that follow traffic; the disk
alarm gauge; per-queue series labelled {vhost, queue} on
/metrics/per-object; no login needed, as RabbitMQ's plugin."""

import os
import re
import signal
import time
import urllib.error
import urllib.request

import pika
import pytest

from coney_util import TIMEOUT, start_broker, uname, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

pytestmark = pytest.mark.skipif(bool(os.environ.get("CONEY_TEST_TARGET")),
                                reason="starts brokers of its own")


def _binary():
    return os.path.abspath(os.environ.get("CONEY_BIN") or os.path.join(REPO, "build", "coney"))


# ------------------------------------------------------------ the text format

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)( \d+)?$" % NAME)
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        assert m, "bad label set at %r" % text[pos:]
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
        assert m.group(1) not in labels, "label %s twice" % m.group(1)
        labels[m.group(1)] = value
        pos = m.end()
    return labels


def parse(text):
    """{family: {"type", "help", "samples": [(labels dict, value)]}}; fails on
    anything the 0.0.4 format does not allow (and on a family given twice)."""
    fams, current, seen_samples = {}, None, set()
    assert text.endswith("\n"), "the page must end with a newline"
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert re.fullmatch(NAME, name), line
            assert name not in fams or "help" not in fams[name], "HELP twice for " + name
            fams.setdefault(name, {"samples": []})["help"] = help_
            current = name
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in seen_samples, "TYPE after samples for " + name
            assert "type" not in fams.get(name, {}), "TYPE twice for " + name
            fams.setdefault(name, {"samples": []})["type"] = typ
            current = name
        elif line.startswith("#"):
            continue
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            name = m.group(1)
            assert name == current, "sample %s outside its family (%s)" % (name, current)
            value = float(m.group(4))
            labels = parse_labels(m.group(3)) if m.group(3) else {}
            fams[name]["samples"].append((labels, value))
            seen_samples.add(name)
    for name, f in fams.items():
        assert "type" in f and "help" in f, "family %s lacks TYPE or HELP" % name
        keys = [tuple(sorted(l.items())) for l, _ in f["samples"]]
        assert len(keys) == len(set(keys)), "duplicate series in " + name
    return fams


def value(fams, name, **labels):
    for l, v in fams[name]["samples"]:
        if all(l.get(k) == val for k, val in labels.items()):
            return v
    raise AssertionError("no sample %s%r" % (name, labels))


def scrape(b, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (b.prom_port, path),
                                timeout=TIMEOUT) as r:
        assert r.status == 200
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
        return r.read().decode()


@pytest.fixture(scope="module")
def pb():
    b = start_broker(_binary())
    try:
        yield b
    finally:
        try:
            if not b.stopped:
                b.check_clean_exit(b.stop(signal.SIGTERM))
        finally:
            b.cleanup()


def connect(b):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=b.port, socket_timeout=TIMEOUT, connection_attempts=1))


# ------------------------------------------------------------ tests

def test_parser_rejects_what_the_format_does_not_allow():
    with pytest.raises(AssertionError):
        parse("x 1\n")                                           # no TYPE/HELP
    with pytest.raises(AssertionError):
        parse("# HELP x h\n# TYPE x gauge\nx{a=\"1\" 1\n")       # bad labels
    f = parse('# HELP x h\n# TYPE x gauge\nx{a="q\\"\\\\\\n",b="2"} 1.5\n')
    assert f["x"]["samples"] == [({"a": 'q"\\\n', "b": "2"}, 1.5)]


def test_scrape_is_well_formed_with_rabbitmq_names(pb):
    fams = parse(scrape(pb))
    for name, typ in (("rabbitmq_connections", "gauge"), ("rabbitmq_channels", "gauge"),
                      ("rabbitmq_queues", "gauge"), ("rabbitmq_consumers", "gauge"),
                      ("rabbitmq_queue_messages_ready", "gauge"),
                      ("rabbitmq_queue_messages_unacked", "gauge"),
                      ("rabbitmq_queue_messages", "gauge"),
                      ("rabbitmq_global_messages_received_total", "counter"),
                      ("rabbitmq_global_messages_delivered_total", "counter"),
                      ("rabbitmq_global_messages_acknowledged_total", "counter"),
                      ("rabbitmq_global_messages_confirmed_total", "counter"),
                      ("rabbitmq_global_messages_routed_total", "counter"),
                      ("rabbitmq_global_messages_unroutable_dropped_total", "counter"),
                      ("rabbitmq_global_messages_unroutable_returned_total", "counter"),
                      ("rabbitmq_alarms_free_disk_space_watermark", "gauge"),
                      ("rabbitmq_process_resident_memory_bytes", "gauge"),
                      ("rabbitmq_disk_space_available_bytes", "gauge")):
        assert fams[name]["type"] == typ, name
        assert len(fams[name]["samples"]) == 1, name
    ident = fams["rabbitmq_identity_info"]["samples"][0][0]
    assert ident["rabbitmq_node"].startswith("coney@") and ident["rabbitmq_cluster"]
    assert value(fams, "rabbitmq_process_resident_memory_bytes") > 0
    assert value(fams, "rabbitmq_disk_space_available_bytes") > 0
    assert value(fams, "rabbitmq_alarms_free_disk_space_watermark") == 0
    # the aggregated page has no per-queue series
    assert all(not l for l, _ in fams["rabbitmq_queue_messages"]["samples"])


def test_counters_and_gauges_follow_traffic(pb):
    before = parse(scrape(pb))
    c = connect(pb)
    try:
        ch = c.channel()
        ch.confirm_delivery()
        qn = uname("prom")
        ch.queue_declare(qn)
        for i in range(5):
            ch.basic_publish("", qn, b"m%d" % i)
        ch.basic_publish("", uname("nowhere"), b"lost")            # unroutable, dropped
        m = ch.basic_get(qn, auto_ack=False)
        after = parse(scrape(pb))
        d = lambda n: value(after, n) - value(before, n)
        assert d("rabbitmq_global_messages_received_total") == 6
        assert d("rabbitmq_global_messages_routed_total") == 5
        assert d("rabbitmq_global_messages_unroutable_dropped_total") == 1
        assert d("rabbitmq_global_messages_confirmed_total") == 6
        assert d("rabbitmq_global_messages_delivered_total") == 1
        assert value(after, "rabbitmq_connections") >= 1
        assert value(after, "rabbitmq_channels") >= 1
        assert d("rabbitmq_queues") == 1
        assert d("rabbitmq_queue_messages_ready") == 4
        assert d("rabbitmq_queue_messages_unacked") == 1
        assert d("rabbitmq_queue_messages") == 5
        ch.basic_ack(m[0].delivery_tag)
        ch.queue_declare(qn, passive=True)
        assert value(parse(scrape(pb)), "rabbitmq_global_messages_acknowledged_total") - \
            value(before, "rabbitmq_global_messages_acknowledged_total") == 1
        ch.queue_delete(qn)
    finally:
        c.close()


def test_per_object_series_are_labelled_by_vhost_and_queue(pb):
    c = connect(pb)
    try:
        ch = c.channel()
        odd = uname('odd"name\\x')
        plain = uname("plain")
        ch.queue_declare(odd)
        ch.queue_declare(plain)
        for _ in range(3):
            ch.basic_publish("", odd, b"x")
        tag = ch.basic_consume(plain, lambda *a: None)
        ch.queue_declare(odd, passive=True)
        fams = parse(scrape(pb, "/metrics/per-object"))
        assert value(fams, "rabbitmq_queue_messages_ready", vhost="/", queue=odd) == 3
        assert value(fams, "rabbitmq_queue_messages", vhost="/", queue=odd) == 3
        assert value(fams, "rabbitmq_queue_messages_published_total", vhost="/", queue=odd) == 3
        assert value(fams, "rabbitmq_queue_consumers", vhost="/", queue=plain) == 1
        assert value(fams, "rabbitmq_queue_messages_ready", vhost="/", queue=plain) == 0
        assert all(set(l) == {"vhost", "queue"}
                   for l, _ in fams["rabbitmq_queue_messages_ready"]["samples"])
        assert "rabbitmq_connections" in fams          # node-wide ones are there too
        ch.basic_cancel(tag)
        ch.queue_delete(odd)
        ch.queue_delete(plain)
    finally:
        c.close()


def test_no_login_needed_and_unknown_paths_404(pb):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % pb.prom_port,
                                 headers={"Authorization": "Basic Z3Vlc3Q6d3Jvbmc="})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        assert r.status == 200                          # credentials are ignored
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen("http://127.0.0.1:%d/api/overview" % pb.prom_port,
                               timeout=TIMEOUT)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/metrics" % pb.prom_port, data=b"", method="POST"),
            timeout=TIMEOUT)
    assert e.value.code == 405


def test_disk_alarm_gauge(tmp_path):
    conf = tmp_path / "coney.conf"
    conf.write_text("disk_free_limit.absolute = 1000TB\n")
    b = start_broker(_binary(), ["--config", str(conf)])
    try:
        fams = parse(scrape(b))
        assert value(fams, "rabbitmq_alarms_free_disk_space_watermark") == 1
        assert value(fams, "rabbitmq_disk_space_available_limit_bytes") == 1000e12
    finally:
        try:
            b.check_clean_exit(b.stop(signal.SIGTERM))
        finally:
            b.cleanup()


def test_ports_from_the_config_file_and_none(tmp_path):
    """prometheus.tcp.port / management.tcp.port name the ports; `none`
    turns a listener off."""
    from coney_util import free_port, wait_port
    port = free_port()
    conf = tmp_path / "coney.conf"
    conf.write_text("prometheus.tcp.port = %d\nmanagement.tcp.port = none\n" % port)
    b = start_broker(_binary(), ["--config", str(conf)], http_port_flag=False)
    try:
        assert wait_port("127.0.0.1", port, TIMEOUT, b.proc)
        b.prom_port = port
        assert "rabbitmq_connections" in parse(scrape(b))
        assert "management API listening" not in b.log()
    finally:
        try:
            b.check_clean_exit(b.stop(signal.SIGTERM))
        finally:
            b.cleanup()


def test_scrape_with_ten_thousand_queues(pb):
    """Correctness with 10,000 queues; the time is printed, not checked."""
    c = connect(pb)
    try:
        ch = c.channel()
        prefix = uname("tenk")
        for i in range(10000):
            ch.queue_declare("%s.%05d" % (prefix, i))
        t0 = time.monotonic()
        text = scrape(pb, "/metrics/per-object")
        t = time.monotonic() - t0
        fams = parse(text)
        mine = [l for l, _ in fams["rabbitmq_queue_messages_ready"]["samples"]
                if l["queue"].startswith(prefix)]
        assert len(mine) == 10000
        t0 = time.monotonic()
        agg = scrape(pb)
        t_agg = time.monotonic() - t0
        assert value(parse(agg), "rabbitmq_queues") >= 10000
        print("\n10,000 queues: /metrics/per-object %.3f s (%d bytes), /metrics %.3f s"
              % (t, len(text), t_agg))
        for i in range(10000):
            ch.queue_delete("%s.%05d" % (prefix, i))
    finally:
        c.close()
