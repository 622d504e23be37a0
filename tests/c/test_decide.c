/* Rule 1 (school opt-in) decisions through the public API (decide.c), and
 * the wait for a denial's audit record (durable before the 403). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define BOT "@bot:school.example"
#define ANNA "@anna:school.example" /* gym-nord (enabled) */
#define BEN "@ben:school.example"   /* gym-sued (disabled, enforcing) */
#define CARL "@carl:school.example" /* gym-sued and gym-nord */
#define DORA "@dora:school.example" /* rs-ost (disabled, report-only) */
#define EMIL "@emil:school.example" /* rs-ost, then gym-sued */
#define FINN "@finn:school.example" /* a school the config does not list */
#define ZOE "@zoe:school.example"   /* not on the roster */
#define REMOTE "@rita:remote.example"
#define ROOM "!room:school.example"

#define SCHOOLS                                                                                    \
    "\"service_users\": [\"@bot:school.example\"], \"schools\": {"                                 \
    "\"gym-nord\": {\"messenger\": true}, \"gym-sued\": {\"messenger\": false},"                   \
    " \"rs-ost\": {\"messenger\": false, \"enforce\": false}}"

static bool load_roster(tu_fixture *fx)
{
    static const char body[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@carl:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": "
        "\"teacher\"}, {\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"@dora:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@emil:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": "
        "\"student\"}, {\"school\": \"gym-sued\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"@finn:school.example\", \"schools\": [{\"school\": \"atlantis\", \"role\": "
        "\"student\"}]}]}";
    size_t upserted = 0;

    if (ssp_roster_upsert_batch(fx->engine, body, strlen(body), &upserted, &fx->err) != 0) {
        CHECK_FAIL("cannot load the roster: %s", fx->err.message);
        return false;
    }
    return true;
}

static bool setup(tu_fixture *fx, const char *extra)
{
    char *members = tu_format("%s%s%s", SCHOOLS, extra ? ", " : "", extra ? extra : "");
    bool ok = tu_setup(fx, members) && load_roster(fx);

    free(members);
    return ok;
}

/* One request; `room` may be NULL. */
static void decide(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
                   const char *room_id, ssp_fact managed, const ssp_room_policy *room,
                   ssp_fact admin, ssp_decision *out)
{
    /* Managed rooms are created on this server by the service user. */
    static const ssp_room_create create = {.sender = BOT, .room_version = "12", .room_version_len = 2};
    ssp_request req;

    memset(&req, 0, sizeof req);
    req.callback = cb;
    req.actor = actor;
    req.target = target;
    req.room_id = room_id;
    req.event_type = cb == SSP_CB_CHECK_EVENT_FOR_SPAM ? "m.room.message" : NULL;
    req.room_managed = managed;
    req.room = room;
    req.room_create = managed == SSP_FACT_UNKNOWN ? NULL : &create;
    req.actor_is_admin = admin;
    ssp_decide(fx->engine, &req, out);
}

static void login(tu_fixture *fx, const char *actor, ssp_fact admin, ssp_decision *out)
{
    decide(fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, actor, NULL, NULL, SSP_FACT_UNKNOWN, NULL, admin, out);
}

static uint64_t queued(tu_fixture *fx)
{
    ssp_audit_stats stats;

    ssp_audit_get_stats(fx->engine, &stats);
    return stats.queued;
}

static ssp_room_policy policy_of(const char *school)
{
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    p.sender = BOT;
    p.creator = BOT;
    p.school = school;
    p.school_len = school ? strlen(school) : 0;
    p.kind = SSP_KIND_COURSE;
    return p;
}

#define CHECK_ALLOW(d)                                                                             \
    do {                                                                                           \
        if ((d).verdict != SSP_VERDICT_ALLOW)                                                      \
            CHECK_FAIL("verdict %d (rule %s), expected ALLOW", (int)(d).verdict,                   \
                       ssp_rule_id((d).rule));                                                     \
    } while (0)

static bool is_rule1(ssp_rule rule)
{
    return rule == SSP_RULE_NOT_ON_ROSTER || rule == SSP_RULE_SCHOOL_NOT_ENABLED ||
           rule == SSP_RULE_ROOM_SCHOOL_NOT_ENABLED;
}

/* Rule 1 lets the request through: it is not denied under a rule-1 rule id
 * and no rule-1 fact (admin, room) is still asked for. Later rules may
 * still deny it or ask for facts of their own, which these tests leave to
 * the tests of those rules; pass SSP_FACT_NO for the admin question so that
 * a NEED_ADMIN cannot hide which rule was about to deny. */
#define CHECK_RULE1_ALLOWS(d)                                                                      \
    do {                                                                                           \
        if ((d).verdict == SSP_VERDICT_DENY ? is_rule1((d).rule)                                   \
                                            : ((d).verdict == SSP_VERDICT_NEED_ADMIN ||            \
                                               (d).verdict == SSP_VERDICT_NEED_ROOM))              \
            CHECK_FAIL("verdict %d (rule %s), expected rule 1 to let it through",                 \
                       (int)(d).verdict, ssp_rule_id((d).rule));                                   \
    } while (0)

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

#define CHECK_DENY(d, rule_, enforced_, school_)                                                   \
    do {                                                                                           \
        if ((d).verdict != SSP_VERDICT_DENY || (d).rule != (rule_) ||                              \
            (d).enforced != (enforced_) || strcmp((d).school, (school_)) != 0 ||                   \
            (d).message == NULL)                                                                   \
            CHECK_FAIL("verdict %d rule %s enforced %d school \"%s\", expected DENY %s %d \"%s\"",  \
                       (int)(d).verdict, ssp_rule_id((d).rule), (int)(d).enforced, (d).school,     \
                       ssp_rule_id(rule_), (int)(enforced_), (school_));                           \
    } while (0)

static void decide_service_users_are_exempt(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

static void decide_unlisted_local_user_is_denied_not_on_roster(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, "\"unlisted_users\": \"allow\""))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
        goto out;
    /* emil: rs-ost (report-only) first, then gym-sued (enforcing) */
    login(&fx, EMIL, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gym-sued");
out:
    tu_teardown(&fx);
}

static void decide_roster_changes_take_effect_at_once(void)
{
    tu_fixture fx;
    ssp_decision d;
    bool existed;

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, REMOTE, NULL, SSP_FACT_UNKNOWN, NULL, SSP_FACT_NO, &d);
    CHECK_RULE1_ALLOWS(d);
out:
    tu_teardown(&fx);
}

