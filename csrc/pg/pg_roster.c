/*
 * The PostgreSQL store's roster: the whole roster loaded with COPY (and
 * written to the local cache file for starting during an outage), the
 * changes since the last version seen applied on NOTIFY, and the local
 * outbox of this process's roster writes pushed to the database in order.
 *
 * Roster writes: the caller appends the change to the local outbox
 * (data_dir/<worker>.roster-outbox.jsonl, fsync), applies it in memory and
 * acknowledges; the store thread pushes the outbox to the database in
 * order and truncates it once the database has it.
 *
 * Ownership: the loader owns the entries it builds until they are put in
 * a map; maps handed to the roster index are taken over by it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.h"
#include "ids.h"
#include "journal.h"
#include "pg/pg_cache.h"
#include "pg/pg_conn.h"
#include "pg/pg_roster.h"
#include "pg/pg_state.h"
#include "util.h"

#define STRINGIFY(x) #x
#define AS_TEXT(x) STRINGIFY(x)

/* The store thread's roster work comes in pieces this size, so that the
 * audit writes between them never wait long behind a large change (a
 * 30,000-user feed message): changes read per pass, outbox lines pushed
 * per statement. */
#define INCREMENTAL_MAX 5000
#define PUSH_LINES_MAX 2000

/* $1: a JSON array of outbox entries {"user_id", "schools": [...]}, oldest
 * first; the last entry of a user wins. Rows that do not change are left
 * alone, so a repeated import notifies nobody. */
static const char ROSTER_PUSH_SQL[] =
    "WITH input AS ("
    "  SELECT t.ord, t.e->>'user_id' AS user_id, t.e->'schools' AS schools"
    "  FROM json_array_elements($1::json) WITH ORDINALITY AS t(e, ord)),"
    " latest AS (SELECT DISTINCT ON (user_id) user_id, schools FROM input"
    "  ORDER BY user_id, ord DESC),"
    " wanted AS (SELECT l.user_id, s->>'school' AS school, s->>'role' AS role"
    "  FROM latest l, json_array_elements(l.schools) s),"
    " removed AS (DELETE FROM school_policy.roster r USING latest l"
    "  WHERE r.user_id = l.user_id AND NOT EXISTS (SELECT 1 FROM wanted w"
    "   WHERE w.user_id = r.user_id AND w.school = r.school))"
    " INSERT INTO school_policy.roster AS r (user_id, school, role)"
    " SELECT user_id, school, role FROM wanted"
    " ON CONFLICT (user_id, school) DO UPDATE SET role = EXCLUDED.role"
    " WHERE r.role IS DISTINCT FROM EXCLUDED.role";

/* ---- the COPY-text parser ---- */

/* Collects rows "user_id TAB school TAB role" (COPY text format, grouped by
 * user) into roster entries. */
typedef struct loader {
    ssp_strmap *map;  /* destination; owns nothing, entries are freed by the roster */
    char *user;       /* the user being collected */
    const char **schools;
    char **school_copies;
    ssp_role *roles;
    size_t n, cap;
    size_t rows;
    ssp_roster *roster; /* for its server_name and skipped counter */
} loader;

static void loader_reset_user(loader *ld)
{
    for (size_t i = 0; i < ld->n; i++)
        free(ld->school_copies[i]);
    ld->n = 0;
    free(ld->user);
    ld->user = NULL;
}

static int loader_finish_user(loader *ld)
{
    ssp_roster_user *user, *previous = NULL;

    if (ld->user == NULL)
        return 0;
    user = ssp_roster_user_new(ld->user, ld->schools, ld->roles, ld->n);
    if (user == NULL)
        return -1;
    if (ssp_strmap_put(ld->map, user->user_id, user, (void **)&previous) != 0) {
        free(user);
        return -1;
    }
    free(previous);
    loader_reset_user(ld);
    return 0;
}

/* One row, grouped by user. Rows that do not parse are skipped (a torn
 * cache line, a role added by a newer version), and so are rows that break
 * the roster's input rules (written by hand, or before the rules), which
 * are counted. Returns -1 when out of memory. */
