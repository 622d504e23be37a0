/*
 * The closed doors of rule 3 (closed_doors.c): public_room_forbidden,
 * guest_access_forbidden, publish_forbidden, alias_forbidden,
 * third_party_invite_forbidden, join_forbidden, federation_forbidden. No
 * way in but an invite, no way for the world to look in, no other server.
 * (What a new room is made with is room_shape.c.)
 */
#ifndef SSP_RULES_CLOSED_DOORS_H
#define SSP_RULES_CLOSED_DOORS_H

#include <stdbool.h>

#include "rules/common.h"

/* Callbacks that are a closed door as a whole: user_may_publish_room,
 * user_may_create_room_alias, user_may_send_3pid_invite, and
 * federated_user_may_invite from a remote inviter. */
bool ssp_doors_deny_callback(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                             ssp_denial *d);
/* check_event_for_spam by a local actor, in any room, or by a remote one
 * in a room made here: a join rule other than invite, world_readable
 * history, guest access, a planted m.room.third_party_invite. */
bool ssp_doors_deny_event(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                          ssp_denial *d);
/* Whether the event is one ssp_doors_deny_event may refuse. */
bool ssp_doors_event_may_open(const ssp_request *req);
/* A room upgrade (user_may_create_room with the body Synapse makes for
 * it), asked of every upgrader, exempt ones included: the copied state
 * must hold an m.room.guest_access event, and a managed room is upgraded
 * only by a service user (`service_user`), since the policy event is not
 * copied. Sets *need_room when the predecessor's state is needed. */
bool ssp_doors_deny_upgrade(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                            bool service_user, bool *need_room, ssp_denial *d);
/* createRoom asking for any of those. */
bool ssp_doors_deny_create_room(const ssp_engine *engine, const ssp_request *req,
                                bool actor_local, ssp_denial *d);
/* user_may_join_room of a local actor into a room of another server. */
bool ssp_doors_deny_foreign_join(const ssp_engine *engine, const ssp_request *req,
                                 ssp_denial *d);
/* check_event_for_spam of a remote sender in a managed room. */
bool ssp_doors_deny_remote_event(const ssp_engine *engine, const ssp_request *req,
                                 ssp_denial *d);
/* user_may_join_room of a managed room: only with an invite, only into the
 * own school's rooms (or a group room that admits the actor, groups.h), and
 * only the staff into the teachers' room; without an invite into a closed
 * group's room, group_closed. Sets
 * need->membership when it must know whether the actor is joined already. */
bool ssp_doors_deny_managed_join(const ssp_engine *engine, const ssp_request *req,
                                 bool actor_local, ssp_needs *need, ssp_denial *d);

#endif
