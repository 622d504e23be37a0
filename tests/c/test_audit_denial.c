/*
 * A denial's audit record (audit.c, audit_queue.c, audit_throttle.c):
 * durable before the answer (the file, the spill file, concurrent waiters),
 * never wedging the writer, and once a minute for a refused token.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

/* The id of the last whole record of a jsonl file, or 0. */
static int64_t last_record_id(const char *path)
{
    char *text = tu_read_file(path, NULL), *line;
    int64_t id = 0;
    json_t *rec;

    if (text == NULL || text[0] == '\0') {
        free(text);
        return 0;
    }
    text[strlen(text) - 1] = '\0'; /* the last newline */
    line = strrchr(text, '\n');
    rec = tu_json(line ? line + 1 : text);
    id = (int64_t)json_integer_value(json_object_get(rec, "id"));
    json_decref(rec);
    free(text);
    return id;
}

static void decide_denial_reports_its_record_and_waits_until_it_is_on_disk(void)
{
    tu_fixture fx;
    ssp_decision d;
    char *path = NULL;

    if (!roster_world_setup(&fx, NULL))
        goto out;
    login(&fx, ANNA, SSP_FACT_UNKNOWN, &d);
    CHECK_ALLOW(d);
    CHECK_INT_EQ(d.audit_id, 0);
    login(&fx, ZOE, SSP_FACT_UNKNOWN, &d); /* NEED_ADMIN: nothing queued yet */
    CHECK_INT_EQ(d.verdict, SSP_VERDICT_NEED_ADMIN);
    CHECK_INT_EQ(d.audit_id, 0);
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    CHECK(d.audit_id > 0);
    CHECK(ssp_decision_wait_durable(fx.engine, d.audit_id, 5000));
    /* Written means in the file, not only out of the queue. */
    path = tu_path(fx.dir, "audit.jsonl");
    CHECK_INT_EQ(last_record_id(path), d.audit_id);
    /* The next denial gets the next id; nothing to wait for is no wait. */
    {
        int64_t first = d.audit_id;

        login(&fx, BEN, SSP_FACT_NO, &d);
        CHECK_INT_EQ(d.audit_id, first + 1);
        CHECK(ssp_decision_wait_durable(fx.engine, d.audit_id, 5000));
        CHECK_INT_EQ(last_record_id(path), first + 1);
        CHECK(ssp_decision_wait_durable(fx.engine, 0, 0));
    }
out:
    free(path);
    tu_teardown(&fx);
}

#define WAITERS 16

typedef struct waiter {
    ssp_engine *engine;
    int64_t audit_id;
    bool durable;
} waiter;

static void *deny_and_wait(void *arg)
{
    waiter *w = arg;
    ssp_request req;
    ssp_decision d;

    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
    req.actor = BEN;
    req.actor_is_admin = SSP_FACT_NO;
    ssp_decide(w->engine, &req, &d);
    w->audit_id = d.audit_id;
    w->durable = ssp_decision_wait_durable(w->engine, d.audit_id, 10000);
    return NULL;
}

static void decide_concurrent_denials_each_wait_for_their_own_record(void)
{
    tu_fixture fx;
    pthread_t threads[WAITERS];
    waiter waiters[WAITERS];
    int started = 0;
    ssp_audit_stats stats;

    /* the same denial from every thread: each its own record, past the flood limit */
    if (!roster_world_setup(&fx, UNLIMITED_FLOOD))
        goto out;
    for (int i = 0; i < WAITERS; i++) {
        waiters[i] = (waiter){fx.engine, 0, false};
        if (pthread_create(&threads[i], NULL, deny_and_wait, &waiters[i]) != 0) {
            CHECK_FAIL("pthread_create failed");
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < started; i++) {
        CHECK(waiters[i].audit_id > 0);
        CHECK(waiters[i].durable);
        for (int j = 0; j < i; j++)
            CHECK(waiters[i].audit_id != waiters[j].audit_id);
    }
    /* Each returned only once its record was written; all are. */
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.written, started);
out:
    tu_teardown(&fx);
}

typedef struct late_writer {
    ssp_audit_queue *log;
    int64_t id;
} late_writer;

