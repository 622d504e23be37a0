/* The embedded store across restarts: roster journal and audit log files
 * (journal.c, embedded/audit_file.c, engine.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define ANNA "@anna:school.example"
#define BEN "@ben:school.example"
#define CARL "@carl:school.example"
#define ZOE "@zoe:school.example"
#define GYM_STUDENT "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"
#define GYM_TEACHER "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"}]}"
#define ANNA_LINE "{\"user_id\":\"@anna:school.example\",\"schools\":[{\"school\":\"gym-nord\",\"role\":\"student\"}]}\n"

static char *get_entry(tu_fixture *fx, const char *user)
{
    char *entry = NULL;

    if (ssp_roster_get(fx->engine, user, &entry, &fx->err) != 0)
        CHECK_FAIL("ssp_roster_get(%s) failed: %s", user, fx->err.message);
    return entry;
}

static void deny_login(tu_fixture *fx, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(fx->engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("login of %s was not denied", actor);
}

static char *all_ids(tu_fixture *fx)
{
    ssp_audit_filter f;
    char *text = NULL, *out;
    json_t *result, *rec;
    size_t i;

    memset(&f, 0, sizeof f);
    f.limit = 1000;
    if (ssp_audit_query(fx->engine, &f, &text, &fx->err) != 0)
        return tu_format("(query failed: %s)", fx->err.message);
    result = tu_json(text);
    free(text);
    out = tu_format("%s", "");
    json_array_foreach(json_object_get(result, "records"), i, rec) {
        char *grown = tu_format("%s%s%lld", out, i ? "," : "",
                                (long long)json_integer_value(json_object_get(rec, "id")));

        free(out);
        out = grown;
    }
    json_decref(result);
    return out;
}

static void store_roster_journal_holds_one_line_per_change_in_the_entry_shape(void)
{
    tu_fixture fx;
    char *journal = NULL, *text = NULL;
    bool existed;

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, GYM_STUDENT), fx.err);
    REQUIRE_OK(ssp_roster_delete(fx.engine, ANNA, &existed, &fx.err), fx.err);
    journal = tu_path(fx.dir, "roster.jsonl");
    text = tu_read_file(journal, NULL);
    CHECK_STR_EQ(text, ANNA_LINE "{\"user_id\":\"@anna:school.example\",\"schools\":[]}\n");
out:
    free(journal);
    free(text);
    tu_teardown(&fx);
}

static void store_roster_survives_a_restart(void)
{
    tu_fixture fx;
    char *entry = NULL;
    size_t upserted;
    bool existed;
    static const char batch[] =
        "{\"users\": [{\"user_id\": \"@carl:school.example\", \"schools\": [{\"school\": \"rs\","
        " \"role\": \"admin\"}, {\"school\": \"gym-nord\", \"role\": \"teacher\"}]},"
        " {\"user_id\": \"@zoe:school.example\", \"schools\": []}]}";

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, GYM_STUDENT), fx.err);
    REQUIRE_OK(tu_put(&fx, BEN, GYM_STUDENT), fx.err);
    REQUIRE_OK(tu_put(&fx, BEN, GYM_TEACHER), fx.err);
    REQUIRE_OK(tu_put(&fx, ZOE, GYM_STUDENT), fx.err);
    REQUIRE_OK(ssp_roster_delete(fx.engine, ANNA, &existed, &fx.err), fx.err);
    REQUIRE_OK(ssp_roster_upsert_batch(fx.engine, batch, strlen(batch), &upserted, &fx.err), fx.err);
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 2);
    entry = get_entry(&fx, ANNA);
    CHECK(entry == NULL);
    free(entry);
    entry = get_entry(&fx, ZOE);
    CHECK(entry == NULL);
    free(entry);
    entry = get_entry(&fx, BEN);
    CHECK(tu_json_equal_text(entry, "{\"user_id\": \"@ben:school.example\", \"schools\": "
                                    "[{\"school\": \"gym-nord\", \"role\": \"teacher\"}]}"));
    free(entry);
    entry = get_entry(&fx, CARL);
    CHECK(tu_json_equal_text(entry, "{\"user_id\": \"@carl:school.example\", \"schools\": "
                                    "[{\"school\": \"rs\", \"role\": \"admin\"},"
                                    " {\"school\": \"gym-nord\", \"role\": \"teacher\"}]}"));
    free(entry);
out:
    tu_teardown(&fx);
}

static void store_audit_ids_continue_after_a_restart(void)
{
    tu_fixture fx;
    char *ids = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    deny_login(&fx, ZOE);
    deny_login(&fx, ZOE);
    deny_login(&fx, ZOE);
    REQUIRE(tu_reopen(&fx)); /* a clean shutdown flushes the queue */
    ids = all_ids(&fx);
    CHECK_STR_EQ(ids, "3,2,1");
    free(ids);
    deny_login(&fx, ZOE);
    REQUIRE(tu_reopen(&fx));
    deny_login(&fx, ZOE);
    ids = all_ids(&fx);
    CHECK_STR_EQ(ids, "5,4,3,2,1");
