/*
 * synapse_school_policy._core: the module. Multi-phase init (core_exec),
 * the module state's traverse/clear/free, the module-level functions that
 * need no engine (check_config, check_homeserver, roster_check,
 * reconcile_status_offline), and the constants.
 *
 * The binding (csrc/py/) converts Python arguments to engine calls and
 * back; it is the only code that includes Python.h. Anything that may
 * wait (disk I/O, the database, the audit writer) runs with the GIL
 * released; the engine makes no Python API call, so that is safe.
 * Decisions run with the GIL held: they only read memory.
 */
#include "py/module_state.h"

#include "py/convert.h"
#include "py/engine_after.h"
#include "py/engine_decide.h"
#include "py/engine_type.h"
#include "py/mapping.h"

/* ---- module functions ---- */

/* check_config(json) -> None; raises InputError naming the bad key.
 * Memory only: keeps the GIL. */
static PyObject *core_check_config(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    ssp_error err = {0};

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "check_config() takes the config as a JSON str");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    if (ssp_config_check(text, (size_t)len, &err) != 0)
        return raise_engine_error(state_of_module(module), &err);
    Py_RETURN_NONE;
}

/* roster_check(body, server_name) -> the users as a list of entries; raises
 * InputError / JsonSyntaxError as POST /roster answers 400. Called with the
 * GIL; released while the engine parses the body. */
static PyObject *core_roster_check(PyObject *module, PyObject *args)
{
    const char *body, *server_name;
    Py_ssize_t body_len;
    PyObject *body_obj = NULL; /* borrowed from args */
    char *users = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "Os:roster_check", &body_obj, &server_name) ||
        body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_check_batch(body, (size_t)body_len, server_name, &users, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(state_of_module(module), &err);
    return py_from_json_text(state_of_module(module), users);
}

/* check_homeserver(settings_json) -> list of {setting, problem}. Memory
 * only: keeps the GIL. */
static PyObject *core_check_homeserver(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    char *findings = NULL;
    ssp_error err = {0};

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "check_homeserver() takes the settings as a JSON str");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    if (ssp_homeserver_check(text, (size_t)len, &findings, &err) != 0)
        return raise_engine_error(state_of_module(module), &err);
    return py_from_json_text(state_of_module(module), findings);
}

/* reconcile_status_offline(config_json) -> dict, without an engine:
 * reads data_dir/reconcile.jsonl or queries the database. Called with the
 * GIL; released around the read. */
static PyObject *core_reconcile_status_offline(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    char *status = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError,
                        "reconcile_status_offline() takes the config as a JSON str");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_status_offline(text, (size_t)len, &status, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(state_of_module(module), &err);
    return py_from_json_text(state_of_module(module), status);
}

static PyMethodDef core_methods[] = {
    {"reconcile_status_offline", core_reconcile_status_offline, METH_O,
     "reconcile_status_offline(config_json) -> status (dict) of the reconciliation ledger, "
     "read without a running engine."},
    {"check_homeserver", core_check_homeserver, METH_O,
     "check_homeserver(settings_json) -> {findings: [{setting, verdict, problem}], "
     "hardened_block: str}."},
    {"roster_check", core_roster_check, METH_VARARGS,
     "roster_check(body, server_name) -> the users of a POST /roster body as a list; "
     "raises InputError naming the bad field, as the admin API does."},
    {"check_config", core_check_config, METH_O,
     "check_config(json) -> None; raises InputError naming the bad key."},
    {NULL, NULL, 0, NULL},
};

/* ---- constants ---- */

/* RULE_IDS: every rule id but SSP_RULE_NONE's "". */
static PyObject *rule_ids_tuple(void)
{
    PyObject *ids = PyTuple_New(SSP_RULE__COUNT - 1), *id = NULL;

    if (ids == NULL)
        return NULL;
    for (int r = 1; r < SSP_RULE__COUNT; r++) {
        id = PyUnicode_FromString(ssp_rule_id((ssp_rule)r));
        if (id == NULL || PyTuple_SetItem(ids, r - 1, id) < 0) { /* steals id, also on failure */
            Py_DECREF(ids);
            return NULL;
        }
    }
    return ids;
}

/* CALLBACK_NAMES[i] is the name of the callback whose CB_* constant is i. */
static PyObject *callback_names_tuple(void)
{
    PyObject *names = PyTuple_New(SSP_CB__COUNT), *name = NULL;

    if (names == NULL)
        return NULL;
    for (int cb = 0; cb < SSP_CB__COUNT; cb++) {
        name = PyUnicode_FromString(ssp_callback_name((ssp_callback)cb));
        if (name == NULL || PyTuple_SetItem(names, cb, name) < 0) { /* steals name, also on failure */
            Py_DECREF(names);
            return NULL;
        }
    }
    return names;
}

