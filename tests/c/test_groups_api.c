/* The engine's group API (groups.c), the {"users", "groups"} batch
 * (roster.c) and the groups in the embedded store (embedded/groups_file.c):
 * the version rule, delete, list, of_user, the plan, restarts. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define SCHOOLS                                                                                    \
    "\"schools\": {\"gym-nord\": {\"messenger\": true}, \"rs-ost\": {\"messenger\": true},"        \
    " \"gs-west\": {\"messenger\": false}}"
#define ALI "@ali:school.example"
#define BERG "@berg:school.example"
#define CEM "@cem:school.example"
#define DORA "@dora:school.example"

static const char *const USERS =
    "{\"users\": ["
    "{\"user_id\": \"" ALI "\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
    "{\"user_id\": \"" BERG "\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
    "{\"user_id\": \"" CEM "\", \"schools\": [{\"school\": \"gs-west\", \"role\": \"student\"}]}]}";

/* A course of gym-nord: Berg moderates; Ali, Cem (school not opted in) and
 * Dora (on no roster) are listed. */
static char *course(const char *id, int version, const char *extra)
{
    return tu_format("{\"group\": \"%s\", \"school\": \"gym-nord\", \"kind\": \"course\","
                     " \"name\": \"Mathe 7b\", \"version\": %d%s, \"members\": ["
                     "{\"user_id\": \"" BERG "\", \"role\": \"moderator\"},"
                     "{\"user_id\": \"" ALI "\", \"role\": \"member\"},"
                     "{\"user_id\": \"" CEM "\", \"role\": \"member\"},"
                     "{\"user_id\": \"" DORA "\", \"role\": \"member\"}]}",
                     id, version, extra);
}

static json_t *put(tu_fixture *fx, const char *id, const char *body)
{
    char *out = NULL;
    json_t *json;

    if (ssp_group_put(fx->engine, id, body, strlen(body), &out, &fx->err) != 0) {
        CHECK_FAIL("ssp_group_put(%s) failed: %s", id, fx->err.message);
        return NULL;
    }
    json = tu_json(out);
    free(out);
    return json;
}

static json_t *get(tu_fixture *fx, const char *id)
{
    char *out = NULL;
    json_t *json;

    if (ssp_group_get(fx->engine, id, &out, &fx->err) != 0) {
        CHECK_FAIL("ssp_group_get(%s) failed: %s", id, fx->err.message);
        return NULL;
    }
    if (out == NULL)
        return NULL;
    json = tu_json(out);
    free(out);
    return json;
}

static int64_t int_of(json_t *json, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(json, key));
}

static bool setup(tu_fixture *fx)
{
    size_t upserted;

    if (!tu_setup(fx, SCHOOLS))
        return false;
    if (ssp_roster_upsert_batch(fx->engine, USERS, strlen(USERS), &upserted, &fx->err) != 0) {
        CHECK_FAIL("roster: %s", fx->err.message);
        return false;
    }
    return true;
}

static void group_put_stores_it_and_get_returns_it_with_no_room_yet(void)
{
    tu_fixture fx;
    char *body = course("course-1", 3, "");
    json_t *stored, *got;

    REQUIRE(setup(&fx));
    stored = put(&fx, "course-1", body);
    REQUIRE(stored != NULL);
    CHECK(json_object_get(stored, "ignored") == NULL);
    CHECK_INT_EQ(int_of(stored, "version"), 3);
    got = get(&fx, "course-1");
    REQUIRE(got != NULL);
    CHECK(json_is_null(json_object_get(got, "room_id")));
    CHECK_INT_EQ(json_array_size(json_object_get(got, "members")), 4);
    CHECK(get(&fx, "course-2") == NULL);
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 1);
    json_decref(stored);
    json_decref(got);
    free(body);
    tu_teardown(&fx);
}

static void stale_version_is_ignored_and_reported(void)
{
    tu_fixture fx;
    char *v5 = course("course-1", 5, ", \"topic\": \"five\""), *v4 = course("course-1", 4, "");
    char *v5_again = course("course-1", 5, ", \"topic\": \"again\"");
    json_t *a, *b, *c;

    REQUIRE(setup(&fx));
    a = put(&fx, "course-1", v5);
    b = put(&fx, "course-1", v4);
    c = put(&fx, "course-1", v5_again);
    REQUIRE(a && b && c);
    CHECK(json_is_true(json_object_get(b, "ignored")));
    CHECK_INT_EQ(int_of(b, "version"), 5);
    CHECK_STR_EQ(json_string_value(json_object_get(b, "topic")), "five");
    /* not higher: equal is stale too */
    CHECK(json_is_true(json_object_get(c, "ignored")));
    CHECK_STR_EQ(json_string_value(json_object_get(c, "topic")), "five");
    json_decref(a);
    json_decref(b);
    json_decref(c);
    free(v5);
    free(v4);
    free(v5_again);
    tu_teardown(&fx);
}

