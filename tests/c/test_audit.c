/* Audit records and queries through the public API (audit.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define ANNA "@anna:school.example" /* gym-nord (enabled) */
#define BEN "@ben:school.example"   /* gym-sued (disabled) */
#define DORA "@dora:school.example" /* rs-ost (disabled, report-only) */
#define ZOE "@zoe:school.example"   /* not on the roster */
#define REMOTE "@rita:remote.example"

static bool setup(tu_fixture *fx)
{
    static const char body[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@dora:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": "
        "\"student\"}]}]}";
    size_t upserted;

    /* The queries page through many records of the same denial: each its
     * own record, past the flood limit (audit_flood.c has its own tests). */
    if (!tu_setup(fx, "\"schools\": {\"gym-nord\": {\"messenger\": true}, \"gym-sued\": {},"
                      " \"rs-ost\": {\"enforce\": false}}, " UNLIMITED_FLOOD))
        return false;
    if (ssp_roster_upsert_batch(fx->engine, body, strlen(body), &upserted, &fx->err) != 0) {
        CHECK_FAIL("cannot load the roster: %s", fx->err.message);
        return false;
    }
    return true;
}

static void deny_login(tu_fixture *fx, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("login of %s was not denied", actor);
}

static void deny_invite(tu_fixture *fx, const char *actor, const char *target)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_USER_MAY_INVITE;
    req.actor = actor;
    req.target = target;
    req.room_id = "!invite:school.example";
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("invite of %s by %s was not denied", target, actor);
}

static void deny_event(tu_fixture *fx, const char *actor, const char *school)
{
    ssp_request req;
    ssp_decision d;
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    /* sent by the module's own user, which the rules trust like a service user */
    p.sender = p.creator = "@school-policy:school.example";
    p.school = school;
    p.school_len = strlen(school);
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_EVENT_FOR_SPAM;
    req.actor = actor;
    req.room_id = "!frozen:school.example";
    req.event_type = "m.room.message";
    req.room_managed = SSP_FACT_YES;
    req.room = &p;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("event by %s in a room of %s was not denied", actor, school);
}

static ssp_audit_filter filter_all(void)
{
    ssp_audit_filter f;

    memset(&f, 0, sizeof f);
    f.limit = 1000;
    return f;
}

/* Runs a query; returns the parsed result or NULL after reporting. */
static json_t *query(tu_fixture *fx, const ssp_audit_filter *f)
{
    char *text = NULL;
    json_t *result;

    if (ssp_audit_query(fx->engine, f, &text, &fx->err) != 0) {
        CHECK_FAIL("ssp_audit_query failed: [%d] %s", (int)fx->err.code, fx->err.message);
        return NULL;
    }
    result = tu_json(text);
    free(text);
    return result;
}

/* The ids of the records, newest first, as "5,4,3", and the next token. */
static char *ids_of(json_t *result)
{
    json_t *records = json_object_get(result, "records"), *rec, *next;
    size_t i;
    char *out = tu_format("%s", "");

    json_array_foreach(records, i, rec) {
        char *grown = tu_format("%s%s%lld", out, i ? "," : "",
                                (long long)json_integer_value(json_object_get(rec, "id")));

        free(out);
        out = grown;
    }
    next = json_object_get(result, "next");
    if (json_is_string(next)) {
        char *grown = tu_format("%s next=%s", out, json_string_value(next));

        free(out);
        out = grown;
    } else if (!json_is_null(next)) {
        char *grown = tu_format("%s next=INVALID", out);

        free(out);
        out = grown;
    }
    return out;
}

static char *query_ids(tu_fixture *fx, const ssp_audit_filter *f)
{
    json_t *result = query(fx, f);
    char *ids;

    if (result == NULL)
        return tu_format("(query failed)");
    ids = ids_of(result);
    json_decref(result);
    return ids;
}

#define CHECK_IDS(fx, f, expected)                                                                 \
    do {                                                                                           \
        char *check_ids_ = query_ids((fx), (f));                                                   \
        CHECK_STR_EQ(check_ids_, (expected));                                                      \
        free(check_ids_);                                                                          \
    } while (0)

