/*
 * Reading a Synapse event and the room's state for Engine.after_event
 * (request_seen.h), one step at a time as the engine asks: whether it is a
 * state event and who sent it (a local user's message needs nothing more),
 * then its type, then its content and metadata, then the room's state and
 * members the adapter looked up. Until the type is asked for nothing is
 * allocated here: the event's is_state() answers a bool, and the only new
 * object is the str Synapse's Rust event makes for its sender.
 *
 * Called with the GIL. Ownership: every PyObject* is NULL-initialised and
 * released at the function's single exit, or held by `borrowed`.
 */
#include "py/request_seen.h"

#include <string.h>

#include "py/convert.h"
#include "py/mapping.h"
#include "py/request_room.h"

/* ---- names made once ---- */

enum {
    A_IS_STATE,
    A_SENDER,
    A_TYPE,
    A_GET_STATE_KEY,
    A_EVENT_ID,
    A_ROOM_ID,
    A_CONTENT,
    A_INTERNAL_METADATA,
    A_IS_OUTLIER,
    A_STREAM_ORDERING,
    A_MEMBERSHIP,
    A_REPLACEMENT_ROOM,
    N_ATTRS
};

static const char *const ATTR_NAMES[N_ATTRS] = {
    "is_state", "sender", "type", "get_state_key", "event_id", "room_id", "content",
    "internal_metadata", "is_outlier", "stream_ordering", "membership", "replacement_room",
};

/* Interned once per process, as mapping.c's keys (one interpreter). */
static PyObject *attrs[N_ATTRS];

int seen_names_init(void)
{
    for (int i = 0; i < N_ATTRS; i++) {
        if (attrs[i] == NULL && (attrs[i] = PyUnicode_InternFromString(ATTR_NAMES[i])) == NULL)
            return -1;
    }
    return 0;
}

/* Holds obj in b and answers its UTF-8 text; NULL (no exception) when it is
 * no str or holds a lone surrogate. Returns -1 with an exception set. */
static int text_of(PyObject *obj, borrowed *b, const char **out, size_t *len)
{
    Py_ssize_t size = 0;

    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (obj == NULL || !is_str(obj))
        return 0;
    if (keep(b, obj) != 0)
        return -1;
    *out = PyUnicode_AsUTF8AndSize(obj, &size);
    if (*out == NULL)
        return not_utf8() ? 0 : -1;
    if (len != NULL)
        *len = (size_t)size;
    return 0;
}

/* obj.name as a new reference; NULL with an exception set. */
static PyObject *attr(PyObject *obj, int name)
{
    return PyObject_GetAttr(obj, attrs[name]);
}

/* obj.name() as a new reference. PyObject_CallMethodObjArgs calls a method
 * descriptor without making a bound method. */
static PyObject *call(PyObject *obj, int name)
{
    return PyObject_CallMethodObjArgs(obj, attrs[name], NULL);
}

/* Reads attribute `name` of obj as str, held by b; *held (when given) is
 * that str, or NULL when the attribute is no str. */
static int str_attr(PyObject *obj, int name, borrowed *b, PyObject **held, const char **out)
{
    PyObject *value = attr(obj, name);
    int rc;

    if (value == NULL)
        return -1;
    rc = text_of(value, b, out, NULL);
    if (held != NULL)
        *held = *out != NULL ? value : NULL; /* b holds it */
    Py_DECREF(value);
    return rc;
}

static int read_value(PyObject *value, borrowed *b, ssp_value *out)
{
    memset(out, 0, sizeof *out);
    if (value == NULL) {
        out->kind = SSP_VALUE_ABSENT;
        return 0;
    }
    if (value == Py_None) {
        out->kind = SSP_VALUE_NULL;
        return 0;
    }
    if (PyBool_Check(value)) {
        out->kind = SSP_VALUE_BOOL;
        return 0;
    }
    if (is_str(value)) {
        if (text_of(value, b, &out->text, &out->len) != 0)
            return -1;
        out->kind = out->text != NULL ? SSP_VALUE_STRING : SSP_VALUE_OTHER;
        return 0;
    }
    out->kind = SSP_VALUE_OTHER;
    return 0;
}

