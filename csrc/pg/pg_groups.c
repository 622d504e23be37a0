/*
 * The PostgreSQL store's groups: every group loaded with COPY into the
 * roster's group index at open and on reconnect (and written to the local
 * cache file, for starting during an outage), the changes since the last
 * version seen applied on NOTIFY school_policy_groups, and groups_append.
 *
 * A row of school_policy.groups holds a whole group, its members in two
 * text arrays (moderators, members): a load reads one row per group. The
 * row is turned into an ssp_group (group.h: one allocation, members sorted
 * by user id) without going through JSON.
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
#include <strings.h>

#include "group.h"
#include "ids.h"
#include "pg/pg_cache.h"
#include "pg/pg_conn.h"
#include "pg/pg_groups.h"
#include "pg/pg_state.h"
#include "roster_index.h"
#include "util.h"

#define STRINGIFY(x) #x
#define AS_TEXT(x) STRINGIFY(x)

/* Changes read per pass of the store thread (the audit is written between
 * passes). */
#define INCREMENTAL_MAX 2000

/* The columns of a row, in the order every query here selects them. */
enum {
    COL_GROUP_ID,
    COL_SCHOOL,
    COL_KIND,
    COL_NAME,
    COL_TOPIC,
    COL_TWO_WAY,
    COL_CLOSED,
    COL_STATE,
    COL_ARCHIVE_AT_MS,
    COL_VERSION,
    COL_MODERATORS,
    COL_MEMBERS,
    N_COLUMNS
};
#define GROUP_COLUMNS                                                                              \
    "group_id, school, kind, name, topic, two_way, closed, state, archive_at_ms, version, "        \
    "moderators, members"

static const char LOAD_SQL[] = "COPY (SELECT " GROUP_COLUMNS " FROM school_policy.groups) TO STDOUT";
static const char SELECT_SQL[] = "SELECT " GROUP_COLUMNS " FROM school_policy.groups"
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
    " written AS (INSERT INTO school_policy.groups AS g (" GROUP_COLUMNS ")"
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

static const char *const KINDS[] = {"course", "team", "class", NULL};
static const char *const STATES[] = {"active", "archived", "deleted", NULL};

/* ---- a row into a group ---- */

typedef struct member_ref {
    const char *user_id; /* into the row being built */
    ssp_group_role role;
} member_ref;

/* The members of the row being built: reused from row to row. */
typedef struct member_buf {
    member_ref *refs;
    size_t n, cap;
} member_buf;

static int member_push(member_buf *mb, const char *user_id, ssp_group_role role)
{
    if (mb->n == mb->cap) {
        size_t cap = mb->cap ? mb->cap * 2 : 64;
        member_ref *refs = realloc(mb->refs, cap * sizeof *refs);

        if (refs == NULL)
            return -1;
        mb->refs = refs;
        mb->cap = cap;
    }
    mb->refs[mb->n].user_id = user_id;
    mb->refs[mb->n].role = role;
    mb->n++;
    return 0;
}

/* Parses a PostgreSQL array literal of text ({a,"b \"c\"",...}) in place,
 * each element onto mb with role. 0, 1 when it is not such a literal or
 * holds a NULL, -1 when out of memory. */
static int parse_text_array(char *s, ssp_group_role role, member_buf *mb)
{
    if (*s++ != '{')
        return 1;
    if (*s == '}')
        return s[1] == '\0' ? 0 : 1;
    for (;;) {
        char *start, delimiter;

        if (*s == '"') {
            char *out = start = ++s;

            while (*s != '"') {
                if (*s == '\\')
                    s++;
                if (*s == '\0')
                    return 1;
                *out++ = *s++;
            }
            s++;
            *out = '\0'; /* out is before s */
        } else {
            start = s;
            while (*s != ',' && *s != '}' && *s != '\0')
                s++;
            if (s - start == 4 && strncasecmp(start, "NULL", 4) == 0)
                return 1;
        }
        delimiter = *s;
        if (delimiter != ',' && delimiter != '}')
            return 1;
        *s++ = '\0';
        if (member_push(mb, start, role) != 0)
            return -1;
        if (delimiter == '}')
            return *s == '\0' ? 0 : 1;
    }
}

static int name_index(const char *value, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(value, names[i]) == 0)
            return i;
    }
    return -1;
}

static bool parse_int(const char *text, int64_t *out)
{
    char *end;
    long long value;

    errno = 0;
    value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 0)
        return false;
    *out = value;
    return true;
}

