/*
 * fuzz_record.c - libFuzzer target for the session record parsers, which
 * read what the store hands back (format 2, the fixed header with the data
 * as text, and format 1, the JSON object of before) and every line of
 * sessgatectl import (JSON).
 *
 * Promises checked beyond "no crash, no overread" (ASan, exact-size copy):
 * a record that parses has a valid id; its data as handed out (the stored
 * text, never parsed on the read path) is one printable-ASCII {...}; its
 * JSON form (get, export) is ASCII-only without CR, LF or NUL; its stored
 * dump is format 2 and parses back to the same dump, field for field (the
 * store never writes what it could not read again); and its data, when
 * asked for as a value, either parses to an object or is reported as a
 * damaged record.  The liveness test runs on the parsed timestamps at
 * several clock readings, so an overflow in it is caught (UBSan, fatal in
 * the fuzz build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ascii_only(const char *t, size_t n, int braces)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e)
            abort();
    if (braces && (n < 2 || t[0] != '{' || t[n - 1] != '}'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);          /* Owned: exact size for ASan */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    sg_session *s = NULL;
    sg_error err = { 0 };
    if (sgi_record_parse(copy, size, &s, &err) == SG_OK) {
        if (!sg_id_valid(sg_session_id(s)))
            abort();
        s->max_data = SG_MAX_DATA_LIMIT;
        /* Every record read must be judged without overflow, whatever
         * its timestamps; the result itself is only defined, not fixed. */
        static const int64_t nows[] = { INT64_MIN, -1, 0, 1764000000, INT64_MAX };
        for (size_t k = 0; k < sizeof nows / sizeof *nows; k++)
            if (sgi_live(s, nows[k]) && !(nows[k] < s->expires))
                abort();
        char *d = sg_session_data_json(s);      /* Owned */
        if (d)
            ascii_only(d, strlen(d), 1);
        free(d);
        size_t len;
        char *dump = sgi_record_dump(s, &len);   /* Owned */
        if (dump) {
            if (len < 5 || memcmp(dump, "SGR2 ", 5) != 0 || strlen(dump) != len)
                abort();
            sg_session *again = NULL;
            if (sgi_record_parse(dump, len, &again, NULL) != SG_OK)
                abort();
            if (again->version != s->version || again->created != s->created ||
                again->accessed != s->accessed || again->expires != s->expires ||
                again->idle != s->idle || strcmp(again->id, s->id) != 0 ||
                strcmp(again->csrf, s->csrf) != 0 ||
                (again->user == NULL) != (s->user == NULL) ||
                (s->user && strcmp(again->user, s->user) != 0))
                abort();
            char *dump2 = sgi_record_dump(again, NULL);
            if (dump2 && strcmp(dump, dump2) != 0)
                abort();
            free(dump2);
            sg_session_free(again);
            free(dump);
        }
        json_t *value;
        sg_error derr = { 0 };
        sg_status drc = sgi_session_data(s, &value, &derr);
        if (drc == SG_OK ? !json_is_object(value)
                         : drc != SG_ESTORE && drc != SG_ENOMEM)
            abort();
        char *json = sgi_record_to_json(s, &len);   /* Owned */
        if (json) {
            ascii_only(json, len, 1);
            sg_session *back = NULL;
            if (sgi_record_from_json(json, len, &back, NULL) != SG_OK)
                abort();
            sg_session_free(back);
            free(json);
        }
        sg_session_free(s);
    } else if (s != NULL || err.code == SG_OK || strchr(err.text, '\n')) {
        abort();                            /* errors: NULL out, one line */
    }
    free(copy);
    return 0;
}
