/*
 * The PostgreSQL store (config key `database`): roster, audit log, read log
 * and reconcile state in PostgreSQL, shared by every Synapse process.
 * This file: the store thread, open and close, and the ops table
 * (store_ops.h). Its parts: pg_conn.c (the only libpq caller),
 * pg_migrations.c, pg_roster.c, pg_groups.c, pg_audit.c, pg_reconcile.c,
 * and pg_state.c (the state they share, with the threading rules).
 *
 * What the store thread does, in a loop
 * 1. While disconnected: try to connect every RECONNECT_MS, and write every
 *    queued audit record to the spill file (fdatasync) so that a crash
 *    during an outage loses no more than a crash while connected.
 * 2. On (re)connect: apply migrations, LISTEN, push the roster outbox, reload
 *    the whole roster and every group (each swapped in under the write
 *    lock), drain the spill file in order.
 * 3. While connected: push roster outbox entries, write queued audit records
 *    in multi-row INSERTs, and apply change notifications by reading
 *    school_policy.roster_changes and school_policy.group_changes since the
 *    last versions seen.
 * 4. While a table will not take its writes (a lock held for longer than
 *    SSP_PG_WRITER_LOCK_TIMEOUT_MS: the connection is fine): audit records
 *    go to the spill file, durable as during an outage, and both the
 *    INSERT and the roster push are tried again a second later. A locked
 *    audit table thus never holds a denial's answer for longer than that.
 *
 * A process restarted during an outage starts from the local roster and
 * group caches (the last full loads, data_dir/<worker>.roster-cache and
 * <worker>.groups-cache) plus its roster outbox.
 *
 * Ownership: the store owns every string, fd and connection it opens; the
 * roster, its write mutex and the audit queue are the engine's (borrowed).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg/pg_audit.h"
#include "pg/pg_reads.h"
#include "pg/pg_conn.h"
#include "pg/pg_groups.h"
#include "pg/pg_migrations.h"
#include "pg/pg_reconcile.h"
#include "pg/pg_roster.h"
#include "pg/pg_state.h"
#include "pg/pg_store.h"
#include "util.h"

#define RECONNECT_MS 1000
#define IDLE_WAIT_MS 1000
#define STALL_RETRY_MS 1000 /* a table that did not take a write: try it again after */

#define STRINGIFY(x) #x
#define AS_TEXT(x) STRINGIFY(x)
/* The store thread's connection, once migrated (a migration may wait for
 * another process's, so it has no lock timeout). */
static const char WRITER_SETUP_SQL[] = "SET lock_timeout = " AS_TEXT(SSP_PG_WRITER_LOCK_TIMEOUT_MS);
/* The store thread's channels: roster and group changes. */
static const char LISTEN_SQL[] = "LISTEN school_policy_roster; LISTEN " SSP_PG_GROUPS_CHANNEL;
/* The audit's readers: a query runs at most this long, reads only, and
 * never sits in an open transaction. */
static const char READER_SETUP_SQL[] =
    "SET statement_timeout = " AS_TEXT(SSP_PG_READER_TIMEOUT_MS) ";"
    "SET default_transaction_read_only = on;"
    "SET idle_in_transaction_session_timeout = " AS_TEXT(SSP_PG_READER_TIMEOUT_MS);
#define MAINTENANCE_MS (3600 * 1000)
#define PENDING_COUNT_MS 1000 /* refresh of the cached reconcile_pending count */

/* ---- small helpers ---- */

static void set_connected(ssp_pgstore *pg, bool connected)
{
    pthread_mutex_lock(&pg->mutex);
    pg->connected = connected;
    if (connected) {
        pg->connects++;
        pg->last_error[0] = '\0';
    }
    pthread_mutex_unlock(&pg->mutex);
}

static bool is_stopping(ssp_pgstore *pg)
{
    bool stopping;

    pthread_mutex_lock(&pg->mutex);
    stopping = pg->stopping;
    pthread_mutex_unlock(&pg->mutex);
    return stopping;
}

