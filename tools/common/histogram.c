/* histogram.c - a log-linear latency histogram in the spirit of HdrHistogram.
 *
 * Values under 128 ns get a bucket each. Above, the bucket of v is chosen by
 * its highest set bit e and the six bits below it, so every power of two
 * [2^e, 2^(e+1)) is cut into 64 equal buckets of width 2^(e-6). A bucket is
 * reported by its midpoint, which is off by at most half a width: 1/128 of
 * the value, 0.8%. Recording is a count-leading-zeros, a shift and an add,
 * cheap enough for every message; merging is an addition per bucket.
 */
#include <string.h>

#include "histogram.h"

static int
hist_index(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int e = 63 - __builtin_clzll(v);
    int shift = e - 6;
    return 128 + (e - 7) * 64 + (int)((v >> shift) - 64);
}

/* The midpoint of bucket i. */
static uint64_t
hist_value(int i)
{
    if (i < 128)
        return (uint64_t)i;
    int k = i - 128;
    int shift = k / 64 + 1;
    uint64_t low = (uint64_t)(k % 64 + 64) << shift;
    return low + ((uint64_t)1 << shift) / 2;
}

void
perf_hist_init(perf_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void
perf_hist_record(perf_hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->n++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void
perf_hist_merge(perf_hist *dst, const perf_hist *src)
{
    if (src->n == 0)
        return;
    for (int i = 0; i < PERF_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->n += src->n;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t
perf_hist_percentile(const perf_hist *h, double p)
{
    if (h->n == 0)
        return 0;
    /* The smallest value with at least ceil(p% of n) samples at or below. */
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank >= h->n)
        return h->max;
    uint64_t seen = 0;
    for (int i = 0; i < PERF_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            /* The midpoint may lie outside what was recorded. */
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}
