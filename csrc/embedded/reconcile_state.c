/*
 * The embedded store's reconcile state in memory: its marks, its special
 * rooms and the configs the reconciler last acted on, keyed for lookup
 * (reconcile_state.h). Each mark and entry is one allocation (plus a
 * mark's last_error); strings passed in are copied. reconcile_jsonl.c
 * replays the file into it, reconcile_file.c changes it after each append.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded/reconcile_state.h"
#include "reconcile_common.h"

void ssp_mark_key(char *key, const char *school, const char *user_id)
{
    snprintf(key, SSP_MARK_KEY_MAX, "%zu:%s%s", strlen(school), school, user_id);
}

void ssp_room_key(char *key, const char *school, const char *kind)
{
    snprintf(key, SSP_ROOM_KEY_MAX, "%s\n%s", kind, school);
}

/* One zeroed allocation of node_size bytes followed by copies of the three
 * strings, which *copy_a, *copy_b and *copy_c are pointed at. NULL when out
 * of memory. (Marks and reconcile entries are each one allocation.) */
static void *node_with_strings(size_t node_size, const char *a, const char *b, const char *c,
                               const char **copy_a, const char **copy_b, const char **copy_c)
{
    size_t a_len = strlen(a), b_len = strlen(b), c_len = strlen(c);
    char *node = calloc(1, node_size + a_len + 1 + b_len + 1 + c_len + 1);
    char *strings;

    if (node == NULL)
        return NULL;
    strings = node + node_size;
    *copy_a = memcpy(strings, a, a_len + 1);
    strings += a_len + 1;
    *copy_b = memcpy(strings, b, b_len + 1);
    strings += b_len + 1;
    *copy_c = memcpy(strings, c, c_len + 1);
    return node;
}

ssp_mark *ssp_mark_new(const char *school, const char *user_id)
{
    char key[SSP_MARK_KEY_MAX];
    ssp_mark fields, *mark;

    ssp_mark_key(key, school, user_id);
    mark = node_with_strings(sizeof *mark, key, school, user_id, &fields.key, &fields.school,
                             &fields.user_id);
    if (mark != NULL) {
        mark->key = fields.key;
        mark->school = fields.school;
        mark->user_id = fields.user_id;
    }
    return mark;
}

void ssp_mark_free(ssp_mark *mark)
{
    if (mark != NULL)
        free(mark->last_error);
    free(mark);
}

ssp_reconcile_entry *ssp_reconcile_entry_new(const char *key, const char *school, const char *value)
{
    ssp_reconcile_entry fields, *entry;

    entry = node_with_strings(sizeof *entry, key, school, value, &fields.key, &fields.school,
                              &fields.value);
    if (entry != NULL)
        *entry = fields;
    return entry;
}

static int free_mark_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    ssp_mark_free(value);
    return 0;
}

void ssp_reconcile_state_init(ssp_reconcile_state *state)
{
    ssp_strmap_init(&state->marks);
    ssp_strmap_init(&state->rooms);
    ssp_strmap_init(&state->applied);
    state->next_generation = 1;
}

void ssp_reconcile_state_destroy(ssp_reconcile_state *state)
{
    ssp_strmap_each(&state->marks, free_mark_cb, NULL);
    ssp_strmap_destroy(&state->marks);
    ssp_strmap_each(&state->rooms, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(&state->rooms);
    ssp_strmap_each(&state->applied, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(&state->applied);
}

void ssp_reconcile_note_generation(ssp_reconcile_state *state, int64_t generation)
{
    if (generation >= state->next_generation)
        state->next_generation = generation + 1;
}

int ssp_reconcile_remark(ssp_reconcile_state *state, ssp_mark *fresh, const char *key, int64_t generation,
                  int64_t at_ms)
{
    ssp_mark *mark = ssp_strmap_get(&state->marks, key);

    if (mark != NULL) {
        ssp_mark_free(fresh);
    } else {
        if (fresh == NULL || ssp_strmap_put(&state->marks, fresh->key, fresh, NULL) != 0) {
            ssp_mark_free(fresh);
            return -1;
        }
        mark = fresh;
    }
    /* last_error stays until the mark is done: the status shows it */
    mark->generation = generation;
    mark->marked_at_ms = at_ms;
    mark->attempts = 0;
    mark->next_attempt_ms = 0;
    ssp_reconcile_note_generation(state, generation);
    return 0;
}

int ssp_reconcile_put_entry(ssp_strmap *map, ssp_reconcile_entry *fresh, const char *key)
{
    void *previous = NULL;

    if (fresh == NULL) {
        free(ssp_strmap_remove(map, key));
        return 0;
    }
    if (ssp_strmap_put(map, fresh->key, fresh, &previous) != 0) {
        free(fresh);
        return -1;
    }
    free(previous);
    return 0;
}

typedef struct status_ctx {
    const ssp_config *config;
    ssp_school_reconcile *per_school;
} status_ctx;

static ssp_school_reconcile *school_slot(status_ctx *ctx, const char *school)
{
    const ssp_school *found = ssp_config_school(ctx->config, school, strlen(school));

    return found ? &ctx->per_school[found - ctx->config->schools] : NULL;
}

static int count_mark(const char *key, void *value, void *ctx)
{
    const ssp_mark *mark = value;
    ssp_school_reconcile *slot = school_slot(ctx, mark->school);

    (void)key;
    if (slot == NULL)
        return 0;
    slot->pending++;
    if (mark->last_error != NULL &&
        (slot->last_error == NULL || mark->failed_at_ms > slot->last_failed_at_ms)) {
        slot->last_error = mark->last_error;
        slot->last_failed_at_ms = mark->failed_at_ms;
    }
    return 0;
}

static int note_room(const char *key, void *value, void *ctx)
{
    const ssp_reconcile_entry *entry = value;
    ssp_school_reconcile *slot = school_slot(ctx, entry->school);

    if (slot == NULL)
        return 0;
    /* the key is "<kind>\n<school>" (ssp_room_key); group rooms are not
     * a school's special rooms */
    if (strncmp(key, "teachers\n", 9) == 0)
        slot->teachers_room = entry->value;
    else if (strncmp(key, "announcement\n", 13) == 0)
        slot->announcement_room = entry->value;
    return 0;
}

int ssp_reconcile_state_status(const ssp_reconcile_state *state, const ssp_config *config,
                               char **status_json, ssp_error *err)
{
    status_ctx ctx = {config, calloc(config->n_schools ? config->n_schools : 1,
                                     sizeof(ssp_school_reconcile))};
    int rc;

    if (ctx.per_school == NULL)
        return ssp_fail_nomem(err);
    ssp_strmap_each(&state->marks, count_mark, &ctx);
    ssp_strmap_each(&state->rooms, note_room, &ctx);
    rc = ssp_reconcile_status_text(config, ctx.per_school, status_json, err);
    free(ctx.per_school);
    return rc;
}
