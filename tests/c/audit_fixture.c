/* What the audit tests share: a fixture with denials of each kind, queries and their ids. */
#include <stdlib.h>
#include <string.h>

#include "audit_fixture.h"
#include "check.h"

bool audit_fx_setup(tu_fixture *fx)
{
    static const char body[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@dora:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": "
        "\"student\"}]}]}";
    size_t upserted;

    /* The queries page through many records of the same denial: each its
     * own record, past the flood limit (audit_flood.c has its own tests). */
    if (!tu_setup(fx, "\"schools\": {\"gym-nord\": {\"messenger\": true}, \"gym-sued\": {},"
                      " \"rs-ost\": {\"enforce\": false}}, " UNLIMITED_FLOOD))
        return false;
    if (ssp_roster_upsert_batch(fx->engine, body, strlen(body), &upserted, &fx->err) != 0) {
        CHECK_FAIL("cannot load the roster: %s", fx->err.message);
        return false;
    }
    return true;
}

void audit_fx_deny_login(tu_fixture *fx, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("login of %s was not denied", actor);
}

void audit_fx_deny_invite(tu_fixture *fx, const char *actor, const char *target)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_USER_MAY_INVITE;
    req.actor = actor;
    req.target = target;
    req.room_id = "!invite:school.example";
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("invite of %s by %s was not denied", target, actor);
}

void audit_fx_deny_event(tu_fixture *fx, const char *actor, const char *school)
{
    ssp_request req;
    ssp_decision d;
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    /* sent by the module's own user, which the rules trust like a service user */
    p.sender = p.creator = "@school-policy:school.example";
    p.school = school;
    p.school_len = strlen(school);
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_EVENT_FOR_SPAM;
    req.actor = actor;
    req.room_id = "!frozen:school.example";
    req.event_type = "m.room.message";
    req.room_managed = SSP_FACT_YES;
    req.room = &p;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("event by %s in a room of %s was not denied", actor, school);
}

ssp_audit_filter audit_fx_filter_all(void)
{
    ssp_audit_filter f;

    memset(&f, 0, sizeof f);
    f.limit = 1000;
    return f;
}

/* Runs a query; returns the parsed result or NULL after reporting. */
json_t *audit_fx_query(tu_fixture *fx, const ssp_audit_filter *f)
{
    char *text = NULL;
    json_t *result;

    if (ssp_audit_query(fx->engine, f, &text, &fx->err) != 0) {
        CHECK_FAIL("ssp_audit_query failed: [%d] %s", (int)fx->err.code, fx->err.message);
        return NULL;
    }
    result = tu_json(text);
    free(text);
    return result;
}

/* The ids of the records, newest first, as "5,4,3", and the next token. */
char *audit_fx_ids_of(json_t *result)
{
    json_t *records = json_object_get(result, "records"), *rec, *next;
    size_t i;
    char *out = tu_format("%s", "");

    json_array_foreach(records, i, rec) {
        char *grown = tu_format("%s%s%lld", out, i ? "," : "",
                                (long long)json_integer_value(json_object_get(rec, "id")));

        free(out);
        out = grown;
    }
    next = json_object_get(result, "next");
    if (json_is_string(next)) {
        char *grown = tu_format("%s next=%s", out, json_string_value(next));

        free(out);
        out = grown;
    } else if (!json_is_null(next)) {
        char *grown = tu_format("%s next=INVALID", out);

        free(out);
        out = grown;
    }
    return out;
}

char *audit_fx_query_ids(tu_fixture *fx, const ssp_audit_filter *f)
{
    json_t *result = audit_fx_query(fx, f);
    char *ids;

    if (result == NULL)
        return tu_format("(query failed)");
    ids = audit_fx_ids_of(result);
    json_decref(result);
    return ids;
}