/* Step 1: whether it is a state event, and its sender. */
int read_sender(seen *s)
{
    PyObject *is_state = call(s->event, A_IS_STATE);

    if (is_state == NULL)
        return -1;
    s->ev.is_state = is_state == Py_True;
    Py_DECREF(is_state);
    return str_attr(s->event, A_SENDER, s->b, &s->sender, &s->ev.sender);
}

/* NEED_TYPE: the type and the state key. */
int read_type(seen *s)
{
    PyObject *state_key = NULL;
    int rc = -1;

    s->ev.type_read = true;
    if (str_attr(s->event, A_TYPE, s->b, NULL, &s->ev.type) != 0)
        return -1;
    state_key = call(s->event, A_GET_STATE_KEY);
    if (state_key == NULL || text_of(state_key, s->b, &s->ev.state_key, NULL) != 0)
        goto done;
    s->state_key = s->ev.state_key != NULL ? state_key : NULL;
    rc = 0;
done:
    Py_XDECREF(state_key);
    return rc;
}

/* A member event's content: its keys and values, as many as fit. */
static int read_member_content(seen *s, PyObject *content)
{
    PyObject *iterator = NULL, *key = NULL, *value = NULL;
    int rc = -1;

    iterator = PyObject_GetIter(content);
    if (iterator == NULL)
        goto done;
    while ((key = PyIter_Next(iterator)) != NULL) {
        ssp_content_key *entry = &s->keys[s->ev.n_keys];

        if (s->ev.n_keys == MEMBER_KEYS) {
            s->ev.more_keys = true;
            break;
        }
        value = lookup(content, key);
        if (value == NULL && PyErr_Occurred())
            goto done;
        if (text_of(key, s->b, &entry->key, &entry->key_len) != 0 ||
            read_value(value, s->b, &entry->value) != 0)
            goto done;
        if (entry->key == NULL)
            s->ev.more_keys = true; /* a key that is no text the rules know */
        else
            s->ev.n_keys++;
        Py_CLEAR(key);
        Py_CLEAR(value);
    }
    rc = PyErr_Occurred() ? -1 : 0;
done:
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(iterator);
    return rc;
}

/* NEED_EVENT: the id, the room, the metadata and (member events,
 * tombstones) the content. */
int read_event(seen *s)
{
    PyObject *metadata = NULL, *outlier = NULL, *order = NULL, *content = NULL, *value = NULL;
    int rc = -1;

    s->ev.event_read = true;
    if (str_attr(s->event, A_EVENT_ID, s->b, &s->event_id, &s->ev.event_id) != 0 ||
        str_attr(s->event, A_ROOM_ID, s->b, &s->room_id, &s->ev.room_id) != 0)
        goto done;
    metadata = attr(s->event, A_INTERNAL_METADATA);
    if (metadata == NULL || (outlier = call(metadata, A_IS_OUTLIER)) == NULL ||
        (order = attr(metadata, A_STREAM_ORDERING)) == NULL)
        goto done;
    s->ev.outlier = outlier == Py_True;
    if (PyLong_Check(order)) {
        s->ev.stream_ordering = PyLong_AsLongLong(order);
        if (s->ev.stream_ordering == -1 && PyErr_Occurred())
            goto done;
    }
    if (s->ev.state_key == NULL || s->ev.type == NULL) {
        rc = 0;
        goto done;
    }
    if (strcmp(s->ev.type, "m.room.member") == 0 || strcmp(s->ev.type, "m.room.tombstone") == 0) {
        content = attr(s->event, A_CONTENT);
        if (content == NULL)
            goto done;
        if (!is_json_object(content)) {
            rc = 0; /* no event has such content */
            goto done;
        }
        if (keep(s->b, content) != 0)
            goto done;
        s->ev.keys = s->keys;
        if (strcmp(s->ev.type, "m.room.member") == 0) {
            value = lookup(content, attrs[A_MEMBERSHIP]);
            if ((value == NULL && PyErr_Occurred()) ||
                read_value(value, s->b, &s->ev.membership) != 0 ||
                read_member_content(s, content) != 0)
                goto done;
        } else {
            value = lookup(content, attrs[A_REPLACEMENT_ROOM]);
            if (value == NULL && PyErr_Occurred())
                goto done;
            if (read_value(value, s->b, &s->ev.replacement_room) != 0)
                goto done;
            s->replacement_room = value != NULL && s->ev.replacement_room.kind == SSP_VALUE_STRING
                                      ? value
                                      : NULL;
        }
    }
    rc = 0;
done:
    Py_XDECREF(value);
    Py_XDECREF(content);
    Py_XDECREF(order);
    Py_XDECREF(outlier);
    Py_XDECREF(metadata);
    return rc;
}

