/*
 * Engine.after_event: what the module takes back after the fact, decided by
 * the engine (rules/after_the_fact.h), for each change of a room's state.
 *
 * It reads Synapse's event object only as far as the engine asks: whether
 * it is a state event and who sent it (a local user's message needs
 * nothing more), then its type, then its content and metadata. Until the
 * engine asks for the type, nothing is allocated here: the event's
 * is_state() answers a bool, and the only new object is the str Synapse's
 * Rust event makes for its sender. What only the adapter can look up (the
 * room's current state, its members, the member's global profile, whether
 * the sender is a server admin) is answered with NEED_ROOM, NEED_MEMBERS,
 * NEED_PROFILE or NEED_ADMIN; the adapter asks again with it.
 *
 * Called with the GIL, like decide(): memory only. Every PyObject* read is
 * held by `borrowed` until the call returns.
 */
#include "py/engine_after.h"

#include <string.h>

#include "py/borrowed.h"
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

static PyStructSequence_Field ACTION_FIELDS[] = {
    {"kind", "redact, withdraw, close or carry_policy"},
    {"rule", "the rule id (None for carry_policy)"},
    {"enforced", "False: report-only, audited and nothing done"},
    {"school", "the school the rule applied for, or \"\""},
    {"audit_id", "the queued audit record, 0 when none"},
    {"event_id", "the event the action undoes"},
    {"room_id", "the room to act in (carry_policy: the new room)"},
    {"user_id", "redact: the member to rejoin with their profile, or None; withdraw: the invitee"},
    {"sender", "withdraw: the inviter; carry_policy: who sends the policy event; else None"},
    {"state", "close, carry_policy: the state events to send, ((type, content), ...)"},
    {NULL, NULL},
};

static PyStructSequence_Desc ACTION_DESC = {
    "synapse_school_policy._core.Action",
    "What after_event decided to do about an event.",
    ACTION_FIELDS,
    10,
};

static PyTypeObject *action_type;

int after_exec(PyObject *module)
{
    for (int i = 0; i < N_ATTRS; i++) {
        if (attrs[i] == NULL && (attrs[i] = PyUnicode_InternFromString(ATTR_NAMES[i])) == NULL)
            return -1;
    }
    if (action_type == NULL && (action_type = PyStructSequence_NewType(&ACTION_DESC)) == NULL)
        return -1;
    return PyModule_AddObjectRef(module, "Action", (PyObject *)action_type);
}

/* ---- what one call reads ---- */

#define MEMBER_KEYS 16

typedef struct seen {
    ssp_event_seen ev;
    borrowed *b;
    const char *policy_type;
    PyObject *event;   /* borrowed from the arguments, as are state and members */
    PyObject *state;   /* None until the adapter has read it */
    PyObject *members; /* None until the adapter has read them */
    PyObject *sender; /* held by b once read, as are the objects below */
    PyObject *event_id, *room_id, *state_key, *replacement_room, *policy_content;
    ssp_content_key keys[MEMBER_KEYS];
    ssp_room_policy policy;
    ssp_power_levels levels;
    ssp_room_create create;
} seen;

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
static int read_sender(seen *s)
{
    PyObject *is_state = call(s->event, A_IS_STATE);

    if (is_state == NULL)
        return -1;
    s->ev.is_state = is_state == Py_True;
    Py_DECREF(is_state);
    return str_attr(s->event, A_SENDER, s->b, &s->sender, &s->ev.sender);
}

/* NEED_TYPE: the type and the state key. */
static int read_type(seen *s)
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
static int read_event(seen *s)
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

static int read_room(seen *s)
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

static int read_members(seen *s)
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

static int read_profile(seen *s, PyObject *profile)
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

/* ---- the answer ---- */

static const char *const KIND_NAMES[] = {
    [SSP_AFTER_REDACT] = "redact",
    [SSP_AFTER_WITHDRAW] = "withdraw",
    [SSP_AFTER_CLOSE] = "close",
    [SSP_AFTER_CARRY_POLICY] = "carry_policy",
};

/* ((type, {key: value}), ...) of a CLOSE action. */
static PyObject *close_state(unsigned bits)
{
    PyObject *list = PyList_New(0), *item = NULL, *result = NULL;
    const char *type, *key, *value;

    if (list == NULL)
        return NULL;
    for (unsigned bit = 1; bit <= SSP_CLOSE_GUEST_ACCESS; bit <<= 1) {
        if (!(bits & bit) || !ssp_after_close_state(bit, &type, &key, &value))
            continue;
        item = Py_BuildValue("(s{ss})", type, key, value);
        if (item == NULL || PyList_Append(list, item) != 0)
            goto done;
        Py_CLEAR(item);
    }
    result = PyList_AsTuple(list);
done:
    Py_XDECREF(item);
    Py_DECREF(list);
    return result;
}

static PyObject *optional(PyObject *obj)
{
    return Py_NewRef(obj != NULL ? obj : Py_None);
}

