/* Engine lifecycle: config, store, roster and audit writer together. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roster_feed.h"
#include "ssp_private.h"

void ssp_global_init(void)
{
    json_object_seed(0);
}

ssp_engine *ssp_engine_new(const char *config_json, size_t len, const char *server_name,
                           const char *worker_name, ssp_error *err)
{
    ssp_engine *engine = calloc(1, sizeof *engine);

    if (engine == NULL) {
        ssp_fail_nomem(err);
        return NULL;
    }
    if (ssp_config_parse(config_json, len, &engine->config, err) != 0) {
        free(engine);
        return NULL;
    }
    engine->server_name = ssp_strdup(server_name);
    engine->worker_name = ssp_strdup(worker_name);
    if (engine->server_name == NULL || engine->worker_name == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    /* The special rooms' owner acts for the module, so the rules exempt it
     * like a configured service user. */
    engine->reconciler_user =
        malloc(strlen(engine->config.reconciler_localpart) + strlen(server_name) + 3);
    if (engine->reconciler_user == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    sprintf(engine->reconciler_user, "@%s:%s", engine->config.reconciler_localpart, server_name);
    if (ssp_strmap_put(&engine->config.service_user_set, engine->reconciler_user,
                       engine->reconciler_user, NULL) != 0) {
        ssp_fail_nomem(err);
        goto fail;
    }
    if (ssp_roster_init(&engine->roster, err) != 0)
        goto fail;
    engine->roster.server_name = engine->server_name;
    engine->roster_ready = false;
    if (pthread_mutex_init(&engine->write_mutex, NULL) != 0) {
        ssp_roster_destroy(&engine->roster);
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster write mutex");
        goto fail;
    }
    if (pthread_mutex_init(&engine->reads_mutex, NULL) != 0) {
        pthread_mutex_destroy(&engine->write_mutex);
        ssp_roster_destroy(&engine->roster);
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the read log mutex");
        goto fail;
    }
    if (pthread_mutex_init(&engine->expiry_mutex, NULL) != 0) {
        pthread_mutex_destroy(&engine->reads_mutex);
        pthread_mutex_destroy(&engine->write_mutex);
        ssp_roster_destroy(&engine->roster);
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the expiry audit mutex");
        goto fail;
    }
    engine->journal.fd = -1;
    return engine;
fail:
    ssp_config_destroy(&engine->config);
    free(engine->reconciler_user);
    free(engine->server_name);
    free(engine->worker_name);
    free(engine);
    return NULL;
}

/* Empties the roster, so a failed open leaves nothing half-loaded behind. */
static void reset_roster(ssp_engine *engine)
{
    ssp_error ignored;

    ssp_roster_destroy(&engine->roster);
    (void)ssp_roster_init(&engine->roster, &ignored);
    engine->roster.server_name = engine->server_name;
}

