/* The audit for the people who audit (audit_view.c). */
#ifndef SSP_AUDIT_VIEW_H
#define SSP_AUDIT_VIEW_H

#include <stddef.h>

#include "error.h"

typedef struct ssp_engine ssp_engine;

/* The audit for readers in a browser or through the admin API
 * (audit_view.c): who may read which school's records, the read log, the
 * chart's aggregate and the rule names. `request` is JSON:
 *   {"op": "access" | "audit" | "chart" | "reads" | "status" | "rules" | "write",
 *    "reader": "@user:server", "server_admin": bool, "query": {...}}
 * where query holds since, until, from, limit, bucket (integers) and rule,
 * school, user (strings), each optional. *response_json receives
 * {"status": 200, "body": {...}} or {"status": 403, "error": "..."} (caller
 * frees). Bad input fails with SSP_ERR_INPUT naming the field; a store that
 * cannot record the read fails with SSP_ERR_IO and nothing is returned.
 * Blocks on disk or the database. */
int ssp_audit_view(ssp_engine *engine, const char *request, size_t len, char **response_json,
                   ssp_error *err);

#endif
