/*
 * The embedded store (no `database:` in the config): one process owns
 * data_dir. The roster journal (journal.c), the reconcile state
 * (reconcile_file.c), the audit log (audit_file.c) and the read log
 * (reads_file.c) behind the store interface (store_ops.h).
 *
 * Ownership: the store owns its files and their memory; the roster and the
 * audit queue are the engine's (borrowed through env and start).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedded/embedded_store.h"
#include "embedded/groups_file.h"
#include "files.h"
#include "reconcile_common.h"
#include "util.h"

static ssp_embedded_store *embedded(ssp_store *store)
{
    return (ssp_embedded_store *)store;
}

static void embedded_close(ssp_store *store)
{
    ssp_embedded_store *emb = embedded(store);

    if (emb == NULL)
        return;
    if (emb->audit_open)
        ssp_audit_file_close(&emb->audit); /* writes what is queued first */
    if (emb->reads_open)
        ssp_reads_file_close(&emb->reads);
    if (emb->journal_open)
        ssp_journal_close(&emb->journal);
    if (emb->groups_open)
        ssp_journal_close(&emb->groups);
    if (emb->reconcile_open)
        ssp_reconcile_file_close(&emb->reconcile);
    free(emb);
}

/* ---- the command line's open (env->offline) ---- */

/* Copies the whole lines of data_dir/name into dir/name: what Synapse may be
 * appending right now (a line without its newline yet) stays behind. A
 * missing file copies as nothing. */
