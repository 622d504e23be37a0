/*
 * Rule 3, visibility limited to shared rooms (rules/visibility.c):
 * no_shared_room and room_creation_forbidden, in the course world.
 */
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void create_room_counts_initial_state_members_as_invitees(void)
{
    tu_fixture fx;
    ssp_create_room body = {.is_direct = true, .n_invites = 3};
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_USER_MAY_CREATE_ROOM;
    req.actor = PUPIL;
    req.actor_is_admin = SSP_FACT_NO;
    req.create = &body;
    /* "is_direct" with three people is a group room a pupil may not make. */
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ROOM_CREATION_FORBIDDEN);
    body.n_invites = 1;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    body.third_party_invites = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN);
    body.third_party_invites = false;
    body.open_join_rule = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    body.open_join_rule = false;
    body.world_readable = true;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    body.world_readable = false;
    /* Each invitee is checked like an invite: a stranger shares no room. */
    req.target = PUPIL2;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_SHARED_ROOMS);
    req.shared_known = SSP_FACT_YES;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_NO_SHARED_ROOM);
    tu_teardown(&fx);
}

static void direct_chat_of_a_pupil_holds_two(void)
{
    tu_fixture fx;
    ssp_room_create pupils_dm = {.sender = PUPIL, .room_version = "12", .room_version_len = 2};
    ssp_room_create teachers_room = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_room_policy shared = course();
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_USER_MAY_INVITE, PUPIL2, NULL, &pupils_dm);
    req.target = TEACHER;
    req.shared_rooms = &shared;
    req.n_shared_rooms = 1;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_MEMBER_COUNT);
    req.member_count_known = true;
    req.member_count = 1;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.member_count = 2;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ROOM_CREATION_FORBIDDEN);
    /* Whoever invites: the teacher cannot grow the pupil's chat either. */
    req.actor = TEACHER;
    req.target = PUPIL2;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ROOM_CREATION_FORBIDDEN);
    /* A teacher's group room grows. */
    req.room_create = &teachers_room;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

void run_rule_visibility_tests(void)
{
    RUN(create_room_counts_initial_state_members_as_invitees);
    RUN(direct_chat_of_a_pupil_holds_two);
}
