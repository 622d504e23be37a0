/*
 * Rule decisions. Everything here runs on Synapse's reactor thread for every
 * checked action, so it reads only memory: the config, and the roster under
 * its read lock. Facts that live in Synapse (is the actor a server admin,
 * what is the room's policy event) are asked for with a NEED_* verdict and
 * supplied by the caller, who then asks again.
 */
#include <string.h>

#include "ssp_private.h"

/* Where a user stands under rule 1 (school opt-in). */
typedef struct standing {
    ssp_rule rule; /* SSP_RULE_NONE: may use the messenger */
    bool enforced;
    char school[SSP_SCHOOL_ID_MAX + 1];
} standing;

static bool school_enforced(const ssp_config *config, const ssp_school *school)
{
    return school ? school->enforce : config->enforce;
}

static void copy_school(char *dest, const char *school, size_t len)
{
    if (len > SSP_SCHOOL_ID_MAX)
        len = SSP_SCHOOL_ID_MAX;
    memcpy(dest, school, len);
    dest[len] = '\0';
}

static void standing_of(ssp_engine *engine, const char *user_id, standing *out)
{
    const ssp_config *config = &engine->config;
    const ssp_roster_user *user;

    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&engine->roster.lock);
    user = ssp_strmap_get(&engine->roster.users, user_id);
    if (user == NULL) {
        if (!config->unlisted_allow) {
            out->rule = SSP_RULE_NOT_ON_ROSTER;
            out->enforced = config->enforce;
        }
        goto done;
    }
    for (size_t i = 0; i < user->n; i++) {
        const ssp_school *school = ssp_strmap_get(&config->school_by_id, user->memberships[i].school);

        if (school != NULL && school->messenger)
            goto done;
    }
    /* None of the user's schools has opted in. The denial is enforced if any
     * of them enforces; the audit names the first that does. */
    out->rule = SSP_RULE_SCHOOL_NOT_ENABLED;
    for (size_t i = 0; i < user->n; i++) {
        const char *id = user->memberships[i].school;
        bool enforced = school_enforced(config, ssp_strmap_get(&config->school_by_id, id));

        if (i == 0 || (enforced && !out->enforced)) {
            copy_school(out->school, id, strlen(id));
            out->enforced = enforced;
        }
    }
done:
    pthread_rwlock_unlock(&engine->roster.lock);
}

static const char *message_for(ssp_rule rule, bool about_target)
{
    switch (rule) {
    case SSP_RULE_NOT_ON_ROSTER:
        return about_target ? "The invited user is not on a school roster."
                            : "You are not on a school roster, so you cannot use the messenger.";
    case SSP_RULE_SCHOOL_NOT_ENABLED:
        return about_target ? "The messenger is not enabled for the invited user's school."
                            : "The messenger is not enabled for your school.";
    case SSP_RULE_ROOM_SCHOOL_NOT_ENABLED:
        return "This room belongs to a school whose messenger is not enabled.";
    default:
        return "This action is not allowed by the school policy.";
    }
}

static bool callback_touches_room(ssp_callback cb)
{
    return cb == SSP_CB_USER_MAY_JOIN_ROOM || cb == SSP_CB_USER_MAY_INVITE ||
           cb == SSP_CB_CHECK_EVENT_FOR_SPAM;
}

static bool is_service_user(const ssp_engine *engine, const char *user_id)
{
    return user_id != NULL && ssp_strmap_get(&engine->config.service_user_set, user_id) != NULL;
}

/* Fills `out` with a denial for the first rule the request breaks, or leaves
 * it ALLOW. May instead ask for the room's policy. */
static void evaluate(ssp_engine *engine, const ssp_request *req, bool actor_local,
                     ssp_decision *out)
{
    const ssp_config *config = &engine->config;
    standing st;

    if (actor_local) {
        standing_of(engine, req->actor, &st);
        if (st.rule != SSP_RULE_NONE) {
            out->verdict = SSP_VERDICT_DENY;
            out->rule = st.rule;
            out->enforced = st.enforced;
            out->message = message_for(st.rule, false);
            memcpy(out->school, st.school, sizeof st.school);
            return;
        }
    }
    if (req->target != NULL && ssp_engine_is_local(engine, req->target) &&
        !is_service_user(engine, req->target)) {
        standing_of(engine, req->target, &st);
        if (st.rule != SSP_RULE_NONE) {
            out->verdict = SSP_VERDICT_DENY;
            out->rule = st.rule;
            out->enforced = st.enforced;
            out->message = message_for(st.rule, true);
            memcpy(out->school, st.school, sizeof st.school);
            return;
        }
    }
    if (callback_touches_room(req->callback) && req->room_id != NULL) {
        const ssp_school *school;

        if (req->room_managed == SSP_FACT_UNKNOWN) {
            out->verdict = SSP_VERDICT_NEED_ROOM;
            return;
        }
        if (req->room_managed == SSP_FACT_YES && req->room != NULL && !req->room->empty) {
            /* A policy event without a usable school fails closed: the room
             * is managed, and no school can have enabled it. */
            school = req->room->school
                         ? ssp_config_school(config, req->room->school, req->room->school_len)
                         : NULL;
            if (school == NULL || !school->messenger) {
                out->verdict = SSP_VERDICT_DENY;
                out->rule = SSP_RULE_ROOM_SCHOOL_NOT_ENABLED;
                out->enforced = school_enforced(config, school);
                out->message = message_for(out->rule, false);
                if (req->room->school)
                    copy_school(out->school, req->room->school, req->room->school_len);
                return;
            }
        }
    }
}

void ssp_decide(ssp_engine *engine, const ssp_request *req, ssp_decision *out)
{
    bool actor_local = ssp_engine_is_local(engine, req->actor);

    memset(out, 0, sizeof *out);
    out->verdict = SSP_VERDICT_ALLOW;
    if (actor_local && (is_service_user(engine, req->actor) || req->actor_is_admin == SSP_FACT_YES))
        return;
    evaluate(engine, req, actor_local, out);
    if (out->verdict != SSP_VERDICT_DENY)
        return;
    if (actor_local && req->actor_is_admin == SSP_FACT_UNKNOWN) {
        /* Server admins are exempt; finding out costs Synapse a lookup, so it
         * is asked for only when a denial is about to happen. */
        memset(out, 0, sizeof *out);
        out->verdict = SSP_VERDICT_NEED_ADMIN;
        return;
    }
    /* Out of memory while queueing the record is reported by the stats; the
     * decision itself must not change because the audit queue is full. */
    if (engine->audit_open)
        (void)ssp_audit_submit(&engine->audit, out->rule, req->callback, out->enforced, req->actor,
                               req->target, req->room_id, req->event_type,
                               out->school[0] ? out->school : NULL);
}
