/* Every Check suite of the unit-test binary; main.c runs them all. */
#ifndef CONEY_TESTS_UNIT_SUITES_H
#define CONEY_TESTS_UNIT_SUITES_H

#include <check.h>

#define UNIT_SUITES(X) \
    X(frame)           /* test_frame.c:   frame parser, header checks */ \
    X(table)           /* test_table.c:   field tables of every type */ \
    X(method)          /* test_method.c:  every method round-trips */ \
    X(props)           /* test_props.c:   basic properties round-trip */ \
    X(topic)           /* test_topic.c:   topic key/pattern table, trie */ \
    X(headers)         /* test_headers.c: x-match all/any, typed equality */ \
    X(route)           /* test_route.c:   bind/unbind/match per type */ \
    X(store)           /* test_store.c:   LMDB records, refcounts, batches */ \
    X(mqtt)            /* test_mqtt.c:    MQTT codec, framing, topics */

#define UNIT_DECLARE(name) Suite *suite_##name(void);
UNIT_SUITES(UNIT_DECLARE)
#undef UNIT_DECLARE

#endif
