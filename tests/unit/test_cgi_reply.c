/*
 * test_cgi_reply.c - unit tests of the CGI reply header parser (cgi_reply.c).
 *
 * Covers the incremental interface (the block split at every byte gives the
 * same result), the status rules (Status header, Location -> 302, default
 * 200), the session directives being marked and other X-Session-* dropped,
 * and garbage: every malformed block is REPLY_ERROR (a 502), never DONE.
 * Prints TAP lines; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../gateway/gateway.h"

static int n_test, n_fail;

static void check(int ok, const char *what)
{
    n_test++;
    if (!ok)
        n_fail++;
    printf("%sok %d - %s\n", ok ? "" : "not ", n_test, what);
}

/* Feed text in chunks of `step` bytes; returns the final state and the
 * offset where the body starts (in *body). */
static reply_state feed(reply *r, const char *text, size_t len, size_t step, size_t *body)
{
    size_t off = 0, used;
    reply_state st = REPLY_MORE;

    reply_init(r);
    *body = len;
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        st = reply_feed(r, text + off, n, &used);
        if (st == REPLY_DONE) {
            *body = off + used;
            return st;
        }
        if (st == REPLY_ERROR)
            return st;
        off += n;
    }
    return reply_eof(r);
}

static const reply_header *find(const reply *r, const char *name)
{
    size_t i;
    for (i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return &r->headers[i];
    return NULL;
}

static int state_of(const char *text)
{
    reply r;
    size_t body;
    reply_state st = feed(&r, text, strlen(text), 4096, &body);
    reply_free(&r);
    return st;
}

int main(void)
{
    reply r;
    size_t body, step;
    const char *ok = "Content-Type: text/html\r\nX-Other:  spaced value  \r\n\r\n<html>";
    int all_same = 1;

    check(feed(&r, ok, strlen(ok), 4096, &body) == REPLY_DONE, "a plain reply parses");
    check(r.status == 200, "no Status and no Location means 200");
    check(strcmp(ok + body, "<html>") == 0, "the body starts right after the blank line");
    check(find(&r, "x-other") && strcmp(find(&r, "X-Other")->value, "spaced value") == 0,
          "values are trimmed of blanks");
    check(r.has_content_type, "Content-Type is noticed");
    reply_free(&r);

    for (step = 1; step < 70; step++) {
        if (feed(&r, ok, strlen(ok), step, &body) != REPLY_DONE || body != strlen(ok) - 6 ||
            r.nheaders != 2)
            all_same = 0;
        reply_free(&r);
    }
    check(all_same, "feeding byte by byte or in any chunk size gives the same result");

    {
        const char *t = "Status: 404 Not Found\nContent-Type: text/plain\n\nnope";
        check(feed(&r, t, strlen(t), 3, &body) == REPLY_DONE && r.status == 404 &&
              !find(&r, "Status") && strcmp(t + body, "nope") == 0,
              "bare LF line ends work; Status is taken and not passed on");
        reply_free(&r);
    }
    {
        const char *t = "Location: /elsewhere\r\n\r\n";
        check(feed(&r, t, strlen(t), 4096, &body) == REPLY_DONE && r.status == 302,
              "Location without Status means 302");
        reply_free(&r);
    }
    {
        const char *t = "Status: 201\r\nLocation: /new\r\n\r\n";
        check(feed(&r, t, strlen(t), 4096, &body) == REPLY_DONE && r.status == 201,
              "an explicit Status wins over Location");
        reply_free(&r);
    }
    {
        const char *t = "Content-Type: text/plain\r\nX-Session-Set: {\"a\":1}\r\n"
                        "x-session-login: alice\r\nX-Session-Logout: 1\r\n"
                        "X-Session-Rotate: 1\r\nX-Session-Replace: {}\r\n"
                        "X-Session-Id: leaked\r\nX-Sessionx: kept\r\n\r\n";
        const reply_header *h;
        check(feed(&r, t, strlen(t), 7, &body) == REPLY_DONE, "directives parse");
        h = find(&r, "X-Session-Set");
        check(h && h->directive == DIR_SET && strcmp(h->value, "{\"a\":1}") == 0,
              "X-Session-Set is a directive with its JSON");
        check(find(&r, "X-Session-Login") && find(&r, "X-Session-Login")->directive == DIR_LOGIN,
              "directive names are case-insensitive");
        check(find(&r, "X-Session-Logout")->directive == DIR_LOGOUT &&
              find(&r, "X-Session-Rotate")->directive == DIR_ROTATE &&
              find(&r, "X-Session-Replace")->directive == DIR_REPLACE,
              "Logout, Rotate and Replace are directives");
        check(find(&r, "X-Session-Id") && find(&r, "X-Session-Id")->directive == DIR_DROP,
              "any other X-Session-* header is dropped");
        check(find(&r, "X-Sessionx") && find(&r, "X-Sessionx")->directive == DIR_NONE,
              "a header merely starting with X-Session passes");
        reply_free(&r);
    }

    check(state_of("Content-Type: text/plain") == REPLY_ERROR,
          "output ending inside the header block is an error");
    check(state_of("") == REPLY_ERROR, "no output at all is an error");
    check(state_of("\r\nbody") == REPLY_ERROR, "a reply without any header is an error");
    check(state_of("this is not a header\r\n\r\n") == REPLY_ERROR, "a line without a colon");
    check(state_of(": value\r\n\r\n") == REPLY_ERROR, "an empty header name");
    check(state_of("Bad Name: v\r\n\r\n") == REPLY_ERROR, "a blank inside a header name");
    check(state_of("A: b\rC: d\r\n\r\n") == REPLY_ERROR, "a bare CR");
    check(state_of("A: b\r\n folded\r\n\r\n") == REPLY_ERROR, "a folded continuation line");
    check(state_of("A: b\x01 c\r\n\r\n") == REPLY_ERROR, "a control byte in a value");
    check(state_of("Status: abc\r\n\r\n") == REPLY_ERROR, "a non-numeric Status");
    check(state_of("Status: 99\r\n\r\n") == REPLY_ERROR, "a two-digit Status");
    check(state_of("Status: 600\r\n\r\n") == REPLY_ERROR, "a Status over 599");
    check(state_of("Status: 200\r\nStatus: 302\r\n\r\n") == REPLY_ERROR, "two Status headers");
    check(state_of("Location:\r\n\r\n") == REPLY_ERROR, "an empty Location");
    check(state_of("A: caf\xc3\xa9\r\n\r\n") == REPLY_DONE, "obs-text (UTF-8) in a value passes");
    check(state_of("A:\r\n\r\n") == REPLY_DONE, "an empty value is allowed");
    {
        const char t[] = "A: b\0c\r\n\r\n";
        size_t used;
        reply_init(&r);
        check(reply_feed(&r, t, sizeof t - 1, &used) == REPLY_ERROR, "a NUL byte");
        reply_free(&r);
    }
    {
        char *t = malloc(GW_MAX_REPLY_HEADER + 100);
        size_t i;
        for (i = 0; i < GW_MAX_REPLY_HEADER + 90; i += 10)
            memcpy(t + i, "X-Pad: 12\n", 10);
        t[GW_MAX_REPLY_HEADER + 90] = '\0';
        check(state_of(t) == REPLY_ERROR, "a header block over the size cap");
        free(t);
    }
    {
        char *t = malloc((GW_MAX_REPLY_LINES + 2) * 8 + 4);
        size_t i;
        t[0] = '\0';
        for (i = 0; i < GW_MAX_REPLY_LINES + 1; i++)
            strcat(t, "A: 123\n");
        strcat(t, "\n");
        check(state_of(t) == REPLY_ERROR, "more header lines than the cap");
        free(t);
    }
    {
        /* Random bytes: never crash, and DONE only with a sane status. */
        char junk[300];
        unsigned seed = 7;
        int i, k, bad = 0;
        for (i = 0; i < 20000; i++) {
            size_t used;
            for (k = 0; k < (int)sizeof junk; k++) {
                seed = seed * 1103515245u + 12345u;
                junk[k] = "ab:\r\n \t\x01S"[(seed >> 16) % 10];
            }
            reply_init(&r);
            if (reply_feed(&r, junk, sizeof junk, &used) == REPLY_DONE &&
                (r.status < 100 || r.status > 599 || used > sizeof junk))
                bad++;
            reply_free(&r);
        }
        check(bad == 0, "20,000 random blocks never give a bad status or offset");
    }
    check(strcmp(reply_reason(404), "Not Found") == 0 && reply_reason(599)[0],
          "every status has a reason phrase");

    printf("# %d tests, %d failed\n", n_test, n_fail);
    return n_fail ? 1 : 0;
}
