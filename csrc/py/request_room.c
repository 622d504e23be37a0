/*
 * The room's facts for the engine's request: the policy event's content,
 * the power levels and the create event's content out of Synapse's
 * Mappings, decide()'s room tuple, and the rooms two users share.
 *
 * Called with the GIL. room_details_load() also runs inside ssp_decide,
 * with the roster's read lock held (see room_facts_read). Strings are
 * borrowed from the Python objects; `borrowed` keeps those alive.
 */
#include "py/request_room.h"

#include <string.h>

#include "py/mapping.h"
#include "rules/room_shape.h"

/* content["group"]: NULL when absent; "" (group_len 0) when it is there
 * but no string the rules can read, which names no group the index holds
 * (the room fails closed, rules/groups.h). */
static int group_field(PyObject *content, ssp_room_policy *policy, borrowed *b)
{
    PyObject *value = item(content, K_GROUP);
    Py_ssize_t size = 0;
    int rc = 0;

    policy->group = NULL;
    policy->group_len = 0;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (is_str(value)) {
        policy->group = PyUnicode_AsUTF8AndSize(value, &size);
        if (policy->group == NULL && !not_utf8())
            rc = -1;
        else if (policy->group != NULL && keep(b, value) != 0)
            rc = -1;
    }
    if (rc == 0 && policy->group == NULL) {
        policy->group = "";
        size = 0;
    }
    policy->group_len = (size_t)size;
    Py_DECREF(value);
    return rc;
}

int policy_from_mapping(PyObject *content, ssp_room_policy *policy, borrowed *b)
{
    PyObject *two_way = NULL;
    Py_ssize_t size;

    memset(policy, 0, sizeof *policy);
    if (!is_json_object(content)) {
        PyErr_SetString(PyExc_TypeError, "policy content must be a Mapping or None");
        return -1;
    }
    size = PyObject_Length(content);
    if (size < 0)
        return -1;
    policy->empty = size == 0;
    policy->n_keys = (size_t)size;
    if (str_field(content, K_SCHOOL, b, &policy->school, &policy->school_len) != 0 ||
        str_field(content, K_KIND, b, &policy->kind_name, &policy->kind_len) != 0 ||
        group_field(content, policy, b) != 0)
        return -1;
    policy->kind = ssp_room_kind_from_name(policy->kind_name, policy->kind_len);
    two_way = item(content, K_TWO_WAY);
    if (two_way == NULL && PyErr_Occurred())
        return -1;
    policy->two_way = two_way == Py_True;
    Py_XDECREF(two_way);
    return 0;
}

/* ---- power levels ---- */

/* A power level: an int, or (in old room versions) a str holding one.
 * Returns 1 and sets *out when the value is a level, 0 when it is not. */
