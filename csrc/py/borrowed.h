/*
 * The references a request borrows: the Python objects whose UTF-8 buffers
 * an ssp_request points into, and the C arrays built for it, held for one
 * call and released at its single exit (borrowed_release).
 *
 * Header only: decide() keeps and releases on every call, so these are
 * static inline wherever the request is read.
 */
#ifndef SSP_PY_BORROWED_H
#define SSP_PY_BORROWED_H

#include "py/module_state.h"

SSP_PY_BEGIN_HIDDEN

/* The first BORROWED_HELD references sit in the struct (on the caller's
 * stack); a list is made only for more. */
#define BORROWED_HELD 16
#define BORROWED_ARRAYS 8

typedef struct borrowed {
    PyObject *objects; /* list, or NULL until `held` is full */
    PyObject *held[BORROWED_HELD];
    int n_held;
    void *arrays[BORROWED_ARRAYS];
    int n_arrays;
} borrowed;

/* Sets the counters only: `held` and `arrays` are written before they are
 * read, and decide() does not pay for zeroing them. */
static inline void borrowed_init(borrowed *b)
{
    b->objects = NULL;
    b->n_held = 0;
    b->n_arrays = 0;
}

/* Holds a new reference to obj until borrowed_release. Returns -1 with an
 * exception set. */
static inline int keep(borrowed *b, PyObject *obj)
{
    if (b->n_held < BORROWED_HELD) {
        b->held[b->n_held++] = Py_NewRef(obj);
        return 0;
    }
    if (b->objects == NULL && (b->objects = PyList_New(0)) == NULL)
        return -1;
    return PyList_Append(b->objects, obj);
}

static inline void borrowed_release(borrowed *b)
{
    Py_CLEAR(b->objects);
    for (int i = 0; i < b->n_held; i++)
        Py_DECREF(b->held[i]);
    b->n_held = 0;
    for (int i = 0; i < b->n_arrays; i++)
        PyMem_Free(b->arrays[i]);
    b->n_arrays = 0;
}

/* A zeroed array of n items of `size` bytes that b frees with the call.
 * Returns NULL with an exception set. */
static inline void *borrowed_array(borrowed *b, Py_ssize_t n, size_t size)
{
    void *array;

    if (b->n_arrays == BORROWED_ARRAYS) {
        PyErr_SetString(PyExc_RuntimeError, "too many arrays in one call");
        return NULL;
    }
    array = PyMem_Calloc(n > 0 ? (size_t)n : 1, size);
    if (array == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    b->arrays[b->n_arrays++] = array;
    return array;
}

SSP_PY_END_HIDDEN

#endif
