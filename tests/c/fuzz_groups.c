/*
 * libFuzzer target: the group parser (group.c) and the group index
 * (roster_index.c).
 *
 * Loads the input as JSON like the admin API does (\u0000 allowed, so the
 * field checks see it), then parses it as one group (the batch's form, the
 * id in the body; PUT's form, the id in the path; with and without a server
 * name) and each item of its "groups" list with the batch's path. An
 * accepted group has valid ids, strictly sorted members that
 * ssp_group_member_of finds, serialises with ssp_group_to_json and parses
 * back to the same JSON; it goes into a roster index and out of it again. A
 * rejection carries a message that starts with the path. The whole input
 * also goes through the batch's parsers (ssp_roster_parse_batch for the
 * users, ssp_groups_parse_batch for the groups): either both lists parse,
 * every group id once, or an error names where. Everything is freed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssp_private.h"

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
    json_object_seed(1); /* a fixed hash seed: runs are reproducible */
    return 0;
}

static void check_error(const ssp_error *err, const char *path)
{
    size_t len = strnlen(err->message, sizeof err->message);

    REQUIRE(len > 0 && len < sizeof err->message);
    REQUIRE(err->code == SSP_ERR_INPUT || err->code == SSP_ERR_NOMEM);
    if (err->code == SSP_ERR_INPUT && path[0] != '\0')
        REQUIRE(strncmp(err->message, path, strlen(path)) == 0);
}

static void check_group(const ssp_group *group, const char *server)
{
    json_t *json = ssp_group_to_json(group), *json_again;
    ssp_group *again = NULL;
    ssp_roster roster;
    ssp_error err;

    REQUIRE(strlen(group->group_id) >= 1 && strlen(group->group_id) <= SSP_GROUP_ID_MAX);
    REQUIRE(group->name[0] != '\0');
    REQUIRE(group->state <= SSP_GROUP_DELETED);
    REQUIRE(group->archive_at_ms >= 0 && group->version >= 0);
    for (size_t i = 0; i < group->n_members; i++) {
        const char *id = group->members[i].user_id;

        REQUIRE(ssp_user_id_valid(id));
        if (server != NULL)
            REQUIRE(strcmp(strchr(id, ':') + 1, server) == 0);
        REQUIRE(group->members[i].role <= SSP_GROUP_MODERATOR);
        if (i > 0)
            REQUIRE(strcmp(group->members[i - 1].user_id, id) < 0);
        REQUIRE(ssp_group_member_of(group, id, strlen(id)) == &group->members[i]);
    }
    REQUIRE(ssp_group_member_of(group, "@", 1) == NULL);

    /* The JSON form parses back to the same group. */
    REQUIRE(json != NULL);
    REQUIRE(ssp_group_parse(NULL, json, "again", NULL, &again, &err) == 0);
    json_again = ssp_group_to_json(again);
    REQUIRE(json_again != NULL && json_equal(json, json_again));
    REQUIRE(again->n_members == group->n_members && again->has_version == group->has_version);

    /* The stored form reads back to the same group too. */
    {
        json_t *stored = ssp_group_to_stored_json(group), *json_stored;
        ssp_group *from_store = NULL;

        REQUIRE(stored != NULL);
        REQUIRE(ssp_group_parse_stored(stored, &from_store, &err) == 0);
        json_stored = ssp_group_to_json(from_store);
        REQUIRE(json_stored != NULL && json_equal(json, json_stored));
        json_decref(json_stored);
        json_decref(stored);
        free(from_store);
    }

    /* In and out of an index: its members list it, then nobody does. */
    REQUIRE(ssp_roster_init(&roster, &err) == 0);
    REQUIRE(ssp_roster_apply_group_locked(&roster, again, &err) == 0);
    for (size_t i = 0; i < group->n_members; i++) {
        const ssp_group *const *listed;
        const char *id = group->members[i].user_id;

        REQUIRE(ssp_roster_groups_of(&roster, id, strlen(id), &listed) == 1);
        REQUIRE(listed[0] == again);
    }
    REQUIRE(ssp_roster_group(&roster, group->group_id, strlen(group->group_id)) == again);
    ssp_roster_destroy(&roster);
    json_decref(json);
    json_decref(json_again);
}

static void parse_one(const char *group_id, json_t *body, const char *path, const char *server)
{
    ssp_group *group = (ssp_group *)&group;
    ssp_error err;

    memset(&err, 0, sizeof err);
    if (ssp_group_parse(group_id, body, path, server, &group, &err) == 0) {
        REQUIRE(group != NULL);
        if (group_id != NULL)
            REQUIRE(strcmp(group->group_id, group_id) == 0);
        check_group(group, server);
        free(group);
    } else {
        REQUIRE(group == NULL);
        check_error(&err, path);
    }
}

/* The {"users", "groups"} batch, as POST /roster parses it. */
static void parse_batch(json_t *root)
{
    ssp_roster_change *changes = NULL;
    ssp_group **groups = NULL;
    size_t n = 0, n_groups = 0;
    ssp_error err;

    memset(&err, 0, sizeof err);
    if (ssp_roster_parse_batch(root, FUZZ_SERVER, &changes, &n, &err) != 0) {
        REQUIRE(changes == NULL && n == 0);
        check_error(&err, "");
        return;
    }
    if (ssp_groups_parse_batch(root, FUZZ_SERVER, &groups, &n_groups, &err) == 0) {
        REQUIRE(n_groups == json_array_size(json_object_get(root, "groups")));
        for (size_t i = 0; i < n_groups; i++) {
            for (size_t j = 0; j < i; j++)
                REQUIRE(strcmp(groups[i]->group_id, groups[j]->group_id) != 0);
            check_group(groups[i], FUZZ_SERVER);
        }
        ssp_groups_free(groups, n_groups);
    } else {
        REQUIRE(groups == NULL && n_groups == 0);
        check_error(&err, "groups");
    }
    ssp_roster_changes_free(changes, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    json_t *groups;

    if (root == NULL)
        return 0;
    {
        /* the stored form's reader takes any input without crashing */
        ssp_group *stored = NULL;
        ssp_error err;

        if (ssp_group_parse_stored(root, &stored, &err) == 0) {
            check_group(stored, NULL);
            free(stored);
        } else {
            REQUIRE(stored == NULL);
            check_error(&err, "");
        }
    }
    parse_one(NULL, root, "", NULL);
    parse_one(NULL, root, "", FUZZ_SERVER);
    parse_one("course-1", root, "", FUZZ_SERVER);
    groups = json_object_get(root, "groups");
    for (size_t i = 0; i < json_array_size(groups) && i < 8; i++) {
        char path[32];

        snprintf(path, sizeof path, "groups[%zu]", i);
        parse_one(NULL, json_array_get(groups, i), path, FUZZ_SERVER);
    }
    parse_batch(root);
    json_decref(root);
    return 0;
}
