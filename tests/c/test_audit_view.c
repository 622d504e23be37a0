/* The audit for readers (audit_view.c) on the embedded store: who reads
 * which school, the read log, the chart's counts, paging a large log. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define ANNA "@anna:school.example"   /* gym-nord student */
#define BEN "@ben:school.example"     /* gym-sued student */
#define HEAD_N "@head-n:school.example" /* gym-nord admin */
#define HEAD_S "@head-s:school.example" /* gym-sued admin */
#define DPO "@dpo:school.example"     /* audit.readers */
#define SYNC "@sync:school.example"   /* service user */

static bool setup(tu_fixture *fx)
{
    static const char body[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": \"student\"}]},"
        "{\"user_id\": \"@head-n:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"admin\"},"
        " {\"school\": \"rs-ost\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"@head-s:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": \"admin\"}]}]}";
    size_t upserted;

    if (!tu_setup(fx, "\"service_users\": [\"" SYNC "\"], \"audit\": {\"readers\": [\"" DPO "\"], "
                      "\"flood\": {\"burst\": 1000000}},"
                      " \"schools\": {\"gym-nord\": {}, \"gym-sued\": {}, \"rs-ost\": {}}"))
        return false;
    if (ssp_roster_upsert_batch(fx->engine, body, strlen(body), &upserted, &fx->err) != 0) {
        CHECK_FAIL("cannot load the roster: %s", fx->err.message);
        return false;
    }
    return true;
}

/* Neither school has opted in: every login is a denial of the user's school. */
static void deny_login(tu_fixture *fx, const char *actor, int times)
{
    for (int i = 0; i < times; i++) {
        ssp_request req;
        ssp_decision d;

        memset(&req, 0, sizeof req);
        req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
        req.actor = actor;
        req.actor_is_admin = SSP_FACT_NO;
        ssp_decide(fx->engine, &req, &d);
    }
}

/* Runs a request; returns the parsed response (caller decrefs) or NULL
 * with fx->err set. */
static json_t *view(tu_fixture *fx, const char *op, const char *reader, bool server_admin,
                    const char *query)
{
    char *request = tu_format("{\"op\": \"%s\", \"reader\": \"%s\", \"server_admin\": %s, \"query\": %s}",
                              op, reader, server_admin ? "true" : "false", query ? query : "{}");
    char *response = NULL;
    json_t *result = NULL;

    if (ssp_audit_view(fx->engine, request, strlen(request), &response, &fx->err) == 0)
        result = json_loads(response, 0, NULL);
    free(request);
    free(response);
    return result;
}

static int status_of(json_t *response)
{
    return (int)json_integer_value(json_object_get(response, "status"));
}

static json_t *records_of(json_t *response)
{
    return json_object_get(json_object_get(response, "body"), "records");
}

static void audit_view_school_admin_reads_only_their_school(void)
{
    tu_fixture fx;
    json_t *r;
    size_t i;
    json_t *rec;

    if (!setup(&fx))
        goto done;
    deny_login(&fx, ANNA, 2);
    deny_login(&fx, BEN, 3);
    r = view(&fx, "audit", HEAD_N, false, NULL);
    REQUIRE(r != NULL);
    CHECK_INT_EQ(status_of(r), 200);
    CHECK_INT_EQ(json_array_size(records_of(r)), 2);
    json_array_foreach(records_of(r), i, rec)
        CHECK_STR_EQ(json_string_value(json_object_get(rec, "school")), "gym-nord");
    json_decref(r);
    /* another school by name: refused; a school where they only teach too */
    r = view(&fx, "audit", HEAD_N, false, "{\"school\": \"gym-sued\"}");
    CHECK_INT_EQ(status_of(r), 403);
    json_decref(r);
    r = view(&fx, "audit", HEAD_N, false, "{\"school\": \"rs-ost\"}");
    CHECK_INT_EQ(status_of(r), 403);
    json_decref(r);
    r = view(&fx, "status", HEAD_N, false, NULL);
    CHECK_INT_EQ(json_object_size(json_object_get(json_object_get(r, "body"), "schools")), 1);
    json_decref(r);
done:
    tu_teardown(&fx);
}

static void audit_view_readers_operators_and_others(void)
{
    tu_fixture fx;
    json_t *r;

    if (!setup(&fx))
        goto done;
    deny_login(&fx, ANNA, 1);
    deny_login(&fx, BEN, 1);
    r = view(&fx, "audit", DPO, false, NULL);
    CHECK_INT_EQ(json_array_size(records_of(r)), 2);
    json_decref(r);
    r = view(&fx, "write", DPO, false, NULL);
    CHECK_INT_EQ(status_of(r), 403);
    json_decref(r);
    r = view(&fx, "write", SYNC, false, NULL);
    CHECK_INT_EQ(status_of(r), 200);
    json_decref(r);
    r = view(&fx, "write", "@root:school.example", true, NULL);
    CHECK_INT_EQ(status_of(r), 200);
    json_decref(r);
    r = view(&fx, "access", HEAD_S, false, NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(r, "body"), "access")), "school_admin");
    json_decref(r);
    /* a pupil, and someone not on the roster */
    r = view(&fx, "audit", ANNA, false, NULL);
    CHECK_INT_EQ(status_of(r), 403);
    json_decref(r);
    r = view(&fx, "rules", "@zoe:school.example", false, NULL);
    CHECK_INT_EQ(status_of(r), 403);
    json_decref(r);
