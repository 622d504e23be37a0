/*
 * The flood limit of denials (audit_flood.c): repeated denials of one actor
 * cost the actor, not the server. Synapse never counts a denied message
 * against its own rate limits, so a pupil's client could be refused tens
 * of times a second, each refusal an audit record with its fdatasync or
 * commit. Past a threshold per (actor, rule, callback, enforced), a denial
 * is "limited": the client is told to slow down (M_LIMIT_EXCEEDED,
 * retry_after_ms) and the denial gets no record of its own; it is counted
 * in the key's open summary, one record with a count and a time span,
 * written when the span ends. The audit stays complete (the sum of count is
 * every denial) and bounded (per key, at most `per_minute` single records
 * and one summary per `summary_ms` a minute, whatever the flood).
 *
 * A token bucket per key: `burst` tokens, refilled at `per_minute` a
 * minute; a denial that finds a token is an ordinary one (its own record,
 * the 403 after it is durable). Keys live in a fixed table (sets of ways,
 * the least recently denied way evicted, its open summary written out
 * first): memory is bounded whatever the number of actors, and an evicted
 * key only starts again with a full bucket. In memory, per process, like
 * Synapse's own rate limits: with N workers an actor spread over them gets
 * N times the threshold.
 *
 * Thread-safe: one mutex, held for a slot's arithmetic; summaries are
 * queued after it is released. Never blocks on I/O.
 */
#ifndef SSP_AUDIT_FLOOD_H
#define SSP_AUDIT_FLOOD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "error.h"
#include "rule_texts.h"

#define SSP_FLOOD_SETS 2048
#define SSP_FLOOD_WAYS 8

typedef struct ssp_flood_settings {
    int64_t per_minute; /* tokens added a minute */
    int64_t burst;      /* the bucket's size */
    int64_t summary_ms; /* how long a summary stays open */
} ssp_flood_settings;

typedef struct ssp_flood_slot {
    uint64_t key;     /* 0: free */
    double tokens;
    int64_t refilled_ms;
    int64_t last_ms;  /* the last denial: the least recent way is evicted */
    ssp_audit_record *summary; /* open, owned here; NULL when none */
} ssp_flood_slot;

typedef struct ssp_flood {
    pthread_mutex_t mutex;
    ssp_flood_settings settings;
    uint64_t seed;
    ssp_flood_slot *slots; /* SSP_FLOOD_SETS * SSP_FLOOD_WAYS */
    /* counters since start, read under the mutex */
    uint64_t limited;   /* denials counted in a summary */
    uint64_t summaries; /* summary records handed to the queue */
    uint64_t evicted;   /* keys pushed out of a full set */
} ssp_flood;

/* What ssp_flood_denial decided. */
typedef struct ssp_flood_verdict {
    bool limited;           /* counted in a summary: no record of its own */
    int64_t retry_after_ms; /* limited: when the key has a token again */
} ssp_flood_verdict;

int ssp_flood_init(ssp_flood *flood, const ssp_flood_settings *settings, ssp_error *err);
/* Frees the table and any summary still open (write them out first with
 * ssp_flood_close_summaries). */
void ssp_flood_destroy(ssp_flood *flood);

/* One denial with these fields (the record's kind, count and ts are
 * ignored), at now_ms. Not limited: the caller records it as ever. Limited:
 * it is counted in the key's summary (opened here: one allocation per
 * summary, none per denial). Summaries that closed meanwhile (this key's
 * span ended, or a key evicted for this one) go to `queue`. Out of memory
 * for a new summary: the denial is not limited, its own record is the
 * fallback. */
ssp_flood_verdict ssp_flood_denial(ssp_flood *flood, ssp_audit_queue *queue,
                                   const ssp_audit_record *denial, int64_t now_ms);

/* Writes out (to `queue`) the summaries whose span ended by now_ms, or all
 * of them (`all`: shutdown, and before the store closes). Returns how many. */
size_t ssp_flood_close_summaries(ssp_flood *flood, ssp_audit_queue *queue, int64_t now_ms,
                                 bool all);

typedef struct ssp_flood_stats {
    uint64_t limited, summaries, evicted, open_summaries;
} ssp_flood_stats;

void ssp_flood_get_stats(ssp_flood *flood, ssp_flood_stats *out);

#endif
