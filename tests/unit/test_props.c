/* The content header and the basic property list: every property, every
 * subset of them, hand-checked bytes, continuation flag words, truncation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/amqp.h"
#include "suites.h"

#define ALL_PROPS 0xfffc

static amqp_field hdr_fields[] = {
    { AMQP_BYTES_LIT("x-trace"), { .kind = 'S', .v.bytes = AMQP_BYTES_LIT("abc") } },
    { AMQP_BYTES_LIT("hops"), { .kind = 'I', .v.i = 3 } },
};

static amqp_basic_props
full_props(void)
{
    amqp_basic_props p = {
        .flags = ALL_PROPS,
        .content_type = AMQP_BYTES_LIT("application/json"),
        .content_encoding = AMQP_BYTES_LIT("gzip"),
        .headers = { 2, hdr_fields },
        .delivery_mode = 2,
        .priority = 9,
        .correlation_id = AMQP_BYTES_LIT("corr-1"),
        .reply_to = AMQP_BYTES_LIT("amq.rabbitmq.reply-to"),
        .expiration = AMQP_BYTES_LIT("60000"),
        .message_id = AMQP_BYTES_LIT("msg-42"),
        .timestamp = 1700000000,
        .type = AMQP_BYTES_LIT("order.created"),
        .user_id = AMQP_BYTES_LIT("guest"),
        .app_id = AMQP_BYTES_LIT("shop"),
        .cluster_id = AMQP_BYTES_LIT("c1"),
    };
    return p;
}

/* Compares the properties present in flags; absent ones must be zero in
 * the decoded copy. */
