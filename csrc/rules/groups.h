/*
 * The rules of group rooms (groups.c): group_closed, group_archived, the
 * cross-school join, and which group rooms count for rule 3. A group room
 * is a managed room whose policy event names a group (`group`); the group
 * itself is the roster index's (roster_index.h, ssp_roster_group), read
 * under the roster's read lock that ssp_decide holds. No I/O: the index is
 * in memory, the clock is the only other input.
 *
 * Which group a room has: the one the index holds under the policy's
 * `group` id, when it belongs to the room's school. A room whose policy
 * names a group the index does not know (a forged or mistyped id, a `group`
 * that is not a string, a group of another school, a group another worker
 * has not told this one about yet) fails closed: it is closed and active,
 * and admits nobody from another school.
 */
#ifndef SSP_RULES_GROUPS_H
#define SSP_RULES_GROUPS_H

#include <stdbool.h>
#include <stdint.h>

#include "group.h"
#include "rules/common.h"

/* The policy event names a group: the room is a group room. */
static inline bool ssp_policy_names_group(const ssp_room_policy *room)
{
    return room->group != NULL;
}

/* The group of a group room, or NULL (a room without a group, or one whose
 * group the index does not hold for the room's school: fail closed).
 * Roster read lock held; the group stays valid while it is. */
const ssp_group *ssp_groups_of_room(const ssp_engine *engine, const ssp_room_policy *room);

/* A group room whose group is archived (by state or because archive_at_ms
 * has passed) or deleted. An unknown group counts as active. */
bool ssp_groups_room_archived(const ssp_engine *engine, const ssp_room_policy *room,
                              int64_t now_ms);

/* group_archived: any event, invite or join (a join on top of a join, a
 * profile change, included) in an archived group room; leaving is no such
 * callback. req->room is managed and names a group. */
bool ssp_groups_deny_archived(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);

/* group_closed: user_may_invite into a group room. A closed group (an
 * unknown one included) takes no invite; an open one (`closed: false`)
 * takes a moderator's invite of a local user of an opted-in school.
 * Exempt actors never get here. req->room names a group. */
bool ssp_groups_deny_invite(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);

/* user_may_join_room without an invite into a closed group's room (an
 * unknown group included): group_closed rather than join_forbidden. */
bool ssp_groups_closed_to_uninvited(const ssp_engine *engine, const ssp_request *req);

/* The cross-school join: an invited actor whom the roster does not put in
 * the room's school is admitted to an active group room when one of the
 * actor's own schools has opted in and the group lists them, or the group
 * is open (`closed: false`: a moderator's guest). */
bool ssp_groups_admit_join(const ssp_engine *engine, const ssp_request *req);

#endif
