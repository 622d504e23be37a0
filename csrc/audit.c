/*
 * The engine's audit API after a record is queued (audit_record.c queues
 * them): the wait for it, the flush and the counters the binding reads,
 * and the queries and purges that go to the store. The queue itself is audit_queue.c; the readers' view of the audit
 * (who may read what, the read log) is audit_view.c.
 */
#include <string.h>

#include "audit.h"
#include "engine_state.h"
#include "ids.h"
#include "store.h"
#include "util.h"

/* How long a flush waits for the writer before it reports the sink stuck. */
#define FLUSH_TIMEOUT_MS 10000

bool ssp_decision_wait_durable(ssp_engine *engine, int64_t audit_id, int64_t timeout_ms)
{
    if (audit_id <= 0 || !engine->audit_open)
        return true;
    return ssp_audit_wait_written(&engine->audit, audit_id, timeout_ms) == 0;
}

int ssp_audit_durable_fd(ssp_engine *engine)
{
    return engine->audit_open ? engine->audit.durable_fd : -1;
}

int64_t ssp_audit_last_durable_id(ssp_engine *engine)
{
    return engine->audit_open ? ssp_audit_last_written(&engine->audit) : 0;
}

int64_t ssp_audit_stalled_ms(ssp_engine *engine)
{
    return engine->audit_open ? ssp_audit_stalled_ms_at(&engine->audit, ssp_now_ms()) : 0;
}

int ssp_audit_flush(ssp_engine *engine, ssp_error *err)
{
    if (!engine->audit_open)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    return ssp_audit_wait_flushed(&engine->audit, FLUSH_TIMEOUT_MS, err);
}

void ssp_audit_get_stats(ssp_engine *engine, ssp_audit_stats *out)
{
    if (!engine->audit_open) {
        memset(out, 0, sizeof *out);
        return;
    }
    ssp_audit_queue_stats(&engine->audit, out);
}

int ssp_audit_query(ssp_engine *engine, const ssp_audit_filter *filter, char **result_json,
                    ssp_error *err)
{
    *result_json = NULL;
    if (filter->limit == 0 || filter->limit > 1000)
        return ssp_fail(err, SSP_ERR_INPUT, "limit: expected an integer from 1 to 1000");
    /* What was decided before the query is in its answer. */
    if (ssp_audit_flush(engine, err) != 0)
        return -1;
    return ssp_store_audit_query(engine->store, filter, result_json, err);
}

int ssp_audit_purge(ssp_engine *engine, int64_t before_ms, uint64_t *deleted, ssp_error *err)
{
    *deleted = 0;
    /* A time before 1970 deletes nothing; one past the year 9999 deletes
     * everything: no store sees a time it cannot compute with. */
    if (before_ms < 0)
        before_ms = 0;
    if (before_ms > SSP_AUDIT_MAX_TS_MS)
        before_ms = SSP_AUDIT_MAX_TS_MS;
    if (engine->store == NULL)
        return ssp_store_audit_purge_closed(&engine->config, before_ms, deleted, err);
    return ssp_store_audit_purge(engine->store, before_ms, deleted, err);
}
