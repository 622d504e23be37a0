/*
 * Engine.decide and the methods around a decision.
 *
 * decide() is the hot path: Synapse calls it for every login, message,
 * invite and join. It converts nothing it does not need: its arguments'
 * UTF-8 buffers are lent to the engine (borrowed), the room's power levels
 * and create content are read only when a rule asks (request_room.c), and
 * the answer is None, a NEED_* constant or a Denial, built from strings
 * made once. Its steps are static functions of this file, so the compiler
 * folds them back into one function as it did when decide() was one body.
 *
 * Everything here runs with the GIL held: a decision reads memory only
 * (the config and the roster under its read lock) and takes microseconds.
 */
#include "py/engine_decide.h"

#include <string.h>

#include "py/borrowed.h"
#include "py/convert.h"
#include "py/mapping.h"
#include "py/request_event.h"
#include "py/request_room.h"
#include "rules/room_shape.h"

/* ---- what decide() answers with ----
 *
 * decide()'s denial: a tuple (rule, message, enforced, school), plus the
 * attributes audit_id and retry_after_ms (not part of the tuple, so
 * unpacking stays as it was).
 * The type, the rule ids' str and the messages' str are made once per
 * process and live as long as it: the module supports one interpreter
 * (Py_mod_multiple_interpreters), like the keys in mapping.c. */
static PyStructSequence_Field DENIAL_FIELDS[] = {
    {"rule", "the rule id"},
    {"message", "the message for the client"},
    {"enforced", "False: report-only, the action goes through"},
    {"school", "the school the rule applied for, or \"\""},
    {"audit_id", "the id of the queued audit record (wait_durable), 0 when none was queued"},
    {"retry_after_ms", "> 0: past the flood limit (audit.flood): counted in a summary record, "
                       "no record of its own; the actor may try again in this many ms"},
    {NULL, NULL},
};

static PyStructSequence_Desc DENIAL_DESC = {
    "synapse_school_policy._core.Denial",
    "A denial: (rule, message, enforced, school); audit_id names its audit record, "
    "retry_after_ms > 0 marks a denial past the flood limit.",
    DENIAL_FIELDS,
    4,
};

static PyTypeObject *denial_type;

/* The rule ids as str, made once; and the client messages, which are static
 * texts of the engine, each made into a str the first time it is used. */
static PyObject *rule_strs[SSP_RULE__COUNT];

#define MESSAGE_CACHE 48

static struct {
    const char *text;
    PyObject *str;
} message_strs[MESSAGE_CACHE];

int decide_exec(PyObject *module)
{
    for (int r = 0; r < SSP_RULE__COUNT; r++) {
        if (rule_strs[r] == NULL && (rule_strs[r] = PyUnicode_InternFromString(ssp_rule_id((ssp_rule)r))) == NULL)
            return -1;
    }
    if (denial_type == NULL && (denial_type = PyStructSequence_NewType(&DENIAL_DESC)) == NULL)
        return -1;
    return PyModule_AddObjectRef(module, "Denial", (PyObject *)denial_type);
}

/* A new reference to the str of an engine message. */
static PyObject *message_str(const char *text)
{
    int i = 0;

    while (i < MESSAGE_CACHE && message_strs[i].text != NULL && message_strs[i].text != text)
        i++;
    if (i < MESSAGE_CACHE && message_strs[i].text == text)
        return Py_NewRef(message_strs[i].str);
    if (i == MESSAGE_CACHE)
        return PyUnicode_FromString(text); /* more texts than the cache holds: not kept */
    message_strs[i].str = PyUnicode_FromString(text);
    if (message_strs[i].str == NULL)
        return NULL;
    message_strs[i].text = text;
    return Py_NewRef(message_strs[i].str);
}

static PyObject *denial_result(const ssp_decision *decision)
{
    PyObject *result = PyStructSequence_New(denial_type), *value = NULL;
    PyObject *values[6] = {NULL};

    if (result == NULL)
        return NULL;
    values[0] = decision->rule < SSP_RULE__COUNT ? Py_NewRef(rule_strs[decision->rule])
                                                 : PyUnicode_FromString(ssp_rule_id(decision->rule));
    values[1] = message_str(decision->message);
    values[2] = Py_NewRef(decision->enforced ? Py_True : Py_False);
    values[3] = PyUnicode_FromString(decision->school);
    values[4] = PyLong_FromLongLong(decision->audit_id);
    values[5] = PyLong_FromLongLong(decision->retry_after_ms);
    for (int i = 0; i < 6; i++) {
        value = values[i];
        if (value == NULL) {
            for (int j = i + 1; j < 6; j++)
                Py_XDECREF(values[j]);
            Py_DECREF(result);
            return NULL;
        }
        PyStructSequence_SetItem(result, i, value); /* steals value */
    }
    return result;
}

