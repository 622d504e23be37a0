/*
 * The rules of group rooms: only service users and the module add people
 * to a closed group's room; an archived group's room is read-only; a
 * listed member of another school whose own school has opted in is
 * admitted; an archived group's room stops counting for rule 3
 * (visibility.c asks ssp_groups_room_archived). See groups.h for which
 * group a room has, and why an unknown one fails closed.
 */
#include <string.h>

#include "rules/groups.h"
#include "util.h"

const ssp_group *ssp_groups_of_room(const ssp_engine *engine, const ssp_room_policy *room)
{
    const ssp_group *group;

    if (room->group == NULL || room->group_len == 0)
        return NULL;
    group = ssp_roster_group(&engine->roster, room->group, room->group_len);
    /* A policy event that names another school's group is no room of that
     * group: the group's members would be admitted to a room they are not
     * listed for. */
    if (group == NULL ||
        !ssp_same_text(group->school, strlen(group->school), room->school, room->school_len))
        return NULL;
    return group;
}

bool ssp_groups_room_archived(const ssp_engine *engine, const ssp_room_policy *room,
                              int64_t now_ms)
{
    const ssp_group *group = ssp_groups_of_room(engine, room);

    return group != NULL && ssp_group_is_archived(group, now_ms);
}

bool ssp_groups_deny_archived(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    if (!ssp_groups_room_archived(engine, req->room, ssp_now_ms()))
        return false;
    return ssp_deny_in_room(engine, req, SSP_RULE_GROUP_ARCHIVED, d);
}

/* One of the user's roster schools has opted in. */
static bool in_opted_in_school(const ssp_engine *engine, const char *user_id)
{
    const ssp_roster_user *user = ssp_roster_entry(engine, user_id);

    for (size_t i = 0; user != NULL && i < user->n; i++) {
        const ssp_school *school = user->memberships[i].config;

        if (school != NULL && school->messenger)
            return true;
    }
    return false;
}

bool ssp_groups_deny_invite(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    const ssp_group *group = ssp_groups_of_room(engine, req->room);

    /* Closed, or open to moderators only; their invitees must be users
     * of an opted-in school here (rule 1 has already refused a local
     * invitee on the roster without one). */
    if (group == NULL || group->closed || ssp_actor_level(req) < engine->config.moderator_level) {
        ssp_deny_in_room(engine, req, SSP_RULE_GROUP_CLOSED, d);
        d->say = SSP_SAY_INVITE;
        return true;
    }
    if (req->target != NULL && (ssp_is_local_service_user(engine, req->target) ||
                                (ssp_engine_is_local(engine, req->target) &&
                                 in_opted_in_school(engine, req->target))))
        return false;
    ssp_deny_in_room(engine, req, SSP_RULE_GROUP_CLOSED, d);
    d->say = SSP_SAY_ABOUT_TARGET;
    return true;
}

bool ssp_groups_closed_to_uninvited(const ssp_engine *engine, const ssp_request *req)
{
    const ssp_group *group;

    if (req->is_invited == SSP_FACT_YES || !ssp_policy_names_group(req->room))
        return false;
    group = ssp_groups_of_room(engine, req->room);
    return group == NULL || group->closed;
}

bool ssp_groups_admit_join(const ssp_engine *engine, const ssp_request *req)
{
    const ssp_group *group;

    if (req->is_invited != SSP_FACT_YES || !ssp_policy_names_group(req->room))
        return false;
    group = ssp_groups_of_room(engine, req->room);
    if (group == NULL || ssp_group_is_archived(group, ssp_now_ms()) ||
        !in_opted_in_school(engine, req->actor))
        return false;
    return !group->closed ||
           ssp_group_member_of(group, req->actor, strlen(req->actor)) != NULL;
}
