/*
 * sgw_json.h - the Python binding's decoder for stored session data.
 *
 * Why: reading a session's data is "the data text -> a dict", on every
 * request that looks at it (issue #14, `get + data` in bench/bindings.bash).
 * json's C scanner spent ~13k instructions on the bench's 190-byte object:
 * argument parsing, a memo dict for keys, a substring and PyLong_FromString
 * for every number.  The stored text is narrower than JSON: the library
 * wrote it (compact, ASCII 0x20-0x7e, an object, nesting <= SG_MAX_DEPTH,
 * checked at write time), so this decoder reads exactly that shape, fast,
 * and refuses everything else: a refusal is not an error, the caller hands
 * the text to json.loads, which decides (and raises) as it always did.
 *
 * What it makes is what json.loads makes from the same text (fuzz/fuzz_pyjson.c
 * checks that, value by value and type by type): dicts (duplicate keys:
 * the last value, in the first key's place), lists, str, int, float
 * (PyOS_string_to_double, as float() parses), True, False, None.
 * What it leaves to json.loads: whitespace other than ' \t\n\r' between
 * tokens (an error there), any byte outside 0x20-0x7f, ints of more than
 * 18 digits (json applies the int-digits limit), numbers over 63
 * characters, NaN/Infinity, \u escapes that are lone surrogates, nesting
 * deeper than SGW_JSON_MAX_DEPTH, a top level that is not an object.
 *
 * Keys repeat from request to request (a session's keys are the app's
 * field names), so short escape-free keys come from a small cache of str
 * objects (their hash already computed): a hit costs a memcmp, not an
 * allocation and a hash.  The cache only holds immutable str, under the GIL.
 *
 * Interface (static functions, included into the SWIG wrapper and the fuzz
 * target):
 *   PyObject *sgw_json_decode(const char *text, size_t len)
 *     New reference to the decoded dict; NULL with an exception set on a
 *     Python failure (MemoryError); NULL with NO exception set when the
 *     text is not one this decoder takes (the caller uses json.loads).
 */
#ifndef SGW_JSON_H
#define SGW_JSON_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SGW_JSON_MAX_DEPTH 128        /* the library stores <= SG_MAX_DEPTH */
#define SGW_JSON_KEY_SLOTS 256
#define SGW_JSON_KEY_MAX   32

typedef struct {
    const char *p, *end;
    int depth;
} sgw_jp;

/* Refusal: NULL with no exception set (see the top of the file). */
#define SGW_REFUSE NULL

static PyObject *sgw_key_cache[SGW_JSON_KEY_SLOTS];

static PyObject *sgw_jvalue(sgw_jp *j);

static void sgw_jws(sgw_jp *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* A str of the n ASCII bytes at s. */
static PyObject *sgw_jascii(const char *s, size_t n)
{
    PyObject *o = PyUnicode_New((Py_ssize_t)n, 127);
    if (o != NULL)
        memcpy(PyUnicode_1BYTE_DATA(o), s, n);
    return o;
}

/* The value of 4 hex digits at s, or -1. */
static long sgw_jhex4(const char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* A string with escapes, j->p just past the opening quote. */
static PyObject *sgw_jstring_escaped(sgw_jp *j)
{
    Py_UCS4 small[256], *buf = small;
    size_t cap = sizeof small / sizeof small[0], n = 0;
    const char *p = j->p;
    PyObject *o = SGW_REFUSE;

    /* Never more characters than bytes up to the closing quote. */
    const char *q = p;
    while (q < j->end && *q != '"')
        q += (*q == '\\' && j->end - q >= 2) ? 2 : 1;
    if ((size_t)(q - p) > cap) {
        cap = (size_t)(q - p);
        buf = PyMem_Malloc(cap * sizeof *buf);
        if (buf == NULL)
            return PyErr_NoMemory();
    }
    while (p < j->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            j->p = p + 1;
            o = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, (Py_ssize_t)n);
            goto out;
        }
        if (c < 0x20 || c > 0x7f)
            goto out;
        if (c != '\\') {
            buf[n++] = c;
            p++;
            continue;
        }
        if (j->end - p < 2)
            goto out;
        switch (p[1]) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            long u, lo;
            if (j->end - p < 6 || (u = sgw_jhex4(p + 2)) < 0)
                goto out;
            if (u >= 0xdc00 && u <= 0xdfff)
                goto out;               /* lone low surrogate */
            if (u >= 0xd800 && u <= 0xdbff) {
                if (j->end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                    (lo = sgw_jhex4(p + 8)) < 0xdc00 || lo > 0xdfff)
                    goto out;           /* lone high surrogate */
                buf[n++] = (Py_UCS4)(0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
                p += 12;
                continue;
            }
            buf[n++] = (Py_UCS4)u;
            p += 6;
            continue;
        }
        default:
            goto out;
        }
        p += 2;
    }
out:
    if (buf != small)
        PyMem_Free(buf);
    return o;
}

