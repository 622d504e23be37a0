/*
 * The PostgreSQL store (config key `database`): roster and audit log in
 * PostgreSQL through libpq, shared by every Synapse process.
 *
 * Threads and connections
 * - `conn` belongs to the store's background thread (store_main). Only
 *   ssp_pgstore_open touches it before that thread starts, and
 *   ssp_pgstore_close after it has been joined. Every libpq call on it is
 *   marked "[store thread]" (or "[open]").
 * - `query_conn` serves audit queries and purges for callers (Synapse's
 *   thread pool, the CLI), one at a time under query_mutex; its calls are
 *   marked "[caller thread]". The binding calls these without the GIL.
 * - Decisions never come here: they read the in-memory roster.
 *
 * What the store thread does, in a loop
 * 1. While disconnected: try to connect every RECONNECT_MS, and write every
 *    queued audit record to the spill file (data_dir/<worker>.audit-spill.jsonl,
 *    fdatasync) so that a crash during an outage loses no more than a crash
 *    while connected.
 * 2. On (re)connect: apply migrations, LISTEN, push the roster outbox, reload
 *    the whole roster (swapped in under the write lock), drain the spill file
 *    in order.
 * 3. While connected: push roster outbox entries, write queued audit records
 *    in multi-row INSERTs, and apply roster change notifications by reading
 *    school_policy.roster_changes since the last version seen.
 *
 * Exactly once: every audit record carries (origin, origin_seq), unique in
 * the table; origin names the worker and this process's boot. A batch whose
 * commit was not confirmed is sent again and ON CONFLICT DO NOTHING drops
 * what had arrived.
 *
 * Roster writes: the caller appends the change to the local outbox
 * (data_dir/<worker>.roster-outbox.jsonl, fsync), applies it in memory and
 * acknowledges; the thread pushes the outbox to the database in order and
 * truncates it once the database has it. A process restarted during an
 * outage starts from the local roster cache (the last full load, written as
 * data_dir/<worker>.roster-cache) plus its outbox.
 *
 * Ownership: the store owns every string and buffer it allocates; PGresult
 * objects are cleared with CLEARPGRES at the end of the function that got
 * them; records taken from the audit queue are owned by the thread until
 * written (then freed) or put back at the queue's front.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ssp_private.h"

#define CLEARPGRES(res)                                                                           \
    do {                                                                                          \
        if ((res) != NULL) {                                                                      \
            PQclear(res);                                                                         \
            (res) = NULL;                                                                         \
        }                                                                                         \
    } while (0)

#define SCHEMA_VERSION 3
#define MIGRATION_LOCK_KEY 7240571810012711LL /* pg_advisory_xact_lock key for migrations */
#define RECONNECT_MS 1000
#define IDLE_WAIT_MS 1000
#define AUDIT_BATCH_MAX 2000
#define SPILL_BATCH_MAX 2000
#define INCREMENTAL_MAX 20000 /* more changed users than this: reload everything */
#define MAINTENANCE_MS (3600 * 1000)
#define CONNECT_TIMEOUT_S "3"
#define PENDING_COUNT_MS 1000 /* refresh of the cached reconcile_pending count */

struct ssp_pgstore {
    ssp_engine *engine; /* back pointer: roster, audit queue, write_mutex, config */
    char *conninfo;
    char *data_dir;
    char *origin; /* "<worker>/<boot id>": audit records' origin */
    char *spill_path;
    char *cache_path;
    char *lock_path;
    int lock_fd;
    int wake_fd; /* eventfd: audit submits and roster writes wake the thread */

    PGconn *conn; /* [store thread] */
    int64_t last_connect_attempt_ms;
    int64_t last_maintenance_ms;
    int64_t last_pending_count_ms; /* [store thread] */
    int spill_fd;             /* [store thread] */
    off_t spill_drained;      /* [store thread] bytes of the spill file already in the database */
    ssp_journal outbox;       /* appended under engine->write_mutex */
    off_t outbox_pushed;      /* under engine->write_mutex */

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

    pthread_mutex_t query_mutex; /* guards query_conn */
    PGconn *query_conn;          /* [caller thread] */
};

/* ---- schema ---- */

/* Migration n brings the schema from version n-1 to n. Never edit one that
 * has shipped: add the next. */
static const char *const MIGRATIONS[SCHEMA_VERSION] = {
    /* 1: roster, change log with NOTIFY, audit */
    "CREATE TABLE school_policy.roster ("
    "  user_id text NOT NULL,"
    "  school text NOT NULL,"
    "  role text NOT NULL CHECK (role IN ('student', 'teacher', 'admin')),"
    "  PRIMARY KEY (user_id, school));"
    "CREATE TABLE school_policy.roster_changes ("
    "  version bigserial PRIMARY KEY,"
    "  user_id text," /* NULL: everything changed (TRUNCATE) */
    "  changed_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX roster_changes_changed_at ON school_policy.roster_changes (changed_at);"
    "CREATE FUNCTION school_policy.roster_changed() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    /* Serialise writers until commit, so that versions commit in order and
     * 'version > last seen' never skips a change. */
    "  PERFORM pg_advisory_xact_lock(7240571810012712);"
    "  IF TG_OP = 'TRUNCATE' THEN"
    "   INSERT INTO school_policy.roster_changes (user_id) VALUES (NULL);"
    "  ELSE"
    "   IF TG_OP IN ('UPDATE', 'DELETE') THEN"
    "    INSERT INTO school_policy.roster_changes (user_id) VALUES (OLD.user_id);"
    "   END IF;"
    "   IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    "    INSERT INTO school_policy.roster_changes (user_id) VALUES (NEW.user_id);"
    "   END IF;"
    "  END IF;"
    /* One payload for all: PostgreSQL folds a transaction's identical
     * notifications into one. */
    "  PERFORM pg_notify('school_policy_roster', '');"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE TRIGGER roster_changed AFTER INSERT OR UPDATE OR DELETE ON school_policy.roster"
    "  FOR EACH ROW EXECUTE FUNCTION school_policy.roster_changed();"
    "CREATE TRIGGER roster_truncated AFTER TRUNCATE ON school_policy.roster"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.roster_changed();"
    "CREATE TABLE school_policy.audit ("
    "  id bigserial PRIMARY KEY,"
    "  ts timestamptz NOT NULL,"
    "  rule text NOT NULL,"
    "  callback text NOT NULL,"
    "  enforced boolean NOT NULL,"
    "  actor text,"
    "  target text,"
    "  room_id text,"
    "  event_type text,"
    "  school text,"
    "  worker text NOT NULL,"
    "  origin text NOT NULL,"
    "  origin_seq bigint NOT NULL,"
    "  UNIQUE (origin, origin_seq));"
    "CREATE INDEX audit_ts ON school_policy.audit (ts);"
    "CREATE INDEX audit_actor ON school_policy.audit (actor, id);"
    "CREATE INDEX audit_target ON school_policy.audit (target, id) WHERE target IS NOT NULL;"
    "CREATE INDEX audit_school ON school_policy.audit (school, id);",
    /* 2: the reconciliation ledger: marks (kept by a trigger on the roster),
     * special rooms, applied school config */
    "CREATE SEQUENCE school_policy.reconcile_generation;"
    "CREATE TABLE school_policy.reconcile_marks ("
    "  school text NOT NULL,"
    "  user_id text NOT NULL," /* '': the school itself */
    "  generation bigint NOT NULL,"
    "  marked_at bigint NOT NULL," /* ms since the epoch */
    "  attempts integer NOT NULL DEFAULT 0,"
    "  next_attempt_at bigint NOT NULL DEFAULT 0," /* ms; 0: due now */
    "  last_error text,"
    "  failed_at bigint,"
    "  PRIMARY KEY (school, user_id));"
    "CREATE INDEX reconcile_marks_due ON school_policy.reconcile_marks"
    "  (next_attempt_at, marked_at, generation);"
    "CREATE TABLE school_policy.special_rooms ("
    "  school text NOT NULL,"
    "  kind text NOT NULL CHECK (kind IN ('teachers', 'announcement')),"
    "  room_id text NOT NULL,"
    "  PRIMARY KEY (school, kind));"
    "CREATE TABLE school_policy.school_state ("
    "  school text PRIMARY KEY,"
    "  applied text NOT NULL);"
    /* A (re)mark: a new generation, due now; last_error stays until done. */
    "CREATE FUNCTION school_policy.reconcile_mark(p_school text, p_user_id text)"
    " RETURNS bigint LANGUAGE sql AS $f$"
    " INSERT INTO school_policy.reconcile_marks AS m"
    "  (school, user_id, generation, marked_at, attempts, next_attempt_at)"
    " VALUES (p_school, p_user_id, nextval('school_policy.reconcile_generation'),"
    "  (extract(epoch FROM clock_timestamp()) * 1000)::bigint, 0, 0)"
    " ON CONFLICT (school, user_id) DO UPDATE SET generation = EXCLUDED.generation,"
    "  marked_at = EXCLUDED.marked_at, attempts = 0, next_attempt_at = 0"
    " RETURNING generation $f$;"
    "CREATE FUNCTION school_policy.roster_reconcile_mark() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  IF TG_OP = 'TRUNCATE' THEN"
    "   PERFORM school_policy.reconcile_mark(s.school, '') FROM"
    "    (SELECT school FROM school_policy.special_rooms"
    "     UNION SELECT school FROM school_policy.school_state) s;"
    "  ELSE"
    "   IF TG_OP IN ('UPDATE', 'DELETE') THEN"
    "    PERFORM school_policy.reconcile_mark(OLD.school, OLD.user_id);"
    "   END IF;"
    "   IF TG_OP IN ('INSERT', 'UPDATE') THEN"
    "    PERFORM school_policy.reconcile_mark(NEW.school, NEW.user_id);"
    "   END IF;"
    "  END IF;"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE TRIGGER roster_reconcile_mark AFTER INSERT OR UPDATE OR DELETE"
    "  ON school_policy.roster"
    "  FOR EACH ROW EXECUTE FUNCTION school_policy.roster_reconcile_mark();"
    "CREATE TRIGGER roster_reconcile_truncated AFTER TRUNCATE ON school_policy.roster"
    "  FOR EACH STATEMENT EXECUTE FUNCTION school_policy.roster_reconcile_mark();",
    /* 3: the audit page: the read log, and indexes for a school's pages by
     * rule and for the chart's counts per rule over time (index-only) */
    "CREATE TABLE school_policy.audit_reads ("
    "  id bigserial PRIMARY KEY,"
    "  ts timestamptz NOT NULL,"
    "  reader text NOT NULL,"
    "  access text NOT NULL,"
    "  op text NOT NULL,"
    "  query jsonb NOT NULL,"
    "  schools jsonb," /* NULL: every school */
    "  worker text NOT NULL);"
    "CREATE INDEX audit_reads_ts ON school_policy.audit_reads (ts);"
    "CREATE INDEX audit_reads_schools ON school_policy.audit_reads USING gin (schools);"
    "CREATE INDEX audit_school_ts ON school_policy.audit (school, ts) INCLUDE (rule);"
    "CREATE INDEX audit_school_rule ON school_policy.audit (school, rule, id);"
    "CREATE INDEX audit_rule ON school_policy.audit (rule, id);",
};

