/*
 * The store router: the one place that knows both backends. The engine's
 * files call these functions; each checks nothing of the caller's input
 * (the callers did) and passes the call to the backend chosen at open.
 *
 * Also here: ssp_store_get_status, the public call that is a store call and
 * nothing else.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "store.h"

static const ssp_store_ops *backend_for(const ssp_config *config)
{
    return config->database != NULL ? &ssp_pg_store_ops : &ssp_embedded_store_ops;
}

/* An offline open that could not reach the shared store fails: a command
 * must not act on a roster the database may have moved past, nor leave its
 * writes in an outbox nobody pushes. */
static int require_connected(ssp_store *store, ssp_error *err)
{
    ssp_store_status status;

    memset(&status, 0, sizeof status);
    store->ops->status(store, &status);
    if (status.connected)
        return 0;
    return ssp_fail(err, SSP_ERR_UNAVAILABLE, "%s",
                    status.last_error[0] ? status.last_error : "database: not reachable");
}

int ssp_store_open(ssp_engine *engine, bool offline, ssp_error *err)
{
    const ssp_store_ops *ops = backend_for(&engine->config);
    ssp_store_opened opened = {0, "", -1};
    ssp_store *store = NULL;

    engine->store_env.config = &engine->config;
    engine->store_env.server_name = engine->server_name;
    engine->store_env.worker_name = engine->worker_name;
    engine->store_env.roster = &engine->roster;
    engine->store_env.write_mutex = &engine->write_mutex;
    engine->store_env.offline = offline;
    if (ops->open(&engine->store_env, &store, &opened, err) != 0)
        return -1;
    if (ssp_audit_open(&engine->audit, engine->worker_name, opened.audit_sink,
                       opened.last_audit_id, opened.audit_wake_fd, err) != 0) {
        ops->close(store);
        return -1;
    }
    engine->audit_open = true;
    if (ops->start(store, &engine->audit, err) != 0 ||
        (offline && require_connected(store, err) != 0)) {
        ops->close(store);
        ssp_audit_close(&engine->audit);
        engine->audit_open = false;
        return -1;
    }
    engine->store = store;
    return 0;
}

void ssp_store_close(ssp_engine *engine)
{
    if (engine->store != NULL) {
        /* The writer writes (or spills) what is queued before it stops. */
        engine->store->ops->close(engine->store);
        engine->store = NULL;
    }
    if (engine->audit_open) {
        ssp_audit_close(&engine->audit);
        engine->audit_open = false;
    }
}

/* Marks (school, user) for every school the user is in now or will be in
 * after the change, in one call of the backend. Caller holds write_mutex, so the
 * roster's strings stay put. */
