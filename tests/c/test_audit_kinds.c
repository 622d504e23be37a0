/* The audit record's kinds: a flood's summaries, the module's own actions, and the kind filter. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_fixture.h"
#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void audit_single_denial_is_stored_without_the_summary_and_action_keys(void)
{
    tu_fixture fx;
    char *path = NULL, *text = NULL;
    json_t *line = NULL;

    if (!audit_fx_setup(&fx))
        goto out;
    audit_fx_deny_login(&fx, ZOE);
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
    ssp_audit_filter f = audit_fx_filter_all();
    ssp_audit_record summary = {0};
    json_t *result = NULL, *rec;
    int64_t id;

    if (!audit_fx_setup(&fx))
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
    result = audit_fx_query(&fx, &f);
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
    ssp_audit_filter f = audit_fx_filter_all();
    json_t *rows = NULL;
    int64_t now = ssp_now_ms();

    if (!audit_fx_setup(&fx))
        goto out;
    audit_fx_deny_event(&fx, ANNA, "gym-sued");
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
    ssp_audit_filter f = audit_fx_filter_all();
    ssp_audit_action_record action = {0};
    json_t *result = NULL, *rec;
    int64_t id;

    if (!audit_fx_setup(&fx))
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
    result = audit_fx_query(&fx, &f);
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

    if (!audit_fx_setup(&fx))
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
    ssp_audit_filter f = audit_fx_filter_all();
    ssp_audit_action_record action = {.action = "member_added", .target = ANNA,
                                      .school = "gym-sued"};

    if (!audit_fx_setup(&fx))
        goto out;
    audit_fx_deny_login(&fx, ZOE);                                      /* 1 */
    REQUIRE(ssp_audit_action(fx.engine, &action, &fx.err) > 0); /* 2 */
    audit_fx_deny_event(&fx, ANNA, "gym-sued");                         /* 3 */
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
    f = audit_fx_filter_all();
    f.rule = "room_school_not_enabled";
    CHECK_IDS(&fx, &f, "3");
out:
    tu_teardown(&fx);
}

void run_audit_kinds_tests(void)
{
    RUN(audit_single_denial_is_stored_without_the_summary_and_action_keys);
    RUN(audit_summary_record_keeps_its_count_and_time_span);
    RUN(audit_chart_counts_the_denials_a_summary_stands_for);
    RUN(audit_action_record_holds_what_the_module_did);
    RUN(audit_action_refuses_a_bad_field_by_name);
    RUN(audit_action_before_open_is_refused);
    RUN(audit_query_filters_by_kind);
}
