/*
 * fuzz_cgi_reply.c - libFuzzer target for the CGI reply header parser.
 *
 * The first byte picks a chunk size, so the incremental interface is fed
 * the same block in many different splits.  Invariants checked: the bytes
 * claimed by the header block never exceed what was fed, a DONE reply has a
 * status in 100..599, and no header name or value it hands out holds CR,
 * LF or another control byte (they would split the response).  Also: the
 * split never changes the outcome (fed whole, the block gives the same
 * state, status and headers), a DONE block ends at its blank line, header
 * names are RFC 9110 tokens, values come trimmed, and no X-Session-*
 * header is ever marked to pass to the client (only the gateway speaks
 * for the session).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <strings.h>

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

static void check_name(const char *s)
{
    if (!*s)
        abort();
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) &&
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            abort();
}

/* The whole input in one feed, to compare with the chunked run. */
static reply_state feed_whole(reply *w, const uint8_t *data, size_t size,
                              size_t *used)
{
    char *all = malloc(size ? size : 1);
    reply_state st;

    if (!all)
        abort();
    memcpy(all, data, size);
    reply_init(w);
    st = reply_feed(w, all, size, used);
    free(all);
    if (st == REPLY_MORE)
        st = reply_eof(w);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reply r, w;
    size_t total = 0, wused = 0;
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
        if (used > n || (st == REPLY_MORE && used != n))
            abort();
        total += used;
    }
    if (st == REPLY_MORE)
        st = reply_eof(&r);
    if (st == REPLY_DONE) {
        if (r.status < 100 || r.status > 599 || r.nheaders > GW_MAX_REPLY_LINES)
            abort();
        /* The block ends at its blank line: LF LF, LF CR LF, or at the start. */
        if (total == 0 || data[total - 1] != '\n' ||
            !(total == 1 || data[total - 2] == '\n' ||
              (data[total - 2] == '\r' && (total == 2 || data[total - 3] == '\n'))))
            abort();
        for (i = 0; i < r.nheaders; i++) {
            const reply_header *h = &r.headers[i];
            size_t vl = strlen(h->value);
            check_clean(h->name, 0);
            check_name(h->name);
            check_clean(h->value, 1);
            if (vl && (h->value[0] == ' ' || h->value[0] == '\t' ||
                       h->value[vl - 1] == ' ' || h->value[vl - 1] == '\t'))
                abort();
            if (strncasecmp(h->name, "X-Session-", 10) == 0 &&
                h->directive == DIR_NONE)
                abort();
        }
    }
    if (feed_whole(&w, data, size, &wused) != st)
        abort();
    if (st == REPLY_DONE) {
        if (wused != total || w.status != r.status || w.nheaders != r.nheaders)
            abort();
        for (i = 0; i < r.nheaders; i++)
            if (strcmp(w.headers[i].name, r.headers[i].name) ||
                strcmp(w.headers[i].value, r.headers[i].value) ||
                w.headers[i].directive != r.headers[i].directive)
                abort();
    }
    reply_free(&w);
    reply_free(&r);
    return 0;
}
