/* The chart's plan (audit_chart.c) and the embedded store's counts
 * (embedded/audit_counts.c): every minute of a chart is counted once, by
 * the coarsest grain whose unit lies inside one bucket, and the counts
 * give what counting the records one by one gives. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "embedded/audit_counts.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define MIN_MS 60000
#define HOUR_MS 3600000
#define DAY_MS 86400000
/* 2026-03-01T00:00:00Z: a whole day */
#define T0 INT64_C(1772323200000)

static const int64_t GRAINS[] = {DAY_MS, HOUR_MS, MIN_MS};

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    return *state >> 33;
}

static void check_plan(int64_t since, int64_t until, int64_t bucket)
{
    ssp_chart_plan plan;
    ssp_error err = {0};
    int64_t at = since;

    REQUIRE_OK(ssp_chart_plan_build(since, until, bucket, GRAINS, 3, &plan, &err), err);
    for (size_t i = 0; i < plan.n; i++) {
        const ssp_chart_span *s = &plan.spans[i];
        int64_t g = GRAINS[s->grain];

        /* ascending, no gap, no overlap */
        if (s->lo != at || s->hi <= s->lo)
            CHECK_FAIL("span %zu [%lld, %lld) after %lld", i, (long long)s->lo, (long long)s->hi,
                       (long long)at);
        at = s->hi;
        if (s->lo % g != 0 || s->hi % g != 0)
            CHECK_FAIL("span %zu is not whole units of %lld", i, (long long)g);
        /* every unit inside one bucket */
        for (int64_t t = s->lo; t < s->hi; t += g) {
            if ((t - since) / bucket != (t + g - 1 - since) / bucket) {
                CHECK_FAIL("unit %lld of %lld straddles a bucket", (long long)t, (long long)g);
                break;
            }
        }
        /* the coarsest grain that fits: a finer span next to a coarser
         * one never holds a whole unit of the coarser grain inside one bucket */
        if (s->grain > 0 && s->hi - s->lo >= GRAINS[s->grain - 1] &&
            (s->lo - since) / bucket == (s->hi - 1 - since) / bucket &&
            s->lo % GRAINS[s->grain - 1] == 0)
            CHECK_FAIL("span %zu could be counted by a coarser grain", i);
    }
    if (at != until)
        CHECK_FAIL("the plan ends at %lld, not %lld", (long long)at, (long long)until);
    ssp_chart_plan_free(&plan);
}

static void chart_plan_covers_every_minute_once_with_units_inside_their_bucket(void)
{
    uint64_t state = 7;

    /* the audit page's charts: a year by weeks, 30 days by days, 7 days by
     * 6 hours, a day by hours, each ending at a minute that is not an hour */
    check_plan(T0 + 17 * MIN_MS - 365LL * DAY_MS, T0 + 17 * MIN_MS, 7LL * DAY_MS);
    check_plan(T0 + 17 * MIN_MS - 30LL * DAY_MS, T0 + 17 * MIN_MS, DAY_MS);
    check_plan(T0 + 17 * MIN_MS - 7LL * DAY_MS, T0 + 17 * MIN_MS, 6LL * HOUR_MS);
    check_plan(T0 + 17 * MIN_MS - DAY_MS, T0 + 17 * MIN_MS, HOUR_MS);
    check_plan(T0, T0 + MIN_MS, MIN_MS);
    check_plan(MIN_MS, SSP_AUDIT_MAX_TS_MS / MIN_MS * MIN_MS, 126000000000LL * MIN_MS / 1000);
    for (int i = 0; i < 300; i++) {
        int64_t since = T0 + (int64_t)(next_random(&state) % 100000) * MIN_MS;
        int64_t until = since + (int64_t)(1 + next_random(&state) % 20000) * MIN_MS;
        int64_t bucket = (int64_t)(1 + next_random(&state) % 3000) * MIN_MS;

        if ((until - since) / bucket < 2000)
            check_plan(since, until, bucket);
    }
}

typedef struct fake_record {
    int64_t ts;
    ssp_rule rule;
    const char *school;
    uint64_t n;
} fake_record;

static const char *const SCHOOLS[] = {"gym-nord", "gym-sued", "rs-ost", NULL};

