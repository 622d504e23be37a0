/*
 * Small helpers shared by every engine file (util.c): strings, time, UTF-8,
 * JSON text. No dependency but error.h and jansson.
 */
#ifndef SSP_UTIL_H
#define SSP_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

char *ssp_strdup(const char *s);
char *ssp_strndup(const char *s, size_t n);
int64_t ssp_now_ms(void);
/* The CLOCK_REALTIME time ms from now: a deadline for pthread_cond_timedwait. */
void ssp_deadline_after_ms(struct timespec *deadline, int64_t ms);
/* write(2) until everything is written; -1 with errno on failure. */
int ssp_write_all(int fd, const char *buf, size_t len);
/* Makes *buf (*cap bytes; NULL when 0) hold at least need bytes: when it
 * must grow, to twice need. -1 when out of memory, *buf left as it was. */
int ssp_buf_reserve(char **buf, size_t *cap, size_t need);
/* Joins dir and name; caller frees. */
char *ssp_path_join(const char *dir, const char *name);
/* Decodes the UTF-8 sequence at the start of text (at most len bytes) into
 * *code_point: returns its length, or 0 when it is not shortest-form UTF-8
 * of a Unicode scalar value (no surrogates, nothing above U+10FFFF). The
 * engine's one UTF-8 decoder. */
size_t ssp_utf8_decode(const char *text, size_t len, uint32_t *code_point);
bool ssp_utf8_valid(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) of at most max bytes that does
 * not cut a UTF-8 sequence. */
size_t ssp_utf8_prefix(const char *s, size_t len, size_t max);
/* Replaces bytes that are not valid UTF-8 with '?', in place. */
void ssp_utf8_scrub(char *s);
/* Whether a failed jansson load failed for want of memory. */
bool ssp_json_error_is_oom(const json_error_t *error);
/* An API body as JSON: duplicate keys refused, \u0000 let through (the
 * field's own check names it); NULL with SSP_ERR_SYNTAX naming line and
 * column, or SSP_ERR_NOMEM. A new reference. */
json_t *ssp_json_parse_body(const char *body, size_t len, ssp_error *err);
/* json_dumps(JSON_COMPACT) that returns NULL instead of a corrupt text. */
char *ssp_json_dumps_checked(const json_t *value);
/* The same into *out (caller frees); 0, or -1 with SSP_ERR_NOMEM. A NULL
 * value (a failed build) counts as out of memory. */
int ssp_json_dump_to(const json_t *value, char **out, ssp_error *err);

#endif
