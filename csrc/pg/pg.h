/*
 * The PostgreSQL store's parts, seen only by its own files:
 *
 *   pg_conn.c        connections and queries: the only file that calls libpq
 *   pg_migrations.c  the schema, one SQL text per migration
 *   pg_roster.c      roster load (COPY text), NOTIFY sync, the roster outbox
 *   pg_audit.c       audit batches, the spill file, the audit and read-log queries
 *   pg_reconcile.c      the reconcile state's SQL
 *   pg_store.c       the store thread, open/close, the ops table (store_ops.h)
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
#ifndef SSP_PG_H
#define SSP_PG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit_queue.h"
#include "journal.h"
#include "store_ops.h"

/* ---- pg_conn.c: connections and queries ---- */

typedef struct ssp_pg_conn ssp_pg_conn; /* one libpq connection */
typedef struct ssp_pg_rows ssp_pg_rows; /* a result; independent of its connection */

/* A new connection, or NULL with SSP_ERR_UNAVAILABLE ("database: cannot
 * connect: ...") or SSP_ERR_NOMEM. */
ssp_pg_conn *ssp_pg_connect(const char *conninfo, ssp_error *err);
void ssp_pg_finish(ssp_pg_conn *conn);
/* Whether the connection is still up (after a failed query: SQL error or
 * lost connection). */
bool ssp_pg_alive(ssp_pg_conn *conn);
/* libpq's last message on conn, without its trailing newline. */
const char *ssp_pg_last_message(ssp_pg_conn *conn, char *buf, size_t size);
/* Runs sql with n text parameters (NULL: SQL NULL). want_rows: the
 * statement returns rows. On success returns the rows (free them with
 * ssp_pg_rows_free; a statement without rows returns them too, for
 * ssp_pg_affected). On failure NULL and err: SSP_ERR_DATABASE with the
 * server's message when the server refused the statement,
 * SSP_ERR_UNAVAILABLE when the connection is lost. The message is
 * "database: <what>: <server message>" (what may be NULL). */
ssp_pg_rows *ssp_pg_query(ssp_pg_conn *conn, const char *sql, int n, const char *const *params,
                          bool want_rows, const char *what, ssp_error *err);
/* The same, for a statement whose rows are not read. */
int ssp_pg_exec(ssp_pg_conn *conn, const char *sql, int n, const char *const *params,
                bool want_rows, const char *what, ssp_error *err);
/* Runs one or more statements without parameters (a migration, BEGIN,
 * LISTEN); errors as ssp_pg_query. */
int ssp_pg_script(ssp_pg_conn *conn, const char *sql, const char *what, ssp_error *err);
int ssp_pg_nrows(const ssp_pg_rows *rows);
const char *ssp_pg_value(const ssp_pg_rows *rows, int row, int col);
bool ssp_pg_isnull(const ssp_pg_rows *rows, int row, int col);
int64_t ssp_pg_int(const ssp_pg_rows *rows, int row, int col);
/* Rows a DELETE / UPDATE / INSERT touched. */
uint64_t ssp_pg_affected(const ssp_pg_rows *rows);
void ssp_pg_rows_free(ssp_pg_rows *rows);
/* COPY (...) TO STDOUT: calls row(ctx, data, len) for each row as the
 * server sent it (COPY text, ending in a newline; data is modifiable and
 * freed after the call). row returns 0, or -1 with err set to stop (the
 * rest of the COPY is drained so the connection stays usable). */
int ssp_pg_copy_out(ssp_pg_conn *conn, const char *sql,
                    int (*row)(void *ctx, char *data, size_t len, ssp_error *err), void *ctx,
                    ssp_error *err);
/* Reads what the server sent; *any is true when a notification arrived.
 * -1 when the connection is lost. */
int ssp_pg_notifications(ssp_pg_conn *conn, bool *any);
/* The socket to poll() for notifications. */
int ssp_pg_socket(ssp_pg_conn *conn);

/* The callers' connection: one at a time under mutex, connected on first
 * use, reconnected once when it was lost. */
typedef struct ssp_pg_session {
    const char *conninfo; /* borrowed */
    pthread_mutex_t mutex;
    ssp_pg_conn *conn;
} ssp_pg_session;

int ssp_pg_session_init(ssp_pg_session *session, const char *conninfo, ssp_error *err);
void ssp_pg_session_destroy(ssp_pg_session *session);
/* ssp_pg_query on the session's connection [caller thread]. */
ssp_pg_rows *ssp_pg_session_query(ssp_pg_session *session, const char *sql, int n,
                                  const char *const *params, bool want_rows, ssp_error *err);
