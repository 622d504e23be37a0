/*
 * libFuzzer target: the PostgreSQL store's group rows (pg/pg_group_rows.c),
 * what the groups load and the groups cache read.
 *
 * The input is cut into messages of a COPY binary stream as the cache
 * reader cuts it (ssp_pg_group_binary_length), each read with
 * ssp_pg_group_from_binary from a copy of its own with one byte more, as
 * libpq hands them out; then, split at tabs into 12 text values (at most),
 * read with ssp_pg_group_from_text as a query's row. Every group built must
 * follow group.h: members sorted and unique, valid user ids of the server,
 * strings NUL-terminated. Everything is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "pg/pg_group_rows.h"
#include "roster_index.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define FUZZ_SERVER "school.example"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_group(ssp_group *group)
{
    if (group == NULL)
        return;
    REQUIRE(group->group_id[0] != '\0' && group->name[0] != '\0');
    REQUIRE(strlen(group->school) > 0);
    for (size_t i = 0; i < group->n_members; i++) {
        REQUIRE(ssp_user_id_valid(group->members[i].user_id));
        REQUIRE(strcmp(strchr(group->members[i].user_id, ':') + 1, FUZZ_SERVER) == 0);
        if (i > 0)
            REQUIRE(strcmp(group->members[i - 1].user_id, group->members[i].user_id) < 0);
    }
    free(group);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssp_roster roster;
    ssp_error err;
    ssp_pg_group_reader reader;
    size_t done = 0;
    char *text, *f[SSP_PG_GROUP_N_COLUMNS];
    int n = 0;

    if (ssp_roster_init(&roster, &err) != 0)
        return 0;
    roster.server_name = FUZZ_SERVER;
    ssp_pg_group_reader_init(&reader, &roster);
    for (;;) {
        size_t len = ssp_pg_group_binary_length((const char *)data + done, size - done,
                                                reader.header_seen);
        char *message;
        ssp_group *group = NULL;

        if (len == 0)
            break;
        REQUIRE(len <= size - done);
        message = malloc(len + 1);
        if (message == NULL)
            break;
        memcpy(message, data + done, len);
        done += len;
        if (ssp_pg_group_from_binary(&reader, message, len, &group) == 0)
            check_group(group);
        free(message);
    }
    /* The same bytes as a query's text values. */
    text = malloc(size + 1);
    if (text != NULL) {
        ssp_group *group = NULL;

        memcpy(text, data, size);
        text[size] = '\0';
        for (char *s = text; n < SSP_PG_GROUP_N_COLUMNS; n++) {
            char *tab = strchr(s, '\t');

            /* "\N" stands for SQL NULL, as in COPY text */
            f[n] = strcmp(s, "\\N") == 0 || strncmp(s, "\\N\t", 3) == 0 ? NULL : s;
            if (tab == NULL) {
                n++;
                break;
            }
            *tab = '\0';
            s = tab + 1;
        }
        for (int c = n; c < SSP_PG_GROUP_N_COLUMNS; c++)
            f[c] = NULL;
        if (ssp_pg_group_from_text(&reader, f, &group) == 0)
            check_group(group);
        free(text);
    }
    ssp_pg_group_reader_destroy(&reader);
    ssp_roster_destroy(&roster);
    return 0;
}
