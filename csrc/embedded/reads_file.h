/*
 * The embedded store's read log, data_dir/audit-reads.jsonl (reads_file.c).
 * Appended to by any reader, the command line's offline open included.
 */
#ifndef SSP_READS_FILE_H
#define SSP_READS_FILE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "store_ops.h"

typedef struct ssp_reads_file {
    char *path;            /* data_dir/audit-reads.jsonl */
    char *dir;             /* data_dir */
    pthread_mutex_t mutex; /* serialises appends and rewrites */
    bool mutex_ready;
    int64_t next_id;       /* 0: not known yet (read from the file at first use) */
    int64_t retention_ms;  /* 0: keep every record */
    int64_t next_prune_ms; /* when an append next deletes old records */
} ssp_reads_file;

/* retention_days: audit.retention_days for Synapse's process (0 keeps
 * everything; the command line's open passes 0: it never rewrites the
 * file Synapse appends to). */
int ssp_reads_file_open(ssp_reads_file *file, const char *data_dir, int64_t retention_days,
                        ssp_error *err);
void ssp_reads_file_close(ssp_reads_file *file);
/* One read-log record (gets its "id"), durable on return; once an hour
 * deletes the records past the retention first. */
int ssp_reads_file_append(ssp_reads_file *file, json_t *record, ssp_error *err);
/* Rewrites the file without the records with ts < cutoff_ms (the newest
 * one always stays); *removed: how many. */
int ssp_reads_file_prune(ssp_reads_file *file, int64_t cutoff_ms, uint64_t *removed,
                         ssp_error *err);
/* schools NULL: every read; else those confined to one of them. */
int ssp_reads_file_query(ssp_reads_file *file, json_t *schools, const ssp_reads_filter *filter,
                         json_t **page, ssp_error *err);

#endif