static void unversioned_snapshot_applies_and_keeps_the_stored_version(void)
{
    tu_fixture fx;
    char *v7 = course("course-1", 7, "");
    const char *plain = "{\"school\": \"gym-nord\", \"kind\": \"course\", \"name\": \"Neu\","
                        " \"members\": []}";
    json_t *a, *b;

    REQUIRE(setup(&fx));
    a = put(&fx, "course-1", v7);
    b = put(&fx, "course-1", plain);
    REQUIRE(a && b);
    CHECK(json_object_get(b, "ignored") == NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(b, "name")), "Neu");
    CHECK_INT_EQ(int_of(b, "version"), 7);
    json_decref(a);
    json_decref(b);
    free(v7);
    tu_teardown(&fx);
}

static void group_of_an_unconfigured_school_is_refused_naming_the_path(void)
{
    tu_fixture fx;
    const char *body = "{\"school\": \"nowhere\", \"kind\": \"team\", \"name\": \"T\","
                       " \"members\": []}";
    const char *batch = "{\"groups\": [{\"group\": \"a\", \"school\": \"gym-nord\", \"kind\":"
                        " \"team\", \"name\": \"A\", \"members\": []}, {\"group\": \"b\", \"school\":"
                        " \"nowhere\", \"kind\": \"team\", \"name\": \"B\", \"members\": []}]}";
    char *out = NULL;
    size_t upserted = 9, groups = 9;

    REQUIRE(setup(&fx));
    CHECK_INT_EQ(ssp_group_put(fx.engine, "t", body, strlen(body), &out, &fx.err), -1);
    CHECK(out == NULL);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "school: nowhere is not a school of the config (schools:)");
    CHECK_INT_EQ(ssp_roster_upsert_groups(fx.engine, batch, strlen(batch), &upserted, &groups,
                                          &fx.err),
                 -1);
    CHECK_STR_EQ(fx.err.message,
                 "groups[1].school: nowhere is not a school of the config (schools:)");
    /* nothing of the batch was written */
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 0);
    tu_teardown(&fx);
}

static void batch_takes_users_and_groups_and_counts_both(void)
{
    tu_fixture fx;
    char *g1 = course("course-1", 2, ""), *g2 = course("course-2", 1, "");
    char *batch = tu_format("{\"users\": [{\"user_id\": \"" DORA "\", \"schools\": [{\"school\":"
                            " \"rs-ost\", \"role\": \"student\"}]}], \"groups\": [%s, %s]}",
                            g1, g2);
    char *groups_only = tu_format("{\"groups\": [%s]}", g1);
    size_t upserted = 9, groups = 9;

    REQUIRE(setup(&fx));
    REQUIRE_OK(ssp_roster_upsert_groups(fx.engine, batch, strlen(batch), &upserted, &groups,
                                        &fx.err),
               fx.err);
    CHECK_INT_EQ(upserted, 1);
    CHECK_INT_EQ(groups, 2);
    /* again: the groups are stale now and not counted */
    REQUIRE_OK(ssp_roster_upsert_groups(fx.engine, groups_only, strlen(groups_only), &upserted,
                                        &groups, &fx.err),
               fx.err);
    CHECK_INT_EQ(upserted, 0);
    CHECK_INT_EQ(groups, 0);
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 2);
    free(g1);
    free(g2);
    free(batch);
    free(groups_only);
    tu_teardown(&fx);
}

static void feed_message_with_groups_is_applied_durably(void)
{
    tu_fixture fx;
    char *g1 = course("course-1", 1, "");
    char *message = tu_format("{\"groups\": [%s]}", g1);
    size_t upserted = 9;

    REQUIRE(setup(&fx));
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, message, strlen(message), &upserted, &fx.err),
                 SSP_FEED_APPLIED);
    CHECK_INT_EQ(upserted, 0);
    /* durable when applied: there after a restart */
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 1);
    free(g1);
    free(message);
    tu_teardown(&fx);
}

