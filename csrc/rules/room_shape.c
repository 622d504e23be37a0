/*
 * The shape of new rooms: guest access closed, no federation and power
 * levels that match the policy for rooms created with the policy event.
 *
 * Synapse calls on_create_room for every room created on this server
 * (POST /createRoom, ModuleApi.create_room, server notices, the room a
 * shut-down room's users are moved to), server admins' too, before it
 * validates the request and before user_may_create_room; a room upgrade does
 * not call it (Synapse copies the old room's state instead). The request is
 * read here the way Synapse's handlers/room.py reads it, so that what this
 * file decides is what the room gets:
 *
 * - initial_state is iterated: a list gives its entries; {} and "" give
 *   none (and the private_chat preset then opens guest access); anything
 *   else makes Synapse fail before any event exists.
 * - Each entry becomes the state (type, state_key), a missing state_key
 *   meaning "": a later entry of the same key replaces an earlier one.
 * - An m.room.power_levels entry with a content other than null replaces
 *   the whole default power levels, and power_level_content_override is then
 *   ignored.
 *
 * The answer is a list of JSON Patch "add" operations, so that the adapter
 * applies it without knowing what it means and no value of the request
 * travels through the engine and back.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"
#include "error.h"
#include "rules/power_levels.h"
#include "rules/room_shape.h"

#define GUEST_ACCESS_TYPE "m.room.guest_access"
#define POWER_LEVELS_TYPE "m.room.power_levels"

ssp_room_kind ssp_room_kind_from_name(const char *kind, size_t len)
{
    static const struct {
        const char *name;
        ssp_room_kind kind;
    } kinds[] = {
        {"course", SSP_KIND_COURSE},
        {"team", SSP_KIND_TEAM},
        {"teachers", SSP_KIND_TEACHERS},
        {"announcement", SSP_KIND_ANNOUNCEMENT},
        {"class", SSP_KIND_CLASS},
    };

    for (size_t i = 0; kind != NULL && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strlen(kinds[i].name) == len && memcmp(kind, kinds[i].name, len) == 0)
            return kinds[i].kind;
    }
    return SSP_KIND_UNKNOWN;
}

/* Python's str.isspace() within ASCII, which int() strips. */
static bool ascii_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

bool ssp_level_from_json(const json_t *value, int64_t *level)
{
    const char *s, *end;
    bool negative = false, digit_before = false;
    uint64_t magnitude = 0, limit;

    if (json_is_integer(value)) {
        *level = (int64_t)json_integer_value(value);
        return true;
    }
    if (!json_is_string(value))
        return false;
    s = json_string_value(value);
    end = s + json_string_length(value);
    while (s < end && ascii_space(*s))
        s++;
    while (end > s && ascii_space(end[-1]))
        end--;
    if (s < end && (*s == '+' || *s == '-'))
        negative = *s++ == '-';
    if (s == end)
        return false;
    limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; s < end; s++) {
        if (*s == '_') {
            /* One underscore, only between two digits. */
            if (!digit_before || s + 1 == end || s[1] < '0' || s[1] > '9')
                return false;
            digit_before = false;
            continue;
        }
        if (*s < '0' || *s > '9')
            return false;
        if (magnitude > (limit - (uint64_t)(*s - '0')) / 10)
            return false;
        magnitude = magnitude * 10 + (uint64_t)(*s - '0');
        digit_before = true;
    }
    *level = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return true;
}

/* The policy content as ssp_power_levels_update reads it: its keys, kind
 * and two_way. Strings stay owned by `content`. */
static void policy_from_json(const json_t *content, ssp_room_policy *policy)
{
    const json_t *school = json_object_get(content, "school");
    const json_t *kind = json_object_get(content, "kind");

    memset(policy, 0, sizeof *policy);
    policy->n_keys = json_object_size(content);
    policy->empty = policy->n_keys == 0;
    if (json_is_string(school)) {
        policy->school = json_string_value(school);
        policy->school_len = json_string_length(school);
    }
    if (json_is_string(kind)) {
        policy->kind_name = json_string_value(kind);
        policy->kind_len = json_string_length(kind);
    }
    policy->kind = ssp_room_kind_from_name(policy->kind_name, policy->kind_len);
    policy->two_way = json_is_true(json_object_get(content, "two_way"));
}

/* The power levels as ssp_power_levels_update reads them: events_default
 * and the `events` map (its entries in *entries, which the caller frees).
 * A value that is not a level counts as absent, or as INT64_MIN in `events`
 * (never the 0 a type must be listed at). Returns -1 when out of memory. */
