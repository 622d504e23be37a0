/*
 * What the readers of the embedded store's audit files share
 * (audit_scan.c): audit.jsonl's pages and chart (audit_file.c) and the read
 * log (reads_file.c).
 */
#ifndef SSP_AUDIT_SCAN_H
#define SSP_AUDIT_SCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Records are written in id order with the time of the decision, so once
 * a scan backwards has passed `since` by this much, nothing older can
 * match (a wall clock set back by more than this could hide records). */
#define SSP_SINCE_SLACK_MS (10 * 60 * 1000)

/* Whole lines of fd in [0, end), last first, each without its newline; an
 * unterminated tail is passed over. visit returns 0 to go on, 1 to stop, -1
 * to fail (with err set). Returns -1 on failure, else 0. */
typedef int (*ssp_line_visitor)(const char *line, size_t len, void *ctx, ssp_error *err);
int ssp_scan_lines_backwards(int fd, off_t end, ssp_line_visitor visit, void *ctx,
                             ssp_error *err);

/* For a file whose lines hold an integer `key` ascending through the file
 * (ids; times, nearly): a line start such that every line before the 64
 * KiB before it has key < value, and the line at it (if any) has key >=
 * value, found by bisection over byte offsets. A scan backwards from it
 * meets every line with key < value, after at most a chunk of others. */
off_t ssp_offset_at(int fd, off_t size, const char *key, int64_t value);

/* Whether `value`, quoted, occurs in the line: a test that cannot fail for
 * a line holding the value as a JSON string when its JSON form is the
 * value itself (printable ASCII without '"' and '\\'); other values always
 * pass here and are compared after parsing. */
bool ssp_line_may_hold(const char *line, size_t len, const char *value);

/* Loads one line; a line that does not load is either damaged on disk
 * (passed over: *out NULL, 0) or was hit by a failed allocation, which
 * must not silently drop a record (-1 with err). */
int ssp_load_line(const char *line, size_t len, const char *path, json_t **out, ssp_error *err);

/* A page being collected newest first: up to limit records, and the id
 * to continue before when there are more. */
typedef struct ssp_page_collect {
    json_t *records;
    size_t found;
    int64_t next_id;
} ssp_page_collect;

/* Takes rec (stolen). 1 when the page is full and one more match was seen
 * (next_id is set: stop scanning), 0 to go on, -1 out of memory. */
int ssp_page_take(ssp_page_collect *page, size_t limit, json_t *rec, ssp_error *err);
/* The collected page as ssp_audit_page builds it; NULL when out of memory. */
json_t *ssp_page_result(const ssp_page_collect *page);

#endif
