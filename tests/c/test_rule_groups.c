/*
 * The rules of group rooms (rules/groups.c): group_closed, group_archived,
 * the cross-school join and rule 3 in group rooms, in the group world:
 *
 * - gym-nord (opted in) owns the groups; rs-ost (opted in) is the second
 *   school of a cross-school team; gs-sued has not opted in;
 * - the groups are put into the roster's index as the engine API puts them
 *   (ssp_group_parse, then ssp_roster_apply_group_locked under the write
 *   lock), and the rooms carry the policy event the reconciler sends.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "group.h"
#include "rules/room_shape.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define G_TEACHER "@tom:school.example"  /* gym-nord teacher, moderator of the groups */
#define G_PUPIL "@pia:school.example"    /* gym-nord student */
#define B_PUPIL "@bea:school.example"    /* rs-ost student, listed in the team */
#define B_TEACHER "@bert:school.example" /* rs-ost teacher, listed nowhere */
#define C_PUPIL "@cem:school.example"    /* gs-sued student (not opted in), listed in the team */
#define G_SYNC "@sync:school.example"    /* service user */
#define G_OWNER "@school-policy:school.example" /* the reconciler */
#define NOBODY "@nina:school.example"    /* not on the roster */
#define DM "!dm:school.example"

static bool put_group(tu_fixture *fx, const char *text)
{
    json_t *body = tu_json(text);
    ssp_group *group = NULL;
    ssp_error err;
    int rc = ssp_group_parse(NULL, body, "", NULL, &group, &err);

    json_decref(body);
    if (rc != 0) {
        CHECK_FAIL("group: %s", err.message);
        return false;
    }
    pthread_rwlock_wrlock(&fx->engine->roster.lock);
    rc = ssp_roster_apply_group_locked(&fx->engine->roster, group, &err);
    pthread_rwlock_unlock(&fx->engine->roster.lock);
    if (rc != 0)
        CHECK_FAIL("apply group: %s", err.message);
    return rc == 0;
}

#define MEMBERS                                                                                    \
    "\"members\": [{\"user_id\": \"" G_TEACHER "\", \"role\": \"moderator\"},"                     \
    " {\"user_id\": \"" G_PUPIL "\", \"role\": \"member\"},"                                       \
    " {\"user_id\": \"" B_PUPIL "\", \"role\": \"member\"},"                                       \
    " {\"user_id\": \"" C_PUPIL "\", \"role\": \"member\"}]"

static bool group_world_setup(tu_fixture *fx, const char *extra)
{
    static const char roster[] =
        "{\"users\": ["
        "{\"user_id\": \"" G_TEACHER "\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"" G_PUPIL "\", \"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]},"
        "{\"user_id\": \"" B_PUPIL "\", \"schools\": [{\"school\": \"rs-ost\", \"role\": \"student\"}]},"
        "{\"user_id\": \"" B_TEACHER "\", \"schools\": [{\"school\": \"rs-ost\", \"role\": \"teacher\"}]},"
        "{\"user_id\": \"" C_PUPIL "\", \"schools\": [{\"school\": \"gs-sued\", \"role\": \"student\"}]}]}";
    static const char *const groups[] = {
        "{\"group\": \"team-1\", \"school\": \"gym-nord\", \"kind\": \"team\", \"name\": \"Robotik\", "
        MEMBERS "}",
        "{\"group\": \"course-open\", \"school\": \"gym-nord\", \"kind\": \"course\", \"name\": \"AG\", "
        "\"closed\": false, \"two_way\": true, " MEMBERS "}",
        "{\"group\": \"course-archived\", \"school\": \"gym-nord\", \"kind\": \"course\", "
        "\"name\": \"Mathe 6a\", \"state\": \"archived\", " MEMBERS "}",
        "{\"group\": \"course-dated\", \"school\": \"gym-nord\", \"kind\": \"course\", "
        "\"name\": \"Mathe 6b\", \"archive_at_ms\": 1, " MEMBERS "}",
        "{\"group\": \"course-later\", \"school\": \"gym-nord\", \"kind\": \"course\", "
        "\"name\": \"Mathe 6c\", \"two_way\": true, \"archive_at_ms\": 4102444800000, " MEMBERS "}",
        "{\"group\": \"course-deleted\", \"school\": \"gym-nord\", \"kind\": \"course\", "
        "\"name\": \"Mathe 6d\", \"state\": \"deleted\", " MEMBERS "}",
        "{\"group\": \"team-ost\", \"school\": \"rs-ost\", \"kind\": \"team\", \"name\": \"Chor\", "
        MEMBERS "}",
    };
    char *members = tu_format("\"service_users\": [\"" G_SYNC "\"], \"schools\": {"
                              "\"gym-nord\": {\"messenger\": true}, \"rs-ost\": {\"messenger\": true},"
                              " \"gs-sued\": {\"messenger\": false}}%s%s",
                              extra ? ", " : "", extra ? extra : "");
    size_t upserted = 0;
    bool ok = tu_setup(fx, members);

    free(members);
    if (ok && ssp_roster_upsert_batch(fx->engine, roster, strlen(roster), &upserted, &fx->err) != 0) {
        CHECK_FAIL("roster: %s", fx->err.message);
        ok = false;
    }
    for (size_t i = 0; ok && i < sizeof groups / sizeof groups[0]; i++)
        ok = put_group(fx, groups[i]);
    return ok;
}

