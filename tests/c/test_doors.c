/* The doors beyond the callbacks' names (decide.c, matrix.c): createRoom's
 * initial_state, join rules and history, the two-person direct chat,
 * refused tokens, what one-way rooms let through, which policy event
 * counts, rooms of other servers, profile changes, and creators' power. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define SYNC "@sync:school.example"
#define TEACHER "@tom:school.example" /* gym-nord teacher */
#define PUPIL "@pia:school.example"   /* gym-nord student */
#define PUPIL2 "@paul:school.example" /* gym-nord student */
#define LEAVER "@lea:school.example"  /* gym-sued student (disabled school) */
#define STRANGER "@zoe:school.example" /* not on the roster */
#define REMOTE "@rita:remote.example"
#define ROOM "!room:school.example"

static bool setup(tu_fixture *fx)
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

/* A course of gym-nord that the sync created, one-way. */
static ssp_room_policy course(void)
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

static const ssp_room_create SYNC_CREATE = {.sender = SYNC, .room_version = "12", .room_version_len = 2};

/* A request in a room whose facts are all known (no NEED_* but the ones a
 * test leaves unknown on purpose). */
static ssp_request in_room(ssp_callback cb, const char *actor, const ssp_room_policy *policy,
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

static ssp_decision run(tu_fixture *fx, const ssp_request *req)
{
    ssp_decision d;

    ssp_decide(fx->engine, req, &d);
    return d;
}

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            CHECK_FAIL(__VA_ARGS__);                                                               \
    } while (0)
#define CHECK_VERDICT(d, v)                                                                        \
    do {                                                                                           \
        ssp_decision check_d_ = (d);                                                               \
        CHECK_MSG(check_d_.verdict == (v), "verdict %d (rule %s), expected %d",                    \
                  (int)check_d_.verdict, ssp_rule_id(check_d_.rule), (int)(v));                     \
    } while (0)
#define CHECK_RULE(d, r)                                                                           \
    do {                                                                                           \
        ssp_decision check_d_ = (d);                                                               \
        CHECK_MSG(check_d_.verdict == SSP_VERDICT_DENY && check_d_.rule == (r),                    \
                  "verdict %d rule %s, expected %s", (int)check_d_.verdict,                        \
                  ssp_rule_id(check_d_.rule), ssp_rule_id(r));                                     \
    } while (0)

static uint64_t queued(tu_fixture *fx)
{
    ssp_audit_stats stats;

    ssp_audit_get_stats(fx->engine, &stats);
    return stats.queued;
}

