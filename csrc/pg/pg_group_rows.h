/*
 * A row of school_policy.groups into an ssp_group (pg_group_rows.c), in
 * the three forms the PostgreSQL store reads: COPY binary (the load at
 * open and on reconnect, and the local groups cache, which is that stream
 * as it came), and text values (a query's, for the changes of other
 * processes). The columns are SSP_PG_GROUP_COLUMNS, in that order.
 *
 * Rows written with SQL may break the input rules: such a row is skipped
 * and counted in roster->skipped, and so is a member whose user id is not
 * valid (or not of roster->server_name, when set; the group is kept
 * without them). No allocation but the group's own and the reader's
 * reusable member list.
 */
#ifndef SSP_PG_GROUP_ROWS_H
#define SSP_PG_GROUP_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "group.h"
#include "roster_index.h"

#define SSP_PG_GROUP_COLUMNS                                                                       \
    "group_id, school, kind, name, topic, two_way, closed, state, archive_at_ms, version, "        \
    "moderators, members"
#define SSP_PG_GROUP_N_COLUMNS 12

typedef struct ssp_pg_group_member_ref {
    const char *user_id; /* into the row being read */
    ssp_group_role role;
    char *end; /* COPY binary: where to NUL-terminate user_id once the row is read */
} ssp_pg_group_member_ref;

/* Reads rows one after the other; owns only its member list. */
typedef struct ssp_pg_group_reader {
    ssp_roster *roster; /* borrowed: server_name and the skipped counter */
    ssp_pg_group_member_ref *refs;
    size_t n, cap;
    bool header_seen; /* COPY binary: the stream's header was read */
} ssp_pg_group_reader;

void ssp_pg_group_reader_init(ssp_pg_group_reader *reader, ssp_roster *roster);
void ssp_pg_group_reader_destroy(ssp_pg_group_reader *reader);

/* A row as text values: f[i] is column i (NULL: SQL NULL), modifiable (the
 * arrays are parsed in place). 0 with *out a new group, or NULL when the
 * row was skipped; -1 when out of memory. */
int ssp_pg_group_from_text(ssp_pg_group_reader *reader, char **f, ssp_group **out);
/* One CopyData message of COPY ... (FORMAT binary): data[0..len), with
 * data[len] writable (libpq's buffers hold one byte more); modified in
 * place. The stream's header (before the first row) and its trailer are
 * taken too: *out NULL then, as for a skipped row. 0, or -1 when out of
 * memory. */
int ssp_pg_group_from_binary(ssp_pg_group_reader *reader, char *data, size_t len,
                             ssp_group **out);
/* The length of the message at the start of data[0..avail) of a COPY
 * binary stream (header_seen: whether the header is behind), or 0 when it
 * does not end within avail bytes or is malformed: how the cache, the
 * stream as one file, is cut back into messages. */
size_t ssp_pg_group_binary_length(const char *data, size_t avail, bool header_seen);

#endif
