/*
 * The PostgreSQL store's groups: every group loaded with COPY into the
 * roster's group index at open and on reconnect (and written to the local
 * cache file, for starting during an outage), the changes since the last
 * version seen applied on NOTIFY school_policy_groups, and groups_append.
 *
 * A row of school_policy.groups holds a whole group, its members in two
 * text arrays (moderators, members): a load reads one row per group, with
 * COPY binary, and pg_group_rows.c turns it into an ssp_group.
 *
 * Writes: groups_append writes to the database on the callers' session
 * and returns once committed; the trigger logs the change, marks the
 * group's reconcile state and notifies every process, this one included.
 * The version rule is the engine's (ssp_group_supersedes); the statement
 * applies it again against the row, which another process may have
 * written at a higher version than this process has seen.
 *
 * Ownership: the loader owns the groups it builds until they are put in a
 * map; maps handed to the index are taken over by it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "ids.h"
#include "pg/pg_cache.h"
#include "pg/pg_conn.h"
#include "pg/pg_group_rows.h"
#include "pg/pg_groups.h"
#include "pg/pg_state.h"
#include "roster_index.h"
#include "util.h"

#define STRINGIFY(x) #x
#define AS_TEXT(x) STRINGIFY(x)

/* The groups cache is read this much at a time (more for a larger row). */
#define CACHE_READ (1 << 20)

/* Changes read per pass of the store thread (the audit is written between
 * passes). */
#define INCREMENTAL_MAX 2000

static const char LOAD_SQL[] =
    "COPY (SELECT " SSP_PG_GROUP_COLUMNS " FROM school_policy.groups) TO STDOUT (FORMAT binary)";
static const char SELECT_SQL[] = "SELECT " SSP_PG_GROUP_COLUMNS " FROM school_policy.groups"
                                 " WHERE group_id IN (SELECT json_array_elements_text($1::json))";

/* $1: a JSON array of groups {"group_id", "school", "kind", "name",
 * "topic", "two_way", "closed", "state", "archive_at_ms", "version",
 * "moderators": [...], "members": [...]}; the last entry of a group wins.
 * A stored row at a higher version stays (another process wrote it); a
 * row that would not change is left alone, so a repeated import notifies
 * nobody. Returns the ids of the groups left alone for their version (as
 * the statement's snapshot saw the rows). */
static const char APPEND_SQL[] =
    "WITH input AS (SELECT DISTINCT ON (t.e->>'group_id') t.e->>'group_id' AS group_id, t.e"
    "  FROM json_array_elements($1::json) WITH ORDINALITY AS t(e, ord)"
    "  ORDER BY t.e->>'group_id', t.ord DESC),"
    " written AS (INSERT INTO school_policy.groups AS g (" SSP_PG_GROUP_COLUMNS ")"
    "  SELECT i.group_id, e->>'school', e->>'kind', e->>'name', e->>'topic',"
    "   (e->>'two_way')::boolean, (e->>'closed')::boolean, e->>'state',"
    "   (e->>'archive_at_ms')::bigint, (e->>'version')::bigint,"
    "   ARRAY(SELECT json_array_elements_text(e->'moderators')),"
    "   ARRAY(SELECT json_array_elements_text(e->'members'))"
    "  FROM input i"
    "  ON CONFLICT (group_id) DO UPDATE SET school = EXCLUDED.school, kind = EXCLUDED.kind,"
    "   name = EXCLUDED.name, topic = EXCLUDED.topic, two_way = EXCLUDED.two_way,"
    "   closed = EXCLUDED.closed, state = EXCLUDED.state,"
    "   archive_at_ms = EXCLUDED.archive_at_ms, version = EXCLUDED.version,"
    "   moderators = EXCLUDED.moderators, members = EXCLUDED.members"
    "  WHERE (g.version IS NULL OR EXCLUDED.version IS NULL OR EXCLUDED.version >= g.version)"
    "   AND (g.school, g.kind, g.name, g.topic, g.two_way, g.closed, g.state, g.archive_at_ms,"
    "    g.version, g.moderators, g.members) IS DISTINCT FROM (EXCLUDED.school, EXCLUDED.kind,"
    "    EXCLUDED.name, EXCLUDED.topic, EXCLUDED.two_way, EXCLUDED.closed, EXCLUDED.state,"
    "    EXCLUDED.archive_at_ms, EXCLUDED.version, EXCLUDED.moderators, EXCLUDED.members))"
    " SELECT i.group_id FROM input i JOIN school_policy.groups g ON g.group_id = i.group_id"
    " WHERE g.version > (i.e->>'version')::bigint";

