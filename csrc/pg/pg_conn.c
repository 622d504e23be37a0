/*
 * Connections and queries: the only file of the engine that calls libpq.
 *
 * Locking rule. A connection (ssp_pg_conn, a PGconn) is used by one thread
 * at a time and libpq needs nothing more (distinct connections are
 * independent; PQisthreadsafe). The store thread's connection is its own:
 * nobody else touches it while the thread runs. The callers' connection is
 * an ssp_pg_session: every ssp_pg_session_* call takes the session's
 * mutex, uses the connection and releases the mutex before it returns, so
 * no caller ever holds that mutex across calls or while taking another
 * lock. A result (ssp_pg_rows, a PGresult) does not refer to its
 * connection and may be read after the mutex is released.
 *
 * Errors. A failed statement is SSP_ERR_DATABASE when the server refused
 * it on a live connection (its SQLSTATE is not a connection class): the
 * message is the server's, and retrying would not help. It is
 * SSP_ERR_UNAVAILABLE when the connection is lost or the server is going
 * away (SQLSTATE class 08, 57P01-57P03, 53300), and when the statement ran
 * out of time (57014 statement_timeout, 55P03 lock_timeout): a retry later
 * can succeed. ssp_pg_timed_out tells the last two from the others.
 */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pg/pg_conn.h"
#include "util.h"

#define CONNECT_TIMEOUT_S "3"

struct ssp_pg_conn {
    PGconn *pq;
    bool timed_out; /* the last failed statement ran out of time */
};

/* ssp_pg_rows is a PGresult: the cast is the whole wrapper. */
static PGresult *res_of(const ssp_pg_rows *rows)
{
    return (PGresult *)rows;
}

/* Server notices ("schema already exists, skipping") are of no interest
 * and must not reach stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void copy_message(char *buf, size_t size, const char *message)
{
    size_t len;

    snprintf(buf, size, "%s", message ? message : "");
    /* libpq messages end in a newline */
    len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
}

