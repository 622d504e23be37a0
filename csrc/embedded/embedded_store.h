/*
 * The embedded store's parts, seen only by its own files: embedded_store.c
 * (the backend: roster journal, rf, glue), audit_file.c (audit.jsonl,
 * its writer thread and queries, and the read log audit-reads.jsonl) and
 * reconcile_file.c (reconcile.jsonl).
 */
#ifndef SSP_STORE_EMBEDDED_H
#define SSP_STORE_EMBEDDED_H

#include <pthread.h>
#include <stdbool.h>

#include "embedded/audit_file.h"
#include "embedded/reads_file.h"
#include "config.h"
#include "error.h"
#include "files.h"
#include "journal.h"
#include "store_ops.h"
#include "strmap.h"

/* ---- the reconcile state (reconcile_file.c) ---- */

/* One mark. One allocation: the struct, then key, school and user_id. */
typedef struct ssp_mark {
    const char *key; /* "<school length>:<school><user_id>": unique per (school, user) */
    const char *school;
    const char *user_id; /* "" for the school itself */
    int64_t generation;
    int64_t marked_at_ms;
    int64_t attempts;
    int64_t next_attempt_ms;
    int64_t failed_at_ms;
    char *last_error; /* NULL or its own allocation */
} ssp_mark;

/* A (school, kind) -> room_id or (school) -> applied config entry. One
 * allocation: the struct, then key and value. */
typedef struct ssp_reconcile_entry {
    const char *key; /* rooms: "<kind>:<school>"; applied: the school id */
    const char *school;
    const char *value;
} ssp_reconcile_entry;

/* The embedded store's reconcile state: data_dir/reconcile.jsonl replayed into memory.
 * `mutex` guards everything here, including appends to the file. */
typedef struct ssp_reconcile_file {
    pthread_mutex_t mutex;
    bool mutex_ready;
    ssp_journal file;
    char *data_dir;
    ssp_strmap marks;   /* key -> ssp_mark* (owned) */
    ssp_strmap rooms;   /* key -> ssp_reconcile_entry* (owned) */
    ssp_strmap applied; /* school -> ssp_reconcile_entry* (owned) */
    int64_t next_generation;
} ssp_reconcile_file;

/* Replays data_dir/reconcile.jsonl (cutting a torn last line, compacting
 * when it has grown well past the live state) and opens it for appends. */
int ssp_reconcile_file_open(ssp_reconcile_file *rf, const char *data_dir, ssp_error *err);
void ssp_reconcile_file_close(ssp_reconcile_file *rf);
/* Marks (schools[i], user_ids[i]) for every i in one append + fdatasync.
 * Duplicate pairs are fine. Nothing is marked when it fails. */
int ssp_reconcile_file_mark_pairs(ssp_reconcile_file *rf, const char *const *schools,
                          const char *const *user_ids, size_t n, ssp_error *err);
uint64_t ssp_reconcile_file_pending(ssp_reconcile_file *rf);
int ssp_reconcile_file_done(ssp_reconcile_file *rf, const char *school, const char *user_id,
                    int64_t generation, ssp_error *err);
int ssp_reconcile_file_failed(ssp_reconcile_file *rf, const char *school, const char *user_id,
                      int64_t generation, const char *error, int64_t retry_at_ms,
                      ssp_error *err);
int ssp_reconcile_file_due(ssp_reconcile_file *rf, int64_t now_ms, size_t max, char **marks_json,
                   ssp_error *err);
/* room_id NULL: forget the room. */
int ssp_reconcile_file_set_room(ssp_reconcile_file *rf, const char *school, const char *kind,
                        const char *room_id, ssp_error *err);
/* *room_id: a copy (caller frees) or NULL when none is stored. */
int ssp_reconcile_file_get_room(ssp_reconcile_file *rf, const char *school, const char *kind, char **room_id,
                        ssp_error *err);
/* Whether the school's stored applied string is `applied`. */
bool ssp_reconcile_file_applied_is(ssp_reconcile_file *rf, const char *school, const char *applied);
int ssp_reconcile_file_put_applied(ssp_reconcile_file *rf, const char *school, const char *applied,
                           ssp_error *err);
/* ssp_reconcile_file_status: caller holds rf->mutex; _locked takes it. */
int ssp_reconcile_file_status(ssp_reconcile_file *rf, const ssp_config *config, char **status_json,
                      ssp_error *err);
int ssp_reconcile_file_status_locked(ssp_reconcile_file *rf, const ssp_config *config, char **status_json,
                             ssp_error *err);
/* Reads config->data_dir/reconcile.jsonl without opening the store (the
 * CLI, while Synapse runs). */
int ssp_reconcile_file_status_offline(const ssp_config *config, char **status_json, ssp_error *err);

/* ---- the backend (embedded_store.c) ---- */

extern const ssp_store_ops ssp_embedded_store_ops;

typedef struct ssp_embedded_store {
    ssp_store base;
    const ssp_store_env *env;
    ssp_reconcile_file reconcile; /* opened first: roster changes mark it before the journal */
    bool reconcile_open;
    ssp_journal journal; /* data_dir/roster.jsonl */
    bool journal_open;
    ssp_audit_file audit;
    bool audit_open;
    ssp_reads_file reads;
    bool reads_open;
    /* env->offline: the roster and reconcile state were replayed from a private copy
     * (gone after open); every write but the read log is refused. */
    bool offline;
} ssp_embedded_store;

#endif