out:
    free(ids);
    tu_teardown(&fx);
}

static void store_torn_last_roster_line_is_cut_off_on_reopen(void)
{
    tu_fixture fx;
    char *journal = NULL, *before = NULL, *after = NULL, *entry = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    REQUIRE_OK(tu_put(&fx, ANNA, GYM_STUDENT), fx.err);
    journal = tu_path(fx.dir, "roster.jsonl");
    before = tu_read_file(journal, NULL);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    /* a crash in the middle of appending Ben's entry */
    REQUIRE(tu_write_file(journal, "{\"user_id\":\"@ben:school.example\",\"schools\":[{\"sch",
                          true) == 0);
    REQUIRE(tu_reopen(&fx));
    after = tu_read_file(journal, NULL);
    CHECK_STR_EQ(after, before);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
    entry = get_entry(&fx, BEN);
    CHECK(entry == NULL);
    /* the next append starts on a clean line and survives another restart */
    REQUIRE_OK(tu_put(&fx, BEN, GYM_TEACHER), fx.err);
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 2);
    CHECK_INT_EQ(tu_count_lines(journal), 2);
out:
    free(journal);
    free(before);
    free(after);
    free(entry);
    tu_teardown(&fx);
}

static void store_torn_complete_json_without_newline_is_cut_off_too(void)
{
    /* Only a newline makes an append whole: a last line that parses but was
     * never terminated was never acknowledged. */
    tu_fixture fx;
    char *journal = NULL, *entry = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    journal = tu_path(fx.dir, "roster.jsonl");
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    REQUIRE(tu_write_file(journal, ANNA_LINE, false) == 0);
    REQUIRE(tu_write_file(journal, "{\"user_id\":\"@ben:school.example\",\"schools\":[]}", true) == 0);
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
    CHECK_INT_EQ(tu_count_lines(journal), 1);
    entry = get_entry(&fx, ANNA);
    CHECK(entry != NULL);
out:
    free(journal);
    free(entry);
    tu_teardown(&fx);
}

static void store_torn_last_audit_line_is_cut_off_on_reopen(void)
{
    tu_fixture fx;
    char *audit = NULL, *before = NULL, *after = NULL, *ids = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    deny_login(&fx, ZOE);
    deny_login(&fx, ZOE);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    audit = tu_path(fx.dir, "audit.jsonl");
    before = tu_read_file(audit, NULL);
    REQUIRE(tu_write_file(audit, "{\"id\":3,\"ts\":17640000", true) == 0);
    REQUIRE(tu_reopen(&fx));
    after = tu_read_file(audit, NULL);
    CHECK_STR_EQ(after, before);
    deny_login(&fx, ZOE);
    ids = all_ids(&fx);
    CHECK_STR_EQ(ids, "3,2,1");
    CHECK_INT_EQ(tu_count_lines(audit), 3);
out:
    free(audit);
    free(before);
    free(after);
    free(ids);
    tu_teardown(&fx);
}