done:
    tu_teardown(&fx);
}

static void audit_view_every_read_is_in_the_read_log(void)
{
    tu_fixture fx;
    json_t *r, *rec;

    if (!setup(&fx))
        goto done;
    deny_login(&fx, ANNA, 1);
    json_decref(view(&fx, "audit", HEAD_N, false, "{\"rule\": \"school_not_enabled\"}"));
    json_decref(view(&fx, "audit", HEAD_N, false, "{\"school\": \"gym-sued\"}")); /* refused: not a read */
    json_decref(view(&fx, "chart", HEAD_S, false,
                     "{\"since\": 1, \"until\": 3600001, \"bucket\": 3600000}"));
    r = view(&fx, "reads", DPO, false, NULL);
    REQUIRE(r != NULL);
    /* newest first: the DPO's own read of the log, the chart, the audit */
    REQUIRE_INT_EQ(json_array_size(records_of(r)), 3);
    rec = json_array_get(records_of(r), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "reader")), HEAD_N);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "op")), "audit");
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(rec, "query"), "rule")),
                 "school_not_enabled");
    CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(rec, "schools"), 0)), "gym-nord");
    CHECK(json_is_null(json_object_get(json_array_get(records_of(r), 0), "schools")));
    json_decref(r);
    /* head-s sees the reads confined to gym-sued only */
    r = view(&fx, "reads", HEAD_S, false, NULL);
    rec = json_array_get(records_of(r), 0);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "reader")), HEAD_S);
    CHECK_INT_EQ(json_array_size(records_of(r)), 2); /* the chart and this read */
    json_decref(r);
    /* ids go on after a restart: reads 1-4 above, 5 and 6 now */
    REQUIRE(tu_reopen(&fx));
    json_decref(view(&fx, "audit", DPO, false, NULL));
    r = view(&fx, "reads", DPO, false, "{\"limit\": 1}");
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records_of(r), 0), "id")), 6);
    json_decref(r);
done:
    tu_teardown(&fx);
}

static void audit_view_chart_counts_per_rule_and_bucket(void)
{
    tu_fixture fx;
    json_t *r, *rows;
    int64_t now = ssp_now_ms(), since;
    char *query;

    if (!setup(&fx))
        goto done;
    deny_login(&fx, ANNA, 4);
    deny_login(&fx, BEN, 5);
    query = tu_format("{\"since\": %lld, \"until\": %lld, \"bucket\": 3600000}",
                      (long long)(now - 3600000), (long long)(now + 3600000));
    r = view(&fx, "chart", HEAD_S, false, query);
    rows = json_object_get(json_object_get(r, "body"), "rows");
    REQUIRE_INT_EQ(json_array_size(rows), 1);
    CHECK_STR_EQ(json_string_value(json_array_get(json_array_get(rows, 0), 1)), "school_not_enabled");
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 2)), 5);
    /* buckets start at since, moved up to the next whole minute, as the
     * answer says */
    since = (now - 3600000 + 59999) / 60000 * 60000;
    CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(r, "body"), "since")), since);
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 0)),
                 since + (now - since) / 3600000 * 3600000);
    json_decref(r);
    r = view(&fx, "chart", DPO, false, query);
    rows = json_object_get(json_object_get(r, "body"), "rows");
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 2)), 9);
    json_decref(r);
    free(query);
done:
    tu_teardown(&fx);
}

