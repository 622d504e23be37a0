/* The PostgreSQL store without a server (pg/pg_store.c): a database that is
 * unreachable at start-up. Decisions go on from the local roster cache and
 * outbox; roster writes are kept in the outbox, audit records in the spill
 * file, across a restart. The tests with a server are in tests/system/test_workers.py. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine_state.h"
#include "groups.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

/* Port 1 on loopback: nothing listens there, connect() is refused at once. */
#define DOWN_DB "\"database\": \"host=127.0.0.1 port=1 dbname=x user=x\""
#define ANNA "@anna:school.example"
#define GYM_STUDENT "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}"

static void deny_login(ssp_engine *engine, const char *actor)
{
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = actor;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(engine, &req, &d);
    if (d.verdict != SSP_VERDICT_DENY)
        CHECK_FAIL("login of %s was not denied", actor);
}

static void pgstore_unreachable_database_keeps_roster_writes_and_audit_records(void)
{
    tu_fixture fx;
    ssp_store_status st;
    char *entry = NULL, *outbox = NULL, *spill = NULL;

    if (!tu_setup(&fx, DOWN_DB))
        goto out;
    ssp_store_get_status(fx.engine, &st);
    CHECK(st.postgres);
    CHECK(!st.connected);
    CHECK_CONTAINS(st.last_error, "cannot connect");
    CHECK_OK(ssp_roster_put(fx.engine, ANNA, GYM_STUDENT, strlen(GYM_STUDENT), &entry, &fx.err),
             fx.err);
    free(entry);
    entry = NULL;
    deny_login(fx.engine, "@nobody:school.example");
    CHECK_OK(ssp_audit_flush(fx.engine, &fx.err), fx.err);
    ssp_store_get_status(fx.engine, &st);
    CHECK_INT_EQ(st.audit_spilled_total, 1);
    CHECK_INT_EQ(st.audit_spill_pending, 1);
    CHECK_INT_EQ(st.roster_outbox_pending, 1);
    outbox = tu_path(fx.dir, "main.roster-outbox.jsonl");
    spill = tu_path(fx.dir, "main.audit-spill.jsonl");
    CHECK_INT_EQ(tu_count_lines(outbox), 1);
    CHECK_INT_EQ(tu_count_lines(spill), 1);
    /* A restart during the outage starts from the outbox. */
    if (!tu_reopen(&fx))
        goto out;
    CHECK_OK(ssp_roster_get(fx.engine, ANNA, &entry, &fx.err), fx.err);
    CHECK(entry != NULL && strstr(entry, "gym-nord") != NULL);
    ssp_store_get_status(fx.engine, &st);
    CHECK_INT_EQ(st.audit_spill_pending, 1);
    CHECK_INT_EQ(st.roster_outbox_pending, 1);
out:
    free(entry);
    free(outbox);
    free(spill);
    tu_teardown(&fx);
}

static void pgstore_second_process_on_the_same_worker_files_is_refused(void)
{
    tu_fixture fx;
    ssp_error err = {0};
    ssp_engine *second;

    if (!tu_setup(&fx, DOWN_DB))
        goto out;
    second = tu_engine(fx.config, &err);
    CHECK(second == NULL);
    CHECK_CONTAINS(err.message, "is in use by another process");
    ssp_engine_free(second);
out:
    tu_teardown(&fx);
}

