/*
 * The embedded store (embedded_store.c): one process owns data_dir. Its
 * ops table, and the handle that holds its files: roster.jsonl (journal.c),
 * groups.jsonl (groups_file.c), reconcile.jsonl (reconcile_file.c), audit.jsonl (audit_file.c) and
 * audit-reads.jsonl (reads_file.c).
 */
#ifndef SSP_EMBEDDED_STORE_H
#define SSP_EMBEDDED_STORE_H

#include <pthread.h>
#include <stdbool.h>

#include "embedded/audit_file.h"
#include "embedded/reads_file.h"
#include "embedded/reconcile_file.h"
#include "journal.h"
#include "store_ops.h"

extern const ssp_store_ops ssp_embedded_store_ops;

typedef struct ssp_embedded_store {
    ssp_store base;
    const ssp_store_env *env;
    ssp_reconcile_file reconcile; /* opened first: roster changes mark it before the journal */
    bool reconcile_open;
    ssp_journal journal; /* data_dir/roster.jsonl */
    bool journal_open;
    ssp_journal groups; /* data_dir/groups.jsonl (groups_file.c) */
    bool groups_open;
    ssp_audit_file audit;
    bool audit_open;
    ssp_reads_file reads;
    bool reads_open;
    /* env->offline: the roster and reconcile state were replayed from a private copy
     * (gone after open); every write but the read log is refused. */
    bool offline;
} ssp_embedded_store;

#endif
