/*
 * What the rule families share (common.c): the denial a rule fills in, the
 * facts a decision may still need, and the facts of a request that every
 * family reads. The cheap questions asked on every decision (is the room
 * managed, is the user a service user, is the event this state event) are
 * inline here, so that splitting the rules into files costs the hot path
 * no calls.
 *
 * Locking rule: ssp_decide (decide.c) holds the roster's read lock while
 * the rules run, so every function here and in the families that reads
 * engine->roster expects that lock held and takes no lock of its own.
 */
#ifndef SSP_RULES_COMMON_H
#define SSP_RULES_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "engine_state.h"
#include "ids.h"
#include "roster_index.h"
#include "rules/request.h"
#include "rule_texts.h"
#include "strmap.h"

#define SSP_POWER_LEVELS_TYPE "m.room.power_levels"
#define SSP_REDACTION_TYPE "m.room.redaction"
#define SSP_REACTION_TYPE "m.reaction"
#define SSP_THIRD_PARTY_INVITE_TYPE "m.room.third_party_invite"

/* A denial being put together: rule, whether it is enforced, which school. */
typedef struct ssp_denial {
    ssp_rule rule;
    bool enforced;
    ssp_rule_situation say; /* which of the rule's messages the client gets */
    char school[SSP_SCHOOL_ID_MAX + 1];
} ssp_denial;

/* The facts a decision may still need; at most one is asked for at a time. */
typedef struct ssp_needs {
    bool room, shared, membership, member_count;
} ssp_needs;

/* ---- facts of the request (inline: asked on every decision) ---- */

static inline const ssp_school *ssp_school_of(const ssp_config *config, const char *id, size_t len)
{
    return id ? ssp_config_school(config, id, len) : NULL;
}

static inline bool ssp_school_enforced(const ssp_config *config, const ssp_school *school)
{
    return school ? school->enforce : config->enforce;
}

/* A user's roster entry, or NULL. Roster read lock held; the entry stays
 * valid while it is. */
static inline const ssp_roster_user *ssp_roster_entry(const ssp_engine *engine,
                                                      const char *user_id)
{
    return ssp_strmap_get(&engine->roster.users, user_id);
}

static inline bool ssp_is_service_user(const ssp_engine *engine, const char *user_id)
{
    return user_id != NULL && ssp_strmap_get(&engine->config.service_user_set, user_id) != NULL;
}

/* Service users and the reconciler user are the only ones who create
 * managed rooms; they must be users of this server. */
static inline bool ssp_is_local_service_user(const ssp_engine *engine, const char *user_id)
{
    return ssp_is_service_user(engine, user_id) && ssp_engine_is_local(engine, user_id);
}

/* The event is the state event `type` with state key "". */
static inline bool ssp_is_state_event(const ssp_request *req, const char *type)
{
    return req->event_type != NULL && req->state_key != NULL && req->state_key[0] == '\0' &&
           strcmp(req->event_type, type) == 0;
}

/* A policy event counts only when a service user of this server sent it,
 * or a local user sent it in a room a service user created (a moderator's
 * two_way flip, which the rules checked when it was sent). A policy event
 * from another server, or in a room someone else created, is ignored: the
 * room is not managed and qualifies for nothing. */
static inline bool ssp_policy_trusted(const ssp_engine *engine, const ssp_room_policy *policy)
{
    if (policy->sender == NULL || !ssp_engine_is_local(engine, policy->sender))
        return false;
    return ssp_is_service_user(engine, policy->sender) ||
           (policy->creator != NULL && ssp_is_local_service_user(engine, policy->creator));
}

/* ssp_decide has already dropped a policy event it cannot trust (see
 * trusted_view), so `room` is the room's policy when it counts. */
static inline bool ssp_room_is_managed(const ssp_request *req)
{
    return req->room_managed == SSP_FACT_YES && req->room != NULL && !req->room->empty;
}

/* The room's create event is unknown here (a room on another server that
 * this server has not joined) or was sent by a user of another server. */
static inline bool ssp_room_is_foreign(const ssp_engine *engine, const ssp_request *req)
{
    return req->room_create == NULL || req->room_create->sender == NULL ||
           !ssp_engine_is_local(engine, req->room_create->sender);
}

/* Teachers' rooms are always two-way; every other kind, including one the
 * engine does not know, is one-way until `two_way` opens it. */
static inline bool ssp_policy_is_one_way(const ssp_room_policy *policy)
{
    return policy->kind != SSP_KIND_TEACHERS && !policy->two_way;
}

/* The room's power levels and create content, when the caller left them
 * to be read on first use: read now, once (see ssp_room_details). Every
 * rule that reads them calls this first. */
static inline void ssp_read_room_details(const ssp_request *req)
{
    ssp_room_details *details = req->room_details;

    if (details != NULL && !details->loaded) {
        details->loaded = true;
        details->failed = details->load(details) != 0;
    }
}

static inline bool ssp_same_text(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* ---- common.c: the actor's power, and filling in a denial ---- */

/* The actor's power in the room as Synapse sees it: unlimited for a room's
 * creator where the room version says so, else the power levels'. Reads
 * the room's details. */
int64_t ssp_actor_level(const ssp_request *req);

/* school (len bytes, need not be NUL-terminated; NULL: none) into dest of
 * SSP_SCHOOL_ID_MAX + 1 bytes, cut on a character boundary. */
void ssp_copy_school(char *dest, const char *school, size_t len);

/* Each fills *d and returns true, so a rule can `return ssp_deny...(...)`. */
bool ssp_deny(ssp_denial *d, ssp_rule rule, bool enforced, const char *school, size_t school_len);
/* Under the managed room's school and that school's enforcement. */
bool ssp_deny_in_room(const ssp_engine *engine, const ssp_request *req, ssp_rule rule,
                      ssp_denial *d);
/* Under the local actor's first opted-in school and its enforcement (the
 * config's for a remote actor). */
bool ssp_deny_as_actor(const ssp_engine *engine, const ssp_request *req, bool actor_local,
                       ssp_rule rule, ssp_denial *d);

#endif