/* Larger than several read chunks: paging backwards bisects the file. */
static void audit_view_pages_a_large_log_newest_first_without_gaps(void)
{
    tu_fixture fx;
    int64_t expect = 0, seen = 0;
    char *query = NULL;

    if (!setup(&fx))
        goto done;
    deny_login(&fx, ANNA, 3000);
    deny_login(&fx, BEN, 1000);
    expect = 4000;
    for (long long from = 0;;) {
        json_t *r, *rec, *next;
        size_t i;

        free(query);
        query = from > 0 ? tu_format("{\"limit\": 997, \"from\": %lld}", from)
                         : tu_format("{\"limit\": 997}");
        r = view(&fx, "audit", DPO, false, query);
        REQUIRE(r != NULL);
        json_array_foreach(records_of(r), i, rec) {
            if (json_integer_value(json_object_get(rec, "id")) != expect)
                CHECK_FAIL("expected id %lld, got %lld", (long long)expect,
                           (long long)json_integer_value(json_object_get(rec, "id")));
            expect--;
            seen++;
        }
        next = json_object_get(json_object_get(r, "body"), "next");
        from = json_is_string(next) ? atoll(json_string_value(next)) : 0;
        json_decref(r);
        if (from == 0)
            break;
    }
    CHECK_INT_EQ(seen, 4000);
    CHECK_INT_EQ(expect, 0);
    /* the school admin's pages hold their school's 3000 */
    {
        json_t *r = view(&fx, "audit", HEAD_S, false, "{\"limit\": 1000, \"from\": 3500}");

        CHECK_INT_EQ(json_array_size(records_of(r)), 499); /* ids 3001..3499 */
        json_decref(r);
    }
done:
    free(query);
    tu_teardown(&fx);
}

static void audit_view_bad_requests_name_the_field(void)
{
    tu_fixture fx;
    char *response = NULL;
    static const struct {
        const char *request, *prefix;
    } cases[] = {
        {"{", "request: invalid JSON"},
        {"{\"op\": 1, \"reader\": \"" DPO "\", \"server_admin\": false}", "op:"},
        {"{\"op\": \"audit\", \"reader\": \"dpo\", \"server_admin\": false}", "reader:"},
        {"{\"op\": \"audit\", \"reader\": \"" DPO "\"}", "server_admin:"},
        {"{\"op\": \"audit\", \"reader\": \"" DPO "\", \"server_admin\": false, \"query\": {\"x\": 1}}", "x:"},
        {"{\"op\": \"audit\", \"reader\": \"" DPO "\", \"server_admin\": false, \"query\": {\"limit\": 0}}", "limit:"},
        {"{\"op\": \"audit\", \"reader\": \"" DPO "\", \"server_admin\": false, \"query\": {\"rule\": \"x\"}}", "rule:"},
        {"{\"op\": \"audit\", \"reader\": \"" DPO "\", \"server_admin\": false, \"query\": {\"user\": \"a\\u0000\"}}", "user:"},
        {"{\"op\": \"chart\", \"reader\": \"" DPO "\", \"server_admin\": false, \"query\": {\"since\": 1, \"until\": 999999999, \"bucket\": 60000}}", "bucket:"},
        {"{\"op\": \"reads\", \"reader\": \"" DPO "\", \"server_admin\": false, \"query\": {\"rule\": \"one_way\"}}", "query:"},
        {"{\"op\": \"drop\", \"reader\": \"" DPO "\", \"server_admin\": false}", "op:"},
    };

    if (!setup(&fx))
        goto done;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssp_error err = {0};

        if (ssp_audit_view(fx.engine, cases[i].request, strlen(cases[i].request), &response, &err) == 0) {
            CHECK_FAIL("case %zu was accepted: %s", i, response);
            free(response);
            response = NULL;
            continue;
        }
        CHECK(err.code == SSP_ERR_INPUT || err.code == SSP_ERR_SYNTAX);
        if (strncmp(err.message, cases[i].prefix, strlen(cases[i].prefix)) != 0)
            CHECK_FAIL("case %zu: message %s does not start with %s", i, err.message, cases[i].prefix);
    }
done:
    tu_teardown(&fx);
}

/* Writes n read-log lines, ids first_id.., ts from ts0 one ms apart, every
 * second one (from the second) confined to gym-nord, the others reads of
 * every school. */