static void batch_errors_name_the_key_path(void)
{
    static const struct {
        const char *body, *message;
    } CASES[] = {
        {"{}", "body: expected a users list, a groups list or both"},
        {"{\"groups\": {}}", "groups: expected a list"},
        {"{\"users\": [], \"groups\": [{\"group\": \"a\", \"school\": \"gym-nord\", \"kind\": \"team\","
         " \"name\": \"A\", \"members\": [{\"user_id\": \"" ALI "\", \"role\": \"boss\"}]}]}",
         "groups[0].members[0].role: expected moderator or member"},
        {"{\"groups\": [{\"group\": \"a\", \"school\": \"gym-nord\", \"kind\": \"team\", \"name\":"
         " \"A\", \"members\": []}, {\"group\": \"a\", \"school\": \"gym-nord\", \"kind\": \"team\","
         " \"name\": \"A\", \"members\": []}]}",
         "groups[1].group: a is listed twice (also groups[0])"},
        {"{\"groups\": [{\"group\": \"a\", \"school\": \"gym-nord\", \"kind\": \"team\", \"name\":"
         " \"A\", \"members\": [{\"user_id\": \"@x:elsewhere.example\", \"role\": \"member\"}]}]}",
         "groups[0].members[0].user_id: "},
    };
    tu_fixture fx;

    REQUIRE(setup(&fx));
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        size_t upserted, groups;

        if (ssp_roster_upsert_groups(fx.engine, CASES[i].body, strlen(CASES[i].body), &upserted,
                                     &groups, &fx.err) == 0) {
            CHECK_FAIL("accepted %s", CASES[i].body);
            continue;
        }
        CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
        if (strncmp(fx.err.message, CASES[i].message, strlen(CASES[i].message)) != 0)
            CHECK_FAIL("%s gave \"%s\", expected \"%s\"", CASES[i].body, fx.err.message,
                       CASES[i].message);
    }
    /* the feed goes through the same parser */
    CHECK_INT_EQ(ssp_feed_apply(fx.engine, CASES[2].body, strlen(CASES[2].body), &(size_t){0},
                                &fx.err),
                 SSP_FEED_REJECTED);
    CHECK_STR_EQ(fx.err.message, "groups[0].members[0].role: expected moderator or member");
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 0);
    tu_teardown(&fx);
}

static void delete_keeps_the_group_as_deleted_above_the_stored_version(void)
{
    tu_fixture fx;
    char *v9 = course("course-1", 9, ""), *v10 = course("course-1", 10, ""),
         *v11 = course("course-1", 11, "");
    bool existed = false;
    json_t *got, *stale, *newer;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "course-1", v9));
    REQUIRE_OK(ssp_group_delete(fx.engine, "course-1", &existed, &fx.err), fx.err);
    CHECK(existed);
    got = get(&fx, "course-1");
    REQUIRE(got != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(got, "state")), "deleted");
    CHECK_INT_EQ(int_of(got, "version"), 10);
    /* a late message of the old version cannot bring it back */
    stale = put(&fx, "course-1", v10);
    REQUIRE(stale != NULL);
    CHECK(json_is_true(json_object_get(stale, "ignored")));
    CHECK_STR_EQ(json_string_value(json_object_get(stale, "state")), "deleted");
    newer = put(&fx, "course-1", v11);
    REQUIRE(newer != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(newer, "state")), "active");
    REQUIRE_OK(ssp_group_delete(fx.engine, "nothing", &existed, &fx.err), fx.err);
    CHECK(!existed);
    CHECK_INT_EQ(ssp_group_delete(fx.engine, "bad id", &existed, &fx.err), -1);
    CHECK_CONTAINS(fx.err.message, "group: ");
    json_decref(got);
    json_decref(stale);
    json_decref(newer);
    free(v9);
    free(v10);
    free(v11);
    tu_teardown(&fx);
}

