/* The exchange class (40), with RabbitMQ's exchange-to-exchange bind and
 * unbind (whose -ok is method 51, not 41). */
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
    FIELD("reserved-1", SHORT, exchange_declare, reserved_1),
    FIELD("exchange", SHORTSTR, exchange_declare, exchange),
    FIELD("type", SHORTSTR, exchange_declare, type),
    FIELD("passive", BIT, exchange_declare, passive),
    FIELD("durable", BIT, exchange_declare, durable),
    FIELD("auto-delete", BIT, exchange_declare, auto_delete),
    FIELD("internal", BIT, exchange_declare, internal),
    FIELD("no-wait", BIT, exchange_declare, no_wait),
    FIELD("arguments", TABLE, exchange_declare, arguments),
};
static const amqp_field_desc delete_args[] = {
    FIELD("reserved-1", SHORT, exchange_delete, reserved_1),
    FIELD("exchange", SHORTSTR, exchange_delete, exchange),
    FIELD("if-unused", BIT, exchange_delete, if_unused),
    FIELD("no-wait", BIT, exchange_delete, no_wait),
};
static const amqp_field_desc bind_args[] = {
    FIELD("reserved-1", SHORT, exchange_bind, reserved_1),
    FIELD("destination", SHORTSTR, exchange_bind, destination),
    FIELD("source", SHORTSTR, exchange_bind, source),
    FIELD("routing-key", SHORTSTR, exchange_bind, routing_key),
    FIELD("no-wait", BIT, exchange_bind, no_wait),
    FIELD("arguments", TABLE, exchange_bind, arguments),
};
static const amqp_field_desc unbind_args[] = {
    FIELD("reserved-1", SHORT, exchange_unbind, reserved_1),
    FIELD("destination", SHORTSTR, exchange_unbind, destination),
    FIELD("source", SHORTSTR, exchange_unbind, source),
    FIELD("routing-key", SHORTSTR, exchange_unbind, routing_key),
    FIELD("no-wait", BIT, exchange_unbind, no_wait),
    FIELD("arguments", TABLE, exchange_unbind, arguments),
};

const amqp_method_info amqp_exchange_methods[] = {
    ROW(EXCHANGE_DECLARE, "exchange.declare", CLIENT | SYNC | NO_WAIT,
        AMQP_EXCHANGE_DECLARE_OK, declare_args),
    ROW0(EXCHANGE_DECLARE_OK, "exchange.declare-ok", SERVER, 0),
    ROW(EXCHANGE_DELETE, "exchange.delete", CLIENT | SYNC | NO_WAIT,
        AMQP_EXCHANGE_DELETE_OK, delete_args),
    ROW0(EXCHANGE_DELETE_OK, "exchange.delete-ok", SERVER, 0),
    ROW(EXCHANGE_BIND, "exchange.bind", CLIENT | SYNC | NO_WAIT,
        AMQP_EXCHANGE_BIND_OK, bind_args),
    ROW0(EXCHANGE_BIND_OK, "exchange.bind-ok", SERVER, 0),
    ROW(EXCHANGE_UNBIND, "exchange.unbind", CLIENT | SYNC | NO_WAIT,
        AMQP_EXCHANGE_UNBIND_OK, unbind_args),
    ROW0(EXCHANGE_UNBIND_OK, "exchange.unbind-ok", SERVER, 0),
};
const size_t amqp_exchange_methods_n =
    sizeof amqp_exchange_methods / sizeof amqp_exchange_methods[0];
