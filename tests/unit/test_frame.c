/* The frame parser: complete and partial frames, the size check made from
 * the header alone, frame-end and frame-type errors; and reply codes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/amqp.h"
#include "suites.h"

/* A method frame on channel 1 carrying channel.open (20, 10) and its
 * shortstr reserved-1, followed by a heartbeat. */
static const uint8_t two_frames[] = {
    1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xce,
    8, 0, 0, 0, 0, 0, 0, 0xce,
};

START_TEST(test_complete_frame)
{
    amqp_frame f;
    size_t used = 0;
    ck_assert_int_eq(amqp_frame_parse(two_frames, sizeof two_frames, 131072, &f, &used), AMQP_OK);
    ck_assert_uint_eq(used, 13);
    ck_assert_uint_eq(f.type, AMQP_FRAME_METHOD);
    ck_assert_uint_eq(f.channel, 1);
    ck_assert_uint_eq(f.size, 5);
    ck_assert_ptr_eq(f.payload, two_frames + 7);

    ck_assert_int_eq(amqp_frame_parse(two_frames + used, sizeof two_frames - used, 131072,
                                      &f, &used), AMQP_OK);
    ck_assert_uint_eq(used, 8);
    ck_assert_uint_eq(f.type, AMQP_FRAME_HEARTBEAT);
    ck_assert_uint_eq(f.channel, 0);
    ck_assert_uint_eq(f.size, 0);
}
END_TEST

START_TEST(test_partial_frame)
{
    /* Every proper prefix of a frame asks for more and reads nothing past
     * its end (each prefix lives in an exact-size allocation). */
    for (size_t len = 0; len < 13; len++) {
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, two_frames, len);
        amqp_frame f;
        size_t used = 99;
        ck_assert_int_eq(amqp_frame_parse(b, len, 0, &f, &used), AMQP_NEED_MORE);
        ck_assert_uint_eq(used, 99);
        free(b);
    }
}
END_TEST

START_TEST(test_frame_max_from_header_alone)
{
    /* A 1 MiB body frame announced against frame_max 131072: refused once
     * the 7 header octets are in, before any payload. */
    uint8_t hdr[7];
    amqp_frame_header_write(hdr, AMQP_FRAME_BODY, 3, 1u << 20);
    amqp_frame f;
    size_t used;
    for (size_t len = 0; len < 7; len++)
        ck_assert_int_eq(amqp_frame_parse(hdr, len, 131072, &f, &used), AMQP_NEED_MORE);
    ck_assert_int_eq(amqp_frame_parse(hdr, 7, 131072, &f, &used), AMQP_ERR_FRAME_SIZE);

    /* frame_max counts the 8 octets of overhead: payload frame_max - 8
     * fits, one more does not. */
    amqp_frame_header_write(hdr, AMQP_FRAME_BODY, 3, 4096 - 8);
    ck_assert_int_eq(amqp_frame_parse(hdr, 7, 4096, &f, &used), AMQP_NEED_MORE);
    amqp_frame_header_write(hdr, AMQP_FRAME_BODY, 3, 4096 - 7);
    ck_assert_int_eq(amqp_frame_parse(hdr, 7, 4096, &f, &used), AMQP_ERR_FRAME_SIZE);

    /* The largest size field with no bound: need more, no overflow. */
    amqp_frame_header_write(hdr, AMQP_FRAME_BODY, 3, UINT32_MAX);
    ck_assert_int_eq(amqp_frame_parse(hdr, 7, 0, &f, &used), AMQP_NEED_MORE);
    ck_assert_int_eq(amqp_frame_parse(hdr, 7, UINT32_MAX, &f, &used), AMQP_ERR_FRAME_SIZE);
}
END_TEST

START_TEST(test_exact_frame_max)
{
    uint8_t *b = calloc(1, 4096);
    amqp_frame_header_write(b, AMQP_FRAME_BODY, 9, 4096 - 8);
    b[4095] = AMQP_FRAME_END;
    amqp_frame f;
    size_t used;
    ck_assert_int_eq(amqp_frame_parse(b, 4096, 4096, &f, &used), AMQP_OK);
    ck_assert_uint_eq(used, 4096);
    ck_assert_uint_eq(f.channel, 9);
    ck_assert_int_eq(amqp_frame_parse(b, 4095, 4096, &f, &used), AMQP_NEED_MORE);
    free(b);
}
END_TEST

