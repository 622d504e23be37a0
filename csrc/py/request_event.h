/*
 * The event's own facts as the engine's request wants them
 * (request_event.c): what a state event's content changes (the policy, the
 * power levels, the join rules, history and guest access), the shape of a
 * redaction or reaction, and what a createRoom body asks for, with the
 * users it puts into the room.
 *
 * Strings in what these fill are borrowed from the Python objects, which
 * the caller's `borrowed` keeps alive until it is released.
 */
#ifndef SSP_PY_REQUEST_EVENT_H
#define SSP_PY_REQUEST_EVENT_H

#include "py/borrowed.h"

#include <stdbool.h>

#include "ssp.h"

SSP_PY_BEGIN_HIDDEN

/* What decide() reads from an event's content, on its stack for one call;
 * the request points into it. */
typedef struct event_facts {
    ssp_room_policy new_policy;
    ssp_power_levels new_levels;
    ssp_event_shape shape;
} event_facts;

/* Reads what the rules need from check_event_for_spam's event content into
 * req (req->event_type set): new_policy, new_power_levels, opens_*, shape.
 * *full_levels becomes true for a change of the policy or the power levels,
 * whose rules compare the room's levels maps too. Content that is no
 * Mapping is left unread (the rules fail closed on what they miss).
 * Returns -1 with an exception set. */
int event_facts_read(event_facts *facts, PyObject *actor, PyObject *content,
                     const char *policy_type, bool *full_levels, borrowed *b, ssp_request *req);

/* Reads the parts of a createRoom body that the rules look at. Values of an
 * unexpected type are left for Synapse's own validation to refuse; a state
 * event whose content cannot be read counts as the one that opens the room.
 * Returns -1 with an exception set. */
int create_room_from_mapping(PyObject *body, PyObject *actor, const char *policy_type,
                             ssp_create_room *create);

/* The users a createRoom body puts into the room besides `actor`: the
 * `invite` list and the state keys of initial_state's m.room.member events
 * (Synapse sends those without asking user_may_invite), each once, in the
 * order they appear, as the body's own str objects. Returns a new list, or
 * NULL with an exception set. */
PyObject *create_room_invitees(PyObject *body, PyObject *actor);

SSP_PY_END_HIDDEN

#endif
