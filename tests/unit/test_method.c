/* The method table and its codec: every method round-trips with every
 * field set, a few are checked byte for byte against the spec, and hostile
 * payloads (unknown ids, truncation at every length) fail cleanly. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/amqp.h"
#include "suites.h"

static const struct {
    uint32_t id;
    const char *name;
} all_methods[] = {
#define X(NAME, member, cls, idx, wire) { AMQP_##NAME, wire },
    AMQP_METHOD_LIST(X)
#undef X
};
#define NMETHODS (sizeof all_methods / sizeof all_methods[0])

/* A table for every table argument, nested to show tables are walked. */
static amqp_value sample_items[] = {
    { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("a") },
    { .kind = 'l', .v.i = -9 },
};
static amqp_field sample_inner[] = {
    { AMQP_BYTES_LIT("publisher_confirms"), { .kind = 't', .v.boolean = true } },
};
static amqp_field sample_fields[] = {
    { AMQP_BYTES_LIT("x-max-length"), { .kind = 'I', .v.i = 1000 } },
    { AMQP_BYTES_LIT("capabilities"), { .kind = 'F', .v.table = { 1, sample_inner } } },
    { AMQP_BYTES_LIT("list"), { .kind = 'A', .v.array = { 2, sample_items } } },
};
static const amqp_table sample_table = { 3, sample_fields };

static char long_text[400];

/* Sets every field of m from its descriptor: numbers derived from the
 * field's position so no two fields agree, strings from the field's name,
 * bits from bit_pattern (bit k of the method's k-th bit field). */
static void
fill_method(amqp_method *m, const amqp_method_info *info, unsigned bit_pattern)
{
    memset(m, 0, sizeof *m);
    m->id = info->id;
    char *base = (char *)&m->a;
    unsigned nbit = 0;
    for (unsigned k = 0; k < info->nfields; k++) {
        const amqp_field_desc *fd = &info->fields[k];
        void *p = base + fd->offset;
        switch (fd->type) {
        case AMQP_FT_OCTET: *(uint8_t *)p = (uint8_t)(0xa1 + k); break;
        case AMQP_FT_SHORT: *(uint16_t *)p = (uint16_t)(0xb200 + k); break;
        case AMQP_FT_LONG: *(uint32_t *)p = 0xc3000000u + k; break;
        case AMQP_FT_LONGLONG:
        case AMQP_FT_TIMESTAMP: *(uint64_t *)p = 0xd400000000000000ull + k; break;
        case AMQP_FT_SHORTSTR: *(amqp_bytes *)p = amqp_cstr(fd->name); break;
        case AMQP_FT_LONGSTR:
            /* Longer than a shortstr could hold, NULs included. */
            *(amqp_bytes *)p = (amqp_bytes){ long_text, (uint32_t)(sizeof long_text - k) };
            break;
        case AMQP_FT_BIT: *(bool *)p = (bit_pattern >> nbit++) & 1; break;
        case AMQP_FT_TABLE: *(amqp_table *)p = sample_table; break;
        default: ck_abort_msg("%s: bad field type %u", info->name, fd->type);
        }
    }
}

static void
assert_fields_eq(const amqp_method *a, const amqp_method *b, const amqp_method_info *info)
{
    ck_assert_uint_eq(a->id, b->id);
    const char *pa = (const char *)&a->a, *pb = (const char *)&b->a;
    for (unsigned k = 0; k < info->nfields; k++) {
        const amqp_field_desc *fd = &info->fields[k];
        const void *x = pa + fd->offset, *y = pb + fd->offset;
        switch (fd->type) {
        case AMQP_FT_OCTET:
            ck_assert_uint_eq(*(const uint8_t *)x, *(const uint8_t *)y); break;
        case AMQP_FT_SHORT:
            ck_assert_uint_eq(*(const uint16_t *)x, *(const uint16_t *)y); break;
        case AMQP_FT_LONG:
            ck_assert_uint_eq(*(const uint32_t *)x, *(const uint32_t *)y); break;
        case AMQP_FT_LONGLONG:
        case AMQP_FT_TIMESTAMP:
            ck_assert_uint_eq(*(const uint64_t *)x, *(const uint64_t *)y); break;
        case AMQP_FT_SHORTSTR:
        case AMQP_FT_LONGSTR:
            ck_assert_msg(amqp_bytes_eq(*(const amqp_bytes *)x, *(const amqp_bytes *)y),
                          "%s.%s", info->name, fd->name);
            break;
        case AMQP_FT_BIT:
            ck_assert_msg(*(const bool *)x == *(const bool *)y, "%s.%s", info->name, fd->name);
            break;
        case AMQP_FT_TABLE:
            ck_assert_msg(amqp_table_eq(x, y), "%s.%s", info->name, fd->name);
            break;
        }
    }
}

