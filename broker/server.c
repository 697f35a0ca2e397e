/*
 * The process: listeners, signals and the loop. SIGINT/SIGTERM close every
 * connection with 320 CONNECTION_FORCED, give clients a moment to answer,
 * then stop the loop so main can exit 0. SIGHUP reopens the log file and
 * reloads the TLS certificates (broker/tls.h); SIGUSR1 rotates the log
 * file (broker/log.h). A listener is TCP or TLS: it wraps each
 * accepted socket in the stream its kind says, so the protocols above
 * take a stream and never know which.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/conn.h"
#include "broker/log.h"
#include "broker/persist.h"
#include "broker/plugin.h"
#include "broker/server.h"
#include "broker/stats.h"
#include "broker/tls.h"

broker B;

static ev_io listener_watcher, tls_listener_watcher;

static const plugin *const plugins[] = { &mqtt_plugin, &management_plugin };
#define NPLUGINS (sizeof plugins / sizeof plugins[0])

typedef struct each_ctx {
    void (*fn)(void *ctx, const plugin *p, const plugin_conn *c);
    void *ctx;
    const plugin *p;
} each_ctx;

static void
each_one(void *arg, const plugin_conn *c)
{
    each_ctx *e = arg;
    e->fn(e->ctx, e->p, c);
}

void
server_each_plugin_connection(void (*fn)(void *ctx, const plugin *p, const plugin_conn *c),
                              void *ctx)
{
    for (size_t i = 0; i < NPLUGINS; i++) {
        if (!plugins[i]->each_connection)
            continue;
        each_ctx e = { fn, ctx, plugins[i] };
        plugins[i]->each_connection(each_one, &e);
    }
}
static ev_signal sigint_watcher, sigterm_watcher, sighup_watcher, sigusr1_watcher;
static ev_timer stop_timer;
static ev_timer disk_timer;

/* The memory alarm, as RabbitMQ's: resident memory above
 * vm_memory_high_watermark.absolute, else the relative share of the
 * machine's memory. */
static bool
memory_check(void)
{
    long page = sysconf(_SC_PAGESIZE), phys = sysconf(_SC_PHYS_PAGES);
    uint64_t limit = B.cfg.vm_memory_high_watermark_absolute;
    if (!limit && phys > 0 && page > 0)
        limit = (uint64_t)((double)phys * (double)page * B.cfg.vm_memory_high_watermark);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return B.mem_alarm;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    if (n != 2 || !limit)
        return B.mem_alarm;
    uint64_t used = rss * (uint64_t)page;
    bool high = used > limit;
    if (high != B.mem_alarm)
        log_warning(high ? "memory resource limit alarm set: %llu bytes used, limit %llu; "
                           "publishers are blocked"
                         : "memory resource limit alarm cleared: %llu bytes used, limit %llu",
                    (unsigned long long)used, (unsigned long long)limit);
    return high;
}

static void
disk_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    bool low = persist_disk_check(), high = memory_check();
    if (low != B.disk_alarm || high != B.mem_alarm) {
        B.disk_alarm = low;
        B.mem_alarm = high;
        conn_alarm_changed();
    }
}

static bool
addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static void
format_peer(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, cap, "%s:%d", host, port);
}

typedef void accept_fn(const stream *s, const char *peer, bool loopback);

/* What a listener's watcher carries (w->data, owned by the listener). */
typedef struct listener {
    accept_fn *on_accept;
    enum stream_kind kind;
    ev_io *w;                      /* the watcher that carries us */
    ev_timer resume;               /* restarts w after a pause for descriptors */
    unsigned long paused;          /* pauses since accept last succeeded */
} listener;

/* Out of file descriptors, accept(2) fails and the listening socket stays
 * readable: a level-triggered watcher would call us again at once, for as
 * long as the backlog holds a connection, and spin. So the listener stops
 * for ACCEPT_PAUSE and tries again; the connections wait in the kernel's
 * backlog meanwhile. One line says so when it starts, one when it ends. */
#define ACCEPT_PAUSE 0.25

static void
resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    listener *l = (listener *)((char *)t - offsetof(listener, resume));
    ev_io_start(loop, l->w);
}

