/*
 * The control socket: how coney-ctl administers a running broker, as
 * rabbitmqctl does RabbitMQ. A Unix socket, <data_dir>/coney.sock, mode
 * 0600, so only the broker's own user (and root) may use it. One request
 * per connection: the command and its arguments, each NUL-terminated,
 * then one more NUL. The answer is "ok\n" or "error: <why>\n", then rows
 * of tab-separated columns, then the socket closes. Requests run on the
 * loop thread like everything else, so they see and change the broker's
 * state without locks.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/control.h"
#include "broker/log.h"

#define MAX_REQUEST (64 * 1024)
#define MAX_ARGS 16

typedef struct ctl_client {
    ev_io rio, wio;
    int fd;
    buf in, out;
    struct ctl_client *next;
} ctl_client;

static ev_io listener;
static char path[sizeof ((struct sockaddr_un *)0)->sun_path];
static ctl_client *clients;

static void
client_free(ctl_client *c)
{
    ev_io_stop(B.loop, &c->rio);
    ev_io_stop(B.loop, &c->wio);
    close(c->fd);
    for (ctl_client **p = &clients; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

static void
out_str(ctl_client *c, const char *s)
{
    buf_append(&c->out, s, strlen(s));
}

static void
row(void *ctx, int n, const char *const *cols)
{
    ctl_client *c = ctx;
    for (int i = 0; i < n; i++) {
        if (i)
            out_str(c, "\t");
        out_str(c, cols[i]);
    }
    out_str(c, "\n");
}

/* ---- commands -------------------------------------------------------------------- */

typedef struct cmd {
    const char *name;
    int min, max;                  /* arguments after the name */
    int (*run)(ctl_client *c, int argc, char **argv, char *err, size_t cap);
} cmd;

static int
c_add_user(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c;
    return auth_user_add(argv[1], argc > 2 ? argv[2] : NULL, err, cap);
}

static int
c_delete_user(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_user_delete(argv[1], err, cap);
}

static int
c_change_password(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_user_set_password(argv[1], argv[2], err, cap);
}

static int
c_clear_password(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_user_set_password(argv[1], NULL, err, cap);
}

static int
c_set_password_hash(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c;
    return auth_user_set_hash(argv[1], argv[2], argc > 3 ? argv[3] : NULL, err, cap);
}

static int
c_set_user_tags(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c;
    char tags[1024] = "";
    for (int i = 2; i < argc; i++) {
        if (i > 2)
            strncat(tags, ",", sizeof tags - strlen(tags) - 1);
        strncat(tags, argv[i], sizeof tags - strlen(tags) - 1);
    }
    return auth_user_set_tags(argv[1], tags, err, cap);
}

static int
c_authenticate_user(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    if (auth_check(amqp_cstr(argv[1]), amqp_cstr(argv[2]), true) != AUTH_OK) {
        snprintf(err, cap, "user '%s' could not be authenticated", argv[1]);
        return -1;
    }
    return 0;
}

static int
c_list_users(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)argc; (void)argv; (void)err; (void)cap;
    auth_list_users(row, c);
    return 0;
}

static int
c_add_vhost(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_vhost_add(argv[1], err, cap);
}

static int
c_delete_vhost(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_vhost_delete(argv[1], err, cap);
}

static int
c_list_vhosts(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)argc; (void)argv; (void)err; (void)cap;
    auth_list_vhosts(row, c);
    return 0;
}

/* set_permissions VHOST USER CONF WRITE READ */
static int
c_set_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_set_permissions(argv[2], argv[1], argv[3], argv[4], argv[5], err, cap);
}

/* clear_permissions VHOST USER */
static int
c_clear_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_clear_permissions(argv[2], argv[1], err, cap);
}

/* list_permissions [VHOST] */
static int
c_list_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)err; (void)cap;
    auth_list_permissions(NULL, argc > 1 ? argv[1] : NULL, row, c);
    return 0;
}

static int
c_list_user_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)argc;
    if (!auth_user_find(amqp_cstr(argv[1]))) {
        snprintf(err, cap, "no such user: '%s'", argv[1]);
        return -1;
    }
    auth_list_permissions(argv[1], NULL, row, c);
    return 0;
}