static void
setup(void)
{
    for (size_t i = 0; i < sizeof long_text; i++)
        long_text[i] = (char)(i * 7);
}

START_TEST(test_every_method_round_trips)
{
    static const unsigned patterns[] = { 0x00, 0xff, 0x55, 0xaa, 0x01, 0x10 };
    amqp_pool pool = {0};
    for (size_t i = 0; i < NMETHODS; i++) {
        const amqp_method_info *info = amqp_method_info_get(all_methods[i].id);
        ck_assert_msg(info != NULL, "%s missing", all_methods[i].name);
        ck_assert_uint_eq(info->id, all_methods[i].id);
        ck_assert_str_eq(info->name, all_methods[i].name);
        ck_assert_str_eq(amqp_method_name(all_methods[i].id), all_methods[i].name);

        for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
            amqp_method m, d;
            fill_method(&m, info, patterns[p]);
            size_t size = amqp_method_size(&m);
            uint8_t *buf = malloc(size);
            ck_assert_uint_eq(amqp_method_encode(&m, buf), size);
            ck_assert_uint_eq(amqp_get16(buf), AMQP_CLASS_OF(m.id));
            ck_assert_uint_eq(amqp_get16(buf + 2), AMQP_INDEX_OF(m.id));
            ck_assert_int_eq(amqp_method_decode(buf, size, &d, &pool), AMQP_OK);
            assert_fields_eq(&m, &d, info);

            /* Through a whole frame as well. */
            size_t fsize = amqp_method_frame_size(&m);
            ck_assert_uint_eq(fsize, size + AMQP_FRAME_OVERHEAD);
            uint8_t *fbuf = malloc(fsize);
            ck_assert_uint_eq(amqp_method_frame_encode(7, &m, fbuf), fsize);
            amqp_frame f;
            size_t used;
            ck_assert_int_eq(amqp_frame_parse(fbuf, fsize, 0, &f, &used), AMQP_OK);
            ck_assert_uint_eq(used, fsize);
            ck_assert_uint_eq(f.type, AMQP_FRAME_METHOD);
            ck_assert_uint_eq(f.channel, 7);
            ck_assert_mem_eq(f.payload, buf, size);
            free(fbuf);
            free(buf);
            amqp_pool_reset(&pool);
        }
    }
    amqp_pool_free(&pool);
}
END_TEST

/* The table holds exactly the listed methods and nothing else. */
START_TEST(test_no_unlisted_methods)
{
    size_t found = 0;
    for (uint32_t cls = 0; cls <= 120; cls++) {
        for (uint32_t idx = 0; idx <= 200; idx++) {
            uint32_t id = AMQP_METHOD_ID(cls, idx);
            if (amqp_method_info_get(id) == NULL) {
                ck_assert_str_eq(amqp_method_name(id), "unknown");
                continue;
            }
            found++;
            bool listed = false;
            for (size_t i = 0; i < NMETHODS; i++)
                listed |= all_methods[i].id == id;
            ck_assert_msg(listed, "%u.%u not in AMQP_METHOD_LIST", cls, idx);
        }
    }
    ck_assert_uint_eq(found, NMETHODS);
    ck_assert_ptr_null(amqp_method_info_get(AMQP_METHOD_ID(0xffff, 0xffff)));
}
END_TEST

