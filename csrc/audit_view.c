/*
 * The audit for the people who audit (the audit page and the admin API's
 * read endpoints): who may read which school's records, the forced school
 * filter, the read log, the chart's aggregate, the rule names.
 *
 * Who reads what (the policy; the adapter only relays):
 * - service users and server admins ("operator"): every school; they alone
 *   may write (roster endpoints);
 * - audit.readers ("reader", the data-protection officers): every school,
 *   read only;
 * - a user with the roster role `admin` in a school ("school_admin"): that
 *   school's records and status only; asking for another school is 403;
 * - anyone else: 403.
 *
 * Every read of audit data (op "audit", "chart", "reads") first appends a
 * read-log record: who, with which access, which query, confined to which
 * schools, when. If it cannot be written, nothing is read.
 *
 * Ownership: the request is borrowed; everything built here is freed here,
 * except *response_json, which the caller frees.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "audit_view.h"
#include "engine_state.h"
#include "ids.h"
#include "reconcile.h"
#include "roster_feed_api.h"
#include "rule_texts.h"
#include "store.h"
#include "util.h"

#define MAX_BUCKETS 2000
#define DEFAULT_LIMIT 100
#define MINUTE_MS 60000

typedef enum { ACCESS_NONE, ACCESS_SCHOOL_ADMIN, ACCESS_READER, ACCESS_OPERATOR } access_level;

static const char *const ACCESS_NAMES[] = {NULL, "school_admin", "reader", "operator"};

typedef struct reader_scope {
    access_level level;
    char **schools; /* school_admin: the schools where the reader is admin (owned) */
    size_t n_schools;
} reader_scope;

typedef struct view_query {
    int64_t since, until, from, limit, bucket;
    const char *rule, *school, *user; /* borrowed from the request JSON */
    ssp_audit_kinds kinds;            /* "kind": denial, action; absent: both */
} view_query;

static void scope_free(reader_scope *scope)
{
    for (size_t i = 0; i < scope->n_schools; i++)
        free(scope->schools[i]);
    free(scope->schools);
    scope->schools = NULL;
    scope->n_schools = 0;
}

