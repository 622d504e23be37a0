/* Helpers shared by the C tests: temporary data dirs, files, engines. */
#ifndef SSP_TEST_UTIL_H
#define SSP_TEST_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ssp.h"

#define TU_SERVER "school.example"
#define TU_WORKER "main"

/* A fresh directory under $TMPDIR (or /tmp); caller frees and removes it. */
char *tu_tempdir(void);
/* rm -rf dir (no-op for NULL). */
void tu_rmtree(const char *dir);
/* dir + "/" + name; caller frees. */
char *tu_path(const char *dir, const char *name);
/* Whole file, NUL-terminated; NULL if it cannot be read. */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const char *data, bool append);
/* Number of '\n' in the file, or -1 if it cannot be read. */
long tu_count_lines(const char *path);
/* Number of open file descriptors of this process. */
int tu_open_fds(void);

/* printf into a new string; caller frees. */
char *tu_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Config members for tests that repeat one denial many times and need a
 * record of each: a flood limit no test reaches (audit_flood.c's own tests
 * set theirs). */
#define UNLIMITED_FLOOD "\"audit\": {\"flood\": {\"burst\": 1000000}}"

/* Config JSON {"data_dir": dir[, extra]}: `extra` is more members without
 * the braces, e.g. "\"enforce\": false"; caller frees. */
char *tu_config(const char *dir, const char *extra);

/* ssp_engine_new(config, TU_SERVER, TU_WORKER) + ssp_engine_open. NULL on
 * failure, with err filled. */
ssp_engine *tu_engine(const char *config_json, ssp_error *err);

/* Parses JSON text; aborts on invalid JSON (tests only pass valid text). */
json_t *tu_json(const char *text);

/* True when the JSON texts are equal as values. */
bool tu_json_equal_text(const char *a, const char *b);

/* True when the bytes are valid UTF-8. */
bool tu_valid_utf8(const char *s, size_t len);

/* A temporary data dir with an open engine on it. */
typedef struct tu_fixture {
    char *dir;
    char *config;
    ssp_engine *engine;
    ssp_error err;
} tu_fixture;

/* Creates dir, config (with `extra` members) and opens the engine. Returns
 * false (after reporting) when that fails. */
bool tu_setup(tu_fixture *fx, const char *extra);
/* Closes the engine and opens a new one on the same dir and config. */
bool tu_reopen(tu_fixture *fx);
void tu_teardown(tu_fixture *fx);

/* Puts a roster entry given as the body JSON; returns the ssp_roster_put result. */
int tu_put(tu_fixture *fx, const char *user_id, const char *body);

/* A row of school_policy.groups for a COPY binary stream (the PostgreSQL
 * store's groups cache): NULL strings are SQL NULL, the member lists end
 * with NULL; a "\N" member is a NULL element. */
typedef struct tu_group_row {
    const char *group_id, *school, *kind, *name, *topic, *state;
    bool two_way, closed;
    long long archive_at_ms; /* 0: NULL */
    const char *version;     /* decimal, or NULL */
    const char *const *moderators, *const *members;
} tu_group_row;
/* Appends to a growing buffer (*data, *len; *data NULL to start): the
 * stream's header, a row, its trailer. Abort when out of memory. */
void tu_copy_header(char **data, size_t *len);
void tu_copy_group_row(char **data, size_t *len, const tu_group_row *row);
void tu_copy_trailer(char **data, size_t *len);
/* Writes len bytes to path (replacing it); 0 or -1. */
int tu_write_bytes(const char *path, const char *data, size_t len);

#endif
