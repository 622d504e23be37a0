/*
 * The embedded store's audit counts in memory (audit_counts.h). Per
 * school, one timeline per grain (a day, an hour, a minute): cells of
 * (unit start, rule, n), sorted by start. Records arrive nearly in time
 * order, so a record's cells are at or near the end of each timeline;
 * one from a clock set back is inserted in place.
 *
 * Memory: a minute cell is 16 bytes, so a log of sparse denials costs
 * about 16 bytes a record (plus a little for hours and days); dense ones
 * share their cells.
 *
 * Ownership: the map owns each school's counts, which own their key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_chart.h"
#include "embedded/audit_counts.h"
#include "ids.h"
#include "util.h"

static const int64_t GRAINS[SSP_AUDIT_COUNT_GRAINS] = {SSP_CHART_DAY_MS, SSP_CHART_HOUR_MS,
                                                       SSP_CHART_MINUTE_MS};

typedef struct count_cell {
    int64_t start;
    uint32_t n; /* saturates at UINT32_MAX: four billion denials of a rule in a minute */
    uint16_t rule;
} count_cell;

typedef struct timeline {
    count_cell *cells;
    size_t n, cap;
} timeline;

typedef struct school_counts {
    char *school; /* the map's key */
    timeline grains[SSP_AUDIT_COUNT_GRAINS];
} school_counts;