ssp_pg_conn *ssp_pg_connect(const char *conninfo, ssp_error *err)
{
    /* Expanded conninfo: the operator's string (keywords or URI) plus our
     * defaults, which it may override. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {CONNECT_TIMEOUT_S, "synapse_school_policy", conninfo, NULL};
    ssp_pg_conn *conn = malloc(sizeof *conn);
    char message[SSP_ERROR_MESSAGE_MAX];

    if (conn == NULL) {
        ssp_fail_nomem(err);
        return NULL;
    }
    conn->timed_out = false;
    conn->pq = PQconnectdbParams(keys, values, 1);
    if (conn->pq == NULL) {
        free(conn);
        ssp_fail_nomem(err);
        return NULL;
    }
    if (PQstatus(conn->pq) != CONNECTION_OK) {
        copy_message(message, sizeof message, PQerrorMessage(conn->pq));
        ssp_fail(err, SSP_ERR_UNAVAILABLE, "database: cannot connect: %s", message);
        PQfinish(conn->pq);
        free(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn->pq, ignore_notice, NULL);
    return conn;
}

void ssp_pg_finish(ssp_pg_conn *conn)
{
    if (conn == NULL)
        return;
    PQfinish(conn->pq);
    free(conn);
}

bool ssp_pg_alive(ssp_pg_conn *conn)
{
    return conn != NULL && PQstatus(conn->pq) == CONNECTION_OK;
}

bool ssp_pg_timed_out(ssp_pg_conn *conn)
{
    return conn != NULL && conn->timed_out && ssp_pg_alive(conn);
}

const char *ssp_pg_last_message(ssp_pg_conn *conn, char *buf, size_t size)
{
    copy_message(buf, size, conn ? PQerrorMessage(conn->pq) : "no connection");
    return buf;
}

/* Whether a failed statement was cancelled for running out of time: its
 * statement_timeout (57014) or lock_timeout (55P03). */
static bool sqlstate_timeout(const char *state)
{
    return state != NULL && (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0);
}

/* Whether a failed statement's SQLSTATE says the server or the link went
 * away, or the statement ran out of time, rather than that it was wrong. */
static bool sqlstate_unavailable(const char *state)
{
    if (state == NULL)
        return true; /* no answer from the server at all */
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
           strcmp(state, "53300") == 0 || sqlstate_timeout(state);
}

ssp_pg_rows *ssp_pg_query(ssp_pg_conn *conn, const char *sql, int n, const char *const *params,
                          bool want_rows, const char *what, ssp_error *err)
{
    PGresult *res = PQexecParams(conn->pq, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    char message[SSP_ERROR_MESSAGE_MAX];
    ssp_error_code code;

    if (status == (want_rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK))
        return (ssp_pg_rows *)res;
    conn->timed_out = status == PGRES_FATAL_ERROR && res != NULL &&
                      sqlstate_timeout(PQresultErrorField(res, PG_DIAG_SQLSTATE));
    copy_message(message, sizeof message,
                 res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                     : PQerrorMessage(conn->pq));
    code = PQstatus(conn->pq) != CONNECTION_OK ||
                   (status == PGRES_FATAL_ERROR &&
                    sqlstate_unavailable(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL))
               ? SSP_ERR_UNAVAILABLE
               : SSP_ERR_DATABASE;
    if (res != NULL && status != PGRES_FATAL_ERROR)
        /* an unexpected but valid answer (rows where none were expected) */
        snprintf(message, sizeof message, "unexpected result %s", PQresStatus(status));
    if (what != NULL)
        ssp_fail(err, code, "database: %s: %s", what, message);
    else
        ssp_fail(err, code, "database: %s", message);
    if (res != NULL)
        PQclear(res);
    return NULL;
}

int ssp_pg_exec(ssp_pg_conn *conn, const char *sql, int n, const char *const *params,
                bool want_rows, const char *what, ssp_error *err)
{
    ssp_pg_rows *rows = ssp_pg_query(conn, sql, n, params, want_rows, what, err);

    if (rows == NULL)
        return -1;
    ssp_pg_rows_free(rows);
    return 0;
}

int ssp_pg_script(ssp_pg_conn *conn, const char *sql, const char *what, ssp_error *err)
{
    PGresult *res = PQexec(conn->pq, sql);
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    char message[SSP_ERROR_MESSAGE_MAX];
    int rc = 0;

    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        ssp_error_code code;

        conn->timed_out =
            res != NULL && sqlstate_timeout(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        code =
            PQstatus(conn->pq) != CONNECTION_OK ||
                    sqlstate_unavailable(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL)
                ? SSP_ERR_UNAVAILABLE
                : SSP_ERR_DATABASE;

        ssp_pg_last_message(conn, message, sizeof message);
        rc = what ? ssp_fail(err, code, "database: %s: %s", what, message)
                  : ssp_fail(err, code, "database: %s", message);
    }
    if (res != NULL)
        PQclear(res);
    return rc;
}

int ssp_pg_nrows(const ssp_pg_rows *rows)
{
    return PQntuples(res_of(rows));
}

const char *ssp_pg_value(const ssp_pg_rows *rows, int row, int col)
{
    return PQgetvalue(res_of(rows), row, col);
}

bool ssp_pg_isnull(const ssp_pg_rows *rows, int row, int col)
{
    return PQgetisnull(res_of(rows), row, col) != 0;
}

int64_t ssp_pg_int(const ssp_pg_rows *rows, int row, int col)
{
    return strtoll(PQgetvalue(res_of(rows), row, col), NULL, 10);
}

uint64_t ssp_pg_affected(const ssp_pg_rows *rows)
{
    return strtoull(PQcmdTuples(res_of(rows)), NULL, 10);
}

void ssp_pg_rows_free(ssp_pg_rows *rows)
{
    if (rows != NULL)
        PQclear(res_of(rows));
}

/* After a failure in the middle of a COPY: reads what is left so the
 * connection can run the next statement. */
static void drain_copy(PGconn *pq)
{
    char *buf = NULL;
    PGresult *res;

    while (PQgetCopyData(pq, &buf, 0) > 0) {
        PQfreemem(buf);
        buf = NULL;
    }
    while ((res = PQgetResult(pq)) != NULL)
        PQclear(res);
}

int ssp_pg_copy_out(ssp_pg_conn *conn, const char *sql,
                    int (*row)(void *ctx, char *data, size_t len, ssp_error *err), void *ctx,
                    ssp_error *err)
{
    PGresult *res = PQexec(conn->pq, sql);
    char *buf = NULL, message[SSP_ERROR_MESSAGE_MAX];
    int n, rc = 0;

    if (res == NULL || PQresultStatus(res) != PGRES_COPY_OUT) {
        bool alive = PQstatus(conn->pq) == CONNECTION_OK && res != NULL;

        ssp_fail(err, alive ? SSP_ERR_DATABASE : SSP_ERR_UNAVAILABLE, "database: %s",
                 ssp_pg_last_message(conn, message, sizeof message));
        if (res != NULL)
            PQclear(res);
        return -1;
    }
    PQclear(res);
    /* Each row arrives as one buffer ending in a newline. */
    while ((n = PQgetCopyData(conn->pq, &buf, 0)) > 0) {
        rc = row(ctx, buf, (size_t)n, err);
        PQfreemem(buf);
        buf = NULL;
        if (rc != 0) {
            drain_copy(conn->pq);
            return -1;
        }
    }
    if (n == -2)
        return ssp_fail(err, SSP_ERR_UNAVAILABLE, "database: %s",
                        ssp_pg_last_message(conn, message, sizeof message));
    res = PQgetResult(conn->pq);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = ssp_fail(err, PQstatus(conn->pq) == CONNECTION_OK ? SSP_ERR_DATABASE
                                                               : SSP_ERR_UNAVAILABLE,
                      "database: %s", ssp_pg_last_message(conn, message, sizeof message));
    while (res != NULL) {
        PQclear(res);
        res = PQgetResult(conn->pq);
    }
    return rc;
}

void ssp_pg_copy_unescape(char *s)
{
    char *out = s;

    /* What COPY TO writes: \\ and the escapes of BS, FF, LF, CR, TAB, VT. */
    for (; *s; s++) {
        if (*s == '\\' && s[1] != '\0') {
            s++;
            switch (*s) {
            case 'b': *out++ = '\b'; break;
            case 'f': *out++ = '\f'; break;
            case 'n': *out++ = '\n'; break;
            case 'r': *out++ = '\r'; break;
            case 't': *out++ = '\t'; break;
            case 'v': *out++ = '\v'; break;
            default: *out++ = *s; break;
            }
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

int ssp_pg_notifications(ssp_pg_conn *conn, bool *any)
{
    PGnotify *note;

    *any = false;
    if (PQconsumeInput(conn->pq) == 0)
        return -1;
    while ((note = PQnotifies(conn->pq)) != NULL) {
        *any = true;
        PQfreemem(note);
    }
    return 0;
}

int ssp_pg_socket(ssp_pg_conn *conn)
{
    return PQsocket(conn->pq);
}

/* ---- the callers' sessions ---- */

int ssp_pg_session_init_with(ssp_pg_session *session, const char *conninfo, const char *setup,
                             int64_t wait_ms, ssp_error *err)
{
    session->conn = NULL;
    session->setup = setup;
    session->wait_ms = wait_ms;
    if (pthread_mutex_init(&session->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the query mutex");
    session->conninfo = conninfo; /* also: initialised */
    return 0;
}

int ssp_pg_session_init(ssp_pg_session *session, const char *conninfo, ssp_error *err)
{
    return ssp_pg_session_init_with(session, conninfo, NULL, 0, err);
}

void ssp_pg_session_destroy(ssp_pg_session *session)
{
    if (session->conninfo == NULL)
        return; /* never initialised */
    ssp_pg_finish(session->conn);
    session->conn = NULL;
    pthread_mutex_destroy(&session->mutex);
    session->conninfo = NULL;
}

/* The query on the session's connection, its mutex held. */
static ssp_pg_rows *session_query_locked(ssp_pg_session *session, const char *sql, int n,
                                         const char *const *params, bool want_rows,
                                         ssp_error *err)
{
    ssp_pg_rows *rows = NULL;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (session->conn == NULL) {
            session->conn = ssp_pg_connect(session->conninfo, err);
            if (session->conn == NULL)
                break;
            if (session->setup != NULL &&
                ssp_pg_script(session->conn, session->setup, NULL, err) != 0) {
                ssp_pg_finish(session->conn);
                session->conn = NULL;
                break;
            }
        }
        rows = ssp_pg_query(session->conn, sql, n, params, want_rows, NULL, err);
        /* Done, an SQL error or a timeout: retrying would not help. */
        if (rows != NULL || ssp_pg_alive(session->conn))
            break;
        /* The connection was lost (a database restart): once more on a
         * new one. */
        ssp_pg_finish(session->conn);
        session->conn = NULL;
    }
    return rows;
}

ssp_pg_rows *ssp_pg_session_query(ssp_pg_session *session, const char *sql, int n,
                                  const char *const *params, bool want_rows, ssp_error *err)
{
    ssp_pg_rows *rows;

    if (session->wait_ms > 0) {
        struct timespec until;

        ssp_deadline_after_ms(&until, session->wait_ms);
        if (pthread_mutex_timedlock(&session->mutex, &until) != 0) {
            ssp_fail(err, SSP_ERR_UNAVAILABLE,
                     "database: busy: the connection for this query was taken by others for "
                     "%lld ms; try again",
                     (long long)session->wait_ms);
            return NULL;
        }
    } else {
        pthread_mutex_lock(&session->mutex);
    }
    rows = session_query_locked(session, sql, n, params, want_rows, err);
    pthread_mutex_unlock(&session->mutex);
    return rows;
}

ssp_pg_rows *ssp_pg_pool_query(ssp_pg_session *sessions, size_t n_sessions, unsigned *next,
                               const char *sql, int n, const char *const *params,
                               bool want_rows, ssp_error *err)
{
    ssp_pg_rows *rows;

    /* A free one first; else wait for one, in turn, at most its wait_ms. */
    for (size_t i = 0; i < n_sessions; i++) {
        if (pthread_mutex_trylock(&sessions[i].mutex) == 0) {
            rows = session_query_locked(&sessions[i], sql, n, params, want_rows, err);
            pthread_mutex_unlock(&sessions[i].mutex);
            return rows;
        }
    }
    return ssp_pg_session_query(&sessions[__atomic_fetch_add(next, 1, __ATOMIC_RELAXED) %
                                          n_sessions],
                                sql, n, params, want_rows, err);
}

int ssp_pg_session_exec(ssp_pg_session *session, const char *sql, int n,
                        const char *const *params, bool want_rows, ssp_error *err)
{
    ssp_pg_rows *rows = ssp_pg_session_query(session, sql, n, params, want_rows, err);

    if (rows == NULL)
        return -1;
    ssp_pg_rows_free(rows);
    return 0;
}