static void audit_query_of_an_empty_log_has_no_records_and_no_next(void)
{
    tu_fixture fx;
    ssp_audit_filter f = filter_all();
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
    ssp_audit_filter f = filter_all();
    json_t *result = NULL, *rec;
    int64_t before, after;

    if (!setup(&fx))
        goto out;
    before = ssp_now_ms();
    deny_event(&fx, ANNA, "gym-sued");
    deny_invite(&fx, ANNA, ZOE);
    after = ssp_now_ms();
    result = query(&fx, &f);
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
    ssp_audit_filter f = filter_all();
    json_t *result = NULL, *rec;

    if (!setup(&fx))
        goto out;
    deny_login(&fx, DORA);
    result = query(&fx, &f);
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
    if (!setup(fx))
        return false;
    deny_login(fx, BEN);
    deny_login(fx, ZOE);
    deny_event(fx, ANNA, "gym-sued");
    deny_login(fx, DORA);
    deny_login(fx, ZOE);
    deny_invite(fx, ANNA, BEN);
    deny_event(fx, REMOTE, "rs-ost");
    deny_invite(fx, ANNA, ZOE);
    return true;
}

static void audit_query_returns_newest_first(void)
{
    tu_fixture fx;
    ssp_audit_filter f = filter_all();

    if (!make_records(&fx))
        goto out;
    CHECK_IDS(&fx, &f, "8,7,6,5,4,3,2,1");
out:
    tu_teardown(&fx);
}

static void audit_query_filters_by_rule(void)
{
    tu_fixture fx;
    ssp_audit_filter f = filter_all();

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
    ssp_audit_filter f = filter_all();

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
    ssp_audit_filter f = filter_all();

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
    ssp_audit_filter f = filter_all();
    int64_t t0, t1, t2;
    json_t *result = NULL;
    int64_t ts2;

    if (!setup(&fx))
        goto out;
    t0 = ssp_now_ms();
    deny_login(&fx, BEN);
    sleep_ms(20);
    t1 = ssp_now_ms();
    sleep_ms(5);
    deny_login(&fx, ZOE);
    sleep_ms(20);
    t2 = ssp_now_ms();
    sleep_ms(5);
    deny_login(&fx, DORA);

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
    f = filter_all();
    f.rule = "not_on_roster";
    result = query(&fx, &f);
    REQUIRE(result != NULL);
    ts2 = json_integer_value(json_object_get(json_array_get(json_object_get(result, "records"), 0), "ts"));
    f = filter_all();
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
    ssp_audit_filter f = filter_all();
    json_t *result = NULL;
    const char *next;

    if (!make_records(&fx))
        goto out;
    f.limit = 3;
    CHECK_IDS(&fx, &f, "8,7,6 next=6");
    result = query(&fx, &f);
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
    ssp_audit_filter f = filter_all();
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
    ssp_audit_filter f = filter_all();
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

    if (!setup(&fx))
        goto out;
    for (int i = 0; i < 50; i++)
        deny_login(&fx, ZOE);
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
    ssp_audit_filter f = filter_all();
    json_t *result = NULL, *records;

    if (!setup(&fx))
        goto out;
    for (int i = 0; i < 1500; i++)
        deny_login(&fx, i % 2 ? ZOE : BEN);
    result = query(&fx, &f);
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

/* ---- the record's kinds: summaries of a flood, the module's actions ---- */

static void audit_single_denial_is_stored_without_the_summary_and_action_keys(void)
{
    tu_fixture fx;
    char *path = NULL, *text = NULL;
    json_t *line = NULL;

    if (!setup(&fx))
        goto out;
    deny_login(&fx, ZOE);
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    path = tu_path(fx.dir, "audit.jsonl");
    text = tu_read_file(path, NULL);
    REQUIRE(text != NULL);
    line = tu_json(text);
    REQUIRE(line != NULL);
    /* audit.jsonl keeps today's lines: the new keys are optional */
    CHECK(json_object_get(line, "kind") == NULL);
    CHECK(json_object_get(line, "count") == NULL);
    CHECK(json_object_get(line, "last_ts") == NULL);
    CHECK_INT_EQ(json_object_size(line), 11);
out:
    json_decref(line);
    free(text);
    free(path);
    tu_teardown(&fx);
}

static void audit_summary_record_keeps_its_count_and_time_span(void)
{
    tu_fixture fx;
    ssp_audit_filter f = filter_all();
    ssp_audit_record summary = {0};
    json_t *result = NULL, *rec;
    int64_t id;

    if (!setup(&fx))
        goto out;
    summary.ts = 1764000000000;
    summary.last_ts = 1764000009500;
    summary.count = 250;
    summary.rule = SSP_RULE_ONE_WAY;
    summary.callback = SSP_CB_CHECK_EVENT_FOR_SPAM;
    summary.enforced = true;
    summary.actor = ANNA;
    summary.room_id = "!course:school.example";
    summary.event_type = "m.room.message";
    summary.school = "gym-nord";
    id = ssp_audit_submit_record(&fx.engine->audit, &summary);
    REQUIRE(id > 0);
    result = query(&fx, &f);
    REQUIRE(result != NULL);
    rec = json_array_get(json_object_get(result, "records"), 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "id")), id);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "kind")), "denial");
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "count")), 250);
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "ts")), 1764000000000);
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "last_ts")), 1764000009500);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "rule")), "one_way");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "actor")), ANNA);
out:
    json_decref(result);
    tu_teardown(&fx);
}

