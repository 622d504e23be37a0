/*
 * The audit in PostgreSQL (pg_audit.c): batches from the queue, the spill
 * file while the database is away, the audit queries and purges.
 */
#ifndef SSP_PG_AUDIT_H
#define SSP_PG_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "error.h"
#include "pg/pg_conn.h"
#include "pg/pg_state.h"
#include "store_ops.h"

/* [open] Cuts a torn last line off the spill file and counts its records. */
int ssp_pg_audit_open_spill(ssp_pgstore *pg, ssp_error *err);
/* [store thread] Inserts everything queued: -1 on a database error, the
 * records back in the queue. */
int ssp_pg_audit_write_queue(ssp_pgstore *pg, ssp_error *err);
/* [store thread] While disconnected: everything queued to the spill file. */
void ssp_pg_audit_spill_queue(ssp_pgstore *pg);
/* [store thread] The spill file into the database, in order. */
int ssp_pg_audit_drain_spill(ssp_pgstore *pg, ssp_error *err);
bool ssp_pg_audit_spill_waiting(ssp_pgstore *pg);
int ssp_pg_audit_query(ssp_store *store, const ssp_audit_filter *filter, char **result_json,
                       ssp_error *err);
int ssp_pg_audit_chart(ssp_store *store, const ssp_audit_filter *filter, int64_t bucket_ms,
                       json_t **rows, ssp_error *err);
/* [caller thread] The page of an audit or read-log query: the first limit
 * rows as records (row_to_json), and, when the query found a row more, the
 * page's last row's id column as where the next page starts. NULL when out
 * of memory; the rows stay the caller's. */
json_t *ssp_pg_audit_page(ssp_pg_rows *res, size_t limit, int id_column,
                          json_t *(*row_to_json)(ssp_pg_rows *res, int row));
int ssp_pg_audit_purge(ssp_store *store, int64_t before_ms, uint64_t *deleted, ssp_error *err);

#endif
