/* perf.h - the pieces of coney-perf, Coney's load generator.
 *
 * coney-perf speaks AMQP 0-9-1 through rabbitmq-c only, so it shares no
 * code with the broker it measures. Each producer and each consumer is one
 * thread with its own connection (a rabbitmq-c connection is not
 * thread-safe). Threads publish their counters through relaxed atomics that
 * only the owner writes; everything else (histograms, first/last times) is
 * read by the main thread after pthread_join.
 */
#ifndef CONEY_PERF_H
#define CONEY_PERF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "../common/histogram.h"
#include "../common/pacer.h"

/* ---- options (coney-perf.c) ------------------------------------------ */

typedef struct perf_qarg {
    const char *key;
    const char *value;
} perf_qarg;

typedef struct perf_opts {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *vhost;
    int producers;
    int consumers;
    size_t size;
    double duration;          /* seconds, 0 = not set */
    uint64_t count;           /* messages per producer, 0 = not set */
    const char *exchange_type;
    const char *exchange;     /* "" = the default exchange */
    int queues;
    const char *queue_prefix;
    const char **queue_names; /* exact names from --queue, or generated */
    perf_qarg *qargs;
    int nqargs;
    int persistent;
    int mandatory;
    unsigned confirm;         /* window, 0 = no confirms */
    unsigned prefetch;
    int auto_ack;
    unsigned multi_ack;
    double rate;              /* per producer, 0 = unlimited */
    double interval;
    double drain_timeout;
    unsigned write_batch;
    unsigned pace_us;         /* with a rate: bursts at least this far apart */
    int json;
    int keep;
    int predeclared;
} perf_opts;

/* ---- shared run state ------------------------------------------------ */

typedef struct perf_run {
    const perf_opts *o;
    atomic_int stop;          /* set by main: stop sending/consuming */
    atomic_int failed;        /* set by any thread on an error */
    atomic_int consumers_ready;
    atomic_int producers_done;
    int count_mode;
} perf_run;

typedef struct perf_producer {
    perf_run *run;
    int id;
    pthread_t thread;
    const char **queues;      /* its messages go to these, round-robin */
    int nqueues;
    _Atomic uint64_t sent;
    _Atomic uint64_t confirmed;
    _Atomic uint64_t nacked;
    _Atomic uint64_t returned;
    /* Read by main after join. */
    uint64_t first_ns;                   /* first message stamped */
    uint64_t last_ns;                    /* last write completed */
    uint64_t writes;                     /* buffers of messages written */
    uint64_t conf_first_ns, conf_last_ns;
    perf_hist conf_hist;                 /* publish -> confirm latency */
} perf_producer;

typedef struct perf_consumer {
    perf_run *run;
    int id;
    pthread_t thread;
    const char **queues;      /* it consumes from all of these */
    int nqueues;
    _Atomic uint64_t received;
    _Atomic uint64_t lat_sum_ns;         /* for the progress lines' mean */
    _Atomic uint64_t lat_n;
    uint64_t first_ns, last_ns;
    perf_hist hist;                      /* end-to-end latency */
} perf_consumer;

void *
perf_producer_main(void *arg);
void *
perf_consumer_main(void *arg);

/* ---- connections and frames (wire.c) --------------------------------- */

/* Report an error of thread `who` on stderr, mark the run failed and stop it. */
void
perf_fail(perf_run *run, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Describe an RPC reply (library error, channel.close, connection.close)
 * into buf; returns buf. */
const char *
perf_reply_str(amqp_rpc_reply_t r, char *buf, size_t n);

/* Describe a channel.close or connection.close frame into buf. */
const char *
perf_close_str(const amqp_frame_t *f, char *buf, size_t n);

/* Open a socket, log in with heartbeats off and open channel 1. On failure
 * the message is in err and *out is NULL. */
int
perf_connect(const perf_opts *o, const char *name,
             amqp_connection_state_t *out, char *err, size_t errlen);

/* Close channel 1 and the connection politely, then free it. A broker
 * still busy with what we sent gets timeout_s seconds per close (0 = no
 * limit) before the socket is simply dropped. */
void
perf_disconnect(amqp_connection_state_t conn, double timeout_s);

/* Free a connection without any handshake (after a half-written frame). */
void
perf_abandon(amqp_connection_state_t conn);

/* An output buffer written straight to the connection's socket: many
 * frames per send(). rabbitmq-c never writes on a connection while a
 * perf_out holds unflushed data, because its owner calls no writing
 * rabbitmq-c function until perf_out_flush has returned 0. */
typedef struct perf_out {
    int fd;
    uint8_t *buf;
    size_t len;
    size_t cap;
    atomic_int *stop;
} perf_out;

/* Called while a flush waits for the socket to drain and there is input:
 * the owner reads its frames (and must not write). Returns -1 on error. */
typedef int (*perf_readable_fn)(void *ctx);

int
perf_out_init(perf_out *out, amqp_connection_state_t conn, size_t cap,
              atomic_int *stop);
void
perf_out_free(perf_out *out);

enum { PERF_OUT_OK = 0, PERF_OUT_ERROR = -1, PERF_OUT_ABANDONED = -2 };

/* Write everything buffered. PERF_OUT_ERROR leaves errno set;
 * PERF_OUT_ABANDONED means the run was stopped while the socket stayed
 * full, so the connection may hold half a frame and must be abandoned. */
int
perf_out_flush(perf_out *out, perf_readable_fn on_readable, void *ctx);

/* Encode a whole method frame into dst with rabbitmq-c's encoder; returns
 * its length, or 0 when it does not fit in room. */
size_t
perf_frame_method(uint8_t *dst, size_t room, amqp_channel_t channel,
                  amqp_method_number_t id, void *decoded);

/* Encode a whole basic content header frame; returns its length or 0. */
size_t
perf_frame_header(uint8_t *dst, size_t room, amqp_channel_t channel,
                  uint64_t body_size, amqp_basic_properties_t *props);

#endif