static const char AUDIT_INSERT_SQL[] =
    "INSERT INTO school_policy.audit (ts, rule, callback, enforced, actor, target, room_id,"
    " event_type, school, worker, origin, origin_seq)"
    " SELECT timestamptz 'epoch' + x.ts * interval '1 millisecond', x.rule, x.callback,"
    " x.enforced, x.actor, x.target, x.room_id, x.event_type, x.school, x.worker, x.origin, x.id"
    " FROM ROWS FROM (json_to_recordset($1::json) AS (id bigint, ts bigint, rule text,"
    " callback text, enforced boolean, actor text, target text, room_id text, event_type text,"
    " school text, worker text, origin text)) WITH ORDINALITY AS x(id, ts, rule, callback,"
    " enforced, actor, target, room_id, event_type, school, worker, origin, ord)"
    " ORDER BY x.ord"
    " ON CONFLICT (origin, origin_seq) DO NOTHING";

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

/* ---- small helpers ---- */

static void set_error(ssp_pgstore *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(ssp_pgstore *pg, const char *fmt, ...)
{
    va_list ap;
    char *nl;

    pthread_mutex_lock(&pg->mutex);
    va_start(ap, fmt);
    vsnprintf(pg->last_error, sizeof pg->last_error, fmt, ap);
    va_end(ap);
    /* libpq messages end in a newline */
    while ((nl = strrchr(pg->last_error, '\n')) != NULL && nl[1] == '\0')
        *nl = '\0';
    pthread_mutex_unlock(&pg->mutex);
}

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

static void wake(ssp_pgstore *pg)
{
    uint64_t one = 1;

    if (write(pg->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: already signalled */
    }
}

/* Reads bytes [from, to) of fd into a new NUL-terminated buffer. */
static char *read_range(int fd, off_t from, off_t to)
{
    size_t len = (size_t)(to - from), done = 0;
    char *buf = malloc(len + 1);

    if (buf == NULL)
        return NULL;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, from + (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        done += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
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

/* ---- connecting and migrations ---- */

/* Server notices ("schema already exists, skipping") are of no interest
 * and must not reach stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* [open] or [store thread] or [caller thread]: a new connection, or NULL
 * with the reason in err. */
static PGconn *connect_db(const char *conninfo, ssp_error *err)
{
    /* Expanded conninfo: the operator's string (keywords or URI) plus our
     * defaults, which it may override. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {CONNECT_TIMEOUT_S, "synapse_school_policy", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);

    if (conn == NULL) {
        ssp_fail_nomem(err);
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        ssp_fail(err, SSP_ERR_IO, "database: cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

/* Runs a statement without parameters; -1 with err set on failure. */
static int exec_ok(PGconn *conn, const char *sql, ssp_error *err)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;

    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        rc = ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(conn));
    CLEARPGRES(res);
    return rc;
}

/* [open] or [store thread]: creates or upgrades the schema. Serialised by
 * an advisory lock held until commit, so that workers starting together
 * apply each migration once. */
static int migrate(PGconn *conn, ssp_error *err)
{
    PGresult *res = NULL;
    int version = 0;

    if (exec_ok(conn, "BEGIN", err) != 0)
        return -1;
    res = PQexec(conn, "SELECT pg_advisory_xact_lock(7240571810012711)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto fail;
    CLEARPGRES(res);
    if (exec_ok(conn, "CREATE SCHEMA IF NOT EXISTS school_policy;"
                      "CREATE TABLE IF NOT EXISTS school_policy.schema_version ("
                      " version integer NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())",
                err) != 0)
        goto rollback;
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM school_policy.schema_version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto fail;
    version = atoi(PQgetvalue(res, 0, 0));
    CLEARPGRES(res);
    if (version > SCHEMA_VERSION) {
        ssp_fail(err, SSP_ERR_STATE,
                 "database: schema school_policy is at version %d, newer than this module "
                 "(%d); upgrade synapse-school-policy",
                 version, SCHEMA_VERSION);
        goto rollback;
    }
    for (int v = version + 1; v <= SCHEMA_VERSION; v++) {
        char insert[96];

        if (exec_ok(conn, MIGRATIONS[v - 1], err) != 0)
            goto rollback;
        snprintf(insert, sizeof insert, "INSERT INTO school_policy.schema_version (version) "
                                        "VALUES (%d)", v);
        if (exec_ok(conn, insert, err) != 0)
            goto rollback;
    }
    return exec_ok(conn, "COMMIT", err);
fail:
    ssp_fail(err, SSP_ERR_IO, "database: migration failed: %s", PQerrorMessage(conn));
    CLEARPGRES(res);
rollback:
    {
        ssp_error ignored;

        (void)exec_ok(conn, "ROLLBACK", &ignored);
    }
    return -1;
}

/* ---- loading the roster ---- */

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

/* Undoes COPY's text escapes in place (\\, \t, \n, \r). */
static void copy_unescape(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (*s == '\\' && s[1] != '\0') {
            s++;
            *out++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
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
    if (ssp_roster_check_user_id("user_id", user_id, strlen(user_id), ld->roster->server_name,
                                 &ignored) != 0 ||
        ssp_roster_check_school("school", school, strlen(school), &ignored) != 0) {
        __atomic_fetch_add(&ld->roster->skipped, 1, __ATOMIC_RELAXED);
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
    copy_unescape(line);
    copy_unescape(school);
    return loader_row(ld, line, school, role_name);
}

static void loader_destroy(loader *ld)
{
    loader_reset_user(ld);
    free(ld->schools);
    free(ld->school_copies);
    free(ld->roles);
}

static void free_map(ssp_strmap *map)
{
    ssp_strmap_each(map, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(map);
}

/* [open] or [store thread]: reads the whole roster with COPY into *map
 * (initialised by the caller) and the current change version into
 * *version, and writes the rows to the local cache file. */
static int load_from_db(ssp_pgstore *pg, PGconn *conn, ssp_strmap *map, int64_t *version,
                        ssp_error *err)
{
    PGresult *res = NULL;
    loader ld = {0};
    char *tmp_path = NULL, *buf = NULL;
    int cache_fd = -1, n, rc = -1;
    bool cache_ok = true;

    ld.map = map;
    ld.roster = &pg->engine->roster;
    /* The version first: rows read afterwards are at least that new. */
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM school_policy.roster_changes");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(conn));
        goto done;
    }
    *version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    CLEARPGRES(res);
    /* The roster table is clustered by its primary key, so rows arrive
     * grouped by user from the index. */
    res = PQexec(conn, "COPY (SELECT user_id, school, role FROM school_policy.roster"
                       " ORDER BY user_id, school) TO STDOUT");
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(conn));
        goto done;
    }
    CLEARPGRES(res);
    tmp_path = malloc(strlen(pg->cache_path) + 5);
    if (tmp_path != NULL) {
        sprintf(tmp_path, "%s.tmp", pg->cache_path);
        cache_fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    cache_ok = cache_fd >= 0;
    /* Each row arrives as one buffer ending in a newline. */
    while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
        if (cache_ok && ssp_write_all(cache_fd, buf, (size_t)n) != 0)
            cache_ok = false;
        if (buf[n - 1] == '\n')
            buf[n - 1] = '\0';
        if (loader_line(&ld, buf) != 0) {
            PQfreemem(buf);
            buf = NULL;
            ssp_fail_nomem(err);
            /* Drain the rest of the COPY so the connection stays usable. */
            while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
                PQfreemem(buf);
                buf = NULL;
            }
            while ((res = PQgetResult(conn)) != NULL)
                CLEARPGRES(res);
            goto done;
        }
        PQfreemem(buf);
        buf = NULL;
    }
    if (n == -2) {
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(conn));
        goto done;
    }
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(conn));
        goto done;
    }
    while (res != NULL) {
        CLEARPGRES(res);
        res = PQgetResult(conn);
    }
    if (loader_finish_user(&ld) != 0) {
        ssp_fail_nomem(err);
        goto done;
    }
    /* The cache is a convenience for starting during an outage: a failure
     * to write it is not an error, the old one stays. */
    if (!(cache_ok && fsync(cache_fd) == 0 && rename(tmp_path, pg->cache_path) == 0) &&
        tmp_path != NULL)
        unlink(tmp_path);
    rc = 0;
done:
    CLEARPGRES(res);
    if (cache_fd >= 0)
        close(cache_fd);
    if (rc != 0 && tmp_path != NULL)
        unlink(tmp_path);
    free(tmp_path);
    loader_destroy(&ld);
    return rc;
}

