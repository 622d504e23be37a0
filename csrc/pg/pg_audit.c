/*
 * The PostgreSQL store's audit log: the store thread drains the audit
 * queue (audit_queue.h) into multi-row INSERTs, or, while the database is
 * away, into the spill file (data_dir/<worker>.audit-spill.jsonl,
 * fdatasync), which it drains into the database once connected. A batch is
 * marked written (and its waiters woken) only after the COMMIT or the
 * fdatasync. Also the callers' queries: audit pages, the chart's counts,
 * purges. The read log is pg_reads.c.
 *
 * Exactly once: every audit record carries (origin, origin_seq), unique in
 * the table; origin names the worker and this process's boot. A batch whose
 * commit was not confirmed is sent again and ON CONFLICT DO NOTHING drops
 * what had arrived.
 *
 * Ownership: records taken from the queue belong to the thread until they
 * are marked written (freed) or put back; rows are freed where they are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_chart.h"
#include "files.h"
#include "pg/pg_audit.h"
#include "pg/pg_conn.h"
#include "pg/pg_state.h"
#include "util.h"

#define AUDIT_BATCH_MAX 2000
#define SPILL_BATCH_MAX 2000

/* The rows are the records as stored (ssp_audit_record_to_json): keys a
 * single denial leaves out come as NULL. */
static const char AUDIT_INSERT_SQL[] =
    "INSERT INTO school_policy.audit (ts, rule, callback, enforced, actor, target, room_id,"
    " event_type, school, worker, origin, origin_seq, kind, count, last_ts, action, group_id,"
    " reason)"
    " SELECT timestamptz 'epoch' + x.ts * interval '1 millisecond', x.rule, x.callback,"
    " x.enforced, x.actor, x.target, x.room_id, x.event_type, x.school, x.worker, x.origin, x.id,"
    " x.kind, x.count, timestamptz 'epoch' + x.last_ts * interval '1 millisecond', x.action,"
    " x.grp, x.reason"
    " FROM ROWS FROM (json_to_recordset($1::json) AS (id bigint, ts bigint, rule text,"
    " callback text, enforced boolean, actor text, target text, room_id text, event_type text,"
    " school text, worker text, origin text, kind text, count bigint, last_ts bigint,"
    " action text, \"group\" text, reason text)) WITH ORDINALITY AS x(id, ts, rule, callback,"
    " enforced, actor, target, room_id, event_type, school, worker, origin, kind, count, last_ts,"
    " action, grp, reason, ord)"
    " ORDER BY x.ord"
    " ON CONFLICT (origin, origin_seq) DO NOTHING";

/* ---- writing ---- */

