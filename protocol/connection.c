/* The connection class (10): negotiation, tuning, vhost open, close, and
 * RabbitMQ's blocked/unblocked and update-secret extensions. */
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

static const amqp_field_desc start_args[] = {
    FIELD("version-major", OCTET, connection_start, version_major),
    FIELD("version-minor", OCTET, connection_start, version_minor),
    FIELD("server-properties", TABLE, connection_start, server_properties),
    FIELD("mechanisms", LONGSTR, connection_start, mechanisms),
    FIELD("locales", LONGSTR, connection_start, locales),
};
static const amqp_field_desc start_ok_args[] = {
    FIELD("client-properties", TABLE, connection_start_ok, client_properties),
    FIELD("mechanism", SHORTSTR, connection_start_ok, mechanism),
    FIELD("response", LONGSTR, connection_start_ok, response),
    FIELD("locale", SHORTSTR, connection_start_ok, locale),
};
static const amqp_field_desc secure_args[] = {
    FIELD("challenge", LONGSTR, connection_secure, challenge),
};
static const amqp_field_desc secure_ok_args[] = {
    FIELD("response", LONGSTR, connection_secure_ok, response),
};
static const amqp_field_desc tune_args[] = {
    FIELD("channel-max", SHORT, connection_tune, channel_max),
    FIELD("frame-max", LONG, connection_tune, frame_max),
    FIELD("heartbeat", SHORT, connection_tune, heartbeat),
};
static const amqp_field_desc tune_ok_args[] = {
    FIELD("channel-max", SHORT, connection_tune_ok, channel_max),
    FIELD("frame-max", LONG, connection_tune_ok, frame_max),
    FIELD("heartbeat", SHORT, connection_tune_ok, heartbeat),
};
static const amqp_field_desc open_args[] = {
    FIELD("virtual-host", SHORTSTR, connection_open, virtual_host),
    FIELD("reserved-1", SHORTSTR, connection_open, reserved_1),
    FIELD("reserved-2", BIT, connection_open, reserved_2),
};
static const amqp_field_desc open_ok_args[] = {
    FIELD("reserved-1", SHORTSTR, connection_open_ok, reserved_1),
};
static const amqp_field_desc close_args[] = {
    FIELD("reply-code", SHORT, connection_close, reply_code),
    FIELD("reply-text", SHORTSTR, connection_close, reply_text),
    FIELD("class-id", SHORT, connection_close, class_id),
    FIELD("method-id", SHORT, connection_close, method_id),
};
static const amqp_field_desc blocked_args[] = {
    FIELD("reason", SHORTSTR, connection_blocked, reason),
};
static const amqp_field_desc update_secret_args[] = {
    FIELD("new-secret", LONGSTR, connection_update_secret, new_secret),
    FIELD("reason", SHORTSTR, connection_update_secret, reason),
};

const amqp_method_info amqp_connection_methods[] = {
    ROW(CONNECTION_START, "connection.start", SERVER | SYNC, AMQP_CONNECTION_START_OK, start_args),
    ROW(CONNECTION_START_OK, "connection.start-ok", CLIENT, 0, start_ok_args),
    ROW(CONNECTION_SECURE, "connection.secure", SERVER | SYNC, AMQP_CONNECTION_SECURE_OK, secure_args),
    ROW(CONNECTION_SECURE_OK, "connection.secure-ok", CLIENT, 0, secure_ok_args),
    ROW(CONNECTION_TUNE, "connection.tune", SERVER | SYNC, AMQP_CONNECTION_TUNE_OK, tune_args),
    ROW(CONNECTION_TUNE_OK, "connection.tune-ok", CLIENT, 0, tune_ok_args),
    ROW(CONNECTION_OPEN, "connection.open", CLIENT | SYNC, AMQP_CONNECTION_OPEN_OK, open_args),
    ROW(CONNECTION_OPEN_OK, "connection.open-ok", SERVER, 0, open_ok_args),
    ROW(CONNECTION_CLOSE, "connection.close", BOTH | SYNC, AMQP_CONNECTION_CLOSE_OK, close_args),
    ROW0(CONNECTION_CLOSE_OK, "connection.close-ok", BOTH, 0),
    ROW(CONNECTION_BLOCKED, "connection.blocked", SERVER, 0, blocked_args),
    ROW0(CONNECTION_UNBLOCKED, "connection.unblocked", SERVER, 0),
    ROW(CONNECTION_UPDATE_SECRET, "connection.update-secret", CLIENT | SYNC,
        AMQP_CONNECTION_UPDATE_SECRET_OK, update_secret_args),
    ROW0(CONNECTION_UPDATE_SECRET_OK, "connection.update-secret-ok", SERVER, 0),
};
const size_t amqp_connection_methods_n =
    sizeof amqp_connection_methods / sizeof amqp_connection_methods[0];
