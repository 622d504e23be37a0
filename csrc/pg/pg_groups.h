/*
 * Groups in PostgreSQL (pg_groups.c): school_policy.groups (migration 6)
 * loaded with COPY into the roster's group index, the changes another
 * process made applied on NOTIFY, and the store op groups_append.
 */
#ifndef SSP_PG_GROUPS_H
#define SSP_PG_GROUPS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "group.h"
#include "pg/pg_conn.h"
#include "pg/pg_state.h"
#include "store_ops.h"
#include "strmap.h"

/* The channel the trigger notifies (migration 6). */
#define SSP_PG_GROUPS_CHANNEL "school_policy_groups"

/* [open] or [store thread]: every group into *map (group id -> ssp_group*,
 * the map initialised by the caller, the groups its until they are handed
 * to the index) and the change version into *version; writes the local
 * cache. */
int ssp_pg_groups_load(ssp_pgstore *pg, ssp_pg_conn *conn, ssp_strmap *map, int64_t *version,
                       ssp_error *err);
/* [open] The groups loaded beside the roster: on a connection and a thread
 * of their own, straight into the index (ssp_roster_replace_groups), while
 * the caller loads the roster on its connection. start connects and starts
 * the thread (-1: nothing started, err set); finish waits for it, closes
 * its connection and returns what it did: 0 and the change version, or -1
 * with its error. Every start is followed by a finish. */
typedef struct ssp_pg_groups_open {
    ssp_pgstore *pg;
    ssp_pg_conn *conn;
    pthread_t thread;
    int rc;
    int64_t version;
    ssp_error err;
} ssp_pg_groups_open;
int ssp_pg_groups_open_start(ssp_pgstore *pg, ssp_pg_groups_open *op, ssp_error *err);
int ssp_pg_groups_open_finish(ssp_pg_groups_open *op, int64_t *version, ssp_error *err);
/* [open]: the local cache (a missing file is no group). */
int ssp_pg_groups_load_cache(ssp_pgstore *pg, ssp_strmap *map, ssp_error *err);
/* [store thread] Reloads every group and swaps them in / applies the
 * changes since the last version seen, a piece at a time (1: more are
 * waiting). -1 on a database error. */
int ssp_pg_groups_full_sync(ssp_pgstore *pg, ssp_error *err);
int ssp_pg_groups_incremental_sync(ssp_pgstore *pg, ssp_error *err);
/* [store thread] Reads again the groups a write of this process found at
 * a higher version in the database (pg->groups_recheck). -1 on a database
 * error (they are kept for the next pass). */
int ssp_pg_groups_recheck(ssp_pgstore *pg, ssp_error *err);
/* [caller thread] The store op (store_ops.h): writes the groups to the
 * database in one statement, durable on return; a group the database holds
 * at a higher version (another process's write) is left as it is. */
int ssp_pg_groups_append(ssp_store *store, const ssp_group *const *groups, size_t n, ssp_error *err);

#endif
