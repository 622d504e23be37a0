/*
 * The allocation-failure tests' harness (chaos.c): fail the Nth allocation
 * of this thread (the engine's through the linker's --wrap, jansson's
 * through json_set_alloc_funcs) and judge what the operation did. The
 * tests are chaos_<area>.c.
 */
#ifndef SSP_TEST_CHAOS_H
#define SSP_TEST_CHAOS_H

#include <stdbool.h>
#include <stdio.h>

#include "check.h"
#include "ssp_private.h"

typedef enum { HIT_NONE = 0, HIT_ENGINE, HIT_JANSSON } hit_kind;

extern __thread long chaos_count;    /* allocations since arming */
extern __thread hit_kind chaos_hit;  /* whose allocation was failed, if any */

/* Fail this thread's allocation number fail_at (1-based; 0: none) from now on. */
void arm(long fail_at);
/* Fails only the engine's own allocations: jansson's always succeed. */
void arm_engine_only(long fail_at);
void disarm(void);

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
void judge_run(outcomes *o, long n, int rc, const ssp_error *err, bool nomem_code);
void judge(outcomes *o, long n, int rc, const ssp_error *err);
void report(const char *what, const outcomes *o);

/* A config that sets every key. */
extern const char FULL_CONFIG_MEMBERS[];
/* A POST /roster body of several users. */
extern const char BATCH[];
#define PUT_BODY "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"

/* A login of actor, denied (check_login_for_spam, not an admin). */
void deny_login(ssp_engine *engine, const char *actor);

void run_chaos_parsers_tests(void);
void run_chaos_engine_tests(void);
void run_chaos_roster_tests(void);
void run_chaos_audit_tests(void);
void run_chaos_reconcile_tests(void);
void run_chaos_groups_tests(void);

#endif
