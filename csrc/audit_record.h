/*
 * The audit records the engine queues (audit_record.c): a denial's and an
 * action's. Never blocks on I/O. The wait for a record and the queries
 * are audit.h; the queue is audit_queue.h.
 */
#ifndef SSP_AUDIT_RECORD_H
#define SSP_AUDIT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "audit_flood.h"
#include "audit_queue.h"
#include "error.h"
#include "rule_texts.h"

typedef struct ssp_engine ssp_engine;

/* Queues the audit record of a denial: its id, or 0 when none was queued (a
 * refused token's repeat within the throttle's minute, a denial past the
 * flood limit, an engine without a store, out of memory). A denial past the
 * flood limit (audit.flood, audit_flood.h) is counted in its key's summary
 * instead, and *retry_after_ms (else 0) says when the actor may try again.
 * Never blocks on I/O. */
int64_t ssp_audit_denial(ssp_engine *engine, ssp_callback callback, ssp_rule rule, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school, int64_t *retry_after_ms);

/* Queues the flood summaries whose span has ended (all of them with `all`:
 * at shutdown, so that none is lost to a clean exit); how many. The
 * adapter calls it every second, so that a flood that stopped is written
 * within a second of its span. Never blocks on I/O. */
size_t ssp_audit_close_summaries(ssp_engine *engine, bool all);

/* The flood limit's counters (audit_flood.h). */
void ssp_audit_flood_stats(ssp_engine *engine, ssp_flood_stats *out);

/* An action the module took (issue 20: a group room's member removed, a
 * room created), for its audit record. Strings are borrowed. */
typedef struct ssp_audit_action_record {
    const char *action;  /* required: a short id, [a-z][a-z0-9_]*, at most
                          * SSP_AUDIT_ACTION_MAX bytes: "member_removed" */
    const char *actor;   /* who acted; NULL: the module's own user (reconciler.user) */
    const char *target;  /* the user acted on, or NULL */
    const char *room_id; /* or NULL; at most SSP_AUDIT_FIELD_MAX bytes, as group and school */
    const char *group;   /* the group id, or NULL */
    const char *school;  /* or NULL */
    const char *reason;  /* why, a short text (never message content), or NULL;
                          * at most SSP_AUDIT_REASON_MAX bytes */
} ssp_audit_action_record;

#define SSP_AUDIT_ACTION_MAX 64
#define SSP_AUDIT_FIELD_MAX 255
#define SSP_AUDIT_REASON_MAX 512

/* Queues the audit record of an action: its id (> 0; wait for it with
 * ssp_decision_wait_durable), or -1 with SSP_ERR_INPUT (a field, named),
 * SSP_ERR_STATE (no store open) or SSP_ERR_NOMEM. Never blocks on I/O. */
int64_t ssp_audit_action(ssp_engine *engine, const ssp_audit_action_record *action,
                         ssp_error *err);

#endif