static void store_audit_log_holding_only_a_torn_line_starts_again_at_id_1(void)
{
    tu_fixture fx;
    char *audit = NULL, *ids = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    audit = tu_path(fx.dir, "audit.jsonl");
    REQUIRE(tu_write_file(audit, "garbage without a newline", false) == 0);
    REQUIRE(tu_reopen(&fx));
    deny_login(&fx, ZOE);
    ids = all_ids(&fx);
    CHECK_STR_EQ(ids, "1");
    CHECK_INT_EQ(tu_count_lines(audit), 1);
out:
    free(audit);
    free(ids);
    tu_teardown(&fx);
}

static void store_audit_query_over_a_corrupt_line_does_not_claim_out_of_memory(void)
{
    /* A line of audit.jsonl that does not parse (damaged on disk, or a torn
     * tail that an earlier version left behind and then wrote after) must
     * not make every query fail as "out of memory": the query passes over
     * it (or fails naming the file), and does not blame memory. */
    tu_fixture fx;
    char *audit = NULL, *ids = NULL;
    ssp_audit_filter f;
    char *text = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    deny_login(&fx, ZOE);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    audit = tu_path(fx.dir, "audit.jsonl");
    REQUIRE(tu_write_file(audit, "{\"id\":2,\"ts\":1764000000000,\"rule\":\"not_on\n", true) == 0);
    REQUIRE(tu_reopen(&fx));
    deny_login(&fx, ZOE);
    memset(&f, 0, sizeof f);
    f.limit = 10;
    memset(&fx.err, 0, sizeof fx.err);
    if (ssp_audit_query(fx.engine, &f, &text, &fx.err) != 0) {
        CHECK(fx.err.code != SSP_ERR_NOMEM);
        CHECK(strstr(fx.err.message, "out of memory") == NULL);
        if (fx.err.code == SSP_ERR_NOMEM)
            CHECK_FAIL("query failed with [%d] %s", (int)fx.err.code, fx.err.message);
    } else {
        ids = tu_format("%s", text);
        CHECK_CONTAINS(ids, "\"id\":1,");
    }
out:
    free(text);
    free(audit);
    free(ids);
    tu_teardown(&fx);
}

static void store_audit_ids_do_not_restart_when_the_last_line_is_corrupt(void)
{
    /* The next id comes from the last record of audit.jsonl; when the last
     * line is whole (newline-terminated) but does not parse, ids must still
     * go on from the last good record: ids starting again at 1 would give
     * two records one id and make `next`/before_id pagination skip or
     * repeat records. */
    tu_fixture fx;
    char *audit = NULL, *text = NULL;
    ssp_audit_filter f;
    json_t *result = NULL, *records;

    if (!tu_setup(&fx, NULL))
        goto out;
    deny_login(&fx, ZOE);
    deny_login(&fx, ZOE);
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    audit = tu_path(fx.dir, "audit.jsonl");
    REQUIRE(tu_write_file(audit, "{\"id\":3,\"ts\":17640\n", true) == 0);
    REQUIRE(tu_reopen(&fx));
    deny_login(&fx, ZOE);
    REQUIRE_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    text = tu_read_file(audit, NULL);
    REQUIRE(text != NULL);
    /* the record written after the corrupt line must not reuse id 1 */
    if (strstr(text, "17640\n") != NULL && strstr(strstr(text, "17640\n"), "{\"id\":1,") != NULL)
        CHECK_FAIL("the record written after the corrupt line got id 1 again");
    memset(&f, 0, sizeof f);
    f.limit = 10;
    free(text);
    text = NULL;
    if (ssp_audit_query(fx.engine, &f, &text, &fx.err) == 0) {
        result = tu_json(text);
        records = json_object_get(result, "records");
        if (json_array_size(records) > 0)
            CHECK(json_integer_value(json_object_get(json_array_get(records, 0), "id")) > 2);
    }
out:
    json_decref(result);
    free(text);
    free(audit);
    tu_teardown(&fx);
}

