/*
 * Engine's group methods (engine_groups.c): put, get, delete, list, a
 * user's groups and the plan of a group's room (groups.h).
 */
#ifndef SSP_PY_ENGINE_GROUPS_H
#define SSP_PY_ENGINE_GROUPS_H

#include "py/engine_type.h"

SSP_PY_BEGIN_HIDDEN

PyObject *Engine_group_put(EngineObject *self, PyObject *args);
PyObject *Engine_group_get(EngineObject *self, PyObject *args);
PyObject *Engine_group_delete(EngineObject *self, PyObject *args);
PyObject *Engine_groups_list(EngineObject *self, PyObject *args, PyObject *kwds);
PyObject *Engine_groups_of(EngineObject *self, PyObject *args);
PyObject *Engine_group_plan(EngineObject *self, PyObject *args, PyObject *kwds);

SSP_PY_END_HIDDEN

#endif
