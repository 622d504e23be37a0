/*
 * Allocation failures while an engine is made and opened: its config and
 * roster, the journal's replay and compaction, and jansson running out.
 */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "groups.h"
#include "ssp_private.h"
#include "testutil.h"

static void chaos_engine_new_fails_cleanly_at_every_allocation(void)
{
    char *config = tu_config("/var/lib/ssp", FULL_CONFIG_MEMBERS);
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_error err;
        ssp_engine *engine;

        memset(&err, 0, sizeof err);
        arm(n);
        engine = ssp_engine_new(config, strlen(config), TU_SERVER, TU_WORKER, &err);
        disarm();
        ssp_engine_free(engine);
        if (chaos_hit == HIT_NONE) {
            CHECK(engine != NULL);
            break;
        }
        judge(&o, n, engine ? 0 : -1, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_engine_new", &o);
    free(config);
}

/* A data dir whose files are put back before every run. */
typedef struct store_copy {
    char *journal_path, *journal;
    char *audit_path, *audit;
} store_copy;

static void store_save(store_copy *copy, const char *dir)
{
    copy->journal_path = tu_path(dir, "roster.jsonl");
    copy->audit_path = tu_path(dir, "audit.jsonl");
    copy->journal = tu_read_file(copy->journal_path, NULL);
    copy->audit = tu_read_file(copy->audit_path, NULL);
}

static bool store_restore(const store_copy *copy)
{
    return tu_write_file(copy->journal_path, copy->journal, false) == 0 &&
           tu_write_file(copy->audit_path, copy->audit, false) == 0;
}

static void store_free(store_copy *copy)
{
    free(copy->journal_path);
    free(copy->journal);
    free(copy->audit_path);
    free(copy->audit);
}

/* An engine on a store with a journal of `batches` times 2 lines about 2
 * users and an audit log of 3 records; the files are saved in `copy`. */
static bool make_store(tu_fixture *fx, store_copy *copy, int batches)
{
    char *body = tu_format("{\"users\": [%s]}",
                           "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": "
                           "\"gym-nord\", \"role\": \"student\"}]}, {\"user_id\": "
                           "\"@ben:school.example\", \"schools\": [{\"school\": \"gym-sued\", "
                           "\"role\": \"student\"}]}");
    size_t upserted;
    bool ok = true;

    memset(copy, 0, sizeof *copy);
    if (!tu_setup(fx, FULL_CONFIG_MEMBERS)) {
        free(body);
        return false;
    }
    for (int i = 0; i < batches && ok; i++)
        ok = ssp_roster_upsert_batch(fx->engine, body, strlen(body), &upserted, &fx->err) == 0;
    free(body);
    for (int i = 0; i < 3; i++)
        deny_login(fx->engine, "@zoe:school.example");
    ssp_engine_free(fx->engine);
    fx->engine = NULL;
    if (!ok)
        CHECK_FAIL("cannot fill the store: %s", fx->err.message);
    store_save(copy, fx->dir);
    return ok && copy->journal != NULL && copy->audit != NULL;
}

/* Opens an engine on the restored store with allocation `n` failing (0:
 * none); returns the ssp_engine_open result. */
static int open_with_failure(tu_fixture *fx, const store_copy *copy, long n, ssp_error *err,
                             size_t *roster_size, bool engine_only)
{
    ssp_engine *engine;
    int rc;

    if (!store_restore(copy)) {
        CHECK_FAIL("cannot restore the store");
        return -2;
    }
    engine = ssp_engine_new(fx->config, strlen(fx->config), TU_SERVER, TU_WORKER, err);
    if (engine == NULL) {
        CHECK_FAIL("ssp_engine_new: %s", err->message);
        return -2;
    }
    memset(err, 0, sizeof *err);
    if (engine_only)
        arm_engine_only(n);
    else
        arm(n);
    rc = ssp_engine_open(engine, err);
    disarm();
    *roster_size = ssp_roster_size(engine);
    ssp_engine_free(engine);
    return rc;
}

static void chaos_engine_open_fails_cleanly_at_every_engine_allocation(void)
{
    /* 1200 journal lines are replayed and then compacted (when the journal
     * has 2 * users + 1024 lines or more). Only the engine's own allocations
     * fail here; jansson's are the next test's. The replay makes the same
     * few allocations per line, so after the first 150 allocations only the
     * last 300 (the last lines, the compaction, the audit log) are failed,
     * to keep the run short. */
    tu_fixture fx;
    store_copy copy;
    outcomes o;
    ssp_error err;
    size_t size;
    long total, n;

    memset(&o, 0, sizeof o);
    if (!make_store(&fx, &copy, 600))
        goto out;
    REQUIRE_OK(open_with_failure(&fx, &copy, 0, &err, &size, true), err);
    total = chaos_count;
    REQUIRE(total > 450);
    for (n = 1; n <= total; n = n == 150 ? total - 300 : n + 1) {
        int rc = open_with_failure(&fx, &copy, n, &err, &size, true);

        REQUIRE(rc != -2 && chaos_hit != HIT_NONE);
        o.runs++;
        /* compaction reports a failed allocation as SSP_ERR_IO "cannot write
         * roster.jsonl.tmp: Cannot allocate memory": any code is accepted */
        judge_run(&o, n, rc, &err, false);
    }
    CHECK_OK(open_with_failure(&fx, &copy, total + 1, &err, &size, true), err);
    CHECK(chaos_hit == HIT_NONE);
    CHECK_INT_EQ(size, 2);
    report("ssp_engine_open (1200-line journal, compacted; engine's allocations)", &o);
out:
    store_free(&copy);
    tu_teardown(&fx);
}

/* True when the message is what a jansson load that failed for want of
 * memory turns into: jansson leaves line -1 and an empty text. */
static bool looks_like_silent_jansson_failure(const char *message)
{
    return strstr(message, "line -1, column -1: ") != NULL || strstr(message, "is corrupt ()") != NULL;
}

static void chaos_jansson_running_out_of_memory_is_reported_as_nomem(void)
{
    /* When json_loadb fails for want of memory, jansson 2.14 leaves the
     * error as initialised: line -1, column -1, text "" (load.c never sets
     * json_error_out_of_memory, and json_error_code() would read the last
     * byte of text, which jansson never wrote: valgrind flags that). Such a
     * failure must come back as out of memory, not as bad input:
     *   config: not "config: invalid JSON at line -1, column -1: "
     *   PUT:    not "body: invalid JSON at line -1, column -1: " (a 400 M_BAD_JSON)
     *   open:   not "<path> line 1 is corrupt (); restore it from a backup" */
    tu_fixture fx;
    store_copy copy;
    outcomes o;
    ssp_error err;
    size_t size;
    long total, n;
    char *config = tu_config("/var/lib/ssp", FULL_CONFIG_MEMBERS);
    int config_claims = 0, put_claims = 0, open_claims = 0;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        memset(&err, 0, sizeof err);
        arm(n);
        (void)ssp_config_check(config, strlen(config), &err);
        disarm();
        if (chaos_hit == HIT_NONE)
            break;
        if (looks_like_silent_jansson_failure(err.message) && config_claims++ == 0)
            COMPLAIN(&o, "config, N=%ld: out of memory reported as [%d] %s", n, (int)err.code,
                     err.message);
    }
    if (!make_store(&fx, &copy, 600))
        goto out;
    fx.engine = tu_engine(fx.config, &fx.err);
    REQUIRE(fx.engine != NULL);
    for (n = 1; n <= MAX_RUNS; n++) {
        char *entry = NULL;
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_put(fx.engine, "@anna:school.example", PUT_BODY, strlen(PUT_BODY), &entry,
                            &fx.err);
        disarm();
        free(entry);
        if (chaos_hit == HIT_NONE)
            break;
        if (rc != 0 && looks_like_silent_jansson_failure(fx.err.message) && put_claims++ == 0)
            COMPLAIN(&o, "PUT, N=%ld: out of memory reported as [%d] %s", n, (int)fx.err.code,
                     fx.err.message);
    }
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    REQUIRE_OK(open_with_failure(&fx, &copy, 0, &err, &size, false), err);
    total = chaos_count;
    for (n = 1; n <= total; n = n == 150 ? total - 300 : n + 1) {
        int rc = open_with_failure(&fx, &copy, n, &err, &size, false);

        REQUIRE(rc != -2);
        if (rc != 0 && looks_like_silent_jansson_failure(err.message) && open_claims++ == 0)
            COMPLAIN(&o, "open, N=%ld: out of memory reported as [%d] %s", n, (int)err.code,
                     err.message);
    }
    if (config_claims + put_claims + open_claims > 0)
        CHECK_FAIL("runs that reported jansson running out of memory as bad input: config %d, "
                   "PUT %d, open %d",
                   config_claims, put_claims, open_claims);
out:
    free(config);
    store_free(&copy);
    tu_teardown(&fx);
}

