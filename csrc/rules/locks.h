/*
 * The locks on a managed room's settings (locks.c): power_levels_locked and
 * policy_event_locked. Nobody but service users changes users' levels or
 * the policy event; a room moderator may flip two_way in a room a service
 * user made.
 */
#ifndef SSP_RULES_LOCKS_H
#define SSP_RULES_LOCKS_H

#include <stdbool.h>

#include "rules/common.h"

/* check_event_for_spam in a room without a (trusted) policy event: setting
 * one is locked. */
bool ssp_locks_deny_in_unmanaged_room(const ssp_engine *engine, const ssp_request *req,
                                      ssp_denial *d);
/* check_event_for_spam in a managed room: redacting the policy event,
 * changing it or the power levels. */
bool ssp_locks_deny_event(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);
/* createRoom with the policy event in initial_state. */
bool ssp_locks_deny_create_room(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);

#endif