/* ---- NEED_ROOM: the room's current state ---- */

/* state[(type, state_key)] as a new reference, or NULL (no exception) when
 * the room has no such state. */
static PyObject *state_event(seen *s, const char *type, PyObject *state_key)
{
    PyObject *key = NULL, *event = NULL;

    key = state_key != NULL ? Py_BuildValue("(sO)", type, state_key) : Py_BuildValue("(ss)", type, "");
    if (key == NULL)
        return NULL;
    event = lookup(s->state, key);
    Py_DECREF(key);
    return event;
}

/* The event's content (held by b) and its sender and id; *content NULL when
 * it is no Mapping. */
static int event_parts(seen *s, PyObject *event, PyObject **content, const char **sender,
                       const char **event_id)
{
    PyObject *value = attr(event, A_CONTENT);

    *content = NULL;
    if (value == NULL || keep(s->b, value) != 0) {
        Py_XDECREF(value);
        return -1;
    }
    Py_DECREF(value); /* b holds it */
    if (is_json_object(value))
        *content = value;
    if (str_attr(event, A_SENDER, s->b, NULL, sender) != 0)
        return -1;
    return event_id == NULL ? 0 : str_attr(event, A_EVENT_ID, s->b, NULL, event_id);
}

/* The join rules, history visibility or guest access of the room: whether
 * its value opens the room (open_key's value differs from, or equals,
 * `value`). */