/* Reads the roster under its read lock; copies what it keeps. */
static int resolve_scope(ssp_engine *engine, const char *reader, bool server_admin,
                         reader_scope *scope, ssp_error *err)
{
    const ssp_roster_user *user;
    int rc = 0;

    memset(scope, 0, sizeof *scope);
    if (ssp_strmap_get(&engine->config.service_user_set, reader) != NULL || server_admin) {
        scope->level = ACCESS_OPERATOR;
        return 0;
    }
    if (ssp_strmap_get(&engine->config.audit_reader_set, reader) != NULL) {
        scope->level = ACCESS_READER;
        return 0;
    }
    pthread_rwlock_rdlock(&engine->roster.lock);
    user = ssp_strmap_get(&engine->roster.users, reader);
    if (user != NULL && user->n > 0) {
        scope->schools = calloc(user->n, sizeof *scope->schools);
        if (scope->schools == NULL)
            rc = ssp_fail_nomem(err);
        for (size_t i = 0; rc == 0 && i < user->n; i++) {
            if (user->memberships[i].role != SSP_ROLE_ADMIN)
                continue;
            scope->schools[scope->n_schools] = ssp_strdup(user->memberships[i].school);
            if (scope->schools[scope->n_schools] == NULL)
                rc = ssp_fail_nomem(err);
            else
                scope->n_schools++;
        }
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    if (rc != 0) {
        scope_free(scope);
        return -1;
    }
    if (scope->n_schools > 0)
        scope->level = ACCESS_SCHOOL_ADMIN;
    return 0;
}

static bool scope_has(const reader_scope *scope, const char *school)
{
    for (size_t i = 0; i < scope->n_schools; i++) {
        if (strcmp(scope->schools[i], school) == 0)
            return true;
    }
    return false;
}

static json_t *scope_schools_json(const reader_scope *scope)
{
    json_t *list = json_array();

    for (size_t i = 0; list != NULL && i < scope->n_schools; i++) {
        if (json_array_append_new(list, json_string(scope->schools[i])) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

/* ---- the request ---- */

/* Every integer of a query is range-checked here, before any arithmetic
 * and before it reaches a store or SQL. */
static int int_field(json_t *query, const char *key, int64_t low, int64_t high, const char *unit,
                     int64_t *out, ssp_error *err)
{
    json_t *v = json_object_get(query, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < low || json_integer_value(v) > high)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an integer from %lld to %lld%s", key,
                        (long long)low, (long long)high, unit);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int query_text(json_t *query, const char *key, const char **out, ssp_error *err)
{
    json_t *v = json_object_get(query, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: contains a NUL character", key);
    /* An empty value counts as not given, as for the numbers. */
    if (json_string_length(v) > 0)
        *out = json_string_value(v);
    return 0;
}

#define TIME_UNIT " (ms since the epoch)"

static int parse_query(json_t *query, view_query *q, ssp_error *err)
{
    static const char *const known[] = {"since", "until", "from", "limit", "bucket",
                                        "rule",  "school", "user", "kind", NULL};
    const char *key, *kind = NULL;
    json_t *value;

    memset(q, 0, sizeof *q);
    q->limit = DEFAULT_LIMIT;
    if (query == NULL || json_is_null(query))
        return 0;
    if (!json_is_object(query))
        return ssp_fail(err, SSP_ERR_INPUT, "query: expected an object");
    json_object_foreach(query, key, value) {
        size_t i = 0;

        while (known[i] != NULL && strcmp(known[i], key) != 0)
            i++;
        if (known[i] == NULL)
            return ssp_fail(err, SSP_ERR_INPUT, "%s: unknown parameter", key);
    }
    if (int_field(query, "since", 0, INT64_MAX, TIME_UNIT, &q->since, err) != 0 ||
        int_field(query, "until", 0, INT64_MAX, TIME_UNIT, &q->until, err) != 0 ||
        int_field(query, "from", 0, INT64_MAX, " (a page's next)", &q->from, err) != 0 ||
        int_field(query, "limit", 1, 1000, "", &q->limit, err) != 0 ||
        int_field(query, "bucket", MINUTE_MS, SSP_AUDIT_MAX_TS_MS, " (ms)", &q->bucket, err) != 0 ||
        query_text(query, "rule", &q->rule, err) != 0 ||
        query_text(query, "school", &q->school, err) != 0 ||
        query_text(query, "user", &q->user, err) != 0 ||
        query_text(query, "kind", &kind, err) != 0)
        return -1;
    if (q->rule != NULL && ssp_rule_from_id(q->rule) == SSP_RULE_NONE)
        return ssp_fail(err, SSP_ERR_INPUT, "rule: unknown rule id \"%s\"", q->rule);
    /* A time past the year 9999 means "no bound" (nothing is later): it
     * counts as the year 9999, so no store computes with it. */
    if (q->since > SSP_AUDIT_MAX_TS_MS)
        q->since = SSP_AUDIT_MAX_TS_MS;
    if (q->until > SSP_AUDIT_MAX_TS_MS)
        q->until = SSP_AUDIT_MAX_TS_MS;
    if (kind != NULL) {
        if (strcmp(kind, "denial") == 0)
            q->kinds = SSP_AUDIT_ONLY_DENIALS;
        else if (strcmp(kind, "action") == 0)
            q->kinds = SSP_AUDIT_ONLY_ACTIONS;
        else
            return ssp_fail(err, SSP_ERR_INPUT, "kind: expected denial or action");
    }
    return 0;
}

/* ---- responses ---- */

static json_t *ok(json_t *body) /* steals body */
{
    return json_pack("{s:i, s:o}", "status", 200, "body", body);
}

static json_t *forbidden(const char *message)
{
    return json_pack("{s:i, s:s}", "status", 403, "error", message);
}

/* The filter from the query, with the school forced: a school admin reads
 * their own schools only. */
static json_t *confine(const reader_scope *scope, const view_query *q, ssp_audit_filter *f,
                       json_t **read_schools)
{
    *read_schools = NULL;
    f->school = q->school;
    f->since_ms = q->since;
    f->until_ms = q->until;
    f->rule = q->rule;
    f->user = q->user;
    f->kinds = q->kinds;
    if (scope->level != ACCESS_SCHOOL_ADMIN) {
        *read_schools = q->school ? json_pack("[s]", q->school) : json_null();
        return NULL;
    }
    if (q->school != NULL) {
        if (!scope_has(scope, q->school))
            return forbidden("school: you may read the audit of the schools you are an admin "
                             "of only");
        *read_schools = json_pack("[s]", q->school);
        return NULL;
    }
    f->schools = (const char *const *)scope->schools;
    f->n_schools = scope->n_schools;
    *read_schools = scope_schools_json(scope);
    return NULL;
}

/* ---- the read log ---- */

static int record_read(ssp_engine *engine, const char *reader, const reader_scope *scope,
                       const char *op, json_t *query, json_t *read_schools, ssp_error *err)
{
    json_t *record;
    int rc;

    record = json_pack("{s:I, s:s, s:s, s:s, s:O, s:O, s:s}", "ts", (json_int_t)ssp_now_ms(),
                       "reader", reader, "access", ACCESS_NAMES[scope->level], "op", op, "query",
                       query ? query : json_null(), "schools", read_schools, "worker",
                       engine->worker_name);
    if (record == NULL)
        return ssp_fail_nomem(err);
    rc = ssp_store_reads_append(engine->store, record, err);
    json_decref(record);
    return rc;
}

/* ---- the operations ---- */

static json_t *op_access(const char *reader, const reader_scope *scope)
{
    json_t *schools = scope->level == ACCESS_SCHOOL_ADMIN ? scope_schools_json(scope) : json_null();

    if (schools == NULL)
        return NULL;
    return ok(json_pack("{s:s, s:s, s:o, s:b}", "user_id", reader, "access",
                        ACCESS_NAMES[scope->level], "schools", schools, "may_write",
                        scope->level == ACCESS_OPERATOR));
}

static json_t *op_rules(void)
{
    json_t *rules = json_array();

    for (int r = 1; rules != NULL && r < SSP_RULE__COUNT; r++) {
        json_t *item = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s}}", "id", ssp_rule_id((ssp_rule)r),
                                 "name", "en", ssp_rule_name((ssp_rule)r, false), "de",
                                 ssp_rule_name((ssp_rule)r, true), "message", "en",
                                 ssp_rule_message((ssp_rule)r, SSP_SAY_USUAL, false), "de",
                                 ssp_rule_message((ssp_rule)r, SSP_SAY_USUAL, true));

        if (json_array_append_new(rules, item) != 0) {
            json_decref(rules);
            return NULL;
        }
    }
    return rules ? ok(json_pack("{s:o}", "rules", rules)) : NULL;
}

/* The roster feed serves the whole cloud, so only readers of every school
 * see its state (docs/roster-feed.md); without roster_feed it is left out. */
static int add_roster_feed_status(ssp_engine *engine, json_t *status, ssp_error *err)
{
    char *text = NULL;
    json_t *feed;

    if (ssp_roster_feed_status(engine, &text, err) != 0)
        return -1;
    feed = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    if (feed == NULL)
        return ssp_fail_nomem(err);
    if (json_is_null(feed)) {
        json_decref(feed);
        return 0;
    }
    return json_object_set_new(status, "roster_feed", feed) == 0 ? 0 : ssp_fail_nomem(err);
}

static int op_status(ssp_engine *engine, const reader_scope *scope, json_t **response,
                     ssp_error *err)
{
    char *text = NULL;
    json_t *status, *schools, *kept;
    const char *school;
    json_t *value;
    void *tmp;

    if (ssp_reconcile_status(engine, &text, err) != 0)
        return -1;
    status = json_loads(text, 0, NULL);
    free(text);
    if (status == NULL)
        return ssp_fail_nomem(err);
    schools = json_object_get(status, "schools");
    if (scope->level == ACCESS_SCHOOL_ADMIN) {
        /* The configured schools the admin belongs to; a roster school the
         * config does not list has no status. */
        kept = json_object();
        if (kept == NULL) {
            json_decref(status);
            return ssp_fail_nomem(err);
        }
        json_object_foreach_safe(schools, tmp, school, value) {
            if (scope_has(scope, school) && json_object_set(kept, school, value) != 0) {
                json_decref(kept);
                json_decref(status);
                return ssp_fail_nomem(err);
            }
        }
        if (json_object_set_new(status, "schools", kept) != 0) {
            json_decref(status);
            return ssp_fail_nomem(err);
        }
    } else if (add_roster_feed_status(engine, status, err) != 0) {
        json_decref(status);
        return -1;
    }
    *response = ok(status);
    return *response ? 0 : ssp_fail_nomem(err);
}

static int op_audit(ssp_engine *engine, const char *reader, const reader_scope *scope,
                    const view_query *q, json_t *query, json_t **response, ssp_error *err)
{
    ssp_audit_filter f = {0};
    json_t *read_schools = NULL, *body;
    char *text = NULL;

    *response = confine(scope, q, &f, &read_schools);
    if (*response != NULL)
        return 0;
    if (read_schools == NULL)
        return ssp_fail_nomem(err);
    f.limit = (size_t)q->limit;
    f.before_id = q->from;
    if (record_read(engine, reader, scope, "audit", query, read_schools, err) != 0 ||
        ssp_audit_query(engine, &f, &text, err) != 0) {
        json_decref(read_schools);
        return -1;
    }
    json_decref(read_schools);
    body = json_loads(text, 0, NULL);
    free(text);
    *response = body ? ok(body) : NULL;
    return *response ? 0 : ssp_fail_nomem(err);
}

static int op_chart(ssp_engine *engine, const char *reader, const reader_scope *scope,
                    const view_query *q, json_t *query, json_t **response, ssp_error *err)
{
    ssp_audit_filter f = {0};
    json_t *read_schools = NULL, *rows = NULL;
    int64_t since, until, span;
    int rc;

    if (q->since == 0 || q->until == 0 || q->bucket == 0)
        return ssp_fail(err, SSP_ERR_INPUT, "since, until, bucket: the chart needs all three");
    if (q->kinds != SSP_AUDIT_ANY_KIND)
        return ssp_fail(err, SSP_ERR_INPUT, "kind: the chart counts denials only");
    if (q->bucket % MINUTE_MS != 0)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "bucket: expected a whole number of minutes (a multiple of 60000)");
    /* The chart counts whole minutes: both ends move up to the next minute
     * (the answer says which window it counted). Both are at most
     * SSP_AUDIT_MAX_TS_MS, so nothing here overflows. */
    since = (q->since + MINUTE_MS - 1) / MINUTE_MS * MINUTE_MS;
    until = (q->until + MINUTE_MS - 1) / MINUTE_MS * MINUTE_MS;
    if (until <= since)
        return ssp_fail(err, SSP_ERR_INPUT, "until: must be after since");
    span = until - since;
    if (span / q->bucket + (span % q->bucket != 0) > MAX_BUCKETS)
        return ssp_fail(err, SSP_ERR_INPUT, "bucket: at most %d buckets between since and until",
                        MAX_BUCKETS);
    *response = confine(scope, q, &f, &read_schools);
    if (*response != NULL)
        return 0;
    if (read_schools == NULL)
        return ssp_fail_nomem(err);
    f.limit = 1;
    f.since_ms = since;
    f.until_ms = until;
    rc = record_read(engine, reader, scope, "chart", query, read_schools, err);
    json_decref(read_schools);
    if (rc != 0 || ssp_audit_flush(engine, err) != 0)
        return -1;
    rc = ssp_store_audit_chart(engine->store, &f, q->bucket, &rows, err);
    if (rc != 0)
        return -1;
    *response = ok(json_pack("{s:I, s:I, s:I, s:o}", "since", (json_int_t)since, "until",
                             (json_int_t)until, "bucket", (json_int_t)q->bucket, "rows", rows));
    return *response ? 0 : ssp_fail_nomem(err);
}

static int op_reads(ssp_engine *engine, const char *reader, const reader_scope *scope,
                    const view_query *q, json_t *query, json_t **response, ssp_error *err)
{
    json_t *read_schools, *page = NULL;
    int rc;

    if (q->rule != NULL || q->school != NULL || q->user != NULL || q->bucket != 0 ||
        q->kinds != SSP_AUDIT_ANY_KIND)
        return ssp_fail(err, SSP_ERR_INPUT, "query: the read log takes since, until, limit "
                        "and from only");
    read_schools = scope->level == ACCESS_SCHOOL_ADMIN ? scope_schools_json(scope) : json_null();
    if (read_schools == NULL)
        return ssp_fail_nomem(err);
    rc = record_read(engine, reader, scope, "reads", query, read_schools, err);
    if (rc == 0) {
        ssp_reads_filter rf = {q->since, q->until, q->from, (size_t)q->limit};

        /* a school admin sees the reads confined to one of their schools */
        rc = ssp_store_reads_query(engine->store, scope->level == ACCESS_SCHOOL_ADMIN ? read_schools : NULL,
                                   &rf, &page, err);
    }
    json_decref(read_schools);
    if (rc != 0)
        return -1;
    *response = ok(page);
    return *response ? 0 : ssp_fail_nomem(err);
}

int ssp_audit_view(ssp_engine *engine, const char *request, size_t len, char **response_json,
                   ssp_error *err)
{
    json_error_t json_err;
    json_t *root, *response = NULL, *query;
    const char *op, *reader;
    reader_scope scope = {0};
    view_query q;
    int rc = -1;

    *response_json = NULL;
    if (!engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    root = json_loadb(request, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &json_err);
    if (root == NULL) {
        if (ssp_json_error_is_oom(&json_err))
            return ssp_fail_nomem(err);
        return ssp_fail(err, SSP_ERR_SYNTAX, "request: invalid JSON at line %d, column %d: %s",
                        json_err.line, json_err.column, json_err.text);
    }
    op = json_string_value(json_object_get(root, "op"));
    reader = json_string_value(json_object_get(root, "reader"));
    query = json_object_get(root, "query");
    if (op == NULL) {
        ssp_fail(err, SSP_ERR_INPUT, "op: expected a string");
        goto done;
    }
    if (reader == NULL || strlen(reader) != json_string_length(json_object_get(root, "reader")) ||
        !ssp_user_id_valid(reader)) {
        ssp_fail(err, SSP_ERR_INPUT, "reader: expected a Matrix user id");
        goto done;
    }
    if (!json_is_boolean(json_object_get(root, "server_admin"))) {
        ssp_fail(err, SSP_ERR_INPUT, "server_admin: expected a boolean");
        goto done;
    }
    if (parse_query(query, &q, err) != 0)
        goto done;
    if (resolve_scope(engine, reader, json_is_true(json_object_get(root, "server_admin")), &scope,
                      err) != 0)
        goto done;
    if (scope.level == ACCESS_NONE) {
        response = forbidden("Only server admins, service users, the configured audit readers "
                             "and school admins may read the school policy audit");
        rc = 0;
    } else if (strcmp(op, "write") == 0) {
        response = scope.level == ACCESS_OPERATOR
                       ? ok(json_object())
                       : forbidden("Only service users and server admins may change the roster");
        rc = 0;
    } else if (strcmp(op, "access") == 0) {
        response = op_access(reader, &scope);
        rc = 0;
    } else if (strcmp(op, "rules") == 0) {
        response = op_rules();
        rc = 0;
    } else if (strcmp(op, "status") == 0) {
        rc = op_status(engine, &scope, &response, err);
    } else if (strcmp(op, "audit") == 0) {
        rc = op_audit(engine, reader, &scope, &q, query, &response, err);
    } else if (strcmp(op, "chart") == 0) {
        rc = op_chart(engine, reader, &scope, &q, query, &response, err);
    } else if (strcmp(op, "reads") == 0) {
        rc = op_reads(engine, reader, &scope, &q, query, &response, err);
    } else {
        ssp_fail(err, SSP_ERR_INPUT, "op: unknown operation \"%s\"", op);
        goto done;
    }
    if (rc != 0)
        goto done;
    if (response == NULL) {
        rc = ssp_fail_nomem(err);
        goto done;
    }
    rc = ssp_json_dump_to(response, response_json, err);
done:
    scope_free(&scope);
    json_decref(response);
    json_decref(root);
    return rc;
}