/* Plays the writer: marks the record written after a while. */
static void *write_later(void *arg)
{
    late_writer *w = arg;
    struct timespec pause = {0, 50 * 1000 * 1000};

    nanosleep(&pause, NULL);
    pthread_mutex_lock(&w->log->mutex);
    w->log->last_written_id = w->id;
    pthread_cond_broadcast(&w->log->written_cond);
    pthread_mutex_unlock(&w->log->mutex);
    return NULL;
}

static void audit_wait_written_times_out_while_nothing_writes(void)
{
    /* The queue of the PostgreSQL store without its thread: nothing writes. */
    ssp_audit_queue log;
    ssp_error err = {0};
    struct timespec before, after;
    int64_t id, waited_ms;
    late_writer writer;
    pthread_t thread;

    if (ssp_audit_open(&log, "main", "nowhere", 0, -1, &err) != 0) {
        CHECK_FAIL("cannot open the queue: %s", err.message);
        return;
    }
    id = ssp_audit_submit(&log, SSP_RULE_ONE_WAY, SSP_CB_CHECK_EVENT_FOR_SPAM, true, ANNA, NULL,
                          ROOM, "m.room.message", "gym-nord");
    CHECK_INT_EQ(id, 1);
    clock_gettime(CLOCK_MONOTONIC, &before);
    CHECK_INT_EQ(ssp_audit_wait_written(&log, id, 100), -1);
    clock_gettime(CLOCK_MONOTONIC, &after);
    waited_ms = (after.tv_sec - before.tv_sec) * 1000 + (after.tv_nsec - before.tv_nsec) / 1000000;
    CHECK(waited_ms >= 90);
    /* A writer that gets there within the timeout ends the wait. */
    writer = (late_writer){&log, id};
    if (pthread_create(&thread, NULL, write_later, &writer) != 0) {
        CHECK_FAIL("pthread_create failed");
    } else {
        CHECK_INT_EQ(ssp_audit_wait_written(&log, id, 10000), 0);
        pthread_join(thread, NULL);
    }
    CHECK_INT_EQ(ssp_audit_wait_written(&log, id, 0), 0);
    ssp_audit_close(&log);
}

/* The eventfd a reactor watches instead of a thread that waits: readable
 * once a batch is marked written, with last_written_id already moved; and
 * the stall a waiter can see before its own wait times out. */
static void audit_durable_fd_wakes_a_reader_after_the_id_moved_and_stalls_show(void)
{
    ssp_audit_queue log;
    ssp_audit_batch batch;
    ssp_error err = {0};
    uint64_t counter = 0;
    int64_t first, now = ssp_now_ms();

    if (ssp_audit_open(&log, "main", "nowhere", 7, -1, &err) != 0) {
        CHECK_FAIL("cannot open the queue: %s", err.message);
        return;
    }
    REQUIRE(log.durable_fd >= 0);
    CHECK_INT_EQ(ssp_audit_last_written(&log), 7);
    CHECK_INT_EQ(ssp_audit_stalled_ms_at(&log, now), 0); /* nothing waits */
    CHECK(read(log.durable_fd, &counter, sizeof counter) < 0); /* not readable yet */
    first = ssp_audit_submit(&log, SSP_RULE_ONE_WAY, SSP_CB_CHECK_EVENT_FOR_SPAM, true, ANNA, NULL,
                             ROOM, "m.room.message", "gym-nord");
    CHECK_INT_EQ(first, 8);
    CHECK(ssp_audit_stalled_ms_at(&log, ssp_now_ms() + 6000) >= 5900);
    REQUIRE(ssp_audit_take(&log, 0, &batch));
    ssp_audit_submit(&log, SSP_RULE_ONE_WAY, SSP_CB_CHECK_EVENT_FOR_SPAM, true, ANNA, NULL, ROOM,
                     "m.room.message", "gym-nord");
    ssp_audit_mark_written(&log, &batch);
    CHECK_INT_EQ(read(log.durable_fd, &counter, sizeof counter), (ssize_t)sizeof counter);
    CHECK_INT_EQ(counter, 1);
    CHECK_INT_EQ(ssp_audit_last_written(&log), 8);
    /* one record still waits, since the progress just made */
    now = ssp_now_ms();
    CHECK(ssp_audit_stalled_ms_at(&log, now + 1000) >= 900);
    CHECK(ssp_audit_stalled_ms_at(&log, now + 1000) <= 1100);
    REQUIRE(ssp_audit_take(&log, 0, &batch));
    ssp_audit_mark_written(&log, &batch);
    CHECK_INT_EQ(ssp_audit_stalled_ms_at(&log, ssp_now_ms() + 60000), 0);
    ssp_audit_close(&log);
}