/* A group into map (taking it; a group already there is replaced). */
static int map_put(ssp_strmap *map, ssp_group *group)
{
    void *previous = NULL;

    if (ssp_strmap_put(map, group->group_id, group, &previous) != 0) {
        free(group);
        return -1;
    }
    free(previous);
    return 0;
}

/* ---- loading ---- */

typedef struct copy_load {
    ssp_pg_group_reader reader;
    ssp_strmap *map;
    ssp_pg_cache_writer cache;
} copy_load;

/* One message of the COPY binary stream: written to the cache as it came,
 * then read (in place). */
static int copy_row(void *ctx, char *data, size_t len, ssp_error *err)
{
    copy_load *cl = ctx;
    ssp_group *group;

    ssp_pg_cache_add(&cl->cache, data, len);
    if (ssp_pg_group_from_binary(&cl->reader, data, len, &group) != 0 ||
        (group != NULL && map_put(cl->map, group) != 0))
        return ssp_fail_nomem(err);
    return 0;
}

/* Beside the roster's cache: <worker>.roster-cache -> <worker>.groups-cache */
static char *cache_path(ssp_pgstore *pg)
{
    size_t base = strlen(pg->cache_path) - strlen(".roster-cache");
    char *path = malloc(base + sizeof ".groups-cache");

    if (path == NULL)
        return NULL;
    memcpy(path, pg->cache_path, base);
    memcpy(path + base, ".groups-cache", sizeof ".groups-cache");
    return path;
}

int ssp_pg_groups_load(ssp_pgstore *pg, ssp_pg_conn *conn, ssp_strmap *map, int64_t *version,
                       ssp_error *err)
{
    ssp_pg_rows *rows;
    copy_load cl;
    char *path;
    int rc;

    /* The version first: rows read afterwards are at least that new. */
    rows = ssp_pg_query(conn, "SELECT coalesce(max(version), 0) FROM school_policy.group_changes",
                        0, NULL, true, NULL, err);
    if (rows == NULL)
        return -1;
    *version = ssp_pg_int(rows, 0, 0);
    ssp_pg_rows_free(rows);
    path = cache_path(pg);
    if (path == NULL)
        return ssp_fail_nomem(err);
    ssp_pg_group_reader_init(&cl.reader, pg->env->roster);
    cl.map = map;
    /* The command line opens only with the database (store.c), so a
     * cache of its own would never be read: it writes none. */
    ssp_pg_cache_begin(&cl.cache, pg->env->offline ? NULL : path);
    free(path);
    rc = ssp_pg_copy_out(conn, LOAD_SQL, copy_row, &cl, err);
    ssp_pg_cache_end(&cl.cache, rc == 0);
    ssp_pg_group_reader_destroy(&cl.reader);
    return rc;
}

static void *open_main(void *arg)
{
    ssp_pg_groups_open *op = arg;
    ssp_strmap map;

    ssp_strmap_init(&map);
    op->rc = ssp_pg_groups_load(op->pg, op->conn, &map, &op->version, &op->err);
    if (op->rc == 0)
        op->rc = ssp_roster_replace_groups(op->pg->env->roster, &map, &op->err);
    ssp_roster_group_map_free(&map); /* empty unless something failed */
    return NULL;
}

