/*
 * Rule 3, visibility limited to shared rooms (visibility.c):
 * no_shared_room and room_creation_forbidden. Users reach only users they
 * share a qualifying room with; pupils create direct chats, not group
 * rooms, and their direct chats hold two people.
 */
#ifndef SSP_RULES_VISIBILITY_H
#define SSP_RULES_VISIBILITY_H

#include <stdbool.h>

#include "rules/common.h"

/* A room that cannot grow: a direct chat of someone who may not create
 * group rooms holds its creator and one other person. */
#define SSP_DIRECT_CHAT_MEMBERS 2

/* An invite, a direct chat's invitee or a user directory hit (req->target)
 * with whom the actor shares no qualifying room. Sets *need_shared when
 * the shared rooms are not known yet. */
bool ssp_visibility_denies_contact(const ssp_engine *engine, const ssp_request *req,
                                   bool actor_local, bool *need_shared, ssp_denial *d);
/* createRoom: its invitee as a contact, or a group room without the right
 * under room_creation. */
bool ssp_visibility_denies_create_room(const ssp_engine *engine, const ssp_request *req,
                                       bool actor_local, bool *need_shared, ssp_denial *d);
/* An unmanaged room made here by a local user who is no service user and
 * may not create group rooms: a direct chat. The room's state is known. */
bool ssp_visibility_is_direct_chat(const ssp_engine *engine, const ssp_request *req);
/* user_may_invite into an unmanaged room made here by someone who may not
 * create group rooms: a direct chat, which holds two people at most. Sets
 * *need_count when the room's members are not counted yet. */
bool ssp_visibility_denies_growing_chat(const ssp_engine *engine, const ssp_request *req,
                                        bool actor_local, bool *need_count, ssp_denial *d);

#endif