/* ---- the offline open of the embedded store (see ssp_open_options) ---- */

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
 * What is still open (the ledger's file) lives on until it is closed. */
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

/* Loads the roster and the ledger through their own replay code, from a
 * private copy, so that nothing in data_dir is cut, compacted or appended
 * to; the roster journal is closed again (writes fail with SSP_ERR_STATE).
 * The audit queue has no writer: queries read data_dir/audit.jsonl. */
static int open_embedded_offline(ssp_engine *engine, ssp_error *err)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    int rc = -1;

    if (snprintf(dir, sizeof dir, "%s/ssp-offline-XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
        (int)sizeof dir)
        return ssp_fail(err, SSP_ERR_IO, "TMPDIR: path too long");
    if (mkdtemp(dir) == NULL)
        return ssp_fail(err, SSP_ERR_IO, "cannot create a directory in %s: %s",
                        tmp && *tmp ? tmp : "/tmp", strerror(errno));
    if (copy_whole_lines(engine->config.data_dir, dir, "roster.jsonl", err) != 0 ||
        copy_whole_lines(engine->config.data_dir, dir, "reconcile.jsonl", err) != 0)
        goto done;
    if (ssp_ledger_open(&engine->ledger, dir, err) != 0)
        goto done;
    engine->ledger_open = true;
    if (ssp_journal_open(&engine->journal, dir, &engine->roster, err) != 0) {
        reset_roster(engine);
        goto done;
    }
    ssp_journal_close(&engine->journal);
    if (ssp_audit_open_external(&engine->audit, engine->worker_name, -1, err) != 0) {
        reset_roster(engine);
        goto done;
    }
    engine->audit.path = ssp_path_join(engine->config.data_dir, "audit.jsonl");
    if (engine->audit.path == NULL) {
        ssp_audit_close(&engine->audit);
        reset_roster(engine);
        ssp_fail_nomem(err);
        goto done;
    }
    engine->audit_open = true;
    engine->roster_ready = true;
    rc = 0;
done:
    if (rc != 0 && engine->ledger_open) {
        ssp_ledger_close(&engine->ledger);
        engine->ledger_open = false;
    }
    remove_copy(dir);
    return rc;
}

/* PostgreSQL: the ordinary open, refused when it fell back to the local
 * roster cache: a command must not act on a roster the database may have
 * moved past, nor leave its writes in an outbox nobody pushes. */
static int open_postgres_offline(ssp_engine *engine, ssp_error *err)
{
    ssp_store_status status;

    if (ssp_engine_open_with(engine, NULL, err) != 0)
        return -1;
    ssp_store_get_status(engine, &status);
    if (status.connected)
        return 0;
    ssp_pgstore_close(engine);
    engine->roster_ready = false;
    reset_roster(engine);
    return ssp_fail(err, SSP_ERR_IO, "%s", status.last_error[0] ? status.last_error
                                                                : "database: not reachable");
}

int ssp_engine_open(ssp_engine *engine, ssp_error *err)
{
    return ssp_engine_open_with(engine, NULL, err);
}

int ssp_engine_open_with(ssp_engine *engine, const ssp_open_options *options, ssp_error *err)
{
    const char *data_dir = engine->config.data_dir;

    if (engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is already open");
    if (options != NULL && options->offline)
        return engine->config.database != NULL ? open_postgres_offline(engine, err)
                                               : open_embedded_offline(engine, err);
    if (engine->config.database != NULL) {
        if (ssp_pgstore_open(engine, err) != 0) {
            reset_roster(engine);
            return -1;
        }
        engine->roster_ready = true;
        return 0;
    }
    /* The ledger first: roster changes mark it before they are journaled. */
    if (ssp_ledger_open(&engine->ledger, data_dir, err) != 0)
        return -1;
    engine->ledger_open = true;
    if (ssp_journal_open(&engine->journal, data_dir, &engine->roster, err) != 0) {
        reset_roster(engine);
        goto fail_ledger;
    }
    engine->journal_open = true;
    if (ssp_audit_open(&engine->audit, data_dir, engine->worker_name, err) != 0) {
        ssp_journal_close(&engine->journal);
        engine->journal_open = false;
        reset_roster(engine);
        goto fail_ledger;
    }
    engine->audit_open = true;
    engine->roster_ready = true;
    return 0;
fail_ledger:
    ssp_ledger_close(&engine->ledger);
    engine->ledger_open = false;
    return -1;
}

void ssp_engine_free(ssp_engine *engine)
{
    if (engine == NULL)
        return;
    /* The feed writes through the store: stop it before the store closes. */
    ssp_feed_stop(engine->feed);
    engine->feed = NULL;
    if (engine->pg != NULL)
        ssp_pgstore_close(engine); /* also closes the audit queue */
    if (engine->audit_open)
        ssp_audit_close(&engine->audit);
    if (engine->journal_open)
        ssp_journal_close(&engine->journal);
    if (engine->ledger_open)
        ssp_ledger_close(&engine->ledger);
    ssp_roster_destroy(&engine->roster);
    pthread_mutex_destroy(&engine->write_mutex);
    pthread_mutex_destroy(&engine->expiry_mutex);
    pthread_mutex_destroy(&engine->reads_mutex);
    ssp_config_destroy(&engine->config);
    free(engine->reconciler_user);
    free(engine->server_name);
    free(engine->worker_name);
    free(engine);
}

bool ssp_engine_strict_homeserver_config(const ssp_engine *engine)
{
    return engine->config.strict_homeserver_config;
}

const char *ssp_engine_policy_event_type(const ssp_engine *engine)
{
    return engine->config.policy_event_type;
}

bool ssp_engine_is_local(const ssp_engine *engine, const char *user_id)
{
    const char *colon = user_id ? strchr(user_id, ':') : NULL;

    return colon != NULL && strcmp(colon + 1, engine->server_name) == 0;
}

void ssp_store_get_status(ssp_engine *engine, ssp_store_status *out)
{
    memset(out, 0, sizeof *out);
    out->roster_skipped = __atomic_load_n(&engine->roster.skipped, __ATOMIC_RELAXED);
    if (engine->pg != NULL) {
        ssp_pgstore_get_status(engine->pg, out);
        return;
    }
    out->connected = engine->roster_ready;
    if (engine->ledger_open)
        out->reconcile_pending = ssp_ledger_pending(&engine->ledger);
}

int ssp_audit_purge(ssp_engine *engine, int64_t before_ms, uint64_t *deleted, ssp_error *err)
{
    *deleted = 0;
    if (engine->pg == NULL)
        return ssp_fail(err, SSP_ERR_STATE,
                        "audit purge needs the PostgreSQL store; the embedded store's "
                        "audit.jsonl is kept as it is");
    return ssp_pgstore_audit_purge(engine, before_ms, deleted, err);
}
