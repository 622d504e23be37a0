/*
 * The PostgreSQL store's read log: who read which school's audit, one row
 * per read, committed before the read is answered; its pages for the
 * audit page, newest first. Readers use the pool of reader connections
 * (pg_conn.h), so a long read never waits behind the store thread.
 *
 * Ownership: the record is borrowed; the page is the caller's.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pg/pg_audit.h"
#include "pg/pg_conn.h"
#include "pg/pg_reads.h"
#include "pg/pg_state.h"
#include "util.h"

/* [caller thread] One read-log row, committed before return. */
int ssp_pg_reads_append(ssp_store *store, json_t *record, ssp_error *err)
{
    char *text = ssp_json_dumps_checked(record);
    const char *params[1] = {text};
    int rc;

    if (text == NULL)
        return ssp_fail_nomem(err);
    rc = ssp_pg_session_exec(&((ssp_pgstore *)store)->queries,
                     "INSERT INTO school_policy.audit_reads (ts, reader, access, op, query, schools,"
                     " worker) SELECT timestamptz 'epoch' + (r->>'ts')::bigint * interval '1 ms',"
                     " r->>'reader', r->>'access', r->>'op', r->'query', NULLIF(r->'schools', 'null'::jsonb),"
                     " r->>'worker' FROM (SELECT $1::jsonb AS r) s",
                     1, params, false, err);
    free(text);
    return rc;
}

/* A read-log row: its first column is the record's JSON text. */
static json_t *row_json(ssp_pg_rows *res, int row)
{
    return json_loads(ssp_pg_value(res, row, 0), 0, NULL);
}

/* [caller thread] A page of the read log, newest first. */
int ssp_pg_reads_query(ssp_store *store, json_t *schools, const ssp_reads_filter *filter,
                       json_t **page, ssp_error *err)
{
    ssp_pgstore *pg = (ssp_pgstore *)store;
    char since[32], until[32], before[32], lim[32];
    char *schools_json = NULL;
    const char *params[5] = {since, until, before, lim, NULL};
    int64_t since_ms = filter->since_ms, until_ms = filter->until_ms;
    int64_t before_id = filter->before_id;
    size_t limit = filter->limit;
    ssp_pg_rows *res;

    *page = NULL;
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    snprintf(until, sizeof until, "%lld", (long long)until_ms);
    snprintf(before, sizeof before, "%lld", (long long)before_id);
    snprintf(lim, sizeof lim, "%zu", limit + 1);
    if (schools != NULL && (schools_json = ssp_json_dumps_checked(schools)) == NULL)
        return ssp_fail_nomem(err);
    params[4] = schools_json;
    res = ssp_pg_pool_query(pg->readers, SSP_PG_READERS, &pg->readers_turn,
                       "SELECT json_build_object('id', id, 'ts', (extract(epoch FROM ts) * 1000)::bigint,"
                       " 'reader', reader, 'access', access, 'op', op, 'query', query,"
                       " 'schools', schools, 'worker', worker)::text, id"
                       " FROM school_policy.audit_reads"
                       " WHERE ($1::bigint = 0 OR ts >= timestamptz 'epoch' + $1::bigint * interval '1 ms')"
                       " AND ($2::bigint = 0 OR ts < timestamptz 'epoch' + $2::bigint * interval '1 ms')"
                       " AND ($3::bigint = 0 OR id < $3::bigint)"
                       " AND ($5::jsonb IS NULL OR schools ?| ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))"
                       " ORDER BY id DESC LIMIT $4::bigint",
                       5, params, true, err);
    free(schools_json);
    if (res == NULL)
        return -1;
    *page = ssp_pg_audit_page(res, limit, 1, row_json);
    ssp_pg_rows_free(res);
    if (*page == NULL)
        return ssp_fail_nomem(err);
    return 0;
}