/* Reads the local roster cache (a missing file is an empty roster). */
static int load_from_cache(ssp_pgstore *pg, ssp_strmap *map, ssp_error *err)
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
    ld.roster = &pg->engine->roster;
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

/* Replaces the in-memory roster with *map (taken over; left empty). */
static void swap_roster(ssp_engine *engine, ssp_strmap *map)
{
    ssp_strmap old;

    pthread_rwlock_wrlock(&engine->roster.lock);
    old = engine->roster.users;
    engine->roster.users = *map;
    pthread_rwlock_unlock(&engine->roster.lock);
    ssp_strmap_init(map);
    free_map(&old);
}

/* ---- the store thread's work ---- */

static void disconnect(ssp_pgstore *pg, const char *why)
{
    if (pg->conn != NULL) {
        set_error(pg, "%s", why && why[0] ? why : PQerrorMessage(pg->conn));
        PQfinish(pg->conn); /* [store thread] */
        pg->conn = NULL;
    }
    set_connected(pg, false);
}

/* [store thread] Reloads the whole roster and swaps it in. */
static int full_sync(ssp_pgstore *pg, ssp_error *err)
{
    ssp_strmap map;
    int64_t version = 0;

    ssp_strmap_init(&map);
    if (load_from_db(pg, pg->conn, &map, &version, err) != 0) {
        free_map(&map);
        return -1;
    }
    /* Under write_mutex: a roster write through this process is either in
     * the outbox already pushed (so in the rows) or applied after the swap. */
    pthread_mutex_lock(&pg->engine->write_mutex);
    swap_roster(pg->engine, &map);
    pthread_mutex_unlock(&pg->engine->write_mutex);
    pthread_mutex_lock(&pg->mutex);
    pg->roster_version = version;
    pthread_mutex_unlock(&pg->mutex);
    return 0;
}

