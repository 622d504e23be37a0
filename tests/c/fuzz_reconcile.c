/*
 * libFuzzer target: the reconcile state's replay (embedded/reconcile_jsonl.c,
 * replay_reconcile_line via ssp_jsonl_replay in files.c).
 *
 * Writes the input as data_dir/reconcile.jsonl in a temporary data dir made
 * once per process, reads it with ssp_reconcile_status_offline, opens an
 * engine on it (which replays, cuts off a torn last line and may compact),
 * calls ssp_reconcile_status and ssp_reconcile_due, and frees the engine.
 * Checked for any input: open and the offline read agree on success, an
 * error has a code and a message, the outputs are the documented JSON, the
 * offline and the online status are the same, and nothing leaks. The data
 * dir's files are removed before every run, and the dir at exit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ssp_private.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Every file the engine may leave in an embedded data dir. */
static const char *const FILES[] = {"reconcile.jsonl", "reconcile.jsonl.tmp", "roster.jsonl",
                                    "roster.jsonl.tmp", "audit.jsonl", NULL};

static char dir[256];
static char *config;
static size_t config_len;

static void path_of(char *out, size_t size, const char *name)
{
    REQUIRE((size_t)snprintf(out, size, "%s/%s", dir, name) < size);
}

static void remove_files(void)
{
    char path[512];

    for (int i = 0; FILES[i] != NULL; i++) {
        path_of(path, sizeof path, FILES[i]);
        unlink(path);
    }
}

static void remove_dir(void)
{
    remove_files();
    rmdir(dir);
    free(config);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    json_t *json;

    (void)argc;
    (void)argv;
    json_object_seed(1); /* a fixed hash seed: runs are reproducible */
    snprintf(dir, sizeof dir, "%s/ssp-fuzz-reconcile-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    REQUIRE(mkdtemp(dir) != NULL);
    json = json_pack("{s:s, s:{s:{s:b, s:b, s:b}, s:{}}}", "data_dir", dir, "schools", "gym-nord",
                     "messenger", 1, "teachers_room", 1, "announcement_room", 1, "rs-ost");
    REQUIRE(json != NULL);
    config = json_dumps(json, JSON_COMPACT);
    REQUIRE(config != NULL);
    config_len = strlen(config);
    json_decref(json);
    atexit(remove_dir);
    return 0;
}

static void check_error(const ssp_error *err)
{
    size_t len = strnlen(err->message, sizeof err->message);

    REQUIRE(len > 0 && len < sizeof err->message);
    REQUIRE(err->code != SSP_OK);
}

/* {"schools": {"gym-nord": {...}, "rs-ost": {...}}}, in config order. */
static void check_status(const char *text)
{
    json_t *root = json_loads(text, 0, NULL), *schools, *school;
    const char *id;
    size_t i = 0;

    REQUIRE(root != NULL);
    schools = json_object_get(root, "schools");
    REQUIRE(json_is_object(schools) && json_object_size(schools) == 2);
    json_object_foreach(schools, id, school) {
        json_t *pending = json_object_get(school, "pending");

        REQUIRE(strcmp(id, i++ == 0 ? "gym-nord" : "rs-ost") == 0);
        REQUIRE(json_is_boolean(json_object_get(school, "messenger")));
        REQUIRE(json_is_integer(pending) && json_integer_value(pending) >= 0);
        REQUIRE(json_is_string(json_object_get(school, "teachers_room")) ||
                json_is_null(json_object_get(school, "teachers_room")));
        REQUIRE(json_is_string(json_object_get(school, "announcement_room")) ||
                json_is_null(json_object_get(school, "announcement_room")));
        REQUIRE(json_is_string(json_object_get(school, "last_error")) ||
                json_is_null(json_object_get(school, "last_error")));
    }
    json_decref(root);
}

/* At most max marks, each with a school and a user_id. */
static void check_due(const char *text, size_t max)
{
    json_t *list = json_loads(text, 0, NULL), *item;
    size_t i;

    REQUIRE(json_is_array(list) && json_array_size(list) <= max);
    json_array_foreach(list, i, item) {
        REQUIRE(json_is_string(json_object_get(item, "school")));
        REQUIRE(json_is_string(json_object_get(item, "user_id")));
        REQUIRE(json_is_integer(json_object_get(item, "generation")));
        REQUIRE(json_is_integer(json_object_get(item, "attempts")));
    }
    json_decref(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    ssp_error err = {0};
    ssp_engine *engine;
    char *offline = NULL, *status = NULL, *marks = NULL;
    int offline_rc, open_rc;
    FILE *file;

    remove_files();
    path_of(path, sizeof path, "reconcile.jsonl");
    file = fopen(path, "wb");
    REQUIRE(file != NULL);
    REQUIRE(fwrite(data, 1, size, file) == size);
    REQUIRE(fclose(file) == 0);

    offline_rc = ssp_reconcile_status_offline(config, config_len, &offline, &err);
    if (offline_rc != 0) {
        REQUIRE(offline == NULL);
        check_error(&err);
    } else {
        check_status(offline);
    }

    memset(&err, 0, sizeof err);
    engine = ssp_engine_new(config, config_len, "school.example", "main", &err);
    REQUIRE(engine != NULL);
    open_rc = ssp_engine_open(engine, &err);
    REQUIRE(open_rc == offline_rc);
    if (open_rc != 0) {
        check_error(&err);
        ssp_engine_free(engine);
        free(offline);
        return 0;
    }

    REQUIRE(ssp_reconcile_status(engine, &status, &err) == 0);
    check_status(status);
    /* the same replay: the same state, whether read only or opened */
    REQUIRE(strcmp(status, offline) == 0);

    REQUIRE(ssp_reconcile_due(engine, INT64_MAX, 1000, &marks, &err) == 0);
    check_due(marks, 1000);
    free(marks);
    marks = NULL;
    REQUIRE(ssp_reconcile_due(engine, 0, 2, &marks, &err) == 0);
    check_due(marks, 2);

    free(marks);
    free(status);
    free(offline);
    ssp_engine_free(engine);
    return 0;
}
