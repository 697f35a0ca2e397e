/* mqtt-perf.h - the pieces of coney-mqtt-perf, Coney's MQTT load generator.
 *
 * coney-mqtt-perf speaks MQTT through Debian's libmosquitto, so it shares no
 * code with the broker it measures. Each publisher and each subscriber is
 * one thread with its own connection, driven with the library's
 * non-threaded calls (a struct mosquitto belongs to one thread).
 *
 * libmosquitto always does the handshake: CONNECT/CONNACK (so the protocol
 * version, the server's Receive Maximum and the refusal codes are the
 * library's business) and SUBSCRIBE/SUBACK. The timed traffic then goes
 * one of two ways (--io):
 *
 *   raw  (default) the thread takes the connected socket (mosquitto_socket)
 *        and writes PUBLISH packets many per write(), reads PUBACK/PUBREC/
 *        PUBCOMP and incoming PUBLISHes from a 256 KB buffer, and batches
 *        its acks. libmosquitto 2.0 spends a send() per packet and a recv()
 *        per header byte, which on a small machine caps the tool, not the
 *        broker. The library never touches the socket again until
 *        DISCONNECT, written only when no half packet is pending.
 *   lib  mosquitto_publish and the library's read and write calls
 *        throughout: slower, a cross-check that the raw path measures
 *        the same thing.
 *
 * Threads publish their counters through relaxed atomics that only the
 * owner writes; histograms and first/last times are read by the main
 * thread after pthread_join.
 */
#ifndef CONEY_MQTT_PERF_H
#define CONEY_MQTT_PERF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/histogram.h"
#include "../common/pacer.h"

/* ---- options (mqtt-perf.c) ------------------------------------------- */

enum { MPERF_IO_RAW, MPERF_IO_LIB };

typedef struct mperf_opts {
    const char *host;
    int port;
    const char *user;         /* NULL = anonymous */
    const char *password;
    int publishers;
    int subscribers;
    size_t size;
    double duration;          /* seconds, 0 = not set */
    uint64_t count;           /* messages per publisher, 0 = not set */
    int qos;
    int version;              /* 311 or 5 */
    const char *topic_prefix;
    int topics;               /* PREFIX/1 .. PREFIX/topics */
    int wildcard;             /* subscribers take PREFIX/# */
    double rate;              /* per publisher, 0 = unlimited */
    unsigned pace_us;
    unsigned inflight;        /* QoS 1/2 window per publisher */
    unsigned write_batch;
    int keepalive;
    int io;
    double interval;
    double drain_timeout;
    int json;
} mperf_opts;

/* ---- shared run state ------------------------------------------------ */

typedef struct mperf_run {
    const mperf_opts *o;
    atomic_int stop;          /* set by main: stop publishing/receiving */
    atomic_int failed;        /* set by any thread on an error */
    atomic_int subscribers_ready;
    atomic_int publishers_done;
    int count_mode;
} mperf_run;

typedef struct mperf_worker {
    mperf_run *run;
    int id;
    int publisher;            /* else a subscriber */
    pthread_t thread;
    int started;
    char **topics;            /* publish round-robin to / subscribe to these */
    int ntopics;
    _Atomic uint64_t sent;
    _Atomic uint64_t acked;   /* QoS 1: PUBACK, QoS 2: PUBCOMP */
    _Atomic uint64_t rejected;/* MQTT 5 acks with a failure reason code */
    _Atomic uint64_t received;
    _Atomic uint64_t lat_sum_ns;         /* for the progress lines' mean */
    _Atomic uint64_t lat_n;
    /* Read by main after join. */
    uint64_t first_ns;                   /* first message stamped/received */
    uint64_t last_ns;                    /* last write or delivery */
    uint64_t writes;                     /* buffers of packets written
                                            (--io raw) */
    uint64_t ack_first_ns, ack_last_ns;
    perf_hist hist;                     /* end-to-end (subscriber) or
                                            publish -> ack (publisher) */
} mperf_worker;

