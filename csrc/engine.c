/*
 * The engine's lifecycle: config, store, roster and audit writer together;
 * the open of the command line (ssp_open_options.offline) and its sync, the
 * wait that makes a command's writes reach the store itself before the
 * command says they are done; the store's status and the engine's settings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "engine.h"
#include "engine_state.h"
#include "roster_feed.h"
#include "store.h"
#include "util.h"

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
    engine->roster.schools = &engine->config.school_by_id;
    engine->roster_ready = false;
    if (pthread_mutex_init(&engine->write_mutex, NULL) != 0) {
        ssp_roster_destroy(&engine->roster);
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster write mutex");
        goto fail;
    }
    if (ssp_audit_throttle_init(&engine->expiry_throttle, err) != 0) {
        pthread_mutex_destroy(&engine->write_mutex);
        ssp_roster_destroy(&engine->roster);
        goto fail;
    }
    if (pthread_mutex_init(&engine->acted.mutex, NULL) != 0) {
        ssp_audit_throttle_destroy(&engine->expiry_throttle);
        pthread_mutex_destroy(&engine->write_mutex);
        ssp_roster_destroy(&engine->roster);
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the after-the-fact mutex");
        goto fail;
    }
    {
        ssp_flood_settings flood = {engine->config.flood_denials_per_minute,
                                    engine->config.flood_burst,
                                    engine->config.flood_summary_seconds * 1000};

        if (ssp_flood_init(&engine->flood, &flood, err) != 0) {
            pthread_mutex_destroy(&engine->acted.mutex);
            ssp_audit_throttle_destroy(&engine->expiry_throttle);
            pthread_mutex_destroy(&engine->write_mutex);
            ssp_roster_destroy(&engine->roster);
            goto fail;
        }
    }
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
    engine->roster.schools = &engine->config.school_by_id;
}

int ssp_engine_open(ssp_engine *engine, ssp_error *err)
{
    return ssp_engine_open_with(engine, NULL, err);
}

int ssp_engine_open_with(ssp_engine *engine, const ssp_open_options *options, ssp_error *err)
{
    if (engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is already open");
    engine->store_env.config = &engine->config;
    engine->store_env.server_name = engine->server_name;
    engine->store_env.worker_name = engine->worker_name;
    engine->store_env.roster = &engine->roster;
    engine->store_env.write_mutex = &engine->write_mutex;
    engine->store_env.offline = options != NULL && options->offline;
    engine->store_env.worker = options != NULL && options->worker;
    if (ssp_store_open(&engine->store_env, &engine->audit, &engine->store, err) != 0) {
        reset_roster(engine);
        return -1;
    }
    engine->audit_open = true;
    engine->roster_ready = true;
    return 0;
}

void ssp_engine_free(ssp_engine *engine)
{
    if (engine == NULL)
        return;
    /* The feed writes through the store: stop it before the store closes. */
    ssp_feed_stop(engine->feed);
    engine->feed = NULL;
    if (engine->store != NULL) {
        /* The open summaries of floods go out with the queue's last batch. */
        if (engine->audit_open)
            ssp_flood_close_summaries(&engine->flood, &engine->audit, ssp_now_ms(), true);
        ssp_store_close(engine->store, &engine->audit); /* and the audit queue */
        engine->store = NULL;
        engine->audit_open = false;
    }
    ssp_roster_destroy(&engine->roster);
    pthread_mutex_destroy(&engine->write_mutex);
    ssp_audit_throttle_destroy(&engine->expiry_throttle);
    pthread_mutex_destroy(&engine->acted.mutex);
    ssp_flood_destroy(&engine->flood);
    ssp_config_destroy(&engine->config);
    free(engine->reconciler_user);
    free(engine->server_name);
    free(engine->worker_name);
    free(engine);
}

const char *ssp_engine_reconciler_user(const ssp_engine *engine)
{
    return engine->reconciler_user;
}

void ssp_engine_reconciler_settings(const ssp_engine *engine, ssp_reconciler_settings *out)
{
    out->actions_per_second = engine->config.reconciler_actions_per_second;
    out->batch_size = engine->config.reconciler_batch_size;
    out->retry_max_seconds = engine->config.reconciler_retry_max_seconds;
}

bool ssp_engine_strict_homeserver_config(const ssp_engine *engine)
{
    return engine->config.strict_homeserver_config;
}

const char *ssp_engine_policy_event_type(const ssp_engine *engine)
{
    return engine->config.policy_event_type;
}

void ssp_store_get_status(ssp_engine *engine, ssp_store_status *out)
{
    memset(out, 0, sizeof *out);
    if (engine->store != NULL)
        ssp_store_read_status(engine->store, out);
    out->roster_skipped = __atomic_load_n(&engine->roster.skipped, __ATOMIC_RELAXED);
}

/* ---- the command line's sync ---- */

#define SYNC_POLL_MS 5

static int sync_fail(ssp_error *err, const char *message, const char *detail)
{
    err->code = SSP_ERR_IO;
    /* The store's last error is cut to fit after the explanation. */
    snprintf(err->message, sizeof err->message, "%.200s%s%.300s", message,
             detail[0] ? ": " : "", detail);
    return -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Only public calls: the wait watches the same counters the metrics show. */
int ssp_store_sync(ssp_engine *engine, int64_t timeout_ms, ssp_error *err)
{
    ssp_store_status status;
    ssp_audit_stats stats;
    int64_t waited = 0;

    /* Queued audit records first: on PostgreSQL this returns once they are
     * in the database or in the spill file; the loop below tells the two
     * apart. */
    if (ssp_audit_flush(engine, err) != 0)
        return -1;
    for (;;) {
        ssp_store_get_status(engine, &status);
        ssp_audit_get_stats(engine, &stats);
        if (!status.postgres)
            return 0; /* the embedded store wrote through before returning */
        if (status.connected && status.roster_outbox_pending == 0 &&
            status.audit_spill_pending == 0 && stats.queue_depth == 0)
            return 0;
        if (waited >= timeout_ms)
            return sync_fail(err,
                             status.roster_outbox_pending > 0
                                 ? "database: roster changes not pushed in time (they stay in "
                                   "the outbox in data_dir and are pushed when this store "
                                   "opens next)"
                                 : "database: audit records not written in time (they stay in "
                                   "the spill file in data_dir)",
                             status.last_error);
        sleep_ms(SYNC_POLL_MS);
        waited += SYNC_POLL_MS;
    }
}
