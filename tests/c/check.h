/*
 * A tiny test framework for the engine's C tests.
 *
 *   static void strmap_put_then_get_returns_the_value(void) { CHECK(...); }
 *   ...
 *   RUN(strmap_put_then_get_returns_the_value);
 *   RUN_BUG(test_that_shows_a_known_csrc_bug);   (see below)
 *   return check_finish();
 *
 * CHECK* macros record a failure and carry on; REQUIRE* macros record a
 * failure and return from the test function (use them where going on would
 * dereference NULL). check_finish() prints the final line
 * "N passed, M failed" and returns the process exit status (0 only when
 * nothing failed).
 *
 * RUN_BUG marks a test that demonstrates a bug in csrc/ which is reported
 * but not fixed yet: it runs and counts like any other test (so it fails
 * until the bug is fixed), its name is printed with a "[csrc bug]" tag, and
 * setting SSP_SKIP_KNOWN_BUGS=1 in the environment skips it.
 * SSP_TEST_FILTER=substring runs only the tests whose names contain it.
 * SSP_TEST_SHARD=i/n runs only every n-th of them, starting with the i-th
 * (0-based): n processes with i = 0..n-1 run each test once between them
 * (the valgrind run uses both cores this way).
 *
 * Everything is static so that the header can be included by several
 * translation units of one binary: each file gets its own copy of the
 * helpers, and the shared counters live in check_state(), defined once by
 * the file that defines CHECK_MAIN before including this header.
 */
#ifndef SSP_TEST_CHECK_H
#define SSP_TEST_CHECK_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct check_counters {
    int passed;
    int failed;
    int skipped;
    int seen;             /* tests that passed the filter, for SSP_TEST_SHARD */
    int current_failures; /* failures recorded in the running test */
    const char *current;  /* name of the running test */
} check_counters;

check_counters *check_state(void);

#ifdef CHECK_MAIN
check_counters *check_state(void)
{
    static check_counters counters;

    return &counters;
}
#endif

__attribute__((format(printf, 3, 4), unused)) static void check_fail_at(const char *file, int line,
                                                                        const char *fmt, ...);

static void check_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    check_counters *st = check_state();

    st->current_failures++;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

#define CHECK_FAIL(...) check_fail_at(__FILE__, __LINE__, __VA_ARGS__)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            CHECK_FAIL("CHECK(%s) failed", #cond);                                                 \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            CHECK_FAIL("REQUIRE(%s) failed", #cond);                                               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_INT_EQ(actual, expected)                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(actual), check_e_ = (long long)(expected);               \
        if (check_a_ != check_e_)                                                                  \
            CHECK_FAIL("%s == %lld, expected %s == %lld", #actual, check_a_, #expected, check_e_);  \
    } while (0)

#define REQUIRE_INT_EQ(actual, expected)                                                           \
    do {                                                                                           \
        long long check_a_ = (long long)(actual), check_e_ = (long long)(expected);               \
        if (check_a_ != check_e_) {                                                                \
            CHECK_FAIL("%s == %lld, expected %s == %lld", #actual, check_a_, #expected, check_e_);  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR_EQ(actual, expected)                                                             \
    do {                                                                                           \
        const char *check_a_ = (actual), *check_e_ = (expected);                                   \
        if (check_a_ == NULL || check_e_ == NULL ? check_a_ != check_e_                            \
                                                 : strcmp(check_a_, check_e_) != 0)                \
            CHECK_FAIL("%s is \"%s\", expected \"%s\"", #actual, check_a_ ? check_a_ : "(null)",   \
                       check_e_ ? check_e_ : "(null)");                                            \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                           \
    do {                                                                                           \
        const char *check_h_ = (haystack), *check_n_ = (needle);                                   \
        if (check_h_ == NULL || strstr(check_h_, check_n_) == NULL)                                \
            CHECK_FAIL("%s is \"%s\", expected it to contain \"%s\"", #haystack,                   \
                       check_h_ ? check_h_ : "(null)", check_n_);                                  \
    } while (0)

/* `code` is an int expression that returns 0 on success, like the engine's API. */
#define CHECK_OK(call, err)                                                                        \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            CHECK_FAIL("%s failed: [%d] %s", #call, (int)(err).code, (err).message);               \
    } while (0)

#define REQUIRE_OK(call, err)                                                                      \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            CHECK_FAIL("%s failed: [%d] %s", #call, (int)(err).code, (err).message);               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

typedef void (*check_fn)(void);

__attribute__((unused)) static void check_run(const char *name, check_fn fn, bool known_bug)
{
    check_counters *st = check_state();
    const char *skip = getenv("SSP_SKIP_KNOWN_BUGS");
    const char *tag = known_bug ? " [csrc bug]" : "";

    const char *only = getenv("SSP_TEST_FILTER");

    const char *shard = getenv("SSP_TEST_SHARD");
    int shard_index, shard_count;

    if (only != NULL && only[0] != '\0' && strstr(name, only) == NULL)
        return;
    if (shard != NULL && sscanf(shard, "%d/%d", &shard_index, &shard_count) == 2 &&
        shard_count > 0 && st->seen++ % shard_count != shard_index)
        return;
    if (known_bug && skip != NULL && strcmp(skip, "1") == 0) {
        st->skipped++;
        printf("skip %s%s\n", name, tag);
        fflush(stdout);
        return;
    }
    st->current = name;
    st->current_failures = 0;
    fn();
    if (st->current_failures == 0) {
        st->passed++;
        printf("ok   %s%s\n", name, tag);
    } else {
        st->failed++;
        printf("FAIL %s%s\n", name, tag);
    }
    st->current = NULL;
    fflush(stdout);
}

#define RUN(fn) check_run(#fn, fn, false)
#define RUN_BUG(fn) check_run(#fn, fn, true)

/* Prints the summary; the last line is exactly "N passed, M failed". */
__attribute__((unused)) static int check_finish(void)
{
    check_counters *st = check_state();

    if (st->skipped > 0)
        printf("%d known-bug tests skipped (SSP_SKIP_KNOWN_BUGS=1)\n", st->skipped);
    printf("%d passed, %d failed\n", st->passed, st->failed);
    fflush(stdout);
    return st->failed == 0 ? 0 : 1;
}

#endif
