/*
 * Rule decisions: the dispatch. Everything here runs on Synapse's reactor
 * thread for every checked action, so it reads only memory: the config,
 * and the roster under its read lock. Facts that live in Synapse (is the
 * actor a server admin, what is the room's state) are asked for with a
 * NEED_* verdict and supplied by the caller, who then asks again.
 *
 * The rules are the families (opt_in.c, one_way.c, locks.c, visibility.c,
 * closed_doors.c, special_rooms.c); this file asks them in order, the
 * first denial wins. The families' cheap tests are gated here, inline, so
 * that a message in an ordinary room calls none of them.
 *
 * Locking rule: ssp_decide takes the roster's read lock once and holds it
 * while the rules run, so that one decision sees one roster (a write
 * between two lookups cannot make it judge the actor by one version and the
 * target by another). Every rule that reads engine->roster expects that
 * lock held and takes no lock of its own.
 */
#include <string.h>

#include "audit_record.h"
#include "rules/closed_doors.h"
#include "rules/common.h"
#include "rules/decide.h"
#include "rules/locks.h"
#include "rules/one_way.h"
#include "rules/opt_in.h"
#include "rules/power_levels.h"
#include "rules/special_rooms.h"
#include "rules/visibility.h"

/* Signing in and using a token: Synapse's login check, the end of single
 * sign-on, an account single sign-on creates, and every request of a
 * token. Their target is an identity provider's id, not a user. */
static bool callback_signs_in(ssp_callback cb)
{
    return cb == SSP_CB_CHECK_LOGIN_FOR_SPAM || cb == SSP_CB_ON_USER_LOGIN ||
           cb == SSP_CB_CHECK_REGISTRATION_FOR_SPAM || cb == SSP_CB_IS_USER_EXPIRED;
}

/* audit.readers sign in and keep a working token whatever rule 1 says of
 * them: the audit page and the admin API's reads are for them, and a
 * data-protection officer is usually on no school's roster. Everything else
 * they do (join, invite, create, send) follows rule 1 like anyone's. */
static bool reader_signing_in(const ssp_engine *engine, const ssp_request *req)
{
    return callback_signs_in(req->callback) &&
           ssp_strmap_get(&engine->config.audit_reader_set, req->actor) != NULL;
}

static bool callback_touches_room(ssp_callback cb)
{
    return cb == SSP_CB_USER_MAY_JOIN_ROOM || cb == SSP_CB_USER_MAY_INVITE ||
           cb == SSP_CB_CHECK_EVENT_FOR_SPAM;
}

/* The rules of the room and the event: rule 1's frozen rooms, the locks,
 * rule 2. Returns true with *d filled on a denial; sets *need_room when the
 * room's state is needed first. */
static bool room_rules_deny(ssp_engine *engine, const ssp_request *req, bool actor_local,
                            bool *need_room, ssp_denial *d)
{
    if (!callback_touches_room(req->callback) || req->room_id == NULL)
        return false;
    if (req->room_managed == SSP_FACT_UNKNOWN) {
        *need_room = true;
        return false;
    }
    if (req->callback == SSP_CB_USER_MAY_JOIN_ROOM && actor_local &&
        ssp_doors_deny_foreign_join(engine, req, d))
        return true;
    if (!ssp_room_is_managed(req))
        return ssp_locks_deny_in_unmanaged_room(engine, req, d);
    if (ssp_opt_in_room_denies(engine, req, d))
        return true;
    if (req->callback != SSP_CB_CHECK_EVENT_FOR_SPAM || req->event_type == NULL)
        return false;
    /* Only a state event or a redaction can touch the locked settings. */
    if ((req->state_key != NULL || req->redacts != NULL) && ssp_locks_deny_event(engine, req, d))
        return true;
    /* An allowed change of the policy event is a moderator's two_way flip,
     * not a post. */
    if (ssp_is_state_event(req, engine->config.policy_event_type))
        return false;
    return ssp_policy_is_one_way(req->room) && ssp_one_way_denies_event(engine, req, d);
}