static void audit_chart_counts_the_denials_a_summary_stands_for(void)
{
    tu_fixture fx;
    ssp_audit_record summary = {0};
    ssp_audit_filter f = filter_all();
    json_t *rows = NULL;
    int64_t now = ssp_now_ms();

    if (!setup(&fx))
        goto out;
    deny_event(&fx, ANNA, "gym-sued");
    summary.count = 40;
    summary.last_ts = now + 5000;
    summary.rule = SSP_RULE_ROOM_SCHOOL_NOT_ENABLED;
    summary.callback = SSP_CB_CHECK_EVENT_FOR_SPAM;
    summary.enforced = true;
    summary.actor = ANNA;
    summary.school = "gym-sued";
    REQUIRE(ssp_audit_submit_record(&fx.engine->audit, &summary) > 0);
    REQUIRE(ssp_audit_action(fx.engine, &(ssp_audit_action_record){.action = "room_created",
                                                                    .school = "gym-sued"},
                             &fx.err) > 0);
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    f.since_ms = now - 3600000;
    f.until_ms = now + 3600000;
    CHECK_OK(ssp_store_audit_chart(fx.engine->store, &f, 7200000, &rows, &fx.err), fx.err);
    /* one row: the single denial and the summary's 40; the action has no rule */
    REQUIRE_INT_EQ(json_array_size(rows), 1);
    CHECK_STR_EQ(json_string_value(json_array_get(json_array_get(rows, 0), 1)),
                 "room_school_not_enabled");
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 2)), 41);
out:
    json_decref(rows);
    tu_teardown(&fx);
}

static void audit_action_record_holds_what_the_module_did(void)
{
    tu_fixture fx;
    ssp_audit_filter f = filter_all();
    ssp_audit_action_record action = {0};
    json_t *result = NULL, *rec;
    int64_t id;

    if (!setup(&fx))
        goto out;
    action.action = "member_removed";
    action.target = ANNA;
    action.room_id = "!mathe:school.example";
    action.group = "course-5f0c7a3f";
    action.school = "gym-nord";
    action.reason = "not listed in version 18";
    id = ssp_audit_action(fx.engine, &action, &fx.err);
    CHECK(id > 0);
    CHECK(ssp_decision_wait_durable(fx.engine, id, 5000));
    result = query(&fx, &f);
    REQUIRE(result != NULL);
    rec = json_array_get(json_object_get(result, "records"), 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "id")), id);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "kind")), "action");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "action")), "member_removed");
    /* the module's own user acted, as no actor was named */
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "actor")), "@school-policy:school.example");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "target")), ANNA);
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "room_id")), "!mathe:school.example");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "group")), "course-5f0c7a3f");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "school")), "gym-nord");
    CHECK_STR_EQ(json_string_value(json_object_get(rec, "reason")), "not listed in version 18");
    CHECK_INT_EQ(json_integer_value(json_object_get(rec, "count")), 1);
    CHECK(json_is_null(json_object_get(rec, "event_type")));
    /* a denial's keys are not an action's */
    CHECK(json_object_get(rec, "rule") == NULL);
    CHECK(json_object_get(rec, "callback") == NULL);
    CHECK(json_object_get(rec, "enforced") == NULL);
out:
    json_decref(result);
    tu_teardown(&fx);
}

