/* The access class (30): deprecated in 0-9-1 but still sent by old
 * clients, which expect request-ok. */
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

static const amqp_field_desc request_args[] = {
    FIELD("realm", SHORTSTR, access_request, realm),
    FIELD("exclusive", BIT, access_request, exclusive),
    FIELD("passive", BIT, access_request, passive),
    FIELD("active", BIT, access_request, active),
    FIELD("write", BIT, access_request, write),
    FIELD("read", BIT, access_request, read),
};
static const amqp_field_desc request_ok_args[] = {
    FIELD("reserved-1", SHORT, access_request_ok, reserved_1),
};

const amqp_method_info amqp_access_methods[] = {
    ROW(ACCESS_REQUEST, "access.request", CLIENT | SYNC, AMQP_ACCESS_REQUEST_OK, request_args),
    ROW(ACCESS_REQUEST_OK, "access.request-ok", SERVER, 0, request_ok_args),
};
const size_t amqp_access_methods_n =
    sizeof amqp_access_methods / sizeof amqp_access_methods[0];