/* The policy event of a group room, as the reconciler sends it. */
static ssp_room_policy group_room(const char *group, ssp_room_kind kind, bool two_way)
{
    ssp_room_policy p;

    memset(&p, 0, sizeof p);
    p.sender = p.creator = G_OWNER;
    p.school = "gym-nord";
    p.school_len = strlen(p.school);
    p.kind = kind;
    p.kind_name = kind == SSP_KIND_TEAM ? "team" : kind == SSP_KIND_CLASS ? "class" : "course";
    p.kind_len = strlen(p.kind_name);
    p.two_way = two_way;
    p.group = group;
    p.group_len = group ? strlen(group) : 0;
    p.n_keys = group ? 4 : 3;
    return p;
}

static const ssp_room_create OWNER_CREATE = {.sender = G_OWNER, .room_version = "12",
                                             .room_version_len = 2};
/* The teacher at the moderator level, everyone else at 0. */
static const ssp_power_levels TEACHER_LEVELS = {.actor_listed = true, .actor_level = 50};
static const ssp_power_levels PUPIL_LEVELS = {.actor_listed = false};

/* A request in the group room `room`, every fact known; the actor shares
 * the room itself with the target. */
static ssp_request in_group_room(ssp_callback cb, const char *actor, const ssp_room_policy *room)
{
    ssp_request req = in_room(cb, actor, room, &OWNER_CREATE);

    req.room_power_levels = strcmp(actor, G_TEACHER) == 0 ? &TEACHER_LEVELS : &PUPIL_LEVELS;
    req.shared_rooms = room;
    req.n_shared_rooms = 1;
    req.member_count_known = true;
    req.member_count = 5;
    if (cb == SSP_CB_CHECK_EVENT_FOR_SPAM)
        req.event_type = "m.room.message";
    return req;
}

static ssp_decision invite(tu_fixture *fx, const char *actor, const char *target,
                           const ssp_room_policy *room)
{
    ssp_request req = in_group_room(SSP_CB_USER_MAY_INVITE, actor, room);

    req.target = target;
    return decide_request(fx, &req);
}

static ssp_decision join(tu_fixture *fx, const char *actor, bool invited, const ssp_room_policy *room)
{
    ssp_request req = in_group_room(SSP_CB_USER_MAY_JOIN_ROOM, actor, room);

    req.is_invited = invited ? SSP_FACT_YES : SSP_FACT_NO;
    return decide_request(fx, &req);
}

static ssp_decision post(tu_fixture *fx, const char *actor, const ssp_room_policy *room)
{
    ssp_request req = in_group_room(SSP_CB_CHECK_EVENT_FOR_SPAM, actor, room);

    return decide_request(fx, &req);
}

/* ---- group_closed ---- */