static void audit_action_refuses_a_bad_field_by_name(void)
{
    static const struct {
        ssp_audit_action_record action;
        const char *message;
    } cases[] = {
        {{.action = NULL}, "action: expected a short id"},
        {{.action = ""}, "action: expected a short id"},
        {{.action = "Member_removed"}, "action: expected a short id"},
        {{.action = "member removed"}, "action: expected a short id"},
        {{.action = "1st"}, "action: expected a short id"},
        {{.action = "member_removed", .actor = "pupil"}, "actor: expected a Matrix user id"},
        {{.action = "member_removed", .target = "@x"}, "target: expected a Matrix user id"},
        {{.action = "member_removed", .group = ""}, "group: expected 1 to 255 bytes"},
        {{.action = "member_removed", .room_id = ""}, "room_id: expected 1 to 255 bytes"},
        {{.action = "member_removed", .school = ""}, "school: expected 1 to 255 bytes"},
    };
    tu_fixture fx;
    ssp_audit_action_record long_reason = {.action = "member_removed"};
    char reason[SSP_AUDIT_REASON_MAX + 2];
    char action_id[SSP_AUDIT_ACTION_MAX + 2];

    if (!setup(&fx))
        goto out;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT_EQ(ssp_audit_action(fx.engine, &cases[i].action, &fx.err), -1);
        CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
        CHECK_CONTAINS(fx.err.message, cases[i].message);
    }
    memset(reason, 'x', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    long_reason.reason = reason;
    CHECK_INT_EQ(ssp_audit_action(fx.engine, &long_reason, &fx.err), -1);
    CHECK_CONTAINS(fx.err.message, "reason: expected 1 to 512 bytes");
    reason[SSP_AUDIT_REASON_MAX] = '\0';
    CHECK(ssp_audit_action(fx.engine, &long_reason, &fx.err) > 0);
    memset(action_id, 'a', sizeof action_id - 1);
    action_id[sizeof action_id - 1] = '\0';
    long_reason.action = action_id;
    long_reason.reason = NULL;
    CHECK_INT_EQ(ssp_audit_action(fx.engine, &long_reason, &fx.err), -1);
    action_id[SSP_AUDIT_ACTION_MAX] = '\0';
    CHECK(ssp_audit_action(fx.engine, &long_reason, &fx.err) > 0);
out:
    tu_teardown(&fx);
}

static void audit_action_before_open_is_refused(void)
{
    char *config = tu_config("/nonexistent/ssp", NULL);
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(config, strlen(config), TU_SERVER, TU_WORKER, &err);
    ssp_audit_action_record action = {.action = "room_created"};

    REQUIRE(engine != NULL);
    CHECK_INT_EQ(ssp_audit_action(engine, &action, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    ssp_engine_free(engine);
    free(config);
}

static void audit_query_filters_by_kind(void)
{
    tu_fixture fx;
    ssp_audit_filter f = filter_all();
    ssp_audit_action_record action = {.action = "member_added", .target = ANNA,
                                      .school = "gym-sued"};

    if (!setup(&fx))
        goto out;
    deny_login(&fx, ZOE);                                      /* 1 */
    REQUIRE(ssp_audit_action(fx.engine, &action, &fx.err) > 0); /* 2 */
    deny_event(&fx, ANNA, "gym-sued");                         /* 3 */
    REQUIRE(ssp_audit_action(fx.engine, &action, &fx.err) > 0); /* 4 */
    CHECK_IDS(&fx, &f, "4,3,2,1");
    f.kinds = SSP_AUDIT_ONLY_ACTIONS;
    CHECK_IDS(&fx, &f, "4,2");
    f.kinds = SSP_AUDIT_ONLY_DENIALS;
    CHECK_IDS(&fx, &f, "3,1");
    /* the other filters apply to actions too; a rule is a denial's */
    f.kinds = SSP_AUDIT_ANY_KIND;
    f.user = ANNA;
    CHECK_IDS(&fx, &f, "4,3,2");
    f.school = "gym-sued";
    f.kinds = SSP_AUDIT_ONLY_ACTIONS;
    f.limit = 1;
    CHECK_IDS(&fx, &f, "4 next=4");
    f = filter_all();
    f.rule = "room_school_not_enabled";
    CHECK_IDS(&fx, &f, "3");
out:
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
    RUN(audit_single_denial_is_stored_without_the_summary_and_action_keys);
    RUN(audit_summary_record_keeps_its_count_and_time_span);
    RUN(audit_chart_counts_the_denials_a_summary_stands_for);
    RUN(audit_action_record_holds_what_the_module_did);
    RUN(audit_action_refuses_a_bad_field_by_name);
    RUN(audit_action_before_open_is_refused);
    RUN(audit_query_filters_by_kind);
}
