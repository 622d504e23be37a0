/*
 * Rows of school_policy.groups into ssp_groups (group.h: one allocation,
 * members sorted by user id), without going through JSON: a load reads
 * 150,000 rows of 40 members. COPY binary for the loads, because the
 * server sends a text[] in binary form for half the CPU of its text form
 * (no quoting to decide, no escapes); text values for the few rows a
 * query reads.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "group.h"
#include "ids.h"
#include "pg/pg_group_rows.h"

enum {
    COL_GROUP_ID,
    COL_SCHOOL,
    COL_KIND,
    COL_NAME,
    COL_TOPIC,
    COL_TWO_WAY,
    COL_CLOSED,
    COL_STATE,
    COL_ARCHIVE_AT_MS,
    COL_VERSION,
    COL_MODERATORS,
    COL_MEMBERS,
    N_COLUMNS
};

#define TEXT_OID 25
/* COPY binary: the signature, then a flags word and the header extension's length. */
static const char SIGNATURE[11] = "PGCOPY\n\377\r\n";
#define HEADER_FIXED 19

static const char *const KINDS[] = {"course", "team", "class", NULL};
static const char *const STATES[] = {"active", "archived", "deleted", NULL};

/* A row's fields but the members (which are on the reader's list). */
typedef struct group_row {
    /* NUL-terminated; topic may be NULL */
    const char *group_id, *school, *kind, *name, *topic, *state;
    bool two_way, closed, has_archive_at, has_version;
    int64_t archive_at_ms, version;
} group_row;

void ssp_pg_group_reader_init(ssp_pg_group_reader *reader, ssp_roster *roster)
{
    memset(reader, 0, sizeof *reader);
    reader->roster = roster;
}

void ssp_pg_group_reader_destroy(ssp_pg_group_reader *reader)
{
    free(reader->refs);
    reader->refs = NULL;
    reader->n = reader->cap = 0;
}

static int push_member(ssp_pg_group_reader *reader, const char *user_id, ssp_group_role role)
{
    if (reader->n == reader->cap) {
        size_t cap = reader->cap ? reader->cap * 2 : 64;
        ssp_pg_group_member_ref *refs = realloc(reader->refs, cap * sizeof *refs);

        if (refs == NULL)
            return -1;
        reader->refs = refs;
        reader->cap = cap;
    }
    reader->refs[reader->n].user_id = user_id;
    reader->refs[reader->n].role = role;
    reader->refs[reader->n].end = NULL;
    reader->n++;
    return 0;
}

static int name_index(const char *value, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(value, names[i]) == 0)
            return i;
    }
    return -1;
}

static int compare_refs(const void *a, const void *b)
{
    return strcmp(((const ssp_pg_group_member_ref *)a)->user_id,
                  ((const ssp_pg_group_member_ref *)b)->user_id);
}

static char *put_string(char **strings, const char *s)
{
    char *copy = *strings;
    size_t len = strlen(s) + 1;

    memcpy(copy, s, len);
    *strings += len;
    return copy;
}

/* ---- building ---- */

/* The group of a row whose members are on the reader's list. 0 with *out
 * set (NULL: the row was skipped and counted), -1 when out of memory. */
