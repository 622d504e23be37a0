/*
 * Engine's group methods. Writes are durable (fsync or commit) before they
 * return, so they release the GIL around the engine call; so does get,
 * which asks the store for the group's room. The other reads are of memory
 * under the roster's read lock and keep the GIL. The engine makes no
 * Python API call, so running it without the GIL is safe; the UTF-8
 * buffers it is given stay valid because the caller's arguments hold them.
 */
#include "py/engine_groups.h"

#include "py/convert.h"

/* group_put(group_id, body) -> the stored group (dict), with "ignored":
 * True when the body's version was not higher than the stored one. Called
 * with the GIL; released around the durable write. */
PyObject *Engine_group_put(EngineObject *self, PyObject *args)
{
    const char *group_id, *body;
    Py_ssize_t body_len;
    PyObject *id_obj = NULL, *body_obj = NULL; /* borrowed from args */
    char *group = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "OO:group_put", &id_obj, &body_obj) ||
        text_arg(engine_state(self), id_obj, "group", false, &group_id) != 0 ||
        body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_group_put(self->engine, group_id, body, (size_t)body_len, &group, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), group);
}

/* group_get(group_id) -> the group (dict, with "room_id") or None. Called
 * with the GIL; released around the store's read of the room. */
PyObject *Engine_group_get(EngineObject *self, PyObject *args)
{
    const char *group_id;
    PyObject *id_obj = NULL; /* borrowed from args */
    char *group = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "O:group_get", &id_obj) ||
        text_arg(engine_state(self), id_obj, "group", false, &group_id) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_group_get(self->engine, group_id, &group, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    if (group == NULL)
        Py_RETURN_NONE;
    return py_from_json_text(engine_state(self), group);
}

/* group_delete(group_id) -> whether there was such a group. Called with
 * the GIL; released around the durable write. */
PyObject *Engine_group_delete(EngineObject *self, PyObject *args)
{
    const char *group_id;
    PyObject *id_obj = NULL; /* borrowed from args */
    bool existed = false;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "O:group_delete", &id_obj) ||
        text_arg(engine_state(self), id_obj, "group", false, &group_id) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_group_delete(self->engine, group_id, &existed, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return PyBool_FromLong(existed);
}

/* groups_list(school, from_=None, limit=100) -> {"groups", "next"}. Memory
 * only: keeps the GIL. */
PyObject *Engine_groups_list(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"school", "from_", "limit", NULL};
    PyObject *school_obj = NULL, *from_obj = Py_None, *limit_obj = NULL; /* borrowed */
    module_state *st = engine_state(self);
    const char *school, *from;
    long long limit = 100;
    char *page = NULL;
    ssp_error err = {0};

    if (st == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:groups_list", kwlist, &school_obj,
                                     &from_obj, &limit_obj) ||
        text_arg(st, school_obj, "school", false, &school) != 0 ||
        text_arg(st, from_obj, "from", true, &from) != 0 ||
        ms_arg(st, limit_obj, "limit", &limit) != 0)
        return NULL;
    if (ssp_groups_list(self->engine, school, from, (size_t)limit, &page, &err) != 0)
        return raise_engine_error(st, &err);
    return py_from_json_text(st, page);
}

/* groups_of(user_id) -> the ids of the groups listing the user, sorted.
 * Memory only: keeps the GIL. */
PyObject *Engine_groups_of(EngineObject *self, PyObject *args)
{
    const char *user_id;
    PyObject *user_obj = NULL; /* borrowed from args */
    char *ids = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTuple(args, "O:groups_of", &user_obj) ||
        text_arg(engine_state(self), user_obj, "user_id", false, &user_id) != 0)
        return NULL;
    if (ssp_groups_of(self->engine, user_id, &ids, &err) != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), ids);
}

/* group_plan(group_id, now_ms=None) -> what the reconciler must make true
 * of the group's room (dict), or None. now_ms None: the clock. Memory
 * only: keeps the GIL. */
PyObject *Engine_group_plan(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"group_id", "now_ms", NULL};
    PyObject *id_obj = NULL, *now_obj = NULL; /* borrowed */
    module_state *st = engine_state(self);
    const char *group_id;
    long long now_ms = -1;
    char *plan = NULL;
    ssp_error err = {0};

    if (st == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:group_plan", kwlist, &id_obj, &now_obj) ||
        text_arg(st, id_obj, "group", false, &group_id) != 0 ||
        (now_obj != Py_None && ms_arg(st, now_obj, "now_ms", &now_ms) != 0))
        return NULL;
    if (ssp_group_plan(self->engine, group_id, (int64_t)now_ms, &plan, &err) != 0)
        return raise_engine_error(st, &err);
    if (plan == NULL)
        Py_RETURN_NONE;
    return py_from_json_text(st, plan);
}
