/*
 * test_fcgi_layout.c - catches a libfcgi whose private FCGX_Stream_Data no
 * longer has the layout gateway/cgi_stream.c mirrors.
 *
 * cgi mode must know whether libfcgi already read more of the request body
 * than the current record (then the socket never polls readable again);
 * libfcgi has no public call for that, so cgi_fcgi_more_buffered() reads
 * the reader's private buffer end (see the comment in cgi_stream.c).  Here
 * a real libfcgi request is fed over a unix socket: every record in one
 * write (all of it lands in libfcgi's buffer), then a body whose records
 * arrive after the buffer was drained.  At each step the answer must be
 * the true one (1 or 0), never -1 (layout not recognised).  With a changed
 * layout the sanity checks answer -1 and this test fails, instead of every
 * body silently waiting for the request deadline.
 *
 * Usage: test_fcgi_layout DIR   (a scratch directory).  Prints TAP lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "../../gateway/gateway.h"
#include "tap.h"

/* Append one FastCGI record of request 1 to out; returns its length. */
static size_t record(unsigned char *out, int type, const void *body, size_t n)
{
    out[0] = FCGI_VERSION_1;
    out[1] = (unsigned char)type;
    out[2] = 0;
    out[3] = 1;
    out[4] = (unsigned char)(n >> 8);
    out[5] = (unsigned char)(n & 0xff);
    out[6] = 0;
    out[7] = 0;
    memcpy(out + 8, body, n);
    return 8 + n;
}

/* The records of a request up to (not including) its body. */
static size_t head(unsigned char *out)
{
    static const unsigned char begin[8] = { 0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0 };
    unsigned char params[64];
    size_t n = 0, k;

    n += record(out + n, FCGI_BEGIN_REQUEST, begin, sizeof begin);
    /* CONTENT_LENGTH=6: name length 14, value length 1 */
    params[0] = 14;
    params[1] = 1;
    memcpy(params + 2, "CONTENT_LENGTH6", 15);
    k = 17;
    n += record(out + n, FCGI_PARAMS, params, k);
    n += record(out + n, FCGI_PARAMS, "", 0);
    return n;
}

static int listener(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    if (strlen(path) >= sizeof sa.sun_path)
        return -1;                      /* too long for a unix socket */
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
        return -1;
    return fd;
}

static int client(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return -1;
    return fd;
}

/* The whole request in one write: the body's records all sit in libfcgi's
 * buffer after the first read. */
static void test_all_buffered(int lfd, const char *path)
{
    unsigned char msg[512];
    char got[16];
    size_t n = head(msg);
    FCGX_Request rq;
    int c = client(path), ok;

    n += record(msg + n, FCGI_STDIN, "abc", 3);
    n += record(msg + n, FCGI_STDIN, "def", 3);
    n += record(msg + n, FCGI_STDIN, "", 0);
    ok = c >= 0 && write(c, msg, n) == (ssize_t)n;      /* (OK evaluates twice) */
    OK(ok, "a request in one write");
    FCGX_InitRequest(&rq, lfd, 0);
    IS(FCGX_Accept_r(&rq), 0, "libfcgi accepts it");
    IS(cgi_fcgi_more_buffered(&rq), 1, "before the body: the body is known to be buffered");
    IS(FCGX_GetStr(got, 1, rq.in), 1, "one body byte read");
    IS(cgi_fcgi_more_buffered(&rq), 1, "inside the first record: more is known to be buffered");
    IS(FCGX_GetStr(got, 2, rq.in), 2, "the rest of the first record read");
    IS(cgi_fcgi_more_buffered(&rq), 1, "at the record's end: the next one is known to be buffered");
    IS(FCGX_GetStr(got, 3, rq.in), 3, "the second record read");
    IS(cgi_fcgi_more_buffered(&rq), 1, "the end record is known to be buffered");
    IS(FCGX_GetStr(got, 1, rq.in), 0, "then the body ends");
    IS(cgi_fcgi_more_buffered(&rq), 0, "after the end: nothing more");
    FCGX_Finish_r(&rq);
    close(c);
}

/* The body arrives after libfcgi drained its buffer: the answer is 0 (poll
 * the socket), not "unknown". */
static void test_nothing_buffered(int lfd, const char *path)
{
    unsigned char msg[512];
    char got[16];
    size_t n = head(msg);
    FCGX_Request rq;
    int c = client(path), ok;

    n += record(msg + n, FCGI_STDIN, "abc", 3);
    ok = c >= 0 && write(c, msg, n) == (ssize_t)n;
    OK(ok, "a request cut after its first body record");
    FCGX_InitRequest(&rq, lfd, 0);
    IS(FCGX_Accept_r(&rq), 0, "libfcgi accepts it");
    IS(FCGX_GetStr(got, 3, rq.in), 3, "the first record read");
    IS(cgi_fcgi_more_buffered(&rq), 0, "nothing more is buffered: known, not 'unknown'");
    n = record(msg, FCGI_STDIN, "def", 3);
    n += record(msg + n, FCGI_STDIN, "", 0);
    ok = write(c, msg, n) == (ssize_t)n;
    OK(ok, "the rest arrives on the socket");
    IS(cgi_fcgi_more_buffered(&rq), 0, "libfcgi has not read it: still 0 (the caller polls)");
    IS(FCGX_GetStr(got, 3, rq.in), 3, "a read takes it from the socket");
    IS(cgi_fcgi_more_buffered(&rq), 1, "and then the end record is known to be buffered");
    IS(FCGX_GetStr(got, 1, rq.in), 0, "then the body ends");
    IS(cgi_fcgi_more_buffered(&rq), 0, "after the end: nothing more");
    FCGX_Finish_r(&rq);
    close(c);
}

int main(int argc, char **argv)
{
    char path[600];
    int lfd;

    if (argc != 2) {
        fprintf(stderr, "usage: test_fcgi_layout DIR\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/fcgi.sock", argv[1]);
    if (FCGX_Init() != 0 || (lfd = listener(path)) < 0) {
        printf("not ok 1 - a listening socket at %s\n1..1\n", path);
        return 1;
    }
    test_all_buffered(lfd, path);
    test_nothing_buffered(lfd, path);
    close(lfd);
    unlink(path);
    return tap_done();
}
