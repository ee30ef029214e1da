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
 * Through SWIG's generic wrappers and the layer's Python code a get paid,
 * above the C get, a tuple unpack, a malloc'd copy of the id, a proxy
 * instance with its own __dict__ (freed through a Python-level call), a
 * `with` on the store's mutex, Session.__init__, and for a missing
 * session an exception built by sessgate.errors and caught again; the
 * first data access paid two Python frames and a second generic call.
 * The two functions below (METH_FASTCALL, added to the module at init)
 * make the same C calls without that.  Only sessgate/__init__.py calls
 * them:
 *
 *   py_store_get(store, id, flags, Session) -> Session | None
 *       Store.get minus its model check: store._mutex held around
 *       sg_session_get (GIL released during the C call, as everywhere),
 *       store._handle() called for a closed store (it raises), the id
 *       read from the str's cached UTF-8, None when the id is malformed
 *       (not 36 characters, a NUL or a lone surrogate inside), unknown
 *       or expired, TypeError when it is not a str, every other failure
 *       raised as the generic wrappers raise it.  The Session is made
 *       as Session(store, handle) makes it (its four slots), without
 *       running Python code; the handle is the bare SWIG object, which
 *       every session_* wrapper accepts and the garbage collector frees
 *       with sg_session_free, as before.
 *   py_session_load(session, loads) -> dict
 *       the stored data text (sg_session_data_json: no parse in C)
 *       decoded by sgw_json_decode (python/sgw_json.h: the stored,
 *       compact ASCII form only, the same values json.loads makes, at
 *       about a third of json's C scanner's cost), else by loads(text),
 *       which decides (and raises); the dict goes to session._data, the
 *       text to session._text.
 */
%{
#include "sgw_json.h"      /* the data decoder: -I bindings/python */
%}
%{
/* sg_session_get(args[0], args[1], args[2]) -> bare handle | None. */
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
        PyErr_SetString(PyExc_TypeError, "py_store_get: (store handle, id, flags)");
        return NULL;
    }
    if (!SWIG_IsOK(SWIG_ConvertPtr(args[0], &argp, SWIGTYPE_p_sg_store, 0)) || !argp) {
        PyErr_SetString(PyExc_TypeError, "py_store_get: not a store handle");
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
        PyErr_SetString(PyExc_OverflowError, "py_store_get: flags out of range");
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
    {
        PyObject *handle = SWIG_NewPointerObj(s, SWIGTYPE_p_sg_session,
                                              SWIG_POINTER_OWN | SWIG_POINTER_NOSHADOW);
        if (handle == NULL)
            sg_session_free(s);
        return handle;
    }
}

/* Interned attribute names of the layer's Store and Session (made once). */
static PyObject *sgw_s_mutex, *sgw_s_st, *sgw_s_handle, *sgw_s_acquire,
                *sgw_s_release, *sgw_s_store, *sgw_s_raw, *sgw_s_data, *sgw_s_text;

static int sgw_names(void)
{
    static int ready = 0;
    if (ready)
        return 0;
    sgw_s_mutex = PyUnicode_InternFromString("_mutex");
    sgw_s_st = PyUnicode_InternFromString("_st");
    sgw_s_handle = PyUnicode_InternFromString("_handle");
    sgw_s_acquire = PyUnicode_InternFromString("acquire");
    sgw_s_release = PyUnicode_InternFromString("release");
    sgw_s_store = PyUnicode_InternFromString("_store");
    sgw_s_raw = PyUnicode_InternFromString("_raw");
    sgw_s_data = PyUnicode_InternFromString("_data");
    sgw_s_text = PyUnicode_InternFromString("_text");
    ready = sgw_s_mutex && sgw_s_st && sgw_s_handle && sgw_s_acquire &&
            sgw_s_release && sgw_s_store && sgw_s_raw && sgw_s_data &&
            sgw_s_text;
    return ready ? 0 : -1;
}