static void pgstore_audit_query_without_database_fails_as_unavailable(void)
{
    tu_fixture fx;
    ssp_audit_filter f;
    char *text = NULL;

    if (!tu_setup(&fx, DOWN_DB))
        goto out;
    memset(&f, 0, sizeof f);
    f.limit = 10;
    CHECK_INT_EQ(ssp_audit_query(fx.engine, &f, &text, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_UNAVAILABLE);
    CHECK_CONTAINS(fx.err.message, "database: cannot connect");
    free(text);
out:
    tu_teardown(&fx);
}

/* The groups cache (data_dir/<worker>.groups-cache, the COPY binary
 * stream of school_policy.groups) read when the database is unreachable at
 * start-up: members sorted, rows and members that break the rules skipped
 * and counted, a torn last row ignored. */
static void pgstore_groups_start_from_the_cache_during_an_outage(void)
{
    tu_fixture fx;
    ssp_store_status st;
    char *cache = NULL, *stream = NULL;
    size_t len = 0, torn;
    const ssp_group *group;
    const char *berg[] = {"@berg:school.example", NULL};
    const char *course[] = {"@zed:school.example", "@q\"u\\o,{x}:school.example",
                            "@ali:school.example", NULL};
    const char *team[] = {"@ali:school.example", "@x:other.example", NULL};
    const char *ali[] = {"@ali:school.example", NULL};
    const char *with_null[] = {"\\N", NULL};
    const tu_group_row rows[] = {
        /* a tab in the name, odd characters in a member id */
        {"course-1", "gym-nord", "course", "Mathe\t7b", NULL, "active", false, true, 0, "17",
         berg, course},
        /* a member of another server is left out, the group stays */
        {"team-2", "gym-nord", "team", "Team", "Thema", "archived", true, false, 1785542400000LL,
         NULL, NULL, team},
        /* an unknown kind: the row is skipped */
        {"class-3", "gym-nord", "seminar", "S", NULL, "active", false, true, 0, "1", NULL, ali},
        /* a NULL member: the row is skipped */
        {"class-4", "gym-nord", "class", "K", NULL, "active", false, true, 0, "1", with_null, NULL},
        /* torn below */
        {"course-5", "gym-nord", "course", "T", NULL, "active", false, true, 0, "1", NULL, ali},
    };

    tu_copy_header(&stream, &len);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        tu_copy_group_row(&stream, &len, &rows[i]);
    torn = len - 3; /* the last row without its last bytes, and no trailer */
    if (!tu_setup(&fx, DOWN_DB))
        goto out;
    cache = tu_path(fx.dir, "main.groups-cache");
    CHECK_INT_EQ(tu_write_bytes(cache, stream, torn), 0);
    if (!tu_reopen(&fx))
        goto out;
    pthread_rwlock_rdlock(&fx.engine->roster.lock);
    group = ssp_roster_group(&fx.engine->roster, "course-1", strlen("course-1"));
    CHECK(group != NULL);
    if (group != NULL) {
        CHECK_STR_EQ(group->name, "Mathe\t7b");
        CHECK(group->topic == NULL);
        CHECK_STR_EQ(group->kind, "course");
        CHECK(group->has_version);
        CHECK_INT_EQ(group->version, 17);
        CHECK(group->closed);
        CHECK(!group->two_way);
        CHECK_INT_EQ(group->archive_at_ms, 0);
        CHECK_INT_EQ(group->n_members, 4);
        if (group->n_members == 4) {
            CHECK_STR_EQ(group->members[0].user_id, "@ali:school.example");
            CHECK_STR_EQ(group->members[1].user_id, "@berg:school.example");
            CHECK_INT_EQ(group->members[1].role, SSP_GROUP_MODERATOR);
            CHECK_STR_EQ(group->members[2].user_id, "@q\"u\\o,{x}:school.example");
            CHECK_INT_EQ(group->members[2].role, SSP_GROUP_MEMBER);
            CHECK_STR_EQ(group->members[3].user_id, "@zed:school.example");
        }
    }
    group = ssp_roster_group(&fx.engine->roster, "team-2", strlen("team-2"));
    CHECK(group != NULL);
    if (group != NULL) {
        CHECK_STR_EQ(group->topic, "Thema");
        CHECK(!group->has_version);
        CHECK(group->two_way);
        CHECK(!group->closed);
        CHECK_INT_EQ(group->state, SSP_GROUP_ARCHIVED);
        CHECK_INT_EQ(group->archive_at_ms, 1785542400000LL);
        CHECK_INT_EQ(group->n_members, 1);
    }
    CHECK(ssp_roster_group(&fx.engine->roster, "class-3", strlen("class-3")) == NULL);
    CHECK(ssp_roster_group(&fx.engine->roster, "class-4", strlen("class-4")) == NULL);
    CHECK(ssp_roster_group(&fx.engine->roster, "course-5", strlen("course-5")) == NULL);
    pthread_rwlock_unlock(&fx.engine->roster.lock);
    ssp_store_get_status(fx.engine, &st);
    CHECK_INT_EQ(st.roster_skipped, 3); /* the other server's member and two rows */
out:
    free(cache);
    free(stream);
    tu_teardown(&fx);
}

/* A group write needs the database (no outbox): it fails as unavailable
 * and leaves the index as it was. */
static void pgstore_group_put_without_database_fails_and_changes_nothing(void)
{
    tu_fixture fx;
    char *stored = NULL;
    const char *body = "{\"school\": \"gym-nord\", \"kind\": \"course\", \"name\": \"Mathe\", "
                       "\"members\": [{\"user_id\": \"" ANNA "\", \"role\": \"member\"}]}";

    if (!tu_setup(&fx, DOWN_DB ", \"schools\": {\"gym-nord\": {\"messenger\": true}}"))
        goto out;
    CHECK_INT_EQ(ssp_group_put(fx.engine, "course-1", body, strlen(body), &stored, &fx.err), -1);
    CHECK_INT_EQ(fx.err.code, SSP_ERR_UNAVAILABLE);
    CHECK_CONTAINS(fx.err.message, "cannot connect");
    CHECK(stored == NULL);
    CHECK_INT_EQ(ssp_groups_count(fx.engine), 0);
    free(stored);
out:
    tu_teardown(&fx);
}

void run_pgstore_tests(void)
{
    RUN(pgstore_unreachable_database_keeps_roster_writes_and_audit_records);
    RUN(pgstore_second_process_on_the_same_worker_files_is_refused);
    RUN(pgstore_audit_query_without_database_fails_as_unavailable);
    RUN(pgstore_groups_start_from_the_cache_during_an_outage);
    RUN(pgstore_group_put_without_database_fails_and_changes_nothing);
}
