/*
 * synapse_school_policy._core: the one file that speaks CPython.
 *
 * It converts Python arguments to engine calls and back. Anything that may
 * wait (disk I/O, the audit writer) runs with the GIL released; the engine
 * makes no Python API calls, so that is safe. Decisions run with the GIL
 * held: they only read memory and take microseconds.
 *
 * Ownership: every PyObject* is NULL-initialised and released at the
 * function's single exit. Engine strings handed out (char *) are freed here
 * with free() once converted.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <string.h>

#include <jansson.h>

#include "rules/room_shape.h"
#include "ssp.h"

typedef struct {
    PyTypeObject *engine_type;
    PyObject *input_error; /* bad input from the caller: maps to HTTP 400 / ConfigError */
    PyObject *syntax_error; /* input that is not JSON at all; a subclass of input_error */
    PyObject *store_error; /* the store cannot be reached (disk, lost database): HTTP 503 */
    PyObject *database_error; /* the database refused a statement; a StoreError: HTTP 500 */
    PyObject *json_loads; /* json.loads: the one converter of results (py_from_json_text) */
} module_state;

typedef struct {
    PyObject_HEAD
    ssp_engine *engine;
} EngineObject;

static module_state *state_of_module(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

static struct PyModuleDef core_module;

/* The stable ABI before 3.13 has no PyType_GetModuleByDef. Engine cannot be
 * subclassed (no Py_TPFLAGS_BASETYPE), so the type of every instance is the
 * module's own heap type and PyType_GetModule finds the module. */
static module_state *state_of_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModule(type);

    return module ? state_of_module(module) : NULL;
}

/* The stable ABI has no PySequence_Fast_GET_* macros. PySequence_Fast
 * returns a list or a tuple; the item is borrowed from it, as with the
 * macros. The index is always in range at the call sites. */
static Py_ssize_t fast_size(PyObject *seq)
{
    return PyList_Check(seq) ? PyList_Size(seq) : PyTuple_Size(seq);
}

static PyObject *fast_item(PyObject *seq, Py_ssize_t i)
{
    return PyList_Check(seq) ? PyList_GetItem(seq, i) : PyTuple_GetItem(seq, i);
}

/* Raises the Python exception that matches an engine error. Always returns NULL. */
static PyObject *raise_engine_error(PyTypeObject *type, const ssp_error *err)
{
    module_state *st = state_of_type(type);

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

/* PyUnicode_Check, with the exact type tested first: under the stable ABI
 * PyUnicode_Check is a function call (PyType_GetFlags), and decide() tests
 * a dozen values per call, nearly all of them exact str. */
static int is_str(PyObject *obj)
{
    return PyUnicode_CheckExact(obj) || PyUnicode_Check(obj);
}

/* Optional str argument: None becomes NULL. Returns -1 with an exception set. */
static int optional_str(PyObject *obj, const char *name, const char **out)
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

/* Request bodies may come as bytes (from the HTTP layer) or str. The buffer
 * stays valid while `obj` lives. */
static int body_buffer(PyObject *obj, const char **data, Py_ssize_t *len)
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

/* A text argument of the roster and audit calls: str (or None when
 * allow_none). What the engine cannot take as a C string (a NUL character,
 * a lone surrogate) is bad input, named like the engine names it, not a
 * ValueError. Returns -1 with an exception set. */
static int text_arg(PyObject *self, PyObject *obj, const char *name, bool allow_none,
                    const char **out)
{
    Py_ssize_t len;
    module_state *st = state_of_type(Py_TYPE(self));

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

/* A non-negative int64 argument of audit_query. */
static int ms_arg(PyObject *self, PyObject *obj, const char *name, long long *out)
{
    int overflow = 0;
    module_state *st = state_of_type(Py_TYPE(self));

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

/* A plain string of the engine's (a room id): becomes a str; freed. */
static PyObject *take_engine_string(char *text)
{
    PyObject *result = PyUnicode_FromString(text);

    free(text);
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

/* Takes the engine's JSON text (caller-owned, freed here whatever happens)
 * and returns its Python value, or NULL with an exception set. */
static PyObject *py_from_json_text(module_state *st, char *text)
{
    PyObject *str, *result = NULL;

    if (st == NULL) {
        free(text);
        return NULL;
    }
    str = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "strict");
    free(text);
    if (str != NULL)
        result = PyObject_CallFunctionObjArgs(st->json_loads, str, NULL);
    Py_XDECREF(str);
    return result;
}

/* Takes a json_t (NULL: building it ran out of memory) and returns its
 * Python value through py_from_json_text. */
static PyObject *py_from_json(module_state *st, json_t *value)
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

/* ---- arguments given as JSON values (room_shape) ----
 *
 * The engine reads the shape of such a value: types, strings compared with
 * its own, integers as levels, the keys of objects. The conversion keeps
 * all of that and nothing more: a str with a lone surrogate (JSON allows
 * it, UTF-8 cannot hold it) keeps its bytes as "surrogatepass" writes them,
 * which equal no valid string; a non-str key becomes its str(); an int
 * beyond int64 and a float jansson cannot hold (nan, inf) become some real,
 * which is no level. Values that are no JSON at all raise TypeError, like
 * json.dumps; nesting beyond Python's recursion limit raises RecursionError.
 * Returns a new reference, or NULL with an exception set. */
static bool is_json_object(PyObject *obj);

static json_t *py_to_json(PyObject *obj)
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
        if (overflow != 0)
            result = json_real(overflow > 0 ? 1e300 : -1e300);
        else
            result = json_integer(n);
    } else if (PyFloat_Check(obj)) {
        double d = PyFloat_AsDouble(obj);

        result = json_real(d);
        if (result == NULL) /* nan or inf */
            result = json_real(0.0);
    } else if (PyUnicode_Check(obj)) {
        PyObject *bytes = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
        char *data;
        Py_ssize_t len;

        if (bytes == NULL || PyBytes_AsStringAndSize(bytes, &data, &len) != 0) {
            Py_XDECREF(bytes);
            return NULL;
        }
        result = json_stringn_nocheck(data, (size_t)len);
        Py_DECREF(bytes);
    } else if (PyList_Check(obj) || PyTuple_Check(obj)) {
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
    } else if (is_json_object(obj)) {
        PyObject *items;

        if (Py_EnterRecursiveCall(" converting to JSON") != 0)
            return NULL;
        items = PyMapping_Items(obj);
        result = items != NULL ? json_object() : NULL;
        if (items != NULL && result == NULL)
            PyErr_NoMemory();
        for (Py_ssize_t i = 0; result != NULL && i < PyList_Size(items); i++) {
            PyObject *pair = PyList_GetItem(items, i), *key, *name;
            PyObject *bytes = NULL;
            json_t *converted = NULL;
            char *data;
            Py_ssize_t len;
            int rc = -1;

            /* A Mapping of our own kind may answer items() with anything. */
            if (!PyTuple_Check(pair) || PyTuple_Size(pair) != 2) {
                PyErr_SetString(PyExc_TypeError,
                                "items() of a Mapping must give (key, value) pairs");
                json_decref(result);
                result = NULL;
                break;
            }
            key = PyTuple_GetItem(pair, 0);
            name = PyUnicode_Check(key) ? Py_NewRef(key) : PyObject_Str(key);
            bytes = name != NULL ? PyUnicode_AsEncodedString(name, "utf-8", "surrogatepass") : NULL;
            converted = bytes != NULL ? py_to_json(PyTuple_GetItem(pair, 1)) : NULL;

            if (converted != NULL && PyBytes_AsStringAndSize(bytes, &data, &len) == 0) {
                rc = json_object_setn_new_nocheck(result, data, (size_t)len, converted);
                converted = NULL; /* stolen, also on failure */
                if (rc != 0)
                    PyErr_NoMemory();
            }
            json_decref(converted);
            Py_XDECREF(bytes);
            Py_XDECREF(name);
            if (rc != 0) {
                json_decref(result);
                result = NULL;
            }
        }
        Py_XDECREF(items);
        Py_LeaveRecursiveCall();
        return result;
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

/* ---- Engine type ---- */

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"config_json", "server_name", "worker_name", NULL};
    const char *config_json, *server_name, *worker_name;
    Py_ssize_t config_len;
    EngineObject *self = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#ss:Engine", kwlist, &config_json, &config_len,
                                     &server_name, &worker_name))
        return NULL;
    self = (EngineObject *)((allocfunc)PyType_GetSlot(type, Py_tp_alloc))(type, 0);
    if (self == NULL)
        return NULL;
    self->engine = ssp_engine_new(config_json, (size_t)config_len, server_name, worker_name, &err);
    if (self->engine == NULL) {
        Py_DECREF(self);
        return raise_engine_error(type, &err);
    }
    return (PyObject *)self;
}

static int Engine_traverse(EngineObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void Engine_dealloc(EngineObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->engine != NULL) {
        ssp_engine *engine = self->engine;

        self->engine = NULL;
        /* Freeing joins the audit writer thread, which may be mid-fsync. */
        Py_BEGIN_ALLOW_THREADS
        ssp_engine_free(engine);
        Py_END_ALLOW_THREADS
    }
    ((freefunc)PyType_GetSlot(type, Py_tp_free))(self);
    Py_DECREF(type);
}

/* open(*, offline=False): offline is the command line's open beside a
 * running Synapse (ssp_open_options in ssp.h). */
static PyObject *Engine_open(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"offline", NULL};
    ssp_open_options options = {0};
    int offline = 0;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$p:open", kwlist, &offline))
        return NULL;
    options.offline = offline != 0;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_engine_open_with(self->engine, &options, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* Whether a JSON value is an object. Synapse hands event content over as a
 * read-only Mapping (not a dict); str and list also support subscripting,
 * so PyMapping_Check alone would take them for objects, and looking a key
 * up in them raises TypeError. */
static bool is_json_object(PyObject *obj)
{
    /* The exact dict first: PyDict_Check is a function call under the stable ABI. */
    return PyDict_CheckExact(obj) || PyDict_Check(obj) ||
           (PyMapping_Check(obj) && !PyUnicode_Check(obj) && !PyBytes_Check(obj) && !PyList_Check(obj) &&
            !PyTuple_Check(obj));
}

/* Looks up key in a Mapping (event.content is a read-only Mapping, not a
 * dict). Returns a new reference, or NULL with no exception when absent. */
static PyObject *mapping_get(PyObject *mapping, const char *key)
{
    PyObject *value = PyMapping_GetItemString(mapping, key);

    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError))
        PyErr_Clear();
    return value;
}

