/* Message rates (see the stats type in broker.h): the sampling timer and
 * what readers need. */
#ifndef CONEY_BROKER_STATS_H
#define CONEY_BROKER_STATS_H

#include <stddef.h>

#include "broker/broker.h"

/* Starts the sampling timer. */
void stats_start(void);
void stats_stop(void);
/* Per second, over the last interval, of the counter at offset field of
 * msg_stats (offsetof(msg_stats, publish)). 0 before two samples. */
double stats_rate(const stats *s, size_t field);

#endif