static void
assert_props_eq(const amqp_basic_props *want, const amqp_basic_props *got, uint16_t flags)
{
    static const amqp_bytes none = { NULL, 0 };
    ck_assert_uint_eq(got->flags, flags);
#define STR(F, field) \
    ck_assert_msg(amqp_bytes_eq((flags & AMQP_BASIC_##F) ? want->field : none, got->field), \
                  #field " flags %04x", flags)
    STR(CONTENT_TYPE, content_type);
    STR(CONTENT_ENCODING, content_encoding);
    STR(CORRELATION_ID, correlation_id);
    STR(REPLY_TO, reply_to);
    STR(EXPIRATION, expiration);
    STR(MESSAGE_ID, message_id);
    STR(TYPE, type);
    STR(USER_ID, user_id);
    STR(APP_ID, app_id);
    STR(CLUSTER_ID, cluster_id);
#undef STR
    amqp_table empty = {0};
    ck_assert(amqp_table_eq((flags & AMQP_BASIC_HEADERS) ? &want->headers : &empty, &got->headers));
    ck_assert_uint_eq(got->delivery_mode, (flags & AMQP_BASIC_DELIVERY_MODE) ? want->delivery_mode : 0);
    ck_assert_uint_eq(got->priority, (flags & AMQP_BASIC_PRIORITY) ? want->priority : 0);
    ck_assert_uint_eq(got->timestamp, (flags & AMQP_BASIC_TIMESTAMP) ? want->timestamp : 0);
}

START_TEST(test_all_props_round_trip)
{
    amqp_basic_props p = full_props(), d;
    size_t n = amqp_props_size(&p);
    uint8_t *buf = malloc(n);
    ck_assert_uint_eq(amqp_props_encode(&p, buf), n);
    amqp_pool pool = {0};
    ck_assert_int_eq(amqp_props_decode(p.flags, buf, n, &d, &pool), AMQP_OK);
    assert_props_eq(&p, &d, ALL_PROPS);
    /* Strings borrow from the property list: the first follows its
     * length octet at the start. */
    ck_assert_ptr_eq(d.content_type.data, (const char *)buf + 1);
    amqp_pool_free(&pool);
    free(buf);
}
END_TEST

START_TEST(test_every_flag_subset)
{
    amqp_basic_props full = full_props(), d;
    uint8_t buf[512];
    amqp_pool pool = {0};
    for (uint32_t flags = 0; flags <= ALL_PROPS; flags += 4) {
        amqp_basic_props p = full;
        p.flags = (uint16_t)flags;
        size_t n = amqp_props_size(&p);
        ck_assert_uint_le(n, sizeof buf);
        ck_assert_uint_eq(amqp_props_encode(&p, buf), n);
        ck_assert_int_eq(amqp_props_decode(p.flags, buf, n, &d, &pool), AMQP_OK);
        assert_props_eq(&full, &d, (uint16_t)flags);
        amqp_pool_reset(&pool);
    }
    amqp_pool_free(&pool);
}
END_TEST

/* The publish path's peek agrees with the full decoder for every flag
 * subset, and never reads past a truncated list. */
START_TEST(test_peek_mode_and_priority)
{
    amqp_basic_props full = full_props(), d;
    uint8_t buf[512];
    amqp_pool pool = {0};
    for (uint32_t flags = 0; flags <= ALL_PROPS; flags += 4) {
        amqp_basic_props p = full;
        p.flags = (uint16_t)flags;
        size_t n = amqp_props_encode(&p, buf);
        ck_assert_int_eq(amqp_props_decode(p.flags, buf, n, &d, &pool), AMQP_OK);
        uint8_t mode = 99, prio = 99;
        ck_assert_int_eq(amqp_props_peek(p.flags, buf, n, &mode, &prio), AMQP_OK);
        ck_assert_uint_eq(mode, d.delivery_mode);
        ck_assert_uint_eq(prio, d.priority);
        amqp_pool_reset(&pool);
    }
    /* truncated inside the headers or before priority: malformed */
    amqp_basic_props p = full;
    p.flags = AMQP_BASIC_CONTENT_TYPE | AMQP_BASIC_HEADERS | AMQP_BASIC_DELIVERY_MODE |
              AMQP_BASIC_PRIORITY;
    size_t n = amqp_props_encode(&p, buf);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t mode, prio;
        ck_assert_int_eq(amqp_props_peek(p.flags, buf, cut, &mode, &prio), AMQP_ERR_MALFORMED);
    }
    amqp_pool_free(&pool);
}
END_TEST

START_TEST(test_hand_bytes)
{
    /* content-type text/plain and delivery-mode 2 on a 5-byte body. */
    static const uint8_t frame[] = {
        2, 0, 1, 0, 0, 0, 26,
        0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x90, 0x00,
        10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', 2,
        0xce,
    };
    amqp_basic_props p = {
        .flags = AMQP_BASIC_CONTENT_TYPE | AMQP_BASIC_DELIVERY_MODE,
        .content_type = AMQP_BYTES_LIT("text/plain"),
        .delivery_mode = 2,
    };
    uint8_t props[64];
    size_t n = amqp_props_encode(&p, props);
    ck_assert_uint_eq(n, 12);
    ck_assert_mem_eq(props, frame + 21, 12);

    uint8_t out[sizeof frame];
    ck_assert_uint_eq(AMQP_HEADER_FRAME_SIZE(n), sizeof frame);
    ck_assert_uint_eq(amqp_header_frame_encode(1, 5, p.flags, props, (uint32_t)n, out), sizeof frame);
    ck_assert_mem_eq(out, frame, sizeof frame);

    amqp_frame f;
    size_t used;
    ck_assert_int_eq(amqp_frame_parse(frame, sizeof frame, 0, &f, &used), AMQP_OK);
    amqp_content_header h;
    ck_assert_int_eq(amqp_content_header_decode(f.payload, f.size, &h), AMQP_OK);
    ck_assert_uint_eq(h.class_id, 60);
    ck_assert_uint_eq(h.weight, 0);
    ck_assert_uint_eq(h.body_size, 5);
    ck_assert_uint_eq(h.flags, 0x9000);
    ck_assert_ptr_eq(h.props, frame + 21);
    ck_assert_uint_eq(h.props_len, 12);

    amqp_basic_props d;
    ck_assert_int_eq(amqp_props_decode(h.flags, h.props, h.props_len, &d, NULL), AMQP_OK);
    assert_props_eq(&p, &d, p.flags);
}
END_TEST

START_TEST(test_header_frame_no_props)
{
    uint8_t out[AMQP_HEADER_FRAME_SIZE(0)];
    ck_assert_uint_eq(amqp_header_frame_encode(2, 0x0102030405060708ull, 0, NULL, 0, out), 22);
    static const uint8_t expect[] = {
        2, 0, 2, 0, 0, 0, 14,
        0, 60, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0,
        0xce,
    };
    ck_assert_mem_eq(out, expect, sizeof expect);
}
END_TEST

START_TEST(test_continuation_flag_words)
{
    /* Bit 0 announces another flags word; two extra words are skipped. */
    static const uint8_t b[] = {
        0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0x10, 0x01,
        0x00, 0x01,
        0x00, 0x00,
        1,
    };
    amqp_content_header h;
    ck_assert_int_eq(amqp_content_header_decode(b, sizeof b, &h), AMQP_OK);
    ck_assert_uint_eq(h.body_size, 9);
    ck_assert_uint_eq(h.flags, 0x1001);
    ck_assert_ptr_eq(h.props, b + 18);
    ck_assert_uint_eq(h.props_len, 1);
    amqp_basic_props d;
    ck_assert_int_eq(amqp_props_decode(h.flags, h.props, h.props_len, &d, NULL), AMQP_OK);
    ck_assert_uint_eq(d.flags, AMQP_BASIC_DELIVERY_MODE);
    ck_assert_uint_eq(d.delivery_mode, 1);

    /* A promised flags word that is not there. */
    ck_assert_int_eq(amqp_content_header_decode(b, 15, &h), AMQP_ERR_MALFORMED);
    ck_assert_int_eq(amqp_content_header_decode(b, 17, &h), AMQP_ERR_MALFORMED);
    ck_assert_int_eq(amqp_content_header_decode(b, 18, &h), AMQP_OK);
    ck_assert_uint_eq(h.props_len, 0);
}
END_TEST

START_TEST(test_content_header_truncated)
{
    static const uint8_t b[] = { 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 };
    amqp_content_header h;
    ck_assert_int_eq(amqp_content_header_decode(b, sizeof b, &h), AMQP_OK);
    ck_assert_uint_eq(h.props_len, 0);
    for (size_t len = 0; len < sizeof b; len++) {
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, b, len);
        ck_assert_int_eq(amqp_content_header_decode(c, len, &h), AMQP_ERR_MALFORMED);
        free(c);
    }
}
END_TEST

START_TEST(test_props_truncated_every_length)
{
    amqp_basic_props p = full_props(), d;
    size_t n = amqp_props_size(&p);
    uint8_t *full = malloc(n);
    amqp_props_encode(&p, full);
    amqp_pool pool = {0};
    for (size_t len = 0; len < n; len++) {
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, full, len);
        ck_assert_msg(amqp_props_decode(p.flags, b, len, &d, &pool) == AMQP_ERR_MALFORMED,
                      "len %zu", len);
        free(b);
        amqp_pool_reset(&pool);
    }
    amqp_pool_free(&pool);
    free(full);
}
END_TEST

