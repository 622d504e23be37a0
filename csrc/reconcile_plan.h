/* The special rooms' targets (reconcile_plan.c): rules 4 and 5 as plans. */
#ifndef SSP_RECONCILE_PLAN_H
#define SSP_RECONCILE_PLAN_H

#include "error.h"

typedef struct ssp_engine ssp_engine;

/* What the special rooms of `school` should look like for `user_id` ("":
 * the school itself, a member of nothing). *plan_json receives (caller frees)
 * {"school", "user_id", "owner": the rooms' owner, "messenger": bool,
 *  "rooms": [{"kind": "teachers" | "announcement", "enabled": bool,
 *             "member": bool, "power_level": int | null, "name": str,
 *             "policy": the managed-room event content}]}.
 * `enabled` is false for every room of a school that has not opted in (its
 * rooms are then left as they are: rule 1 freezes them). Reads memory only. */
int ssp_reconcile_plan(ssp_engine *engine, const char *school, const char *user_id,
                       char **plan_json, ssp_error *err);

#endif
