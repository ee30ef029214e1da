/*
 * fuzz_data.c - libFuzzer target for session data as it arrives from
 * outside: sessgatectl --data/set, X-Session-Set/Replace from CGI programs,
 * the bindings.  The input is split at the first NUL byte into a value for
 * sg_session_set_data and one for sg_session_merge_data.
 *
 * Promises: no crash; a rejected value leaves the data exactly as it was;
 * the data always dumps as a compact ASCII JSON object within the cap (the
 * cap holds for the stored form, which \u escapes make up to 6x longer
 * than raw UTF-8 or DEL), without CR, LF or NUL, and that dump is accepted
 * again by set_data and dumps to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_dump(const sg_session *s)
{
    char *d = sg_session_data_json(s);      /* Owned */
    if (!d)
        return;
    size_t n = strlen(d);
    if (n < 2 || d[0] != '{' || d[n - 1] != '}' || n > s->max_data)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] > 0x7e || d[i] < 0x20)
            abort();
    /* Round trip: what is stored can be set again, unchanged. */
    sg_session *t = sgi_session_new();
    if (t) {
        t->max_data = s->max_data;
        if (sg_session_set_data(t, d, NULL) != SG_OK)
            abort();
        char *d2 = sg_session_data_json(t);
        if (d2 && strcmp(d, d2) != 0)
            abort();
        free(d2);
        sg_session_free(t);
    }
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);          /* Owned: exact size for ASan */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *first = copy;
    const char *second = size > strlen(copy) ? copy + strlen(copy) + 1 : "{}";
    sg_session *s = sgi_session_new();
    if (!s) {
        free(copy);
        return 0;
    }
    s->max_data = 4096;                     /* small cap: reach ETOOBIG */
    char *before = sg_session_data_json(s);
    if (sg_session_set_data(s, first, NULL) != SG_OK) {
        char *after = sg_session_data_json(s);
        if (before && after && strcmp(before, after) != 0)
            abort();
        free(after);
    }
    free(before);
    check_dump(s);
    before = sg_session_data_json(s);
    if (sg_session_merge_data(s, second, NULL) != SG_OK) {
        char *after = sg_session_data_json(s);
        if (before && after && strcmp(before, after) != 0)
            abort();
        free(after);
    }
    free(before);
    check_dump(s);
    sg_session_free(s);
    free(copy);
    return 0;
}