/* File names carry the worker name; keep them to a safe alphabet. */
static char *worker_file(const char *data_dir, const char *worker, const char *suffix)
{
    size_t wlen = strlen(worker);
    char *name = malloc(wlen + strlen(suffix) + 1), *path;

    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < wlen; i++) {
        char c = worker[i];

        name[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.')
                      ? c
                      : '_';
    }
    strcpy(name + wlen, suffix);
    path = ssp_path_join(data_dir, name);
    free(name);
    return path;
}

/* ---- the store thread ---- */

static void disconnect(ssp_pgstore *pg, const char *why)
{
    if (pg->conn != NULL) {
        char message[SSP_ERROR_MESSAGE_MAX];

        ssp_pg_set_error(pg, "%s", why && why[0] ? why
                                                  : ssp_pg_last_message(pg->conn, message,
                                                                        sizeof message));
        ssp_pg_finish(pg->conn); /* [store thread] */
        pg->conn = NULL;
    }
    set_connected(pg, false);
}

/* [store thread] Connects and catches up: migrations, LISTEN, outbox,
 * roster, spill. Leaves pg->conn NULL on failure. */
static void try_connect(ssp_pgstore *pg)
{
    ssp_error err = {0};

    pg->last_connect_attempt_ms = ssp_now_ms();
    pg->conn = ssp_pg_connect(pg->conninfo, &err);
    if (pg->conn == NULL) {
        ssp_pg_set_error(pg, "%s", err.message);
        return;
    }
    if (ssp_pg_migrate(pg->conn, &err) != 0 ||
        ssp_pg_script(pg->conn, WRITER_SETUP_SQL, NULL, &err) != 0 ||
        ssp_pg_script(pg->conn, LISTEN_SQL, NULL, &err) != 0 ||
        ssp_pg_roster_push_outbox(pg, &err) != 0 || ssp_pg_roster_full_sync(pg, &err) != 0 ||
        ssp_pg_groups_full_sync(pg, &err) != 0 || ssp_pg_audit_drain_spill(pg, &err) != 0) {
        disconnect(pg, err.message);
        return;
    }
    set_connected(pg, true);
}

/* [store thread] Retention: audit records and read-log records past
 * audit.retention_days, and roster and group change log entries older than
 * a day. */
static void maintenance(ssp_pgstore *pg)
{
    char sql[256];
    ssp_error err;

    pg->last_maintenance_ms = ssp_now_ms();
    if (pg->env->config->audit_retention_days > 0) {
        snprintf(sql, sizeof sql,
                 "DELETE FROM school_policy.audit WHERE ts < now() - interval '%lld days'",
                 (long long)pg->env->config->audit_retention_days);
        (void)ssp_pg_script(pg->conn, sql, NULL, &err);
        snprintf(sql, sizeof sql,
                 "DELETE FROM school_policy.audit_reads WHERE ts < now() - interval '%lld days'",
                 (long long)pg->env->config->audit_retention_days);
        (void)ssp_pg_script(pg->conn, sql, NULL, &err);
    }
    (void)ssp_pg_script(pg->conn,
                        "DELETE FROM school_policy.roster_changes WHERE changed_at < now() - "
                        "interval '1 day' AND version < (SELECT max(version) FROM "
                        "school_policy.roster_changes)",
                        NULL, &err);
    (void)ssp_pg_script(pg->conn,
                        "DELETE FROM school_policy.group_changes WHERE changed_at < now() - "
                        "interval '1 day' AND version < (SELECT max(version) FROM "
                        "school_policy.group_changes)",
                        NULL, &err);
}

static bool groups_recheck_waiting(ssp_pgstore *pg)
{
    bool waiting;

    pthread_mutex_lock(&pg->mutex);
    waiting = pg->groups_recheck != NULL;
    pthread_mutex_unlock(&pg->mutex);
    return waiting;
}

