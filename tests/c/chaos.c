/*
 * Allocation-failure ("chaos") tests, after jansson's test_chaos.c.
 *
 * Every allocation the engine makes goes through malloc, calloc, realloc or
 * strdup, which this binary wraps with the linker (-Wl,--wrap=...); every
 * allocation jansson makes goes through json_set_alloc_funcs. Both count
 * into one counter, and the Nth allocation fails. Each test runs an
 * operation with N = 1, 2, ... until a run completes without hitting the
 * injected failure. Every run before that must fail cleanly (-1 or NULL,
 * an error code and message, outputs cleared; SSP_ERR_NOMEM when it was
 * one of the engine's own allocations) or, when jansson swallowed its own
 * failure, succeed; and leave nothing behind, which LeakSanitizer (make
 * asan) and valgrind (make valgrind) check.
 *
 * Only allocations of the thread that armed the counter are counted, so
 * the engine's audit writer thread never fails.
 *
 * To see where the Nth allocation is: SSP_TEST_FILTER=<test name>
 * CHAOS_BACKTRACE_N=<N> build/plain/chaos (link with -rdynamic for names).
 */
#define CHECK_MAIN
#include <execinfo.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "rules/room_shape.h"
#include "testutil.h"

/* ---- the allocation hooks ---- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *ptr, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
char *__wrap_strdup(const char *s);

typedef enum { HIT_NONE = 0, HIT_ENGINE, HIT_JANSSON } hit_kind;

static __thread bool chaos_armed;    /* count this thread's allocations */
static __thread long chaos_count;    /* allocations since arming */
static __thread long chaos_fail_at;  /* fail this one (1-based); 0: none */
static __thread hit_kind chaos_hit;  /* whose allocation was failed, if any */
static __thread bool chaos_engine_only; /* jansson's allocations are not counted */