int ssp_audit_counts_init(ssp_audit_counts *counts, ssp_error *err)
{
    memset(counts, 0, sizeof *counts);
    ssp_strmap_init(&counts->schools);
    if (pthread_mutex_init(&counts->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the audit counts' mutex");
    counts->mutex_ready = true;
    return 0;
}

static int free_school(const char *key, void *value, void *ctx)
{
    school_counts *sc = value;

    (void)key;
    (void)ctx;
    for (size_t g = 0; g < SSP_AUDIT_COUNT_GRAINS; g++)
        free(sc->grains[g].cells);
    free(sc->school);
    free(sc);
    return 0;
}

void ssp_audit_counts_clear(ssp_audit_counts *counts)
{
    pthread_mutex_lock(&counts->mutex);
    ssp_strmap_each(&counts->schools, free_school, NULL);
    ssp_strmap_destroy(&counts->schools);
    ssp_strmap_init(&counts->schools);
    counts->records = 0;
    pthread_mutex_unlock(&counts->mutex);
}

void ssp_audit_counts_destroy(ssp_audit_counts *counts)
{
    ssp_strmap_each(&counts->schools, free_school, NULL);
    ssp_strmap_destroy(&counts->schools);
    if (counts->mutex_ready)
        pthread_mutex_destroy(&counts->mutex);
    counts->mutex_ready = false;
}

/* The first cell with start >= t. */
static size_t lower_bound(const timeline *tl, int64_t t)
{
    size_t lo = 0, hi = tl->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (tl->cells[mid].start < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int timeline_add(timeline *tl, int64_t start, uint16_t rule, uint64_t n)
{
    size_t at;

    /* The cells of this unit, if any, are at the end (in time order) or
     * found by bisection (a clock set back). */
    at = tl->n > 0 && tl->cells[tl->n - 1].start <= start ? tl->n : lower_bound(tl, start);
    while (at > 0 && tl->cells[at - 1].start == start)
        at--;
    for (size_t i = at; i < tl->n && tl->cells[i].start == start; i++) {
        if (tl->cells[i].rule == rule) {
            uint64_t sum = tl->cells[i].n + n;

            tl->cells[i].n = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
            return 0;
        }
    }
    while (at < tl->n && tl->cells[at].start == start)
        at++;
    if (tl->n == tl->cap) {
        size_t cap = tl->cap ? tl->cap * 2 : 64;
        count_cell *cells = realloc(tl->cells, cap * sizeof *cells);

        if (cells == NULL)
            return -1;
        tl->cells = cells;
        tl->cap = cap;
    }
    memmove(&tl->cells[at + 1], &tl->cells[at], (tl->n - at) * sizeof *tl->cells);
    tl->cells[at] = (count_cell){start, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, rule};
    tl->n++;
    return 0;
}

static school_counts *school_of(ssp_audit_counts *counts, const char *school)
{
    school_counts *sc = ssp_strmap_get(&counts->schools, school);

    if (sc != NULL)
        return sc;
    sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return NULL;
    sc->school = ssp_strdup(school);
    if (sc->school == NULL || ssp_strmap_put(&counts->schools, sc->school, sc, NULL) != 0) {
        free(sc->school);
        free(sc);
        return NULL;
    }
    return sc;
}

/* Called with the mutex held. */
static int add_locked(ssp_audit_counts *counts, int64_t ts, ssp_rule rule, const char *school,
                      uint64_t n, ssp_error *err)
{
    school_counts *sc;

    if (ts < 0 || ts > SSP_AUDIT_MAX_TS_MS || rule <= SSP_RULE_NONE || rule >= SSP_RULE__COUNT ||
        n == 0)
        return 0; /* no chart can ask for it */
    sc = school_of(counts, school != NULL ? school : "");
    if (sc == NULL)
        return ssp_fail_nomem(err);
    for (size_t g = 0; g < SSP_AUDIT_COUNT_GRAINS; g++) {
        if (timeline_add(&sc->grains[g], ssp_chart_unit_start(ts, GRAINS[g]), (uint16_t)rule, n) !=
            0)
            return ssp_fail_nomem(err);
    }
    counts->records++;
    return 0;
}

int ssp_audit_counts_add(ssp_audit_counts *counts, int64_t ts, ssp_rule rule, const char *school,
                         uint64_t n, ssp_error *err)
{
    int rc;

    pthread_mutex_lock(&counts->mutex);
    rc = add_locked(counts, ts, rule, school, n, err);
    pthread_mutex_unlock(&counts->mutex);
    return rc;
}

/* Where the value of a top-level key starts in a line of compact JSON, or
 * NULL. `,"key":` and `{"key":` cannot occur inside a JSON string (its
 * quotes are escaped there), so a match is the key itself. */
static const char *value_of(const char *line, size_t len, const char *key)
{
    char pattern[24];
    size_t n = (size_t)snprintf(pattern, sizeof pattern, ",\"%s\":", key);
    const char *at;

    if (len > n - 1 && memcmp(line, "{", 1) == 0 && memcmp(line + 1, pattern + 1, n - 1) == 0)
        return line + n;
    at = memmem(line, len, pattern, n);
    return at != NULL ? at + n : NULL;
}

/* The fields the counts need, read straight from a line the writer made
 * (compact JSON, one object, strings without escapes where it matters).
 * False when the line is not like that: then it is parsed. */
static bool quick_fields(const char *line, size_t len, int64_t *ts, ssp_rule *rule, char *school,
                         size_t school_size, bool *has_school, uint64_t *n)
{
    const char *end = line + len, *v, *q;
    char rule_id[64];
    char *stop;

    if (len < 2 || line[0] != '{' || line[len - 1] != '}')
        return false;
    v = value_of(line, len, "ts");
    if (v == NULL || v >= end || !(*v >= '0' && *v <= '9'))
        return false;
    *ts = (int64_t)strtoll(v, &stop, 10);
    if (stop >= end || (*stop != ',' && *stop != '}'))
        return false;
    v = value_of(line, len, "rule");
    if (v == NULL || v >= end || *v != '"' || (q = memchr(v + 1, '"', (size_t)(end - v - 1))) == NULL ||
        (size_t)(q - v - 1) >= sizeof rule_id || memchr(v + 1, '\\', (size_t)(q - v - 1)) != NULL)
        return false;
    memcpy(rule_id, v + 1, (size_t)(q - v - 1));
    rule_id[q - v - 1] = '\0';
    *rule = ssp_rule_from_id(rule_id);
    v = value_of(line, len, "school");
    *has_school = false;
    if (v != NULL && v < end && *v == '"') {
        q = memchr(v + 1, '"', (size_t)(end - v - 1));
        if (q == NULL || (size_t)(q - v - 1) >= school_size ||
            memchr(v + 1, '\\', (size_t)(q - v - 1)) != NULL)
            return false;
        memcpy(school, v + 1, (size_t)(q - v - 1));
        school[q - v - 1] = '\0';
        *has_school = true;
    } else if (v != NULL && !(end - v >= 4 && memcmp(v, "null", 4) == 0)) {
        return false;
    }
    *n = 1;
    v = value_of(line, len, "count");
    if (v != NULL) {
        if (v >= end || !(*v >= '0' && *v <= '9'))
            return false;
        *n = (uint64_t)strtoull(v, &stop, 10);
        if (stop >= end || (*stop != ',' && *stop != '}'))
            return false;
    }
    return true;
}

/* One line of audit.jsonl; a line that does not parse is passed over (the
 * pages pass over it too). */
static int load_line(ssp_audit_counts *counts, const char *line, size_t len, ssp_error *err)
{
    char school[SSP_SCHOOL_ID_MAX + 1];
    bool has_school;
    int64_t ts;
    ssp_rule rule;
    uint64_t n;
    json_error_t json_err;
    json_t *rec, *count, *school_json;
    int rc;

    /* Parsing every line of a large log would delay the start by seconds. */
    if (quick_fields(line, len, &ts, &rule, school, sizeof school, &has_school, &n))
        return add_locked(counts, ts, rule, has_school ? school : NULL, n, err);
    rec = json_loadb(line, len, 0, &json_err);
    if (rec == NULL)
        return ssp_json_error_is_oom(&json_err) ? ssp_fail_nomem(err) : 0;
    rule = json_is_string(json_object_get(rec, "rule"))
               ? ssp_rule_from_id(json_string_value(json_object_get(rec, "rule")))
               : SSP_RULE_NONE;
    count = json_object_get(rec, "count");
    school_json = json_object_get(rec, "school");
    rc = add_locked(counts, (int64_t)json_integer_value(json_object_get(rec, "ts")), rule,
                    json_is_string(school_json) ? json_string_value(school_json) : NULL,
                    json_is_integer(count) && json_integer_value(count) > 0
                        ? (uint64_t)json_integer_value(count)
                        : 1,
                    err);
    json_decref(rec);
    return rc;
}

int ssp_audit_counts_load(ssp_audit_counts *counts, int fd, const char *path, ssp_error *err)
{
    FILE *file;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int copy = dup(fd), rc = 0;

    if (copy < 0 || (file = fdopen(copy, "r")) == NULL) {
        if (copy >= 0)
            close(copy);
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    rewind(file);
    pthread_mutex_lock(&counts->mutex);
    while (rc == 0 && (len = getline(&line, &cap, file)) > 0) {
        if (line[len - 1] != '\n')
            break; /* a torn tail: cut off at open, or being appended */
        rc = load_line(counts, line, (size_t)len - 1, err);
    }
    pthread_mutex_unlock(&counts->mutex);
    if (rc == 0 && ferror(file))
        rc = ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    free(line);
    fclose(file);
    return rc;
}

/* Adds one school's cells of every span into out. */
static void chart_school(const school_counts *sc, const ssp_chart_plan *plan,
                         const ssp_audit_filter *f, int64_t bucket, uint64_t *out)
{
    ssp_rule only = f->rule != NULL ? ssp_rule_from_id(f->rule) : SSP_RULE_NONE;

    for (size_t s = 0; s < plan->n; s++) {
        const ssp_chart_span *span = &plan->spans[s];
        const timeline *tl = &sc->grains[span->grain];

        for (size_t i = lower_bound(tl, span->lo); i < tl->n && tl->cells[i].start < span->hi;
             i++) {
            const count_cell *c = &tl->cells[i];
            size_t b = (size_t)((c->start - f->since_ms) / bucket);

            if (only == SSP_RULE_NONE || c->rule == only)
                out[b * SSP_RULE__COUNT + c->rule] += c->n;
        }
    }
}

typedef struct chart_all {
    const ssp_chart_plan *plan;
    const ssp_audit_filter *filter;
    int64_t bucket;
    uint64_t *out;
} chart_all;

static int chart_each(const char *key, void *value, void *ctx)
{
    chart_all *all = ctx;

    (void)key;
    chart_school(value, all->plan, all->filter, all->bucket, all->out);
    return 0;
}

int ssp_audit_counts_chart(ssp_audit_counts *counts, const ssp_audit_filter *f, int64_t bucket,
                           uint64_t *out, ssp_error *err)
{
    ssp_chart_plan plan;

    if (ssp_chart_plan_build(f->since_ms, f->until_ms, bucket, GRAINS, SSP_AUDIT_COUNT_GRAINS,
                             &plan, err) != 0)
        return -1;
    pthread_mutex_lock(&counts->mutex);
    if (f->school != NULL || f->schools != NULL) {
        /* a school filter and a school admin's schools: the schools in both */
        for (size_t i = 0; i < (f->schools != NULL ? f->n_schools : 1); i++) {
            const char *school = f->schools != NULL ? f->schools[i] : f->school;
            const school_counts *sc;

            if (f->school != NULL && strcmp(school, f->school) != 0)
                continue;
            sc = ssp_strmap_get(&counts->schools, school);
            if (sc != NULL)
                chart_school(sc, &plan, f, bucket, out);
        }
    } else {
        chart_all all = {&plan, f, bucket, out};

        ssp_strmap_each(&counts->schools, chart_each, &all);
    }
    pthread_mutex_unlock(&counts->mutex);
    ssp_chart_plan_free(&plan);
    return 0;
}
