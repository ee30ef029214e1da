/*
 * buf.c - growable byte buffers with a hard cap, for the gateway.
 *
 * Everything the gateway builds from outside input (response headers, the
 * CGI reply header block, injected values, the child environment) goes
 * through one of these, so no fixed-size array can overflow and no input can
 * make the worker grow without bound: each buffer has a cap, and an append
 * over it fails (sticky `failed`) instead of growing.  Modelled on curl's
 * lib/dynbuf.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* Start an empty buffer that never holds more than cap bytes. */
void buf_init(buf *b, size_t cap)
{
    b->data = NULL;
    b->len = b->alloc = 0;
    b->cap = cap;
    b->failed = 0;
}

/* Release the bytes; the buffer can be used again after buf_init. */
void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

/* Forget the content, keep the memory and the cap. */
void buf_reset(buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int buf_grow(buf *b, size_t need)
{
    size_t want;
    char *p;

    if (b->failed)
        return -1;
    if (need > b->cap || need + 1 < need) {
        b->failed = 1;
        return -1;
    }
    if (need + 1 <= b->alloc)
        return 0;
    want = b->alloc ? b->alloc : 256;
    while (want < need + 1)
        want *= 2;
    if (want > b->cap + 1)
        want = b->cap + 1;
    p = realloc(b->data, want);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->alloc = want;
    return 0;
}

/* Append n bytes.  0, or -1 when over the cap / out of memory. */
int buf_add(buf *b, const void *p, size_t n)
{
    if (buf_grow(b, b->len + n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Append a C string. */
int buf_adds(buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

/* Append one byte. */
int buf_addc(buf *b, char c)
{
    return buf_add(b, &c, 1);
}

/* Append printf-style text. */
int buf_addf(buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    char small[256];

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return -1;
    }
    if ((size_t)n < sizeof small)
        return buf_add(b, small, (size_t)n);
    if (buf_grow(b, b->len + (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* New: the bytes as a C string (caller frees); the buffer is left empty.
 * NULL if an append failed or the buffer never held anything. */
char *buf_steal(buf *b)
{
    char *p;

    if (b->failed) {
        buf_free(b);
        b->failed = 0;
        return NULL;
    }
    if (!b->data) {
        if (buf_grow(b, 0) < 0)
            return NULL;
        b->data[0] = '\0';
    }
    p = b->data;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}
