/*
 * Rule 1, the schools' opt-in (opt_in.c): not_on_roster,
 * school_not_enabled, room_school_not_enabled. Both tests are inline: one
 * runs for the actor of every decision, the other for every decision in a
 * managed room. Only a denial calls into opt_in.c.
 */
#ifndef SSP_RULES_OPT_IN_H
#define SSP_RULES_OPT_IN_H

#include <stdbool.h>

#include "roster_index.h"
#include "rules/common.h"

/* Fills *d with why the user (roster entry; NULL: not on the roster) may
 * not use the messenger. Returns true. */
bool ssp_opt_in_deny_user(const ssp_engine *engine, const ssp_roster_user *user, ssp_denial *d);

/* Whether the user may not use the messenger: not on the roster (under
 * unlisted_users: deny), or none of their schools has opted in. Fills *d
 * when so. */
static inline bool ssp_opt_in_user_denies(const ssp_engine *engine, const ssp_roster_user *user,
                                          ssp_denial *d)
{
    if (user == NULL)
        return !engine->config.unlisted_allow && ssp_opt_in_deny_user(engine, user, d);
    for (size_t i = 0; i < user->n; i++) {
        const ssp_school *school = user->memberships[i].config;

        if (school != NULL && school->messenger)
            return false;
    }
    return ssp_opt_in_deny_user(engine, user, d);
}

/* A managed room of a school that has not opted in is frozen. A policy
 * event without a usable school fails closed: the room is managed, and no
 * school can have enabled it. */
static inline bool ssp_opt_in_room_denies(const ssp_engine *engine, const ssp_request *req,
                                          ssp_denial *d)
{
    const ssp_room_policy *room = req->room;
    const ssp_school *school = ssp_school_of(&engine->config, room->school, room->school_len);

    if (school != NULL && school->messenger)
        return false;
    return ssp_deny(d, SSP_RULE_ROOM_SCHOOL_NOT_ENABLED,
                    ssp_school_enforced(&engine->config, school), room->school, room->school_len);
}

#endif
