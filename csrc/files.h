/*
 * File helpers (files.c) of the store's files and of the other files the
 * engine reads: directories, whole reads, atomic rewrites, jsonl replay.
 */
#ifndef SSP_FILES_H
#define SSP_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <sys/types.h>

#include "error.h"

int ssp_make_dirs(const char *dir, ssp_error *err);
int ssp_fsync_dir(const char *dir);
/* Reads a whole file; *data is NUL-terminated (caller frees). A missing
 * file reads as empty. */
int ssp_read_file(const char *path, char **data, size_t *len, ssp_error *err);
/* Reads bytes [from, to) of fd into a new NUL-terminated buffer (caller
 * frees); NULL on a read error, a short file or no memory. */
char *ssp_read_range(int fd, off_t from, off_t to);
/* Calls apply for every complete line of data[0..len). Stops at a torn last
 * line (no newline): *good_end is where the whole lines end, *lines their
 * number. A line apply rejects fails the replay with "<path> line N is
 * corrupt (...)", except when apply ran out of memory (SSP_ERR_NOMEM). */
int ssp_jsonl_replay(const char *path, const char *data, size_t len,
                     int (*apply)(void *ctx, const char *line, size_t line_len, ssp_error *err),
                     void *ctx, size_t *lines, size_t *good_end, ssp_error *err);
/* A JSONL line of `json` (taken: its reference is released): the compact
 * text and a newline, NUL-terminated, *len without the NUL. NULL when
 * json is NULL or out of memory. The caller frees the line. */
char *ssp_jsonl_line(json_t *json, size_t *len);
/* Replaces path (in dir) by what write_content writes to a new file:
 * path.tmp, fsync, rename, fsync dir. A crash leaves the old or the new
 * file whole. write_content returns -1 with errno set on failure. */
int ssp_file_rewrite(const char *dir, const char *path, int (*write_content)(int fd, void *ctx),
                     void *ctx, ssp_error *err);

#endif
