/*
 * The power-levels patch (power_levels.c): what a managed room's power
 * levels must say for its policy, so that clients show the composer as the
 * policy wants it.
 */
#ifndef SSP_POWER_LEVELS_H
#define SSP_POWER_LEVELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rules/room_state.h"

typedef struct ssp_engine ssp_engine;

/* What a managed room's power levels must say so that clients show the
 * composer as the policy wants it: while one-way, events_default is the
 * moderator level and the event types still open to everyone (redactions,
 * one_way_allowed_events) are listed at level 0; while two-way,
 * events_default is 0. */
typedef struct ssp_power_levels_patch {
    bool set_events_default;
    int64_t events_default;
    /* event types to list at level 0; the strings belong to the engine */
    const char *open_events[SSP_MAX_ONE_WAY_ALLOWED_EVENTS + 1];
    size_t n_open_events;
} ssp_power_levels_patch;

/* Fills *patch with what `current` (NULL: no power-levels event; its maps
 * extracted in full) lacks. Returns true when anything is to change, false
 * when the room is unmanaged or already consistent. */
bool ssp_power_levels_update(const ssp_engine *engine, const ssp_room_policy *policy,
                             const ssp_power_levels *current, ssp_power_levels_patch *patch);

#endif