static int loader_row(loader *ld, const char *user_id, const char *school, const char *role_name)
{
    ssp_role role;
    ssp_error ignored;

    if (ssp_role_from_name(role_name, &role) != 0)
        return 0;
    if (ssp_check_user_id("user_id", user_id, strlen(user_id), ld->roster->server_name,
                                 &ignored) != 0 ||
        ssp_check_school_id("school", school, strlen(school), &ignored) != 0) {
        ssp_roster_note_skipped(ld->roster, 1);
        return 0;
    }
    if (ld->user == NULL || strcmp(ld->user, user_id) != 0) {
        if (loader_finish_user(ld) != 0)
            return -1;
        ld->user = ssp_strdup(user_id);
        if (ld->user == NULL)
            return -1;
    }
    if (ld->n == ld->cap) {
        size_t cap = ld->cap ? ld->cap * 2 : 8;
        const char **schools = realloc(ld->schools, cap * sizeof *schools);
        char **copies;
        ssp_role *roles;

        if (schools == NULL)
            return -1;
        ld->schools = schools;
        copies = realloc(ld->school_copies, cap * sizeof *copies);
        if (copies == NULL)
            return -1;
        ld->school_copies = copies;
        roles = realloc(ld->roles, cap * sizeof *roles);
        if (roles == NULL)
            return -1;
        ld->roles = roles;
        ld->cap = cap;
    }
    for (size_t i = 0; i < ld->n; i++) {
        if (strcmp(ld->schools[i], school) == 0)
            return 0; /* a duplicate row: keep the first */
    }
    ld->school_copies[ld->n] = ssp_strdup(school);
    if (ld->school_copies[ld->n] == NULL)
        return -1;
    ld->schools[ld->n] = ld->school_copies[ld->n];
    ld->roles[ld->n] = role;
    ld->n++;
    ld->rows++;
    return 0;
}

/* One COPY text line without its newline, NUL-terminated, modified in
 * place: "user_id TAB school TAB role". */
static int loader_line(loader *ld, char *line)
{
    char *school, *role_name;

    school = strchr(line, '\t');
    if (school == NULL)
        return 0;
    *school++ = '\0';
    role_name = strchr(school, '\t');
    if (role_name == NULL)
        return 0;
    *role_name++ = '\0';
    ssp_pg_copy_unescape(line);
    ssp_pg_copy_unescape(school);
    return loader_row(ld, line, school, role_name);
}

static void loader_destroy(loader *ld)
{
    loader_reset_user(ld);
    free(ld->schools);
    free(ld->school_copies);
    free(ld->roles);
}

/* ---- loading ---- */

typedef struct copy_load {
    loader *ld;
    ssp_pg_cache_writer cache;
} copy_load;

static int copy_row(void *ctx, char *data, size_t len, ssp_error *err)
{
    copy_load *cl = ctx;

    ssp_pg_cache_add(&cl->cache, data, len);
    if (len > 0 && data[len - 1] == '\n')
        data[len - 1] = '\0';
    else
        data[len] = '\0'; /* libpq's buffer holds one byte more */
    if (loader_line(cl->ld, data) != 0)
        return ssp_fail_nomem(err);
    return 0;
}

int ssp_pg_roster_load(ssp_pgstore *pg, ssp_pg_conn *conn, ssp_strmap *map, int64_t *version,
                       ssp_error *err)
{
    ssp_pg_rows *rows;
    loader ld = {0};
    copy_load cl;
    int rc = -1;

    ld.map = map;
    ld.roster = pg->env->roster;
    /* The version first: rows read afterwards are at least that new. */
    rows = ssp_pg_query(conn, "SELECT coalesce(max(version), 0) FROM school_policy.roster_changes",
                        0, NULL, true, NULL, err);
    if (rows == NULL) {
        loader_destroy(&ld);
        return -1;
    }
    *version = ssp_pg_int(rows, 0, 0);
    ssp_pg_rows_free(rows);
    cl.ld = &ld;
    ssp_pg_cache_begin(&cl.cache, pg->cache_path);
    /* The roster table is clustered by its primary key, so rows arrive
     * grouped by user from the index. */
    if (ssp_pg_copy_out(conn,
                        "COPY (SELECT user_id, school, role FROM school_policy.roster"
                        " ORDER BY user_id, school) TO STDOUT",
                        copy_row, &cl, err) != 0)
        goto done;
    if (loader_finish_user(&ld) != 0) {
        ssp_fail_nomem(err);
        goto done;
    }
    rc = 0;
done:
    ssp_pg_cache_end(&cl.cache, rc == 0);
    loader_destroy(&ld);
    return rc;
}

/* Reads the local roster cache (a missing file is an empty roster). */
int ssp_pg_roster_load_cache(ssp_pgstore *pg, ssp_strmap *map, ssp_error *err)
{
    FILE *file = fopen(pg->cache_path, "re");
    loader ld = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    if (file == NULL)
        return errno == ENOENT ? 0 : ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s",
                                              pg->cache_path, strerror(errno));
    ld.map = map;
    ld.roster = pg->env->roster;
    while ((len = getline(&line, &cap, file)) > 0) {
        if (line[len - 1] != '\n')
            break; /* torn last line */
        line[len - 1] = '\0';
        if (loader_line(&ld, line) != 0) {
            rc = ssp_fail_nomem(err);
            break;
        }
    }
    if (rc == 0 && loader_finish_user(&ld) != 0)
        rc = ssp_fail_nomem(err);
    free(line);
    fclose(file);
    loader_destroy(&ld);
    return rc;
}