static bool chaos_fail_now(hit_kind kind)
{
    if (!chaos_armed)
        return false;
    chaos_count++;
    if (chaos_count == chaos_fail_at) {
        const char *trace = getenv("CHAOS_BACKTRACE_N");

        chaos_hit = kind;
        if (trace != NULL && atol(trace) == chaos_fail_at) {
            void *frames[32];
            int depth = backtrace(frames, 32);

            fprintf(stderr, "---- allocation %ld fails here:\n", chaos_fail_at);
            backtrace_symbols_fd(frames, depth, 2);
        }
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t size)
{
    return chaos_fail_now(HIT_ENGINE) ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return chaos_fail_now(HIT_ENGINE) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *ptr, size_t size)
{
    return chaos_fail_now(HIT_ENGINE) ? NULL : __real_realloc(ptr, size);
}

char *__wrap_strdup(const char *s)
{
    return chaos_fail_now(HIT_ENGINE) ? NULL : __real_strdup(s);
}

static void *json_malloc_hook(size_t size)
{
    if (chaos_engine_only)
        return __real_malloc(size);
    return chaos_fail_now(HIT_JANSSON) ? NULL : __real_malloc(size);
}

static void json_free_hook(void *ptr)
{
    free(ptr);
}

static void arm(long fail_at)
{
    chaos_engine_only = false;
    chaos_count = 0;
    chaos_fail_at = fail_at;
    chaos_hit = HIT_NONE;
    chaos_armed = true;
}

/* Fails only the engine's own allocations: jansson's always succeed. */
static void arm_engine_only(long fail_at)
{
    arm(fail_at);
    chaos_engine_only = true;
}

static void disarm(void)
{
    chaos_armed = false;
    chaos_engine_only = false;
}

/* Upper bound on N, in case an operation never stops allocating. */
#define MAX_RUNS 20000

/*
 * What the runs of one operation did. The rules:
 * - a failed allocation of the engine's own (malloc/calloc/realloc/strdup
 *   from csrc) must make the operation fail with SSP_ERR_NOMEM and the
 *   message "out of memory";
 * - a failed allocation inside jansson must make it fail with some error
 *   code and message, or it may succeed: jansson 2.14 ignores some of its
 *   own allocation failures (lex_save in load.c, object keys in dump.c), so
 *   an operation can go through with the failure unnoticed;
 * - the run that hits no failure must succeed, and ends the loop.
 * Leaks and memory errors in any run are found by LeakSanitizer/valgrind.
 */
typedef struct outcomes {
    long runs;
    int engine_nomem;
    int engine_other; /* engine's allocation failed, reported with another code */
    int jansson_failed;
    int jansson_tolerated;
    int complaints;
    char jansson_example[SSP_ERROR_MESSAGE_MAX + 32];
    char engine_example[SSP_ERROR_MESSAGE_MAX + 32];
} outcomes;

/* Reports the first few problems of a test, counts the rest. */
#define COMPLAIN(o, ...)                                                                           \
    do {                                                                                           \
        if ((o)->complaints++ < 5)                                                                 \
            CHECK_FAIL(__VA_ARGS__);                                                               \
        else                                                                                       \
            check_state()->current_failures++;                                                     \
    } while (0)

/* Checks one run that hit the injected failure; rc is 0 or -1. With
 * `nomem_code`, a failed allocation of the engine's must come back as
 * SSP_ERR_NOMEM "out of memory"; without, any error code and message do. */
static void judge_run(outcomes *o, long n, int rc, const ssp_error *err, bool nomem_code)
{
    if (rc != 0 && (err->code == SSP_OK || err->message[0] == '\0'))
        COMPLAIN(o, "N=%ld: failed without an error code and message", n);
    if (chaos_hit == HIT_ENGINE) {
        if (rc == 0) {
            COMPLAIN(o, "N=%ld: the engine's allocation failed, yet the call succeeded", n);
        } else if (err->code == SSP_ERR_NOMEM && strcmp(err->message, "out of memory") == 0) {
            o->engine_nomem++;
        } else {
            if (nomem_code)
                COMPLAIN(o, "N=%ld: the engine's allocation failed, reported as [%d] \"%s\"", n,
                         (int)err->code, err->message);
            if (o->engine_other++ == 0)
                snprintf(o->engine_example, sizeof o->engine_example, "[%d] %s", (int)err->code,
                         err->message);
        }
        return;
    }
    if (rc == 0) {
        o->jansson_tolerated++;
        return;
    }
    if (o->jansson_failed++ == 0)
        snprintf(o->jansson_example, sizeof o->jansson_example, "[%d] %s", (int)err->code,
                 err->message);
}

static void judge(outcomes *o, long n, int rc, const ssp_error *err)
{
    judge_run(o, n, rc, err, true);
}

static void report(const char *what, const outcomes *o)
{
    printf("     %s: %ld allocation failures injected\n", what, o->runs);
    printf("       engine's allocation failed: %d -> NOMEM", o->engine_nomem);
    if (o->engine_other)
        printf(", %d -> other errors, e.g. %s", o->engine_other, o->engine_example);
    printf("\n       jansson's allocation failed: %d -> error, %d unnoticed (call succeeded)%s%s\n",
           o->jansson_failed, o->jansson_tolerated, o->jansson_failed ? "; e.g. " : "",
           o->jansson_failed ? o->jansson_example : "");
}

static const char FULL_CONFIG_MEMBERS[] =
    "\"service_users\": [\"@bot:school.example\", \"@sync:school.example\"],"
    " \"policy_event_type\": \"de.example.school_room\","
    " \"moderator_level\": 75,"
    " \"one_way_allowed_events\": [\"m.reaction\", \"m.room.redaction\"],"
    " \"unlisted_users\": \"deny\","
    " \"strict_homeserver_config\": false,"
    " \"enforce\": true,"
    " \"audit\": {\"retention_days\": 30, \"include_content\": false},"
    " \"roster_feed\": {\"url\": \"amqp://sync:pw@127.0.0.1:1/school\", \"queue\": \"roster\"},"
    " \"schools\": {"
    "   \"gym-nord\": {\"messenger\": true, \"teachers_room\": false, \"announcement_room\": true,"
    "                \"room_creation\": \"everyone\", \"enforce\": true},"
    "   \"gym-sued\": {\"messenger\": false},"
    "   \"rs-ost\": {\"room_creation\": \"service_users\"},"
    "   \"gs-west\": null, \"gs-ost\": {}, \"bbs\": {}, \"fos\": {}, \"gym-mitte\": {}"
    " }";

#define PUT_BODY "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"

/* ---- config ---- */

static void chaos_config_check_fails_cleanly_at_every_allocation(void)
{
    char *config = tu_config("/var/lib/ssp", FULL_CONFIG_MEMBERS);
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_config_check(config, strlen(config), &err);
        disarm();
        if (chaos_hit == HIT_NONE) {
            CHECK_OK(rc, err);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_config_check", &o);
    free(config);
}

/* ---- roster parsing ---- */

static const char BATCH[] =
    "{\"users\": ["
    "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
    "\"student\"}]},"
    "{\"user_id\": \"@ben:school.example\", \"schools\": []},"
    "{\"user_id\": \"@carl:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": "
    "\"teacher\"}, {\"school\": \"gym-nord\", \"role\": \"admin\"}]}]}";

static const char ENTRY[] =
    "{\"schools\": [{\"school\": \"gym-sued\", \"role\": \"teacher\"}, {\"school\": \"gym-nord\","
    " \"role\": \"admin\"}, {\"school\": \"rs-ost\", \"role\": \"student\"}]}";

static void chaos_roster_parse_batch_fails_cleanly_at_every_allocation(void)
{
    json_t *body = tu_json(BATCH); /* loaded before arming: only the parser is under test */
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_roster_change *changes = (ssp_roster_change *)&changes;
        size_t count = 99;
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_roster_parse_batch(body, "school.example", &changes, &count, &err);
        disarm();
        if (rc != 0 && (changes != NULL || count != 0))
            CHECK_FAIL("N=%ld: failed ssp_roster_parse_batch left changes %p count %zu", n,
                       (void *)changes, count);
        if (rc == 0) {
            CHECK_INT_EQ(count, 3);
            ssp_roster_changes_free(changes, count);
        }
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_parse_batch", &o);
    json_decref(body);
}

static void chaos_roster_check_batch_fails_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        char *users = (char *)"x";
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_roster_check_batch(BATCH, strlen(BATCH), "school.example", &users, &err);
        disarm();
        if (rc != 0 && users != NULL)
            CHECK_FAIL("N=%ld: failed ssp_roster_check_batch left users %p", n, (void *)users);
        free(rc == 0 ? users : NULL);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_check_batch", &o);
}

static void chaos_roster_parse_entry_and_to_json_fail_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        json_error_t jerr;
        json_t *body, *out = NULL;
        ssp_roster_user *user = (ssp_roster_user *)&user;
        ssp_error err;
        int rc = -1;
        char *text = NULL;

        memset(&err, 0, sizeof err);
        arm(n);
        /* the whole path of a PUT body: load, parse, serialise */
        body = json_loads(ENTRY, JSON_REJECT_DUPLICATES, &jerr);
        if (body != NULL) {
            rc = ssp_roster_parse_entry("@anna:school.example", body, "", &user, &err);
            if (rc == 0) {
                out = ssp_roster_user_to_json("@anna:school.example", user);
                text = out ? json_dumps(out, JSON_COMPACT) : NULL;
            } else if (user != NULL) {
                CHECK_FAIL("N=%ld: failed ssp_roster_parse_entry left *out set", n);
            }
        }
        disarm();
        if (rc == 0)
            free(user);
        free(text);
        json_decref(out);
        json_decref(body);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            CHECK(text != NULL);
            break;
        }
        if (body != NULL && rc != 0)
            judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("load + ssp_roster_parse_entry + ssp_roster_user_to_json", &o);
}

