/*
 * Reading single values out of Synapse's Mappings: the interned keys and
 * the readers by C-string key that the createRoom body and the state
 * events' contents need (the hot-path readers are inline in mapping.h).
 *
 * Every reader returns a new reference or a plain value; an absent key or
 * a value of the wrong type is no error: the rules fail closed on it.
 */
#include "py/mapping.h"

#include <string.h>

static const char *const KEY_NAMES[N_KEYS] = {
    "school", "kind", "two_way", "users_default", "events_default", "state_default", "users",
    "events", "room_version", "additional_creators", "redacts", "m.relates_to", "rel_type", "key",
    "event_id", "group",
};

PyObject *mapping_keys[N_KEYS];

int mapping_keys_init(void)
{
    for (int k = 0; k < N_KEYS; k++) {
        if (mapping_keys[k] == NULL && (mapping_keys[k] = PyUnicode_InternFromString(KEY_NAMES[k])) == NULL)
            return -1;
    }
    return 0;
}

/* PyMapping_GetItemString, because event.content may be a read-only
 * Mapping, not a dict. */
PyObject *mapping_get(PyObject *mapping, const char *key)
{
    PyObject *value = PyMapping_GetItemString(mapping, key);

    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError))
        PyErr_Clear();
    return value;
}

int str_equals(PyObject *mapping, const char *key, const char *want, bool *out)
{
    PyObject *value = mapping_get(mapping, key);

    *out = false;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyUnicode_Check(value)) {
        const char *text = PyUnicode_AsUTF8AndSize(value, NULL);

        if (text == NULL && !not_utf8()) {
            Py_DECREF(value);
            return -1;
        }
        *out = text != NULL && strcmp(text, want) == 0;
    }
    Py_DECREF(value);
    return 0;
}

int str_differs(PyObject *content, const char *key, const char *want, bool *out)
{
    bool same;

    if (!is_json_object(content)) {
        *out = true;
        return 0;
    }
    if (str_equals(content, key, want, &same) != 0)
        return -1;
    *out = !same;
    return 0;
}

int sequence_length(PyObject *mapping, const char *key, size_t *out)
{
    PyObject *value = mapping_get(mapping, key);
    Py_ssize_t n = 0;

    *out = 0;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PySequence_Check(value) && !PyUnicode_Check(value) && !PyBytes_Check(value)) {
        n = PySequence_Length(value);
        if (n < 0) {
            Py_DECREF(value);
            return -1;
        }
    }
    Py_DECREF(value);
    *out = (size_t)n;
    return 0;
}