/* [store thread] Reloads the whole roster and swaps it in. */
int ssp_pg_roster_full_sync(ssp_pgstore *pg, ssp_error *err)
{
    ssp_strmap map;
    int64_t version = 0;

    ssp_strmap_init(&map);
    if (ssp_pg_roster_load(pg, pg->conn, &map, &version, err) != 0) {
        ssp_roster_map_free(&map);
        return -1;
    }
    /* Under write_mutex: a roster write through this process is either in
     * the outbox already pushed (so in the rows) or applied after the swap. */
    pthread_mutex_lock(pg->env->write_mutex);
    ssp_roster_replace(pg->env->roster, &map);
    pthread_mutex_unlock(pg->env->write_mutex);
    pthread_mutex_lock(&pg->mutex);
    pg->roster_version = version;
    pthread_mutex_unlock(&pg->mutex);
    return 0;
}

/* [store thread] Applies the changes since the last version seen, up to
 * INCREMENTAL_MAX of them: 1 when more are waiting (the caller writes the
 * audit queue, then comes back), 0 when caught up, -1 on error. Only a
 * TRUNCATE of the roster reloads the whole roster. */
int ssp_pg_roster_incremental_sync(ssp_pgstore *pg, ssp_error *err)
{
    ssp_pg_rows *res = NULL;
    char since[32];
    const char *params[1];
    json_t *users = NULL;
    char *users_text = NULL;
    ssp_strmap changed, loaded;
    loader ld = {0};
    int64_t version, newest;
    int rows, rc = -1;
    bool everything = false, more = false;

    ssp_strmap_init(&changed);
    ssp_strmap_init(&loaded);
    pthread_mutex_lock(&pg->mutex);
    version = pg->roster_version;
    pthread_mutex_unlock(&pg->mutex);
    newest = version;
    snprintf(since, sizeof since, "%lld", (long long)version);
    params[0] = since;
    res = ssp_pg_query(pg->conn,
                       "SELECT version, user_id FROM school_policy.roster_changes"
                       " WHERE version > $1::bigint ORDER BY version LIMIT " AS_TEXT(INCREMENTAL_MAX),
                       1, params, true, NULL, err);
    if (res == NULL)
        goto done;
    rows = ssp_pg_nrows(res);
    if (rows == 0) {
        rc = 0;
        goto done;
    }
    more = rows == INCREMENTAL_MAX;
    {
        users = json_array();
        if (users == NULL)
            goto oom;
        for (int i = 0; i < rows; i++) {
            const char *user = ssp_pg_value(res, i, 1);

            newest = ssp_pg_int(res, i, 0);
            if (ssp_pg_isnull(res, i, 1)) {
                everything = true;
                break;
            }
            if (ssp_strmap_get(&changed, user) != NULL)
                continue;
            if (json_array_append_new(users, json_string(user)) != 0)
                goto oom;
            /* Key and value point into the JSON array's strings. */
            user = json_string_value(json_array_get(users, json_array_size(users) - 1));
            if (ssp_strmap_put(&changed, user, (void *)user, NULL) != 0)
                goto oom;
        }
    }
    ssp_pg_rows_free(res);
    res = NULL;
    if (everything) {
        rc = ssp_pg_roster_full_sync(pg, err);
        goto done;
    }
    users_text = ssp_json_dumps_checked(users);
    if (users_text == NULL)
        goto oom;
    params[0] = users_text;
    res = ssp_pg_query(pg->conn,
                       "SELECT user_id, school, role FROM school_policy.roster"
                       " WHERE user_id IN (SELECT json_array_elements_text($1::json))"
                       " ORDER BY user_id, school",
                       1, params, true, NULL, err);
    if (res == NULL)
        goto done;
    ld.map = &loaded;
    ld.roster = pg->env->roster;
    /* Rows come ordered by user, as the loader wants them. */
    for (int i = 0; i < ssp_pg_nrows(res); i++) {
        if (loader_row(&ld, ssp_pg_value(res, i, 0), ssp_pg_value(res, i, 1),
                       ssp_pg_value(res, i, 2)) != 0)
            goto oom;
    }
    if (loader_finish_user(&ld) != 0)
        goto oom;
    ssp_pg_rows_free(res);
    res = NULL;
    /* Apply: every changed user gets the rows read, or leaves the roster. */
    {
        size_t n = json_array_size(users);
        const char **ids = malloc((n ? n : 1) * sizeof *ids);
        int applied;

        if (ids == NULL)
            goto oom;
        for (size_t i = 0; i < n; i++)
            ids[i] = json_string_value(json_array_get(users, i));
        pthread_mutex_lock(pg->env->write_mutex);
        applied = ssp_roster_apply_loaded(pg->env->roster, ids, n, &loaded, err);
        pthread_mutex_unlock(pg->env->write_mutex);
        free(ids);
        if (applied != 0)
            goto done;
    }
    pthread_mutex_lock(&pg->mutex);
    if (newest > pg->roster_version)
        pg->roster_version = newest;
    pthread_mutex_unlock(&pg->mutex);
    rc = more ? 1 : 0;
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    ssp_pg_rows_free(res);
    loader_destroy(&ld);
    ssp_roster_map_free(&loaded);
    ssp_strmap_destroy(&changed); /* borrowed keys and values */
    json_decref(users);
    free(users_text);
    return rc;
}