static void chaos_strmap_put_leaves_the_map_unchanged_when_growing_fails(void)
{
    ssp_strmap map;
    static char keys[7][8];
    int value = 1;

    ssp_strmap_init(&map);
    for (int i = 0; i < 7; i++)
        snprintf(keys[i], sizeof keys[i], "k%d", i);
    arm(1);
    CHECK_INT_EQ(ssp_strmap_put(&map, keys[0], &value, NULL), -1);
    disarm();
    CHECK_INT_EQ(map.count, 0);
    CHECK(ssp_strmap_get(&map, keys[0]) == NULL);
    for (int i = 0; i < 6; i++)
        REQUIRE_INT_EQ(ssp_strmap_put(&map, keys[i], &value, NULL), 0);
    arm(1);
    CHECK_INT_EQ(ssp_strmap_put(&map, keys[6], &value, NULL), -1);
    disarm();
    CHECK_INT_EQ(map.count, 6);
    CHECK(ssp_strmap_get(&map, keys[6]) == NULL);
    for (int i = 0; i < 6; i++)
        CHECK(ssp_strmap_get(&map, keys[i]) == &value);
    ssp_strmap_destroy(&map);
}

/* ---- the engine ---- */

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

static void deny_login(ssp_engine *engine, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(engine, &req, &d);
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


/* An open engine with 6 users: the 7th grows the roster's hash table. */
static bool setup_six_users(tu_fixture *fx)
{
    if (!tu_setup(fx, FULL_CONFIG_MEMBERS))
        return false;
    for (int i = 0; i < 6; i++) {
        char user[64];

        snprintf(user, sizeof user, "@pre%d:school.example", i);
        if (tu_put(fx, user, PUT_BODY) != 0) {
            CHECK_FAIL("cannot put %s: %s", user, fx->err.message);
            return false;
        }
    }
    return true;
}

static void chaos_roster_put_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    if (!setup_six_users(&fx))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *entry = (char *)"x", *got = NULL;
        bool existed;
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_put(fx.engine, "@new:school.example", PUT_BODY, strlen(PUT_BODY), &entry,
                            &fx.err);
        disarm();
        if (rc == 0) {
            CHECK(entry != NULL);
            free(entry);
            CHECK_INT_EQ(ssp_roster_size(fx.engine), 7);
        } else {
            CHECK(entry == NULL);
            /* a failed put changes nothing in memory */
            CHECK_OK(ssp_roster_get(fx.engine, "@new:school.example", &got, &fx.err), fx.err);
            if (got != NULL)
                CHECK_FAIL("N=%ld: a failed put left the user on the roster", n);
            free(got);
            CHECK_INT_EQ(ssp_roster_size(fx.engine), 6);
        }
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
        if (rc == 0) /* back to 6 users for the next run */
            CHECK_OK(ssp_roster_delete(fx.engine, "@new:school.example", &existed, &fx.err), fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_put (growing the table)", &o);
out:
    tu_teardown(&fx);
}

static void chaos_roster_put_that_failed_is_not_applied_after_a_restart(void)
{
    /* A put that returns an error must not come back after a restart. The
     * journal is written before the change is applied in memory, so applying
     * must not be able to fail afterwards (the hash table has to have room
     * before the journal write). Only the engine's own allocations fail. */
    tu_fixture fx;
    long n;
    int failed_users = 0, back_after_restart = 0;
    char user[64];

    if (!setup_six_users(&fx))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *entry = NULL;
        int rc;

        snprintf(user, sizeof user, "@new%ld:school.example", n);
        arm_engine_only(n);
        rc = ssp_roster_put(fx.engine, user, PUT_BODY, strlen(PUT_BODY), &entry, &fx.err);
        disarm();
        free(entry);
        if (chaos_hit == HIT_NONE)
            break;
        if (rc != 0)
            failed_users++;
        else
            CHECK_FAIL("N=%ld: the engine's allocation failed, yet the put succeeded", n);
    }
    REQUIRE(tu_reopen(&fx));
    for (long i = 1; i < n; i++) {
        char *got = NULL;

        snprintf(user, sizeof user, "@new%ld:school.example", i);
        CHECK_OK(ssp_roster_get(fx.engine, user, &got, &fx.err), fx.err);
        if (got != NULL) {
            if (back_after_restart == 0)
                CHECK_FAIL("the put of %s failed (allocation %ld failed, error returned), yet the "
                           "user is on the roster after a restart",
                           user, i);
            back_after_restart++;
            free(got);
        }
    }
    CHECK_INT_EQ(back_after_restart, 0);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 7);
    printf("     %d puts failed on the engine's allocations, %d of them back after a restart\n",
           failed_users, back_after_restart);
