/*
 * test_fcgi_reader.c - the gateway's own FastCGI record reader and writer
 * (gateway/fcgi.c, issue #17), over a real socket pair.
 *
 * Checked: params keep their lengths (a NUL inside a value hides nothing,
 * 1- and 4-byte lengths), a declared length beyond the PARAMS stream is a
 * broken head and never an allocation, management records are answered
 * (GET_VALUES once per known name, anything else FCGI_UNKNOWN_TYPE), a
 * second BEGIN_REQUEST gets FCGI_CANT_MPX_CONN, the body through the
 * FCGX_ stream calls, "more is buffered" answered from our own buffer
 * (cgi mode polls the socket only when not), the reply's records, and a
 * kept connection whose first body was left unread.
 *
 * Usage: test_fcgi_reader DIR   (unused).  Prints TAP lines.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "../../gateway/gateway.h"
#include "tap.h"

/* Append one FastCGI record of request id to out; returns its length. */
static size_t record_id(unsigned char *out, int type, int id, const void *body, size_t n)
{
    out[0] = FCGI_VERSION_1;
    out[1] = (unsigned char)type;
    out[2] = (unsigned char)(id >> 8);
    out[3] = (unsigned char)id;
    out[4] = (unsigned char)(n >> 8);
    out[5] = (unsigned char)(n & 0xff);
    out[6] = 0;
    out[7] = 0;
    memcpy(out + 8, body, n);
    return 8 + n;
}

static size_t record(unsigned char *out, int type, const void *body, size_t n)
{
    return record_id(out, type, 1, body, n);
}

static size_t begin(unsigned char *out, int role, int keep)
{
    unsigned char b[8] = { 0, (unsigned char)role, (unsigned char)(keep ? FCGI_KEEP_CONN : 0),
                           0, 0, 0, 0, 0 };

    return record(out, FCGI_BEGIN_REQUEST, b, sizeof b);
}

/* A name-value pair with 1- or 4-byte lengths. */
static size_t nv(unsigned char *out, const char *name, size_t nlen, const char *val, size_t vlen)
{
    size_t n = 0;
    size_t lens[2] = { nlen, vlen };
    int i;

    for (i = 0; i < 2; i++)
        if (lens[i] < 128) {
            out[n++] = (unsigned char)lens[i];
        } else {
            out[n++] = (unsigned char)(0x80 | (lens[i] >> 24));
            out[n++] = (unsigned char)(lens[i] >> 16);
            out[n++] = (unsigned char)(lens[i] >> 8);
            out[n++] = (unsigned char)lens[i];
        }
    memcpy(out + n, name, nlen);
    memcpy(out + n + nlen, val, vlen);
    return n + nlen + vlen;
}

/* The head of a request with one CONTENT_LENGTH=6 param. */
static size_t head(unsigned char *out)
{
    unsigned char p[64];
    size_t n = begin(out, FCGI_RESPONDER, 0);
    size_t k = nv(p, "CONTENT_LENGTH", 14, "6", 1);

    n += record(out + n, FCGI_PARAMS, p, k);
    n += record(out + n, FCGI_PARAMS, "", 0);
    return n;
}

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}

static void test_all_buffered(void)
{
    unsigned char msg[512];
    char got[16];
    size_t n = head(msg);
    int sv[2], ok;
    gw_fcgi *c = fcgi_new();
    FCGX_Request *rq = fcgi_request(c);

    n += record(msg + n, FCGI_STDIN, "abc", 3);
    n += record(msg + n, FCGI_STDIN, "def", 3);
    n += record(msg + n, FCGI_STDIN, "", 0);
    ok = pair(sv) == 0 && write(sv[0], msg, n) == (ssize_t)n;  /* (OK evaluates twice) */
    OK(ok, "a request in one write");
    fcgi_attach(c, sv[1]);
    IS(fcgi_accept(c), 0, "accepted");
    IS(cgi_fcgi_more_buffered(rq), 1, "before the body: the body is known to be buffered");
    IS(FCGX_GetStr(got, 1, rq->in), 1, "one body byte read");
    IS(cgi_fcgi_more_buffered(rq), 1, "inside the first record: more is known to be buffered");
    IS(FCGX_GetStr(got, 2, rq->in), 2, "the rest of the first record read");
    IS(cgi_fcgi_more_buffered(rq), 1, "at the record's end: the next one is known to be buffered");
    IS(FCGX_GetStr(got, 3, rq->in), 3, "the second record read");
    IS(cgi_fcgi_more_buffered(rq), 1, "the end record is known to be buffered");
    IS(FCGX_GetStr(got, 1, rq->in), 0, "then the body ends");
    OK(FCGX_HasSeenEOF(rq->in) && FCGX_GetError(rq->in) == 0, "at its end, without error");
    IS(cgi_fcgi_more_buffered(rq), 0, "after the end: nothing more");
    fcgi_free(c);
    close(sv[0]);
}

