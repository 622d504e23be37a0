/*
 * The store as the command line uses it: ssp_store_sync, the wait that
 * makes a command's writes reach the store itself before the command says
 * they are done. (The offline open is ssp_engine_open_with in engine.c; see
 * ssp_open_options in ssp.h for what it does on each store.)
 *
 * Only public functions of ssp.h are used here: the wait watches the same
 * counters the metrics show, so it needs nothing of the store's inside.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "ssp.h"

#define SYNC_POLL_MS 5

static int fail(ssp_error *err, const char *message, const char *detail)
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
            return fail(err,
                        status.roster_outbox_pending > 0
                            ? "database: roster changes not pushed in time (they stay in the "
                              "outbox in data_dir and are pushed when this store opens next)"
                            : "database: audit records not written in time (they stay in the "
                              "spill file in data_dir)",
                        status.last_error);
        sleep_ms(SYNC_POLL_MS);
        waited += SYNC_POLL_MS;
    }
}
