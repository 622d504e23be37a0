/*
 * Allocation failures around the audit: the decision stands, queries and
 * views fail cleanly and never drop a record.
 */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "ssp_private.h"
#include "testutil.h"

static void chaos_decision_does_not_change_when_the_audit_record_cannot_be_allocated(void)
{
    tu_fixture fx;
    long n;
    ssp_request req;

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = "@zoe:school.example";
    req.actor_is_admin = SSP_FACT_NO;
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_decision d;

        arm(n);
        ssp_decide(fx.engine, &req, &d);
        disarm();
        CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
        CHECK_INT_EQ(d.rule, SSP_RULE_NOT_ON_ROSTER);
        if (chaos_hit == HIT_NONE)
            break;
    }
    CHECK(n > 1);
out:
    tu_teardown(&fx);
}

/* A summary that cannot be allocated: the denial is recorded on its own
 * instead (or, if that fails too, as any record out of memory), so a
 * flood under memory pressure is never undercounted by the limit itself. */
static void chaos_flood_counts_every_denial_when_a_summary_cannot_be_allocated(void)
{
    tu_fixture fx;
    long n;
    int64_t denials = 0, counted = 0;
    ssp_audit_stats stats;
    ssp_audit_filter f;
    char *text = NULL;
    json_t *page = NULL, *rec;
    size_t i;

    if (!tu_setup(&fx, "\"audit\": {\"flood\": {\"burst\": 1, \"summary_seconds\": 300}}"))
        goto out;
    deny_login(fx.engine, "@zoe:school.example");
    denials++;
    for (n = 1; n <= 3; n++) {
        ssp_request req;
        ssp_decision d;

        memset(&req, 0, sizeof req);
        req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
        req.actor = "@zoe:school.example";
        req.actor_is_admin = SSP_FACT_NO;
        arm_engine_only(n);
        ssp_decide(fx.engine, &req, &d);
        disarm();
        denials++;
        CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
        CHECK_INT_EQ(d.rule, SSP_RULE_NOT_ON_ROSTER);
        if (n == 1) {
            /* the summary's allocation failed: its own record instead */
            CHECK_INT_EQ(chaos_hit, HIT_ENGINE);
            CHECK_INT_EQ(d.retry_after_ms, 0);
            CHECK(d.audit_id > 0);
        } else {
            /* n = 2: the summary (one allocation) is open; n = 3: no allocation */
            CHECK(d.retry_after_ms > 0);
        }
    }
    ssp_audit_close_summaries(fx.engine, true);
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.written, 3);
    memset(&f, 0, sizeof f);
    f.limit = 10;
    CHECK_OK(ssp_audit_query(fx.engine, &f, &text, &fx.err), fx.err);
    page = json_loads(text, 0, NULL);
    json_array_foreach(json_object_get(page, "records"), i, rec)
        counted += json_integer_value(json_object_get(rec, "count"));
    CHECK_INT_EQ(counted, denials);
out:
    json_decref(page);
    free(text);
    tu_teardown(&fx);
}

/* An action's record: out of memory is an error (SSP_ERR_NOMEM), never a
 * record half queued; the run that allocates queues it. */
static void chaos_audit_action_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;
    ssp_audit_action_record action = {.action = "member_removed",
                                      .target = "@zoe:school.example",
                                      .room_id = "!course:school.example",
                                      .group = "course-1",
                                      .school = "gym-nord",
                                      .reason = "not listed in version 2"};
    ssp_audit_stats stats;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        int64_t id;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        id = ssp_audit_action(fx.engine, &action, &fx.err);
        disarm();
        if (chaos_hit == HIT_NONE) {
            CHECK(id > 0);
            break;
        }
        judge(&o, n, id > 0 ? 0 : -1, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_audit_action", &o);
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.written, 1);
out:
    tu_teardown(&fx);
}

static void chaos_audit_query_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;
    ssp_audit_filter f;
    int invalid_json = 0;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (int i = 0; i < 5; i++)
        deny_login(fx.engine, "@zoe:school.example");
    memset(&f, 0, sizeof f);
    f.limit = 3;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *text = (char *)"x";
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_audit_query(fx.engine, &f, &text, &fx.err);
        disarm();
        if (rc == 0) {
            json_t *result = json_loads(text, 0, NULL);

            /* jansson's dump ignores failures while writing object keys */
            if (result == NULL && chaos_hit == HIT_JANSSON)
                invalid_json++;
            else if (result == NULL)
                CHECK_FAIL("N=%ld: the result is not JSON: %s", n, text);
            json_decref(result);
            free(text);
        } else {
            CHECK(text == NULL);
        }
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_audit_query", &o);
    if (invalid_json > 0)
        printf("     (%d results were invalid JSON after a jansson allocation failed)\n",
               invalid_json);
