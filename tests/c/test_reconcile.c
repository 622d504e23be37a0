/* The reconcile state on the embedded store (reconcile.c): marks,
 * generations, failures and backoff, special rooms, applied config, the
 * reconcile.jsonl file across restarts, and the marks roster changes make.
 * The PostgreSQL side is tested in tests/system/test_reconcile_ledger.py. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define ANNA "@anna:school.example"
#define BEN "@ben:school.example"
#define SCHOOLS                                                                                    \
    "\"schools\": {\"gym-nord\": {\"messenger\": true, \"announcement_room\": true},"              \
    " \"rs-ost\": {}}"
#define IN_GYM "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"
#define IN_RS "{\"schools\": [{\"school\": \"rs-ost\", \"role\": \"teacher\"}]}"
#define IN_BOTH                                                                                    \
    "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"},"                            \
    " {\"school\": \"rs-ost\", \"role\": \"teacher\"}]}"

/* The due marks as JSON (caller decrefs), or NULL after reporting. */
static json_t *due(tu_fixture *fx, int64_t now_ms, size_t max)
{
    char *text = NULL;
    json_t *list;

    if (ssp_reconcile_due(fx->engine, now_ms, max, &text, &fx->err) != 0) {
        CHECK_FAIL("ssp_reconcile_due failed: %s", fx->err.message);
        return NULL;
    }
    list = tu_json(text);
    free(text);
    return list;
}

/* "school/user@attempts" of each due mark, comma-separated; caller frees. */
static char *due_summary(tu_fixture *fx, int64_t now_ms)
{
    json_t *list = due(fx, now_ms, 1000), *item;
    char *out = tu_format("%s", "");
    size_t i;

    json_array_foreach(list, i, item) {
        char *grown = tu_format("%s%s%s/%s@%lld", out, i ? "," : "",
                                json_string_value(json_object_get(item, "school")),
                                json_string_value(json_object_get(item, "user_id")),
                                (long long)json_integer_value(json_object_get(item, "attempts")));

        free(out);
        out = grown;
    }
    json_decref(list);
    return out;
}

static int64_t generation_of(tu_fixture *fx, const char *school, const char *user)
{
    json_t *list = due(fx, INT64_MAX, 1000), *item;
    int64_t gen = -1;
    size_t i;

    json_array_foreach(list, i, item) {
        if (strcmp(json_string_value(json_object_get(item, "school")), school) == 0 &&
            strcmp(json_string_value(json_object_get(item, "user_id")), user) == 0)
            gen = json_integer_value(json_object_get(item, "generation"));
    }
    json_decref(list);
    return gen;
}

static void done_all(tu_fixture *fx)
{
    json_t *list = due(fx, INT64_MAX, 1000), *item;
    size_t i;

    json_array_foreach(list, i, item) {
        CHECK_OK(ssp_reconcile_done(fx->engine, json_string_value(json_object_get(item, "school")),
                                    json_string_value(json_object_get(item, "user_id")),
                                    json_integer_value(json_object_get(item, "generation")),
                                    &fx->err),
                 fx->err);
    }
    json_decref(list);
}

static int mark1(tu_fixture *fx, const char *school, const char *user)
{
    const char *users[1] = {user};

    return ssp_reconcile_mark(fx->engine, school, users, 1, &fx->err);
}

static char *status(tu_fixture *fx)
{
    char *text = NULL;

    if (ssp_reconcile_status(fx->engine, &text, &fx->err) != 0)
        CHECK_FAIL("ssp_reconcile_status failed: %s", fx->err.message);
    return text;
}

static void reconcile_mark_due_done(void)
{
    tu_fixture fx;
    const char *users[3] = {"", ANNA, ANNA};
    char *summary = NULL;
    json_t *list = NULL;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(ssp_reconcile_mark(fx.engine, "gym-nord", users, 3, &fx.err), fx.err);
    list = due(&fx, ssp_now_ms(), 10);
    REQUIRE(list != NULL);
    CHECK_INT_EQ(json_array_size(list), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "user_id")), "");
    CHECK(generation_of(&fx, "gym-nord", ANNA) > generation_of(&fx, "gym-nord", ""));
    json_decref(list);
    list = due(&fx, ssp_now_ms(), 1);
    CHECK_INT_EQ(json_array_size(list), 1);
    CHECK_OK(ssp_reconcile_done(fx.engine, "gym-nord", "", generation_of(&fx, "gym-nord", ""),
                                &fx.err),
             fx.err);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "gym-nord/@anna:school.example@0");
