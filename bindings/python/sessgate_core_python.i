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
