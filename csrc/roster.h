/*
 * The engine's roster API (roster.c): the admin API's and the roster
 * feed's writes and reads. The entries and the index are roster_index.h.
 */
#ifndef SSP_ROSTER_H
#define SSP_ROSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct ssp_engine ssp_engine;

/* PUT /users/{user_id}. `body` is the request JSON. On success *entry_json
 * receives the stored entry as JSON (caller frees). Durable before return. */
int ssp_roster_put(ssp_engine *engine, const char *user_id, const char *body, size_t len,
                   char **entry_json, ssp_error *err);

/* POST /roster, the roster feed and the command line's import:
 * {"users": [...], "groups": [...]}, either list absent, not both. Every
 * user and group is checked (errors name the key path,
 * "groups[2].members[5].role: ...") before anything is written; then the
 * users, then the groups (groups.h: the version rule, durable, marked for
 * reconciliation). *upserted receives the number of users written,
 * *groups_applied the number of groups applied (stale ones not counted). */
int ssp_roster_upsert_groups(ssp_engine *engine, const char *body, size_t len, size_t *upserted,
                             size_t *groups_applied, ssp_error *err);
/* The same without the groups' count. */
int ssp_roster_upsert_batch(ssp_engine *engine, const char *body, size_t len, size_t *upserted,
                            ssp_error *err);

/* Validates a POST /roster body as ssp_roster_upsert_batch does, without an
 * engine (the CLI's import): every user and group member of server_name,
 * each once (a group's school is not checked against a config). On
 * success *users_json receives the users as a JSON list of stored entries
 * (caller frees). */
int ssp_roster_check_batch(const char *body, size_t len, const char *server_name,
                           char **users_json, ssp_error *err);

/* Removes the user from every school. *existed tells whether they were on the roster. */
int ssp_roster_delete(ssp_engine *engine, const char *user_id, bool *existed, ssp_error *err);

/* GET /users/{user_id}: *entry_json receives the entry (caller frees) or
 * NULL when the user is not on the roster. */
int ssp_roster_get(ssp_engine *engine, const char *user_id, char **entry_json, ssp_error *err);

size_t ssp_roster_size(ssp_engine *engine);

#endif