static void write_reads(const char *dir, int64_t first_id, int n, int64_t ts0)
{
    char *path = tu_path(dir, "audit-reads.jsonl");
    size_t cap = (size_t)n * 160 + 1, used = 0;
    char *buf = malloc(cap);

    for (int i = 0; buf != NULL && i < n; i++)
        used += (size_t)snprintf(buf + used, cap - used,
                                 "{\"ts\":%lld,\"reader\":\"%s\",\"access\":\"reader\","
                                 "\"op\":\"audit\",\"query\":{},\"schools\":%s,\"worker\":"
                                 "\"main\",\"id\":%lld}\n",
                                 (long long)(ts0 + i), DPO, i % 2 ? "[\"gym-nord\"]" : "null",
                                 (long long)(first_id + i));
    CHECK_INT_EQ(tu_write_file(path, buf ? buf : "", true), 0);
    free(buf);
    free(path);
}

/* audit.retention_days holds for the read log too: a read deletes what is
 * older first (once an hour); the newest record always stays, so ids go on. */
static void audit_view_read_log_keeps_audit_retention_days(void)
{
    tu_fixture fx;
    json_t *r = NULL;
    char *path = NULL;
    int64_t now = ssp_now_ms();

    if (!tu_setup(&fx, "\"service_users\": [\"" SYNC "\"], \"audit\": {\"readers\": [\"" DPO
                       "\"], \"retention_days\": 1}, \"schools\": {\"gym-nord\": {}}"))
        return;
    write_reads(fx.dir, 1, 3000, now - 3 * 86400000LL);
    write_reads(fx.dir, 3001, 10, now - 3600000);
    r = view(&fx, "reads", DPO, false, "{\"limit\": 1000}");
    REQUIRE(r != NULL);
    CHECK_INT_EQ(json_array_size(records_of(r)), 11); /* 10 recent, and this read */
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records_of(r), 0), "id")), 3011);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records_of(r), 10), "id")), 3001);
    path = tu_path(fx.dir, "audit-reads.jsonl");
    CHECK_INT_EQ(tu_count_lines(path), 11);
    json_decref(r);
    r = NULL;
    /* everything old: the newest line stays, and the ids go on after it */
    if (!tu_reopen(&fx))
        goto done;
    unlink(path);
    write_reads(fx.dir, 1, 50, now - 5 * 86400000LL);
    r = view(&fx, "reads", DPO, false, NULL);
    REQUIRE(r != NULL);
    CHECK_INT_EQ(json_array_size(records_of(r)), 2);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records_of(r), 0), "id")), 51);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records_of(r), 1), "id")), 50);
done:
    json_decref(r);
    free(path);
    tu_teardown(&fx);
}

/* A page of a large read log starts where `from` says (a bisection over
 * the ids) and a school admin's pages pass over other reads unparsed: every
 * record once, newest first, with no gap. */
static void audit_view_pages_a_large_read_log_without_gaps(void)
{
    tu_fixture fx;
    char *query = NULL;
    int64_t expect = 6000, now = ssp_now_ms();
    int pages = 0;

    if (!setup(&fx))
        goto done;
    write_reads(fx.dir, 1, 6000, now - 60000);
    /* the school admin of gym-nord sees the even ids (and their own reads,
     * which are confined to gym-nord too) */
    for (long long from = 0;; pages++) {
        json_t *r, *rec, *next;
        size_t i;

        free(query);
        query = from > 0 ? tu_format("{\"limit\": 499, \"from\": %lld}", from)
                         : tu_format("{\"limit\": 499}");
        r = view(&fx, "reads", HEAD_N, false, query);
        REQUIRE(r != NULL);
        json_array_foreach(records_of(r), i, rec) {
            int64_t id = (int64_t)json_integer_value(json_object_get(rec, "id"));

            if (id > 6000)
                continue; /* this admin's own reads of the log */
            if (id != expect)
                CHECK_FAIL("read log page from %lld: id %lld, expected %lld", from, (long long)id,
                           (long long)expect);
            expect -= 2;
        }
        next = json_object_get(json_object_get(r, "body"), "next");
        from = json_is_string(next) ? atoll(json_string_value(next)) : 0;
        json_decref(r);
        if (from == 0 || pages > 50)
            break;
    }
    CHECK_INT_EQ(expect, 0);
done:
    free(query);
    tu_teardown(&fx);
}

void run_audit_view_tests(void)
{
    RUN(audit_view_read_log_keeps_audit_retention_days);
    RUN(audit_view_pages_a_large_read_log_without_gaps);
    RUN(audit_view_school_admin_reads_only_their_school);
    RUN(audit_view_readers_operators_and_others);
    RUN(audit_view_every_read_is_in_the_read_log);
    RUN(audit_view_chart_counts_per_rule_and_bucket);
    RUN(audit_view_pages_a_large_log_newest_first_without_gaps);
    RUN(audit_view_bad_requests_name_the_field);
}
