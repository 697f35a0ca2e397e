/* The queue class (50). unbind has no no-wait bit: it always replies. */
#include <stddef.h>

#include "protocol/amqp.h"

/* Offsets are relative to amqp_method.a, as amqp_field_desc says. */
#define OFF(m, f) ((uint16_t)(offsetof(amqp_method, a.m.f) - offsetof(amqp_method, a)))
#define FIELD(name, type, m, f) { name, AMQP_FT_##type, OFF(m, f) }
#define ROW(NAME, wire, flags, reply, fields) \
    { AMQP_##NAME, wire, flags, reply, (uint8_t)(sizeof fields / sizeof fields[0]), fields }
#define ROW0(NAME, wire, flags, reply) { AMQP_##NAME, wire, flags, reply, 0, NULL }
#define CLIENT AMQP_MF_FROM_CLIENT
#define SERVER AMQP_MF_FROM_SERVER
#define BOTH (AMQP_MF_FROM_CLIENT | AMQP_MF_FROM_SERVER)
#define SYNC AMQP_MF_SYNC
#define NO_WAIT AMQP_MF_NO_WAIT
#define CONTENT AMQP_MF_CONTENT

static const amqp_field_desc declare_args[] = {
    FIELD("reserved-1", SHORT, queue_declare, reserved_1),
    FIELD("queue", SHORTSTR, queue_declare, queue),
    FIELD("passive", BIT, queue_declare, passive),
    FIELD("durable", BIT, queue_declare, durable),
    FIELD("exclusive", BIT, queue_declare, exclusive),
    FIELD("auto-delete", BIT, queue_declare, auto_delete),
    FIELD("no-wait", BIT, queue_declare, no_wait),
    FIELD("arguments", TABLE, queue_declare, arguments),
};
static const amqp_field_desc declare_ok_args[] = {
    FIELD("queue", SHORTSTR, queue_declare_ok, queue),
    FIELD("message-count", LONG, queue_declare_ok, message_count),
    FIELD("consumer-count", LONG, queue_declare_ok, consumer_count),
};
static const amqp_field_desc bind_args[] = {
    FIELD("reserved-1", SHORT, queue_bind, reserved_1),
    FIELD("queue", SHORTSTR, queue_bind, queue),
    FIELD("exchange", SHORTSTR, queue_bind, exchange),
    FIELD("routing-key", SHORTSTR, queue_bind, routing_key),
    FIELD("no-wait", BIT, queue_bind, no_wait),
    FIELD("arguments", TABLE, queue_bind, arguments),
};
static const amqp_field_desc purge_args[] = {
    FIELD("reserved-1", SHORT, queue_purge, reserved_1),
    FIELD("queue", SHORTSTR, queue_purge, queue),
    FIELD("no-wait", BIT, queue_purge, no_wait),
};
static const amqp_field_desc purge_ok_args[] = {
    FIELD("message-count", LONG, queue_purge_ok, message_count),
};
static const amqp_field_desc delete_args[] = {
    FIELD("reserved-1", SHORT, queue_delete, reserved_1),
    FIELD("queue", SHORTSTR, queue_delete, queue),
    FIELD("if-unused", BIT, queue_delete, if_unused),
    FIELD("if-empty", BIT, queue_delete, if_empty),
    FIELD("no-wait", BIT, queue_delete, no_wait),
};
static const amqp_field_desc delete_ok_args[] = {
    FIELD("message-count", LONG, queue_delete_ok, message_count),
};
static const amqp_field_desc unbind_args[] = {
    FIELD("reserved-1", SHORT, queue_unbind, reserved_1),
    FIELD("queue", SHORTSTR, queue_unbind, queue),
    FIELD("exchange", SHORTSTR, queue_unbind, exchange),
    FIELD("routing-key", SHORTSTR, queue_unbind, routing_key),
    FIELD("arguments", TABLE, queue_unbind, arguments),
};

const amqp_method_info amqp_queue_methods[] = {
    ROW(QUEUE_DECLARE, "queue.declare", CLIENT | SYNC | NO_WAIT,
        AMQP_QUEUE_DECLARE_OK, declare_args),
    ROW(QUEUE_DECLARE_OK, "queue.declare-ok", SERVER, 0, declare_ok_args),
    ROW(QUEUE_BIND, "queue.bind", CLIENT | SYNC | NO_WAIT, AMQP_QUEUE_BIND_OK, bind_args),
    ROW0(QUEUE_BIND_OK, "queue.bind-ok", SERVER, 0),
    ROW(QUEUE_PURGE, "queue.purge", CLIENT | SYNC | NO_WAIT, AMQP_QUEUE_PURGE_OK, purge_args),
    ROW(QUEUE_PURGE_OK, "queue.purge-ok", SERVER, 0, purge_ok_args),
    ROW(QUEUE_DELETE, "queue.delete", CLIENT | SYNC | NO_WAIT, AMQP_QUEUE_DELETE_OK, delete_args),
    ROW(QUEUE_DELETE_OK, "queue.delete-ok", SERVER, 0, delete_ok_args),
    ROW(QUEUE_UNBIND, "queue.unbind", CLIENT | SYNC, AMQP_QUEUE_UNBIND_OK, unbind_args),
    ROW0(QUEUE_UNBIND_OK, "queue.unbind-ok", SERVER, 0),
};
const size_t amqp_queue_methods_n =
    sizeof amqp_queue_methods / sizeof amqp_queue_methods[0];
