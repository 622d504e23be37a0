/* The engine's lifecycle and roster API end to end (engine.c, roster.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define ANNA "@anna:school.example"
#define BEN "@ben:school.example"
#define ENTRY_GYM_STUDENT "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"

static void engine_new_rejects_an_invalid_config_with_the_key_path(void)
{
    static const char text[] = "{\"data_dir\": \"/tmp/x\", \"schools\": {\"a\": {\"messenger\": 1}}}";
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(text, strlen(text), TU_SERVER, TU_WORKER, &err);

    CHECK(engine == NULL);
    CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(err.message, "schools.a.messenger: expected a boolean");
    ssp_engine_free(engine);
    ssp_engine_free(NULL);
}

static void engine_new_does_not_touch_the_data_dir(void)
{
    char *dir = tu_tempdir();
    char *data_dir = tu_path(dir, "not-yet");
    char *config = tu_config(data_dir, NULL);
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(config, strlen(config), TU_SERVER, TU_WORKER, &err);
    char *entry = (char *)"x";
    size_t upserted = 7;
    bool existed = true;

    REQUIRE(engine != NULL);
    CHECK(access(data_dir, F_OK) != 0);
    CHECK_STR_EQ(ssp_engine_policy_event_type(engine), SSP_DEFAULT_POLICY_EVENT_TYPE);
    /* the roster API refuses until the store is open */
    CHECK_INT_EQ(ssp_roster_put(engine, ANNA, "{}", 2, &entry, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK_STR_EQ(err.message, "the store is not open");
    CHECK(entry == NULL);
    CHECK_INT_EQ(ssp_roster_get(engine, ANNA, &entry, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK_INT_EQ(ssp_roster_delete(engine, ANNA, &existed, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK(!existed);
    CHECK_INT_EQ(ssp_roster_upsert_batch(engine, "{\"users\": []}", 13, &upserted, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK_INT_EQ(upserted, 0);
    CHECK_INT_EQ(ssp_audit_flush(engine, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_STATE);
    CHECK_INT_EQ(ssp_roster_size(engine), 0);
    ssp_engine_free(engine);
    tu_rmtree(dir);
    free(dir);
    free(data_dir);
    free(config);
}

static void engine_open_creates_missing_data_dir_parents(void)
{
    char *dir = tu_tempdir();
    char *data_dir = tu_path(dir, "a/b/c");
    char *config = tu_config(data_dir, NULL);
    char *journal = tu_path(data_dir, "roster.jsonl");
    char *audit = tu_path(data_dir, "audit.jsonl");
    ssp_error err = {0};
    ssp_engine *engine = tu_engine(config, &err);

    if (engine == NULL)
        CHECK_FAIL("open failed: %s", err.message);
    CHECK(access(journal, F_OK) == 0);
    CHECK(access(audit, F_OK) == 0);
    ssp_engine_free(engine);
    tu_rmtree(dir);
    free(dir);
    free(data_dir);
    free(config);
    free(journal);
    free(audit);
}

static void engine_open_fails_when_data_dir_is_a_file(void)
{
    char *dir = tu_tempdir();
    char *data_dir = tu_path(dir, "file");
    char *config = tu_config(data_dir, NULL);
    ssp_error err = {0};
    ssp_engine *engine;

    REQUIRE(tu_write_file(data_dir, "not a dir", false) == 0);
    engine = tu_engine(config, &err);
    CHECK(engine == NULL);
    CHECK_INT_EQ(err.code, SSP_ERR_IO);
    CHECK_CONTAINS(err.message, data_dir);
    ssp_engine_free(engine);
    tu_rmtree(dir);
    free(dir);
    free(data_dir);
    free(config);
}

static void engine_open_twice_is_refused(void)
{
    tu_fixture fx;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_INT_EQ(ssp_engine_open(fx.engine, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_STATE);
    CHECK_STR_EQ(fx.err.message, "the store is already open");
out:
    tu_teardown(&fx);
}

static void engine_open_with_a_database_requires_data_dir(void)
{
    static const char text[] = "{\"database\": \"postgresql://x/y\"}";
    ssp_error err = {0};
    ssp_engine *engine = ssp_engine_new(text, strlen(text), TU_SERVER, TU_WORKER, &err);

    REQUIRE(engine != NULL);
    CHECK_INT_EQ(ssp_engine_open(engine, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
    CHECK_CONTAINS(err.message, "data_dir: required with database");
    ssp_engine_free(engine);
}

static void roster_put_returns_and_stores_the_entry(void)
{
    tu_fixture fx;
    char *entry = NULL, *got = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 0);
    REQUIRE_OK(ssp_roster_put(fx.engine, ANNA, ENTRY_GYM_STUDENT, strlen(ENTRY_GYM_STUDENT), &entry,
                              &fx.err),
               fx.err);
    CHECK_STR_EQ(entry, "{\"user_id\":\"@anna:school.example\",\"schools\":[{\"school\":\"gym-nord\","
                        "\"role\":\"student\"}]}");
    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &got, &fx.err), fx.err);
    CHECK_STR_EQ(got, entry);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
out:
    free(entry);
    free(got);
    tu_teardown(&fx);
}

static void roster_get_of_an_unknown_user_gives_null(void)
{
    tu_fixture fx;
    char *got = (char *)"x";

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &got, &fx.err), fx.err);
    CHECK(got == NULL);
    CHECK_OK(ssp_roster_get(fx.engine, "not a user id", &got, &fx.err), fx.err);
    CHECK(got == NULL);
out:
    tu_teardown(&fx);
}

static void roster_put_replaces_the_whole_entry(void)
{
    tu_fixture fx;
    char *got = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, ENTRY_GYM_STUDENT), fx.err);
    REQUIRE_OK(tu_put(&fx, ANNA,
                      "{\"schools\": [{\"school\": \"rs-ost\", \"role\": \"teacher\"},"
                      " {\"school\": \"gs\", \"role\": \"admin\"}]}"),
               fx.err);
    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &got, &fx.err), fx.err);
    CHECK(tu_json_equal_text(got, "{\"user_id\": \"@anna:school.example\", \"schools\": ["
                                  "{\"school\": \"rs-ost\", \"role\": \"teacher\"},"
                                  "{\"school\": \"gs\", \"role\": \"admin\"}]}"));
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
out:
    free(got);
    tu_teardown(&fx);
}

static void roster_put_with_no_schools_removes_the_user(void)
{
    tu_fixture fx;
    char *got = NULL, *entry = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, ENTRY_GYM_STUDENT), fx.err);
    REQUIRE_OK(ssp_roster_put(fx.engine, ANNA, "{\"schools\": []}", 15, &entry, &fx.err), fx.err);
    CHECK_STR_EQ(entry, "{\"user_id\":\"@anna:school.example\",\"schools\":[]}");
    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &got, &fx.err), fx.err);
    CHECK(got == NULL);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 0);
