/* The flood limit of denials (audit_flood.c): thresholds, the summary's
 * time span, eviction from the fixed table, closing summaries, threads;
 * and through ssp_decide, what a limited denial answers. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define FLOODER "@flooder:school.example"
#define T0 1764000000000LL

typedef struct flood_world {
    ssp_flood flood;
    ssp_audit_queue queue;
    bool ok;
} flood_world;

static bool world_open(flood_world *w, int64_t per_minute, int64_t burst, int64_t summary_ms)
{
    ssp_flood_settings settings = {per_minute, burst, summary_ms};
    ssp_error err = {0};

    w->ok = false;
    if (ssp_audit_open(&w->queue, "main", "nowhere", 0, -1, &err) != 0) {
        CHECK_FAIL("cannot open the queue: %s", err.message);
        return false;
    }
    if (ssp_flood_init(&w->flood, &settings, &err) != 0) {
        CHECK_FAIL("cannot init the flood limit: %s", err.message);
        ssp_audit_close(&w->queue);
        return false;
    }
    w->ok = true;
    return true;
}

static void world_close(flood_world *w)
{
    if (!w->ok)
        return;
    ssp_flood_destroy(&w->flood);
    ssp_audit_close(&w->queue);
}

static ssp_audit_record denial_of(const char *actor, ssp_rule rule, const char *room_id)
{
    ssp_audit_record d = {0};

    d.rule = rule;
    d.callback = SSP_CB_CHECK_EVENT_FOR_SPAM;
    d.enforced = true;
    d.actor = actor;
    d.room_id = room_id;
    d.event_type = "m.room.message";
    d.school = "gym-nord";
    return d;
}

/* One denial as audit.c makes it: limited, or recorded on its own. */
static bool deny(flood_world *w, const ssp_audit_record *d, int64_t now_ms)
{
    ssp_flood_verdict v = ssp_flood_denial(&w->flood, &w->queue, d, now_ms);

    if (!v.limited && ssp_audit_submit_record(&w->queue, d) <= 0)
        CHECK_FAIL("cannot queue a denial's record");
    return v.limited;
}

/* Takes everything queued: the number of records and the sum of their counts. */
static void drain(flood_world *w, size_t *records, int64_t *denials, int64_t *max_count)
{
    ssp_audit_batch batch;

    *records = 0;
    *denials = 0;
    if (max_count)
        *max_count = 0;
    while (ssp_audit_take(&w->queue, 0, &batch)) {
        for (ssp_audit_record *r = batch.first; r != NULL; r = r->next) {
            (*records)++;
            *denials += r->count;
            if (max_count && r->count > *max_count)
                *max_count = r->count;
        }
        ssp_audit_mark_written(&w->queue, &batch);
    }
}

static void flood_allows_the_burst_then_limits_with_a_retry_time(void)
{
    flood_world w;
    ssp_audit_record d = denial_of(FLOODER, SSP_RULE_ONE_WAY, "!course:school.example");
    ssp_flood_verdict v;

    if (!world_open(&w, 30, 3, 10000))
        return;
    for (int i = 0; i < 3; i++) {
        v = ssp_flood_denial(&w.flood, &w.queue, &d, T0);
        CHECK(!v.limited);
        CHECK_INT_EQ(v.retry_after_ms, 0);
    }
    v = ssp_flood_denial(&w.flood, &w.queue, &d, T0);
    CHECK(v.limited);
    /* 30 a minute: the next token in 2 s */
    CHECK(v.retry_after_ms > 1990 && v.retry_after_ms <= 2001);
    /* half a token later: 1 s to go */
    v = ssp_flood_denial(&w.flood, &w.queue, &d, T0 + 1000);
    CHECK(v.limited);
    CHECK(v.retry_after_ms > 990 && v.retry_after_ms <= 1001);
    /* a token has come: an ordinary denial again */
    v = ssp_flood_denial(&w.flood, &w.queue, &d, T0 + 2000);
    CHECK(!v.limited);
    /* the refill stops at the burst */
    for (int i = 0; i < 3; i++)
        CHECK(!deny(&w, &d, T0 + 600000));
    CHECK(deny(&w, &d, T0 + 600000));
    world_close(&w);
}