static int compare_refs(const void *a, const void *b)
{
    return strcmp(((const member_ref *)a)->user_id, ((const member_ref *)b)->user_id);
}

static char *put_string(char **strings, const char *s)
{
    char *copy = *strings;
    size_t len = strlen(s) + 1;

    memcpy(copy, s, len);
    *strings += len;
    return copy;
}

typedef struct row_loader {
    ssp_roster *roster; /* its server_name, and the skipped counter */
    member_buf members;
    size_t rows;
} row_loader;

/* One row: f[i] is column i, NULL for SQL NULL, modifiable (the arrays are
 * parsed in place). Builds the group in the layout of group.h. A row that
 * breaks the input rules (written with SQL) is skipped and counted, as
 * are members with an invalid user id or of another server (the group is
 * kept without them); a member listed twice keeps its first entry
 * (moderators come first). Returns 0 with *out set (NULL: skipped), or -1
 * when out of memory. */
static int group_from_row(row_loader *ld, char **f, ssp_group **out)
{
    member_buf *mb = &ld->members;
    const char *server_name = ld->roster->server_name;
    ssp_error ignored;
    int kind, state, parsed;
    int64_t archive_at_ms = 0, version = 0;
    size_t size, kept = 0;
    ssp_group *group;
    char *strings;

    *out = NULL;
    mb->n = 0;
    for (int c = 0; c < N_COLUMNS; c++) {
        if (f[c] == NULL && c != COL_TOPIC && c != COL_ARCHIVE_AT_MS && c != COL_VERSION)
            goto skip;
    }
    kind = name_index(f[COL_KIND], KINDS);
    state = name_index(f[COL_STATE], STATES);
    if (ssp_check_group_id("group", f[COL_GROUP_ID], strlen(f[COL_GROUP_ID]), &ignored) != 0 ||
        ssp_check_school_id("school", f[COL_SCHOOL], strlen(f[COL_SCHOOL]), &ignored) != 0 ||
        kind < 0 || state < 0 || f[COL_NAME][0] == '\0' ||
        (f[COL_ARCHIVE_AT_MS] != NULL && !parse_int(f[COL_ARCHIVE_AT_MS], &archive_at_ms)) ||
        (f[COL_VERSION] != NULL && !parse_int(f[COL_VERSION], &version)))
        goto skip;
    parsed = parse_text_array(f[COL_MODERATORS], SSP_GROUP_MODERATOR, mb);
    if (parsed == 0)
        parsed = parse_text_array(f[COL_MEMBERS], SSP_GROUP_MEMBER, mb);
    if (parsed < 0)
        return -1;
    if (parsed > 0)
        goto skip;
    /* Members with a valid user id (of this server, when it is set). */
    for (size_t i = 0; i < mb->n; i++) {
        const char *user_id = mb->refs[i].user_id;

        if (ssp_check_user_id("user_id", user_id, strlen(user_id), server_name, &ignored) != 0) {
            ssp_roster_note_skipped(ld->roster, 1);
            continue;
        }
        mb->refs[kept++] = mb->refs[i];
    }
    mb->n = kept;
    if (mb->n > 1) {
        /* Sorted by user id, as group.h wants them; a user listed twice
         * (the table's CHECK forbids it in both arrays, not twice in one)
         * keeps one entry, a moderator's if either is. */
        qsort(mb->refs, mb->n, sizeof *mb->refs, compare_refs);
        kept = 1;
        for (size_t i = 1; i < mb->n; i++) {
            if (strcmp(mb->refs[i].user_id, mb->refs[kept - 1].user_id) == 0) {
                if (mb->refs[i].role == SSP_GROUP_MODERATOR)
                    mb->refs[kept - 1].role = SSP_GROUP_MODERATOR;
                ssp_roster_note_skipped(ld->roster, 1);
                continue;
            }
            mb->refs[kept++] = mb->refs[i];
        }
        mb->n = kept;
    }
    size = sizeof(ssp_group) + mb->n * sizeof(ssp_group_member) + strlen(f[COL_GROUP_ID]) +
           strlen(f[COL_SCHOOL]) + strlen(f[COL_NAME]) + 3 +
           (f[COL_TOPIC] ? strlen(f[COL_TOPIC]) + 1 : 0);
    for (size_t i = 0; i < mb->n; i++)
        size += strlen(mb->refs[i].user_id) + 1;
    group = malloc(size);
    if (group == NULL)
        return -1;
    strings = (char *)&group->members[mb->n];
    group->group_id = put_string(&strings, f[COL_GROUP_ID]);
    group->school = put_string(&strings, f[COL_SCHOOL]);
    group->kind = KINDS[kind]; /* static */
    group->name = put_string(&strings, f[COL_NAME]);
    group->topic = f[COL_TOPIC] ? put_string(&strings, f[COL_TOPIC]) : NULL;
    group->two_way = f[COL_TWO_WAY][0] == 't';
    group->closed = f[COL_CLOSED][0] == 't';
    group->state = (ssp_group_state)state;
    group->archive_at_ms = archive_at_ms;
    group->has_version = f[COL_VERSION] != NULL;
    group->version = version;
    group->n_members = mb->n;
    for (size_t i = 0; i < mb->n; i++) {
        group->members[i].user_id = put_string(&strings, mb->refs[i].user_id);
        group->members[i].role = mb->refs[i].role;
    }
    ld->rows++;
    *out = group;
    return 0;
skip:
    ssp_roster_note_skipped(ld->roster, 1);
    return 0;
}

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