static void list_pages_a_schools_groups_by_id(void)
{
    tu_fixture fx;
    const char *ids[] = {"c", "a", "e", "b", "d"};
    const char *other = "{\"school\": \"rs-ost\", \"kind\": \"team\", \"name\": \"O\", \"members\": []}";
    char *page = NULL;
    json_t *json;

    REQUIRE(setup(&fx));
    for (size_t i = 0; i < 5; i++) {
        char *body = course(ids[i], 1, "");

        json_decref(put(&fx, ids[i], body));
        free(body);
    }
    json_decref(put(&fx, "aa-other", other));
    REQUIRE_OK(ssp_groups_list(fx.engine, "gym-nord", NULL, 2, &page, &fx.err), fx.err);
    json = tu_json(page);
    CHECK_INT_EQ(json_array_size(json_object_get(json, "groups")), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(json, "groups"), 1),
                                                   "group")),
                 "b");
    CHECK_STR_EQ(json_string_value(json_object_get(json, "next")), "b");
    json_decref(json);
    free(page);
    REQUIRE_OK(ssp_groups_list(fx.engine, "gym-nord", "d", 2, &page, &fx.err), fx.err);
    json = tu_json(page);
    CHECK_INT_EQ(json_array_size(json_object_get(json, "groups")), 1);
    CHECK(json_is_null(json_object_get(json, "next")));
    json_decref(json);
    free(page);
    CHECK_INT_EQ(ssp_groups_list(fx.engine, "gym-nord", NULL, 0, &page, &fx.err), -1);
    CHECK_STR_EQ(fx.err.message, "limit: expected 1 to 1000");
    tu_teardown(&fx);
}

static void groups_of_a_user_are_sorted_ids(void)
{
    tu_fixture fx;
    char *b = course("b", 1, ""), *a = course("a", 1, ""), *out = NULL;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "b", b));
    json_decref(put(&fx, "a", a));
    REQUIRE_OK(ssp_groups_of(fx.engine, ALI, &out, &fx.err), fx.err);
    CHECK_STR_EQ(out, "[\"a\",\"b\"]");
    free(out);
    REQUIRE_OK(ssp_groups_of(fx.engine, "@nobody:school.example", &out, &fx.err), fx.err);
    CHECK_STR_EQ(out, "[]");
    free(out);
    free(a);
    free(b);
    tu_teardown(&fx);
}

/* The plan's entry of user_id. */
static json_t *plan_member(json_t *plan, const char *user_id)
{
    size_t i;
    json_t *m;

    json_array_foreach(json_object_get(plan, "members"), i, m) {
        if (strcmp(json_string_value(json_object_get(m, "user_id")), user_id) == 0)
            return m;
    }
    return NULL;
}

static json_t *plan_of(tu_fixture *fx, const char *id, int64_t now_ms)
{
    char *out = NULL;
    json_t *json;

    if (ssp_group_plan(fx->engine, id, now_ms, &out, &fx->err) != 0 || out == NULL) {
        CHECK_FAIL("ssp_group_plan(%s): %s", id, out ? "" : fx->err.message);
        return NULL;
    }
    json = tu_json(out);
    free(out);
    return json;
}

static void plan_says_who_belongs_in_the_room_and_why_not(void)
{
    tu_fixture fx;
    char *body = course("course-1", 1, ", \"two_way\": true");
    json_t *plan, *m;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "course-1", body));
    plan = plan_of(&fx, "course-1", ssp_now_ms());
    REQUIRE(plan != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(plan, "state")), "active");
    CHECK(json_is_false(json_object_get(plan, "remove_members_now")));
    CHECK(json_is_false(json_object_get(plan, "encrypted")));
    {
        json_t *policy = tu_json("{\"school\": \"gym-nord\", \"kind\": \"course\","
                                 " \"two_way\": true, \"group\": \"course-1\"}");

        CHECK(json_equal(json_object_get(plan, "policy"), policy));
        json_decref(policy);
    }
    m = plan_member(plan, BERG);
    REQUIRE(m != NULL);
    CHECK(json_is_true(json_object_get(m, "member")));
    CHECK_INT_EQ(int_of(m, "power_level"), 50);
    m = plan_member(plan, ALI);
    REQUIRE(m != NULL);
    CHECK(json_is_true(json_object_get(m, "member")));
    CHECK(json_is_null(json_object_get(m, "power_level")));
    CHECK(json_is_null(json_object_get(m, "why")));
    m = plan_member(plan, CEM);
    REQUIRE(m != NULL);
    CHECK(json_is_false(json_object_get(m, "member")));
    CHECK_STR_EQ(json_string_value(json_object_get(m, "why")), "no school of theirs has opted in");
    m = plan_member(plan, DORA);
    REQUIRE(m != NULL);
    CHECK(json_is_false(json_object_get(m, "member")));
    CHECK_STR_EQ(json_string_value(json_object_get(m, "why")), "not on the roster");
    json_decref(plan);
    free(body);
    tu_teardown(&fx);
}

