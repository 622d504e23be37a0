/*
 * Conversions between Python values and the engine's: argument helpers,
 * the one error mapper, and the results' converters (convert.c). The small
 * tests that decide() runs on every call are static inline here, so the hot
 * path pays no call for them.
 */
#ifndef SSP_PY_CONVERT_H
#define SSP_PY_CONVERT_H

#include "py/module_state.h"

#include <stdbool.h>

#include <jansson.h>

#include "ssp.h"

SSP_PY_BEGIN_HIDDEN

/* ---- errors ---- */

/* Raises the Python exception that matches an engine error: InputError,
 * JsonSyntaxError, DatabaseError, StoreError or MemoryError. The one place
 * an ssp_error becomes an exception. Always returns NULL (also when st is
 * NULL: its lookup has set the exception). */
PyObject *raise_engine_error(module_state *st, const ssp_error *err);

/* ---- arguments ---- */

/* PyUnicode_Check, with the exact type tested first: under the stable ABI
 * PyUnicode_Check is a function call (PyType_GetFlags), and decide() tests
 * a dozen values per call, nearly all of them exact str. */
static inline int is_str(PyObject *obj)
{
    return PyUnicode_CheckExact(obj) || PyUnicode_Check(obj);
}

/* Whether a JSON value is an object. Synapse hands event content over as a
 * read-only Mapping (not a dict); str and list also support subscripting,
 * so PyMapping_Check alone would take them for objects, and looking a key
 * up in them raises TypeError. */
static inline bool is_json_object(PyObject *obj)
{
    /* The exact dict first: PyDict_Check is a function call under the stable ABI. */
    return PyDict_CheckExact(obj) || PyDict_Check(obj) ||
           (PyMapping_Check(obj) && !PyUnicode_Check(obj) && !PyBytes_Check(obj) && !PyList_Check(obj) &&
            !PyTuple_Check(obj));
}

/* Optional str argument: None becomes NULL. The UTF-8 buffer is borrowed
 * from obj. Returns -1 with an exception set. */
static inline int optional_str(PyObject *obj, const char *name, const char **out)
{
    if (obj == Py_None) {
        *out = NULL;
        return 0;
    }
    if (!is_str(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None", name);
        return -1;
    }
    *out = PyUnicode_AsUTF8AndSize(obj, NULL);
    return *out ? 0 : -1;
}

/* The stable ABI has no PySequence_Fast_GET_* macros. PySequence_Fast
 * returns a list or a tuple; the item is borrowed from it, as with the
 * macros. The index is always in range at the call sites. */
static inline Py_ssize_t fast_size(PyObject *seq)
{
    return PyList_Check(seq) ? PyList_Size(seq) : PyTuple_Size(seq);
}

static inline PyObject *fast_item(PyObject *seq, Py_ssize_t i)
{
    return PyList_Check(seq) ? PyList_GetItem(seq, i) : PyTuple_GetItem(seq, i);
}

/* Request bodies may come as bytes (from the HTTP layer) or str. The buffer
 * stays valid while `obj` lives. Returns -1 with an exception set. */
int body_buffer(PyObject *obj, const char **data, Py_ssize_t *len);

/* A text argument of the roster and audit calls: str (or None when
 * allow_none). What the engine cannot take as a C string (a NUL character,
 * a lone surrogate) is bad input (InputError), named like the engine names
 * it, not a ValueError. Returns -1 with an exception set. */
int text_arg(module_state *st, PyObject *obj, const char *name, bool allow_none, const char **out);

/* A non-negative int64 argument; obj NULL (not given) leaves *out as it is.
 * Returns -1 with an exception set. */
int ms_arg(module_state *st, PyObject *obj, const char *name, long long *out);

/* A JSON value given as a Python object (room_shape's request), as a new
 * json_t the caller owns; NULL with an exception set (TypeError for values
 * that are no JSON). */
json_t *py_to_json(PyObject *obj);

/* ---- results ---- */

/* Takes the engine's JSON text (caller-owned, freed here whatever happens)
 * and returns its Python value, or NULL with an exception set. */
PyObject *py_from_json_text(module_state *st, char *text);

/* Takes a json_t (stolen; NULL: building it ran out of memory) and returns
 * its Python value through py_from_json_text. */
PyObject *py_from_json(module_state *st, json_t *value);

/* Takes a plain string of the engine's (a room id; freed here) and returns
 * it as a str. */
PyObject *take_engine_string(char *text);

SSP_PY_END_HIDDEN

#endif
