/*
 * Rule 1, the schools' opt-in (rules/opt_in.c): not_on_roster,
 * school_not_enabled and room_school_not_enabled, in the roster world.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

/* Audit records of rule-1 denials (flushes first). */
static long rule1_records(tu_fixture *fx)
{
    static const char *const rules[] = {"not_on_roster", "school_not_enabled",
                                        "room_school_not_enabled"};
    long total = 0;

    for (size_t i = 0; i < 3; i++) {
        ssp_audit_filter f;
        char *text = NULL;
        json_t *result;

        memset(&f, 0, sizeof f);
        f.limit = 1000;
        f.rule = rules[i];
        if (ssp_audit_query(fx->engine, &f, &text, &fx->err) != 0) {
            CHECK_FAIL("audit query failed: %s", fx->err.message);
            return -1;
        }
        result = tu_json(text);
        total += (long)json_array_size(json_object_get(result, "records"));
        json_decref(result);
        free(text);
    }
    return total;
}

static void decide_unlisted_local_user_is_denied_not_on_roster(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    CHECK_STR_EQ(d.message, "You are not on a school roster, so you cannot use the messenger.");
    CHECK_INT_EQ(rule1_records(&fx), 1);
    decide(&fx, SSP_CB_USER_MAY_CREATE_ROOM, ZOE, NULL, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO,
           &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
out:
    tu_teardown(&fx);
}

static void decide_unlisted_users_allow_lets_unlisted_users_act(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, "\"unlisted_users\": \"allow\""))
        goto out;
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_ALLOW(d);
    /* roster users of disabled schools are still denied */
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
out:
    tu_teardown(&fx);
}

