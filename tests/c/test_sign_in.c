/* Signing in (decide.c): what the sign-in callbacks decide, the identity
 * provider's id in their audit records, SSO registrations, and what
 * audit.readers who are on no opted-in school's roster may do. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define ANNA "@anna:school.example" /* gym-nord (opted in) */
#define BEN "@ben:school.example"   /* gym-sued (not opted in) */
#define DPO "@dpo:school.example"   /* audit reader, on no roster */
#define DORA "@dora:school.example" /* audit reader, gym-sued */
#define ZOE "@zoe:school.example"   /* on no roster */
#define PROVIDER "oidc-school-cloud"
#define ROOM "!room:school.example"

#define CONFIG                                                                                     \
    "\"schools\": {\"gym-nord\": {\"messenger\": true}, \"gym-sued\": {\"messenger\": false}},"    \
    " \"audit\": {\"readers\": [\"@dpo:school.example\", \"@dora:school.example\"]}"

static bool setup(tu_fixture *fx)
{
    if (!tu_setup(fx, CONFIG))
        return false;
    return tu_put(fx, ANNA, "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}") == 0 &&
           tu_put(fx, BEN, "{\"schools\": [{\"school\": \"gym-sued\", \"role\": \"student\"}]}") == 0 &&
           tu_put(fx, DORA, "{\"schools\": [{\"school\": \"gym-sued\", \"role\": \"teacher\"}]}") == 0;
}

/* One decision of a user who is not a server admin. */
static void decide(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
                   const char *room_id, ssp_decision *out)
{
    ssp_request req;

    memset(&req, 0, sizeof req);
    req.callback = cb;
    req.actor = actor;
    req.target = target;
    req.room_id = room_id;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, out);
}

/* The newest audit record, as JSON (caller decrefs); NULL when none. */
static json_t *newest_record(tu_fixture *fx)
{
    ssp_audit_filter f;
    char *text = NULL;
    json_t *page, *record;

    memset(&f, 0, sizeof f);
    f.limit = 1;
    if (ssp_audit_query(fx->engine, &f, &text, &fx->err) != 0) {
        CHECK_FAIL("audit query failed: %s", fx->err.message);
        return NULL;
    }
    page = tu_json(text);
    free(text);
    record = json_incref(json_array_get(json_object_get(page, "records"), 0));
    json_decref(page);
    return record;
}

#define CHECK_VERDICT(d, verdict_, rule_)                                                          \
    do {                                                                                           \
        if ((d).verdict != (verdict_) || (d).rule != (rule_))                                      \
            CHECK_FAIL("verdict %d rule %s, expected %d %s", (int)(d).verdict,                     \
                       ssp_rule_id((d).rule), (int)(verdict_), ssp_rule_id(rule_));                \
    } while (0)

static void sign_in_refusals_name_the_identity_provider_in_the_audit(void)
{
    tu_fixture fx;
    ssp_decision d;
    json_t *record;

    if (!setup(&fx))
        goto out;
    decide(&fx, SSP_CB_ON_USER_LOGIN, BEN, PROVIDER, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_SCHOOL_NOT_ENABLED);
    CHECK_STR_EQ(d.message, "The messenger is not enabled for your school.");
    record = newest_record(&fx);
    CHECK(record != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "callback")), "on_user_login");
    CHECK_STR_EQ(json_string_value(json_object_get(record, "actor")), BEN);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "target")), PROVIDER);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "school")), "gym-sued");
    json_decref(record);
    /* check_login_for_spam carries the provider the same way; a password
     * login has none */
    decide(&fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, ZOE, PROVIDER, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
    record = newest_record(&fx);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "target")), PROVIDER);
    json_decref(record);
    decide(&fx, SSP_CB_ON_USER_LOGIN, ANNA, PROVIDER, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
out:
    tu_teardown(&fx);
}

