/* Audit records and queries through the public API (audit.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_fixture.h"
#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void audit_query_of_an_empty_log_has_no_records_and_no_next(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    char *text = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_OK(ssp_audit_query(fx.engine, &f, &text, &fx.err), fx.err);
    CHECK_STR_EQ(text, "{\"records\":[],\"next\":null}");
out:
    free(text);
    tu_teardown(&fx);
}

static void audit_record_holds_every_field_of_the_denial(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    json_t *result = NULL, *rec;
    int64_t before, after;

    if (!audit_fx_setup(&fx))
        goto out;
    before = ssp_now_ms();
    audit_fx_deny_event(&fx, ANNA, "gym-sued");
    audit_fx_deny_invite(&fx, ANNA, ZOE);
    after = ssp_now_ms();
    result = audit_fx_query(&fx, &f);
    REQUIRE(result != NULL);
    REQUIRE_INT_EQ(json_array_size(json_object_get(result, "records")), 2);
    CHECK(json_is_null(json_object_get(result, "next")));

    rec = json_array_get(json_object_get(result, "records"), 1); /* the older one */
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "id")), 1);
    CHECK(json_integer_value(json_object_get(rec, "ts")) >= before);
    CHECK(json_integer_value(json_object_get(rec, "ts")) <= after);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "rule")), "room_school_not_enabled");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "callback")), "check_event_for_spam");
    CHECK(json_is_true(json_object_get(rec, "enforced")));
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "actor")), ANNA);
    CHECK(json_is_null(json_object_get(rec, "target")));
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "room_id")), "!frozen:school.example");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "event_type")), "m.room.message");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "school")), "gym-sued");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "worker")), TU_WORKER);
    /* a single denial: kind and count as the queries complete them */
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "kind")), "denial");
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "count")), 1);
    CHECK(json_object_get(rec, "last_ts") == NULL);
    CHECK(json_object_get(rec, "action") == NULL);
    CHECK_INT_EQ(json_object_size(rec), 13);

    rec = json_array_get(json_object_get(result, "records"), 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "id")), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "rule")), "not_on_roster");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "callback")), "user_may_invite");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "target")), ZOE);
    CHECK(json_is_null(json_object_get(rec, "school")));
    CHECK(json_is_null(json_object_get(rec, "event_type")));
out:
    json_decref(result);
    tu_teardown(&fx);
}

static void audit_report_only_denials_are_recorded_as_not_enforced(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    json_t *result = NULL, *rec;

    if (!audit_fx_setup(&fx))
        goto out;
    audit_fx_deny_login(&fx, DORA);
    result = audit_fx_query(&fx, &f);
    REQUIRE(result != NULL);
    rec = json_array_get(json_object_get(result, "records"), 0);
    CHECK(json_is_false(json_object_get(rec, "enforced")));
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "school")), "rs-ost");
out:
    json_decref(result);
    tu_teardown(&fx);
}

/* Records 1..8:
 * 1 login ben (school_not_enabled, gym-sued)   5 login zoe (not_on_roster)
 * 2 login zoe (not_on_roster)                  6 invite anna -> ben (school_not_enabled, gym-sued)
 * 3 event anna in gym-sued room (room_...)     7 event remote in rs-ost room (room_..., rs-ost)
 * 4 login dora (school_not_enabled, rs-ost)    8 invite anna -> zoe (not_on_roster) */
static bool make_records(tu_fixture *fx)
{
    if (!audit_fx_setup(fx))
        return false;
    audit_fx_deny_login(fx, BEN);
    audit_fx_deny_login(fx, ZOE);
    audit_fx_deny_event(fx, ANNA, "gym-sued");
    audit_fx_deny_login(fx, DORA);
    audit_fx_deny_login(fx, ZOE);
    audit_fx_deny_invite(fx, ANNA, BEN);
    audit_fx_deny_event(fx, REMOTE, "rs-ost");
    audit_fx_deny_invite(fx, ANNA, ZOE);
    return true;
}

static void audit_query_returns_newest_first(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();

    if (!make_records(&fx))
        goto out;
    CHECK_IDS(&fx, &f, "8,7,6,5,4,3,2,1");
out:
    tu_teardown(&fx);
}

