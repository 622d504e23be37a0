/*
 * The reconcile state in PostgreSQL (pg_reconcile.c): its SQL.
 */
#ifndef SSP_PG_RECONCILE_H
#define SSP_PG_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "pg/pg_state.h"
#include "store_ops.h"

int ssp_pg_reconcile_mark(ssp_store *store, const char *const *schools, const char *const *user_ids,
                       size_t n, ssp_error *err);
int ssp_pg_reconcile_due(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err);
int ssp_pg_reconcile_done(ssp_store *store, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err);
int ssp_pg_reconcile_failed(ssp_store *store, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err);
int ssp_pg_reconcile_set_room(ssp_store *store, const char *school, const char *kind,
                           const char *room_id, ssp_error *err);
int ssp_pg_reconcile_get_room(ssp_store *store, const char *school, const char *kind,
                           char **room_id, ssp_error *err);
int ssp_pg_reconcile_sync_config(ssp_store *store, size_t *schools_changed, ssp_error *err);
int ssp_pg_reconcile_status(ssp_store *store, char **status_json, ssp_error *err);
int ssp_pg_reconcile_status_offline(const ssp_config *config, char **status_json, ssp_error *err);
/* [store thread] Refreshes the cached number of marks. */
int ssp_pg_reconcile_count_pending(ssp_pgstore *pg, ssp_error *err);

#endif