/* [store thread] Pushes the oldest PUSH_LINES_MAX entries of the roster
 * outbox to the database (the rest waits for the next pass), and truncates
 * the outbox once all of it is there. Returns -1 on a database error. */
int ssp_pg_roster_push_outbox(ssp_pgstore *pg, ssp_error *err)
{
    off_t from, to;
    char *data, *payload;
    size_t len, used = 0, lines = 0;
    const char *params[1];
    int rc = -1;

    pthread_mutex_lock(pg->env->write_mutex);
    from = pg->outbox_pushed;
    to = pg->outbox.size;
    pthread_mutex_unlock(pg->env->write_mutex);
    if (to <= from)
        return 0;
    /* Appends go past `to` only, so the range read is stable. The
     * journal's own fd is write-only: read through the path. */
    {
        int fd = open(pg->outbox.path, O_RDONLY | O_CLOEXEC);

        data = fd >= 0 ? ssp_read_range(fd, from, to) : NULL;
        if (fd >= 0)
            close(fd);
        if (data == NULL)
            return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", pg->outbox.path,
                            strerror(errno));
    }
    len = (size_t)(to - from);
    payload = malloc(len + 3);
    if (payload == NULL) {
        free(data);
        return ssp_fail_nomem(err);
    }
    /* The lines are JSON objects: join them into one array. */
    payload[used++] = '[';
    for (char *line = data; *line && lines < PUSH_LINES_MAX;) {
        char *nl = strchr(line, '\n');
        size_t line_len = nl ? (size_t)(nl - line) : strlen(line);

        if (line_len > 0) {
            if (lines++ > 0)
                payload[used++] = ',';
            memcpy(payload + used, line, line_len);
            used += line_len;
        }
        line += line_len + (nl ? 1 : 0);
        /* the rest waits for the next pass */
        if (lines == PUSH_LINES_MAX)
            to = from + (off_t)(line - data);
    }
    payload[used++] = ']';
    payload[used] = '\0';
    free(data);
    params[0] = payload;
    if (ssp_pg_exec(pg->conn, ROSTER_PUSH_SQL, 1, params, false, "roster push", err) == 0) {
        pthread_mutex_lock(pg->env->write_mutex);
        if (pg->outbox.size == to && ftruncate(pg->outbox.fd, 0) == 0) {
            pg->outbox.size = 0;
            pg->outbox.lines = 0;
            pg->outbox_pushed = 0;
        } else {
            pg->outbox_pushed = to;
        }
        pthread_mutex_unlock(pg->env->write_mutex);
        pthread_mutex_lock(&pg->mutex);
        pg->outbox_pending = pg->outbox_pending > lines ? pg->outbox_pending - lines : 0;
        pthread_mutex_unlock(&pg->mutex);
        rc = 0;
    }
    free(payload);
    return rc;
}

bool ssp_pg_roster_outbox_waiting(ssp_pgstore *pg)
{
    bool waiting;

    pthread_mutex_lock(pg->env->write_mutex);
    waiting = pg->outbox.size > pg->outbox_pushed;
    pthread_mutex_unlock(pg->env->write_mutex);
    return waiting;
}

int ssp_pg_roster_append(ssp_store *store, const ssp_roster_change *changes, size_t n,
                         ssp_error *err)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;

    if (ssp_journal_append(&pg->outbox, changes, n, err) != 0)
        return -1;
    pthread_mutex_lock(&pg->mutex);
    pg->outbox_pending += n;
    pthread_mutex_unlock(&pg->mutex);
    ssp_pg_wake(pg);
    return 0;
}
