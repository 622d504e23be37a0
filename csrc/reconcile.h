/*
 * The reconcile state's API (reconcile.c; kept by the store:
 * embedded/reconcile_file.c or pg/pg_reconcile.c).
 *
 * Stage 1 of applying the special rooms ("teachers", "announcement"): a
 * roster change marks (school, user) dirty; a reconciler applies the target
 * memberships and clears the mark. A mark is keyed (school, user_id);
 * user_id "" stands for the school itself (ensure its rooms exist, sweep
 * their members). Every (re)mark takes a new, strictly larger generation and
 * resets attempts and next_attempt_ms (last_error stays until done), so a
 * mark made while the reconciler worked survives its done().
 *
 * Roster changes mark automatically: the embedded store marks the user's old
 * and new schools in the same write (before the roster journal); PostgreSQL
 * marks them in a trigger on school_policy.roster, so plain SQL is marked too.
 *
 * All functions need an open engine (else SSP_ERR_STATE), may block on disk
 * or the database, and are thread-safe. Strings handed out are the caller's
 * to free().
 */
#ifndef SSP_RECONCILE_H
#define SSP_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct ssp_engine ssp_engine;

/* Marks (school, user_ids[i]) for every i; "" is the school itself.
 * Durable before return. */
int ssp_reconcile_mark(ssp_engine *engine, const char *school, const char *const *user_ids,
                       size_t n, ssp_error *err);

/* *marks_json receives [{"school","user_id","generation","attempts"}] of at
 * most `max` marks with next_attempt_ms <= now_ms, ordered by
 * next_attempt_ms then marked_at_ms. Does not remove them. */
int ssp_reconcile_due(ssp_engine *engine, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err);

/* Removes the mark only if its generation is still `generation`; a mark
 * that was renewed meanwhile (or is gone) is left as it is. */
int ssp_reconcile_done(ssp_engine *engine, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err);

/* Only if the generation matches: attempts + 1, next_attempt_ms = retry_at_ms,
 * last_error = error, failed_at_ms = now. */
int ssp_reconcile_failed(ssp_engine *engine, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err);

/* The special rooms registry: (school, kind) -> room id, kind "teachers" or
 * "announcement". room_id NULL forgets the room. */
int ssp_reconcile_set_room(ssp_engine *engine, const char *school, const char *kind,
                           const char *room_id, ssp_error *err);

/* *room_id receives the room id (caller frees) or NULL when none is known. */
int ssp_reconcile_get_room(ssp_engine *engine, const char *school, const char *kind,
                           char **room_id, ssp_error *err);

/* For every school in the config, the applied string is
 * {"messenger":b,"teachers_room":b,"announcement_room":b} (compact, in that
 * order). Where the stored one differs or is absent: marks (school, "") and
 * (school, u) for every roster user u of the school, then stores the new
 * string (marks first: a crash between leaves harmless extra marks).
 * *schools_changed receives the number of such schools. */
int ssp_reconcile_sync_config(ssp_engine *engine, size_t *schools_changed, ssp_error *err);

/* *status_json receives {"schools": {"<id>": {"messenger": bool (config),
 * "teachers_room": "!room"|null, "announcement_room": "!room"|null,
 * "pending": <marks of the school>, "last_error": <last_error of the most
 * recently failed pending mark of the school>|null}}}, every school of the
 * config in config order. */
int ssp_reconcile_status(ssp_engine *engine, char **status_json, ssp_error *err);

/* The same JSON without an engine, for the CLI while Synapse runs. The
 * embedded store's data_dir/reconcile.jsonl is only read (a missing file is
 * an empty reconcile state); with `database` set, connects and queries. */
int ssp_reconcile_status_offline(const char *config_json, size_t len, char **status_json,
                                 ssp_error *err);

#endif
