/*
 * The engine's roster API: the admin API's and the roster feed's writes and
 * reads. A write is made durable through the store (store.h) before it is
 * applied to the index (roster_index.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"
#include "groups.h"
#include "ids.h"
#include "roster.h"
#include "store.h"
#include "util.h"

/* ---- the engine's roster API ---- */

static int require_open(ssp_engine *engine, ssp_error *err)
{
    if (!engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    return 0;
}

/* Writes the changes to the store, then applies them in the same order.
 * Takes ownership of every changes[i].user. */
static int commit_changes(ssp_engine *engine, ssp_roster_change *changes, size_t n,
                          ssp_error *err)
{
    int rc = 0, reserved;

    pthread_mutex_lock(&engine->write_mutex);
    /* Make room first: once the journal holds the change, applying it must
     * not fail, or the roster would differ after the next restart. Only
     * writers, serialised by write_mutex, change the map's size. */
    pthread_rwlock_wrlock(&engine->roster.lock);
    reserved = ssp_strmap_reserve(&engine->roster.users, n);
    pthread_rwlock_unlock(&engine->roster.lock);
    if (reserved != 0) {
        pthread_mutex_unlock(&engine->write_mutex);
        return ssp_fail_nomem(err);
    }
    /* Durable before it is applied: the store marks the reconcile state and writes
     * the change (the embedded journal, or PostgreSQL's local outbox). */
    if (ssp_store_roster_append(engine->store, &engine->roster, changes, n, err) != 0) {
        pthread_mutex_unlock(&engine->write_mutex);
        return -1;
    }
    pthread_rwlock_wrlock(&engine->roster.lock);
    for (size_t i = 0; i < n; i++) {
        if (ssp_roster_apply_locked(&engine->roster, changes[i].user_id, changes[i].user, err) != 0)
            rc = -1;
        changes[i].user = NULL;
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    pthread_mutex_unlock(&engine->write_mutex);
    return rc;
}

int ssp_roster_put(ssp_engine *engine, const char *user_id, const char *body, size_t len,
                   char **entry_json, ssp_error *err)
{
    ssp_roster_change change = {NULL, NULL};
    json_t *root = NULL, *stored = NULL;
    int rc = -1;

    *entry_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    if (ssp_check_user_id("user_id", user_id, strlen(user_id), engine->server_name, err) !=
        0)
        return -1;
    root = ssp_json_parse_body(body, len, err);
    if (root == NULL)
        goto done;
    if (ssp_roster_parse_entry(user_id, root, "", &change.user, err) != 0)
        goto done;
    change.user_id = (char *)user_id;
    stored = ssp_roster_user_to_json(user_id, change.user);
    if (ssp_json_dump_to(stored, entry_json, err) != 0)
        goto done;
    rc = commit_changes(engine, &change, 1, err);
    if (rc != 0) {
        free(*entry_json);
        *entry_json = NULL;
    }
done:
    free(change.user);
    json_decref(root);
    json_decref(stored);
    return rc;
}

int ssp_roster_upsert_groups(ssp_engine *engine, const char *body, size_t len, size_t *upserted,
                             size_t *groups_applied, ssp_error *err)
{
    ssp_roster_change *changes = NULL;
    ssp_group **groups = NULL;
    size_t n = 0, n_groups = 0;
    json_t *root;
    int rc = -1;

    *upserted = 0;
    *groups_applied = 0;
    if (require_open(engine, err) != 0)
        return -1;
    root = ssp_json_parse_body(body, len, err);
    if (root == NULL)
        return -1;
    /* Everything is checked before anything is written. */
    if (ssp_roster_parse_batch(root, engine->server_name, &changes, &n, err) != 0 ||
        ssp_groups_parse_batch(root, engine->server_name, &groups, &n_groups, err) != 0 ||
        ssp_groups_check_schools(engine, groups, n_groups, true, err) != 0)
        goto done;
    /* The users first: a group's plan reads them. */
    if (n > 0 && commit_changes(engine, changes, n, err) != 0)
        goto done;
    *upserted = n;
    if (n_groups > 0 && ssp_groups_commit(engine, groups, n_groups, NULL, groups_applied, err) != 0)
        goto done;
    rc = 0;
done:
    ssp_roster_changes_free(changes, n);
    ssp_groups_free(groups, n_groups);
    json_decref(root);
    return rc;
}

int ssp_roster_upsert_batch(ssp_engine *engine, const char *body, size_t len, size_t *upserted,
                            ssp_error *err)
{
    size_t groups_applied;

    return ssp_roster_upsert_groups(engine, body, len, upserted, &groups_applied, err);
}

int ssp_roster_check_batch(const char *body, size_t len, const char *server_name,
                           char **users_json, ssp_error *err)
{
    ssp_roster_change *changes = NULL;
    ssp_group **groups = NULL;
    size_t n = 0, n_groups = 0;
    json_t *root, *users = NULL;
    int rc = -1;

    *users_json = NULL;
    root = ssp_json_parse_body(body, len, err);
    if (root == NULL)
        return -1;
    if (ssp_roster_parse_batch(root, server_name, &changes, &n, err) != 0 ||
        ssp_groups_parse_batch(root, server_name, &groups, &n_groups, err) != 0)
        goto done;
    users = json_array();
    if (users == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        /* json_array_append_new steals the entry, also on failure. */
        json_t *entry = ssp_roster_user_to_json(changes[i].user_id, changes[i].user);

        if (entry == NULL || json_array_append_new(users, entry) != 0) {
            ssp_fail_nomem(err);
            goto done;
        }
    }
    rc = ssp_json_dump_to(users, users_json, err);
done:
    ssp_roster_changes_free(changes, n);
    ssp_groups_free(groups, n_groups);
    json_decref(users);
    json_decref(root);
    return rc;
}

int ssp_roster_delete(ssp_engine *engine, const char *user_id, bool *existed, ssp_error *err)
{
    ssp_roster_change change = {(char *)user_id, NULL};

    *existed = false;
    if (require_open(engine, err) != 0)
        return -1;
    /* Syntax only: a remote user is never on the roster, and deleting one
     * is harmless, but entries stored before the server check can go. */
    if (ssp_check_user_id("user_id", user_id, strlen(user_id), NULL, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&engine->roster.lock);
    *existed = ssp_strmap_get(&engine->roster.users, user_id) != NULL;
    pthread_rwlock_unlock(&engine->roster.lock);
    if (!*existed)
        return 0;
    return commit_changes(engine, &change, 1, err);
}

int ssp_roster_get(ssp_engine *engine, const char *user_id, char **entry_json, ssp_error *err)
{
    const ssp_roster_user *user;
    json_t *entry = NULL;
    int rc;

    *entry_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&engine->roster.lock);
    user = ssp_strmap_get(&engine->roster.users, user_id);
    if (user != NULL)
        entry = ssp_roster_user_to_json(user_id, user);
    pthread_rwlock_unlock(&engine->roster.lock);
    if (user == NULL)
        return 0;
    rc = ssp_json_dump_to(entry, entry_json, err);
    json_decref(entry);
    return rc;
}

size_t ssp_roster_size(ssp_engine *engine)
{
    size_t n;

    pthread_rwlock_rdlock(&engine->roster.lock);
    n = engine->roster.users.count;
    pthread_rwlock_unlock(&engine->roster.lock);
    return n;
}
