/*
 * The embedded store's audit log, data_dir/audit.jsonl (audit_file.c): its
 * writer thread, which drains the audit queue, and its pages and chart.
 */
#ifndef SSP_AUDIT_FILE_H
#define SSP_AUDIT_FILE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "embedded/audit_counts.h"
#include "error.h"

typedef struct ssp_audit_file {
    ssp_audit_queue *queue; /* what the writer drains (borrowed) */
    char *path;             /* data_dir/audit.jsonl */
    int fd;
    bool broken; /* a partial write could not be cut off: writing stopped */
    pthread_t writer;
    bool writer_started;
    /* The chart's counts: built at open from the file (the command line's
     * open: at its first chart), then kept by the writer. counts_state says
     * whether they may be used; a failure to count (memory) falls back to
     * reading the file for every chart. */
    ssp_audit_counts counts;
    bool counts_ready;               /* counts and counts_build initialised */
    pthread_mutex_t counts_build;    /* one build at a time */
    int counts_state;                /* COUNTS_* (audit_file.c), read and set atomically */
} ssp_audit_file;

/* Opens data_dir/audit.jsonl, cuts a torn last line off, reads the id of
 * the newest record into *last_id and counts the records for the chart. */
int ssp_audit_file_open(ssp_audit_file *file, const char *data_dir, int64_t *last_id,
                        ssp_error *err);
/* The command line's open beside a running Synapse: queries read
 * data_dir/audit.jsonl as it is (no tail recovery, no writer, no fd). */
int ssp_audit_file_open_readonly(ssp_audit_file *file, const char *data_dir, ssp_error *err);
/* Starts the writer thread that drains the queue into the file. */
int ssp_audit_file_start(ssp_audit_file *file, ssp_audit_queue *queue, ssp_error *err);
/* Stops the writer (after it has written what is queued, unless the disk
 * refuses) and closes the file. */
void ssp_audit_file_close(ssp_audit_file *file);
int ssp_audit_file_query(ssp_audit_file *file, const ssp_audit_filter *filter,
                         char **result_json, ssp_error *err);
int ssp_audit_file_chart(ssp_audit_file *file, const ssp_audit_filter *filter, int64_t bucket_ms,
                         json_t **rows, ssp_error *err);

#endif
