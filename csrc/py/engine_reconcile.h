/*
 * Engine's methods of the special rooms' reconciliation and of the roster
 * feed (engine_reconcile.c): the plan, the ledger's marks and rooms, its
 * status, and the feed's start and status.
 */
#ifndef SSP_PY_ENGINE_RECONCILE_H
#define SSP_PY_ENGINE_RECONCILE_H

#include "py/engine_type.h"

SSP_PY_BEGIN_HIDDEN

PyObject *Engine_reconcile_plan(EngineObject *self, PyObject *args);
PyObject *Engine_reconciler_settings(EngineObject *self, PyObject *ignored);
PyObject *Engine_reconcile_mark(EngineObject *self, PyObject *args);
PyObject *Engine_reconcile_due(EngineObject *self, PyObject *args);
PyObject *Engine_reconcile_done(EngineObject *self, PyObject *args);
PyObject *Engine_reconcile_failed(EngineObject *self, PyObject *args);
PyObject *Engine_reconcile_set_room(EngineObject *self, PyObject *args);
PyObject *Engine_reconcile_get_room(EngineObject *self, PyObject *args);
PyObject *Engine_reconcile_sync_config(EngineObject *self, PyObject *ignored);
PyObject *Engine_reconcile_status(EngineObject *self, PyObject *ignored);
PyObject *Engine_roster_feed_start(EngineObject *self, PyObject *ignored);
PyObject *Engine_roster_feed_status(EngineObject *self, PyObject *ignored);

SSP_PY_END_HIDDEN

#endif