static void wait_for_work(ssp_pgstore *pg, int timeout_ms)
{
    struct pollfd fds[2];
    nfds_t n = 1;
    uint64_t counter;

    fds[0].fd = pg->wake_fd;
    fds[0].events = POLLIN;
    if (pg->conn != NULL) {
        fds[1].fd = ssp_pg_socket(pg->conn);
        fds[1].events = POLLIN;
        n = 2;
    }
    if (poll(fds, n, timeout_ms) > 0 && (fds[0].revents & POLLIN)) {
        if (read(pg->wake_fd, &counter, sizeof counter) < 0) {
            /* EAGAIN: nothing to read */
        }
    }
}

static void *store_main(void *arg)
{
    ssp_pgstore *pg = arg;

    for (;;) {
        bool stopping = is_stopping(pg);
        ssp_error err = {0};

        if (pg->conn == NULL) {
            if (!stopping && ssp_now_ms() - pg->last_connect_attempt_ms >= RECONNECT_MS)
                try_connect(pg);
            if (pg->conn == NULL) {
                ssp_pg_audit_spill_queue(pg);
                if (stopping)
                    break;
                wait_for_work(pg, RECONNECT_MS / 4);
                continue;
            }
        }
        if (ssp_pg_roster_outbox_waiting(pg) && ssp_now_ms() >= pg->roster_retry_ms &&
            ssp_pg_roster_push_outbox(pg, &err) != 0) {
            if (!ssp_pg_timed_out(pg->conn)) {
                disconnect(pg, err.message);
                continue;
            }
            /* The roster is locked: the outbox keeps the changes. */
            ssp_pg_set_error(pg, "%s", err.message);
            pg->roster_retry_ms = ssp_now_ms() + STALL_RETRY_MS;
        }
        if (ssp_now_ms() < pg->audit_retry_ms) {
            ssp_pg_audit_spill_queue(pg);
        } else if ((ssp_pg_audit_spill_waiting(pg) && ssp_pg_audit_drain_spill(pg, &err) != 0) ||
                   ssp_pg_audit_write_queue(pg, &err) != 0) {
            if (!ssp_pg_timed_out(pg->conn)) {
                disconnect(pg, err.message);
                continue;
            }
            /* The audit table is locked (or the server too slow to take a
             * lock): what waits goes to the spill file, in order behind
             * what is there, and is inserted once the table takes it. */
            ssp_pg_set_error(pg, "%s", err.message);
            pg->audit_retry_ms = ssp_now_ms() + STALL_RETRY_MS;
            ssp_pg_audit_spill_queue(pg);
        }
        if (stopping)
            break;
        if (ssp_now_ms() - pg->last_maintenance_ms >= MAINTENANCE_MS)
            maintenance(pg);
        if (ssp_now_ms() - pg->last_pending_count_ms >= PENDING_COUNT_MS &&
            ssp_pg_reconcile_count_pending(pg, &err) != 0) {
            disconnect(pg, err.message);
            continue;
        }
        /* Last before sleeping: a notification that arrived while another
         * statement ran is already in libpq's buffer, and poll() on the
         * socket would not see it. */
        {
            bool changed = false, idle;

            if (ssp_pg_notifications(pg->conn, &changed) != 0) {
                disconnect(pg, NULL);
                continue;
            }
            /* One channel or the other: each change log is read from the
             * last version seen (nothing when none). Kept in the flags, so
             * that no notification is lost by a `continue` below. */
            if (changed)
                pg->roster_catching_up = pg->groups_catching_up = true;
            if (groups_recheck_waiting(pg)) {
                if (ssp_pg_groups_recheck(pg, &err) != 0)
                    disconnect(pg, err.message);
                continue; /* look again before sleeping */
            }
            if (pg->roster_catching_up || pg->groups_catching_up) {
                int more = pg->roster_catching_up ? ssp_pg_roster_incremental_sync(pg, &err) : 0;
                int more_groups = more >= 0 && pg->groups_catching_up
                                      ? ssp_pg_groups_incremental_sync(pg, &err)
                                      : 0;

                if (more < 0 || more_groups < 0) {
                    disconnect(pg, err.message);
                    continue;
                }
                /* a large change comes in pieces, with the audit written
                 * between them */
                pg->roster_catching_up = more > 0;
                pg->groups_catching_up = more_groups > 0;
                continue; /* look again before sleeping */
            }
            idle = ssp_audit_is_empty(pg->audit);
            if (idle && (!ssp_pg_roster_outbox_waiting(pg) || ssp_now_ms() < pg->roster_retry_ms))
                wait_for_work(pg, IDLE_WAIT_MS);
        }
    }
    if (pg->conn != NULL) {
        ssp_pg_finish(pg->conn); /* [store thread] */
        pg->conn = NULL;
    }
    return NULL;
}