out:
    json_decref(list);
    free(summary);
    tu_teardown(&fx);
}

static void reconcile_remark_while_working_survives_done_of_the_old_generation(void)
{
    tu_fixture fx;
    int64_t first, second;
    char *summary = NULL;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    first = generation_of(&fx, "gym-nord", ANNA);
    /* the reconciler has taken `first`; a roster change marks again */
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    second = generation_of(&fx, "gym-nord", ANNA);
    CHECK(second > first);
    CHECK_OK(ssp_reconcile_done(fx.engine, "gym-nord", ANNA, first, &fx.err), fx.err);
    CHECK_INT_EQ(generation_of(&fx, "gym-nord", ANNA), second);
    /* a failure reported for the old generation does not touch the new mark */
    CHECK_OK(ssp_reconcile_failed(fx.engine, "gym-nord", ANNA, first, "stale", INT64_MAX, &fx.err),
             fx.err);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "gym-nord/@anna:school.example@0");
    CHECK_OK(ssp_reconcile_done(fx.engine, "gym-nord", ANNA, second, &fx.err), fx.err);
    CHECK_INT_EQ(generation_of(&fx, "gym-nord", ANNA), -1);
out:
    free(summary);
    tu_teardown(&fx);
}

static void reconcile_failed_backs_off_and_a_remark_makes_it_due_again(void)
{
    tu_fixture fx;
    int64_t now = ssp_now_ms();
    char *summary = NULL, *text = NULL;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    REQUIRE_OK(mark1(&fx, "gym-nord", BEN), fx.err);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "gym-nord", ANNA, generation_of(&fx, "gym-nord", ANNA),
                                    "M_FORBIDDEN: no", now + 60000, &fx.err),
               fx.err);
    summary = due_summary(&fx, now);
    CHECK_STR_EQ(summary, "gym-nord/@ben:school.example@0");
    free(summary);
    /* later: Ben (due since 0) comes before Anna (due since now + 60 s) */
    summary = due_summary(&fx, now + 60000);
    CHECK_STR_EQ(summary, "gym-nord/@ben:school.example@0,gym-nord/@anna:school.example@1");
    free(summary);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "gym-nord", ANNA, generation_of(&fx, "gym-nord", ANNA),
                                    "M_FORBIDDEN: again", now + 120000, &fx.err),
               fx.err);
    summary = due_summary(&fx, now + 120000);
    CHECK_STR_EQ(summary, "gym-nord/@ben:school.example@0,gym-nord/@anna:school.example@2");
    free(summary);
    /* a re-mark resets attempts and makes it due now; the error stays */
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    summary = due_summary(&fx, now);
    CHECK_STR_EQ(summary, "gym-nord/@ben:school.example@0,gym-nord/@anna:school.example@0");
    text = status(&fx);
    CHECK_CONTAINS(text, "\"last_error\":\"M_FORBIDDEN: again\"");
out:
    free(summary);
    free(text);
    tu_teardown(&fx);
}

static void reconcile_rejects_bad_input_naming_it(void)
{
    tu_fixture fx;
    char *room = NULL;
    ssp_engine *closed = NULL;
    const char *users[1] = {"anna"};

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    CHECK(ssp_reconcile_mark(fx.engine, "gym-nord", users, 1, &fx.err) == -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_INPUT);
    CHECK_CONTAINS(fx.err.message, "user_id");
    CHECK(ssp_reconcile_mark(fx.engine, "", users, 0, &fx.err) == -1);
    CHECK_CONTAINS(fx.err.message, "school");
    CHECK(ssp_reconcile_set_room(fx.engine, "gym-nord", "course", "!r:x", &fx.err) == -1);
    CHECK_CONTAINS(fx.err.message, "kind");
    CHECK(ssp_reconcile_set_room(fx.engine, "gym-nord", "teachers", "room", &fx.err) == -1);
    CHECK_CONTAINS(fx.err.message, "room_id");
    CHECK(ssp_reconcile_get_room(fx.engine, "gym-nord", "x", &room, &fx.err) == -1);
    CHECK(room == NULL);
    closed = ssp_engine_new(fx.config, strlen(fx.config), TU_SERVER, TU_WORKER, &fx.err);
    REQUIRE(closed != NULL);
    CHECK(mark1(&(tu_fixture){.engine = closed}, "gym-nord", ANNA) == -1);
    CHECK(ssp_reconcile_status(closed, &room, &fx.err) == -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_STATE);
out:
    ssp_engine_free(closed);
    tu_teardown(&fx);
}