static int level_value(PyObject *value, int64_t *out)
{
    PyObject *number = NULL;
    int overflow = 0;
    long long level;

    if (PyLong_Check(value) && !PyBool_Check(value)) {
        number = Py_NewRef(value);
    } else if (PyUnicode_Check(value)) {
        number = PyNumber_Long(value);
        if (number == NULL) {
            PyErr_Clear();
            return 0;
        }
    } else {
        return 0;
    }
    level = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (overflow != 0 || (level == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = level;
    return 1;
}

static int level_field(PyObject *mapping, mapping_key key, int64_t fallback, int64_t *out)
{
    PyObject *value = item(mapping, key);

    *out = fallback;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!level_value(value, out))
        *out = fallback;
    Py_DECREF(value);
    return 0;
}

/* mapping[key] as level entries in an array b owns. Values that are not
 * levels are kept as INT64_MIN, so that changing them still counts as a
 * change. */
static int level_map(PyObject *mapping, mapping_key key, borrowed *b, const ssp_level_entry **out,
                     size_t *n_out)
{
    PyObject *map = item(mapping, key), *items = NULL;
    ssp_level_entry *entries = NULL;
    Py_ssize_t n;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (map == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!is_json_object(map)) {
        Py_DECREF(map);
        return 0;
    }
    items = PyMapping_Items(map);
    if (items == NULL)
        goto done;
    n = PyList_Size(items);
    entries = borrowed_array(b, n, sizeof *entries);
    if (entries == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GetItem(items, i); /* borrowed, as are k and the level */
        PyObject *k = PyTuple_GetItem(pair, 0);
        Py_ssize_t len;

        if (!PyUnicode_Check(k))
            continue;
        entries[*n_out].key = PyUnicode_AsUTF8AndSize(k, &len);
        if (entries[*n_out].key == NULL)
            goto done;
        entries[*n_out].key_len = (size_t)len;
        if (!level_value(PyTuple_GetItem(pair, 1), &entries[*n_out].level))
            entries[*n_out].level = INT64_MIN;
        (*n_out)++;
    }
    /* The keys borrow from `items`, which b keeps. */
    if (keep(b, items) != 0)
        goto done;
    *out = entries;
    rc = 0;
done:
    Py_XDECREF(items);
    Py_DECREF(map);
    return rc;
}

int power_levels_of(PyObject *content, PyObject *actor, bool full, ssp_power_levels *pl,
                    borrowed *b)
{
    PyObject *users = NULL, *own = NULL;

    memset(pl, 0, sizeof *pl);
    if (!is_json_object(content)) {
        PyErr_SetString(PyExc_TypeError, "power levels must be a Mapping or None");
        return -1;
    }
    /* The rules read events_default only from levels extracted in full
     * (a power-levels or policy event), and state_default never: a message
     * pays for the lookups it needs. */
    pl->events_default = 0;
    pl->state_default = 50;
    if (level_field(content, K_USERS_DEFAULT, 0, &pl->users_default) != 0 ||
        (full && (level_field(content, K_EVENTS_DEFAULT, 0, &pl->events_default) != 0 ||
                  level_field(content, K_STATE_DEFAULT, 50, &pl->state_default) != 0)))
        return -1;
    users = item(content, K_USERS);
    if (users == NULL && PyErr_Occurred())
        return -1;
    if (users != NULL && is_json_object(users)) {
        own = lookup(users, actor);
        if (own == NULL && PyErr_Occurred()) {
            Py_DECREF(users);
            return -1;
        }
        if (own != NULL) {
            pl->actor_listed = level_value(own, &pl->actor_level) == 1;
            Py_DECREF(own);
        }
    }
    Py_XDECREF(users);
    if (!full)
        return 0;
    pl->full = true;
    if (level_map(content, K_USERS, b, &pl->users, &pl->n_users) != 0 ||
        level_map(content, K_EVENTS, b, &pl->events, &pl->n_events) != 0)
        return -1;
    return 0;
}

int power_levels_from_mapping(PyObject *content, const char *actor, bool full,
                              ssp_power_levels *pl, borrowed *b)
{
    PyObject *key = PyUnicode_FromString(actor);
    int rc;

    if (key == NULL)
        return -1;
    rc = power_levels_of(content, key, full, pl, b);
    Py_DECREF(key);
    return rc;
}

/* ---- the room tuple ---- */

/* The room's create event's content.room_version and
 * content.additional_creators (a Mapping: checked by the caller). */
int room_create_from_mapping(PyObject *content, ssp_room_create *create, borrowed *b)
{
    PyObject *creators = NULL, *seq = NULL;
    ssp_text *texts;
    Py_ssize_t n;

    if (str_field(content, K_ROOM_VERSION, b, &create->room_version, &create->room_version_len) != 0)
        return -1;
    creators = item(content, K_ADDITIONAL_CREATORS);
    if (creators == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyUnicode_Check(creators) || !PySequence_Check(creators)) {
        Py_DECREF(creators);
        return 0;
    }
    seq = PySequence_Fast(creators, "additional_creators");
    Py_DECREF(creators);
    if (seq == NULL || keep(b, seq) != 0) {
        Py_XDECREF(seq);
        return -1;
    }
    Py_DECREF(seq); /* b holds it */
    n = fast_size(seq);
    texts = borrowed_array(b, n, sizeof *texts);
    if (texts == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *creator = fast_item(seq, i); /* borrowed */
        Py_ssize_t len;

        if (!PyUnicode_Check(creator))
            continue;
        texts[create->n_additional_creators].text = PyUnicode_AsUTF8AndSize(creator, &len);
        if (texts[create->n_additional_creators].text == NULL)
            return -1;
        texts[create->n_additional_creators++].len = (size_t)len;
    }
    create->additional_creators = texts;
    return 0;
}

/* The room's power levels and create content, read when a rule first needs
 * them (ssp_room_details): most messages are in two-way or unmanaged rooms,
 * whose rules read neither. The objects are borrowed from decide()'s
 * arguments, which live until it returns. */
static int room_details_load(ssp_room_details *details)
{
    room_facts *facts = (room_facts *)details;

    if (facts->power_levels != Py_None &&
        power_levels_of(facts->power_levels, facts->actor, facts->full_levels, &facts->levels,
                        facts->b) != 0)
        return -1;
    if (facts->create_content != Py_None &&
        room_create_from_mapping(facts->create_content, &facts->create, facts->b) != 0)
        return -1;
    return 0;
}

int room_facts_read(room_facts *facts, PyObject *room, PyObject *actor, bool full_levels,
                    borrowed *b, ssp_request *req)
{
    PyObject *policy = PyTuple_GetItem(room, ROOM_POLICY); /* borrowed, as are the two below */
    PyObject *power_levels = PyTuple_GetItem(room, ROOM_POWER_LEVELS);
    PyObject *create_content = PyTuple_GetItem(room, ROOM_CREATE);

    memset(&facts->create, 0, sizeof facts->create);
    memset(&facts->levels, 0, sizeof facts->levels);
    if (optional_str(PyTuple_GetItem(room, ROOM_CREATOR), "the create event's sender",
                     &facts->create.sender) != 0)
        return -1;
    if (create_content != Py_None && !is_json_object(create_content)) {
        PyErr_SetString(PyExc_TypeError, "the create event's content must be a Mapping or None");
        return -1;
    }
    if (power_levels != Py_None && !is_json_object(power_levels)) {
        PyErr_SetString(PyExc_TypeError, "power levels must be a Mapping or None");
        return -1;
    }
    facts->details.load = room_details_load;
    facts->details.loaded = false;
    facts->details.failed = false;
    facts->actor = actor;
    facts->power_levels = power_levels;
    facts->create_content = create_content;
    facts->full_levels = full_levels;
    facts->b = b;
    /* Read on first use only from dicts, whose reading runs no Python
     * code (Synapse's event contents are dicts throughout, or frozen
     * Mappings throughout, which are read below, before deciding): the
     * engine calls load() with the roster's read lock held. A Mapping
     * nested in a dict would run its own code under that lock; that
     * cannot deadlock another thread, because every roster write here
     * releases the GIL before it waits for the write lock. */
    if ((power_levels == Py_None || PyDict_CheckExact(power_levels)) &&
        (create_content == Py_None || PyDict_CheckExact(create_content)))
        req->room_details = &facts->details;
    req->room_create = &facts->create;
    if (policy == Py_None) {
        req->room_managed = SSP_FACT_NO;
    } else {
        if (policy_from_mapping(policy, &facts->policy, b) != 0 ||
            optional_str(PyTuple_GetItem(room, ROOM_POLICY_SENDER), "policy_sender",
                         &facts->policy.sender) != 0)
            return -1;
        facts->policy.creator = facts->create.sender;
        if (PyTuple_Size(room) == N_ROOM_ITEMS &&
            optional_str(PyTuple_GetItem(room, ROOM_POLICY_EVENT_ID), "policy_event_id",
                         &facts->policy.event_id) != 0)
            return -1;
        req->room_managed = SSP_FACT_YES;
        req->room = &facts->policy;
    }
    if (power_levels != Py_None)
        req->room_power_levels = &facts->levels;
    if (req->room_details == NULL && room_details_load(&facts->details) != 0)
        return -1;
    return 0;
}

/* ---- shared rooms ---- */

int shared_rooms_from_sequence(PyObject *rooms, ssp_room_policy **out, size_t *n_out,
                               borrowed *b)
{
    PyObject *seq = PySequence_Fast(rooms, "shared_rooms must be a sequence or None");
    ssp_room_policy *policies;
    Py_ssize_t n;

    *out = NULL;
    *n_out = 0;
    if (seq == NULL)
        return -1;
    if (keep(b, seq) != 0) {
        Py_DECREF(seq);
        return -1;
    }
    Py_DECREF(seq); /* b holds it */
    n = fast_size(seq);
    policies = borrowed_array(b, n, sizeof *policies);
    if (policies == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *room = fast_item(seq, i); /* borrowed */
        const char *sender, *creator;

        if (!PyTuple_Check(room) || PyTuple_Size(room) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "shared_rooms items must be (policy, policy_sender, creator) tuples");
            return -1;
        }
        if (optional_str(PyTuple_GetItem(room, 1), "policy_sender", &sender) != 0 ||
            optional_str(PyTuple_GetItem(room, 2), "creator", &creator) != 0)
            return -1;
        if (PyTuple_GetItem(room, 0) == Py_None)
            policies[i].empty = true;
        else if (policy_from_mapping(PyTuple_GetItem(room, 0), &policies[i], b) != 0)
            return -1;
        policies[i].sender = sender;
        policies[i].creator = creator;
    }
    *out = policies;
    *n_out = (size_t)n;
    return 0;
}
