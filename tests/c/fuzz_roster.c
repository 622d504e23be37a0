/*
 * libFuzzer target: the roster parsers (roster.c).
 *
 * Loads the input as JSON like the admin API does (\u0000 allowed, so the
 * field checks see it), then runs it through ssp_roster_parse_batch (POST
 * /roster, with and without a server name) and ssp_roster_parse_entry (PUT
 * /users/..., and a batch item with its path). Every accepted entry must
 * serialise with ssp_roster_user_to_json and parse back to the same
 * memberships; every rejection must carry a message. Everything is freed.
 */
#include <stdint.h>
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
#define FUZZ_USER "@fuzz:" FUZZ_SERVER

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1); /* a fixed hash seed: runs are reproducible */
    return 0;
}

static void check_error(const ssp_error *err)
{
    size_t len = strnlen(err->message, sizeof err->message);

    REQUIRE(len > 0 && len < sizeof err->message);
    REQUIRE(err->code == SSP_ERR_INPUT || err->code == SSP_ERR_NOMEM);
}

static bool same_memberships(const ssp_roster_user *a, const ssp_roster_user *b)
{
    if (a->n != b->n || strcmp(a->user_id, b->user_id) != 0)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->memberships[i].school, b->memberships[i].school) != 0 ||
            a->memberships[i].role != b->memberships[i].role)
            return false;
    }
    return true;
}

/* An accepted entry serialises, and the serialised form parses back to it. */
static void check_round_trip(const char *user_id, const ssp_roster_user *user)
{
    json_t *json = ssp_roster_user_to_json(user_id, user);
    ssp_roster_user *again = NULL;
    ssp_error err;
    char *text;

    REQUIRE(json != NULL);
    REQUIRE(json_is_string(json_object_get(json, "user_id")));
    text = json_dumps(json, JSON_COMPACT);
    REQUIRE(text != NULL);
    REQUIRE(ssp_roster_parse_entry(user_id, json, "entry", &again, &err) == 0);
    REQUIRE(same_memberships(user, again));
    for (size_t i = 0; i < user->n; i++) {
        size_t len = strlen(user->memberships[i].school);

        REQUIRE(len > 0 && len <= SSP_SCHOOL_ID_MAX);
        for (size_t k = 0; k < len; k++)
            REQUIRE((unsigned char)user->memberships[i].school[k] > ' ' &&
                    user->memberships[i].school[k] != 0x7f);
        REQUIRE(user->memberships[i].role <= SSP_ROLE_ADMIN);
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(user->memberships[i].school, user->memberships[j].school) != 0);
    }
    free(again);
    free(text);
    json_decref(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    ssp_roster_change *changes = NULL;
    ssp_roster_user *user = NULL;
    size_t n = 0;
    ssp_error err;

    if (root == NULL)
        return 0;

    for (int on_server = 0; on_server < 2; on_server++) {
        const char *server = on_server ? FUZZ_SERVER : NULL;

        memset(&err, 0, sizeof err);
        if (ssp_roster_parse_batch(root, server, &changes, &n, &err) == 0) {
            REQUIRE(changes != NULL);
            for (size_t i = 0; i < n; i++) {
                REQUIRE(ssp_user_id_valid(changes[i].user_id));
                REQUIRE(strlen(changes[i].user_id) <= SSP_USER_ID_MAX);
                if (server != NULL)
                    REQUIRE(strcmp(strchr(changes[i].user_id, ':') + 1, server) == 0);
                for (size_t j = 0; j < i; j++)
                    REQUIRE(strcmp(changes[i].user_id, changes[j].user_id) != 0);
                REQUIRE(changes[i].user != NULL);
                REQUIRE(strcmp(changes[i].user->user_id, changes[i].user_id) == 0);
                check_round_trip(changes[i].user_id, changes[i].user);
            }
            ssp_roster_changes_free(changes, n);
        } else {
            REQUIRE(changes == NULL && n == 0);
            check_error(&err);
        }
        changes = NULL;
        n = 0;
    }

    memset(&err, 0, sizeof err);
    if (ssp_roster_parse_entry(FUZZ_USER, root, "", &user, &err) == 0) {
        json_t *out = ssp_roster_user_to_json(FUZZ_USER, user);

        REQUIRE(user != NULL && out != NULL);
        /* PUT gives back exactly the schools it was sent */
        REQUIRE(json_equal(json_object_get(out, "schools"), json_object_get(root, "schools")));
        check_round_trip(FUZZ_USER, user);
        json_decref(out);
        free(user);
    } else {
        REQUIRE(user == NULL);
        check_error(&err);
    }

    memset(&err, 0, sizeof err);
    user = NULL;
    if (ssp_roster_parse_entry(FUZZ_USER, root, "users[0]", &user, &err) == 0) {
        check_round_trip(FUZZ_USER, user);
        free(user);
    } else {
        REQUIRE(user == NULL);
        check_error(&err);
    }

    json_decref(root);
    return 0;
}