/* The keys decide() reads from event contents, as str objects made once at
 * module init (interned, so their hash is computed once): a lookup then
 * builds, hashes and frees no string of its own. The module supports one
 * interpreter (Py_mod_multiple_interpreters), so they are process-wide and
 * live as long as the process. */
enum {
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
    N_KEYS
};

static const char *const KEY_NAMES[N_KEYS] = {
    "school", "kind", "two_way", "users_default", "events_default", "state_default", "users",
    "events", "room_version", "additional_creators", "redacts", "m.relates_to", "rel_type", "key",
    "event_id",
};

static PyObject *keys[N_KEYS];

static int keys_init(void)
{
    for (int k = 0; k < N_KEYS; k++) {
        if (keys[k] == NULL && (keys[k] = PyUnicode_InternFromString(KEY_NAMES[k])) == NULL)
            return -1;
    }
    return 0;
}

/* mapping[key] as a new reference, or NULL with no exception when absent.
 * Event contents are dicts in Synapse (frozen Mappings only with
 * SYNAPSE_USE_FROZEN_DICTS): for a dict this is one hash table probe with
 * the key's cached hash and no KeyError to raise and clear. */
static PyObject *lookup(PyObject *mapping, PyObject *key)
{
    PyObject *value;

    if (PyDict_CheckExact(mapping)) /* a subclass may define __getitem__ */
        return Py_XNewRef(PyDict_GetItemWithError(mapping, key));
    value = PyObject_GetItem(mapping, key);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError))
        PyErr_Clear();
    return value;
}

static PyObject *item(PyObject *mapping, int key)
{
    return lookup(mapping, keys[key]);
}

/* decide()'s denial: a tuple (rule, message, enforced, school), plus the
 * attribute audit_id (not part of the tuple, so unpacking stays as it was).
 * Made once at module init, like the keys. */
static PyStructSequence_Field DENIAL_FIELDS[] = {
    {"rule", "the rule id"},
    {"message", "the message for the client"},
    {"enforced", "False: report-only, the action goes through"},
    {"school", "the school the rule applied for, or \"\""},
    {"audit_id", "the id of the queued audit record (wait_durable), 0 when none was queued"},
    {NULL, NULL},
};

static PyStructSequence_Desc DENIAL_DESC = {
    "synapse_school_policy._core.Denial",
    "A denial: (rule, message, enforced, school); audit_id names its audit record.",
    DENIAL_FIELDS,
    4,
};

static PyTypeObject *denial_type;

/* The rule ids as str, made once; and the client messages, which are static
 * texts of the engine, each made into a str the first time it is used. */
static PyObject *rule_strs[SSP_RULE__COUNT];

#define MESSAGE_CACHE 48

static struct {
    const char *text;
    PyObject *str;
} message_strs[MESSAGE_CACHE];

static int rule_strs_init(void)
{
    for (int r = 0; r < SSP_RULE__COUNT; r++) {
        if (rule_strs[r] == NULL && (rule_strs[r] = PyUnicode_InternFromString(ssp_rule_id((ssp_rule)r))) == NULL)
            return -1;
    }
    return 0;
}

/* A new reference to the str of an engine message. */
static PyObject *message_str(const char *text)
{
    int i = 0;

    while (i < MESSAGE_CACHE && message_strs[i].text != NULL && message_strs[i].text != text)
        i++;
    if (i < MESSAGE_CACHE && message_strs[i].text == text)
        return Py_NewRef(message_strs[i].str);
    if (i == MESSAGE_CACHE)
        return PyUnicode_FromString(text); /* more texts than the cache holds: not kept */
    message_strs[i].str = PyUnicode_FromString(text);
    if (message_strs[i].str == NULL)
        return NULL;
    message_strs[i].text = text;
    return Py_NewRef(message_strs[i].str);
}

/* Keeps alive the Python objects whose UTF-8 buffers the engine's request
 * borrows, and owns the C arrays built for it. Released once per decide().
 * The first BORROWED_HELD references sit in the struct (on the caller's
 * stack); a list is made only for more (or when the caller made one). */
#define BORROWED_HELD 16

typedef struct borrowed {
    PyObject *objects; /* list, or NULL until `held` is full */
    PyObject *held[BORROWED_HELD];
    int n_held;
    void *arrays[8];
    int n_arrays;
} borrowed;

static int keep(borrowed *b, PyObject *obj)
{
    if (b->n_held < BORROWED_HELD) {
        b->held[b->n_held++] = Py_NewRef(obj);
        return 0;
    }
    if (b->objects == NULL && (b->objects = PyList_New(0)) == NULL)
        return -1;
    return PyList_Append(b->objects, obj);
}

