/* Logins: the configured default user, guest from loopback only unless
 * loopback_users says otherwise (RabbitMQ's defaults). */
#include "broker/auth.h"
#include "broker/broker.h"

enum auth_result
auth_check(amqp_bytes user, amqp_bytes pass, bool loopback)
{
    const config *cfg = &B.cfg;
    if (!amqp_bytes_eq_cstr(user, cfg->default_user) ||
        !amqp_bytes_eq_cstr(pass, cfg->default_pass))
        return AUTH_BAD_CREDENTIALS;
    if (cfg->default_user_loopback_only && !loopback)
        return AUTH_LOOPBACK_ONLY;
    return AUTH_OK;
}

enum auth_result
auth_check_external(amqp_bytes user, bool loopback)
{
    const config *cfg = &B.cfg;
    if (!amqp_bytes_eq_cstr(user, cfg->default_user))
        return AUTH_BAD_CREDENTIALS;
    if (cfg->default_user_loopback_only && !loopback)
        return AUTH_LOOPBACK_ONLY;
    return AUTH_OK;
}