static int power_levels_from_json(const json_t *content, ssp_power_levels *pl,
                                  ssp_level_entry **entries)
{
    const json_t *events = json_object_get(content, "events");
    const char *key;
    json_t *value;
    size_t n = 0;

    memset(pl, 0, sizeof *pl);
    *entries = NULL;
    pl->state_default = 50;
    pl->full = true;
    if (!ssp_level_from_json(json_object_get(content, "events_default"), &pl->events_default))
        pl->events_default = 0;
    if (!ssp_level_from_json(json_object_get(content, "users_default"), &pl->users_default))
        pl->users_default = 0;
    if (!json_is_object(events) || json_object_size(events) == 0)
        return 0;
    *entries = calloc(json_object_size(events), sizeof **entries);
    if (*entries == NULL)
        return -1;
    json_object_foreach((json_t *)events, key, value) {
        ssp_level_entry *entry = &(*entries)[n++];

        entry->key = key;
        entry->key_len = json_object_iter_key_len(json_object_key_to_iter(key));
        if (!ssp_level_from_json(value, &entry->level))
            entry->level = INT64_MIN;
    }
    pl->events = *entries;
    pl->n_events = n;
    return 0;
}

json_t *ssp_power_levels_patch_json(const ssp_power_levels_patch *patch)
{
    json_t *object = json_object(), *events = NULL;

    if (object == NULL)
        return NULL;
    if (patch->set_events_default &&
        json_object_set_new(object, "events_default", json_integer(patch->events_default)) != 0)
        goto fail;
    if (patch->n_open_events > 0) {
        events = json_object();
        if (events == NULL || json_object_set(object, "events", events) != 0)
            goto fail;
        for (size_t i = 0; i < patch->n_open_events; i++) {
            if (json_object_set_new(events, patch->open_events[i], json_integer(0)) != 0)
                goto fail;
        }
        json_decref(events);
    }
    return object;
fail:
    json_decref(events);
    json_decref(object);
    return NULL;
}

/* ---- JSON pointers (RFC 6901) and "add" operations ---- */

/* base + "/" + token, with '~' and '/' escaped. Caller frees; NULL when
 * out of memory. */
static char *pointer(const char *base, const char *token, size_t token_len)
{
    size_t base_len = strlen(base), escapes = 0, at;
    char *path;

    for (size_t i = 0; i < token_len; i++)
        escapes += token[i] == '~' || token[i] == '/';
    path = malloc(base_len + 1 + token_len + escapes + 1);
    if (path == NULL)
        return NULL;
    memcpy(path, base, base_len);
    at = base_len;
    path[at++] = '/';
    for (size_t i = 0; i < token_len; i++) {
        if (token[i] == '~' || token[i] == '/') {
            path[at++] = '~';
            path[at++] = token[i] == '~' ? '0' : '1';
        } else {
            path[at++] = token[i];
        }
    }
    path[at] = '\0';
    return path;
}

/* Appends {"op": "add", "path": base/token, "value": value} to ops. Steals
 * `value` (also on failure). Returns -1 when out of memory. */
static int add(json_t *ops, const char *base, const char *token, json_t *value)
{
    char *path = pointer(base, token, strlen(token));
    json_t *op = NULL;
    int rc = -1;

    if (path == NULL || value == NULL)
        goto done;
    op = json_pack("{s:s, s:s, s:O}", "op", "add", "path", path, "value", value);
    if (op != NULL && json_array_append_new(ops, op) == 0)
        rc = 0;
done:
    json_decref(value);
    free(path);
    return rc;
}

/* ---- reading initial_state as Synapse does ---- */

/* Whether an initial_state entry is the state (type, ""). */
static bool entry_is(const json_t *entry, const char *type)
{
    const json_t *entry_type = json_object_get(entry, "type");
    const json_t *state_key = json_object_get(entry, "state_key");

    return json_is_string(entry_type) && strlen(type) == json_string_length(entry_type) &&
           memcmp(json_string_value(entry_type), type, strlen(type)) == 0 &&
           (state_key == NULL || (json_is_string(state_key) && json_string_length(state_key) == 0));
}

/* The entry that sets (type, "") in the room: the last one. NULL when none
 * does; *index receives its position. */
static const json_t *last_entry(const json_t *initial_state, const char *type, size_t *index)
{
    const json_t *found = NULL;

    for (size_t i = 0; i < json_array_size(initial_state); i++) {
        const json_t *entry = json_array_get(initial_state, i);

        if (json_is_object(entry) && entry_is(entry, type)) {
            found = entry;
            *index = i;
        }
    }
    return found;
}

/* initial_state as a list of entries: an array, or nothing when Synapse
 * reads it as no state at all (missing, null, {}, ""). *none is false when
 * it is something else, which Synapse refuses itself. */
static const json_t *state_entries(const json_t *request, bool *none)
{
    const json_t *initial_state = json_object_get(request, "initial_state");

    *none = initial_state == NULL || json_is_null(initial_state) ||
            (json_is_object(initial_state) && json_object_size(initial_state) == 0) ||
            (json_is_string(initial_state) && json_string_length(initial_state) == 0);
    return json_is_array(initial_state) ? initial_state : NULL;
}

static json_t *guest_access_forbidden(void)
{
    return json_pack("{s:s, s:s, s:{s:s}}", "type", GUEST_ACCESS_TYPE, "state_key", "", "content",
                     "guest_access", "forbidden");
}