out:
    tu_teardown(&fx);
}

/* The 1-based number of the first line of the file that is not JSON, or 0. */
static long first_bad_line(const char *path)
{
    char *text = tu_read_file(path, NULL);
    char *line, *save = NULL;
    long number = 0, bad = 0;

    if (text == NULL)
        return -1;
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_t *value = json_loads(line, 0, NULL);

        number++;
        json_decref(value);
        if (value == NULL) {
            bad = number;
            break;
        }
    }
    free(text);
    return bad;
}

static void chaos_roster_write_never_leaves_a_corrupt_line_in_the_journal(void)
{
    /* jansson 2.14's json_dumps ignores a failed allocation while writing an
     * object key (dump.c: the result of dump_string(key, ...) is unchecked)
     * and returns success with the key cut short, e.g.
     * {"school":"gym-nord",:"student"}. Were such a line appended to the
     * journal, the next ssp_engine_open would fail with "line N is corrupt;
     * restore it from a backup": one allocation failure during a roster
     * write would keep Synapse from starting. */
    tu_fixture fx;
    long n, bad = 0, bad_at = 0;
    char *journal = NULL;
    char user[64];

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    journal = tu_path(fx.dir, "roster.jsonl");
    for (n = 1; n <= MAX_RUNS; n++) {
        char *entry = NULL;
        int rc;

        snprintf(user, sizeof user, "@new%ld:school.example", n);
        arm(n);
        rc = ssp_roster_put(fx.engine, user, PUT_BODY, strlen(PUT_BODY), &entry, &fx.err);
        disarm();
        free(entry);
        (void)rc;
        if (bad == 0 && (bad = first_bad_line(journal)) != 0)
            bad_at = n;
        if (chaos_hit == HIT_NONE)
            break;
    }
    if (bad != 0) {
        char *text = tu_read_file(journal, NULL), *line = text;

        for (long i = 1; line != NULL && i < bad; i++) {
            line = strchr(line, '\n');
            line = line ? line + 1 : NULL;
        }
        if (line != NULL && strchr(line, '\n') != NULL)
            *strchr(line, '\n') = '\0';
        CHECK_FAIL("N=%ld: the put wrote a line that is not JSON to the journal (line %ld): %s",
                   bad_at, bad, line ? line : "?");
        free(text);
    }
    CHECK(tu_reopen(&fx));
out:
    free(journal);
    tu_teardown(&fx);
}