static int copy_whole_lines(const char *data_dir, const char *dir, const char *name,
                            ssp_error *err)
{
    char *from = ssp_path_join(data_dir, name), *to = ssp_path_join(dir, name), *data = NULL;
    char *last_nl;
    size_t len = 0;
    int fd = -1, rc = -1;

    if (from == NULL || to == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    if (ssp_read_file(from, &data, &len, err) != 0)
        goto done;
    last_nl = len > 0 ? memrchr(data, '\n', len) : NULL;
    len = last_nl != NULL ? (size_t)(last_nl - data) + 1 : 0;
    fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ssp_write_all(fd, data, len) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot write %s: %s", to, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(data);
    free(from);
    free(to);
    return rc;
}

/* Removes the private copy: the files in dir (no subdirectories), then dir.
 * What is still open (the reconcile state's file) lives on until it is closed. */
static void remove_copy(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *entry;

    if (d != NULL) {
        while ((entry = readdir(d)) != NULL) {
            if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
                (void)unlinkat(dirfd(d), entry->d_name, 0);
        }
        closedir(d);
    }
    (void)rmdir(dir);
}

/* data_dir belongs to the running Synapse: the roster and the reconcile state are
 * replayed by their own code from a private copy, so nothing in data_dir is
 * cut, compacted or appended to; the roster journal is closed again. */
static int embedded_open_offline(ssp_embedded_store *emb, const ssp_store_env *env,
                                 ssp_store_opened *opened, ssp_error *err)
{
    const char *data_dir = env->config->data_dir;
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    int rc = -1;

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    if (snprintf(dir, sizeof dir, "%s/ssp-offline-XXXXXX", tmp) >= (int)sizeof dir)
        return ssp_fail(err, SSP_ERR_IO, "TMPDIR: path too long");
    if (mkdtemp(dir) == NULL)
        return ssp_fail(err, SSP_ERR_IO, "cannot create a directory in %s: %s", tmp,
                        strerror(errno));
    if (copy_whole_lines(data_dir, dir, "roster.jsonl", err) != 0 ||
        copy_whole_lines(data_dir, dir, SSP_GROUPS_FILE_NAME, err) != 0 ||
        copy_whole_lines(data_dir, dir, "reconcile.jsonl", err) != 0)
        goto done;
    if (ssp_reconcile_file_open(&emb->reconcile, dir, err) != 0)
        goto done;
    emb->reconcile_open = true;
    if (ssp_journal_open(&emb->journal, dir, env->roster, err) != 0)
        goto done;
    ssp_journal_close(&emb->journal);
    /* read only: no file descriptor is kept */
    if (ssp_groups_file_open(&emb->groups, dir, env->roster, false, err) != 0)
        goto done;
    ssp_journal_close(&emb->groups);
    if (ssp_audit_file_open_readonly(&emb->audit, data_dir, err) != 0)
        goto done;
    emb->audit_open = true;
    /* Reads from the command line are logged as any other; the file is
     * Synapse's, so the command line never prunes it. */
    if (ssp_reads_file_open(&emb->reads, data_dir, 0, err) != 0)
        goto done;
    emb->reads_open = true;
    snprintf(opened->audit_sink, sizeof opened->audit_sink, "%s", emb->audit.path);
    opened->audit_wake_fd = -1;
    rc = 0;
done:
    remove_copy(dir);
    return rc;
}

static int refuse_offline(const ssp_embedded_store *emb, ssp_error *err)
{
    if (!emb->offline)
        return 0;
    return ssp_fail(err, SSP_ERR_STATE,
                    "the command line does not write to the embedded store: data_dir "
                    "belongs to the running Synapse; POST the users to its admin API "
                    "(/_synapse/client/school_policy/v1/roster) instead, or use the "
                    "PostgreSQL store (database:)");
}

typedef struct groups_reader {
    ssp_groups_load load;
    const char *dir;
} groups_reader;

static void *read_groups_main(void *arg)
{
    groups_reader *reader = arg;

    ssp_groups_file_read(&reader->load, reader->dir);
    return NULL;
}

/* Loads the roster journal and the groups file, the groups read and parsed
 * on a thread of their own meanwhile (both are large at scale; neither
 * needs the other until the groups go into the roster). Without a thread,
 * one after the other. */
static int open_roster_and_groups(ssp_embedded_store *emb, const char *data_dir, ssp_error *err)
{
    groups_reader reader = {.dir = data_dir};
    pthread_t thread;
    bool threaded = pthread_create(&thread, NULL, read_groups_main, &reader) == 0;
    int rc;

    rc = ssp_journal_open(&emb->journal, data_dir, emb->env->roster, err);
    emb->journal_open = rc == 0;
    if (threaded)
        pthread_join(thread, NULL);
    else
        ssp_groups_file_read(&reader.load, data_dir);
    if (rc != 0) {
        ssp_groups_load_free(&reader.load);
        return -1;
    }
    if (ssp_groups_file_finish(&emb->groups, &reader.load, data_dir, emb->env->roster, true,
                               err) != 0)
        return -1;
    emb->groups_open = true;
    return 0;
}

static int embedded_open(const ssp_store_env *env, ssp_store **out, ssp_store_opened *opened,
                         ssp_error *err)
{
    const char *data_dir = env->config->data_dir;
    ssp_embedded_store *emb;

    *out = NULL;
    if (env->worker)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "database: required when Synapse runs with workers (this process is the "
                        "worker '%s'); the embedded store in data_dir belongs to one process. Set "
                        "database to a PostgreSQL conninfo or URI on every process. See "
                        "docs/workers.md.",
                        env->worker_name);
    emb = calloc(1, sizeof *emb);
    if (emb == NULL)
        return ssp_fail_nomem(err);
    emb->base.ops = &ssp_embedded_store_ops;
    emb->env = env;
    emb->journal.fd = -1;
    emb->groups.fd = -1;
    emb->offline = env->offline;
    if (emb->offline) {
        if (embedded_open_offline(emb, env, opened, err) != 0)
            goto fail;
        *out = &emb->base;
        return 0;
    }
    /* The reconcile state first: roster changes mark it before they are journaled. */
    if (ssp_reconcile_file_open(&emb->reconcile, data_dir, err) != 0)
        goto fail;
    emb->reconcile_open = true;
    if (open_roster_and_groups(emb, data_dir, err) != 0)
        goto fail;
    if (ssp_audit_file_open(&emb->audit, data_dir, &opened->last_audit_id, err) != 0)
        goto fail;
    emb->audit_open = true;
    if (ssp_reads_file_open(&emb->reads, data_dir, env->config->audit_retention_days, err) != 0)
        goto fail;
    emb->reads_open = true;
    snprintf(opened->audit_sink, sizeof opened->audit_sink, "%s", emb->audit.path);
    opened->audit_wake_fd = -1;
    *out = &emb->base;
    return 0;
fail:
    embedded_close(&emb->base);
    return -1;
}

