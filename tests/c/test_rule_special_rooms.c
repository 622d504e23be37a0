/*
 * Rules 4 and 5 in decisions (rules/special_rooms.c): the teachers' room is
 * staff only, and the reconciler user who keeps it is exempt, in the staff
 * world.
 */
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void staff_join_the_teachers_room(void)
{
    tu_fixture fx;
    ssp_decision d;

    REQUIRE(staff_world_setup(&fx, NULL));
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

    REQUIRE(staff_world_setup(&fx, NULL));
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

    REQUIRE(staff_world_setup(&fx, NULL));
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

    REQUIRE(staff_world_setup(&fx, NULL));
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

    REQUIRE(staff_world_setup(&fx, "\"reconciler\": {\"user\": \"schulbot\", \"actions_per_second\": 5}"));
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

void run_rule_special_rooms_tests(void)
{
    RUN(staff_join_the_teachers_room);
    RUN(invited_pupil_cannot_join_the_teachers_room);
    RUN(pupil_cannot_be_invited_to_the_teachers_room);
    RUN(teacher_of_another_school_is_not_staff_here);
    RUN(reconciler_user_is_exempt_and_named_by_config);
}