static void decide_user_of_enabled_school_is_allowed(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, ANNA, SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    decide(&fx, SSP_CB_USER_MAY_CREATE_ROOM, ANNA, NULL, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO,
           &d);
    CHECK_RULE1_ALLOWS(d);
    CHECK_INT_EQ(rule1_records(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_user_none_of_whose_schools_is_enabled_is_denied_school_not_enabled(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
    CHECK_STR_EQ(d.message, "The messenger is not enabled for your school.");
    /* a school the config does not list counts as not enabled */
    login(&fx, FINN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "atlantis");
    CHECK_INT_EQ(rule1_records(&fx), 2);
out:
    tu_teardown(&fx);
}

static void decide_user_in_two_schools_is_allowed_when_one_is_enabled(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, CARL, SSP_FACT_NO, &d);
    CHECK_ALLOW(d);
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, CARL, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
out:
    tu_teardown(&fx);
}

static void decide_school_not_enabled_names_the_first_enforcing_school(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    /* emil: rs-ost (report-only) first, then gym-sued (enforcing) */
    login(&fx, EMIL, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
out:
    tu_teardown(&fx);
}

/* Roster memberships are linked to their schools' config entries when they
 * enter the roster: by a batch, by one put (which replaces the entry), and
 * by the replay of the store when the engine is opened again. Every path
 * decides as before: an opted-in school among several allows, a school the
 * config does not list counts as not enabled. */
static void decide_memberships_find_their_school_on_every_roster_path(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    for (int round = 0; round < 2; round++) {
        login(&fx, ANNA, SSP_FACT_NO, &d);
        CHECK_ALLOW(d);
        login(&fx, CARL, SSP_FACT_NO, &d); /* gym-sued first, gym-nord second */
        CHECK_ALLOW(d);
        login(&fx, FINN, SSP_FACT_NO, &d);
        CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "atlantis");
        login(&fx, EMIL, SSP_FACT_NO, &d); /* rs-ost does not enforce, gym-sued does */
        CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
        if (round == 0 &&
            (tu_put(&fx, FINN, "{\"schools\": [{\"school\": \"atlantis\", \"role\": \"student\"}]}") != 0 ||
             tu_put(&fx, ANNA, "{\"schools\": [{\"school\": \"rs-ost\", \"role\": \"student\"}, "
                               "{\"school\": \"gym-nord\", \"role\": \"student\"}]}") != 0 ||
             !tu_reopen(&fx)))
            goto out;
    }
    /* a put that moves a user to an enabled school takes effect at once */
    REQUIRE_INT_EQ(tu_put(&fx, FINN, "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"), 0);
    login(&fx, FINN, SSP_FACT_NO, &d);
    CHECK_ALLOW(d);
out:
    tu_teardown(&fx);
}

static void decide_roster_changes_take_effect_at_once(void)
{
    tu_fixture fx;
    ssp_decision d;
    bool existed;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
    REQUIRE_OK(tu_put(&fx, BEN, "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"),
               fx.err);
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_ALLOW(d);
    REQUIRE_OK(ssp_roster_delete(fx.engine, BEN, &existed, &fx.err), fx.err);
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
out:
    tu_teardown(&fx);
}

static void decide_remote_actors_skip_the_actor_checks(void)
{
    tu_fixture fx;
    ssp_room_policy nord = policy_of("gym-nord");
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, REMOTE, SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, REMOTE, NULL, ROOM, SSP_FACT_YES, &nord, SSP_FACT_UNKNOWN,
           &d);
    CHECK_RULE1_ALLOWS(d);
    /* a user id on another server that merely starts like ours is remote */
    login(&fx, "@zoe:school.example.evil", SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(rule1_records(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_invite_of_a_local_user_who_would_be_refused_is_denied(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    /* local inviter: the admin question comes first */
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, BEN, ROOM, SSP_FACT_UNKNOWN, NULL, SSP_FACT_UNKNOWN,
           &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ADMIN);
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, BEN, ROOM, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
    CHECK_STR_EQ(d.message, "The messenger is not enabled for the invited user's school.");
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, ZOE, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    CHECK_STR_EQ(d.message, "The invited user is not on a school roster.");
    /* federated invite: the remote inviter is not asked about, the invitee is checked */
    decide(&fx, SSP_CB_FEDERATED_USER_MAY_INVITE, REMOTE, ZOE, ROOM, SSP_FACT_UNKNOWN, NULL,
           SSP_FACT_UNKNOWN, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    decide(&fx, SSP_CB_FEDERATED_USER_MAY_INVITE, REMOTE, ANNA, ROOM, SSP_FACT_UNKNOWN, NULL,
           SSP_FACT_UNKNOWN, &d);
    CHECK_RULE1_ALLOWS(d);
    CHECK_INT_EQ(rule1_records(&fx), 3);
out:
    tu_teardown(&fx);
}

static void decide_invite_of_a_remote_user_skips_the_target_check(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, REMOTE, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
out:
    tu_teardown(&fx);
}

static void decide_managed_room_of_a_disabled_school_is_frozen(void)
{
    tu_fixture fx;
    ssp_room_policy sued = policy_of("gym-sued");
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, ANNA, NULL, ROOM, SSP_FACT_YES, &sued, SSP_FACT_UNKNOWN,
           &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ADMIN);
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, ANNA, NULL, ROOM, SSP_FACT_YES, &sued, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "gym-sued");
    CHECK_STR_EQ(d.message, "This room belongs to a school whose messenger is not enabled.");
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, CARL, NULL, ROOM, SSP_FACT_YES, &sued, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "gym-sued");
    /* remote actors too, without the admin question */
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, ROOM, SSP_FACT_YES, &sued,
           SSP_FACT_UNKNOWN, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "gym-sued");
    CHECK_INT_EQ(rule1_records(&fx), 3);
out:
    tu_teardown(&fx);
}

static void decide_managed_room_of_an_unknown_school_is_frozen(void)
{
    tu_fixture fx;
    ssp_room_policy p = policy_of("atlantis");
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "atlantis");
out:
    tu_teardown(&fx);
}

static void decide_policy_without_a_school_freezes_the_room(void)
{
    tu_fixture fx;
    ssp_room_policy p = policy_of(NULL);
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "");
    p = policy_of("");
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "");
out:
    tu_teardown(&fx);
}

