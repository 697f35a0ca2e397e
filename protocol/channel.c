/* The channel class (20). open-ok's reserved-1 is a longstr (the old
 * channel-id), unlike the shortstr reserved fields elsewhere. */
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

static const amqp_field_desc open_args[] = {
    FIELD("reserved-1", SHORTSTR, channel_open, reserved_1),
};
static const amqp_field_desc open_ok_args[] = {
    FIELD("reserved-1", LONGSTR, channel_open_ok, reserved_1),
};
static const amqp_field_desc flow_args[] = {
    FIELD("active", BIT, channel_flow, active),
};
static const amqp_field_desc flow_ok_args[] = {
    FIELD("active", BIT, channel_flow_ok, active),
};
static const amqp_field_desc close_args[] = {
    FIELD("reply-code", SHORT, channel_close, reply_code),
    FIELD("reply-text", SHORTSTR, channel_close, reply_text),
    FIELD("class-id", SHORT, channel_close, class_id),
    FIELD("method-id", SHORT, channel_close, method_id),
};

const amqp_method_info amqp_channel_methods[] = {
    ROW(CHANNEL_OPEN, "channel.open", CLIENT | SYNC, AMQP_CHANNEL_OPEN_OK, open_args),
    ROW(CHANNEL_OPEN_OK, "channel.open-ok", SERVER, 0, open_ok_args),
    ROW(CHANNEL_FLOW, "channel.flow", BOTH | SYNC, AMQP_CHANNEL_FLOW_OK, flow_args),
    ROW(CHANNEL_FLOW_OK, "channel.flow-ok", BOTH, 0, flow_ok_args),
    ROW(CHANNEL_CLOSE, "channel.close", BOTH | SYNC, AMQP_CHANNEL_CLOSE_OK, close_args),
    ROW0(CHANNEL_CLOSE_OK, "channel.close-ok", BOTH, 0),
};
const size_t amqp_channel_methods_n =
    sizeof amqp_channel_methods / sizeof amqp_channel_methods[0];