static void teacher_cannot_invite_into_a_closed_group(void)
{
    tu_fixture fx;
    ssp_room_policy room = group_room("team-1", SSP_KIND_TEAM, true);
    ssp_decision d;
    uint64_t before;

    REQUIRE(group_world_setup(&fx, NULL));
    before = queued(&fx);
    d = invite(&fx, G_TEACHER, G_PUPIL, &room);
    CHECK_DENY(d, SSP_RULE_GROUP_CLOSED, true, "gym-nord");
    CHECK_CONTAINS(d.message, "Only the school adds people");
    CHECK_INT_EQ(queued(&fx), before + 1);
    /* A pupil too, in a two-way team. */
    CHECK_RULE(invite(&fx, G_PUPIL, B_PUPIL, &room), SSP_RULE_GROUP_CLOSED);
    tu_teardown(&fx);
}

static void service_users_and_the_reconciler_add_members(void)
{
    tu_fixture fx;
    ssp_room_policy room = group_room("team-1", SSP_KIND_TEAM, false);

    REQUIRE(group_world_setup(&fx, NULL));
    /* The reconciler invites a member of another school; a service user anyone. */
    CHECK_ALLOW(invite(&fx, G_OWNER, B_PUPIL, &room));
    CHECK_ALLOW(invite(&fx, G_SYNC, B_TEACHER, &room));
    CHECK_ALLOW(invite(&fx, G_OWNER, G_PUPIL, &room));
    tu_teardown(&fx);
}

static void open_group_takes_a_moderators_invite(void)
{
    tu_fixture fx;
    ssp_room_policy room = group_room("course-open", SSP_KIND_COURSE, true);
    ssp_decision d;

    REQUIRE(group_world_setup(&fx, "\"unlisted_users\": \"allow\""));
    CHECK_ALLOW(invite(&fx, G_TEACHER, G_PUPIL, &room));
    /* a guest of another opted-in school, listed nowhere */
    CHECK_ALLOW(invite(&fx, G_TEACHER, B_TEACHER, &room));
    /* a member below the moderator level may not, even in a two-way room */
    d = invite(&fx, G_PUPIL, B_PUPIL, &room);
    CHECK_DENY(d, SSP_RULE_GROUP_CLOSED, true, "gym-nord");
    /* nor may the moderator invite anyone of no opted-in school */
    CHECK_RULE(invite(&fx, G_TEACHER, C_PUPIL, &room), SSP_RULE_SCHOOL_NOT_ENABLED);
    d = invite(&fx, G_TEACHER, NOBODY, &room);
    CHECK_DENY(d, SSP_RULE_GROUP_CLOSED, true, "gym-nord");
    CHECK_CONTAINS(d.message, "of a school with the messenger");
    CHECK_RULE(invite(&fx, G_TEACHER, REMOTE, &room), SSP_RULE_GROUP_CLOSED);
    tu_teardown(&fx);
}

static void open_group_invite_still_needs_a_shared_room(void)
{
    tu_fixture fx;
    ssp_room_policy room = group_room("course-open", SSP_KIND_COURSE, true);
    ssp_request req;

    REQUIRE(group_world_setup(&fx, NULL));
    req = in_group_room(SSP_CB_USER_MAY_INVITE, G_TEACHER, &room);
    req.target = B_TEACHER;
    req.n_shared_rooms = 0;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_NO_SHARED_ROOM);
    tu_teardown(&fx);
}

static void closed_group_refuses_a_join_without_invite(void)
{
    tu_fixture fx;
    ssp_room_policy team = group_room("team-1", SSP_KIND_TEAM, false);
    ssp_room_policy open = group_room("course-open", SSP_KIND_COURSE, true);
    ssp_request req;
    ssp_decision d;

    REQUIRE(group_world_setup(&fx, NULL));
    d = join(&fx, G_PUPIL, false, &team);
    CHECK_DENY(d, SSP_RULE_GROUP_CLOSED, true, "gym-nord");
    /* A member who is joined already changes their profile: not a join. */
    req = in_group_room(SSP_CB_USER_MAY_JOIN_ROOM, G_PUPIL, &team);
    req.is_invited = SSP_FACT_NO;
    req.actor_joined = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_MEMBERSHIP);
    req.actor_joined = SSP_FACT_YES;
    CHECK_ALLOW(decide_request(&fx, &req));
    /* An open group's room is invite-only like any managed room. */
    CHECK_RULE(join(&fx, G_PUPIL, false, &open), SSP_RULE_JOIN_FORBIDDEN);
    /* With the invite the own school's pupil joins either. */
    CHECK_ALLOW(join(&fx, G_PUPIL, true, &team));
    CHECK_ALLOW(join(&fx, G_PUPIL, true, &open));
    tu_teardown(&fx);
}