out:
    tu_teardown(&fx);
}

/* The audit for readers: resolving the reader's scope, recording the read,
 * querying, counting for the chart. Every allocation failure is an error
 * (or a success with a valid answer), never a crash or a leak. */
static void chaos_audit_view_fails_cleanly_at_every_allocation(void)
{
    static const char *const requests[] = {
        /* First: every read that succeeds adds a line to the read log, which
         * this request reads back, so later it would cost O(n^2) (valgrind). */
        "{\"op\": \"reads\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
        " \"query\": {\"limit\": 3}}",
        "{\"op\": \"audit\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
        " \"query\": {\"limit\": 3}}",
        "{\"op\": \"chart\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
        " \"query\": {\"since\": 1, \"until\": 9999999999999, \"bucket\": 86400000000}}",
        "{\"op\": \"status\", \"reader\": \"@head:school.example\", \"server_admin\": false}",
        "{\"op\": \"rules\", \"reader\": \"@sync:school.example\", \"server_admin\": false}",
    };
    static const char roster[] = "{\"users\": [{\"user_id\": \"@head:school.example\","
                                 " \"schools\": [{\"school\": \"gym-sued\", \"role\": \"admin\"}]},"
                                 " {\"user_id\": \"@zoe:school.example\","
                                 " \"schools\": [{\"school\": \"gym-sued\", \"role\": \"student\"}]}]}";
    tu_fixture fx;
    size_t upserted;

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    REQUIRE_OK(ssp_roster_upsert_batch(fx.engine, roster, sizeof roster - 1, &upserted, &fx.err), fx.err);
    for (int i = 0; i < 5; i++)
        deny_login(fx.engine, "@zoe:school.example");
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        outcomes o;
        long n;

        memset(&o, 0, sizeof o);
        for (n = 1; n <= MAX_RUNS; n++) {
            char *text = NULL;
            int rc;

            memset(&fx.err, 0, sizeof fx.err);
            arm(n);
            rc = ssp_audit_view(fx.engine, requests[r], strlen(requests[r]), &text, &fx.err);
            disarm();
            if (rc == 0) {
                json_t *result = json_loads(text, 0, NULL);

                if (result == NULL && chaos_hit != HIT_JANSSON)
                    CHECK_FAIL("request %zu N=%ld: the result is not JSON: %s", r, n, text);
                json_decref(result);
                free(text);
            } else {
                CHECK(text == NULL);
            }
            if (chaos_hit == HIT_NONE) {
                CHECK_INT_EQ(rc, 0);
                break;
            }
            judge(&o, n, rc, &fx.err);
        }
        o.runs = n - 1;
        CHECK(n > 1 && n <= MAX_RUNS);
        report("ssp_audit_view", &o);
    }
out:
    tu_teardown(&fx);
}

static void chaos_audit_query_never_drops_records_when_memory_runs_out(void)
{
    /* Under memory pressure a query may fail, but when it succeeds it must
     * hold every matching record: a line that cannot be loaded for want of
     * memory must not be skipped as if it were damaged. */
    tu_fixture fx;
    long n;
    ssp_audit_filter f;
    int short_answers = 0;

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (int i = 0; i < 5; i++)
        deny_login(fx.engine, "@zoe:school.example");
    memset(&f, 0, sizeof f);
    f.limit = 5;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *text = NULL;
        int rc;
        json_t *result;

        arm(n);
        rc = ssp_audit_query(fx.engine, &f, &text, &fx.err);
        disarm();
        result = rc == 0 ? json_loads(text, 0, NULL) : NULL;
        if (result != NULL && json_array_size(json_object_get(result, "records")) != 5) {
            if (short_answers == 0)
                CHECK_FAIL("N=%ld: the query succeeded with %zu of 5 records", n,
                           json_array_size(json_object_get(result, "records")));
            short_answers++;
        }
        json_decref(result);
        free(text);
        if (chaos_hit == HIT_NONE)
            break;
    }
    CHECK_INT_EQ(short_answers, 0);
out:
    tu_teardown(&fx);
}

void run_chaos_audit_tests(void)
{
    RUN(chaos_decision_does_not_change_when_the_audit_record_cannot_be_allocated);
    RUN(chaos_audit_action_fails_cleanly_at_every_allocation);
    RUN(chaos_flood_counts_every_denial_when_a_summary_cannot_be_allocated);
    RUN(chaos_audit_query_fails_cleanly_at_every_allocation);
    RUN(chaos_audit_query_never_drops_records_when_memory_runs_out);
    RUN(chaos_audit_view_fails_cleanly_at_every_allocation);
}