out:
    free(got);
    free(entry);
    tu_teardown(&fx);
}

static void roster_put_errors_leave_the_roster_unchanged(void)
{
    tu_fixture fx;
    char *got = NULL, *entry = (char *)"x";
    static const char bad_json[] = "{\"schools\": [}";
    static const char bad_role[] = "{\"schools\": [{\"school\": \"gym\", \"role\": \"boss\"}]}";

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, ENTRY_GYM_STUDENT), fx.err);

    CHECK_INT_EQ(ssp_roster_put(fx.engine, ANNA, bad_json, strlen(bad_json), &entry, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_SYNTAX);
    CHECK_CONTAINS(fx.err.message, "body: invalid JSON at line 1, column ");
    CHECK(entry == NULL);

    CHECK_INT_EQ(ssp_roster_put(fx.engine, ANNA, bad_role, strlen(bad_role), &entry, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "schools[0].role: expected one of teacher, student, admin");
    CHECK(entry == NULL);

    CHECK_INT_EQ(ssp_roster_put(fx.engine, "anna", ENTRY_GYM_STUDENT, strlen(ENTRY_GYM_STUDENT),
                                &entry, &fx.err),
                 -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "user_id: expected a Matrix user id (@user:server)");

    CHECK_INT_EQ(ssp_roster_put(fx.engine, ANNA, "{\"schools\": [], \"user_id\": \"@x:y\"}", 34,
                                &entry, &fx.err),
                 -1);
    CHECK_STR_EQ(fx.err.message, "user_id: unknown field");

    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &got, &fx.err), fx.err);
    CHECK(tu_json_equal_text(got, "{\"user_id\": \"@anna:school.example\", \"schools\": "
                                  "[{\"school\": \"gym-nord\", \"role\": \"student\"}]}"));
