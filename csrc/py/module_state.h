/*
 * The binding's module state, and the two ways to reach it: from the module
 * (module functions) and from a type the module made (Engine methods).
 *
 * module.c fills the state at exec time, traverses and clears it. Only the
 * binding (csrc/py/) includes Python.h: the engine makes no Python API call.
 */
#ifndef SSP_PY_MODULE_STATE_H
#define SSP_PY_MODULE_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The functions the binding's files share are hidden: the extension exports
 * PyInit__core (PyMODINIT_FUNC) and the engine's ssp_* functions only, so a
 * call from one binding file to another is a direct call (no PLT, no
 * interposition by a library's function of the same name), and GCC may
 * inline one within its own file as it did when they were static. Every
 * binding header wraps its declarations in these two pragmas, after its
 * includes. */
#define SSP_PY_BEGIN_HIDDEN _Pragma("GCC visibility push(hidden)")
#define SSP_PY_END_HIDDEN _Pragma("GCC visibility pop")

SSP_PY_BEGIN_HIDDEN

typedef struct module_state {
    PyTypeObject *engine_type;
    PyObject *input_error; /* bad input from the caller: maps to HTTP 400 / ConfigError */
    PyObject *syntax_error; /* input that is not JSON at all; a subclass of input_error */
    PyObject *store_error; /* the store cannot be reached (disk, lost database): HTTP 503 */
    PyObject *database_error; /* the database refused a statement; a StoreError: HTTP 500 */
    PyObject *parse_json; /* json.loads: the one converter of results (py_from_json_text) */
} module_state;

static inline module_state *state_of_module(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/* The stable ABI before 3.13 has no PyType_GetModuleByDef. Engine cannot be
 * subclassed (no Py_TPFLAGS_BASETYPE), so the type of every instance is the
 * module's own heap type and PyType_GetModule finds the module. NULL with
 * an exception set when it does not. */
static inline module_state *state_of_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModule(type);

    return module ? state_of_module(module) : NULL;
}

SSP_PY_END_HIDDEN

#endif
