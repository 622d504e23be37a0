/*
 * Engine.after_event: what the module takes back after the fact, decided by
 * the engine (rules/after_the_fact.h), for each change of a room's state.
 *
 * The event is read only as far as the engine asks (request_seen.c). What
 * only the adapter can look up (the room's current state, its members, the
 * member's global profile, whether the sender is a server admin) is
 * answered with NEED_ROOM, NEED_MEMBERS, NEED_PROFILE or NEED_ADMIN; the
 * adapter asks again with it. The Action it answers with is built only
 * when something is to be done.
 *
 * Called with the GIL, like decide(): memory only. Every PyObject* read is
 * held by `borrowed` until the call returns.
 */
#include "py/engine_after.h"

#include <string.h>

#include "py/borrowed.h"
#include "py/convert.h"
#include "py/request_seen.h"

/* ---- the answer ---- */

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
    if (seen_names_init() != 0)
        return -1;
    if (action_type == NULL && (action_type = PyStructSequence_NewType(&ACTION_DESC)) == NULL)
        return -1;
    return PyModule_AddObjectRef(module, "Action", (PyObject *)action_type);
}

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

