/*
 * One group: the parser and validator every way in shares (the admin API,
 * the roster batch, the feed, the command line, the journal replay), its
 * JSON form, the member lookup, the archive test and the version rule.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "ids.h"

#define PATH_MAX_LEN 320

static const char *const KIND_NAMES[] = {"course", "team", "class", NULL};
static const char *const STATE_NAMES[] = {"active", "archived", "deleted", NULL};
static const char *const ROLE_NAMES[] = {"member", "moderator", NULL};
static const char *const KEYS[] = {"group",   "school", "kind",          "name",    "topic",
                                   "two_way", "closed", "state",         "version", "members",
                                   "archive_at_ms",     NULL};

const char *ssp_group_state_name(ssp_group_state state)
{
    return STATE_NAMES[state];
}

const char *ssp_group_role_name(ssp_group_role role)
{
    return ROLE_NAMES[role];
}

/* The member of a body being parsed: borrowed from the body. */
typedef struct member_ref {
    const char *user_id;
    ssp_group_role role;
    size_t index; /* in the body's list, for errors */
} member_ref;

static int compare_refs(const void *a, const void *b);

/* Everything of a group but its members, borrowed from the body. */
typedef struct group_fields {
    const char *group_id, *school, *kind, *name, *topic;
    bool two_way, closed;
    ssp_group_state state;
    int64_t archive_at_ms;
    bool has_version;
    int64_t version;
} group_fields;

/* "path.key", or "key" when path is "". */
static const char *at(char *buf, size_t size, const char *path, const char *key)
{
    snprintf(buf, size, "%s%s%s", path, path[0] ? "." : "", key);
    return buf;
}

/* Index of the JSON string value in names (length-aware: "member\u0000x"
 * matches nothing), or -1. */
static int name_index(json_t *value, const char *const *names)
{
    if (!json_is_string(value))
        return -1;
    for (int i = 0; names[i] != NULL; i++) {
        if (json_string_length(value) == strlen(names[i]) &&
            strcmp(json_string_value(value), names[i]) == 0)
            return i;
    }
    return -1;
}

int ssp_check_group_id(const char *path, const char *group_id, size_t len, ssp_error *err)
{
    if (len == 0 || len > SSP_GROUP_ID_MAX)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected 1 to %d bytes", path,
                        SSP_GROUP_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)group_id[i];

        if (c <= ' ' || c >= 0x7f)
            return ssp_fail(err, SSP_ERR_INPUT,
                            "%s: byte %zu (0x%02x) is not printable ASCII without space", path, i,
                            c);
    }
    return 0;
}

