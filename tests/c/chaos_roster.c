/*
 * Allocation failures in the roster's writes and reads: nothing half
 * applied, nothing corrupt in the journal, and the feed's status.
 */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "ssp_private.h"
#include "testutil.h"

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

void run_chaos_roster_tests(void)
{
    RUN(chaos_roster_feed_status_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_put_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_put_that_failed_is_not_applied_after_a_restart);
    RUN(chaos_roster_write_never_leaves_a_corrupt_line_in_the_journal);
    RUN(chaos_roster_upsert_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_delete_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_get_fails_cleanly_at_every_allocation);
}