static void decide_room_callbacks_with_a_room_id_ask_for_the_room_policy(void)
{
    tu_fixture fx;
    ssp_decision d;
    static const ssp_callback room_cbs[] = {SSP_CB_USER_MAY_JOIN_ROOM, SSP_CB_USER_MAY_INVITE,
                                            SSP_CB_CHECK_EVENT_FOR_SPAM};

    if (!setup(&fx, NULL))
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

static void decide_managed_room_of_a_disabled_school_is_frozen(void)
{
    tu_fixture fx;
    ssp_room_policy sued = policy_of("gym-sued");
    ssp_decision d;

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL) || nord == NULL || sued == NULL)
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, "\"enforce\": false"))
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

/* A school id of `n` copies of "é" (two bytes each), NUL-terminated. */
static char *long_multibyte_school(size_t n)
{
    char *s = malloc(2 * n + 1);

    for (size_t i = 0; i < n; i++) {
        s[2 * i] = (char)0xc3;
        s[2 * i + 1] = (char)0xa9;
    }
    s[2 * n] = '\0';
    return s;
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

    if (!setup(&fx, NULL))
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

static void audit_writer_keeps_writing_after_a_denial_for_a_long_room_school(void)
{
    /* The same denial as above must not wedge the audit writer: one record
     * that cannot be serialised would be retried forever and hold back
     * every record queued after it. */
    tu_fixture fx;
    char *school = long_multibyte_school(200);
    ssp_room_policy p = policy_of(school);
    ssp_decision d;
    ssp_audit_stats stats;
    struct timespec pause = {0, 10 * 1000 * 1000};

    if (!setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    login(&fx, ZOE, SSP_FACT_NO, &d); /* an ordinary record behind it */
    for (int i = 0; i < 300; i++) { /* up to 3 s */
        ssp_audit_get_stats(fx.engine, &stats);
        if (stats.queue_depth == 0 || stats.write_errors > 0)
            break;
        nanosleep(&pause, NULL);
    }
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.write_errors, 0);
    CHECK_INT_EQ(stats.queue_depth, 0);
    CHECK_INT_EQ(stats.written, 2);
out:
    free(school);
    tu_teardown(&fx);
}


/* ---- a denial is durable before its answer ---- */

/* The id of the last whole record of a jsonl file, or 0. */
static int64_t last_record_id(const char *path)
{
    char *text = tu_read_file(path, NULL), *line;
    int64_t id = 0;
    json_t *rec;

    if (text == NULL || text[0] == '\0') {
        free(text);
        return 0;
    }
    text[strlen(text) - 1] = '\0'; /* the last newline */
    line = strrchr(text, '\n');
    rec = tu_json(line ? line + 1 : text);
    id = (int64_t)json_integer_value(json_object_get(rec, "id"));
    json_decref(rec);
    free(text);
    return id;
}

static void decide_denial_reports_its_record_and_waits_until_it_is_on_disk(void)
{
    tu_fixture fx;
    ssp_decision d;
    char *path = NULL;

    if (!setup(&fx, NULL))
        goto out;
    login(&fx, ANNA, SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(d.audit_id, 0);
    login(&fx, ZOE, SSP_FACT_UNKNOWN, &d); /* NEED_ADMIN: nothing queued yet */
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ADMIN);
    CHECK_INT_EQ(d.audit_id, 0);
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    CHECK(d.audit_id > 0);
    CHECK(ssp_decision_wait_durable(fx.engine, d.audit_id, 5000));
    /* Written means in the file, not only out of the queue. */
    path = tu_path(fx.dir, "audit.jsonl");
    CHECK_INT_EQ(last_record_id(path), d.audit_id);
    /* The next denial gets the next id; nothing to wait for is no wait. */
    {
        int64_t first = d.audit_id;

        login(&fx, BEN, SSP_FACT_NO, &d);
        CHECK_INT_EQ(d.audit_id, first + 1);
        CHECK(ssp_decision_wait_durable(fx.engine, d.audit_id, 5000));
        CHECK_INT_EQ(last_record_id(path), first + 1);
        CHECK(ssp_decision_wait_durable(fx.engine, 0, 0));
    }
out:
    free(path);
    tu_teardown(&fx);
}

#define WAITERS 16

typedef struct waiter {
    ssp_engine *engine;
    int64_t audit_id;
    bool durable;
} waiter;

static void *deny_and_wait(void *arg)
{
    waiter *w = arg;
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = BEN;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(w->engine, &req, &d);
    w->audit_id = d.audit_id;
    w->durable = ssp_decision_wait_durable(w->engine, d.audit_id, 10000);
    return NULL;
}

static void decide_concurrent_denials_each_wait_for_their_own_record(void)
{
    tu_fixture fx;
    pthread_t threads[WAITERS];
    waiter waiters[WAITERS];
    int started = 0;
    ssp_audit_stats stats;

    if (!setup(&fx, NULL))
        goto out;
    for (int i = 0; i < WAITERS; i++) {
        waiters[i] = (waiter){fx.engine, 0, false};
        if (pthread_create(&threads[i], NULL, deny_and_wait, &waiters[i]) != 0) {
            CHECK_FAIL("pthread_create failed");
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < started; i++) {
        CHECK(waiters[i].audit_id > 0);
        CHECK(waiters[i].durable);
        for (int j = 0; j < i; j++)
            CHECK(waiters[i].audit_id != waiters[j].audit_id);
    }
    /* Each returned only once its record was written; all are. */
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.written, started);
out:
    tu_teardown(&fx);
}

typedef struct late_writer {
    ssp_audit_queue *log;
    int64_t id;
} late_writer;

/* Plays the writer: marks the record written after a while. */
static void *write_later(void *arg)
{
    late_writer *w = arg;
    struct timespec pause = {0, 50 * 1000 * 1000};

    nanosleep(&pause, NULL);
    pthread_mutex_lock(&w->log->mutex);
    w->log->last_written_id = w->id;
    pthread_cond_broadcast(&w->log->written_cond);
    pthread_mutex_unlock(&w->log->mutex);
    return NULL;
}

static void audit_wait_written_times_out_while_nothing_writes(void)
{
    /* The queue of the PostgreSQL store without its thread: nothing writes. */
    ssp_audit_queue log;
    ssp_error err = {0};
    struct timespec before, after;
    int64_t id, waited_ms;
    late_writer writer;
    pthread_t thread;

    if (ssp_audit_open(&log, "main", "nowhere", 0, -1, &err) != 0) {
        CHECK_FAIL("cannot open the queue: %s", err.message);
        return;
    }
    id = ssp_audit_submit(&log, SSP_RULE_ONE_WAY, SSP_CB_CHECK_EVENT_FOR_SPAM, true, ANNA, NULL,
                          ROOM, "m.room.message", "gym-nord");
    CHECK_INT_EQ(id, 1);
    clock_gettime(CLOCK_MONOTONIC, &before);
    CHECK_INT_EQ(ssp_audit_wait_written(&log, id, 100), -1);
    clock_gettime(CLOCK_MONOTONIC, &after);
    waited_ms = (after.tv_sec - before.tv_sec) * 1000 + (after.tv_nsec - before.tv_nsec) / 1000000;
    CHECK(waited_ms >= 90);
    /* A writer that gets there within the timeout ends the wait. */
    writer = (late_writer){&log, id};
    if (pthread_create(&thread, NULL, write_later, &writer) != 0) {
        CHECK_FAIL("pthread_create failed");
    } else {
        CHECK_INT_EQ(ssp_audit_wait_written(&log, id, 10000), 0);
        pthread_join(thread, NULL);
    }
    CHECK_INT_EQ(ssp_audit_wait_written(&log, id, 0), 0);
    ssp_audit_close(&log);
}

static void decide_denial_is_durable_in_the_spill_file_while_the_database_is_away(void)
{
    tu_fixture fx;
    ssp_decision d;
    char *spill = NULL;

    /* Port 1 on loopback: nothing listens, connect() is refused at once. */
    if (!setup(&fx, "\"database\": \"host=127.0.0.1 port=1 dbname=x user=x\""))
        goto out;
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    CHECK(d.audit_id > 0);
    CHECK(ssp_decision_wait_durable(fx.engine, d.audit_id, 10000));
    spill = tu_path(fx.dir, "main.audit-spill.jsonl");
    CHECK_INT_EQ(last_record_id(spill), d.audit_id);
out:
    free(spill);
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

    if (!setup(&fx, NULL))
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

    if (!setup(&fx, NULL))
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

void run_decide_tests(void)
{
    RUN(decide_reads_room_details_only_when_a_rule_needs_them);
    RUN(decide_memberships_find_their_school_on_every_roster_path);
    RUN(decide_service_users_are_exempt);
    RUN(decide_asks_whether_the_actor_is_admin_before_denying_a_local_user);
    RUN(decide_server_admins_are_exempt);
    RUN(decide_unlisted_local_user_is_denied_not_on_roster);
    RUN(decide_unlisted_users_allow_lets_unlisted_users_act);
    RUN(decide_user_of_enabled_school_is_allowed);
    RUN(decide_user_none_of_whose_schools_is_enabled_is_denied_school_not_enabled);
    RUN(decide_user_in_two_schools_is_allowed_when_one_is_enabled);
    RUN(decide_school_not_enabled_names_the_first_enforcing_school);
    RUN(decide_roster_changes_take_effect_at_once);
    RUN(decide_remote_actors_skip_the_actor_checks);
    RUN(decide_invite_of_a_local_user_who_would_be_refused_is_denied);
    RUN(decide_invite_of_a_remote_user_skips_the_target_check);
    RUN(decide_room_callbacks_with_a_room_id_ask_for_the_room_policy);
    RUN(decide_managed_room_of_a_disabled_school_is_frozen);
    RUN(decide_managed_room_of_an_unknown_school_is_frozen);
    RUN(decide_policy_without_a_school_freezes_the_room);
    RUN(decide_managed_room_of_an_enabled_school_is_open);
    RUN(decide_empty_policy_counts_as_unmanaged);
    RUN(decide_room_school_need_not_be_nul_terminated);
    RUN(decide_school_with_enforce_false_is_report_only);
    RUN(decide_global_enforce_false_is_report_only);
    RUN(decide_works_before_the_store_is_open);
    RUN(decide_school_of_a_long_room_school_is_valid_utf8);
    RUN(audit_writer_keeps_writing_after_a_denial_for_a_long_room_school);
    RUN(decide_denial_reports_its_record_and_waits_until_it_is_on_disk);
    RUN(decide_concurrent_denials_each_wait_for_their_own_record);
    RUN(audit_wait_written_times_out_while_nothing_writes);
    RUN(decide_denial_is_durable_in_the_spill_file_while_the_database_is_away);
}