int ssp_pg_groups_open_start(ssp_pgstore *pg, ssp_pg_groups_open *op, ssp_error *err)
{
    memset(op, 0, sizeof *op);
    op->pg = pg;
    op->conn = ssp_pg_connect(pg->conninfo, err);
    if (op->conn == NULL)
        return -1;
    if (pthread_create(&op->thread, NULL, open_main, op) != 0) {
        ssp_pg_finish(op->conn);
        op->conn = NULL;
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot start a thread to load the groups");
    }
    return 0;
}

int ssp_pg_groups_open_finish(ssp_pg_groups_open *op, int64_t *version, ssp_error *err)
{
    pthread_join(op->thread, NULL);
    ssp_pg_finish(op->conn);
    op->conn = NULL;
    if (op->rc != 0) {
        *err = op->err;
        return -1;
    }
    *version = op->version;
    return 0;
}

int ssp_pg_groups_load_cache(ssp_pgstore *pg, ssp_strmap *map, ssp_error *err)
{
    char *path = cache_path(pg), *buf = NULL;
    FILE *file;
    ssp_pg_group_reader reader;
    size_t cap = CACHE_READ, used = 0, done = 0;
    bool eof = false;
    int rc = 0;

    if (path == NULL)
        return ssp_fail_nomem(err);
    file = fopen(path, "re");
    if (file == NULL) {
        rc = errno == ENOENT
                 ? 0
                 : ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        fclose(file);
        free(path);
        return ssp_fail_nomem(err);
    }
    ssp_pg_group_reader_init(&reader, pg->env->roster);
    /* The stream in pieces: each whole message is copied out (the reader
     * writes past its end) and read; a torn last one is left. */
    while (rc == 0) {
        size_t len = ssp_pg_group_binary_length(buf + done, used - done, reader.header_seen);
        char *message;
        ssp_group *group;

        if (len == 0) {
            if (eof)
                break;
            memmove(buf, buf + done, used - done);
            used -= done;
            done = 0;
            if (used == cap) {
                char *grown = realloc(buf, cap * 2);

                if (grown == NULL) {
                    rc = ssp_fail_nomem(err);
                    break;
                }
                buf = grown;
                cap *= 2;
            }
            used += fread(buf + used, 1, cap - used, file);
            eof = feof(file) || ferror(file);
            continue;
        }
        message = malloc(len + 1);
        if (message == NULL) {
            rc = ssp_fail_nomem(err);
            break;
        }
        memcpy(message, buf + done, len);
        done += len;
        if (ssp_pg_group_from_binary(&reader, message, len, &group) != 0 ||
            (group != NULL && map_put(map, group) != 0))
            rc = ssp_fail_nomem(err);
        free(message);
    }
    ssp_pg_group_reader_destroy(&reader);
    free(buf);
    fclose(file);
    free(path);
    return rc;
}

/* ---- the index ---- */

/* [store thread] Reloads every group and swaps them in. */
int ssp_pg_groups_full_sync(ssp_pgstore *pg, ssp_error *err)
{
    ssp_strmap map;
    int64_t version = 0;
    int rc;

    ssp_strmap_init(&map);
    if (ssp_pg_groups_load(pg, pg->conn, &map, &version, err) != 0) {
        ssp_roster_group_map_free(&map);
        return -1;
    }
    /* Under write_mutex, as the roster's: a group written by this process
     * is either in the rows read or applied after the swap. */
    pthread_mutex_lock(pg->env->write_mutex);
    rc = ssp_roster_replace_groups(pg->env->roster, &map, err);
    pthread_mutex_unlock(pg->env->write_mutex);
    ssp_roster_group_map_free(&map); /* empty unless the swap failed */
    if (rc != 0)
        return -1;
    pthread_mutex_lock(&pg->mutex);
    pg->groups_version = version;
    pthread_mutex_unlock(&pg->mutex);
    return 0;
}

/* Whether a group read from the database replaces the index's: not when
 * the index holds a higher version, which this process wrote after the row
 * was read (its own notification brings the row again). */
