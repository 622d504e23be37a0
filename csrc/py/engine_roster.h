/*
 * Engine's roster methods (engine_roster.c): put, upsert (users and
 * groups), delete, get and size. The other group methods are
 * engine_groups.c's.
 */
#ifndef SSP_PY_ENGINE_ROSTER_H
#define SSP_PY_ENGINE_ROSTER_H

#include "py/engine_type.h"

SSP_PY_BEGIN_HIDDEN

PyObject *Engine_roster_put(EngineObject *self, PyObject *args);
PyObject *Engine_roster_upsert(EngineObject *self, PyObject *body_obj);
PyObject *Engine_roster_delete(EngineObject *self, PyObject *args);
PyObject *Engine_roster_get(EngineObject *self, PyObject *args);
PyObject *Engine_roster_size(EngineObject *self, PyObject *ignored);

SSP_PY_END_HIDDEN

#endif
