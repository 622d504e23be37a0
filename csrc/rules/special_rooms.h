/*
 * Rules 4 and 5 in decisions (special_rooms.c): staff_only. The teachers'
 * room holds the school's teachers and admins and no one else. (Who
 * belongs in each special room is reconcile_plan.c's; the announcement
 * room's part in reachability is visibility.c's.)
 */
#ifndef SSP_RULES_SPECIAL_ROOMS_H
#define SSP_RULES_SPECIAL_ROOMS_H

#include <stdbool.h>
#include <stddef.h>

#include "rules/common.h"

/* user_may_join_room or user_may_invite in a managed teachers' room: the
 * joining user or the invitee is not staff of the room's school. */
bool ssp_special_rooms_deny(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);
/* Whether the roster puts the user in the school (len bytes). */
bool ssp_user_in_school(const ssp_engine *engine, const char *user_id, const char *school,
                        size_t len);

#endif
