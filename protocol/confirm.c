/* The confirm class (85): RabbitMQ's publisher confirms. */
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

static const amqp_field_desc select_args[] = {
    FIELD("nowait", BIT, confirm_select, no_wait),
};

const amqp_method_info amqp_confirm_methods[] = {
    ROW(CONFIRM_SELECT, "confirm.select", CLIENT | SYNC | NO_WAIT,
        AMQP_CONFIRM_SELECT_OK, select_args),
    ROW0(CONFIRM_SELECT_OK, "confirm.select-ok", SERVER, 0),
};
const size_t amqp_confirm_methods_n =
    sizeof amqp_confirm_methods / sizeof amqp_confirm_methods[0];