/* A string without NUL bytes; empty refused unless allow_empty. */
static int text_field(json_t *value, const char *path, bool allow_empty, const char **out,
                      ssp_error *err)
{
    if (!json_is_string(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a string", path);
    if (strlen(json_string_value(value)) != json_string_length(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: contains a NUL character", path);
    if (!allow_empty && json_string_length(value) == 0)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: must not be empty", path);
    *out = json_string_value(value);
    return 0;
}

static int bool_field(json_t *body, const char *key, const char *path, bool *out, ssp_error *err)
{
    json_t *value = json_object_get(body, key);
    char buf[PATH_MAX_LEN];

    if (value == NULL)
        return 0;
    if (!json_is_boolean(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected true or false",
                        at(buf, sizeof buf, path, key));
    *out = json_is_true(value);
    return 0;
}

static int int_field(json_t *body, const char *key, const char *path, bool *present, int64_t *out,
                     ssp_error *err)
{
    json_t *value = json_object_get(body, key);
    char buf[PATH_MAX_LEN];

    if (value == NULL)
        return 0;
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a non-negative integer",
                        at(buf, sizeof buf, path, key));
    *out = (int64_t)json_integer_value(value);
    if (present != NULL)
        *present = true;
    return 0;
}

/* stored: the stored form, whose "moderators" list is a key too. */
static int parse_fields(const char *group_id, json_t *body, const char *path, bool stored,
                        group_fields *f, ssp_error *err)
{
    const char *key;
    json_t *value;
    char buf[PATH_MAX_LEN];
    int i;

    json_object_foreach(body, key, value) {
        for (i = 0; KEYS[i] != NULL && strcmp(KEYS[i], key) != 0; i++)
            ;
        if (KEYS[i] == NULL && !(stored && strcmp(key, "moderators") == 0))
            return ssp_fail(err, SSP_ERR_INPUT, "%s: unknown field", at(buf, sizeof buf, path, key));
    }
    value = json_object_get(body, "group");
    at(buf, sizeof buf, path, "group");
    if (group_id == NULL) {
        if (!json_is_string(value))
            return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a group id", buf);
        if (ssp_check_group_id(buf, json_string_value(value), json_string_length(value), err) != 0)
            return -1;
        f->group_id = json_string_value(value);
    } else {
        if (ssp_check_group_id(buf, group_id, strlen(group_id), err) != 0)
            return -1;
        if (value != NULL && (!json_is_string(value) || json_string_length(value) != strlen(group_id) ||
                              strcmp(json_string_value(value), group_id) != 0))
            return ssp_fail(err, SSP_ERR_INPUT, "%s: does not match the group %s of the path", buf,
                            group_id);
        f->group_id = group_id;
    }
    value = json_object_get(body, "school");
    at(buf, sizeof buf, path, "school");
    if (!json_is_string(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a school id", buf);
    if (ssp_check_school_id(buf, json_string_value(value), json_string_length(value), err) != 0)
        return -1;
    f->school = json_string_value(value);
    i = name_index(json_object_get(body, "kind"), KIND_NAMES);
    if (i < 0)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected course, team or class",
                        at(buf, sizeof buf, path, "kind"));
    f->kind = KIND_NAMES[i];
    if (text_field(json_object_get(body, "name"), at(buf, sizeof buf, path, "name"), false,
                   &f->name, err) != 0)
        return -1;
    value = json_object_get(body, "topic");
    f->topic = NULL;
    if (value != NULL && !json_is_null(value) &&
        text_field(value, at(buf, sizeof buf, path, "topic"), true, &f->topic, err) != 0)
        return -1;
    f->two_way = false;
    f->closed = true;
    if (bool_field(body, "two_way", path, &f->two_way, err) != 0 ||
        bool_field(body, "closed", path, &f->closed, err) != 0)
        return -1;
    f->state = SSP_GROUP_ACTIVE;
    value = json_object_get(body, "state");
    if (value != NULL) {
        i = name_index(value, STATE_NAMES);
        if (i < 0)
            return ssp_fail(err, SSP_ERR_INPUT, "%s: expected active, archived or deleted",
                            at(buf, sizeof buf, path, "state"));
        f->state = (ssp_group_state)i;
    }
    f->archive_at_ms = 0;
    f->has_version = false;
    f->version = 0;
    if (int_field(body, "archive_at_ms", path, NULL, &f->archive_at_ms, err) != 0 ||
        int_field(body, "version", path, &f->has_version, &f->version, err) != 0)
        return -1;
    return 0;
}

/* Sorts refs by user id and fails when one is listed twice: of the
 * entries that repeat an earlier one, the first in the list is named. */
static int sort_unique(member_ref *refs, size_t n, const char *list_path, ssp_error *err)
{
    size_t dup = SIZE_MAX, first = 0, at_sorted = 0;

    if (n > 1)
        qsort(refs, n, sizeof *refs, compare_refs);
    /* Equal ids sort by index, so in a run of one id the first entry is
     * the earliest and every other one repeats it. */
    for (size_t i = 1; i < n; i++) {
        size_t j = i;

        if (strcmp(refs[i - 1].user_id, refs[i].user_id) != 0 || refs[i].index >= dup)
            continue;
        while (j > 0 && strcmp(refs[j - 1].user_id, refs[i].user_id) == 0)
            j--;
        dup = refs[i].index;
        first = refs[j].index;
        at_sorted = i;
    }
    if (dup == SIZE_MAX)
        return 0;
    return ssp_fail(err, SSP_ERR_INPUT, "%s[%zu].user_id: %s is listed twice (also %s[%zu])",
                    list_path, dup, refs[at_sorted].user_id, list_path, first);
}

/* The members list: each {"user_id", "role"}, each user once. *refs is a
 * new array of *n entries (caller frees), borrowed from the body, sorted
 * by user id. The paths of errors are only formatted for an error: a
 * journal replay parses millions of members. */
static int parse_members(json_t *members, const char *path, const char *server_name,
                         member_ref **refs_out, size_t *n_out, ssp_error *err)
{
    char list_path[PATH_MAX_LEN], item[PATH_MAX_LEN + 32];
    size_t n = json_array_size(members);
    member_ref *refs;

    at(list_path, sizeof list_path, path, "members");
    *refs_out = NULL;
    *n_out = 0;
    if (!json_is_array(members))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a list of {user_id, role}", list_path);
    refs = calloc(n ? n : 1, sizeof *refs);
    if (refs == NULL)
        return ssp_fail_nomem(err);
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(members, i), *user_id, *value;
        const char *key;
        ssp_error scratch;
        int role;

        if (!json_is_object(entry)) {
            snprintf(item, sizeof item, "%s[%zu]", list_path, i);
            ssp_fail(err, SSP_ERR_INPUT, "%s: expected an object with user_id and role", item);
            goto fail;
        }
        json_object_foreach(entry, key, value) {
            if (strcmp(key, "user_id") != 0 && strcmp(key, "role") != 0) {
                ssp_fail(err, SSP_ERR_INPUT, "%s[%zu].%s: unknown field", list_path, i, key);
                goto fail;
            }
        }
        user_id = json_object_get(entry, "user_id");
        if (!json_is_string(user_id) ||
            ssp_check_user_id("", json_string_value(user_id), json_string_length(user_id),
                              server_name, &scratch) != 0) {
            snprintf(item, sizeof item, "%s[%zu].user_id", list_path, i);
            if (!json_is_string(user_id))
                ssp_fail(err, SSP_ERR_INPUT, "%s: expected a Matrix user id (@user:server)", item);
            else
                (void)ssp_check_user_id(item, json_string_value(user_id),
                                        json_string_length(user_id), server_name, err);
            goto fail;
        }
        role = name_index(json_object_get(entry, "role"), ROLE_NAMES);
        if (role < 0) {
            ssp_fail(err, SSP_ERR_INPUT, "%s[%zu].role: expected moderator or member", list_path,
                     i);
            goto fail;
        }
        refs[i].user_id = json_string_value(user_id);
        refs[i].role = (ssp_group_role)role;
        refs[i].index = i;
    }
    if (sort_unique(refs, n, list_path, err) != 0)
        goto fail;
    *refs_out = refs;
    *n_out = n;
    return 0;
fail:
    free(refs);
    return -1;
}

static int compare_refs(const void *a, const void *b)
{
    const member_ref *x = a, *y = b;
    int cmp = strcmp(x->user_id, y->user_id);

    return cmp != 0 ? cmp : (x->index > y->index) - (x->index < y->index);
}

static char *put_string(char **strings, const char *s)
{
    char *copy = *strings;
    size_t len = strlen(s) + 1;

    memcpy(copy, s, len);
    *strings += len;
    return copy;
}

/* Builds the one allocation of a group; refs are sorted here. NULL when out
 * of memory. */
static ssp_group *build(const group_fields *f, member_ref *refs, size_t n)
{
    size_t size = sizeof(ssp_group) + n * sizeof(ssp_group_member) + strlen(f->group_id) +
                  strlen(f->school) + strlen(f->name) + 3 + (f->topic ? strlen(f->topic) + 1 : 0);
    ssp_group *group;
    char *strings;

    for (size_t i = 0; i < n; i++)
        size += strlen(refs[i].user_id) + 1;
    group = malloc(size);
    if (group == NULL)
        return NULL;
    strings = (char *)&group->members[n];
    group->group_id = put_string(&strings, f->group_id);
    group->school = put_string(&strings, f->school);
    group->kind = f->kind; /* one of KIND_NAMES: static */
    group->name = put_string(&strings, f->name);
    group->topic = f->topic ? put_string(&strings, f->topic) : NULL;
    group->two_way = f->two_way;
    group->closed = f->closed;
    group->state = f->state;
    group->archive_at_ms = f->archive_at_ms;
    group->has_version = f->has_version;
    group->version = f->version;
    group->n_members = n;
    for (size_t i = 0; i < n; i++) {
        group->members[i].user_id = put_string(&strings, refs[i].user_id);
        group->members[i].role = refs[i].role;
    }
    return group;
}

int ssp_group_parse(const char *group_id, json_t *body, const char *path,
                    const char *server_name, ssp_group **out, ssp_error *err)
{
    group_fields f;
    member_ref *refs = NULL;
    size_t n = 0;
    json_t *members;
    char buf[PATH_MAX_LEN];

    *out = NULL;
    if (!json_is_object(body))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an object", path[0] ? path : "body");
    if (parse_fields(group_id, body, path, false, &f, err) != 0)
        return -1;
    members = json_object_get(body, "members");
    /* A deleted group's snapshot may leave its members out. */
    if (members == NULL && f.state != SSP_GROUP_DELETED)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a list of {user_id, role}",
                        at(buf, sizeof buf, path, "members"));
    if (members != NULL && parse_members(members, path, server_name, &refs, &n, err) != 0)
        return -1;
    *out = build(&f, refs, n);
    free(refs);
    return *out != NULL ? 0 : ssp_fail_nomem(err);
}

ssp_group *ssp_group_copy_as(const ssp_group *group, ssp_group_state state, bool has_version,
                             int64_t version)
{
    group_fields f = {group->group_id, group->school, group->kind, group->name, group->topic,
                      group->two_way,  group->closed, state,       group->archive_at_ms,
                      has_version,     version};
    member_ref *refs = calloc(group->n_members ? group->n_members : 1, sizeof *refs);
    ssp_group *copy;

    if (refs == NULL)
        return NULL;
    for (size_t i = 0; i < group->n_members; i++) {
        refs[i].user_id = group->members[i].user_id;
        refs[i].role = group->members[i].role;
    }
    copy = build(&f, refs, group->n_members);
    free(refs);
    return copy;
}

static json_t *members_to_json(const ssp_group *group)
{
    json_t *members = json_array();

    if (members == NULL)
        return NULL;
    for (size_t i = 0; i < group->n_members; i++) {
        json_t *item = json_pack("{s:s, s:s}", "user_id", group->members[i].user_id, "role",
                                 ROLE_NAMES[group->members[i].role]);

        /* json_array_append_new steals item, also on failure. */
        if (item == NULL || json_array_append_new(members, item) != 0) {
            json_decref(members);
            return NULL;
        }
    }
    return members;
}

json_t *ssp_group_to_json(const ssp_group *group)
{
    /* "o" steals members, also on failure (NULL makes json_pack fail). */
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:o}", "group", group->group_id,
                            "school", group->school, "kind", group->kind, "name", group->name,
                            "two_way", group->two_way, "closed", group->closed, "state",
                            STATE_NAMES[group->state], "members", members_to_json(group));

    if (out == NULL)
        return NULL;
    if ((group->topic != NULL &&
         json_object_set_new(out, "topic", json_string(group->topic)) != 0) ||
        (group->archive_at_ms != 0 &&
         json_object_set_new(out, "archive_at_ms", json_integer(group->archive_at_ms)) != 0) ||
        (group->has_version &&
         json_object_set_new(out, "version", json_integer(group->version)) != 0)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* ---- the stored form ---- */

static json_t *ids_with_role(const ssp_group *group, ssp_group_role role)
{
    json_t *ids = json_array();

    for (size_t i = 0; ids != NULL && i < group->n_members; i++) {
        if (group->members[i].role == role &&
            json_array_append_new(ids, json_string(group->members[i].user_id)) != 0) {
            json_decref(ids);
            return NULL;
        }
    }
    return ids;
}

json_t *ssp_group_to_stored_json(const ssp_group *group)
{
    json_t *out = ssp_group_to_json(group);

    /* json_object_set_new steals the value, also on failure (NULL fails). */
    if (out != NULL &&
        (json_object_set_new(out, "members", ids_with_role(group, SSP_GROUP_MEMBER)) != 0 ||
         json_object_set_new(out, "moderators", ids_with_role(group, SSP_GROUP_MODERATOR)) != 0)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The ids of a stored list into refs[*n...], with role. */
static int stored_ids(json_t *list, const char *name, ssp_group_role role, member_ref *refs,
                      size_t *n, ssp_error *err)
{
    size_t i;
    json_t *id;

    if (!json_is_array(list))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a list of user ids", name);
    json_array_foreach(list, i, id) {
        if (!json_is_string(id))
            return ssp_fail(err, SSP_ERR_INPUT, "%s[%zu]: expected a user id", name, i);
        if (ssp_check_user_id(name, json_string_value(id), json_string_length(id), NULL, err) !=
            0)
            return -1;
        refs[*n].user_id = json_string_value(id);
        refs[*n].role = role;
        refs[*n].index = *n;
        (*n)++;
    }
    return 0;
}

int ssp_group_parse_stored(json_t *body, ssp_group **out, ssp_error *err)
{
    group_fields f;
    json_t *members = json_object_get(body, "members"), *moderators;
    member_ref *refs = NULL;
    size_t n = 0;
    int rc = -1;

    *out = NULL;
    moderators = json_object_get(body, "moderators");
    if (!json_is_object(body))
        return ssp_fail(err, SSP_ERR_INPUT, "group: expected an object");
    if (parse_fields(NULL, body, "", true, &f, err) != 0)
        return -1;
    refs = calloc(json_array_size(members) + json_array_size(moderators) + 1, sizeof *refs);
    if (refs == NULL)
        return ssp_fail_nomem(err);
    if (stored_ids(members, "members", SSP_GROUP_MEMBER, refs, &n, err) != 0 ||
        stored_ids(moderators, "moderators", SSP_GROUP_MODERATOR, refs, &n, err) != 0 ||
        sort_unique(refs, n, "members", err) != 0)
        goto done;
    *out = build(&f, refs, n);
    rc = *out != NULL ? 0 : ssp_fail_nomem(err);
done:
    free(refs);
    return rc;
}

const ssp_group_member *ssp_group_member_of(const ssp_group *group, const char *user_id,
                                            size_t user_id_len)
{
    size_t lo = 0, hi = group->n_members;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *id = group->members[mid].user_id;
        int cmp = strncmp(id, user_id, user_id_len);

        /* Equal over user_id_len bytes: a longer stored id sorts after. */
        if (cmp == 0 && id[user_id_len] != '\0')
            cmp = 1;
        if (cmp == 0)
            return &group->members[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool ssp_group_is_archived(const ssp_group *group, int64_t now_ms)
{
    return group->state != SSP_GROUP_ACTIVE ||
           (group->archive_at_ms > 0 && group->archive_at_ms <= now_ms);
}

bool ssp_group_supersedes(const ssp_group *stored, const ssp_group *incoming)
{
    if (stored == NULL || !incoming->has_version || !stored->has_version)
        return true;
    return incoming->version > stored->version;
}
