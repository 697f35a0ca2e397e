/* Reply codes and the project's decoder statuses, and the one mapping from
 * the latter to the former. */
#include "protocol/amqp.h"

const char *
amqp_reply_name(int code)
{
    switch (code) {
    case AMQP_REPLY_SUCCESS: return "REPLY_SUCCESS";
    case AMQP_CONTENT_TOO_LARGE: return "CONTENT_TOO_LARGE";
    case AMQP_NO_ROUTE: return "NO_ROUTE";
    case AMQP_NO_CONSUMERS: return "NO_CONSUMERS";
    case AMQP_CONNECTION_FORCED: return "CONNECTION_FORCED";
    case AMQP_INVALID_PATH: return "INVALID_PATH";
    case AMQP_ACCESS_REFUSED: return "ACCESS_REFUSED";
    case AMQP_NOT_FOUND: return "NOT_FOUND";
    case AMQP_RESOURCE_LOCKED: return "RESOURCE_LOCKED";
    case AMQP_PRECONDITION_FAILED: return "PRECONDITION_FAILED";
    case AMQP_FRAME_ERROR: return "FRAME_ERROR";
    case AMQP_SYNTAX_ERROR: return "SYNTAX_ERROR";
    case AMQP_COMMAND_INVALID: return "COMMAND_INVALID";
    case AMQP_CHANNEL_ERROR: return "CHANNEL_ERROR";
    case AMQP_UNEXPECTED_FRAME: return "UNEXPECTED_FRAME";
    case AMQP_RESOURCE_ERROR: return "RESOURCE_ERROR";
    case AMQP_NOT_ALLOWED: return "NOT_ALLOWED";
    case AMQP_NOT_IMPLEMENTED: return "NOT_IMPLEMENTED";
    case AMQP_INTERNAL_ERROR: return "INTERNAL_ERROR";
    }
    return "UNKNOWN";
}

bool
amqp_reply_is_hard(int code)
{
    switch (code) {
    case AMQP_CONNECTION_FORCED:
    case AMQP_INVALID_PATH:
    case AMQP_FRAME_ERROR:
    case AMQP_SYNTAX_ERROR:
    case AMQP_COMMAND_INVALID:
    case AMQP_CHANNEL_ERROR:
    case AMQP_UNEXPECTED_FRAME:
    case AMQP_RESOURCE_ERROR:
    case AMQP_NOT_ALLOWED:
    case AMQP_NOT_IMPLEMENTED:
    case AMQP_INTERNAL_ERROR:
        return true;
    }
    return false;
}

const char *
amqp_strerror(int status)
{
    switch (status) {
    case AMQP_OK: return "ok";
    case AMQP_NEED_MORE: return "need more bytes";
    case AMQP_ERR_MALFORMED: return "malformed or truncated data";
    case AMQP_ERR_FRAME_END: return "frame-end octet is not 0xCE";
    case AMQP_ERR_FRAME_SIZE: return "frame larger than frame_max";
    case AMQP_ERR_FRAME_TYPE: return "unknown frame type";
    case AMQP_ERR_UNKNOWN_METHOD: return "unknown class or method";
    case AMQP_ERR_TABLE: return "bad field table";
    case AMQP_ERR_NOMEM: return "out of memory";
    }
    return "unknown status";
}

int
amqp_status_reply_code(int status)
{
    switch (status) {
    case AMQP_ERR_MALFORMED:
    case AMQP_ERR_FRAME_END:
    case AMQP_ERR_FRAME_SIZE:
    case AMQP_ERR_FRAME_TYPE:
        return AMQP_FRAME_ERROR;
    case AMQP_ERR_UNKNOWN_METHOD:
        return AMQP_NOT_IMPLEMENTED;
    case AMQP_ERR_TABLE:
        return AMQP_SYNTAX_ERROR;
    }
    return AMQP_INTERNAL_ERROR;
}