START_TEST(test_wrong_frame_end)
{
    uint8_t b[sizeof two_frames];
    memcpy(b, two_frames, sizeof b);
    b[12] = 0xcf;
    amqp_frame f;
    size_t used;
    ck_assert_int_eq(amqp_frame_parse(b, sizeof b, 0, &f, &used), AMQP_ERR_FRAME_END);
    ck_assert_int_eq(amqp_frame_parse(b, 13, 0, &f, &used), AMQP_ERR_FRAME_END);
    /* A zero-size frame's end octet follows its header directly. */
    uint8_t hb[] = { 8, 0, 0, 0, 0, 0, 0, 0 };
    ck_assert_int_eq(amqp_frame_parse(hb, sizeof hb, 0, &f, &used), AMQP_ERR_FRAME_END);
}
END_TEST

START_TEST(test_unknown_type)
{
    static const uint8_t kinds[] = { 0, 4, 5, 7, 9, 'A', 0xff };
    for (size_t i = 0; i < sizeof kinds; i++) {
        uint8_t b[] = { kinds[i], 0, 0, 0, 0, 0, 0, 0xce };
        amqp_frame f;
        size_t used;
        ck_assert_int_eq(amqp_frame_parse(b, sizeof b, 0, &f, &used), AMQP_ERR_FRAME_TYPE);
    }
    /* A protocol header sent where a frame belongs is a bad type too. */
    amqp_frame f;
    size_t used;
    ck_assert_int_eq(amqp_frame_parse(AMQP_PROTOCOL_HEADER, 8, 0, &f, &used), AMQP_ERR_FRAME_TYPE);
}
END_TEST

START_TEST(test_heartbeat)
{
    uint8_t b[AMQP_FRAME_OVERHEAD];
    amqp_frame_header_write(b, AMQP_FRAME_HEARTBEAT, 0, 0);
    b[7] = AMQP_FRAME_END;
    static const uint8_t expect[] = { 8, 0, 0, 0, 0, 0, 0, 0xce };
    ck_assert_mem_eq(b, expect, sizeof expect);
    amqp_frame f;
    size_t used;
    ck_assert_int_eq(amqp_frame_parse(b, sizeof b, AMQP_FRAME_MIN_SIZE, &f, &used), AMQP_OK);
    ck_assert_uint_eq(f.type, AMQP_FRAME_HEARTBEAT);
    ck_assert_uint_eq(used, 8);
}
END_TEST

START_TEST(test_header_write)
{
    uint8_t b[7];
    amqp_frame_header_write(b, AMQP_FRAME_HEADER, 0x1234, 0x01020304);
    static const uint8_t expect[] = { 2, 0x12, 0x34, 1, 2, 3, 4 };
    ck_assert_mem_eq(b, expect, 7);
    ck_assert_mem_eq(AMQP_PROTOCOL_HEADER, "AMQP\0\0\x09\x01", 8);
}
END_TEST

START_TEST(test_reply_codes)
{
    ck_assert_str_eq(amqp_reply_name(404), "NOT_FOUND");
    ck_assert_str_eq(amqp_reply_name(406), "PRECONDITION_FAILED");
    ck_assert_str_eq(amqp_reply_name(312), "NO_ROUTE");
    ck_assert_str_eq(amqp_reply_name(530), "NOT_ALLOWED");
    ck_assert_str_eq(amqp_reply_name(999), "UNKNOWN");
    static const int hard[] = { 320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541 };
    static const int soft[] = { 200, 311, 312, 313, 403, 404, 405, 406, 0, 999 };
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++)
        ck_assert_msg(amqp_reply_is_hard(hard[i]), "%d", hard[i]);
    for (size_t i = 0; i < sizeof soft / sizeof soft[0]; i++)
        ck_assert_msg(!amqp_reply_is_hard(soft[i]), "%d", soft[i]);

    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_MALFORMED), 501);
    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_FRAME_END), 501);
    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_FRAME_SIZE), 501);
    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_FRAME_TYPE), 501);
    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_UNKNOWN_METHOD), 540);
    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_TABLE), 502);
    ck_assert_int_eq(amqp_status_reply_code(AMQP_ERR_NOMEM), 541);
    for (int st = AMQP_ERR_NOMEM; st <= AMQP_NEED_MORE; st++)
        ck_assert_str_ne(amqp_strerror(st), "unknown status");
    ck_assert_str_eq(amqp_strerror(-100), "unknown status");
}
END_TEST

Suite *
suite_frame(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, test_complete_frame);
    tcase_add_test(tc, test_partial_frame);
    tcase_add_test(tc, test_frame_max_from_header_alone);
    tcase_add_test(tc, test_exact_frame_max);
    tcase_add_test(tc, test_wrong_frame_end);
    tcase_add_test(tc, test_unknown_type);
    tcase_add_test(tc, test_heartbeat);
    tcase_add_test(tc, test_header_write);
    tcase_add_test(tc, test_reply_codes);
    suite_add_tcase(s, tc);
    return s;
}
