/*
 * The chart's plan: the spans of [since, until) each grain of counts
 * answers (audit_chart.h). Each bucket [a, b) is cut from the coarsest
 * grain down: the whole units of a grain inside it, and on either side
 * what is left for the next grain.
 */
#include <stdlib.h>

#include "audit_chart.h"

static int add_span(ssp_chart_plan *plan, int64_t lo, int64_t hi, size_t grain)
{
    ssp_chart_span *last = plan->n > 0 ? &plan->spans[plan->n - 1] : NULL;

    if (lo >= hi)
        return 0;
    /* A unit never crosses the seam of two spans of its grain: both ends
     * are multiples of it. */
    if (last != NULL && last->grain == grain && last->hi == lo) {
        last->hi = hi;
        return 0;
    }
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? plan->cap * 2 : 16;
        ssp_chart_span *spans = realloc(plan->spans, cap * sizeof *spans);

        if (spans == NULL)
            return -1;
        plan->spans = spans;
        plan->cap = cap;
    }
    plan->spans[plan->n++] = (ssp_chart_span){lo, hi, grain};
    return 0;
}

/* [a, b) lies inside one bucket; level is the coarsest grain to try. */
static int split(ssp_chart_plan *plan, int64_t a, int64_t b, const int64_t *grains, size_t n_grains,
                 size_t level)
{
    int64_t g, first, last;

    if (a >= b)
        return 0;
    if (level + 1 == n_grains)
        return add_span(plan, a, b, level);
    g = grains[level];
    first = ssp_chart_unit_start(a + g - 1, g);
    last = ssp_chart_unit_start(b, g);
    if (first >= last)
        return split(plan, a, b, grains, n_grains, level + 1);
    if (split(plan, a, first, grains, n_grains, level + 1) != 0 ||
        add_span(plan, first, last, level) != 0)
        return -1;
    return split(plan, last, b, grains, n_grains, level + 1);
}

int ssp_chart_plan_build(int64_t since, int64_t until, int64_t bucket, const int64_t *grains,
                         size_t n_grains, ssp_chart_plan *plan, ssp_error *err)
{
    plan->spans = NULL;
    plan->n = plan->cap = 0;
    for (int64_t a = since; a < until; a += bucket) {
        int64_t b = until - a > bucket ? a + bucket : until;

        if (split(plan, a, b, grains, n_grains, 0) != 0) {
            ssp_chart_plan_free(plan);
            return ssp_fail_nomem(err);
        }
    }
    return 0;
}

void ssp_chart_plan_free(ssp_chart_plan *plan)
{
    free(plan->spans);
    plan->spans = NULL;
    plan->n = plan->cap = 0;
}