static int build(ssp_pg_group_reader *reader, const group_row *row, ssp_group **out)
{
    const char *server_name = reader->roster->server_name;
    ssp_error ignored;
    int kind = name_index(row->kind, KINDS), state = name_index(row->state, STATES);
    size_t size, kept = 0;
    ssp_group *group;
    char *strings;

    *out = NULL;
    if (ssp_check_group_id("group", row->group_id, strlen(row->group_id), &ignored) != 0 ||
        ssp_check_school_id("school", row->school, strlen(row->school), &ignored) != 0 ||
        kind < 0 || state < 0 || row->name[0] == '\0' ||
        (row->has_archive_at && row->archive_at_ms <= 0) ||
        (row->has_version && row->version < 0)) {
        ssp_roster_note_skipped(reader->roster, 1);
        return 0;
    }
    /* Members with a valid user id (of this server, when it is set). */
    for (size_t i = 0; i < reader->n; i++) {
        const char *user_id = reader->refs[i].user_id;

        if (ssp_check_user_id("user_id", user_id, strlen(user_id), server_name, &ignored) != 0) {
            ssp_roster_note_skipped(reader->roster, 1);
            continue;
        }
        reader->refs[kept++] = reader->refs[i];
    }
    reader->n = kept;
    if (reader->n > 1) {
        /* Sorted by user id, as group.h wants them; a user listed twice
         * (the table's CHECK forbids it in both arrays, not twice in one)
         * keeps one entry, a moderator's if either is. */
        qsort(reader->refs, reader->n, sizeof *reader->refs, compare_refs);
        kept = 1;
        for (size_t i = 1; i < reader->n; i++) {
            if (strcmp(reader->refs[i].user_id, reader->refs[kept - 1].user_id) == 0) {
                if (reader->refs[i].role == SSP_GROUP_MODERATOR)
                    reader->refs[kept - 1].role = SSP_GROUP_MODERATOR;
                ssp_roster_note_skipped(reader->roster, 1);
                continue;
            }
            reader->refs[kept++] = reader->refs[i];
        }
        reader->n = kept;
    }
    size = sizeof(ssp_group) + reader->n * sizeof(ssp_group_member) + strlen(row->group_id) +
           strlen(row->school) + strlen(row->name) + 3 + (row->topic ? strlen(row->topic) + 1 : 0);
    for (size_t i = 0; i < reader->n; i++)
        size += strlen(reader->refs[i].user_id) + 1;
    group = malloc(size);
    if (group == NULL)
        return -1;
    strings = (char *)&group->members[reader->n];
    group->group_id = put_string(&strings, row->group_id);
    group->school = put_string(&strings, row->school);
    group->kind = KINDS[kind]; /* static, as group.c's */
    group->name = put_string(&strings, row->name);
    group->topic = row->topic ? put_string(&strings, row->topic) : NULL;
    group->two_way = row->two_way;
    group->closed = row->closed;
    group->state = (ssp_group_state)state;
    group->archive_at_ms = row->has_archive_at ? row->archive_at_ms : 0;
    group->has_version = row->has_version;
    group->version = row->has_version ? row->version : 0;
    group->n_members = reader->n;
    for (size_t i = 0; i < reader->n; i++) {
        group->members[i].user_id = put_string(&strings, reader->refs[i].user_id);
        group->members[i].role = reader->refs[i].role;
    }
    *out = group;
    return 0;
}

/* ---- text values ---- */

/* Parses a PostgreSQL array literal of text ({a,"b \"c\"",...}) in place,
 * each element onto the reader's list with role. 0, 1 when it is not such
 * a literal or holds a NULL, -1 when out of memory. */
static int parse_text_array(ssp_pg_group_reader *reader, char *s, ssp_group_role role)
{
    if (*s++ != '{')
        return 1;
    if (*s == '}')
        return s[1] == '\0' ? 0 : 1;
    for (;;) {
        char *start, delimiter;

        if (*s == '"') {
            char *out = start = ++s;

            while (*s != '"') {
                if (*s == '\\')
                    s++;
                if (*s == '\0')
                    return 1;
                *out++ = *s++;
            }
            s++;
            *out = '\0'; /* out is before s */
        } else {
            start = s;
            while (*s != ',' && *s != '}' && *s != '\0')
                s++;
            if (s - start == 4 && strncasecmp(start, "NULL", 4) == 0)
                return 1;
        }
        delimiter = *s;
        if (delimiter != ',' && delimiter != '}')
            return 1;
        *s++ = '\0';
        if (push_member(reader, start, role) != 0)
            return -1;
        if (delimiter == '}')
            return *s == '\0' ? 0 : 1;
    }
}

static bool parse_int(const char *text, int64_t *out)
{
    char *end;
    long long value;

    errno = 0;
    value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = value;
    return true;
}

