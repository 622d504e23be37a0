/*
 * Engine's audit and store methods. Queries, purges, flushes and syncs
 * wait on disk or the database, so they release the GIL around the engine
 * call (which makes no Python API call); counters are read under the
 * engine's own mutexes and keep it.
 */
#include "py/engine_audit.h"

#include <string.h>

#include "py/convert.h"

/* audit_query(*, since, until, rule, school, user, limit, before, kind) ->
 * {records, next}. Called with the GIL; released around the query. */
PyObject *Engine_audit_query(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"since", "until", "rule",   "school", "user",
                             "limit", "before", "kind", NULL};
    long long since = 0, until = 0, before = 0, limit = 100;
    PyObject *since_obj = NULL, *until_obj = NULL, *before_obj = NULL, *limit_obj = NULL;
    PyObject *rule_obj = Py_None, *school_obj = Py_None, *user_obj = Py_None; /* all borrowed */
    PyObject *kind_obj = Py_None;
    module_state *st = engine_state(self);
    ssp_audit_filter filter = {0};
    const char *kind = NULL;
    char *result = NULL;
    ssp_error err = {0};
    int rc;

    if (st == NULL)
        return NULL;
    /* Out-of-range numbers and NUL characters are bad input (InputError),
     * like everything else the admin API passes on. */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOOOOOO:audit_query", kwlist, &since_obj,
                                     &until_obj, &rule_obj, &school_obj, &user_obj, &limit_obj,
                                     &before_obj, &kind_obj) ||
        ms_arg(st, since_obj, "since", &since) != 0 || ms_arg(st, until_obj, "until", &until) != 0 ||
        ms_arg(st, before_obj, "from", &before) != 0 || ms_arg(st, limit_obj, "limit", &limit) != 0 ||
        text_arg(st, rule_obj, "rule", true, &filter.rule) != 0 ||
        text_arg(st, school_obj, "school", true, &filter.school) != 0 ||
        text_arg(st, user_obj, "user", true, &filter.user) != 0 ||
        text_arg(st, kind_obj, "kind", true, &kind) != 0)
        return NULL;
    if (limit < 1 || limit > 1000) {
        PyErr_SetString(st->input_error, "limit: expected an integer from 1 to 1000");
        return NULL;
    }
    if (kind != NULL && strcmp(kind, "denial") == 0) {
        filter.kinds = SSP_AUDIT_ONLY_DENIALS;
    } else if (kind != NULL && strcmp(kind, "action") == 0) {
        filter.kinds = SSP_AUDIT_ONLY_ACTIONS;
    } else if (kind != NULL) {
        PyErr_SetString(st->input_error, "kind: expected denial or action");
        return NULL;
    }
    filter.since_ms = since;
    filter.until_ms = until;
    filter.limit = (size_t)limit;
    filter.before_id = before;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_query(self->engine, &filter, &result, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(st, &err);
    return py_from_json_text(st, result);
}

/* audit_action({"action": ..., "actor", "target", "room_id", "group",
 * "school", "reason"}) -> the record's id: queues the audit record of
 * something the module did (ssp_audit_action). Every value a str or None;
 * "action" required. Called with the GIL, which it keeps: queuing never
 * waits on I/O (wait for the record with wait_durable). */
PyObject *Engine_audit_action(EngineObject *self, PyObject *arg)
{
    static const char *const keys[] = {"action", "actor",  "target", "room_id",
                                       "group",  "school", "reason", NULL};
    module_state *st = engine_state(self);
    const char *values[7] = {NULL};
    ssp_audit_action_record action;
    PyObject *key, *value; /* borrowed */
    Py_ssize_t pos = 0;
    ssp_error err = {0};
    int64_t id;

    if (st == NULL)
        return NULL;
    if (!PyDict_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "audit_action() takes a dict");
        return NULL;
    }
    while (PyDict_Next(arg, &pos, &key, &value)) {
        const char *name = is_str(key) ? PyUnicode_AsUTF8AndSize(key, NULL) : NULL;
        size_t i = 0;

        if (name == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(st->input_error, "audit_action: the keys must be str");
            return NULL;
        }
        while (keys[i] != NULL && strcmp(keys[i], name) != 0)
            i++;
        if (keys[i] == NULL) {
            PyErr_Format(st->input_error, "%s: unknown key", name);
            return NULL;
        }
        if (text_arg(st, value, keys[i], true, &values[i]) != 0)
            return NULL;
    }
    action.action = values[0];
    action.actor = values[1];
    action.target = values[2];
    action.room_id = values[3];
    action.group = values[4];
    action.school = values[5];
    action.reason = values[6];
    id = ssp_audit_action(self->engine, &action, &err);
    if (id < 0)
        return raise_engine_error(st, &err);
    return PyLong_FromLongLong(id);
}

/* audit_view(request_json) -> response dict (ssp_audit_view). Called
 * with the GIL; released around the engine call, which reads the store. */
