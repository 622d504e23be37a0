/*
 * Allocation failures in the groups: the parser, the JSON form, the copy,
 * and the group index of the roster (apply, reserve, replace at load).
 */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "embedded/groups_file.h"
#include "ssp_private.h"
#include "testutil.h"

static const char GROUP[] =
    "{\"group\": \"course-5f0c7a3f\", \"school\": \"gym-nord\", \"kind\": \"course\","
    " \"name\": \"Mathe 7b\", \"topic\": \"Mathematik\", \"archive_at_ms\": 1785542400000,"
    " \"version\": 17, \"members\": [{\"user_id\": \"@berg:school.example\", \"role\": \"moderator\"},"
    " {\"user_id\": \"@ali:school.example\", \"role\": \"member\"},"
    " {\"user_id\": \"@cem:school.example\", \"role\": \"member\"}]}";

static void chaos_group_parse_and_to_json_fail_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        json_error_t jerr;
        json_t *body, *out = NULL;
        ssp_group *group = (ssp_group *)&group, *copy = NULL;
        ssp_error err;
        int rc = -1;
        char *text = NULL;

        memset(&err, 0, sizeof err);
        arm(n);
        /* the whole path of a PUT body: load, parse, copy, serialise */
        body = json_loads(GROUP, JSON_REJECT_DUPLICATES, &jerr);
        if (body != NULL) {
            rc = ssp_group_parse(NULL, body, "groups[0]", "school.example", &group, &err);
            if (rc == 0) {
                copy = ssp_group_copy_as(group, SSP_GROUP_DELETED, true, 18);
                out = copy ? ssp_group_to_stored_json(copy) : NULL;
                if (out != NULL) {
                    ssp_group *back = NULL;

                    /* the stored form, read back (as the journal replay does) */
                    rc = ssp_group_parse_stored(out, &back, &err);
                    free(back);
                    if (rc != 0) {
                        free(group);
                        group = NULL;
                    }
                }
                text = out ? json_dumps(out, JSON_COMPACT) : NULL;
            } else if (group != NULL) {
                CHECK_FAIL("N=%ld: failed ssp_group_parse left *out set", n);
            }
        }
        disarm();
        if (rc == 0)
            free(group);
        free(copy);
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
    report("load + ssp_group_parse + ssp_group_copy_as + ssp_group_to_stored_json + "
           "ssp_group_parse_stored", &o);
}

static ssp_group *parsed(const char *text)
{
    json_t *body = tu_json(text);
    ssp_group *group = NULL;
    ssp_error err;

    if (ssp_group_parse(NULL, body, "", NULL, &group, &err) != 0)
        CHECK_FAIL("cannot parse %s: %s", text, err.message);
    json_decref(body);
    return group;
}

static const char *const TEAMS[] = {
    "{\"group\": \"a\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"A\", \"members\":"
    " [{\"user_id\": \"@u:x\", \"role\": \"member\"}, {\"user_id\": \"@v:x\", \"role\": \"member\"}]}",
    "{\"group\": \"b\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"B\", \"members\":"
    " [{\"user_id\": \"@v:x\", \"role\": \"member\"}, {\"user_id\": \"@w:x\", \"role\": \"member\"}]}",
    "{\"group\": \"a\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"A2\", \"members\":"
    " [{\"user_id\": \"@w:x\", \"role\": \"member\"}, {\"user_id\": \"@z:x\", \"role\": \"member\"}]}",
};

/* Applying groups one by one: a failure changes nothing, and the index
 * stays whole (the next apply and the destroy see no dangling entry). */
static void chaos_group_index_apply_fails_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_roster roster;
        ssp_error err;
        int rc = 0;
        size_t applied = 0;

        memset(&err, 0, sizeof err);
        REQUIRE_OK(ssp_roster_init(&roster, &err), err);
        for (size_t i = 0; i < 3; i++) {
            ssp_group *group = parsed(TEAMS[i]);

            REQUIRE(group != NULL);
            arm(n);
            rc = ssp_roster_apply_group_locked(&roster, group, &err);
            disarm();
            if (rc != 0)
                break;
            applied++;
        }
        if (rc != 0 && applied < 2 &&
            ssp_roster_group(&roster, applied == 0 ? "a" : "b", 1) != NULL)
            CHECK_FAIL("N=%ld: a failed apply left its group in the index", n);
        ssp_roster_destroy(&roster);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_apply_group_locked", &o);
}

/* Reserve for a batch, then apply it: a failed reserve changes no group;
 * after a successful one no apply fails. */
