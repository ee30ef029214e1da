/*
 * fuzz_cookie.c - libFuzzer target for the gateway's cookie parser.
 *
 * The input is split on '\n' into up to 8 HTTP_COOKIE values (nginx sends
 * one param per Cookie header).  Besides "no crash, no out-of-bounds read"
 * (ASan), it checks the parser's promises: a COOKIE_ONE answer carries a
 * valid id that occurs in the input, and any other answer leaves id empty;
 * the order of the Cookie headers never changes the verdict (a client
 * cannot pick which copy wins by sending them the other way round); and
 * the values joined into one with ", " (as Apache sends several Cookie
 * headers) give the same verdict as separate params (as nginx sends them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The verdict on vals, checked against the first answer when there is one. */
static cookie_result verdict(const char *const *vals, const size_t *lens,
                             size_t n, char *id)
{
    cookie_result r = cookie_find(vals, lens, n, "sessgate", id);
    if (r == COOKIE_ONE ? !sg_id_valid(id) : id[0] != '\0')
        abort();
    return r;
}

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
    r = verdict(vals, lens, n, id);
    if (r == COOKIE_ONE && !memmem(copy, size, id, SG_ID_LEN))
        abort();

    /* Reversed order: same verdict, same id. */
    const char *rvals[8];
    size_t rlens[8];
    char rid[SG_ID_LEN + 1];
    for (i = 0; i < n; i++) {
        rvals[i] = vals[n - 1 - i];
        rlens[i] = lens[n - 1 - i];
    }
    if (verdict(rvals, rlens, n, rid) != r || strcmp(rid, id) != 0)
        abort();

    /* Joined with ", " into one value (well under the byte cap). */
    if (n > 1 && size + 2 * n < GW_MAX_COOKIE) {
        char *joined = malloc(size + 2 * n), *p = joined;
        if (joined) {
            for (i = 0; i < n; i++) {
                if (i) {
                    memcpy(p, ", ", 2);
                    p += 2;
                }
                memcpy(p, vals[i], lens[i]);
                p += lens[i];
            }
            const char *jv[1] = { joined };
            size_t jl[1] = { (size_t)(p - joined) };
            if (verdict(jv, jl, 1, rid) != r || strcmp(rid, id) != 0)
                abort();
            free(joined);
        }
    }
    free(copy);
    return 0;
}
