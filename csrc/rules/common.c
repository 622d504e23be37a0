/*
 * What the rule families share (common.h): the actor's power in a room,
 * and the denials filled in under the room's or the actor's school.
 */
#include <string.h>

#include "rules/common.h"
#include "rules/matrix.h"
#include "util.h"

void ssp_copy_school(char *dest, const char *school, size_t len)
{
    if (school == NULL)
        len = 0;
    /* Cut on a character boundary: the school goes into JSON and to Python. */
    if (len > SSP_SCHOOL_ID_MAX)
        len = ssp_utf8_prefix(school, len, SSP_SCHOOL_ID_MAX);
    if (len > 0)
        memcpy(dest, school, len);
    dest[len] = '\0';
}

/* The actor is one of the room's creators in a room version that gives
 * creators unlimited power. */
static bool actor_is_powerful_creator(const ssp_request *req)
{
    const ssp_room_create *create = req->room_create;
    size_t actor_len;

    ssp_read_room_details(req);
    if (create == NULL || create->sender == NULL ||
        !ssp_room_version_creators_have_power(create->room_version, create->room_version_len))
        return false;
    if (strcmp(create->sender, req->actor) == 0)
        return true;
    actor_len = strlen(req->actor);
    for (size_t i = 0; i < create->n_additional_creators; i++) {
        if (ssp_same_text(create->additional_creators[i].text, create->additional_creators[i].len,
                          req->actor, actor_len))
            return true;
    }
    return false;
}

int64_t ssp_actor_level(const ssp_request *req)
{
    const ssp_power_levels *pl = req->room_power_levels;

    ssp_read_room_details(req);
    if (actor_is_powerful_creator(req))
        return INT64_MAX;
    if (pl == NULL)
        return 0;
    return pl->actor_listed ? pl->actor_level : pl->users_default;
}

bool ssp_deny(ssp_denial *d, ssp_rule rule, bool enforced, const char *school, size_t school_len)
{
    d->rule = rule;
    d->enforced = enforced;
    d->say = SSP_SAY_USUAL;
    ssp_copy_school(d->school, school, school_len);
    return true;
}

bool ssp_deny_in_room(const ssp_engine *engine, const ssp_request *req, ssp_rule rule,
                      ssp_denial *d)
{
    const ssp_room_policy *room = req->room;
    const ssp_school *school = ssp_school_of(&engine->config, room->school, room->school_len);

    return ssp_deny(d, rule, ssp_school_enforced(&engine->config, school), room->school,
                    room->school_len);
}

bool ssp_deny_as_actor(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                       ssp_rule rule, ssp_denial *d)
{
    const ssp_config *config = &engine->config;
    const ssp_roster_user *user;

    d->rule = rule;
    d->say = SSP_SAY_USUAL;
    d->enforced = config->enforce;
    d->school[0] = '\0';
    if (!actor_local)
        return true;
    user = ssp_roster_entry(engine, req->actor);
    for (size_t i = 0; user != NULL && i < user->n; i++) {
        const char *id = user->memberships[i].school;
        const ssp_school *school = user->memberships[i].config;

        if (school != NULL && school->messenger) {
            ssp_copy_school(d->school, id, strlen(id));
            d->enforced = school->enforce;
            break;
        }
    }
    return true;
}