static void reconcile_state_survives_a_restart_with_monotonic_generations(void)
{
    tu_fixture fx;
    int64_t before, after;
    char *room = NULL, *summary = NULL, *text = NULL;
    int64_t retry = ssp_now_ms() + 3600000;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    REQUIRE_OK(mark1(&fx, "rs-ost", ""), fx.err);
    REQUIRE_OK(mark1(&fx, "rs-ost", BEN), fx.err);
    REQUIRE_OK(ssp_reconcile_done(fx.engine, "rs-ost", BEN, generation_of(&fx, "rs-ost", BEN),
                                  &fx.err),
               fx.err);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "rs-ost", "", generation_of(&fx, "rs-ost", ""),
                                    "boom", retry, &fx.err),
               fx.err);
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "teachers", "!t:school.example",
                                      &fx.err),
               fx.err);
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "announcement", "!a:school.example",
                                      &fx.err),
               fx.err);
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "announcement", NULL, &fx.err),
               fx.err);
    before = generation_of(&fx, "gym-nord", ANNA);
    REQUIRE(tu_reopen(&fx));
    summary = due_summary(&fx, retry);
    CHECK_STR_EQ(summary, "gym-nord/@anna:school.example@0,rs-ost/@1");
    CHECK_INT_EQ(generation_of(&fx, "gym-nord", ANNA), before);
    CHECK_OK(ssp_reconcile_get_room(fx.engine, "gym-nord", "teachers", &room, &fx.err), fx.err);
    CHECK_STR_EQ(room, "!t:school.example");
    free(room);
    room = (char *)"x";
    CHECK_OK(ssp_reconcile_get_room(fx.engine, "gym-nord", "announcement", &room, &fx.err), fx.err);
    CHECK(room == NULL);
    text = status(&fx);
    CHECK_CONTAINS(text, "\"last_error\":\"boom\"");
    /* the generation of a done mark (Ben's was the largest) is not reused */
    REQUIRE_OK(mark1(&fx, "gym-nord", BEN), fx.err);
    after = generation_of(&fx, "gym-nord", BEN);
    CHECK(after > before + 2);
out:
    free(summary);
    free(text);
    tu_teardown(&fx);
}

static void reconcile_torn_last_line_is_cut_off(void)
{
    tu_fixture fx;
    char *path = NULL, *text = NULL, *summary = NULL;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    path = tu_path(fx.dir, "reconcile.jsonl");
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    REQUIRE(tu_write_file(path, "{\"op\":\"mark\",\"school\":\"gym-nord\",\"us", true) == 0);
    REQUIRE(tu_reopen(&fx));
    text = tu_read_file(path, NULL);
    REQUIRE(text != NULL);
    CHECK_INT_EQ(text[strlen(text) - 1], '\n');
    CHECK_INT_EQ(tu_count_lines(path), 1);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "gym-nord/@anna:school.example@0");
    REQUIRE_OK(mark1(&fx, "gym-nord", BEN), fx.err);
    CHECK_INT_EQ(tu_count_lines(path), 2);
out:
    free(path);
    free(text);
    free(summary);
    tu_teardown(&fx);
}

static void reconcile_corrupt_line_fails_the_open_naming_file_and_line(void)
{
    tu_fixture fx;
    char *path = NULL;
    ssp_engine *engine = NULL;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    path = tu_path(fx.dir, "reconcile.jsonl");
    REQUIRE(tu_write_file(path, "{\"op\":\"frobnicate\",\"school\":\"gym-nord\"}\n", true) == 0);
    REQUIRE(tu_write_file(path, "{\"op\":\"done\",\"school\":\"gym-nord\",\"user\":\"\",\"gen\":1}\n",
                          true) == 0);
    engine = tu_engine(fx.config, &fx.err);
    CHECK(engine == NULL);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_IO);
    CHECK_CONTAINS(fx.err.message, path);
    CHECK_CONTAINS(fx.err.message, "line 2 is corrupt");
    CHECK_CONTAINS(fx.err.message, "frobnicate");