static int door_state(seen *s, const char *type, const char *key, const char *value, bool opens_if_differs,
                      ssp_state_seen *out)
{
    PyObject *event = state_event(s, type, NULL), *content = NULL;
    bool matches = false;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (event == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (event_parts(s, event, &content, &out->sender, &out->event_id) != 0)
        goto done;
    if (opens_if_differs) {
        if (str_differs(content != NULL ? content : Py_None, key, value, &matches) != 0)
            goto done;
    } else if (content != NULL && str_equals(content, key, value, &matches) != 0) {
        goto done;
    }
    out->open = matches;
    rc = 0;
done:
    Py_DECREF(event);
    return rc;
}

int read_room(seen *s)
{
    PyObject *event = NULL, *content = NULL;
    const char *id = NULL;
    int rc = -1;

    s->ev.room_read = true;
    event = state_event(s, "m.room.create", NULL);
    if (event == NULL && PyErr_Occurred())
        goto done;
    if (event != NULL) {
        memset(&s->create, 0, sizeof s->create);
        if (event_parts(s, event, &content, &s->create.sender, NULL) != 0 ||
            (content != NULL && room_create_from_mapping(content, &s->create, s->b) != 0))
            goto done;
        s->ev.create = &s->create;
        Py_CLEAR(event);
    }
    event = state_event(s, s->policy_type, NULL);
    if (event == NULL && PyErr_Occurred())
        goto done;
    if (event != NULL) {
        if (event_parts(s, event, &content, &s->policy.sender, &s->policy.event_id) != 0)
            goto done;
        if (content != NULL) {
            const char *sender = s->policy.sender, *event_id = s->policy.event_id;

            if (policy_from_mapping(content, &s->policy, s->b) != 0)
                goto done;
            s->policy.sender = sender;
            s->policy.event_id = event_id;
            s->policy.creator = s->ev.create != NULL ? s->create.sender : NULL;
            s->policy_content = content;
            s->ev.policy = &s->policy;
        }
        Py_CLEAR(event);
    }
    event = state_event(s, "m.room.power_levels", NULL);
    if (event == NULL && PyErr_Occurred())
        goto done;
    if (event != NULL) {
        if (event_parts(s, event, &content, &id, NULL) != 0 ||
            (content != NULL && power_levels_of(content, s->sender, false, &s->levels, s->b) != 0))
            goto done;
        if (content != NULL)
            s->ev.power_levels = &s->levels;
        Py_CLEAR(event);
    }
    if (s->state_key != NULL && s->ev.event_id != NULL && strcmp(s->ev.type, "m.room.member") == 0) {
        event = state_event(s, "m.room.member", s->state_key);
        if (event == NULL && PyErr_Occurred())
            goto done;
        if (event != NULL) {
            if (str_attr(event, A_EVENT_ID, s->b, NULL, &id) != 0)
                goto done;
            s->ev.is_current = id != NULL && strcmp(id, s->ev.event_id) == 0;
            Py_CLEAR(event);
        }
    }
    if (door_state(s, "m.room.join_rules", "join_rule", "invite", true, &s->ev.join_rules) != 0 ||
        door_state(s, "m.room.history_visibility", "history_visibility", "world_readable", false,
                   &s->ev.history) != 0 ||
        door_state(s, "m.room.guest_access", "guest_access", "can_join", false,
                   &s->ev.guest_access) != 0)
        goto done;
    rc = 0;
done:
    Py_XDECREF(event);
    return rc;
}

/* ---- NEED_MEMBERS: the joined and invited members ---- */

static int read_member(seen *s, PyObject *key, PyObject *event, ssp_member_seen *out, bool *counted)
{
    PyObject *type = NULL, *content = NULL, *membership = NULL, *metadata = NULL, *order = NULL;
    bool is_member = false, joined = false, invited = false;
    int rc = -1;

    *counted = false;
    if (!PyTuple_Check(key) || PyTuple_Size(key) != 2)
        return 0;
    type = PyTuple_GetItem(key, 0); /* borrowed */
    if (type == NULL || !is_str(type))
        return type == NULL ? -1 : 0;
    is_member = PyUnicode_CompareWithASCIIString(type, "m.room.member") == 0;
    if (!is_member)
        return 0;
    content = attr(event, A_CONTENT);
    if (content == NULL)
        goto done;
    if (is_json_object(content)) {
        membership = lookup(content, attrs[A_MEMBERSHIP]);
        if (membership == NULL && PyErr_Occurred())
            goto done;
        joined = membership != NULL && is_str(membership) &&
                 PyUnicode_CompareWithASCIIString(membership, "join") == 0;
        invited = membership != NULL && is_str(membership) &&
                  PyUnicode_CompareWithASCIIString(membership, "invite") == 0;
    }
    if (!joined && !invited) {
        rc = 0;
        goto done;
    }
    if (str_attr(event, A_EVENT_ID, s->b, NULL, &out->event_id) != 0)
        goto done;
    metadata = attr(event, A_INTERNAL_METADATA);
    if (metadata == NULL || (order = attr(metadata, A_STREAM_ORDERING)) == NULL)
        goto done;
    out->stream_ordering = PyLong_Check(order) ? PyLong_AsLongLong(order) : 0;
    if (out->stream_ordering == -1 && PyErr_Occurred())
        goto done;
    out->joined = joined;
    *counted = true;
    rc = 0;
done:
    Py_XDECREF(order);
    Py_XDECREF(metadata);
    Py_XDECREF(membership);
    Py_XDECREF(content);
    return rc;
}

int read_members(seen *s)
{
    PyObject *items = NULL;
    ssp_member_seen *members;
    Py_ssize_t n;
    int rc = -1;

    s->ev.members_read = true;
    items = PyMapping_Items(s->members);
    if (items == NULL)
        return -1;
    n = PyList_Size(items);
    members = borrowed_array(s->b, n, sizeof *members);
    if (members == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GetItem(items, i); /* borrowed */
        bool counted;

        if (!PyTuple_Check(pair) || PyTuple_Size(pair) != 2)
            continue;
        if (read_member(s, PyTuple_GetItem(pair, 0), PyTuple_GetItem(pair, 1),
                        &members[s->ev.n_members], &counted) != 0)
            goto done;
        if (counted)
            s->ev.n_members++;
    }
    s->ev.members = members;
    rc = 0;
done:
    Py_XDECREF(items);
    return rc;
}

/* ---- the facts the adapter looked up ---- */

int read_profile(seen *s, PyObject *profile)
{
    if (!PyTuple_Check(profile) || PyTuple_Size(profile) != 2) {
        PyErr_SetString(PyExc_TypeError, "profile must be None or (displayname, avatar_url)");
        return -1;
    }
    s->ev.profile_known = true;
    if (read_value(PyTuple_GetItem(profile, 0), s->b, &s->ev.profile_displayname) != 0 ||
        read_value(PyTuple_GetItem(profile, 1), s->b, &s->ev.profile_avatar_url) != 0)
        return -1;
    return 0;
}
