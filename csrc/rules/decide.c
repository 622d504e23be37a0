/*
 * Rule decisions. Everything here runs on Synapse's reactor thread for every
 * checked action, so it reads only memory: the config, and the roster under
 * its read lock. Facts that live in Synapse (is the actor a server admin,
 * what is the room's state) are asked for with a NEED_* verdict and
 * supplied by the caller, who then asks again.
 *
 * Locking rule: ssp_decide takes the roster's read lock once and holds it
 * while the rules run, so that one decision sees one roster (a write
 * between two lookups cannot make it judge the actor by one version and the
 * target by another). Every function below that reads engine->roster
 * expects that lock held and takes no lock of its own.
 */
#include <string.h>

#include "audit.h"
#include "engine_state.h"
#include "ids.h"
#include "rules/decide.h"
#include "rules/matrix.h"
#include "rules/power_levels.h"
#include "rules/rules.h"
#include "util.h"

#define POWER_LEVELS_TYPE "m.room.power_levels"
#define REDACTION_TYPE "m.room.redaction"

/* A denial being put together: rule, whether it is enforced, which school. */
typedef struct denial {
    ssp_rule rule;
    bool enforced;
    ssp_rule_situation say; /* which of the rule's messages the client gets */
    char school[SSP_SCHOOL_ID_MAX + 1];
} denial;

#define REACTION_TYPE "m.reaction"
#define THIRD_PARTY_INVITE_TYPE "m.room.third_party_invite"
#define ANNOTATION_REL_TYPE "m.annotation"
/* A room that cannot grow: a direct chat of someone who may not create
 * group rooms holds its creator and one other person. */
#define DIRECT_CHAT_MEMBERS 2

static const ssp_school *school_of(const ssp_config *config, const char *id, size_t len)
{
    return id ? ssp_config_school(config, id, len) : NULL;
}

static bool school_enforced(const ssp_config *config, const ssp_school *school)
{
    return school ? school->enforce : config->enforce;
}

static void copy_school(char *dest, const char *school, size_t len)
{
    if (school == NULL)
        len = 0;
    /* Cut on a character boundary: the school goes into JSON and to Python. */
    if (len > SSP_SCHOOL_ID_MAX)
        len = ssp_utf8_prefix(school, len, SSP_SCHOOL_ID_MAX);
    if (len > 0)
        memcpy(dest, school, len);
    dest[len] = '\0';
}

/* A user's roster entry, or NULL. Roster read lock held; the entry stays
 * valid while it is. */
static const ssp_roster_user *roster_entry(ssp_engine *engine, const char *user_id)
{
    return ssp_strmap_get(&engine->roster.users, user_id);
}

/* Rule 1 for one user, given their roster entry (NULL: not on the roster):
 * fills *out and returns true when the user may not use the messenger.
 * Roster read lock held. */
static bool standing_denies(ssp_engine *engine, const ssp_roster_user *user, denial *out)
{
    const ssp_config *config = &engine->config;
    bool denied = false;

    out->say = SSP_SAY_USUAL;
    if (user == NULL) {
        if (!config->unlisted_allow) {
            out->rule = SSP_RULE_NOT_ON_ROSTER;
            out->enforced = config->enforce;
            out->school[0] = '\0';
            denied = true;
        }
        return denied;
    }
    for (size_t i = 0; i < user->n; i++) {
        const ssp_school *school = user->memberships[i].config;

        if (school != NULL && school->messenger)
            return false;
    }
    /* None of the user's schools has opted in. The denial is enforced if any
     * of them enforces; the audit names the first that does. */
    out->rule = SSP_RULE_SCHOOL_NOT_ENABLED;
    out->enforced = false;
    for (size_t i = 0; i < user->n; i++) {
        const char *id = user->memberships[i].school;
        bool enforced = school_enforced(config, user->memberships[i].config);

        if (i == 0 || (enforced && !out->enforced)) {
            copy_school(out->school, id, strlen(id));
            out->enforced = enforced;
        }
    }
    return true;
}

static bool callback_touches_room(ssp_callback cb)
{
    return cb == SSP_CB_USER_MAY_JOIN_ROOM || cb == SSP_CB_USER_MAY_INVITE ||
           cb == SSP_CB_CHECK_EVENT_FOR_SPAM;
}

static bool is_service_user(const ssp_engine *engine, const char *user_id)
{
    return user_id != NULL && ssp_strmap_get(&engine->config.service_user_set, user_id) != NULL;
}

