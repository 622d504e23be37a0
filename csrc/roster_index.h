/*
 * The roster: its entries, the input rules they obey, and the in-memory
 * index the rules read under a read lock (roster_index.c). A data
 * structure with no store behind it: the store loads it (ssp_roster_replace)
 * and roster writes change it (ssp_roster_apply_locked).
 */
#ifndef SSP_ROSTER_INDEX_H
#define SSP_ROSTER_INDEX_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "group.h"
#include "strmap.h"

typedef enum { SSP_ROLE_STUDENT = 0, SSP_ROLE_TEACHER, SSP_ROLE_ADMIN } ssp_role;

struct ssp_school;

typedef struct ssp_membership {
    const char *school; /* points into the owning ssp_roster_user allocation */
    ssp_role role;
    /* The config's entry for the school, or NULL when the config has none
     * (such memberships are kept and count as a school that has not opted
     * in). Set when the entry enters an ssp_roster (ssp_roster_apply_locked,
     * ssp_roster_replace) from roster->schools, so that a decision does not
     * look the school up by its id. Borrowed from the engine's config,
     * which is immutable for the engine's life and outlives the roster
     * (ssp_engine_free destroys the roster first): the pointer stays valid
     * as long as the entry. Entries outside an ssp_roster leave it NULL. */
    const struct ssp_school *config;
} ssp_membership;

/* One allocation per user: the struct, the memberships, then the strings. */
typedef struct ssp_roster_user {
    const char *user_id;
    size_t n;
    ssp_membership memberships[];
} ssp_roster_user;

typedef struct ssp_roster_change {
    char *user_id;
    ssp_roster_user *user; /* NULL or n == 0: remove from every school */
} ssp_roster_change;

/* Parses {"schools": [...]} for one user. *out is a new allocation. */
int ssp_roster_parse_entry(const char *user_id, json_t *body, const char *path,
                           ssp_roster_user **out, ssp_error *err);
/* The same for stored data (journal replay): a membership whose school id
 * breaks the rules of ssp_check_school_id is dropped and counted in
 * *dropped instead of failing the entry. */
int ssp_roster_parse_entry_lenient(const char *user_id, json_t *body, const char *path,
                                   size_t *dropped, ssp_roster_user **out, ssp_error *err);
/* Parses the users of {"users": [...], "groups": [...]} (either list may be
 * absent, not both) into an array of changes (caller frees with
 * ssp_roster_changes_free; none when the users are absent). Every
 * user_id must pass ssp_check_user_id (server_name NULL: any server) and
 * appear once. The groups are ssp_groups_parse_batch's (groups.h). */
int ssp_roster_parse_batch(json_t *body, const char *server_name, ssp_roster_change **changes,
                           size_t *n, ssp_error *err);
void ssp_roster_changes_free(ssp_roster_change *changes, size_t n);
json_t *ssp_roster_user_to_json(const char *user_id, const ssp_roster_user *user);
typedef struct ssp_roster {
    pthread_rwlock_t lock;
    ssp_strmap users; /* user_id -> ssp_roster_user*, key points into the value */
    /* group_id -> ssp_group* (owned), key points into the value. A deleted
     * group stays: its room must be emptied, and a stale version must not
     * bring its id back. */
    ssp_strmap groups;
    /* The reverse index: user_id -> the groups listing the user (an
     * allocation of roster_index.c's that holds the key; read it with
     * ssp_roster_groups_of). An entry may list no group. */
    ssp_strmap user_groups;
    const char *server_name; /* borrowed; NULL: users of any server (replay checks) */
    /* Borrowed: config.school_by_id (id -> ssp_school*), whose entries the
     * memberships link to; NULL links none (a scratch roster no decision
     * reads). Set once, before the first entry comes in. */
    const ssp_strmap *schools;
    uint64_t skipped;        /* stored entries and rows dropped at load: they break the rules */
} ssp_roster;

int ssp_roster_init(ssp_roster *roster, ssp_error *err);
void ssp_roster_destroy(ssp_roster *roster);
/* Applies a change; takes ownership of change->user either way. Caller holds
 * the write lock. */
int ssp_roster_apply_locked(ssp_roster *roster, const char *user_id, ssp_roster_user *user,
                            ssp_error *err);

/* Replaces every entry with those of *users (taken over; left empty and
 * initialised) under the write lock; the old entries are freed after the
 * lock is released. */
void ssp_roster_replace(ssp_roster *roster, ssp_strmap *users);
/* Applies the loaded entries of the users named in user_ids under one
 * write lock: a user found in *loaded (taken out of it) replaces the entry,
 * a user absent from it leaves the roster. Fails with SSP_ERR_NOMEM before
 * changing anything. */
int ssp_roster_apply_loaded(ssp_roster *roster, const char *const *user_ids, size_t n,
                            ssp_strmap *loaded, ssp_error *err);
/* Counts n stored entries or rows dropped at load (they break the rules). */
void ssp_roster_note_skipped(ssp_roster *roster, uint64_t n);
/* Frees every entry of a map of ssp_roster_user* and the map. */
void ssp_roster_map_free(ssp_strmap *users);

/* ---- groups (group.h) in the index ----
 * Readers hold the read lock, as for users; the pointers stay valid until
 * they release it. */
const ssp_group *ssp_roster_group(const ssp_roster *roster, const char *group_id, size_t len);
/* The groups listing user_id (len bytes), in no particular order: returns
 * their number and points *groups at them (NULL when none). */
size_t ssp_roster_groups_of(const ssp_roster *roster, const char *user_id, size_t len,
                            const ssp_group *const **groups);
/* Makes room for applying groups[0..n) (not taken) so that the
 * ssp_roster_apply_group_locked calls of exactly those groups that follow
 * cannot fail (a writer that journals before applying reserves first).
 * Caller holds the write lock. Fails with SSP_ERR_NOMEM; what was reserved
 * stays reserved and is harmless. */
int ssp_roster_reserve_groups_locked(ssp_roster *roster, const ssp_group *const *groups, size_t n,
                                     ssp_error *err);
/* Puts group (taken, either way) in place of the stored group of its id,
 * and updates the reverse index. The version rule is the caller's. Caller
 * holds the write lock. Fails only with SSP_ERR_NOMEM, and not after
 * ssp_roster_reserve_groups_locked for it; nothing changed then. */
int ssp_roster_apply_group_locked(ssp_roster *roster, ssp_group *group, ssp_error *err);
/* Replaces every group with those of *groups (group_id -> ssp_group*, taken
 * over; left empty and initialised), the reverse index built before the
 * write lock is taken; the old groups are freed after it is released.
 * Fails with SSP_ERR_NOMEM before changing anything (*groups kept). */
int ssp_roster_replace_groups(ssp_roster *roster, ssp_strmap *groups, ssp_error *err);
/* Frees every group of a map of ssp_group* and the map. */
void ssp_roster_group_map_free(ssp_strmap *groups);

/* Roster entries built from stored rows. */
ssp_roster_user *ssp_roster_user_new(const char *user_id, const char **schools,
                                     const ssp_role *roles, size_t n);
/* Returns 0 and sets *role, or -1 for an unknown role name. */
int ssp_role_from_name(const char *name, ssp_role *role);

#endif