out:
    ssp_engine_free(engine);
    free(path);
    tu_teardown(&fx);
}

/* Regression (found writing fuzz_reconcile): a line with gen INT64_MAX
 * made replay compute INT64_MAX + 1 (signed overflow, UBSan). Such a
 * generation is corrupt; the largest the reconcile state accepts still leaves room
 * to count on. */
static void reconcile_generation_overflow_is_a_corrupt_line(void)
{
    static const char *const lines[] = {
        "{\"op\":\"done\",\"school\":\"gym-nord\",\"user\":\"\",\"gen\":9223372036854775807}\n",
        "{\"op\":\"mark\",\"school\":\"gym-nord\",\"user\":\"\",\"gen\":9223372036854775807,"
        "\"at\":1}\n",
        "{\"op\":\"failed\",\"school\":\"gym-nord\",\"user\":\"\",\"gen\":9223372036854775807,"
        "\"attempts\":1,\"retry_at\":0,\"error\":null,\"at\":1}\n",
        "{\"op\":\"next_gen\",\"gen\":9223372036854775807}\n",
    };
    tu_fixture fx;
    char *path = NULL, *status_text = NULL, *text = NULL;
    ssp_engine *engine = NULL;
    int64_t gen;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    path = tu_path(fx.dir, "reconcile.jsonl");
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        unlink(path);
        REQUIRE(tu_write_file(path, lines[i], false) == 0);
        engine = tu_engine(fx.config, &fx.err);
        CHECK(engine == NULL);
        CHECK_INT_EQ(fx.err.code, SSP_ERR_IO);
        CHECK_CONTAINS(fx.err.message, "line 1 is corrupt");
        ssp_engine_free(engine);
        engine = NULL;
        CHECK(ssp_reconcile_status_offline(fx.config, strlen(fx.config), &status_text, &fx.err) != 0);
        CHECK(status_text == NULL);
        free(status_text);
        status_text = NULL;
    }
    /* the largest accepted generation, then one more mark after it */
    unlink(path);
    text = tu_format("{\"op\":\"mark\",\"school\":\"gym-nord\",\"user\":\"\",\"gen\":%lld,"
                     "\"at\":1}\n",
                     (long long)(INT64_MAX / 2));
    REQUIRE(tu_write_file(path, text, false) == 0);
    REQUIRE(tu_reopen(&fx));
    gen = generation_of(&fx, "gym-nord", "");
    CHECK(gen == INT64_MAX / 2);
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    CHECK(generation_of(&fx, "gym-nord", ANNA) == INT64_MAX / 2 + 1);
out:
    ssp_engine_free(engine);
    free(status_text);
    free(text);
    free(path);
    tu_teardown(&fx);
}

static void reconcile_file_is_compacted_and_keeps_the_state(void)
{
    tu_fixture fx;
    char *path = NULL, *summary = NULL, *room = NULL;
    int64_t retry = ssp_now_ms() + 1000;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    path = tu_path(fx.dir, "reconcile.jsonl");
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "rs-ost", "teachers", "!t:school.example",
                                      &fx.err),
               fx.err);
    REQUIRE_OK(mark1(&fx, "rs-ost", BEN), fx.err);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "rs-ost", BEN, generation_of(&fx, "rs-ost", BEN),
                                    "later", retry, &fx.err),
               fx.err);
    /* 3000 lines of churn: mark and done */
    for (int i = 0; i < 1500; i++) {
        REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
        REQUIRE_OK(ssp_reconcile_done(fx.engine, "gym-nord", ANNA,
                                      generation_of(&fx, "gym-nord", ANNA), &fx.err),
                   fx.err);
    }
    CHECK(tu_count_lines(path) < 1100);
    REQUIRE(tu_reopen(&fx));
    summary = due_summary(&fx, retry);
    CHECK_STR_EQ(summary, "rs-ost/@ben:school.example@1");
    CHECK_OK(ssp_reconcile_get_room(fx.engine, "rs-ost", "teachers", &room, &fx.err), fx.err);
    CHECK_STR_EQ(room, "!t:school.example");
    /* generations stay monotonic across the compaction */
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    CHECK(generation_of(&fx, "gym-nord", ANNA) > 1501); /* 1 + 1500 marks before */
out:
    free(path);
    free(summary);
    free(room);
    tu_teardown(&fx);
}

