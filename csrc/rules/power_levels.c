/*
 * The power-levels patch: what a managed room's power levels must say so
 * that clients show the composer as the policy wants it (rule 2). The
 * adapter applies it after an allowed policy event (the decision's
 * ALLOW_SYNC_POWER_LEVELS), and room_shape.c puts it into new rooms.
 */
#include <string.h>

#include "rules/common.h"
#include "rules/power_levels.h"

static bool event_listed_at(const ssp_power_levels *pl, const char *type, int64_t level)
{
    size_t len = strlen(type);

    for (size_t i = 0; pl != NULL && i < pl->n_events; i++) {
        if (ssp_same_text(pl->events[i].key, pl->events[i].key_len, type, len))
            return pl->events[i].level == level;
    }
    return false;
}

static void open_event(ssp_power_levels_patch *patch, const ssp_power_levels *current,
                       const char *type)
{
    if (!event_listed_at(current, type, 0) &&
        patch->n_open_events < sizeof patch->open_events / sizeof patch->open_events[0])
        patch->open_events[patch->n_open_events++] = type;
}

bool ssp_power_levels_update(const ssp_engine *engine, const ssp_room_policy *policy,
                             const ssp_power_levels *current, ssp_power_levels_patch *patch)
{
    const ssp_config *config = &engine->config;
    bool one_way;
    int64_t wanted;

    memset(patch, 0, sizeof *patch);
    if (policy == NULL || policy->empty)
        return false;
    one_way = ssp_policy_is_one_way(policy);
    wanted = one_way ? config->moderator_level : 0;
    if (current == NULL || current->events_default != wanted) {
        patch->set_events_default = true;
        patch->events_default = wanted;
    }
    if (one_way) {
        open_event(patch, current, SSP_REDACTION_TYPE);
        for (size_t i = 0; i < config->n_one_way_allowed_events; i++)
            open_event(patch, current, config->one_way_allowed_events[i]);
    }
    return patch->set_events_default || patch->n_open_events > 0;
}