static void chaos_roster_upsert_batch_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        size_t upserted = 99;
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_upsert_batch(fx.engine, BATCH, strlen(BATCH), &upserted, &fx.err);
        disarm();
        CHECK_INT_EQ(upserted, rc == 0 ? 3 : 0);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_upsert_batch", &o);
out:
    tu_teardown(&fx);
}

static void chaos_roster_delete_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS) || tu_put(&fx, "@anna:school.example", PUT_BODY) != 0)
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        bool existed = false;
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_delete(fx.engine, "@anna:school.example", &existed, &fx.err);
        disarm();
        CHECK(existed);
        CHECK_INT_EQ(ssp_roster_size(fx.engine), rc == 0 ? 0 : 1);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
        if (rc == 0)
            break;
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_delete", &o);
out:
    tu_teardown(&fx);
}

static void chaos_roster_feed_status_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *status = (char *)"x";
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_feed_status(fx.engine, &status, &fx.err);
        disarm();
        CHECK(rc == 0 ? status != NULL : status == NULL);
        if (rc == 0)
            free(status);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_feed_status", &o);
out:
    tu_teardown(&fx);
}

static void chaos_roster_get_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS) || tu_put(&fx, "@anna:school.example", PUT_BODY) != 0)
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *entry = (char *)"x";
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_get(fx.engine, "@anna:school.example", &entry, &fx.err);
        disarm();
        CHECK(rc == 0 ? entry != NULL : entry == NULL);
        if (rc == 0)
            free(entry);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_get", &o);