static void sign_in_provider_id_is_never_judged_as_a_user(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!setup(&fx))
        goto out;
    /* A provider id shaped like a refused local user changes nothing: the
     * target of a sign-in is not an invitee. */
    decide(&fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, ANNA, BEN, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
    decide(&fx, SSP_CB_IS_USER_EXPIRED, ANNA, ZOE, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
out:
    tu_teardown(&fx);
}

static void sign_in_sso_registration_follows_rule_1_and_the_school_clouds_own_does_not(void)
{
    tu_fixture fx;
    ssp_decision d;
    json_t *record;

    if (!setup(&fx))
        goto out;
    /* single sign-on creating an account: rule 1 for the account to be */
    decide(&fx, SSP_CB_CHECK_REGISTRATION_FOR_SPAM, ZOE, PROVIDER, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
    CHECK_STR_EQ(d.message, "You are not on a school roster, so you cannot use the messenger.");
    record = newest_record(&fx);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "callback")), "check_registration_for_spam");
    CHECK_STR_EQ(json_string_value(json_object_get(record, "target")), PROVIDER);
    json_decref(record);
    decide(&fx, SSP_CB_CHECK_REGISTRATION_FOR_SPAM, BEN, PROVIDER, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_SCHOOL_NOT_ENABLED);
    decide(&fx, SSP_CB_CHECK_REGISTRATION_FOR_SPAM, ANNA, PROVIDER, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
    /* no provider: the admin API or a JWT login; the roster may come later */
    decide(&fx, SSP_CB_CHECK_REGISTRATION_FOR_SPAM, ZOE, NULL, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
out:
    tu_teardown(&fx);
}

static void sign_in_audit_reader_on_no_roster_signs_in_and_does_nothing_else(void)
{
    tu_fixture fx;
    ssp_decision d;
    static const ssp_callback signs_in[] = {SSP_CB_CHECK_LOGIN_FOR_SPAM, SSP_CB_ON_USER_LOGIN,
                                            SSP_CB_CHECK_REGISTRATION_FOR_SPAM,
                                            SSP_CB_IS_USER_EXPIRED};
    static const ssp_callback acts[] = {SSP_CB_USER_MAY_CREATE_ROOM, SSP_CB_USER_MAY_PUBLISH_ROOM,
                                        SSP_CB_USER_MAY_CREATE_ROOM_ALIAS,
                                        SSP_CB_USER_MAY_SEND_3PID_INVITE};

    if (!setup(&fx))
        goto out;
    for (size_t i = 0; i < sizeof signs_in / sizeof signs_in[0]; i++) {
        decide(&fx, signs_in[i], DPO, PROVIDER, NULL, &d);
        CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
        decide(&fx, signs_in[i], DPO, NULL, NULL, &d);
        CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
    }
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        decide(&fx, acts[i], DPO, NULL, NULL, &d);
        CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
    }
    /* joining, inviting and sending are refused before the room is asked for */
    decide(&fx, SSP_CB_USER_MAY_JOIN_ROOM, DPO, NULL, ROOM, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
    decide(&fx, SSP_CB_USER_MAY_INVITE, DPO, ANNA, ROOM, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, DPO, NULL, ROOM, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
    /* and nobody reaches them: an invite of a reader is refused as any
     * invite of someone on no roster */
    decide(&fx, SSP_CB_USER_MAY_INVITE, ANNA, DPO, ROOM, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_NOT_ON_ROSTER);
out:
    tu_teardown(&fx);
}

static void sign_in_audit_reader_of_a_school_not_opted_in_signs_in_and_does_nothing_else(void)
{
    tu_fixture fx;
    ssp_decision d;

    if (!setup(&fx))
        goto out;
    decide(&fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, DORA, NULL, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
    decide(&fx, SSP_CB_IS_USER_EXPIRED, DORA, NULL, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_ALLOW, SSP_RULE_NONE);
    decide(&fx, SSP_CB_USER_MAY_CREATE_ROOM, DORA, NULL, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_SCHOOL_NOT_ENABLED);
    CHECK_STR_EQ(d.school, "gym-sued");
    /* a pupil of the same school is refused at sign-in as before */
    decide(&fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, BEN, NULL, NULL, &d);
    CHECK_VERDICT(d, SSP_VERDICT_DENY, SSP_RULE_SCHOOL_NOT_ENABLED);
out:
    tu_teardown(&fx);
}

void run_sign_in_tests(void)
{
    RUN(sign_in_refusals_name_the_identity_provider_in_the_audit);
    RUN(sign_in_provider_id_is_never_judged_as_a_user);
    RUN(sign_in_sso_registration_follows_rule_1_and_the_school_clouds_own_does_not);
    RUN(sign_in_audit_reader_on_no_roster_signs_in_and_does_nothing_else);
    RUN(sign_in_audit_reader_of_a_school_not_opted_in_signs_in_and_does_nothing_else);
}
