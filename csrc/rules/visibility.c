/*
 * Rule 3, visibility limited to shared rooms: users see and address only
 * users they share a qualifying room with (a managed room of an opted-in
 * school; the announcement room while it is enabled). Who may create group
 * rooms is set per school; everyone else creates direct chats, and a
 * direct chat does not grow into a group.
 */
#include <string.h>

#include "rules/groups.h"
#include "rules/visibility.h"
#include "util.h"

/* A room counts for reachability when it is managed by a school that has
 * opted in; an announcement room only while the school has it enabled; a
 * group room only while its group is active. */
static bool room_qualifies(const ssp_engine *engine, const ssp_room_policy *room)
{
    const ssp_config *config = &engine->config;
    const ssp_school *school;

    if (room->empty || room->school == NULL || !ssp_policy_trusted(engine, room))
        return false;
    school = ssp_config_school(config, room->school, room->school_len);
    if (school == NULL || !school->messenger)
        return false;
    /* A group room counts between its members, whatever their schools,
     * while the group is active. */
    if (ssp_policy_names_group(room) && ssp_groups_room_archived(engine, room, ssp_now_ms()))
        return false;
    return room->kind != SSP_KIND_ANNOUNCEMENT || school->announcement_room;
}

bool ssp_visibility_denies_contact(const ssp_engine *engine, const ssp_request *req,
                                   bool actor_local, bool *need_shared, ssp_denial *d)
{
    if (req->target == NULL || ssp_is_service_user(engine, req->target) ||
        strcmp(req->target, req->actor) == 0)
        return false;
    if (req->shared_known == SSP_FACT_UNKNOWN) {
        *need_shared = true;
        return false;
    }
    /* Managed rooms hold local users only; a remote member is one an exempt
     * user left in a room that became managed later (threat model R23), and
     * must not make a pupil reachable from another server. */
    if (!actor_local || !ssp_engine_is_local(engine, req->target))
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_NO_SHARED_ROOM, d);
    for (size_t i = 0; i < req->n_shared_rooms; i++) {
        if (room_qualifies(engine, &req->shared_rooms[i]))
            return false;
    }
    return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_NO_SHARED_ROOM, d);
}

/* Whether the user may create group rooms under any of their opted-in
 * schools' room_creation settings. */
static bool may_create_group_rooms(const ssp_engine *engine, const char *user_id)
{
    const ssp_roster_user *user = ssp_roster_entry(engine, user_id);
    bool allowed = false;

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

bool ssp_visibility_denies_create_room(const ssp_engine *engine, const ssp_request *req,
                                       bool actor_local, bool *need_shared, ssp_denial *d)
{
    const ssp_create_room *create = req->create;

    if (req->target != NULL)
        return ssp_visibility_denies_contact(engine, req, actor_local, need_shared, d);
    /* A direct chat is a room with is_direct and exactly one invitee (the
     * `invite` list and initial_state's member events together); its
     * invitee is checked like any invite. Everything else is a group room. */
    if (!(create->is_direct && create->n_invites == 1) &&
        !may_create_group_rooms(engine, req->actor))
        return ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_ROOM_CREATION_FORBIDDEN, d);
    return false;
}

bool ssp_visibility_is_direct_chat(const ssp_engine *engine, const ssp_request *req)
{
    const char *creator;

    if (req->room_managed == SSP_FACT_UNKNOWN || ssp_room_is_managed(req) ||
        ssp_room_is_foreign(engine, req))
        return false;
    creator = req->room_create->sender;
    return !ssp_is_service_user(engine, creator) && !may_create_group_rooms(engine, creator);
}

bool ssp_visibility_denies_growing_chat(const ssp_engine *engine, const ssp_request *req,
                                        bool actor_local, bool *need_count, ssp_denial *d)
{
    if (!ssp_visibility_is_direct_chat(engine, req))
        return false;
    if (!req->member_count_known) {
        *need_count = true;
        return false;
    }
    if (req->member_count < SSP_DIRECT_CHAT_MEMBERS)
        return false;
    ssp_deny_as_actor(engine, req, actor_local, SSP_RULE_ROOM_CREATION_FORBIDDEN, d);
    d->say = SSP_SAY_DIRECT_CHAT;
    return true;
}
