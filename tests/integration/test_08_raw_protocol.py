"""Conformance cases on the wire: each case sends bytes a well-behaved
client never sends and names the reply the broker must give. Cases are
data; names cite the AMQP 0-9-1 spec section (or RabbitMQ's rule) they check.
Reply codes, texts and class/method ids are RabbitMQ's (checked on 3.10.8).

A separate pika connection (the witness) does a publish/get round trip after
every case: a peer's protocol error must never disturb other connections."""

import os
import signal
import struct
from collections import namedtuple

import pytest

import coney_raw as R
from coney_raw import hexdump, hexbytes
from coney_util import TIMEOUT, get_one, start_broker, uname

# expect: bytes (the broker answers with exactly these bytes and closes the
# socket) or Close(code, text prefix, class id, method id) for connection.close.
Close = namedtuple("Close", "code text class_id method_id")
Case = namedtuple("Case", "name state send expect handshake rabbitmq_differs")


def case(name, state, send, expect, handshake=None, rabbitmq_differs=None):
    return Case(name, state, send, expect, handshake or {}, rabbitmq_differs)


CASES = [
    # -- 4.2.2 protocol header: on a header it does not accept the server
    #    answers with the one it speaks and closes the socket.
    case("4.2.2 protocol header that is not AMQP (HTTP request)", "none",
         b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", R.PROTOCOL_HEADER),
    case("4.2.2 protocol header with unsupported version 0-9-0", "none",
         hexbytes("414d5150 00 00 09 00"), R.PROTOCOL_HEADER),
    case("4.2.2 protocol header with unsupported version 1-0-0", "none",
         hexbytes("414d5150 00 01 00 00"), R.PROTOCOL_HEADER),

    # -- 4.2.3 frame structure
    case("4.2.3 frame larger than negotiated frame_max is a frame error", "channel",
         R.frame(R.FRAME_METHOD, 1, R.method_payload("basic.qos") + b"\0" * 5000),
         Close(R.FRAME_ERROR, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,", 0, 0),
         handshake={"frame_max": 4096}),
    case("4.2.3 frame-end octet other than 0xCE is a frame error", "channel",
         R.frame(R.FRAME_METHOD, 1, R.method_payload("basic.qos"), end=0x00),
         Close(R.FRAME_ERROR, "FRAME_ERROR - type 1, all octets = ", 0, 0)),
    case("4.2.3 unknown frame type is a frame error", "channel",
         R.frame(9, 0, b""),
         Close(R.FRAME_ERROR, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame", 0, 0)),
    case("4.2.3 heartbeat frame on a non-zero channel is an unexpected frame", "channel",
         R.frame(R.FRAME_HEARTBEAT, 1, b""),
         Close(R.UNEXPECTED_FRAME, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0)),

    # -- 4.2.5 method frames
    case("4.2.5 unknown method id in a known class is not implemented", "channel",
         R.frame(R.FRAME_METHOD, 1, struct.pack("!HH", 60, 999)),
         Close(R.NOT_IMPLEMENTED, "NOT_IMPLEMENTED", None, None),
         rabbitmq_differs="RabbitMQ 3.10 crashes the connection process on an unknown "
                          "method id and drops the socket without connection.close"),
    case("4.2.5 unknown class id is not implemented", "channel",
         R.frame(R.FRAME_METHOD, 1, struct.pack("!HH", 999, 10)),
         Close(R.NOT_IMPLEMENTED, "NOT_IMPLEMENTED", None, None),
         rabbitmq_differs="RabbitMQ 3.10 drops the socket without connection.close"),
    case("4.2.5 method arguments shorter than the method needs (queue.declare)", "channel",
         R.frame(R.FRAME_METHOD, 1, struct.pack("!HH", 50, 10) + b"\x00"),
         Close(R.FRAME_ERROR, "FRAME_ERROR - cannot decode <<0>>", 50, 10)),
    case("4.2.5 shortstr running past the end of the frame (queue.declare)", "channel",
         R.frame(R.FRAME_METHOD, 1, struct.pack("!HH", 50, 10) + hexbytes("0000 10 6162")),
         Close(R.FRAME_ERROR, "FRAME_ERROR - cannot decode ", 50, 10)),

    case("4.2.5.5 unknown field type in a field table is a syntax error", "channel",
         R.frame(R.FRAME_METHOD, 1, struct.pack("!HH", 50, 10)
                 + hexbytes("0000 00 00") + hexbytes("00000003 016b 5a")),
         Close(R.SYNTAX_ERROR, "SYNTAX_ERROR - cannot decode ", 50, 10),
         rabbitmq_differs="RabbitMQ 3.10 answers 501 FRAME_ERROR; the spec's code for "
                          "illegal field values is 502"),

    # -- 2.2 who sends what: a server-only method from a client is invalid
    case("2.2.4 basic.qos-ok sent by a client is command invalid", "channel",
         R.method_frame(1, "basic.qos-ok"),
         Close(R.COMMAND_INVALID, "COMMAND_INVALID - unimplemented method", 60, 11)),

    # -- 4.2.6 content frames follow their method: header, then bodies
    case("4.2.6 content body without a header is an unexpected frame", "channel",
         R.body_frame(1, b"hello"),
         Close(R.UNEXPECTED_FRAME,
               "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0)),
    case("4.2.6 content header without a content method is an unexpected frame", "channel",
         R.header_frame(1, 5),
         Close(R.UNEXPECTED_FRAME,
               "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0)),
    case("4.2.6 method frame where content body was due is an unexpected frame", "channel",
         R.method_frame(1, "basic.publish", routing_key="x") + R.header_frame(1, 10)
         + R.method_frame(1, "basic.qos"),
         Close(R.UNEXPECTED_FRAME,
               "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
               60, 40)),

    # -- channels
    case("2.3.5 method on a channel that was never opened is a channel error", "channel",
         R.method_frame(3, "queue.declare", queue=""),
         Close(R.CHANNEL_ERROR, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)),
    case("channel.open on an already open channel is a channel error", "channel",
         R.method_frame(1, "channel.open"),
         Close(R.CHANNEL_ERROR, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)),
    case("channel-class method on channel 0 is a channel error", "open",
         R.method_frame(0, "queue.declare", queue=""),
         Close(R.CHANNEL_ERROR, "CHANNEL_ERROR - unexpected method in connection state running",
               50, 10)),

    # -- RabbitMQ rules
    case("basic.publish with immediate=true is not implemented (RabbitMQ)", "channel",
         R.method_frame(1, "basic.publish", routing_key="x", immediate=True)
         + R.header_frame(1, 2) + R.body_frame(1, b"hi"),
         Close(R.NOT_IMPLEMENTED, "NOT_IMPLEMENTED - immediate=true", 60, 40)),
]


@pytest.fixture(scope="module")
def witness(_shared):
    b = _shared.get()
    conn = b.connect()
    ch = conn.channel()
    q = uname("witness")
    ch.queue_declare(q, exclusive=True)
    yield ch, q
    if conn.is_open:
        conn.close()


def _round_trip(witness, tag):
    ch, q = witness
    body = ("witness after " + tag).encode()
    ch.basic_publish("", q, body)
    _, _, got = get_one(ch, q, auto_ack=True)
    assert got == body


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_raw_case(c, broker, witness, rabbitmq):
    if c.rabbitmq_differs and rabbitmq is not None:
        pytest.skip("known RabbitMQ difference: " + c.rabbitmq_differs)
    raw = R.RawConnection(broker.host, broker.port, timeout=TIMEOUT)
    try:
        if c.state in ("open", "channel"):
            raw.open(**c.handshake)
        if c.state == "channel":
            raw.open_channel(1)
        sent = c.send
        raw.send(sent)
        if isinstance(c.expect, bytes):
            got = raw.read_until_eof()
            assert got == c.expect, (
                "%s\nsent:\n%s\nexpected:\n%s\ngot (then EOF):\n%s"
                % (c.name, hexdump(sent), hexdump(c.expect), hexdump(got)))
        else:
            try:
                args, skipped = raw.expect_connection_close()
            except (EOFError, TimeoutError) as e:
                raise AssertionError("%s: expected connection.close %d\nsent:\n%s\n%s"
                                     % (c.name, c.expect.code, hexdump(sent), e))
            detail = "%s\nsent:\n%s\ngot connection.close %r" % (c.name, hexdump(sent), args)
            assert args["reply_code"] == c.expect.code, detail
            assert args["reply_text"].startswith(c.expect.text), detail
            if c.expect.class_id is not None:
                assert (args["class_id"], args["method_id"]) == \
                    (c.expect.class_id, c.expect.method_id), detail
            # After close-ok the broker closes the socket; nothing else follows.
            rest = raw.read_until_eof()
            assert rest == b"", "%s: bytes after connection.close:\n%s" % (c.name, hexdump(rest))
    finally:
        raw.close()
    _round_trip(witness, c.name)


def test_hexdump_helper_shows_offsets_and_ascii():
    out = hexdump(b"AMQP\x00\x00\x09\x01")
    assert out.startswith("00000000  41 4d 51 50 00 00 09 01")
    assert "|AMQP....|" in out


def test_frame_builder_matches_spec_layout():
    # channel.open on channel 1: type 1, channel 1, size 5, class 20, method 10,
    # empty shortstr, frame-end.
    assert R.method_frame(1, "channel.open") == hexbytes(
        "01 | 0001 | 00000005 | 0014 000a | 00 | ce")


def test_connection_open_before_tune_ok_is_command_invalid(broker):
    """The handshake runs start, start-ok, tune, tune-ok, open in order; a
    step out of order is 503 COMMAND_INVALID naming the method sent."""
    with R.RawConnection(broker.host, broker.port, timeout=TIMEOUT) as raw:
        raw.start()
        raw.send_method(0, "connection.start-ok", client_properties={}, mechanism="PLAIN",
                        response=b"\0guest\0guest", locale="en_US")
        raw.expect(0, "connection.tune")
        raw.send_method(0, "connection.open", virtual_host="/")
        args, _ = raw.expect_connection_close()
    assert args["reply_code"] == R.COMMAND_INVALID
    assert args["reply_text"].startswith("COMMAND_INVALID - expected 'connection.tune-ok'")
    assert (args["class_id"], args["method_id"]) == (10, 40)


def test_message_the_broker_cannot_allocate_is_internal_error(coney_bin, tmp_path):
    """541 INTERNAL_ERROR when memory for a message cannot be had: a broker
    limited to 256 MiB of address space is sent a header announcing 400 MB
    (allowed by max_message_size). The broker keeps running and serving."""
    if os.environ.get("CONEY_SANITIZED"):
        pytest.skip("sanitizers reserve far more address space than the limit")
    wrapper = tmp_path / "coney-limited"
    wrapper.write_text("#!/bin/sh\nulimit -v 262144\nexec %s \"$@\"\n" % coney_bin)
    wrapper.chmod(0o755)
    conf = tmp_path / "coney.conf"
    conf.write_text("max_message_size = 500000000\n")
    b = start_broker(str(wrapper), extra_args=["--config", str(conf)])
    try:
        with R.RawConnection(b.host, b.port, timeout=TIMEOUT) as raw:
            raw.open()
            raw.open_channel(1)
            raw.send(R.method_frame(1, "basic.publish", routing_key="x")
                     + R.header_frame(1, 400 * 1000 * 1000))
            args, _ = raw.expect_connection_close()
        assert args["reply_code"] == R.INTERNAL_ERROR
        assert (args["class_id"], args["method_id"]) == (60, 40)
        c = b.connect()                   # and the broker still serves
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"after")
        assert get_one(ch, q, auto_ack=True)[2] == b"after"
        c.close()
        b.check_clean_exit(b.stop(signal.SIGTERM))
    finally:
        b.cleanup()