/* None, a NEED_* / SYNC_POWER_LEVELS constant, or a Denial. */
static PyObject *verdict_result(const ssp_decision *decision)
{
    switch (decision->verdict) {
    case SSP_VERDICT_ALLOW:
        return Py_NewRef(Py_None);
    case SSP_VERDICT_NEED_ROOM:
    case SSP_VERDICT_NEED_ADMIN:
    case SSP_VERDICT_NEED_SHARED_ROOMS:
    case SSP_VERDICT_NEED_MEMBERSHIP:
    case SSP_VERDICT_NEED_MEMBER_COUNT:
    case SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS:
        return PyLong_FromLong((long)decision->verdict);
    case SSP_VERDICT_DENY:
        return denial_result(decision);
    case SSP_VERDICT_NEED_PROFILE: /* after_event's only */
    case SSP_VERDICT_NEED_MEMBERS:
        break;
    }
    PyErr_SetString(PyExc_SystemError, "decide(): unknown verdict");
    return NULL;
}

/* ---- decide()'s arguments, step by step ---- */

/* decide()'s positional arguments, in the order of its docstring. */
enum {
    ARG_CALLBACK,
    ARG_ACTOR,
    ARG_TARGET,
    ARG_ROOM_ID,
    ARG_EVENT_TYPE,
    ARG_STATE_KEY,
    ARG_CONTENT,
    ARG_ROOM,
    ARG_ACTOR_ADMIN,
    ARG_IS_INVITED,
    ARG_SHARED_ROOMS,
    ARG_ACTOR_MEMBERSHIP,
    ARG_MEMBER_COUNT,
    ARG_REDACTS, /* optional */
    N_DECIDE_ARGS
};

/* Step 1: the arguments that are plain values (the callback, the user and
 * room ids, the event's type and state key, actor_admin, redacts), and the
 * room tuple's shape. Strings borrow from args. */
static int read_plain_args(PyObject *const *args, Py_ssize_t nargs, ssp_request *req)
{
    PyObject *room = NULL; /* borrowed */
    long callback, admin;

    if (nargs != N_DECIDE_ARGS && nargs != N_DECIDE_ARGS - 1) {
        PyErr_Format(PyExc_TypeError, "decide() takes %d or %d arguments", N_DECIDE_ARGS - 1, N_DECIDE_ARGS);
        return -1;
    }
    room = args[ARG_ROOM];
    callback = PyLong_AsLong(args[ARG_CALLBACK]);
    if (callback == -1 && PyErr_Occurred())
        return -1;
    if (callback < 0 || callback >= SSP_CB__COUNT) {
        PyErr_SetString(PyExc_ValueError, "unknown callback");
        return -1;
    }
    if (callback == SSP_CB_AFTER_THE_FACT) {
        PyErr_SetString(PyExc_ValueError, "after_the_fact is decided by after_event()");
        return -1;
    }
    req->callback = (ssp_callback)callback;
    if (!is_str(args[ARG_ACTOR])) {
        PyErr_SetString(PyExc_TypeError, "actor must be str");
        return -1;
    }
    req->actor = PyUnicode_AsUTF8AndSize(args[ARG_ACTOR], NULL);
    if (req->actor == NULL || optional_str(args[ARG_TARGET], "target", &req->target) != 0 ||
        optional_str(args[ARG_ROOM_ID], "room_id", &req->room_id) != 0 ||
        optional_str(args[ARG_EVENT_TYPE], "event_type", &req->event_type) != 0 ||
        optional_str(args[ARG_STATE_KEY], "state_key", &req->state_key) != 0)
        return -1;
    admin = PyLong_AsLong(args[ARG_ACTOR_ADMIN]);
    if (admin == -1 && PyErr_Occurred())
        return -1;
    if (admin != SSP_FACT_UNKNOWN && admin != SSP_FACT_NO && admin != SSP_FACT_YES) {
        PyErr_SetString(PyExc_ValueError, "actor_admin must be FACT_UNKNOWN, FACT_NO or FACT_YES");
        return -1;
    }
    req->actor_is_admin = (ssp_fact)admin;
    if (room != Py_None && (!PyTuple_Check(room) || (PyTuple_Size(room) != N_ROOM_ITEMS &&
                                                     PyTuple_Size(room) != N_ROOM_ITEMS - 1))) {
        PyErr_SetString(PyExc_TypeError, "room must be None or a tuple (policy, policy_sender, "
                                         "power_levels, create, creator[, policy_event_id])");
        return -1;
    }
    if (nargs == N_DECIDE_ARGS && optional_str(args[ARG_REDACTS], "redacts", &req->redacts) != 0)
        return -1;
    return 0;
}

