/*
 * The engine's lifecycle (engine.c): making, opening and freeing an engine,
 * the command line's open and sync, the store's status and the engine's
 * settings.
 */
#ifndef SSP_ENGINE_H
#define SSP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store_ops.h"

typedef struct ssp_engine ssp_engine;

/* Seeds jansson's hash function. Call once per process before any thread
 * uses the engine. */
void ssp_global_init(void);

/* Creates an engine from config JSON. `server_name` decides which users are
 * local; `worker_name` is written into audit records. Returns NULL on
 * failure. The store is not opened yet. */
ssp_engine *ssp_engine_new(const char *config_json, size_t len, const char *server_name,
                           const char *worker_name, ssp_error *err);

/* Opens the store named by the config, loads the roster into memory and
 * starts the audit writer thread. May block on disk I/O. */
int ssp_engine_open(ssp_engine *engine, ssp_error *err);

/* How to open the store (ssp_engine_open_with). Zeroed: as ssp_engine_open. */
typedef struct ssp_open_options {
    /* The command line's open, beside a Synapse that may be
     * running:
     * - PostgreSQL: the store opens as a worker does (with the engine's
     *   worker_name for its files in data_dir), but only with the database
     *   reachable (else SSP_ERR_UNAVAILABLE with the database's message); its thread
     *   pushes roster writes through the same statement and trigger as the
     *   admin API's and stops on ssp_engine_free, after pushing.
     * - Embedded store: read only, since data_dir belongs to the running
     *   Synapse. roster.jsonl and reconcile.jsonl are read (whole lines
     *   only: a line Synapse is appending is not there yet) into a private
     *   copy and replayed from it; nothing in data_dir is compacted, cut or
     *   rewritten; audit queries read audit.jsonl. Roster writes fail with
     *   SSP_ERR_STATE; the reconcile state's writers change the private copy only,
     *   which is gone on ssp_engine_free: do not call them.
     * Reads of the audit through ssp_audit_view are recorded in the read log
     * as the admin API's are (both stores). An offline engine makes no
     * decisions: on the embedded store nothing would write their records. */
    bool offline;
    /* Synapse runs this process as one of several (a worker): the store
     * must be one that every process shares. The embedded store, which
     * belongs to one process, refuses with SSP_ERR_INPUT naming `database`. */
    bool worker;
} ssp_open_options;

/* ssp_engine_open with options (NULL: the defaults). */
int ssp_engine_open_with(ssp_engine *engine, const ssp_open_options *options, ssp_error *err);

/* Waits up to timeout_ms until every roster change and audit record this
 * engine wrote is in the store itself (PostgreSQL: pushed to the database,
 * not only in the local outbox or spill file; the embedded store writes
 * through at once). Fails with SSP_ERR_IO and the store's last error when
 * it is not there in time. */
int ssp_store_sync(ssp_engine *engine, int64_t timeout_ms, ssp_error *err);

/* Flushes pending audit records, stops the writer thread and frees
 * everything. Accepts NULL. */
void ssp_engine_free(ssp_engine *engine);

/* Whether a failed self-check stops Synapse (strict_homeserver_config). */
bool ssp_engine_strict_homeserver_config(const ssp_engine *engine);

/* The configured policy event type; owned by the engine. */
const char *ssp_engine_policy_event_type(const ssp_engine *engine);

/* The user that owns the special rooms, @<reconciler.user>:<server_name>;
 * owned by the engine. The rules exempt it like a service user. */
const char *ssp_engine_reconciler_user(const ssp_engine *engine);

typedef struct ssp_reconciler_settings {
    int64_t actions_per_second; /* room changes per second, at most */
    int64_t batch_size;         /* marks taken per round */
    int64_t retry_max_seconds;  /* cap of the backoff after Synapse refuses */
} ssp_reconciler_settings;

void ssp_engine_reconciler_settings(const ssp_engine *engine, ssp_reconciler_settings *out);

void ssp_store_get_status(ssp_engine *engine, ssp_store_status *out);

#endif
