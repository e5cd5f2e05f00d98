/*
 * metrics.h -- request counters and latency histograms per interaction and
 * status class (metrics.c), exposed at /metrics in Prometheus text format.
 * Lock-free: every counter is a relaxed atomic, so any thread may record.
 */
#ifndef HORTUS_REST_METRICS_H
#define HORTUS_REST_METRICS_H

#include <stdint.h>

#include "base/buf.h"
#include "rest/route.h"

struct store;

/* Count one answer of interaction ri with HTTP status and latency ns. */
void rest_metrics_record(rest_interaction ri, unsigned status, uint64_t ns);

/* The Prometheus text exposition (into b): HTTP metrics and the store's. */
void rest_metrics_write(buf *b, struct store *st);

#endif
