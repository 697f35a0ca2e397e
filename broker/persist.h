/*
 * The broker's side of durability: what to write to the store and when,
 * what to wait for before confirming, and how to rebuild state at start.
 *
 * Promises kept here:
 * - A persistent message routed to durable queues is queued for the store
 *   before any delivery, ack or drop of it can queue a delete.
 * - A publisher confirm (or tx.commit-ok) that depends on a write goes out
 *   only once the batch holding the write has committed; a failed batch
 *   turns its confirms into basic.nack.
 */
#ifndef CONEY_BROKER_PERSIST_H
#define CONEY_BROKER_PERSIST_H

#include "broker/conn.h"

/* Opens the store under the data directory and replays it into the
 * default vhost. Returns 0, or -1 with a message in err. */
int persist_open(char *err, size_t errlen);
/* Commits what is queued and closes the store. */
void persist_close(void);

/* Entities: written only for durable ones, never while recovering. */
void persist_exchange(exchange *x, bool add);
void persist_queue(queue *q, bool add);
void persist_binding(exchange *src, void *dest, amqp_bytes key, const uint8_t *args,
                     uint32_t args_len, bool add);

/* Messages. persist_publish writes m once with an entry for each durable
 * queue (q[i], seq[i]); returns the batch to wait for, or 0 if nothing
 * was written. */
uint64_t persist_publish(message *m, queue *const *q, const uint64_t *seq, size_t n);
/* Pages one entry of q out (transient-flagged unless the message is
 * persistent on a durable queue). */
void persist_page_out(queue *q, message *m, uint64_t seq);
/* Records that the entry was delivered, so a restart marks it redelivered. */
void persist_mark_delivered(queue *q, message *m, uint64_t seq);
/* Deletes one entry (ack, drop, purge). */
void persist_forget(queue *q, message *m, uint64_t seq);
/* Deletes the on-disk tail of q, or with whole set everything of q. */
void persist_drop_queue_entries(queue *q, bool whole);
/* Reads up to max tail entries of q with seq < limit back into its ring;
 * returns how many. */
size_t persist_page_in(queue *q, size_t max, uint64_t limit);
/* Reads every entry of q with its message and calls fn for each, in seq
 * order (delayed.c's recovery: the caller takes what it keeps; m is
 * unreferenced after fn returns). */
void persist_load_entries(queue *q, void (*fn)(message *m, uint64_t seq, void *ctx), void *ctx);

/* The batch holding the definitions written by the method being handled
 * (0: none); conn_gate clears it before each method. */
extern uint64_t persist_definition_batch;

/* The batch queued writes will commit in, and what is known done. */
uint64_t persist_batch(void);
bool persist_committed(uint64_t batch);
bool persist_failed(uint64_t batch);

/* Waiters: run again once the store reports progress. */
void persist_wait_channel(channel *ch);
void persist_unwait_channel(channel *ch);
void persist_wait_queue(queue *q);
void persist_wait_conn(conn *c);
void persist_unwait_conn(conn *c);

/* Flow control: bytes queued for the store and not yet committed. Above
 * the high mark publishers pause (conn_flow); below the low mark the
 * store wakes them. */
#define PERSIST_FLOW_HIGH (16u << 20)
#define PERSIST_FLOW_LOW (8u << 20)
bool persist_flow_blocked(void);

/* Disk alarm: checks free space now; true while below the limit. */
bool persist_disk_check(void);

#endif
