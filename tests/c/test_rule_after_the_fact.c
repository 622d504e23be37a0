/*
 * The rules after the fact (rules/after_the_fact.c), in the course world:
 * the text of member events in one-way rooms, a third invite into a direct
 * chat, a room's doors opened by a remote member, and the policy event
 * across an upgrade; and what is asked of the caller, in which order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define EVENT_ID "$event"

static ssp_value text(const char *s)
{
    ssp_value v = {.kind = SSP_VALUE_STRING, .text = s, .len = strlen(s)};

    return v;
}

static ssp_content_key key(const char *name, ssp_value value)
{
    ssp_content_key k = {.key = name, .key_len = strlen(name), .value = value};

    return k;
}

/* A member event of `sender` about `state_key` in a room with `policy`
 * and `create`, every step read; the caller fills the content. */
static ssp_event_seen member_event(const char *sender, const char *state_key,
                                   const ssp_room_policy *policy, const ssp_room_create *create)
{
    ssp_event_seen ev;

    memset(&ev, 0, sizeof ev);
    ev.sender = sender;
    ev.is_state = true;
    ev.type_read = ev.event_read = ev.room_read = ev.members_read = true;
    ev.type = "m.room.member";
    ev.state_key = state_key;
    ev.event_id = EVENT_ID;
    ev.room_id = ROOM;
    ev.policy = policy;
    ev.create = create;
    ev.is_current = true;
    ev.sender_admin = SSP_FACT_NO;
    return ev;
}

/* The newest audit record. */
static json_t *newest_record(tu_fixture *fx)
{
    ssp_audit_filter f;
    char *page_text = NULL;
    json_t *page, *record;

    memset(&f, 0, sizeof f);
    f.limit = 1;
    if (ssp_audit_query(fx->engine, &f, &page_text, &fx->err) != 0) {
        CHECK_FAIL("audit query failed: %s", fx->err.message);
        return NULL;
    }
    page = tu_json(page_text);
    free(page_text);
    record = json_incref(json_array_get(json_object_get(page, "records"), 0));
    json_decref(page);
    return record;
}

static ssp_after_action after(tu_fixture *fx, const ssp_event_seen *ev)
{
    ssp_after_action out;

    ssp_after_event(fx->engine, ev, &out);
    return out;
}

#define CHECK_KIND(a, k)                                                                           \
    CHECK_MSG((a).kind == (k), "kind %d (rule %s), expected %d", (int)(a).kind,                   \
              ssp_rule_id((a).rule), (int)(k))

static void most_events_are_decided_on_two_facts(void)
{
    tu_fixture fx;
    ssp_event_seen ev;

    REQUIRE(course_world_setup(&fx));
    memset(&ev, 0, sizeof ev);
    /* A local user's message passed check_event_for_spam: nothing more is read. */
    ev.sender = PUPIL;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    /* A local state event: its type decides. */
    ev.is_state = true;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_TYPE);
    ev.type_read = true;
    ev.type = "m.room.name";
    ev.state_key = "";
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.type = "m.room.member";
    ev.state_key = PUPIL;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_EVENT);
    ev.event_read = true;
    ev.event_id = EVENT_ID;
    ev.room_id = ROOM;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_ROOM);
    /* The service users' member events are theirs to make. */
    ev.sender = SYNC;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    /* A remote event, whatever it is, is judged on the room. */
    memset(&ev, 0, sizeof ev);
    ev.sender = REMOTE;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_TYPE);
    ev.type_read = true;
    ev.type = "m.room.message";
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_EVENT);
    ev.event_read = true;
    ev.event_id = EVENT_ID;
    ev.room_id = ROOM;
    ev.outlier = true;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.outlier = false;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_ROOM);
    tu_teardown(&fx);
}

static void pupils_name_in_a_one_way_room_is_taken_back_once_and_audited(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_content_key keys[2];
    ssp_event_seen ev;
    ssp_after_action a;
    uint64_t before;
    json_t *record;

    REQUIRE(course_world_setup(&fx));
    ev = member_event(PUPIL, PUPIL, &room, &SYNC_CREATE);
    keys[0] = key("membership", text("join"));
    keys[1] = key("displayname", text("Herr X ist doof"));
    ev.keys = keys;
    ev.n_keys = 2;
    ev.membership = text("join");
    ev.sender_admin = SSP_FACT_UNKNOWN;
    before = queued(&fx);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_PROFILE);
    ev.profile_known = true;
    ev.profile_displayname = text("Pia");
    ev.profile_avatar_url.kind = SSP_VALUE_NULL;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_ADMIN);
    CHECK_INT_EQ(queued(&fx) - before, 0);
    ev.sender_admin = SSP_FACT_NO;
    a = after(&fx, &ev);
    CHECK_KIND(a, SSP_AFTER_REDACT);
    CHECK(a.rule == SSP_RULE_ONE_WAY && a.enforced && a.restore && a.audit_id > 0);
    CHECK_STR_EQ(a.school, "gym-nord");
    CHECK_STR_EQ(a.undone_event_id, EVENT_ID);
    CHECK_INT_EQ(queued(&fx) - before, 1);
    /* Synapse may show the event again: it is taken back once. */
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    CHECK_INT_EQ(queued(&fx) - before, 1);
    record = newest_record(&fx);
    CHECK(record != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "callback")), "after_the_fact");
    CHECK_STR_EQ(json_string_value(json_object_get(record, "actor")), PUPIL);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "target")), PUPIL);
    CHECK_STR_EQ(json_string_value(json_object_get(record, "event_type")), "m.room.member");
    json_decref(record);
    tu_teardown(&fx);
}