static void flood_keys_are_per_actor_rule_callback_and_enforcement(void)
{
    flood_world w;
    ssp_audit_record d = denial_of(FLOODER, SSP_RULE_ONE_WAY, NULL);
    ssp_audit_record other;

    if (!world_open(&w, 1, 1, 10000))
        return;
    CHECK(!deny(&w, &d, T0));
    CHECK(deny(&w, &d, T0));
    other = denial_of("@other:school.example", SSP_RULE_ONE_WAY, NULL);
    CHECK(!deny(&w, &other, T0));
    other = denial_of(FLOODER, SSP_RULE_NO_SHARED_ROOM, NULL);
    CHECK(!deny(&w, &other, T0));
    other = d;
    other.callback = SSP_CB_USER_MAY_INVITE;
    CHECK(!deny(&w, &other, T0));
    other = d;
    other.enforced = false;
    CHECK(!deny(&w, &other, T0));
    world_close(&w);
}

static void flood_summary_counts_every_limited_denial_and_its_span(void)
{
    flood_world w;
    ssp_audit_record d = denial_of(FLOODER, SSP_RULE_ONE_WAY, "!course:school.example");
    ssp_audit_batch batch;
    ssp_audit_record *summary;

    if (!world_open(&w, 1, 1, 10000))
        return;
    CHECK(!deny(&w, &d, T0));
    for (int i = 1; i <= 250; i++)
        CHECK(deny(&w, &d, T0 + i * 20));
    /* only the ordinary denial's record so far: none of the 250 */
    CHECK_INT_EQ(ssp_audit_take(&w.queue, 0, &batch), true);
    CHECK_INT_EQ(batch.count, 1);
    ssp_audit_mark_written(&w.queue, &batch);
    CHECK_INT_EQ(ssp_flood_close_summaries(&w.flood, &w.queue, T0 + 9999, false), 0);
    CHECK_INT_EQ(ssp_flood_close_summaries(&w.flood, &w.queue, T0 + 20 + 10000, false), 1);
    REQUIRE(ssp_audit_take(&w.queue, 0, &batch));
    summary = batch.first;
    CHECK_INT_EQ(batch.count, 1);
    CHECK_INT_EQ(summary->count, 250);
    CHECK_INT_EQ(summary->ts, T0 + 20);
    CHECK_INT_EQ(summary->last_ts, T0 + 5000);
    CHECK_INT_EQ(summary->rule, SSP_RULE_ONE_WAY);
    CHECK_INT_EQ(summary->callback, SSP_CB_CHECK_EVENT_FOR_SPAM);
    CHECK(summary->enforced);
    CHECK_STR_EQ(summary->actor, FLOODER);
    CHECK_STR_EQ(summary->room_id, "!course:school.example");
    CHECK_STR_EQ(summary->school, "gym-nord");
    ssp_audit_mark_written(&w.queue, &batch);
    world_close(&w);
}

static void flood_summary_rolls_over_when_its_span_ends(void)
{
    flood_world w;
    ssp_audit_record d = denial_of(FLOODER, SSP_RULE_ONE_WAY, NULL);
    size_t records;
    int64_t denials, max_count;
    int64_t limited = 0;

    if (!world_open(&w, 6, 2, 10000))
        return;
    /* 20 denials a second for a minute */
    for (int i = 0; i < 1200; i++) {
        if (deny(&w, &d, T0 + i * 50))
            limited++;
    }
    ssp_flood_close_summaries(&w.flood, &w.queue, T0 + 60000, true);
    drain(&w, &records, &denials, &max_count);
    CHECK_INT_EQ(denials, 1200);
    /* 2 of the burst and 6 a minute of their own; a summary per 10 s */
    /* 2 of the burst, then one a token: at 10, 20, 30, 40 and 50 s */
    CHECK_INT_EQ(1200 - limited, 7);
    /* and a summary for each 10 s span (the first opens at 0.1 s) */
    CHECK(records >= 7 + 6 && records <= 7 + 7);
    CHECK(max_count <= 200);
    world_close(&w);
}

