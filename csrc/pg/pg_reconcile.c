/*
 * The PostgreSQL store's reconcile state (ssp_reconcile_*): marks,
 * special rooms and the applied school config in school_policy's tables
 * (migration 2), where a trigger on the roster marks every changed
 * membership. Every call runs on the callers' session [caller thread].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_conn.h"
#include "pg/pg_reconcile.h"
#include "pg/pg_state.h"
#include "reconcile_common.h"
#include "util.h"

/* Marks every (schools[i], user_ids[i]) in one statement. */
int ssp_pg_reconcile_mark(ssp_store *store, const char *const *schools, const char *const *user_ids,
                       size_t n, ssp_error *err)
{
    json_t *pairs = json_array();
    char *pairs_text = NULL;
    const char *params[1];
    int rc = -1;

    if (pairs == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(pairs, json_pack("[s, s]", schools[i], user_ids[i])) != 0)
            goto oom;
    }
    pairs_text = ssp_json_dumps_checked(pairs);
    if (pairs_text == NULL)
        goto oom;
    params[0] = pairs_text;
    /* DISTINCT: one statement must not upsert a row twice. */
    rc = ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                             "SELECT count(school_policy.reconcile_mark(s, u)) FROM"
                             " (SELECT DISTINCT p->>0 AS s, p->>1 AS u"
                             "  FROM json_array_elements($1::json) p) x",
                             1, params, true, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    json_decref(pairs);
    free(pairs_text);
    return rc;
}

int ssp_pg_reconcile_due(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                              ssp_error *err)
{
    char now[32], limit[32];
    const char *params[2] = {now, limit};
    ssp_pg_rows *res;
    json_t *list = NULL;
    int rc = -1;

    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(limit, sizeof limit, "%zu", max);
    res = ssp_pg_session_query(&((ssp_pgstore *)store)->queries,
                       "SELECT school, user_id, generation, attempts"
                       " FROM school_policy.reconcile_marks WHERE next_attempt_at <= $1::bigint"
                       " ORDER BY next_attempt_at, marked_at, generation LIMIT $2::bigint",
                       2, params, true, err);
    if (res == NULL)
        return -1;
    list = json_array();
    if (list == NULL)
        goto oom;
    for (int i = 0; i < ssp_pg_nrows(res); i++) {
        json_t *item = ssp_reconcile_due_item(ssp_pg_value(res, i, 0), ssp_pg_value(res, i, 1),
                                              ssp_pg_int(res, i, 2),
                                              ssp_pg_int(res, i, 3));

        if (item == NULL || json_array_append_new(list, item) != 0)
            goto oom;
    }
    rc = ssp_json_dump_to(list, marks_json, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    ssp_pg_rows_free(res);
    json_decref(list);
    return rc;
}

int ssp_pg_reconcile_done(ssp_store *store, const char *school, const char *user_id,
                               int64_t generation, ssp_error *err)
{
    char gen[32];
    const char *params[3] = {school, user_id, gen};

    snprintf(gen, sizeof gen, "%lld", (long long)generation);
    return ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                       "DELETE FROM school_policy.reconcile_marks"
                       " WHERE school = $1 AND user_id = $2 AND generation = $3::bigint",
                       3, params, false, err);
}

int ssp_pg_reconcile_failed(ssp_store *store, const char *school, const char *user_id,
                                 int64_t generation, const char *error, int64_t retry_at_ms,
                                 ssp_error *err)
{
    char gen[32], retry_at[32], now[32];
    const char *params[6] = {school, user_id, gen, error, retry_at, now};

    snprintf(gen, sizeof gen, "%lld", (long long)generation);
    snprintf(retry_at, sizeof retry_at, "%lld", (long long)retry_at_ms);
    snprintf(now, sizeof now, "%lld", (long long)ssp_now_ms());
    return ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                       "UPDATE school_policy.reconcile_marks SET attempts = attempts + 1,"
                       " next_attempt_at = $5::bigint, last_error = $4, failed_at = $6::bigint"
                       " WHERE school = $1 AND user_id = $2 AND generation = $3::bigint",
                       6, params, false, err);
}

