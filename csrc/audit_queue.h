/*
 * The audit queue (audit_queue.c): decisions queue denial records without waiting
 * on I/O; the store's writer (the embedded store's file writer or the
 * PostgreSQL store's thread) consumes them through one function family:
 *
 *   ssp_audit_wait_queued   sleep until there is something to take
 *   ssp_audit_take          take a batch from the front
 *   ssp_audit_mark_written  the batch is durable (committed or fdatasync'ed):
 *                           advance last_written_id, wake waiters, free it
 *   ssp_audit_put_back      the write failed: the batch goes back to the front
 *
 * last_written_id only moves in ssp_audit_mark_written, so whoever waits
 * on written_cond for an id knows its record is durable. A waiter that
 * must not block a thread (the adapter, on Synapse's reactor) watches
 * durable_fd instead: an eventfd written after last_written_id moves.
 *
 * Also here: an audit record as JSON and the filter test, shared by both
 * stores' queries.
 */
#ifndef SSP_AUDIT_QUEUE_H
#define SSP_AUDIT_QUEUE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "rule_texts.h"

/* The latest time a query may name, 9999-12-31T23:59:59.999Z in ms since
 * the epoch: every time of a query is checked against it before any
 * arithmetic or SQL (PostgreSQL's intervals overflow near 9.2e15 ms). */
#define SSP_AUDIT_MAX_TS_MS INT64_C(253402300799999)

/* What a record stands for: a denial (a rule refused an action, or would
 * have in report-only mode), or an action the module itself took (a group
 * room's member removed, say). The JSON and the stores leave "denial" out. */
typedef enum { SSP_AUDIT_DENIAL = 0, SSP_AUDIT_ACTION } ssp_audit_kind;

/* Which kinds a query returns. */
typedef enum { SSP_AUDIT_ANY_KIND = 0, SSP_AUDIT_ONLY_DENIALS, SSP_AUDIT_ONLY_ACTIONS } ssp_audit_kinds;

typedef struct ssp_audit_filter {
    int64_t since_ms;   /* 0: no lower bound */
    int64_t until_ms;   /* 0: no upper bound */
    const char *rule;   /* NULL: any */
    const char *school; /* NULL: any */
    const char *user;   /* NULL: any; matches actor or target */
    size_t limit;       /* 1..1000 */
    int64_t before_id;  /* 0: from the newest; otherwise records with a smaller id */
    /* NULL: any school; otherwise only records of one of these n_schools
     * schools (a school admin's scope, forced by audit_view.c) */
    const char *const *schools;
    size_t n_schools;
    ssp_audit_kinds kinds; /* 0: both kinds */
} ssp_audit_filter;

typedef struct ssp_audit_stats {
    uint64_t queued;      /* records submitted since start */
    uint64_t written;     /* records durably written since start */
    uint64_t queue_depth; /* waiting to be written */
    uint64_t write_errors;
} ssp_audit_stats;

typedef struct ssp_audit_record {
    struct ssp_audit_record *next;
    int64_t id;
    int64_t ts;       /* the (first) denial's or the action's time, ms */
    ssp_audit_kind kind;
    /* How many denials the record stands for (>= 1). A summary of a flood
     * (count > 1) covers ts .. last_ts; last_ts is 0 when count is 1. */
    int64_t count;
    int64_t last_ts;
    /* Denials only: SSP_RULE_NONE and SSP_CB__COUNT in an action. */
    ssp_rule rule;
    ssp_callback callback;
    bool enforced;
    /* NULL when absent; all point into this allocation */
    const char *actor;
    const char *target;
    const char *room_id;
    const char *event_type;
    const char *school;
    /* Actions only: what was done (a short id), to which group, and why
     * (a short text, never message content). */
    const char *action;
    const char *group;
    const char *reason;
} ssp_audit_record;

typedef struct ssp_audit_queue {
    pthread_mutex_t mutex;
    pthread_cond_t wake_writer;  /* a record arrived, or stopping */
    pthread_cond_t written_cond; /* last_written_id moved */
    bool stopping;
    ssp_audit_record *head, *tail; /* queue, oldest first */
    int64_t next_id;
    int64_t last_written_id;
    char *worker;
    /* where the records go, for error messages: a path or "the database" */
    char *sink;
    ssp_audit_stats stats;
    /* an eventfd (or -1) written when a record arrives on an empty queue,
     * for a writer that sleeps in poll() (the PostgreSQL store's thread) */
    int wake_fd;
    /* an eventfd of the queue's own, written (never blocking) after
     * last_written_id moved: readable means "look at last_written_id" */
    int durable_fd;
    /* while records wait (last_written_id < next_id - 1): since when nothing
     * has been written, in ms; 0 when none waits */
    int64_t pending_since_ms;
} ssp_audit_queue;

/* A batch taken from the queue: first..last, count records. Owned by the
 * writer until it is marked written (freed) or put back. */
typedef struct ssp_audit_batch {
    ssp_audit_record *first, *last;
    size_t count;
} ssp_audit_batch;

