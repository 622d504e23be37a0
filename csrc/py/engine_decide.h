/*
 * Engine's decision methods (engine_decide.c): decide() on the hot path,
 * and the three that help the adapter around a decision:
 * create_room_invitees, power_levels_update and room_shape.
 */
#ifndef SSP_PY_ENGINE_DECIDE_H
#define SSP_PY_ENGINE_DECIDE_H

#include "py/engine_type.h"

SSP_PY_BEGIN_HIDDEN

/* Makes what decide() answers with, once per process: the rule ids as
 * interned str and the Denial type, which it adds to `module`. Returns -1
 * with an exception set. */
int decide_exec(PyObject *module);

PyObject *Engine_decide(EngineObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *Engine_create_room_invitees(EngineObject *self, PyObject *args);
PyObject *Engine_power_levels_update(EngineObject *self, PyObject *args);
PyObject *Engine_room_shape(EngineObject *self, PyObject *request);

SSP_PY_END_HIDDEN

#endif