/* Step 2: the content argument: the event's content (check_event_for_spam)
 * or the createRoom body (user_may_create_room). */
static int read_content(PyObject *const *args, const char *policy_type, event_facts *event,
                        ssp_create_room *create, bool *full_levels, borrowed *b, ssp_request *req)
{
    PyObject *content = args[ARG_CONTENT]; /* borrowed */

    if (content == Py_None)
        return 0;
    if (req->callback == SSP_CB_CHECK_EVENT_FOR_SPAM && req->event_type != NULL)
        return event_facts_read(event, args[ARG_ACTOR], content, policy_type, full_levels, b, req);
    if (req->callback == SSP_CB_USER_MAY_CREATE_ROOM) {
        if (create_room_from_mapping(content, args[ARG_ACTOR], policy_type, create) != 0)
            return -1;
        req->create = create;
    }
    return 0;
}

/* Step 3: the facts the engine asks for with a NEED_* verdict (None until
 * asked): is_invited, shared_rooms, actor_membership, member_count. */
static int read_asked_facts(PyObject *const *args, borrowed *b, ssp_request *req)
{
    ssp_room_policy *shared = NULL;

    if (args[ARG_IS_INVITED] != Py_None) {
        int invited = PyObject_IsTrue(args[ARG_IS_INVITED]);

        if (invited < 0)
            return -1;
        req->is_invited = invited ? SSP_FACT_YES : SSP_FACT_NO;
    }
    if (args[ARG_SHARED_ROOMS] != Py_None) {
        if (shared_rooms_from_sequence(args[ARG_SHARED_ROOMS], &shared, &req->n_shared_rooms, b) != 0)
            return -1;
        req->shared_rooms = shared;
        req->shared_known = SSP_FACT_YES;
    }
    if (args[ARG_ACTOR_MEMBERSHIP] != Py_None) {
        if (!PyUnicode_Check(args[ARG_ACTOR_MEMBERSHIP])) {
            PyErr_SetString(PyExc_TypeError, "actor_membership must be str or None");
            return -1;
        }
        req->actor_joined = PyUnicode_CompareWithASCIIString(args[ARG_ACTOR_MEMBERSHIP], "join") == 0
                                ? SSP_FACT_YES
                                : SSP_FACT_NO;
    }
    if (args[ARG_MEMBER_COUNT] != Py_None) {
        req->member_count = PyLong_AsLongLong(args[ARG_MEMBER_COUNT]);
        if (req->member_count == -1 && PyErr_Occurred())
            return -1;
        req->member_count_known = true;
    }
    return 0;
}

/* decide(callback, actor, target, room_id, event_type, state_key, content,
 *        room, actor_admin, is_invited, shared_rooms, actor_membership,
 *        member_count)
 *
 * content is the event's content for check_event_for_spam, the createRoom
 * body for user_may_create_room, else None. room is None until asked for
 * (NEED_ROOM), then (policy content or None, the policy event's sender or
 * None, power levels content or None, m.room.create content or None, the
 * create event's sender or None). is_invited is a bool for
 * user_may_join_room, else None. shared_rooms is None until asked for, then
 * (policy content or None, policy sender or None, creator or None) of each
 * room actor and target share. actor_membership is None until asked for
 * (NEED_MEMBERSHIP), then the actor's membership str in the room ("" for
 * none). member_count is None until asked for (NEED_MEMBER_COUNT), then the
 * number of users joined or invited. redacts (optional) is the event an
 * m.room.redaction redacts, and the room tuple may end with the policy
 * event's id: with both, redacting the policy event is refused.
 * Returns None to allow; a NEED_* constant to ask for a fact and call again;
 * SYNC_POWER_LEVELS to allow and then align the room's power levels; or a
 * Denial (rule_id, message, enforced, school) whose audit record the engine
 * has already queued (Denial.audit_id, for wait_durable). Called with the
 * GIL; the roster is read under one read lock. The room's power levels and
 * create content, when they are dicts, are read only if a rule needs them
 * (ssp_room_details); an error reading them is raised then.
 *
 * Its name is what bench/binding_callgrind.py counts (--toggle-collect). */