/* Fills *d with the first rule the request breaks. Returns true on a
 * denial; sets a flag in *need instead when a fact is needed first.
 * actor_entry is the local actor's roster entry (NULL: not on the roster). */
static bool evaluate(ssp_engine *engine, const ssp_request *req, bool actor_local,
                     const ssp_roster_user *actor_entry, ssp_needs *need, ssp_denial *d)
{
    /* An account that no identity provider asked for is the school cloud's
     * own (Synapse's admin API) or a JWT login's: the roster entry may come
     * before or after it. */
    if (req->callback == SSP_CB_CHECK_REGISTRATION_FOR_SPAM && req->target == NULL)
        return false;
    /* The reader lookup only when rule 1 is about to refuse: it is rare,
     * and a login or a token's request should not pay for a second hash. */
    if (actor_local && ssp_opt_in_user_denies(engine, actor_entry, d) &&
        !reader_signing_in(engine, req))
        return true;
    if (req->target != NULL && !callback_signs_in(req->callback) &&
        ssp_engine_is_local(engine, req->target) &&
        !ssp_is_service_user(engine, req->target) &&
        ssp_opt_in_user_denies(engine, ssp_roster_entry(engine, req->target), d)) {
        d->say = SSP_SAY_ABOUT_TARGET;
        return true;
    }
    switch (req->callback) {
    case SSP_CB_USER_MAY_PUBLISH_ROOM:
    case SSP_CB_USER_MAY_CREATE_ROOM_ALIAS:
    case SSP_CB_USER_MAY_SEND_3PID_INVITE:
    case SSP_CB_FEDERATED_USER_MAY_INVITE:
        return ssp_doors_deny_callback(engine, req, actor_local, d);
    case SSP_CB_USER_MAY_CREATE_ROOM:
        if (req->create == NULL)
            return false;
        if (ssp_locks_deny_create_room(engine, req, d) ||
            ssp_doors_deny_create_room(engine, req, actor_local, d) ||
            ssp_doors_deny_upgrade(engine, req, actor_local, false, &need->room, d))
            return true;
        return !need->room &&
               ssp_visibility_denies_create_room(engine, req, actor_local, &need->shared, d);
    case SSP_CB_CHECK_USERNAME_FOR_SPAM:
        return ssp_visibility_denies_contact(engine, req, actor_local, &need->shared, d);
    case SSP_CB_CHECK_EVENT_FOR_SPAM:
        /* Closed doors hold in every room, managed or not. */
        if (actor_local && ssp_doors_event_may_open(req) &&
            ssp_doors_deny_event(engine, req, true, d))
            return true;
        break;
    default:
        break;
    }
    if (room_rules_deny(engine, req, actor_local, &need->room, d))
        return true;
    if (need->room)
        return false;
    /* A remote member of an unmanaged room made here (one from before the
     * module, or one an exempt user let them into) opens no door either:
     * the refusal soft-fails the event, and what state resolution may
     * bring back is taken back after the fact (after_the_fact.c). */
    if (!actor_local && req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM && req->room_id != NULL &&
        !ssp_room_is_managed(req) && !ssp_room_is_foreign(engine, req) &&
        ssp_doors_event_may_open(req))
        return ssp_doors_deny_event(engine, req, false, d);
    if (req->room_id != NULL && ssp_room_is_managed(req)) {
        if (!actor_local && req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM)
            return ssp_doors_deny_remote_event(engine, req, d);
        if (req->callback == SSP_CB_USER_MAY_JOIN_ROOM)
            return ssp_doors_deny_managed_join(engine, req, actor_local, need, d);
        if (req->room->kind == SSP_KIND_TEACHERS && ssp_special_rooms_deny(engine, req, d))
            return true;
        if (req->callback == SSP_CB_USER_MAY_INVITE && ssp_policy_is_one_way(req->room) &&
            ssp_one_way_denies_invite(engine, req, d))
            return true;
    }
    if (req->callback == SSP_CB_USER_MAY_INVITE && actor_local) {
        if (ssp_visibility_denies_contact(engine, req, actor_local, &need->shared, d))
            return true;
        if (need->shared)
            return false;
        return ssp_visibility_denies_growing_chat(engine, req, actor_local, &need->member_count,
                                                  d);
    }
    return false;
}