static bool replaces(const ssp_group *stored, const ssp_group *loaded)
{
    return stored == NULL || !stored->has_version || !loaded->has_version ||
           loaded->version >= stored->version;
}

typedef struct apply_ctx {
    ssp_roster *roster;
    const ssp_group **list; /* the groups to apply */
    size_t n;
} apply_ctx;

static int collect(const char *key, void *value, void *ctx)
{
    apply_ctx *ac = ctx;
    const ssp_group *stored = ssp_roster_group(ac->roster, key, strlen(key));

    (void)key;
    if (replaces(stored, value))
        ac->list[ac->n++] = value;
    return 0;
}

/* Applies the groups of *loaded under the write mutex and the write lock:
 * those the index takes are taken out of *loaded, the others (older than
 * the index's) stay for the caller to free. Fails with SSP_ERR_NOMEM
 * before changing anything. */
static int apply_loaded(ssp_pgstore *pg, ssp_strmap *loaded, ssp_error *err)
{
    ssp_roster *roster = pg->env->roster;
    apply_ctx ac = {roster, malloc((loaded->count + 1) * sizeof *ac.list), 0};
    int rc = 0;

    if (ac.list == NULL)
        return ssp_fail_nomem(err);
    pthread_mutex_lock(pg->env->write_mutex);
    pthread_rwlock_wrlock(&roster->lock);
    ssp_strmap_each(loaded, collect, &ac);
    if (ssp_roster_reserve_groups_locked(roster, ac.list, ac.n, err) != 0) {
        rc = -1;
    } else {
        for (size_t i = 0; i < ac.n; i++) {
            /* Taken by the index; cannot fail: room was reserved. */
            ssp_strmap_remove(loaded, ac.list[i]->group_id);
            (void)ssp_roster_apply_group_locked(roster, (ssp_group *)ac.list[i], err);
        }
    }
    pthread_rwlock_unlock(&roster->lock);
    pthread_mutex_unlock(pg->env->write_mutex);
    free(ac.list);
    return rc;
}

/* The rows of a SELECT_SQL into groups (map: group id -> ssp_group*). */
static int load_rows(ssp_pgstore *pg, const ssp_pg_rows *res, ssp_strmap *map, ssp_error *err)
{
    ssp_pg_group_reader reader;
    int rc = 0;

    ssp_pg_group_reader_init(&reader, pg->env->roster);
    for (int r = 0; r < ssp_pg_nrows(res) && rc == 0; r++) {
        char *f[SSP_PG_GROUP_N_COLUMNS];
        ssp_group *group = NULL;

        /* Copies: the arrays are parsed in place. */
        for (int c = 0; c < SSP_PG_GROUP_N_COLUMNS; c++) {
            f[c] = NULL;
            if (!ssp_pg_isnull(res, r, c) && (f[c] = ssp_strdup(ssp_pg_value(res, r, c))) == NULL)
                rc = -1;
        }
        if (rc == 0 && ssp_pg_group_from_text(&reader, f, &group) != 0)
            rc = -1;
        if (rc == 0 && group != NULL && map_put(map, group) != 0)
            rc = -1;
        for (int c = 0; c < SSP_PG_GROUP_N_COLUMNS; c++)
            free(f[c]);
    }
    ssp_pg_group_reader_destroy(&reader);
    return rc == 0 ? 0 : ssp_fail_nomem(err);
}

/* [store thread] Reads the rows of the groups named in ids (a JSON array
 * of strings) and applies them; *missing: some id has no row. */