static void flood_summary_keeps_only_the_fields_every_denial_shares(void)
{
    flood_world w;
    ssp_audit_record a = denial_of(FLOODER, SSP_RULE_ONE_WAY, "!a:school.example");
    ssp_audit_record b = denial_of(FLOODER, SSP_RULE_ONE_WAY, "!b:school.example");
    ssp_audit_batch batch;

    if (!world_open(&w, 1, 1, 10000))
        return;
    CHECK(!deny(&w, &a, T0));
    CHECK(deny(&w, &a, T0 + 1));
    CHECK(deny(&w, &b, T0 + 2));
    REQUIRE(ssp_audit_take(&w.queue, 0, &batch));
    ssp_audit_mark_written(&w.queue, &batch);
    ssp_flood_close_summaries(&w.flood, &w.queue, T0 + 3, true);
    REQUIRE(ssp_audit_take(&w.queue, 0, &batch));
    CHECK_INT_EQ(batch.first->count, 2);
    CHECK(batch.first->room_id == NULL); /* the two rooms differed */
    CHECK_STR_EQ(batch.first->event_type, "m.room.message");
    CHECK_STR_EQ(batch.first->actor, FLOODER);
    ssp_audit_mark_written(&w.queue, &batch);
    world_close(&w);
}

static void flood_table_evicts_the_least_recent_keys_and_writes_their_summaries(void)
{
    enum { ACTORS = 3 * SSP_FLOOD_SETS * SSP_FLOOD_WAYS };
    flood_world w;
    ssp_flood_stats stats;
    size_t records;
    int64_t denials;

    if (!world_open(&w, 1, 1, 10000))
        return;
    for (int i = 0; i < ACTORS; i++) {
        char actor[64];
        ssp_audit_record d;

        snprintf(actor, sizeof actor, "@pupil%d:school.example", i);
        d = denial_of(actor, SSP_RULE_ONE_WAY, NULL);
        CHECK(!deny(&w, &d, T0 + i));
        CHECK(deny(&w, &d, T0 + i));
    }
    ssp_flood_get_stats(&w.flood, &stats);
    /* the table never holds more than its slots; the rest were pushed out */
    CHECK(stats.open_summaries <= (uint64_t)SSP_FLOOD_SETS * SSP_FLOOD_WAYS);
    CHECK(stats.evicted >= (uint64_t)(ACTORS - SSP_FLOOD_SETS * SSP_FLOOD_WAYS));
    CHECK_INT_EQ(stats.limited, ACTORS);
    ssp_flood_close_summaries(&w.flood, &w.queue, T0 + ACTORS, true);
    drain(&w, &records, &denials, NULL);
    /* nothing lost to eviction: every denial is counted once */
    CHECK_INT_EQ(denials, 2 * ACTORS);
    CHECK_INT_EQ(records, 2 * ACTORS);
    ssp_flood_get_stats(&w.flood, &stats);
    CHECK_INT_EQ(stats.open_summaries, 0);
    CHECK_INT_EQ(stats.summaries, ACTORS);
    world_close(&w);
}

typedef struct hammer {
    flood_world *w;
    int64_t limited;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    ssp_audit_record d = denial_of(FLOODER, SSP_RULE_ONE_WAY, NULL);

    for (int i = 0; i < 5000; i++) {
        if (deny(h->w, &d, T0 + i))
            h->limited++;
        if (i % 500 == 0)
            ssp_flood_close_summaries(&h->w->flood, &h->w->queue, T0 + i, false);
    }
    return NULL;
}

static void flood_counts_every_denial_of_many_threads_once(void)
{
    enum { THREADS = 4 };
    flood_world w;
    pthread_t threads[THREADS];
    hammer hammers[THREADS];
    size_t records;
    int64_t denials, limited = 0;
    int started = 0;

    if (!world_open(&w, 60, 5, 1000))
        return;
    for (int i = 0; i < THREADS; i++) {
        hammers[i] = (hammer){&w, 0};
        if (pthread_create(&threads[i], NULL, hammer_main, &hammers[i]) == 0)
            started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        limited += hammers[i].limited;
    }
    ssp_flood_close_summaries(&w.flood, &w.queue, T0 + 10000, true);
    drain(&w, &records, &denials, NULL);
    CHECK_INT_EQ(denials, (int64_t)started * 5000);
    if (limited < (int64_t)started * 5000 - 20)
        CHECK_FAIL("only %lld of %d denials limited", (long long)limited, started * 5000);
    world_close(&w);
}

