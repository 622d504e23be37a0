/*
 * The embedded store's groups (groups_file.c): data_dir/groups.jsonl, an
 * append-only file of group snapshots (one group per line, in the stored
 * form of ssp_group_to_stored_json), replayed into the roster's group index at open:
 * the last line of an id wins. Appends are fdatasync'ed before the groups
 * are applied, so an acknowledged group survives a crash; a torn last line
 * is cut off at open. Compacted at open (one line per group, deleted ones
 * kept) when it has grown well past the number of groups.
 */
#ifndef SSP_EMBEDDED_GROUPS_FILE_H
#define SSP_EMBEDDED_GROUPS_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "group.h"
#include "journal.h"
#include "roster_index.h"
#include "strmap.h"

#define SSP_GROUPS_FILE_NAME "groups.jsonl"

/* Reads dir/groups.jsonl (a missing file reads as empty) and replaces the
 * roster's groups with what it holds; the file is opened for appends (and
 * created) by the first append. compact_allowed false: the file is only
 * read (the command line's private copy). A line that is JSON but not a valid
 * group (rules tightened since it was written) is skipped and counted in
 * roster->skipped; a line that is not JSON makes the file corrupt. */
int ssp_groups_file_open(ssp_journal *file, const char *dir, ssp_roster *roster,
                         bool compact_allowed, ssp_error *err);
/* The open in two steps, so that the file can be read and parsed on a
 * thread of its own while the roster journal loads: read (touches nothing
 * but the file and *load, and may run on any thread), then finish (under
 * the caller's thread: the cut of a torn line, compaction, the groups into
 * the roster). finish frees what load holds, whatever happens. */
typedef struct ssp_groups_load {
    ssp_strmap groups; /* group_id -> ssp_group*, owned */
    char *path;
    size_t len, good_end, lines, skipped;
    int rc;        /* 0, or -1 with err */
    ssp_error err;
} ssp_groups_load;

void ssp_groups_file_read(ssp_groups_load *load, const char *dir);
int ssp_groups_file_finish(ssp_journal *file, ssp_groups_load *load, const char *dir,
                           ssp_roster *roster, bool compact_allowed, ssp_error *err);
/* Frees what a read holds (when finish is not called). */
void ssp_groups_load_free(ssp_groups_load *load);

/* Appends the groups (borrowed) as lines and fdatasyncs before returning. */
int ssp_groups_file_append(ssp_journal *file, const ssp_group *const *groups, size_t n,
                           ssp_error *err);

#endif
