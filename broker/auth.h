/*
 * Who may log in: one check for every protocol (AMQP PLAIN/AMQPLAIN,
 * MQTT CONNECT), so a refusal reads the same in each and the user
 * database, when it comes, replaces one function.
 */
#ifndef CONEY_BROKER_AUTH_H
#define CONEY_BROKER_AUTH_H

#include <stdbool.h>

#include "protocol/amqp.h"

enum auth_result {
    AUTH_OK = 0,
    AUTH_BAD_CREDENTIALS,          /* unknown user or wrong password */
    AUTH_LOOPBACK_ONLY,            /* the user may connect only via localhost */
};

/* Checks user and password (borrowed) for a peer; loopback says whether
 * the peer's address is a loopback one. Logs nothing: the caller knows the
 * connection's name. */
enum auth_result auth_check(amqp_bytes user, amqp_bytes pass, bool loopback);
/* A user named by other means than a password (SASL EXTERNAL: the client
 * certificate): AUTH_OK if the user exists and may connect from here,
 * AUTH_BAD_CREDENTIALS if there is no such user. */
enum auth_result auth_check_external(amqp_bytes user, bool loopback);

#endif
