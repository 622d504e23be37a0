/*
 * Decisions (decide.c) on a request (request.h). The rules themselves are
 * the rule families (opt_in.c, one_way.c, locks.c, visibility.c,
 * closed_doors.c, special_rooms.c, groups.c); decide.c dispatches to them.
 */
#ifndef SSP_DECIDE_H
#define SSP_DECIDE_H

#include "rules/request.h"

typedef struct ssp_engine ssp_engine;

/* Decides one request from memory without blocking on I/O. On a final
 * denial it queues the audit record (out->audit_id). The roster is read
 * under one read lock for the whole decision: one snapshot. When the
 * request's room_details could not be loaded (room_details->failed), the
 * decision is void and nothing was audited. */
void ssp_decide(ssp_engine *engine, const ssp_request *request, ssp_decision *out);

#endif
