/*
 * What the api_*.c files lend each other: AMQP field tables as JSON and
 * back, and the operations with their checks (api_objects.c: declare and
 * bind; api_access.c: users and vhosts), so the HTTP handlers and the
 * definitions import change the broker the same way, and the same way
 * AMQP and coney-ctl do: same checks, same texts, durable things
 * persisted. Private to plugins/management/.
 */
#ifndef CONEY_PLUGINS_MANAGEMENT_API_H
#define CONEY_PLUGINS_MANAGEMENT_API_H

#include "plugins/management/http.h"

/* A JSON string of arbitrary bytes: invalid UTF-8 is replaced by '?'. */
json_t *http_bytes_json(amqp_bytes b);
/* An encoded arguments table (with its length prefix; NULL/0 = empty)
 * as a JSON object; a table that does not decode reads as {}. */
json_t *http_args_json(const uint8_t *raw, uint32_t len);
/* A JSON object (NULL or null: empty) as an encoded arguments table in
 * pool, as RabbitMQ's management plugin types them: integers long,
 * reals double, strings longstr, objects tables, arrays arrays. Returns
 * 0 (*out NULL and *len 0 for an empty table), or -1 with why. */
int http_json_args(const json_t *obj, amqp_pool *pool, uint8_t **out, uint32_t *len,
                   char *why, size_t cap);

/* The operations. u is the acting user whose permissions are checked, or
 * NULL for the definitions import (its caller is an administrator and
 * RabbitMQ's import does not check per-vhost permissions). Each returns
 * an HTTP status: 201 created, 204 existed already (or done), else 400,
 * 403 or 404 with RabbitMQ's reason in why. */
int http_exchange_declare(vhost *vh, const auth_user *u, amqp_bytes name, const json_t *body,
                          char *why, size_t cap);
int http_queue_declare(vhost *vh, const auth_user *u, amqp_bytes name, const json_t *body,
                       char *why, size_t cap);
/* Binds destination dst (a queue if to_queue, else an exchange) to
 * exchange src with key and arguments (a JSON object or NULL). */
int http_binding_add(vhost *vh, const auth_user *u, amqp_bytes src, bool to_queue,
                     amqp_bytes dst, amqp_bytes key, const json_t *args, char *why, size_t cap);

/* RabbitMQ's error name for a status: "bad_request", "not_authorised",
 * "Object Not Found", "not_implemented". */
const char *http_status_error(int status);

/* "coney@<hostname>": the node field of queues and vhosts. */
const char *http_node_name(void);

/* ---- api_access.c ---------------------------------------------------------- */

/* Comma-separated tags ("a,b") as a JSON array of strings. */
json_t *http_tags_json(const char *csv);
/* Tags given as a string "a,b" or an array into out as "a,b"; false if
 * j is neither (NULL or null reads as ""). */
bool http_tags_csv(const json_t *j, char *out, size_t cap);
/* A user as /api/users and the definitions show it: name, password_hash,
 * hashing_algorithm, tags (an array, as RabbitMQ 3.9+), limits. */
json_t *http_user_json(const auth_user *u);
/* Creates or changes a user from RabbitMQ's body: password, or
 * password_hash with hashing_algorithm; tags. 201, 204 or 400 with why. */
int http_user_put(const char *name, const json_t *body, char *why, size_t cap);
/* Creates or changes a vhost from {"description", "tags"}; a vhost made
 * for creator (NULL: none) gives creator full permissions in it, as
 * RabbitMQ's handler does. 201, 204 or 400 with why. */
int http_vhost_put(const char *name, const json_t *body, const auth_user *creator, char *why,
                   size_t cap);

/* A policy as /api/policies and the definitions show it: vhost, name,
 * pattern, apply-to, definition, priority. */
json_t *http_policy_json(const vhost *vh, const policy *p);
/* Sets policy name (which: POLICY_USER or POLICY_OPERATOR) of vh from
 * RabbitMQ's body {"pattern", "definition", "priority", "apply-to"}:
 * 201, 204 or 400 with RabbitMQ's "Validation failed" reason in why. */
int http_policy_put(vhost *vh, int which, const char *name, const json_t *body, char *why,
                    size_t cap);

#endif
