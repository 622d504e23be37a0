/*
 * The store router: the one place that knows both backends. The engine's
 * files call these functions; each checks nothing of the caller's input
 * (the callers did) and passes the call to the backend chosen at open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded/embedded_store.h"
#include "error.h"
#include "pg/pg_store.h"
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

int ssp_store_open(const ssp_store_env *env, ssp_audit_queue *queue, ssp_store **out,
                   ssp_error *err)
{
    const ssp_store_ops *ops = backend_for(env->config);
    ssp_store_opened opened = {0, "", -1};
    ssp_store *store = NULL;

    *out = NULL;
    if (ops->open(env, &store, &opened, err) != 0)
        return -1;
    if (ssp_audit_open(queue, env->worker_name, opened.audit_sink, opened.last_audit_id,
                       opened.audit_wake_fd, err) != 0) {
        ops->close(store);
        return -1;
    }
    if (ops->start(store, queue, err) != 0 || (env->offline && require_connected(store, err) != 0)) {
        ops->close(store);
        ssp_audit_close(queue);
        return -1;
    }
    *out = store;
    return 0;
}

void ssp_store_close(ssp_store *store, ssp_audit_queue *queue)
{
    /* The writer writes (or spills) what is queued before it stops. */
    store->ops->close(store);
    ssp_audit_close(queue);
}

void ssp_store_read_status(ssp_store *store, ssp_store_status *out)
{
    store->ops->status(store, out);
}

/* Marks (school, user) for every school the user is in now or will be in
 * after the change, in one call of the backend. Caller holds the write
 * mutex, so the roster's strings stay put. */
static int mark_changed_memberships(ssp_store *store, ssp_roster *roster,
                                    const ssp_roster_change *changes, size_t n, ssp_error *err)
{
    const char **schools = NULL, **users = NULL;
    size_t total = 0, used = 0;
    int rc;

    pthread_rwlock_rdlock(&roster->lock);
    for (size_t i = 0; i < n; i++) {
        const ssp_roster_user *current = ssp_strmap_get(&roster->users, changes[i].user_id);

        total += (current ? current->n : 0) + (changes[i].user ? changes[i].user->n : 0);
    }
    if (total > 0) {
        schools = malloc(total * sizeof *schools);
        users = malloc(total * sizeof *users);
    }
    if (total > 0 && (schools == NULL || users == NULL)) {
        pthread_rwlock_unlock(&roster->lock);
        free(schools);
        free(users);
        return ssp_fail_nomem(err);
    }
    for (size_t i = 0; i < n; i++) {
        const ssp_roster_user *entries[2] = {ssp_strmap_get(&roster->users, changes[i].user_id),
                                             changes[i].user};

        for (int e = 0; e < 2; e++) {
            for (size_t m = 0; entries[e] != NULL && m < entries[e]->n; m++) {
                schools[used] = entries[e]->memberships[m].school;
                users[used++] = changes[i].user_id;
            }
        }
    }
    pthread_rwlock_unlock(&roster->lock);
    /* A school in both lists is marked twice in the batch: harmless. */
    rc = used == 0 ? 0 : store->ops->reconcile_mark(store, schools, users, used, err);
    free(schools);
    free(users);
    return rc;
}

int ssp_store_roster_append(ssp_store *store, ssp_roster *roster,
                            const ssp_roster_change *changes, size_t n, ssp_error *err)
{
    /* Marks before the roster: a crash between the two leaves only a
     * harmless extra mark. */
    if (!store->ops->marks_roster_changes &&
        mark_changed_memberships(store, roster, changes, n, err) != 0)
        return -1;
    return store->ops->roster_append(store, changes, n, err);
}

void ssp_group_subject(const char *group_id, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", SSP_RECONCILE_GROUP_PREFIX, group_id);
}