out:
    free(got);
    tu_teardown(&fx);
}

static void roster_put_body_need_not_be_nul_terminated(void)
{
    tu_fixture fx;
    size_t len = strlen(ENTRY_GYM_STUDENT);
    char *body = malloc(len);
    char *entry = NULL;

    if (!tu_setup(&fx, NULL) || body == NULL)
        goto out;
    memcpy(body, ENTRY_GYM_STUDENT, len);
    CHECK_OK(ssp_roster_put(fx.engine, ANNA, body, len, &entry, &fx.err), fx.err);
    CHECK(entry != NULL);
out:
    free(entry);
    free(body);
    tu_teardown(&fx);
}

static void roster_put_of_a_user_id_that_is_not_utf8_is_an_input_error(void)
{
    /* Matrix ids are UTF-8; the C API takes raw bytes. Such an id must be
     * refused as bad input, not reported as out of memory. */
    tu_fixture fx;
    char *entry = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_INT_EQ(ssp_roster_put(fx.engine, "@caf\xe9:school.example", ENTRY_GYM_STUDENT,
                                strlen(ENTRY_GYM_STUDENT), &entry, &fx.err),
                 -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_CONTAINS(fx.err.message, "user_id");
    CHECK(entry == NULL);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 0);
out:
    free(entry);
    tu_teardown(&fx);
}

static void roster_put_refuses_remote_users_and_bad_text_naming_the_field(void)
{
    static const char nul_school[] =
        "{\"schools\": [{\"school\": \"gym\\u0000nord\", \"role\": \"student\"}]}";
    static const char nl_school[] =
        "{\"schools\": [{\"school\": \"gym\\nnord\", \"role\": \"student\"}]}";
    tu_fixture fx;
    char *entry = NULL;
    bool existed = true;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_INT_EQ(ssp_roster_put(fx.engine, "@eve:evil.example", ENTRY_GYM_STUDENT,
                                strlen(ENTRY_GYM_STUDENT), &entry, &fx.err),
                 -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "user_id: @eve:evil.example is a user of another server; the "
                                 "roster holds users of school.example only");
    CHECK_INT_EQ(ssp_roster_put(fx.engine, ANNA, nul_school, strlen(nul_school), &entry, &fx.err),
                 -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "schools[0].school: contains a control character");
    CHECK_INT_EQ(ssp_roster_put(fx.engine, ANNA, nl_school, strlen(nl_school), &entry, &fx.err),
                 -1);
    CHECK_STR_EQ(fx.err.message, "schools[0].school: contains a control character");
    CHECK(entry == NULL);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 0);
    /* deleting checks the syntax only, so old remote entries can go */
    CHECK_OK(ssp_roster_delete(fx.engine, "@eve:evil.example", &existed, &fx.err), fx.err);
    CHECK(!existed);
    CHECK_INT_EQ(ssp_roster_delete(fx.engine, "@eve\n:school.example", &existed, &fx.err), -1);
    CHECK_STR_EQ(fx.err.message, "user_id: contains a control character");
out:
    free(entry);
    tu_teardown(&fx);
}

static void roster_upsert_batch_refuses_duplicates_and_remote_users_changing_nothing(void)
{
    static const char dup[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": []},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": []},"
        "{\"user_id\": \"@carl:school.example\", \"schools\": []},"
        "{\"user_id\": \"@anna:school.example\", \"schools\": []}]}";
    static const char remote[] =
        "{\"users\": [{\"user_id\": \"@ben:school.example\", \"schools\": []},"
        "{\"user_id\": \"@eve:other.example\", \"schools\": []}]}";
    tu_fixture fx;
    size_t upserted = 9;

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, ENTRY_GYM_STUDENT), fx.err);
    REQUIRE_OK(tu_put(&fx, BEN, ENTRY_GYM_STUDENT), fx.err);
    CHECK_INT_EQ(ssp_roster_upsert_batch(fx.engine, dup, strlen(dup), &upserted, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "users[3].user_id: duplicate of users[0]");
    CHECK_INT_EQ(upserted, 0);
    CHECK_INT_EQ(ssp_roster_upsert_batch(fx.engine, remote, strlen(remote), &upserted, &fx.err),
                 -1);
    CHECK_STR_EQ(fx.err.message, "users[1].user_id: @eve:other.example is a user of another "
                                 "server; the roster holds users of school.example only");
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 2);
out:
    tu_teardown(&fx);
}