static void chaos_group_index_reserve_then_apply_never_fails_after_the_reserve(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_roster roster;
        ssp_group *batch[3];
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        REQUIRE_OK(ssp_roster_init(&roster, &err), err);
        for (size_t i = 0; i < 3; i++)
            batch[i] = parsed(TEAMS[i]);
        REQUIRE(batch[0] && batch[1] && batch[2]);
        arm_engine_only(n);
        rc = ssp_roster_reserve_groups_locked(&roster, (const ssp_group *const *)batch, 3, &err);
        if (rc == 0) {
            long before = chaos_count;

            for (size_t i = 0; i < 3; i++) {
                if (ssp_roster_apply_group_locked(&roster, batch[i], &err) != 0)
                    CHECK_FAIL("N=%ld: apply %zu failed after the reserve: %s", n, i, err.message);
            }
            if (chaos_count != before)
                CHECK_FAIL("N=%ld: apply allocated after the reserve", n);
        } else {
            CHECK(ssp_roster_group(&roster, "a", 1) == NULL);
            for (size_t i = 0; i < 3; i++)
                free(batch[i]);
        }
        disarm();
        ssp_roster_destroy(&roster);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_reserve_groups_locked", &o);
}

static void chaos_group_index_replace_fails_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_roster roster;
        ssp_strmap loaded;
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        REQUIRE_OK(ssp_roster_init(&roster, &err), err);
        ssp_strmap_init(&loaded);
        for (size_t i = 0; i < 2; i++) {
            ssp_group *group = parsed(TEAMS[i]);

            REQUIRE(group != NULL && ssp_strmap_put(&loaded, group->group_id, group, NULL) == 0);
        }
        arm(n);
        rc = ssp_roster_replace_groups(&roster, &loaded, &err);
        disarm();
        if (rc == 0 && (loaded.count != 0 || ssp_roster_group(&roster, "b", 1) == NULL))
            CHECK_FAIL("N=%ld: the replace did not take the groups", n);
        if (rc != 0 && loaded.count != 2)
            CHECK_FAIL("N=%ld: a failed replace lost the loaded groups", n);
        ssp_roster_group_map_free(&loaded);
        ssp_roster_destroy(&roster);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_replace_groups", &o);
}

/* A POST /roster body with a user and two groups of version v. */
static char *batch_of_version(long v)
{
    return tu_format("{\"users\": [{\"user_id\": \"@ali:school.example\", \"schools\":"
                     " [{\"school\": \"gym-nord\", \"role\": \"student\"}]}], \"groups\": ["
                     "{\"group\": \"c1\", \"school\": \"gym-nord\", \"kind\": \"course\","
                     " \"name\": \"C\", \"version\": %ld, \"state\": \"archived\", \"members\":"
                     " [{\"user_id\": \"@ali:school.example\", \"role\": \"member\"}]},"
                     "{\"group\": \"t1\", \"school\": \"rs-ost\", \"kind\": \"team\","
                     " \"name\": \"T\", \"version\": %ld, \"members\":"
                     " [{\"user_id\": \"@ali:school.example\", \"role\": \"moderator\"},"
                     " {\"user_id\": \"@ben:school.example\", \"role\": \"member\"}]}]}",
                     v, v);
}

static char *group_text(tu_fixture *fx, const char *id)
{
    char *text = NULL;
    ssp_error err;

    if (ssp_group_get(fx->engine, id, &text, &err) != 0)
        CHECK_FAIL("ssp_group_get(%s): %s", id, err.message);
    return text;
}

/* The batch through the engine, a new version each run: a failure leaves
 * the index as the store has it (the same after a reopen). */
static void chaos_groups_batch_fails_cleanly_at_every_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;
    char *before[2], *after[2];

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *body = batch_of_version(n);
        size_t upserted = 99, groups = 99;
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_roster_upsert_groups(fx.engine, body, strlen(body), &upserted, &groups, &fx.err);
        disarm();
        free(body);
        if (rc == 0)
            CHECK_INT_EQ(groups, 2);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_upsert_groups", &o);
    before[0] = group_text(&fx, "c1");
    before[1] = group_text(&fx, "t1");
    REQUIRE(tu_reopen(&fx));
    after[0] = group_text(&fx, "c1");
    after[1] = group_text(&fx, "t1");
    CHECK_STR_EQ(after[0], before[0]);
    CHECK_STR_EQ(after[1], before[1]);
    for (int i = 0; i < 2; i++) {
        free(before[i]);
        free(after[i]);
    }