static void audit_query_filters_by_rule(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();

    if (!make_records(&fx))
        goto out;
    f.rule = "not_on_roster";
    CHECK_IDS(&fx, &f, "8,5,2");
    f.rule = "room_school_not_enabled";
    CHECK_IDS(&fx, &f, "7,3");
    f.rule = "one_way";
    CHECK_IDS(&fx, &f, "");
out:
    tu_teardown(&fx);
}

static void audit_query_filters_by_school(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();

    if (!make_records(&fx))
        goto out;
    f.school = "gym-sued";
    CHECK_IDS(&fx, &f, "6,3,1");
    f.school = "rs-ost";
    CHECK_IDS(&fx, &f, "7,4");
    f.school = "gym-nord";
    CHECK_IDS(&fx, &f, "");
    f.school = "rs-ost";
    f.rule = "school_not_enabled";
    CHECK_IDS(&fx, &f, "4");
out:
    tu_teardown(&fx);
}

static void audit_query_user_filter_matches_actor_or_target(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();

    if (!make_records(&fx))
        goto out;
    f.user = BEN;
    CHECK_IDS(&fx, &f, "6,1");
    f.user = ZOE;
    CHECK_IDS(&fx, &f, "8,5,2");
    f.user = ANNA;
    CHECK_IDS(&fx, &f, "8,6,3");
    f.user = REMOTE;
    CHECK_IDS(&fx, &f, "7");
    f.user = "@nobody:school.example";
    CHECK_IDS(&fx, &f, "");
out:
    tu_teardown(&fx);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&t, NULL);
}

static void audit_query_filters_by_time_since_inclusive_until_exclusive(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    int64_t t0, t1, t2;
    json_t *result = NULL;
    int64_t ts2;

    if (!audit_fx_setup(&fx))
        goto out;
    t0 = ssp_now_ms();
    audit_fx_deny_login(&fx, BEN);
    sleep_ms(20);
    t1 = ssp_now_ms();
    sleep_ms(5);
    audit_fx_deny_login(&fx, ZOE);
    sleep_ms(20);
    t2 = ssp_now_ms();
    sleep_ms(5);
    audit_fx_deny_login(&fx, DORA);

    f.since_ms = t1;
    CHECK_IDS(&fx, &f, "3,2");
    f.until_ms = t2;
    CHECK_IDS(&fx, &f, "2");
    f.since_ms = 0;
    CHECK_IDS(&fx, &f, "2,1");
    f.until_ms = t0;
    CHECK_IDS(&fx, &f, "");
    f.until_ms = 0;
    f.since_ms = ssp_now_ms() + 60000;
    CHECK_IDS(&fx, &f, "");

    /* the bounds are exact: since == ts includes the record, until == ts excludes it */
    f = audit_fx_filter_all();
    f.rule = "not_on_roster";
    result = audit_fx_query(&fx, &f);
    REQUIRE(result != NULL);
    ts2 = json_integer_value(json_object_get(json_array_get(json_object_get(result, "records"), 0), "ts"));
    f = audit_fx_filter_all();
    f.since_ms = ts2;
    f.until_ms = ts2 + 1;
    CHECK_IDS(&fx, &f, "2");
    f.until_ms = ts2;
    f.since_ms = 0;
    CHECK_IDS(&fx, &f, "1");
out:
    json_decref(result);
    tu_teardown(&fx);
}

static void audit_query_pages_with_limit_and_the_next_token(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    json_t *result = NULL;
    const char *next;

    if (!make_records(&fx))
        goto out;
    f.limit = 3;
    CHECK_IDS(&fx, &f, "8,7,6 next=6");
    result = audit_fx_query(&fx, &f);
    REQUIRE(result != NULL);
    next = json_string_value(json_object_get(result, "next"));
    REQUIRE(next != NULL);
    f.before_id = strtoll(next, NULL, 10);
    CHECK_IDS(&fx, &f, "5,4,3 next=3");
    f.before_id = 3;
    CHECK_IDS(&fx, &f, "2,1");
    f.before_id = 1;
    CHECK_IDS(&fx, &f, "");
    /* exactly `limit` matches left: no next page */
    f.before_id = 4;
    CHECK_IDS(&fx, &f, "3,2,1");
    /* with a filter, pages hold matches only */
    f.before_id = 0;
    f.limit = 2;
    f.rule = "not_on_roster";
    CHECK_IDS(&fx, &f, "8,5 next=5");
    f.before_id = 5;
    CHECK_IDS(&fx, &f, "2");
    f.limit = 1;
    f.rule = NULL;
    f.before_id = 0;
    CHECK_IDS(&fx, &f, "8 next=8");
out:
    json_decref(result);
    tu_teardown(&fx);
}

