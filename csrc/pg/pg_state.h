/*
 * The PostgreSQL store's state (pg_state.c): the struct its files share,
 * the last error that status shows, and the wake-up of its thread.
 *
 * Threads and connections
 * - `conn` belongs to the store thread (store_main, pg_store.c). Only
 *   open touches it before that thread starts, and close after it has been
 *   joined. Functions that use it are marked [store thread] (or [open]).
 * - `queries` serves audit queries, purges and the reconcile state for callers
 *   (Synapse's thread pool, the CLI), one at a time under its own mutex
 *   (pg_conn.c); marked [caller thread]. The binding calls these without
 *   the GIL.
 * - Decisions never come here: they read the in-memory roster.
 */
#ifndef SSP_PG_STATE_H
#define SSP_PG_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit_queue.h"
#include "error.h"
#include "journal.h"
#include "pg/pg_conn.h"
#include "store_ops.h"

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
    uint64_t reconcile_pending; /* COUNT(*) of the marks, refreshed by the store thread */
    char last_error[SSP_ERROR_MESSAGE_MAX];

    ssp_pg_session queries; /* [caller thread] */
} ssp_pgstore;

/* Sets last_error (shown by status), without its trailing newlines. */
void ssp_pg_set_error(ssp_pgstore *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wakes the store thread (an eventfd write; never blocks). */
void ssp_pg_wake(ssp_pgstore *pg);

#endif
