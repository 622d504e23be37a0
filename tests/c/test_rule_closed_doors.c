/*
 * The closed doors (rules/closed_doors.c): join rules, history, planted
 * third-party invites, rooms of other servers, and joins that are profile
 * changes, in the course world.
 */
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void join_rules_other_than_invite_and_world_readable_history_are_refused(void)
{
    tu_fixture fx;
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, TEACHER, NULL, &SYNC_CREATE);
    req.event_type = "m.room.join_rules";
    req.state_key = "";
    req.opens_join_rule = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    req.opens_join_rule = false;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.event_type = "m.room.history_visibility";
    req.opens_history = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    req.opens_history = false;
    /* A planted third-party invite: anyone who signs with its key could join. */
    req.event_type = "m.room.third_party_invite";
    req.state_key = "token";
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN);
    /* The sync may. */
    req.actor = SYNC;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void joining_a_room_of_another_server_is_refused(void)
{
    tu_fixture fx;
    ssp_room_create remote = {.sender = REMOTE, .room_version = "12", .room_version_len = 2};
    ssp_request req;
    ssp_decision d;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_USER_MAY_JOIN_ROOM, PUPIL, NULL, NULL);
    req.is_invited = SSP_FACT_NO;
    d = decide_request(&fx, &req);
    CHECK_RULE(d, SSP_RULE_FEDERATION_FORBIDDEN);
    CHECK_STR_EQ(d.message, "You cannot join rooms of other servers.");
    req.room_create = &remote;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_FEDERATION_FORBIDDEN);
    req.room_create = &SYNC_CREATE;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void profile_change_of_a_joined_member_is_no_join(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_request req;
    uint64_t before;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_USER_MAY_JOIN_ROOM, TEACHER, &room, &SYNC_CREATE);
    req.is_invited = SSP_FACT_NO; /* Synapse's join->join: no inviter */
    req.actor_joined = SSP_FACT_UNKNOWN;
    before = queued(&fx);
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_MEMBERSHIP);
    req.actor_joined = SSP_FACT_YES;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    CHECK_INT_EQ(queued(&fx) - before, 0);
    req.actor_joined = SSP_FACT_NO;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_JOIN_FORBIDDEN);
    /* An invited member of the school never needs the lookup. */
    req.is_invited = SSP_FACT_YES;
    req.actor_joined = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void remote_member_of_a_room_made_here_opens_no_door(void)
{
    tu_fixture fx;
    ssp_room_create old_room = {.sender = PUPIL, .room_version = "10", .room_version_len = 2};
    ssp_room_create theirs = {.sender = REMOTE, .room_version = "10", .room_version_len = 2};
    ssp_request req;
    ssp_decision d;

    REQUIRE(course_world_setup(&fx));
    /* An unmanaged room made here before the module, a remote member in it. */
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, &old_room);
    req.event_type = "m.room.join_rules";
    req.state_key = "";
    req.opens_join_rule = true;
    d = decide_request(&fx, &req);
    CHECK_DENY(d, SSP_RULE_PUBLIC_ROOM_FORBIDDEN, true, "");
    req.opens_join_rule = false;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.event_type = "m.room.guest_access";
    req.opens_guest_access = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GUEST_ACCESS_FORBIDDEN);
    req.opens_guest_access = false;
    req.event_type = "m.room.history_visibility";
    req.opens_history = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    req.opens_history = false;
    req.event_type = "m.room.third_party_invite";
    req.state_key = "token";
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN);
    /* The room is asked for first; another server's rooms are its own. */
    req.room_managed = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_ROOM);
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, &theirs);
    req.event_type = "m.room.join_rules";
    req.state_key = "";
    req.opens_join_rule = true;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

/* What Synapse passes to user_may_create_room at an upgrade: no preset, a
 * predecessor, the copied state. */
static ssp_create_room upgrade(bool guest_access)
{
    ssp_create_room create;

    memset(&create, 0, sizeof create);
    create.is_upgrade = true;
    create.sets_guest_access = guest_access;
    return create;
}

static void upgrade_that_would_open_guest_access_is_refused_to_everyone(void)
{
    tu_fixture fx;
    ssp_create_room body = upgrade(false);
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_USER_MAY_CREATE_ROOM;
    req.create = &body;
    req.room_id = ROOM;
    req.room_managed = SSP_FACT_NO;
    req.actor_is_admin = SSP_FACT_NO;
    req.actor = TEACHER;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GUEST_ACCESS_FORBIDDEN);
    /* Exempt users too: Synapse would add guest_access can_join. */
    req.actor = SYNC;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GUEST_ACCESS_FORBIDDEN);
    req.actor = TEACHER;
    req.actor_is_admin = SSP_FACT_YES;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GUEST_ACCESS_FORBIDDEN);
    /* With the room's guest access in the copied state, it goes through. */
    body = upgrade(true);
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.actor = SYNC;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.actor = TEACHER;
    req.actor_is_admin = SSP_FACT_NO;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    /* A createRoom (a preset) is no upgrade: on_create_room closed it. */
    body = upgrade(false);
    body.is_upgrade = false;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void only_a_service_user_upgrades_a_managed_room(void)
{
    tu_fixture fx;
    ssp_create_room body = upgrade(true);
    ssp_room_policy room = course();
    ssp_request req;
    ssp_decision d;

    REQUIRE(course_world_setup(&fx));
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_USER_MAY_CREATE_ROOM;
    req.create = &body;
    req.room_id = ROOM;
    req.actor = TEACHER;
    req.actor_is_admin = SSP_FACT_NO;
    req.room_managed = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_ROOM);
    req.room_managed = SSP_FACT_YES;
    req.room = &room;
    req.room_create = &SYNC_CREATE;
    d = decide_request(&fx, &req);
    CHECK_DENY(d, SSP_RULE_POLICY_EVENT_LOCKED, true, "gym-nord");
    /* Server admins too, whom Synapse asks at an upgrade. */
    req.actor_is_admin = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_ADMIN);
    req.actor_is_admin = SSP_FACT_YES;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    /* The service user may: the policy is carried over after the fact. */
    req.actor = SYNC;
    req.actor_is_admin = SSP_FACT_NO;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.room_managed = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

void run_rule_closed_doors_tests(void)
{
    RUN(join_rules_other_than_invite_and_world_readable_history_are_refused);
    RUN(joining_a_room_of_another_server_is_refused);
    RUN(profile_change_of_a_joined_member_is_no_join);
    RUN(remote_member_of_a_room_made_here_opens_no_door);
    RUN(upgrade_that_would_open_guest_access_is_refused_to_everyone);
    RUN(only_a_service_user_upgrades_a_managed_room);
}