static void borrowed_release(borrowed *b)
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
static void *borrowed_array(borrowed *b, Py_ssize_t n, size_t size)
{
    void *array;

    if (b->n_arrays == (int)(sizeof b->arrays / sizeof b->arrays[0])) {
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

/* After a failed UTF-8 conversion of a str: true (and the error cleared)
 * when it failed because the str holds a lone surrogate, which JSON allows
 * and UTF-8 cannot hold. Such a value equals no string the rules know. */
static bool not_utf8(void)
{
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return false;
    PyErr_Clear();
    return true;
}

/* UTF-8 view of a str value, kept alive by b. NULL (no error) when absent
 * or not a str. */
static int str_field(PyObject *mapping, int key, borrowed *b, const char **out, size_t *len)
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

/* Extracts the policy event's content. Values of the wrong type count as
 * absent; the engine fails closed on them. */
static int policy_from_mapping(PyObject *content, ssp_room_policy *policy, borrowed *b)
{
    PyObject *two_way;
    Py_ssize_t size;

    memset(policy, 0, sizeof *policy);
    if (!is_json_object(content)) {
        PyErr_SetString(PyExc_TypeError, "policy content must be a Mapping or None");
        return -1;
    }
    size = PyObject_Length(content);
    if (size < 0)
        return -1;
    policy->empty = size == 0;
    policy->n_keys = (size_t)size;
    if (str_field(content, K_SCHOOL, b, &policy->school, &policy->school_len) != 0 ||
        str_field(content, K_KIND, b, &policy->kind_name, &policy->kind_len) != 0)
        return -1;
    policy->kind = ssp_room_kind_from_name(policy->kind_name, policy->kind_len);
    two_way = item(content, K_TWO_WAY);
    if (two_way == NULL && PyErr_Occurred())
        return -1;
    policy->two_way = two_way == Py_True;
    Py_XDECREF(two_way);
    return 0;
}

/* A power level: an int, or (in old room versions) a str holding one.
 * Returns 1 and sets *out when the value is a level, 0 when it is not. */
static int level_value(PyObject *value, int64_t *out)
{
    PyObject *number = NULL;
    int overflow = 0;
    long long level;

    if (PyLong_Check(value) && !PyBool_Check(value)) {
        number = Py_NewRef(value);
    } else if (PyUnicode_Check(value)) {
        number = PyNumber_Long(value);
        if (number == NULL) {
            PyErr_Clear();
            return 0;
        }
    } else {
        return 0;
    }
    level = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (overflow != 0 || (level == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = level;
    return 1;
}

static int level_field(PyObject *mapping, int key, int64_t fallback, int64_t *out)
{
    PyObject *value = item(mapping, key);

    *out = fallback;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!level_value(value, out))
        *out = fallback;
    Py_DECREF(value);
    return 0;
}

/* Values that are not levels are kept as INT64_MIN, so that changing them
 * still counts as a change. */
static int level_map(PyObject *mapping, int key, borrowed *b, const ssp_level_entry **out,
                     size_t *n_out)
{
    PyObject *map = item(mapping, key), *items = NULL;
    ssp_level_entry *entries = NULL;
    Py_ssize_t n;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (map == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!is_json_object(map)) {
        Py_DECREF(map);
        return 0;
    }
    items = PyMapping_Items(map);
    if (items == NULL)
        goto done;
    n = PyList_Size(items);
    entries = borrowed_array(b, n, sizeof *entries);
    if (entries == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GetItem(items, i);
        PyObject *k = PyTuple_GetItem(item, 0);
        Py_ssize_t len;

        if (!PyUnicode_Check(k))
            continue;
        entries[*n_out].key = PyUnicode_AsUTF8AndSize(k, &len);
        if (entries[*n_out].key == NULL)
            goto done;
        entries[*n_out].key_len = (size_t)len;
        if (!level_value(PyTuple_GetItem(item, 1), &entries[*n_out].level))
            entries[*n_out].level = INT64_MIN;
        (*n_out)++;
    }
    /* The keys borrow from `items`, which b keeps. */
    if (keep(b, items) != 0)
        goto done;
    *out = entries;
    rc = 0;
done:
    Py_XDECREF(items);
    Py_DECREF(map);
    return rc;
}

/* Extracts an m.room.power_levels content. `actor` (a str) gets their own
 * entry looked up; `full` extracts the users and events maps too. */
static int power_levels_of(PyObject *content, PyObject *actor, bool full, ssp_power_levels *pl,
                           borrowed *b)
{
    PyObject *users, *own;

    memset(pl, 0, sizeof *pl);
    if (!is_json_object(content)) {
        PyErr_SetString(PyExc_TypeError, "power levels must be a Mapping or None");
        return -1;
    }
    /* The rules read events_default only from levels extracted in full
     * (a power-levels or policy event), and state_default never: a message
     * pays for the lookups it needs. */
    pl->events_default = 0;
    pl->state_default = 50;
    if (level_field(content, K_USERS_DEFAULT, 0, &pl->users_default) != 0 ||
        (full && (level_field(content, K_EVENTS_DEFAULT, 0, &pl->events_default) != 0 ||
                  level_field(content, K_STATE_DEFAULT, 50, &pl->state_default) != 0)))
        return -1;
    users = item(content, K_USERS);
    if (users == NULL && PyErr_Occurred())
        return -1;
    if (users != NULL && is_json_object(users)) {
        own = lookup(users, actor);
        if (own == NULL && PyErr_Occurred()) {
            Py_DECREF(users);
            return -1;
        }
        if (own != NULL) {
            pl->actor_listed = level_value(own, &pl->actor_level) == 1;
            Py_DECREF(own);
        }
    }
    Py_XDECREF(users);
    if (!full)
        return 0;
    pl->full = true;
    if (level_map(content, K_USERS, b, &pl->users, &pl->n_users) != 0 ||
        level_map(content, K_EVENTS, b, &pl->events, &pl->n_events) != 0)
        return -1;
    return 0;
}

/* The same with the actor's id as a C string. */
static int power_levels_from_mapping(PyObject *content, const char *actor, bool full,
                                     ssp_power_levels *pl, borrowed *b)
{
    PyObject *key = PyUnicode_FromString(actor);
    int rc;

    if (key == NULL)
        return -1;
    rc = power_levels_of(content, key, full, pl, b);
    Py_DECREF(key);
    return rc;
}

/* Whether mapping[key] is the str `want`. */
static int str_equals(PyObject *mapping, const char *key, const char *want, bool *out)
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

/* Length of mapping[key] when it is a non-str sequence, else 0. */
static int sequence_length(PyObject *mapping, const char *key, size_t *out)
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

/* Appends `user_id` to `list` unless `seen` has it. */
static int add_invitee(PyObject *list, PyObject *seen, PyObject *user_id)
{
    int known = PySet_Contains(seen, user_id);

    if (known != 0)
        return known < 0 ? -1 : 0;
    if (PySet_Add(seen, user_id) != 0)
        return -1;
    return PyList_Append(list, user_id);
}

/* The users a createRoom body puts into the room besides its creator: the
 * `invite` list and the state keys of initial_state's m.room.member events
 * (Synapse sends those without asking user_may_invite), each once, in the
 * order they appear. Returns a new list, or NULL with an exception set. */
static PyObject *create_room_invitees(PyObject *config, PyObject *actor)
{
    PyObject *list = PyList_New(0), *seen = PySet_New(NULL), *value = NULL, *seq = NULL;
    const char *sources[] = {"invite", "initial_state"};

    if (list == NULL || seen == NULL || PySet_Add(seen, actor) != 0)
        goto error;
    if (!is_json_object(config))
        goto done;
    for (size_t s = 0; s < sizeof sources / sizeof sources[0]; s++) {
        bool initial_state = s == 1;

        value = mapping_get(config, sources[s]);
        if (value == NULL && PyErr_Occurred())
            goto error;
        if (value == NULL || PyUnicode_Check(value) || !PySequence_Check(value)) {
            Py_CLEAR(value);
            continue; /* absent, or a shape Synapse refuses itself */
        }
        seq = PySequence_Fast(value, "not a sequence");
        if (seq == NULL)
            goto error;
        for (Py_ssize_t i = 0; i < fast_size(seq); i++) {
            PyObject *item = fast_item(seq, i), *state_key;
            bool is_member;
            int rc;

            if (!initial_state) {
                if (PyUnicode_Check(item) && add_invitee(list, seen, item) != 0)
                    goto error;
                continue;
            }
            if (!is_json_object(item))
                continue;
            if (str_equals(item, "type", "m.room.member", &is_member) != 0)
                goto error;
            if (!is_member)
                continue;
            state_key = mapping_get(item, "state_key");
            if (state_key == NULL) {
                if (PyErr_Occurred())
                    goto error;
                continue;
            }
            rc = PyUnicode_Check(state_key) ? add_invitee(list, seen, state_key) : 0;
            Py_DECREF(state_key);
            if (rc != 0)
                goto error;
        }
        Py_CLEAR(seq);
        Py_CLEAR(value);
    }
done:
    Py_DECREF(seen);
    return list;
error:
    Py_XDECREF(seq);
    Py_XDECREF(value);
    Py_XDECREF(seen);
    Py_XDECREF(list);
    return NULL;
}

/* Whether the Mapping `content` lacks `key` or holds anything but the str `want`. */
static int str_differs(PyObject *content, const char *key, const char *want, bool *out)
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

/* Reads the parts of a createRoom body that the rules look at. Values of an
 * unexpected type are left for Synapse's own validation to refuse; a state
 * event whose content cannot be read counts as the one that opens the room. */
static int create_room_from_mapping(PyObject *config, PyObject *actor, const char *policy_type,
                                    ssp_create_room *create)
{
    PyObject *value = NULL, *seq = NULL, *invitees;
    int rc = -1;

    memset(create, 0, sizeof *create);
    if (!is_json_object(config))
        return 0;
    invitees = create_room_invitees(config, actor);
    if (invitees == NULL)
        return -1;
    create->n_invites = (size_t)PyList_Size(invitees);
    Py_DECREF(invitees);
    value = mapping_get(config, "is_direct");
    if (value == NULL && PyErr_Occurred())
        return -1;
    create->is_direct = value == Py_True;
    Py_CLEAR(value);
    value = mapping_get(config, "room_alias_name");
    if (value == NULL && PyErr_Occurred())
        return -1;
    create->sets_alias = value != NULL && value != Py_None;
    Py_CLEAR(value);
    if (str_equals(config, "preset", "public_chat", &create->public_preset) != 0 ||
        str_equals(config, "visibility", "public", &create->public_visibility) != 0)
        return -1;
    {
        size_t n_3pid;

        if (sequence_length(config, "invite_3pid", &n_3pid) != 0)
            return -1;
        create->third_party_invites = n_3pid > 0;
    }
    value = mapping_get(config, "initial_state");
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    seq = PySequence_Fast(value, "initial_state must be a list");
    if (seq == NULL) {
        PyErr_Clear(); /* Synapse refuses such a body itself */
        rc = 0;
        goto done;
    }
    for (Py_ssize_t i = 0; i < fast_size(seq); i++) {
        PyObject *item = fast_item(seq, i), *content;
        bool is_policy, is_join_rules, is_history, is_guest_access, is_3pid, flag = false;

        if (!is_json_object(item))
            continue;
        if (str_equals(item, "type", policy_type, &is_policy) != 0 ||
            str_equals(item, "type", "m.room.join_rules", &is_join_rules) != 0 ||
            str_equals(item, "type", "m.room.history_visibility", &is_history) != 0 ||
            str_equals(item, "type", "m.room.guest_access", &is_guest_access) != 0 ||
            str_equals(item, "type", "m.room.third_party_invite", &is_3pid) != 0)
            goto done;
        create->sets_policy |= is_policy;
        create->third_party_invites |= is_3pid;
        if (!is_join_rules && !is_history && !is_guest_access)
            continue;
        {
            /* Only the room's own join rules, history and guest access
             * (state key "", which Synapse assumes when it is missing). */
            PyObject *state_key = mapping_get(item, "state_key");
            bool room_wide = state_key == NULL || (PyUnicode_Check(state_key) && PyUnicode_GetLength(state_key) == 0);

            Py_XDECREF(state_key);
            if (state_key == NULL && PyErr_Occurred())
                goto done;
            if (!room_wide)
                continue;
        }
        content = mapping_get(item, "content");
        if (content == NULL && PyErr_Occurred())
            goto done;
        if (is_join_rules) {
            if (content == NULL)
                flag = true;
            else if (str_differs(content, "join_rule", "invite", &flag) != 0)
                goto content_error;
            create->open_join_rule |= flag;
        } else if (content != NULL && is_json_object(content)) {
            if (is_history ? str_equals(content, "history_visibility", "world_readable", &flag)
                           : str_equals(content, "guest_access", "can_join", &flag))
                goto content_error;
            if (is_history)
                create->world_readable |= flag;
            else
                create->opens_guest_access |= flag;
        }
        Py_XDECREF(content);
        continue;
    content_error:
        Py_XDECREF(content);
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(seq);
    Py_XDECREF(value);
    return rc;
}

/* The room's create event's content.room_version and
 * content.additional_creators (a Mapping: checked by the caller). */
static int room_create_content(PyObject *content, ssp_room_create *create, borrowed *b)
{
    PyObject *creators = NULL, *seq = NULL;
    ssp_text *texts;
    Py_ssize_t n;

    if (str_field(content, K_ROOM_VERSION, b, &create->room_version, &create->room_version_len) != 0)
        return -1;
    creators = item(content, K_ADDITIONAL_CREATORS);
    if (creators == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyUnicode_Check(creators) || !PySequence_Check(creators)) {
        Py_DECREF(creators);
        return 0;
    }
    seq = PySequence_Fast(creators, "additional_creators");
    Py_DECREF(creators);
    if (seq == NULL || keep(b, seq) != 0) {
        Py_XDECREF(seq);
        return -1;
    }
    Py_DECREF(seq); /* b holds it */
    n = fast_size(seq);
    texts = borrowed_array(b, n, sizeof *texts);
    if (texts == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = fast_item(seq, i);
        Py_ssize_t len;

        if (!PyUnicode_Check(item))
            continue;
        texts[create->n_additional_creators].text = PyUnicode_AsUTF8AndSize(item, &len);
        if (texts[create->n_additional_creators].text == NULL)
            return -1;
        texts[create->n_additional_creators++].len = (size_t)len;
    }
    create->additional_creators = texts;
    return 0;
}

/* The room's power levels and create content, read when a rule first needs
 * them (ssp_room_details): most messages are in two-way or unmanaged rooms,
 * whose rules read neither. The objects are borrowed from decide()'s
 * arguments, which live until it returns. */
typedef struct room_details {
    ssp_room_details base; /* first: load() gets &base */
    PyObject *actor;
    PyObject *power_levels; /* None or a Mapping */
    PyObject *create_content; /* None or a Mapping */
    bool full_levels;
    ssp_power_levels *pl;
    ssp_room_create *create;
    borrowed *b;
} room_details;

static int room_details_load(ssp_room_details *base)
{
    room_details *details = (room_details *)base;

    if (details->power_levels != Py_None &&
        power_levels_of(details->power_levels, details->actor, details->full_levels, details->pl,
                        details->b) != 0)
        return -1;
    if (details->create_content != Py_None &&
        room_create_content(details->create_content, details->create, details->b) != 0)
        return -1;
    return 0;
}

/* The shape of a redaction's or reaction's content (see ssp_event_shape). */
static int event_shape_from(PyObject *content, ssp_event_shape *shape, borrowed *b)
{
    PyObject *value, *relation;
    Py_ssize_t n;

    memset(shape, 0, sizeof *shape);
    n = PyObject_Length(content);
    if (n < 0)
        return -1;
    shape->n_content_keys = (size_t)n;
    value = item(content, K_REDACTS);
    if (value == NULL && PyErr_Occurred())
        return -1;
    shape->has_redacts = value != NULL;
    if (value != NULL && PyUnicode_Check(value)) {
        shape->content_redacts = PyUnicode_AsUTF8AndSize(value, NULL);
        if (shape->content_redacts == NULL || keep(b, value) != 0) {
            Py_DECREF(value);
            return -1;
        }
    }
    Py_XDECREF(value);
    relation = item(content, K_RELATES_TO);
    if (relation == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!is_json_object(relation) || keep(b, relation) != 0) {
        int failed = PyErr_Occurred() != NULL;

        Py_DECREF(relation);
        return failed ? -1 : 0;
    }
    Py_DECREF(relation); /* b holds it */
    shape->has_relation = true;
    n = PyObject_Length(relation);
    if (n < 0)
        return -1;
    shape->n_relation_keys = (size_t)n;
    if (str_field(relation, K_REL_TYPE, b, &shape->rel_type, &shape->rel_type_len) != 0 ||
        str_field(relation, K_KEY, b, &shape->key, &shape->key_len) != 0)
        return -1;
    value = item(relation, K_EVENT_ID);
    if (value == NULL && PyErr_Occurred())
        return -1;
    shape->relation_event_id = value != NULL && PyUnicode_Check(value);
    Py_XDECREF(value);
    return 0;
}

/* The rooms two users share: a sequence of 3-tuples (policy content or
 * None, the policy event's sender or None, the room's creator or None). */
static int shared_rooms_from_sequence(PyObject *rooms, ssp_room_policy **out, size_t *n_out,
                                      borrowed *b)
{
    PyObject *seq = PySequence_Fast(rooms, "shared_rooms must be a sequence or None");
    ssp_room_policy *policies;
    Py_ssize_t n;

    *out = NULL;
    *n_out = 0;
    if (seq == NULL)
        return -1;
    if (keep(b, seq) != 0) {
        Py_DECREF(seq);
        return -1;
    }
    Py_DECREF(seq); /* b holds it */
    n = fast_size(seq);
    policies = borrowed_array(b, n, sizeof *policies);
    if (policies == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = fast_item(seq, i);
        const char *sender, *creator;

        if (!PyTuple_Check(item) || PyTuple_Size(item) != 3) {
            PyErr_SetString(PyExc_TypeError,
                            "shared_rooms items must be (policy, policy_sender, creator) tuples");
            return -1;
        }
        if (optional_str(PyTuple_GetItem(item, 1), "policy_sender", &sender) != 0 ||
            optional_str(PyTuple_GetItem(item, 2), "creator", &creator) != 0)
            return -1;
        if (PyTuple_GetItem(item, 0) == Py_None)
            policies[i].empty = true;
        else if (policy_from_mapping(PyTuple_GetItem(item, 0), &policies[i], b) != 0)
            return -1;
        policies[i].sender = sender;
        policies[i].creator = creator;
    }
    *out = policies;
    *n_out = (size_t)n;
    return 0;
}

enum {
    ARG_CALLBACK,
    ARG_ACTOR,
    ARG_TARGET,
    ARG_ROOM_ID,
    ARG_EVENT_TYPE,
    ARG_STATE_KEY,
    ARG_CONTENT,
    ARG_ROOM,
    ARG_ACTOR_ADMIN,
    ARG_IS_INVITED,
    ARG_SHARED_ROOMS,
    ARG_ACTOR_MEMBERSHIP,
    ARG_MEMBER_COUNT,
    ARG_REDACTS, /* optional */
    N_DECIDE_ARGS
};

/* The room tuple's items; the last, the policy event's id, may be left out. */
enum {
    ROOM_POLICY,
    ROOM_POLICY_SENDER,
    ROOM_POWER_LEVELS,
    ROOM_CREATE,
    ROOM_CREATOR,
    ROOM_POLICY_EVENT_ID,
    N_ROOM_ITEMS
};

/* Extracts what the rules read from the event's own content. */
static int event_content_facts(ssp_request *req, PyObject *actor, PyObject *content,
                               const char *policy_type, ssp_room_policy *new_policy,
                               ssp_power_levels *new_pl, ssp_event_shape *shape, bool *full_levels,
                               borrowed *b)
{
    bool differs;

    if (!is_json_object(content))
        return 0; /* no event has such content; the rules fail closed on what they miss */
    if (req->state_key != NULL && req->state_key[0] == '\0') {
        if (strcmp(req->event_type, policy_type) == 0) {
            *full_levels = true;
            if (policy_from_mapping(content, new_policy, b) != 0)
                return -1;
            req->new_policy = new_policy;
        } else if (strcmp(req->event_type, "m.room.power_levels") == 0) {
            *full_levels = true;
            if (power_levels_of(content, actor, true, new_pl, b) != 0)
                return -1;
            req->new_power_levels = new_pl;
        } else if (strcmp(req->event_type, "m.room.join_rules") == 0) {
            if (str_differs(content, "join_rule", "invite", &differs) != 0)
                return -1;
            req->opens_join_rule = differs;
        } else if (strcmp(req->event_type, "m.room.history_visibility") == 0) {
            if (str_equals(content, "history_visibility", "world_readable", &req->opens_history) != 0)
                return -1;
        } else if (strcmp(req->event_type, "m.room.guest_access") == 0) {
            if (str_equals(content, "guest_access", "can_join", &req->opens_guest_access) != 0)
                return -1;
        }
    }
    if (strcmp(req->event_type, "m.room.redaction") == 0 || strcmp(req->event_type, "m.reaction") == 0) {
        if (event_shape_from(content, shape, b) != 0)
            return -1;
        req->shape = shape;
    }
    return 0;
}

static PyObject *denial_result(const ssp_decision *decision)
{
    PyObject *result = PyStructSequence_New(denial_type), *value;
    PyObject *values[5] = {NULL};

    if (result == NULL)
        return NULL;
    values[0] = decision->rule < SSP_RULE__COUNT ? Py_NewRef(rule_strs[decision->rule])
                                                 : PyUnicode_FromString(ssp_rule_id(decision->rule));
    values[1] = message_str(decision->message);
    values[2] = Py_NewRef(decision->enforced ? Py_True : Py_False);
    values[3] = PyUnicode_FromString(decision->school);
    values[4] = PyLong_FromLongLong(decision->audit_id);
    for (int i = 0; i < 5; i++) {
        value = values[i];
        if (value == NULL) {
            for (int j = i + 1; j < 5; j++)
                Py_XDECREF(values[j]);
            Py_DECREF(result);
            return NULL;
        }
        PyStructSequence_SetItem(result, i, value); /* steals value */
    }
    return result;
}

/* decide(callback, actor, target, room_id, event_type, state_key, content,
 *        room, actor_admin, is_invited, shared_rooms, actor_membership,
 *        member_count)
 *
 * content is the event's content for check_event_for_spam, the createRoom
 * body for user_may_create_room, else None. room is None until asked for
 * (NEED_ROOM), then (policy content or None, the policy event's sender or
 * None, power levels content or None, m.room.create content or None, the
 * create event's sender or None). is_invited is a bool for
 * user_may_join_room, else None. shared_rooms is None until asked for, then
 * (policy content or None, policy sender or None, creator or None) of each
 * room actor and target share. actor_membership is None until asked for
 * (NEED_MEMBERSHIP), then the actor's membership str in the room ("" for
 * none). member_count is None until asked for (NEED_MEMBER_COUNT), then the
 * number of users joined or invited. redacts (optional) is the event an
 * m.room.redaction redacts, and the room tuple may end with the policy
 * event's id: with both, redacting the policy event is refused.
 * Returns None to allow; a NEED_* constant to ask for a fact and call again;
 * SYNC_POWER_LEVELS to allow and then align the room's power levels; or a
 * Denial (rule_id, message, enforced, school) whose audit record the engine
 * has already queued (Denial.audit_id, for wait_durable). Called with the
 * GIL; the roster is read under one read lock. The room's power levels and
 * create content, when they are dicts, are read only if a rule needs them
 * (ssp_room_details); an error reading them is raised then. */
static PyObject *Engine_decide(EngineObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ssp_request req = {0};
    ssp_decision decision;
    ssp_room_policy room_policy, new_policy, *shared = NULL;
    ssp_power_levels room_pl, new_pl;
    ssp_room_create room_create;
    ssp_event_shape shape;
    ssp_create_room create;
    room_details details = {{room_details_load, false, false}, NULL, NULL, NULL, false, NULL, NULL, NULL};
    borrowed b; /* the counters only: the arrays are written before they are read */
    const char *policy_type = ssp_engine_policy_event_type(self->engine);
    PyObject *result = NULL, *room;
    long callback, admin;
    bool full_levels = false; /* the room's levels maps are compared only for these two events */

    b.objects = NULL;
    b.n_held = 0;
    b.n_arrays = 0;
    if (nargs != N_DECIDE_ARGS && nargs != N_DECIDE_ARGS - 1) {
        PyErr_Format(PyExc_TypeError, "decide() takes %d or %d arguments", N_DECIDE_ARGS - 1, N_DECIDE_ARGS);
        return NULL;
    }
    room = args[ARG_ROOM];
    callback = PyLong_AsLong(args[ARG_CALLBACK]);
    if (callback == -1 && PyErr_Occurred())
        return NULL;
    if (callback < 0 || callback >= SSP_CB__COUNT) {
        PyErr_SetString(PyExc_ValueError, "unknown callback");
        return NULL;
    }
    req.callback = (ssp_callback)callback;
    if (!is_str(args[ARG_ACTOR])) {
        PyErr_SetString(PyExc_TypeError, "actor must be str");
        return NULL;
    }
    req.actor = PyUnicode_AsUTF8AndSize(args[ARG_ACTOR], NULL);
    if (req.actor == NULL || optional_str(args[ARG_TARGET], "target", &req.target) != 0 ||
        optional_str(args[ARG_ROOM_ID], "room_id", &req.room_id) != 0 ||
        optional_str(args[ARG_EVENT_TYPE], "event_type", &req.event_type) != 0 ||
        optional_str(args[ARG_STATE_KEY], "state_key", &req.state_key) != 0)
        return NULL;
    admin = PyLong_AsLong(args[ARG_ACTOR_ADMIN]);
    if (admin == -1 && PyErr_Occurred())
        return NULL;
    if (admin != SSP_FACT_UNKNOWN && admin != SSP_FACT_NO && admin != SSP_FACT_YES) {
        PyErr_SetString(PyExc_ValueError, "actor_admin must be FACT_UNKNOWN, FACT_NO or FACT_YES");
        return NULL;
    }
    req.actor_is_admin = (ssp_fact)admin;
    if (room != Py_None && (!PyTuple_Check(room) || (PyTuple_Size(room) != N_ROOM_ITEMS &&
                                                     PyTuple_Size(room) != N_ROOM_ITEMS - 1))) {
        PyErr_SetString(PyExc_TypeError, "room must be None or a tuple (policy, policy_sender, "
                                         "power_levels, create, creator[, policy_event_id])");
        return NULL;
    }
    if (nargs == N_DECIDE_ARGS && optional_str(args[ARG_REDACTS], "redacts", &req.redacts) != 0)
        return NULL;

    if (req.callback == SSP_CB_CHECK_EVENT_FOR_SPAM && args[ARG_CONTENT] != Py_None &&
        req.event_type != NULL) {
        if (event_content_facts(&req, args[ARG_ACTOR], args[ARG_CONTENT], policy_type, &new_policy,
                                &new_pl, &shape, &full_levels, &b) != 0)
            goto done;
    } else if (req.callback == SSP_CB_USER_MAY_CREATE_ROOM && args[ARG_CONTENT] != Py_None) {
        if (create_room_from_mapping(args[ARG_CONTENT], args[ARG_ACTOR], policy_type, &create) != 0)
            goto done;
        req.create = &create;
    }
    if (args[ARG_IS_INVITED] != Py_None) {
        int invited = PyObject_IsTrue(args[ARG_IS_INVITED]);

        if (invited < 0)
            goto done;
        req.is_invited = invited ? SSP_FACT_YES : SSP_FACT_NO;
    }
    if (args[ARG_SHARED_ROOMS] != Py_None) {
        if (shared_rooms_from_sequence(args[ARG_SHARED_ROOMS], &shared, &req.n_shared_rooms, &b) != 0)
            goto done;
        req.shared_rooms = shared;
        req.shared_known = SSP_FACT_YES;
    }
    if (args[ARG_ACTOR_MEMBERSHIP] != Py_None) {
        if (!PyUnicode_Check(args[ARG_ACTOR_MEMBERSHIP])) {
            PyErr_SetString(PyExc_TypeError, "actor_membership must be str or None");
            goto done;
        }
        req.actor_joined = PyUnicode_CompareWithASCIIString(args[ARG_ACTOR_MEMBERSHIP], "join") == 0
                               ? SSP_FACT_YES
                               : SSP_FACT_NO;
    }
    if (args[ARG_MEMBER_COUNT] != Py_None) {
        req.member_count = PyLong_AsLongLong(args[ARG_MEMBER_COUNT]);
        if (req.member_count == -1 && PyErr_Occurred())
            goto done;
        req.member_count_known = true;
    }
    if (room == Py_None) {
        req.room_managed = SSP_FACT_UNKNOWN;
    } else {
        PyObject *policy = PyTuple_GetItem(room, ROOM_POLICY);
        PyObject *power_levels = PyTuple_GetItem(room, ROOM_POWER_LEVELS);
        PyObject *create_content = PyTuple_GetItem(room, ROOM_CREATE);

        memset(&room_create, 0, sizeof room_create);
        memset(&room_pl, 0, sizeof room_pl);
        if (optional_str(PyTuple_GetItem(room, ROOM_CREATOR), "the create event's sender",
                         &room_create.sender) != 0)
            goto done;
        if (create_content != Py_None && !is_json_object(create_content)) {
            PyErr_SetString(PyExc_TypeError, "the create event's content must be a Mapping or None");
            goto done;
        }
        if (power_levels != Py_None && !is_json_object(power_levels)) {
            PyErr_SetString(PyExc_TypeError, "power levels must be a Mapping or None");
            goto done;
        }
        details.actor = args[ARG_ACTOR];
        details.power_levels = power_levels;
        details.create_content = create_content;
        details.full_levels = full_levels;
        details.pl = &room_pl;
        details.create = &room_create;
        details.b = &b;
        /* Read on first use only from dicts, whose reading runs no Python
         * code (Synapse's event contents are dicts throughout, or frozen
         * Mappings throughout, which are read below, before deciding): the
         * engine calls load() with the roster's read lock held. A Mapping
         * nested in a dict would run its own code under that lock; that
         * cannot deadlock another thread, because every roster write here
         * releases the GIL before it waits for the write lock. */
        if ((power_levels == Py_None || PyDict_CheckExact(power_levels)) &&
            (create_content == Py_None || PyDict_CheckExact(create_content)))
            req.room_details = &details.base;
        req.room_create = &room_create;
        if (policy == Py_None) {
            req.room_managed = SSP_FACT_NO;
        } else {
            if (policy_from_mapping(policy, &room_policy, &b) != 0 ||
                optional_str(PyTuple_GetItem(room, ROOM_POLICY_SENDER), "policy_sender",
                            &room_policy.sender) != 0)
                goto done;
            room_policy.creator = room_create.sender;
            if (PyTuple_Size(room) == N_ROOM_ITEMS &&
                optional_str(PyTuple_GetItem(room, ROOM_POLICY_EVENT_ID), "policy_event_id",
                            &room_policy.event_id) != 0)
                goto done;
            req.room_managed = SSP_FACT_YES;
            req.room = &room_policy;
        }
        if (power_levels != Py_None)
            req.room_power_levels = &room_pl;
        if (req.room_details == NULL && room_details_load(&details.base) != 0)
            goto done;
    }

    ssp_decide(self->engine, &req, &decision);
    if (details.base.failed)
        goto done; /* the exception load() raised */
    switch (decision.verdict) {
    case SSP_VERDICT_ALLOW:
        result = Py_NewRef(Py_None);
        break;
    case SSP_VERDICT_NEED_ROOM:
    case SSP_VERDICT_NEED_ADMIN:
    case SSP_VERDICT_NEED_SHARED_ROOMS:
    case SSP_VERDICT_NEED_MEMBERSHIP:
    case SSP_VERDICT_NEED_MEMBER_COUNT:
    case SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS:
        result = PyLong_FromLong((long)decision.verdict);
        break;
    case SSP_VERDICT_DENY:
        result = denial_result(&decision);
        break;
    }
done:
    borrowed_release(&b);
    return result;
}

/* create_room_invitees(actor, body) -> list of the user ids the createRoom
 * body puts into the room besides the actor, as the rules count them.
 * Called with the GIL. */
static PyObject *Engine_create_room_invitees(EngineObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *actor, *body;

    if (!PyArg_ParseTuple(args, "UO:create_room_invitees", &actor, &body))
        return NULL;
    return create_room_invitees(body, actor);
}

/* power_levels_update(room_policy, power_levels) -> dict | None
 *
 * The changes the room's power levels need so that clients show the
 * composer as the policy wants it: {"events_default": n, "events": {type: 0}}
 * with only the keys that change, or None when nothing is to change. */
static PyObject *Engine_power_levels_update(EngineObject *self, PyObject *args)
{
    PyObject *policy_obj, *pl_obj, *result = NULL;
    ssp_room_policy policy;
    ssp_power_levels pl;
    ssp_power_levels_patch patch;
    borrowed b = {0};

    if (!PyArg_ParseTuple(args, "OO:power_levels_update", &policy_obj, &pl_obj))
        return NULL;
    if (policy_obj == Py_None)
        Py_RETURN_NONE;
    b.objects = PyList_New(0);
    if (b.objects == NULL)
        return NULL;
    if (policy_from_mapping(policy_obj, &policy, &b) != 0 ||
        (pl_obj != Py_None && power_levels_from_mapping(pl_obj, "", true, &pl, &b) != 0))
        goto done;
    if (!ssp_power_levels_update(self->engine, &policy, pl_obj == Py_None ? NULL : &pl, &patch)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = py_from_json(state_of_type(Py_TYPE(self)), ssp_power_levels_patch_json(&patch));
done:
    borrowed_release(&b);
    return result;
}

/* room_shape(request) -> list of JSON Patch "add" operations
 *
 * What on_create_room changes in a createRoom request (ssp_room_shape).
 * Memory only (the config): keeps the GIL. */
static PyObject *Engine_room_shape(EngineObject *self, PyObject *request)
{
    json_t *value = py_to_json(request), *changes = NULL;
    ssp_error err = {0};
    int rc;

    if (value == NULL)
        return NULL;
    rc = ssp_room_shape(self->engine, value, &changes, &err);
    json_decref(value);
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json(state_of_type(Py_TYPE(self)), changes);
}

static PyObject *Engine_reconcile_plan(EngineObject *self, PyObject *args)
{
    const char *school, *user_id;
    char *plan = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTuple(args, "ss:reconcile_plan", &school, &user_id))
        return NULL;
    /* Memory only (config and roster under its read lock): keep the GIL. */
    if (ssp_reconcile_plan(self->engine, school, user_id, &plan, &err) != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), plan);
}

static PyObject *Engine_reconciler_settings(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_reconciler_settings settings;

    ssp_engine_reconciler_settings(self->engine, &settings);
    return Py_BuildValue("{s:L, s:L, s:L}", "actions_per_second",
                         (long long)settings.actions_per_second, "batch_size",
                         (long long)settings.batch_size, "retry_max_seconds",
                         (long long)settings.retry_max_seconds);
}

static PyObject *Engine_roster_put(EngineObject *self, PyObject *args)
{
    const char *user_id, *body;
    Py_ssize_t body_len;
    PyObject *user_obj, *body_obj;
    char *entry = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "OO:roster_put", &user_obj, &body_obj) ||
        text_arg((PyObject *)self, user_obj, "user_id", false, &user_id) != 0 ||
        body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_put(self->engine, user_id, body, (size_t)body_len, &entry, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), entry);
}

static PyObject *Engine_roster_upsert(EngineObject *self, PyObject *body_obj)
{
    const char *body;
    Py_ssize_t body_len;
    size_t upserted = 0;
    ssp_error err = {0};
    int rc;

    if (body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_upsert_batch(self->engine, body, (size_t)body_len, &upserted, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return PyLong_FromSize_t(upserted);
}

static PyObject *Engine_roster_delete(EngineObject *self, PyObject *args)
{
    const char *user_id;
    PyObject *user_obj;
    bool existed = false;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "O:roster_delete", &user_obj) ||
        text_arg((PyObject *)self, user_obj, "user_id", false, &user_id) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_delete(self->engine, user_id, &existed, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return PyBool_FromLong(existed);
}

static PyObject *Engine_roster_get(EngineObject *self, PyObject *args)
{
    const char *user_id;
    PyObject *user_obj;
    char *entry = NULL;
    ssp_error err = {0};

    if (!PyArg_ParseTuple(args, "O:roster_get", &user_obj) ||
        text_arg((PyObject *)self, user_obj, "user_id", false, &user_id) != 0)
        return NULL;
    /* A read of memory under the roster's read lock: no I/O, keep the GIL. */
    if (ssp_roster_get(self->engine, user_id, &entry, &err) != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    if (entry == NULL)
        Py_RETURN_NONE;
    return py_from_json_text(state_of_type(Py_TYPE(self)), entry);
}

static PyObject *Engine_roster_size(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t(ssp_roster_size(self->engine));
}

static PyObject *Engine_audit_query(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"since", "until", "rule", "school", "user", "limit", "before", NULL};
    long long since = 0, until = 0, before = 0, limit = 100;
    PyObject *since_obj = NULL, *until_obj = NULL, *before_obj = NULL, *limit_obj = NULL;
    PyObject *rule_obj = Py_None, *school_obj = Py_None, *user_obj = Py_None;
    PyObject *me = (PyObject *)self;
    ssp_audit_filter filter = {0};
    char *result = NULL;
    ssp_error err = {0};
    int rc;

    /* Out-of-range numbers and NUL characters are bad input (InputError),
     * like everything else the admin API passes on. */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOOOOO:audit_query", kwlist, &since_obj,
                                     &until_obj, &rule_obj, &school_obj, &user_obj, &limit_obj,
                                     &before_obj) ||
        ms_arg(me, since_obj, "since", &since) != 0 || ms_arg(me, until_obj, "until", &until) != 0 ||
        ms_arg(me, before_obj, "from", &before) != 0 || ms_arg(me, limit_obj, "limit", &limit) != 0 ||
        text_arg(me, rule_obj, "rule", true, &filter.rule) != 0 ||
        text_arg(me, school_obj, "school", true, &filter.school) != 0 ||
        text_arg(me, user_obj, "user", true, &filter.user) != 0)
        return NULL;
    if (limit < 1 || limit > 1000) {
        PyErr_SetString(state_of_type(Py_TYPE(self))->input_error,
                        "limit: expected an integer from 1 to 1000");
        return NULL;
    }
    filter.since_ms = since;
    filter.until_ms = until;
    filter.limit = (size_t)limit;
    filter.before_id = before;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_query(self->engine, &filter, &result, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), result);
}

