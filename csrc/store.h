/*
 * The store router (store.c): the engine's only way into the store, where
 * the roster, the audit log, the read log and the reconcile state are kept.
 * Two backends implement the table of operations of store_ops.h, chosen
 * once at open from the config:
 *
 *   embedded/   one process: data_dir/roster.jsonl, audit.jsonl,
 *               audit-reads.jsonl, reconcile.jsonl
 *   pg/         PostgreSQL, shared by Synapse's workers
 *
 * The engine's files (engine.c, roster.c, reconcile.c, audit.c,
 * audit_view.c) call these functions, never a backend; store.c is the one
 * place that knows both. Each function passes the call to the backend
 * chosen at open and checks nothing of the caller's input (the callers
 * did). Threads and errors: as the operations (store_ops.h).
 */
#ifndef SSP_STORE_H
#define SSP_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "config.h"
#include "error.h"
#include "reconcile_common.h"
#include "roster_index.h"
#include "store_ops.h"

/* Opens the backend env->config names, loads the roster into env->roster,
 * opens the audit queue (ids after the store's newest record) and starts
 * its writer. env is borrowed until ssp_store_close. */
int ssp_store_open(const ssp_store_env *env, ssp_audit_queue *queue, ssp_store **out,
                   ssp_error *err);
/* Closes the store (after its writer has written or spilled the queue),
 * then the audit queue. */
void ssp_store_close(ssp_store *store, ssp_audit_queue *queue);
void ssp_store_read_status(ssp_store *store, ssp_store_status *out);
/* Marks the reconcile state for the changed memberships of `roster` (unless
 * the backend does), then appends the changes durably. Caller holds the
 * roster's write mutex (ssp_store_env.write_mutex). */
int ssp_store_roster_append(ssp_store *store, ssp_roster *roster,
                            const ssp_roster_change *changes, size_t n, ssp_error *err);
/* Marks (school, "group:" + group_id) in the reconcile state for each
 * group, and for the school of the stored group of that id when it differs,
 * then stores the snapshots durably (groups_append). The version rule is
 * the caller's. Fails with SSP_ERR_STATE when the backend keeps no groups.
 * Caller holds the roster's write mutex. */
int ssp_store_groups_append(ssp_store *store, ssp_roster *roster, const ssp_group *const *groups,
                            size_t n, ssp_error *err);
/* The reconcile state's subject of a group: "group:" + group_id, into buf
 * of size bytes (SSP_GROUP_SUBJECT_MAX is enough). */
#define SSP_GROUP_SUBJECT_MAX (SSP_RECONCILE_SUBJECT_MAX + 1)
void ssp_group_subject(const char *group_id, char *buf, size_t size);
/* False for NULL (no store open). */
bool ssp_store_commits_roster_later(const ssp_store *store);
int ssp_store_audit_query(ssp_store *store, const ssp_audit_filter *filter, char **result_json,
                          ssp_error *err);
int ssp_store_audit_chart(ssp_store *store, const ssp_audit_filter *filter, int64_t bucket_ms,
                          json_t **rows, ssp_error *err);
int ssp_store_audit_purge(ssp_store *store, int64_t before_ms, uint64_t *deleted,
                          ssp_error *err);
/* The same without an open store: refused with the backend's reason. */
int ssp_store_audit_purge_closed(const ssp_config *config, int64_t before_ms, uint64_t *deleted,
                                 ssp_error *err);
int ssp_store_reads_append(ssp_store *store, json_t *record, ssp_error *err);
int ssp_store_reads_query(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                          json_t **page, ssp_error *err);
int ssp_store_reconcile_mark(ssp_store *store, const char *const *schools,
                             const char *const *user_ids, size_t n, ssp_error *err);
int ssp_store_reconcile_due(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                            ssp_error *err);
int ssp_store_reconcile_done(ssp_store *store, const char *school, const char *user_id,
                             int64_t generation, ssp_error *err);
int ssp_store_reconcile_failed(ssp_store *store, const char *school, const char *user_id,
                               int64_t generation, const char *error, int64_t retry_at_ms,
                               ssp_error *err);
int ssp_store_reconcile_set_room(ssp_store *store, const char *school, const char *kind,
                                 const char *room_id, ssp_error *err);
int ssp_store_reconcile_get_room(ssp_store *store, const char *school, const char *kind,
                                 char **room_id, ssp_error *err);
int ssp_store_reconcile_sync_config(ssp_store *store, size_t *schools_changed, ssp_error *err);
int ssp_store_reconcile_status(ssp_store *store, char **status_json, ssp_error *err);
/* Without an open store (the CLI while Synapse runs). */
int ssp_store_reconcile_status_offline(const ssp_config *config, char **status_json,
                                       ssp_error *err);

#endif