/* The queue alone; ids start after last_id (the store's newest record).
 * sink is copied. Creates durable_fd (closed by ssp_audit_close). */
int ssp_audit_open(ssp_audit_queue *queue, const char *worker, const char *sink, int64_t last_id,
                   int wake_fd, ssp_error *err);
/* Frees what is still queued. The writer must have stopped. */
void ssp_audit_close(ssp_audit_queue *queue);
/* Tells the writer to finish: ssp_audit_wait_queued returns false once the
 * queue is empty. */
void ssp_audit_stop(ssp_audit_queue *queue);
void ssp_audit_free_records(ssp_audit_record *rec);
/* A record of `fields` in one allocation (its strings copied, scrubbed to
 * valid UTF-8; next and id cleared), for ssp_audit_enqueue or free();
 * NULL when out of memory. */
ssp_audit_record *ssp_audit_record_copy(const ssp_audit_record *fields);
/* Queues `rec` (one allocation, from ssp_audit_record_copy), which the
 * queue owns from now on: a ts of 0 is now, a count below 1 is 1. Returns
 * its id (> 0). Never fails, never blocks on I/O. */
int64_t ssp_audit_enqueue(ssp_audit_queue *queue, ssp_audit_record *rec);
/* Queues a copy of `fields`: the two above. The record's id (> 0), or -1
 * only when out of memory. */
int64_t ssp_audit_submit_record(ssp_audit_queue *queue, const ssp_audit_record *fields);
/* One denial's record, now: ssp_audit_submit_record's answer. */
int64_t ssp_audit_submit(ssp_audit_queue *queue, ssp_rule rule, ssp_callback callback, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school);
/* Waits until the record `id` is written (file store: fdatasync'ed;
 * PostgreSQL: committed, or fdatasync'ed in the spill file), at most
 * timeout_ms. 0 once written, -1 on timeout. Blocks: never on the reactor. */
int ssp_audit_wait_written(ssp_audit_queue *queue, int64_t id, int64_t timeout_ms);
/* Waits until every record queued so far is written, at most timeout_ms:
 * 0, or -1 with SSP_ERR_IO naming where they should go. Blocks. */
int ssp_audit_wait_flushed(ssp_audit_queue *queue, int64_t timeout_ms, ssp_error *err);
/* The id of the newest durable record (last_written_id), read under the
 * queue's mutex; never blocks on I/O. */
int64_t ssp_audit_last_written(ssp_audit_queue *queue);
/* How long records have waited with nothing written (ms at now_ms), 0 when
 * none waits: a store that cannot write shows here before any wait times
 * out. Never blocks on I/O. */
int64_t ssp_audit_stalled_ms_at(ssp_audit_queue *queue, int64_t now_ms);
/* The counters of ssp_audit_stats, read under the queue's mutex. */
void ssp_audit_queue_stats(ssp_audit_queue *queue, ssp_audit_stats *out);

/* ---- the writers' side ---- */

/* Waits until a record is queued (true), or the queue is stopping and
 * empty (false); timeout_ms < 0 waits without limit, else false on timeout. */
bool ssp_audit_wait_queued(ssp_audit_queue *queue, int64_t timeout_ms);
/* Takes up to max records (0: all) from the front: group commit, every
 * record queued so far goes in one write. False when the queue is empty. */
bool ssp_audit_take(ssp_audit_queue *queue, size_t max, ssp_audit_batch *batch);
/* The batch is durable: last_written_id = its last id, waiters woken, the
 * records freed. */
void ssp_audit_mark_written(ssp_audit_queue *queue, ssp_audit_batch *batch);
/* The write failed: the batch goes back to the front, in order, and the
 * write error is counted. */
void ssp_audit_put_back(ssp_audit_queue *queue, ssp_audit_batch *batch);
bool ssp_audit_is_empty(ssp_audit_queue *queue);
/* After a failed write: true at once when stopping, else waits up to ms
 * (or until a record arrives or stopping) and returns whether stopping. */
bool ssp_audit_pause(ssp_audit_queue *queue, int64_t ms);

/* ---- records as JSON ---- */

/* The record as stored (audit.jsonl, the spill file, the INSERT's rows):
 * kind, count, last_ts, action, group and reason only where they differ
 * from a single denial's. NULL when out of memory. */
json_t *ssp_audit_record_to_json(const ssp_audit_record *rec, const char *worker);
/* A stored record (parsed) as the queries answer it: every record has
 * kind and count; a denial has rule, callback and enforced, an action has
 * action, group and reason, and the other kind's keys are left out;
 * last_ts only on a summary. -1 when out of memory. */
int ssp_audit_record_complete(json_t *rec);
/* The ssp_audit_query result of both stores: {"records": records (not
 * stolen), "next": next, or null when next is NULL}. NULL when out of memory. */
json_t *ssp_audit_page(json_t *records, const char *next);
/* The filter's test of one parsed audit record (stored or completed). */
bool ssp_audit_matches(json_t *rec, const ssp_audit_filter *filter);

#endif