static void
accept_pause(listener *l, int err)
{
    if (l->paused++ == 0)
        log_warning("accept on fd %d: %s; not accepting for %.2f s at a time until "
                    "descriptors are free (open connections are served)", l->w->fd,
                    strerror(err), ACCEPT_PAUSE);
    ev_io_stop(B.loop, l->w);
    ev_timer_set(&l->resume, ACCEPT_PAUSE, 0.0);
    ev_timer_start(B.loop, &l->resume);
}

/* Finishes an accept: the socket becomes a stream of the listener's kind
 * and goes to its protocol. counted is the peer slot stream_peer_enter
 * gave it (NULL: not counted). */
static void
admit(listener *l, int fd, const struct sockaddr_storage *ss, struct stream_peer *counted)
{
    char peer[64];
    format_peer(ss, peer, sizeof peer);
    stream s;
    if (l->kind == STREAM_TLS) {
        if (stream_tls(&s, fd) != 0) {
            log_warning("cannot start TLS for %s: out of memory", peer);
            s.peer = counted;
            stream_peer_release(&s);
            close(fd);
            return;
        }
    } else {
        stream_tcp(&s, fd);
    }
    s.peer = counted;
    l->on_accept(&s, peer, addr_is_loopback(ss));
}

/* ---- connections waiting for their address's turn --------------------------
 * coney.handshake_max_per_ip: while one address has that many connections
 * that have not logged in, its new ones wait, accepted but not read (their
 * first bytes stay in the kernel), and are let in, oldest first, as the
 * others log in or leave: a client pool that opens a thousand connections
 * at once is served, only more slowly, while a flood of connects or of
 * sockets that never speak cannot take every descriptor nor hold up other
 * addresses. A connection that waits HELD_WAIT, the handshake's own
 * deadline, is closed; so is one that would make more than HELD_MAX wait
 * in all. Either is logged at most once a second. */
#define HELD_MAX 4096
#define HELD_WAIT 10.0
#define HELD_POLL 0.005

typedef struct held {
    struct held *next;
    listener *l;
    int fd;
    ev_tstamp since;
    struct sockaddr_storage ss;
} held;

static held *held_head, **held_tail = &held_head;
static uint32_t nheld;
static ev_timer held_timer;

static void
refuse_flood(int fd, const struct sockaddr_storage *ss, const char *why)
{
    static ev_tstamp last;
    static unsigned long refused;
    refused++;
    ev_tstamp now = ev_now(B.loop);
    if (now - last >= 1.0) {
        char peer[64];
        format_peer(ss, peer, sizeof peer);
        log_warning("closed connection from %s: %s (coney.handshake_max_per_ip is %u); "
                    "%lu closed so since the last warning",
                    peer, why, B.cfg.handshake_max_per_ip, refused);
        last = now;
        refused = 0;
    }
    close(fd);                     /* after the line: whoever sees it closed can read why */
}

static void
held_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w; (void)revents;
    ev_tstamp now = ev_now(loop);
    held **pp = &held_head;
    while (*pp) {
        held *h = *pp;
        bool full;
        struct stream_peer *counted =
            stream_peer_enter(&h->ss, B.cfg.handshake_max_per_ip, &full);
        if (full && now - h->since < HELD_WAIT) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        nheld--;
        if (full) {
            char why[96];
            snprintf(why, sizeof why, "waited %.0f s for its address's earlier connections "
                     "to log in", HELD_WAIT);
            refuse_flood(h->fd, &h->ss, why);
        } else
            admit(h->l, h->fd, &h->ss, counted);
        free(h);
    }
    held_tail = pp;
    if (!nheld)
        ev_timer_stop(loop, &held_timer);
}

