/*
 * sessgate_core_python.i - the Python part of bindings/sessgate.i.
 *
 * Only what the neutral file cannot say: how a result is appended, and the
 * one error rule.  An error report with code != SG_OK becomes an instance
 * of the sessgate.Error subclass for that code, made by
 * sessgate.errors._from_core(code, text, sys_errno) so the classes (with
 * their docstrings and hierarchy) are written in Python, once.
 */
%{
/* Set the Python exception for *e.  Never fails silently: if the errors
 * module cannot be loaded, a RuntimeError carries the text. */
static void sgw_raise(const sg_error *e)
{
    /* Borrowed for the life of the process: one reference kept here. */
    static PyObject *factory = NULL;
    PyObject *text, *exc;

    if (factory == NULL) {
        PyObject *mod = PyImport_ImportModule("sessgate.errors");
        if (mod != NULL) {
            factory = PyObject_GetAttrString(mod, "_from_core");
            Py_DECREF(mod);
        }
        if (factory == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_RuntimeError, "%s", e->text);
            return;
        }
    }
    /* The text is library-made but may quote a path: never fail on bytes. */
    text = PyUnicode_DecodeUTF8(e->text, (Py_ssize_t)strnlen(e->text, sizeof e->text),
                                "replace");
    if (text == NULL)
        return;
    exc = PyObject_CallFunction(factory, "iOi", (int)e->code, text, e->sys_errno);
    Py_DECREF(text);
    if (exc == NULL)
        return;                     /* the factory's own exception stands */
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/* The uniform rule, expanded in every wrapper after the call: drop what
 * was built so far and fail. */
#define SGW_FAIL_IF_ERROR(e) do {                       \
        if ((e)->code != SG_OK) {                       \
            Py_XDECREF(resultobj);                      \
            resultobj = NULL;                           \
            sgw_raise(e);                               \
            SWIG_fail;                                  \
        }                                               \
    } while (0)

#define SGW_STATUS_RESULT() (resultobj = SWIG_Py_Void())

#define SGW_APPEND_OWNED(p, desc) \
    (resultobj = SWIG_Python_AppendOutput(resultobj, SWIG_NewPointerObj((p), (desc), SWIG_POINTER_OWN)))

#define SGW_APPEND_SIZE(n) \
    (resultobj = SWIG_Python_AppendOutput(resultobj, PyLong_FromSize_t(n)))

/* Append a C string as str (the caller frees the C string). */
#define SGW_APPEND_STRING(t) \
    (resultobj = SWIG_Python_AppendOutput(resultobj, PyUnicode_FromString(t)))

/* Append the ids of l as a list of str; on a Python failure, fail. */
#define SGW_APPEND_LIST(l) do {                                         \
        size_t sgw_i, sgw_n = sg_list_count(l);                         \
        PyObject *sgw_list = PyList_New((Py_ssize_t)sgw_n);             \
        for (sgw_i = 0; sgw_list != NULL && sgw_i < sgw_n; sgw_i++) {   \
            PyObject *sgw_s = PyUnicode_FromString(sg_list_id(l, sgw_i)); \
            if (sgw_s == NULL) {                                        \
                Py_CLEAR(sgw_list);                                     \
                break;                                                  \
            }                                                           \
            PyList_SET_ITEM(sgw_list, (Py_ssize_t)sgw_i, sgw_s);        \
        }                                                               \
        if (sgw_list == NULL) {                                         \
            sg_list_free(l);                                            \
            Py_XDECREF(resultobj);                                      \
            resultobj = NULL;                                           \
            SWIG_fail;                                                  \
        }                                                               \
        resultobj = SWIG_Python_AppendOutput(resultobj, sgw_list);      \
    } while (0)
%}

/* ------------------------------------------------- the lean read path
 *
 * Why: store.get(sid) and a session's first data access run on every
 * request, and issue #14 measures them against dbm.gnu + json.loads.
 * Through SWIG's generic wrappers a get paid, above the C get, a tuple
 * unpack, a malloc'd copy of the id, a proxy instance with its own
 * __dict__ (and a Python-level call to free it), and for a missing
 * session an exception built by sessgate.errors and caught again.  These
 * two functions are the same C calls with none of that: METH_FASTCALL,
 * the id read from the str's cached UTF-8, the session returned as the
 * bare SWIG object (every session_* wrapper accepts it; the garbage
 * collector frees it with sg_session_free as before), None for "no such
 * session".  Only the Python layer (sessgate/__init__.py) calls them.
 *
 *   py_session_get(store, id, flags) -> session | None
 *       sg_session_get; None when the id is malformed (not a 36-char
 *       str without NUL), unknown or expired; every other failure raises
 *       as the generic wrappers do.  TypeError when id is not a str.
 *   py_session_data(session, scan_once) -> (value, text) | (None, text)
 *       the stored data text (sg_session_data_json, no parse in C) and
 *       scan_once(text, 0) -- json's own scanner, passed in by the
 *       layer -- when that consumed the whole text and made a dict;
 *       (None, text) when it did not (the layer then asks json.loads,
 *       which decides); None when out of memory.
 */