static void store_corrupt_roster_line_in_the_middle_fails_open_naming_file_and_line(void)
{
    tu_fixture fx;
    char *journal = NULL, *expected = NULL;
    ssp_engine *engine = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    journal = tu_path(fx.dir, "roster.jsonl");
    REQUIRE(tu_write_file(journal,
                          ANNA_LINE "{\"user_id\":\"@ben:school.exa\n"
                                    "{\"user_id\":\"@carl:school.example\",\"schools\":[]}\n",
                          false) == 0);
    engine = tu_engine(fx.config, &fx.err);
    CHECK(engine == NULL);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_IO);
    expected = tu_format("%s line 2 is corrupt (", journal);
    CHECK_CONTAINS(fx.err.message, expected);
    CHECK_CONTAINS(fx.err.message, "restore it from a backup");
    /* the file is left alone for the operator */
    CHECK_INT_EQ(tu_count_lines(journal), 3);
out:
    ssp_engine_free(engine);
    free(journal);
    free(expected);
    tu_teardown(&fx);
}

static void store_roster_line_with_an_invalid_entry_fails_open_naming_the_field(void)
{
    tu_fixture fx;
    char *journal = NULL, *expected = NULL;
    ssp_engine *engine = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    journal = tu_path(fx.dir, "roster.jsonl");
    REQUIRE(tu_write_file(journal,
                          ANNA_LINE ANNA_LINE
                          "{\"user_id\":\"@ben:school.example\",\"schools\":[{\"school\":\"gym\","
                          "\"role\":\"boss\"}]}\n" ANNA_LINE,
                          false) == 0);
    engine = tu_engine(fx.config, &fx.err);
    CHECK(engine == NULL);
    expected = tu_format("%s line 3 is corrupt (entry.schools[0].role: expected one of teacher, "
                         "student, admin)",
                         journal);
    CHECK_CONTAINS(fx.err.message, expected);
out:
    ssp_engine_free(engine);
    free(journal);
    free(expected);
    tu_teardown(&fx);
}

static void store_roster_lines_that_break_the_input_rules_are_skipped_and_counted(void)
{
    /* Entries written before the rules: the engine opens, keeps the rest,
     * and counts what it left out. */
    tu_fixture fx;
    char *journal = NULL, *entry = NULL;
    ssp_store_status st;

    if (!tu_setup(&fx, NULL))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    journal = tu_path(fx.dir, "roster.jsonl");
    REQUIRE(tu_write_file(
                journal,
                ANNA_LINE
                "{\"user_id\":\"@eve:other.example\",\"schools\":[{\"school\":\"gym-nord\","
                "\"role\":\"student\"}]}\n"
                "{\"user_id\":\"@caf\xc3\xa9:school.example\",\"schools\":[]}\n"
                "{\"user_id\":\"@ben:school.example\",\"schools\":[{\"school\":\"gym\\nnord\","
                "\"role\":\"student\"},{\"school\":\"gym nord\",\"role\":\"admin\"},"
                "{\"school\":\"rs-ost\",\"role\":\"teacher\"}]}\n"
                "{\"user_id\":\"@carl:school.example\",\"schools\":[{\"school\":\"a\\u0001\","
                "\"role\":\"student\"}]}\n",
                false) == 0);
    fx.engine = tu_engine(fx.config, &fx.err);
    if (fx.engine == NULL) {
        CHECK_FAIL("open failed: %s", fx.err.message);
        goto out;
    }
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 2);
    entry = get_entry(&fx, BEN);
    CHECK(tu_json_equal_text(entry, "{\"user_id\": \"@ben:school.example\", \"schools\": "
                                    "[{\"school\": \"rs-ost\", \"role\": \"teacher\"}]}"));
    free(entry);
    entry = get_entry(&fx, "@eve:other.example");
    CHECK(entry == NULL);
    /* two lines skipped, three memberships dropped */
    ssp_store_get_status(fx.engine, &st);
    CHECK_INT_EQ(st.roster_skipped, 5);