out:
    tu_teardown(&fx);
}

static void chaos_group_put_delete_and_plan_fail_cleanly_at_every_engine_allocation(void)
{
    tu_fixture fx;
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, FULL_CONFIG_MEMBERS))
        goto out;
    for (n = 1; n <= MAX_RUNS; n++) {
        char *body = tu_format("{\"school\": \"gym-nord\", \"kind\": \"class\", \"name\": \"7b\","
                               " \"version\": %ld, \"members\": [{\"user_id\":"
                               " \"@ali:school.example\", \"role\": \"member\"}]}",
                               2 * n);
        char *out = (char *)"x", *plan = (char *)"x", *list = (char *)"x";
        bool existed = false;
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        /* The engine's allocations only: under a failed allocation of its
         * own, jansson 2.14's json_loads can write through NULL
         * (lex_save), which no caller can guard against. */
        arm_engine_only(n);
        rc = ssp_group_put(fx.engine, "class-7b", body, strlen(body), &out, &fx.err);
        if (rc == 0)
            rc = ssp_group_plan(fx.engine, "class-7b", -1, &plan, &fx.err);
        if (rc == 0)
            rc = ssp_groups_list(fx.engine, "gym-nord", NULL, 10, &list, &fx.err);
        if (rc == 0)
            rc = ssp_group_delete(fx.engine, "class-7b", &existed, &fx.err);
        disarm();
        if (rc != 0 && (out == NULL || plan == NULL || list == NULL) && chaos_hit == HIT_NONE)
            CHECK_FAIL("N=%ld: failed without an injected failure", n);
        if (out != NULL && strcmp(out, "x") != 0)
            free(out);
        if (plan != NULL && strcmp(plan, "x") != 0)
            free(plan);
        if (list != NULL && strcmp(list, "x") != 0)
            free(list);
        free(body);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            CHECK(existed);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_group_put + ssp_group_plan + ssp_groups_list + ssp_group_delete", &o);
out:
    tu_teardown(&fx);
}

/* The groups file's open (replay, compaction, the groups into the
 * roster), on this thread: at the engine's open it reads on a thread of its
 * own, whose allocations the harness does not fail. */
static void chaos_groups_file_open_fails_cleanly_at_every_allocation(void)
{
    char *dir = tu_tempdir(), *path = tu_path(dir, "groups.jsonl");
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    /* two snapshots of a in the stored form, one of b in the API's form */
    REQUIRE(tu_write_file(path,
                          "{\"group\":\"a\",\"school\":\"s\",\"kind\":\"team\",\"name\":\"A\","
                          "\"members\":[\"@u:x\"],\"moderators\":[\"@v:x\"]}\n"
                          "{\"group\":\"a\",\"school\":\"s\",\"kind\":\"team\",\"name\":\"A2\","
                          "\"members\":[\"@u:x\",\"@w:x\"],\"moderators\":[]}\n"
                          "{\"group\":\"b\",\"school\":\"s\",\"kind\":\"team\",\"name\":\"B\","
                          "\"members\":[{\"user_id\":\"@u:x\",\"role\":\"member\"}]}\n",
                          false) == 0);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_roster roster;
        ssp_journal file;
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        REQUIRE_OK(ssp_roster_init(&roster, &err), err);
        arm(n);
        rc = ssp_groups_file_open(&file, dir, &roster, true, &err);
        disarm();
        if (rc == 0) {
            const ssp_group *a = ssp_roster_group(&roster, "a", 1);

            CHECK(a != NULL && a->n_members == 2 && ssp_roster_group(&roster, "b", 1) != NULL);
            ssp_journal_close(&file);
        } else if (ssp_roster_group(&roster, "a", 1) != NULL) {
            CHECK_FAIL("N=%ld: a failed open left groups in the roster", n);
        }
        ssp_roster_destroy(&roster);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_groups_file_open", &o);
    tu_rmtree(dir);
    free(dir);
    free(path);
}

void run_chaos_groups_tests(void)
{
    RUN(chaos_group_parse_and_to_json_fail_cleanly_at_every_allocation);
    RUN(chaos_group_index_apply_fails_cleanly_at_every_allocation);
    RUN(chaos_group_index_reserve_then_apply_never_fails_after_the_reserve);
    RUN(chaos_group_index_replace_fails_cleanly_at_every_allocation);
    RUN(chaos_groups_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_groups_file_open_fails_cleanly_at_every_allocation);
    RUN(chaos_group_put_delete_and_plan_fail_cleanly_at_every_engine_allocation);
}