static void plan_removes_members_when_deleted_or_archived_past_the_retention(void)
{
    tu_fixture fx;
    int64_t now = ssp_now_ms(), day = INT64_C(86400000);
    char *dated = course("dated", 1, ", \"archive_at_ms\": 1000");
    char *archived = course("archived", 1, ", \"state\": \"archived\"");
    bool existed;
    json_t *plan;

    REQUIRE(tu_setup(&fx, SCHOOLS ", \"groups\": {\"archive_retention_days\": 30}"));
    json_decref(put(&fx, "dated", dated));
    json_decref(put(&fx, "archived", archived));
    plan = plan_of(&fx, "dated", 1000 + 29 * day);
    REQUIRE(plan != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(plan, "state")), "archived");
    CHECK(json_is_false(json_object_get(plan, "remove_members_now")));
    json_decref(plan);
    plan = plan_of(&fx, "dated", 1000 + 30 * day);
    REQUIRE(plan != NULL);
    CHECK(json_is_true(json_object_get(plan, "remove_members_now")));
    CHECK(json_is_false(json_object_get(plan_member(plan, BERG), "member")));
    json_decref(plan);
    /* archived by state: the retention counts from when it was stored */
    plan = plan_of(&fx, "archived", now + 29 * day);
    REQUIRE(plan != NULL);
    CHECK(json_is_false(json_object_get(plan, "remove_members_now")));
    json_decref(plan);
    plan = plan_of(&fx, "archived", now + 31 * day);
    REQUIRE(plan != NULL);
    CHECK(json_is_true(json_object_get(plan, "remove_members_now")));
    json_decref(plan);
    REQUIRE_OK(ssp_group_delete(fx.engine, "dated", &existed, &fx.err), fx.err);
    plan = plan_of(&fx, "dated", 0);
    REQUIRE(plan != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(plan, "state")), "deleted");
    CHECK(json_is_true(json_object_get(plan, "remove_members_now")));
    CHECK_STR_EQ(json_string_value(json_object_get(plan_member(plan, BERG), "why")),
                 "the group is deleted");
    json_decref(plan);
    free(dated);
    free(archived);
    tu_teardown(&fx);
}

static void group_write_marks_its_room_for_reconciliation(void)
{
    tu_fixture fx;
    char *body = course("course-1", 1, ""), *due = NULL;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "course-1", body));
    REQUIRE_OK(ssp_reconcile_due(fx.engine, ssp_now_ms() + 1000, 1000, &due, &fx.err), fx.err);
    CHECK_CONTAINS(due, "\"school\":\"gym-nord\",\"user_id\":\"group:course-1\"");
    /* the reconciler's calls take the group's subject and room kind */
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "group:course-1", "!r:school.example",
                                      &fx.err),
               fx.err);
    REQUIRE_OK(ssp_reconcile_done(fx.engine, "gym-nord", "group:course-1", 1, &fx.err), fx.err);
    free(due);
    due = NULL;
    {
        json_t *got = get(&fx, "course-1");

        REQUIRE(got != NULL);
        CHECK_STR_EQ(json_string_value(json_object_get(got, "room_id")), "!r:school.example");
        json_decref(got);
    }
    free(body);
    tu_teardown(&fx);
}

static void groups_survive_a_restart_and_stale_versions_stay_stale(void)
{
    tu_fixture fx;
    char *v3 = course("course-1", 3, ""), *v2 = course("course-1", 2, "");
    char *team = tu_format("{\"school\": \"rs-ost\", \"kind\": \"team\", \"name\": \"T\","
                           " \"members\": [{\"user_id\": \"%s\", \"role\": \"member\"}]}",
                           ALI);
    bool existed;
    char *ids = NULL;
    json_t *before, *after, *stale;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "course-1", v3));
    json_decref(put(&fx, "team-1", team));
    REQUIRE_OK(ssp_group_delete(fx.engine, "team-1", &existed, &fx.err), fx.err);
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "group:course-1", "!c:school.example",
                                      &fx.err),
               fx.err);
    before = get(&fx, "course-1");
    REQUIRE(tu_reopen(&fx));
    after = get(&fx, "course-1");
    REQUIRE(before != NULL && after != NULL);
    CHECK(json_equal(before, after));
    CHECK_STR_EQ(json_string_value(json_object_get(after, "room_id")), "!c:school.example");
    {
        char *status = NULL;

        /* a group's room is none of the school's special rooms */
        REQUIRE_OK(ssp_reconcile_status(fx.engine, &status, &fx.err), fx.err);
        CHECK(strstr(status, "!c:school.example") == NULL);
        free(status);
    }
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 2);
    stale = get(&fx, "team-1");
    REQUIRE(stale != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(stale, "state")), "deleted");
    json_decref(stale);
    stale = put(&fx, "course-1", v2);
    REQUIRE(stale != NULL);
    CHECK(json_is_true(json_object_get(stale, "ignored")));
    REQUIRE_OK(ssp_groups_of(fx.engine, ALI, &ids, &fx.err), fx.err);
    CHECK_STR_EQ(ids, "[\"course-1\",\"team-1\"]");
    free(ids);
    json_decref(before);
    json_decref(after);
    json_decref(stale);
    free(v3);
    free(v2);
    free(team);
    tu_teardown(&fx);
}

