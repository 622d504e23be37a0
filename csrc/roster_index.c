/*
 * The roster index: which schools each user belongs to, and in which role,
 * the input rules of every roster entry, and the in-memory index behind a
 * reader-writer lock, so that decisions never wait on I/O. No store here:
 * the store loads the index and roster.c's writes change it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "roster_index.h"
#include "util.h"

#define PATH_MAX_LEN 256

static const char *const ROLE_NAMES[] = {"student", "teacher", "admin", NULL};

static ssp_roster_user *user_alloc(const char *user_id, const char **schools, const ssp_role *roles,
                                   size_t n)
{
    size_t size = sizeof(ssp_roster_user) + n * sizeof(ssp_membership) + strlen(user_id) + 1;
    ssp_roster_user *user;
    char *strings;

    for (size_t i = 0; i < n; i++)
        size += strlen(schools[i]) + 1;
    user = malloc(size);
    if (user == NULL)
        return NULL;
    strings = (char *)&user->memberships[n];
    user->n = n;
    user->user_id = strings;
    strcpy(strings, user_id);
    strings += strlen(user_id) + 1;
    for (size_t i = 0; i < n; i++) {
        user->memberships[i].school = strings;
        user->memberships[i].role = roles[i];
        user->memberships[i].config = NULL;
        strcpy(strings, schools[i]);
        strings += strlen(schools[i]) + 1;
    }
    return user;
}

ssp_roster_user *ssp_roster_user_new(const char *user_id, const char **schools,
                                     const ssp_role *roles, size_t n)
{
    return user_alloc(user_id, schools, roles, n);
}

int ssp_role_from_name(const char *name, ssp_role *role)
{
    for (int r = 0; ROLE_NAMES[r] != NULL; r++) {
        if (strcmp(name, ROLE_NAMES[r]) == 0) {
            *role = (ssp_role)r;
            return 0;
        }
    }
    return -1;
}

static int parse_role(json_t *role_json, const char *path, ssp_role *role, ssp_error *err)
{
    /* Length-aware: a body may hold "teacher\u0000x". */
    if (json_is_string(role_json)) {
        for (int r = 0; ROLE_NAMES[r] != NULL; r++) {
            if (json_string_length(role_json) == strlen(ROLE_NAMES[r]) &&
                strcmp(json_string_value(role_json), ROLE_NAMES[r]) == 0) {
                *role = (ssp_role)r;
                return 0;
            }
        }
    }
    return ssp_fail(err, SSP_ERR_INPUT, "%s.role: expected one of teacher, student, admin", path);
}

/* 1: the school id breaks a content rule (lenient callers drop the
 * membership); -1: any other error. */
static int parse_membership(json_t *item, const char *path, const char **school, ssp_role *role,
                            ssp_error *err)
{
    const char *key;
    json_t *value, *school_json;
    char school_path[PATH_MAX_LEN + 8];

    if (!json_is_object(item))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an object with school and role", path);
    json_object_foreach(item, key, value) {
        if (strcmp(key, "school") != 0 && strcmp(key, "role") != 0)
            return ssp_fail(err, SSP_ERR_INPUT, "%s.%s: unknown field", path, key);
    }
    school_json = json_object_get(item, "school");
    if (!json_is_string(school_json))
        return ssp_fail(err, SSP_ERR_INPUT, "%s.school: expected a school id", path);
    *school = json_string_value(school_json);
    snprintf(school_path, sizeof school_path, "%s.school", path);
    if (ssp_check_school_id(school_path, *school, json_string_length(school_json), err) != 0)
        return 1;
    return parse_role(json_object_get(item, "role"), path, role, err);
}

