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
 *
 * This file: the hooks, the judging of the runs, and main. The tests are
 * chaos_<area>.c (chaos.h).
 */
#define CHECK_MAIN
#include <execinfo.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "ssp_private.h"

/* ---- the allocation hooks ---- */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *ptr, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
char *__wrap_strdup(const char *s);

static __thread bool chaos_armed;    /* count this thread's allocations */
__thread long chaos_count;    /* allocations since arming */
static __thread long chaos_fail_at;  /* fail this one (1-based); 0: none */
__thread hit_kind chaos_hit;  /* whose allocation was failed, if any */
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

void arm(long fail_at)
{
    chaos_engine_only = false;
    chaos_count = 0;
    chaos_fail_at = fail_at;
    chaos_hit = HIT_NONE;
    chaos_armed = true;
}

/* Fails only the engine's own allocations: jansson's always succeed. */
void arm_engine_only(long fail_at)
{
    arm(fail_at);
    chaos_engine_only = true;
}

void disarm(void)
{
    chaos_armed = false;
    chaos_engine_only = false;
}

/* Checks one run that hit the injected failure; rc is 0 or -1. With
 * `nomem_code`, a failed allocation of the engine's must come back as
 * SSP_ERR_NOMEM "out of memory"; without, any error code and message do. */
void judge_run(outcomes *o, long n, int rc, const ssp_error *err, bool nomem_code)
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

void judge(outcomes *o, long n, int rc, const ssp_error *err)
{
    judge_run(o, n, rc, err, true);
}

void report(const char *what, const outcomes *o)
{
    printf("     %s: %ld allocation failures injected\n", what, o->runs);
    printf("       engine's allocation failed: %d -> NOMEM", o->engine_nomem);
    if (o->engine_other)
        printf(", %d -> other errors, e.g. %s", o->engine_other, o->engine_example);
    printf("\n       jansson's allocation failed: %d -> error, %d unnoticed (call succeeded)%s%s\n",
           o->jansson_failed, o->jansson_tolerated, o->jansson_failed ? "; e.g. " : "",
           o->jansson_failed ? o->jansson_example : "");
}

const char FULL_CONFIG_MEMBERS[] =
    "\"service_users\": [\"@bot:school.example\", \"@sync:school.example\"],"
    " \"policy_event_type\": \"de.example.school_room\","
    " \"moderator_level\": 75,"
    " \"one_way_allowed_events\": [\"m.reaction\", \"m.room.redaction\"],"
    " \"unlisted_users\": \"deny\","
    " \"strict_homeserver_config\": false,"
    " \"enforce\": true,"
    " \"audit\": {\"retention_days\": 30, \"include_content\": false,"
    "   \"flood\": {\"denials_per_minute\": 30, \"burst\": 10, \"summary_seconds\": 10}},"
    " \"roster_feed\": {\"url\": \"amqp://sync:pw@127.0.0.1:1/school\", \"queue\": \"roster\"},"
    " \"groups\": {\"encrypted\": false, \"archive_retention_days\": 365},"
    " \"schools\": {"
    "   \"gym-nord\": {\"messenger\": true, \"teachers_room\": false, \"announcement_room\": true,"
    "                \"room_creation\": \"everyone\", \"enforce\": true},"
    "   \"gym-sued\": {\"messenger\": false},"
    "   \"rs-ost\": {\"room_creation\": \"service_users\"},"
    "   \"gs-west\": null, \"gs-ost\": {}, \"bbs\": {}, \"fos\": {}, \"gym-mitte\": {}"
    " }";

const char BATCH[] =
    "{\"users\": ["
    "{\"user_id\": \"@anna:school.example\", \"schools\": [{\"school\": \"gym-nord\", \"role\": "
    "\"student\"}]},"
    "{\"user_id\": \"@ben:school.example\", \"schools\": []},"
    "{\"user_id\": \"@carl:school.example\", \"schools\": [{\"school\": \"gym-sued\", \"role\": "
    "\"teacher\"}, {\"school\": \"gym-nord\", \"role\": \"admin\"}]}]}";

void deny_login(ssp_engine *engine, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(engine, &req, &d);
}

int main(void)
{
    json_set_alloc_funcs(json_malloc_hook, json_free_hook);
    ssp_global_init();
    run_chaos_parsers_tests();
    run_chaos_engine_tests();
    run_chaos_roster_tests();
    run_chaos_audit_tests();
    run_chaos_reconcile_tests();
    run_chaos_groups_tests();
    return check_finish();
}
