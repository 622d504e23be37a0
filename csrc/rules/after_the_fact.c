/*
 * The rules after the fact (after_the_fact.h): one_way for the text of
 * member events, "a direct chat holds two" across workers, the closed
 * doors of rooms made here against their remote members, and the policy
 * event across a service user's room upgrade.
 *
 * Cheap for what needs nothing: a local user's timeline event (which the
 * state delta stream never shows, but another caller might) is decided on
 * `is_state` and the sender alone; a local state event on its type; only
 * member events, tombstones and remote events go on to the room's state.
 *
 * Locking rule: the roster's read lock is held while a rule reads the
 * roster (the direct chat's creator, the actor's school), and released
 * before the audit record is queued, as in decide.c.
 */
#include <string.h>

#include "audit_record.h"
#include "rules/after_the_fact.h"
#include "rules/common.h"
#include "rules/visibility.h"

#define MEMBER_TYPE "m.room.member"
#define TOMBSTONE_TYPE "m.room.tombstone"
#define JOIN_RULES_TYPE "m.room.join_rules"
#define HISTORY_TYPE "m.room.history_visibility"
#define GUEST_ACCESS_TYPE "m.room.guest_access"

static bool value_is(const ssp_value *value, const char *want)
{
    return value->kind == SSP_VALUE_STRING &&
           ssp_same_text(value->text, value->len, want, strlen(want));
}

static bool key_is(const ssp_content_key *key, const char *want)
{
    return ssp_same_text(key->key, key->key_len, want, strlen(want));
}

/* ---- remembering what was done ---- */

/* Whether an action on `event_id` was decided already; if not, it is now
 * remembered as decided. */
static bool acted_before(ssp_engine *engine, const char *event_id)
{
    ssp_acted *acted = &engine->acted;
    uint64_t hash = ssp_strmap_hash(event_id, strlen(event_id));
    bool found = false;

    if (hash == 0)
        hash = 1; /* 0 marks a free slot */
    pthread_mutex_lock(&acted->mutex);
    for (unsigned i = 0; i < SSP_ACTED_SLOTS && !found; i++)
        found = acted->hashes[i] == hash;
    if (!found) {
        acted->hashes[acted->next] = hash;
        acted->next = (acted->next + 1) % SSP_ACTED_SLOTS;
    }
    pthread_mutex_unlock(&acted->mutex);
    return found;
}

/* ---- the request the shared rule helpers read ---- */

/* The event as an ssp_request, for the helpers every family shares (the
 * actor's power, the room's school, the denial): the sender acts, the
 * member is the target, and the policy counts only when it is trusted. */
static void request_view(const ssp_engine *engine, const ssp_event_seen *ev, ssp_request *req)
{
    memset(req, 0, sizeof *req);
    req->callback = SSP_CB_AFTER_THE_FACT;
    req->actor = ev->sender;
    req->target = ev->state_key;
    req->room_id = ev->room_id;
    req->event_type = ev->type;
    req->state_key = ev->state_key;
    req->room_power_levels = ev->power_levels;
    req->room_create = ev->create;
    req->actor_is_admin = ev->sender_admin;
    if (ev->policy != NULL && !ev->policy->empty && ssp_policy_trusted(engine, ev->policy)) {
        req->room_managed = SSP_FACT_YES;
        req->room = ev->policy;
    } else {
        req->room_managed = SSP_FACT_NO;
    }
}

/* ---- one_way: text in a member event (threat model R3) ---- */

/* A display name or avatar that is the member's global profile is what
 * Synapse itself puts into member events; anything else is the member's
 * own text. */
static bool differs_from_profile(const ssp_value *value, const ssp_value *profile)
{
    if (value->kind != SSP_VALUE_STRING)
        return true;
    return profile->kind != SSP_VALUE_STRING ||
           !ssp_same_text(value->text, value->len, profile->text, profile->len);
}

/* Whether the member event's content carries text of the sender's own.
 * Sets *need_profile when only the global profile can tell. */