/* [store thread] Applies the changes since the last version seen. */
static int incremental_sync(ssp_pgstore *pg, ssp_error *err)
{
    PGresult *res = NULL;
    char since[32];
    const char *params[1];
    json_t *users = NULL;
    char *users_text = NULL;
    ssp_strmap changed, loaded;
    loader ld = {0};
    int64_t version, newest;
    int rows, rc = -1;
    bool everything = false;

    ssp_strmap_init(&changed);
    ssp_strmap_init(&loaded);
    pthread_mutex_lock(&pg->mutex);
    version = pg->roster_version;
    pthread_mutex_unlock(&pg->mutex);
    newest = version;
    snprintf(since, sizeof since, "%lld", (long long)version);
    params[0] = since;
    res = PQexecParams(pg->conn,
                       "SELECT version, user_id FROM school_policy.roster_changes"
                       " WHERE version > $1::bigint ORDER BY version LIMIT 20001",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(pg->conn));
        goto done;
    }
    rows = PQntuples(res);
    if (rows == 0) {
        rc = 0;
        goto done;
    }
    if (rows > INCREMENTAL_MAX) {
        everything = true;
    } else {
        users = json_array();
        if (users == NULL)
            goto oom;
        for (int i = 0; i < rows; i++) {
            const char *user = PQgetvalue(res, i, 1);

            newest = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            if (PQgetisnull(res, i, 1)) {
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
    CLEARPGRES(res);
    if (everything) {
        rc = full_sync(pg, err);
        goto done;
    }
    users_text = ssp_json_dumps_checked(users);
    if (users_text == NULL)
        goto oom;
    params[0] = users_text;
    res = PQexecParams(pg->conn,
                       "SELECT user_id, school, role FROM school_policy.roster"
                       " WHERE user_id IN (SELECT json_array_elements_text($1::json))"
                       " ORDER BY user_id, school",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(pg->conn));
        goto done;
    }
    ld.map = &loaded;
    ld.roster = &pg->engine->roster;
    /* Rows come ordered by user, as the loader wants them. */
    for (int i = 0; i < PQntuples(res); i++) {
        if (loader_row(&ld, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                       PQgetvalue(res, i, 2)) != 0)
            goto oom;
    }
    if (loader_finish_user(&ld) != 0)
        goto oom;
    CLEARPGRES(res);
    /* Apply: every changed user gets the rows read, or leaves the roster. */
    pthread_mutex_lock(&pg->engine->write_mutex);
    pthread_rwlock_wrlock(&pg->engine->roster.lock);
    if (ssp_strmap_reserve(&pg->engine->roster.users, json_array_size(users)) != 0) {
        pthread_rwlock_unlock(&pg->engine->roster.lock);
        pthread_mutex_unlock(&pg->engine->write_mutex);
        goto oom;
    }
    for (size_t i = 0; i < json_array_size(users); i++) {
        const char *user_id = json_string_value(json_array_get(users, i));
        ssp_roster_user *user = ssp_strmap_remove(&loaded, user_id);
        ssp_error ignored;

        /* Cannot fail: room was reserved. */
        (void)ssp_roster_apply_locked(&pg->engine->roster, user_id, user, &ignored);
    }
    pthread_rwlock_unlock(&pg->engine->roster.lock);
    pthread_mutex_unlock(&pg->engine->write_mutex);
    pthread_mutex_lock(&pg->mutex);
    if (newest > pg->roster_version)
        pg->roster_version = newest;
    pthread_mutex_unlock(&pg->mutex);
    rc = 0;
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    CLEARPGRES(res);
    loader_destroy(&ld);
    free_map(&loaded);
    ssp_strmap_destroy(&changed); /* borrowed keys and values */
    json_decref(users);
    free(users_text);
    return rc;
}

/* [store thread] Pushes the roster outbox to the database, then truncates
 * what was pushed. Returns -1 on a database error. */
static int push_outbox(ssp_pgstore *pg, ssp_error *err)
{
    off_t from, to;
    char *data, *payload;
    size_t len, used = 0, lines = 0;
    PGresult *res;
    const char *params[1];
    int rc = -1;

    pthread_mutex_lock(&pg->engine->write_mutex);
    from = pg->outbox_pushed;
    to = pg->outbox.size;
    pthread_mutex_unlock(&pg->engine->write_mutex);
    if (to <= from)
        return 0;
    /* Appends go past `to` only, so the range read is stable. The
     * journal's own fd is write-only: read through the path. */
    {
        int fd = open(pg->outbox.path, O_RDONLY | O_CLOEXEC);

        data = fd >= 0 ? read_range(fd, from, to) : NULL;
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
    for (char *line = data; *line;) {
        char *nl = strchr(line, '\n');
        size_t line_len = nl ? (size_t)(nl - line) : strlen(line);

        if (line_len > 0) {
            if (lines++ > 0)
                payload[used++] = ',';
            memcpy(payload + used, line, line_len);
            used += line_len;
        }
        line += line_len + (nl ? 1 : 0);
    }
    payload[used++] = ']';
    payload[used] = '\0';
    free(data);
    params[0] = payload;
    res = PQexecParams(pg->conn, ROSTER_PUSH_SQL, 1, NULL, params, NULL, NULL, 0); /* [store thread] */
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ssp_fail(err, SSP_ERR_IO, "database: roster push: %s", PQerrorMessage(pg->conn));
    } else {
        pthread_mutex_lock(&pg->engine->write_mutex);
        if (pg->outbox.size == to && ftruncate(pg->outbox.fd, 0) == 0) {
            pg->outbox.size = 0;
            pg->outbox.lines = 0;
            pg->outbox_pushed = 0;
        } else {
            pg->outbox_pushed = to;
        }
        pthread_mutex_unlock(&pg->engine->write_mutex);
        pthread_mutex_lock(&pg->mutex);
        pg->outbox_pending = pg->outbox_pending > lines ? pg->outbox_pending - lines : 0;
        pthread_mutex_unlock(&pg->mutex);
        rc = 0;
    }
    CLEARPGRES(res);
    free(payload);
    return rc;
}

/* One queued record as the JSON object the insert and the spill file use. */
static char *record_line(ssp_pgstore *pg, const ssp_audit_record *rec)
{
    json_t *obj = ssp_audit_record_to_json(rec, pg->engine->worker_name);
    char *text = NULL;

    if (obj != NULL && json_object_set_new(obj, "origin", json_string(pg->origin)) == 0)
        text = ssp_json_dumps_checked(obj);
    json_decref(obj);
    return text;
}

/* Serialises a chain of records as a JSON array (as_array) or as lines. */
static char *serialise_records(ssp_pgstore *pg, const ssp_audit_record *batch, bool as_array,
                               size_t *len_out)
{
    char *buf = NULL;
    size_t used = 0, cap = 0;

    for (const ssp_audit_record *rec = batch; rec != NULL; rec = rec->next) {
        char *line = record_line(pg, rec);
        size_t line_len;

        if (line == NULL)
            goto oom;
        line_len = strlen(line);
        if (ssp_buf_reserve(&buf, &cap, used + line_len + 4) != 0) {
            free(line);
            goto oom;
        }
        if (as_array)
            buf[used++] = rec == batch ? '[' : ',';
        memcpy(buf + used, line, line_len);
        used += line_len;
        if (!as_array)
            buf[used++] = '\n';
        free(line);
    }
    if (buf == NULL)
        return NULL;
    if (as_array)
        buf[used++] = ']';
    buf[used] = '\0';
    *len_out = used;
    return buf;
oom:
    free(buf);
    return NULL;
}

/* Takes up to max records from the front of the audit queue. */
static ssp_audit_record *take_records(ssp_audit_log *log, size_t max, ssp_audit_record **last,
                                      size_t *count)
{
    ssp_audit_record *batch, *rec;
    size_t n = 1;

    pthread_mutex_lock(&log->mutex);
    batch = log->head;
    if (batch == NULL) {
        pthread_mutex_unlock(&log->mutex);
        return NULL;
    }
    for (rec = batch; rec->next != NULL && n < max; rec = rec->next)
        n++;
    log->head = rec->next;
    if (log->head == NULL)
        log->tail = NULL;
    rec->next = NULL;
    pthread_mutex_unlock(&log->mutex);
    *last = rec;
    *count = n;
    return batch;
}

static void put_back(ssp_audit_log *log, ssp_audit_record *batch, ssp_audit_record *last)
{
    pthread_mutex_lock(&log->mutex);
    last->next = log->head;
    log->head = batch;
    if (log->tail == NULL)
        log->tail = last;
    log->stats.write_errors++;
    pthread_mutex_unlock(&log->mutex);
}

static void mark_written(ssp_audit_log *log, ssp_audit_record *batch, ssp_audit_record *last,
                         size_t count)
{
    pthread_mutex_lock(&log->mutex);
    log->last_written_id = last->id;
    log->stats.written += count;
    log->stats.queue_depth -= count;
    pthread_cond_broadcast(&log->written_cond);
    pthread_mutex_unlock(&log->mutex);
    ssp_audit_free_records(batch);
}

/* [store thread] Inserts everything queued. -1: database error, the
 * records are back in the queue. */
static int write_audit_queue(ssp_pgstore *pg, ssp_error *err)
{
    ssp_audit_log *log = &pg->engine->audit;

    for (;;) {
        ssp_audit_record *last = NULL, *batch;
        size_t count = 0, len = 0;
        char *payload;
        const char *params[1];
        PGresult *res;
        bool ok;

        batch = take_records(log, AUDIT_BATCH_MAX, &last, &count);
        if (batch == NULL)
            return 0;
        payload = serialise_records(pg, batch, true, &len);
        if (payload == NULL) {
            put_back(log, batch, last);
            return ssp_fail_nomem(err);
        }
        params[0] = payload;
        res = PQexecParams(pg->conn, AUDIT_INSERT_SQL, 1, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            ssp_fail(err, SSP_ERR_IO, "database: audit insert: %s", PQerrorMessage(pg->conn));
        CLEARPGRES(res);
        free(payload);
        if (!ok) {
            put_back(log, batch, last);
            return -1;
        }
        mark_written(log, batch, last, count);
    }
}

/* [store thread] While the database is away: appends everything queued to
 * the spill file, fdatasync'ed. On a disk error the records stay queued in
 * memory and are retried. */
static void spill_audit_queue(ssp_pgstore *pg)
{
    ssp_audit_log *log = &pg->engine->audit;

    for (;;) {
        ssp_audit_record *last = NULL, *batch;
        size_t count = 0, len = 0;
        char *lines;
        off_t size_before;
        bool ok;

        batch = take_records(log, AUDIT_BATCH_MAX, &last, &count);
        if (batch == NULL)
            return;
        lines = serialise_records(pg, batch, false, &len);
        size_before = lseek(pg->spill_fd, 0, SEEK_END);
        ok = lines != NULL && size_before >= 0 && ssp_write_all(pg->spill_fd, lines, len) == 0 &&
             fdatasync(pg->spill_fd) == 0;
        free(lines);
        if (!ok) {
            if (size_before >= 0 && ftruncate(pg->spill_fd, size_before) != 0) {
                /* the torn line is cut off when the file is drained */
            }
            set_error(pg, "cannot write the audit spill file %s: %s", pg->spill_path,
                      strerror(errno));
            put_back(log, batch, last);
            return;
        }
        pthread_mutex_lock(&pg->mutex);
        pg->audit_spilled_total += count;
        pg->audit_spill_pending += count;
        pthread_mutex_unlock(&pg->mutex);
        mark_written(log, batch, last, count);
    }
}

/* [store thread] Inserts the spill file's records in order, in batches,
 * then empties it. A crash half-way sends some records twice; the unique
 * (origin, origin_seq) keeps one of each. */
static int drain_spill(ssp_pgstore *pg, ssp_error *err)
{
    off_t size = lseek(pg->spill_fd, 0, SEEK_END);
    char *data, *cursor;
    size_t total = 0;

    if (size <= pg->spill_drained) {
        if (size > 0 && ftruncate(pg->spill_fd, 0) == 0)
            pg->spill_drained = 0;
        return 0;
    }
    data = read_range(pg->spill_fd, pg->spill_drained, size);
    if (data == NULL)
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", pg->spill_path, strerror(errno));
    cursor = data;
    while (*cursor) {
        char *start = cursor, *payload, *p;
        size_t n = 0, span;
        const char *params[1];
        PGresult *res;
        bool ok;

        /* Up to SPILL_BATCH_MAX whole lines; a torn last line is left. */
        for (p = cursor; n < SPILL_BATCH_MAX;) {
            char *nl = strchr(p, '\n');

            if (nl == NULL)
                break;
            p = nl + 1;
            n++;
        }
        if (n == 0)
            break;
        span = (size_t)(p - start);
        payload = malloc(span + 2);
        if (payload == NULL) {
            free(data);
            return ssp_fail_nomem(err);
        }
        payload[0] = '[';
        memcpy(payload + 1, start, span);
        /* newlines between objects become commas; the last one the bracket */
        for (size_t i = 1; i <= span; i++) {
            if (payload[i] == '\n')
                payload[i] = ',';
        }
        payload[span] = ']';
        payload[span + 1] = '\0';
        params[0] = payload;
        res = PQexecParams(pg->conn, AUDIT_INSERT_SQL, 1, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            ssp_fail(err, SSP_ERR_IO, "database: spill drain: %s", PQerrorMessage(pg->conn));
        CLEARPGRES(res);
        free(payload);
        if (!ok) {
            free(data);
            return -1;
        }
        pg->spill_drained += (off_t)span;
        total += n;
        cursor = p;
        pthread_mutex_lock(&pg->mutex);
        pg->audit_spill_pending = pg->audit_spill_pending > n ? pg->audit_spill_pending - n : 0;
        pthread_mutex_unlock(&pg->mutex);
    }
    free(data);
    (void)total;
    if (pg->spill_drained >= size || lseek(pg->spill_fd, 0, SEEK_END) == pg->spill_drained) {
        /* Only this thread appends to the spill file. */
        if (ftruncate(pg->spill_fd, 0) == 0)
            pg->spill_drained = 0;
    }
    return 0;
}

/* [store thread] Connects and catches up: migrations, LISTEN, outbox,
 * roster, spill. Leaves pg->conn NULL on failure. */
static void try_connect(ssp_pgstore *pg)
{
    ssp_error err = {0};

    pg->last_connect_attempt_ms = ssp_now_ms();
    pg->conn = connect_db(pg->conninfo, &err);
    if (pg->conn == NULL) {
        set_error(pg, "%s", err.message);
        return;
    }
    if (migrate(pg->conn, &err) != 0 || exec_ok(pg->conn, "LISTEN school_policy_roster", &err) != 0 ||
        push_outbox(pg, &err) != 0 || full_sync(pg, &err) != 0 || drain_spill(pg, &err) != 0) {
        disconnect(pg, err.message);
        return;
    }
    set_connected(pg, true);
}

/* [store thread] Retention: audit records past audit.retention_days, and
 * roster change log entries older than a day. */
static void maintenance(ssp_pgstore *pg)
{
    char sql[256];
    ssp_error err;

    pg->last_maintenance_ms = ssp_now_ms();
    if (pg->engine->config.audit_retention_days > 0) {
        snprintf(sql, sizeof sql,
                 "DELETE FROM school_policy.audit WHERE ts < now() - interval '%lld days'",
                 (long long)pg->engine->config.audit_retention_days);
        (void)exec_ok(pg->conn, sql, &err);
    }
    (void)exec_ok(pg->conn,
                  "DELETE FROM school_policy.roster_changes WHERE changed_at < now() - "
                  "interval '1 day' AND version < (SELECT max(version) FROM "
                  "school_policy.roster_changes)",
                  &err);
}

/* [store thread] Refreshes the cached number of marks for
 * ssp_store_get_status, so that reading it never waits on the database. */
static int count_pending_marks(ssp_pgstore *pg, ssp_error *err)
{
    PGresult *res = PQexec(pg->conn, "SELECT count(*) FROM school_policy.reconcile_marks");
    int rc = 0;

    pg->last_pending_count_ms = ssp_now_ms();
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(pg->conn));
    } else {
        pthread_mutex_lock(&pg->mutex);
        pg->reconcile_pending = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        pthread_mutex_unlock(&pg->mutex);
    }
    CLEARPGRES(res);
    return rc;
}

/* [store thread] Reads notifications; true when the roster changed. */
static int consume_notifications(ssp_pgstore *pg, bool *changed)
{
    PGnotify *note;

    *changed = false;
    if (PQconsumeInput(pg->conn) == 0)
        return -1;
    while ((note = PQnotifies(pg->conn)) != NULL) {
        *changed = true;
        PQfreemem(note);
    }
    return 0;
}

static void wait_for_work(ssp_pgstore *pg, int timeout_ms)
{
    struct pollfd fds[2];
    nfds_t n = 1;
    uint64_t counter;

    fds[0].fd = pg->wake_fd;
    fds[0].events = POLLIN;
    if (pg->conn != NULL) {
        fds[1].fd = PQsocket(pg->conn);
        fds[1].events = POLLIN;
        n = 2;
    }
    if (poll(fds, n, timeout_ms) > 0 && (fds[0].revents & POLLIN)) {
        if (read(pg->wake_fd, &counter, sizeof counter) < 0) {
            /* EAGAIN: nothing to read */
        }
    }
}

static bool outbox_waiting(ssp_pgstore *pg)
{
    bool waiting;

    pthread_mutex_lock(&pg->engine->write_mutex);
    waiting = pg->outbox.size > pg->outbox_pushed;
    pthread_mutex_unlock(&pg->engine->write_mutex);
    return waiting;
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
                spill_audit_queue(pg);
                if (stopping)
                    break;
                wait_for_work(pg, RECONNECT_MS / 4);
                continue;
            }
        }
        if ((outbox_waiting(pg) && push_outbox(pg, &err) != 0) ||
            (lseek(pg->spill_fd, 0, SEEK_END) > 0 && drain_spill(pg, &err) != 0) ||
            write_audit_queue(pg, &err) != 0) {
            disconnect(pg, err.message);
            continue;
        }
        if (stopping)
            break;
        if (ssp_now_ms() - pg->last_maintenance_ms >= MAINTENANCE_MS)
            maintenance(pg);
        if (ssp_now_ms() - pg->last_pending_count_ms >= PENDING_COUNT_MS &&
            count_pending_marks(pg, &err) != 0) {
            disconnect(pg, err.message);
            continue;
        }
        /* Last before sleeping: a notification that arrived while another
         * statement ran is already in libpq's buffer, and poll() on the
         * socket would not see it. */
        {
            bool changed = false, idle;

            if (consume_notifications(pg, &changed) != 0) {
                disconnect(pg, NULL);
                continue;
            }
            if (changed) {
                if (incremental_sync(pg, &err) != 0)
                    disconnect(pg, err.message);
                continue; /* look again before sleeping */
            }
            pthread_mutex_lock(&pg->engine->audit.mutex);
            idle = pg->engine->audit.head == NULL;
            pthread_mutex_unlock(&pg->engine->audit.mutex);
            if (idle && !outbox_waiting(pg))
                wait_for_work(pg, IDLE_WAIT_MS);
        }
    }
    if (pg->conn != NULL) {
        PQfinish(pg->conn); /* [store thread] */
        pg->conn = NULL;
    }
    return NULL;
}