START_TEST(test_bad_headers_and_unknown_bits)
{
    /* headers with a bad type octet */
    static const uint8_t bad[] = { 0, 0, 0, 4, 1, 'h', '!', 0 };
    amqp_basic_props d;
    amqp_pool pool = {0};
    ck_assert_int_eq(amqp_props_decode(AMQP_BASIC_HEADERS, bad, sizeof bad, &d, &pool), AMQP_ERR_TABLE);

    /* The two low bits carry no property: ignored and dropped. */
    static const uint8_t prio[] = { 4 };
    ck_assert_int_eq(amqp_props_decode(AMQP_BASIC_PRIORITY | 0x0003, prio, 1, &d, &pool), AMQP_OK);
    ck_assert_uint_eq(d.flags, AMQP_BASIC_PRIORITY);
    ck_assert_uint_eq(d.priority, 4);
    ck_assert_uint_eq(amqp_props_size(&d), 1);
    amqp_pool_free(&pool);
}
END_TEST

Suite *
suite_props(void)
{
    Suite *s = suite_create("props");
    TCase *tc = tcase_create("props");
    tcase_add_test(tc, test_all_props_round_trip);
    tcase_add_test(tc, test_peek_mode_and_priority);
    tcase_add_test(tc, test_every_flag_subset);
    tcase_add_test(tc, test_hand_bytes);
    tcase_add_test(tc, test_header_frame_no_props);
    tcase_add_test(tc, test_continuation_flag_words);
    tcase_add_test(tc, test_content_header_truncated);
    tcase_add_test(tc, test_props_truncated_every_length);
    tcase_add_test(tc, test_bad_headers_and_unknown_bits);
    suite_add_tcase(s, tc);
    return s;
}
