/*
 * libFuzzer target: the reading of a createRoom request by the room shaping
 * (room_shape.c), on an engine created once per process whose config opens
 * two event types in one-way rooms (one with characters a JSON pointer
 * escapes).
 *
 * Any input that jansson reads either yields a list of well-formed "add"
 * operations or fails with SSP_ERR_NOMEM; applying the operations in order
 * to a copy of the request never meets a path that does not exist, and
 * leaves guest access closed unless the request set it with an object
 * content. Nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/room_shape.h"
#include "ssp_private.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const char CONFIG[] = "{\"data_dir\": \"/nonexistent\", \"moderator_level\": 40, "
                             "\"one_way_allowed_events\": [\"m.reaction\", \"a/b~c\"]}";
static ssp_engine *engine;

static void at_exit(void)
{
    ssp_engine_free(engine);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ssp_error err = {0};

    (void)argc;
    (void)argv;
    json_object_seed(1);
    ssp_global_init();
    /* Never opened: the shaping reads the config only. */
    engine = ssp_engine_new(CONFIG, sizeof CONFIG - 1, "school.example", "main", &err);
    REQUIRE(engine != NULL);
    atexit(at_exit);
    return 0;
}

/* The token of a JSON pointer, unescaped into buf (RFC 6901). */
static void unescape(const char *token, size_t len, char *buf)
{
    size_t at = 0;

    for (size_t i = 0; i < len; i++) {
        if (token[i] == '~') {
            REQUIRE(i + 1 < len && (token[i + 1] == '0' || token[i + 1] == '1'));
            buf[at++] = token[++i] == '0' ? '~' : '/';
        } else {
            buf[at++] = token[i];
        }
    }
    buf[at] = '\0';
}

/* Applies one "add" the way the adapter does; every step must exist. */
static void apply(json_t *document, const char *path, json_t *value)
{
    json_t *parent = document;
    char token[512];

    REQUIRE(path[0] == '/');
    for (;;) {
        const char *start = path + 1, *slash = strchr(start, '/');
        size_t len = slash ? (size_t)(slash - start) : strlen(start);

        REQUIRE(len < sizeof token / 2);
        unescape(start, len, token);
        if (slash == NULL) {
            if (json_is_array(parent)) {
                REQUIRE(strcmp(token, "-") == 0);
                REQUIRE(json_array_append(parent, value) == 0);
            } else {
                REQUIRE(json_is_object(parent));
                REQUIRE(json_object_set(parent, token, value) == 0);
            }
            return;
        }
        if (json_is_array(parent)) {
            char *end;
            unsigned long index = strtoul(token, &end, 10);

            REQUIRE(*end == '\0' && index < json_array_size(parent));
            parent = json_array_get(parent, index);
        } else {
            parent = json_object_get(parent, token);
        }
        REQUIRE(parent != NULL);
        path = slash;
    }
}

/* Whether Synapse's room would have (m.room.guest_access, "") with an object content. */
static bool guest_access_set(const json_t *request)
{
    const json_t *initial_state = json_object_get(request, "initial_state"), *found = NULL;

    for (size_t i = 0; i < json_array_size(initial_state); i++) {
        const json_t *entry = json_array_get(initial_state, i);
        const json_t *state_key = json_object_get(entry, "state_key");

        if (json_is_string(json_object_get(entry, "type")) &&
            strcmp(json_string_value(json_object_get(entry, "type")), "m.room.guest_access") == 0 &&
            json_string_length(json_object_get(entry, "type")) == strlen("m.room.guest_access") &&
            (state_key == NULL || (json_is_string(state_key) && json_string_length(state_key) == 0)))
            found = entry;
    }
    return found != NULL && json_is_object(json_object_get(found, "content"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssp_error err = {0};
    json_t *request = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *changes = NULL, *shaped;
    const json_t *initial_state;
    size_t i;
    json_t *op;

    if (request == NULL)
        return 0;
    if (ssp_room_shape(engine, request, &changes, &err) != 0) {
        REQUIRE(changes == NULL && err.code == SSP_ERR_NOMEM);
        json_decref(request);
        return 0;
    }
    REQUIRE(json_is_array(changes));
    shaped = json_deep_copy(request);
    REQUIRE(shaped != NULL);
    json_array_foreach(changes, i, op) {
        REQUIRE(json_object_size(op) == 3);
        REQUIRE(json_is_string(json_object_get(op, "op")) &&
                strcmp(json_string_value(json_object_get(op, "op")), "add") == 0);
        REQUIRE(json_is_string(json_object_get(op, "path")) && json_object_get(op, "value") != NULL);
        REQUIRE(json_is_object(shaped));
        apply(shaped, json_string_value(json_object_get(op, "path")), json_object_get(op, "value"));
    }
    initial_state = json_object_get(shaped, "initial_state");
    if (json_is_object(request) && json_is_array(initial_state))
        REQUIRE(guest_access_set(shaped));
    if (!json_is_object(request))
        REQUIRE(json_array_size(changes) == 0);
    json_decref(shaped);
    json_decref(changes);
    json_decref(request);
    return 0;
}
