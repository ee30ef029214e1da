/*
 * json.c - JSON text in and out through jansson, for session data and
 * records: a strict parse of data (an object, no duplicate keys, sizes
 * capped before parsing, no number that a double cannot hold), the nesting
 * limit, and a dump that is compact and ASCII with \u escapes, so that no
 * byte of a session can break a header or an environment variable
 * downstream.  Knows nothing of sessions (record.c does).
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII)
#define DUMP_STACK 4096   /* records and small data dump without a 2nd pass */

/* Out of memory inside jansson (2.14; tests/unit/test_allocfail.c).  Its
 * parser does not always notice a failed allocation: when the lexer cannot
 * grow the buffer of the token it is reading it drops the byte and goes on
 * (jansson issue #362), so a parse can "succeed" with a string a character
 * short, and the failures it does notice come back as syntax errors, like
 * bad input.  A record read that way would be handed out or saved back
 * with wrong data, or called damaged (and removed by check --repair); an
 * id would fall out of a list.  So jansson allocates through
 * counting_malloc, which counts failures per thread, and a parse during
 * which one failed is out of memory, whatever jansson made of it.  The
 * functions installed before ours (malloc, or the application's own) do
 * the work, and are put back if the library is unloaded.  An application
 * that installs its own after our first parse replaces ours: then parses
 * are as jansson makes them.  (Dumps need none of this: see sgi_dump.) */
static json_malloc_t next_malloc;
static json_free_t next_free;
static _Thread_local unsigned long failed_allocs;
static pthread_once_t counting_once = PTHREAD_ONCE_INIT;

static void *counting_malloc(size_t n)
{
    json_malloc_t m = __atomic_load_n(&next_malloc, __ATOMIC_ACQUIRE);
    void *p = (m ? m : malloc)(n);
    if (!p)
        failed_allocs++;
    return p;
}

static void counting_install(void)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    next_free = f;
    __atomic_store_n(&next_malloc, m, __ATOMIC_RELEASE);
    json_set_alloc_funcs(counting_malloc, f);
}

__attribute__((destructor)) static void counting_remove(void)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (m == counting_malloc)
        json_set_alloc_funcs(next_malloc, next_free);
}

/* json_loadb, but NULL with *oom set when an allocation failed during it.
 * New: the value. */