static bool member_event_carries_text(const ssp_event_seen *ev, bool *need_profile)
{
    bool unsure = false;

    if (ev->more_keys)
        return true;
    for (size_t i = 0; i < ev->n_keys; i++) {
        const ssp_content_key *key = &ev->keys[i];
        const ssp_value *value = &key->value;

        /* Synapse drops a client's join_authorised_via_users_server and sets
         * its own (a user id), and it validates membership itself. */
        if (key_is(key, "membership") || key_is(key, "join_authorised_via_users_server"))
            continue;
        if (key_is(key, "is_direct")) {
            if (value->kind != SSP_VALUE_BOOL)
                return true;
        } else if (key_is(key, "reason")) {
            if (value->kind != SSP_VALUE_NULL && !(value->kind == SSP_VALUE_STRING && value->len == 0))
                return true;
        } else if (key_is(key, "displayname") || key_is(key, "avatar_url")) {
            const ssp_value *profile = key_is(key, "displayname") ? &ev->profile_displayname
                                                                  : &ev->profile_avatar_url;

            if (value->kind == SSP_VALUE_NULL)
                continue;
            if (value->kind != SSP_VALUE_STRING)
                return true;
            if (!ev->profile_known)
                unsure = true;
            else if (differs_from_profile(value, profile))
                return true;
        } else {
            return true; /* a key of the sender's own */
        }
    }
    *need_profile = unsure;
    return false;
}

/* In a managed one-way room (the announcement room too), below the
 * moderator level. */
static bool member_text_taken_back(const ssp_engine *engine, const ssp_event_seen *ev,
                                   const ssp_request *req, ssp_after_kind *need, ssp_denial *d)
{
    bool need_profile = false;

    if (!ssp_room_is_managed(req) || !ssp_policy_is_one_way(req->room) ||
        ssp_actor_level(req) >= engine->config.moderator_level)
        return false;
    if (!member_event_carries_text(ev, &need_profile)) {
        if (need_profile)
            *need = SSP_AFTER_NEED_PROFILE;
        return false;
    }
    return ssp_deny_in_room(engine, req, SSP_RULE_ONE_WAY, d);
}

/* ---- room_creation_forbidden: a third person in a direct chat (R14) ---- */

/* `a` was persisted before `b`. */
static bool earlier(int64_t a_order, const char *a_id, int64_t b_order, const char *b_id)
{
    return a_order < b_order || (a_order == b_order && strcmp(a_id, b_id) < 0);
}

/* An invite into a direct chat that, counted after the joined members and
 * the invites persisted before it, makes more than two: two workers each
 * counted the room before the other's invite was in it. */
static bool invite_beyond_direct_chat(const ssp_engine *engine, const ssp_event_seen *ev,
                                      const ssp_request *req, ssp_after_kind *need, ssp_denial *d)
{
    size_t members = 1; /* this invite */

    if (!value_is(&ev->membership, "invite") || !ev->is_current ||
        !ssp_visibility_is_direct_chat(engine, req))
        return false;
    if (!ev->members_read) {
        *need = SSP_AFTER_NEED_MEMBERS;
        return false;
    }
    for (size_t i = 0; i < ev->n_members; i++) {
        const ssp_member_seen *m = &ev->members[i];

        if (m->event_id == NULL || strcmp(m->event_id, ev->event_id) == 0)
            continue;
        if (m->joined || earlier(m->stream_ordering, m->event_id, ev->stream_ordering, ev->event_id))
            members++;
    }
    if (members <= SSP_DIRECT_CHAT_MEMBERS)
        return false;
    ssp_deny_as_actor(engine, req, true, SSP_RULE_ROOM_CREATION_FORBIDDEN, d);
    d->say = SSP_SAY_DIRECT_CHAT;
    return true;
}

/* ---- the closed doors of rooms made here, against remote members (R13) ---- */

