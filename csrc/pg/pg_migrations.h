/*
 * The schema (pg_migrations.c), one SQL text per migration.
 */
#ifndef SSP_PG_MIGRATIONS_H
#define SSP_PG_MIGRATIONS_H

#include "error.h"
#include "pg/pg_conn.h"

/* [open] or [store thread]: creates or upgrades the schema. */
int ssp_pg_migrate(ssp_pg_conn *conn, ssp_error *err);

#endif
