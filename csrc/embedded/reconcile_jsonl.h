/*
 * reconcile.jsonl's lines (reconcile_jsonl.c): replayed into a state, and
 * built from one, line by line or as a whole (compaction).
 */
#ifndef SSP_RECONCILE_JSONL_H
#define SSP_RECONCILE_JSONL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "embedded/reconcile_state.h"
#include "error.h"

/* Reads and replays the file at path into the (initialised) state.
 * *len is the file's size, *good_end and *lines describe the whole lines
 * (a torn last line is the caller's to cut off or ignore). */
int ssp_reconcile_replay(ssp_reconcile_state *state, const char *path, size_t *len,
                         size_t *good_end, size_t *lines, ssp_error *err);

/* Lines to append, built before anything is written. */
typedef struct ssp_reconcile_lines {
    char *data;
    size_t used, cap, lines;
} ssp_reconcile_lines;

/* Appends value (stolen) as one line. -1 when out of memory. */
int ssp_reconcile_add_line(ssp_reconcile_lines *buf, json_t *value);
/* One operation each; NULL when out of memory. */
json_t *ssp_reconcile_mark_line(const char *school, const char *user_id, int64_t generation,
                                int64_t at_ms);
json_t *ssp_reconcile_done_line(const char *school, const char *user_id, int64_t generation);
json_t *ssp_reconcile_failed_line(const ssp_mark *mark);
json_t *ssp_reconcile_room_line(const char *school, const char *kind, const char *room_id);
json_t *ssp_reconcile_applied_line(const char *school, const char *config);

/* The whole state as lines, for ssp_file_rewrite (state: ssp_reconcile_state *). */
int ssp_reconcile_write_snapshot(int fd, void *state);
/* How many lines a snapshot of the state holds, at most. */
size_t ssp_reconcile_live_lines(const ssp_reconcile_state *state);

#endif