void *
mperf_publisher_main(void *arg);
void *
mperf_subscriber_main(void *arg);

/* ---- connections and packets (client.c) ------------------------------ */

/* Report an error of thread `who` on stderr, mark the run failed and stop it. */
void
mperf_fail(mperf_run *run, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct mosquitto;

/* A connection as the worker threads hold it. */
typedef struct mperf_conn {
    struct mosquitto *mosq;   /* owned; mperf_conn_close destroys it */
    void *owner;              /* the worker's state, for lib-mode callbacks */
    mperf_run *run;
    const char *name;         /* borrowed from the worker, for messages */
    int fd;                   /* the socket, in raw mode after the handshake */
    int receive_max;          /* the server's, 65535 if it set none */
    /* Handshake state, written by libmosquitto's callbacks. */
    int connack;              /* 0 waiting, 1 accepted, -1 refused */
    int suback;               /* 0 waiting, 1 granted, -1 refused */
    int sub_mid;
    int lost;                 /* on_disconnect seen */
    /* Raw mode: what we have written and read ourselves. */
    uint8_t *out;
    size_t out_len, out_cap;
    uint8_t *in;
    size_t in_len, in_cap;
    uint64_t last_write_ns;   /* for PINGREQ within the keepalive */
    int half_written;         /* a packet is partly on the wire */
} mperf_conn;

/* Connect with libmosquitto and wait for CONNACK (10 s at most). The
 * library's user data pointer is c itself; c->owner is set to owner.
 * Returns -1 on failure, reported; mperf_conn_close frees what was made. */
int
mperf_conn_open(mperf_conn *c, mperf_run *run, const char *name,
                const char *client_id, void *owner);

/* One turn of libmosquitto's machinery: poll the socket up to wait_ms,
 * then mosquitto_loop_read/_write/_misc as it is ready. mosquitto_loop
 * itself uses select(), which fails on descriptors past FD_SETSIZE, and a
 * thousand connections go past it. Returns a MOSQ_ERR_ code. */
int
mperf_conn_step(mperf_conn *c, int wait_ms);

/* SUBSCRIBE to every topic at the run's QoS and wait for the SUBACK.
 * Returns -1 when refused or lost, reported. */
int
mperf_conn_subscribe(mperf_conn *c, char **topics, int n);

/* Take the socket for raw mode: non-blocking, buffers allocated. */
int
mperf_conn_take(mperf_conn *c);

/* Raw mode: write what is buffered. While the socket is full, waits and
 * calls on_input (when given) as input arrives; gives up `give_up_ns`
 * after a stop (0 = wait as long as the connection lives). Returns 0 when
 * all is written, -1 on an error (reported), -2 when given up (the socket
 * may hold half a packet). */
typedef int (*mperf_input_fn)(void *ctx);
int
mperf_conn_flush(mperf_conn *c, mperf_input_fn on_input, void *ctx,
                 uint64_t give_up_ns);

/* Raw mode: read what is there into c->in, waiting up to wait_ms for it.
 * Returns bytes read (0 when nothing came), -1 on an error or EOF
 * (reported). */
long
mperf_conn_read(mperf_conn *c, int wait_ms);

/* Raw mode: append a PINGREQ when nothing was written for half the
 * keepalive. */
void
mperf_conn_keepalive(mperf_conn *c, uint64_t now);

/* Raw mode: the length of the first whole packet in c->in (header and
 * body), 0 when it is not all in yet, -1 when malformed (reported). The
 * body starts at *body_off. Grows c->in for a packet larger than it. */
long
mperf_conn_packet(mperf_conn *c, size_t start, size_t *body_off);

/* A polite DISCONNECT unless a packet is half written, then free all. */
void
mperf_conn_close(mperf_conn *c);

/* Append n bytes to the output buffer, growing it. */
int
mperf_conn_put(mperf_conn *c, const void *p, size_t n);

static inline uint16_t
mperf_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* Encode an MQTT variable byte integer; returns its length (1..4). */
static inline size_t
mperf_varint(uint8_t *p, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

#endif