static PyObject *action_result(seen *s, const ssp_after_action *action)
{
    PyObject *result = PyStructSequence_New(action_type), *values[10] = {NULL};
    PyObject *undone = NULL, *room = s->room_id, *user = NULL, *sender = NULL, *state = NULL;
    bool carry = action->kind == SSP_AFTER_CARRY_POLICY;

    if (result == NULL)
        return NULL;
    if (action->kind == SSP_AFTER_REDACT && action->restore)
        user = s->state_key;
    if (action->kind == SSP_AFTER_WITHDRAW) {
        user = s->state_key;
        sender = s->sender;
    }
    if (carry) {
        room = s->replacement_room;
        sender = s->sender;
        state = Py_BuildValue("((sO))", s->policy_type, s->policy_content);
    } else if (action->kind == SSP_AFTER_CLOSE) {
        state = close_state(action->close);
    } else {
        state = PyTuple_New(0);
    }
    undone = PyUnicode_FromString(action->undone_event_id);
    values[0] = PyUnicode_FromString(KIND_NAMES[action->kind]);
    values[1] = carry ? Py_NewRef(Py_None) : PyUnicode_FromString(ssp_rule_id(action->rule));
    values[2] = Py_NewRef(action->enforced ? Py_True : Py_False);
    values[3] = PyUnicode_FromString(action->school);
    values[4] = PyLong_FromLongLong(action->audit_id);
    values[5] = undone;
    values[6] = optional(room);
    values[7] = optional(user);
    values[8] = optional(sender);
    values[9] = state;
    for (int i = 0; i < 10; i++) {
        if (values[i] == NULL) {
            for (int j = 0; j < 10; j++)
                Py_XDECREF(values[j]);
            Py_DECREF(result);
            return NULL;
        }
    }
    for (int i = 0; i < 10; i++)
        PyStructSequence_SetItem(result, i, values[i]); /* steals */
    return result;
}

/* after_event(event, state=None, members=None, profile=None, sender_admin=None)
 *
 * event is a Synapse event. Each of the others is None until asked for:
 * state (NEED_ROOM) the room's current state as a Mapping of
 * (type, state_key) to events, with at least the policy event,
 * m.room.create, m.room.power_levels, m.room.join_rules,
 * m.room.history_visibility, m.room.guest_access and the member event of
 * the event's state key; members (NEED_MEMBERS) such a Mapping of the
 * room's member events (other entries are skipped); profile (NEED_PROFILE)
 * the member's global (displayname, avatar_url); sender_admin (NEED_ADMIN)
 * whether the event's sender is a server admin. Returns None (nothing to
 * do), one of those NEED_* constants, or an Action whose audit record the
 * engine has queued. Called with the GIL.
 *
 * Its name is what bench/binding_callgrind.py counts for after_event. */
PyObject *Engine_after_event(EngineObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    seen s;
    borrowed b;
    ssp_after_action action;
    PyObject *result = NULL;

    if (nargs < 1 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError,
                        "after_event() takes 1 to 5 arguments (event, state, members, profile, "
                        "sender_admin)");
        return NULL;
    }
    borrowed_init(&b);
    memset(&s.ev, 0, sizeof s.ev);
    s.b = &b;
    s.policy_type = ssp_engine_policy_event_type(self->engine);
    s.event = args[0];
    s.state = nargs > 1 ? args[1] : Py_None;
    s.members = nargs > 2 ? args[2] : Py_None;
    s.sender = s.event_id = s.room_id = s.state_key = s.replacement_room = s.policy_content = NULL;
    if (nargs > 3 && args[3] != Py_None && read_profile(&s, args[3]) != 0)
        goto done;
    if (nargs > 4 && args[4] != Py_None) {
        int admin = PyObject_IsTrue(args[4]);

        if (admin < 0)
            goto done;
        s.ev.sender_admin = admin ? SSP_FACT_YES : SSP_FACT_NO;
    }
    if (read_sender(&s) != 0)
        goto done;
    for (;;) {
        int rc = 0;

        ssp_after_event(self->engine, &s.ev, &action);
        switch (action.kind) {
        case SSP_AFTER_NOTHING:
            result = Py_NewRef(Py_None);
            goto done;
        case SSP_AFTER_NEED_TYPE:
            rc = read_type(&s);
            break;
        case SSP_AFTER_NEED_EVENT:
            rc = read_event(&s);
            break;
        case SSP_AFTER_NEED_ROOM:
            if (s.state == Py_None) {
                result = PyLong_FromLong(SSP_VERDICT_NEED_ROOM);
                goto done;
            }
            rc = read_room(&s);
            break;
        case SSP_AFTER_NEED_MEMBERS:
            if (s.members == Py_None) {
                result = PyLong_FromLong(SSP_VERDICT_NEED_MEMBERS);
                goto done;
            }
            rc = read_members(&s);
            break;
        case SSP_AFTER_NEED_PROFILE:
            result = PyLong_FromLong(SSP_VERDICT_NEED_PROFILE);
            goto done;
        case SSP_AFTER_NEED_ADMIN:
            result = PyLong_FromLong(SSP_VERDICT_NEED_ADMIN);
            goto done;
        default:
            result = action_result(&s, &action);
            goto done;
        }
        if (rc != 0)
            goto done;
    }
done:
    borrowed_release(&b);
    return result;
}
