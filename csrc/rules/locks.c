/*
 * The locks on a managed room's settings: the power levels and the policy
 * event. A change that would let pupils post in a one-way room, raise a
 * pupil, or unmanage the room is denied to everyone but service users
 * (exempt before any rule runs).
 */
#include <string.h>

#include "rules/locks.h"

/* Equal as maps: same keys with the same levels, in any order. */
static bool same_levels(const ssp_level_entry *a, size_t n_a, const ssp_level_entry *b, size_t n_b)
{
    if (n_a != n_b)
        return false;
    for (size_t i = 0; i < n_a; i++) {
        bool found = false;

        for (size_t j = 0; j < n_b && !found; j++)
            found = ssp_same_text(a[i].key, a[i].key_len, b[j].key, b[j].key_len) &&
                    a[i].level == b[j].level;
        if (!found)
            return false;
    }
    return true;
}

/* The policy event may be created or have its school, kind or group changed
 * only by service users; its two_way flag may also be flipped by room moderators,
 * in rooms a service user created (elsewhere the flip would be a policy
 * event nobody can trust). */
static bool policy_change_denied(const ssp_engine *engine, const ssp_request *req)
{
    const ssp_room_policy *cur = req->room, *next = req->new_policy;

    if (!ssp_room_is_managed(req) || next == NULL || next->empty)
        return true; /* creating or deleting it */
    if (!ssp_same_text(cur->school, cur->school_len, next->school, next->school_len) ||
        !ssp_same_text(cur->kind_name, cur->kind_len, next->kind_name, next->kind_len) ||
        !ssp_same_text(cur->group, cur->group_len, next->group, next->group_len) ||
        cur->n_keys != next->n_keys)
        return true;
    if (cur->creator == NULL || !ssp_is_local_service_user(engine, cur->creator))
        return true;
    return ssp_actor_level(req) < engine->config.moderator_level;
}

/* Nobody but service users may change users' levels in a managed room, nor
 * lower events_default under the moderator level while it is one-way. */
static bool power_levels_change_denied(const ssp_engine *engine, const ssp_request *req)
{
    const ssp_power_levels *cur = req->room_power_levels, *next = req->new_power_levels;

    ssp_read_room_details(req);
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
    return ssp_policy_is_one_way(req->room) && next->events_default < engine->config.moderator_level;
}

bool ssp_locks_deny_in_unmanaged_room(const ssp_engine *engine, const ssp_request *req,
                                      ssp_denial *d)
{
    const ssp_config *config = &engine->config;

    if (req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM &&
        ssp_is_state_event(req, config->policy_event_type))
        return ssp_deny(d, SSP_RULE_POLICY_EVENT_LOCKED, config->enforce, NULL, 0);
    return false;
}

bool ssp_locks_deny_event(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    const ssp_room_policy *room = req->room;

    /* Redacting the policy event empties it, which unmanages the room as
     * surely as deleting it: Synapse lets any moderator redact state. */
    if (strcmp(req->event_type, SSP_REDACTION_TYPE) == 0 && req->redacts != NULL &&
        room->event_id != NULL && strcmp(req->redacts, room->event_id) == 0)
        return ssp_deny_in_room(engine, req, SSP_RULE_POLICY_EVENT_LOCKED, d);
    if (ssp_is_state_event(req, engine->config.policy_event_type))
        return policy_change_denied(engine, req) &&
               ssp_deny_in_room(engine, req, SSP_RULE_POLICY_EVENT_LOCKED, d);
    if (ssp_is_state_event(req, SSP_POWER_LEVELS_TYPE) && power_levels_change_denied(engine, req))
        return ssp_deny_in_room(engine, req, SSP_RULE_POWER_LEVELS_LOCKED, d);
    return false;
}

bool ssp_locks_deny_create_room(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    if (!req->create->sets_policy)
        return false;
    return ssp_deny(d, SSP_RULE_POLICY_EVENT_LOCKED, engine->config.enforce, NULL, 0);
}