/* Internal consistency of the rows: flags, replies, field offsets. */
START_TEST(test_rows_consistent)
{
    amqp_method m;
    for (size_t i = 0; i < NMETHODS; i++) {
        const amqp_method_info *info = amqp_method_info_get(all_methods[i].id);
        ck_assert_msg(info->flags & (AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER), "%s", info->name);
        if (info->flags & AMQP_MF_SYNC) {
            const amqp_method_info *r = amqp_method_info_get(info->reply);
            ck_assert_msg(r != NULL, "%s: reply", info->name);
            ck_assert_uint_eq(AMQP_CLASS_OF(r->id), AMQP_CLASS_OF(info->id));
            /* Each -ok follows its request, but for RabbitMQ's
             * exchange.unbind (40) whose -ok is 51. */
            ck_assert_uint_eq(AMQP_INDEX_OF(r->id), info->id == AMQP_EXCHANGE_UNBIND
                              ? 51 : AMQP_INDEX_OF(info->id) + 1);
            ck_assert(!(r->flags & AMQP_MF_SYNC));
        } else {
            ck_assert_msg(info->reply == 0, "%s: reply without sync", info->name);
        }
        bool has_no_wait = false;
        for (unsigned k = 0; k < info->nfields; k++) {
            const amqp_field_desc *fd = &info->fields[k];
            has_no_wait |= strcmp(fd->name, "no-wait") == 0 || strcmp(fd->name, "nowait") == 0;
            ck_assert_uint_lt(fd->offset, sizeof m.a);
        }
        ck_assert_msg(has_no_wait == !!(info->flags & AMQP_MF_NO_WAIT), "%s: no-wait", info->name);
        ck_assert_msg(!(info->flags & AMQP_MF_CONTENT) == (AMQP_CLASS_OF(info->id) != AMQP_CLASS_BASIC ||
            (info->id != AMQP_BASIC_PUBLISH && info->id != AMQP_BASIC_RETURN &&
             info->id != AMQP_BASIC_DELIVER && info->id != AMQP_BASIC_GET_OK)), "%s: content", info->name);
    }
}
END_TEST

START_TEST(test_flags_spot_checks)
{
    const amqp_method_info *i;
    i = amqp_method_info_get(AMQP_BASIC_PUBLISH);
    ck_assert_uint_eq(i->flags, AMQP_MF_CONTENT | AMQP_MF_FROM_CLIENT);
    i = amqp_method_info_get(AMQP_BASIC_GET);
    ck_assert_uint_eq(i->flags, AMQP_MF_SYNC | AMQP_MF_FROM_CLIENT);
    ck_assert_uint_eq(i->reply, AMQP_BASIC_GET_OK);
    i = amqp_method_info_get(AMQP_QUEUE_UNBIND);
    ck_assert_uint_eq(i->flags, AMQP_MF_SYNC | AMQP_MF_FROM_CLIENT);
    ck_assert_uint_eq(i->nfields, 5);
    i = amqp_method_info_get(AMQP_EXCHANGE_UNBIND_OK);
    ck_assert_uint_eq(i->id, AMQP_METHOD_ID(40, 51));
    i = amqp_method_info_get(AMQP_BASIC_CANCEL);
    ck_assert_uint_eq(i->flags, AMQP_MF_SYNC | AMQP_MF_NO_WAIT | AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER);
    i = amqp_method_info_get(AMQP_BASIC_ACK);
    ck_assert_uint_eq(i->flags, AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER);
    i = amqp_method_info_get(AMQP_BASIC_NACK);
    ck_assert_uint_eq(i->flags, AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER);
    i = amqp_method_info_get(AMQP_BASIC_REJECT);
    ck_assert_uint_eq(i->flags, AMQP_MF_FROM_CLIENT);
    i = amqp_method_info_get(AMQP_CONNECTION_BLOCKED);
    ck_assert_uint_eq(i->flags, AMQP_MF_FROM_SERVER);
    i = amqp_method_info_get(AMQP_CONNECTION_CLOSE);
    ck_assert_uint_eq(i->flags, AMQP_MF_SYNC | AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER);
    ck_assert_uint_eq(i->reply, AMQP_CONNECTION_CLOSE_OK);
    i = amqp_method_info_get(AMQP_CONNECTION_START);
    ck_assert_uint_eq(i->flags, AMQP_MF_SYNC | AMQP_MF_FROM_SERVER);
    i = amqp_method_info_get(AMQP_CONFIRM_SELECT);
    ck_assert_uint_eq(i->flags, AMQP_MF_SYNC | AMQP_MF_NO_WAIT | AMQP_MF_FROM_CLIENT);
    i = amqp_method_info_get(AMQP_BASIC_RECOVER_ASYNC);
    ck_assert_uint_eq(i->flags, AMQP_MF_FROM_CLIENT);
    i = amqp_method_info_get(AMQP_TX_COMMIT);
    ck_assert_uint_eq(i->reply, AMQP_TX_COMMIT_OK);
}
END_TEST

