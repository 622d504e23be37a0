/*
 * The read log in PostgreSQL (pg_reads.c).
 */
#ifndef SSP_PG_READS_H
#define SSP_PG_READS_H

#include <jansson.h>

#include "error.h"
#include "store_ops.h"

/* [caller thread] One read-log row, committed before return. */
int ssp_pg_reads_append(ssp_store *store, json_t *record, ssp_error *err);
/* [caller thread] A page of the read log, newest first: {"records", "next"}. */
int ssp_pg_reads_query(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                       json_t **page, ssp_error *err);

#endif
