/*
 * Rule 2, one-way channels (rules/one_way.c): what a one-way room lets
 * through below the moderator level, invites into it, and the creators'
 * power that counts as the level, in the course world.
 */
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static ssp_event_shape reaction(const char *rel_type, const char *key)
{
    ssp_event_shape shape;

    memset(&shape, 0, sizeof shape);
    shape.n_content_keys = 1;
    shape.has_relation = true;
    shape.n_relation_keys = 3;
    shape.rel_type = rel_type;
    shape.rel_type_len = strlen(rel_type);
    shape.relation_event_id = true;
    shape.key = key;
    shape.key_len = key ? strlen(key) : 0;
    return shape;
}

static void one_way_rooms_let_through_no_text(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_event_shape shape = reaction("m.annotation", "\xF0\x9F\x91\x8D"); /* thumbs up */
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, PUPIL, &room, &SYNC_CREATE);
    req.event_type = "m.reaction";
    req.shape = &shape;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    shape = reaction("m.annotation", "meet me at 5");
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    shape = reaction("m.reference", "\xF0\x9F\x91\x8D");
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    shape = reaction("m.annotation", "\xF0\x9F\x91\x8D");
    shape.n_content_keys = 2; /* a "body" beside the relation */
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    /* A redaction names its target and nothing more. */
    memset(&shape, 0, sizeof shape);
    shape.n_content_keys = 1;
    shape.has_redacts = true;
    shape.content_redacts = "$message";
    req.event_type = "m.room.redaction";
    req.redacts = "$message";
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    shape.n_content_keys = 2; /* "reason" */
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    shape.n_content_keys = 1;
    /* Before room version 11 a `redacts` in the content is the sender's own text. */
    shape.content_redacts = "meet me at 5";
    req.redacts = "$message";
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    shape.content_redacts = "$message";
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.state_key = ""; /* as a state event, which events[m.room.redaction]: 0 would let through */
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    /* Teachers post anything. */
    req.actor = TEACHER;
    {
        ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
        ssp_power_levels pl = {.state_default = 50, .actor_listed = true, .actor_level = 50,
                               .users = &teacher, .n_users = 1};

        req.room_power_levels = &pl;
        req.state_key = NULL;
        shape.n_content_keys = 2;
        CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    }
    tu_teardown(&fx);
}

static void pupils_do_not_invite_into_one_way_rooms(void)
{
    tu_fixture fx;
    ssp_room_policy room = course(), shared = course();
    ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
    ssp_power_levels pl = {.events_default = 50, .state_default = 50, .users = &teacher, .n_users = 1};
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_USER_MAY_INVITE, PUPIL, &room, &SYNC_CREATE);
    req.target = PUPIL2;
    req.room_power_levels = &pl;
    req.shared_rooms = &shared;
    req.n_shared_rooms = 1;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    room.two_way = true;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    room.two_way = false;
    req.actor = TEACHER;
    pl.actor_listed = true;
    pl.actor_level = 50;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void creators_hold_power_where_the_room_version_gives_it(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_text extra = {PUPIL, strlen(PUPIL)};
    ssp_room_create v12 = {.sender = SYNC, .room_version = "12", .room_version_len = 2,
                           .additional_creators = &extra, .n_additional_creators = 1};
    ssp_room_create v10 = v12;
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    v10.room_version = "10";
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, PUPIL, &room, &v12);
    req.event_type = "m.room.message";
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.room_create = &v10;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    v10.room_version = NULL; /* missing: version 1 */
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    tu_teardown(&fx);
}

void run_rule_one_way_tests(void)
{
    RUN(one_way_rooms_let_through_no_text);
    RUN(pupils_do_not_invite_into_one_way_rooms);
    RUN(creators_hold_power_where_the_room_version_gives_it);
}
