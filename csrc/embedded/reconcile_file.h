/*
 * The embedded store's reconcile state (reconcile_file.c): reconcile.jsonl
 * replayed into memory, and the operations of the store's reconcile_* ops.
 */
#ifndef SSP_RECONCILE_FILE_H
#define SSP_RECONCILE_FILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "embedded/reconcile_state.h"
#include "error.h"
#include "journal.h"

/* data_dir/reconcile.jsonl replayed into memory. `mutex` guards
 * everything here, including appends to the file. */
typedef struct ssp_reconcile_file {
    pthread_mutex_t mutex;
    bool mutex_ready;
    ssp_journal file;
    char *data_dir;
    ssp_reconcile_state state;
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
int ssp_reconcile_file_status(ssp_reconcile_file *rf, const ssp_config *config,
                              char **status_json, ssp_error *err);
/* Reads config->data_dir/reconcile.jsonl without opening the store (the
 * CLI, while Synapse runs). */
int ssp_reconcile_file_status_offline(const ssp_config *config, char **status_json, ssp_error *err);

#endif