static const struct {
    unsigned bit;
    const char *type, *key, *value;
    ssp_rule rule;
} CLOSED_STATE[] = {
    {SSP_CLOSE_JOIN_RULES, JOIN_RULES_TYPE, "join_rule", "invite", SSP_RULE_PUBLIC_ROOM_FORBIDDEN},
    {SSP_CLOSE_HISTORY, HISTORY_TYPE, "history_visibility", "shared",
     SSP_RULE_PUBLIC_ROOM_FORBIDDEN},
    {SSP_CLOSE_GUEST_ACCESS, GUEST_ACCESS_TYPE, "guest_access", "forbidden",
     SSP_RULE_GUEST_ACCESS_FORBIDDEN},
};

bool ssp_after_close_state(unsigned bit, const char **type, const char **key, const char **value)
{
    for (size_t i = 0; i < sizeof CLOSED_STATE / sizeof CLOSED_STATE[0]; i++) {
        if (CLOSED_STATE[i].bit == bit) {
            *type = CLOSED_STATE[i].type;
            *key = CLOSED_STATE[i].key;
            *value = CLOSED_STATE[i].value;
            return true;
        }
    }
    return false;
}

/* The room's current state, opened by a remote member: check_event_for_spam
 * soft-failed their event, but state resolution takes events that later
 * ones build on (the spec's "soft failure": the state at a later event may
 * include it). Fills *req with the remote member as the actor. */
static bool room_opened_from_afar(const ssp_engine *engine, const ssp_event_seen *ev,
                                  ssp_request *req, ssp_after_action *out, ssp_denial *d)
{
    const ssp_state_seen *state[] = {&ev->join_rules, &ev->history, &ev->guest_access};
    const ssp_state_seen *first = NULL;
    ssp_rule rule = SSP_RULE_NONE;

    if (ssp_room_is_managed(req) || ssp_room_is_foreign(engine, req))
        return false; /* managed rooms do not federate; other servers' rooms are theirs */
    for (size_t i = 0; i < sizeof state / sizeof state[0]; i++) {
        if (!state[i]->open || state[i]->sender == NULL ||
            ssp_engine_is_local(engine, state[i]->sender))
            continue;
        out->close |= CLOSED_STATE[i].bit;
        if (first == NULL) {
            first = state[i];
            rule = CLOSED_STATE[i].rule;
            req->event_type = CLOSED_STATE[i].type;
        }
    }
    if (first == NULL)
        return false;
    req->actor = first->sender;
    req->target = NULL;
    req->state_key = NULL;
    out->undone_event_id = first->event_id;
    return ssp_deny_as_actor(engine, req, false, rule, d);
}

/* ---- the decision ---- */

static void clear(ssp_after_action *out)
{
    out->kind = SSP_AFTER_NOTHING;
    out->rule = SSP_RULE_NONE;
    out->enforced = false;
    out->school[0] = '\0';
    out->audit_id = 0;
    out->restore = false;
    out->close = 0;
    out->undone_event_id = NULL;
}

/* The local sender's state event: a member event (one_way, the direct
 * chat) or a tombstone (the policy carried over). Fills *d and returns the
 * action to take, or sets out->kind to a NEED_* or NOTHING. */
