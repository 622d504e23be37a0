/*
 * The shape of new rooms (room_shape.c): what the engine changes in a
 * createRoom request before Synapse creates the room, and the power-levels
 * patch as JSON.
 *
 * Unlike ssp.h this header speaks jansson: its callers (the binding, the C
 * tests, the fuzz target) hand over and take back JSON values, not text.
 * Ownership: `request` and the engine are borrowed; every json_t handed out
 * is a new reference the caller json_decref()s.
 */
#ifndef SSP_ROOM_SHAPE_H
#define SSP_ROOM_SHAPE_H

#include <jansson.h>

#include "error.h"
#include "rules/power_levels.h"
#include "rules/room_state.h"

typedef struct ssp_engine ssp_engine;

/* What Synapse's on_create_room hook changes in a createRoom request, read
 * the way Synapse reads the request (docs/rules.md, "How new rooms are
 * shaped"):
 *
 * - guest access closed: unless initial_state's last m.room.guest_access
 *   entry with state key "" has an object content, a
 *   {"type": "m.room.guest_access", "state_key": "",
 *    "content": {"guest_access": "forbidden"}} entry is appended (or
 *   becomes initial_state when that is missing, null, {} or "", which
 *   Synapse reads as no state at all);
 * - a room created with the policy event (state key "") in initial_state
 *   never federates: creation_content gets "m.federate": false, also over an
 *   explicit true, and a creation_content that is not an object is
 *   replaced;
 * - such a room's power levels match its policy (ssp_power_levels_update,
 *   from the last policy entry when its content is an object): the patch
 *   goes into initial_state's last m.room.power_levels entry when it has a
 *   non-null content (Synapse then ignores power_level_content_override),
 *   else into power_level_content_override.
 *
 * `request` may be any JSON value (nothing is changed unless it is an
 * object). *changes receives a JSON array of RFC 6902 "add" operations
 * ({"op": "add", "path": JSON pointer, "value": ...}) to apply in order;
 * empty when nothing is to change. Only the paths of the array's
 * operations are built from the request: no value of the request is copied
 * into them. Reads the config only; no I/O, no lock. Fails only with
 * SSP_ERR_NOMEM. */
int ssp_room_shape(const ssp_engine *engine, const json_t *request, json_t **changes,
                   ssp_error *err);

/* The patch as an object: {"events_default": n} when set, {"events":
 * {type: 0, ...}} when types are to be opened. NULL when out of memory. */
json_t *ssp_power_levels_patch_json(const ssp_power_levels_patch *patch);

/* A power level as Synapse reads it: a JSON integer (not a boolean), or a
 * string Python's int() reads, limited to ASCII (surrounding whitespace, a
 * sign, digits with single underscores between them). Returns false when
 * `value` is not a level or does not fit in int64. */
bool ssp_level_from_json(const json_t *value, int64_t *level);

/* The ssp_room_kind of a policy event's `kind` string (SSP_KIND_UNKNOWN for
 * NULL or an unknown name). */
ssp_room_kind ssp_room_kind_from_name(const char *kind, size_t len);

#endif
