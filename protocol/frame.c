/* The frame layer: type, channel, size, payload, frame-end. */
#include "protocol/amqp.h"

const uint8_t AMQP_PROTOCOL_HEADER[8] = { 'A', 'M', 'Q', 'P', 0, 0, 9, 1 };

int
amqp_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max,
                 amqp_frame *out, size_t *consumed)
{
    if (len < AMQP_FRAME_HEADER_SIZE)
        return AMQP_NEED_MORE;

    uint8_t type = buf[0];
    if (type != AMQP_FRAME_METHOD && type != AMQP_FRAME_HEADER &&
        type != AMQP_FRAME_BODY && type != AMQP_FRAME_HEARTBEAT)
        return AMQP_ERR_FRAME_TYPE;

    /* Judged from the header alone, so a caller never buffers toward a
     * frame it will refuse anyway. */
    uint32_t size = amqp_get32(buf + 3);
    if (frame_max != 0 && (frame_max < AMQP_FRAME_OVERHEAD ||
                           size > frame_max - AMQP_FRAME_OVERHEAD))
        return AMQP_ERR_FRAME_SIZE;

    /* Need size payload octets plus frame-end after the header. */
    if (len - AMQP_FRAME_HEADER_SIZE <= size)
        return AMQP_NEED_MORE;
    if (buf[AMQP_FRAME_HEADER_SIZE + (size_t)size] != AMQP_FRAME_END)
        return AMQP_ERR_FRAME_END;

    out->type = type;
    out->channel = amqp_get16(buf + 1);
    out->size = size;
    out->payload = buf + AMQP_FRAME_HEADER_SIZE;
    *consumed = (size_t)size + AMQP_FRAME_OVERHEAD;
    return AMQP_OK;
}

void
amqp_frame_header_write(uint8_t *out, uint8_t type, uint16_t channel,
                        uint32_t size)
{
    out[0] = type;
    amqp_put16(out + 1, channel);
    amqp_put32(out + 3, size);
}