static void roster_delete_removes_the_user_and_reports_whether_it_existed(void)
{
    tu_fixture fx;
    bool existed = false;
    char *got = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, ENTRY_GYM_STUDENT), fx.err);
    REQUIRE_OK(tu_put(&fx, BEN, ENTRY_GYM_STUDENT), fx.err);
    CHECK_OK(ssp_roster_delete(fx.engine, ANNA, &existed, &fx.err), fx.err);
    CHECK(existed);
    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &got, &fx.err), fx.err);
    CHECK(got == NULL);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
    CHECK_OK(ssp_roster_delete(fx.engine, ANNA, &existed, &fx.err), fx.err);
    CHECK(!existed);
    CHECK_INT_EQ(ssp_roster_delete(fx.engine, "@bad", &existed, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "user_id: expected a Matrix user id (@user:server)");
out:
    free(got);
    tu_teardown(&fx);
}

static void roster_upsert_batch_writes_every_user(void)
{
    tu_fixture fx;
    size_t upserted = 0;
    char *got = NULL;
    static const char body[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
        "\"student\"}]},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
        "\"teacher\"}]},"
        "{\"user_id\": \"@carl:school.example\", \"schools\": []},"
        "{\"user_id\": \"@dora:school.example\", \"schools\": [{\"school\": \"rs-ost\", \"role\": "
        "\"admin\"}]}]}";

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, "@carl:school.example", ENTRY_GYM_STUDENT), fx.err);
    REQUIRE_OK(ssp_roster_upsert_batch(fx.engine, body, strlen(body), &upserted, &fx.err), fx.err);
    CHECK_INT_EQ(upserted, 4);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 3);
    CHECK_OK(ssp_roster_get(fx.engine, "@dora:school.example", &got, &fx.err), fx.err);
    CHECK(tu_json_equal_text(got, "{\"user_id\": \"@dora:school.example\", \"schools\": "
                                  "[{\"school\": \"rs-ost\", \"role\": \"admin\"}]}"));
    free(got);
    got = NULL;
    CHECK_OK(ssp_roster_get(fx.engine, "@carl:school.example", &got, &fx.err), fx.err);
    CHECK(got == NULL);
out:
    free(got);
    tu_teardown(&fx);
}