static const struct {
    const char *name;
    long value;
} INT_CONSTANTS[] = {
    {"CB_CHECK_LOGIN_FOR_SPAM", SSP_CB_CHECK_LOGIN_FOR_SPAM},
    {"CB_USER_MAY_JOIN_ROOM", SSP_CB_USER_MAY_JOIN_ROOM},
    {"CB_USER_MAY_INVITE", SSP_CB_USER_MAY_INVITE},
    {"CB_USER_MAY_CREATE_ROOM", SSP_CB_USER_MAY_CREATE_ROOM},
    {"CB_CHECK_EVENT_FOR_SPAM", SSP_CB_CHECK_EVENT_FOR_SPAM},
    {"CB_FEDERATED_USER_MAY_INVITE", SSP_CB_FEDERATED_USER_MAY_INVITE},
    {"CB_USER_MAY_PUBLISH_ROOM", SSP_CB_USER_MAY_PUBLISH_ROOM},
    {"CB_USER_MAY_CREATE_ROOM_ALIAS", SSP_CB_USER_MAY_CREATE_ROOM_ALIAS},
    {"CB_USER_MAY_SEND_3PID_INVITE", SSP_CB_USER_MAY_SEND_3PID_INVITE},
    {"CB_CHECK_USERNAME_FOR_SPAM", SSP_CB_CHECK_USERNAME_FOR_SPAM},
    {"CB_IS_USER_EXPIRED", SSP_CB_IS_USER_EXPIRED},
    {"CB_ON_USER_LOGIN", SSP_CB_ON_USER_LOGIN},
    {"CB_CHECK_REGISTRATION_FOR_SPAM", SSP_CB_CHECK_REGISTRATION_FOR_SPAM},
    {"CB_AFTER_THE_FACT", SSP_CB_AFTER_THE_FACT},
    {"NEED_MEMBERSHIP", SSP_VERDICT_NEED_MEMBERSHIP},
    {"NEED_MEMBER_COUNT", SSP_VERDICT_NEED_MEMBER_COUNT},
    {"NEED_SHARED_ROOMS", SSP_VERDICT_NEED_SHARED_ROOMS},
    {"NEED_ROOM", SSP_VERDICT_NEED_ROOM},
    {"NEED_ADMIN", SSP_VERDICT_NEED_ADMIN},
    {"NEED_PROFILE", SSP_VERDICT_NEED_PROFILE},
    {"NEED_MEMBERS", SSP_VERDICT_NEED_MEMBERS},
    {"SYNC_POWER_LEVELS", SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS},
    {"FACT_UNKNOWN", SSP_FACT_UNKNOWN},
    {"FACT_NO", SSP_FACT_NO},
    {"FACT_YES", SSP_FACT_YES},
};

/* ---- multi-phase init and the state's life ---- */

/* Makes the exception classes into the state. Returns -1 with an exception set. */
static int make_exceptions(module_state *st)
{
    st->input_error = PyErr_NewExceptionWithDoc(
        "synapse_school_policy._core.InputError",
        "Invalid input from the caller: a config key, a request body field.", PyExc_ValueError,
        NULL);
    if (st->input_error == NULL)
        return -1;
    st->syntax_error = PyErr_NewExceptionWithDoc("synapse_school_policy._core.JsonSyntaxError",
                                                 "Input that is not well-formed JSON.",
                                                 st->input_error, NULL);
    if (st->syntax_error == NULL)
        return -1;
    st->store_error = PyErr_NewExceptionWithDoc("synapse_school_policy._core.StoreError",
                                                "The module's store failed.", PyExc_OSError,
                                                NULL);
    if (st->store_error == NULL)
        return -1;
    st->database_error = PyErr_NewExceptionWithDoc(
        "synapse_school_policy._core.DatabaseError",
        "The database refused a statement (an SQL error, not a lost connection).",
        st->store_error, NULL);
    return st->database_error == NULL ? -1 : 0;
}

static int core_exec(PyObject *module)
{
    module_state *st = state_of_module(module);
    PyObject *ids = NULL, *callbacks = NULL, *json_module = NULL;
    int rc = -1;

    ssp_global_init();
    if (mapping_keys_init() != 0)
        goto done;
    json_module = PyImport_ImportModule("json");
    if (json_module == NULL)
        goto done;
    st->parse_json = PyObject_GetAttrString(json_module, "loads");
    if (st->parse_json == NULL || decide_exec(module) != 0 || after_exec(module) != 0)
        goto done;
    st->engine_type = engine_type_new(module);
    if (st->engine_type == NULL || make_exceptions(st) != 0)
        goto done;
    ids = rule_ids_tuple();
    callbacks = callback_names_tuple();
    if (ids == NULL || callbacks == NULL)
        goto done;
    if (PyModule_AddObjectRef(module, "Engine", (PyObject *)st->engine_type) < 0 ||
        PyModule_AddObjectRef(module, "InputError", st->input_error) < 0 ||
        PyModule_AddObjectRef(module, "JsonSyntaxError", st->syntax_error) < 0 ||
        PyModule_AddObjectRef(module, "StoreError", st->store_error) < 0 ||
        PyModule_AddObjectRef(module, "DatabaseError", st->database_error) < 0 ||
        PyModule_AddObjectRef(module, "RULE_IDS", ids) < 0 ||
        PyModule_AddObjectRef(module, "CALLBACK_NAMES", callbacks) < 0)
        goto done;
    for (size_t i = 0; i < sizeof INT_CONSTANTS / sizeof INT_CONSTANTS[0]; i++) {
        if (PyModule_AddIntConstant(module, INT_CONSTANTS[i].name, INT_CONSTANTS[i].value) < 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(json_module);
    Py_XDECREF(ids);
    Py_XDECREF(callbacks);
    return rc;
}

static int core_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = state_of_module(module);

    Py_VISIT(st->engine_type);
    Py_VISIT(st->input_error);
    Py_VISIT(st->syntax_error);
    Py_VISIT(st->store_error);
    Py_VISIT(st->database_error);
    Py_VISIT(st->parse_json);
    return 0;
}

static int core_clear(PyObject *module)
{
    module_state *st = state_of_module(module);

    Py_CLEAR(st->engine_type);
    Py_CLEAR(st->input_error);
    Py_CLEAR(st->syntax_error);
    Py_CLEAR(st->store_error);
    Py_CLEAR(st->database_error);
    Py_CLEAR(st->parse_json);
    return 0;
}

static void core_free(void *module)
{
    core_clear((PyObject *)module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#ifdef Py_mod_multiple_interpreters
    /* Each Engine owns a writer thread and files: one interpreter at a time. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "synapse_school_policy._core",
    .m_doc = "The school policy engine (C).",
    .m_size = sizeof(module_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