static void reconcile_roster_changes_mark_old_and_new_schools(void)
{
    tu_fixture fx;
    char *summary = NULL, *path = NULL, *line = NULL;
    bool existed;
    ssp_store_status st;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, IN_GYM), fx.err);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "gym-nord/@anna:school.example@0");
    free(summary);
    done_all(&fx);
    /* moving schools marks both: the old one to remove her, the new one to add */
    REQUIRE_OK(tu_put(&fx, ANNA, IN_RS), fx.err);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "gym-nord/@anna:school.example@0,rs-ost/@anna:school.example@0");
    free(summary);
    ssp_store_get_status(fx.engine, &st);
    CHECK_INT_EQ(st.reconcile_pending, 2);
    done_all(&fx);
    REQUIRE_OK(ssp_roster_delete(fx.engine, ANNA, &existed, &fx.err), fx.err);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "rs-ost/@anna:school.example@0");
    /* the mark is in reconcile.jsonl before the change is in the roster journal */
    path = tu_path(fx.dir, "reconcile.jsonl");
    line = tu_read_file(path, NULL);
    CHECK_CONTAINS(line, "{\"op\":\"mark\",\"school\":\"rs-ost\",\"user\":\"@anna:school.example\"");
out:
    free(summary);
    free(path);
    free(line);
    tu_teardown(&fx);
}

static void reconcile_sync_config_marks_a_changed_school_once(void)
{
    tu_fixture fx;
    char *summary = NULL;
    size_t changed = 99;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, IN_GYM), fx.err);
    REQUIRE_OK(tu_put(&fx, BEN, IN_BOTH), fx.err);
    REQUIRE_OK(tu_put(&fx, "@carl:school.example",
                      "{\"schools\": [{\"school\": \"elsewhere\", \"role\": \"student\"}]}"),
               fx.err);
    done_all(&fx);
    REQUIRE_OK(ssp_reconcile_sync_config(fx.engine, &changed, &fx.err), fx.err);
    CHECK_INT_EQ(changed, 2);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_CONTAINS(summary, "gym-nord/@0");
    CHECK_CONTAINS(summary, "gym-nord/@anna:school.example@0");
    CHECK_CONTAINS(summary, "gym-nord/@ben:school.example@0");
    CHECK_CONTAINS(summary, "rs-ost/@0");
    CHECK_CONTAINS(summary, "rs-ost/@ben:school.example@0");
    CHECK(strstr(summary, "carl") == NULL);
    CHECK_INT_EQ(generation_of(&fx, "rs-ost", ANNA), -1);
    done_all(&fx);
    REQUIRE_OK(ssp_reconcile_sync_config(fx.engine, &changed, &fx.err), fx.err);
    CHECK_INT_EQ(changed, 0);
    free(summary);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "");
    /* the applied config survives a restart: still nothing to do */
    REQUIRE(tu_reopen(&fx));
    REQUIRE_OK(ssp_reconcile_sync_config(fx.engine, &changed, &fx.err), fx.err);
    CHECK_INT_EQ(changed, 0);
out:
    free(summary);
    tu_teardown(&fx);
}

static void reconcile_sync_config_notices_a_changed_school_setting(void)
{
    tu_fixture fx;
    char *config = NULL, *summary = NULL;
    size_t changed = 0;
    ssp_engine *engine = NULL;

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, IN_GYM), fx.err);
    REQUIRE_OK(ssp_reconcile_sync_config(fx.engine, &changed, &fx.err), fx.err);
    done_all(&fx);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    /* gym-nord turns its teachers room off; rs-ost is unchanged */
    config = tu_config(fx.dir, "\"schools\": {\"gym-nord\": {\"messenger\": true,"
                               " \"announcement_room\": true, \"teachers_room\": false},"
                               " \"rs-ost\": {}}");
    engine = tu_engine(config, &fx.err);
    REQUIRE(engine != NULL);
    fx.engine = engine;
    REQUIRE_OK(ssp_reconcile_sync_config(fx.engine, &changed, &fx.err), fx.err);
    CHECK_INT_EQ(changed, 1);
    summary = due_summary(&fx, ssp_now_ms());
    CHECK_STR_EQ(summary, "gym-nord/@0,gym-nord/@anna:school.example@0");