/* ---- open and close ---- */

static void pgstore_free(ssp_pgstore *pg)
{
    if (pg == NULL)
        return;
    ssp_pg_session_destroy(&pg->queries);
    for (size_t i = 0; i < SSP_PG_READERS; i++)
        ssp_pg_session_destroy(&pg->readers[i]);
    ssp_pg_finish(pg->conn);
    ssp_journal_close(&pg->outbox);
    if (pg->spill_fd >= 0)
        close(pg->spill_fd);
    if (pg->wake_fd >= 0)
        close(pg->wake_fd);
    if (pg->lock_fd >= 0)
        close(pg->lock_fd);
    free(pg->conninfo);
    free(pg->origin);
    free(pg->spill_path);
    free(pg->cache_path);
    free(pg->lock_path);
    json_decref(pg->groups_recheck);
    pthread_mutex_destroy(&pg->mutex);
    free(pg);
}

static void pg_close(ssp_store *store)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;

    if (pg == NULL)
        return;
    if (pg->thread_started) {
        /* The thread writes (or spills) what is queued before it ends. */
        pthread_mutex_lock(&pg->mutex);
        pg->stopping = true;
        pthread_mutex_unlock(&pg->mutex);
        ssp_pg_wake(pg);
        pthread_join(pg->thread, NULL);
    }
    pgstore_free(pg);
}

/* Roster changes not yet in the database, from before a restart: replayed
 * on top of what the database (or the cache) says. */
static int replay_outbox(ssp_pgstore *pg, const char *outbox_name, ssp_error *err)
{
    ssp_journal replay;

    if (ssp_journal_open_named(&replay, pg->env->config->data_dir, outbox_name, pg->env->roster,
                               false, err) != 0)
        return -1;
    pg->outbox_pending = replay.lines;
    ssp_journal_close(&replay);
    return 0;
}

/* [open] Loads the roster (into *map, on pg->conn) and, at the same time,
 * the groups (into the index, on a connection and thread of their own):
 * two cores share a load of 1,000,000 users and 150,000 groups. */
static int load_from_database(ssp_pgstore *pg, ssp_strmap *map, int64_t *version,
                              int64_t *groups_version, ssp_error *err)
{
    ssp_pg_groups_open groups;
    ssp_error groups_err = {0};
    int rc;

    if (ssp_pg_groups_open_start(pg, &groups, err) != 0)
        return -1;
    rc = ssp_pg_roster_load(pg, pg->conn, map, version, err);
    if (ssp_pg_groups_open_finish(&groups, groups_version, &groups_err) != 0 && rc == 0) {
        *err = groups_err;
        rc = -1;
    }
    return rc;
}