/* set_topic_permissions VHOST USER EXCHANGE WRITE READ */
static int
c_set_topic_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    return auth_set_topic_permissions(argv[2], argv[1], argv[3], argv[4], argv[5], err, cap);
}

/* clear_topic_permissions VHOST USER [EXCHANGE] */
static int
c_clear_topic_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c;
    return auth_clear_topic_permissions(argv[2], argv[1], argc > 3 ? argv[3] : NULL, err, cap);
}

static int
c_list_topic_permissions(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)err; (void)cap;
    auth_list_topic_permissions(NULL, argc > 1 ? argv[1] : NULL, row, c);
    return 0;
}

static int
parse_ll(const char *s, long long *out, char *err, size_t cap)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        snprintf(err, cap, "'%s' is not an integer", s);
        return -1;
    }
    *out = v;
    return 0;
}

/* set_vhost_limit VHOST KEY VALUE (-1 clears) */
static int
c_set_vhost_limit(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    long long v;
    if (parse_ll(argv[3], &v, err, cap) != 0)
        return -1;
    return auth_vhost_set_limit(argv[1], argv[2], v, err, cap);
}

/* set_user_limit USER KEY VALUE (-1 clears) */
static int
c_set_user_limit(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)c; (void)argc;
    long long v;
    if (parse_ll(argv[3], &v, err, cap) != 0)
        return -1;
    return auth_user_set_limit(argv[1], argv[2], v, err, cap);
}

/* list_queues VHOST: name, messages ready, unacked, consumers */
static int
c_list_queues(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)argc;
    vhost *vh = broker_vhost(amqp_cstr(argv[1]));
    if (!vh) {
        snprintf(err, cap, "no such vhost: '%s'", argv[1]);
        return -1;
    }
    for (map_iter it = map_first(&vh->queues); it.e; map_next(&vh->queues, &it)) {
        queue *q = it.e->value;
        char name[300], ready[24], unacked[24], consumers[24];
        snprintf(name, sizeof name, "%.*s", (int)q->name.len, q->name.data);
        snprintf(ready, sizeof ready, "%u", queue_ready(q));
        snprintf(unacked, sizeof unacked, "%u", q->unacked);
        snprintf(consumers, sizeof consumers, "%u", q->nconsumers);
        const char *cols[4] = { name, ready, unacked, consumers };
        row(c, 4, cols);
    }
    return 0;
}

static int
c_status(ctl_client *c, int argc, char **argv, char *err, size_t cap)
{
    (void)argc; (void)argv; (void)err; (void)cap;
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *r1[2] = { "version", CONEY_VERSION }, *r2[2] = { "pid", pid },
               *r3[2] = { "data_dir", B.cfg.data_dir };
    row(c, 2, r1);
    row(c, 2, r2);
    row(c, 2, r3);
    return 0;
}

static const cmd commands[] = {
    { "add_user", 1, 2, c_add_user },
    { "delete_user", 1, 1, c_delete_user },
    { "change_password", 2, 2, c_change_password },
    { "clear_password", 1, 1, c_clear_password },
    { "set_password_hash", 2, 3, c_set_password_hash },
    { "set_user_tags", 1, MAX_ARGS - 2, c_set_user_tags },
    { "authenticate_user", 2, 2, c_authenticate_user },
    { "list_users", 0, 0, c_list_users },
    { "add_vhost", 1, 1, c_add_vhost },
    { "delete_vhost", 1, 1, c_delete_vhost },
    { "list_vhosts", 0, 0, c_list_vhosts },
    { "set_permissions", 5, 5, c_set_permissions },
    { "clear_permissions", 2, 2, c_clear_permissions },
    { "list_permissions", 0, 1, c_list_permissions },
    { "list_user_permissions", 1, 1, c_list_user_permissions },
    { "set_topic_permissions", 5, 5, c_set_topic_permissions },
    { "clear_topic_permissions", 2, 3, c_clear_topic_permissions },
    { "list_topic_permissions", 0, 1, c_list_topic_permissions },
    { "set_vhost_limit", 3, 3, c_set_vhost_limit },
    { "set_user_limit", 3, 3, c_set_user_limit },
    { "list_queues", 1, 1, c_list_queues },
    { "status", 0, 0, c_status },
};