static int embedded_start(ssp_store *store, ssp_audit_queue *queue, ssp_error *err)
{
    /* Offline: no decisions, so no records; nothing may write audit.jsonl. */
    if (embedded(store)->offline)
        return 0;
    return ssp_audit_file_start(&embedded(store)->audit, queue, err);
}

static void embedded_status(ssp_store *store, ssp_store_status *out)
{
    out->connected = true;
    out->reconcile_pending = ssp_reconcile_file_pending(&embedded(store)->reconcile);
}

static int embedded_roster_append(ssp_store *store, const ssp_roster_change *changes, size_t n,
                                  ssp_error *err)
{
    if (refuse_offline(embedded(store), err) != 0)
        return -1;
    return ssp_journal_append(&embedded(store)->journal, changes, n, err);
}

static int embedded_groups_append(ssp_store *store, const ssp_group *const *groups, size_t n,
                                  ssp_error *err)
{
    if (refuse_offline(embedded(store), err) != 0)
        return -1;
    return ssp_groups_file_append(&embedded(store)->groups, groups, n, err);
}

static int embedded_audit_query(ssp_store *store, const ssp_audit_filter *filter,
                                char **result_json, ssp_error *err)
{
    return ssp_audit_file_query(&embedded(store)->audit, filter, result_json, err);
}

static int embedded_audit_chart(ssp_store *store, const ssp_audit_filter *filter,
                                int64_t bucket_ms, json_t **rows, ssp_error *err)
{
    return ssp_audit_file_chart(&embedded(store)->audit, filter, bucket_ms, rows, err);
}

static int embedded_audit_purge(ssp_store *store, int64_t before_ms, uint64_t *deleted,
                                ssp_error *err)
{
    (void)store;
    (void)before_ms;
    *deleted = 0;
    return ssp_fail(err, SSP_ERR_STATE,
                    "audit purge needs the PostgreSQL store; the embedded store's "
                    "audit.jsonl is kept as it is");
}

static int embedded_reads_append(ssp_store *store, json_t *record, ssp_error *err)
{
    return ssp_reads_file_append(&embedded(store)->reads, record, err);
}

static int embedded_reads_query(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                                json_t **page, ssp_error *err)
{
    return ssp_reads_file_query(&embedded(store)->reads, schools, filter, page, err);
}

static int embedded_reconcile_mark(ssp_store *store, const char *const *schools,
                                const char *const *user_ids, size_t n, ssp_error *err)
{
    if (refuse_offline(embedded(store), err) != 0)
        return -1;
    return ssp_reconcile_file_mark_pairs(&embedded(store)->reconcile, schools, user_ids, n, err);
}

static int embedded_reconcile_due(ssp_store *store, int64_t now_ms, size_t max, char **marks_json,
                               ssp_error *err)
{
    return ssp_reconcile_file_due(&embedded(store)->reconcile, now_ms, max, marks_json, err);
}

static int embedded_reconcile_done(ssp_store *store, const char *school, const char *user_id,
                                int64_t generation, ssp_error *err)
{
    if (refuse_offline(embedded(store), err) != 0)
        return -1;
    return ssp_reconcile_file_done(&embedded(store)->reconcile, school, user_id, generation, err);
}

static int embedded_reconcile_failed(ssp_store *store, const char *school, const char *user_id,
                                  int64_t generation, const char *error, int64_t retry_at_ms,
                                  ssp_error *err)
{
    if (refuse_offline(embedded(store), err) != 0)
        return -1;
    return ssp_reconcile_file_failed(&embedded(store)->reconcile, school, user_id, generation, error,
                             retry_at_ms, err);
}

static int embedded_reconcile_set_room(ssp_store *store, const char *school, const char *kind,
                                    const char *room_id, ssp_error *err)
{
    if (refuse_offline(embedded(store), err) != 0)
        return -1;
    return ssp_reconcile_file_set_room(&embedded(store)->reconcile, school, kind, room_id, err);
}

static int embedded_reconcile_get_room(ssp_store *store, const char *school, const char *kind,
                                    char **room_id, ssp_error *err)
{
    return ssp_reconcile_file_get_room(&embedded(store)->reconcile, school, kind, room_id, err);
}

