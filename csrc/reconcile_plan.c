/*
 * Rules 4 and 5 as targets: which special rooms a school has, and whether a
 * user belongs in each. The reconciler (the Python adapter, stage 2) asks
 * for one (school, user) at a time and makes Synapse's rooms match; the
 * decision of who belongs where is made only here.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"
#include "ids.h"
#include "reconcile_plan.h"
#include "rules/room_state.h"
#include "util.h"

typedef struct special_room {
    const char *kind;
    ssp_room_kind kind_id;
    const char *name; /* shown to users; the school id is appended */
    bool two_way;
} special_room;

static const special_room SPECIAL_ROOMS[] = {
    {"teachers", SSP_KIND_TEACHERS, "Teachers' room", true},
    {"announcement", SSP_KIND_ANNOUNCEMENT, "Announcements", false},
};

static bool room_enabled(const ssp_school *school, ssp_room_kind kind)
{
    if (school == NULL || !school->messenger)
        return false;
    return kind == SSP_KIND_TEACHERS ? school->teachers_room : school->announcement_room;
}

/* Whether the user, in `role`, belongs in the room: staff in the teachers'
 * room, everybody of the school in the announcement room. */
static bool role_belongs(ssp_room_kind kind, ssp_role role)
{
    return kind == SSP_KIND_ANNOUNCEMENT || role != SSP_ROLE_STUDENT;
}

static json_t *room_target(const ssp_engine *engine, const ssp_school *school, const char *school_id,
                           const special_room *room, bool on_roster, ssp_role role)
{
    bool enabled = room_enabled(school, room->kind_id);
    bool member = enabled && on_roster && role_belongs(room->kind_id, role);
    /* Announcements are one-way: the staff post, so they get the level. */
    bool poster = member && room->kind_id == SSP_KIND_ANNOUNCEMENT && role != SSP_ROLE_STUDENT;
    json_t *level = poster ? json_integer(engine->config.moderator_level) : json_null();
    json_t *policy = json_pack("{s:s, s:s, s:b}", "school", school_id, "kind", room->kind,
                               "two_way", room->two_way);

    if (policy == NULL || level == NULL) {
        json_decref(policy);
        json_decref(level);
        return NULL;
    }
    /* "o" steals level and policy, also when json_pack fails. */
    return json_pack("{s:s, s:b, s:b, s:o, s:s+++, s:o}", "kind", room->kind, "enabled", enabled,
                     "member", member, "power_level", level, "name", room->name, " (", school_id,
                     ")", "policy", policy);
}

int ssp_reconcile_plan(ssp_engine *engine, const char *school_id, const char *user_id,
                       char **plan_json, ssp_error *err)
{
    const ssp_school *school;
    const ssp_roster_user *user;
    bool on_roster = false;
    ssp_role role = SSP_ROLE_STUDENT;
    json_t *rooms = NULL, *plan = NULL;

    *plan_json = NULL;
    if (school_id == NULL || school_id[0] == '\0')
        return ssp_fail(err, SSP_ERR_INPUT, "school: expected a school id");
    if (user_id == NULL)
        return ssp_fail(err, SSP_ERR_INPUT, "user_id: expected a user id, or \"\" for the school");
    if (user_id[0] != '\0' && !ssp_user_id_valid(user_id))
        return ssp_fail(err, SSP_ERR_INPUT, "user_id: expected a Matrix user id (@user:server)");
    school = ssp_config_school(&engine->config, school_id, strlen(school_id));
    /* Only local accounts can be joined on the user's behalf. */
    if (user_id[0] != '\0' && ssp_engine_is_local(engine, user_id) &&
        strcmp(user_id, engine->reconciler_user) != 0) {
        pthread_rwlock_rdlock(&engine->roster.lock);
        user = ssp_strmap_get(&engine->roster.users, user_id);
        for (size_t i = 0; user != NULL && i < user->n && !on_roster; i++) {
            if (strcmp(user->memberships[i].school, school_id) == 0) {
                on_roster = true;
                role = user->memberships[i].role;
            }
        }
        pthread_rwlock_unlock(&engine->roster.lock);
    }
    rooms = json_array();
    if (rooms == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < sizeof SPECIAL_ROOMS / sizeof SPECIAL_ROOMS[0]; i++) {
        json_t *target = room_target(engine, school, school_id, &SPECIAL_ROOMS[i], on_roster, role);

        /* json_array_append_new steals target even when it fails. */
        if (target == NULL || json_array_append_new(rooms, target) != 0) {
            json_decref(rooms);
            return ssp_fail_nomem(err);
        }
    }
    /* "o" steals rooms, also on failure. */
    plan = json_pack("{s:s, s:s, s:s, s:b, s:o}", "school", school_id, "user_id", user_id, "owner",
                     engine->reconciler_user, "messenger", school != NULL && school->messenger,
                     "rooms", rooms);
    *plan_json = plan ? ssp_json_dumps_checked(plan) : NULL;
    json_decref(plan);
    return *plan_json ? 0 : ssp_fail_nomem(err);
}