out:
    free(entry);
    free(journal);
    tu_teardown(&fx);
}

static void store_journal_is_compacted_when_it_has_far_more_lines_than_users(void)
{
    tu_fixture fx;
    char *journal = NULL, *text = NULL, *entry = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    /* the same user put 3000 times: 3000 journal lines for one user */
    for (int i = 0; i < 3000; i++)
        REQUIRE_OK(tu_put(&fx, ANNA, i == 2999 ? GYM_TEACHER : GYM_STUDENT), fx.err);
    journal = tu_path(fx.dir, "roster.jsonl");
    CHECK_INT_EQ(tu_count_lines(journal), 3000);
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(tu_count_lines(journal), 1);
    text = tu_read_file(journal, NULL);
    CHECK_STR_EQ(text, "{\"user_id\":\"@anna:school.example\",\"schools\":[{\"school\":\"gym-nord\","
                       "\"role\":\"teacher\"}]}\n");
    entry = get_entry(&fx, ANNA);
    CHECK(tu_json_equal_text(entry, "{\"user_id\": \"@anna:school.example\", \"schools\": "
                                    "[{\"school\": \"gym-nord\", \"role\": \"teacher\"}]}"));
    /* no temporary file is left behind */
    free(text);
    text = tu_path(fx.dir, "roster.jsonl.tmp");
    CHECK(access(text, F_OK) != 0);
    /* appends after compaction go to the new file */
    REQUIRE_OK(tu_put(&fx, BEN, GYM_STUDENT), fx.err);
    REQUIRE(tu_reopen(&fx));
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 2);
    CHECK_INT_EQ(tu_count_lines(journal), 2);
out:
    free(journal);
    free(text);
    free(entry);
    tu_teardown(&fx);
}

static void store_compaction_drops_removed_users(void)
{
    tu_fixture fx;
    char *journal = NULL, *body = NULL;
    size_t upserted = 0, used = 0, cap = 0;

    if (!tu_setup(&fx, NULL))
        goto out;
    /* 1500 users added, then 1490 of them removed: 2990 lines, 10 users.
     * Two batches: one batch may not name a user twice. */
    cap = 3000 * 120 + 64;
    body = malloc(cap);
    REQUIRE(body != NULL);
    for (int batch = 0; batch < 2; batch++) {
        used = (size_t)snprintf(body, cap, "{\"users\": [");
        for (int i = batch ? 10 : 0; i < 1500; i++)
            used += (size_t)snprintf(body + used, cap - used,
                                     "%s{\"user_id\": \"@u%d:school.example\", \"schools\": [%s]}",
                                     i > (batch ? 10 : 0) ? ", " : "", i,
                                     batch ? "" : "{\"school\": \"gym-nord\", \"role\": \"student\"}");
        snprintf(body + used, cap - used, "]}");
        REQUIRE_OK(ssp_roster_upsert_batch(fx.engine, body, strlen(body), &upserted, &fx.err),
                   fx.err);
    }
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 10);
    REQUIRE(tu_reopen(&fx));
    journal = tu_path(fx.dir, "roster.jsonl");
    CHECK_INT_EQ(tu_count_lines(journal), 10);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 10);
out:
    free(body);
    free(journal);
    tu_teardown(&fx);
}

static void store_journal_is_not_compacted_below_the_threshold(void)
{
    tu_fixture fx;
    char *journal = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    for (int i = 0; i < 50; i++)
        REQUIRE_OK(tu_put(&fx, ANNA, i % 2 ? GYM_STUDENT : GYM_TEACHER), fx.err);
    REQUIRE(tu_reopen(&fx));
    journal = tu_path(fx.dir, "roster.jsonl");
    CHECK_INT_EQ(tu_count_lines(journal), 50);
    CHECK_INT_EQ(ssp_roster_size(fx.engine), 1);
out:
    free(journal);
    tu_teardown(&fx);
}

