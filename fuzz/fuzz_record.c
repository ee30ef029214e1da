/*
 * fuzz_record.c - libFuzzer target for the session record parser, which
 * reads what the store hands back and every line of sessgatectl import.
 *
 * Promises checked beyond "no crash, no overread" (ASan, exact-size copy):
 * a record that parses has a valid id and an object for data, dumps to
 * ASCII-only JSON without CR, LF or NUL, and that dump parses back to the
 * same dump (the store never writes what it could not read again).  The
 * liveness test runs on the parsed timestamps at several clock readings,
 * so an overflow in it is caught (UBSan, fatal in the fuzz build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        /* Every record read must be judged without overflow, whatever
         * its timestamps; the result itself is only defined, not fixed. */
        static const int64_t nows[] = { INT64_MIN, -1, 0, 1764000000, INT64_MAX };
        for (size_t k = 0; k < sizeof nows / sizeof *nows; k++)
            if (sgi_live(s, nows[k]) && !(nows[k] < s->expires))
                abort();
        size_t len;
        char *dump = sgi_record_dump(s, &len);   /* Owned */
        if (dump) {
            for (size_t i = 0; i < len; i++)
                if ((unsigned char)dump[i] > 0x7e || dump[i] == '\r' ||
                    dump[i] == '\n' || dump[i] == '\0')
                    abort();
            sg_session *again = NULL;
            if (sgi_record_parse(dump, len, &again, NULL) != SG_OK)
                abort();
            char *dump2 = sgi_record_dump(again, NULL);
            if (dump2 && strcmp(dump, dump2) != 0)
                abort();
            free(dump2);
            sg_session_free(again);
            free(dump);
        }
        sg_session_free(s);
    } else if (s != NULL || err.code == SG_OK || strchr(err.text, '\n')) {
        abort();                            /* errors: NULL out, one line */
    }
    free(copy);
    return 0;
}