out:
    tu_teardown(&fx);
}

static void chaos_decision_does_not_change_when_the_audit_record_cannot_be_allocated(void)
{
    tu_fixture fx;
    long n;
    ssp_request req;

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = "@zoe:school.example";
    req.actor_is_admin = SSP_FACT_NO;
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_decision d;

        arm(n);
        ssp_decide(fx.engine, &req, &d);
        disarm();
        CHECK_INT_EQ(d.verdict, SSP_VERDICT_DENY);
        CHECK_INT_EQ(d.rule, SSP_RULE_NOT_ON_ROSTER);
        if (chaos_hit == HIT_NONE)
            break;
    }
    CHECK(n > 1);
out:
    tu_teardown(&fx);
}

static void chaos_audit_query_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;
    ssp_audit_filter f;
    int invalid_json = 0;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (int i = 0; i < 5; i++)
        deny_login(fx.engine, "@zoe:school.example");
    memset(&f, 0, sizeof f);
    f.limit = 3;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *text = (char *)"x";
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_audit_query(fx.engine, &f, &text, &fx.err);
        disarm();
        if (rc == 0) {
            json_t *result = json_loads(text, 0, NULL);

            /* jansson's dump ignores failures while writing object keys */
            if (result == NULL && chaos_hit == HIT_JANSSON)
                invalid_json++;
            else if (result == NULL)
                CHECK_FAIL("N=%ld: the result is not JSON: %s", n, text);
            json_decref(result);
            free(text);
        } else {
            CHECK(text == NULL);
        }
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_audit_query", &o);
    if (invalid_json > 0)
        printf("     (%d results were invalid JSON after a jansson allocation failed)\n",
               invalid_json);
out:
    tu_teardown(&fx);
}

/* The audit for readers: resolving the reader's scope, recording the read,
 * querying, counting for the chart. Every allocation failure is an error
 * (or a success with a valid answer), never a crash or a leak. */
static void chaos_audit_view_fails_cleanly_at_every_allocation(void)
{
    static const char *const requests[] = {
        /* First: every read that succeeds adds a line to the read log, which
         * this request reads back, so later it would cost O(n^2) (valgrind). */
        "{\"op\": \"reads\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
        " \"query\": {\"limit\": 3}}",
        "{\"op\": \"audit\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
        " \"query\": {\"limit\": 3}}",
        "{\"op\": \"chart\", \"reader\": \"@head:school.example\", \"server_admin\": false,"
        " \"query\": {\"since\": 1, \"until\": 9999999999999, \"bucket\": 86400000000}}",
        "{\"op\": \"status\", \"reader\": \"@head:school.example\", \"server_admin\": false}",
        "{\"op\": \"rules\", \"reader\": \"@sync:school.example\", \"server_admin\": false}",
    };
    static const char roster[] = "{\"users\": [{\"user_id\": \"@head:school.example\","
                                 " \"schools\": [{\"school\": \"gym-sued\", \"role\": \"admin\"}]},"
                                 " {\"user_id\": \"@zoe:school.example\","
                                 " \"schools\": [{\"school\": \"gym-sued\", \"role\": \"student\"}]}]}";
    tu_fixture fx;
    size_t upserted;

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    REQUIRE_OK(ssp_roster_upsert_batch(fx.engine, roster, sizeof roster - 1, &upserted, &fx.err), fx.err);
    for (int i = 0; i < 5; i++)
        deny_login(fx.engine, "@zoe:school.example");
    for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
        outcomes o;
        long n;

        memset(&o, 0, sizeof o);
        for (n = 1; n <= MAX_RUNS; n++) {
            char *text = NULL;
            int rc;

            memset(&fx.err, 0, sizeof fx.err);
            arm(n);
            rc = ssp_audit_view(fx.engine, requests[r], strlen(requests[r]), &text, &fx.err);
            disarm();
            if (rc == 0) {
                json_t *result = json_loads(text, 0, NULL);

                if (result == NULL && chaos_hit != HIT_JANSSON)
                    CHECK_FAIL("request %zu N=%ld: the result is not JSON: %s", r, n, text);
                json_decref(result);
                free(text);
            } else {
                CHECK(text == NULL);
            }
            if (chaos_hit == HIT_NONE) {
                CHECK_INT_EQ(rc, 0);
                break;
            }
            judge(&o, n, rc, &fx.err);
        }
        o.runs = n - 1;
        CHECK(n > 1 && n <= MAX_RUNS);
        report("ssp_audit_view", &o);
    }
