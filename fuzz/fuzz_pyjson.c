/*
 * fuzz_pyjson.c - libFuzzer target for the Python binding's data decoder
 * (bindings/python/sgw_json.h), which turns a session's stored data text
 * into a dict on every data read of a Python app.
 *
 * The decoder may refuse any text (the binding then calls json.loads,
 * which decides), but what it takes it must take exactly as json.loads
 * does.  Promises checked on every input, in an embedded CPython:
 *
 *  - no crash, no read outside the input (exact-size copy, ASan), no
 *    Python exception left behind by a refusal, none raised but
 *    MemoryError;
 *  - a text it takes is ASCII (the binding makes the str from it byte for
 *    byte), json.loads takes it too, and both give the same value with the
 *    same types, key order, float bits (-0.0) and characters: their
 *    repr()s are equal, and so is json.dumps of both;
 *  - decoding the same text again allocates no more Python blocks than
 *    the time before (no leaked reference in any path: a leaked object
 *    stays allocated).
 * Any broken promise prints the input's repr and aborts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgw_json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* No LeakSanitizer: the embedded interpreter is never finalised, so all
 * it holds would be reported at exit.  Every allocation of the decoder
 * goes through Python's allocators; the block count below is the leak
 * check, and its one raw buffer (long escaped strings) has one exit. */
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

static PyObject *loads, *dumps, *blocks;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    Py_InitializeEx(0);
    PyObject *json = PyImport_ImportModule("json");
    PyObject *sys = PyImport_ImportModule("sys");
    if (!json || !sys)
        abort();
    loads = PyObject_GetAttrString(json, "loads");
    dumps = PyObject_GetAttrString(json, "dumps");
    blocks = PyObject_GetAttrString(sys, "getallocatedblocks");
    if (!loads || !dumps || !blocks)
        abort();
    return 0;
}

static void fail(const char *why, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_pyjson: %s\ninput: ", why);
    fwrite(data, 1, size, stderr);
    fputc('\n', stderr);
    if (PyErr_Occurred())
        PyErr_Print();
    abort();
}

static long allocated(void)
{
    PyObject *n = PyObject_CallNoArgs(blocks);
    long v = n ? PyLong_AsLong(n) : -1;
    Py_XDECREF(n);
    return v;
}

/* One decode: 1 taken (*out set), 0 refused; aborts on a broken promise. */
static int decode(const char *text, size_t size, PyObject **out,
                  const uint8_t *data)
{
    *out = sgw_json_decode(text, size);
    if (*out == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_MemoryError))
                fail("an exception other than MemoryError", data, size);
            PyErr_Clear();
        }
        return 0;
    }
    if (PyErr_Occurred())
        fail("a value returned with an exception set", data, size);
    if (!PyDict_CheckExact(*out))
        fail("a top level that is not a dict", data, size);
    return 1;
}

static void same(PyObject *fn, PyObject *a, PyObject *b, const char *what,
                 const uint8_t *data, size_t size)
{
    PyObject *ra = PyObject_CallOneArg(fn, a), *rb = PyObject_CallOneArg(fn, b);
    if (!ra || !rb)
        fail(what, data, size);
    int eq = PyUnicode_Compare(ra, rb) == 0;
    if (!eq) {
        fprintf(stderr, "ours:   %s\njson's: %s\n", PyUnicode_AsUTF8(ra),
                PyUnicode_AsUTF8(rb));
        fail(what, data, size);
    }
    Py_DECREF(ra);
    Py_DECREF(rb);
}

/* The promises on what it takes (see the top of the file). */
static void check_taken(PyObject *ours, const char *text, size_t size,
                        const uint8_t *data)
{
    for (size_t i = 0; i < size; i++)
        if (data[i] > 0x7f)
            fail("a non-ASCII text taken", data, size);
    PyObject *str = PyUnicode_DecodeASCII(text, (Py_ssize_t)size, "strict");
    if (!str)
        fail("no str of the text", data, size);
    PyObject *theirs = PyObject_CallOneArg(loads, str);
    if (!theirs)
        fail("taken, but json.loads raises", data, size);
    PyObject *repr = PyDict_GetItemString(PyEval_GetBuiltins(), "repr");
    same(repr, ours, theirs, "repr differs from json.loads's", data, size);
    same(dumps, ours, theirs, "json.dumps differs from json.loads's", data, size);
    Py_DECREF(theirs);
    Py_DECREF(str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);   /* Owned: exact size for ASan */
    if (!text)
        return 0;
    memcpy(text, data, size);
    PyObject *ours;
    int taken = decode(text, size, &ours, data);
    if (taken) {
        check_taken(ours, text, size, data);
        Py_DECREF(ours);
    }
    /* Leaks, taken or refused: the second and third decodes of the same
     * text end with the same number of allocated blocks (the first may
     * fill the key cache and the free lists). */
    for (int round = 0; round < 2; round++) {
        long before = allocated();
        if (decode(text, size, &ours, data) != taken)
            fail("the same text taken once and refused once", data, size);
        Py_XDECREF(ours);
        if (round == 1 && allocated() != before)
            fail("a decode leaves Python blocks allocated", data, size);
    }
    free(text);
    return 0;
}
