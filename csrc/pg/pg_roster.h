/*
 * The roster in PostgreSQL (pg_roster.c): the load (COPY text), the NOTIFY
 * sync and the roster outbox.
 */
#ifndef SSP_PG_ROSTER_H
#define SSP_PG_ROSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pg/pg_conn.h"
#include "pg/pg_state.h"
#include "roster_index.h"
#include "store_ops.h"
#include "strmap.h"

/* [open] or [store thread]: the whole roster into *map (initialised by the
 * caller) and the change version into *version; writes the local cache. */
int ssp_pg_roster_load(ssp_pgstore *pg, ssp_pg_conn *conn, ssp_strmap *map, int64_t *version,
                       ssp_error *err);
/* [open]: the local cache (a missing file is an empty roster). */
int ssp_pg_roster_load_cache(ssp_pgstore *pg, ssp_strmap *map, ssp_error *err);
/* [store thread] Reloads everything / applies the changes since the last
 * version seen, a piece at a time (1: more are waiting) / pushes the
 * outbox, a piece at a time. -1 on a database error. */
int ssp_pg_roster_full_sync(ssp_pgstore *pg, ssp_error *err);
int ssp_pg_roster_incremental_sync(ssp_pgstore *pg, ssp_error *err);
int ssp_pg_roster_push_outbox(ssp_pgstore *pg, ssp_error *err);
bool ssp_pg_roster_outbox_waiting(ssp_pgstore *pg);
/* [caller thread] Appends to the local outbox (fsync) and wakes the thread. */
int ssp_pg_roster_append(ssp_store *store, const ssp_roster_change *changes, size_t n,
                         ssp_error *err);

#endif
