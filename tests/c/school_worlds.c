/* The school worlds the decision tests run in (school_worlds.h). */
#include <stdlib.h>
#include <string.h>

#include "school_worlds.h"

uint64_t queued(tu_fixture *fx)
{
    ssp_audit_stats stats;

    ssp_audit_get_stats(fx->engine, &stats);
    return stats.queued;
}

/* ---- the roster world ---- */

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

bool roster_world_setup(tu_fixture *fx, const char *extra)
{
    char *members = tu_format("%s%s%s", SCHOOLS, extra ? ", " : "", extra ? extra : "");
    bool ok = tu_setup(fx, members) && load_roster(fx);

    free(members);
    return ok;
}

void decide(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
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

void login(tu_fixture *fx, const char *actor, ssp_fact admin, ssp_decision *out)
{
    decide(fx, SSP_CB_CHECK_LOGIN_FOR_SPAM, actor, NULL, NULL, SSP_FACT_UNKNOWN, NULL, admin, out);
}

ssp_room_policy policy_of(const char *school)
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

char *long_multibyte_school(size_t n)
{
    char *s = malloc(2 * n + 1);

    for (size_t i = 0; i < n; i++) {
        s[2 * i] = (char)0xc3;
        s[2 * i + 1] = (char)0xa9;
    }
    s[2 * n] = '\0';
    return s;
}

/* ---- the course world ---- */

bool course_world_setup(tu_fixture *fx)
{
    static const char roster[] =
        "{\"users\": ["
        "{\"user_id\": \"@tom:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"@pia:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
        "{\"user_id\": \"@paul:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
        "{\"user_id\": \"@lea:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": \"student\"}]}]}";
    size_t upserted;

    if (!tu_setup(fx, "\"service_users\": [\"" SYNC "\"], \"one_way_allowed_events\": [\"m.reaction\"],"
                      " \"schools\": {\"gym-nord\": {\"messenger\": true},"
                      " \"gym-sued\": {\"messenger\": false}}"))
        return false;
    if (ssp_roster_upsert_batch(fx->engine, roster, strlen(roster), &upserted, &fx->err) != 0) {
        CHECK_FAIL("roster: %s", fx->err.message);
        return false;
    }
    return true;
}

ssp_room_policy course(void)
{
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    p.sender = p.creator = SYNC;
    p.school = "gym-nord";
    p.school_len = strlen(p.school);
    p.kind_name = "course";
    p.kind_len = strlen(p.kind_name);
    p.kind = SSP_KIND_COURSE;
    p.n_keys = 3;
    return p;
}

const ssp_room_create SYNC_CREATE = {.sender = SYNC, .room_version = "12", .room_version_len = 2};

ssp_request in_room(ssp_callback cb, const char *actor, const ssp_room_policy *policy,
                           const ssp_room_create *create)
{
    ssp_request req;

    memset(&req, 0, sizeof req);
    req.callback = cb;
    req.actor = actor;
    req.room_id = ROOM;
    req.room_managed = policy != NULL ? SSP_FACT_YES : SSP_FACT_NO;
    req.room = policy;
    req.room_create = create;
    req.actor_is_admin = SSP_FACT_NO;
    req.shared_known = SSP_FACT_YES;
    req.actor_joined = SSP_FACT_NO;
    return req;
}

ssp_decision decide_request(tu_fixture *fx, const ssp_request *req)
{
    ssp_decision d;

    ssp_decide(fx->engine, req, &d);
    return d;
}

/* ---- the staff world ---- */

bool staff_world_setup(tu_fixture *fx, const char *extra)
{
    static const char roster[] =
        "{\"users\": ["
        "{\"user_id\": \"@tom:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"@ada:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"admin\"}]},"
        "{\"user_id\": \"@pia:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
        "{\"user_id\": \"@olaf:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": \"teacher\"}]}]}";
    char *members = tu_format("\"schools\": {\"gym-nord\": {\"messenger\": true, "
                              "\"announcement_room\": true}, \"rs-ost\": {\"messenger\": true, "
                              "\"teachers_room\": false}, \"closed\": {}}%s%s",
                              extra ? ", " : "", extra ? extra : "");
    size_t upserted = 0;
    bool ok = tu_setup(fx, members);

    free(members);
    if (ok && ssp_roster_upsert_batch(fx->engine, roster, strlen(roster), &upserted, &fx->err) != 0) {
        CHECK_FAIL("cannot load the roster: %s", fx->err.message);
        ok = false;
    }
    return ok;
}

ssp_room_policy teachers_room(void)
{
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    /* The reconciler creates the teachers' room and sends its policy. */
    p.sender = p.creator = "@school-policy:school.example";
    p.school = "gym-nord";
    p.school_len = strlen(p.school);
    p.kind_name = "teachers";
    p.kind_len = strlen(p.kind_name);
    p.kind = SSP_KIND_TEACHERS;
    p.n_keys = 3;
    return p;
}

void in_teachers_room(tu_fixture *fx, ssp_callback cb, const char *actor, const char *target,
                      ssp_decision *out)
{
    static const ssp_room_create create = {.sender = "@school-policy:school.example",
                                           .room_version = "12", .room_version_len = 2};
    ssp_room_policy room = teachers_room();
    ssp_request req;

    memset(&req, 0, sizeof req);
    req.callback = cb;
    req.actor = actor;
    req.target = target;
    req.room_id = TEACHERS_ROOM;
    req.room_managed = SSP_FACT_YES;
    req.room = &room;
    req.room_create = &create;
    req.is_invited = SSP_FACT_YES;
    req.actor_joined = SSP_FACT_NO;
    req.actor_is_admin = SSP_FACT_NO;
    req.shared_known = SSP_FACT_YES;
    req.shared_rooms = &room;
    req.n_shared_rooms = 1;
    ssp_decide(fx->engine, &req, out);
}