/* ---- open and close ---- */

static void pgstore_free(ssp_pgstore *pg)
{
    if (pg == NULL)
        return;
    if (pg->query_conn != NULL)
        PQfinish(pg->query_conn);
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    ssp_journal_close(&pg->outbox);
    if (pg->spill_fd >= 0)
        close(pg->spill_fd);
    if (pg->wake_fd >= 0)
        close(pg->wake_fd);
    if (pg->lock_fd >= 0)
        close(pg->lock_fd);
    free(pg->conninfo);
    free(pg->data_dir);
    free(pg->origin);
    free(pg->spill_path);
    free(pg->cache_path);
    free(pg->lock_path);
    pthread_mutex_destroy(&pg->mutex);
    pthread_mutex_destroy(&pg->query_mutex);
    free(pg);
}

/* Cuts a torn last line off the spill file and counts its records. */
static int open_spill(ssp_pgstore *pg, ssp_error *err)
{
    off_t size;
    char *data;

    pg->spill_fd = open(pg->spill_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (pg->spill_fd < 0)
        return ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", pg->spill_path, strerror(errno));
    size = lseek(pg->spill_fd, 0, SEEK_END);
    if (size <= 0)
        return 0;
    data = read_range(pg->spill_fd, 0, size);
    if (data == NULL)
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", pg->spill_path, strerror(errno));
    {
        char *last_nl = strrchr(data, '\n');
        off_t keep = last_nl ? (off_t)(last_nl - data) + 1 : 0;

        for (char *p = data; p < data + keep; p++) {
            if (*p == '\n')
                pg->audit_spill_pending++;
        }
        if (keep < size && ftruncate(pg->spill_fd, keep) != 0) {
            free(data);
            return ssp_fail(err, SSP_ERR_IO, "cannot truncate %s: %s", pg->spill_path,
                            strerror(errno));
        }
    }
    free(data);
    /* The store thread drains it on its first pass with a connection. */
    return 0;
}

int ssp_pgstore_open(ssp_engine *engine, ssp_error *err)
{
    ssp_pgstore *pg;
    const char *worker = engine->worker_name;
    unsigned char boot[8];
    char boot_hex[17];
    ssp_strmap map;
    ssp_error db_err = {0};
    int64_t version = 0;

    if (engine->config.data_dir == NULL)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "data_dir: required with database too: it holds the spill files that keep "
                        "audit records and roster changes while the database is unreachable");
    pg = calloc(1, sizeof *pg);
    if (pg == NULL)
        return ssp_fail_nomem(err);
    pg->engine = engine;
    pg->spill_fd = pg->wake_fd = pg->lock_fd = -1;
    pg->outbox.fd = -1;
    pthread_mutex_init(&pg->mutex, NULL);
    pthread_mutex_init(&pg->query_mutex, NULL);
    ssp_strmap_init(&map);
    if (getrandom(boot, sizeof boot, 0) != (ssize_t)sizeof boot) {
        uint64_t fallback = (uint64_t)ssp_now_ms() ^ ((uint64_t)getpid() << 32);

        memcpy(boot, &fallback, sizeof boot);
    }
    for (size_t i = 0; i < sizeof boot; i++)
        snprintf(boot_hex + 2 * i, 3, "%02x", boot[i]);
    pg->conninfo = ssp_strdup(engine->config.database);
    pg->data_dir = ssp_strdup(engine->config.data_dir);
    pg->origin = malloc(strlen(worker) + sizeof boot_hex + 1);
    pg->spill_path = worker_file(engine->config.data_dir, worker, ".audit-spill.jsonl");
    pg->cache_path = worker_file(engine->config.data_dir, worker, ".roster-cache");
    pg->lock_path = worker_file(engine->config.data_dir, worker, ".lock");
    if (pg->conninfo == NULL || pg->data_dir == NULL || pg->origin == NULL ||
        pg->spill_path == NULL || pg->cache_path == NULL || pg->lock_path == NULL) {
        ssp_fail_nomem(err);
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
        char *name = worker_file("", worker, ".roster-outbox.jsonl");
        ssp_roster scratch;
        int rc;

        if (name == NULL || ssp_roster_init(&scratch, err) != 0) {
            free(name);
            if (name == NULL)
                ssp_fail_nomem(err);
            goto fail;
        }
        scratch.server_name = engine->server_name;
        /* worker_file("", ...) gives "/<name>": skip the slash. */
        rc = ssp_journal_open_named(&pg->outbox, engine->config.data_dir, name + 1, &scratch,
                                    false, err);
        ssp_roster_destroy(&scratch);
        free(name);
        if (rc != 0)
            goto fail;
    }
    pg->lock_fd = open(pg->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (pg->lock_fd < 0 || flock(pg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        ssp_fail(err, SSP_ERR_STATE,
                 "data_dir: %s is in use by another process; give every Synapse worker its own "
                 "worker_name or data_dir",
                 pg->lock_path);
        goto fail;
    }
    if (open_spill(pg, err) != 0)
        goto fail;

    /* [open] Connect and load. An unreachable database is not fatal: start
     * from the cache and let the thread reconnect. A database that answers
     * but refuses (bad schema version, permissions) is. */
    pg->conn = connect_db(pg->conninfo, &db_err);
    if (pg->conn != NULL) {
        if (migrate(pg->conn, &db_err) != 0) {
            if (db_err.code == SSP_ERR_STATE || PQstatus(pg->conn) == CONNECTION_OK) {
                *err = db_err;
                goto fail;
            }
            PQfinish(pg->conn);
            pg->conn = NULL;
        } else if (exec_ok(pg->conn, "LISTEN school_policy_roster", &db_err) != 0 ||
                   load_from_db(pg, pg->conn, &map, &version, &db_err) != 0) {
            if (db_err.code == SSP_ERR_NOMEM) {
                *err = db_err;
                goto fail;
            }
            free_map(&map);
            ssp_strmap_init(&map);
            PQfinish(pg->conn);
            pg->conn = NULL;
        }
    }
    if (pg->conn == NULL) {
        snprintf(pg->last_error, sizeof pg->last_error, "%s", db_err.message);
        if (load_from_cache(pg, &map, err) != 0)
            goto fail;
    } else {
        pg->connected = true;
        pg->connects = 1;
        pg->roster_version = version;
    }
    swap_roster(engine, &map);
    /* Roster changes not yet in the database, from before a restart. */
    {
        ssp_journal replay;
        char *name = worker_file("", worker, ".roster-outbox.jsonl");
        int rc;

        if (name == NULL) {
            ssp_fail_nomem(err);
            goto fail;
        }
        rc = ssp_journal_open_named(&replay, engine->config.data_dir, name + 1, &engine->roster,
                                    false, err);
        free(name);
        if (rc != 0)
            goto fail;
        pg->outbox_pending = replay.lines;
        ssp_journal_close(&replay);
    }
    pg->outbox.size = lseek(pg->outbox.fd, 0, SEEK_END);
    pg->last_maintenance_ms = 0;
    pg->last_connect_attempt_ms = ssp_now_ms();

    if (ssp_audit_open_external(&engine->audit, worker, pg->wake_fd, err) != 0)
        goto fail;
    engine->audit_open = true;
    engine->pg = pg;
    if (pthread_create(&pg->thread, NULL, store_main, pg) != 0) {
        engine->pg = NULL;
        ssp_audit_close(&engine->audit);
        engine->audit_open = false;
        ssp_fail(err, SSP_ERR_NOMEM, "cannot start the PostgreSQL store thread");
        goto fail;
    }
    pg->thread_started = true;
    return 0;
fail:
    free_map(&map);
    pgstore_free(pg);
    return -1;
}

void ssp_pgstore_close(ssp_engine *engine)
{
    ssp_pgstore *pg = engine->pg;

    if (pg == NULL)
        return;
    if (pg->thread_started) {
        pthread_mutex_lock(&pg->mutex);
        pg->stopping = true;
        pthread_mutex_unlock(&pg->mutex);
        wake(pg);
        pthread_join(pg->thread, NULL);
    }
    if (engine->audit_open) {
        ssp_audit_close(&engine->audit);
        engine->audit_open = false;
    }
    engine->pg = NULL;
    pgstore_free(pg);
}

int ssp_pgstore_append_roster(ssp_pgstore *pg, const ssp_roster_change *changes, size_t n,
                              ssp_error *err)
{
    if (ssp_journal_append(&pg->outbox, changes, n, err) != 0)
        return -1;
    pthread_mutex_lock(&pg->mutex);
    pg->outbox_pending += n;
    pthread_mutex_unlock(&pg->mutex);
    wake(pg);
    return 0;
}

void ssp_pgstore_get_status(ssp_pgstore *pg, ssp_store_status *out)
{
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

/* ---- queries from callers ---- */

/* [caller thread] Runs a parameterised query on query_conn, connecting or
 * reconnecting once. Caller holds query_mutex and clears the result. */
static PGresult *query(ssp_pgstore *pg, const char *sql, int n, const char *const *params,
                       ExecStatusType want, ssp_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res;

        if (pg->query_conn == NULL) {
            pg->query_conn = connect_db(pg->conninfo, err);
            if (pg->query_conn == NULL)
                return NULL;
        }
        res = PQexecParams(pg->query_conn, sql, n, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == want)
            return res;
        ssp_fail(err, SSP_ERR_IO, "database: %s", PQerrorMessage(pg->query_conn));
        CLEARPGRES(res);
        if (PQstatus(pg->query_conn) == CONNECTION_OK)
            return NULL; /* an SQL error: retrying would not help */
        PQfinish(pg->query_conn);
        pg->query_conn = NULL;
    }
    return NULL;
}

/* A reader's schools as the JSON array text that the queries compare
 * with ($n::json); NULL when out of memory. The caller frees it. */
static char *schools_param(const ssp_audit_filter *f)
{
    json_t *list = json_array();
    char *text;

    for (size_t i = 0; list != NULL && i < f->n_schools; i++) {
        if (json_array_append_new(list, json_string(f->schools[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    text = list ? ssp_json_dumps_checked(list) : NULL;
    json_decref(list);
    return text;
}

int ssp_pgstore_audit_query(ssp_engine *engine, const ssp_audit_filter *f, char **result_json,
                            ssp_error *err)
{
    ssp_pgstore *pg = engine->pg;
    char since[32], until[32], before[32], limit[32];
    const char *params[8];
    PGresult *res = NULL;
    json_t *records = NULL, *result = NULL;
    char *schools = NULL;
    int rows, rc = -1;

    snprintf(since, sizeof since, "%lld", (long long)f->since_ms);
    snprintf(until, sizeof until, "%lld", (long long)f->until_ms);
    snprintf(before, sizeof before, "%lld", (long long)f->before_id);
    snprintf(limit, sizeof limit, "%zu", f->limit + 1);
    params[0] = since;
    params[1] = until;
    params[2] = f->rule;
    params[3] = f->school;
    params[4] = f->user;
    params[5] = before;
    params[6] = limit;
    if (f->schools != NULL && (schools = schools_param(f)) == NULL)
        return ssp_fail_nomem(err);
    params[7] = schools;
    pthread_mutex_lock(&pg->query_mutex);
    res = query(pg,
                "SELECT id, (extract(epoch FROM ts) * 1000)::bigint, rule, callback, enforced,"
                " actor, target, room_id, event_type, school, worker"
                " FROM school_policy.audit"
                " WHERE ($1::bigint = 0 OR ts >= timestamptz 'epoch' + $1::bigint * interval '1 ms')"
                " AND ($2::bigint = 0 OR ts < timestamptz 'epoch' + $2::bigint * interval '1 ms')"
                " AND ($3::text IS NULL OR rule = $3) AND ($4::text IS NULL OR school = $4)"
                " AND ($5::text IS NULL OR actor = $5 OR target = $5)"
                " AND ($6::bigint = 0 OR id < $6::bigint)"
                " AND ($8::json IS NULL OR school = ANY (ARRAY(SELECT json_array_elements_text($8::json))))"
                " ORDER BY id DESC LIMIT $7::bigint",
                8, params, PGRES_TUPLES_OK, err);
    pthread_mutex_unlock(&pg->query_mutex);
    free(schools);
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    records = json_array();
    if (records == NULL)
        goto oom;
    for (int i = 0; i < rows && (size_t)i < f->limit; i++) {
        json_t *rec = json_object();
        static const char *const text_fields[] = {"actor",  "target", "room_id",
                                                  "event_type", "school"};

        if (rec == NULL || json_array_append_new(records, rec) != 0)
            goto oom;
        if (json_object_set_new(rec, "id", json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10))) ||
            json_object_set_new(rec, "ts", json_integer(strtoll(PQgetvalue(res, i, 1), NULL, 10))) ||
            json_object_set_new(rec, "rule", json_string(PQgetvalue(res, i, 2))) ||
            json_object_set_new(rec, "callback", json_string(PQgetvalue(res, i, 3))) ||
            json_object_set_new(rec, "enforced", json_boolean(PQgetvalue(res, i, 4)[0] == 't')))
            goto oom;
        for (int k = 0; k < 5; k++) {
            json_t *value = PQgetisnull(res, i, 5 + k) ? json_null()
                                                       : json_string(PQgetvalue(res, i, 5 + k));

            if (json_object_set_new(rec, text_fields[k], value) != 0)
                goto oom;
        }
        if (json_object_set_new(rec, "worker", json_string(PQgetvalue(res, i, 10))) != 0)
            goto oom;
    }
    result = ssp_audit_page(records, (size_t)rows > f->limit
                                         ? PQgetvalue(res, (int)f->limit - 1, 0)
                                         : NULL);
    if (result == NULL)
        goto oom;
    rc = ssp_json_dump_to(result, result_json, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    CLEARPGRES(res);
    json_decref(records);
    json_decref(result);
    return rc;
}

static PGresult *locked_query(ssp_pgstore *pg, const char *sql, int n, const char *const *params,
                              ExecStatusType want, ssp_error *err);
static int locked_exec(ssp_pgstore *pg, const char *sql, int n, const char *const *params,
                       ExecStatusType want, ssp_error *err);

/* [caller thread] Counts per (bucket, rule). Bucket starts are aligned to
 * `since`; the (school, ts) index holds the rule, so a school's counts are
 * an index-only scan of its records in the range. */
int ssp_pgstore_audit_chart(ssp_engine *engine, const ssp_audit_filter *f, int64_t bucket_ms,
                            json_t **rows, ssp_error *err)
{
    ssp_pgstore *pg = engine->pg;
    char since[32], until[32], bucket[32];
    const char *params[7];
    char *schools = NULL;
    PGresult *res;
    int rc = -1;

    *rows = NULL;
    snprintf(since, sizeof since, "%lld", (long long)f->since_ms);
    snprintf(until, sizeof until, "%lld", (long long)f->until_ms);
    snprintf(bucket, sizeof bucket, "%lld", (long long)bucket_ms);
    if (f->schools != NULL && (schools = schools_param(f)) == NULL)
        return ssp_fail_nomem(err);
    params[0] = since;
    params[1] = until;
    params[2] = bucket;
    params[3] = f->rule;
    params[4] = f->school;
    params[5] = f->user;
    params[6] = schools;
    res = locked_query(pg,
                       "SELECT $1::bigint + ((extract(epoch FROM ts) * 1000)::bigint - $1::bigint)"
                       "   / $3::bigint * $3::bigint AS b, rule, count(*)"
                       " FROM school_policy.audit"
                       " WHERE ts >= timestamptz 'epoch' + $1::bigint * interval '1 ms'"
                       " AND ts < timestamptz 'epoch' + $2::bigint * interval '1 ms'"
                       " AND ($4::text IS NULL OR rule = $4) AND ($5::text IS NULL OR school = $5)"
                       " AND ($6::text IS NULL OR actor = $6 OR target = $6)"
                       " AND ($7::json IS NULL OR school = ANY (ARRAY(SELECT json_array_elements_text($7::json))))"
                       " GROUP BY 1, 2 ORDER BY 1, 2",
                       7, params, PGRES_TUPLES_OK, err);
    free(schools);
    if (res == NULL)
        return -1;
    *rows = json_array();
    if (*rows == NULL)
        goto oom;
    for (int i = 0; i < PQntuples(res); i++) {
        if (json_array_append_new(*rows, json_pack("[I, s, I]",
                                                   (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
                                                   PQgetvalue(res, i, 1),
                                                   (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10))) != 0)
            goto oom;
    }
    rc = 0;
    goto done;
oom:
    ssp_fail_nomem(err);
    json_decref(*rows);
    *rows = NULL;
done:
    CLEARPGRES(res);
    return rc;
}

/* [caller thread] One read-log row, committed before return. */
int ssp_pgstore_reads_append(ssp_engine *engine, json_t *record, ssp_error *err)
{
    char *text = ssp_json_dumps_checked(record);
    const char *params[1] = {text};
    int rc;

    if (text == NULL)
        return ssp_fail_nomem(err);
    rc = locked_exec(engine->pg,
                     "INSERT INTO school_policy.audit_reads (ts, reader, access, op, query, schools,"
                     " worker) SELECT timestamptz 'epoch' + (r->>'ts')::bigint * interval '1 ms',"
                     " r->>'reader', r->>'access', r->>'op', r->'query', NULLIF(r->'schools', 'null'::jsonb),"
                     " r->>'worker' FROM (SELECT $1::jsonb AS r) s",
                     1, params, PGRES_COMMAND_OK, err);
    free(text);
    return rc;
}

/* [caller thread] A page of the read log, newest first. */
int ssp_pgstore_reads_query(ssp_engine *engine, const char *schools_json, int64_t since_ms,
                            int64_t until_ms, int64_t before_id, size_t limit, json_t **page,
                            ssp_error *err)
{
    char since[32], until[32], before[32], lim[32];
    const char *params[5] = {since, until, before, lim, schools_json};
    PGresult *res;
    json_t *records = NULL;
    int rows, rc = -1;

    *page = NULL;
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    snprintf(until, sizeof until, "%lld", (long long)until_ms);
    snprintf(before, sizeof before, "%lld", (long long)before_id);
    snprintf(lim, sizeof lim, "%zu", limit + 1);
    res = locked_query(engine->pg,
                       "SELECT json_build_object('id', id, 'ts', (extract(epoch FROM ts) * 1000)::bigint,"
                       " 'reader', reader, 'access', access, 'op', op, 'query', query,"
                       " 'schools', schools, 'worker', worker)::text"
                       " FROM school_policy.audit_reads"
                       " WHERE ($1::bigint = 0 OR ts >= timestamptz 'epoch' + $1::bigint * interval '1 ms')"
                       " AND ($2::bigint = 0 OR ts < timestamptz 'epoch' + $2::bigint * interval '1 ms')"
                       " AND ($3::bigint = 0 OR id < $3::bigint)"
                       " AND ($5::jsonb IS NULL OR schools ?| ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))"
                       " ORDER BY id DESC LIMIT $4::bigint",
                       5, params, PGRES_TUPLES_OK, err);
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    records = json_array();
    if (records == NULL)
        goto oom;
    for (int i = 0; i < rows && (size_t)i < limit; i++) {
        json_t *rec = json_loads(PQgetvalue(res, i, 0), 0, NULL);

        if (rec == NULL || json_array_append_new(records, rec) != 0)
            goto oom;
    }
    {
        char next[32];

        if ((size_t)rows > limit)
            snprintf(next, sizeof next, "%lld", (long long)json_integer_value(json_object_get(
                                                     json_array_get(records, limit - 1), "id")));
        *page = ssp_audit_page(records, (size_t)rows > limit ? next : NULL);
    }
    if (*page == NULL)
        goto oom;
    rc = 0;
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    CLEARPGRES(res);
    json_decref(records);
    return rc;
}

int ssp_pgstore_audit_purge(ssp_engine *engine, int64_t older_than_ms, uint64_t *deleted,
                            ssp_error *err)
{
    ssp_pgstore *pg = engine->pg;
    char cutoff[32];
    const char *params[1] = {cutoff};
    PGresult *res;

    snprintf(cutoff, sizeof cutoff, "%lld", (long long)older_than_ms);
    pthread_mutex_lock(&pg->query_mutex);
    res = query(pg,
                "DELETE FROM school_policy.audit"
                " WHERE ts < timestamptz 'epoch' + $1::bigint * interval '1 ms'",
                1, params, PGRES_COMMAND_OK, err);
    pthread_mutex_unlock(&pg->query_mutex);
    if (res == NULL)
        return -1;
    *deleted = strtoull(PQcmdTuples(res), NULL, 10);
    CLEARPGRES(res);
    return 0;
}

/* ---- the reconciliation ledger (ssp_reconcile_*), [caller thread] ----
 * Everything runs on query_conn under query_mutex; the tables and the
 * roster trigger that marks are created by migration 2. */

/* Runs one statement on query_conn; the caller clears the result. */
static PGresult *locked_query(ssp_pgstore *pg, const char *sql, int n, const char *const *params,
                              ExecStatusType want, ssp_error *err)
{
    PGresult *res;

    pthread_mutex_lock(&pg->query_mutex);
    res = query(pg, sql, n, params, want, err);
    pthread_mutex_unlock(&pg->query_mutex);
    return res;
}

/* Runs a statement that returns no rows worth reading. */
static int locked_exec(ssp_pgstore *pg, const char *sql, int n, const char *const *params,
                       ExecStatusType want, ssp_error *err)
{
    PGresult *res = locked_query(pg, sql, n, params, want, err);

    if (res == NULL)
        return -1;
    CLEARPGRES(res);
    return 0;
}

int ssp_pgstore_reconcile_mark(ssp_engine *engine, const char *school,
                               const char *const *user_ids, size_t n, ssp_error *err)
{
    json_t *users = json_array();
    char *users_text = NULL;
    const char *params[2];
    int rc = -1;

    if (users == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(users, json_string(user_ids[i])) != 0)
            goto oom;
    }
    users_text = ssp_json_dumps_checked(users);
    if (users_text == NULL)
        goto oom;
    params[0] = school;
    params[1] = users_text;
    /* DISTINCT: one statement must not upsert a row twice. */
    rc = locked_exec(engine->pg,
                     "SELECT count(school_policy.reconcile_mark($1, u))"
                     " FROM (SELECT DISTINCT json_array_elements_text($2::json) AS u) s",
                     2, params, PGRES_TUPLES_OK, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    json_decref(users);
    free(users_text);
    return rc;
}

int ssp_pgstore_reconcile_due(ssp_engine *engine, int64_t now_ms, size_t max, char **marks_json,
                              ssp_error *err)
{
    char now[32], limit[32];
    const char *params[2] = {now, limit};
    PGresult *res;
    json_t *list = NULL;
    int rc = -1;

    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(limit, sizeof limit, "%zu", max);
    res = locked_query(engine->pg,
                       "SELECT school, user_id, generation, attempts"
                       " FROM school_policy.reconcile_marks WHERE next_attempt_at <= $1::bigint"
                       " ORDER BY next_attempt_at, marked_at, generation LIMIT $2::bigint",
                       2, params, PGRES_TUPLES_OK, err);
    if (res == NULL)
        return -1;
    list = json_array();
    if (list == NULL)
        goto oom;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *item = ssp_reconcile_due_item(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                              strtoll(PQgetvalue(res, i, 2), NULL, 10),
                                              strtoll(PQgetvalue(res, i, 3), NULL, 10));

        if (item == NULL || json_array_append_new(list, item) != 0)
            goto oom;
    }
    rc = ssp_json_dump_to(list, marks_json, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    CLEARPGRES(res);
    json_decref(list);
    return rc;
}

int ssp_pgstore_reconcile_done(ssp_engine *engine, const char *school, const char *user_id,
                               int64_t generation, ssp_error *err)
{
    char gen[32];
    const char *params[3] = {school, user_id, gen};

    snprintf(gen, sizeof gen, "%lld", (long long)generation);
    return locked_exec(engine->pg,
                       "DELETE FROM school_policy.reconcile_marks"
                       " WHERE school = $1 AND user_id = $2 AND generation = $3::bigint",
                       3, params, PGRES_COMMAND_OK, err);
}

int ssp_pgstore_reconcile_failed(ssp_engine *engine, const char *school, const char *user_id,
                                 int64_t generation, const char *error, int64_t retry_at_ms,
                                 ssp_error *err)
{
    char gen[32], retry_at[32], now[32];
    const char *params[6] = {school, user_id, gen, error, retry_at, now};

    snprintf(gen, sizeof gen, "%lld", (long long)generation);
    snprintf(retry_at, sizeof retry_at, "%lld", (long long)retry_at_ms);
    snprintf(now, sizeof now, "%lld", (long long)ssp_now_ms());
    return locked_exec(engine->pg,
                       "UPDATE school_policy.reconcile_marks SET attempts = attempts + 1,"
                       " next_attempt_at = $5::bigint, last_error = $4, failed_at = $6::bigint"
                       " WHERE school = $1 AND user_id = $2 AND generation = $3::bigint",
                       6, params, PGRES_COMMAND_OK, err);
}

int ssp_pgstore_reconcile_set_room(ssp_engine *engine, const char *school, const char *kind,
                                   const char *room_id, ssp_error *err)
{
    const char *params[3] = {school, kind, room_id};

    if (room_id == NULL)
        return locked_exec(engine->pg,
                           "DELETE FROM school_policy.special_rooms WHERE school = $1 AND kind = $2",
                           2, params, PGRES_COMMAND_OK, err);
    return locked_exec(engine->pg,
                       "INSERT INTO school_policy.special_rooms (school, kind, room_id)"
                       " VALUES ($1, $2, $3) ON CONFLICT (school, kind)"
                       " DO UPDATE SET room_id = EXCLUDED.room_id",
                       3, params, PGRES_COMMAND_OK, err);
}

int ssp_pgstore_reconcile_get_room(ssp_engine *engine, const char *school, const char *kind,
                                   char **room_id, ssp_error *err)
{
    const char *params[2] = {school, kind};
    PGresult *res = locked_query(engine->pg,
                                 "SELECT room_id FROM school_policy.special_rooms"
                                 " WHERE school = $1 AND kind = $2",
                                 2, params, PGRES_TUPLES_OK, err);
    int rc = 0;

    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0 && (*room_id = ssp_strdup(PQgetvalue(res, 0, 0))) == NULL)
        rc = ssp_fail_nomem(err);
    CLEARPGRES(res);
    return rc;
}

int ssp_pgstore_reconcile_sync_config(ssp_engine *engine, size_t *schools_changed,
                                      ssp_error *err)
{
    const ssp_config *config = &engine->config;

    for (size_t i = 0; i < config->n_schools; i++) {
        const char *school = config->schools[i].id;
        char applied[96];
        const char *params[2] = {school, applied};
        PGresult *res;
        bool same;

        ssp_reconcile_applied_text(&config->schools[i], applied, sizeof applied);
        res = locked_query(engine->pg,
                           "SELECT applied = $2 FROM school_policy.school_state WHERE school = $1",
                           2, params, PGRES_TUPLES_OK, err);
        if (res == NULL)
            return -1;
        same = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
        CLEARPGRES(res);
        if (same)
            continue;
        /* Marks first, in their own statement: a crash before the applied
         * string is stored leaves extra marks only. The roster table is the
         * whole truth here; this process's outbox entries not yet pushed
         * are marked by the trigger when they arrive. */
        if (locked_exec(engine->pg,
                        "SELECT count(school_policy.reconcile_mark($1, u)) FROM"
                        " (SELECT '' AS u UNION SELECT user_id FROM school_policy.roster"
                        "  WHERE school = $1) s",
                        1, params, PGRES_TUPLES_OK, err) != 0 ||
            locked_exec(engine->pg,
                        "INSERT INTO school_policy.school_state (school, applied) VALUES ($1, $2)"
                        " ON CONFLICT (school) DO UPDATE SET applied = EXCLUDED.applied",
                        2, params, PGRES_COMMAND_OK, err) != 0)
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

static int status_from_rows(const ssp_config *config, PGresult *res, char **status_json,
                            ssp_error *err)
{
    ssp_school_reconcile *per_school;
    int rc;

    if ((size_t)PQntuples(res) != config->n_schools)
        return ssp_fail(err, SSP_ERR_IO, "database: the status query returned %d rows for %zu "
                        "schools", PQntuples(res), config->n_schools);
    per_school = calloc(config->n_schools ? config->n_schools : 1, sizeof *per_school);
    if (per_school == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < config->n_schools; i++) {
        int row = (int)i;

        per_school[i].teachers_room = PQgetisnull(res, row, 0) ? NULL : PQgetvalue(res, row, 0);
        per_school[i].announcement_room =
            PQgetisnull(res, row, 1) ? NULL : PQgetvalue(res, row, 1);
        per_school[i].pending = strtoull(PQgetvalue(res, row, 2), NULL, 10);
        per_school[i].last_error = PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3);
    }
    rc = ssp_reconcile_status_text(config, per_school, status_json, err);
    free(per_school);
    return rc;
}

int ssp_pgstore_reconcile_status(ssp_engine *engine, char **status_json, ssp_error *err)
{
    char *ids = school_ids_json(&engine->config);
    const char *params[1] = {ids};
    PGresult *res;
    int rc;

    if (ids == NULL)
        return ssp_fail_nomem(err);
    res = locked_query(engine->pg, RECONCILE_STATUS_SQL, 1, params, PGRES_TUPLES_OK, err);
    free(ids);
    if (res == NULL)
        return -1;
    rc = status_from_rows(&engine->config, res, status_json, err);
    CLEARPGRES(res);
    return rc;
}

int ssp_pgstore_reconcile_status_offline(const ssp_config *config, char **status_json,
                                         ssp_error *err)
{
    char *ids = school_ids_json(config);
    const char *params[1] = {ids};
    PGconn *conn;
    PGresult *res;
    int rc = -1;

    if (ids == NULL)
        return ssp_fail_nomem(err);
    conn = connect_db(config->database, err); /* [caller thread], a connection of its own */
    if (conn == NULL) {
        free(ids);
        return -1;
    }
    res = PQexecParams(conn, RECONCILE_STATUS_SQL, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        ssp_fail(err, SSP_ERR_IO,
                 "database: %s (a schema older than version 2 is upgraded when Synapse starts "
                 "with this module)",
                 PQerrorMessage(conn));
    else
        rc = status_from_rows(config, res, status_json, err);
    CLEARPGRES(res);
    PQfinish(conn);
    free(ids);
    return rc;
}
