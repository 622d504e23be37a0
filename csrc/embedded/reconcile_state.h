/*
 * The embedded store's reconcile state in memory (reconcile_state.c): the
 * marks, the special rooms and the configs the reconciler last acted on.
 * A change that cannot fail once its map has room for one more entry is
 * what lets reconcile_file.c append first and change memory after.
 */
#ifndef SSP_RECONCILE_STATE_H
#define SSP_RECONCILE_STATE_H

#include <stdint.h>

#include "config.h"
#include "error.h"
#include "ids.h"
#include "reconcile_common.h"
#include "strmap.h"

/* "<len>:" + school + subject + NUL: a school id, and a user id or
 * "group:" + a group id */
#define SSP_MARK_KEY_MAX (8 + SSP_SCHOOL_ID_MAX + SSP_RECONCILE_SUBJECT_MAX + 1)
/* "<kind>\n" + school + NUL: the kind may be "group:" + a group id, which
 * may hold ":"; neither holds a line break */
#define SSP_ROOM_KEY_MAX (SSP_RECONCILE_SUBJECT_MAX + 1 + SSP_SCHOOL_ID_MAX + 1)
/* Generations count up from 1 by one a mark; a file claiming more is
 * corrupt, and the bound keeps next_generation + n from overflowing. */
#define SSP_GENERATION_MAX (INT64_MAX / 2)

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

typedef struct ssp_reconcile_state {
    ssp_strmap marks;   /* key -> ssp_mark* (owned) */
    ssp_strmap rooms;   /* key -> ssp_reconcile_entry* (owned) */
    ssp_strmap applied; /* school -> ssp_reconcile_entry* (owned) */
    int64_t next_generation;
} ssp_reconcile_state;

void ssp_reconcile_state_init(ssp_reconcile_state *state);
void ssp_reconcile_state_destroy(ssp_reconcile_state *state);
/* The maps' keys, into buffers of SSP_MARK_KEY_MAX / SSP_ROOM_KEY_MAX. */
void ssp_mark_key(char *key, const char *school, const char *user_id);
void ssp_room_key(char *key, const char *school, const char *kind);
/* New nodes, not yet in a map; NULL when out of memory. */
ssp_mark *ssp_mark_new(const char *school, const char *user_id);
void ssp_mark_free(ssp_mark *mark);
ssp_reconcile_entry *ssp_reconcile_entry_new(const char *key, const char *school,
                                             const char *value);
/* next_generation moves past generation. */
void ssp_reconcile_note_generation(ssp_reconcile_state *state, int64_t generation);
/* A (re)mark in memory. `fresh` is a node prepared for the key (or NULL when
 * the key is known to exist); it is used or freed. Cannot fail when the map
 * has room for one more entry. */
int ssp_reconcile_remark(ssp_reconcile_state *state, ssp_mark *fresh, const char *key,
                         int64_t generation, int64_t at_ms);
/* Puts or (fresh NULL) removes an entry of map; `fresh` is prepared by the
 * caller. Cannot fail when the map has room for one more. */
int ssp_reconcile_put_entry(ssp_strmap *map, ssp_reconcile_entry *fresh, const char *key);
/* The ssp_reconcile_status JSON of the state. */
int ssp_reconcile_state_status(const ssp_reconcile_state *state, const ssp_config *config,
                               char **status_json, ssp_error *err);

#endif
