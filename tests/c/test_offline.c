/* The command line's open (ssp_open_options.offline) and ssp_store_sync.
 * Embedded store: reads beside an engine that holds data_dir, without
 * changing any of its store files, and no roster writes. PostgreSQL
 * without a server: the offline open fails instead of starting from the
 * cache, and a sync reports the changes that did not reach the database.
 * The tests with a server are in tests/system/test_cli.py. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ssp.h"
#include "tests.h"
#include "testutil.h"

#define DOWN_DB "\"database\": \"host=127.0.0.1 port=1 dbname=x user=x\""
#define ANNA "@anna:school.example"
#define HALF "@half:school.example"
#define GYM_TEACHER "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]}"
#define SCHOOLS "\"schools\": {\"gym-nord\": {\"messenger\": true}}"
#define TORN "{\"user_id\": \"" HALF "\", \"schools\": [{\"school\": \"gym-"

static const char *const STORE_FILES[] = {"roster.jsonl", "reconcile.jsonl", "audit.jsonl", NULL};

static void deny_login(ssp_engine *engine, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("login of %s was not denied", actor);
}

static ssp_engine *offline_engine(const char *config, ssp_error *err)
{
    ssp_open_options options = {.offline = true};
    ssp_engine *engine = ssp_engine_new(config, strlen(config), TU_SERVER, "cli", err);

    if (engine != NULL && ssp_engine_open_with(engine, &options, err) != 0) {
        ssp_engine_free(engine);
        engine = NULL;
    }
    return engine;
}

/* rmdir succeeds only on an empty directory; it is made again for the
 * next look. */
static bool dir_is_empty(const char *dir)
{
    return rmdir(dir) == 0 && mkdir(dir, 0700) == 0;
}