int ssp_pg_group_from_text(ssp_pg_group_reader *reader, char **f, ssp_group **out)
{
    group_row row;
    int parsed;

    *out = NULL;
    reader->n = 0;
    for (int c = 0; c < N_COLUMNS; c++) {
        if (f[c] == NULL && c != COL_TOPIC && c != COL_ARCHIVE_AT_MS && c != COL_VERSION)
            goto skip;
    }
    row.group_id = f[COL_GROUP_ID];
    row.school = f[COL_SCHOOL];
    row.kind = f[COL_KIND];
    row.name = f[COL_NAME];
    row.topic = f[COL_TOPIC];
    row.state = f[COL_STATE];
    row.two_way = f[COL_TWO_WAY][0] == 't';
    row.closed = f[COL_CLOSED][0] == 't';
    row.has_archive_at = f[COL_ARCHIVE_AT_MS] != NULL;
    row.has_version = f[COL_VERSION] != NULL;
    row.archive_at_ms = row.version = 0;
    if ((row.has_archive_at && !parse_int(f[COL_ARCHIVE_AT_MS], &row.archive_at_ms)) ||
        (row.has_version && !parse_int(f[COL_VERSION], &row.version)))
        goto skip;
    parsed = parse_text_array(reader, f[COL_MODERATORS], SSP_GROUP_MODERATOR);
    if (parsed == 0)
        parsed = parse_text_array(reader, f[COL_MEMBERS], SSP_GROUP_MEMBER);
    if (parsed < 0)
        return -1;
    if (parsed > 0)
        goto skip;
    return build(reader, &row, out);
skip:
    ssp_roster_note_skipped(reader->roster, 1);
    return 0;
}

/* ---- COPY binary ---- */

static uint32_t be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static int16_t be16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return (int16_t)((uint16_t)u[0] << 8 | u[1]);
}

/* The header's length, or 0 when data[0..avail) does not hold a whole one. */
static size_t header_length(const char *data, size_t avail)
{
    size_t ext;

    if (avail < HEADER_FIXED || memcmp(data, SIGNATURE, sizeof SIGNATURE) != 0)
        return 0;
    ext = be32(data + 15);
    return ext <= avail - HEADER_FIXED ? HEADER_FIXED + ext : 0;
}

size_t ssp_pg_group_binary_length(const char *data, size_t avail, bool header_seen)
{
    size_t at = 0;
    int16_t fields;

    if (!header_seen && (at = header_length(data, avail)) == 0)
        return 0;
    if (avail - at < 2)
        return 0;
    fields = be16(data + at);
    at += 2;
    if (fields == -1)
        return at; /* the trailer */
    for (int16_t i = 0; i < fields; i++) {
        uint32_t len;

        if (avail - at < 4)
            return 0;
        len = be32(data + at);
        at += 4;
        if (len == UINT32_MAX)
            continue; /* NULL */
        if (len > avail - at)
            return 0;
        at += len;
    }
    return at;
}

/* A field: where its bytes are, how many, or NULL. */
typedef struct field {
    char *data;
    size_t len;
    bool null;
} field;

/* The elements of a text[] in binary form onto the reader's list (their
 * bytes are NUL-terminated afterwards by the caller, at each ref's end). 0,
 * 1 when malformed or holding a NULL, -1 when out of memory. */
static int binary_array(ssp_pg_group_reader *reader, const field *f, ssp_group_role role)
{
    const char *p = f->data, *end = f->data + f->len;
    uint32_t ndim, count;

    if (f->null || f->len < 12)
        return 1;
    ndim = be32(p);
    if (be32(p + 8) != TEXT_OID || ndim > 1)
        return 1;
    if (ndim == 0)
        return 0;
    if (f->len < 20)
        return 1;
    count = be32(p + 12);
    p += 20;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len;

        if (end - p < 4)
            return 1;
        len = be32(p);
        p += 4;
        if (len == UINT32_MAX || len > (size_t)(end - p))
            return 1;
        if (push_member(reader, p, role) != 0)
            return -1;
        reader->refs[reader->n - 1].end = (char *)p + len;
        p += len;
    }
    return p == end ? 0 : 1;
}

