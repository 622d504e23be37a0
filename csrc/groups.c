/*
 * The engine's group API: writes (PUT, DELETE, the batch's groups) made
 * durable through the store before they reach the index, reads of the
 * index, and the plan of a group's room for the reconciler.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"
#include "groups.h"
#include "ids.h"
#include "reconcile_common.h"
#include "store.h"
#include "util.h"

#define MS_PER_DAY INT64_C(86400000)
#define LIST_LIMIT_MAX 1000

static int require_open(ssp_engine *engine, ssp_error *err)
{
    if (!engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    return 0;
}

void ssp_groups_free(ssp_group **groups, size_t n)
{
    if (groups == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(groups[i]);
    free(groups);
}

int ssp_groups_parse_batch(json_t *body, const char *server_name, ssp_group ***groups_out,
                           size_t *n_out, ssp_error *err)
{
    json_t *list = json_object_get(body, "groups");
    ssp_group **groups;
    ssp_strmap seen; /* group_id -> index + 1 */
    size_t n;
    char path[32];

    *groups_out = NULL;
    *n_out = 0;
    if (list == NULL)
        return 0;
    if (!json_is_array(list))
        return ssp_fail(err, SSP_ERR_INPUT, "groups: expected a list");
    n = json_array_size(list);
    groups = calloc(n ? n : 1, sizeof *groups);
    if (groups == NULL)
        return ssp_fail_nomem(err);
    ssp_strmap_init(&seen);
    if (ssp_strmap_reserve(&seen, n) != 0) {
        ssp_fail_nomem(err);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        void *first;

        snprintf(path, sizeof path, "groups[%zu]", i);
        if (ssp_group_parse(NULL, json_array_get(list, i), path, server_name, &groups[i], err) !=
            0)
            goto fail;
        first = ssp_strmap_get(&seen, groups[i]->group_id);
        if (first != NULL) {
            ssp_fail(err, SSP_ERR_INPUT, "%s.group: %s is listed twice (also groups[%zu])", path,
                     groups[i]->group_id, (size_t)(uintptr_t)first - 1);
            goto fail;
        }
        /* Cannot fail: room was reserved. */
        (void)ssp_strmap_put(&seen, groups[i]->group_id, (void *)(uintptr_t)(i + 1), NULL);
    }
    ssp_strmap_destroy(&seen);
    *groups_out = groups;
    *n_out = n;
    return 0;
fail:
    ssp_strmap_destroy(&seen);
    ssp_groups_free(groups, n);
    return -1;
}

int ssp_groups_check_schools(ssp_engine *engine, ssp_group *const *groups, size_t n, bool batch,
                             ssp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *school = groups[i]->school;

        if (ssp_config_school(&engine->config, school, strlen(school)) != NULL)
            continue;
        if (batch)
            return ssp_fail(err, SSP_ERR_INPUT,
                            "groups[%zu].school: %s is not a school of the config (schools:)", i,
                            school);
        return ssp_fail(err, SSP_ERR_INPUT, "school: %s is not a school of the config (schools:)",
                        school);
    }
    return 0;
}

/* The version rule and the fields the engine fills in, for one incoming
 * group against the stored one. *group may be replaced (the old one freed).
 * Returns 1 when the group is stale, 0 when it applies, -1 out of memory. */
static int settle(const ssp_group *stored, ssp_group **group, int64_t now_ms)
{
    ssp_group *g = *group;

    if (!ssp_group_supersedes(stored, g))
        return 1;
    if (!g->has_version && stored != NULL && stored->has_version) {
        ssp_group *copy = ssp_group_copy_as(g, g->state, true, stored->version);

        if (copy == NULL)
            return -1;
        free(g);
        *group = g = copy;
    }
    /* Archived by state, with no time (or a time to come): the retention
     * counts from when the module first saw it archived. The group is not
     * shared yet, so it may still be changed. */
    if (g->state == SSP_GROUP_ARCHIVED && (g->archive_at_ms == 0 || g->archive_at_ms > now_ms)) {
        bool was_archived = stored != NULL && stored->state != SSP_GROUP_ACTIVE &&
                            stored->archive_at_ms != 0 && stored->archive_at_ms <= now_ms;

        g->archive_at_ms = was_archived ? stored->archive_at_ms : now_ms;
    }
    return 0;
}