static void decide_denial_is_durable_in_the_spill_file_while_the_database_is_away(void)
{
    tu_fixture fx;
    ssp_decision d;
    char *spill = NULL;

    /* Port 1 on loopback: nothing listens, connect() is refused at once. */
    if (!roster_world_setup(&fx, "\"database\": \"host=127.0.0.1 port=1 dbname=x user=x\""))
        goto out;
    login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
    CHECK(d.audit_id > 0);
    CHECK(ssp_decision_wait_durable(fx.engine, d.audit_id, 10000));
    spill = tu_path(fx.dir, "main.audit-spill.jsonl");
    CHECK_INT_EQ(last_record_id(spill), d.audit_id);
out:
    free(spill);
    tu_teardown(&fx);
}

static void audit_writer_keeps_writing_after_a_denial_for_a_long_room_school(void)
{
    /* The same denial as above must not wedge the audit writer: one record
     * that cannot be serialised would be retried forever and hold back
     * every record queued after it. */
    tu_fixture fx;
    char *school = long_multibyte_school(200);
    ssp_room_policy p = policy_of(school);
    ssp_decision d;
    ssp_audit_stats stats;
    struct timespec pause = {0, 10 * 1000 * 1000};

    if (!roster_world_setup(&fx, NULL))
        goto out;
    decide(&fx, SSP_CB_CHECK_EVENT_FOR_SPAM, REMOTE, NULL, ROOM, SSP_FACT_YES, &p, SSP_FACT_NO, &d);
    login(&fx, ZOE, SSP_FACT_NO, &d); /* an ordinary record behind it */
    for (int i = 0; i < 300; i++) { /* up to 3 s */
        ssp_audit_get_stats(fx.engine, &stats);
        if (stats.queue_depth == 0 || stats.write_errors > 0)
            break;
        nanosleep(&pause, NULL);
    }
    ssp_audit_get_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.write_errors, 0);
    CHECK_INT_EQ(stats.queue_depth, 0);
    CHECK_INT_EQ(stats.written, 2);
out:
    free(school);
    tu_teardown(&fx);
}

static void refused_tokens_are_audited_once_a_minute(void)
{
    tu_fixture fx;
    ssp_request req;
    ssp_decision d;
    uint64_t before;

    REQUIRE(course_world_setup(&fx));
    memset(&req, 0, sizeof req);
    req.callback = SSP_CB_IS_USER_EXPIRED;
    req.actor = LEAVER;
    req.actor_is_admin = SSP_FACT_NO;
    before = queued(&fx);
    for (int i = 0; i < 5; i++) {
        d = decide_request(&fx, &req);
        CHECK_RULE(d, SSP_RULE_SCHOOL_NOT_ENABLED);
    }
    CHECK_INT_EQ(queued(&fx) - before, 1);
    req.actor = STRANGER;
    CHECK_RULE(decide_request(&fx, &req), SSP_RULE_NOT_ON_ROSTER);
    CHECK_INT_EQ(queued(&fx) - before, 2);
    req.actor = PUPIL;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.actor = SYNC;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    req.actor = LEAVER;
    req.actor_is_admin = SSP_FACT_UNKNOWN;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_NEED_ADMIN);
    req.actor_is_admin = SSP_FACT_YES;
    CHECK_VERDICT(decide_request(&fx, &req), SSP_VERDICT_ALLOW);
    tu_teardown(&fx);
}

void run_audit_denial_tests(void)
{
    RUN(decide_denial_reports_its_record_and_waits_until_it_is_on_disk);
    RUN(decide_concurrent_denials_each_wait_for_their_own_record);
    RUN(audit_wait_written_times_out_while_nothing_writes);
    RUN(audit_durable_fd_wakes_a_reader_after_the_id_moved_and_stalls_show);
    RUN(decide_denial_is_durable_in_the_spill_file_while_the_database_is_away);
    RUN(audit_writer_keeps_writing_after_a_denial_for_a_long_room_school);
    RUN(refused_tokens_are_audited_once_a_minute);
}