static int read_and_apply(ssp_pgstore *pg, json_t *ids, bool *missing, ssp_error *err)
{
    char *ids_text = ssp_json_dumps_checked(ids);
    const char *params[1] = {ids_text};
    ssp_pg_rows *res;
    ssp_strmap loaded;
    int rc = -1;

    *missing = false;
    if (ids_text == NULL)
        return ssp_fail_nomem(err);
    ssp_strmap_init(&loaded);
    res = ssp_pg_query(pg->conn, SELECT_SQL, 1, params, true, NULL, err);
    if (res != NULL && load_rows(pg, res, &loaded, err) == 0) {
        *missing = (size_t)ssp_pg_nrows(res) < json_array_size(ids);
        rc = apply_loaded(pg, &loaded, err);
    }
    ssp_pg_rows_free(res);
    ssp_roster_group_map_free(&loaded);
    free(ids_text);
    return rc;
}

/* [store thread] Applies the changes since the last version seen, up to
 * INCREMENTAL_MAX of them: 1 when more are waiting, 0 when caught up, -1
 * on error. Only a TRUNCATE of the groups reloads them all. */
int ssp_pg_groups_incremental_sync(ssp_pgstore *pg, ssp_error *err)
{
    ssp_pg_rows *res = NULL;
    char since[32];
    const char *params[1];
    json_t *ids = NULL;
    ssp_strmap seen;
    int64_t version, newest;
    int rows, rc = -1;
    bool more, missing = false;

    ssp_strmap_init(&seen);
    pthread_mutex_lock(&pg->mutex);
    version = pg->groups_version;
    pthread_mutex_unlock(&pg->mutex);
    newest = version;
    snprintf(since, sizeof since, "%lld", (long long)version);
    params[0] = since;
    res = ssp_pg_query(pg->conn,
                       "SELECT version, group_id FROM school_policy.group_changes"
                       " WHERE version > $1::bigint ORDER BY version"
                       " LIMIT " AS_TEXT(INCREMENTAL_MAX),
                       1, params, true, NULL, err);
    if (res == NULL)
        goto done;
    rows = ssp_pg_nrows(res);
    if (rows == 0) {
        rc = 0;
        goto done;
    }
    more = rows == INCREMENTAL_MAX;
    ids = json_array();
    if (ids == NULL)
        goto oom;
    for (int i = 0; i < rows; i++) {
        const char *id = ssp_pg_value(res, i, 1);

        newest = ssp_pg_int(res, i, 0);
        if (ssp_pg_isnull(res, i, 1)) {
            ssp_pg_rows_free(res);
            res = NULL;
            rc = ssp_pg_groups_full_sync(pg, err);
            goto done;
        }
        if (ssp_strmap_get(&seen, id) != NULL)
            continue;
        if (json_array_append_new(ids, json_string(id)) != 0)
            goto oom;
        /* Key and value point into the JSON array's strings. */
        id = json_string_value(json_array_get(ids, json_array_size(ids) - 1));
        if (ssp_strmap_put(&seen, id, (void *)id, NULL) != 0)
            goto oom;
    }
    ssp_pg_rows_free(res);
    res = NULL;
    /* A row deleted with SQL (rather than given state "deleted"): the index
     * has no removal of one group, so everything is read again. Rare. */
    if (read_and_apply(pg, ids, &missing, err) != 0 ||
        (missing && ssp_pg_groups_full_sync(pg, err) != 0))
        goto done;
    pthread_mutex_lock(&pg->mutex);
    if (newest > pg->groups_version)
        pg->groups_version = newest;
    pthread_mutex_unlock(&pg->mutex);
    rc = more ? 1 : 0;
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    ssp_pg_rows_free(res);
    ssp_strmap_destroy(&seen); /* borrowed keys and values */
    json_decref(ids);
    return rc;
}

/* [store thread] Reads again the groups a write of this process left alone
 * because the database holds them at a higher version: the write's caller
 * applied its own snapshot to the index meanwhile; the row wins. */