static void decide_managed_room_of_an_enabled_school_is_open(void)
{
    tu_fixture fx;
    ssp_room_policy p = policy_of("gym-nord");
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
    decide(&fx, SSP_CB_USER_MAY_INVITE, CARL, ANNA, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
    CHECK_INT_EQ(rule1_records(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_empty_policy_counts_as_unmanaged(void)
{
    tu_fixture fx;
    ssp_room_policy p = policy_of(NULL);
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    p.empty = true;
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
    p = policy_of("gym-sued");
    p.empty = true;
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
    CHECK_INT_EQ(rule1_records(&fx), 0);
out:
    tu_teardown(&fx);
}

static void decide_room_school_need_not_be_nul_terminated(void)
{
    tu_fixture fx;
    ssp_room_policy p;
    ssp_decision d;
    char *nord = malloc(8), *sued = malloc(8);

    if (!roster_world_setup(&fx, NULL) || nord == NULL || sued == NULL)
        goto out;
    memcpy(nord, "gym-nord", 8);
    memcpy(sued, "gym-sued", 8);
    p = policy_of(NULL);
    p.school = nord;
    p.school_len = 8;
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
    p.school = sued;
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "gym-sued");
    /* a prefix of an enabled school is another school */
    p.school = nord;
    p.school_len = 3;
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, true, "gym");
out:
    free(nord);
    free(sued);
    tu_teardown(&fx);
}

static void decide_school_with_enforce_false_is_report_only(void)
{
    tu_fixture fx;
    ssp_room_policy ost = policy_of("rs-ost");
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, DORA, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, false, "rs-ost");
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &ost, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, false, "rs-ost");
    /* other schools still enforce */
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    /* report-only denials are audited all the same */
    CHECK_INT_EQ(rule1_records(&fx), 4);
out:
    tu_teardown(&fx);
}

static void decide_global_enforce_false_is_report_only(void)
{
    tu_fixture fx;
    ssp_room_policy unknown = policy_of("atlantis"), none = policy_of(NULL);
    ssp_decision d;

    if (!roster_world_setup(&fx, "\"enforce\": false"))
        goto out;
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, false, "");
    login(&fx, BEN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, false, "gym-sued");
    login(&fx, FINN, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, false, "atlantis");
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &unknown, SSP_FACT_NO,
           &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, false, "atlantis");
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, ANNA, NULL, ROOM, SSP_FACT_YES, &none, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, false, "");
    CHECK_INT_EQ(rule1_records(&fx), 5);
out:
    tu_teardown(&fx);
}

static void decide_school_of_a_long_room_school_is_valid_utf8(void)
{
    /* A room's policy event is written by room members (or a remote
     * server), so its school can be any string. The decision's school is
     * cut to 255 bytes; it must not be cut inside a UTF-8 sequence, because
     * the binding turns it into a Python str and the audit writer into
     * JSON. */
    tu_fixture fx;
    char *school = long_multibyte_school(200); /* 400 bytes */
    ssp_room_policy p = policy_of(school);
    ssp_decision d;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
    CHECK_INT_EQ(d.rule, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED);
    CHECK(strlen(d.school) <= SSP_SCHOOL_ID_MAX);
    if (!tu_valid_utf8(d.school, strlen(d.school)))
        CHECK_FAIL("decision.school (%zu bytes) ends inside a UTF-8 sequence: ...\\x%02x",
                   strlen(d.school), (unsigned char)d.school[strlen(d.school) - 1]);
out:
    free(school);
    tu_teardown(&fx);
}

void run_rule_opt_in_tests(void)
{
    RUN(decide_unlisted_local_user_is_denied_not_on_roster);
    RUN(decide_unlisted_users_allow_lets_unlisted_users_act);
    RUN(decide_user_of_enabled_school_is_allowed);
    RUN(decide_user_none_of_whose_schools_is_enabled_is_denied_school_not_enabled);
    RUN(decide_user_in_two_schools_is_allowed_when_one_is_enabled);
    RUN(decide_school_not_enabled_names_the_first_enforcing_school);
    RUN(decide_memberships_find_their_school_on_every_roster_path);
    RUN(decide_roster_changes_take_effect_at_once);
    RUN(decide_remote_actors_skip_the_actor_checks);
    RUN(decide_invite_of_a_local_user_who_would_be_refused_is_denied);
    RUN(decide_invite_of_a_remote_user_skips_the_target_check);
    RUN(decide_managed_room_of_a_disabled_school_is_frozen);
    RUN(decide_managed_room_of_an_unknown_school_is_frozen);
    RUN(decide_policy_without_a_school_freezes_the_room);
    RUN(decide_managed_room_of_an_enabled_school_is_open);
    RUN(decide_empty_policy_counts_as_unmanaged);
    RUN(decide_room_school_need_not_be_nul_terminated);
    RUN(decide_school_with_enforce_false_is_report_only);
    RUN(decide_global_enforce_false_is_report_only);
    RUN(decide_school_of_a_long_room_school_is_valid_utf8);
}
