/*
 * Engine's methods of the special rooms' reconciliation (the plan and the
 * ledger) and of the roster feed.
 *
 * Every ledger call may wait on disk or the database, so the GIL is
 * released around it; the plan and the settings read memory only and keep
 * it. The engine makes no Python API call without the GIL.
 */
#include "py/engine_reconcile.h"

#include "py/convert.h"

/* reconcile_plan(school, user_id) -> dict: the special rooms' targets for
 * the user. Memory only (config and roster under its read lock): keeps the
 * GIL. */
PyObject *Engine_reconcile_plan(EngineObject *self, PyObject *args)
{
    const char *school, *user_id;
    char *plan = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTuple(args, "ss:reconcile_plan", &school, &user_id))
        return NULL;
    if (ssp_reconcile_plan(self->engine, school, user_id, &plan, &err) != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), plan);
}

/* reconciler_settings() -> dict, from the config: keeps the GIL. */
PyObject *Engine_reconciler_settings(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_reconciler_settings settings;

    ssp_engine_reconciler_settings(self->engine, &settings);
    return Py_BuildValue("{s:L, s:L, s:L}", "actions_per_second",
                         (long long)settings.actions_per_second, "batch_size",
                         (long long)settings.batch_size, "retry_max_seconds",
                         (long long)settings.retry_max_seconds);
}

/* ---- the ledger: on disk or in the database ---- */

/* reconcile_mark(school, user_ids) -> None, durable. The list's UTF-8
 * buffers live as long as the tuple of strings kept here. Called with the
 * GIL; released around the durable write. */
PyObject *Engine_reconcile_mark(EngineObject *self, PyObject *args)
{
    const char *school;
    PyObject *users_obj = NULL, *users = NULL, *result = NULL; /* users_obj borrowed */
    const char **user_ids = NULL;
    Py_ssize_t n;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "sO:reconcile_mark", &school, &users_obj))
        return NULL;
    if (PyUnicode_Check(users_obj)) {
        PyErr_SetString(PyExc_TypeError, "user_ids must be a list of str, not a str");
        return NULL;
    }
    users = PySequence_Tuple(users_obj);
    if (users == NULL)
        return NULL;
    n = PyTuple_Size(users);
    user_ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *user_ids);
    if (user_ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *user = PyTuple_GetItem(users, i); /* borrowed */

        if (!PyUnicode_Check(user)) {
            PyErr_Format(PyExc_TypeError, "user_ids[%zd] must be str", i);
            goto done;
        }
        user_ids[i] = PyUnicode_AsUTF8AndSize(user, NULL);
        if (user_ids[i] == NULL)
            goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_mark(self->engine, school, user_ids, (size_t)n, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        raise_engine_error(engine_state(self), &err);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(user_ids);
    Py_XDECREF(users);
    return result;
}

/* reconcile_due(now_ms, max) -> list of the due marks. Called with the GIL;
 * released around the read. */
PyObject *Engine_reconcile_due(EngineObject *self, PyObject *args)
{
    long long now_ms;
    Py_ssize_t max;
    char *marks = NULL;
    module_state *st = engine_state(self);
    ssp_error err = {0};
    int rc;

    if (st == NULL || !PyArg_ParseTuple(args, "Ln:reconcile_due", &now_ms, &max))
        return NULL;
    if (max < 0) {
        PyErr_SetString(st->input_error, "max: expected a non-negative integer");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_due(self->engine, now_ms, (size_t)max, &marks, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(st, &err);
    return py_from_json_text(st, marks);
}

/* reconcile_done(school, user_id, generation) -> None. Called with the
 * GIL; released around the durable write. */
PyObject *Engine_reconcile_done(EngineObject *self, PyObject *args)
{
    const char *school, *user_id;
    long long generation;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ssL:reconcile_done", &school, &user_id, &generation))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_done(self->engine, school, user_id, generation, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}

/* reconcile_failed(school, user_id, generation, error, retry_at_ms) -> None.
 * Called with the GIL; released around the durable write. */
PyObject *Engine_reconcile_failed(EngineObject *self, PyObject *args)
{
    const char *school, *user_id, *error;
    long long generation, retry_at_ms;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ssLsL:reconcile_failed", &school, &user_id, &generation, &error,
                          &retry_at_ms))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_failed(self->engine, school, user_id, generation, error, retry_at_ms, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}

/* reconcile_set_room(school, kind, room_id or None) -> None. Called with
 * the GIL; released around the durable write. */
PyObject *Engine_reconcile_set_room(EngineObject *self, PyObject *args)
{
    const char *school, *kind, *room_id;
    PyObject *room_obj = NULL; /* borrowed from args */
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ssO:reconcile_set_room", &school, &kind, &room_obj) ||
        optional_str(room_obj, "room_id", &room_id) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_set_room(self->engine, school, kind, room_id, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}

/* reconcile_get_room(school, kind) -> room id or None. Called with the
 * GIL; released around the read. */
PyObject *Engine_reconcile_get_room(EngineObject *self, PyObject *args)
{
    const char *school, *kind;
    char *room_id = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ss:reconcile_get_room", &school, &kind))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_get_room(self->engine, school, kind, &room_id, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    if (room_id == NULL)
        Py_RETURN_NONE;
    return take_engine_string(room_id);
}

/* reconcile_sync_config() -> number of schools whose applied config changed
 * (and are marked). Called with the GIL; released around the ledger's
 * reads and writes. */
PyObject *Engine_reconcile_sync_config(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    size_t changed = 0;
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_sync_config(self->engine, &changed, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return PyLong_FromSize_t(changed);
}

/* reconcile_status() -> dict. Called with the GIL; released around the read. */
PyObject *Engine_reconcile_status(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    char *status = NULL;
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_status(self->engine, &status, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), status);
}

/* ---- the roster feed ---- */

/* roster_feed_start() -> None. Called with the GIL; releases it while the
 * engine resolves the broker URL (may read a file) and starts the feed's
 * thread, which never takes the GIL. */
PyObject *Engine_roster_feed_start(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_feed_start(self->engine, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}

/* roster_feed_status() -> dict (None without roster_feed). Reads
 * memory under the feed's mutex only: keeps the GIL. */
PyObject *Engine_roster_feed_status(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    char *status = NULL;
    ssp_error err = {0};

    if (ssp_roster_feed_status(self->engine, &status, &err) != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), status);
}
