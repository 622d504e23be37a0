/*
 * The PostgreSQL store (pg_store.c): shared by Synapse's workers; its
 * thread, open and close, and the table of operations the router calls.
 */
#ifndef SSP_PG_STORE_H
#define SSP_PG_STORE_H

#include "store_ops.h"

extern const ssp_store_ops ssp_pg_store_ops;

#endif
