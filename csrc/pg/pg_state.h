/*
 * The PostgreSQL store's state (pg_state.c): the struct its files share,
 * the last error that status shows, and the wake-up of its thread.
 *
 * Threads and connections
 * - `conn` belongs to the store thread (store_main, pg_store.c). Only
 *   open touches it before that thread starts, and close after it has been
 *   joined. Functions that use it are marked [store thread] (or [open]).
 * - `queries` serves the read log's appends, purges and the reconcile state
 *   for callers (the module's thread pools, the CLI), one at a time under
 *   its own mutex (pg_conn.c); marked [caller thread]. The binding calls
 *   these without the GIL.
 * - `readers` (two connections) serve the audit's readers: pages, the
 *   chart, the read log. Each runs with statement_timeout, read only, so a
 *   slow or piled-up read never holds `queries` (the reconciler's ledger,
 *   GET /status) nor the store thread's writes; a read that runs out of
 *   time, or waits out its turn, fails SSP_ERR_UNAVAILABLE (503).
 * - Decisions never come here: they read the in-memory roster.
 */
#ifndef SSP_PG_STATE_H
#define SSP_PG_STATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit_queue.h"
#include "error.h"
#include "journal.h"
#include "pg/pg_conn.h"
#include "store_ops.h"

/* The audit's readers: how many connections, how long a statement may run
 * (and a caller may wait for a connection), in ms. */
#define SSP_PG_READERS 2
#define SSP_PG_READER_TIMEOUT_MS 5000
/* How long the store thread's statements wait for a lock before they give
 * up: a locked audit table spills to the file instead of stalling. */
#define SSP_PG_WRITER_LOCK_TIMEOUT_MS 1000

typedef struct ssp_pgstore {
    ssp_store base;
    const ssp_store_env *env; /* config, roster, write_mutex */
    ssp_audit_queue *audit;     /* the queue the thread drains (from start) */
    char *conninfo;
    char *origin; /* "<worker>/<boot id>": audit records' origin */
    char *spill_path;
    char *cache_path;
    char *lock_path;
    int lock_fd;
    int wake_fd; /* eventfd: audit submits and roster writes wake the thread */

    ssp_pg_conn *conn; /* [store thread] */
    int64_t last_connect_attempt_ms;
    /* [store thread] While a table will not take the store thread's writes
     * (a lock held past SSP_PG_WRITER_LOCK_TIMEOUT_MS): audit records go to
     * the spill file, roster pushes wait, until these times. */
    int64_t audit_retry_ms;
    int64_t roster_retry_ms;
    bool roster_catching_up; /* [store thread] more roster changes wait to be read */
    bool groups_catching_up; /* [store thread] more group changes wait to be read */
    int64_t last_maintenance_ms;
    int64_t last_pending_count_ms; /* [store thread] */
    int spill_fd;             /* [store thread] */
    off_t spill_drained;      /* [store thread] bytes of the spill file already in the database */
    ssp_journal outbox;       /* appended under env->write_mutex */
    off_t outbox_pushed;      /* under env->write_mutex */

    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mutex; /* guards what follows */
    bool stopping;
    bool connected;
    uint64_t audit_spilled_total;
    uint64_t audit_spill_pending;
    uint64_t outbox_pending;
    uint64_t connects;
    int64_t roster_version;
    int64_t groups_version; /* last group change version applied */
    /* Group ids to read again: a write of this process that the database
     * left alone for its version (a JSON array, or NULL). */
    json_t *groups_recheck;
    uint64_t reconcile_pending; /* COUNT(*) of the marks, refreshed by the store thread */
    char last_error[SSP_ERROR_MESSAGE_MAX];

    ssp_pg_session queries; /* [caller thread] */
    ssp_pg_session readers[SSP_PG_READERS]; /* [caller thread] */
    unsigned readers_turn;
} ssp_pgstore;

/* Sets last_error (shown by status), without its trailing newlines. */
void ssp_pg_set_error(ssp_pgstore *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wakes the store thread (an eventfd write; never blocks). */
void ssp_pg_wake(ssp_pgstore *pg);

#endif
