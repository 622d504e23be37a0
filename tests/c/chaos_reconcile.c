/*
 * Allocation failures in the reconcile state: a mark is all or nothing,
 * and a replay out of memory is not reported as corruption.
 */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "ssp_private.h"
#include "testutil.h"

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

void run_chaos_reconcile_tests(void)
{
    RUN(chaos_reconcile_mark_fails_cleanly_and_marks_nothing);
    RUN(chaos_reconcile_replay_reports_nomem_not_corruption);
}