static void
execute(ctl_client *c, int argc, char **argv)
{
    char err[512] = "";
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const cmd *k = &commands[i];
        if (strcmp(k->name, argv[0]) != 0)
            continue;
        if (argc - 1 < k->min || argc - 1 > k->max) {
            snprintf(err, sizeof err, "%s takes %d to %d arguments", k->name, k->min, k->max);
            break;
        }
        buf rows = c->out;         /* rows go after the status line */
        c->out = (buf){ 0 };
        int rc = k->run(c, argc, argv, err, sizeof err);
        buf body = c->out;
        c->out = rows;
        if (rc == 0) {
            out_str(c, "ok\n");
            buf_append(&c->out, body.data + body.off, buf_used(&body));
            log_info("control: %s", k->name);
        }
        buf_free(&body);
        if (rc == 0)
            return;
        break;
    }
    if (!err[0])
        snprintf(err, sizeof err, "unknown command '%s'", argv[0]);
    out_str(c, "error: ");
    out_str(c, err);
    out_str(c, "\n");
}

/* ---- I/O ----------------------------------------------------------------------------- */

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    ctl_client *c = (ctl_client *)((char *)w - offsetof(ctl_client, wio));
    while (buf_used(&c->out)) {
        ssize_t n = write(c->fd, c->out.data + c->out.off, buf_used(&c->out));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            break;
        }
        buf_consume(&c->out, (size_t)n);
    }
    client_free(c);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    ctl_client *c = (ctl_client *)((char *)w - offsetof(ctl_client, rio));
    for (;;) {
        uint8_t *dst = buf_reserve(&c->in, 4096);
        ssize_t n = read(c->fd, dst, c->in.cap - c->in.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 || buf_used(&c->in) + (size_t)n > MAX_REQUEST) {
            client_free(c);
            return;
        }
        buf_commit(&c->in, (size_t)n);
        /* complete once it ends with an empty argument: "\0\0" */
        size_t len = buf_used(&c->in);
        const char *p = (const char *)c->in.data + c->in.off;
        if (len >= 2 && p[len - 1] == 0 && p[len - 2] == 0)
            break;
    }
    ev_io_stop(B.loop, &c->rio);
    char *argv[MAX_ARGS];
    int argc = 0;
    char *p = (char *)c->in.data + c->in.off, *end = p + buf_used(&c->in) - 1;
    while (p < end && argc < MAX_ARGS) {
        argv[argc++] = p;
        p += strlen(p) + 1;
    }
    if (argc == 0)
        out_str(c, "error: empty request\n");
    else if (p < end)
        out_str(c, "error: too many arguments\n");
    else
        execute(c, argc, argv);
    ev_io_start(B.loop, &c->wio);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    ctl_client *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->fd = fd;
    ev_io_init(&c->rio, read_cb, fd, EV_READ);
    ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
    ev_io_start(B.loop, &c->rio);
    c->next = clients;
    clients = c;
}

int
control_open(char *err, size_t cap)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = snprintf(path, sizeof path, "%s/coney.sock", B.cfg.data_dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, cap, "data directory path too long for the control socket");
        return -1;
    }
    memcpy(sa.sun_path, path, (size_t)n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, cap, "control socket: %s", strerror(errno));
        return -1;
    }
    /* a socket left by a broker that died; the store's lock already
     * proved no other broker uses this directory */
    unlink(path);
    mode_t old = umask(0077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || listen(fd, 16) < 0) {
        snprintf(err, cap, "control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    ev_io_init(&listener, accept_cb, fd, EV_READ);
    ev_io_start(B.loop, &listener);
    return 0;
}

void
control_close(void)
{
    while (clients)
        client_free(clients);
    if (listener.fd > 0) {
        ev_io_stop(B.loop, &listener);
        close(listener.fd);
        listener.fd = -1;
        unlink(path);
    }
}
