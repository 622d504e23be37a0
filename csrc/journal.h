/*
 * The roster journal (journal.c): an append-only jsonl file of roster
 * entries, replayed into the roster at open. The embedded store's
 * data_dir/roster.jsonl and the PostgreSQL store's outbox are journals;
 * reconcile.jsonl uses its append (ssp_journal_write) for lines of its own.
 */
#ifndef SSP_JOURNAL_H
#define SSP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "roster_index.h"

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

#endif