static PyObject *Engine_audit_flush(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_flush(self->engine, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* wait_durable(audit_id, timeout_ms) -> bool: waits, without the GIL, until
 * a denial's audit record (Denial.audit_id) is written, at most timeout_ms.
 * True once it is (and for audit_id 0), False on timeout. Run it in a thread:
 * it blocks until the store's writer has done the next fdatasync or commit. */
static PyObject *Engine_wait_durable(EngineObject *self, PyObject *args)
{
    long long audit_id, timeout_ms;
    bool durable;

    if (!PyArg_ParseTuple(args, "LL:wait_durable", &audit_id, &timeout_ms))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    durable = ssp_decision_wait_durable(self->engine, (int64_t)audit_id, (int64_t)timeout_ms);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(durable);
}

static PyObject *Engine_audit_stats(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_audit_stats stats;

    ssp_audit_get_stats(self->engine, &stats);
    return Py_BuildValue("{sKsKsKsK}", "queued", (unsigned long long)stats.queued, "written",
                         (unsigned long long)stats.written, "queue_depth",
                         (unsigned long long)stats.queue_depth, "write_errors",
                         (unsigned long long)stats.write_errors);
}

/* store_status() -> dict. Reads counters under the store's mutex: no I/O,
 * the GIL stays held. */
static PyObject *Engine_store_status(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_store_status st;

    ssp_store_get_status(self->engine, &st);
    return Py_BuildValue("{sOsOsKsKsKsKsLsKsssK}", "postgres", st.postgres ? Py_True : Py_False,
                         "connected", st.connected ? Py_True : Py_False, "audit_spilled_total",
                         (unsigned long long)st.audit_spilled_total, "audit_spill_pending",
                         (unsigned long long)st.audit_spill_pending, "roster_outbox_pending",
                         (unsigned long long)st.roster_outbox_pending, "connects",
                         (unsigned long long)st.connects, "roster_version",
                         (long long)st.roster_version, "reconcile_pending",
                         (unsigned long long)st.reconcile_pending, "last_error", st.last_error,
                         "roster_skipped", (unsigned long long)st.roster_skipped);
}

/* audit_purge(before_ms) -> number of records deleted: those with a
 * timestamp before before_ms (ms since the epoch, not a duration). Waits
 * on the database, so the GIL is released. */
static PyObject *Engine_audit_purge(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"before_ms", NULL};
    long long before = 0;
    uint64_t deleted = 0;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L:audit_purge", kwlist, &before))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_purge(self->engine, before, &deleted, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return PyLong_FromUnsignedLongLong(deleted);
}

/* store_sync(timeout_ms=10000) -> None: waits until this engine's writes
 * are in the store itself (ssp_store_sync); StoreError when not in time. */
static PyObject *Engine_store_sync(EngineObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout_ms", NULL};
    long long timeout = 10000;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|L:store_sync", kwlist, &timeout))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_store_sync(self->engine, timeout, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* ---- reconciliation ledger: every call may wait on disk or the database,
 * so the GIL is released around it ---- */

/* reconcile_mark(school, user_ids) -> None. The list's UTF-8 buffers live
 * as long as the tuple of strings kept here. */
static PyObject *Engine_reconcile_mark(EngineObject *self, PyObject *args)
{
    const char *school;
    PyObject *users_obj, *users = NULL;
    const char **user_ids = NULL;
    Py_ssize_t n;
    ssp_error err = {0};
    int rc;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "sO:reconcile_mark", &school, &users_obj))
        return NULL;
    if (PyUnicode_Check(users_obj)) {
        PyErr_SetString(PyExc_TypeError, "user_ids must be a list of str, not a str");
        return NULL;
    }
    users = PySequence_Tuple(users_obj);
    if (users == NULL)
        return NULL;
    n = PyTuple_Size(users);
    user_ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *user_ids);
    if (user_ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(users, i);

        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "user_ids[%zd] must be str", i);
            goto done;
        }
        user_ids[i] = PyUnicode_AsUTF8AndSize(item, NULL);
        if (user_ids[i] == NULL)
            goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_mark(self->engine, school, user_ids, (size_t)n, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        raise_engine_error(Py_TYPE(self), &err);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(user_ids);
    Py_XDECREF(users);
    return result;
}