json_t *sgi_json_load(const char *text, size_t len, size_t flags,
                      json_error_t *je, int *oom)
{
    pthread_once(&counting_once, counting_install);
    unsigned long before = failed_allocs;
    json_t *v = json_loadb(text, len, flags, je);
    *oom = failed_allocs != before;
    if (*oom) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* New: v as compact JSON with every byte printable ASCII.  JSON_ENSURE_ASCII
 * escapes bytes above 0x7f but lets DEL (0x7f) through, and DEL is a
 * control character no header value may carry (RFC 9110), so it is written
 * as \u007f too (found by fuzz/fuzz_record).  *len (may be NULL) gets the
 * length.  NULL without memory. */
char *sgi_dump(const json_t *v, size_t *len)
{
    /* Not json_dumps: jansson 2.14 ignores a failed write of an object key
     * to its growing buffer, so under memory pressure json_dumps can return
     * a record with a key missing (invalid JSON, stored as damage).
     * json_dumpb writes through a callback that cannot fail and gives the
     * size needed; what can still fail (its loop check) it reports. */
    char stack[DUMP_STACK];
    size_t n = json_dumpb(v, stack, sizeof stack, DUMP_FLAGS);
    if (n == 0)
        return NULL;
    char *t = malloc(n + 1);
    if (!t)
        return NULL;
    if (n <= sizeof stack)
        memcpy(t, stack, n);
    else if (json_dumpb(v, t, n, DUMP_FLAGS) != n) {
        free(t);
        return NULL;
    }
    t[n] = '\0';
    size_t dels = 0;
    for (size_t i = 0; i < n; i++)
        dels += t[i] == 0x7f;
    if (dels) {
        char *out = malloc(n + 5 * dels + 1);
        if (!out) {
            free(t);
            return NULL;
        }
        char *p = out;
        for (size_t i = 0; i < n; i++) {
            if (t[i] == 0x7f) {
                memcpy(p, "\\u007f", 6);
                p += 6;
            } else {
                *p++ = t[i];
            }
        }
        *p = '\0';
        free(t);
        t = out;
        n = (size_t)(p - out);
    }
    if (len)
        *len = n;
    return t;
}

/* Whether a number in the JSON text underflows a double (issue #17).
 * Why: jansson refuses a real that overflows ("real number overflow") but
 * stores one that underflows, 1e-400, silently as 0.0: the data saved is
 * not the data given.  So every number token outside strings that has a
 * fraction or an exponent is converted once more with strtod, which sets
 * ERANGE on underflow (zero or subnormal from a non-zero text) as on
 * overflow.  Runs over valid JSON only (after jansson accepted it), so the
 * scan need only tell strings from the rest. */
static int number_out_of_range(const char *text, size_t len)
{
    size_t i = 0;

    while (i < len) {
        char c = text[i];

        if (c == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\')
                    i++;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            int real = 0;

            for (; i < len && (strchr("+-.eE", text[i]) || (text[i] >= '0' && text[i] <= '9'));
                 i++)
                real |= text[i] == '.' || text[i] == 'e' || text[i] == 'E';
            if (real) {
                char *tok = strndup(text + start, i - start);   /* owned here */
                int range;

                if (!tok)
                    return -1;
                errno = 0;
                (void)strtod(tok, NULL);
                range = errno == ERANGE;
                free(tok);
                if (range)
                    return 1;
            }
        } else
            i++;
    }
    return 0;
}

/* Parse data text into a new JSON object (*out owned by the caller). */
sg_status sgi_data_parse(const char *text, size_t max, json_t **out,
                         sg_error *err)
{
    *out = NULL;
    if (!text)
        return sgi_err(err, SG_EINVAL, 0, "session data: missing JSON");
    size_t len = strlen(text);
    if (len > max)
        return sgi_err(err, SG_ETOOBIG, 0,
                       "session data: %zu bytes is over the store's cap of "
                       "%zu (raise max_data / --max-data)", len, max);
    json_error_t je;
    int oom;
    json_t *v = sgi_json_load(text, len, JSON_REJECT_DUPLICATES, &je, &oom);
    if (oom)
        return sgi_oom(err, "session data", NULL);
    if (!v)
        return sgi_err(err, SG_EINVAL, 0,
                       "session data: invalid JSON at byte %d: %s",
                       je.position, je.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return sgi_err(err, SG_EINVAL, 0,
                       "session data: must be a JSON object ({...})");
    }
    int range = number_out_of_range(text, len);
    if (range) {
        json_decref(v);
        if (range < 0)
            return sgi_oom(err, "session data", NULL);
        return sgi_err(err, SG_EINVAL, 0, "session data: a real number underflows "
                       "or overflows a double (it would be stored as 0 or inf)");
    }
    *out = v;
    return SG_OK;
}

/* Nesting depth of v (a scalar is 0, [] and {} are 1), counted no further
 * than stop: the recursion is bounded by stop, not by the input. */
static size_t depth_upto(const json_t *v, size_t stop)
{
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (stop == 0)
        return 1;
    size_t deepest = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) {
            size_t d = depth_upto(m, stop - 1);
            if (d > deepest)
                deepest = d;
            if (deepest >= stop)
                break;
        }
    } else {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            size_t d = depth_upto(m, stop - 1);
            if (d > deepest)
                deepest = d;
            if (deepest >= stop)
                break;
        }
    }
    return 1 + deepest;
}

/* SG_ETOOBIG when data nests deeper than SG_MAX_DEPTH.  Why at write time:
 * jansson parses up to 2048 levels, but Python's json gives up near its
 * recursion limit (lower still inside a deep framework stack) and Lua's
 * codecs at 1000 or less, so deeper data would be saved and then be
 * unreadable by some of the processes sharing the store.  Refusing it
 * before it is stored keeps every reader able to read every session. */
sg_status sgi_data_depth_check(const json_t *data, sg_error *err)
{
    if (depth_upto(data, SG_MAX_DEPTH) > SG_MAX_DEPTH)
        return sgi_err(err, SG_ETOOBIG, 0,
                       "session data: nested deeper than the limit of %d "
                       "levels (SG_MAX_DEPTH; the data object is level 1)",
                       SG_MAX_DEPTH);
    return SG_OK;
}
