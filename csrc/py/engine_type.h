/*
 * The Engine heap type: its instance struct, and the type's making
 * (engine_type.c). Its methods live in the files of their concern
 * (engine_decide.c, engine_roster.c, engine_audit.c, engine_reconcile.c);
 * engine_type.c lists them in the one method table.
 */
#ifndef SSP_PY_ENGINE_TYPE_H
#define SSP_PY_ENGINE_TYPE_H

#include "py/module_state.h"

#include "ssp.h"

SSP_PY_BEGIN_HIDDEN

typedef struct {
    PyObject_HEAD
    ssp_engine *engine; /* owned; freed (without the GIL) in dealloc */
} EngineObject;

/* The module state of the module that made self's type; NULL with an
 * exception set when it cannot be found. */
static inline module_state *engine_state(EngineObject *self)
{
    return state_of_type(Py_TYPE(self));
}

/* Makes the Engine type for `module` (PyType_FromModuleAndSpec). Returns a
 * new reference, or NULL with an exception set. */
PyTypeObject *engine_type_new(PyObject *module);

SSP_PY_END_HIDDEN

#endif