typedef struct school_users {
    const char *school;
    const char **schools;
    const char **users;
    size_t n;
} school_users;

static int collect_school_user(const char *key, void *value, void *ctx_ptr)
{
    school_users *ctx = ctx_ptr;
    const ssp_roster_user *user = value;

    (void)key;
    for (size_t i = 0; i < user->n; i++) {
        if (strcmp(user->memberships[i].school, ctx->school) == 0) {
            ctx->schools[ctx->n] = ctx->school;
            ctx->users[ctx->n++] = user->user_id;
            break;
        }
    }
    return 0;
}

/* Marks a school whose applied config changed, and every roster user of
 * it, then stores the new applied string. Under write_mutex the roster
 * cannot change, so its strings are borrowed. */
static int sync_school(ssp_embedded_store *emb, const ssp_school *school, const char *applied,
                       ssp_error *err)
{
    const ssp_store_env *env = emb->env;
    school_users ctx = {school->id, NULL, NULL, 0};
    size_t cap;
    int rc = -1;

    pthread_mutex_lock(env->write_mutex);
    cap = env->roster->users.count + 1;
    ctx.schools = malloc(cap * sizeof *ctx.schools);
    ctx.users = malloc(cap * sizeof *ctx.users);
    if (ctx.schools == NULL || ctx.users == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    ctx.schools[0] = school->id;
    ctx.users[ctx.n++] = "";
    pthread_rwlock_rdlock(&env->roster->lock);
    ssp_strmap_each(&env->roster->users, collect_school_user, &ctx);
    pthread_rwlock_unlock(&env->roster->lock);
    /* marks first: a crash before the applied line leaves extra marks only */
    if (ssp_reconcile_file_mark_pairs(&emb->reconcile, ctx.schools, ctx.users, ctx.n, err) != 0)
        goto done;
    rc = ssp_reconcile_file_put_applied(&emb->reconcile, school->id, applied, err);
done:
    pthread_mutex_unlock(env->write_mutex);
    free(ctx.schools);
    free(ctx.users);
    return rc;
}

static int embedded_reconcile_sync_config(ssp_store *store, size_t *schools_changed, ssp_error *err)
{
    ssp_embedded_store *emb = embedded(store);
    const ssp_config *config = emb->env->config;

    if (refuse_offline(emb, err) != 0)
        return -1;
    for (size_t i = 0; i < config->n_schools; i++) {
        char applied[96];

        ssp_reconcile_applied_text(&config->schools[i], applied, sizeof applied);
        if (ssp_reconcile_file_applied_is(&emb->reconcile, config->schools[i].id, applied))
            continue;
        if (sync_school(emb, &config->schools[i], applied, err) != 0)
            return -1;
        (*schools_changed)++;
    }
    return 0;
}

static int embedded_reconcile_status(ssp_store *store, char **status_json, ssp_error *err)
{
    ssp_embedded_store *emb = embedded(store);

    return ssp_reconcile_file_status(&emb->reconcile, emb->env->config, status_json, err);
}

const ssp_store_ops ssp_embedded_store_ops = {
    .name = "embedded",
    .marks_roster_changes = false,
    .commits_roster_later = false,
    .open = embedded_open,
    .start = embedded_start,
    .close = embedded_close,
    .status = embedded_status,
    .roster_append = embedded_roster_append,
    .groups_append = embedded_groups_append,
    .audit_query = embedded_audit_query,
    .audit_chart = embedded_audit_chart,
    .audit_purge = embedded_audit_purge,
    .reads_append = embedded_reads_append,
    .reads_query = embedded_reads_query,
    .reconcile_mark = embedded_reconcile_mark,
    .reconcile_due = embedded_reconcile_due,
    .reconcile_done = embedded_reconcile_done,
    .reconcile_failed = embedded_reconcile_failed,
    .reconcile_set_room = embedded_reconcile_set_room,
    .reconcile_get_room = embedded_reconcile_get_room,
    .reconcile_sync_config = embedded_reconcile_sync_config,
    .reconcile_status = embedded_reconcile_status,
    .reconcile_status_offline = ssp_reconcile_file_status_offline,
};
