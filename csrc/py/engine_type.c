/*
 * The Engine heap type: its life (new, open, traverse, dealloc), its
 * getters, and the one method table, which lists the methods of
 * engine_decide.c, engine_after.c, engine_roster.c, engine_groups.c,
 * engine_audit.c and engine_reconcile.c
 * with their docstrings (the Python face; _core.pyi says the same).
 *
 * Ownership: an EngineObject owns its ssp_engine and frees it in dealloc;
 * it holds a reference to its type (a heap type), which holds the module.
 */
#include "py/engine_type.h"

#include "py/convert.h"
#include "py/engine_audit.h"
#include "py/engine_after.h"
#include "py/engine_decide.h"
#include "py/engine_groups.h"
#include "py/engine_reconcile.h"
#include "py/engine_roster.h"

/* Engine(config_json, server_name, worker_name): parses and checks the
 * config; the store opens later (open). Memory only: keeps the GIL. */
static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"config_json", "server_name", "worker_name", NULL};
    const char *config_json, *server_name, *worker_name;
    Py_ssize_t config_len;
    EngineObject *self = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#ss:Engine", kwlist, &config_json, &config_len,
                                     &server_name, &worker_name))
        return NULL;
    self = (EngineObject *)((allocfunc)PyType_GetSlot(type, Py_tp_alloc))(type, 0);
    if (self == NULL)
        return NULL;
    self->engine = ssp_engine_new(config_json, (size_t)config_len, server_name, worker_name, &err);
    if (self->engine == NULL) {
        Py_DECREF(self);
        return raise_engine_error(state_of_type(type), &err);
    }
    return (PyObject *)self;
}

static int Engine_traverse(EngineObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

/* Called with the GIL; released while the engine is freed. */
static void Engine_dealloc(EngineObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->engine != NULL) {
        ssp_engine *engine = self->engine;

        self->engine = NULL;
        /* Freeing joins the audit writer thread, which may be mid-fsync. */
        Py_BEGIN_ALLOW_THREADS
        ssp_engine_free(engine);
        Py_END_ALLOW_THREADS
    }
    ((freefunc)PyType_GetSlot(type, Py_tp_free))(self);
    Py_DECREF(type);
}

/* open(*, offline=False, worker=False): offline is the command line's open
 * beside a running Synapse, worker a Synapse process that is one of several
 * (ssp_open_options in engine.h). Called with the GIL; released while the
 * store opens and the roster loads. */
static PyObject *Engine_open(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"offline", "worker", NULL};
    ssp_open_options options = {0};
    int offline = 0, worker = 0;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pp:open", kwlist, &offline, &worker))
        return NULL;
    options.offline = offline != 0;
    options.worker = worker != 0;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_engine_open_with(self->engine, &options, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(engine_state(self), &err);
    Py_RETURN_NONE;
}

static PyObject *Engine_get_policy_event_type(EngineObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(ssp_engine_policy_event_type(self->engine));
}

static PyObject *Engine_get_strict_homeserver_config(EngineObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(ssp_engine_strict_homeserver_config(self->engine));
}

static PyObject *Engine_get_reconciler_user(EngineObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(ssp_engine_reconciler_user(self->engine));
}