out:
    tu_teardown(&fx);
}

static void chaos_audit_query_never_drops_records_when_memory_runs_out(void)
{
    /* Under memory pressure a query may fail, but when it succeeds it must
     * hold every matching record: a line that cannot be loaded for want of
     * memory must not be skipped as if it were damaged. */
    tu_fixture fx;
    long n;
    ssp_audit_filter f;
    int short_answers = 0;

    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (int i = 0; i < 5; i++)
        deny_login(fx.engine, "@zoe:school.example");
    memset(&f, 0, sizeof f);
    f.limit = 5;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *text = NULL;
        int rc;
        json_t *result;

        arm(n);
        rc = ssp_audit_query(fx.engine, &f, &text, &fx.err);
        disarm();
        result = rc == 0 ? json_loads(text, 0, NULL) : NULL;
        if (result != NULL && json_array_size(json_object_get(result, "records")) != 5) {
            if (short_answers == 0)
                CHECK_FAIL("N=%ld: the query succeeded with %zu of 5 records", n,
                           json_array_size(json_object_get(result, "records")));
            short_answers++;
        }
        json_decref(result);
        free(text);
        if (chaos_hit == HIT_NONE)
            break;
    }
    CHECK_INT_EQ(short_answers, 0);
out:
    tu_teardown(&fx);
}

/* ---- reconcile state ---- */

static size_t due_count(tu_fixture *fx)
{
    char *text = NULL;
    json_t *list;
    size_t n;

    if (ssp_reconcile_due(fx->engine, INT64_MAX, 1000, &text, &fx->err) != 0) {
        CHECK_FAIL("ssp_reconcile_due failed: %s", fx->err.message);
        return 0;
    }
    list = tu_json(text);
    n = json_array_size(list);
    json_decref(list);
    free(text);
    return n;
}

static void chaos_reconcile_mark_fails_cleanly_and_marks_nothing(void)
{
    tu_fixture fx;
    outcomes o;
    long n;
    const char *users[3] = {"", "@anna:school.example", "@ben:school.example"};

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_reconcile_mark(fx.engine, "gym-nord", users, 3, &fx.err);
        disarm();
        if (rc != 0 && due_count(&fx) != 0)
            COMPLAIN(&o, "N=%ld: a failed mark left marks behind", n);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            CHECK_INT_EQ(due_count(&fx), 3);
            break;
        }
        judge(&o, n, rc, &fx.err);
        if (rc == 0)
            break; /* jansson swallowed its failure: the marks are there */
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    /* what memory says is what the file says */
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(due_count(&fx), 3);
    report("ssp_reconcile_mark", &o);
out:
    tu_teardown(&fx);
}