int ssp_pg_session_exec(ssp_pg_session *session, const char *sql, int n,
                        const char *const *params, bool want_rows, ssp_error *err);

/* ---- pg_migrations.c ---- */

/* [open] or [store thread]: creates or upgrades the schema. */
int ssp_pg_migrate(ssp_pg_conn *conn, ssp_error *err);

/* ---- the store (pg_store.c) ---- */

extern const ssp_store_ops ssp_pg_store_ops;

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

/* pg_state.c: what the thread and the callers share */
/* Sets last_error (shown by status), without its trailing newlines. */
void ssp_pg_set_error(ssp_pgstore *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wakes the store thread (an eventfd write; never blocks). */
void ssp_pg_wake(ssp_pgstore *pg);

/* pg_roster.c */
/* [open] or [store thread]: the whole roster into *map (initialised by the
 * caller) and the change version into *version; writes the local cache. */
int ssp_pg_roster_load(ssp_pgstore *pg, ssp_pg_conn *conn, ssp_strmap *map, int64_t *version,
                       ssp_error *err);
/* [open]: the local cache (a missing file is an empty roster). */
int ssp_pg_roster_load_cache(ssp_pgstore *pg, ssp_strmap *map, ssp_error *err);
/* [store thread] Reloads everything / applies the changes since the last
 * version seen / pushes the outbox. -1 on a database error. */
int ssp_pg_roster_full_sync(ssp_pgstore *pg, ssp_error *err);
int ssp_pg_roster_incremental_sync(ssp_pgstore *pg, ssp_error *err);
int ssp_pg_roster_push_outbox(ssp_pgstore *pg, ssp_error *err);
bool ssp_pg_roster_outbox_waiting(ssp_pgstore *pg);
/* [caller thread] Appends to the local outbox (fsync) and wakes the thread. */
int ssp_pg_roster_append(ssp_store *store, const ssp_roster_change *changes, size_t n,
                         ssp_error *err);

/* pg_audit.c */
/* [open] Cuts a torn last line off the spill file and counts its records. */
int ssp_pg_audit_open_spill(ssp_pgstore *pg, ssp_error *err);
/* [store thread] Inserts everything queued: -1 on a database error, the
 * records back in the queue. */
int ssp_pg_audit_write_queue(ssp_pgstore *pg, ssp_error *err);
/* [store thread] While disconnected: everything queued to the spill file. */
void ssp_pg_audit_spill_queue(ssp_pgstore *pg);
/* [store thread] The spill file into the database, in order. */
int ssp_pg_audit_drain_spill(ssp_pgstore *pg, ssp_error *err);
bool ssp_pg_audit_spill_waiting(ssp_pgstore *pg);
int ssp_pg_audit_query(ssp_store *store, const ssp_audit_filter *filter, char **result_json,
                       ssp_error *err);
int ssp_pg_audit_chart(ssp_store *store, const ssp_audit_filter *filter, int64_t bucket_ms,
                       json_t **rows, ssp_error *err);
int ssp_pg_audit_purge(ssp_store *store, int64_t before_ms, uint64_t *deleted, ssp_error *err);
int ssp_pg_reads_append(ssp_store *store, json_t *record, ssp_error *err);
int ssp_pg_reads_query(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                       json_t **page, ssp_error *err);

/* pg_reconcile.c */
int ssp_pg_reconcile_mark(ssp_store *store, const char *const *schools, const char *const *user_ids,
                       size_t n, ssp_error *err);
int ssp_pg_reconcile_due(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err);
int ssp_pg_reconcile_done(ssp_store *store, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err);
int ssp_pg_reconcile_failed(ssp_store *store, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err);
int ssp_pg_reconcile_set_room(ssp_store *store, const char *school, const char *kind,
                           const char *room_id, ssp_error *err);
int ssp_pg_reconcile_get_room(ssp_store *store, const char *school, const char *kind,
                           char **room_id, ssp_error *err);
int ssp_pg_reconcile_sync_config(ssp_store *store, size_t *schools_changed, ssp_error *err);
int ssp_pg_reconcile_status(ssp_store *store, char **status_json, ssp_error *err);
int ssp_pg_reconcile_status_offline(const ssp_config *config, char **status_json, ssp_error *err);
/* [store thread] Refreshes the cached number of marks. */
int ssp_pg_reconcile_count_pending(ssp_pgstore *pg, ssp_error *err);

#endif