int ssp_store_groups_append(ssp_store *store, ssp_roster *roster, const ssp_group *const *groups,
                            size_t n, ssp_error *err)
{
    const char **schools;
    char **subjects, *text;
    size_t used = 0;
    int rc = -1;

    if (n == 0)
        return 0;
    if (store->ops->groups_append == NULL)
        return ssp_fail(err, SSP_ERR_STATE,
                        "groups need migration 6 of the %s store, which this build lacks",
                        store->ops->name);
    schools = calloc(2 * n, sizeof *schools);
    subjects = calloc(2 * n, sizeof *subjects);
    text = malloc(n * SSP_GROUP_SUBJECT_MAX);
    if (schools == NULL || subjects == NULL || text == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    /* Caller holds the write mutex, so the stored groups' strings stay put
     * after the read lock is released. */
    pthread_rwlock_rdlock(&roster->lock);
    for (size_t i = 0; i < n; i++) {
        const ssp_group *stored =
            ssp_roster_group(roster, groups[i]->group_id, strlen(groups[i]->group_id));
        char *subject = text + i * SSP_GROUP_SUBJECT_MAX;

        ssp_group_subject(groups[i]->group_id, subject, SSP_GROUP_SUBJECT_MAX);
        schools[used] = groups[i]->school;
        subjects[used++] = subject;
        if (stored != NULL && strcmp(stored->school, groups[i]->school) != 0) {
            schools[used] = stored->school;
            subjects[used++] = subject;
        }
    }
    pthread_rwlock_unlock(&roster->lock);
    /* Marks before the groups: a crash between the two leaves only a
     * harmless extra mark. */
    rc = store->ops->reconcile_mark(store, schools, (const char *const *)subjects, used, err);
    if (rc == 0)
        rc = store->ops->groups_append(store, groups, n, err);
done:
    free(schools);
    free(subjects);
    free(text);
    return rc;
}

bool ssp_store_commits_roster_later(const ssp_store *store)
{
    return store != NULL && store->ops->commits_roster_later;
}

int ssp_store_audit_query(ssp_store *store, const ssp_audit_filter *filter, char **result_json,
                          ssp_error *err)
{
    return store->ops->audit_query(store, filter, result_json, err);
}

int ssp_store_audit_chart(ssp_store *store, const ssp_audit_filter *filter, int64_t bucket_ms,
                          json_t **rows, ssp_error *err)
{
    return store->ops->audit_chart(store, filter, bucket_ms, rows, err);
}

int ssp_store_audit_purge(ssp_store *store, int64_t before_ms, uint64_t *deleted, ssp_error *err)
{
    return store->ops->audit_purge(store, before_ms, deleted, err);
}

int ssp_store_audit_purge_closed(const ssp_config *config, int64_t before_ms, uint64_t *deleted,
                                 ssp_error *err)
{
    *deleted = 0;
    /* The embedded store refuses every purge, open or not, and says why. */
    if (config->database == NULL)
        return ssp_embedded_store_ops.audit_purge(NULL, before_ms, deleted, err);
    return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
}

int ssp_store_reads_append(ssp_store *store, json_t *record, ssp_error *err)
{
    return store->ops->reads_append(store, record, err);
}

int ssp_store_reads_query(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                          json_t **page, ssp_error *err)
{
    *page = NULL;
    return store->ops->reads_query(store, schools, filter, page, err);
}

int ssp_store_reconcile_mark(ssp_store *store, const char *const *schools,
                             const char *const *user_ids, size_t n, ssp_error *err)
{
    return store->ops->reconcile_mark(store, schools, user_ids, n, err);
}

int ssp_store_reconcile_due(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                            ssp_error *err)
{
    return store->ops->reconcile_due(store, now_ms, max, marks_json, err);
}

int ssp_store_reconcile_done(ssp_store *store, const char *school, const char *user_id,
                             int64_t generation, ssp_error *err)
{
    return store->ops->reconcile_done(store, school, user_id, generation, err);
}

int ssp_store_reconcile_failed(ssp_store *store, const char *school, const char *user_id,
                               int64_t generation, const char *error, int64_t retry_at_ms,
                               ssp_error *err)
{
    return store->ops->reconcile_failed(store, school, user_id, generation, error, retry_at_ms,
                                        err);
}

int ssp_store_reconcile_set_room(ssp_store *store, const char *school, const char *kind,
                                 const char *room_id, ssp_error *err)
{
    return store->ops->reconcile_set_room(store, school, kind, room_id, err);
}

int ssp_store_reconcile_get_room(ssp_store *store, const char *school, const char *kind,
                                 char **room_id, ssp_error *err)
{
    return store->ops->reconcile_get_room(store, school, kind, room_id, err);
}

int ssp_store_reconcile_sync_config(ssp_store *store, size_t *schools_changed, ssp_error *err)
{
    return store->ops->reconcile_sync_config(store, schools_changed, err);
}

int ssp_store_reconcile_status(ssp_store *store, char **status_json, ssp_error *err)
{
    return store->ops->reconcile_status(store, status_json, err);
}

int ssp_store_reconcile_status_offline(const ssp_config *config, char **status_json,
                                       ssp_error *err)
{
    return backend_for(config)->reconcile_status_offline(config, status_json, err);
}
