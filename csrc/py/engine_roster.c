/*
 * Engine's roster methods. A write is durable (fsync or commit) before it
 * returns, so writes release the GIL around the engine call; reads are of
 * memory under the roster's read lock and keep it. The engine makes no
 * Python API call, so running it without the GIL is safe; the UTF-8
 * buffers it is given stay valid because the caller's arguments hold them.
 */
#include "py/engine_roster.h"

#include "py/convert.h"

/* roster_put(user_id, body) -> the stored entry (dict). Called with the
 * GIL; released around the durable write. */
PyObject *Engine_roster_put(EngineObject *self, PyObject *args)
{
    const char *user_id, *body;
    Py_ssize_t body_len;
    PyObject *user_obj = NULL, *body_obj = NULL; /* borrowed from args */
    char *entry = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "OO:roster_put", &user_obj, &body_obj) ||
        text_arg(engine_state(self), user_obj, "user_id", false, &user_id) != 0 ||
        body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_put(self->engine, user_id, body, (size_t)body_len, &entry, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), entry);
}

/* roster_upsert(body) -> {"upserted": users written, "groups": groups
 * applied (stale ones not counted)}. Called with the GIL; released around
 * the durable write. */
PyObject *Engine_roster_upsert(EngineObject *self, PyObject *body_obj)
{
    const char *body;
    Py_ssize_t body_len;
    size_t upserted = 0, groups = 0;
    ssp_error err = {0};
    int rc;

    if (body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_upsert_groups(self->engine, body, (size_t)body_len, &upserted, &groups, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return Py_BuildValue("{s:n, s:n}", "upserted", (Py_ssize_t)upserted, "groups",
                         (Py_ssize_t)groups);
}

/* roster_delete(user_id) -> whether the user was on the roster. Called
 * with the GIL; released around the durable write. */
PyObject *Engine_roster_delete(EngineObject *self, PyObject *args)
{
    const char *user_id;
    PyObject *user_obj = NULL; /* borrowed from args */
    bool existed = false;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "O:roster_delete", &user_obj) ||
        text_arg(engine_state(self), user_obj, "user_id", false, &user_id) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_delete(self->engine, user_id, &existed, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return PyBool_FromLong(existed);
}

/* roster_get(user_id) -> the entry (dict) or None. */
PyObject *Engine_roster_get(EngineObject *self, PyObject *args)
{
    const char *user_id;
    PyObject *user_obj = NULL; /* borrowed from args */
    char *entry = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTuple(args, "O:roster_get", &user_obj) ||
        text_arg(engine_state(self), user_obj, "user_id", false, &user_id) != 0)
        return NULL;
    /* A read of memory under the roster's read lock: no I/O, keep the GIL. */
    if (ssp_roster_get(self->engine, user_id, &entry, &err) != 0)
        return raise_engine_error(engine_state(self), &err);
    if (entry == NULL)
        Py_RETURN_NONE;
    return py_from_json_text(engine_state(self), entry);
}

/* roster_size() -> users on the roster. Memory only: keeps the GIL. */
PyObject *Engine_roster_size(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t(ssp_roster_size(self->engine));
}
