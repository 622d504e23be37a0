/*
 * Facts of the Matrix spec and of Synapse that the rules depend on but that
 * are not school policy (matrix.c). Pure functions of their input.
 */
#ifndef SSP_MATRIX_H
#define SSP_MATRIX_H

#include <stdbool.h>
#include <stddef.h>

#define SSP_EMOJI_KEY_MAX 64

/* Whether the room version gives the room's creators unlimited power
 * (MSC4289: 12, org.matrix.hydra.11 and every version newer than the legacy
 * list). NULL (the create event has no room_version) reads as "1". */
bool ssp_room_version_creators_have_power(const char *version, size_t len);

/* Whether a reaction key is an emoji: valid UTF-8 of 1..SSP_EMOJI_KEY_MAX
 * bytes, made of emoji code points and their modifiers, with ASCII digits,
 * '#' and '*' only in keycaps. Free text is not. */
bool ssp_emoji_key(const char *key, size_t len);

#endif