static int pg_open(const ssp_store_env *env, ssp_store **out, ssp_store_opened *opened,
                   ssp_error *err)
{
    const ssp_config *config = env->config;
    const char *worker = env->worker_name;
    ssp_pgstore *pg;
    unsigned char boot[8];
    char boot_hex[17];
    char *outbox_name = NULL;
    ssp_strmap map, groups;
    ssp_error db_err = {0};
    int64_t version = 0, groups_version = 0;

    *out = NULL;
    if (config->data_dir == NULL)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "data_dir: required with database too: it holds the spill files that keep "
                        "audit records and roster changes while the database is unreachable");
    pg = calloc(1, sizeof *pg);
    if (pg == NULL)
        return ssp_fail_nomem(err);
    pg->base.ops = &ssp_pg_store_ops;
    pg->env = env;
    pg->spill_fd = pg->wake_fd = pg->lock_fd = -1;
    pg->outbox.fd = -1;
    pthread_mutex_init(&pg->mutex, NULL);
    ssp_strmap_init(&map);
    ssp_strmap_init(&groups);
    if (getrandom(boot, sizeof boot, 0) != (ssize_t)sizeof boot) {
        uint64_t fallback = (uint64_t)ssp_now_ms() ^ ((uint64_t)getpid() << 32);

        memcpy(boot, &fallback, sizeof boot);
    }
    for (size_t i = 0; i < sizeof boot; i++)
        snprintf(boot_hex + 2 * i, 3, "%02x", boot[i]);
    pg->conninfo = ssp_strdup(config->database);
    pg->origin = malloc(strlen(worker) + sizeof boot_hex + 1);
    pg->spill_path = worker_file(config->data_dir, worker, ".audit-spill.jsonl");
    pg->cache_path = worker_file(config->data_dir, worker, ".roster-cache");
    pg->lock_path = worker_file(config->data_dir, worker, ".lock");
    /* worker_file("", ...) gives "/<name>": the name is what follows the slash. */
    outbox_name = worker_file("", worker, ".roster-outbox.jsonl");
    if (pg->conninfo == NULL || pg->origin == NULL || pg->spill_path == NULL ||
        pg->cache_path == NULL || pg->lock_path == NULL || outbox_name == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    if (ssp_pg_session_init(&pg->queries, pg->conninfo, err) != 0)
        goto fail;
    for (size_t i = 0; i < SSP_PG_READERS; i++) {
        if (ssp_pg_session_init_with(&pg->readers[i], pg->conninfo, READER_SETUP_SQL,
                                     SSP_PG_READER_TIMEOUT_MS, err) != 0)
            goto fail;
    }
    sprintf(pg->origin, "%s/%s", worker, boot_hex);
    pg->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pg->wake_fd < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot create an eventfd: %s", strerror(errno));
        goto fail;
    }
    /* The outbox journal creates data_dir; open it first with an empty
     * roster and replay it below, on top of what the database says. */
    {
        ssp_roster scratch;
        int rc;

        if (ssp_roster_init(&scratch, err) != 0)
            goto fail;
        scratch.server_name = env->server_name;
        rc = ssp_journal_open_named(&pg->outbox, config->data_dir, outbox_name + 1, &scratch,
                                    false, err);
        ssp_roster_destroy(&scratch);
        if (rc != 0)
            goto fail;
    }
    pg->lock_fd = open(pg->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (pg->lock_fd < 0 || flock(pg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (env->offline)
            ssp_fail(err, SSP_ERR_STATE,
                     "another synapse-school-policy command is using the store (data_dir: %s "
                     "is locked); run one command at a time",
                     pg->lock_path);
        else
            ssp_fail(err, SSP_ERR_STATE,
                     "data_dir: %s is in use by another process; give every Synapse worker its "
                     "own worker_name or data_dir",
                     pg->lock_path);
        goto fail;
    }
    if (ssp_pg_audit_open_spill(pg, err) != 0)
        goto fail;

    /* [open] Connect and load. An unreachable database is not fatal: start
     * from the cache and let the thread reconnect. A database that answers
     * but refuses (bad schema version, permissions) is. */
    pg->conn = ssp_pg_connect(pg->conninfo, &db_err);
    if (pg->conn == NULL && db_err.code == SSP_ERR_NOMEM) {
        *err = db_err;
        goto fail;
    }
    if (pg->conn != NULL) {
        if (ssp_pg_migrate(pg->conn, &db_err) != 0) {
            if (db_err.code == SSP_ERR_STATE || ssp_pg_alive(pg->conn)) {
                *err = db_err;
                goto fail;
            }
            ssp_pg_finish(pg->conn);
            pg->conn = NULL;
        } else if (ssp_pg_script(pg->conn, WRITER_SETUP_SQL, NULL, &db_err) != 0 ||
                   ssp_pg_script(pg->conn, LISTEN_SQL, NULL, &db_err) != 0 ||
                   load_from_database(pg, &map, &version, &groups_version, &db_err) != 0) {
            if (db_err.code == SSP_ERR_NOMEM) {
                *err = db_err;
                goto fail;
            }
            ssp_roster_map_free(&map);
            ssp_strmap_init(&map);
            ssp_pg_finish(pg->conn);
            pg->conn = NULL;
        }
    }
    if (pg->conn == NULL) {
        snprintf(pg->last_error, sizeof pg->last_error, "%s", db_err.message);
        if (ssp_pg_roster_load_cache(pg, &map, err) != 0 ||
            ssp_pg_groups_load_cache(pg, &groups, err) != 0 ||
            ssp_roster_replace_groups(env->roster, &groups, err) != 0)
            goto fail;
    } else {
        pg->connected = true;
        pg->connects = 1;
        pg->roster_version = version;
        pg->groups_version = groups_version;
    }
    ssp_roster_replace(env->roster, &map);
    if (replay_outbox(pg, outbox_name + 1, err) != 0)
        goto fail;
    pg->outbox.size = lseek(pg->outbox.fd, 0, SEEK_END);
    pg->last_maintenance_ms = 0;
    pg->last_connect_attempt_ms = ssp_now_ms();
    free(outbox_name);
    /* Ids count from 1 in each process; the origin makes them unique. */
    opened->last_audit_id = 0;
    snprintf(opened->audit_sink, sizeof opened->audit_sink, "%s",
             "the database or the spill file");
    opened->audit_wake_fd = pg->wake_fd;
    *out = &pg->base;
    return 0;
fail:
    free(outbox_name);
    ssp_roster_map_free(&map);
    ssp_roster_group_map_free(&groups);
    pgstore_free(pg);
    return -1;
}

static int pg_start(ssp_store *store, ssp_audit_queue *queue, ssp_error *err)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;

    pg->audit = queue;
    if (pthread_create(&pg->thread, NULL, store_main, pg) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot start the PostgreSQL store thread");
    pg->thread_started = true;
    return 0;
}

static void pg_status(ssp_store *store, ssp_store_status *out)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;

    pthread_mutex_lock(&pg->mutex);
    out->postgres = true;
    out->connected = pg->connected;
    out->audit_spilled_total = pg->audit_spilled_total;
    out->audit_spill_pending = pg->audit_spill_pending;
    out->roster_outbox_pending = pg->outbox_pending;
    out->connects = pg->connects;
    out->roster_version = pg->roster_version;
    out->reconcile_pending = pg->reconcile_pending;
    snprintf(out->last_error, sizeof out->last_error, "%s", pg->last_error);
    pthread_mutex_unlock(&pg->mutex);
}