static ssp_after_kind local_state_event(ssp_engine *engine, const ssp_event_seen *ev,
                                        const ssp_request *req, ssp_after_action *out,
                                        ssp_denial *d)
{
    ssp_after_kind need = SSP_AFTER_NOTHING, act = SSP_AFTER_NOTHING;

    if (strcmp(ev->type, TOMBSTONE_TYPE) == 0) {
        /* The sender upgraded the room: only a service user can upgrade a
         * managed one (closed_doors.c), and the new room is theirs. */
        return ssp_room_is_managed(req) && ev->replacement_room.kind == SSP_VALUE_STRING &&
                       ssp_is_service_user(engine, ev->sender)
                   ? SSP_AFTER_CARRY_POLICY
                   : SSP_AFTER_NOTHING;
    }
    pthread_rwlock_rdlock(&engine->roster.lock);
    if (member_text_taken_back(engine, ev, req, &need, d)) {
        act = SSP_AFTER_REDACT;
        out->restore = value_is(&ev->membership, "join") && ev->is_current &&
                       strcmp(ev->state_key, ev->sender) == 0;
    } else if (need == SSP_AFTER_NOTHING && invite_beyond_direct_chat(engine, ev, req, &need, d)) {
        act = SSP_AFTER_WITHDRAW;
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    if (act == SSP_AFTER_NOTHING)
        out->kind = need;
    return act;
}

void ssp_after_event(ssp_engine *engine, const ssp_event_seen *ev, ssp_after_action *out)
{
    bool local;
    ssp_request req;
    ssp_denial d;
    ssp_after_kind act;
    int64_t retry_after_ms;

    clear(out);
    if (ev->sender == NULL)
        return;
    local = ssp_engine_is_local(engine, ev->sender);
    /* What a local user posts passed check_event_for_spam already. */
    if (local && !ev->is_state)
        return;
    if (!ev->type_read) {
        out->kind = SSP_AFTER_NEED_TYPE;
        return;
    }
    if (ev->type == NULL)
        return;
    if (local) {
        bool member = ev->state_key != NULL && strcmp(ev->type, MEMBER_TYPE) == 0;
        bool tombstone = ev->state_key != NULL && ev->state_key[0] == '\0' &&
                         strcmp(ev->type, TOMBSTONE_TYPE) == 0;

        if (!tombstone && (!member || ssp_is_service_user(engine, ev->sender)))
            return;
    }
    if (!ev->event_read) {
        out->kind = SSP_AFTER_NEED_EVENT;
        return;
    }
    if (ev->outlier || ev->event_id == NULL || ev->room_id == NULL)
        return;
    if (!ev->room_read) {
        out->kind = SSP_AFTER_NEED_ROOM;
        return;
    }
    request_view(engine, ev, &req);
    d.rule = SSP_RULE_NONE;
    d.enforced = false;
    d.say = SSP_SAY_USUAL;
    d.school[0] = '\0';
    if (!local) {
        pthread_rwlock_rdlock(&engine->roster.lock);
        act = room_opened_from_afar(engine, ev, &req, out, &d) ? SSP_AFTER_CLOSE
                                                                : SSP_AFTER_NOTHING;
        pthread_rwlock_unlock(&engine->roster.lock);
    } else {
        act = local_state_event(engine, ev, &req, out, &d);
        out->undone_event_id = ev->event_id;
    }
    if (act == SSP_AFTER_NOTHING) {
        out->restore = false;
        out->close = 0;
        out->undone_event_id = NULL;
        return;
    }
    /* Server admins are exempt, as they are before the fact; asked only
     * now that something is to be done. Remote senders are never admins
     * here. */
    if (local && act != SSP_AFTER_CARRY_POLICY) {
        if (ev->sender_admin == SSP_FACT_UNKNOWN) {
            clear(out);
            out->kind = SSP_AFTER_NEED_ADMIN;
            return;
        }
        if (ev->sender_admin == SSP_FACT_YES) {
            clear(out);
            return;
        }
    }
    if (acted_before(engine, out->undone_event_id)) {
        clear(out);
        return;
    }
    out->kind = act;
    if (act == SSP_AFTER_CARRY_POLICY)
        return;
    out->rule = d.rule;
    out->enforced = d.enforced;
    memcpy(out->school, d.school, strlen(d.school) + 1);
    /* Past the flood limit the record is a summary's count (audit_id 0):
     * the action is taken all the same, the audit stays bounded. */
    out->audit_id =
        ssp_audit_denial(engine, SSP_CB_AFTER_THE_FACT, d.rule, d.enforced, req.actor, req.target,
                         ev->room_id, req.event_type, out->school[0] ? out->school : NULL,
                         &retry_after_ms);
}
