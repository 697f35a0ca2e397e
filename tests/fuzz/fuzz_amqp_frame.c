/*
 * The AMQP read path: the input is what a client sends after the
 * protocol header (which may lead it), cut into frames as the connection
 * does, each method frame decoded by the method table, each content
 * header decoded with its basic properties. Whatever decodes must encode
 * again, and that encoding must decode and encode to the same bytes.
 */
#include "tests/fuzz/fuzz.h"

#include "protocol/amqp.h"

static amqp_pool pool;

static void
check_method(const uint8_t *payload, size_t len)
{
    amqp_method m;
    if (amqp_method_decode(payload, len, &m, &pool) != AMQP_OK)
        return;
    FUZZ_CHECK(amqp_method_info_get(m.id) != NULL);
    (void)amqp_method_name(m.id);

    size_t n1 = amqp_method_frame_size(&m);
    uint8_t *f1 = fuzz_alloc(n1);
    FUZZ_CHECK(amqp_method_frame_encode(7, &m, f1) == n1);

    /* the frame we wrote parses back as one whole frame */
    amqp_frame fr;
    size_t used;
    FUZZ_CHECK(amqp_frame_parse(f1, n1, 0, &fr, &used) == AMQP_OK);
    FUZZ_CHECK(used == n1 && fr.type == AMQP_FRAME_METHOD && fr.channel == 7);

    amqp_method m2;
    FUZZ_CHECK(amqp_method_decode(fr.payload, fr.size, &m2, &pool) == AMQP_OK);
    FUZZ_CHECK(m2.id == m.id);
    size_t n2 = amqp_method_size(&m2);
    uint8_t *p2 = fuzz_alloc(n2);
    FUZZ_CHECK(amqp_method_encode(&m2, p2) == n2);
    fuzz_same(amqp_method_name(m.id), fr.payload, fr.size, p2, n2);
    free(p2);
    free(f1);
}

static void
check_props(uint16_t flags, const uint8_t *props, size_t len)
{
    amqp_basic_props p;
    uint8_t dm = 0xff, prio = 0xff;
    int peek = amqp_props_peek(flags, props, len, &dm, &prio);
    if (amqp_props_decode(flags, props, len, &p, &pool) != AMQP_OK)
        return;
    /* the publish path's shortcut agrees with the full decoder */
    FUZZ_CHECK(peek == AMQP_OK);
    FUZZ_CHECK(dm == p.delivery_mode && prio == p.priority);

    size_t n1 = amqp_props_size(&p);
    uint8_t *e1 = fuzz_alloc(n1);
    FUZZ_CHECK(amqp_props_encode(&p, e1) == n1);

    /* wrapped in a header frame, as the broker sends it on */
    size_t fn = AMQP_HEADER_FRAME_SIZE(n1);
    uint8_t *f = fuzz_alloc(fn);
    FUZZ_CHECK(amqp_header_frame_encode(3, 42, p.flags, e1, (uint32_t)n1, f) == fn);
    amqp_frame fr;
    size_t used;
    FUZZ_CHECK(amqp_frame_parse(f, fn, 0, &fr, &used) == AMQP_OK && used == fn);
    amqp_content_header h;
    FUZZ_CHECK(amqp_content_header_decode(fr.payload, fr.size, &h) == AMQP_OK);
    FUZZ_CHECK(h.body_size == 42 && h.flags == p.flags && h.props_len == n1);

    amqp_basic_props p2;
    FUZZ_CHECK(amqp_props_decode(h.flags, h.props, h.props_len, &p2, &pool) == AMQP_OK);
    size_t n2 = amqp_props_size(&p2);
    uint8_t *e2 = fuzz_alloc(n2);
    FUZZ_CHECK(amqp_props_encode(&p2, e2) == n2);
    fuzz_same("basic properties", e1, n1, e2, n2);
    free(e2);
    free(f);
    free(e1);
}

static void
check_header(const uint8_t *payload, size_t len)
{
    amqp_content_header h;
    if (amqp_content_header_decode(payload, len, &h) != AMQP_OK)
        return;
    FUZZ_CHECK(h.props >= payload && h.props + h.props_len == payload + len);
    check_props(h.flags, h.props, h.props_len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 8 && memcmp(data, AMQP_PROTOCOL_HEADER, 8) == 0) {
        data += 8;
        size -= 8;
    }
    /* frame_max as negotiated by default, as the broker's read loop has it */
    size_t off = 0;
    while (off < size) {
        amqp_frame f;
        size_t used = 0;
        int rc = amqp_frame_parse(data + off, size - off, 131072, &f, &used);
        if (rc != AMQP_OK) {
            FUZZ_CHECK(rc == AMQP_NEED_MORE || amqp_status_reply_code(rc) > 0);
            (void)amqp_strerror(rc);
            break;
        }
        FUZZ_CHECK(used == (size_t)f.size + AMQP_FRAME_OVERHEAD && used <= size - off);
        FUZZ_CHECK(f.payload == data + off + AMQP_FRAME_HEADER_SIZE);
        if (f.type == AMQP_FRAME_METHOD)
            check_method(f.payload, f.size);
        else if (f.type == AMQP_FRAME_HEADER)
            check_header(f.payload, f.size);
        off += used;
        amqp_pool_reset(&pool);
    }
    amqp_pool_reset(&pool);
    return 0;
}
