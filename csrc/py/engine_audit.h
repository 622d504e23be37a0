/*
 * Engine's audit and store methods (engine_audit.c): the audit log's
 * queries, its durability and counters, and the store's state and sync.
 */
#ifndef SSP_PY_ENGINE_AUDIT_H
#define SSP_PY_ENGINE_AUDIT_H

#include "py/engine_type.h"

SSP_PY_BEGIN_HIDDEN

PyObject *Engine_audit_query(EngineObject *self, PyObject *args, PyObject *kwds);
PyObject *Engine_audit_action(EngineObject *self, PyObject *arg);
PyObject *Engine_audit_view(EngineObject *self, PyObject *arg);
PyObject *Engine_audit_flush(EngineObject *self, PyObject *ignored);
PyObject *Engine_wait_durable(EngineObject *self, PyObject *args);
PyObject *Engine_durable_fd(EngineObject *self, PyObject *ignored);
PyObject *Engine_last_durable_id(EngineObject *self, PyObject *ignored);
PyObject *Engine_audit_stalled_ms(EngineObject *self, PyObject *ignored);
PyObject *Engine_audit_close_summaries(EngineObject *self, PyObject *args, PyObject *kwds);
PyObject *Engine_flood_stats(EngineObject *self, PyObject *ignored);
PyObject *Engine_audit_stats(EngineObject *self, PyObject *ignored);
PyObject *Engine_audit_purge(EngineObject *self, PyObject *args, PyObject *kwds);
PyObject *Engine_store_status(EngineObject *self, PyObject *ignored);
PyObject *Engine_store_sync(EngineObject *self, PyObject *args, PyObject *kwds);

SSP_PY_END_HIDDEN

#endif