static void offline_embedded_reads_beside_a_running_engine_and_changes_none_of_its_files(void)
{
    tu_fixture fx;
    ssp_engine *cli = NULL;
    char *entry = NULL, *page = NULL, *response = NULL, *status = NULL, *request = NULL;
    char *roster_path = NULL, *reads_path = NULL, *before[3] = {NULL, NULL, NULL};
    char *scratch = NULL, *old_tmpdir = NULL, *reads = NULL;
    const char *tmpdir = getenv("TMPDIR");
    ssp_audit_filter filter = {0};
    int fds_before;

    if (tmpdir != NULL)
        old_tmpdir = strdup(tmpdir);
    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    CHECK_OK(tu_put(&fx, ANNA, GYM_TEACHER), fx.err);
    deny_login(fx.engine, "@x:school.example");
    deny_login(fx.engine, "@y:school.example");
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    /* The running engine is in the middle of an append. */
    roster_path = tu_path(fx.dir, "roster.jsonl");
    if (tu_write_file(roster_path, TORN, true) != 0) {
        CHECK_FAIL("cannot append to %s", roster_path);
        goto out;
    }
    for (int i = 0; STORE_FILES[i] != NULL; i++) {
        char *path = tu_path(fx.dir, STORE_FILES[i]);

        before[i] = tu_read_file(path, NULL);
        free(path);
        if (before[i] == NULL) {
            CHECK_FAIL("cannot read %s", STORE_FILES[i]);
            goto out;
        }
    }
    /* The private copy goes to TMPDIR and is gone once open returns. */
    scratch = tu_tempdir();
    setenv("TMPDIR", scratch, 1);
    fds_before = tu_open_fds();

    cli = offline_engine(fx.config, &fx.err);
    if (cli == NULL) {
        CHECK_FAIL("offline open: [%d] %s", (int)fx.err.code, fx.err.message);
        goto out;
    }
    CHECK(dir_is_empty(scratch));
    CHECK_OK(ssp_roster_get(cli, ANNA, &entry, &fx.err), fx.err);
    CHECK(entry != NULL && strstr(entry, "teacher") != NULL);
    free(entry);
    entry = NULL;
    CHECK_OK(ssp_roster_get(cli, HALF, &entry, &fx.err), fx.err);
    CHECK(entry == NULL);
    filter.limit = 10;
    CHECK_OK(ssp_audit_query(cli, &filter, &page, &fx.err), fx.err);
    CHECK(page != NULL && strstr(page, "@x:school.example") != NULL &&
          strstr(page, "@y:school.example") != NULL);
    request = tu_format("{\"op\": \"audit\", \"reader\": \"%s\", \"server_admin\": false, "
                        "\"query\": {\"rule\": \"not_on_roster\"}}",
                        ssp_engine_reconciler_user(cli));
    CHECK_OK(ssp_audit_view(cli, request, strlen(request), &response, &fx.err), fx.err);
    CHECK(response != NULL && strstr(response, "\"status\":200") != NULL);
    CHECK_OK(ssp_reconcile_status(cli, &status, &fx.err), fx.err);
    CHECK(status != NULL && strstr(status, "gym-nord") != NULL);
    /* Nothing is written: the roster refuses, the sync has nothing to wait for. */
    CHECK_INT_EQ(ssp_roster_put(cli, ANNA, GYM_TEACHER, strlen(GYM_TEACHER), &entry, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_STATE);
    CHECK_OK(ssp_store_sync(cli, 1000, &fx.err), fx.err);
    ssp_engine_free(cli);
    cli = NULL;
    CHECK_INT_EQ(tu_open_fds(), fds_before);
    CHECK(dir_is_empty(scratch));

    for (int i = 0; STORE_FILES[i] != NULL; i++) {
        char *path = tu_path(fx.dir, STORE_FILES[i]);
        char *after = tu_read_file(path, NULL);

        if (after == NULL || strcmp(after, before[i]) != 0)
            CHECK_FAIL("%s changed", STORE_FILES[i]);
        free(after);
        free(path);
    }
    /* The read is in the read log, as the command line's. */
    reads_path = tu_path(fx.dir, "audit-reads.jsonl");
    reads = tu_read_file(reads_path, NULL);
    CHECK(reads != NULL && strstr(reads, "\"worker\":\"cli\"") != NULL &&
          strstr(reads, "\"access\":\"operator\"") != NULL);
out:
    if (old_tmpdir != NULL)
        setenv("TMPDIR", old_tmpdir, 1);
    else
        unsetenv("TMPDIR");
    ssp_engine_free(cli);
    for (int i = 0; i < 3; i++)
        free(before[i]);
    tu_rmtree(scratch);
    free(scratch);
    free(old_tmpdir);
    free(entry);
    free(page);
    free(response);
    free(status);
    free(request);
    free(roster_path);
    free(reads_path);
    free(reads);
    tu_teardown(&fx);
}

static void offline_embedded_open_of_a_missing_data_dir_creates_nothing(void)
{
    char *dir = tu_tempdir();
    char *data_dir = tu_path(dir, "store");
    char *config = tu_config(data_dir, SCHOOLS);
    ssp_error err = {0};
    ssp_engine *cli = offline_engine(config, &err);
    struct stat st;

    CHECK(cli != NULL);
    if (cli != NULL)
        CHECK_INT_EQ(ssp_roster_size(cli), 0);
    CHECK(stat(data_dir, &st) != 0 && errno == ENOENT);
    ssp_engine_free(cli);
    tu_rmtree(dir);
    free(dir);
    free(data_dir);
    free(config);
}

static void offline_postgres_open_fails_when_the_database_is_unreachable(void)
{
    char *dir = tu_tempdir();
    char *config = tu_config(dir, DOWN_DB);
    ssp_error err = {0};
    int fds_before = tu_open_fds();
    ssp_engine *cli = offline_engine(config, &err);

    CHECK(cli == NULL);
    CHECK_INT_EQ(err.code, SSP_ERR_UNAVAILABLE);
    CHECK_CONTAINS(err.message, "cannot connect");
    CHECK_INT_EQ(tu_open_fds(), fds_before);
    ssp_engine_free(cli);
    tu_rmtree(dir);
    free(dir);
    free(config);
}

static void store_sync_reports_roster_changes_that_did_not_reach_the_database(void)
{
    tu_fixture fx;
    char *entry = NULL;

    if (!tu_setup(&fx, DOWN_DB))
        goto out;
    CHECK_OK(ssp_roster_put(fx.engine, ANNA, GYM_TEACHER, strlen(GYM_TEACHER), &entry, &fx.err),
             fx.err);
    CHECK_INT_EQ(ssp_store_sync(fx.engine, 20, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_IO);
    CHECK_CONTAINS(fx.err.message, "roster changes not pushed in time");
    CHECK_CONTAINS(fx.err.message, "cannot connect");
out:
    free(entry);
    tu_teardown(&fx);
}

static void store_sync_on_the_embedded_store_returns_at_once(void)
{
    tu_fixture fx;

    if (!tu_setup(&fx, NULL))
        goto out;
    CHECK_OK(tu_put(&fx, ANNA, GYM_TEACHER), fx.err);
    deny_login(fx.engine, "@x:school.example");
    CHECK_OK(ssp_store_sync(fx.engine, 0, &fx.err), fx.err);
out:
    tu_teardown(&fx);
}

void run_offline_tests(void)
{
    RUN(offline_embedded_reads_beside_a_running_engine_and_changes_none_of_its_files);
    RUN(offline_embedded_open_of_a_missing_data_dir_creates_nothing);
    RUN(offline_postgres_open_fails_when_the_database_is_unreachable);
    RUN(store_sync_reports_roster_changes_that_did_not_reach_the_database);
    RUN(store_sync_on_the_embedded_store_returns_at_once);
}