/* ---- the cross-school join ---- */

static void listed_member_of_another_school_joins(void)
{
    tu_fixture fx;
    ssp_room_policy team = group_room("team-1", SSP_KIND_TEAM, false);
    ssp_room_policy plain = group_room(NULL, SSP_KIND_TEAM, false);
    ssp_decision d;

    REQUIRE(group_world_setup(&fx, NULL));
    CHECK_ALLOW(join(&fx, B_PUPIL, true, &team));
    /* not listed: another school's room stays closed to them */
    d = join(&fx, B_TEACHER, true, &team);
    CHECK_DENY(d, SSP_RULE_JOIN_FORBIDDEN, true, "rs-ost");
    /* a room without a group keeps join_forbidden for everyone of another school */
    CHECK_RULE(join(&fx, B_PUPIL, true, &plain), SSP_RULE_JOIN_FORBIDDEN);
    tu_teardown(&fx);
}

static void listed_member_whose_school_opted_out_is_not_admitted(void)
{
    tu_fixture fx;
    ssp_room_policy team = group_room("team-1", SSP_KIND_TEAM, false);
    ssp_decision d;

    REQUIRE(group_world_setup(&fx, NULL));
    d = join(&fx, C_PUPIL, true, &team);
    CHECK_DENY(d, SSP_RULE_SCHOOL_NOT_ENABLED, true, "gs-sued");
    tu_teardown(&fx);
}

static void open_group_admits_a_moderators_guest(void)
{
    tu_fixture fx;
    ssp_room_policy open = group_room("course-open", SSP_KIND_COURSE, true);

    REQUIRE(group_world_setup(&fx, NULL));
    CHECK_ALLOW(join(&fx, B_TEACHER, true, &open));
    CHECK_RULE(join(&fx, B_TEACHER, false, &open), SSP_RULE_JOIN_FORBIDDEN);
    tu_teardown(&fx);
}

/* ---- a room whose group the index does not know: fail closed ---- */

static void unknown_group_is_closed_and_active(void)
{
    tu_fixture fx;
    ssp_room_policy forged = group_room("team-forged", SSP_KIND_TEAM, true);
    ssp_room_policy other = group_room("team-ost", SSP_KIND_TEAM, true); /* rs-ost's, in a gym-nord room */
    ssp_room_policy not_text = group_room("", SSP_KIND_TEAM, true);      /* `group` not a string */
    const ssp_room_policy *rooms[] = {&forged, &other, &not_text};

    REQUIRE(group_world_setup(&fx, NULL));
    for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++) {
        ssp_decision d = invite(&fx, G_TEACHER, G_PUPIL, rooms[i]);

        CHECK_DENY(d, SSP_RULE_GROUP_CLOSED, true, "gym-nord");
        /* no cross-school join, even for someone a group of that id lists */
        CHECK_RULE(join(&fx, B_PUPIL, true, rooms[i]), SSP_RULE_JOIN_FORBIDDEN);
        CHECK_RULE(join(&fx, G_PUPIL, false, rooms[i]), SSP_RULE_GROUP_CLOSED);
        /* active: the room is not read-only, and it still counts for rule 3 */
        CHECK_ALLOW(post(&fx, G_PUPIL, rooms[i]));
        CHECK_ALLOW(join(&fx, G_PUPIL, true, rooms[i]));
    }
    tu_teardown(&fx);
}

/* ---- group_archived ---- */