/* What counting the records one by one gives. */
static void brute_chart(const fake_record *recs, size_t n_recs, const ssp_audit_filter *f,
                        int64_t bucket, uint64_t *out)
{
    for (size_t i = 0; i < n_recs; i++) {
        const fake_record *r = &recs[i];
        bool school_ok = f->school == NULL || (r->school && strcmp(r->school, f->school) == 0);

        if (f->schools != NULL) {
            bool any = false;

            for (size_t k = 0; k < f->n_schools; k++)
                any = any || (r->school && strcmp(r->school, f->schools[k]) == 0);
            school_ok = school_ok && any;
        }
        if (r->ts < f->since_ms || r->ts >= f->until_ms || !school_ok ||
            (f->rule != NULL && r->rule != ssp_rule_from_id(f->rule)))
            continue;
        out[(size_t)((r->ts - f->since_ms) / bucket) * SSP_RULE__COUNT + r->rule] += r->n;
    }
}

static void audit_counts_chart_equals_counting_each_record(void)
{
    enum { N = 20000 };
    fake_record *recs = calloc(N, sizeof *recs);
    ssp_audit_counts counts;
    ssp_error err = {0};
    uint64_t state = 42;
    const char *admin_schools[] = {"gym-sued", "rs-ost"};

    REQUIRE(recs != NULL);
    REQUIRE_OK(ssp_audit_counts_init(&counts, &err), err);
    for (size_t i = 0; i < N; i++) {
        /* 40 days, mostly in order, one in 50 from a clock set back a day */
        int64_t ts = T0 + (int64_t)i * (40LL * DAY_MS / N) + (int64_t)(next_random(&state) % 1000);

        if (next_random(&state) % 50 == 0)
            ts -= (int64_t)(next_random(&state) % DAY_MS);
        recs[i].ts = ts;
        recs[i].rule = (ssp_rule)(1 + next_random(&state) % (SSP_RULE__COUNT - 1));
        recs[i].school = SCHOOLS[next_random(&state) % 4]; /* NULL: no school */
        recs[i].n = next_random(&state) % 10 == 0 ? 1 + next_random(&state) % 500 : 1;
        CHECK_OK(ssp_audit_counts_add(&counts, recs[i].ts, recs[i].rule, recs[i].school,
                                      recs[i].n, &err),
                 err);
    }
    for (int q = 0; q < 200; q++) {
        ssp_audit_filter f;
        int64_t bucket = (int64_t)(1 + next_random(&state) % 2000) * MIN_MS;
        int64_t since = T0 - DAY_MS + (int64_t)(next_random(&state) % (42 * 1440)) * MIN_MS;
        int64_t until = since + (int64_t)(1 + next_random(&state) % (20 * 1440)) * MIN_MS;
        size_t n_buckets = (size_t)((until - since + bucket - 1) / bucket);
        uint64_t *got, *want;

        if (n_buckets > 2000)
            continue;
        memset(&f, 0, sizeof f);
        f.since_ms = since;
        f.until_ms = until;
        switch (q % 4) {
        case 1:
            f.school = SCHOOLS[next_random(&state) % 3];
            break;
        case 2:
            f.schools = admin_schools;
            f.n_schools = 2;
            break;
        case 3:
            f.rule = ssp_rule_id((ssp_rule)(1 + next_random(&state) % (SSP_RULE__COUNT - 1)));
            f.school = "gym-sued";
            f.schools = admin_schools;
            f.n_schools = 2;
            break;
        default:
            break;
        }
        got = calloc(n_buckets * SSP_RULE__COUNT, sizeof *got);
        want = calloc(n_buckets * SSP_RULE__COUNT, sizeof *want);
        REQUIRE(got != NULL && want != NULL);
        CHECK_OK(ssp_audit_counts_chart(&counts, &f, bucket, got, &err), err);
        brute_chart(recs, N, &f, bucket, want);
        if (memcmp(got, want, n_buckets * SSP_RULE__COUNT * sizeof *got) != 0)
            CHECK_FAIL("query %d [%lld, %lld) by %lld: the counts differ from the records", q,
                       (long long)since, (long long)until, (long long)bucket);
        free(got);
        free(want);
    }
    ssp_audit_counts_destroy(&counts);
    free(recs);
}

/* audit.jsonl written by an earlier process (a flood's summary with its
 * count, a record from a clock set back, a damaged line, a record of no
 * school): the counts built at open give the chart what the records say,
 * and a record appended since is in it too. */
