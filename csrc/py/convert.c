/*
 * Conversions between Python values and the engine's: the one error mapper,
 * the argument helpers of the roster and audit calls, and the one way
 * structured data crosses the binding (py_from_json_text).
 *
 * Ownership: every PyObject* is NULL-initialised and released before the
 * function returns. Engine strings handed out (char *) are freed here with
 * free() once converted.
 */
#include "py/convert.h"

#include <limits.h>
#include <string.h>

PyObject *raise_engine_error(module_state *st, const ssp_error *err)
{
    if (st == NULL)
        return NULL;
    switch (err->code) {
    case SSP_ERR_NOMEM:
        return PyErr_NoMemory();
    case SSP_ERR_INPUT:
        PyErr_SetString(st->input_error, err->message);
        return NULL;
    case SSP_ERR_SYNTAX:
        PyErr_SetString(st->syntax_error, err->message);
        return NULL;
    case SSP_ERR_DATABASE:
        PyErr_SetString(st->database_error, err->message);
        return NULL;
    default: /* SSP_ERR_IO, SSP_ERR_UNAVAILABLE, SSP_ERR_STATE */
        PyErr_SetString(st->store_error, err->message);
        return NULL;
    }
}

/* ---- arguments ---- */

int body_buffer(PyObject *obj, const char **data, Py_ssize_t *len)
{
    if (PyBytes_Check(obj))
        return PyBytes_AsStringAndSize(obj, (char **)data, len);
    if (PyUnicode_Check(obj)) {
        *data = PyUnicode_AsUTF8AndSize(obj, len);
        return *data ? 0 : -1;
    }
    PyErr_SetString(PyExc_TypeError, "body must be bytes or str");
    return -1;
}

int text_arg(module_state *st, PyObject *obj, const char *name, bool allow_none, const char **out)
{
    Py_ssize_t len;

    *out = NULL;
    if (st == NULL)
        return -1;
    if (allow_none && obj == Py_None)
        return 0;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be str%s", name, allow_none ? " or None" : "");
        return -1;
    }
    *out = PyUnicode_AsUTF8AndSize(obj, &len);
    if (*out == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        PyErr_Format(st->input_error, "%s: not valid Unicode", name);
        return -1;
    }
    if (memchr(*out, '\0', (size_t)len) != NULL) {
        *out = NULL;
        PyErr_Format(st->input_error, "%s: contains a NUL character", name);
        return -1;
    }
    return 0;
}

int ms_arg(module_state *st, PyObject *obj, const char *name, long long *out)
{
    int overflow = 0;

    if (st == NULL)
        return -1;
    if (obj == NULL)
        return 0;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be int", name);
        return -1;
    }
    *out = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (overflow != 0 || *out < 0) {
        PyErr_Format(st->input_error, "%s: expected an integer from 0 to %lld", name, LLONG_MAX);
        return -1;
    }
    return 0;
}

/* ---- arguments given as JSON values (room_shape) ----
 *
 * The engine reads the shape of such a value: types, strings compared with
 * its own, integers as levels, the keys of objects. The conversion keeps
 * all of that and nothing more: a str with a lone surrogate (JSON allows
 * it, UTF-8 cannot hold it) keeps its bytes as "surrogatepass" writes them,
 * which equal no valid string; a non-str key becomes its str(); an int
 * beyond int64 and a float jansson cannot hold (nan, inf) become some real,
 * which is no level. Values that are no JSON at all raise TypeError, like
 * json.dumps; nesting beyond Python's recursion limit raises RecursionError. */

static json_t *array_to_json(PyObject *obj)
{
    json_t *result;

    if (Py_EnterRecursiveCall(" converting to JSON") != 0)
        return NULL;
    result = json_array();
    if (result == NULL)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; result != NULL && i < PySequence_Size(obj); i++) {
        PyObject *item = PySequence_GetItem(obj, i);
        json_t *converted = item != NULL ? py_to_json(item) : NULL;

        Py_XDECREF(item);
        if (converted == NULL || json_array_append_new(result, converted) != 0) {
            if (converted == NULL && !PyErr_Occurred())
                PyErr_NoMemory();
            json_decref(result);
            result = NULL;
        }
    }
    Py_LeaveRecursiveCall();
    return result;
}

/* One (key, value) pair of items() into `object`. Returns -1 with an
 * exception set. */