const ssp_store_ops ssp_pg_store_ops = {
    .name = "postgresql",
    .marks_roster_changes = true, /* a trigger on school_policy.roster (migration 2) */
    .commits_roster_later = true, /* the outbox reaches the database later */
    .open = pg_open,
    .start = pg_start,
    .close = pg_close,
    .status = pg_status,
    .roster_append = ssp_pg_roster_append,
    .groups_append = ssp_pg_groups_append,
    .audit_query = ssp_pg_audit_query,
    .audit_chart = ssp_pg_audit_chart,
    .audit_purge = ssp_pg_audit_purge,
    .reads_append = ssp_pg_reads_append,
    .reads_query = ssp_pg_reads_query,
    .reconcile_mark = ssp_pg_reconcile_mark,
    .reconcile_due = ssp_pg_reconcile_due,
    .reconcile_done = ssp_pg_reconcile_done,
    .reconcile_failed = ssp_pg_reconcile_failed,
    .reconcile_set_room = ssp_pg_reconcile_set_room,
    .reconcile_get_room = ssp_pg_reconcile_get_room,
    .reconcile_sync_config = ssp_pg_reconcile_sync_config,
    .reconcile_status = ssp_pg_reconcile_status,
    .reconcile_status_offline = ssp_pg_reconcile_status_offline,
};