int ssp_pg_reconcile_set_room(ssp_store *store, const char *school, const char *kind,
                                   const char *room_id, ssp_error *err)
{
    const char *params[3] = {school, kind, room_id};

    if (room_id == NULL)
        return ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                           "DELETE FROM school_policy.special_rooms WHERE school = $1 AND kind = $2",
                           2, params, false, err);
    return ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                       "INSERT INTO school_policy.special_rooms (school, kind, room_id)"
                       " VALUES ($1, $2, $3) ON CONFLICT (school, kind)"
                       " DO UPDATE SET room_id = EXCLUDED.room_id",
                       3, params, false, err);
}

int ssp_pg_reconcile_get_room(ssp_store *store, const char *school, const char *kind,
                                   char **room_id, ssp_error *err)
{
    const char *params[2] = {school, kind};
    ssp_pg_rows *res = ssp_pg_session_query(&((ssp_pgstore *)store)->queries,
                                 "SELECT room_id FROM school_policy.special_rooms"
                                 " WHERE school = $1 AND kind = $2",
                                 2, params, true, err);
    int rc = 0;

    if (res == NULL)
        return -1;
    if (ssp_pg_nrows(res) > 0 && (*room_id = ssp_strdup(ssp_pg_value(res, 0, 0))) == NULL)
        rc = ssp_fail_nomem(err);
    ssp_pg_rows_free(res);
    return rc;
}

int ssp_pg_reconcile_sync_config(ssp_store *store, size_t *schools_changed,
                                      ssp_error *err)
{
    const ssp_config *config = ((ssp_pgstore *)store)->env->config;

    for (size_t i = 0; i < config->n_schools; i++) {
        const char *school = config->schools[i].id;
        char applied[96];
        const char *params[2] = {school, applied};
        ssp_pg_rows *res;
        bool same;

        ssp_reconcile_applied_text(&config->schools[i], applied, sizeof applied);
        res = ssp_pg_session_query(&((ssp_pgstore *)store)->queries,
                           "SELECT applied = $2 FROM school_policy.school_state WHERE school = $1",
                           2, params, true, err);
        if (res == NULL)
            return -1;
        same = ssp_pg_nrows(res) > 0 && ssp_pg_value(res, 0, 0)[0] == 't';
        ssp_pg_rows_free(res);
        if (same)
            continue;
        /* Marks first, in their own statement: a crash before the applied
         * string is stored leaves extra marks only. The roster table is the
         * whole truth here; this process's outbox entries not yet pushed
         * are marked by the trigger when they arrive. */
        if (ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                        "SELECT count(school_policy.reconcile_mark($1, u)) FROM"
                        " (SELECT '' AS u UNION SELECT user_id FROM school_policy.roster"
                        "  WHERE school = $1) s",
                        1, params, true, err) != 0 ||
            ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                        "INSERT INTO school_policy.school_state (school, applied) VALUES ($1, $2)"
                        " ON CONFLICT (school) DO UPDATE SET applied = EXCLUDED.applied",
                        2, params, false, err) != 0)
            return -1;
        (*schools_changed)++;
    }
    return 0;
}

/* $1: a JSON array of school ids; one row per school, in that order. */
static const char RECONCILE_STATUS_SQL[] =
    "SELECT (SELECT room_id FROM school_policy.special_rooms r"
    "   WHERE r.school = s.school AND r.kind = 'teachers'),"
    " (SELECT room_id FROM school_policy.special_rooms r"
    "   WHERE r.school = s.school AND r.kind = 'announcement'),"
    " (SELECT count(*) FROM school_policy.reconcile_marks m WHERE m.school = s.school),"
    " (SELECT last_error FROM school_policy.reconcile_marks m"
    "   WHERE m.school = s.school AND m.last_error IS NOT NULL"
    "   ORDER BY m.failed_at DESC NULLS LAST LIMIT 1)"
    " FROM json_array_elements_text($1::json) WITH ORDINALITY AS s(school, ord)"
    " ORDER BY s.ord";

