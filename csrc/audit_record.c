/*
 * The audit records the engine queues, never blocking on I/O: a denial's
 * (called by the rules; refused tokens' repeats throttled, a flood
 * summarised) and an action's (the module's own, from the adapter). What
 * happens to them afterwards (the wait, the flush, the queries) is
 * audit.c; the queue itself is audit_queue.c.
 */
#include <string.h>

#include "audit_record.h"
#include "engine_state.h"
#include "ids.h"
#include "util.h"

int64_t ssp_audit_denial(ssp_engine *engine, ssp_callback callback, ssp_rule rule, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school, int64_t *retry_after_ms)
{
    ssp_audit_record fields = {0};
    ssp_flood_verdict flood;
    int64_t id, now = ssp_now_ms();

    *retry_after_ms = 0;
    if (callback == SSP_CB_IS_USER_EXPIRED &&
        !ssp_audit_throttle_due(&engine->expiry_throttle, actor, now))
        return 0;
    if (!engine->audit_open)
        return 0;
    fields.ts = now;
    fields.rule = rule;
    fields.callback = callback;
    fields.enforced = enforced;
    fields.actor = actor;
    fields.target = target;
    fields.room_id = room_id;
    fields.event_type = event_type;
    fields.school = school;
    flood = ssp_flood_denial(&engine->flood, &engine->audit, &fields, now);
    if (flood.limited) {
        *retry_after_ms = flood.retry_after_ms;
        return 0;
    }
    /* Out of memory is counted by the queue's stats; the decision must not
     * change because its record could not be queued. */
    id = ssp_audit_submit_record(&engine->audit, &fields);
    return id > 0 ? id : 0;
}

size_t ssp_audit_close_summaries(ssp_engine *engine, bool all)
{
    if (!engine->audit_open)
        return 0;
    return ssp_flood_close_summaries(&engine->flood, &engine->audit, ssp_now_ms(), all);
}

void ssp_audit_flood_stats(ssp_engine *engine, ssp_flood_stats *out)
{
    ssp_flood_get_stats(&engine->flood, out);
}

/* An action id: lower-case ASCII letters, digits and '_', a letter first. */
static bool action_id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > SSP_AUDIT_ACTION_MAX || id[0] < 'a' || id[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = id[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static int check_text(const char *name, const char *value, size_t max, ssp_error *err)
{
    if (value != NULL && (value[0] == '\0' || strlen(value) > max))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected 1 to %zu bytes or null", name, max);
    return 0;
}

int64_t ssp_audit_action(ssp_engine *engine, const ssp_audit_action_record *action,
                         ssp_error *err)
{
    ssp_audit_record fields = {0};
    int64_t id;

    if (action->action == NULL || !action_id_valid(action->action))
        return ssp_fail(err, SSP_ERR_INPUT, "action: expected a short id (a-z, 0-9, _; a letter "
                        "first; at most %d bytes)", SSP_AUDIT_ACTION_MAX);
    if (action->actor != NULL && !ssp_user_id_valid(action->actor))
        return ssp_fail(err, SSP_ERR_INPUT, "actor: expected a Matrix user id or null");
    if (action->target != NULL && !ssp_user_id_valid(action->target))
        return ssp_fail(err, SSP_ERR_INPUT, "target: expected a Matrix user id or null");
    if (check_text("room_id", action->room_id, SSP_AUDIT_FIELD_MAX, err) != 0 ||
        check_text("group", action->group, SSP_AUDIT_FIELD_MAX, err) != 0 ||
        check_text("school", action->school, SSP_AUDIT_FIELD_MAX, err) != 0 ||
        check_text("reason", action->reason, SSP_AUDIT_REASON_MAX, err) != 0)
        return -1;
    if (!engine->audit_open)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    fields.kind = SSP_AUDIT_ACTION;
    fields.rule = SSP_RULE_NONE;
    fields.callback = SSP_CB__COUNT;
    fields.action = action->action;
    fields.actor = action->actor != NULL ? action->actor : engine->reconciler_user;
    fields.target = action->target;
    fields.room_id = action->room_id;
    fields.group = action->group;
    fields.school = action->school;
    fields.reason = action->reason;
    id = ssp_audit_submit_record(&engine->audit, &fields);
    return id > 0 ? id : ssp_fail_nomem(err);
}
