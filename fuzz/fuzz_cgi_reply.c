/*
 * fuzz_cgi_reply.c - libFuzzer target for the CGI reply header parser.
 *
 * The first byte picks a chunk size, so the incremental interface is fed
 * the same block in many different splits.  Invariants checked: the bytes
 * claimed by the header block never exceed what was fed, a DONE reply has a
 * status in 100..599, and no header name or value it hands out holds CR,
 * LF or another control byte (they would split the response).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_clean(const char *s, int allow_high)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f || (!allow_high && c > 0x7f))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reply r;
    size_t step, off, used, i;
    reply_state st = REPLY_MORE;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    reply_init(&r);
    for (off = 0; off < size && st == REPLY_MORE; off += step) {
        size_t n = size - off < step ? size - off : step;
        char *chunk = malloc(n ? n : 1);    /* exact size: ASan sees overreads */
        if (!chunk)
            break;
        memcpy(chunk, data + off, n);
        st = reply_feed(&r, chunk, n, &used);
        free(chunk);
        if (used > n)
            abort();
    }
    if (st == REPLY_MORE)
        st = reply_eof(&r);
    if (st == REPLY_DONE) {
        if (r.status < 100 || r.status > 599 || r.nheaders > GW_MAX_REPLY_LINES)
            abort();
        for (i = 0; i < r.nheaders; i++) {
            check_clean(r.headers[i].name, 0);
            check_clean(r.headers[i].value, 1);
        }
    }
    reply_free(&r);
    return 0;
}