static void
assert_encodes_to(const amqp_method *m, const uint8_t *expect, size_t n)
{
    uint8_t buf[256];
    ck_assert_uint_eq(amqp_method_size(m), n);
    ck_assert_uint_eq(amqp_method_encode(m, buf), n);
    ck_assert_mem_eq(buf, expect, n);

    amqp_method d;
    ck_assert_int_eq(amqp_method_decode(expect, n, &d, NULL), AMQP_OK);
    assert_fields_eq(m, &d, amqp_method_info_get(m->id));
}

START_TEST(test_bytes_connection_tune)
{
    static const uint8_t frame[] = {
        1, 0, 0, 0, 0, 0, 12,
        0, 10, 0, 30, 0x07, 0xff, 0, 2, 0, 0, 0, 60,
        0xce,
    };
    amqp_method m = { .id = AMQP_CONNECTION_TUNE };
    m.a.connection_tune = (amqp_connection_tune){ 2047, 131072, 60 };
    assert_encodes_to(&m, frame + 7, 12);
    uint8_t out[sizeof frame];
    ck_assert_uint_eq(amqp_method_frame_encode(0, &m, out), sizeof frame);
    ck_assert_mem_eq(out, frame, sizeof frame);
}
END_TEST

START_TEST(test_bytes_basic_publish_bits)
{
    static const uint8_t mandatory[] = {
        0, 60, 0, 40, 0, 0, 2, 'e', 'x', 2, 'r', 'k', 0x01,
    };
    amqp_method m = { .id = AMQP_BASIC_PUBLISH };
    m.a.basic_publish.exchange = AMQP_BYTES_LIT("ex");
    m.a.basic_publish.routing_key = AMQP_BYTES_LIT("rk");
    m.a.basic_publish.mandatory = true;
    assert_encodes_to(&m, mandatory, sizeof mandatory);

    static const uint8_t immediate[] = {
        0, 60, 0, 40, 0, 0, 0, 1, 'q', 0x02,
    };
    memset(&m.a, 0, sizeof m.a);
    m.a.basic_publish.routing_key = AMQP_BYTES_LIT("q");
    m.a.basic_publish.immediate = true;
    assert_encodes_to(&m, immediate, sizeof immediate);
}
END_TEST

START_TEST(test_bytes_exchange_declare)
{
    /* durable (bit 1) and no-wait (bit 4) in one octet, then the
     * arguments table after the bit run ends. */
    static const uint8_t b[] = {
        0, 40, 0, 10, 0, 0,
        3, 'l', 'o', 'g', 5, 't', 'o', 'p', 'i', 'c',
        0x12,
        0, 0, 0, 0,
    };
    amqp_method m = { .id = AMQP_EXCHANGE_DECLARE };
    m.a.exchange_declare.exchange = AMQP_BYTES_LIT("log");
    m.a.exchange_declare.type = AMQP_BYTES_LIT("topic");
    m.a.exchange_declare.durable = true;
    m.a.exchange_declare.no_wait = true;
    assert_encodes_to(&m, b, sizeof b);
}
END_TEST