static void archived_group_room_is_read_only(void)
{
    tu_fixture fx;
    ssp_room_policy archived = group_room("course-archived", SSP_KIND_COURSE, true);
    ssp_request req;
    ssp_decision d;
    uint64_t before;

    REQUIRE(group_world_setup(&fx, NULL));
    before = queued(&fx);
    d = post(&fx, G_PUPIL, &archived);
    CHECK_DENY(d, SSP_RULE_GROUP_ARCHIVED, true, "gym-nord");
    CHECK_CONTAINS(d.message, "archived");
    CHECK_INT_EQ(queued(&fx), before + 1);
    /* the moderator too, and every kind of event */
    CHECK_RULE(post(&fx, G_TEACHER, &archived), SSP_RULE_GROUP_ARCHIVED);
    req = in_group_room(SSP_CB_CHECK_EVENT_FOR_SPAM, G_TEACHER, &archived);
    req.event_type = "m.room.redaction";
    req.redacts = "$old";
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GROUP_ARCHIVED);
    req.event_type = "m.reaction";
    req.redacts = NULL;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GROUP_ARCHIVED);
    req.event_type = "m.room.topic";
    req.state_key = "";
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GROUP_ARCHIVED);
    /* nobody is added, nobody joins, not even a profile change */
    CHECK_RULE(invite(&fx, G_TEACHER, G_PUPIL, &archived), SSP_RULE_GROUP_ARCHIVED);
    CHECK_RULE(join(&fx, G_PUPIL, true, &archived), SSP_RULE_GROUP_ARCHIVED);
    req = in_group_room(SSP_CB_USER_MAY_JOIN_ROOM, G_PUPIL, &archived);
    req.is_invited = SSP_FACT_NO;
    req.actor_joined = SSP_FACT_YES;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_GROUP_ARCHIVED);
    /* the module and service users still act there (they empty it) */
    CHECK_ALLOW(post(&fx, G_OWNER, &archived));
    CHECK_ALLOW(invite(&fx, G_SYNC, G_PUPIL, &archived));
    tu_teardown(&fx);
}

static void archive_date_and_deletion_archive_too(void)
{
    tu_fixture fx;
    ssp_room_policy dated = group_room("course-dated", SSP_KIND_COURSE, true);
    ssp_room_policy later = group_room("course-later", SSP_KIND_COURSE, true);
    ssp_room_policy deleted = group_room("course-deleted", SSP_KIND_COURSE, true);

    REQUIRE(group_world_setup(&fx, NULL));
    CHECK_RULE(post(&fx, G_PUPIL, &dated), SSP_RULE_GROUP_ARCHIVED);
    CHECK_RULE(post(&fx, G_PUPIL, &deleted), SSP_RULE_GROUP_ARCHIVED);
    CHECK_ALLOW(post(&fx, G_PUPIL, &later));
    tu_teardown(&fx);
}

static void archived_group_report_only_is_audited_not_enforced(void)
{
    tu_fixture fx;
    ssp_room_policy archived = group_room("course-archived", SSP_KIND_COURSE, true);
    ssp_decision d;

    REQUIRE(group_world_setup(&fx, "\"enforce\": false"));
    d = post(&fx, G_PUPIL, &archived);
    CHECK_DENY(d, SSP_RULE_GROUP_ARCHIVED, false, "gym-nord");
    tu_teardown(&fx);
}

/* ---- rule 3 ---- */

/* B_PUPIL invites G_PUPIL into a direct chat, sharing only `shared`. */
static ssp_decision dm_invite(tu_fixture *fx, const ssp_room_policy *shared)
{
    static const ssp_room_create dm_create = {.sender = B_PUPIL, .room_version = "12",
                                              .room_version_len = 2};
    ssp_request req = in_room(SSP_CB_USER_MAY_INVITE, B_PUPIL, NULL, &dm_create);

    req.room_id = DM;
    req.target = G_PUPIL;
    req.shared_rooms = shared;
    req.n_shared_rooms = 1;
    req.member_count_known = true;
    req.member_count = 1;
    return decide_request(fx, &req);
}