/* py_store_get (see the top of this section). */
static PyObject *sgw_py_store_get(PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs)
{
    PyObject *store, *mutex, *st, *r, *raw, *call[3], *sess;
    PyTypeObject *cls;
    int fail;

    if (nargs != 4 || !PyType_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "py_store_get(store, id, flags, Session)");
        return NULL;
    }
    if (sgw_names() < 0)
        return NULL;
    store = args[0];
    cls = (PyTypeObject *)args[3];
    mutex = PyObject_GetAttr(store, sgw_s_mutex);
    if (mutex == NULL)
        return NULL;
    r = PyObject_CallMethodNoArgs(mutex, sgw_s_acquire);
    if (r == NULL) {
        Py_DECREF(mutex);
        return NULL;
    }
    Py_DECREF(r);
    st = PyObject_GetAttr(store, sgw_s_st);
    if (st == Py_None) {
        Py_DECREF(st);
        st = PyObject_CallMethodNoArgs(store, sgw_s_handle);  /* raises */
    }
    raw = NULL;
    if (st != NULL) {
        call[0] = st;
        call[1] = args[1];
        call[2] = args[2];
        raw = sgw_py_session_get(self, call, 3);
        Py_DECREF(st);
    }
    /* Released whatever happened, keeping an exception that stands. */
    if (raw == NULL) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        r = PyObject_CallMethodNoArgs(mutex, sgw_s_release);
        Py_XDECREF(r);
        if (r == NULL) {
            Py_XDECREF(et);
            Py_XDECREF(ev);
            Py_XDECREF(tb);
        } else {
            PyErr_Restore(et, ev, tb);
        }
        Py_DECREF(mutex);
        return NULL;
    }
    r = PyObject_CallMethodNoArgs(mutex, sgw_s_release);
    Py_DECREF(mutex);
    if (r == NULL) {
        Py_DECREF(raw);
        return NULL;
    }
    Py_DECREF(r);
    if (raw == Py_None)
        return raw;
    sess = cls->tp_alloc(cls, 0);
    if (sess == NULL) {
        Py_DECREF(raw);
        return NULL;
    }
    fail = PyObject_SetAttr(sess, sgw_s_store, store) < 0 ||
           PyObject_SetAttr(sess, sgw_s_raw, raw) < 0 ||
           PyObject_SetAttr(sess, sgw_s_data, Py_None) < 0 ||
           PyObject_SetAttr(sess, sgw_s_text, Py_None) < 0;
    Py_DECREF(raw);
    if (fail) {
        Py_DECREF(sess);
        return NULL;
    }
    return sess;
}

/* py_session_load (see the top of this section). */
static PyObject *sgw_py_session_load(PyObject *self, PyObject *const *args,
                                     Py_ssize_t nargs)
{
    PyObject *raw, *value, *text;
    void *argp = NULL;
    char *c_text;
    size_t len;

    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "py_session_load(session, loads)");
        return NULL;
    }
    if (sgw_names() < 0)
        return NULL;
    raw = PyObject_GetAttr(args[0], sgw_s_raw);
    if (raw == NULL)
        return NULL;
    if (!SWIG_IsOK(SWIG_ConvertPtr(raw, &argp, SWIGTYPE_p_sg_session, 0)) || !argp) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "py_session_load: not a session handle");
        return NULL;
    }
    c_text = sg_session_data_json((const sg_session *)argp);
    Py_DECREF(raw);
    if (c_text == NULL) {
        sg_error e;
        sg_error_clear(&e);
        e.code = SG_ENOMEM;
        snprintf(e.text, sizeof e.text, "out of memory reading session data");
        sgw_raise(&e);
        return NULL;
    }
    len = strlen(c_text);
    /* The stored text decoded by sgw_json.h; what it does not take,
     * json.loads decides (and raises). */
    value = sgw_json_decode(c_text, len);
    if (value == NULL && PyErr_Occurred()) {
        free(c_text);
        return NULL;
    }
    text = value != NULL ? sgw_jascii(c_text, len)    /* all ASCII: decoded */
                         : PyUnicode_FromStringAndSize(c_text, (Py_ssize_t)len);
    free(c_text);
    if (text == NULL) {
        Py_XDECREF(value);
        return NULL;
    }
    if (value == NULL)
        value = PyObject_Vectorcall(args[1], &text, 1, NULL);
    if (value == NULL || PyObject_SetAttr(args[0], sgw_s_data, value) < 0 ||
        PyObject_SetAttr(args[0], sgw_s_text, text) < 0) {
        Py_XDECREF(value);
        Py_DECREF(text);
        return NULL;
    }
    Py_DECREF(text);
    return value;
}

static PyMethodDef sgw_lean_methods[] = {
    { "py_store_get", (PyCFunction)(void (*)(void))sgw_py_store_get,
      METH_FASTCALL, "Store.get without the model check" },
    { "py_session_load", (PyCFunction)(void (*)(void))sgw_py_session_load,
      METH_FASTCALL, "Session._load_data" },
    { NULL, NULL, 0, NULL }
};
%}

%init %{
    if (PyModule_AddFunctions(m, sgw_lean_methods) < 0)
        return NULL;
%}