static void groups_file_is_compacted_at_open_and_keeps_every_group(void)
{
    tu_fixture fx;
    char *path;
    long lines;

    REQUIRE(setup(&fx));
    for (int v = 1; v <= 1100; v++) {
        char *body = course("course-1", v, "");
        char *out = NULL;

        if (ssp_group_put(fx.engine, "course-1", body, strlen(body), &out, &fx.err) != 0)
            CHECK_FAIL("put %d: %s", v, fx.err.message);
        free(out);
        free(body);
    }
    path = tu_path(fx.dir, "groups.jsonl");
    CHECK_INT_EQ(tu_count_lines(path), 1100);
    REQUIRE(tu_reopen(&fx));
    lines = tu_count_lines(path);
    CHECK_INT_EQ(lines, 1);
    {
        json_t *got = get(&fx, "course-1");

        REQUIRE(got != NULL);
        CHECK_INT_EQ(int_of(got, "version"), 1100);
        json_decref(got);
    }
    free(path);
    tu_teardown(&fx);
}

static void torn_last_line_of_the_groups_file_is_cut_off(void)
{
    tu_fixture fx;
    char *body = course("course-1", 1, ""), *path;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "course-1", body));
    path = tu_path(fx.dir, "groups.jsonl");
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    REQUIRE(tu_write_file(path, "{\"group\": \"torn", true) == 0);
    fx.engine = tu_engine(fx.config, &fx.err);
    REQUIRE(fx.engine != NULL);
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 1);
    CHECK_INT_EQ(tu_count_lines(path), 1);
    free(path);
    free(body);
    tu_teardown(&fx);
}

static void offline_open_reads_the_groups_and_writes_none(void)
{
    tu_fixture fx;
    char *body = course("course-1", 1, ""), *out = NULL;
    ssp_open_options options = {.offline = true};
    ssp_engine *cli;
    ssp_error err;

    REQUIRE(setup(&fx));
    json_decref(put(&fx, "course-1", body));
    cli = ssp_engine_new(fx.config, strlen(fx.config), TU_SERVER, TU_WORKER, &err);
    REQUIRE(cli != NULL);
    REQUIRE_OK(ssp_engine_open_with(cli, &options, &err), err);
    CHECK_INT_EQ(ssp_groups_count(cli), 1);
    free(body);
    body = course("course-2", 1, "");
    CHECK_INT_EQ(ssp_group_put(cli, "course-2", body, strlen(body), &out, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK_CONTAINS(err.message, "the command line does not write to the embedded store");
    ssp_engine_free(cli);
    free(body);
    tu_teardown(&fx);
}

void run_groups_api_tests(void)
{
    RUN(group_put_stores_it_and_get_returns_it_with_no_room_yet);
    RUN(stale_version_is_ignored_and_reported);
    RUN(unversioned_snapshot_applies_and_keeps_the_stored_version);
    RUN(group_of_an_unconfigured_school_is_refused_naming_the_path);
    RUN(batch_takes_users_and_groups_and_counts_both);
    RUN(feed_message_with_groups_is_applied_durably);
    RUN(batch_errors_name_the_key_path);
    RUN(delete_keeps_the_group_as_deleted_above_the_stored_version);
    RUN(list_pages_a_schools_groups_by_id);
    RUN(groups_of_a_user_are_sorted_ids);
    RUN(plan_says_who_belongs_in_the_room_and_why_not);
    RUN(plan_removes_members_when_deleted_or_archived_past_the_retention);
    RUN(group_write_marks_its_room_for_reconciliation);
    RUN(groups_survive_a_restart_and_stale_versions_stay_stale);
    RUN(groups_file_is_compacted_at_open_and_keeps_every_group);
    RUN(torn_last_line_of_the_groups_file_is_cut_off);
    RUN(offline_open_reads_the_groups_and_writes_none);
}