static void chaos_engine_open_does_not_call_the_journal_corrupt_when_memory_runs_out(void)
{
    /* Running out of memory while replaying the journal (in
     * ssp_roster_parse_entry or the roster's hash table) is SSP_ERR_NOMEM,
     * not "<path> line N is corrupt (...); restore it from a backup": a
     * transient memory shortage must not send the operator to the backups.
     * Only the engine's own allocations fail here; jansson's are covered by
     * chaos_jansson_running_out_of_memory_is_reported_as_nomem. */
    tu_fixture fx;
    store_copy copy;
    outcomes o;
    ssp_error err;
    size_t size;
    long n;

    memset(&o, 0, sizeof o);
    if (!make_store(&fx, &copy, 2))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        int rc = open_with_failure(&fx, &copy, n, &err, &size, true);

        REQUIRE(rc != -2);
        if (chaos_hit == HIT_NONE)
            break;
        o.runs++;
        if (rc != 0 && (err.code != SSP_ERR_NOMEM || strstr(err.message, "is corrupt") != NULL))
            COMPLAIN(&o, "N=%ld: out of memory reported as [%d] %s", n, (int)err.code,
                     err.message);
    }
    CHECK_INT_EQ(o.complaints, 0);
out:
    store_free(&copy);
    tu_teardown(&fx);
}