static void
hold(listener *l, int fd, const struct sockaddr_storage *ss)
{
    static ev_tstamp last;
    held *h = nheld < HELD_MAX ? malloc(sizeof *h) : NULL;
    if (!h) {
        refuse_flood(fd, ss, "too many connections wait to log in");
        return;
    }
    *h = (held){ .l = l, .fd = fd, .since = ev_now(B.loop), .ss = *ss };
    *held_tail = h;
    held_tail = &h->next;
    if (nheld++ == 0) {
        ev_timer_init(&held_timer, held_cb, HELD_POLL, HELD_POLL);
        ev_timer_start(B.loop, &held_timer);
    }
    if (ev_now(B.loop) - last >= 1.0) {
        char peer[64];
        format_peer(ss, peer, sizeof peer);
        log_warning("connection from %s waits: %u connections from that address have not "
                    "logged in yet (coney.handshake_max_per_ip); %u wait in all",
                    peer, B.cfg.handshake_max_per_ip, nheld);
        last = ev_now(B.loop);
    }
}

/* A listener going away closes the connections that wait on it. */
static void
held_drop(listener *l)
{
    held **pp = &held_head;
    while (*pp) {
        held *h = *pp;
        if (h->l != l) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        nheld--;
        close(h->fd);
        free(h);
    }
    held_tail = pp;
    if (!nheld)
        ev_timer_stop(B.loop, &held_timer);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    listener *l = w->data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                accept_pause(l, errno);
                return;
            }
            if (errno == ECONNABORTED || errno == EPERM)   /* that one is gone; next */
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warning("accept: %s", strerror(errno));
            return;
        }
        if (l->paused) {
            log_info("accepting again after %lu pauses for file descriptors", l->paused);
            l->paused = 0;
        }
        bool full;
        struct stream_peer *counted = stream_peer_enter(&ss, B.cfg.handshake_max_per_ip, &full);
        if (full)
            hold(l, fd, &ss);
        else
            admit(l, fd, &ss, counted);
    }
}

