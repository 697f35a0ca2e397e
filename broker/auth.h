/*
 * Who may log in and what they may do, with RabbitMQ's model so users and
 * permissions move over as they are: users with password hashes in
 * RabbitMQ's format and tags; per user and vhost three regular
 * expressions (configure, write, read) matched against resource names;
 * topic permissions per user, vhost and topic exchange matched against
 * routing keys; limits on connections, channels and queues. Every
 * protocol asks here (AMQP, MQTT), so a refusal reads the same in each.
 *
 * Everything is kept in memory and written to the store's meta database;
 * auth_recover reads it back at start, and a first start creates the
 * default vhost and user (default_user/default_pass, tag administrator,
 * all permissions on default_vhost), as RabbitMQ does.
 */
#ifndef CONEY_BROKER_AUTH_H
#define CONEY_BROKER_AUTH_H

#include <stdbool.h>

#include "broker/broker.h"
#include "protocol/amqp.h"

struct store_reader;

enum auth_result {
    AUTH_OK = 0,
    AUTH_BAD_CREDENTIALS,          /* unknown user, wrong or no password */
    AUTH_LOOPBACK_ONLY,            /* the user may connect only via localhost */
};

typedef struct auth_user auth_user;

/* Checks user and password (borrowed) for a peer; loopback says whether
 * the peer's address is a loopback one. Logs nothing: the caller knows the
 * connection's name. */
enum auth_result auth_check(amqp_bytes name, amqp_bytes pass, bool loopback);
/* A user named by other means than a password (SASL EXTERNAL: the client
 * certificate): AUTH_OK if the user exists and may connect from here,
 * AUTH_BAD_CREDENTIALS if there is no such user. */
enum auth_result auth_check_external(amqp_bytes name, bool loopback);
/* The user of that name, or NULL. Valid until the user is deleted. */
auth_user *auth_user_find(amqp_bytes name);
const char *auth_user_name(const auth_user *u);
/* Comma-separated tags ("administrator,monitoring"), "" for none. */
const char *auth_user_tags(const auth_user *u);
/* The password hash as RabbitMQ exports it: base64 of salt and digest
 * into b64 (cap >= 100) and the algorithm's name
 * ("rabbit_password_hashing_sha256"); "" for a user without password. */
void auth_user_hash(const auth_user *u, char *b64, size_t cap, const char **algorithm);
/* A user limit: "max-connections" or "max-channels"; -1 = none. */
int64_t auth_user_limit(const auth_user *u, const char *key);
/* Calls fn for every user. */
void auth_each_user(void (*fn)(void *ctx, const auth_user *u), void *ctx);

/* ---- login throttling ---------------------------------------------------------- */

/* Seconds to hold back the answer to a failed login from this peer
 * address ("host" of "host:port"), and notes the failure: doubling from
 * 0.1 s per recent failure up to 5 s, so passwords cannot be tried fast. */
double auth_failed_login(const char *peer);

/* ---- permissions ---------------------------------------------------------------- */

enum auth_perm { AUTH_CONFIGURE = 0, AUTH_WRITE = 1, AUTH_READ = 2 };

/* Grows whenever a permission changes, so callers may cache answers. */
uint64_t auth_generation(void);
/* True if u has topic permissions on exchange ex of vh (else every
 * routing key is allowed there). */
bool auth_topic_restricted(const auth_user *u, const vhost *vh, amqp_bytes ex);

/* May u reach vh at all (a permission entry exists)? */
bool auth_vhost_access(const auth_user *u, const vhost *vh);
/* May u do kind of thing to the resource called name (a queue, or an
 * exchange: "" is checked as "amq.default") in vh? */
bool auth_permitted(const auth_user *u, const vhost *vh, enum auth_perm kind, amqp_bytes name);
/* Topic permissions: may u publish (AUTH_WRITE) or bind/subscribe
 * (AUTH_READ) with routing key key on topic exchange ex? True when no
 * topic permission is set for that exchange. client_id expands
 * {client_id} (MQTT; NULL for AMQP). */
bool auth_topic_permitted(const auth_user *u, const vhost *vh, amqp_bytes ex, enum auth_perm kind,
                          amqp_bytes key, const char *client_id);
/* The text of RabbitMQ's refusal, e.g. "access to queue 'q' in vhost '/'
 * refused for user 'bob'", into out. */
void auth_refusal(char *out, size_t cap, const char *what, amqp_bytes name, const vhost *vh,
                  const auth_user *u);

/* ---- limits ------------------------------------------------------------------------ */

/* Admits one more connection of u to vh: 0, or -1 with RabbitMQ's
 * refusal text in why (vhost or user connection limit). */
int auth_connection_open(auth_user *u, vhost *vh, char *why, size_t cap);
void auth_connection_close(auth_user *u, vhost *vh);
/* One more channel for u: 0, or -1 with why (user channel limit). */
int auth_channel_open(auth_user *u, char *why, size_t cap);
void auth_channel_close(auth_user *u);

/* ---- management (coney-ctl; the HTTP API later) ------------------------------------ */

/* Each returns 0, or -1 with a message in err. Changes are written to
 * the store at once. */
int auth_user_add(const char *name, const char *pass, char *err, size_t cap);
int auth_user_delete(const char *name, char *err, size_t cap);
/* pass NULL clears the password (the user cannot log in with PLAIN). */
int auth_user_set_password(const char *name, const char *pass, char *err, size_t cap);
/* A RabbitMQ password_hash (base64 of salt + digest) and its algorithm
 * name ("rabbit_password_hashing_sha256", "..._sha512", "..._md5"). */
int auth_user_set_hash(const char *name, const char *b64, const char *algorithm,
                       char *err, size_t cap);
int auth_user_set_tags(const char *name, const char *tags, char *err, size_t cap);
int auth_user_set_limit(const char *name, const char *key, long long value, char *err, size_t cap);
int auth_vhost_add(const char *name, char *err, size_t cap);
int auth_vhost_delete(const char *name, char *err, size_t cap);
int auth_vhost_set_limit(const char *name, const char *key, long long value, char *err, size_t cap);
/* A vhost's description and tags (comma-separated, as user tags); NULL
 * keeps the current one. */
int auth_vhost_set_metadata(const char *name, const char *description, const char *tags,
                            char *err, size_t cap);
int auth_set_permissions(const char *user, const char *vhost, const char *conf,
                         const char *write, const char *read, char *err, size_t cap);
int auth_clear_permissions(const char *user, const char *vhost, char *err, size_t cap);
int auth_set_topic_permissions(const char *user, const char *vhost, const char *exchange,
                               const char *write, const char *read, char *err, size_t cap);
int auth_clear_topic_permissions(const char *user, const char *vhost, const char *exchange,
                                 char *err, size_t cap);

/* Listing: fn is called once per row with NUL-terminated columns. */
typedef void (*auth_row_fn)(void *ctx, int ncols, const char *const *cols);
void auth_list_users(auth_row_fn fn, void *ctx);
void auth_list_vhosts(auth_row_fn fn, void *ctx);
/* user or vhost NULL: all. */
void auth_list_permissions(const char *user, const char *vhost, auth_row_fn fn, void *ctx);
void auth_list_topic_permissions(const char *user, const char *vhost, auth_row_fn fn, void *ctx);

/* Reads users, vhosts and permissions from the store (creating the
 * defaults on a first start); 0 or -1 with err. */
int auth_recover(struct store_reader *r, char *err, size_t cap);
void auth_free(void);

#endif