static void audit_query_limit_must_be_1_to_1000(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    char *text = (char *)"x";

    if (!tu_setup(&fx, NULL))
        goto out;
    f.limit = 0;
    CHECK_INT_EQ(ssp_audit_query(fx.engine, &f, &text, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "limit: expected an integer from 1 to 1000");
    CHECK(text == NULL);
    f.limit = 1001;
    CHECK_INT_EQ(ssp_audit_query(fx.engine, &f, &text, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    f.limit = 1000;
    CHECK_OK(ssp_audit_query(fx.engine, &f, &text, &fx.err), fx.err);
    free(text);
out:
    tu_teardown(&fx);
}

static void audit_query_before_open_is_refused(void)
{
    char *config = tu_config("/nonexistent/ssp", NULL);
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(config, strlen(config), TU_SERVER, TU_WORKER, &err);
    ssp_audit_filter f = audit_fx_filter_all();
    char *text = (char *)"x";

    REQUIRE(engine != NULL);
    CHECK_INT_EQ(ssp_audit_query(engine, &f, &text, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK(text == NULL);
    ssp_engine_free(engine);
    free(config);
}

static void audit_flush_writes_every_queued_record(void)
{
    tu_fixture fx;
    ssp_audit_stats stats;
    char *path = NULL;

    if (!audit_fx_setup(&fx))
        goto out;
    for (int i = 0; i < 50; i++)
        audit_fx_deny_login(&fx, ZOE);
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.queued, 50);
    CHECK_INT_EQ(stats.written, 50);
    CHECK_INT_EQ(stats.queue_depth, 0);
    CHECK_INT_EQ(stats.write_errors, 0);
    path = tu_path(fx.dir, "audit.jsonl");
    CHECK_INT_EQ(tu_count_lines(path), 50);
out:
    free(path);
    tu_teardown(&fx);
}

static void audit_query_keeps_the_newest_records_past_the_limit(void)
{
    tu_fixture fx;
    ssp_audit_filter f = audit_fx_filter_all();
    json_t *result = NULL, *records;

    if (!audit_fx_setup(&fx))
        goto out;
    for (int i = 0; i < 1500; i++)
        audit_fx_deny_login(&fx, i % 2 ? ZOE : BEN);
    result = audit_fx_query(&fx, &f);
    REQUIRE(result != NULL);
    records = json_object_get(result, "records");
    REQUIRE_INT_EQ(json_array_size(records), 1000);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records, 0), "id")), 1500);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(records, 999), "id")), 501);
    CHECK_STR_EQ(json_string_value(json_object_get(result, "next")), "501");
out:
    json_decref(result);
    tu_teardown(&fx);
}

void run_audit_tests(void)
{
    RUN(audit_query_of_an_empty_log_has_no_records_and_no_next);
    RUN(audit_record_holds_every_field_of_the_denial);
    RUN(audit_report_only_denials_are_recorded_as_not_enforced);
    RUN(audit_query_returns_newest_first);
    RUN(audit_query_filters_by_rule);
    RUN(audit_query_filters_by_school);
    RUN(audit_query_user_filter_matches_actor_or_target);
    RUN(audit_query_filters_by_time_since_inclusive_until_exclusive);
    RUN(audit_query_pages_with_limit_and_the_next_token);
    RUN(audit_query_limit_must_be_1_to_1000);
    RUN(audit_query_before_open_is_refused);
    RUN(audit_flush_writes_every_queued_record);
    RUN(audit_query_keeps_the_newest_records_past_the_limit);
}
