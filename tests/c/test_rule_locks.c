/*
 * The locks on a managed room's settings (rules/locks.c):
 * policy_event_locked and power_levels_locked, in the course world.
 */
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void nobody_but_the_sync_redacts_the_policy_event(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_event_shape shape = {.n_content_keys = 1, .has_redacts = true, .content_redacts = "$policy"};
    ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
    ssp_power_levels pl = {.events_default = 50, .state_default = 50, .actor_listed = true,
                           .actor_level = 50, .users = &teacher, .n_users = 1};
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    room.event_id = "$policy";
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, TEACHER, &room, &SYNC_CREATE);
    req.event_type = "m.room.redaction";
    req.shape = &shape;
    req.redacts = "$policy";
    req.room_power_levels = &pl;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    shape.content_redacts = req.redacts = "$message";
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    shape.content_redacts = req.redacts = "$policy";
    req.actor = SYNC;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void moderator_flips_two_way_only_in_rooms_the_sync_made(void)
{
    tu_fixture fx;
    ssp_room_policy room = course(), flipped = course();
    ssp_room_create teachers = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
    ssp_power_levels pl = {.events_default = 50, .state_default = 50, .actor_listed = true,
                           .actor_level = 50, .full = true, .users = &teacher, .n_users = 1};
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    flipped.two_way = true;
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, TEACHER, &room, &SYNC_CREATE);
    req.event_type = "org.synapse_school_policy.room";
    req.state_key = "";
    req.new_policy = &flipped;
    req.room_power_levels = &pl;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS);
    room.creator = TEACHER;
    req.room_create = &teachers;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    tu_teardown(&fx);
}

void run_rule_locks_tests(void)
{
    RUN(nobody_but_the_sync_redacts_the_policy_event);
    RUN(moderator_flips_two_way_only_in_rooms_the_sync_made);
}