START_TEST(test_bytes_basic_deliver_and_open_ok)
{
    /* The bit between two non-bit fields takes an octet of its own. */
    static const uint8_t deliver[] = {
        0, 60, 0, 60, 1, 'c', 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x01, 0, 1, 'q',
    };
    amqp_method m = { .id = AMQP_BASIC_DELIVER };
    m.a.basic_deliver.consumer_tag = AMQP_BYTES_LIT("c");
    m.a.basic_deliver.delivery_tag = 258;
    m.a.basic_deliver.redelivered = true;
    m.a.basic_deliver.routing_key = AMQP_BYTES_LIT("q");
    assert_encodes_to(&m, deliver, sizeof deliver);

    static const uint8_t open_ok[] = { 0, 20, 0, 11, 0, 0, 0, 0 };
    memset(&m, 0, sizeof m);
    m.id = AMQP_CHANNEL_OPEN_OK;
    assert_encodes_to(&m, open_ok, sizeof open_ok);

    static const uint8_t conn_open[] = { 0, 10, 0, 40, 1, '/', 0, 0 };
    memset(&m, 0, sizeof m);
    m.id = AMQP_CONNECTION_OPEN;
    m.a.connection_open.virtual_host = AMQP_BYTES_LIT("/");
    assert_encodes_to(&m, conn_open, sizeof conn_open);

    static const uint8_t get_empty[] = { 0, 60, 0, 72, 0 };
    memset(&m, 0, sizeof m);
    m.id = AMQP_BASIC_GET_EMPTY;
    assert_encodes_to(&m, get_empty, sizeof get_empty);

    static const uint8_t close_ok[] = { 0, 10, 0, 51 };
    memset(&m, 0, sizeof m);
    m.id = AMQP_CONNECTION_CLOSE_OK;
    assert_encodes_to(&m, close_ok, sizeof close_ok);
}
END_TEST

START_TEST(test_decode_start_ok_from_bytes)
{
    /* What a client sends: client-properties {product: "t"}, PLAIN,
     * "\0guest\0guest", en_US. */
    static const uint8_t b[] = {
        0, 10, 0, 11,
        0, 0, 0, 14, 7, 'p', 'r', 'o', 'd', 'u', 'c', 't', 'S', 0, 0, 0, 1, 't',
        5, 'P', 'L', 'A', 'I', 'N',
        0, 0, 0, 12, 0, 'g', 'u', 'e', 's', 't', 0, 'g', 'u', 'e', 's', 't',
        5, 'e', 'n', '_', 'U', 'S',
    };
    amqp_pool pool = {0};
    amqp_method m;
    ck_assert_int_eq(amqp_method_decode(b, sizeof b, &m, &pool), AMQP_OK);
    ck_assert_uint_eq(m.id, AMQP_CONNECTION_START_OK);
    const amqp_connection_start_ok *a = &m.a.connection_start_ok;
    ck_assert(amqp_bytes_eq_cstr(amqp_table_get(&a->client_properties, "product")->v.bytes, "t"));
    ck_assert(amqp_bytes_eq_cstr(a->mechanism, "PLAIN"));
    ck_assert(amqp_bytes_eq((amqp_bytes){ "\0guest\0guest", 12 }, a->response));
    ck_assert(amqp_bytes_eq_cstr(a->locale, "en_US"));
    /* Strings borrow from the payload. */
    ck_assert_ptr_eq(a->mechanism.data, (const char *)b + 23);
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_unknown_method)
{
    static const uint32_t ids[] = {
        AMQP_METHOD_ID(10, 12), AMQP_METHOD_ID(10, 0), AMQP_METHOD_ID(99, 10),
        AMQP_METHOD_ID(0, 0), AMQP_METHOD_ID(60, 121), AMQP_METHOD_ID(40, 41),
        AMQP_METHOD_ID(0xffff, 0xffff), AMQP_METHOD_ID(80, 10),
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint8_t b[8] = {0};
        amqp_put32(b, ids[i]);
        amqp_method m;
        ck_assert_int_eq(amqp_method_decode(b, 4, &m, NULL), AMQP_ERR_UNKNOWN_METHOD);
        ck_assert_int_eq(amqp_method_decode(b, sizeof b, &m, NULL), AMQP_ERR_UNKNOWN_METHOD);
        ck_assert_ptr_null(amqp_method_info_get(ids[i]));
        ck_assert_str_eq(amqp_method_name(ids[i]), "unknown");
    }
}
END_TEST