static int member_to_json(json_t *object, PyObject *pair)
{
    PyObject *key = NULL, *name = NULL, *bytes = NULL; /* key: borrowed from pair */
    json_t *converted = NULL;
    char *data;
    Py_ssize_t len;
    int rc = -1;

    /* A Mapping of our own kind may answer items() with anything. */
    if (!PyTuple_Check(pair) || PyTuple_Size(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "items() of a Mapping must give (key, value) pairs");
        return -1;
    }
    key = PyTuple_GetItem(pair, 0);
    name = PyUnicode_Check(key) ? Py_NewRef(key) : PyObject_Str(key);
    bytes = name != NULL ? PyUnicode_AsEncodedString(name, "utf-8", "surrogatepass") : NULL;
    converted = bytes != NULL ? py_to_json(PyTuple_GetItem(pair, 1)) : NULL;
    if (converted != NULL && PyBytes_AsStringAndSize(bytes, &data, &len) == 0) {
        rc = json_object_setn_new_nocheck(object, data, (size_t)len, converted);
        converted = NULL; /* stolen, also on failure */
        if (rc != 0)
            PyErr_NoMemory();
    }
    json_decref(converted);
    Py_XDECREF(bytes);
    Py_XDECREF(name);
    return rc;
}

static json_t *object_to_json(PyObject *obj)
{
    PyObject *items = NULL;
    json_t *result = NULL;

    if (Py_EnterRecursiveCall(" converting to JSON") != 0)
        return NULL;
    items = PyMapping_Items(obj);
    result = items != NULL ? json_object() : NULL;
    if (items != NULL && result == NULL)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; result != NULL && i < PyList_Size(items); i++) {
        if (member_to_json(result, PyList_GetItem(items, i)) != 0) {
            json_decref(result);
            result = NULL;
        }
    }
    Py_XDECREF(items);
    Py_LeaveRecursiveCall();
    return result;
}

static json_t *str_to_json(PyObject *obj)
{
    PyObject *bytes = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
    json_t *result;
    char *data;
    Py_ssize_t len;

    if (bytes == NULL || PyBytes_AsStringAndSize(bytes, &data, &len) != 0) {
        Py_XDECREF(bytes);
        return NULL;
    }
    result = json_stringn_nocheck(data, (size_t)len);
    Py_DECREF(bytes);
    if (result == NULL)
        PyErr_NoMemory();
    return result;
}

json_t *py_to_json(PyObject *obj)
{
    json_t *result = NULL;

    if (obj == Py_None)
        return json_null();
    if (PyBool_Check(obj))
        return json_boolean(obj == Py_True);
    if (PyLong_Check(obj)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(obj, &overflow);

        if (n == -1 && PyErr_Occurred())
            return NULL;
        result = overflow != 0 ? json_real(overflow > 0 ? 1e300 : -1e300) : json_integer(n);
    } else if (PyFloat_Check(obj)) {
        result = json_real(PyFloat_AsDouble(obj));
        if (result == NULL) /* nan or inf */
            result = json_real(0.0);
    } else if (PyUnicode_Check(obj)) {
        return str_to_json(obj);
    } else if (PyList_Check(obj) || PyTuple_Check(obj)) {
        return array_to_json(obj);
    } else if (is_json_object(obj)) {
        return object_to_json(obj);
    } else {
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(obj), "__qualname__");

        if (name != NULL)
            PyErr_Format(PyExc_TypeError, "a %U is not JSON", name);
        Py_XDECREF(name);
        return NULL;
    }
    if (result == NULL)
        PyErr_NoMemory();
    return result;
}

/* ---- results: the one way structured data crosses the binding ----
 *
 * Every method that returns structured data returns Python objects (dict,
 * list, str, int, float, bool, None). Whatever the engine answers in JSON
 * goes through one converter, py_from_json_text: the JSON text an engine
 * function hands out, or a json_t it built, serialised first
 * (py_from_json). The converter is the standard library's C decoder
 * (json.loads, looked up once per module), so results are exactly what the
 * adapter's own json.loads made of the same text before, at the same cost:
 * measured on a page of 1,000 audit records, jansson's parser plus a walk
 * of the json_t took 4x as long. Fixed structs of counters (audit_stats,
 * store_status, reconciler_settings) have no JSON form: Py_BuildValue
 * makes their dicts field by field. Only Engine.decide answers differently
 * (None, a NEED_* constant or a denial tuple), on the hot path. */

PyObject *py_from_json_text(module_state *st, char *text)
{
    PyObject *str = NULL, *result = NULL;

    if (st == NULL) {
        free(text);
        return NULL;
    }
    str = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "strict");
    free(text);
    if (str != NULL)
        result = PyObject_CallFunctionObjArgs(st->parse_json, str, NULL);
    Py_XDECREF(str);
    return result;
}

PyObject *py_from_json(module_state *st, json_t *value)
{
    char *text;

    if (value == NULL)
        return PyErr_NoMemory();
    text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    if (text == NULL)
        return PyErr_NoMemory();
    return py_from_json_text(st, text);
}

PyObject *take_engine_string(char *text)
{
    PyObject *result = PyUnicode_FromString(text);

    free(text);
    return result;
}
