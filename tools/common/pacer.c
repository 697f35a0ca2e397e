/* pacer.c - bursts on an absolute schedule; see pacer.h. */
#include "pacer.h"

#include <errno.h>
#include <time.h>

#define SLEEP_SLICE_NS 100000000u

uint64_t
tool_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void
pacer_init(pacer *p, double rate, unsigned pace_us)
{
    *p = (pacer){.rate = rate > 0 ? rate : 0, .t0 = tool_now_ns(),
                 .pace_ns = (uint64_t)pace_us * 1000u};
}

uint64_t
pacer_take(pacer *p, uint64_t n, uint64_t max)
{
    if (p->rate == 0)
        return max;
    if (n >= p->burst_to) {
        uint64_t now = tool_now_ns();
        uint64_t next = p->t0 + (uint64_t)((double)n * 1e9 / p->rate);
        if (next < p->burst_start + p->pace_ns)
            next = p->burst_start + p->pace_ns;
        if (next > now) {
            sleep_until(next < now + SLEEP_SLICE_NS ? next : now + SLEEP_SLICE_NS);
            return 0;
        }
        /* every message due by now, and at least the one that woke us */
        uint64_t due = (uint64_t)((double)(now - p->t0) * p->rate / 1e9) + 1;
        p->burst_start = now;
        p->burst_to = due > n ? due : n + 1;
    }
    return p->burst_to - n < max ? p->burst_to - n : max;
}