static char *school_ids_json(const ssp_config *config)
{
    json_t *ids = json_array();
    char *text = NULL;

    if (ids == NULL)
        return NULL;
    for (size_t i = 0; i < config->n_schools; i++) {
        if (json_array_append_new(ids, json_string(config->schools[i].id)) != 0)
            goto done;
    }
    text = ssp_json_dumps_checked(ids);
done:
    json_decref(ids);
    return text;
}

static int status_from_rows(const ssp_config *config, const ssp_pg_rows *res, char **status_json,
                            ssp_error *err)
{
    ssp_school_reconcile *per_school;
    int rc;

    if ((size_t)ssp_pg_nrows(res) != config->n_schools)
        return ssp_fail(err, SSP_ERR_IO, "database: the status query returned %d rows for %zu "
                        "schools", ssp_pg_nrows(res), config->n_schools);
    per_school = calloc(config->n_schools ? config->n_schools : 1, sizeof *per_school);
    if (per_school == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < config->n_schools; i++) {
        int row = (int)i;

        per_school[i].teachers_room = ssp_pg_isnull(res, row, 0) ? NULL : ssp_pg_value(res, row, 0);
        per_school[i].announcement_room =
            ssp_pg_isnull(res, row, 1) ? NULL : ssp_pg_value(res, row, 1);
        per_school[i].pending = (uint64_t)ssp_pg_int(res, row, 2);
        per_school[i].last_error = ssp_pg_isnull(res, row, 3) ? NULL : ssp_pg_value(res, row, 3);
    }
    rc = ssp_reconcile_status_text(config, per_school, status_json, err);
    free(per_school);
    return rc;
}

int ssp_pg_reconcile_status(ssp_store *store, char **status_json, ssp_error *err)
{
    const ssp_config *config = ((ssp_pgstore *)store)->env->config;
    char *ids = school_ids_json(config);
    const char *params[1] = {ids};
    ssp_pg_rows *res;
    int rc;

    if (ids == NULL)
        return ssp_fail_nomem(err);
    res = ssp_pg_session_query(&((ssp_pgstore *)store)->queries, RECONCILE_STATUS_SQL, 1, params, true, err);
    free(ids);
    if (res == NULL)
        return -1;
    rc = status_from_rows(config, res, status_json, err);
    ssp_pg_rows_free(res);
    return rc;
}

int ssp_pg_reconcile_status_offline(const ssp_config *config, char **status_json,
                                 ssp_error *err)
{
    char *ids = school_ids_json(config);
    const char *params[1] = {ids};
    ssp_pg_conn *conn;
    ssp_pg_rows *res;
    int rc = -1;

    if (ids == NULL)
        return ssp_fail_nomem(err);
    conn = ssp_pg_connect(config->database, err); /* [caller thread], a connection of its own */
    if (conn == NULL) {
        free(ids);
        return -1;
    }
    res = ssp_pg_query(conn, RECONCILE_STATUS_SQL, 1, params, true,
                       "the status query (a schema older than version 2 is upgraded when "
                       "Synapse starts with this module)", err);
    if (res != NULL)
        rc = status_from_rows(config, res, status_json, err);
    ssp_pg_rows_free(res);
    ssp_pg_finish(conn);
    free(ids);
    return rc;
}

/* [store thread] Refreshes the cached number of marks for
 * ssp_store_get_status, so that reading it never waits on the database. */
int ssp_pg_reconcile_count_pending(ssp_pgstore *pg, ssp_error *err)
{
    ssp_pg_rows *res = ssp_pg_query(pg->conn, "SELECT count(*) FROM school_policy.reconcile_marks",
                                    0, NULL, true, NULL, err);

    pg->last_pending_count_ms = ssp_now_ms();
    if (res == NULL)
        return -1;
    pthread_mutex_lock(&pg->mutex);
    pg->reconcile_pending = (uint64_t)ssp_pg_int(res, 0, 0);
    pthread_mutex_unlock(&pg->mutex);
    ssp_pg_rows_free(res);
    return 0;
}
