/*
 * The dispatch of decisions (rules/decide.c): who is exempt, which facts
 * are asked for and when, which policy event makes a room managed, and the
 * room's details read only when a rule needs them.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void decide_service_users_are_exempt(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, BOT, SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, BOT, NULL, ROOM, SSP_FACT_UNKNOWN, NULL, SSP_FACT_UNKNOWN,
           &d);
    CHECK_ALLOW(d); /* not even the room is looked up */
    decide(&fx, SSP_CB_USER_MAY_INVITE, BOT, ZOE, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_ALLOW(d);
    /* and may be invited although they are on no roster */
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, BOT, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(queued(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_asks_whether_the_actor_is_admin_before_denying_a_local_user(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, ZOE, SSP_FACT_UNKNOWN, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ADMIN);
    CHECK_INT_EQ(d.rule, SSP_RULE_NONE);
    CHECK_STR_EQ(d.school, "");
    login(&fx, BEN, SSP_FACT_UNKNOWN, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ADMIN);
    /* no audit record until the final answer */
    CHECK_INT_EQ(queued(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_server_admins_are_exempt(void)
{
    tu_fixture fx;
    ssp_room_policy p = policy_of("gym-sued");
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, ZOE, SSP_FACT_YES, &d);
    CHECK_ALLOW(d);
    login(&fx, BEN, SSP_FACT_YES, &d);
    CHECK_ALLOW(d);
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, BEN, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_YES, &d);
    CHECK_ALLOW(d);
    decide(&fx, SSP_CB_USER_MAY_INVITE, ZOE, BEN, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_YES, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(queued(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_room_callbacks_with_a_room_id_ask_for_the_room_policy(void)
{
    tu_fixture fx;
    ssp_decision d;
    static const ssp_callback room_cbs[] = {SSP_CB_USER_MAY_JOIN_ROOM, SSP_CB_USER_MAY_INVITE,
                                            SSP_CB_CHECK_EVENT_FOR_SPAM};

    if (!roster_world_setup(&fx, NULL))
        goto out;
    for (size_t i = 0; i < 3; i++) {
        decide(&fx, room_cbs[i], ANNA, room_cbs[i] == SSP_CB_USER_MAY_INVITE ? CARL : NULL, ROOM,
               SSP_FACT_UNKNOWN, NULL, SSP_FACT_UNKNOWN, &d);
        CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ROOM);
        /* without a room id there is nothing to look up */
        decide(&fx, room_cbs[i], ANNA, NULL, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
        CHECK_RULE1_ALLOWS(d);
        /* a room without a policy event is unmanaged */
        decide(&fx, room_cbs[i], ANNA, NULL, ROOM, SSP_FACT_NO, NULL, SSP_FACT_NO, &d);
        CHECK_RULE1_ALLOWS(d);
    }
    /* room creation and login never look at a room */
    decide(&fx, SSP_CB_USER_MAY_CREATE_ROOM, ANNA, NULL, ROOM, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO,
           &d);
    CHECK_RULE1_ALLOWS(d);
    decide(&fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, ANNA, NULL, ROOM, SSP_FACT_UNKNOWN, NULL,
           SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    /* remote actors are asked about the room too */
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, ROOM, SSP_FACT_UNKNOWN, NULL,
           SSP_FACT_UNKNOWN, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ROOM);
out:
    tu_teardown(&fx);
}

static void decide_works_before_the_store_is_open(void)
{
    /* No roster yet, no audit log: decisions still answer, from the config. */
    char *config = tu_config("/nonexistent/ssp", SCHOOLS);
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(config, strlen(config), TU_SERVER, TU_WORKER, &err);
    ssp_request req;
    ssp_decision d;
    ssp_audit_stats stats;

    REQUIRE(engine != NULL);
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = ANNA;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(engine, &req, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    req.actor = BOT;
    ssp_decide(engine, &req, &d);
    CHECK_ALLOW(d);
    ssp_audit_get_stats(engine, &stats);
    CHECK_INT_EQ(stats.queued, 0);
    ssp_engine_free(engine);
    free(config);
}

/* A caller that leaves the room's power levels and create content to be
 * read on first use (ssp_room_details). */
typedef struct lazy_room {
    ssp_room_details base;
    int calls;
    bool fail;
    int64_t actor_level;
    ssp_power_levels *pl;
    ssp_room_create *create;
} lazy_room;

static int lazy_room_load(ssp_room_details *base)
{
    lazy_room *lazy = (lazy_room *)base;

    lazy->calls++;
    if (lazy->fail)
        return -1;
    lazy->pl->actor_listed = true;
    lazy->pl->actor_level = lazy->actor_level;
    lazy->create->room_version = "10";
    lazy->create->room_version_len = 2;
    return 0;
}

static void lazy_send(tu_fixture *fx, const char *actor, bool two_way, lazy_room *lazy, ssp_decision *out)
{
    ssp_room_policy room = policy_of("gym-nord");
    ssp_power_levels pl;
    ssp_room_create create;
    ssp_request req;

    memset(&pl, 0, sizeof pl);
    memset(&create, 0, sizeof create);
    create.sender = BOT;
    room.two_way = two_way;
    lazy->base = (ssp_room_details){lazy_room_load, false, false};
    lazy->pl = &pl;
    lazy->create = &create;
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_EVENT_FOR_SPAM;
    req.actor = actor;
    req.room_id = ROOM;
    req.event_type = "m.room.message";
    req.room_managed = SSP_FACT_YES;
    req.room = &room;
    req.room_power_levels = &pl;
    req.room_create = &create;
    req.room_details = &lazy->base;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, out);
}

/* The details are read once, and only when a rule reads them: a two-way
 * room's message reads no level, a one-way room's does. A failed read
 * voids the decision: nothing is audited. */
static void decide_reads_room_details_only_when_a_rule_needs_them(void)
{
    tu_fixture fx;
    ssp_decision d;
    lazy_room lazy = {.actor_level = 0};

    if (!roster_world_setup(&fx, NULL))
        goto out;
    lazy_send(&fx, ANNA, true, &lazy, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(lazy.calls, 0);
    lazy_send(&fx, ANNA, false, &lazy, &d);
    CHECK_DENY(d, SSP_RULE_ONE_WAY, true, "gym-nord");
    CHECK_INT_EQ(lazy.calls, 1);
    CHECK(lazy.base.loaded && !lazy.base.failed);
    CHECK_INT_EQ(queued(&fx), 1);
    lazy.calls = 0;
    lazy.actor_level = 50; /* a moderator by the users map */
    lazy_send(&fx, ANNA, false, &lazy, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(lazy.calls, 1);
    lazy.calls = 0;
    lazy.actor_level = 0;
    lazy.fail = true;
    lazy_send(&fx, ANNA, false, &lazy, &d);
    CHECK(lazy.base.failed);
    CHECK_INT_EQ(lazy.calls, 1);
    CHECK_INT_EQ(queued(&fx), 1); /* the void decision queued nothing */
out:
    tu_teardown(&fx);
}

static void only_a_service_users_policy_event_makes_a_room_managed(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_room_create teachers = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_request req;

    REQUIRE(course_world_setup(&fx));
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, PUPIL, &room, &SYNC_CREATE);
    req.event_type = "m.room.message";
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    /* Sent by a user of another server: ignored, the room is not managed. */
    room.sender = REMOTE;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    /* A local teacher's policy event counts only in a room the sync made. */
    room.sender = TEACHER;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_ONE_WAY);
    room.creator = TEACHER;
    req.room_create = &teachers;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    /* Such a room qualifies for nothing. */
    req = in_room(SSP_CB_USER_MAY_INVITE, PUPIL, NULL, &SYNC_CREATE);
    req.target = PUPIL2;
    req.shared_rooms = &room;
    req.n_shared_rooms = 1;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_NO_SHARED_ROOM);
    room.sender = room.creator = SYNC;
    req.member_count_known = true;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

void run_decide_tests(void)
{
    RUN(decide_service_users_are_exempt);
    RUN(decide_asks_whether_the_actor_is_admin_before_denying_a_local_user);
    RUN(decide_server_admins_are_exempt);
    RUN(decide_room_callbacks_with_a_room_id_ask_for_the_room_policy);
    RUN(decide_works_before_the_store_is_open);
    RUN(decide_reads_room_details_only_when_a_rule_needs_them);
    RUN(only_a_service_users_policy_event_makes_a_room_managed);
}