PyObject *Engine_audit_view(EngineObject *self, PyObject *arg)
{
    const char *request;
    Py_ssize_t len;
    char *response = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "audit_view() takes the request as a JSON str");
        return NULL;
    }
    request = PyUnicode_AsUTF8AndSize(arg, &len);
    if (request == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_view(self->engine, request, (size_t)len, &response, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return py_from_json_text(engine_state(self), response);
}

/* audit_flush() -> None: waits until every queued audit record is written.
 * Called with the GIL; released while it waits. */
PyObject *Engine_audit_flush(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_flush(self->engine, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}

/* wait_durable(audit_id, timeout_ms) -> bool: waits, without the GIL, until
 * a denial's audit record (Denial.audit_id) is written, at most timeout_ms.
 * True once it is (and for audit_id 0), False on timeout. Run it in a thread:
 * it blocks until the store's writer has done the next fdatasync or commit. */
PyObject *Engine_wait_durable(EngineObject *self, PyObject *args)
{
    long long audit_id, timeout_ms;
    bool durable;

    if (!PyArg_ParseTuple(args, "LL:wait_durable", &audit_id, &timeout_ms))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    durable = ssp_decision_wait_durable(self->engine, (int64_t)audit_id, (int64_t)timeout_ms);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(durable);
}

/* durable_fd() -> int: the eventfd that becomes readable when audit records
 * became durable (the adapter's reactor watches it; read 8 bytes to reset
 * it), -1 without a store. The engine owns and closes it. Keeps the GIL. */
PyObject *Engine_durable_fd(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(ssp_audit_durable_fd(self->engine));
}

/* last_durable_id() -> int: every audit record with an id at or below it is
 * durable. A read under the queue's mutex, never I/O: keeps the GIL. */
PyObject *Engine_last_durable_id(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(ssp_audit_last_durable_id(self->engine));
}

/* audit_stalled_ms() -> int: how long queued audit records have waited with
 * nothing written (0: none waits). Keeps the GIL. */
PyObject *Engine_audit_stalled_ms(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(ssp_audit_stalled_ms(self->engine));
}

/* audit_close_summaries(all=False) -> int: queues the flood summaries whose
 * span has ended (all of them with all=True: at shutdown); how many. The
 * adapter calls it every second. Memory only: keeps the GIL. */
PyObject *Engine_audit_close_summaries(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"all", NULL};
    int all = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:audit_close_summaries", kwlist, &all))
        return NULL;
    return PyLong_FromSize_t(ssp_audit_close_summaries(self->engine, all != 0));
}

/* flood_stats() -> the flood limit's counters: limited (denials counted in
 * a summary), summaries (summary records queued), evicted (keys pushed out
 * of the table), open_summaries. Keeps the GIL (one pass over the table). */
PyObject *Engine_flood_stats(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_flood_stats stats;

    ssp_audit_flood_stats(self->engine, &stats);
    return Py_BuildValue("{sKsKsKsK}", "limited", (unsigned long long)stats.limited, "summaries",
                         (unsigned long long)stats.summaries, "evicted",
                         (unsigned long long)stats.evicted, "open_summaries",
                         (unsigned long long)stats.open_summaries);
}

/* audit_stats() -> the audit queue's counters. Reads them under the
 * queue's mutex: keeps the GIL. */
PyObject *Engine_audit_stats(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_audit_stats stats;

    ssp_audit_get_stats(self->engine, &stats);
    return Py_BuildValue("{sKsKsKsK}", "queued", (unsigned long long)stats.queued, "written",
                         (unsigned long long)stats.written, "queue_depth",
                         (unsigned long long)stats.queue_depth, "write_errors",
                         (unsigned long long)stats.write_errors);
}

/* audit_purge(before_ms) -> number of records deleted: those with a
 * timestamp before before_ms (ms since the epoch, not a duration). Waits
 * on the database, so the GIL is released. */
PyObject *Engine_audit_purge(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"before_ms", NULL};
    long long before = 0;
    uint64_t deleted = 0;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L:audit_purge", kwlist, &before))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_purge(self->engine, before, &deleted, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    return PyLong_FromUnsignedLongLong(deleted);
}

/* store_status() -> dict. Reads counters under the store's mutex: no I/O,
 * the GIL stays held. */
PyObject *Engine_store_status(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_store_status st;

    ssp_store_get_status(self->engine, &st);
    return Py_BuildValue("{sOsOsKsKsKsKsLsKsssK}", "postgres", st.postgres ? Py_True : Py_False,
                         "connected", st.connected ? Py_True : Py_False, "audit_spilled_total",
                         (unsigned long long)st.audit_spilled_total, "audit_spill_pending",
                         (unsigned long long)st.audit_spill_pending, "roster_outbox_pending",
                         (unsigned long long)st.roster_outbox_pending, "connects",
                         (unsigned long long)st.connects, "roster_version",
                         (long long)st.roster_version, "reconcile_pending",
                         (unsigned long long)st.reconcile_pending, "last_error", st.last_error,
                         "roster_skipped", (unsigned long long)st.roster_skipped);
}

/* store_sync(timeout_ms=10000) -> None: waits until this engine's writes
 * are in the store itself (ssp_store_sync); StoreError when not in time.
 * Called with the GIL; released while it waits. */
PyObject *Engine_store_sync(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout_ms", NULL};
    long long timeout = 10000;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|L:store_sync", kwlist, &timeout))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_store_sync(self->engine, timeout, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}