static void member_text_is_what_the_member_chose(void)
{
    tu_fixture fx;
    ssp_room_policy room = course(), open_room = course();
    ssp_power_levels levels = {.actor_listed = true, .actor_level = 50};
    ssp_content_key keys[3];
    ssp_event_seen ev;
    ssp_after_action a;
    char id[32];
    int n = 0;

    REQUIRE(course_world_setup(&fx));
    open_room.two_way = true;
#define FRESH(ev_)                                                                                 \
    do {                                                                                           \
        snprintf(id, sizeof id, "$e%d", n++);                                                      \
        (ev_).event_id = id;                                                                       \
    } while (0)
    ev = member_event(PUPIL, PUPIL, &room, &SYNC_CREATE);
    ev.keys = keys;
    ev.membership = text("join");
    ev.profile_known = true;
    ev.profile_displayname = text("Pia");
    keys[0] = key("membership", text("join"));
    keys[1] = key("displayname", text("Pia"));
    keys[2] = key("is_direct", (ssp_value){.kind = SSP_VALUE_BOOL});
    /* The global profile and a boolean is_direct: nothing of their own. */
    ev.n_keys = 3;
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    /* A reason, a key of their own, a non-boolean is_direct: text, no profile needed. */
    ev.profile_known = false;
    keys[2] = key("reason", text("bye"));
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_REDACT);
    keys[2] = key("reason", text(""));
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_PROFILE);
    keys[2] = key("io.note", text("x"));
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_REDACT);
    keys[2] = key("is_direct", text("meet me"));
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_REDACT);
    /* A leave with a reason: taken back, nobody to restore. */
    ev.membership = text("leave");
    keys[0] = key("membership", text("leave"));
    keys[1] = key("reason", text("Herr X ist doof"));
    ev.n_keys = 2;
    FRESH(ev);
    a = after(&fx, &ev);
    CHECK_KIND(a, SSP_AFTER_REDACT);
    CHECK(!a.restore);
    /* A moderator, a two-way room, an unmanaged room, a server admin: left alone. */
    ev.power_levels = &levels;
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.power_levels = NULL;
    ev.policy = &open_room;
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.policy = NULL;
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.policy = &room;
    ev.sender_admin = SSP_FACT_YES;
    FRESH(ev);
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
#undef FRESH
    tu_teardown(&fx);
}

static void report_only_school_audits_and_takes_nothing_back(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_content_key keys[2];
    ssp_event_seen ev;
    ssp_after_action a;

    REQUIRE(tu_setup(&fx, "\"service_users\": [\"" SYNC "\"], \"schools\": {\"gym-nord\": "
                          "{\"messenger\": true, \"enforce\": false}}"));
    REQUIRE(tu_put(&fx, PUPIL, "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}") ==
            0);
    ev = member_event(PUPIL, PUPIL, &room, &SYNC_CREATE);
    keys[0] = key("membership", text("leave"));
    keys[1] = key("reason", text("bye"));
    ev.keys = keys;
    ev.n_keys = 2;
    a = after(&fx, &ev);
    CHECK_KIND(a, SSP_AFTER_REDACT);
    CHECK(!a.enforced && a.audit_id > 0);
    tu_teardown(&fx);
}

static void third_invite_into_a_direct_chat_is_withdrawn(void)
{
    tu_fixture fx;
    ssp_room_create pupils_chat = {.sender = PUPIL, .room_version = "12", .room_version_len = 2};
    ssp_room_create teachers_room = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_member_seen members[3] = {
        {.event_id = "$creator", .joined = true, .stream_ordering = 1},
        {.event_id = "$second", .joined = false, .stream_ordering = 5},
        {.event_id = EVENT_ID, .joined = false, .stream_ordering = 6},
    };
    ssp_event_seen ev;
    ssp_after_action a;

    REQUIRE(course_world_setup(&fx));
    ev = member_event(PUPIL, TEACHER, NULL, &pupils_chat);
    ev.membership = text("invite");
    ev.stream_ordering = 6;
    ev.members_read = false;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NEED_MEMBERS);
    ev.members_read = true;
    ev.members = members;
    ev.n_members = 3;
    a = after(&fx, &ev);
    CHECK_KIND(a, SSP_AFTER_WITHDRAW);
    CHECK(a.rule == SSP_RULE_ROOM_CREATION_FORBIDDEN && a.enforced);
    /* The earlier invite of the two stays. */
    ev.event_id = "$second";
    ev.stream_ordering = 5;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    /* A joined member counts, whenever they joined. */
    members[1].joined = true;
    members[1].stream_ordering = 9;
    ev.event_id = EVENT_ID;
    ev.stream_ordering = 6;
    members[2].event_id = EVENT_ID;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING); /* decided once already */
    ev.event_id = members[2].event_id = "$third";
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_WITHDRAW);
    /* A teacher's room may grow; an invite no longer current is gone. */
    ev.event_id = members[2].event_id = "$fourth";
    ev.create = &teachers_room;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.create = &pupils_chat;
    ev.is_current = false;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    tu_teardown(&fx);
}