static int close_guest_access(json_t *ops, const json_t *request)
{
    bool none;
    const json_t *entries = state_entries(request, &none);
    const json_t *guest;
    size_t index;

    if (none)
        return add(ops, "", "initial_state", json_pack("[o]", guest_access_forbidden()));
    if (entries == NULL)
        return 0;
    guest = last_entry(entries, GUEST_ACCESS_TYPE, &index);
    if (guest != NULL && json_is_object(json_object_get(guest, "content")))
        return 0; /* the request chose; user_may_create_room refuses can_join */
    return add(ops, "/initial_state", "-", guest_access_forbidden());
}

static int close_federation(json_t *ops, const json_t *request)
{
    const json_t *creation = json_object_get(request, "creation_content");

    if (!json_is_object(creation))
        return add(ops, "", "creation_content", json_pack("{s:b}", "m.federate", 0));
    if (json_is_false(json_object_get(creation, "m.federate")))
        return 0;
    return add(ops, "/creation_content", "m.federate", json_false());
}

/* The patch applied to the power levels found at parent/token (JSON
 * pointers), whose current value is `current` (any JSON value; NULL when
 * missing). A value that is not an object is replaced as a whole, an
 * `events` that is not an object too. */
static int patch_power_levels(const ssp_engine *engine, json_t *ops, const ssp_room_policy *policy,
                              const char *parent, const char *token, const json_t *current)
{
    ssp_power_levels pl;
    ssp_level_entry *entries = NULL;
    ssp_power_levels_patch patch, only_events;
    char *base = NULL, *events_base = NULL;
    json_t *events = NULL;
    int rc = -1;

    if (power_levels_from_json(json_is_object(current) ? current : NULL, &pl, &entries) != 0)
        return -1;
    if (!ssp_power_levels_update(engine, policy, &pl, &patch)) {
        rc = 0;
        goto done;
    }
    if (!json_is_object(current)) {
        rc = add(ops, parent, token, ssp_power_levels_patch_json(&patch));
        goto done;
    }
    base = pointer(parent, token, strlen(token));
    if (base == NULL)
        goto done;
    if (patch.set_events_default &&
        add(ops, base, "events_default", json_integer(patch.events_default)) != 0)
        goto done;
    if (patch.n_open_events > 0 && !json_is_object(json_object_get(current, "events"))) {
        only_events = patch;
        only_events.set_events_default = false;
        events = ssp_power_levels_patch_json(&only_events);
        if (events == NULL ||
            add(ops, base, "events", json_incref(json_object_get(events, "events"))) != 0)
            goto done;
    } else if (patch.n_open_events > 0) {
        events_base = pointer(base, "events", strlen("events"));
        if (events_base == NULL)
            goto done;
        for (size_t i = 0; i < patch.n_open_events; i++) {
            if (add(ops, events_base, patch.open_events[i], json_integer(0)) != 0)
                goto done;
        }
    }
    rc = 0;
done:
    json_decref(events);
    free(events_base);
    free(base);
    free(entries);
    return rc;
}

/* The power levels follow the policy event the room is created with, where
 * Synapse takes them from. */
static int align_power_levels(const ssp_engine *engine, json_t *ops, const json_t *request,
                              const json_t *entries, const json_t *policy_content)
{
    const json_t *pl_entry, *content;
    ssp_room_policy policy;
    size_t index = 0;
    char parent[48];

    if (!json_is_object(policy_content))
        return 0;
    policy_from_json(policy_content, &policy);
    pl_entry = last_entry(entries, POWER_LEVELS_TYPE, &index);
    content = json_object_get(pl_entry, "content");
    if (pl_entry == NULL || content == NULL || json_is_null(content))
        return patch_power_levels(engine, ops, &policy, "", "power_level_content_override",
                                  json_object_get(request, "power_level_content_override"));
    /* Any other content that is not an object makes Synapse fail: left alone. */
    if (!json_is_object(content))
        return 0;
    snprintf(parent, sizeof parent, "/initial_state/%zu", index);
    return patch_power_levels(engine, ops, &policy, parent, "content", content);
}

int ssp_room_shape(const ssp_engine *engine, const json_t *request, json_t **changes,
                   ssp_error *err)
{
    json_t *ops = json_array();
    bool none;
    const json_t *entries = state_entries(request, &none);
    const json_t *policy = NULL;
    size_t index;

    *changes = NULL;
    if (ops == NULL)
        return ssp_fail_nomem(err);
    if (!json_is_object(request)) {
        *changes = ops;
        return 0;
    }
    if (close_guest_access(ops, request) != 0)
        goto nomem;
    policy = last_entry(entries, engine->config.policy_event_type, &index);
    if (policy != NULL) {
        const json_t *content = json_object_get(policy, "content");

        if (close_federation(ops, request) != 0 ||
            align_power_levels(engine, ops, request, entries, content) != 0)
            goto nomem;
    }
    *changes = ops;
    return 0;
nomem:
    json_decref(ops);
    return ssp_fail_nomem(err);
}