int ssp_pg_group_from_binary(ssp_pg_group_reader *reader, char *data, size_t len,
                             ssp_group **out)
{
    field f[N_COLUMNS];
    group_row row;
    char *p = data, *end = data + len;
    int16_t fields;
    int parsed;

    *out = NULL;
    reader->n = 0;
    if (!reader->header_seen) {
        size_t header = header_length(data, len);

        if (header == 0)
            return 0; /* not a COPY binary stream: nothing to read */
        reader->header_seen = true;
        p += header;
        if (p == end)
            return 0;
    }
    if (end - p < 2)
        goto skip;
    fields = be16(p);
    p += 2;
    if (fields == -1)
        return 0; /* the trailer */
    if (fields != N_COLUMNS)
        goto skip; /* a column added by a newer version */
    for (int c = 0; c < N_COLUMNS; c++) {
        uint32_t flen;

        if (end - p < 4)
            goto skip;
        flen = be32(p);
        p += 4;
        f[c].null = flen == UINT32_MAX;
        f[c].data = p;
        f[c].len = f[c].null ? 0 : flen;
        if (f[c].len > (size_t)(end - p))
            goto skip;
        p += f[c].len;
    }
    if (f[COL_GROUP_ID].null || f[COL_SCHOOL].null || f[COL_KIND].null || f[COL_NAME].null ||
        f[COL_STATE].null || f[COL_TWO_WAY].len != 1 || f[COL_CLOSED].len != 1 ||
        (!f[COL_ARCHIVE_AT_MS].null && f[COL_ARCHIVE_AT_MS].len != 8) ||
        (!f[COL_VERSION].null && f[COL_VERSION].len != 8))
        goto skip;
    parsed = binary_array(reader, &f[COL_MODERATORS], SSP_GROUP_MODERATOR);
    if (parsed == 0)
        parsed = binary_array(reader, &f[COL_MEMBERS], SSP_GROUP_MEMBER);
    if (parsed < 0)
        return -1;
    if (parsed > 0)
        goto skip;
    row.two_way = f[COL_TWO_WAY].data[0] != 0;
    row.closed = f[COL_CLOSED].data[0] != 0;
    row.has_archive_at = !f[COL_ARCHIVE_AT_MS].null;
    row.has_version = !f[COL_VERSION].null;
    row.archive_at_ms = row.has_archive_at
                            ? (int64_t)((uint64_t)be32(f[COL_ARCHIVE_AT_MS].data) << 32 |
                                        be32(f[COL_ARCHIVE_AT_MS].data + 4))
                            : 0;
    row.version = row.has_version ? (int64_t)((uint64_t)be32(f[COL_VERSION].data) << 32 |
                                              be32(f[COL_VERSION].data + 4))
                                  : 0;
    /* Everything is read: terminate the strings in place (each end is the
     * first byte of a length word already read, or data[len]). */
    for (size_t i = 0; i < reader->n; i++)
        *reader->refs[i].end = '\0';
    {
        static const int text_columns[] = {COL_GROUP_ID, COL_SCHOOL, COL_KIND, COL_NAME,
                                           COL_TOPIC, COL_STATE};

        for (size_t i = 0; i < sizeof text_columns / sizeof text_columns[0]; i++) {
            field *t = &f[text_columns[i]];

            if (!t->null)
                t->data[t->len] = '\0';
        }
    }
    row.group_id = f[COL_GROUP_ID].data;
    row.school = f[COL_SCHOOL].data;
    row.kind = f[COL_KIND].data;
    row.name = f[COL_NAME].data;
    row.topic = f[COL_TOPIC].null ? NULL : f[COL_TOPIC].data;
    row.state = f[COL_STATE].data;
    return build(reader, &row, out);
skip:
    ssp_roster_note_skipped(reader->roster, 1);
    return 0;
}
