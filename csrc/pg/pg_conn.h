/*
 * Connections and queries (pg_conn.c): the only file that calls libpq. The
 * store thread uses its own connection; callers share one session.
 */
#ifndef SSP_PG_CONN_H
#define SSP_PG_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct ssp_pg_conn ssp_pg_conn; /* one libpq connection */
typedef struct ssp_pg_rows ssp_pg_rows; /* a result; independent of its connection */

/* A new connection, or NULL with SSP_ERR_UNAVAILABLE ("database: cannot
 * connect: ...") or SSP_ERR_NOMEM. */
ssp_pg_conn *ssp_pg_connect(const char *conninfo, ssp_error *err);
void ssp_pg_finish(ssp_pg_conn *conn);
/* Whether the connection is still up (after a failed query: SQL error or
 * lost connection). */
bool ssp_pg_alive(ssp_pg_conn *conn);
/* Whether the last failed statement on conn was cancelled for running out
 * of time (statement_timeout or lock_timeout) and the connection is up. */
bool ssp_pg_timed_out(ssp_pg_conn *conn);
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
/* Undoes COPY TO's text escapes of one field in place (\\, \b, \f, \n, \r,
 * \t, \v; any other escaped byte stands for itself). */
void ssp_pg_copy_unescape(char *field);
/* Reads what the server sent; *any is true when a notification arrived.
 * -1 when the connection is lost. */
int ssp_pg_notifications(ssp_pg_conn *conn, bool *any);
/* The socket to poll() for notifications. */
int ssp_pg_socket(ssp_pg_conn *conn);

/* The callers' connection: one at a time under mutex, connected on first
 * use, reconnected once when it was lost. */
typedef struct ssp_pg_session {
    const char *conninfo; /* borrowed */
    const char *setup;    /* borrowed: run on every new connection (SETs), or NULL */
    int64_t wait_ms;      /* a caller waits this long for the connection, then fails
                           * SSP_ERR_UNAVAILABLE; 0: as long as it takes */
    pthread_mutex_t mutex;
    ssp_pg_conn *conn;
} ssp_pg_session;

int ssp_pg_session_init(ssp_pg_session *session, const char *conninfo, ssp_error *err);
/* The same, with the setup of each new connection and the longest wait. */
int ssp_pg_session_init_with(ssp_pg_session *session, const char *conninfo, const char *setup,
                             int64_t wait_ms, ssp_error *err);
void ssp_pg_session_destroy(ssp_pg_session *session);
/* ssp_pg_query on the session's connection [caller thread]. */
ssp_pg_rows *ssp_pg_session_query(ssp_pg_session *session, const char *sql, int n,
                                  const char *const *params, bool want_rows, ssp_error *err);
int ssp_pg_session_exec(ssp_pg_session *session, const char *sql, int n,
                        const char *const *params, bool want_rows, ssp_error *err);
/* ssp_pg_query on whichever of n_sessions is free [caller thread]; when
 * none is, waits for one in turn (*next counts the turns). */
ssp_pg_rows *ssp_pg_pool_query(ssp_pg_session *sessions, size_t n_sessions, unsigned *next,
                               const char *sql, int n, const char *const *params,
                               bool want_rows, ssp_error *err);

#endif