static void roster_upsert_batch_with_one_bad_entry_changes_nothing(void)
{
    tu_fixture fx;
    size_t upserted = 9;
    char *journal = NULL, *before = NULL, *after = NULL;
    static const char body[] =
        "{\"users\": ["
        "{\"user_id\": \"@anna:school.example\", \"schools\": []},"
        "{\"user_id\": \"@ben:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
        "\"teacher\"}]},"
        "{\"user_id\": \"carl\", \"schools\": []}]}";

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, ENTRY_GYM_STUDENT), fx.err);
    journal = tu_path(fx.dir, "roster.jsonl");
    before = tu_read_file(journal, NULL);
    CHECK_INT_EQ(ssp_roster_upsert_batch(fx.engine, body, strlen(body), &upserted, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(fx.err.message, "users[2].user_id: expected a Matrix user id (@user:server)");
    CHECK_INT_EQ(upserted, 0);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
    after = tu_read_file(journal, NULL);
    CHECK_STR_EQ(after, before);
    CHECK_INT_EQ(ssp_roster_upsert_batch(fx.engine, "{\"users\": [", 11, &upserted, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_SYNTAX);
out:
    free(journal);
    free(before);
    free(after);
    tu_teardown(&fx);
}

static void roster_empty_upsert_batch_is_accepted(void)
{
    tu_fixture fx;
    size_t upserted = 9;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_OK(ssp_roster_upsert_batch(fx.engine, "{\"users\": []}", 13, &upserted, &fx.err), fx.err);
    CHECK_INT_EQ(upserted, 0);
out:
    tu_teardown(&fx);
}

/* ---- concurrency smoke test: writers and deciders at once ---- */

typedef struct thread_ctx {
    ssp_engine *engine;
    int index;
    int failures;
} thread_ctx;

static void *writer_thread(void *arg)
{
    thread_ctx *ctx = arg;
    ssp_error err;

    for (int i = 0; i < 100; i++) {
        char user[64];
        char *entry = NULL;
        bool existed;

        snprintf(user, sizeof user, "@w%d-%d:school.example", ctx->index, i % 10);
        if (ssp_roster_put(ctx->engine, user, ENTRY_GYM_STUDENT, strlen(ENTRY_GYM_STUDENT), &entry,
                           &err) != 0)
            ctx->failures++;
        free(entry);
        if (i % 3 == 0 && ssp_roster_delete(ctx->engine, user, &existed, &err) != 0)
            ctx->failures++;
    }
    return NULL;
}

static void *decider_thread(void *arg)
{
    thread_ctx *ctx = arg;

    for (int i = 0; i < 3000; i++) {
        char user[64];
        ssp_request req;
        ssp_decision out;

        snprintf(user, sizeof user, "@w%d-%d:school.example", i % 2, i % 10);
        memset(&req, 0, sizeof req);
        req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
        req.actor = user;
        req.actor_is_admin = SSP_FACT_NO;
        ssp_decide(ctx->engine, &req, &out);
        if (out.verdict != SSP_VERDICT_ALLOW && out.verdict != SSP_VERDICT_DENY)
            ctx->failures++;
    }
    return NULL;
}

static void roster_writes_and_decisions_may_run_on_several_threads(void)
{
    tu_fixture fx;
    pthread_t threads[4];
    thread_ctx ctx[4];
    int failures = 0;

    if (!tu_setup(&fx, "\"schools\": {\"gym-nord\": {\"messenger\": true}}"))
        goto out;
    for (int i = 0; i < 4; i++) {
        ctx[i].engine = fx.engine;
        ctx[i].index = i % 2;
        ctx[i].failures = 0;
        REQUIRE(pthread_create(&threads[i], NULL, i < 2 ? writer_thread : decider_thread, &ctx[i]) ==
                0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        failures += ctx[i].failures;
    }
    CHECK_INT_EQ(failures, 0);
    /* each writer ends with users 0..9, of which those last touched at
     * i % 3 == 0 were deleted: i = 90..99 leaves 90, 93, 96, 99 deleted */
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 12);
    if (tu_reopen(&fx))
        CHECK_INT_EQ(ssp_roster_size(fx.engine), 12);
out:
    tu_teardown(&fx);
}

void run_roster_api_tests(void)
{
    RUN(engine_new_rejects_an_invalid_config_with_the_key_path);
    RUN(engine_new_does_not_touch_the_data_dir);
    RUN(engine_open_creates_missing_data_dir_parents);
    RUN(engine_open_fails_when_data_dir_is_a_file);
    RUN(engine_open_twice_is_refused);
    RUN(engine_open_with_a_database_requires_data_dir);
    RUN(roster_put_returns_and_stores_the_entry);
    RUN(roster_get_of_an_unknown_user_gives_null);
    RUN(roster_put_replaces_the_whole_entry);
    RUN(roster_put_with_no_schools_removes_the_user);
    RUN(roster_put_errors_leave_the_roster_unchanged);
    RUN(roster_put_body_need_not_be_nul_terminated);
    RUN(roster_put_of_a_user_id_that_is_not_utf8_is_an_input_error);
    RUN(roster_put_refuses_remote_users_and_bad_text_naming_the_field);
    RUN(roster_upsert_batch_refuses_duplicates_and_remote_users_changing_nothing);
    RUN(roster_delete_removes_the_user_and_reports_whether_it_existed);
    RUN(roster_upsert_batch_writes_every_user);
    RUN(roster_upsert_batch_with_one_bad_entry_changes_nothing);
    RUN(roster_empty_upsert_batch_is_accepted);
    RUN(roster_writes_and_decisions_may_run_on_several_threads);
}
