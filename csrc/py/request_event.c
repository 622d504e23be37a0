/*
 * The event's own facts for the engine's request: what a state event's
 * content changes, the shape of a redaction or reaction, and what a
 * createRoom body asks for. Synapse validates these bodies after the
 * module has seen them, so a value of an unexpected type is read as absent
 * (the rules fail closed on it), not raised.
 *
 * Called with the GIL. Ownership: every PyObject* is NULL-initialised and
 * released at the function's single exit; strings in what is filled are
 * borrowed, kept alive by `borrowed`.
 */
#include "py/request_event.h"

#include <string.h>

#include "py/mapping.h"
#include "py/request_room.h"

/* ---- the event's content (check_event_for_spam) ---- */

/* The shape of a redaction's or reaction's content (see ssp_event_shape). */
static int event_shape_from(PyObject *content, ssp_event_shape *shape, borrowed *b)
{
    PyObject *value = NULL, *relation = NULL;
    Py_ssize_t n;
    int rc = -1;

    memset(shape, 0, sizeof *shape);
    n = PyObject_Length(content);
    if (n < 0)
        goto done;
    shape->n_content_keys = (size_t)n;
    value = item(content, K_REDACTS);
    if (value == NULL && PyErr_Occurred())
        goto done;
    shape->has_redacts = value != NULL;
    if (value != NULL && PyUnicode_Check(value)) {
        shape->content_redacts = PyUnicode_AsUTF8AndSize(value, NULL);
        if (shape->content_redacts == NULL || keep(b, value) != 0)
            goto done;
    }
    Py_CLEAR(value);
    relation = item(content, K_RELATES_TO);
    if (relation == NULL || !is_json_object(relation)) {
        rc = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    if (keep(b, relation) != 0) /* the strings below borrow from it */
        goto done;
    shape->has_relation = true;
    n = PyObject_Length(relation);
    if (n < 0)
        goto done;
    shape->n_relation_keys = (size_t)n;
    if (str_field(relation, K_REL_TYPE, b, &shape->rel_type, &shape->rel_type_len) != 0 ||
        str_field(relation, K_KEY, b, &shape->key, &shape->key_len) != 0)
        goto done;
    value = item(relation, K_EVENT_ID);
    if (value == NULL && PyErr_Occurred())
        goto done;
    shape->relation_event_id = value != NULL && PyUnicode_Check(value);
    rc = 0;
done:
    Py_XDECREF(value);
    Py_XDECREF(relation);
    return rc;
}

int event_facts_read(event_facts *facts, PyObject *actor, PyObject *content,
                     const char *policy_type, bool *full_levels, borrowed *b, ssp_request *req)
{
    bool differs;

    if (!is_json_object(content))
        return 0; /* no event has such content; the rules fail closed on what they miss */
    if (req->state_key != NULL && req->state_key[0] == '\0') {
        if (strcmp(req->event_type, policy_type) == 0) {
            *full_levels = true;
            if (policy_from_mapping(content, &facts->new_policy, b) != 0)
                return -1;
            req->new_policy = &facts->new_policy;
        } else if (strcmp(req->event_type, "m.room.power_levels") == 0) {
            *full_levels = true;
            if (power_levels_of(content, actor, true, &facts->new_levels, b) != 0)
                return -1;
            req->new_power_levels = &facts->new_levels;
        } else if (strcmp(req->event_type, "m.room.join_rules") == 0) {
            if (str_differs(content, "join_rule", "invite", &differs) != 0)
                return -1;
            req->opens_join_rule = differs;
        } else if (strcmp(req->event_type, "m.room.history_visibility") == 0) {
            if (str_equals(content, "history_visibility", "world_readable", &req->opens_history) != 0)
                return -1;
        } else if (strcmp(req->event_type, "m.room.guest_access") == 0) {
            if (str_equals(content, "guest_access", "can_join", &req->opens_guest_access) != 0)
                return -1;
        }
    }
    if (strcmp(req->event_type, "m.room.redaction") == 0 || strcmp(req->event_type, "m.reaction") == 0) {
        if (event_shape_from(content, &facts->shape, b) != 0)
            return -1;
        req->shape = &facts->shape;
    }
    return 0;
}

/* ---- the createRoom body (user_may_create_room) ---- */

/* Appends `user_id` to `list` unless `seen` has it. */
static int add_invitee(PyObject *list, PyObject *seen, PyObject *user_id)
{
    int known = PySet_Contains(seen, user_id);

    if (known != 0)
        return known < 0 ? -1 : 0;
    if (PySet_Add(seen, user_id) != 0)
        return -1;
    return PyList_Append(list, user_id);
}

/* One item of the body's `invite` list, or of its initial_state: the state
 * key of an m.room.member event. */
static int add_invitee_of(PyObject *list, PyObject *seen, PyObject *entry, bool initial_state)
{
    PyObject *state_key = NULL;
    bool is_member;
    int rc = -1;

    if (!initial_state)
        return PyUnicode_Check(entry) ? add_invitee(list, seen, entry) : 0;
    if (!is_json_object(entry))
        return 0;
    if (str_equals(entry, "type", "m.room.member", &is_member) != 0)
        goto done;
    if (is_member) {
        state_key = mapping_get(entry, "state_key");
        if (state_key == NULL && PyErr_Occurred())
            goto done;
        if (state_key != NULL && PyUnicode_Check(state_key) && add_invitee(list, seen, state_key) != 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(state_key);
    return rc;
}

PyObject *create_room_invitees(PyObject *body, PyObject *actor)
{
    static const char *const sources[] = {"invite", "initial_state"};
    PyObject *list = PyList_New(0), *seen = PySet_New(NULL), *value = NULL, *seq = NULL;
    PyObject *result = NULL;
    size_t n_sources = is_json_object(body) ? sizeof sources / sizeof sources[0] : 0;

    if (list == NULL || seen == NULL || PySet_Add(seen, actor) != 0)
        goto done;
    for (size_t s = 0; s < n_sources; s++) {
        value = mapping_get(body, sources[s]);
        if (value == NULL && PyErr_Occurred())
            goto done;
        if (value == NULL || PyUnicode_Check(value) || !PySequence_Check(value)) {
            Py_CLEAR(value);
            continue; /* absent, or a shape Synapse refuses itself */
        }
        seq = PySequence_Fast(value, "not a sequence");
        if (seq == NULL)
            goto done;
        for (Py_ssize_t i = 0; i < fast_size(seq); i++) {
            if (add_invitee_of(list, seen, fast_item(seq, i), s == 1) != 0)
                goto done;
        }
        Py_CLEAR(seq);
        Py_CLEAR(value);
    }
    result = Py_NewRef(list);
done:
    Py_XDECREF(seq);
    Py_XDECREF(value);
    Py_XDECREF(seen);
    Py_XDECREF(list);
    return result;
}

/* One item of the body's initial_state: the policy event, a 3PID invite,
 * and the room's own join rules, history and guest access. */
static int initial_state_item(PyObject *event, const char *policy_type, ssp_create_room *create)
{
    PyObject *state_key = NULL, *content = NULL;
    bool is_policy, is_join_rules, is_history, is_guest_access, is_3pid, flag = false;
    int rc = -1;

    if (!is_json_object(event))
        return 0;
    if (str_equals(event, "type", policy_type, &is_policy) != 0 ||
        str_equals(event, "type", "m.room.join_rules", &is_join_rules) != 0 ||
        str_equals(event, "type", "m.room.history_visibility", &is_history) != 0 ||
        str_equals(event, "type", "m.room.guest_access", &is_guest_access) != 0 ||
        str_equals(event, "type", "m.room.third_party_invite", &is_3pid) != 0)
        goto done;
    create->sets_policy |= is_policy;
    create->third_party_invites |= is_3pid;
    if (!is_join_rules && !is_history && !is_guest_access) {
        rc = 0;
        goto done;
    }
    /* Only the room's own join rules, history and guest access (state key
     * "", which Synapse assumes when it is missing). */
    state_key = mapping_get(event, "state_key");
    if (state_key == NULL && PyErr_Occurred())
        goto done;
    if (state_key != NULL && !(PyUnicode_Check(state_key) && PyUnicode_GetLength(state_key) == 0)) {
        rc = 0;
        goto done;
    }
    create->sets_guest_access |= is_guest_access;
    content = mapping_get(event, "content");
    if (content == NULL && PyErr_Occurred())
        goto done;
    if (is_join_rules) {
        if (content == NULL)
            flag = true;
        else if (str_differs(content, "join_rule", "invite", &flag) != 0)
            goto done;
        create->open_join_rule |= flag;
    } else if (content != NULL && is_json_object(content)) {
        if (is_history ? str_equals(content, "history_visibility", "world_readable", &flag)
                       : str_equals(content, "guest_access", "can_join", &flag))
            goto done;
        if (is_history)
            create->world_readable |= flag;
        else
            create->opens_guest_access |= flag;
    }
    rc = 0;
done:
    Py_XDECREF(content);
    Py_XDECREF(state_key);
    return rc;
}

/* *out: the body is the one Synapse makes for a room upgrade
 * (handlers/room.py clone_existing_room): creation_content names a
 * predecessor, and there is no preset. Returns -1 with an exception set. */
static int upgrade_body(PyObject *body, bool *out)
{
    PyObject *preset = NULL, *creation = NULL, *predecessor = NULL;
    int rc = -1;

    *out = false;
    preset = mapping_get(body, "preset");
    if (preset == NULL && PyErr_Occurred())
        goto done;
    creation = mapping_get(body, "creation_content");
    if (creation == NULL && PyErr_Occurred())
        goto done;
    if (preset == NULL && creation != NULL && is_json_object(creation)) {
        predecessor = mapping_get(creation, "predecessor");
        if (predecessor == NULL && PyErr_Occurred())
            goto done;
        *out = predecessor != NULL;
    }
    rc = 0;
done:
    Py_XDECREF(predecessor);
    Py_XDECREF(creation);
    Py_XDECREF(preset);
    return rc;
}

int create_room_from_mapping(PyObject *body, PyObject *actor, const char *policy_type,
                             ssp_create_room *create)
{
    PyObject *invitees = NULL, *value = NULL, *seq = NULL;
    size_t n_3pid;
    int rc = -1;

    memset(create, 0, sizeof *create);
    if (!is_json_object(body))
        return 0;
    invitees = create_room_invitees(body, actor);
    if (invitees == NULL)
        goto done;
    create->n_invites = (size_t)PyList_Size(invitees);
    value = mapping_get(body, "is_direct");
    if (value == NULL && PyErr_Occurred())
        goto done;
    create->is_direct = value == Py_True;
    Py_CLEAR(value);
    value = mapping_get(body, "room_alias_name");
    if (value == NULL && PyErr_Occurred())
        goto done;
    create->sets_alias = value != NULL && value != Py_None;
    Py_CLEAR(value);
    if (str_equals(body, "preset", "public_chat", &create->public_preset) != 0 ||
        str_equals(body, "visibility", "public", &create->public_visibility) != 0 ||
        sequence_length(body, "invite_3pid", &n_3pid) != 0)
        goto done;
    create->third_party_invites = n_3pid > 0;
    if (upgrade_body(body, &create->is_upgrade) != 0)
        goto done;
    value = mapping_get(body, "initial_state");
    if (value == NULL) {
        rc = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    seq = PySequence_Fast(value, "initial_state must be a list");
    if (seq == NULL) {
        PyErr_Clear(); /* Synapse refuses such a body itself */
        rc = 0;
        goto done;
    }
    for (Py_ssize_t i = 0; i < fast_size(seq); i++) {
        if (initial_state_item(fast_item(seq, i), policy_type, create) != 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(seq);
    Py_XDECREF(value);
    Py_XDECREF(invitees);
    return rc;
}
