/* The latency histogram both load tools report from (coney-perf on
 * rabbitmq-c, coney-mqtt-perf on libmosquitto): shared between them, and
 * like them sharing nothing with the broker they measure. */
#ifndef CONEY_TOOLS_COMMON_HISTOGRAM_H
#define CONEY_TOOLS_COMMON_HISTOGRAM_H

#include <stdint.h>

/* Log-linear buckets over uint64 nanoseconds: values below 128 are exact,
 * above that each power of two is split into 64 buckets, so a reported
 * value (the bucket's midpoint) is within 0.8% of the true one. */
#define PERF_HIST_BUCKETS (128 + 57 * 64)

typedef struct perf_hist {
    uint64_t n;
    uint64_t min;
    uint64_t max;
    uint64_t counts[PERF_HIST_BUCKETS];
} perf_hist;

void
perf_hist_init(perf_hist *h);
void
perf_hist_record(perf_hist *h, uint64_t v);
void
perf_hist_merge(perf_hist *dst, const perf_hist *src);
/* The value at percentile p (0..100]; 0 when the histogram is empty. */
uint64_t
perf_hist_percentile(const perf_hist *h, double p);

#endif