static void test_nothing_buffered(void)
{
    unsigned char msg[512];
    char got[16];
    size_t n = head(msg);
    int sv[2], ok;
    gw_fcgi *c = fcgi_new();
    FCGX_Request *rq = fcgi_request(c);

    n += record(msg + n, FCGI_STDIN, "abc", 3);
    ok = pair(sv) == 0 && write(sv[0], msg, n) == (ssize_t)n;
    OK(ok, "a request cut after its first body record");
    fcgi_attach(c, sv[1]);
    IS(fcgi_accept(c), 0, "accepted");
    IS(FCGX_GetStr(got, 3, rq->in), 3, "the first record read");
    IS(cgi_fcgi_more_buffered(rq), 0, "nothing more is buffered");
    n = record(msg, FCGI_STDIN, "def", 3);
    n += record(msg + n, FCGI_STDIN, "", 0);
    ok = write(sv[0], msg, n) == (ssize_t)n;
    OK(ok, "the rest arrives on the socket");
    IS(cgi_fcgi_more_buffered(rq), 0, "not read yet: still 0 (the caller polls)");
    IS(FCGX_GetStr(got, 3, rq->in), 3, "a read takes it from the socket");
    IS(cgi_fcgi_more_buffered(rq), 1, "and then the end record is known to be buffered");
    IS(FCGX_GetStr(got, 1, rq->in), 0, "then the body ends");
    fcgi_free(c);
    close(sv[0]);
}

static void test_params(void)
{
    static unsigned char msg[4096], p[2048];
    static const char cookie[] = "a=1\0; sessgate=x";      /* 16 bytes */
    char big[300];
    size_t n, k = 0, np;
    int sv[2], ok;
    gw_fcgi *c = fcgi_new();
    FCGX_Request *rq = fcgi_request(c);
    const gw_param *pr;

    memset(big, 'v', sizeof big);
    k += nv(p + k, "HTTP_COOKIE", 11, cookie, sizeof cookie - 1);
    k += nv(p + k, "BIG", 3, big, sizeof big);
    k += nv(p + k, "EMPTY", 5, "", 0);
    k += nv(p + k, "N\0M", 3, "v", 1);
    n = begin(msg, FCGI_AUTHORIZER, 1);
    n += record(msg + n, FCGI_PARAMS, p, 7);            /* split mid-pair */
    n += record(msg + n, FCGI_PARAMS, p + 7, k - 7);
    n += record(msg + n, FCGI_PARAMS, "", 0);
    n += record(msg + n, FCGI_STDIN, "", 0);
    ok = pair(sv) == 0 && write(sv[0], msg, n) == (ssize_t)n;
    OK(ok, "a request with awkward params");
    fcgi_attach(c, sv[1]);
    IS(fcgi_accept(c), 0, "accepted");
    IS(rq->role, FCGI_AUTHORIZER, "the role from BEGIN_REQUEST");
    IS(rq->keepConnection, 1, "FCGI_KEEP_CONN seen");
    pr = fcgi_params(c, &np);
    IS(np, 4, "four params");
    IS(pr[0].vlen, 16, "the cookie keeps its length past the NUL");
    OK(memcmp(pr[0].value, cookie, 16) == 0, "and its bytes");
    IS(pr[1].vlen, 300, "a 4-byte value length");
    OK(pr[2].vlen == 0 && pr[2].value[0] == '\0', "an empty value");
    IS(pr[3].nlen, 3, "a name with a NUL keeps its length");
    STR_IS(rq->envp[0], "HTTP_COOKIE=a=1", "envp: the C-string view, as libfcgi made it");
    STR_IS(rq->envp[2], "EMPTY=", "envp: the empty value");
    OK(rq->envp[4] == NULL, "envp ends");
    fcgi_finish(c);
    IS(fcgi_fd(c), sv[1], "kept: the connection stays open");
    {
        unsigned char r[64];
        ssize_t got = read(sv[0], r, sizeof r);

        IS(got, 24, "the reply: an empty STDOUT record and END_REQUEST");
        OK(got == 24 && r[1] == FCGI_STDOUT && r[9] == FCGI_END_REQUEST &&
           r[20] == FCGI_REQUEST_COMPLETE, "of the right types");
    }
    close(sv[0]);
    IS(fcgi_accept(c), FCGI_GONE, "the peer closing between requests is quiet");
    IS(fcgi_fd(c), -1, "and the connection is closed");
    fcgi_free(c);
}

