/*
 * The store's local files (journal.c): the roster journal and the jsonl
 * helpers shared by every file of the store (reconcile.jsonl,
 * the audit files, the PostgreSQL store's outbox and spill file), and the
 * backwards line scanner of the audit files (audit_file.c).
 */
#ifndef SSP_FILES_H
#define SSP_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "roster_index.h"
#include "ssp.h"

typedef struct ssp_journal {
    char *path;
    int fd;
    size_t lines; /* lines in the file, to decide when to compact */
    off_t size;   /* bytes known good, to cut off a failed append */
    bool fd_broken;
} ssp_journal;

/* Opens data_dir/roster.jsonl, replays it into the roster and compacts it
 * when it has grown well past the roster's size. */
int ssp_journal_open(ssp_journal *journal, const char *data_dir, ssp_roster *roster,
                     ssp_error *err);
/* Opens data_dir/name like ssp_journal_open, without compacting it: the
 * PostgreSQL store's roster outbox, whose every line must be pushed to the
 * database in order. */
int ssp_journal_open_named(ssp_journal *journal, const char *data_dir, const char *name,
                           ssp_roster *roster, bool compact_allowed, ssp_error *err);
/* Appends the changes and fsyncs before returning. */
int ssp_journal_append(ssp_journal *journal, const ssp_roster_change *changes, size_t n,
                       ssp_error *err);
/* Appends `len` bytes holding `lines` whole lines and fdatasyncs; on a
 * failed write cuts the file back so the next append starts on a clean line. */
int ssp_journal_write(ssp_journal *journal, const char *buf, size_t len, size_t lines,
                      ssp_error *err);
void ssp_journal_close(ssp_journal *journal);

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
/* Replaces path (in dir) by what write_content writes to a new file:
 * path.tmp, fsync, rename, fsync dir. A crash leaves the old or the new
 * file whole. write_content returns -1 with errno set on failure. */
int ssp_file_rewrite(const char *dir, const char *path, int (*write_content)(int fd, void *ctx),
                     void *ctx, ssp_error *err);
/* Whole lines of fd in [0, end), last first, each without its newline; an
 * unterminated tail is passed over. visit returns 0 to go on, 1 to stop, -1
 * to fail (with err set). Returns -1 on failure, else 0. */
typedef int (*ssp_line_visitor)(const char *line, size_t len, void *ctx, ssp_error *err);
int ssp_scan_lines_backwards(int fd, off_t end, ssp_line_visitor visit, void *ctx,
                             ssp_error *err);

#endif
