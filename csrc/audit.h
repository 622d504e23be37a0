/*
 * The engine's audit API (audit.c): the wait for a queued record, the
 * flush and counters, the queries and purges. Records are queued by
 * audit_record.h, the queue is audit_queue.h, the readers' view is
 * audit_view.h.
 */
#ifndef SSP_AUDIT_H
#define SSP_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "error.h"

typedef struct ssp_engine ssp_engine;

/* Waits until the audit record of a denial (ssp_decision.audit_id) is
 * durable: fdatasync'ed in audit.jsonl, or committed in PostgreSQL (or
 * fdatasync'ed in the spill file while the database is away), at most
 * timeout_ms. Returns true once it is (also for audit_id <= 0: nothing to
 * wait for), false on timeout. Blocks: call it off the reactor, without
 * the GIL. Concurrent waiters share the writer's batches. */
bool ssp_decision_wait_durable(ssp_engine *engine, int64_t audit_id, int64_t timeout_ms);

/* For a waiter that must not block (the adapter, on Synapse's reactor): an
 * eventfd that becomes readable when records became durable (the waiter
 * reads it to reset it, then asks ssp_audit_last_durable_id), or -1 when
 * no store is open. The engine owns it; it stays open until the engine is
 * freed. */
int ssp_audit_durable_fd(ssp_engine *engine);
/* Every record with an id at or below this one is durable. */
int64_t ssp_audit_last_durable_id(ssp_engine *engine);
/* How long queued records have waited with nothing written, in ms (0: none
 * waits, or the store keeps up). */
int64_t ssp_audit_stalled_ms(ssp_engine *engine);

/* Queries the audit log, newest first. *result_json receives
 * {"records": [...], "next": "<id>" | null} (caller frees). Blocks on disk
 * I/O and waits for queued records to be written first. */
int ssp_audit_query(ssp_engine *engine, const ssp_audit_filter *filter, char **result_json,
                    ssp_error *err);

/* Waits until every queued audit record is on disk. */
int ssp_audit_flush(ssp_engine *engine, ssp_error *err);

void ssp_audit_get_stats(ssp_engine *engine, ssp_audit_stats *out);

/* Deletes the audit records written before `before_ms`, an absolute time
 * (ms since the epoch, not a duration: a caller with an age computes
 * now - age). PostgreSQL store only; blocks on the database. */
int ssp_audit_purge(ssp_engine *engine, int64_t before_ms, uint64_t *deleted, ssp_error *err);

#endif