%{
static PyObject *sgw_py_session_get(PyObject *self, PyObject *const *args,
                                    Py_ssize_t nargs)
{
    void *argp = NULL;
    const char *sid;
    Py_ssize_t len;
    unsigned long flags;
    sg_session *s = NULL;
    sg_error err;
    sg_status rc;

    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "py_session_get(store, id, flags)");
        return NULL;
    }
    if (!SWIG_IsOK(SWIG_ConvertPtr(args[0], &argp, SWIGTYPE_p_sg_store, 0)) || !argp) {
        PyErr_SetString(PyExc_TypeError, "py_session_get: not a store handle");
        return NULL;
    }
    if (!PyUnicode_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "session id must be str, not %.100s",
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    flags = PyLong_AsUnsignedLong(args[2]);
    if (flags == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (flags > UINT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "py_session_get: flags out of range");
        return NULL;
    }
    /* A session id is 36 ASCII characters: anything else (longer, shorter,
     * a NUL inside, a lone surrogate) names no session. */
    if (PyUnicode_GET_LENGTH(args[1]) != SG_ID_LEN)
        Py_RETURN_NONE;
    sid = PyUnicode_AsUTF8AndSize(args[1], &len);
    if (sid == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (len != SG_ID_LEN || strlen(sid) != (size_t)len)
        Py_RETURN_NONE;
    sg_error_clear(&err);
    SWIG_PYTHON_THREAD_BEGIN_ALLOW;
    rc = sg_session_get((sg_store *)argp, sid, (unsigned)flags, &s, &err);
    SWIG_PYTHON_THREAD_END_ALLOW;
    if (rc == SG_ENOTFOUND || rc == SG_EEXPIRED)
        Py_RETURN_NONE;
    if (rc != SG_OK || s == NULL) {
        if (err.code == SG_OK)
            err.code = rc != SG_OK ? rc : SG_ENOMEM;
        sgw_raise(&err);
        return NULL;
    }
    return SWIG_NewPointerObj(s, SWIGTYPE_p_sg_session,
                              SWIG_POINTER_OWN | SWIG_POINTER_NOSHADOW);
}

/* The int 0, made once (scan_once's start index). */
static PyObject *sgw_zero(void)
{
    static PyObject *zero = NULL;
    if (zero == NULL)
        zero = PyLong_FromLong(0);
    return zero;
}

static PyObject *sgw_py_session_data(PyObject *self, PyObject *const *args,
                                     Py_ssize_t nargs)
{
    void *argp = NULL;
    char *c_text;
    PyObject *text, *call[2], *scanned, *value, *end, *out;

    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "py_session_data(session, scan_once)");
        return NULL;
    }
    if (!SWIG_IsOK(SWIG_ConvertPtr(args[0], &argp, SWIGTYPE_p_sg_session, 0)) || !argp) {
        PyErr_SetString(PyExc_TypeError, "py_session_data: not a session handle");
        return NULL;
    }
    c_text = sg_session_data_json((const sg_session *)argp);
    if (c_text == NULL)
        Py_RETURN_NONE;                 /* the layer raises OutOfMemory */
    text = PyUnicode_FromString(c_text);
    free(c_text);
    if (text == NULL)
        return NULL;
    value = Py_None;
    if (args[1] != Py_None) {
        call[0] = text;
        call[1] = sgw_zero();
        scanned = call[1] ? PyObject_Vectorcall(args[1], call, 2, NULL) : NULL;
        if (scanned == NULL) {
            /* What the scanner refuses, json.loads decides (and raises). */
            if (!PyErr_ExceptionMatches(PyExc_StopIteration) &&
                !PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(text);
                return NULL;
            }
            PyErr_Clear();
        } else {
            if (PyTuple_CheckExact(scanned) && PyTuple_GET_SIZE(scanned) == 2 &&
                PyDict_CheckExact(PyTuple_GET_ITEM(scanned, 0))) {
                end = PyTuple_GET_ITEM(scanned, 1);
                if (PyLong_CheckExact(end) &&
                    PyLong_AsSsize_t(end) == PyUnicode_GET_LENGTH(text))
                    value = PyTuple_GET_ITEM(scanned, 0);
                else if (PyErr_Occurred())
                    PyErr_Clear();
            }
            out = PyTuple_Pack(2, value, text);
            Py_DECREF(scanned);
            Py_DECREF(text);
            return out;
        }
    }
    out = PyTuple_Pack(2, value, text);
    Py_DECREF(text);
    return out;
}

static PyMethodDef sgw_lean_methods[] = {
    { "py_session_get", (PyCFunction)(void (*)(void))sgw_py_session_get,
      METH_FASTCALL, "sg_session_get; None for no such session" },
    { "py_session_data", (PyCFunction)(void (*)(void))sgw_py_session_data,
      METH_FASTCALL, "(value, text) of a session's data" },
    { NULL, NULL, 0, NULL }
};
%}

%init %{
    if (PyModule_AddFunctions(m, sgw_lean_methods) < 0)
        return NULL;
%}
