/*
 * libFuzzer target: the audit for readers (audit_view.c).
 *
 * The first byte chooses what the rest is:
 * - even: a request to ssp_audit_view (its JSON parser and query checks),
 *   on an engine opened once per process on a temporary embedded store
 *   whose roster has a school admin;
 * - odd: the contents of data_dir/audit.jsonl and audit-reads.jsonl (the
 *   backwards line reader, the bisection for `from`, the chart's counts),
 *   read by a fresh engine through fixed requests.
 * Checked for any input: a call succeeds with the documented response
 * ({"status": 200, "body"} or {"status": 403, "error"}) or fails with a
 * code and a message; nothing leaks.
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

static const char *const FILES[] = {"audit.jsonl", "audit-reads.jsonl", "roster.jsonl",
                                    "roster.jsonl.tmp", "reconcile.jsonl", "reconcile.jsonl.tmp",
                                    NULL};
static const char ROSTER[] =
    "{\"users\": [{\"user_id\": \"@head:school.example\", \"schools\": [{\"school\": \"gym-nord\","
    " \"role\": \"admin\"}]}]}";
static const char *const FIXED[] = {
    "{\"op\": \"audit\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
    " \"query\": {\"limit\": 3}}",
    "{\"op\": \"audit\", \"reader\": \"@dpo:school.example\", \"server_admin\": false,"
    " \"query\": {\"limit\": 2, \"from\": 5, \"since\": 1}}",
    "{\"op\": \"chart\", \"reader\": \"@dpo:school.example\", \"server_admin\": false,"
    " \"query\": {\"since\": 1, \"until\": 120000001, \"bucket\": 60000}}",
    "{\"op\": \"reads\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
    " \"query\": {\"limit\": 2}}",
};

static char dir[256];
static char *config;
static ssp_engine *shared;

static void remove_files(void)
{
    char path[512];

    for (int i = 0; FILES[i] != NULL; i++) {
        REQUIRE((size_t)snprintf(path, sizeof path, "%s/%s", dir, FILES[i]) < sizeof path);
        unlink(path);
    }
}

static ssp_engine *open_engine(void)
{
    ssp_error err = {0};
    size_t upserted;
    ssp_engine *engine = ssp_engine_new(config, strlen(config), "school.example", "main", &err);

    REQUIRE(engine != NULL);
    if (ssp_engine_open(engine, &err) != 0) {
        ssp_engine_free(engine);
        return NULL;
    }
    REQUIRE(ssp_roster_upsert_batch(engine, ROSTER, sizeof ROSTER - 1, &upserted, &err) == 0);
    return engine;
}

static void at_exit(void)
{
    ssp_engine_free(shared);
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
    json_object_seed(1);
    snprintf(dir, sizeof dir, "%s/ssp-fuzz-audit-view-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    REQUIRE(mkdtemp(dir) != NULL);
    json = json_pack("{s:s, s:{s:[s]}, s:{s:{}}}", "data_dir", dir, "audit", "readers",
                     "@dpo:school.example", "schools", "gym-nord");
    REQUIRE(json != NULL);
    config = json_dumps(json, JSON_COMPACT);
    REQUIRE(config != NULL);
    json_decref(json);
    atexit(at_exit);
    return 0;
}

static void call(ssp_engine *engine, const char *request, size_t len)
{
    ssp_error err = {0};
    char *response = NULL;

    if (ssp_audit_view(engine, request, len, &response, &err) == 0) {
        json_t *root = json_loads(response, 0, NULL);
        json_int_t status = json_integer_value(json_object_get(root, "status"));

        REQUIRE(root != NULL);
        REQUIRE((status == 200 && json_object_get(root, "body") != NULL) ||
                (status == 403 && json_is_string(json_object_get(root, "error"))));
        json_decref(root);
        free(response);
    } else {
        REQUIRE(response == NULL);
        REQUIRE(err.code != SSP_OK && err.message[0] != '\0');
    }
}

static void write_file(const char *name, const uint8_t *data, size_t size)
{
    char path[512];
    FILE *file;

    REQUIRE((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path);
    file = fopen(path, "wb");
    REQUIRE(file != NULL);
    REQUIRE(fwrite(data, 1, size, file) == size);
    fclose(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssp_engine *engine;

    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0) {
        if (shared == NULL) {
            remove_files();
            shared = open_engine();
            REQUIRE(shared != NULL);
        }
        call(shared, (const char *)data + 1, size - 1);
        return 0;
    }
    ssp_engine_free(shared);
    shared = NULL;
    remove_files();
    write_file("audit.jsonl", data + 1, size - 1);
    write_file("audit-reads.jsonl", data + 1, size - 1);
    engine = open_engine();
    if (engine == NULL)
        return 0; /* a file open refuses is an error with a message, checked elsewhere */
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
        call(engine, FIXED[i], strlen(FIXED[i]));
    ssp_engine_free(engine);
    return 0;
}