static PyMethodDef Engine_methods[] = {
    {"create_room_invitees", (PyCFunction)Engine_create_room_invitees, METH_VARARGS,
     "create_room_invitees(actor, body) -> the users a createRoom body puts into the room."},
    {"open", (PyCFunction)(void (*)(void))Engine_open, METH_VARARGS | METH_KEYWORDS,
     "open(*, offline=False, worker=False): open the store and load the roster. Blocks on "
     "disk I/O. offline: the command line's open beside a running Synapse; worker: this "
     "Synapse process is one of several (the embedded store refuses)."},
    {"decide", (PyCFunction)(void (*)(void))Engine_decide, METH_FASTCALL,
     "decide(callback, actor, target, room_id, event_type, state_key, content, room, "
     "actor_admin, is_invited, shared_rooms, actor_membership, member_count, redacts)"},
    {"after_event", (PyCFunction)(void (*)(void))Engine_after_event, METH_FASTCALL,
     "after_event(event, state=None, members=None, profile=None, sender_admin=None) -> None, "
     "NEED_ROOM, NEED_MEMBERS, NEED_PROFILE, NEED_ADMIN or an Action: what must be taken back "
     "after the fact (rules/after_the_fact.h)."},
    {"power_levels_update", (PyCFunction)Engine_power_levels_update, METH_VARARGS,
     "power_levels_update(room_policy, power_levels) -> changes to make, or None."},
    {"room_shape", (PyCFunction)Engine_room_shape, METH_O,
     "room_shape(request) -> the JSON Patch \"add\" operations on_create_room applies to a "
     "createRoom request: guest access closed, no federation and policy power levels for "
     "rooms created with the policy event."},
    {"roster_put", (PyCFunction)Engine_roster_put, METH_VARARGS,
     "roster_put(user_id, body) -> the stored entry (dict). Durable before it returns."},
    {"roster_upsert", (PyCFunction)Engine_roster_upsert, METH_O,
     "roster_upsert(body) -> {\"upserted\": users written, \"groups\": groups applied}: "
     "{\"users\": [...], \"groups\": [...]}, either list absent, not both."},
    {"group_put", (PyCFunction)Engine_group_put, METH_VARARGS,
     "group_put(group_id, body) -> the stored group (dict), with \"ignored\": True when the "
     "body's version was not higher than the stored one. Durable before it returns."},
    {"group_get", (PyCFunction)Engine_group_get, METH_VARARGS,
     "group_get(group_id) -> the group (dict, with \"room_id\") or None."},
    {"group_delete", (PyCFunction)Engine_group_delete, METH_VARARGS,
     "group_delete(group_id) -> whether there was such a group; it stays as deleted."},
    {"groups_list", (PyCFunction)(void (*)(void))Engine_groups_list, METH_VARARGS | METH_KEYWORDS,
     "groups_list(school, from_=None, limit=100) -> {\"groups\": [...], \"next\": id or None}, "
     "ordered by group id."},
    {"groups_of", (PyCFunction)Engine_groups_of, METH_VARARGS,
     "groups_of(user_id) -> the ids of the groups listing the user, sorted."},
    {"group_plan", (PyCFunction)(void (*)(void))Engine_group_plan, METH_VARARGS | METH_KEYWORDS,
     "group_plan(group_id, now_ms=None) -> what the reconciler must make true of the group's "
     "room (dict), or None."},
    {"roster_delete", (PyCFunction)Engine_roster_delete, METH_VARARGS,
     "roster_delete(user_id) -> whether the user was on the roster."},
    {"reconcile_plan", (PyCFunction)Engine_reconcile_plan, METH_VARARGS,
     "reconcile_plan(school, user_id) -> dict: the special rooms' targets for the user "
     "(\"\" for the school itself)."},
    {"reconciler_settings", (PyCFunction)Engine_reconciler_settings, METH_NOARGS,
     "The reconciler's rate, batch size and backoff cap, from the config."},
    {"roster_get", (PyCFunction)Engine_roster_get, METH_VARARGS,
     "roster_get(user_id) -> the entry (dict) or None."},
    {"roster_size", (PyCFunction)Engine_roster_size, METH_NOARGS, "Users on the roster."},
    {"audit_query", (PyCFunction)(void (*)(void))Engine_audit_query, METH_VARARGS | METH_KEYWORDS,
     "audit_query(*, since, until, rule, school, user, limit, before, kind) -> {records, next}."},
    {"audit_action", (PyCFunction)Engine_audit_action, METH_O,
     "audit_action({action, actor, target, room_id, group, school, reason}) -> the id of the "
     "queued audit record of something the module did (wait_durable waits for it)."},
    {"audit_flush", (PyCFunction)Engine_audit_flush, METH_NOARGS,
     "Wait until every queued audit record is written."},
    {"wait_durable", (PyCFunction)Engine_wait_durable, METH_VARARGS,
     "wait_durable(audit_id, timeout_ms) -> bool: wait (without the GIL) until a denial's "
     "audit record is written; False on timeout."},
    {"durable_fd", (PyCFunction)Engine_durable_fd, METH_NOARGS,
     "durable_fd() -> int: an eventfd, readable when audit records became durable (read 8 "
     "bytes to reset it; -1 without a store). The engine owns it."},
    {"last_durable_id", (PyCFunction)Engine_last_durable_id, METH_NOARGS,
     "last_durable_id() -> int: every audit record up to this id is durable."},
    {"audit_stalled_ms", (PyCFunction)Engine_audit_stalled_ms, METH_NOARGS,
     "audit_stalled_ms() -> int: how long queued audit records have waited with nothing "
     "written (0: none waits)."},
    {"audit_close_summaries", (PyCFunction)(void (*)(void))Engine_audit_close_summaries,
     METH_VARARGS | METH_KEYWORDS,
     "audit_close_summaries(all=False) -> int: queue the flood summaries whose span ended "
     "(all of them with all=True); how many."},
    {"flood_stats", (PyCFunction)Engine_flood_stats, METH_NOARGS,
     "The flood limit's counters: limited, summaries, evicted, open_summaries."},
    {"audit_stats", (PyCFunction)Engine_audit_stats, METH_NOARGS, "Audit queue counters."},
    {"store_status", (PyCFunction)Engine_store_status, METH_NOARGS,
     "The store's state: postgres, connected, audit_spilled_total, audit_spill_pending, "
     "roster_outbox_pending, connects, roster_version, reconcile_pending, last_error, "
     "roster_skipped."},
    {"audit_purge", (PyCFunction)(void (*)(void))Engine_audit_purge, METH_VARARGS | METH_KEYWORDS,
     "audit_purge(before_ms) -> records deleted: those with a timestamp before before_ms, "
     "ms since the epoch (PostgreSQL store)."},
    {"store_sync", (PyCFunction)(void (*)(void))Engine_store_sync, METH_VARARGS | METH_KEYWORDS,
     "store_sync(timeout_ms=10000): wait until this engine's writes are in the store itself."},
    {"reconcile_mark", (PyCFunction)Engine_reconcile_mark, METH_VARARGS,
     "reconcile_mark(school, user_ids) -> None. \"\" marks the school itself. Durable."},
    {"reconcile_due", (PyCFunction)Engine_reconcile_due, METH_VARARGS,
     "reconcile_due(now_ms, max) -> list of {school, user_id, generation, attempts}."},
    {"reconcile_done", (PyCFunction)Engine_reconcile_done, METH_VARARGS,
     "reconcile_done(school, user_id, generation) -> None; a renewed mark stays."},
    {"reconcile_failed", (PyCFunction)Engine_reconcile_failed, METH_VARARGS,
     "reconcile_failed(school, user_id, generation, error, retry_at_ms) -> None."},
    {"reconcile_set_room", (PyCFunction)Engine_reconcile_set_room, METH_VARARGS,
     "reconcile_set_room(school, kind, room_id or None) -> None."},
    {"reconcile_get_room", (PyCFunction)Engine_reconcile_get_room, METH_VARARGS,
     "reconcile_get_room(school, kind) -> room id or None."},
    {"reconcile_sync_config", (PyCFunction)Engine_reconcile_sync_config, METH_NOARGS,
     "reconcile_sync_config() -> number of schools whose applied config changed (marked)."},
    {"audit_view", (PyCFunction)Engine_audit_view, METH_O,
     "audit_view(request_json) -> {\"status\": 200, \"body\": ...} or {\"status\": 403, ...}."},
    {"reconcile_status", (PyCFunction)Engine_reconcile_status, METH_NOARGS,
     "reconcile_status() -> {\"schools\": {...}}."},
    {"roster_feed_start", (PyCFunction)Engine_roster_feed_start, METH_NOARGS,
     "roster_feed_start() -> None: starts the roster_feed consumer thread."},
    {"roster_feed_status", (PyCFunction)Engine_roster_feed_status, METH_NOARGS,
     "roster_feed_status() -> the roster feed's state (dict), None when not configured."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Engine_getset[] = {
    {"reconciler_user", (getter)Engine_get_reconciler_user, NULL,
     "The user that owns the special rooms.", NULL},
    {"strict_homeserver_config", (getter)Engine_get_strict_homeserver_config, NULL,
     "Whether a failed homeserver.yaml self-check stops Synapse.", NULL},
    {"policy_event_type", (getter)Engine_get_policy_event_type, NULL,
     "The managed-room state event type.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Engine_slots[] = {
    {Py_tp_doc, "Engine(config_json, server_name, worker_name): the school policy engine."},
    {Py_tp_new, Engine_new},
    {Py_tp_dealloc, Engine_dealloc},
    {Py_tp_traverse, Engine_traverse},
    {Py_tp_methods, Engine_methods},
    {Py_tp_getset, Engine_getset},
    {0, NULL},
};

static PyType_Spec Engine_spec = {
    .name = "synapse_school_policy._core.Engine",
    .basicsize = sizeof(EngineObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Engine_slots,
};

PyTypeObject *engine_type_new(PyObject *module)
{
    return (PyTypeObject *)PyType_FromModuleAndSpec(module, &Engine_spec, NULL);
}