/* The PostgreSQL store opened during an outage: the groups come from the
 * local cache (a COPY binary stream), whose loader fails with SSP_ERR_NOMEM at
 * each of its allocations and leaves nothing half loaded. */
static void chaos_pgstore_open_from_the_groups_cache_fails_cleanly(void)
{
    tu_fixture fx;
    outcomes o;
    ssp_error err;
    char *cache = NULL, *stream = NULL;
    size_t len = 0;
    long n;
    const char *berg[] = {"@berg:school.example", NULL};
    const char *pupils[] = {"@ali:school.example", "@b,o:school.example", NULL};
    const tu_group_row course = {"course-1", "gym-nord", "course", "Mathe", NULL, "active",
                                 false, true, 0, "3", berg, pupils};
    const tu_group_row team = {"team-2", "gym-nord", "team", "Team", "Thema", "archived",
                               true, false, 5, NULL, NULL, pupils};

    memset(&o, 0, sizeof o);
    /* Port 1 on loopback: nothing listens, the store starts from its caches. */
    if (!tu_setup(&fx, "\"database\": \"host=127.0.0.1 port=1 dbname=x user=x\""))
        goto out;
    cache = tu_path(fx.dir, "main.groups-cache");
    tu_copy_header(&stream, &len);
    tu_copy_group_row(&stream, &len, &course);
    tu_copy_group_row(&stream, &len, &team);
    tu_copy_trailer(&stream, &len);
    REQUIRE(tu_write_bytes(cache, stream, len) == 0);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_engine *engine = ssp_engine_new(fx.config, strlen(fx.config), TU_SERVER, TU_WORKER, &err);
        int rc;

        REQUIRE(engine != NULL);
        memset(&err, 0, sizeof err);
        arm_engine_only(n);
        rc = ssp_engine_open(engine, &err);
        disarm();
        if (rc == 0)
            CHECK_INT_EQ(ssp_groups_count(engine), 2);
        ssp_engine_free(engine);
        if (chaos_hit == HIT_NONE) {
            CHECK_OK(rc, err);
            break;
        }
        o.runs++;
        /* other files of the open (the spill file, the outbox) report a
         * failed allocation as an I/O error: any code is accepted */
        judge_run(&o, n, rc, &err, false);
    }
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_engine_open (PostgreSQL unreachable, groups from the cache)", &o);
out:
    free(cache);
    free(stream);
    tu_teardown(&fx);
}

void run_chaos_engine_tests(void)
{
    RUN(chaos_engine_new_fails_cleanly_at_every_allocation);
    RUN(chaos_engine_open_fails_cleanly_at_every_engine_allocation);
    RUN(chaos_engine_open_does_not_call_the_journal_corrupt_when_memory_runs_out);
    RUN(chaos_jansson_running_out_of_memory_is_reported_as_nomem);
    RUN(chaos_pgstore_open_from_the_groups_cache_fails_cleanly);
}