static void audit_chart_counts_the_file_at_open_and_the_records_appended_since(void)
{
    static const char lines[] =
        /* as the writer writes them: compact */
        "{\"id\":1,\"ts\":1772323200000,\"rule\":\"one_way\",\"actor\":\"@a:s\","
        "\"school\":\"gym-nord\",\"worker\":\"main\"}\n"
        "{\"id\":2,\"ts\":1772326799999,\"rule\":\"one_way\",\"school\":\"gym-nord\","
        "\"count\":40,\"event_type\":\"x,\\\"ts\\\":1\"}\n"
        /* written by hand: parsed */
        "{\"id\": 3, \"ts\": 1772326800000, \"rule\": \"one_way\", \"school\": \"gym-nord\"}\n"
        "not json\n"
        "{\"id\": 4, \"ts\": 1772323260000, \"rule\": \"no_shared_room\", \"school\": \"gym-nord\"}\n"
        "{\"id\": 5, \"ts\": 1772323200000, \"rule\": \"one_way\"}\n";
    tu_fixture fx;
    char *path = NULL, *response = NULL, *request = NULL;
    json_t *answer = NULL, *rows;
    FILE *file;

    if (!tu_setup(&fx, "\"service_users\": [\"@sync:school.example\"],"
                       " \"schools\": {\"gym-nord\": {}}"))
        return;
    path = tu_path(fx.dir, "audit.jsonl");
    ssp_engine_free(fx.engine);
    fx.engine = NULL;
    file = fopen(path, "w");
    REQUIRE(file != NULL);
    fputs(lines, file);
    fclose(file);
    if (!tu_reopen(&fx))
        goto done;
    /* 2 hours by the hour, in the school: 1 + 40 in the first, 1 in the second,
     * no_shared_room once in the first */
    request = tu_format("{\"op\": \"chart\", \"reader\": \"@sync:school.example\","
                        " \"server_admin\": false, \"query\": {\"since\": %lld, \"until\": %lld,"
                        " \"bucket\": 3600000, \"school\": \"gym-nord\"}}",
                        (long long)T0, (long long)(T0 + 2 * HOUR_MS));
    REQUIRE_OK(ssp_audit_view(fx.engine, request, strlen(request), &response, &fx.err), fx.err);
    answer = json_loads(response, 0, NULL);
    rows = json_object_get(json_object_get(answer, "body"), "rows");
    REQUIRE_INT_EQ(json_array_size(rows), 3);
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 0)), T0);
    CHECK_STR_EQ(json_string_value(json_array_get(json_array_get(rows, 0), 1)), "one_way");
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 2)), 41);
    CHECK_STR_EQ(json_string_value(json_array_get(json_array_get(rows, 1), 1)), "no_shared_room");
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 1), 2)), 1);
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 2), 0)), T0 + HOUR_MS);
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 2), 2)), 1);
    json_decref(answer);
    answer = NULL;
    free(response);
    response = NULL;
    free(request);
    /* appended after open: a login of someone not on the roster (no school) */
    {
        ssp_request req;
        ssp_decision d;
        int64_t now = ssp_now_ms();

        memset(&req, 0, sizeof req);
        req.callback = SSP_CB_CHECK_LOGIN_FOR_SPAM;
        req.actor = "@stranger:school.example";
        req.actor_is_admin = SSP_FACT_NO;
        ssp_decide(fx.engine, &req, &d);
        request = tu_format("{\"op\": \"chart\", \"reader\": \"@sync:school.example\","
                            " \"server_admin\": false, \"query\": {\"since\": %lld,"
                            " \"until\": %lld, \"bucket\": 7200000}}",
                            (long long)(now - HOUR_MS), (long long)(now + HOUR_MS));
    }
    REQUIRE_OK(ssp_audit_view(fx.engine, request, strlen(request), &response, &fx.err), fx.err);
    answer = json_loads(response, 0, NULL);
    rows = json_object_get(json_object_get(answer, "body"), "rows");
    REQUIRE_INT_EQ(json_array_size(rows), 1);
    CHECK_STR_EQ(json_string_value(json_array_get(json_array_get(rows, 0), 1)), "not_on_roster");
    CHECK_INT_EQ(json_integer_value(json_array_get(json_array_get(rows, 0), 2)), 1);
done:
    json_decref(answer);
    free(response);
    free(request);
    free(path);
    tu_teardown(&fx);
}

void run_audit_chart_tests(void)
{
    RUN(chart_plan_covers_every_minute_once_with_units_inside_their_bucket);
    RUN(audit_counts_chart_equals_counting_each_record);
    RUN(audit_chart_counts_the_file_at_open_and_the_records_appended_since);
}