static void create_room_counts_initial_state_members_as_invitees(void)
{
    tu_fixture fx;
    ssp_create_room body = {.is_direct = true, .n_invites = 3};
    ssp_request req;

    REQUIRE(setup(&fx));
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_USER_MAY_CREATE_ROOM;
    req.actor = PUPIL;
    req.actor_is_admin = SSP_FACT_NO;
    req.create = &body;
    /* "is_direct" with three people is a group room a pupil may not make. */
    CHECK_RULE(run(&fx, &req), SSP_RULE_ROOM_CREATION_FORBIDDEN);
    body.n_invites = 1;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    body.third_party_invites = true;
    CHECK_RULE(run(&fx, &req), SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN);
    body.third_party_invites = false;
    body.open_join_rule = true;
    CHECK_RULE(run(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    body.open_join_rule = false;
    body.world_readable = true;
    CHECK_RULE(run(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    body.world_readable = false;
    /* Each invitee is checked like an invite: a stranger shares no room. */
    req.target = PUPIL2;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_NEED_SHARED_ROOMS);
    req.shared_known = SSP_FACT_YES;
    CHECK_RULE(run(&fx, &req), SSP_RULE_NO_SHARED_ROOM);
    tu_teardown(&fx);
}

static void join_rules_other_than_invite_and_world_readable_history_are_refused(void)
{
    tu_fixture fx;
    ssp_request req;

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, TEACHER, NULL, &SYNC_CREATE);
    req.event_type = "m.room.join_rules";
    req.state_key = "";
    req.opens_join_rule = true;
    CHECK_RULE(run(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    req.opens_join_rule = false;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    req.event_type = "m.room.history_visibility";
    req.opens_history = true;
    CHECK_RULE(run(&fx, &req), SSP_RULE_PUBLIC_ROOM_FORBIDDEN);
    req.opens_history = false;
    /* A planted third-party invite: anyone who signs with its key could join. */
    req.event_type = "m.room.third_party_invite";
    req.state_key = "token";
    CHECK_RULE(run(&fx, &req), SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN);
    /* The sync may. */
    req.actor = SYNC;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void direct_chat_of_a_pupil_holds_two(void)
{
    tu_fixture fx;
    ssp_room_create pupils_dm = {.sender = PUPIL, .room_version = "12", .room_version_len = 2};
    ssp_room_create teachers_room = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_room_policy shared = course();
    ssp_request req;

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_USER_MAY_INVITE, PUPIL2, NULL, &pupils_dm);
    req.target = TEACHER;
    req.shared_rooms = &shared;
    req.n_shared_rooms = 1;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_NEED_MEMBER_COUNT);
    req.member_count_known = true;
    req.member_count = 1;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    req.member_count = 2;
    CHECK_RULE(run(&fx, &req), SSP_RULE_ROOM_CREATION_FORBIDDEN);
    /* Whoever invites: the teacher cannot grow the pupil's chat either. */
    req.actor = TEACHER;
    req.target = PUPIL2;
    CHECK_RULE(run(&fx, &req), SSP_RULE_ROOM_CREATION_FORBIDDEN);
    /* A teacher's group room grows. */
    req.room_create = &teachers_room;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void refused_tokens_are_audited_once_a_minute(void)
{
    tu_fixture fx;
    ssp_request req;
    ssp_decision d;
    uint64_t before;

    REQUIRE(setup(&fx));
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_IS_USER_EXPIRED;
    req.actor = LEAVER;
    req.actor_is_admin = SSP_FACT_NO;
    before = queued(&fx);
    for (int i = 0; i < 5; i++) {
        d = run(&fx, &req);
        CHECK_RULE(d, SSP_RULE_SCHOOL_NOT_ENABLED);
    }
    CHECK_INT_EQ(queued(&fx) - before, 1);
    req.actor = STRANGER;
    CHECK_RULE(run(&fx, &req), SSP_RULE_NOT_ON_ROSTER);
    CHECK_INT_EQ(queued(&fx) - before, 2);
    req.actor = PUPIL;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    req.actor = SYNC;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    req.actor = LEAVER;
    req.actor_is_admin = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_NEED_ADMIN);
    req.actor_is_admin = SSP_FACT_YES;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

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

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, PUPIL, &room, &SYNC_CREATE);
    req.event_type = "m.reaction";
    req.shape = &shape;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    shape = reaction("m.annotation", "meet me at 5");
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    shape = reaction("m.reference", "\xF0\x9F\x91\x8D");
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    shape = reaction("m.annotation", "\xF0\x9F\x91\x8D");
    shape.n_content_keys = 2; /* a "body" beside the relation */
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    /* A redaction names its target and nothing more. */
    memset(&shape, 0, sizeof shape);
    shape.n_content_keys = 1;
    shape.has_redacts = true;
    shape.content_redacts = "$message";
    req.event_type = "m.room.redaction";
    req.redacts = "$message";
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    shape.n_content_keys = 2; /* "reason" */
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    shape.n_content_keys = 1;
    /* Before room version 11 a `redacts` in the content is the sender's own text. */
    shape.content_redacts = "meet me at 5";
    req.redacts = "$message";
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    shape.content_redacts = "$message";
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    req.state_key = ""; /* as a state event, which events[m.room.redaction]: 0 would let through */
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    /* Teachers post anything. */
    req.actor = TEACHER;
    {
        ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
        ssp_power_levels pl = {.state_default = 50, .actor_listed = true, .actor_level = 50,
                               .users = &teacher, .n_users = 1};

        req.room_power_levels = &pl;
        req.state_key = NULL;
        shape.n_content_keys = 2;
        CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
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

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_USER_MAY_INVITE, PUPIL, &room, &SYNC_CREATE);
    req.target = PUPIL2;
    req.room_power_levels = &pl;
    req.shared_rooms = &shared;
    req.n_shared_rooms = 1;
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    room.two_way = true;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    room.two_way = false;
    req.actor = TEACHER;
    pl.actor_listed = true;
    pl.actor_level = 50;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void nobody_but_the_sync_redacts_the_policy_event(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_event_shape shape = {.n_content_keys = 1, .has_redacts = true, .content_redacts = "$policy"};
    ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
    ssp_power_levels pl = {.events_default = 50, .state_default = 50, .actor_listed = true,
                           .actor_level = 50, .users = &teacher, .n_users = 1};
    ssp_request req;

    REQUIRE(setup(&fx));
    room.event_id = "$policy";
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, TEACHER, &room, &SYNC_CREATE);
    req.event_type = "m.room.redaction";
    req.shape = &shape;
    req.redacts = "$policy";
    req.room_power_levels = &pl;
    CHECK_RULE(run(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    shape.content_redacts = req.redacts = "$message";
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    shape.content_redacts = req.redacts = "$policy";
    req.actor = SYNC;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void only_a_service_users_policy_event_makes_a_room_managed(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_room_create teachers = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_request req;

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, PUPIL, &room, &SYNC_CREATE);
    req.event_type = "m.room.message";
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    /* Sent by a user of another server: ignored, the room is not managed. */
    room.sender = REMOTE;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    /* A local teacher's policy event counts only in a room the sync made. */
    room.sender = TEACHER;
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    room.creator = TEACHER;
    req.room_create = &teachers;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    /* Such a room qualifies for nothing. */
    req = in_room(SSP_CB_USER_MAY_INVITE, PUPIL, NULL, &SYNC_CREATE);
    req.target = PUPIL2;
    req.shared_rooms = &room;
    req.n_shared_rooms = 1;
    CHECK_RULE(run(&fx, &req), SSP_RULE_NO_SHARED_ROOM);
    room.sender = room.creator = SYNC;
    req.member_count_known = true;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void moderator_flips_two_way_only_in_rooms_the_sync_made(void)
{
    tu_fixture fx;
    ssp_room_policy room = course(), flipped = course();
    ssp_room_create teachers = {.sender = TEACHER, .room_version = "12", .room_version_len = 2};
    ssp_level_entry teacher = {TEACHER, strlen(TEACHER), 50};
    ssp_power_levels pl = {.events_default = 50, .state_default = 50, .actor_listed = true,
                           .actor_level = 50, .full = true, .users = &teacher, .n_users = 1};
    ssp_request req;

    REQUIRE(setup(&fx));
    flipped.two_way = true;
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, TEACHER, &room, &SYNC_CREATE);
    req.event_type = "org.synapse_school_policy.room";
    req.state_key = "";
    req.new_policy = &flipped;
    req.room_power_levels = &pl;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS);
    room.creator = TEACHER;
    req.room_create = &teachers;
    CHECK_RULE(run(&fx, &req), SSP_RULE_POLICY_EVENT_LOCKED);
    tu_teardown(&fx);
}

static void joining_a_room_of_another_server_is_refused(void)
{
    tu_fixture fx;
    ssp_room_create remote = {.sender = REMOTE, .room_version = "12", .room_version_len = 2};
    ssp_request req;
    ssp_decision d;

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_USER_MAY_JOIN_ROOM, PUPIL, NULL, NULL);
    req.is_invited = SSP_FACT_NO;
    d = run(&fx, &req);
    CHECK_RULE(d, SSP_RULE_FEDERATION_FORBIDDEN);
    CHECK_STR_EQ(d.message, "You cannot join rooms of other servers.");
    req.room_create = &remote;
    CHECK_RULE(run(&fx, &req), SSP_RULE_FEDERATION_FORBIDDEN);
    req.room_create = &SYNC_CREATE;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

static void profile_change_of_a_joined_member_is_no_join(void)
{
    tu_fixture fx;
    ssp_room_policy room = course();
    ssp_request req;
    uint64_t before;

    REQUIRE(setup(&fx));
    req = in_room(SSP_CB_USER_MAY_JOIN_ROOM, TEACHER, &room, &SYNC_CREATE);
    req.is_invited = SSP_FACT_NO; /* Synapse's join->join: no inviter */
    req.actor_joined = SSP_FACT_UNKNOWN;
    before = queued(&fx);
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_NEED_MEMBERSHIP);
    req.actor_joined = SSP_FACT_YES;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    CHECK_INT_EQ(queued(&fx) - before, 0);
    req.actor_joined = SSP_FACT_NO;
    CHECK_RULE(run(&fx, &req), SSP_RULE_JOIN_FORBIDDEN);
    /* An invited member of the school never needs the lookup. */
    req.is_invited = SSP_FACT_YES;
    req.actor_joined = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
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

    REQUIRE(setup(&fx));
    v10.room_version = "10";
    req = in_room(SSP_CB_CHECK_EVENT_FOR_SPAM, PUPIL, &room, &v12);
    req.event_type = "m.room.message";
    CHECK_VERDICT(run(&fx, &req), SSP_VERDICT_ALLOW);
    req.room_create = &v10;
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    v10.room_version = NULL; /* missing: version 1 */
    CHECK_RULE(run(&fx, &req), SSP_RULE_ONE_WAY);
    tu_teardown(&fx);
}

static void emoji_keys(void)
{
    static const char *const emoji[] = {
        "\xF0\x9F\x91\x8D",                                             /* thumbs up */
        "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",                             /* with a skin tone */
        "\xE2\x9D\xA4\xEF\xB8\x8F",                                     /* heart + VS16 */
        "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", /* family (ZWJ) */
        "1\xEF\xB8\x8F\xE2\x83\xA3",                                    /* keycap 1 */
        "#\xE2\x83\xA3",                                                /* keycap # without VS16 */
        "\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA",                             /* flag DE */
        /* the flag of England: black flag, the tags "gbeng", cancel tag */
        ("\xF0\x9F\x8F\xB4\xF3\xA0\x81\xA7\xF3\xA0\x81\xA2\xF3\xA0\x81\xA5\xF3\xA0\x81\xAE"
         "\xF3\xA0\x81\xA7\xF3\xA0\x81\xBF"),
        "\xC2\xA9",                                                     /* copyright sign */
        "\xF0\x9F\x85\xB0\xEF\xB8\x8F",                                 /* blood type A */
    };
    static const char *const text[] = {
        "", "+1", "ok", "meet me at 5", "1", "\xE2\x80\x8D", "\xF0\x9F\x91\x8D hi",
        "\xC3\xA4",     /* a-umlaut: a letter */
        "\xF0\x9F\x91", /* truncated */
        "\xC0\xAF",     /* overlong */
        "\xF0\x9F\x91\x8D\xF0\x9F\x91\x8D", /* two emoji: two reactions' worth */
        "01761234567\xE2\x83\xA3",          /* a phone number before one keycap */
        "\xE2\x9E\x80\xE2\x9E\x86",         /* dingbat circled digits */
        "\xF0\x9F\x85\xBC\xF0\x9F\x85\xB4", /* enclosed letters M E */
        "\xF0\x9F\x87\xA9",                 /* one regional indicator */
        "\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA\xF0\x9F\x87\xA9", /* three: letters, not a flag */
        "\xF0\x9F\x8F\xB4\xF3\xA0\x81\xAD\xF3\xA0\x81\xA5", /* tags that spell, no cancel tag */
        "\xF0\x9F\x8F\xBD",                 /* a skin tone alone */
        "\xF0\x9F\x91\x8D\xE2\x80\x8D",     /* a joiner at the end */
    };
    char seq[80];
    size_t len = 0;

    for (size_t i = 0; i < sizeof emoji / sizeof emoji[0]; i++)
        CHECK_MSG(ssp_emoji_key(emoji[i], strlen(emoji[i])), "emoji %zu refused", i);
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        CHECK_MSG(!ssp_emoji_key(text[i], strlen(text[i])), "text %zu taken for an emoji", i);
    /* A joined sequence up to the length limit, and one past it. */
    memcpy(seq, "\xF0\x9F\x91\x8D", 4);
    len = 4;
    for (int k = 0; k < 8; k++, len += 7)
        memcpy(seq + len, "\xE2\x80\x8D\xF0\x9F\x91\x8D", 7);
    CHECK(len == 60 && ssp_emoji_key(seq, len));
    memcpy(seq + len, "\xE2\x80\x8D\xF0\x9F\x91\x8D", 7);
    CHECK(!ssp_emoji_key(seq, len + 7));
}

static void room_versions_with_creator_power(void)
{
    CHECK(ssp_room_version_creators_have_power("12", 2));
    CHECK(ssp_room_version_creators_have_power("org.matrix.hydra.11", 19));
    CHECK(ssp_room_version_creators_have_power("13", 2));
    CHECK(!ssp_room_version_creators_have_power("11", 2));
    CHECK(!ssp_room_version_creators_have_power("1", 1));
    CHECK(!ssp_room_version_creators_have_power("org.matrix.msc3757.11", 21));
    CHECK(!ssp_room_version_creators_have_power(NULL, 0));
}

void run_doors_tests(void)
{
    RUN(create_room_counts_initial_state_members_as_invitees);
    RUN(join_rules_other_than_invite_and_world_readable_history_are_refused);
    RUN(direct_chat_of_a_pupil_holds_two);
    RUN(refused_tokens_are_audited_once_a_minute);
    RUN(one_way_rooms_let_through_no_text);
    RUN(pupils_do_not_invite_into_one_way_rooms);
    RUN(nobody_but_the_sync_redacts_the_policy_event);
    RUN(only_a_service_users_policy_event_makes_a_room_managed);
    RUN(moderator_flips_two_way_only_in_rooms_the_sync_made);
    RUN(joining_a_room_of_another_server_is_refused);
    RUN(profile_change_of_a_joined_member_is_no_join);
    RUN(creators_hold_power_where_the_room_version_gives_it);
    RUN(emoji_keys);
    RUN(room_versions_with_creator_power);
}