/* reconcile_due(now_ms, max) -> list of the due marks. */
static PyObject *Engine_reconcile_due(EngineObject *self, PyObject *args)
{
    long long now_ms;
    Py_ssize_t max;
    char *marks = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "Ln:reconcile_due", &now_ms, &max))
        return NULL;
    if (max < 0) {
        PyErr_SetString(state_of_type(Py_TYPE(self))->input_error,
                        "max: expected a non-negative integer");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_due(self->engine, now_ms, (size_t)max, &marks, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), marks);
}

/* reconcile_done(school, user_id, generation) -> None. */
static PyObject *Engine_reconcile_done(EngineObject *self, PyObject *args)
{
    const char *school, *user_id;
    long long generation;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ssL:reconcile_done", &school, &user_id, &generation))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_done(self->engine, school, user_id, generation, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* reconcile_failed(school, user_id, generation, error, retry_at_ms) -> None. */
static PyObject *Engine_reconcile_failed(EngineObject *self, PyObject *args)
{
    const char *school, *user_id, *error;
    long long generation, retry_at_ms;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ssLsL:reconcile_failed", &school, &user_id, &generation, &error,
                          &retry_at_ms))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_failed(self->engine, school, user_id, generation, error, retry_at_ms, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* reconcile_set_room(school, kind, room_id or None) -> None. */
static PyObject *Engine_reconcile_set_room(EngineObject *self, PyObject *args)
{
    const char *school, *kind, *room_id;
    PyObject *room_obj;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ssO:reconcile_set_room", &school, &kind, &room_obj) ||
        optional_str(room_obj, "room_id", &room_id) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_set_room(self->engine, school, kind, room_id, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* reconcile_get_room(school, kind) -> room id or None. */
static PyObject *Engine_reconcile_get_room(EngineObject *self, PyObject *args)
{
    const char *school, *kind;
    char *room_id = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "ss:reconcile_get_room", &school, &kind))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_get_room(self->engine, school, kind, &room_id, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    if (room_id == NULL)
        Py_RETURN_NONE;
    return take_engine_string(room_id);
}

/* reconcile_sync_config() -> number of schools whose applied config changed. */
static PyObject *Engine_reconcile_sync_config(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    size_t changed = 0;
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_sync_config(self->engine, &changed, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return PyLong_FromSize_t(changed);
}

/* reconcile_status() -> dict. */
static PyObject *Engine_reconcile_status(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    char *status = NULL;
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_status(self->engine, &status, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), status);
}

/* roster_feed_start() -> None. Called with the GIL; releases it while the
 * engine resolves the broker URL (may read a file) and starts the feed's
 * thread, which never takes the GIL. */
static PyObject *Engine_roster_feed_start(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    ssp_error err = {0};
    int rc;

    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_feed_start(self->engine, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

/* roster_feed_status() -> dict (None without roster_feed). Reads
 * memory under the feed's mutex only: keeps the GIL. */
static PyObject *Engine_roster_feed_status(EngineObject *self, PyObject *Py_UNUSED(ignored))
{
    char *status = NULL;
    ssp_error err = {0};

    if (ssp_roster_feed_status(self->engine, &status, &err) != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), status);
}

/* audit_view(request_json) -> response dict (ssp_audit_view). Called
 * with the GIL; released around the engine call, which reads the store. */
static PyObject *Engine_audit_view(EngineObject *self, PyObject *arg)
{
    const char *request;
    Py_ssize_t len;
    char *response = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "audit_view() takes the request as a JSON str");
        return NULL;
    }
    request = PyUnicode_AsUTF8AndSize(arg, &len);
    if (request == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_audit_view(self->engine, request, (size_t)len, &response, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(Py_TYPE(self), &err);
    return py_from_json_text(state_of_type(Py_TYPE(self)), response);
}

static PyObject *Engine_get_policy_event_type(EngineObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(ssp_engine_policy_event_type(self->engine));
}

static PyMethodDef Engine_methods[] = {
    {"create_room_invitees", (PyCFunction)Engine_create_room_invitees, METH_VARARGS,
     "create_room_invitees(actor, body) -> the users a createRoom body puts into the room."},
    {"open", (PyCFunction)(void (*)(void))Engine_open, METH_VARARGS | METH_KEYWORDS,
     "open(*, offline=False): open the store and load the roster. Blocks on disk I/O. "
     "offline: the command line's open beside a running Synapse."},
    {"decide", (PyCFunction)(void (*)(void))Engine_decide, METH_FASTCALL,
     "decide(callback, actor, target, room_id, event_type, state_key, content, room, "
     "actor_admin, is_invited, shared_rooms, actor_membership, member_count, redacts)"},
    {"power_levels_update", (PyCFunction)Engine_power_levels_update, METH_VARARGS,
     "power_levels_update(room_policy, power_levels) -> changes to make, or None."},
    {"room_shape", (PyCFunction)Engine_room_shape, METH_O,
     "room_shape(request) -> the JSON Patch \"add\" operations on_create_room applies to a "
     "createRoom request: guest access closed, no federation and policy power levels for "
     "rooms created with the policy event."},
    {"roster_put", (PyCFunction)Engine_roster_put, METH_VARARGS,
     "roster_put(user_id, body) -> the stored entry (dict). Durable before it returns."},
    {"roster_upsert", (PyCFunction)Engine_roster_upsert, METH_O,
     "roster_upsert(body) -> number of users written."},
    {"roster_delete", (PyCFunction)Engine_roster_delete, METH_VARARGS,
     "roster_delete(user_id) -> whether the user was on the roster."},
    {"reconcile_plan", (PyCFunction)Engine_reconcile_plan, METH_VARARGS,
     "reconcile_plan(school, user_id) -> dict: the special rooms' targets for the user "
     "(\"\" for the school itself)."},
    {"reconciler_settings", (PyCFunction)Engine_reconciler_settings, METH_NOARGS,
     "The reconciler's rate, batch size and backoff cap, from the config."},
    {"roster_get", (PyCFunction)Engine_roster_get, METH_VARARGS,
     "roster_get(user_id) -> the entry (dict) or None."},
    {"roster_size", (PyCFunction)Engine_roster_size, METH_NOARGS, "Users on the roster."},
    {"audit_query", (PyCFunction)(void (*)(void))Engine_audit_query, METH_VARARGS | METH_KEYWORDS,
     "audit_query(*, since, until, rule, school, user, limit, before) -> {records, next}."},
    {"audit_flush", (PyCFunction)Engine_audit_flush, METH_NOARGS,
     "Wait until every queued audit record is written."},
    {"wait_durable", (PyCFunction)Engine_wait_durable, METH_VARARGS,
     "wait_durable(audit_id, timeout_ms) -> bool: wait (without the GIL) until a denial's "
     "audit record is written; False on timeout."},
    {"audit_stats", (PyCFunction)Engine_audit_stats, METH_NOARGS, "Audit queue counters."},
    {"store_status", (PyCFunction)Engine_store_status, METH_NOARGS,
     "The store's state: postgres, connected, audit_spilled_total, audit_spill_pending, "
     "roster_outbox_pending, connects, roster_version, reconcile_pending, last_error, "
     "roster_skipped."},
    {"audit_purge", (PyCFunction)(void (*)(void))Engine_audit_purge, METH_VARARGS | METH_KEYWORDS,
     "audit_purge(before_ms) -> records deleted: those with a timestamp before before_ms, "
     "ms since the epoch (PostgreSQL store)."},
    {"store_sync", (PyCFunction)(void (*)(void))Engine_store_sync, METH_VARARGS | METH_KEYWORDS,
     "store_sync(timeout_ms=10000): wait until this engine's writes are in the store itself."},
    {"reconcile_mark", (PyCFunction)Engine_reconcile_mark, METH_VARARGS,
     "reconcile_mark(school, user_ids) -> None. \"\" marks the school itself. Durable."},
    {"reconcile_due", (PyCFunction)Engine_reconcile_due, METH_VARARGS,
     "reconcile_due(now_ms, max) -> list of {school, user_id, generation, attempts}."},
    {"reconcile_done", (PyCFunction)Engine_reconcile_done, METH_VARARGS,
     "reconcile_done(school, user_id, generation) -> None; a renewed mark stays."},
    {"reconcile_failed", (PyCFunction)Engine_reconcile_failed, METH_VARARGS,
     "reconcile_failed(school, user_id, generation, error, retry_at_ms) -> None."},
    {"reconcile_set_room", (PyCFunction)Engine_reconcile_set_room, METH_VARARGS,
     "reconcile_set_room(school, kind, room_id or None) -> None."},
    {"reconcile_get_room", (PyCFunction)Engine_reconcile_get_room, METH_VARARGS,
     "reconcile_get_room(school, kind) -> room id or None."},
    {"reconcile_sync_config", (PyCFunction)Engine_reconcile_sync_config, METH_NOARGS,
     "reconcile_sync_config() -> number of schools whose applied config changed (marked)."},
    {"audit_view", (PyCFunction)Engine_audit_view, METH_O,
     "audit_view(request_json) -> {\"status\": 200, \"body\": ...} or {\"status\": 403, ...}."},
    {"reconcile_status", (PyCFunction)Engine_reconcile_status, METH_NOARGS,
     "reconcile_status() -> {\"schools\": {...}}."},
    {"roster_feed_start", (PyCFunction)Engine_roster_feed_start, METH_NOARGS,
     "roster_feed_start() -> None: starts the roster_feed consumer thread."},
    {"roster_feed_status", (PyCFunction)Engine_roster_feed_status, METH_NOARGS,
     "roster_feed_status() -> the roster feed's state (dict), None when not configured."},
    {NULL, NULL, 0, NULL},
};

static PyObject *Engine_get_strict_homeserver_config(EngineObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(ssp_engine_strict_homeserver_config(self->engine));
}

static PyObject *Engine_get_reconciler_user(EngineObject *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(ssp_engine_reconciler_user(self->engine));
}

static PyGetSetDef Engine_getset[] = {
    {"reconciler_user", (getter)Engine_get_reconciler_user, NULL,
     "The user that owns the special rooms.", NULL},
    {"strict_homeserver_config", (getter)Engine_get_strict_homeserver_config, NULL,
     "Whether a failed homeserver.yaml self-check stops Synapse.", NULL},
    {"policy_event_type", (getter)Engine_get_policy_event_type, NULL,
     "The managed-room state event type.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Engine_slots[] = {
    {Py_tp_doc, "Engine(config_json, server_name, worker_name): the school policy engine."},
    {Py_tp_new, Engine_new},
    {Py_tp_dealloc, Engine_dealloc},
    {Py_tp_traverse, Engine_traverse},
    {Py_tp_methods, Engine_methods},
    {Py_tp_getset, Engine_getset},
    {0, NULL},
};

static PyType_Spec Engine_spec = {
    .name = "synapse_school_policy._core.Engine",
    .basicsize = sizeof(EngineObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Engine_slots,
};

/* ---- module functions ---- */

static PyObject *core_check_config(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    ssp_error err = {0};

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "check_config() takes the config as a JSON str");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    if (ssp_config_check(text, (size_t)len, &err) != 0) {
        if (err.code == SSP_ERR_NOMEM)
            return PyErr_NoMemory();
        PyErr_SetString(state_of_module(module)->input_error, err.message);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* roster_check(body, server_name) -> the users as a list of entries; raises
 * InputError / JsonSyntaxError as POST /roster answers 400. */
static PyObject *core_roster_check(PyObject *module, PyObject *args)
{
    const char *body, *server_name;
    Py_ssize_t body_len;
    PyObject *body_obj;
    char *users = NULL;
    ssp_error err = {0};
    int rc;
    module_state *st = state_of_module(module);

    if (!PyArg_ParseTuple(args, "Os:roster_check", &body_obj, &server_name) ||
        body_buffer(body_obj, &body, &body_len) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_roster_check_batch(body, (size_t)body_len, server_name, &users, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        if (err.code == SSP_ERR_NOMEM)
            return PyErr_NoMemory();
        PyErr_SetString(err.code == SSP_ERR_SYNTAX ? st->syntax_error : st->input_error,
                        err.message);
        return NULL;
    }
    return py_from_json_text(state_of_module(module), users);
}

static PyObject *core_check_homeserver(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    char *findings = NULL;
    ssp_error err = {0};

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "check_homeserver() takes the settings as a JSON str");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    if (ssp_homeserver_check(text, (size_t)len, &findings, &err) != 0) {
        if (err.code == SSP_ERR_NOMEM)
            return PyErr_NoMemory();
        PyErr_SetString(state_of_module(module)->input_error, err.message);
        return NULL;
    }
    return py_from_json_text(state_of_module(module), findings);
}

/* reconcile_status_offline(config_json) -> dict, without an engine:
 * reads data_dir/reconcile.jsonl or queries the database. */
static PyObject *core_reconcile_status_offline(PyObject *module, PyObject *arg)
{
    const char *text;
    Py_ssize_t len;
    char *status = NULL;
    ssp_error err = {0};
    int rc;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError,
                        "reconcile_status_offline() takes the config as a JSON str");
        return NULL;
    }
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ssp_reconcile_status_offline(text, (size_t)len, &status, &err);
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return raise_engine_error(state_of_module(module)->engine_type, &err);
    return py_from_json_text(state_of_module(module), status);
}

static PyMethodDef core_methods[] = {
    {"reconcile_status_offline", core_reconcile_status_offline, METH_O,
     "reconcile_status_offline(config_json) -> status (dict) of the reconciliation ledger, "
     "read without a running engine."},
    {"check_homeserver", core_check_homeserver, METH_O,
     "check_homeserver(settings_json) -> list of {setting, problem}."},
    {"roster_check", core_roster_check, METH_VARARGS,
     "roster_check(body, server_name) -> the users of a POST /roster body as a list; "
     "raises InputError naming the bad field, as the admin API does."},
    {"check_config", core_check_config, METH_O,
     "check_config(json) -> None; raises InputError naming the bad key."},
    {NULL, NULL, 0, NULL},
};

static PyObject *rule_ids_tuple(void)
{
    PyObject *ids = PyTuple_New(SSP_RULE__COUNT - 1);

    if (ids == NULL)
        return NULL;
    for (int r = 1; r < SSP_RULE__COUNT; r++) {
        PyObject *id = PyUnicode_FromString(ssp_rule_id((ssp_rule)r));

        if (id == NULL) {
            Py_DECREF(ids);
            return NULL;
        }
        if (PyTuple_SetItem(ids, r - 1, id) < 0) { /* steals id, also on failure */
            Py_DECREF(ids);
            return NULL;
        }
    }
    return ids;
}

/* CALLBACK_NAMES[i] is the name of the callback whose CB_* constant is i. */
static PyObject *callback_names_tuple(void)
{
    PyObject *names = PyTuple_New(SSP_CB__COUNT);

    if (names == NULL)
        return NULL;
    for (int cb = 0; cb < SSP_CB__COUNT; cb++) {
        PyObject *name = PyUnicode_FromString(ssp_callback_name((ssp_callback)cb));

        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        if (PyTuple_SetItem(names, cb, name) < 0) { /* steals name, also on failure */
            Py_DECREF(names);
            return NULL;
        }
    }
    return names;
}

static int add_int(PyObject *module, const char *name, long value)
{
    return PyModule_AddIntConstant(module, name, value);
}

static int core_exec(PyObject *module)
{
    module_state *st = state_of_module(module);
    PyObject *ids = NULL, *callbacks = NULL, *json_module = NULL;
    int rc = -1;

    ssp_global_init();
    if (keys_init() != 0 || rule_strs_init() != 0)
        goto done;
    json_module = PyImport_ImportModule("json");
    if (json_module == NULL)
        goto done;
    st->json_loads = PyObject_GetAttrString(json_module, "loads");
    if (st->json_loads == NULL)
        goto done;
    if (denial_type == NULL && (denial_type = PyStructSequence_NewType(&DENIAL_DESC)) == NULL)
        goto done;
    st->engine_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &Engine_spec, NULL);
    if (st->engine_type == NULL)
        goto done;
    st->input_error = PyErr_NewExceptionWithDoc(
        "synapse_school_policy._core.InputError",
        "Invalid input from the caller: a config key, a request body field.", PyExc_ValueError,
        NULL);
    if (st->input_error == NULL)
        goto done;
    st->syntax_error = PyErr_NewExceptionWithDoc("synapse_school_policy._core.JsonSyntaxError",
                                                 "Input that is not well-formed JSON.",
                                                 st->input_error, NULL);
    if (st->syntax_error == NULL)
        goto done;
    st->store_error = PyErr_NewExceptionWithDoc("synapse_school_policy._core.StoreError",
                                                "The module's store failed.", PyExc_OSError,
                                                NULL);
    if (st->store_error == NULL)
        goto done;
    st->database_error = PyErr_NewExceptionWithDoc(
        "synapse_school_policy._core.DatabaseError",
        "The database refused a statement (an SQL error, not a lost connection).",
        st->store_error, NULL);
    if (st->database_error == NULL)
        goto done;
    ids = rule_ids_tuple();
    callbacks = callback_names_tuple();
    if (ids == NULL || callbacks == NULL)
        goto done;
    if (PyModule_AddObjectRef(module, "Engine", (PyObject *)st->engine_type) < 0 ||
        PyModule_AddObjectRef(module, "InputError", st->input_error) < 0 ||
        PyModule_AddObjectRef(module, "JsonSyntaxError", st->syntax_error) < 0 ||
        PyModule_AddObjectRef(module, "StoreError", st->store_error) < 0 ||
        PyModule_AddObjectRef(module, "DatabaseError", st->database_error) < 0 ||
        PyModule_AddObjectRef(module, "Denial", (PyObject *)denial_type) < 0 ||
        PyModule_AddObjectRef(module, "RULE_IDS", ids) < 0 ||
        PyModule_AddObjectRef(module, "CALLBACK_NAMES", callbacks) < 0)
        goto done;
    if (add_int(module, "CB_CHECK_LOGIN_FOR_SPAM", SSP_CB_CHECK_LOGIN_FOR_SPAM) < 0 ||
        add_int(module, "CB_USER_MAY_JOIN_ROOM", SSP_CB_USER_MAY_JOIN_ROOM) < 0 ||
        add_int(module, "CB_USER_MAY_INVITE", SSP_CB_USER_MAY_INVITE) < 0 ||
        add_int(module, "CB_USER_MAY_CREATE_ROOM", SSP_CB_USER_MAY_CREATE_ROOM) < 0 ||
        add_int(module, "CB_CHECK_EVENT_FOR_SPAM", SSP_CB_CHECK_EVENT_FOR_SPAM) < 0 ||
        add_int(module, "CB_FEDERATED_USER_MAY_INVITE", SSP_CB_FEDERATED_USER_MAY_INVITE) < 0 ||
        add_int(module, "CB_USER_MAY_PUBLISH_ROOM", SSP_CB_USER_MAY_PUBLISH_ROOM) < 0 ||
        add_int(module, "CB_USER_MAY_CREATE_ROOM_ALIAS", SSP_CB_USER_MAY_CREATE_ROOM_ALIAS) < 0 ||
        add_int(module, "CB_USER_MAY_SEND_3PID_INVITE", SSP_CB_USER_MAY_SEND_3PID_INVITE) < 0 ||
        add_int(module, "CB_CHECK_USERNAME_FOR_SPAM", SSP_CB_CHECK_USERNAME_FOR_SPAM) < 0 ||
        add_int(module, "CB_IS_USER_EXPIRED", SSP_CB_IS_USER_EXPIRED) < 0 ||
        add_int(module, "NEED_MEMBERSHIP", SSP_VERDICT_NEED_MEMBERSHIP) < 0 ||
        add_int(module, "NEED_MEMBER_COUNT", SSP_VERDICT_NEED_MEMBER_COUNT) < 0 ||
        add_int(module, "NEED_SHARED_ROOMS", SSP_VERDICT_NEED_SHARED_ROOMS) < 0 ||
        add_int(module, "NEED_ROOM", SSP_VERDICT_NEED_ROOM) < 0 ||
        add_int(module, "NEED_ADMIN", SSP_VERDICT_NEED_ADMIN) < 0 ||
        add_int(module, "SYNC_POWER_LEVELS", SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS) < 0 ||
        add_int(module, "FACT_UNKNOWN", SSP_FACT_UNKNOWN) < 0 ||
        add_int(module, "FACT_NO", SSP_FACT_NO) < 0 || add_int(module, "FACT_YES", SSP_FACT_YES) < 0)
        goto done;
    rc = 0;
done:
    Py_XDECREF(json_module);
    Py_XDECREF(ids);
    Py_XDECREF(callbacks);
    return rc;
}

static int core_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = state_of_module(module);

    Py_VISIT(st->engine_type);
    Py_VISIT(st->input_error);
    Py_VISIT(st->syntax_error);
    Py_VISIT(st->store_error);
    Py_VISIT(st->database_error);
    Py_VISIT(st->json_loads);
    return 0;
}

static int core_clear(PyObject *module)
{
    module_state *st = state_of_module(module);

    Py_CLEAR(st->engine_type);
    Py_CLEAR(st->input_error);
    Py_CLEAR(st->syntax_error);
    Py_CLEAR(st->store_error);
    Py_CLEAR(st->database_error);
    Py_CLEAR(st->json_loads);
    return 0;
}

static void core_free(void *module)
{
    core_clear((PyObject *)module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#ifdef Py_mod_multiple_interpreters
    /* Each Engine owns a writer thread and files: one interpreter at a time. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "synapse_school_policy._core",
    .m_doc = "The school policy engine (C).",
    .m_size = sizeof(module_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
