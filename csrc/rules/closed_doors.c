/*
 * The closed doors: every way into a school's rooms but an invite, every
 * way for the world to look in, and every way for another server to reach
 * a local user is shut, in managed and unmanaged rooms alike
 * (docs/threat-model.md lists each door).
 */
#include <string.h>

#include "rules/closed_doors.h"
#include "rules/groups.h"
#include "rules/special_rooms.h"

bool ssp_doors_deny_callback(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                             ssp_denial *d)
{
    switch (req->callback) {
    case SSP_CB_USER_MAY_PUBLISH_ROOM:
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_PUBLISH_FORBIDDEN, d);
    case SSP_CB_USER_MAY_CREATE_ROOM_ALIAS:
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_ALIAS_FORBIDDEN, d);
    case SSP_CB_USER_MAY_SEND_3PID_INVITE:
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN,
                                 d);
    case SSP_CB_FEDERATED_USER_MAY_INVITE:
        if (!actor_local)
            return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_FEDERATION_FORBIDDEN, d);
        return false;
    default:
        return false;
    }
}

/* A planted m.room.third_party_invite lets whoever signs with its key join
 * through /join's third_party_signed: an invite Synapse turns into a
 * member event without asking user_may_invite. */
static bool plants_third_party_invite(const ssp_request *req)
{
    return req->event_type != NULL && req->state_key != NULL &&
           strcmp(req->event_type, SSP_THIRD_PARTY_INVITE_TYPE) == 0;
}

bool ssp_doors_event_may_open(const ssp_request *req)
{
    return req->opens_join_rule || req->opens_history || req->opens_guest_access ||
           plants_third_party_invite(req);
}

bool ssp_doors_deny_event(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                          ssp_denial *d)
{
    /* Nobody joins without an invite (knocks included), nobody outside reads. */
    if (req->opens_join_rule || req->opens_history)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_PUBLIC_ROOM_FORBIDDEN, d);
    if (req->opens_guest_access)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_GUEST_ACCESS_FORBIDDEN, d);
    if (plants_third_party_invite(req))
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN,
                                 d);
    return false;
}

/* Synapse makes the upgraded room with the private_chat preset, which adds
 * guest_access can_join unless the copied state has an m.room.guest_access
 * event (handlers/room.py clone_existing_room, _send_events_for_new_room);
 * a room from before the module may have none. The policy event is not
 * among the copied state: a managed room upgraded by anyone but a service
 * user would come out unmanaged. A service user's upgrade gets the policy
 * carried over after the fact (after_the_fact.c). */
bool ssp_doors_deny_upgrade(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                            bool service_user, bool *need_room, ssp_denial *d)
{
    if (!req->create->is_upgrade)
        return false;
    if (!req->create->sets_guest_access)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_GUEST_ACCESS_FORBIDDEN, d);
    if (service_user || req->room_id == NULL)
        return false;
    if (req->room_managed == SSP_FACT_UNKNOWN) {
        *need_room = true;
        return false;
    }
    return ssp_room_is_managed(req) &&
           ssp_deny_in_room(engine, req, SSP_RULE_POLICY_EVENT_LOCKED, d);
}

bool ssp_doors_deny_create_room(const ssp_engine *engine, const ssp_request *req,
                                bool actor_local, ssp_denial *d)
{
    const ssp_create_room *create = req->create;

    if (create->public_preset || create->public_visibility || create->open_join_rule ||
        create->world_readable)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_PUBLIC_ROOM_FORBIDDEN, d);
    if (create->opens_guest_access)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_GUEST_ACCESS_FORBIDDEN, d);
    if (create->sets_alias)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_ALIAS_FORBIDDEN, d);
    if (create->third_party_invites)
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN,
                                 d);
    return false;
}

bool ssp_doors_deny_foreign_join(const ssp_engine *engine, const ssp_request *req,
                                 ssp_denial *d)
{
    if (!ssp_room_is_foreign(engine, req))
        return false;
    ssp_deny_as_actor(engine, req, true, SSP_RULE_FEDERATION_FORBIDDEN, d);
    d->say = SSP_SAY_OTHER_SERVER;
    return true;
}

bool ssp_doors_deny_remote_event(const ssp_engine *engine, const ssp_request *req,
                                 ssp_denial *d)
{
    return ssp_deny_in_room(engine, req, SSP_RULE_FEDERATION_FORBIDDEN, d);
}

/* A join by someone who is joined already changes their profile, not the
 * membership: asked only when the join would be denied. */
bool ssp_doors_deny_managed_join(const ssp_engine *engine, const ssp_request *req,
                                 bool actor_local, ssp_needs *need, ssp_denial *d)
{
    ssp_denial found;

    if (req->is_invited == SSP_FACT_YES &&
        ssp_user_in_school(engine, req->actor, req->room->school, req->room->school_len)) {
        if (!ssp_special_rooms_deny(engine, req, &found))
            return false;
    } else if (ssp_groups_admit_join(engine, req)) {
        return false; /* a listed member, or an open group's guest, of another school */
    } else if (ssp_groups_closed_to_uninvited(engine, req)) {
        ssp_deny_in_room(engine, req, SSP_RULE_GROUP_CLOSED, &found);
    } else {
        ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_JOIN_FORBIDDEN, &found);
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
