/*
 * Reading single values out of Synapse's Mappings (event contents, the
 * createRoom body): the interned keys decide() reads, and the readers that
 * tolerate absent keys and values of the wrong type (mapping.c).
 *
 * The readers on decide()'s hot path (lookup, item, str_field) are static
 * inline here, so every request file inlines them as the one binding file
 * did.
 */
#ifndef SSP_PY_MAPPING_H
#define SSP_PY_MAPPING_H

#include "py/borrowed.h"
#include "py/convert.h"

#include <stdbool.h>
#include <stddef.h>

SSP_PY_BEGIN_HIDDEN

/* The keys decide() reads from event contents, as str objects made once at
 * module init (interned, so their hash is computed once): a lookup then
 * builds, hashes and frees no string of its own. The module supports one
 * interpreter (Py_mod_multiple_interpreters), so they are process-wide and
 * live as long as the process (mapping.c). */
typedef enum mapping_key {
    K_SCHOOL,
    K_KIND,
    K_TWO_WAY,
    K_USERS_DEFAULT,
    K_EVENTS_DEFAULT,
    K_STATE_DEFAULT,
    K_USERS,
    K_EVENTS,
    K_ROOM_VERSION,
    K_ADDITIONAL_CREATORS,
    K_REDACTS,
    K_RELATES_TO,
    K_REL_TYPE,
    K_KEY,
    K_EVENT_ID,
    K_GROUP,
    N_KEYS
} mapping_key;

extern PyObject *mapping_keys[N_KEYS];

/* Makes the keys (once per process; a second module exec keeps them).
 * Returns -1 with an exception set. */
int mapping_keys_init(void);

/* mapping[key] as a new reference, or NULL with no exception when absent.
 * Event contents are dicts in Synapse (frozen Mappings only with
 * SYNAPSE_USE_FROZEN_DICTS): for a dict this is one hash table probe with
 * the key's cached hash and no KeyError to raise and clear. */
static inline PyObject *lookup(PyObject *mapping, PyObject *key)
{
    PyObject *value = NULL;

    if (PyDict_CheckExact(mapping)) /* a subclass may define __getitem__ */
        return Py_XNewRef(PyDict_GetItemWithError(mapping, key));
    value = PyObject_GetItem(mapping, key);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError))
        PyErr_Clear();
    return value;
}

static inline PyObject *item(PyObject *mapping, mapping_key key)
{
    return lookup(mapping, mapping_keys[key]);
}

/* After a failed UTF-8 conversion of a str: true (and the error cleared)
 * when it failed because the str holds a lone surrogate, which JSON allows
 * and UTF-8 cannot hold. Such a value equals no string the rules know. */
static inline bool not_utf8(void)
{
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return false;
    PyErr_Clear();
    return true;
}

/* UTF-8 view of mapping[key], kept alive by b. *out NULL (no error) when
 * absent or not a str. Returns -1 with an exception set. */
static inline int str_field(PyObject *mapping, mapping_key key, borrowed *b, const char **out,
                            size_t *len)
{
    PyObject *value = item(mapping, key);
    Py_ssize_t size;
    int rc = 0;

    *out = NULL;
    *len = 0;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (is_str(value)) {
        *out = PyUnicode_AsUTF8AndSize(value, &size);
        if (*out == NULL && not_utf8()) {
            size = 0; /* no string the rules know: as good as absent */
        } else if (*out == NULL || keep(b, value) != 0) {
            rc = -1;
        }
        *len = *out != NULL ? (size_t)size : 0;
    }
    Py_DECREF(value);
    return rc;
}

/* Looks up a key given as a C string (the createRoom body's keys and those
 * of the few state events the rules read; not on a message's path).
 * Returns a new reference, or NULL with no exception when absent. */
PyObject *mapping_get(PyObject *mapping, const char *key);

/* *out: whether mapping[key] is the str `want`. Returns -1 with an
 * exception set. */
int str_equals(PyObject *mapping, const char *key, const char *want, bool *out);

/* *out: whether `content` is no Mapping, lacks `key`, or holds anything
 * but the str `want` there. Returns -1 with an exception set. */
int str_differs(PyObject *content, const char *key, const char *want, bool *out);

/* *out: the length of mapping[key] when it is a non-str sequence, else 0.
 * Returns -1 with an exception set. */
int sequence_length(PyObject *mapping, const char *key, size_t *out);

SSP_PY_END_HIDDEN

#endif