out:
    free(config);
    free(summary);
    tu_teardown(&fx);
}

static void reconcile_status_and_status_offline_agree(void)
{
    tu_fixture fx;
    char *text = NULL, *offline = NULL, *path = NULL, *before = NULL, *after = NULL;
    int64_t now = ssp_now_ms();

    if (!tu_setup(&fx, SCHOOLS))
        goto out;
    REQUIRE_OK(mark1(&fx, "gym-nord", ANNA), fx.err);
    REQUIRE_OK(mark1(&fx, "gym-nord", BEN), fx.err);
    REQUIRE_OK(mark1(&fx, "unlisted-school", BEN), fx.err);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "gym-nord", ANNA, generation_of(&fx, "gym-nord", ANNA),
                                    "first", now + 1000, &fx.err),
               fx.err);
    usleep(2000);
    REQUIRE_OK(ssp_reconcile_failed(fx.engine, "gym-nord", BEN, generation_of(&fx, "gym-nord", BEN),
                                    "second", now + 1000, &fx.err),
               fx.err);
    REQUIRE_OK(ssp_reconcile_set_room(fx.engine, "gym-nord", "announcement", "!a:school.example",
                                      &fx.err),
               fx.err);
    text = status(&fx);
    CHECK(tu_json_equal_text(
        text, "{\"schools\": {\"gym-nord\": {\"messenger\": true, \"teachers_room\": null,"
              " \"announcement_room\": \"!a:school.example\", \"pending\": 2,"
              " \"last_error\": \"second\"}, \"rs-ost\": {\"messenger\": false,"
              " \"teachers_room\": null, \"announcement_room\": null, \"pending\": 0,"
              " \"last_error\": null}}}"));
    CHECK(strstr(text, "\"gym-nord\"") < strstr(text, "\"rs-ost\"")); /* config order */
    /* offline, while the engine has the file open, and with a torn line
     * that only the engine may cut off */
    path = tu_path(fx.dir, "reconcile.jsonl");
    REQUIRE(tu_write_file(path, "{\"op\":\"ma", true) == 0);
    before = tu_read_file(path, NULL);
    REQUIRE_OK(ssp_reconcile_status_offline(fx.config, strlen(fx.config), &offline, &fx.err),
               fx.err);
    CHECK(tu_json_equal_text(offline, text));
    after = tu_read_file(path, NULL);
    CHECK_STR_EQ(after, before);
    free(offline);
    offline = NULL;
    /* a data dir without a reconcile.jsonl reads as empty */
    REQUIRE(unlink(path) == 0);
    REQUIRE_OK(ssp_reconcile_status_offline(fx.config, strlen(fx.config), &offline, &fx.err),
               fx.err);
    CHECK_CONTAINS(offline, "\"pending\":0");
    CHECK(strstr(offline, "!a:school.example") == NULL);
out:
    free(text);
    free(offline);
    free(path);
    free(before);
    free(after);
    tu_teardown(&fx);
}

void run_reconcile_tests(void)
{
    RUN(reconcile_mark_due_done);
    RUN(reconcile_remark_while_working_survives_done_of_the_old_generation);
    RUN(reconcile_failed_backs_off_and_a_remark_makes_it_due_again);
    RUN(reconcile_rejects_bad_input_naming_it);
    RUN(reconcile_state_survives_a_restart_with_monotonic_generations);
    RUN(reconcile_torn_last_line_is_cut_off);
    RUN(reconcile_corrupt_line_fails_the_open_naming_file_and_line);
    RUN(reconcile_generation_overflow_is_a_corrupt_line);
    RUN(reconcile_file_is_compacted_and_keeps_the_state);
    RUN(reconcile_roster_changes_mark_old_and_new_schools);
    RUN(reconcile_sync_config_marks_a_changed_school_once);
    RUN(reconcile_sync_config_notices_a_changed_school_setting);
    RUN(reconcile_status_and_status_offline_agree);
}
