/* Rules 4 and 5 in the engine: the teachers' room is staff only, and the
 * special rooms' targets the reconciler works from (reconcile_plan.c). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define OWNER "@school-policy:school.example"
#define TEACHER "@tom:school.example" /* teacher at gym-nord */
#define ADMIN "@ada:school.example"   /* admin at gym-nord */
#define PUPIL "@pia:school.example"   /* student at gym-nord */
#define OTHER "@olaf:school.example"  /* teacher at rs-ost only */
#define ROOM "!teachers:school.example"

static bool setup(tu_fixture *fx, const char *extra)
{
    static const char roster[] =
        "{\"users\": ["
        "{\"user_id\": \"@tom:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"@ada:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"admin\"}]},"
        "{\"user_id\": \"@pia:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
        "{\"user_id\": \"@olaf:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": \"teacher\"}]}]}";
    char *members = tu_format("\"schools\": {\"gym-nord\": {\"messenger\": true, "
                              "\"announcement_room\": true}, \"rs-ost\": {\"messenger\": true, "
                              "\"teachers_room\": false}, \"closed\": {}}%s%s",
                              extra ? ", " : "", extra ? extra : "");
    size_t upserted = 0;
    bool ok = tu_setup(fx, members);

    free(members);
    if (ok && ssp_roster_upsert_batch(fx->engine, roster, strlen(roster), &upserted, &fx->err) != 0) {
        CHECK_FAIL("cannot load the roster: %s", fx->err.message);
        ok = false;
    }
    return ok;
}

static ssp_room_policy teachers_room(void)
{
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    /* The reconciler creates the teachers' room and sends its policy. */
    p.sender = p.creator = "@school-policy:school.example";
    p.school = "gym-nord";
    p.school_len = strlen(p.school);
    p.kind_name = "teachers";
    p.kind_len = strlen(p.kind_name);
    p.kind = SSP_KIND_TEACHERS;
    p.n_keys = 3;
    return p;
}

static void in_teachers_room(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
                             ssp_decision *out)
{
    static const ssp_room_create create = {.sender = "@school-policy:school.example",
                                           .room_version = "12", .room_version_len = 2};
    ssp_room_policy room = teachers_room();
    ssp_request req;

    memset(&req, 0, sizeof req);
    req.callback = cb;
    req.actor = actor;
    req.target = target;
    req.room_id = ROOM;
    req.room_managed = SSP_FACT_YES;
    req.room = &room;
    req.room_create = &create;
    req.is_invited = SSP_FACT_YES;
    req.actor_joined = SSP_FACT_NO;
    req.actor_is_admin = SSP_FACT_NO;
    req.shared_known = SSP_FACT_YES;
    req.shared_rooms = &room;
    req.n_shared_rooms = 1;
    ssp_decide(fx->engine, &req, out);
}

static void staff_join_the_teachers_room(void)
{
    tu_fixture fx;
    ssp_decision d;

    REQUIRE(setup(&fx, NULL));
    in_teachers_room(&fx, SSP_CB_USER_MAY_JOIN_ROOM, TEACHER, NULL, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_ALLOW);
    in_teachers_room(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ADMIN, NULL, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_ALLOW);
    in_teachers_room(&fx, SSP_CB_USER_MAY_INVITE, TEACHER, ADMIN, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void invited_pupil_cannot_join_the_teachers_room(void)
{
    tu_fixture fx;
    ssp_decision d;

    REQUIRE(setup(&fx, NULL));
    in_teachers_room(&fx, SSP_CB_USER_MAY_JOIN_ROOM, PUPIL, NULL, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
    CHECK_STR_EQ(ssp_rule_id(d.rule), "staff_only");
    CHECK_STR_EQ(d.school, "gym-nord");
    CHECK(d.enforced);
    tu_teardown(&fx);
}

static void pupil_cannot_be_invited_to_the_teachers_room(void)
{
    tu_fixture fx;
    ssp_decision d;

    REQUIRE(setup(&fx, NULL));
    in_teachers_room(&fx, SSP_CB_USER_MAY_INVITE, TEACHER, PUPIL, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
    CHECK_STR_EQ(ssp_rule_id(d.rule), "staff_only");
    CHECK_CONTAINS(d.message, "Only the school's teachers");
    tu_teardown(&fx);
}

static void teacher_of_another_school_is_not_staff_here(void)
{
    tu_fixture fx;
    ssp_decision d;

    REQUIRE(setup(&fx, NULL));
    /* Invited by mistake: the roster does not put them in gym-nord at all. */
    in_teachers_room(&fx, SSP_CB_USER_MAY_JOIN_ROOM, OTHER, NULL, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
    CHECK_STR_EQ(ssp_rule_id(d.rule), "join_forbidden");
    tu_teardown(&fx);
}

static void reconciler_user_is_exempt_and_named_by_config(void)
{
    tu_fixture fx;
    ssp_decision d;

    REQUIRE(setup(&fx, "\"reconciler\": {\"user\": \"schulbot\", \"actions_per_second\": 5}"));
    CHECK_STR_EQ(ssp_engine_reconciler_user(fx.engine), "@schulbot:school.example");
    in_teachers_room(&fx, SSP_CB_USER_MAY_JOIN_ROOM, "@schulbot:school.example", NULL, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_ALLOW);
    {
        ssp_reconciler_settings settings;

        ssp_engine_reconciler_settings(fx.engine, &settings);
        CHECK_INT_EQ(settings.actions_per_second, 5);
        CHECK_INT_EQ(settings.batch_size, 100);
        CHECK_INT_EQ(settings.retry_max_seconds, 300);
    }
    tu_teardown(&fx);
}

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

    REQUIRE(setup(&fx, NULL));
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

    REQUIRE(setup(&fx, NULL));
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

    REQUIRE(setup(&fx, NULL));
    CHECK_INT_EQ(ssp_reconcile_plan(fx.engine, "", PUPIL, &text, &fx.err), -1);
    CHECK_CONTAINS(fx.err.message, "school");
    CHECK_INT_EQ(ssp_reconcile_plan(fx.engine, "gym-nord", "pia", &text, &fx.err), -1);
    CHECK_CONTAINS(fx.err.message, "user_id");
    CHECK(text == NULL);
    tu_teardown(&fx);
}

void run_special_rooms_tests(void)
{
    RUN(staff_join_the_teachers_room);
    RUN(invited_pupil_cannot_join_the_teachers_room);
    RUN(pupil_cannot_be_invited_to_the_teachers_room);
    RUN(teacher_of_another_school_is_not_staff_here);
    RUN(reconciler_user_is_exempt_and_named_by_config);
    RUN(bad_reconciler_keys_are_named);
    RUN(plan_puts_staff_in_the_teachers_room_and_everyone_in_announcements);
    RUN(plan_of_disabled_rooms_and_schools_has_no_members);
    RUN(plan_rejects_bad_input);
}