static int
listen_on(const char *addr, int port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST };
    struct addrinfo *res;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(addr, portstr, &hints, &res);
    if (rc) {
        log_error("cannot resolve listener address %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        log_error("cannot listen on %s:%d: %s", addr, port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int
server_listen(ev_io *w, const char *addr, int port, enum stream_kind kind, accept_fn *on_accept)
{
    listener *l = malloc(sizeof *l);
    if (!l)
        abort();
    *l = (listener){ .on_accept = on_accept, .kind = kind, .w = w };
    int fd = listen_on(addr, port);
    if (fd < 0) {
        free(l);
        return -1;
    }
    ev_init(&l->resume, resume_cb);
    ev_io_init(w, accept_cb, fd, EV_READ);
    w->data = l;
    ev_io_start(B.loop, w);
    return 0;
}

void
server_unlisten(ev_io *w)
{
    if (w->fd < 0)
        return;
    ev_io_stop(B.loop, w);
    listener *l = w->data;
    ev_timer_stop(B.loop, &l->resume);
    held_drop(l);
    close(w->fd);
    w->fd = -1;
    free(w->data);
    w->data = NULL;
}

static void
stop_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    /* Stop once every connection has gone, or after a two-second grace. */
    static int ticks;
    size_t live = B.conns != NULL;
    for (size_t i = 0; i < NPLUGINS; i++)
        live += plugins[i]->clients();
    if (!live || ++ticks > 40) {
        ev_timer_stop(loop, w);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    if (B.stopping) {
        log_info("second signal: stopping now");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    B.stopping = true;
    log_info("received %s, closing connections and stopping",
             w->signum == SIGINT ? "SIGINT" : "SIGTERM");
    server_unlisten(&listener_watcher);
    server_unlisten(&tls_listener_watcher);
    conn_close_all("shutdown");
    for (size_t i = 0; i < NPLUGINS; i++)
        plugins[i]->close("shutdown");
    ev_timer_init(&stop_timer, stop_check_cb, 0.05, 0.05);
    ev_timer_start(loop, &stop_timer);
}

static void
sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    char err[512];
    if (log_reopen() != 0)
        log_error("received SIGHUP: cannot reopen log.file %s: %s", B.cfg.log_file,
                  strerror(errno));
    else if (B.cfg.log_file[0])
        log_info("received SIGHUP: log file reopened");
    if (!tls_configured(&B.cfg))
        log_info("received SIGHUP: no TLS listener, nothing to reload");
    else if (tls_reload(err, sizeof err) != 0)
        log_error("received SIGHUP: TLS reload failed, keeping the old certificate: %s", err);
}

static void
sigusr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    if (!B.cfg.log_file[0])
        log_info("received SIGUSR1: no log.file, nothing to rotate");
    else if (log_rotate() != 0)
        log_error("received SIGUSR1: cannot rotate log.file %s: %s", B.cfg.log_file,
                  strerror(errno));
    else
        log_info("log file rotated; the previous lines are in %s.1", B.cfg.log_file);
}

int
server_run(void)
{
    B.loop = ev_default_loop(EVFLAG_AUTO);
    signal(SIGPIPE, SIG_IGN);
    /* vhosts and users come from the store (persist_open) */

    char err[512];
    if (persist_open(err, sizeof err) != 0) {
        log_error("%s", err);
        return 1;
    }
    listener_watcher.fd = -1;
    tls_listener_watcher.fd = -1;
    conn_init_loop();
    size_t started = 0;
    if (tls_configured(&B.cfg) && tls_init(&B.cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        goto fail;
    }
    for (size_t i = 0; i < NPLUGINS; i++) {
        if (plugins[i]->before_listen && plugins[i]->before_listen(err, sizeof err) != 0) {
            log_error("%s: %s", plugins[i]->name, err);
            goto fail;
        }
    }
    if (server_listen(&listener_watcher, B.cfg.bind_addr, B.cfg.port, STREAM_TCP, conn_accept) != 0)
        goto fail;
    if (B.cfg.tls_port) {
        if (server_listen(&tls_listener_watcher, B.cfg.tls_bind_addr, B.cfg.tls_port,
                          STREAM_TLS, conn_accept) != 0)
            goto fail;
        log_info("AMQP 0-9-1 over TLS listening on %s:%d", B.cfg.tls_bind_addr, B.cfg.tls_port);
    }
    for (; started < NPLUGINS; started++) {
        if (plugins[started]->start(err, sizeof err) != 0) {
            log_error("%s: %s", plugins[started]->name, err);
            goto fail;
        }
    }
    stats_start();
    channel_timeouts_start();
    B.disk_alarm = persist_disk_check();
    B.mem_alarm = memory_check();
    conn_alarm_changed();
    ev_timer_init(&disk_timer, disk_cb, 1.0, 1.0);
    ev_timer_start(B.loop, &disk_timer);
    ev_signal_init(&sigint_watcher, signal_cb, SIGINT);
    ev_signal_start(B.loop, &sigint_watcher);
    ev_signal_init(&sigterm_watcher, signal_cb, SIGTERM);
    ev_signal_start(B.loop, &sigterm_watcher);
    ev_signal_init(&sighup_watcher, sighup_cb, SIGHUP);
    ev_signal_start(B.loop, &sighup_watcher);
    ev_signal_init(&sigusr1_watcher, sigusr1_cb, SIGUSR1);
    ev_signal_start(B.loop, &sigusr1_watcher);

    log_info("Coney %s started; AMQP 0-9-1 listening on %s:%d; data in %s",
             CONEY_VERSION, B.cfg.bind_addr, B.cfg.port, B.cfg.data_dir);
    ev_run(B.loop, 0);

    /* Whatever is left gets closed now; then free everything so the
     * sanitizer run sees no leaks. */
    while (B.conns)
        conn_abort(B.conns, NULL);
    for (size_t i = 0; i < NPLUGINS; i++)
        plugins[i]->close(NULL);
    stats_stop();
    channel_timeouts_stop();
    ev_run(B.loop, EVRUN_NOWAIT);   /* lets the reapers free them */
    server_unlisten(&listener_watcher);
    server_unlisten(&tls_listener_watcher);
    for (size_t i = 0; i < NPLUGINS; i++)
        plugins[i]->finish();
    tls_free();
    persist_close();
    for (map_iter it = map_first(&B.vhosts); it.e; map_next(&B.vhosts, &it))
        vhost_free(it.e->value);
    map_free(&B.vhosts);
    auth_free();
    log_info("stopped");
    return 0;

fail:
    server_unlisten(&listener_watcher);
    server_unlisten(&tls_listener_watcher);
    while (started > 0)
        plugins[--started]->finish();
    tls_free();
    persist_close();
    return 1;
}
