/*
 * Engine.after_event (engine_after.c): what the module takes back after
 * the fact, decided by the engine's rules (rules/after_the_fact.h).
 */
#ifndef SSP_PY_ENGINE_AFTER_H
#define SSP_PY_ENGINE_AFTER_H

#include "py/engine_type.h"

SSP_PY_BEGIN_HIDDEN

/* Makes what after_event() reads and answers with, once per process: the
 * attribute names as interned str and the Action type, which it adds to
 * `module`. Returns -1 with an exception set. */
int after_exec(PyObject *module);

PyObject *Engine_after_event(EngineObject *self, PyObject *const *args, Py_ssize_t nargs);

SSP_PY_END_HIDDEN

#endif