START_TEST(test_truncated_every_length)
{
    amqp_pool pool = {0};
    for (size_t i = 0; i < NMETHODS; i++) {
        const amqp_method_info *info = amqp_method_info_get(all_methods[i].id);
        amqp_method m, d;
        fill_method(&m, info, 0xff);
        size_t size = amqp_method_size(&m);
        uint8_t *full = malloc(size + 3);
        amqp_method_encode(&m, full);
        for (size_t len = 0; len < size; len++) {
            /* Exact-size copies so ASan catches a read past the end. */
            uint8_t *b = malloc(len ? len : 1);
            memcpy(b, full, len);
            ck_assert_msg(amqp_method_decode(b, len, &d, &pool) == AMQP_ERR_MALFORMED,
                          "%s at %zu of %zu", info->name, len, size);
            free(b);
            amqp_pool_reset(&pool);
        }
        /* Trailing bytes after the last field are tolerated. */
        memcpy(full + size, "\xce\0\1", 3);
        ck_assert_int_eq(amqp_method_decode(full, size + 3, &d, &pool), AMQP_OK);
        assert_fields_eq(&m, &d, info);
        free(full);
        amqp_pool_reset(&pool);
    }
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_bad_table_in_method)
{
    static const uint8_t bad_type[] = {
        0, 50, 0, 10, 0, 0, 1, 'q', 0x02,
        0, 0, 0, 4, 1, 'x', 'Z', 0,
    };
    static const uint8_t table_overrun[] = {
        0, 50, 0, 10, 0, 0, 1, 'q', 0x02,
        0, 0, 0, 9, 1, 'x', 'I', 0, 0, 0, 1,
    };
    static const uint8_t str_overrun[] = { 0, 50, 0, 10, 0, 0, 200, 'q', 0x02 };
    amqp_pool pool = {0};
    amqp_method m;
    ck_assert_int_eq(amqp_method_decode(bad_type, sizeof bad_type, &m, &pool), AMQP_ERR_TABLE);
    ck_assert_int_eq(amqp_method_decode(table_overrun, sizeof table_overrun, &m, &pool),
                     AMQP_ERR_MALFORMED);
    ck_assert_int_eq(amqp_method_decode(str_overrun, sizeof str_overrun, &m, &pool),
                     AMQP_ERR_MALFORMED);
    amqp_pool_free(&pool);
}
END_TEST

/* The straight basic.deliver writer gives the table walker's bytes, for
 * empty and longest strings, both redelivered values, any tag. */
START_TEST(test_deliver_fast_path_matches_table)
{
    static char longest[255];
    memset(longest, 'k', sizeof longest);
    const amqp_bytes strs[] = { { NULL, 0 }, AMQP_BYTES_LIT("amq.ctag-x"),
                                { longest, sizeof longest } };
    const uint64_t tags[] = { 0, 1, 258, UINT64_MAX };
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t t = 0; t < 4; t++)
                for (int r = 0; r < 2; r++) {
                    amqp_method m = { .id = AMQP_BASIC_DELIVER };
                    m.a.basic_deliver = (amqp_basic_deliver){ strs[a], tags[t], r, strs[b],
                                                               strs[(a + b) % 3] };
                    uint8_t want[1200], got[1200];
                    size_t wn = amqp_method_frame_encode(7, &m, want);
                    ck_assert_uint_eq(AMQP_DELIVER_FRAME_SIZE(&m.a.basic_deliver), wn);
                    size_t gn = amqp_deliver_frame_encode(7, &m.a.basic_deliver, got);
                    ck_assert_uint_eq(gn, wn);
                    ck_assert_mem_eq(got, want, wn);
                }
}
END_TEST

Suite *
suite_method(void)
{
    Suite *s = suite_create("method");
    TCase *tc = tcase_create("method");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_every_method_round_trips);
    tcase_add_test(tc, test_no_unlisted_methods);
    tcase_add_test(tc, test_rows_consistent);
    tcase_add_test(tc, test_flags_spot_checks);
    tcase_add_test(tc, test_bytes_connection_tune);
    tcase_add_test(tc, test_bytes_basic_publish_bits);
    tcase_add_test(tc, test_bytes_exchange_declare);
    tcase_add_test(tc, test_bytes_basic_deliver_and_open_ok);
    tcase_add_test(tc, test_deliver_fast_path_matches_table);
    tcase_add_test(tc, test_decode_start_ok_from_bytes);
    tcase_add_test(tc, test_unknown_method);
    tcase_add_test(tc, test_truncated_every_length);
    tcase_add_test(tc, test_bad_table_in_method);
    suite_add_tcase(s, tc);
    return s;
}
