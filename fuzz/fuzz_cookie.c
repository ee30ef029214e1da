/*
 * fuzz_cookie.c - libFuzzer target for the gateway's cookie parser.
 *
 * The input is split on '\n' into up to 8 HTTP_COOKIE values (nginx sends
 * one param per Cookie header).  Besides "no crash, no out-of-bounds read"
 * (ASan), it checks the parser's promise: a COOKIE_ONE answer carries a
 * valid id that occurs in the input, and any other answer leaves id empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *vals[8];
    size_t lens[8], n = 0, start = 0, i;
    char id[SG_ID_LEN + 1];
    cookie_result r;
    char *copy = malloc(size + 1);          /* exact-size copy: ASan sees overreads */

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (i = 0; i <= size && n < 8; i++)
        if (i == size || copy[i] == '\n') {
            vals[n] = copy + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    r = cookie_find(vals, lens, n, "sessgate", id);
    if (r == COOKIE_ONE) {
        if (!sg_id_valid(id) || !memmem(copy, size, id, SG_ID_LEN))
            abort();
    } else if (id[0] != '\0')
        abort();
    free(copy);
    return 0;
}