int ssp_pg_groups_recheck(ssp_pgstore *pg, ssp_error *err)
{
    json_t *ids;
    bool missing;
    int rc;

    pthread_mutex_lock(&pg->mutex);
    ids = pg->groups_recheck;
    pg->groups_recheck = NULL;
    pthread_mutex_unlock(&pg->mutex);
    if (ids == NULL)
        return 0;
    /* A row gone since: its deletion's change reloads everything. */
    rc = read_and_apply(pg, ids, &missing, err);
    if (rc != 0) {
        /* Kept for the next pass, after a reconnect. */
        pthread_mutex_lock(&pg->mutex);
        if (pg->groups_recheck == NULL) {
            pg->groups_recheck = ids;
            ids = NULL;
        } else if (json_array_extend(pg->groups_recheck, ids) != 0) {
            /* Out of memory: the reconnect's full load reads them anyway. */
        }
        pthread_mutex_unlock(&pg->mutex);
    }
    json_decref(ids);
    return rc;
}

/* ---- writes ---- */

/* A group as APPEND_SQL reads it; NULL when out of memory. */
static json_t *group_row_json(const ssp_group *group)
{
    json_t *moderators = json_array(), *members = json_array(), *row;

    if (moderators == NULL || members == NULL)
        goto oom;
    for (size_t i = 0; i < group->n_members; i++) {
        json_t *list = group->members[i].role == SSP_GROUP_MODERATOR ? moderators : members;

        if (json_array_append_new(list, json_string(group->members[i].user_id)) != 0)
            goto oom;
    }
    /* "o" steals its argument, also on failure. */
    row = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:b, s:b, s:s, s:o, s:o, s:o, s:o}", "group_id",
                    group->group_id, "school", group->school, "kind", group->kind, "name",
                    group->name, "topic", group->topic, "two_way", group->two_way, "closed",
                    group->closed, "state", ssp_group_state_name(group->state), "archive_at_ms",
                    group->archive_at_ms > 0 ? json_integer(group->archive_at_ms) : json_null(),
                    "version", group->has_version ? json_integer(group->version) : json_null(),
                    "moderators", moderators, "members", members);
    return row;
oom:
    json_decref(moderators);
    json_decref(members);
    return NULL;
}

int ssp_pg_groups_append(ssp_store *store, const ssp_group *const *groups, size_t n, ssp_error *err)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;
    json_t *rows = json_array();
    char *text = NULL;
    const char *params[1];
    ssp_pg_rows *res = NULL;
    int rc = -1;

    if (rows == NULL)
        return ssp_fail_nomem(err);
    if (n == 0) {
        json_decref(rows);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(rows, group_row_json(groups[i])) != 0)
            goto oom;
    }
    text = ssp_json_dumps_checked(rows);
    if (text == NULL)
        goto oom;
    params[0] = text;
    /* One statement, committed on return: durable, and every process
     * (this one too) is notified by the trigger. */
    res = ssp_pg_session_query(&pg->queries, APPEND_SQL, 1, params, true, err);
    if (res == NULL)
        goto done;
    /* Groups the database holds at a higher version than this process has
     * seen: the caller applies its snapshot to the index on return, and
     * the store thread reads the row again after that (it waits for the
     * write mutex the caller holds). */
    if (ssp_pg_nrows(res) > 0) {
        json_t *stale = json_array();

        for (int r = 0; stale != NULL && r < ssp_pg_nrows(res); r++) {
            if (json_array_append_new(stale, json_string(ssp_pg_value(res, r, 0))) != 0) {
                json_decref(stale);
                stale = NULL;
            }
        }
        if (stale == NULL)
            goto oom; /* stored, but the index would not catch up */
        pthread_mutex_lock(&pg->mutex);
        if (pg->groups_recheck == NULL) {
            pg->groups_recheck = stale;
            stale = NULL;
        } else if (json_array_extend(pg->groups_recheck, stale) != 0) {
            pthread_mutex_unlock(&pg->mutex);
            json_decref(stale);
            goto oom;
        }
        pthread_mutex_unlock(&pg->mutex);
        json_decref(stale);
        ssp_pg_wake(pg);
    }
    rc = 0;
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    ssp_pg_rows_free(res);
    json_decref(rows);
    free(text);
    return rc;
}
