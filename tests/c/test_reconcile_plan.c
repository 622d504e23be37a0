/*
 * The special rooms' targets the reconciler works from
 * (reconcile_plan.c), and the reconciler's config keys, in the staff world.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void config_error_names(const char *config, const char *expected)
{
    ssp_error err;

    CHECK_INT_EQ(ssp_config_check(config, strlen(config), &err), -1);
    CHECK_CONTAINS(err.message, expected);
}

static void bad_reconciler_keys_are_named(void)
{
    config_error_names("{\"data_dir\": \"/x\", \"reconciler\": {\"user\": \"Bad User\"}}",
                       "reconciler.user: expected a user localpart");
    config_error_names("{\"data_dir\": \"/x\", \"reconciler\": {\"actions_per_second\": 0}}",
                       "reconciler.actions_per_second: expected an integer from 1 to 1000");
    config_error_names("{\"data_dir\": \"/x\", \"reconciler\": {\"rate\": 1}}",
                       "reconciler.rate: unknown key");
    config_error_names("{\"data_dir\": \"/x\", \"reconciler\": []}", "reconciler: expected a mapping");
}

/* The plan as a JSON value, or NULL after reporting. */
static json_t *plan(tu_fixture *fx, const char *school, const char *user)
{
    char *text = NULL;
    json_t *value;

    if (ssp_reconcile_plan(fx->engine, school, user, &text, &fx->err) != 0) {
        CHECK_FAIL("ssp_reconcile_plan(%s, %s): %s", school, user, fx->err.message);
        return NULL;
    }
    value = tu_json(text);
    free(text);
    return value;
}

static json_t *room_of(json_t *p, const char *kind)
{
    json_t *rooms = json_object_get(p, "rooms");

    for (size_t i = 0; i < json_array_size(rooms); i++) {
        if (strcmp(json_string_value(json_object_get(json_array_get(rooms, i), "kind")), kind) == 0)
            return json_array_get(rooms, i);
    }
    return NULL;
}

static bool member_of(json_t *p, const char *kind)
{
    return json_is_true(json_object_get(room_of(p, kind), "member"));
}

static void plan_puts_staff_in_the_teachers_room_and_everyone_in_announcements(void)
{
    tu_fixture fx;
    json_t *t, *a, *p;

    REQUIRE(staff_world_setup(&fx, NULL));
    t = plan(&fx, "gym-nord", TEACHER);
    a = plan(&fx, "gym-nord", ADMIN);
    p = plan(&fx, "gym-nord", PUPIL);
    REQUIRE(t != NULL && a != NULL && p != NULL);
    CHECK(member_of(t, "teachers") && member_of(t, "announcement"));
    CHECK(member_of(a, "teachers") && member_of(a, "announcement"));
    CHECK(!member_of(p, "teachers") && member_of(p, "announcement"));
    /* Staff post in the one-way announcement room; pupils do not. */
    CHECK_INT_EQ(json_integer_value(json_object_get(room_of(t, "announcement"), "power_level")), 50);
    CHECK(json_is_null(json_object_get(room_of(p, "announcement"), "power_level")));
    CHECK(json_is_null(json_object_get(room_of(t, "teachers"), "power_level")));
    CHECK_STR_EQ(json_string_value(json_object_get(t, "owner")), OWNER);
    {
        char *policy = json_dumps(json_object_get(room_of(t, "teachers"), "policy"), 0);

        CHECK(tu_json_equal_text(policy, "{\"school\": \"gym-nord\", \"kind\": \"teachers\", \"two_way\": true}"));
        free(policy);
    }
    CHECK_STR_EQ(json_string_value(json_object_get(room_of(t, "announcement"), "name")),
                 "Announcements (gym-nord)");
    json_decref(t);
    json_decref(a);
    json_decref(p);
    tu_teardown(&fx);
}

static void plan_of_disabled_rooms_and_schools_has_no_members(void)
{
    tu_fixture fx;
    json_t *olaf, *school, *closed, *gone, *remote;

    REQUIRE(staff_world_setup(&fx, NULL));
    olaf = plan(&fx, "rs-ost", OTHER);
    school = plan(&fx, "gym-nord", "");
    closed = plan(&fx, "closed", TEACHER);
    gone = plan(&fx, "gym-nord", "@nobody:school.example");
    remote = plan(&fx, "gym-nord", "@tom:remote.example");
    REQUIRE(olaf && school && closed && gone && remote);
    /* rs-ost turned its teachers' room off and never enabled announcements. */
    CHECK(!json_is_true(json_object_get(room_of(olaf, "teachers"), "enabled")));
    CHECK(!member_of(olaf, "teachers") && !member_of(olaf, "announcement"));
    CHECK(json_is_true(json_object_get(room_of(school, "teachers"), "enabled")));
    CHECK(!member_of(school, "teachers") && !member_of(school, "announcement"));
    CHECK(json_is_false(json_object_get(closed, "messenger")));
    CHECK(!json_is_true(json_object_get(room_of(closed, "teachers"), "enabled")));
    CHECK(!member_of(gone, "teachers") && !member_of(gone, "announcement"));
    CHECK(!member_of(remote, "announcement"));
    json_decref(olaf);
    json_decref(school);
    json_decref(closed);
    json_decref(gone);
    json_decref(remote);
    tu_teardown(&fx);
}

static void plan_rejects_bad_input(void)
{
    tu_fixture fx;
    char *text = NULL;

    REQUIRE(staff_world_setup(&fx, NULL));
    CHECK_INT_EQ(ssp_reconcile_plan(fx.engine, "", PUPIL, &text, &fx.err), -1);
    CHECK_CONTAINS(fx.err.message, "school");
    CHECK_INT_EQ(ssp_reconcile_plan(fx.engine, "gym-nord", "pia", &text, &fx.err), -1);
    CHECK_CONTAINS(fx.err.message, "user_id");
    CHECK(text == NULL);
    tu_teardown(&fx);
}

void run_reconcile_plan_tests(void)
{
    RUN(bad_reconciler_keys_are_named);
    RUN(plan_puts_staff_in_the_teachers_room_and_everyone_in_announcements);
    RUN(plan_of_disabled_rooms_and_schools_has_no_members);
    RUN(plan_rejects_bad_input);
}