static int parse_entry(const char *user_id, json_t *body, const char *path, size_t *dropped,
                       ssp_roster_user **out, ssp_error *err)
{
    const char *key;
    json_t *value, *schools;
    const char **names = NULL;
    ssp_role *roles = NULL;
    size_t n, kept = 0;
    char item_path[PATH_MAX_LEN];
    const char *sep = path[0] ? "." : "";
    int rc = -1;

    *out = NULL;
    if (!json_is_object(body))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an object", path[0] ? path : "body");
    json_object_foreach(body, key, value) {
        if (strcmp(key, "schools") != 0 && !(path[0] && strcmp(key, "user_id") == 0))
            return ssp_fail(err, SSP_ERR_INPUT, "%s%s%s: unknown field", path, sep, key);
    }
    schools = json_object_get(body, "schools");
    if (!json_is_array(schools))
        return ssp_fail(err, SSP_ERR_INPUT, "%s%sschools: expected a list", path, sep);
    n = json_array_size(schools);
    names = calloc(n ? n : 1, sizeof *names);
    roles = calloc(n ? n : 1, sizeof *roles);
    if (names == NULL || roles == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        int parsed;

        snprintf(item_path, sizeof item_path, "%s%sschools[%zu]", path, sep, i);
        parsed = parse_membership(json_array_get(schools, i), item_path, &names[kept],
                                  &roles[kept], err);
        if (parsed == 1 && dropped != NULL) {
            (*dropped)++;
            continue;
        }
        if (parsed != 0)
            goto done;
        for (size_t j = 0; j < kept; j++) {
            if (strcmp(names[j], names[kept]) == 0) {
                ssp_fail(err, SSP_ERR_INPUT,
                         "%s.school: %s is listed twice; give one role per school", item_path,
                         names[kept]);
                goto done;
            }
        }
        kept++;
    }
    *out = user_alloc(user_id, names, roles, kept);
    rc = *out ? 0 : ssp_fail_nomem(err);
done:
    free(names);
    free(roles);
    return rc;
}

int ssp_roster_parse_entry(const char *user_id, json_t *body, const char *path,
                           ssp_roster_user **out, ssp_error *err)
{
    return parse_entry(user_id, body, path, NULL, out, err);
}

int ssp_roster_parse_entry_lenient(const char *user_id, json_t *body, const char *path,
                                   size_t *dropped, ssp_roster_user **out, ssp_error *err)
{
    return parse_entry(user_id, body, path, dropped, out, err);
}

void ssp_roster_changes_free(ssp_roster_change *changes, size_t n)
{
    if (changes == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(changes[i].user_id);
        free(changes[i].user);
    }
    free(changes);
}

int ssp_roster_parse_batch(json_t *body, const char *server_name, ssp_roster_change **changes_out,
                           size_t *n_out, ssp_error *err)
{
    json_t *users;
    ssp_roster_change *changes;
    ssp_strmap seen; /* user_id -> index + 1 */
    size_t n, i;
    const char *key;
    json_t *value;
    char path[PATH_MAX_LEN], field[PATH_MAX_LEN];

    *changes_out = NULL;
    *n_out = 0;
    if (!json_is_object(body))
        return ssp_fail(err, SSP_ERR_INPUT,
                        "body: expected an object with a users list, a groups list or both");
    json_object_foreach(body, key, value) {
        if (strcmp(key, "users") != 0 && strcmp(key, "groups") != 0)
            return ssp_fail(err, SSP_ERR_INPUT, "%s: unknown field", key);
    }
    users = json_object_get(body, "users");
    /* The groups are groups.c's (ssp_groups_parse_batch): no users, an
     * empty list of changes. */
    if (users == NULL && json_object_get(body, "groups") != NULL) {
        *changes_out = calloc(1, sizeof **changes_out);
        return *changes_out != NULL ? 0 : ssp_fail_nomem(err);
    }
    if (users == NULL)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "body: expected a users list, a groups list or both");
    if (!json_is_array(users))
        return ssp_fail(err, SSP_ERR_INPUT, "users: expected a list");
    n = json_array_size(users);
    changes = calloc(n ? n : 1, sizeof *changes);
    if (changes == NULL)
        return ssp_fail_nomem(err);
    ssp_strmap_init(&seen);
    for (i = 0; i < n; i++) {
        json_t *item = json_array_get(users, i);
        json_t *user_id = json_object_get(item, "user_id");
        void *first;

        snprintf(path, sizeof path, "users[%zu]", i);
        snprintf(field, sizeof field, "users[%zu].user_id", i);
        if (!json_is_object(item)) {
            ssp_fail(err, SSP_ERR_INPUT, "%s: expected an object", path);
            goto fail;
        }
        if (!json_is_string(user_id)) {
            ssp_fail(err, SSP_ERR_INPUT, "%s: expected a Matrix user id (@user:server)",
                     field);
            goto fail;
        }
        if (ssp_check_user_id(field, json_string_value(user_id),
                                     json_string_length(user_id), server_name, err) != 0)
            goto fail;
        first = ssp_strmap_get(&seen, json_string_value(user_id));
        if (first != NULL) {
            ssp_fail(err, SSP_ERR_INPUT, "%s: duplicate of users[%zu]", field,
                     (size_t)(uintptr_t)first - 1);
            goto fail;
        }
        changes[i].user_id = ssp_strdup(json_string_value(user_id));
        if (changes[i].user_id == NULL) {
            ssp_fail_nomem(err);
            goto fail;
        }
        if (ssp_strmap_put(&seen, changes[i].user_id, (void *)(uintptr_t)(i + 1), NULL) != 0) {
            ssp_fail_nomem(err);
            goto fail;
        }
        if (ssp_roster_parse_entry(changes[i].user_id, item, path, &changes[i].user, err) != 0)
            goto fail;
    }
    ssp_strmap_destroy(&seen);
    *changes_out = changes;
    *n_out = n;
    return 0;