static bool is_state_event(const ssp_request *req, const char *type)
{
    return req->event_type != NULL && req->state_key != NULL && req->state_key[0] == '\0' &&
           strcmp(req->event_type, type) == 0;
}

/* Service users and the reconciler user are the only ones who create
 * managed rooms; they must be users of this server. */
static bool is_local_service_user(const ssp_engine *engine, const char *user_id)
{
    return is_service_user(engine, user_id) && ssp_engine_is_local(engine, user_id);
}

/* A policy event counts only when a service user of this server sent it,
 * or a local user sent it in a room a service user created (a moderator's
 * two_way flip, which the rules checked when it was sent). A policy event
 * from another server, or in a room someone else created, is ignored: the
 * room is not managed and qualifies for nothing. */
static bool policy_trusted(const ssp_engine *engine, const ssp_room_policy *policy)
{
    if (policy->sender == NULL || !ssp_engine_is_local(engine, policy->sender))
        return false;
    return is_service_user(engine, policy->sender) ||
           (policy->creator != NULL && is_local_service_user(engine, policy->creator));
}

/* ssp_decide has already dropped a policy event it cannot trust (see
 * trusted_view), so `room` is the room's policy when it counts. */
static bool room_is_managed(const ssp_request *req)
{
    return req->room_managed == SSP_FACT_YES && req->room != NULL && !req->room->empty;
}

/* The room's create event is unknown here (a room on another server that
 * this server has not joined) or was sent by a user of another server. */
static bool room_is_foreign(const ssp_engine *engine, const ssp_request *req)
{
    return req->room_create == NULL || req->room_create->sender == NULL ||
           !ssp_engine_is_local(engine, req->room_create->sender);
}

/* Teachers' rooms are always two-way; every other kind, including one the
 * engine does not know, is one-way until `two_way` opens it. */
static bool policy_is_one_way(const ssp_room_policy *policy)
{
    return policy->kind != SSP_KIND_TEACHERS && !policy->two_way;
}

/* The room's power levels and create content, when the caller left them
 * to be read on first use: read now, once (see ssp_room_details). Every
 * rule that reads them calls this first. */
static void read_room_details(const ssp_request *req)
{
    ssp_room_details *details = req->room_details;

    if (details != NULL && !details->loaded) {
        details->loaded = true;
        details->failed = details->load(details) != 0;
    }
}

static bool same_text(const char *a, size_t a_len, const char *b, size_t b_len);
static bool deny_as_actor(ssp_engine *engine, const ssp_request *req, bool actor_local, ssp_rule rule,
                          denial *d);

/* The actor is one of the room's creators in a room version that gives
 * creators unlimited power. */
static bool actor_is_powerful_creator(const ssp_request *req)
{
    const ssp_room_create *create = req->room_create;
    size_t actor_len;

    read_room_details(req);
    if (create == NULL || create->sender == NULL ||
        !ssp_room_version_creators_have_power(create->room_version, create->room_version_len))
        return false;
    if (strcmp(create->sender, req->actor) == 0)
        return true;
    actor_len = strlen(req->actor);
    for (size_t i = 0; i < create->n_additional_creators; i++) {
        if (same_text(create->additional_creators[i].text, create->additional_creators[i].len,
                      req->actor, actor_len))
            return true;
    }
    return false;
}

/* The actor's power in the room as Synapse sees it. */
static int64_t actor_level(const ssp_request *req)
{
    const ssp_power_levels *pl = req->room_power_levels;

    read_room_details(req);
    if (actor_is_powerful_creator(req))
        return INT64_MAX;
    if (pl == NULL)
        return 0;
    return pl->actor_listed ? pl->actor_level : pl->users_default;
}

