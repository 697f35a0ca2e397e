/* The tx class (90): standard transactions; no method has arguments. */
#include "protocol/amqp.h"

#define ROW0(NAME, wire, flags, reply) { AMQP_##NAME, wire, flags, reply, 0, NULL }
#define CLIENT AMQP_MF_FROM_CLIENT
#define SERVER AMQP_MF_FROM_SERVER
#define SYNC AMQP_MF_SYNC

const amqp_method_info amqp_tx_methods[] = {
    ROW0(TX_SELECT, "tx.select", CLIENT | SYNC, AMQP_TX_SELECT_OK),
    ROW0(TX_SELECT_OK, "tx.select-ok", SERVER, 0),
    ROW0(TX_COMMIT, "tx.commit", CLIENT | SYNC, AMQP_TX_COMMIT_OK),
    ROW0(TX_COMMIT_OK, "tx.commit-ok", SERVER, 0),
    ROW0(TX_ROLLBACK, "tx.rollback", CLIENT | SYNC, AMQP_TX_ROLLBACK_OK),
    ROW0(TX_ROLLBACK_OK, "tx.rollback-ok", SERVER, 0),
};
const size_t amqp_tx_methods_n =
    sizeof amqp_tx_methods / sizeof amqp_tx_methods[0];