/* Whether an allowed policy event changes which events_default the room
 * needs, so the caller must bring the power levels in line afterwards. */
static bool policy_event_needs_sync(const ssp_engine *engine, const ssp_request *req)
{
    ssp_power_levels_patch unused;

    if (req->callback != SSP_CB_CHECK_EVENT_FOR_SPAM ||
        !ssp_is_state_event(req, engine->config.policy_event_type) || req->new_policy == NULL)
        return false;
    ssp_read_room_details(req);
    return ssp_power_levels_update(engine, req->new_policy, req->room_power_levels, &unused);
}

/* The request as the rules read it: a room whose policy event cannot be
 * trusted is a room without one. Judged once per decision, not per rule. */
static const ssp_request *trusted_view(const ssp_engine *engine, const ssp_request *req,
                                       ssp_request *copy)
{
    if (req->room_managed != SSP_FACT_YES || req->room == NULL || req->room->empty ||
        ssp_policy_trusted(engine, req->room))
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
    ssp_needs need = {0};
    ssp_denial d;
    bool denied, service_user;

    /* Field by field, not memset: the school buffers (256 bytes each) would
     * be a tenth of a login's decision. The school is a C string. */
    out->verdict = SSP_VERDICT_ALLOW;
    out->rule = SSP_RULE_NONE;
    out->enforced = false;
    out->message = NULL;
    out->school[0] = '\0';
    out->audit_id = 0;
    out->retry_after_ms = 0;
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
    service_user = actor_local && ssp_strmap_get_hashed(&engine->config.service_user_set,
                                                        req->actor, actor_len, actor_hash) != NULL;
    if (service_user || (actor_local && req->actor_is_admin == SSP_FACT_YES)) {
        /* Exempt, but an upgrade must not open guest access nor unmanage a
         * room, and a policy event they send may still require the power
         * levels to follow it. */
        if (req->callback == SSP_CB_USER_MAY_CREATE_ROOM && req->create != NULL &&
            req->create->is_upgrade) {
            pthread_rwlock_rdlock(&engine->roster.lock);
            denied = ssp_doors_deny_upgrade(engine, req, true, service_user, &need.room, &d);
            pthread_rwlock_unlock(&engine->roster.lock);
            if (denied)
                goto deny;
            if (need.room)
                out->verdict = SSP_VERDICT_NEED_ROOM;
            return;
        }
        if (req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM &&
            ssp_is_state_event(req, engine->config.policy_event_type)) {
            if (req->room_managed == SSP_FACT_UNKNOWN)
                out->verdict = SSP_VERDICT_NEED_ROOM;
            else if (policy_event_needs_sync(engine, req))
                out->verdict = SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS;
        }
        return;
    }
    pthread_rwlock_rdlock(&engine->roster.lock);
    actor_entry = actor_local ? ssp_strmap_get_hashed(&engine->roster.users, req->actor,
                                                      actor_len, actor_hash)
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
deny:
    out->verdict = SSP_VERDICT_DENY;
    out->rule = d.rule;
    out->enforced = d.enforced;
    out->message = ssp_rule_message(d.rule, d.say, false);
    memcpy(out->school, d.school, strlen(d.school) + 1);
    out->audit_id = ssp_audit_denial(engine, req->callback, out->rule, out->enforced, req->actor,
                                     req->target, req->room_id, req->event_type,
                                     out->school[0] ? out->school : NULL, &out->retry_after_ms);
}