static void active_group_room_is_shared_across_schools(void)
{
    tu_fixture fx;
    ssp_room_policy team = group_room("team-1", SSP_KIND_TEAM, false);
    ssp_room_policy later = group_room("course-later", SSP_KIND_COURSE, true);
    ssp_room_policy forged = group_room("team-forged", SSP_KIND_TEAM, false);
    ssp_request req;

    REQUIRE(group_world_setup(&fx, NULL));
    CHECK_ALLOW(dm_invite(&fx, &team));
    CHECK_ALLOW(dm_invite(&fx, &later));
    CHECK_ALLOW(dm_invite(&fx, &forged));
    /* the user directory shows them to each other */
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_USERNAME_FOR_SPAM;
    req.actor = B_PUPIL;
    req.target = G_PUPIL;
    req.actor_is_admin = SSP_FACT_NO;
    req.shared_known = SSP_FACT_YES;
    req.shared_rooms = &team;
    req.n_shared_rooms = 1;
    CHECK_ALLOW(decide_request(&fx, &req));
    tu_teardown(&fx);
}

static void archived_group_room_is_shared_by_nobody(void)
{
    tu_fixture fx;
    ssp_room_policy archived = group_room("course-archived", SSP_KIND_COURSE, true);
    ssp_room_policy dated = group_room("course-dated", SSP_KIND_COURSE, true);
    ssp_room_policy deleted = group_room("course-deleted", SSP_KIND_COURSE, true);
    ssp_decision d;

    REQUIRE(group_world_setup(&fx, NULL));
    d = dm_invite(&fx, &archived);
    CHECK_DENY(d, SSP_RULE_NO_SHARED_ROOM, true, "rs-ost");
    CHECK_RULE(dm_invite(&fx, &dated), SSP_RULE_NO_SHARED_ROOM);
    CHECK_RULE(dm_invite(&fx, &deleted), SSP_RULE_NO_SHARED_ROOM);
    tu_teardown(&fx);
}

/* ---- after the fact: text in member events of an archived group's room ---- */

/* G_TEACHER leaves (or G_PUPIL rejects an invite) with a reason, in `room`. */
static ssp_after_action leave_with_reason(tu_fixture *fx, const char *who, const ssp_room_policy *room,
                                          const char *event_id)
{
    static const ssp_value leave = {.kind = SSP_VALUE_STRING, .text = "leave", .len = 5};
    static const ssp_value reason = {.kind = SSP_VALUE_STRING, .text = "see you on the other side",
                                     .len = 25};
    ssp_content_key keys[2] = {{.key = "membership", .key_len = 10, .value = leave},
                               {.key = "reason", .key_len = 6, .value = reason}};
    ssp_event_seen ev;
    ssp_after_action out;

    memset(&ev, 0, sizeof ev);
    ev.sender = who;
    ev.state_key = who;
    ev.is_state = true;
    ev.type_read = ev.event_read = ev.room_read = ev.members_read = true;
    ev.type = "m.room.member";
    ev.event_id = event_id;
    ev.room_id = ROOM;
    ev.policy = room;
    ev.create = &OWNER_CREATE;
    ev.power_levels = strcmp(who, G_TEACHER) == 0 ? &TEACHER_LEVELS : &PUPIL_LEVELS;
    ev.is_current = true;
    ev.sender_admin = SSP_FACT_NO;
    ev.membership = leave;
    ev.keys = keys;
    ev.n_keys = 2;
    ssp_after_event(fx->engine, &ev, &out);
    return out;
}

static void leave_reason_in_an_archived_group_room_is_taken_back(void)
{
    tu_fixture fx;
    ssp_room_policy archived = group_room("course-archived", SSP_KIND_COURSE, true);
    ssp_room_policy active = group_room("course-later", SSP_KIND_COURSE, true);
    ssp_after_action out;

    REQUIRE(group_world_setup(&fx, NULL));
    /* Read-only for the moderator too; the member is out, not rejoined. */
    out = leave_with_reason(&fx, G_TEACHER, &archived, "$leave1");
    CHECK_INT_EQ(out.kind, SSP_AFTER_REDACT);
    CHECK_STR_EQ(ssp_rule_id(out.rule), "group_archived");
    CHECK_STR_EQ(out.school, "gym-nord");
    CHECK(!out.restore);
    out = leave_with_reason(&fx, G_PUPIL, &archived, "$leave2");
    CHECK_INT_EQ(out.kind, SSP_AFTER_REDACT);
    /* In an active two-way group room a reason is no new door. */
    out = leave_with_reason(&fx, G_PUPIL, &active, "$leave3");
    CHECK_INT_EQ(out.kind, SSP_AFTER_NOTHING);
    tu_teardown(&fx);
}