/* A string, j->p at the opening quote; key: may come from the key cache. */
static PyObject *sgw_jstring(sgw_jp *j, int key)
{
    const char *s = j->p + 1, *p = s;
    while (p < j->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || c > 0x7f)
            break;
        p++;
    }
    if (p >= j->end || *p != '"') {
        if (p < j->end && *p == '\\') {
            j->p = s;
            return sgw_jstring_escaped(j);
        }
        return SGW_REFUSE;
    }
    size_t n = (size_t)(p - s);
    j->p = p + 1;
    if (!key || n > SGW_JSON_KEY_MAX)
        return sgw_jascii(s, n);
    uint32_t h = 2166136261u;               /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    PyObject **slot = &sgw_key_cache[h % SGW_JSON_KEY_SLOTS];
    PyObject *k = *slot;
    if (k != NULL && (size_t)PyUnicode_GET_LENGTH(k) == n &&
        memcmp(PyUnicode_1BYTE_DATA(k), s, n) == 0) {
        Py_INCREF(k);
        return k;
    }
    k = sgw_jascii(s, n);
    if (k == NULL)
        return NULL;
    if (PyObject_Hash(k) == -1) {       /* cannot fail for a str */
        Py_DECREF(k);
        return NULL;
    }
    Py_INCREF(k);
    Py_XSETREF(*slot, k);
    return k;
}

/* A number, j->p at its first character. */
static PyObject *sgw_jnumber(sgw_jp *j)
{
    const char *s = j->p, *p = s;
    int is_float = 0;
    if (p < j->end && *p == '-')
        p++;
    if (p >= j->end)
        return SGW_REFUSE;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    else
        return SGW_REFUSE;                  /* "-Infinity", "-x" */
    const char *int_end = p;
    if (p < j->end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return SGW_REFUSE;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return SGW_REFUSE;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - s);
    if (!is_float) {
        const char *d = s + (*s == '-');
        if (int_end - d > 18)
            return SGW_REFUSE;              /* json.loads applies its limits */
        long long v = 0;
        for (; d < int_end; d++)
            v = v * 10 + (*d - '0');
        j->p = p;
        return PyLong_FromLongLong(*s == '-' ? -v : v);
    }
    char buf[64];
    if (n >= sizeof buf)
        return SGW_REFUSE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *stop = NULL;
    double v = PyOS_string_to_double(buf, &stop, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return SGW_REFUSE;
    }
    if (stop != buf + n)
        return SGW_REFUSE;
    j->p = p;
    return PyFloat_FromDouble(v);
}

static PyObject *sgw_jobject(sgw_jp *j)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    j->p++;                                 /* '{' */
    sgw_jws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return d;
    }
    for (;;) {
        if (j->p >= j->end || *j->p != '"')
            goto refuse;
        PyObject *k = sgw_jstring(j, 1);
        if (k == NULL)
            goto fail;
        sgw_jws(j);
        if (j->p >= j->end || *j->p != ':') {
            Py_DECREF(k);
            goto refuse;
        }
        j->p++;
        sgw_jws(j);
        PyObject *v = sgw_jvalue(j);
        if (v == NULL) {
            Py_DECREF(k);
            goto fail;
        }
        int rc = PyDict_SetItem(d, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0)
            goto fail;
        sgw_jws(j);
        if (j->p >= j->end)
            goto refuse;
        if (*j->p == '}') {
            j->p++;
            return d;
        }
        if (*j->p != ',')
            goto refuse;
        j->p++;
        sgw_jws(j);
    }
refuse:
fail:                                       /* an exception set or not */
    Py_DECREF(d);
    return NULL;
}

static PyObject *sgw_jarray(sgw_jp *j)
{
    PyObject *l = PyList_New(0);
    if (l == NULL)
        return NULL;
    j->p++;                                 /* '[' */
    sgw_jws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return l;
    }
    for (;;) {
        PyObject *v = sgw_jvalue(j);
        if (v == NULL)
            goto fail;
        int rc = PyList_Append(l, v);
        Py_DECREF(v);
        if (rc < 0)
            goto fail;
        sgw_jws(j);
        if (j->p >= j->end)
            goto fail;
        if (*j->p == ']') {
            j->p++;
            return l;
        }
        if (*j->p != ',')
            goto fail;
        j->p++;
        sgw_jws(j);
    }
fail:                                       /* an exception set or not */
    Py_DECREF(l);
    return NULL;
}

static PyObject *sgw_jvalue(sgw_jp *j)
{
    if (j->p >= j->end)
        return SGW_REFUSE;
    switch (*j->p) {
    case '"':
        return sgw_jstring(j, 0);
    case '{':
    case '[': {
        PyObject *o;
        if (j->depth >= SGW_JSON_MAX_DEPTH)
            return SGW_REFUSE;
        j->depth++;
        o = *j->p == '{' ? sgw_jobject(j) : sgw_jarray(j);
        j->depth--;
        return o;
    }
    case 't':
        if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
            j->p += 4;
            Py_RETURN_TRUE;
        }
        return SGW_REFUSE;
    case 'f':
        if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
            j->p += 5;
            Py_RETURN_FALSE;
        }
        return SGW_REFUSE;
    case 'n':
        if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
            j->p += 4;
            Py_RETURN_NONE;
        }
        return SGW_REFUSE;
    default:
        return sgw_jnumber(j);
    }
}

static PyObject *sgw_json_decode(const char *text, size_t len)
{
    sgw_jp j = { text, text + len, 0 };
    sgw_jws(&j);
    if (j.p >= j.end || *j.p != '{')
        return SGW_REFUSE;
    j.depth = 1;
    PyObject *d = sgw_jobject(&j);
    if (d == NULL)
        return NULL;
    sgw_jws(&j);
    if (j.p != j.end) {
        Py_DECREF(d);
        return SGW_REFUSE;
    }
    return d;
}

#endif /* SGW_JSON_H */
