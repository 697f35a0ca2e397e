/* The send schedule both load tools pace by (coney-perf, coney-mqtt-perf).
 *
 * Message k is due at t0 + k/rate. Messages go out in bursts: a burst takes
 * every message due when it begins, and the next burst begins when the
 * next message is due but no sooner than pace_ns after this one began.
 * Messages that fall due while a burst is being written wait for the next
 * burst. Without that rule a sender whose write() takes longer than the
 * interval between two messages never catches up to "nothing due", and
 * ends up writing one message per system call: at a million messages a
 * second that costs the tool most of a core, which it takes from the
 * broker it measures. */
#ifndef CONEY_TOOLS_COMMON_PACER_H
#define CONEY_TOOLS_COMMON_PACER_H

#include <stdint.h>

typedef struct pacer {
    double rate;              /* messages/s; 0 = unpaced */
    uint64_t t0;              /* when message 0 was due */
    uint64_t pace_ns;         /* least time between two bursts' starts */
    uint64_t burst_start;
    uint64_t burst_to;        /* the burst ends when this many are sent */
} pacer;

void
pacer_init(pacer *p, double rate, unsigned pace_us);

/* How many messages to send now, at most max, when n have been sent: 0
 * means the call slept (at most 100 ms, so a stop is noticed) and should
 * be made again. Unpaced, always max. A caller may send fewer than it
 * was given: what it left stays in the burst, as the burst is counted
 * in messages sent. */
uint64_t
pacer_take(pacer *p, uint64_t n, uint64_t max);

/* CLOCK_MONOTONIC in nanoseconds: the clock of the schedule and of the
 * send times the tools put in their payloads. */
uint64_t
tool_now_ns(void);

#endif