fail:
    ssp_strmap_destroy(&seen);
    ssp_roster_changes_free(changes, n);
    return -1;
}

json_t *ssp_roster_user_to_json(const char *user_id, const ssp_roster_user *user)
{
    json_t *schools = json_array();
    size_t n = user ? user->n : 0;

    if (schools == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_pack("{s:s, s:s}", "school", user->memberships[i].school, "role",
                                 ROLE_NAMES[user->memberships[i].role]);

        /* json_array_append_new steals item even when it fails. */
        if (item == NULL || json_array_append_new(schools, item) != 0) {
            json_decref(schools);
            return NULL;
        }
    }
    /* "o" steals schools, also on failure. */
    return json_pack("{s:s, s:o}", "user_id", user_id, "schools", schools);
}

/* ---- the groups and the reverse index ---- */

/* An entry of the reverse index: the groups that list one user. `want`
 * counts, while room is reserved, the additions to make room for. */
typedef struct user_groups {
    size_t n, cap, want;
    const ssp_group **groups;
    char user_id[]; /* the entry's key */
} user_groups;

static int free_user_groups(const char *key, void *value, void *ctx)
{
    user_groups *entry = value;

    (void)key;
    (void)ctx;
    free(entry->groups);
    free(entry);
    return 0;
}

static void user_groups_map_free(ssp_strmap *index)
{
    ssp_strmap_each(index, free_user_groups, NULL);
    ssp_strmap_destroy(index);
}