int ssp_groups_commit(ssp_engine *engine, ssp_group **groups, size_t n, bool *ignored,
                      size_t *applied, ssp_error *err)
{
    ssp_group **fresh = NULL;
    bool *stale = NULL;
    size_t n_fresh = 0;
    int64_t now_ms = ssp_now_ms();
    int rc = -1, reserved;

    *applied = 0;
    if (require_open(engine, err) != 0)
        goto done;
    fresh = calloc(n ? n : 1, sizeof *fresh);
    stale = calloc(n ? n : 1, sizeof *stale);
    if (fresh == NULL || stale == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    pthread_mutex_lock(&engine->write_mutex);
    /* Only writers, under write_mutex, change the groups: what is read
     * here stays true until the apply below. */
    pthread_rwlock_rdlock(&engine->roster.lock);
    for (size_t i = 0; i < n; i++) {
        const char *id = groups[i]->group_id;
        int settled = settle(ssp_roster_group(&engine->roster, id, strlen(id)), &groups[i], now_ms);

        if (settled < 0) {
            pthread_rwlock_unlock(&engine->roster.lock);
            pthread_mutex_unlock(&engine->write_mutex);
            ssp_fail_nomem(err);
            goto done;
        }
        stale[i] = settled == 1;
        if (!stale[i])
            fresh[n_fresh++] = groups[i];
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    /* Make room first: once the store holds the groups, applying them must
     * not fail, or the index would differ after the next restart. */
    pthread_rwlock_wrlock(&engine->roster.lock);
    reserved = ssp_roster_reserve_groups_locked(&engine->roster, (const ssp_group *const *)fresh,
                                                n_fresh, err);
    pthread_rwlock_unlock(&engine->roster.lock);
    if (reserved != 0 ||
        ssp_store_groups_append(engine->store, &engine->roster, (const ssp_group *const *)fresh,
                                n_fresh, err) != 0) {
        pthread_mutex_unlock(&engine->write_mutex);
        goto done;
    }
    pthread_rwlock_wrlock(&engine->roster.lock);
    for (size_t i = 0; i < n_fresh; i++) {
        ssp_error ignored_err;

        /* Cannot fail: room was reserved. Takes the group. */
        (void)ssp_roster_apply_group_locked(&engine->roster, fresh[i], &ignored_err);
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    pthread_mutex_unlock(&engine->write_mutex);
    for (size_t i = 0; i < n; i++) {
        if (!stale[i])
            groups[i] = NULL; /* the index's now */
        if (ignored != NULL)
            ignored[i] = stale[i];
    }
    *applied = n_fresh;
    rc = 0;
done:
    free(fresh);
    free(stale);
    for (size_t i = 0; i < n; i++) {
        free(groups[i]);
        groups[i] = NULL;
    }
    return rc;
}

/* The stored group of id as JSON text (caller frees), with "ignored" when
 * asked; *text NULL when there is none. */
static int stored_json(ssp_engine *engine, const char *group_id, bool mark_ignored, char **text,
                       ssp_error *err)
{
    const ssp_group *group;
    json_t *json = NULL;
    int rc = 0;

    *text = NULL;
    pthread_rwlock_rdlock(&engine->roster.lock);
    group = ssp_roster_group(&engine->roster, group_id, strlen(group_id));
    if (group != NULL)
        json = ssp_group_to_json(group);
    pthread_rwlock_unlock(&engine->roster.lock);
    if (group == NULL)
        return 0;
    if (json == NULL || (mark_ignored && json_object_set_new(json, "ignored", json_true()) != 0))
        rc = ssp_fail_nomem(err);
    else
        rc = ssp_json_dump_to(json, text, err);
    json_decref(json);
    return rc;
}

int ssp_group_put(ssp_engine *engine, const char *group_id, const char *body, size_t len,
                  char **group_json, ssp_error *err)
{
    ssp_group *group = NULL;
    json_t *root;
    bool ignored = false;
    size_t applied = 0;
    int rc = -1;

    *group_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    root = ssp_json_parse_body(body, len, err);
    if (root == NULL)
        return -1;
    if (ssp_group_parse(group_id, root, "", engine->server_name, &group, err) == 0 &&
        ssp_groups_check_schools(engine, &group, 1, false, err) == 0 &&
        ssp_groups_commit(engine, &group, 1, &ignored, &applied, err) == 0)
        rc = stored_json(engine, group_id, ignored, group_json, err);
    free(group);
    json_decref(root);
    return rc;
}

int ssp_group_get(ssp_engine *engine, const char *group_id, char **group_json, ssp_error *err)
{
    char subject[SSP_GROUP_SUBJECT_MAX], *school = NULL, *room_id = NULL;
    const ssp_group *group;
    json_t *json = NULL;
    int rc = -1;

    *group_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    pthread_rwlock_rdlock(&engine->roster.lock);
    group = ssp_roster_group(&engine->roster, group_id, strlen(group_id));
    if (group != NULL) {
        json = ssp_group_to_json(group);
        school = ssp_strdup(group->school);
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    if (group == NULL)
        return 0;
    if (json == NULL || school == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    ssp_group_subject(group_id, subject, sizeof subject);
    /* The room is the reconciler's record: a store read, outside the lock. */
    if (ssp_store_reconcile_get_room(engine->store, school, subject, &room_id, err) != 0)
        goto done;
    if (json_object_set_new(json, "room_id", room_id ? json_string(room_id) : json_null()) != 0) {
        ssp_fail_nomem(err);
        goto done;
    }
    rc = ssp_json_dump_to(json, group_json, err);
done:
    free(school);
    free(room_id);
    json_decref(json);
    return rc;
}

int ssp_group_delete(ssp_engine *engine, const char *group_id, bool *existed, ssp_error *err)
{
    const ssp_group *stored;
    ssp_group *deleted = NULL;
    bool already = false, ignored = false;
    size_t applied = 0;

    *existed = false;
    if (require_open(engine, err) != 0 ||
        ssp_check_group_id("group", group_id, strlen(group_id), err) != 0)
        return -1;
    /* Only writers change the groups, under write_mutex; another DELETE of
     * the same group in between writes the same deleted state. */
    pthread_rwlock_rdlock(&engine->roster.lock);
    stored = ssp_roster_group(&engine->roster, group_id, strlen(group_id));
    if (stored != NULL) {
        *existed = true;
        already = stored->state == SSP_GROUP_DELETED;
        if (!already)
            deleted = ssp_group_copy_as(stored, SSP_GROUP_DELETED, true,
                                        stored->has_version ? stored->version + 1 : 1);
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    if (!*existed || already)
        return 0;
    if (deleted == NULL)
        return ssp_fail_nomem(err);
    return ssp_groups_commit(engine, &deleted, 1, &ignored, &applied, err);
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int compare_groups(const void *a, const void *b)
{
    return strcmp((*(const ssp_group *const *)a)->group_id, (*(const ssp_group *const *)b)->group_id);
}

typedef struct list_ctx {
    const char *school, *from;
    const ssp_group **found;
    size_t n;
} list_ctx;

static int collect_school_group(const char *key, void *value, void *ctx_ptr)
{
    list_ctx *ctx = ctx_ptr;
    const ssp_group *group = value;

    (void)key;
    if (strcmp(group->school, ctx->school) == 0 &&
        (ctx->from == NULL || strcmp(group->group_id, ctx->from) > 0))
        ctx->found[ctx->n++] = group;
    return 0;
}

int ssp_groups_list(ssp_engine *engine, const char *school, const char *from, size_t limit,
                    char **page_json, ssp_error *err)
{
    list_ctx ctx = {school, from, NULL, 0};
    json_t *page = NULL, *list;
    int rc = -1;

    *page_json = NULL;
    if (require_open(engine, err) != 0 ||
        ssp_check_school_id("school", school, strlen(school), err) != 0)
        return -1;
    if (limit < 1 || limit > LIST_LIMIT_MAX)
        return ssp_fail(err, SSP_ERR_INPUT, "limit: expected 1 to %d", LIST_LIMIT_MAX);
    page = json_pack("{s:[], s:n}", "groups", "next");
    list = json_object_get(page, "groups");
    pthread_rwlock_rdlock(&engine->roster.lock);
    ctx.found = malloc((engine->roster.groups.count ? engine->roster.groups.count : 1) *
                       sizeof *ctx.found);
    if (page == NULL || ctx.found == NULL) {
        pthread_rwlock_unlock(&engine->roster.lock);
        ssp_fail_nomem(err);
        goto done;
    }
    ssp_strmap_each(&engine->roster.groups, collect_school_group, &ctx);
    qsort(ctx.found, ctx.n, sizeof *ctx.found, compare_groups);
    for (size_t i = 0; i < ctx.n && i < limit; i++) {
        if (json_array_append_new(list, ssp_group_to_json(ctx.found[i])) != 0) {
            pthread_rwlock_unlock(&engine->roster.lock);
            ssp_fail_nomem(err);
            goto done;
        }
    }
    if (ctx.n > limit &&
        json_object_set_new(page, "next", json_string(ctx.found[limit - 1]->group_id)) != 0) {
        pthread_rwlock_unlock(&engine->roster.lock);
        ssp_fail_nomem(err);
        goto done;
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    rc = ssp_json_dump_to(page, page_json, err);
done:
    free(ctx.found);
    json_decref(page);
    return rc;
}

int ssp_groups_of(ssp_engine *engine, const char *user_id, char **ids_json, ssp_error *err)
{
    const ssp_group *const *groups;
    const char **ids = NULL;
    json_t *list = json_array();
    size_t n;
    int rc = -1;

    *ids_json = NULL;
    if (require_open(engine, err) != 0) {
        json_decref(list);
        return -1;
    }
    pthread_rwlock_rdlock(&engine->roster.lock);
    n = ssp_roster_groups_of(&engine->roster, user_id, strlen(user_id), &groups);
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (list == NULL || ids == NULL) {
        pthread_rwlock_unlock(&engine->roster.lock);
        ssp_fail_nomem(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = groups[i]->group_id;
    qsort(ids, n, sizeof *ids, compare_ids);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(list, json_string(ids[i])) != 0) {
            pthread_rwlock_unlock(&engine->roster.lock);
            ssp_fail_nomem(err);
            goto done;
        }
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    rc = ssp_json_dump_to(list, ids_json, err);
done:
    free(ids);
    json_decref(list);
    return rc;
}

size_t ssp_groups_count(ssp_engine *engine)
{
    size_t n;

    pthread_rwlock_rdlock(&engine->roster.lock);
    n = engine->roster.groups.count;
    pthread_rwlock_unlock(&engine->roster.lock);
    return n;
}

/* ---- the plan of a group's room ---- */

/* Why a listed member must not be in the room, or NULL. Caller holds the
 * roster's read lock. */
static const char *why_not_member(const ssp_roster *roster, const char *user_id,
                                  const char *group_why)
{
    const ssp_roster_user *user;

    if (group_why != NULL)
        return group_why;
    user = ssp_strmap_get(&roster->users, user_id);
    if (user == NULL)
        return "not on the roster";
    for (size_t i = 0; i < user->n; i++) {
        if (user->memberships[i].config != NULL && user->memberships[i].config->messenger)
            return NULL;
    }
    return "no school of theirs has opted in";
}

static json_t *plan_members(const ssp_engine *engine, const ssp_group *group,
                            const char *group_why)
{
    json_t *members = json_array();

    for (size_t i = 0; members != NULL && i < group->n_members; i++) {
        const ssp_group_member *m = &group->members[i];
        const char *why = why_not_member(&engine->roster, m->user_id, group_why);
        bool moderator = m->role == SSP_GROUP_MODERATOR;
        json_t *item = json_pack(
            "{s:s, s:s, s:b, s:o, s:o}", "user_id", m->user_id, "role",
            ssp_group_role_name(m->role), "member", why == NULL, "power_level",
            why == NULL && moderator ? json_integer(engine->config.moderator_level) : json_null(),
            "why", why ? json_string(why) : json_null());

        if (item == NULL || json_array_append_new(members, item) != 0) {
            json_decref(members);
            return NULL;
        }
    }
    return members;
}

int ssp_group_plan(ssp_engine *engine, const char *group_id, int64_t now_ms, char **plan_json,
                   ssp_error *err)
{
    const ssp_group *group;
    json_t *plan = NULL;
    int64_t retention_ms = engine->config.groups_archive_retention_days * MS_PER_DAY;
    int rc;

    *plan_json = NULL;
    if (require_open(engine, err) != 0)
        return -1;
    if (now_ms < 0)
        now_ms = ssp_now_ms();
    pthread_rwlock_rdlock(&engine->roster.lock);
    group = ssp_roster_group(&engine->roster, group_id, strlen(group_id));
    if (group != NULL) {
        bool archived = ssp_group_is_archived(group, now_ms);
        bool deleted = group->state == SSP_GROUP_DELETED;
        /* archive_at_ms is when it archived (ssp_groups_commit sets it for
         * a group archived by state) */
        bool expired = archived && !deleted && group->archive_at_ms != 0 &&
                       now_ms - group->archive_at_ms >= retention_ms;
        const char *group_why = deleted   ? "the group is deleted"
                                : expired ? "the group was archived longer ago than "
                                            "groups.archive_retention_days"
                                          : NULL;

        plan = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:b, s:b, s:s, s:b, s:b, s:I, s:o, s:o}",
                         "group", group->group_id, "school", group->school, "kind", group->kind,
                         "name", group->name, "topic", group->topic, "two_way", group->two_way,
                         "closed", group->closed, "state",
                         deleted ? "deleted" : archived ? "archived" : "active",
                         "remove_members_now", deleted || expired, "encrypted",
                         engine->config.groups_encrypted, "archive_at_ms",
                         (json_int_t)group->archive_at_ms, "policy",
                         json_pack("{s:s, s:s, s:b, s:s}", "school", group->school, "kind",
                                   group->kind, "two_way", group->two_way, "group",
                                   group->group_id),
                         "members", plan_members(engine, group, group_why));
    }
    pthread_rwlock_unlock(&engine->roster.lock);
    if (group == NULL)
        return 0;
    rc = ssp_json_dump_to(plan, plan_json, err);
    json_decref(plan);
    return rc;
}