static bool same_text(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* Equal as maps: same keys with the same levels, in any order. */
static bool same_levels(const ssp_level_entry *a, size_t n_a, const ssp_level_entry *b, size_t n_b)
{
    if (n_a != n_b)
        return false;
    for (size_t i = 0; i < n_a; i++) {
        bool found = false;

        for (size_t j = 0; j < n_b && !found; j++)
            found = same_text(a[i].key, a[i].key_len, b[j].key, b[j].key_len) &&
                    a[i].level == b[j].level;
        if (!found)
            return false;
    }
    return true;
}

/* The policy event may be created or have its school or kind changed only by
 * service users; its two_way flag may also be flipped by room moderators,
 * in rooms a service user created (elsewhere the flip would be a policy
 * event nobody can trust). */
static bool policy_change_denied(const ssp_engine *engine, const ssp_request *req)
{
    const ssp_room_policy *cur = req->room, *next = req->new_policy;

    if (!room_is_managed(req) || next == NULL || next->empty)
        return true; /* creating or deleting it */
    if (!same_text(cur->school, cur->school_len, next->school, next->school_len) ||
        !same_text(cur->kind_name, cur->kind_len, next->kind_name, next->kind_len) ||
        cur->n_keys != next->n_keys)
        return true;
    if (cur->creator == NULL || !is_local_service_user(engine, cur->creator))
        return true;
    return actor_level(req) < engine->config.moderator_level;
}

/* Nobody but service users may change users' levels in a managed room, nor
 * lower events_default under the moderator level while it is one-way. */
static bool power_levels_change_denied(const ssp_engine *engine, const ssp_request *req)
{
    const ssp_power_levels *cur = req->room_power_levels, *next = req->new_power_levels;

    read_room_details(req);
    if (next == NULL || !next->full)
        return true; /* content the caller could not read: fail closed */
    if (cur == NULL || !cur->full) {
        if (next->n_users > 0)
            return true;
    } else if (!same_levels(cur->users, cur->n_users, next->users, next->n_users)) {
        return true;
    }
    if (cur != NULL && cur->full && next->users_default != cur->users_default)
        return true;
    return policy_is_one_way(req->room) && next->events_default < engine->config.moderator_level;
}

/* Event types that stay open to everybody in a one-way room. */
static bool allowed_in_one_way_room(const ssp_engine *engine, const char *event_type)
{
    /* Redacting one's own earlier events stays possible; Synapse's auth
     * still stops anyone below the redact level from redacting others'. */
    if (strcmp(event_type, REDACTION_TYPE) == 0)
        return true;
    return ssp_strmap_get(&engine->config.one_way_allowed_set, event_type) != NULL;
}

static bool text_is(const char *text, size_t len, const char *want)
{
    return text != NULL && same_text(text, len, want, strlen(want));
}

/* What an open event type may carry in a one-way room: nothing anyone can
 * read. A redaction names its target and nothing else (a `reason` is text
 * to the class); a reaction is an emoji on an event. Other allow-listed
 * types are the operator's choice and pass as they are. */
static bool open_event_carries_text(const ssp_request *req)
{
    const ssp_event_shape *shape = req->shape;

    if (strcmp(req->event_type, REDACTION_TYPE) == 0) {
        /* Before room version 11 `redacts` sits outside the content, and a
         * `redacts` key inside it is the sender's free text. */
        if (shape == NULL || shape->n_content_keys > (shape->has_redacts ? 1u : 0u))
            return true;
        return shape->has_redacts && (shape->content_redacts == NULL || req->redacts == NULL ||
                                      strcmp(shape->content_redacts, req->redacts) != 0);
    }
    if (strcmp(req->event_type, REACTION_TYPE) == 0)
        return shape == NULL || shape->n_content_keys != 1 || !shape->has_relation ||
               shape->n_relation_keys != 3 ||
               !text_is(shape->rel_type, shape->rel_type_len, ANNOTATION_REL_TYPE) ||
               !shape->relation_event_id || !ssp_emoji_key(shape->key, shape->key_len);
    return false;
}

/* Rule 2 for a sender below the moderator level. The open types are open
 * as timeline events only: the power-levels entry that opens them applies
 * to state events of the same type too. */
static bool one_way_denies(const ssp_engine *engine, const ssp_request *req)
{
    if (!allowed_in_one_way_room(engine, req->event_type))
        return true;
    return req->state_key != NULL || open_event_carries_text(req);
}

static bool deny(denial *d, ssp_rule rule, bool enforced, const char *school, size_t school_len)
{
    d->rule = rule;
    d->enforced = enforced;
    d->say = SSP_SAY_USUAL;
    copy_school(d->school, school, school_len);
    return true;
}

/* A denial under the managed room's school and that school's enforcement. */
static bool deny_in_room(const ssp_engine *engine, const ssp_request *req, ssp_rule rule, denial *d)
{
    const ssp_room_policy *room = req->room;
    const ssp_school *school = school_of(&engine->config, room->school, room->school_len);

    return deny(d, rule, school_enforced(&engine->config, school), room->school, room->school_len);
}

/* Rules 1 and 2 for the room and the event. Returns true with *d filled on
 * a denial; sets *need_room when the room's state is needed first. */
static bool room_rules_deny(ssp_engine *engine, const ssp_request *req, bool actor_local,
                            bool *need_room, denial *d)
{
    const ssp_config *config = &engine->config;
    const ssp_room_policy *room = req->room;
    const ssp_school *school;
    bool enforced;

    if (!callback_touches_room(req->callback) || req->room_id == NULL)
        return false;
    if (req->room_managed == SSP_FACT_UNKNOWN) {
        *need_room = true;
        return false;
    }
    if (req->callback == SSP_CB_USER_MAY_JOIN_ROOM && actor_local && room_is_foreign(engine, req)) {
        deny_as_actor(engine, req, actor_local, SSP_RULE_FEDERATION_FORBIDDEN, d);
        d->say = SSP_SAY_OTHER_SERVER;
        return true;
    }
    if (!room_is_managed(req)) {
        if (req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM && is_state_event(req, config->policy_event_type))
            return deny(d, SSP_RULE_POLICY_EVENT_LOCKED, config->enforce, NULL, 0);
        return false;
    }
    /* A policy event without a usable school fails closed: the room is
     * managed, and no school can have enabled it. */
    school = school_of(config, room->school, room->school_len);
    enforced = school_enforced(config, school);
    if (school == NULL || !school->messenger)
        return deny(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED, enforced, room->school, room->school_len);
    if (req->callback != SSP_CB_CHECK_EVENT_FOR_SPAM || req->event_type == NULL)
        return false;
    /* Redacting the policy event empties it, which unmanages the room as
     * surely as deleting it: Synapse lets any moderator redact state. */
    if (strcmp(req->event_type, REDACTION_TYPE) == 0 && req->redacts != NULL && room->event_id != NULL &&
        strcmp(req->redacts, room->event_id) == 0)
        return deny(d, SSP_RULE_POLICY_EVENT_LOCKED, enforced, room->school, room->school_len);
    if (is_state_event(req, config->policy_event_type)) {
        if (policy_change_denied(engine, req))
            return deny(d, SSP_RULE_POLICY_EVENT_LOCKED, enforced, room->school, room->school_len);
        return false;
    }
    if (is_state_event(req, POWER_LEVELS_TYPE) && power_levels_change_denied(engine, req))
        return deny(d, SSP_RULE_POWER_LEVELS_LOCKED, enforced, room->school, room->school_len);
    if (policy_is_one_way(room) && actor_level(req) < config->moderator_level &&
        one_way_denies(engine, req)) {
        deny(d, SSP_RULE_ONE_WAY, enforced, room->school, room->school_len);
        if (strcmp(req->event_type, REACTION_TYPE) == 0 && req->state_key == NULL)
            d->say = SSP_SAY_REACTION;
        return true;
    }
    return false;
}

/* The school and enforcement that rule-3 denials of a local actor are
 * recorded under: the actor's first opted-in school. */
static void actor_context(ssp_engine *engine, const char *actor, bool actor_local, denial *d)
{
    const ssp_config *config = &engine->config;
    const ssp_roster_user *user;

    d->enforced = config->enforce;
    d->school[0] = '\0';
    if (!actor_local)
        return;
    user = roster_entry(engine, actor);
    for (size_t i = 0; user != NULL && i < user->n; i++) {
        const char *id = user->memberships[i].school;
        const ssp_school *school = user->memberships[i].config;

        if (school != NULL && school->messenger) {
            copy_school(d->school, id, strlen(id));
            d->enforced = school->enforce;
            break;
        }
    }
}

static bool deny_as_actor(ssp_engine *engine, const ssp_request *req, bool actor_local, ssp_rule rule,
                          denial *d)
{
    actor_context(engine, req->actor, actor_local, d);
    d->rule = rule;
    d->say = SSP_SAY_USUAL;
    return true;
}

/* A room counts for reachability when it is managed by a school that has
 * opted in; an announcement room only while the school has it enabled. */
static bool room_qualifies(const ssp_engine *engine, const ssp_room_policy *room)
{
    const ssp_config *config = &engine->config;
    const ssp_school *school;

    if (room->empty || room->school == NULL || !policy_trusted(engine, room))
        return false;
    school = ssp_config_school(config, room->school, room->school_len);
    if (school == NULL || !school->messenger)
        return false;
    return room->kind != SSP_KIND_ANNOUNCEMENT || school->announcement_room;
}

/* Rule 3's core: actor and target must share a qualifying room. */
static bool shared_room_denies(ssp_engine *engine, const ssp_request *req, bool actor_local,
                               bool *need_shared, denial *d)
{
    if (req->target == NULL || is_service_user(engine, req->target) ||
        strcmp(req->target, req->actor) == 0)
        return false;
    if (req->shared_known == SSP_FACT_UNKNOWN) {
        *need_shared = true;
        return false;
    }
    for (size_t i = 0; i < req->n_shared_rooms; i++) {
        if (room_qualifies(engine, &req->shared_rooms[i]))
            return false;
    }
    return deny_as_actor(engine, req, actor_local, SSP_RULE_NO_SHARED_ROOM, d);
}

/* Whether the actor may create group rooms under any of their opted-in
 * schools' room_creation settings. */
static bool may_create_group_rooms(ssp_engine *engine, const char *actor)
{
    const ssp_roster_user *user;
    bool allowed = false;

    user = roster_entry(engine, actor);
    for (size_t i = 0; user != NULL && i < user->n && !allowed; i++) {
        const ssp_school *school = user->memberships[i].config;

        if (school == NULL || !school->messenger)
            continue;
        allowed = school->room_creation == SSP_CREATE_EVERYONE ||
                  (school->room_creation == SSP_CREATE_TEACHERS &&
                   user->memberships[i].role != SSP_ROLE_STUDENT);
    }
    return allowed;
}

/* The user's role in the school, when the roster puts them there. */
static bool role_in_school(ssp_engine *engine, const char *user_id, const char *school, size_t len,
                           ssp_role *role)
{
    const ssp_roster_user *user;
    bool found = false;

    if (school == NULL)
        return false;
    user = roster_entry(engine, user_id);
    for (size_t i = 0; user != NULL && i < user->n && !found; i++) {
        found = same_text(user->memberships[i].school, strlen(user->memberships[i].school), school, len);
        if (found)
            *role = user->memberships[i].role;
    }
    return found;
}

static bool user_in_school(ssp_engine *engine, const char *user_id, const char *school, size_t len)
{
    ssp_role ignored;

    return role_in_school(engine, user_id, school, len, &ignored);
}

/* Teachers and admins of the school: who may be in its teachers' room. */
static bool staff_of_school(ssp_engine *engine, const char *user_id, const char *school, size_t len)
{
    ssp_role role = SSP_ROLE_STUDENT;

    return role_in_school(engine, user_id, school, len, &role) && role != SSP_ROLE_STUDENT;
}

/* Rule 4: nobody but the school's staff joins, or is invited to, its
 * teachers' room, whoever sends the invite. */
static bool teachers_room_denies(ssp_engine *engine, const ssp_request *req, denial *d)
{
    const ssp_room_policy *room = req->room;
    const char *who;

    if (room->kind != SSP_KIND_TEACHERS)
        return false;
    if (req->callback == SSP_CB_USER_MAY_JOIN_ROOM)
        who = req->actor;
    else if (req->callback == SSP_CB_USER_MAY_INVITE && req->target != NULL &&
             !is_service_user(engine, req->target))
        who = req->target;
    else
        return false;
    if (staff_of_school(engine, who, room->school, room->school_len))
        return false;
    deny_in_room(engine, req, SSP_RULE_STAFF_ONLY, d);
    if (who != req->actor)
        d->say = SSP_SAY_ABOUT_TARGET;
    return true;
}

/* The closed doors of createRoom, and who may create group rooms. */
static bool create_room_denies(ssp_engine *engine, const ssp_request *req, bool actor_local,
                               bool *need_shared, denial *d)
{
    const ssp_create_room *create = req->create;

    if (create == NULL)
        return false;
    if (create->sets_policy)
        return deny(d, SSP_RULE_POLICY_EVENT_LOCKED, engine->config.enforce, NULL, 0);
    if (create->public_preset || create->public_visibility || create->open_join_rule ||
        create->world_readable)
        return deny_as_actor(engine, req, actor_local, SSP_RULE_PUBLIC_ROOM_FORBIDDEN, d);
    if (create->opens_guest_access)
        return deny_as_actor(engine, req, actor_local, SSP_RULE_GUEST_ACCESS_FORBIDDEN, d);
    if (create->sets_alias)
        return deny_as_actor(engine, req, actor_local, SSP_RULE_ALIAS_FORBIDDEN, d);
    if (create->third_party_invites)
        return deny_as_actor(engine, req, actor_local, SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN, d);
    if (req->target != NULL)
        return shared_room_denies(engine, req, actor_local, need_shared, d);
    /* A direct chat is a room with is_direct and exactly one invitee (the
     * `invite` list and initial_state's member events together); its
     * invitee is checked like any invite. Everything else is a group room. */
    if (!(create->is_direct && create->n_invites == 1) && !may_create_group_rooms(engine, req->actor))
        return deny_as_actor(engine, req, actor_local, SSP_RULE_ROOM_CREATION_FORBIDDEN, d);
    return false;
}

/* A direct chat cannot grow: a room that is not managed, created here by
 * someone who may not create group rooms, holds DIRECT_CHAT_MEMBERS users
 * at most, whoever invites. */
static bool direct_chat_full(ssp_engine *engine, const ssp_request *req, bool actor_local,
                             bool *need_count, denial *d)
{
    const char *creator;

    if (req->room_managed == SSP_FACT_UNKNOWN || room_is_managed(req) || room_is_foreign(engine, req))
        return false;
    creator = req->room_create->sender;
    if (is_service_user(engine, creator) || may_create_group_rooms(engine, creator))
        return false;
    if (!req->member_count_known) {
        *need_count = true;
        return false;
    }
    if (req->member_count < DIRECT_CHAT_MEMBERS)
        return false;
    deny_as_actor(engine, req, actor_local, SSP_RULE_ROOM_CREATION_FORBIDDEN, d);
    d->say = SSP_SAY_DIRECT_CHAT;
    return true;
}

/* The facts a decision may still need; at most one is asked for at a time. */
typedef struct needs {
    bool room, shared, membership, member_count;
} needs;

/* Joining a managed room: only with an invite, only into the own school's
 * rooms, and only the staff into the teachers' room. A join by someone who
 * is joined already changes their profile, not the membership. */
static bool managed_join_denies(ssp_engine *engine, const ssp_request *req, bool actor_local,
                                needs *need, denial *d)
{
    denial found;

    if (req->is_invited == SSP_FACT_YES &&
        user_in_school(engine, req->actor, req->room->school, req->room->school_len)) {
        if (!teachers_room_denies(engine, req, &found))
            return false;
    } else {
        deny_as_actor(engine, req, actor_local, SSP_RULE_JOIN_FORBIDDEN, &found);
    }
    if (req->actor_joined == SSP_FACT_UNKNOWN) {
        need->membership = true;
        return false;
    }
    if (req->actor_joined == SSP_FACT_YES)
        return false;
    *d = found;
    return true;
}

/* Fills *d with the first rule the request breaks. Returns true on a
 * denial; sets a flag in *need instead when a fact is needed first.
 * actor_entry is the local actor's roster entry (NULL: not on the roster). */
static bool evaluate(ssp_engine *engine, const ssp_request *req, bool actor_local,
                     const ssp_roster_user *actor_entry, needs *need, denial *d)
{
    if (actor_local && standing_denies(engine, actor_entry, d))
        return true;
    if (req->target != NULL && ssp_engine_is_local(engine, req->target) &&
        !is_service_user(engine, req->target) &&
        standing_denies(engine, roster_entry(engine, req->target), d)) {
        d->say = SSP_SAY_ABOUT_TARGET;
        return true;
    }
    switch (req->callback) {
    case SSP_CB_USER_MAY_PUBLISH_ROOM:
        return deny_as_actor(engine, req, actor_local, SSP_RULE_PUBLISH_FORBIDDEN, d);
    case SSP_CB_USER_MAY_CREATE_ROOM_ALIAS:
        return deny_as_actor(engine, req, actor_local, SSP_RULE_ALIAS_FORBIDDEN, d);
    case SSP_CB_USER_MAY_SEND_3PID_INVITE:
        return deny_as_actor(engine, req, actor_local, SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN, d);
    case SSP_CB_FEDERATED_USER_MAY_INVITE:
        if (!actor_local)
            return deny_as_actor(engine, req, actor_local, SSP_RULE_FEDERATION_FORBIDDEN, d);
        return false;
    case SSP_CB_USER_MAY_CREATE_ROOM:
        return create_room_denies(engine, req, actor_local, &need->shared, d);
    case SSP_CB_CHECK_USERNAME_FOR_SPAM:
        return shared_room_denies(engine, req, actor_local, &need->shared, d);
    case SSP_CB_CHECK_EVENT_FOR_SPAM:
        /* Closed doors hold in every room, managed or not: nobody joins
         * without an invite (knocks included), nobody outside reads. */
        if (actor_local && (req->opens_join_rule || req->opens_history))
            return deny_as_actor(engine, req, actor_local, SSP_RULE_PUBLIC_ROOM_FORBIDDEN, d);
        if (actor_local && req->opens_guest_access)
            return deny_as_actor(engine, req, actor_local, SSP_RULE_GUEST_ACCESS_FORBIDDEN, d);
        /* A planted m.room.third_party_invite lets whoever signs with its key
         * join through /join's third_party_signed: an invite Synapse turns
         * into a member event without asking user_may_invite. */
        if (actor_local && req->event_type != NULL && req->state_key != NULL &&
            strcmp(req->event_type, THIRD_PARTY_INVITE_TYPE) == 0)
            return deny_as_actor(engine, req, actor_local, SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN, d);
        break;
    default:
        break;
    }
    if (room_rules_deny(engine, req, actor_local, &need->room, d))
        return true;
    if (need->room)
        return false;
    if (req->room_id != NULL && room_is_managed(req)) {
        if (!actor_local && req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM)
            return deny_in_room(engine, req, SSP_RULE_FEDERATION_FORBIDDEN, d);
        if (req->callback == SSP_CB_USER_MAY_JOIN_ROOM)
            return managed_join_denies(engine, req, actor_local, need, d);
        if (teachers_room_denies(engine, req, d))
            return true;
        /* Below the moderator level nobody adds people to a one-way room:
         * its members are the school's to choose, and an invite's reason is
         * text the whole room reads. */
        if (req->callback == SSP_CB_USER_MAY_INVITE && policy_is_one_way(req->room) &&
            actor_level(req) < engine->config.moderator_level) {
            deny_in_room(engine, req, SSP_RULE_ONE_WAY, d);
            d->say = SSP_SAY_INVITE;
            return true;
        }
    }
    if (req->callback == SSP_CB_USER_MAY_INVITE && actor_local) {
        if (shared_room_denies(engine, req, actor_local, &need->shared, d))
            return true;
        if (need->shared)
            return false;
        return direct_chat_full(engine, req, actor_local, &need->member_count, d);
    }
    return false;
}

static bool event_listed_at(const ssp_power_levels *pl, const char *type, int64_t level)
{
    size_t len = strlen(type);

    for (size_t i = 0; pl != NULL && i < pl->n_events; i++) {
        if (same_text(pl->events[i].key, pl->events[i].key_len, type, len))
            return pl->events[i].level == level;
    }
    return false;
}

static void open_event(ssp_power_levels_patch *patch, const ssp_power_levels *current,
                       const char *type)
{
    if (!event_listed_at(current, type, 0) &&
        patch->n_open_events < sizeof patch->open_events / sizeof patch->open_events[0])
        patch->open_events[patch->n_open_events++] = type;
}

bool ssp_power_levels_update(const ssp_engine *engine, const ssp_room_policy *policy,
                             const ssp_power_levels *current, ssp_power_levels_patch *patch)
{
    const ssp_config *config = &engine->config;
    bool one_way;
    int64_t wanted;

    memset(patch, 0, sizeof *patch);
    if (policy == NULL || policy->empty)
        return false;
    one_way = policy_is_one_way(policy);
    wanted = one_way ? config->moderator_level : 0;
    if (current == NULL || current->events_default != wanted) {
        patch->set_events_default = true;
        patch->events_default = wanted;
    }
    if (one_way) {
        open_event(patch, current, REDACTION_TYPE);
        for (size_t i = 0; i < config->n_one_way_allowed_events; i++)
            open_event(patch, current, config->one_way_allowed_events[i]);
    }
    return patch->set_events_default || patch->n_open_events > 0;
}

/* Whether an allowed policy event changes which events_default the room
 * needs, so the caller must bring the power levels in line afterwards. */
static bool policy_event_needs_sync(const ssp_engine *engine, const ssp_request *req)
{
    ssp_power_levels_patch unused;

    if (req->callback != SSP_CB_CHECK_EVENT_FOR_SPAM ||
        !is_state_event(req, engine->config.policy_event_type) || req->new_policy == NULL)
        return false;
    read_room_details(req);
    return ssp_power_levels_update(engine, req->new_policy, req->room_power_levels, &unused);
}

/* The request as the rules read it: a room whose policy event cannot be
 * trusted is a room without one. Judged once per decision, not per rule. */
static const ssp_request *trusted_view(const ssp_engine *engine, const ssp_request *req, ssp_request *copy)
{
    if (req->room_managed != SSP_FACT_YES || req->room == NULL || req->room->empty ||
        policy_trusted(engine, req->room))
        return req;
    *copy = *req;
    copy->room_managed = SSP_FACT_NO;
    copy->room = NULL;
    return copy;
}

void ssp_decide(ssp_engine *engine, const ssp_request *request, ssp_decision *out)
{
    ssp_request copy;
    const ssp_request *req = trusted_view(engine, request, &copy);
    bool actor_local = ssp_engine_is_local(engine, req->actor);
    size_t actor_len = 0;
    uint64_t actor_hash = 0;
    const ssp_roster_user *actor_entry; /* valid while the read lock is held */
    needs need = {0};
    denial d;
    bool denied;

    /* Field by field, not memset: the school buffers (256 bytes each) would
     * be a tenth of a login's decision. The school is a C string. */
    out->verdict = SSP_VERDICT_ALLOW;
    out->rule = SSP_RULE_NONE;
    out->enforced = false;
    out->message = NULL;
    out->school[0] = '\0';
    out->audit_id = 0;
    d.rule = SSP_RULE_NONE;
    d.enforced = false;
    d.say = SSP_SAY_USUAL;
    d.school[0] = '\0';
    if (actor_local) {
        /* A local actor is looked up in the service users and the roster:
         * one hash for both. */
        actor_len = strlen(req->actor);
        actor_hash = ssp_strmap_hash(req->actor, actor_len);
    }
    if (actor_local &&
        (ssp_strmap_get_hashed(&engine->config.service_user_set, req->actor, actor_len, actor_hash) != NULL ||
         req->actor_is_admin == SSP_FACT_YES)) {
        /* Exempt, but a policy event they send may still require the power
         * levels to follow it. */
        if (req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM &&
            is_state_event(req, engine->config.policy_event_type)) {
            if (req->room_managed == SSP_FACT_UNKNOWN)
                out->verdict = SSP_VERDICT_NEED_ROOM;
            else if (policy_event_needs_sync(engine, req))
                out->verdict = SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS;
        }
        return;
    }
    pthread_rwlock_rdlock(&engine->roster.lock);
    actor_entry = actor_local ? ssp_strmap_get_hashed(&engine->roster.users, req->actor, actor_len, actor_hash)
                              : NULL;
    denied = evaluate(engine, req, actor_local, actor_entry, &need, &d);
    pthread_rwlock_unlock(&engine->roster.lock);
    if (req->room_details != NULL && req->room_details->failed)
        return; /* void: the caller reports why; nothing is audited */
    if (!denied) {
        if (need.room)
            out->verdict = SSP_VERDICT_NEED_ROOM;
        else if (need.shared)
            out->verdict = SSP_VERDICT_NEED_SHARED_ROOMS;
        else if (need.membership)
            out->verdict = SSP_VERDICT_NEED_MEMBERSHIP;
        else if (need.member_count)
            out->verdict = SSP_VERDICT_NEED_MEMBER_COUNT;
        else if (policy_event_needs_sync(engine, req))
            out->verdict = SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS;
        return;
    }
    if (actor_local && req->actor_is_admin == SSP_FACT_UNKNOWN) {
        /* Server admins are exempt; finding out costs Synapse a lookup, so it
         * is asked for only when a denial is about to happen. */
        out->verdict = SSP_VERDICT_NEED_ADMIN;
        return;
    }
    out->verdict = SSP_VERDICT_DENY;
    out->rule = d.rule;
    out->enforced = d.enforced;
    out->message = ssp_rule_message(d.rule, d.say, false);
    memcpy(out->school, d.school, strlen(d.school) + 1);
    out->audit_id = ssp_audit_denial(engine, req->callback, out->rule, out->enforced, req->actor,
                                     req->target, req->room_id, req->event_type,
                                     out->school[0] ? out->school : NULL);
}
