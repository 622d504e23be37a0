/*
 * A Synapse event and the room's state as Engine.after_event reads them
 * (request_seen.c): the engine's ssp_event_seen, filled in the steps the
 * engine asks for (rules/after_the_fact.h).
 *
 * Called with the GIL. Every PyObject* read is held by the caller's
 * `borrowed` until it is released; the strings the struct points at borrow
 * from those objects.
 */
#ifndef SSP_PY_REQUEST_SEEN_H
#define SSP_PY_REQUEST_SEEN_H

#include "py/borrowed.h"

#include <stdbool.h>

#include "ssp.h"

SSP_PY_BEGIN_HIDDEN

#define MEMBER_KEYS 16

/* What one after_event() call has read. */
typedef struct seen {
    ssp_event_seen ev;
    borrowed *b;
    const char *policy_type;
    PyObject *event;   /* borrowed from the arguments, as are state and members */
    PyObject *state;   /* None until the adapter has read it */
    PyObject *members; /* None until the adapter has read them */
    PyObject *sender;  /* held by b once read, as are the objects below */
    PyObject *event_id, *room_id, *state_key, *replacement_room, *policy_content;
    ssp_content_key keys[MEMBER_KEYS];
    ssp_room_policy policy;
    ssp_power_levels levels;
    ssp_room_create create;
} seen;

/* Makes the attribute names read, once per process. Returns -1 with an
 * exception set. */
int seen_names_init(void);

/* Each fills its step of s->ev and returns -1 with an exception set: */
int read_sender(seen *s);  /* always: is_state() and the sender */
int read_type(seen *s);    /* SSP_AFTER_NEED_TYPE */
int read_event(seen *s);   /* SSP_AFTER_NEED_EVENT */
int read_room(seen *s);    /* SSP_AFTER_NEED_ROOM, from s->state */
int read_members(seen *s); /* SSP_AFTER_NEED_MEMBERS, from s->members */
/* The adapter's (displayname, avatar_url). */
int read_profile(seen *s, PyObject *profile);

SSP_PY_END_HIDDEN

#endif