PyObject *Engine_decide(EngineObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ssp_request req = {0};
    ssp_decision decision;
    event_facts event; /* the structs below are written before they are read */
    ssp_create_room create;
    room_facts room;
    borrowed b;
    const char *policy_type = ssp_engine_policy_event_type(self->engine);
    PyObject *result = NULL;
    bool full_levels = false; /* the room's levels maps are compared only for these two events */

    if (read_plain_args(args, nargs, &req) != 0)
        return NULL;
    borrowed_init(&b);
    if (read_content(args, policy_type, &event, &create, &full_levels, &b, &req) != 0 ||
        read_asked_facts(args, &b, &req) != 0)
        goto done;
    if (args[ARG_ROOM] == Py_None)
        req.room_managed = SSP_FACT_UNKNOWN;
    else if (room_facts_read(&room, args[ARG_ROOM], args[ARG_ACTOR], full_levels, &b, &req) != 0)
        goto done;

    ssp_decide(self->engine, &req, &decision);
    if (req.room_details != NULL && req.room_details->failed)
        goto done; /* the exception load() raised */
    result = verdict_result(&decision);
done:
    borrowed_release(&b);
    return result;
}

/* ---- around a decision ---- */

/* create_room_invitees(actor, body) -> list of the user ids the createRoom
 * body puts into the room besides the actor, as the rules count them.
 * Called with the GIL. */
PyObject *Engine_create_room_invitees(EngineObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *actor = NULL, *body = NULL; /* borrowed from args */

    if (!PyArg_ParseTuple(args, "UO:create_room_invitees", &actor, &body))
        return NULL;
    return create_room_invitees(body, actor);
}

/* power_levels_update(room_policy, power_levels) -> dict | None
 *
 * The changes the room's power levels need so that clients show the
 * composer as the policy wants it: {"events_default": n, "events": {type: 0}}
 * with only the keys that change, or None when nothing is to change.
 * Memory only (the config): keeps the GIL. */
PyObject *Engine_power_levels_update(EngineObject *self, PyObject *args)
{
    PyObject *policy_obj = NULL, *pl_obj = NULL, *result = NULL; /* the first two borrowed */
    ssp_room_policy policy;
    ssp_power_levels pl;
    ssp_power_levels_patch patch;
    borrowed b;

    if (!PyArg_ParseTuple(args, "OO:power_levels_update", &policy_obj, &pl_obj))
        return NULL;
    if (policy_obj == Py_None)
        Py_RETURN_NONE;
    borrowed_init(&b);
    if (policy_from_mapping(policy_obj, &policy, &b) != 0 ||
        (pl_obj != Py_None && power_levels_from_mapping(pl_obj, "", true, &pl, &b) != 0))
        goto done;
    if (!ssp_power_levels_update(self->engine, &policy, pl_obj == Py_None ? NULL : &pl, &patch)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = py_from_json(engine_state(self), ssp_power_levels_patch_json(&patch));
done:
    borrowed_release(&b);
    return result;
}

/* room_shape(request) -> list of JSON Patch "add" operations
 *
 * What on_create_room changes in a createRoom request (ssp_room_shape).
 * Memory only (the config): keeps the GIL. */
PyObject *Engine_room_shape(EngineObject *self, PyObject *request)
{
    json_t *value = py_to_json(request), *changes = NULL;
    ssp_error err = {0};
    int rc;

    if (value == NULL)
        return NULL;
    rc = ssp_room_shape(self->engine, value, &changes, &err);
    json_decref(value);
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json(engine_state(self), changes);
}