/* One queued record as the JSON object the insert and the spill file use. */
static char *record_line(ssp_pgstore *pg, const ssp_audit_record *rec)
{
    json_t *obj = ssp_audit_record_to_json(rec, pg->env->worker_name);
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

/* [store thread] Inserts everything queued, AUDIT_BATCH_MAX records a
 * statement (each its own transaction). -1: database error, the records
 * are back in the queue. */
int ssp_pg_audit_write_queue(ssp_pgstore *pg, ssp_error *err)
{
    ssp_audit_queue *queue = pg->audit;
    ssp_audit_batch batch;

    while (ssp_audit_take(queue, AUDIT_BATCH_MAX, &batch)) {
        size_t len = 0;
        char *payload = serialise_records(pg, batch.first, true, &len);
        const char *params[1] = {payload};
        int rc;

        if (payload == NULL) {
            ssp_audit_put_back(queue, &batch);
            return ssp_fail_nomem(err);
        }
        rc = ssp_pg_exec(pg->conn, AUDIT_INSERT_SQL, 1, params, false, "audit insert", err);
        free(payload);
        if (rc != 0) {
            ssp_audit_put_back(queue, &batch);
            return -1;
        }
        /* committed (autocommit): now the records are durable */
        ssp_audit_mark_written(queue, &batch);
    }
    return 0;
}

/* [store thread] While the database is away: appends everything queued to
 * the spill file, fdatasync'ed. On a disk error the records stay queued in
 * memory and are retried. */
void ssp_pg_audit_spill_queue(ssp_pgstore *pg)
{
    ssp_audit_queue *queue = pg->audit;
    ssp_audit_batch batch;

    while (ssp_audit_take(queue, AUDIT_BATCH_MAX, &batch)) {
        size_t len = 0;
        char *lines = serialise_records(pg, batch.first, false, &len);
        off_t size_before = lseek(pg->spill_fd, 0, SEEK_END);
        bool ok = lines != NULL && size_before >= 0 &&
                  ssp_write_all(pg->spill_fd, lines, len) == 0 && fdatasync(pg->spill_fd) == 0;

        free(lines);
        if (!ok) {
            if (size_before >= 0 && ftruncate(pg->spill_fd, size_before) != 0) {
                /* the torn line is cut off when the file is drained */
            }
            ssp_pg_set_error(pg, "cannot write the audit spill file %s: %s", pg->spill_path,
                             strerror(errno));
            ssp_audit_put_back(queue, &batch);
            return;
        }
        pthread_mutex_lock(&pg->mutex);
        pg->audit_spilled_total += batch.count;
        pg->audit_spill_pending += batch.count;
        pthread_mutex_unlock(&pg->mutex);
        /* fdatasync'ed: now the records are durable */
        ssp_audit_mark_written(queue, &batch);
    }
}

/* [store thread] Inserts the spill file's records in order, in batches,
 * then empties it. A crash half-way sends some records twice; the unique
 * (origin, origin_seq) keeps one of each. */
int ssp_pg_audit_drain_spill(ssp_pgstore *pg, ssp_error *err)
{
    off_t size = lseek(pg->spill_fd, 0, SEEK_END);
    char *data, *cursor;

    if (size <= pg->spill_drained) {
        if (size > 0 && ftruncate(pg->spill_fd, 0) == 0)
            pg->spill_drained = 0;
        return 0;
    }
    data = ssp_read_range(pg->spill_fd, pg->spill_drained, size);
    if (data == NULL)
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", pg->spill_path, strerror(errno));
    cursor = data;
    while (*cursor) {
        char *start = cursor, *payload, *p;
        size_t n = 0, span;
        const char *params[1];
        int rc;

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
        rc = ssp_pg_exec(pg->conn, AUDIT_INSERT_SQL, 1, params, false, "spill drain", err);
        free(payload);
        if (rc != 0) {
            free(data);
            return -1;
        }
        pg->spill_drained += (off_t)span;
        cursor = p;
        pthread_mutex_lock(&pg->mutex);
        pg->audit_spill_pending = pg->audit_spill_pending > n ? pg->audit_spill_pending - n : 0;
        pthread_mutex_unlock(&pg->mutex);
    }
    free(data);
    if (pg->spill_drained >= size || lseek(pg->spill_fd, 0, SEEK_END) == pg->spill_drained) {
        /* Only this thread appends to the spill file. */
        if (ftruncate(pg->spill_fd, 0) == 0)
            pg->spill_drained = 0;
    }
    return 0;
}

bool ssp_pg_audit_spill_waiting(ssp_pgstore *pg)
{
    return lseek(pg->spill_fd, 0, SEEK_END) > 0;
}

/* Cuts a torn last line off the spill file and counts its records. */
int ssp_pg_audit_open_spill(ssp_pgstore *pg, ssp_error *err)
{
    off_t size;
    char *data;

    pg->spill_fd = open(pg->spill_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (pg->spill_fd < 0)
        return ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", pg->spill_path, strerror(errno));
    size = lseek(pg->spill_fd, 0, SEEK_END);
    if (size <= 0)
        return 0;
    data = ssp_read_range(pg->spill_fd, 0, size);
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

/* ---- the callers' queries [caller thread] ---- */

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

/* The kinds filter as the query's $9: NULL, 'denial' or 'action'. */
static const char *kinds_param(ssp_audit_kinds kinds)
{
    return kinds == SSP_AUDIT_ONLY_DENIALS ? "denial"
           : kinds == SSP_AUDIT_ONLY_ACTIONS ? "action"
                                             : NULL;
}

/* Column i of row `row`, a text or NULL, as rec[key]. */
static int set_text(json_t *rec, const char *key, ssp_pg_rows *res, int row, int i)
{
    return json_object_set_new(rec, key, ssp_pg_isnull(res, row, i)
                                             ? json_null()
                                             : json_string(ssp_pg_value(res, row, i)));
}

/* One row of the query below as the record the queries answer
 * (ssp_audit_record_complete's shape). NULL when out of memory. */
static json_t *row_record(ssp_pg_rows *res, int i)
{
    static const char *const text_fields[] = {"actor", "target", "room_id", "event_type",
                                              "school"};
    bool action = !ssp_pg_isnull(res, i, 11) && strcmp(ssp_pg_value(res, i, 11), "action") == 0;
    int64_t count = ssp_pg_isnull(res, i, 12) ? 1 : ssp_pg_int(res, i, 12);
    json_t *rec = json_object();

    if (rec == NULL)
        return NULL;
    if (json_object_set_new(rec, "id", json_integer(ssp_pg_int(res, i, 0))) ||
        json_object_set_new(rec, "ts", json_integer(ssp_pg_int(res, i, 1))) ||
        json_object_set_new(rec, "kind", json_string(action ? "action" : "denial")) ||
        json_object_set_new(rec, "count", json_integer(count)))
        goto oom;
    if (count > 1 && !ssp_pg_isnull(res, i, 13) &&
        json_object_set_new(rec, "last_ts", json_integer(ssp_pg_int(res, i, 13))))
        goto oom;
    if (action) {
        if (set_text(rec, "action", res, i, 14) || set_text(rec, "group", res, i, 15) ||
            set_text(rec, "reason", res, i, 16))
            goto oom;
    } else if (set_text(rec, "rule", res, i, 2) || set_text(rec, "callback", res, i, 3) ||
               json_object_set_new(rec, "enforced",
                                   ssp_pg_isnull(res, i, 4)
                                       ? json_null()
                                       : json_boolean(ssp_pg_value(res, i, 4)[0] == 't'))) {
        goto oom;
    }
    for (int k = 0; k < 5; k++) {
        if (set_text(rec, text_fields[k], res, i, 5 + k) != 0)
            goto oom;
    }
    if (set_text(rec, "worker", res, i, 10) != 0)
        goto oom;
    return rec;
oom:
    json_decref(rec);
    return NULL;
}

/* The page of an audit or read-log query: the first `limit` rows as
 * records (row_to_json), and, when the query found one row more, the id
 * column of the page's last row as where the next page starts. NULL when
 * out of memory. The rows stay the caller's. */
json_t *ssp_pg_audit_page(ssp_pg_rows *res, size_t limit, int id_column,
                          json_t *(*row_to_json)(ssp_pg_rows *res, int row))
{
    int rows = ssp_pg_nrows(res);
    json_t *records = json_array(), *page;

    if (records == NULL)
        return NULL;
    for (int i = 0; i < rows && (size_t)i < limit; i++) {
        json_t *rec = row_to_json(res, i);

        if (rec == NULL || json_array_append_new(records, rec) != 0) {
            json_decref(records);
            return NULL;
        }
    }
    page = ssp_audit_page(records, (size_t)rows > limit ? ssp_pg_value(res, (int)limit - 1, id_column)
                                                        : NULL);
    json_decref(records);
    return page;
}

int ssp_pg_audit_query(ssp_store *store, const ssp_audit_filter *f, char **result_json,
                       ssp_error *err)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;
    char since[32], until[32], before[32], limit[32];
    const char *params[9];
    ssp_pg_rows *res = NULL;
    json_t *result;
    char *schools = NULL;
    int rc;

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
    params[8] = kinds_param(f->kinds);
    /* The kind test is spelled so that, planned with $9 known, "actions
     * only" is the partial index audit_actions' own predicate. */
    res = ssp_pg_pool_query(pg->readers, SSP_PG_READERS, &pg->readers_turn,
                "SELECT id, (extract(epoch FROM ts) * 1000)::bigint, rule, callback, enforced,"
                " actor, target, room_id, event_type, school, worker, kind, count,"
                " (extract(epoch FROM last_ts) * 1000)::bigint, action, group_id, reason"
                " FROM school_policy.audit"
                " WHERE ($1::bigint = 0 OR ts >= timestamptz 'epoch' + $1::bigint * interval '1 ms')"
                " AND ($2::bigint = 0 OR ts < timestamptz 'epoch' + $2::bigint * interval '1 ms')"
                " AND ($3::text IS NULL OR rule = $3) AND ($4::text IS NULL OR school = $4)"
                " AND ($5::text IS NULL OR actor = $5 OR target = $5)"
                " AND ($6::bigint = 0 OR id < $6::bigint)"
                " AND ($8::json IS NULL OR school = ANY (ARRAY(SELECT json_array_elements_text($8::json))))"
                " AND ($9::text IS NULL OR ($9::text = 'action' AND kind = 'action')"
                "  OR ($9::text = 'denial' AND kind IS DISTINCT FROM 'action'))"
                " ORDER BY id DESC LIMIT $7::bigint",
                9, params, true, err);
    free(schools);
    if (res == NULL)
        return -1;
    result = ssp_pg_audit_page(res, f->limit, 0, row_record);
    ssp_pg_rows_free(res);
    if (result == NULL)
        return ssp_fail_nomem(err);
    rc = ssp_json_dump_to(result, result_json, err);
    json_decref(result);
    return rc;
}

/* The chart: the counts of school_policy.audit_counts (migration 5) for
 * the spans of whole hours and days, the records themselves for the rest
 * (audit_chart.h): $1..$3 the spans (grain, lo, hi; grain 1: records),
 * $4 since, $5 rule, $6 user, $7 the schools (JSON; [""] for every school
 * in the counts), $8 every school (the records unfiltered), $9 bucket. */
static const char CHART_SQL[] =
    "WITH spans AS MATERIALIZED (SELECT s.grain, s.lo, s.hi"
    "  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS s(grain, lo, hi)),"
    " counted AS ("
    /* One index range scan per span (OFFSET 0 keeps the planner from
     * joining the whole school's counts with every span instead). */
    "  SELECT c.t, c.rule, c.n FROM spans s CROSS JOIN LATERAL ("
    "   SELECT c.start_ms AS t, c.rule, c.n FROM school_policy.audit_counts c"
    "   WHERE s.grain > 1"
    "    AND c.school = ANY (ARRAY(SELECT json_array_elements_text($7::json)))"
    "    AND c.grain = s.grain AND c.start_ms >= s.lo AND c.start_ms < s.hi"
    "    AND ($5::text IS NULL OR c.rule = $5) OFFSET 0) c"
    "  UNION ALL"
    "  SELECT a.t, a.rule, a.n FROM spans s CROSS JOIN LATERAL ("
    "   SELECT (extract(epoch FROM a.ts) * 1000)::bigint AS t, a.rule,"
    "    coalesce(a.count, 1) AS n FROM school_policy.audit a"
    "   WHERE s.grain = 1 AND a.ts >= timestamptz 'epoch' + s.lo * interval '1 ms'"
    "    AND a.ts < timestamptz 'epoch' + s.hi * interval '1 ms' AND a.rule IS NOT NULL"
    "    AND ($8::boolean OR a.school = ANY (ARRAY(SELECT json_array_elements_text($7::json))))"
    "    AND ($5::text IS NULL OR a.rule = $5)"
    "    AND ($6::text IS NULL OR a.actor = $6 OR a.target = $6) OFFSET 0) a)"
    " SELECT $4::bigint + (t - $4::bigint) / $9::bigint * $9::bigint, rule, sum(n)::bigint"
    " FROM counted GROUP BY 1, 2 ORDER BY 1, 2";

/* The schools the counts are read for, as JSON: the school asked for (if
 * a school admin may read it), a school admin's schools, or [""] (every
 * school). *every: no school filter on the records. */
static char *chart_schools(const ssp_audit_filter *f, bool *every)
{
    json_t *list = json_array();
    char *text;

    *every = f->school == NULL && f->schools == NULL;
    if (list == NULL)
        return NULL;
    if (*every) {
        if (json_array_append_new(list, json_string("")) != 0)
            goto oom;
    } else if (f->school != NULL) {
        bool allowed = f->schools == NULL;

        for (size_t i = 0; !allowed && i < f->n_schools; i++)
            allowed = strcmp(f->schools[i], f->school) == 0;
        if (allowed && json_array_append_new(list, json_string(f->school)) != 0)
            goto oom;
    } else {
        for (size_t i = 0; i < f->n_schools; i++) {
            if (json_array_append_new(list, json_string(f->schools[i])) != 0)
                goto oom;
        }
    }
    text = ssp_json_dumps_checked(list);
    json_decref(list);
    return text;
oom:
    json_decref(list);
    return NULL;
}

/* A PostgreSQL array text, "{" then the values added then "}". */
typedef struct array_text {
    char *buf;
    size_t used, cap;
} array_text;

static int array_start(array_text *a)
{
    a->buf = NULL;
    a->used = a->cap = 0;
    if (ssp_buf_reserve(&a->buf, &a->cap, 64) != 0)
        return -1;
    strcpy(a->buf, "{");
    a->used = 1;
    return 0;
}

/* Appends v; -1 when out of memory. */
static int array_add(array_text *a, int64_t v)
{
    char item[32];
    int n = snprintf(item, sizeof item, "%s%lld", a->used > 1 ? "," : "", (long long)v);

    if (ssp_buf_reserve(&a->buf, &a->cap, a->used + (size_t)n + 2) != 0)
        return -1;
    memcpy(a->buf + a->used, item, (size_t)n);
    a->used += (size_t)n;
    a->buf[a->used] = '\0';
    return 0;
}

static int array_end(array_text *a)
{
    if (ssp_buf_reserve(&a->buf, &a->cap, a->used + 2) != 0)
        return -1;
    strcpy(a->buf + a->used, "}");
    a->used++;
    return 0;
}

/* [caller thread] Denials per (bucket, rule): a summary of a flood counts
 * as its count, actions (no rule) not at all. Bucket starts are aligned
 * to `since`. A year costs a few hundred day counts and the hours and
 * records at the buckets' edges; with `user` (the counts know no users)
 * the records of the whole range are counted, under the readers' timeout. */
int ssp_pg_audit_chart(ssp_store *store, const ssp_audit_filter *f, int64_t bucket_ms,
                       json_t **rows, ssp_error *err)
{
    static const int64_t GRAINS[] = {SSP_CHART_DAY_MS, SSP_CHART_HOUR_MS, 1};
    ssp_pgstore *pg = (ssp_pgstore *)store;
    char since[32], bucket[32];
    const char *params[9];
    array_text grains = {NULL, 0, 0}, los = {NULL, 0, 0}, his = {NULL, 0, 0};
    char *schools = NULL;
    ssp_chart_plan plan = {NULL, 0, 0};
    ssp_pg_rows *res = NULL;
    bool every;
    int rc = -1;

    *rows = NULL;
    /* with a user, one span of records: the last grain alone */
    if (ssp_chart_plan_build(f->since_ms, f->until_ms, bucket_ms,
                             f->user != NULL ? &GRAINS[2] : GRAINS, f->user != NULL ? 1 : 3, &plan,
                             err) != 0)
        return -1;
    if (array_start(&grains) != 0 || array_start(&los) != 0 || array_start(&his) != 0)
        goto oom;
    for (size_t i = 0; i < plan.n; i++) {
        const ssp_chart_span *s = &plan.spans[i];

        if (array_add(&grains, f->user != NULL ? 1 : GRAINS[s->grain]) != 0 ||
            array_add(&los, s->lo) != 0 || array_add(&his, s->hi) != 0)
            goto oom;
    }
    if (array_end(&grains) != 0 || array_end(&los) != 0 || array_end(&his) != 0)
        goto oom;
    schools = chart_schools(f, &every);
    if (schools == NULL)
        goto oom;
    snprintf(since, sizeof since, "%lld", (long long)f->since_ms);
    snprintf(bucket, sizeof bucket, "%lld", (long long)bucket_ms);
    params[0] = grains.buf;
    params[1] = los.buf;
    params[2] = his.buf;
    params[3] = since;
    params[4] = f->rule;
    params[5] = f->user;
    params[6] = schools;
    params[7] = every ? "t" : "f";
    params[8] = bucket;
    res = ssp_pg_pool_query(pg->readers, SSP_PG_READERS, &pg->readers_turn, CHART_SQL, 9,
                            params, true, err);
    if (res == NULL)
        goto done;
    *rows = json_array();
    if (*rows == NULL)
        goto oom;
    for (int i = 0; i < ssp_pg_nrows(res); i++) {
        if (json_array_append_new(*rows, json_pack("[I, s, I]",
                                                   (json_int_t)ssp_pg_int(res, i, 0),
                                                   ssp_pg_value(res, i, 1),
                                                   (json_int_t)ssp_pg_int(res, i, 2))) != 0)
            goto oom;
    }
    rc = 0;
    goto done;
oom:
    ssp_fail_nomem(err);
    json_decref(*rows);
    *rows = NULL;
done:
    ssp_pg_rows_free(res);
    ssp_chart_plan_free(&plan);
    free(grains.buf);
    free(los.buf);
    free(his.buf);
    free(schools);
    return rc;
}

int ssp_pg_audit_purge(ssp_store *store, int64_t before_ms, uint64_t *deleted, ssp_error *err)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;
    char cutoff[32];
    const char *params[1] = {cutoff};
    ssp_pg_rows *res;

    snprintf(cutoff, sizeof cutoff, "%lld", (long long)before_ms);
    res = ssp_pg_session_query(&pg->queries,
                               "DELETE FROM school_policy.audit"
                               " WHERE ts < timestamptz 'epoch' + $1::bigint * interval '1 ms'",
                               1, params, false, err);
    if (res == NULL)
        return -1;
    *deleted = ssp_pg_affected(res);
    ssp_pg_rows_free(res);
    return 0;
}