static void chaos_reconcile_replay_reports_nomem_not_corruption(void)
{
    /* Replaying reconcile.jsonl when memory runs out is SSP_ERR_NOMEM, never
     * "<path> line N is corrupt"; the file is left as it was. */
    tu_fixture fx;
    outcomes o;
    char *path = NULL, *saved = NULL, *now = NULL;
    const char *users[2] = {"", "@anna:school.example"};
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    REQUIRE_OK(ssp_reconcile_mark(fx.engine, "gym-nord", users, 2, &fx.err), fx.err);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "gym-nord", "", 1, "boom", 5, &fx.err), fx.err);
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "teachers", "!t:school.example",
                                      &fx.err),
               fx.err);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    path = tu_path(fx.dir, "reconcile.jsonl");
    saved = tu_read_file(path, NULL);
    REQUIRE(saved != NULL);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_engine *engine = ssp_engine_new(fx.config, strlen(fx.config), TU_SERVER, TU_WORKER,
                                            &fx.err);
        int rc;

        REQUIRE(engine != NULL);
        memset(&fx.err, 0, sizeof fx.err);
        arm_engine_only(n);
        rc = ssp_engine_open(engine, &fx.err);
        disarm();
        ssp_engine_free(engine);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        o.runs++;
        if (rc != 0 && (fx.err.code != SSP_ERR_NOMEM || strstr(fx.err.message, "corrupt") != NULL))
            COMPLAIN(&o, "N=%ld: out of memory reported as [%d] %s", n, (int)fx.err.code,
                     fx.err.message);
        free(now);
        now = tu_read_file(path, NULL);
        if (now == NULL || strcmp(now, saved) != 0)
            COMPLAIN(&o, "N=%ld: the failed open changed %s", n, path);
    }
    CHECK(n > 1 && n <= MAX_RUNS);
    CHECK_INT_EQ(o.complaints, 0);
out:
    free(path);
    free(saved);
    free(now);
    tu_teardown(&fx);
}

static void chaos_room_shape_fails_cleanly_at_every_allocation(void)
{
    static const char REQUEST[] =
        "{\"initial_state\": [{\"type\": \"org.synapse_school_policy.room\", \"content\": "
        "{\"school\": \"gym-nord\", \"kind\": \"course\"}}, {\"type\": \"m.room.power_levels\", "
        "\"content\": {\"events\": {\"m.sticker\": 1}}}], \"creation_content\": {\"m.federate\": true}}";
    tu_fixture fx;
    outcomes o;
    json_t *request = NULL;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, "\"one_way_allowed_events\": [\"m.reaction\", \"a/b\"]"))
        goto out;
    request = tu_json(REQUEST);
    for (n = 1; n <= MAX_RUNS; n++) {
        json_t *changes = json_null();
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_room_shape(fx.engine, request, &changes, &fx.err);
        disarm();
        CHECK(rc == 0 ? json_is_array(changes) : changes == NULL);
        /* Every failure is reported as such: the adapter never applies half a shape. */
        CHECK(rc == 0 || fx.err.code == SSP_ERR_NOMEM);
        json_decref(changes);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_room_shape", &o);
out:
    json_decref(request);
    tu_teardown(&fx);
}

int main(void)
{
    json_set_alloc_funcs(json_malloc_hook, json_free_hook);
    ssp_global_init();
    RUN(chaos_config_check_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_feed_status_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_parse_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_check_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_parse_entry_and_to_json_fail_cleanly_at_every_allocation);
    RUN(chaos_strmap_put_leaves_the_map_unchanged_when_growing_fails);
    RUN(chaos_engine_new_fails_cleanly_at_every_allocation);
    RUN(chaos_engine_open_fails_cleanly_at_every_engine_allocation);
    RUN(chaos_engine_open_does_not_call_the_journal_corrupt_when_memory_runs_out);
    RUN(chaos_roster_put_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_put_that_failed_is_not_applied_after_a_restart);
    RUN(chaos_roster_write_never_leaves_a_corrupt_line_in_the_journal);
    RUN(chaos_roster_upsert_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_delete_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_get_fails_cleanly_at_every_allocation);
    RUN(chaos_decision_does_not_change_when_the_audit_record_cannot_be_allocated);
    RUN(chaos_audit_query_fails_cleanly_at_every_allocation);
    RUN(chaos_audit_query_never_drops_records_when_memory_runs_out);
    RUN(chaos_audit_view_fails_cleanly_at_every_allocation);
    RUN(chaos_jansson_running_out_of_memory_is_reported_as_nomem);
    RUN(chaos_reconcile_mark_fails_cleanly_and_marks_nothing);
    RUN(chaos_reconcile_replay_reports_nomem_not_corruption);
    RUN(chaos_room_shape_fails_cleanly_at_every_allocation);
    return check_finish();
}