/* A head that must be refused: FCGI_BROKEN and the connection closed. */
static void broken(const unsigned char *p, size_t k, const char *what)
{
    unsigned char msg[512];
    size_t n = begin(msg, FCGI_RESPONDER, 0);
    int sv[2], ok;
    gw_fcgi *c = fcgi_new();

    n += record(msg + n, FCGI_PARAMS, p, k);
    n += record(msg + n, FCGI_PARAMS, "", 0);
    ok = pair(sv) == 0 && write(sv[0], msg, n) == (ssize_t)n;
    OK(ok, "sent: %s", what);
    shutdown(sv[0], SHUT_WR);
    fcgi_attach(c, sv[1]);
    IS(fcgi_accept(c), FCGI_BROKEN, "refused: %s", what);
    IS(fcgi_fd(c), -1, "connection closed: %s", what);
    fcgi_free(c);
    close(sv[0]);
}

static void test_broken(void)
{
    static const unsigned char huge[] = { 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x00, 'A', 'B' };
    static const unsigned char past[] = { 3, 9, 'A', 'B', 'C', 'x' };
    static const unsigned char cut[] = { 0x80, 0x00 };

    broken(huge, sizeof huge, "name and value lengths near 2^31");
    broken(past, sizeof past, "a value length past the stream");
    broken(cut, sizeof cut, "a 4-byte length cut short");
}

static void test_management(void)
{
    unsigned char msg[512], p[128], r[256];
    size_t n = 0, k = 0;
    int sv[2], ok;
    ssize_t got;
    gw_fcgi *c = fcgi_new();

    k += nv(p + k, "FCGI_MPXS_CONNS", 15, "", 0);
    k += nv(p + k, "FCGI_MPXS_CONNS", 15, "", 0);   /* asked twice: answered once */
    k += nv(p + k, "OTHER", 5, "", 0);
    n += record_id(msg + n, FCGI_GET_VALUES, 0, p, k);
    n += record_id(msg + n, 99, 0, "", 0);
    n += head(msg + n);
    n += record_id(msg + n, FCGI_BEGIN_REQUEST, 2, "\0\1\0\0\0\0\0\0", 8);
    ok = pair(sv) == 0 && write(sv[0], msg, n) == (ssize_t)n;
    OK(ok, "management records before a request, a second BEGIN after it");
    shutdown(sv[0], SHUT_WR);
    fcgi_attach(c, sv[1]);
    IS(fcgi_accept(c), 0, "the request is accepted after them");
    got = read(sv[0], r, sizeof r);
    IS(got, 8 + 24 + 16, "two answers");
    OK(got >= 48 && r[1] == FCGI_GET_VALUES_RESULT && r[5] == 18 &&
       memcmp(r + 10, "FCGI_MPXS_CONNS0", 16) == 0, "GET_VALUES: FCGI_MPXS_CONNS=0, once");
    OK(got >= 48 && r[33] == FCGI_UNKNOWN_TYPE && r[40] == 99, "FCGI_UNKNOWN_TYPE for type 99");
    {
        char b[4];

        (void)FCGX_GetStr(b, 1, fcgi_request(c)->in);   /* meets the second BEGIN */
        got = read(sv[0], r, sizeof r);
        OK(got == 16 && r[1] == FCGI_END_REQUEST && r[3] == 2 && r[12] == FCGI_CANT_MPX_CONN,
           "a second BEGIN_REQUEST: FCGI_CANT_MPX_CONN");
    }
    fcgi_free(c);
    close(sv[0]);
}

/* Kept connection, first body unread: the next request is still read. */
static void test_kept_unread(void)
{
    unsigned char msg[1024];
    size_t n;
    int sv[2], ok;
    gw_fcgi *c = fcgi_new();
    FCGX_Request *rq = fcgi_request(c);
    char b[4];

    n = begin(msg, FCGI_RESPONDER, 1);
    n += record(msg + n, FCGI_PARAMS, "", 0);
    n += record(msg + n, FCGI_STDIN, "0123456789", 10);
    n += record(msg + n, FCGI_STDIN, "", 0);
    n += begin(msg + n, FCGI_RESPONDER, 1);
    n += record(msg + n, FCGI_PARAMS, "\1\1AB", 4);
    n += record(msg + n, FCGI_PARAMS, "", 0);
    ok = pair(sv) == 0 && write(sv[0], msg, n) == (ssize_t)n;
    OK(ok, "two requests on a kept connection");
    fcgi_attach(c, sv[1]);
    IS(fcgi_accept(c), 0, "the first accepted");
    IS(FCGX_GetStr(b, 2, rq->in), 2, "two bytes of its body read");
    fcgi_finish(c);
    OK(fcgi_pending(c), "the rest is pending in the buffer");
    IS(fcgi_accept(c), 0, "the second accepted past the unread rest");
    STR_IS(rq->envp[0], "A=B", "with its own params");
    fcgi_free(c);
    close(sv[0]);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_all_buffered();
    test_nothing_buffered();
    test_params();
    test_broken();
    test_management();
    test_kept_unread();
    return tap_done();
}