/* ---- the policy's group is locked; kind class ---- */

static void moderator_flips_two_way_but_not_the_group(void)
{
    tu_fixture fx;
    ssp_room_policy team = group_room("team-1", SSP_KIND_TEAM, false);
    ssp_room_policy flipped = group_room("team-1", SSP_KIND_TEAM, true);
    ssp_room_policy moved = group_room("course-open", SSP_KIND_TEAM, false);
    ssp_room_policy dropped = group_room(NULL, SSP_KIND_TEAM, false);
    ssp_request req;

    REQUIRE(group_world_setup(&fx, NULL));
    req = in_group_room(SSP_CB_CHECK_EVENT_FOR_SPAM, G_TEACHER, &team);
    req.event_type = SSP_DEFAULT_POLICY_EVENT_TYPE;
    req.state_key = "";
    req.new_policy = &flipped;
    CHECK(decide_request(&fx, &req).verdict != SSP_VERDICT_DENY);
    req.new_policy = &moved;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    dropped.n_keys = 4; /* the same number of keys, another key for the group */
    req.new_policy = &dropped;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    tu_teardown(&fx);
}

static void class_rooms_are_one_way(void)
{
    tu_fixture fx;
    ssp_room_policy klass = group_room("team-1", SSP_KIND_CLASS, false);

    CHECK_INT_EQ(ssp_room_kind_from_name("class", 5), SSP_KIND_CLASS);
    REQUIRE(group_world_setup(&fx, NULL));
    CHECK_RULE(post(&fx, G_PUPIL, &klass), SSP_RULE_ONE_WAY);
    CHECK_ALLOW(post(&fx, G_TEACHER, &klass));
    tu_teardown(&fx);
}

static void group_rule_ids_and_texts(void)
{
    CHECK_STR_EQ(ssp_rule_id(SSP_RULE_GROUP_CLOSED), "group_closed");
    CHECK_STR_EQ(ssp_rule_id(SSP_RULE_GROUP_ARCHIVED), "group_archived");
    CHECK_INT_EQ(ssp_rule_from_id("group_closed"), SSP_RULE_GROUP_CLOSED);
    CHECK_INT_EQ(ssp_rule_from_id("group_archived"), SSP_RULE_GROUP_ARCHIVED);
    CHECK_CONTAINS(ssp_rule_name(SSP_RULE_GROUP_ARCHIVED, true), "Archiviert");
    CHECK_CONTAINS(ssp_rule_message(SSP_RULE_GROUP_CLOSED, SSP_SAY_INVITE, true), "Nur die Schule");
    CHECK_CONTAINS(ssp_rule_message(SSP_RULE_GROUP_ARCHIVED, SSP_SAY_INVITE, false), "archived");
}

void run_rule_groups_tests(void)
{
    RUN(teacher_cannot_invite_into_a_closed_group);
    RUN(service_users_and_the_reconciler_add_members);
    RUN(open_group_takes_a_moderators_invite);
    RUN(open_group_invite_still_needs_a_shared_room);
    RUN(closed_group_refuses_a_join_without_invite);
    RUN(listed_member_of_another_school_joins);
    RUN(listed_member_whose_school_opted_out_is_not_admitted);
    RUN(open_group_admits_a_moderators_guest);
    RUN(unknown_group_is_closed_and_active);
    RUN(archived_group_room_is_read_only);
    RUN(archive_date_and_deletion_archive_too);
    RUN(archived_group_report_only_is_audited_not_enforced);
    RUN(active_group_room_is_shared_across_schools);
    RUN(archived_group_room_is_shared_by_nobody);
    RUN(leave_reason_in_an_archived_group_room_is_taken_back);
    RUN(moderator_flips_two_way_but_not_the_group);
    RUN(class_rooms_are_one_way);
    RUN(group_rule_ids_and_texts);
}