static int mark_changed_memberships(ssp_engine *engine, const ssp_roster_change *changes,
                                    size_t n, ssp_error *err)
{
    const char **schools = NULL, **users = NULL;
    size_t total = 0, used = 0;
    int rc;

    pthread_rwlock_rdlock(&engine->roster.lock);
    for (size_t i = 0; i < n; i++) {
        const ssp_roster_user *current = ssp_strmap_get(&engine->roster.users, changes[i].user_id);

        total += (current ? current->n : 0) + (changes[i].user ? changes[i].user->n : 0);
    }
    if (total > 0) {
        schools = malloc(total * sizeof *schools);
        users = malloc(total * sizeof *users);
    }
    if (total > 0 && (schools == NULL || users == NULL)) {
        pthread_rwlock_unlock(&engine->roster.lock);
        free(schools);
        free(users);
        return ssp_fail_nomem(err);
    }
    for (size_t i = 0; i < n; i++) {
        const ssp_roster_user *entries[2] = {
            ssp_strmap_get(&engine->roster.users, changes[i].user_id), changes[i].user};

        for (int e = 0; e < 2; e++) {
            for (size_t m = 0; entries[e] != NULL && m < entries[e]->n; m++) {
                schools[used] = entries[e]->memberships[m].school;
                users[used++] = changes[i].user_id;
            }
        }
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    /* A school in both lists is marked twice in the batch: harmless. */
    rc = used == 0 ? 0
                   : engine->store->ops->reconcile_mark(engine->store, schools, users, used, err);
    free(schools);
    free(users);
    return rc;
}

int ssp_store_roster_append(ssp_engine *engine, const ssp_roster_change *changes, size_t n,
                            ssp_error *err)
{
    ssp_store *store = engine->store;

    /* Marks before the roster: a crash between the two leaves only a
     * harmless extra mark. */
    if (!store->ops->marks_roster_changes &&
        mark_changed_memberships(engine, changes, n, err) != 0)
        return -1;
    return store->ops->roster_append(store, changes, n, err);
}

bool ssp_store_commits_roster_later(ssp_engine *engine)
{
    return engine->store != NULL && engine->store->ops->commits_roster_later;
}

int ssp_store_audit_chart(ssp_engine *engine, const ssp_audit_filter *filter, int64_t bucket_ms,
                          json_t **rows, ssp_error *err)
{
    return engine->store->ops->audit_chart(engine->store, filter, bucket_ms, rows, err);
}

int ssp_store_reads_append(ssp_engine *engine, json_t *record, ssp_error *err)
{
    return engine->store->ops->reads_append(engine->store, record, err);
}

int ssp_store_reads_query(ssp_engine *engine, json_t *schools, const ssp_reads_filter *filter,
                          json_t **page, ssp_error *err)
{
    *page = NULL;
    return engine->store->ops->reads_query(engine->store, schools, filter, page, err);
}

int ssp_store_reconcile_mark(ssp_engine *engine, const char *const *schools,
                          const char *const *user_ids, size_t n, ssp_error *err)
{
    return engine->store->ops->reconcile_mark(engine->store, schools, user_ids, n, err);
}

int ssp_store_reconcile_due(ssp_engine *engine, int64_t now_ms, size_t max, char **marks_json,
                         ssp_error *err)
{
    return engine->store->ops->reconcile_due(engine->store, now_ms, max, marks_json, err);
}

int ssp_store_reconcile_done(ssp_engine *engine, const char *school, const char *user_id,
                          int64_t generation, ssp_error *err)
{
    return engine->store->ops->reconcile_done(engine->store, school, user_id, generation, err);
}

int ssp_store_reconcile_failed(ssp_engine *engine, const char *school, const char *user_id,
                            int64_t generation, const char *error, int64_t retry_at_ms,
                            ssp_error *err)
{
    return engine->store->ops->reconcile_failed(engine->store, school, user_id, generation, error,
                                             retry_at_ms, err);
}

int ssp_store_reconcile_set_room(ssp_engine *engine, const char *school, const char *kind,
                              const char *room_id, ssp_error *err)
{
    return engine->store->ops->reconcile_set_room(engine->store, school, kind, room_id, err);
}

int ssp_store_reconcile_get_room(ssp_engine *engine, const char *school, const char *kind,
                              char **room_id, ssp_error *err)
{
    return engine->store->ops->reconcile_get_room(engine->store, school, kind, room_id, err);
}

int ssp_store_reconcile_sync_config(ssp_engine *engine, size_t *schools_changed, ssp_error *err)
{
    return engine->store->ops->reconcile_sync_config(engine->store, schools_changed, err);
}

int ssp_store_reconcile_status(ssp_engine *engine, char **status_json, ssp_error *err)
{
    return engine->store->ops->reconcile_status(engine->store, status_json, err);
}

int ssp_store_reconcile_status_offline(const ssp_config *config, char **status_json,
                                    ssp_error *err)
{
    return backend_for(config)->reconcile_status_offline(config, status_json, err);
}

/* ---- the public API call that is a store call ---- */

void ssp_store_get_status(ssp_engine *engine, ssp_store_status *out)
{
    memset(out, 0, sizeof *out);
    if (engine->store != NULL)
        engine->store->ops->status(engine->store, out);
    out->roster_skipped = __atomic_load_n(&engine->roster.skipped, __ATOMIC_RELAXED);
}