/* One COPY text line without its newline, NUL-terminated, modified in
 * place. A line with the wrong number of fields is skipped (a torn cache
 * line, a column added by a newer version). */
static int load_line(row_loader *ld, ssp_strmap *map, char *line)
{
    char *f[N_COLUMNS];
    ssp_group *group;
    int c = 0;

    for (char *s = line;; s++) {
        char *tab = strchr(s, '\t');

        if (c == N_COLUMNS)
            return 0;
        f[c++] = s;
        if (tab == NULL)
            break;
        *tab = '\0';
        s = tab;
    }
    if (c != N_COLUMNS)
        return 0;
    for (c = 0; c < N_COLUMNS; c++) {
        if (strcmp(f[c], "\\N") == 0)
            f[c] = NULL;
        else
            ssp_pg_copy_unescape(f[c]);
    }
    if (group_from_row(ld, f, &group) != 0)
        return -1;
    return group == NULL ? 0 : map_put(map, group);
}

/* ---- loading ---- */

typedef struct copy_load {
    row_loader *ld;
    ssp_strmap *map;
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
    if (load_line(cl->ld, cl->map, data) != 0)
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
    row_loader ld = {pg->env->roster, {NULL, 0, 0}, 0};
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
    cl.ld = &ld;
    cl.map = map;
    ssp_pg_cache_begin(&cl.cache, path);
    free(path);
    rc = ssp_pg_copy_out(conn, LOAD_SQL, copy_row, &cl, err);
    ssp_pg_cache_end(&cl.cache, rc == 0);
    free(ld.members.refs);
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
    char *path = cache_path(pg);
    FILE *file;
    row_loader ld = {pg->env->roster, {NULL, 0, 0}, 0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    if (path == NULL)
        return ssp_fail_nomem(err);
    file = fopen(path, "re");
    if (file == NULL) {
        rc = errno == ENOENT ? 0
                             : ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    while ((len = getline(&line, &cap, file)) > 0) {
        if (line[len - 1] != '\n')
            break; /* torn last line */
        line[len - 1] = '\0';
        if (load_line(&ld, map, line) != 0) {
            rc = ssp_fail_nomem(err);
            break;
        }
    }
    free(line);
    fclose(file);
    free(path);
    free(ld.members.refs);
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
    row_loader ld = {pg->env->roster, {NULL, 0, 0}, 0};
    int rc = 0;

    for (int r = 0; r < ssp_pg_nrows(res) && rc == 0; r++) {
        char *f[N_COLUMNS];
        ssp_group *group = NULL;

        /* Copies: the arrays are parsed in place. */
        for (int c = 0; c < N_COLUMNS; c++) {
            f[c] = NULL;
            if (!ssp_pg_isnull(res, r, c) && (f[c] = ssp_strdup(ssp_pg_value(res, r, c))) == NULL)
                rc = -1;
        }
        if (rc == 0 && group_from_row(&ld, f, &group) != 0)
            rc = -1;
        if (rc == 0 && group != NULL && map_put(map, group) != 0)
            rc = -1;
        for (int c = 0; c < N_COLUMNS; c++)
            free(f[c]);
    }
    free(ld.members.refs);
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
