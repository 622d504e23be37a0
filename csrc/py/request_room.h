/*
 * The room's facts as the engine's request wants them (request_room.c):
 * the policy event's content, the power levels, the create event's content,
 * decide()'s room tuple read into an ssp_request (the power levels and
 * create content on first use), and the rooms two users share.
 *
 * Strings in what these fill are borrowed from the Python objects, which
 * the caller's `borrowed` keeps alive until it is released.
 */
#ifndef SSP_PY_REQUEST_ROOM_H
#define SSP_PY_REQUEST_ROOM_H

#include "py/borrowed.h"

#include <stdbool.h>

#include "ssp.h"

SSP_PY_BEGIN_HIDDEN

/* decide()'s room tuple: (policy content or None, the policy event's
 * sender or None, power levels content or None, m.room.create content or
 * None, the create event's sender or None[, the policy event's id]); the
 * last item may be left out. */
enum {
    ROOM_POLICY,
    ROOM_POLICY_SENDER,
    ROOM_POWER_LEVELS,
    ROOM_CREATE,
    ROOM_CREATOR,
    ROOM_POLICY_EVENT_ID,
    N_ROOM_ITEMS
};

/* What decide() reads from the room tuple, on its stack for one call. The
 * request points into it; `details` is the engine's reader of the power
 * levels and create content (ssp_room_details), first so that load() can
 * find the rest. */
typedef struct room_facts {
    ssp_room_details details;
    PyObject *actor; /* borrowed from decide()'s arguments, as are the two below */
    PyObject *power_levels; /* None or a Mapping */
    PyObject *create_content; /* None or a Mapping */
    bool full_levels;
    borrowed *b;
    ssp_room_policy policy;
    ssp_power_levels levels;
    ssp_room_create create;
} room_facts;

/* Reads the room tuple `room` (shape checked by the caller) into req:
 * room_managed, room, room_power_levels, room_create and, when the power
 * levels and create content are dicts, room_details, so that they are read
 * only if a rule needs them; otherwise they are read here. full_levels:
 * the levels' users and events maps are wanted too (a change of the policy
 * or the power levels). Returns -1 with an exception set. */
int room_facts_read(room_facts *facts, PyObject *room, PyObject *actor, bool full_levels,
                    borrowed *b, ssp_request *req);

/* Extracts the policy event's content. Values of the wrong type count as
 * absent; the engine fails closed on them. Returns -1 with an exception
 * set (TypeError when content is no Mapping). */
int policy_from_mapping(PyObject *content, ssp_room_policy *policy, borrowed *b);

/* Extracts an m.room.power_levels content. `actor` (a str) gets their own
 * entry looked up; `full` extracts the users and events maps too. Returns
 * -1 with an exception set (TypeError when content is no Mapping). */
int power_levels_of(PyObject *content, PyObject *actor, bool full, ssp_power_levels *pl,
                    borrowed *b);

/* The same with the actor's id as a C string. */
int power_levels_from_mapping(PyObject *content, const char *actor, bool full,
                              ssp_power_levels *pl, borrowed *b);

/* Reads an m.room.create content (a Mapping): room_version and
 * additional_creators. Returns -1 with an exception set. */
int room_create_from_mapping(PyObject *content, ssp_room_create *create, borrowed *b);

/* The rooms two users share: a sequence of 3-tuples (policy content or
 * None, the policy event's sender or None, the room's creator or None), as
 * an array b owns. Returns -1 with an exception set. */
int shared_rooms_from_sequence(PyObject *rooms, ssp_room_policy **out, size_t *n_out,
                               borrowed *b);

SSP_PY_END_HIDDEN

#endif
