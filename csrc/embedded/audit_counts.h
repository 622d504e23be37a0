/*
 * The embedded store's audit counts in memory (audit_counts.c): per school,
 * how many denials of each rule fell in each UTC day, hour and minute.
 * Built from audit.jsonl at open, kept up to date by the writer as it
 * appends, so that a chart never reads the file (audit_chart.h).
 */
#ifndef SSP_AUDIT_COUNTS_H
#define SSP_AUDIT_COUNTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_queue.h"
#include "error.h"
#include "strmap.h"

#define SSP_AUDIT_COUNT_GRAINS 3 /* a day, an hour, a minute: audit_counts.c's GRAINS */

typedef struct ssp_audit_counts {
    pthread_mutex_t mutex; /* the writer adds, charts read */
    bool mutex_ready;
    ssp_strmap schools; /* school id ("" for records of no school) -> its counts */
    uint64_t records;   /* the records counted */
} ssp_audit_counts;

int ssp_audit_counts_init(ssp_audit_counts *counts, ssp_error *err);
void ssp_audit_counts_destroy(ssp_audit_counts *counts);
/* Forgets every count. */
void ssp_audit_counts_clear(ssp_audit_counts *counts);
/* Counts n denials of `rule` at ts (ms) in `school` (NULL: none). */
int ssp_audit_counts_add(ssp_audit_counts *counts, int64_t ts, ssp_rule rule, const char *school,
                         uint64_t n, ssp_error *err);
/* Counts every record of audit.jsonl at fd (read from its start to its
 * end; damaged lines are passed over). */
int ssp_audit_counts_load(ssp_audit_counts *counts, int fd, const char *path, ssp_error *err);
/* Adds the chart's counts of [filter->since_ms, filter->until_ms) into
 * out[bucket * SSP_RULE__COUNT + rule], for filter's school, schools and
 * rule (filter->user must be NULL: the counts know no users). since, until
 * and bucket are whole minutes (audit_view.c). */
int ssp_audit_counts_chart(ssp_audit_counts *counts, const ssp_audit_filter *filter,
                           int64_t bucket, uint64_t *out, ssp_error *err);

#endif
