/*
 * Rules 4 and 5 in decisions: the teachers' room is staff only, whoever
 * sends the invite.
 */
#include <string.h>

#include "rules/special_rooms.h"

/* The user's role in the school, when the roster puts them there. */
static bool role_in_school(const ssp_engine *engine, const char *user_id, const char *school,
                           size_t len, ssp_role *role)
{
    const ssp_roster_user *user;
    bool found = false;

    if (school == NULL)
        return false;
    user = ssp_roster_entry(engine, user_id);
    for (size_t i = 0; user != NULL && i < user->n && !found; i++) {
        found = ssp_same_text(user->memberships[i].school, strlen(user->memberships[i].school),
                              school, len);
        if (found)
            *role = user->memberships[i].role;
    }
    return found;
}

bool ssp_user_in_school(const ssp_engine *engine, const char *user_id, const char *school,
                        size_t len)
{
    ssp_role ignored;

    return role_in_school(engine, user_id, school, len, &ignored);
}

/* Teachers and admins of the school: who may be in its teachers' room. */
static bool staff_of_school(const ssp_engine *engine, const char *user_id, const char *school,
                            size_t len)
{
    ssp_role role = SSP_ROLE_STUDENT;

    return role_in_school(engine, user_id, school, len, &role) && role != SSP_ROLE_STUDENT;
}

bool ssp_special_rooms_deny(const ssp_engine *engine, const ssp_request *req, ssp_denial *d)
{
    const ssp_room_policy *room = req->room;
    const char *who;

    if (room->kind != SSP_KIND_TEACHERS)
        return false;
    if (req->callback == SSP_CB_USER_MAY_JOIN_ROOM)
        who = req->actor;
    else if (req->callback == SSP_CB_USER_MAY_INVITE && req->target != NULL &&
             !ssp_is_service_user(engine, req->target))
        who = req->target;
    else
        return false;
    if (staff_of_school(engine, who, room->school, room->school_len))
        return false;
    ssp_deny_in_room(engine, req, SSP_RULE_STAFF_ONLY, d);
    if (who != req->actor)
        d->say = SSP_SAY_ABOUT_TARGET;
    return true;
}
