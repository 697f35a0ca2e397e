"""The rabbitmq-c command line tools (Debian's amqp-tools) against the broker."""

import shutil
import subprocess

import pika
import pytest

from coney_util import TIMEOUT, get_one, uname

pytestmark = pytest.mark.skipif(shutil.which("amqp-publish") is None,
                                reason="amqp-tools not installed")


def tool(broker, name, *args, stdin=None, check=True):
    cmd = [name, "--server", broker.host, "--port", str(broker.port)] + list(args)
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=3 * TIMEOUT)
    if check:
        assert p.returncode == 0, "%s exited %d\nstdout: %r\nstderr: %r" % (
            " ".join(cmd), p.returncode, p.stdout, p.stderr)
    return p


def test_declare_publish_get_round_trip(broker):
    q = uname("tools")
    out = tool(broker, "amqp-declare-queue", "-q", q).stdout
    assert out.strip() == q.encode()
    tool(broker, "amqp-publish", "-r", q, "-b", "hello from amqp-publish")
    p = tool(broker, "amqp-get", "-q", q)
    assert p.stdout == b"hello from amqp-publish"
    # amqp-get on an empty queue exits non-zero
    assert tool(broker, "amqp-get", "-q", q, check=False).returncode != 0
    out = tool(broker, "amqp-delete-queue", "-q", q).stdout
    assert out.strip() == b"0"


def test_publish_then_consume_count_one(broker):
    q = uname("tools")
    tool(broker, "amqp-declare-queue", "-q", q)
    tool(broker, "amqp-publish", "-r", q, "-C", "text/plain", "-b", "consumed by amqp-consume")
    p = tool(broker, "amqp-consume", "-q", q, "-c", "1", "cat")
    assert p.stdout == b"consumed by amqp-consume"
    tool(broker, "amqp-delete-queue", "-q", q)


def test_consume_with_exchange_binding_and_stdin_lines(broker):
    q = uname("tools")
    tool(broker, "amqp-declare-queue", "-q", q)
    c = broker.connect()
    c.channel().queue_bind(q, "amq.topic", "tools.#")
    c.close()
    tool(broker, "amqp-publish", "-e", "amq.topic", "-r", "tools.lines", "-l",
         stdin=b"line one\nline two\nline three\n")
    p = tool(broker, "amqp-consume", "-q", q, "-c", "3", "-p", "1", "cat")
    assert p.stdout == b"line one\nline two\nline three\n"  # -l keeps each newline
    tool(broker, "amqp-delete-queue", "-q", q)


def test_publish_properties_seen_by_pika(broker):
    q = uname("tools")
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare(q, exclusive=False)
    tool(broker, "amqp-publish", "-r", q, "-p", "-C", "application/json", "-E", "utf-8",
         "-t", "reply-here", "-H", "x-tool: amqp-publish", "-b", "{}")
    m, props, body = get_one(ch, q, auto_ack=True)
    assert body == b"{}"
    assert props.content_type == "application/json"
    assert props.content_encoding == "utf-8"
    assert props.reply_to == "reply-here"
    assert props.delivery_mode == 2
    assert props.headers == {"x-tool": "amqp-publish"}
    ch.queue_delete(q)
    c.close()


def test_pika_publish_amqp_get(broker):
    q = uname("tools")
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"from pika", pika.BasicProperties(content_type="text/plain"))
    c.close()
    assert tool(broker, "amqp-get", "-q", q).stdout == b"from pika"
    tool(broker, "amqp-delete-queue", "-q", q)


def test_url_option(broker):
    q = uname("tools")
    url = "amqp://guest:guest@%s:%d/%%2f" % (broker.host, broker.port)
    subprocess.run(["amqp-declare-queue", "-u", url, "-q", q], check=True,
                   stdout=subprocess.DEVNULL, timeout=3 * TIMEOUT)
    subprocess.run(["amqp-publish", "-u", url, "-r", q, "-b", "via url"], check=True,
                   timeout=3 * TIMEOUT)
    p = subprocess.run(["amqp-get", "-u", url, "-q", q], stdout=subprocess.PIPE, check=True,
                       timeout=3 * TIMEOUT)
    assert p.stdout == b"via url"
    subprocess.run(["amqp-delete-queue", "-u", url, "-q", q], check=True,
                   stdout=subprocess.DEVNULL, timeout=3 * TIMEOUT)
