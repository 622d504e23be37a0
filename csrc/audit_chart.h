/*
 * The chart's plan (audit_chart.c): which pre-aggregated counts answer
 * which part of a chart. Both stores keep the audit's counts per grain of
 * time (a UTC day and an hour; the embedded store also a minute), so that
 * a chart over a year adds up a few hundred day counts instead of reading
 * every record. The plan cuts [since, until) into spans, each served by
 * one grain: a span covers whole units of its grain, and each unit lies
 * inside one bucket, so a unit's count goes to the bucket of its start.
 * What no grain covers (the edges of buckets that do not fall on an hour)
 * goes to the finest grain: a minute in memory, or the records themselves.
 */
#ifndef SSP_AUDIT_CHART_H
#define SSP_AUDIT_CHART_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SSP_CHART_DAY_MS INT64_C(86400000)
#define SSP_CHART_HOUR_MS INT64_C(3600000)
#define SSP_CHART_MINUTE_MS INT64_C(60000)

/* [lo, hi) in ms since the epoch, answered by grains[grain]. */
typedef struct ssp_chart_span {
    int64_t lo, hi;
    size_t grain;
} ssp_chart_span;

typedef struct ssp_chart_plan {
    ssp_chart_span *spans; /* ascending in time; adjacent spans of one grain merged */
    size_t n, cap;
} ssp_chart_plan;

/* Plans a chart of [since, until) in buckets of `bucket` ms. grains are in
 * ms, coarsest first, each a multiple of the next; the last one takes what
 * the others leave (1: the records themselves; a larger one must divide
 * since, until and bucket, which audit_view.c makes whole minutes). The
 * caller checked 0 <= since < until <= SSP_AUDIT_MAX_TS_MS and bucket >= 1,
 * so nothing overflows. Fails only when out of memory. */
int ssp_chart_plan_build(int64_t since, int64_t until, int64_t bucket, const int64_t *grains,
                         size_t n_grains, ssp_chart_plan *plan, ssp_error *err);
void ssp_chart_plan_free(ssp_chart_plan *plan);

/* The start of the unit of `grain` that holds t (t >= 0). */
static inline int64_t ssp_chart_unit_start(int64_t t, int64_t grain)
{
    return t - t % grain;
}

#endif