/* ---- through ssp_decide ---- */

static void decide_a_denial_past_the_flood_limit_is_counted_in_a_summary(void)
{
    tu_fixture fx;
    ssp_decision d;
    ssp_audit_filter f = {0};
    char *text = NULL;
    json_t *page = NULL, *summary;
    ssp_flood_stats stats;

    if (!roster_world_setup(&fx, "\"audit\": {\"flood\": {\"denials_per_minute\": 1, \"burst\": 2, "
                                 "\"summary_seconds\": 10}}"))
        goto out;
    for (int i = 0; i < 2; i++) {
        login(&fx, ZOE, SSP_FACT_NO, &d);
        CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
        CHECK(d.audit_id > 0);
        CHECK_INT_EQ(d.retry_after_ms, 0);
    }
    for (int i = 0; i < 5; i++) {
        login(&fx, ZOE, SSP_FACT_NO, &d);
        /* the same denial, rule and message: only its record and the hint differ */
        CHECK_DENY(d, SSP_RULE_NOT_ON_ROSTER, true, "");
        CHECK_INT_EQ(d.audit_id, 0);
        CHECK(d.retry_after_ms > 0 && d.retry_after_ms <= 60001);
    }
    ssp_audit_flood_stats(fx.engine, &stats);
    CHECK_INT_EQ(stats.limited, 5);
    CHECK_INT_EQ(stats.open_summaries, 1);
    /* a clean shutdown writes the open summary: here, as the engine's close does */
    CHECK_INT_EQ(ssp_audit_close_summaries(fx.engine, true), 1);
    f.limit = 10;
    CHECK_OK(ssp_audit_query(fx.engine, &f, &text, &fx.err), fx.err);
    page = tu_json(text);
    REQUIRE(page != NULL);
    REQUIRE_INT_EQ(json_array_size(json_object_get(page, "records")), 3);
    summary = json_array_get(json_object_get(page, "records"), 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(summary, "count")), 5);
    CHECK_STR_EQ(json_string_value(json_object_get(summary, "rule")), "not_on_roster");
    CHECK_STR_EQ(json_string_value(json_object_get(summary, "actor")), ZOE);
    CHECK(json_integer_value(json_object_get(summary, "last_ts")) >=
          json_integer_value(json_object_get(summary, "ts")));
out:
    json_decref(page);
    free(text);
    tu_teardown(&fx);
}

static void decide_the_engines_close_writes_the_open_summaries(void)
{
    tu_fixture fx;
    ssp_decision d;
    char *path = NULL, *text = NULL;

    if (!roster_world_setup(&fx, "\"audit\": {\"flood\": {\"burst\": 1, \"summary_seconds\": 300}}"))
        goto out;
    for (int i = 0; i < 4; i++)
        login(&fx, ZOE, SSP_FACT_NO, &d);
    CHECK(d.retry_after_ms > 0);
    path = tu_path(fx.dir, "audit.jsonl");
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    text = tu_read_file(path, NULL);
    REQUIRE(text != NULL);
    CHECK_INT_EQ(tu_count_lines(path), 2);
    CHECK_CONTAINS(text, "\"count\":3");
out:
    free(text);
    free(path);
    tu_teardown(&fx);
}

void run_audit_flood_tests(void)
{
    RUN(flood_allows_the_burst_then_limits_with_a_retry_time);
    RUN(flood_keys_are_per_actor_rule_callback_and_enforcement);
    RUN(flood_summary_counts_every_limited_denial_and_its_span);
    RUN(flood_summary_rolls_over_when_its_span_ends);
    RUN(flood_summary_keeps_only_the_fields_every_denial_shares);
    RUN(flood_table_evicts_the_least_recent_keys_and_writes_their_summaries);
    RUN(flood_counts_every_denial_of_many_threads_once);
    RUN(decide_a_denial_past_the_flood_limit_is_counted_in_a_summary);
    RUN(decide_the_engines_close_writes_the_open_summaries);
}
