/*
 * Rule 2, one-way channels (one_way.c): one_way. In a course or team room
 * that is not two_way, only members at the moderator level or above post
 * or invite; the allow-listed event types stay open, as long as they carry
 * no text.
 */
#ifndef SSP_RULES_ONE_WAY_H
#define SSP_RULES_ONE_WAY_H

#include <stdbool.h>

#include "rules/common.h"

/* check_event_for_spam in a managed one-way room (ssp_policy_is_one_way). */
bool ssp_one_way_denies_event(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);
/* user_may_invite into a managed one-way room. */
bool ssp_one_way_denies_invite(const ssp_engine *engine, const ssp_request *req, ssp_denial *d);

#endif
