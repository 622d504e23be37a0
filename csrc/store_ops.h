/*
 * The store interface: the table of operations the two backends implement,
 * and what they are given of the engine. Types only; the router that
 * calls the operations is store.c (store.h), the backends are
 * embedded/embedded_store.c and pg/pg_store.c.
 *
 * The backends see the engine only through ssp_store_env (the config, the
 * roster index and its write mutex) and the audit queue they drain: never
 * ssp_engine.
 *
 * Threads: every operation may block on disk or network and is called
 * without the GIL, from any thread, concurrently; each backend serialises
 * what it must. Errors: SSP_ERR_IO for the disk, SSP_ERR_DATABASE for an
 * error the database reported (the message is the database's),
 * SSP_ERR_UNAVAILABLE when the database cannot be reached.
 */
#ifndef SSP_STORE_OPS_H
#define SSP_STORE_OPS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "config.h"
#include "error.h"
#include "roster_index.h"

typedef struct ssp_store_status {
    bool postgres;                  /* false: the embedded store */
    bool connected;                 /* PostgreSQL reachable (always true for the embedded store) */
    uint64_t audit_spilled_total;   /* records written to the spill file since start */
    uint64_t audit_spill_pending;   /* records in the spill file, waiting for the database */
    uint64_t roster_outbox_pending; /* roster changes not yet in the database */
    uint64_t connects;              /* successful (re)connections since start */
    int64_t roster_version;         /* last roster change version applied */
    uint64_t reconcile_pending;     /* marks in the reconcile state (PostgreSQL: a
                                     * count the store thread refreshes about once a second) */
    char last_error[SSP_ERROR_MESSAGE_MAX]; /* the last database error, or "" */
    uint64_t roster_skipped;        /* stored roster entries and rows skipped at load since start:
                                     * they break the input rules (docs/admin-api.md) */
} ssp_store_status;

/* A page of the read log: since/until in ms (0: open), before_id (0: the
 * newest), at most limit records. */
typedef struct ssp_reads_filter {
    int64_t since_ms, until_ms, before_id;
    size_t limit;
} ssp_reads_filter;

/* What a backend may use of the engine; all borrowed, alive until close. */
typedef struct ssp_store_env {
    const ssp_config *config;
    const char *server_name;
    const char *worker_name;
    ssp_roster *roster;           /* filled by open; the PostgreSQL store keeps it in sync */
    pthread_mutex_t *write_mutex; /* serialises roster writers (held around roster_append) */
    /* The command line's open (ssp_open_options.offline): the embedded
     * store reads a private copy and writes nothing of Synapse's; the
     * PostgreSQL store opens only with the database reachable. */
    bool offline;
    /* One process of several (ssp_open_options.worker): a backend that
     * belongs to a single process refuses to open. */
    bool worker;
} ssp_store_env;

/* A backend's handle starts with this. */
typedef struct ssp_store {
    const struct ssp_store_ops *ops;
} ssp_store;

/* What open tells the router about the audit queue to set up. */
typedef struct ssp_store_opened {
    int64_t last_audit_id; /* the queue's ids continue after it */
    char audit_sink[256];  /* where records go, for error messages */
    int audit_wake_fd;     /* an eventfd the queue writes when records arrive, or -1 */
} ssp_store_opened;

typedef struct ssp_store_ops {
    const char *name;
    /* The backend marks the reconcile state itself when a roster change reaches it
     * (PostgreSQL: a trigger); otherwise the router marks before appending. */
    bool marks_roster_changes;
    /* Roster writes are durable locally at once and reach the shared store
     * later (the roster feed acknowledges after that). */
    bool commits_roster_later;

    /* Opens the store and loads the roster into env->roster. */
    int (*open)(const ssp_store_env *env, ssp_store **out, ssp_store_opened *opened,
                ssp_error *err);
    /* Starts draining the audit queue (the queue outlives the store). */
    int (*start)(ssp_store *store, ssp_audit_queue *queue, ssp_error *err);
    /* Writes what is queued (or spills it), stops the threads, frees. */
    void (*close)(ssp_store *store);
    void (*status)(ssp_store *store, ssp_store_status *out);

    /* Durable on return. Caller holds env->write_mutex. */
    int (*roster_append)(ssp_store *store, const ssp_roster_change *changes, size_t n,
                         ssp_error *err);
    /* Stores group snapshots, durable on return. Each groups[i] (borrowed,
     * valid for the call) replaces the stored group of its id: the router
     * has applied the version rule against the index and marked
     * (school, "group:" + group_id) in the reconcile state; the backend
     * only stores. A deleted group is stored like any other (state
     * deleted), never dropped. The stored form is ssp_group_to_json; it
     * loads back with ssp_group_parse(NULL, json, "", NULL, ...). Open
     * loads every stored group into env->roster (ssp_roster_replace_groups).
     * Caller holds env->write_mutex. NULL: the backend keeps no groups (the
     * router refuses group writes with a clear message). */
    int (*groups_append)(ssp_store *store, const ssp_group *const *groups, size_t n,
                         ssp_error *err);

    int (*audit_query)(ssp_store *store, const ssp_audit_filter *filter, char **result_json,
                       ssp_error *err);
    /* [[bucket_start_ms, "rule", n], ...] ordered by bucket and rule. */
    int (*audit_chart)(ssp_store *store, const ssp_audit_filter *filter, int64_t bucket_ms,
                       json_t **rows, ssp_error *err);
    /* Deletes the records with ts < before_ms (ms since the epoch). */
    int (*audit_purge)(ssp_store *store, int64_t before_ms, uint64_t *deleted, ssp_error *err);
    /* One read-log record (gets its "id"), durable on return. */
    int (*reads_append)(ssp_store *store, json_t *record, ssp_error *err);
    /* schools NULL: every read; else those confined to one of them. */
    int (*reads_query)(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                       json_t **page, ssp_error *err);

    /* Marks (schools[i], user_ids[i]) for every i, durable on return. */
    int (*reconcile_mark)(ssp_store *store, const char *const *schools, const char *const *user_ids,
                       size_t n, ssp_error *err);
    int (*reconcile_due)(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err);
    int (*reconcile_done)(ssp_store *store, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err);
    int (*reconcile_failed)(ssp_store *store, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err);
    int (*reconcile_set_room)(ssp_store *store, const char *school, const char *kind,
                           const char *room_id, ssp_error *err);
    int (*reconcile_get_room)(ssp_store *store, const char *school, const char *kind,
                           char **room_id, ssp_error *err);
    int (*reconcile_sync_config)(ssp_store *store, size_t *schools_changed, ssp_error *err);
    int (*reconcile_status)(ssp_store *store, char **status_json, ssp_error *err);
    /* Without an open store (the CLI while Synapse runs). */
    int (*reconcile_status_offline)(const ssp_config *config, char **status_json, ssp_error *err);
} ssp_store_ops;

#endif
