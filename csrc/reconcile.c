/*
 * The reconcile state's logic, stage 1 ("mark"): which (school, user)
 * pairs need their special-room memberships applied, which special rooms
 * exist, and which school config the reconciler last acted on.
 *
 * The public ssp_reconcile_* functions check their input here and call the
 * store (store.h), which keeps the reconcile state: reconcile.jsonl in the embedded
 * store (reconcile_file.c), tables in PostgreSQL (pg_reconcile.c).
 */
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"
#include "error.h"
#include "reconcile.h"
#include "reconcile_common.h"
#include "store.h"

/* ---- the public API ---- */

static int require_open(ssp_engine *engine, ssp_error *err)
{
    if (!engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    return 0;
}

int ssp_reconcile_mark(ssp_engine *engine, const char *school, const char *const *user_ids,
                       size_t n, ssp_error *err)
{
    const char **schools;
    int rc;

    if (require_open(engine, err) != 0)
        return -1;
    if (n > 0 && user_ids == NULL)
        return ssp_fail(err, SSP_ERR_INPUT, "user_ids: expected a list");
    if (ssp_reconcile_check_key(school, "", err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (ssp_reconcile_check_key(school, user_ids[i], err) != 0)
            return -1;
    }
    if (n == 0)
        return 0;
    schools = malloc(n * sizeof *schools);
    if (schools == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < n; i++)
        schools[i] = school;
    rc = ssp_store_reconcile_mark(engine->store, schools, user_ids, n, err);
    free(schools);
    return rc;
}

int ssp_reconcile_due(ssp_engine *engine, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err)
{
    int rc;

    *marks_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    /* A writer marks and applies its change under write_mutex: read the
     * marks under it too, so that no mark is taken before this process's
     * index holds its change (a plan made from the snapshot before would
     * clear the mark and lose the change). A change another process wrote
     * reaches this index later (PostgreSQL's sync); the adapter waits a
     * moment before it takes a mark for that. */
    pthread_mutex_lock(&engine->write_mutex);
    rc = ssp_store_reconcile_due(engine->store, now_ms, max, marks_json, err);
    pthread_mutex_unlock(&engine->write_mutex);
    return rc;
}

int ssp_reconcile_done(ssp_engine *engine, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err)
{
    if (require_open(engine, err) != 0 || ssp_reconcile_check_key(school, user_id, err) != 0)
        return -1;
    return ssp_store_reconcile_done(engine->store, school, user_id, generation, err);
}

int ssp_reconcile_failed(ssp_engine *engine, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err)
{
    if (require_open(engine, err) != 0 || ssp_reconcile_check_key(school, user_id, err) != 0)
        return -1;
    if (error != NULL && !ssp_reconcile_text_ok(error, SSP_RECONCILE_ERROR_TEXT_MAX))
        return ssp_fail(err, SSP_ERR_INPUT, "error: expected UTF-8 text of at most %d bytes",
                        SSP_RECONCILE_ERROR_TEXT_MAX);
    return ssp_store_reconcile_failed(engine->store, school, user_id, generation, error, retry_at_ms, err);
}

int ssp_reconcile_set_room(ssp_engine *engine, const char *school, const char *kind,
                           const char *room_id, ssp_error *err)
{
    if (require_open(engine, err) != 0 || ssp_reconcile_check_key(school, "", err) != 0 ||
        ssp_reconcile_check_kind(kind, err) != 0)
        return -1;
    if (room_id != NULL && (room_id[0] != '!' || !ssp_reconcile_text_ok(room_id, SSP_RECONCILE_ROOM_ID_MAX)))
        return ssp_fail(err, SSP_ERR_INPUT,
                        "room_id: expected a Matrix room id (!room:server) or null, got %s",
                        room_id);
    return ssp_store_reconcile_set_room(engine->store, school, kind, room_id, err);
}

int ssp_reconcile_get_room(ssp_engine *engine, const char *school, const char *kind,
                           char **room_id, ssp_error *err)
{
    *room_id = NULL;
    if (require_open(engine, err) != 0 || ssp_reconcile_check_key(school, "", err) != 0 ||
        ssp_reconcile_check_kind(kind, err) != 0)
        return -1;
    return ssp_store_reconcile_get_room(engine->store, school, kind, room_id, err);
}

int ssp_reconcile_sync_config(ssp_engine *engine, size_t *schools_changed, ssp_error *err)
{
    *schools_changed = 0;
    if (require_open(engine, err) != 0)
        return -1;
    return ssp_store_reconcile_sync_config(engine->store, schools_changed, err);
}

int ssp_reconcile_status(ssp_engine *engine, char **status_json, ssp_error *err)
{
    *status_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    return ssp_store_reconcile_status(engine->store, status_json, err);
}

int ssp_reconcile_status_offline(const char *config_json, size_t len, char **status_json,
                                 ssp_error *err)
{
    ssp_config config;
    int rc;

    *status_json = NULL;
    if (ssp_config_parse(config_json, len, &config, err) != 0)
        return -1;
    rc = ssp_store_reconcile_status_offline(&config, status_json, err);
    ssp_config_destroy(&config);
    return rc;
}