void ssp_roster_group_map_free(ssp_strmap *groups)
{
    ssp_strmap_each(groups, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(groups);
}

static user_groups *user_groups_get_or_add(ssp_strmap *index, const char *user_id)
{
    user_groups *entry = ssp_strmap_get(index, user_id);
    size_t len;

    if (entry != NULL)
        return entry;
    len = strlen(user_id);
    entry = malloc(sizeof *entry + len + 1);
    if (entry == NULL)
        return NULL;
    entry->n = entry->cap = entry->want = 0;
    entry->groups = NULL;
    memcpy(entry->user_id, user_id, len + 1);
    if (ssp_strmap_put(index, entry->user_id, entry, NULL) != 0) {
        free(entry);
        return NULL;
    }
    return entry;
}

/* Makes room in index for every member of groups[0..n) to gain one more
 * group per listing: the adds that follow cannot fail. -1 when out of
 * memory (what was made stays, unused). */
static int reserve_members(ssp_strmap *index, const ssp_group *const *groups, size_t n)
{
    int rc = 0;

    for (size_t g = 0; g < n && rc == 0; g++) {
        for (size_t m = 0; m < groups[g]->n_members; m++) {
            user_groups *entry = user_groups_get_or_add(index, groups[g]->members[m].user_id);

            if (entry == NULL) {
                rc = -1;
                break;
            }
            entry->want++;
        }
    }
    /* Grows each entry once, and resets every count, also after a failure. */
    for (size_t g = 0; g < n; g++) {
        for (size_t m = 0; m < groups[g]->n_members; m++) {
            user_groups *entry = ssp_strmap_get(index, groups[g]->members[m].user_id);
            size_t need, cap;
            const ssp_group **grown;

            if (entry == NULL || entry->want == 0)
                continue;
            need = entry->n + entry->want;
            entry->want = 0;
            if (rc != 0 || need <= entry->cap)
                continue;
            cap = entry->cap == 0 ? need : entry->cap + entry->cap / 2;
            cap = cap < need ? need : cap;
            grown = realloc(entry->groups, cap * sizeof *grown);
            if (grown == NULL) {
                rc = -1;
                continue;
            }
            entry->groups = grown;
            entry->cap = cap;
        }
    }
    return rc;
}

/* Lists group for each of its members; room was reserved. */
static void link_members(ssp_strmap *index, const ssp_group *group)
{
    for (size_t m = 0; m < group->n_members; m++) {
        user_groups *entry = ssp_strmap_get(index, group->members[m].user_id);

        entry->groups[entry->n++] = group;
    }
}

static void unlink_members(ssp_strmap *index, const ssp_group *group)
{
    for (size_t m = 0; m < group->n_members; m++) {
        user_groups *entry = ssp_strmap_get(index, group->members[m].user_id);

        for (size_t i = 0; entry != NULL && i < entry->n; i++) {
            if (entry->groups[i] == group) {
                entry->groups[i] = entry->groups[--entry->n];
                break;
            }
        }
    }
}

const ssp_group *ssp_roster_group(const ssp_roster *roster, const char *group_id, size_t len)
{
    return ssp_strmap_getn(&roster->groups, group_id, len);
}

size_t ssp_roster_groups_of(const ssp_roster *roster, const char *user_id, size_t len,
                            const ssp_group *const **groups)
{
    const user_groups *entry = ssp_strmap_getn(&roster->user_groups, user_id, len);

    *groups = entry != NULL && entry->n > 0 ? entry->groups : NULL;
    return *groups != NULL ? entry->n : 0;
}

int ssp_roster_reserve_groups_locked(ssp_roster *roster, const ssp_group *const *groups, size_t n,
                                     ssp_error *err)
{
    if (ssp_strmap_reserve(&roster->groups, n) != 0 ||
        reserve_members(&roster->user_groups, groups, n) != 0)
        return ssp_fail_nomem(err);
    return 0;
}

int ssp_roster_apply_group_locked(ssp_roster *roster, ssp_group *group, ssp_error *err)
{
    const ssp_group *one = group;
    void *previous = NULL;

    if (ssp_roster_reserve_groups_locked(roster, &one, 1, err) != 0) {
        free(group);
        return -1;
    }
    previous = ssp_strmap_get(&roster->groups, group->group_id);
    if (previous != NULL)
        unlink_members(&roster->user_groups, previous);
    /* Cannot fail: the key is there, or room was reserved. The key is the
     * group's own copy of the id. */
    (void)ssp_strmap_put(&roster->groups, group->group_id, group, &previous);
    link_members(&roster->user_groups, group);
    free(previous);
    return 0;
}

/* Lists group for each of its members in a reverse index being built (no
 * reader sees it yet): one lookup a membership, entries grown by half. -1
 * when out of memory (the index stays whole, to be freed). */
static int index_members(ssp_strmap *index, const ssp_group *group)
{
    for (size_t m = 0; m < group->n_members; m++) {
        user_groups *entry = user_groups_get_or_add(index, group->members[m].user_id);

        if (entry == NULL)
            return -1;
        if (entry->n == entry->cap) {
            size_t cap = entry->cap < 4 ? 4 : entry->cap + entry->cap / 2;
            const ssp_group **grown = realloc(entry->groups, cap * sizeof *grown);

            if (grown == NULL)
                return -1;
            entry->groups = grown;
            entry->cap = cap;
        }
        entry->groups[entry->n++] = group;
    }
    return 0;
}

static int index_group(const char *key, void *value, void *index)
{
    (void)key;
    return index_members(index, value);
}

int ssp_roster_replace_groups(ssp_roster *roster, ssp_strmap *groups, ssp_error *err)
{
    ssp_strmap index, old_groups, old_index;

    ssp_strmap_init(&index);
    /* Sized for the roster's users, whom the groups mostly list: no
     * rehash of a million entries on the way. Only a hint when it fails. */
    if (groups->count > 0) {
        size_t users;

        pthread_rwlock_rdlock(&roster->lock);
        users = roster->users.count;
        pthread_rwlock_unlock(&roster->lock);
        (void)ssp_strmap_reserve(&index, users);
    }
    if (ssp_strmap_each(groups, index_group, &index) != 0) {
        user_groups_map_free(&index);
        return ssp_fail_nomem(err);
    }
    pthread_rwlock_wrlock(&roster->lock);
    old_groups = roster->groups;
    old_index = roster->user_groups;
    roster->groups = *groups;
    roster->user_groups = index;
    pthread_rwlock_unlock(&roster->lock);
    ssp_strmap_init(groups);
    ssp_roster_group_map_free(&old_groups);
    user_groups_map_free(&old_index);
    return 0;
}

int ssp_roster_init(ssp_roster *roster, ssp_error *err)
{
    ssp_strmap_init(&roster->users);
    ssp_strmap_init(&roster->groups);
    ssp_strmap_init(&roster->user_groups);
    roster->server_name = NULL;
    roster->schools = NULL;
    roster->skipped = 0;
    if (pthread_rwlock_init(&roster->lock, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster lock");
    return 0;
}

void ssp_roster_destroy(ssp_roster *roster)
{
    ssp_strmap_each(&roster->users, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(&roster->users);
    ssp_roster_group_map_free(&roster->groups);
    user_groups_map_free(&roster->user_groups);
    pthread_rwlock_destroy(&roster->lock);
}

/* Links each membership of an entry entering the roster to its school's
 * config entry (see ssp_membership.config). */
static void link_schools(const ssp_roster *roster, ssp_roster_user *user)
{
    for (size_t i = 0; i < user->n; i++)
        user->memberships[i].config =
            roster->schools ? ssp_strmap_get(roster->schools, user->memberships[i].school) : NULL;
}

static int link_entry(const char *key, void *value, void *ctx)
{
    (void)key;
    link_schools(ctx, value);
    return 0;
}

int ssp_roster_apply_locked(ssp_roster *roster, const char *user_id, ssp_roster_user *user,
                            ssp_error *err)
{
    void *previous = NULL;

    if (user == NULL || user->n == 0) {
        free(user);
        free(ssp_strmap_remove(&roster->users, user_id));
        return 0;
    }
    link_schools(roster, user);
    /* The key is the user's own copy of the id, so it lives exactly as long
     * as the entry. */
    if (ssp_strmap_put(&roster->users, user->user_id, user, &previous) != 0) {
        free(user);
        return ssp_fail_nomem(err);
    }
    free(previous);
    return 0;
}

void ssp_roster_note_skipped(ssp_roster *roster, uint64_t n)
{
    __atomic_fetch_add(&roster->skipped, n, __ATOMIC_RELAXED);
}

void ssp_roster_map_free(ssp_strmap *users)
{
    ssp_strmap_each(users, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(users);
}

void ssp_roster_replace(ssp_roster *roster, ssp_strmap *users)
{
    ssp_strmap old;

    /* The new entries are nobody else's yet: linked before the lock. */
    ssp_strmap_each(users, link_entry, roster);
    pthread_rwlock_wrlock(&roster->lock);
    old = roster->users;
    roster->users = *users;
    pthread_rwlock_unlock(&roster->lock);
    ssp_strmap_init(users);
    ssp_roster_map_free(&old);
}

int ssp_roster_apply_loaded(ssp_roster *roster, const char *const *user_ids, size_t n,
                            ssp_strmap *loaded, ssp_error *err)
{
    pthread_rwlock_wrlock(&roster->lock);
    if (ssp_strmap_reserve(&roster->users, n) != 0) {
        pthread_rwlock_unlock(&roster->lock);
        return ssp_fail_nomem(err);
    }
    for (size_t i = 0; i < n; i++) {
        ssp_error ignored;

        /* Cannot fail: room was reserved. */
        (void)ssp_roster_apply_locked(roster, user_ids[i], ssp_strmap_remove(loaded, user_ids[i]),
                                      &ignored);
    }
    pthread_rwlock_unlock(&roster->lock);
    return 0;
}