static void store_engine_open_retried_after_a_failure_starts_from_the_file(void)
{
    /* A failed open must not leave half a roster behind: after the operator
     * repairs the journal, a second open has to give exactly the file's
     * roster. */
    tu_fixture fx;
    char *journal = NULL;
    ssp_engine *engine = NULL;
    char *entry = NULL;

    if (!tu_setup(&fx, NULL))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    journal = tu_path(fx.dir, "roster.jsonl");
    REQUIRE(tu_write_file(journal, ANNA_LINE "not json\n", false) == 0);
    engine = ssp_engine_new(fx.config, strlen(fx.config), TU_SERVER, TU_WORKER, &fx.err);
    REQUIRE(engine != NULL);
    CHECK_INT_EQ(ssp_engine_open(engine, &fx.err), -1);
    /* the operator restores an empty roster and tries again */
    REQUIRE(tu_write_file(journal, "", false) == 0);
    REQUIRE_OK(ssp_engine_open(engine, &fx.err), fx.err);
    CHECK_INT_EQ(ssp_roster_size(engine), 0);
    CHECK_OK(ssp_roster_get(engine, ANNA, &entry, &fx.err), fx.err);
    CHECK(entry == NULL);
out:
    free(entry);
    ssp_engine_free(engine);
    free(journal);
    tu_teardown(&fx);
}

static void store_engine_open_retried_after_an_audit_failure_does_not_leak_the_journal(void)
{
    /* When the journal opens but the audit log does not, ssp_engine_open
     * returns -1 with the journal still open; opening again must not leak
     * the first journal's descriptor (or its path). */
    tu_fixture fx;
    char *audit = NULL;
    ssp_engine *engine = NULL;
    int fds_before;

    if (!tu_setup(&fx, NULL))
        goto out;
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    audit = tu_path(fx.dir, "audit.jsonl");
    REQUIRE(unlink(audit) == 0);
    REQUIRE(mkdir(audit, 0700) == 0); /* open(audit.jsonl) fails with EISDIR */
    fds_before = tu_open_fds();
    engine = ssp_engine_new(fx.config, strlen(fx.config), TU_SERVER, TU_WORKER, &fx.err);
    REQUIRE(engine != NULL);
    CHECK_INT_EQ(ssp_engine_open(engine, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_IO);
    CHECK_CONTAINS(fx.err.message, audit);
    REQUIRE(rmdir(audit) == 0);
    CHECK_OK(ssp_engine_open(engine, &fx.err), fx.err);
    ssp_engine_free(engine);
    engine = NULL;
    CHECK_INT_EQ(tu_open_fds(), fds_before);
out:
    ssp_engine_free(engine);
    free(audit);
    tu_teardown(&fx);
}

void run_store_tests(void)
{
    RUN(store_roster_journal_holds_one_line_per_change_in_the_entry_shape);
    RUN(store_roster_survives_a_restart);
    RUN(store_audit_ids_continue_after_a_restart);
    RUN(store_torn_last_roster_line_is_cut_off_on_reopen);
    RUN(store_torn_complete_json_without_newline_is_cut_off_too);
    RUN(store_torn_last_audit_line_is_cut_off_on_reopen);
    RUN(store_audit_log_holding_only_a_torn_line_starts_again_at_id_1);
    RUN(store_audit_query_over_a_corrupt_line_does_not_claim_out_of_memory);
    RUN(store_audit_ids_do_not_restart_when_the_last_line_is_corrupt);
    RUN(store_corrupt_roster_line_in_the_middle_fails_open_naming_file_and_line);
    RUN(store_roster_line_with_an_invalid_entry_fails_open_naming_the_field);
    RUN(store_roster_lines_that_break_the_input_rules_are_skipped_and_counted);
    RUN(store_journal_is_compacted_when_it_has_far_more_lines_than_users);
    RUN(store_compaction_drops_removed_users);
    RUN(store_journal_is_not_compacted_below_the_threshold);
    RUN(store_engine_open_retried_after_a_failure_starts_from_the_file);
    RUN(store_engine_open_retried_after_an_audit_failure_does_not_leak_the_journal);
}