static void doors_a_remote_member_opened_are_closed_again(void)
{
    tu_fixture fx;
    ssp_room_create old_room = {.sender = PUPIL, .room_version = "10", .room_version_len = 2};
    ssp_room_create theirs = {.sender = REMOTE, .room_version = "10", .room_version_len = 2};
    ssp_room_policy room = course();
    ssp_event_seen ev;
    ssp_after_action a;
    const char *type, *k, *value;

    REQUIRE(course_world_setup(&fx));
    memset(&ev, 0, sizeof ev);
    ev.sender = REMOTE;
    ev.type_read = ev.event_read = ev.room_read = true;
    ev.type = "m.room.message";
    ev.event_id = EVENT_ID;
    ev.room_id = ROOM;
    ev.create = &old_room;
    ev.join_rules = (ssp_state_seen){.open = true, .sender = REMOTE, .event_id = "$public"};
    ev.history = (ssp_state_seen){.open = false, .sender = REMOTE, .event_id = "$shared"};
    ev.guest_access = (ssp_state_seen){.open = true, .sender = REMOTE, .event_id = "$guests"};
    a = after(&fx, &ev);
    CHECK_KIND(a, SSP_AFTER_CLOSE);
    CHECK(a.rule == SSP_RULE_PUBLIC_ROOM_FORBIDDEN && a.enforced);
    CHECK_INT_EQ(a.close, SSP_CLOSE_JOIN_RULES | SSP_CLOSE_GUEST_ACCESS);
    CHECK_STR_EQ(a.undone_event_id, "$public");
    CHECK(ssp_after_close_state(SSP_CLOSE_GUEST_ACCESS, &type, &k, &value));
    CHECK_STR_EQ(type, "m.room.guest_access");
    CHECK_STR_EQ(value, "forbidden");
    CHECK(!ssp_after_close_state(SSP_CLOSE_HISTORY | SSP_CLOSE_GUEST_ACCESS, &type, &k, &value));
    /* Every later event shows the same state: closed once. */
    ev.event_id = "$later";
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    /* A local member's choice stays (a room from before the module: R9). */
    ev.join_rules.event_id = "$public2";
    ev.join_rules.sender = PUPIL;
    ev.guest_access.event_id = "$guests2";
    ev.guest_access.sender = TEACHER;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    /* Another server's room, a managed room: not this rule's. */
    ev.join_rules.sender = REMOTE;
    ev.create = &theirs;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.create = &SYNC_CREATE;
    ev.policy = &room;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    tu_teardown(&fx);
}

static void service_users_upgrade_carries_the_policy_over(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_event_seen ev;
    ssp_after_action a;
    uint64_t before;

    REQUIRE(course_world_setup(&fx));
    memset(&ev, 0, sizeof ev);
    ev.sender = SYNC;
    ev.is_state = true;
    ev.type_read = ev.event_read = ev.room_read = true;
    ev.type = "m.room.tombstone";
    ev.state_key = "";
    ev.event_id = EVENT_ID;
    ev.room_id = ROOM;
    ev.policy = &room;
    ev.create = &SYNC_CREATE;
    ev.replacement_room = text("!new:school.example");
    before = queued(&fx);
    a = after(&fx, &ev);
    CHECK_KIND(a, SSP_AFTER_CARRY_POLICY);
    CHECK_INT_EQ(queued(&fx) - before, 0); /* nothing refused, nothing audited */
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.event_id = "$other";
    ev.sender = TEACHER;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    ev.sender = SYNC;
    ev.policy = NULL;
    CHECK_KIND(after(&fx, &ev), SSP_AFTER_NOTHING);
    tu_teardown(&fx);
}

void run_rule_after_the_fact_tests(void)
{
    RUN(most_events_are_decided_on_two_facts);
    RUN(pupils_name_in_a_one_way_room_is_taken_back_once_and_audited);
    RUN(member_text_is_what_the_member_chose);
    RUN(report_only_school_audits_and_takes_nothing_back);
    RUN(third_invite_into_a_direct_chat_is_withdrawn);
    RUN(doors_a_remote_member_opened_are_closed_again);
    RUN(service_users_upgrade_carries_the_policy_over);
}
