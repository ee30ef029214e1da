/*
 * fcgi.c - the gateway's own FastCGI record reader and writer (issue #17).
 *
 * Why not libfcgi's FCGX_Accept_r: libfcgi 2.4.2 builds each param as a
 * "NAME=VALUE" C string and drops its length, so a NUL inside HTTP_COOKIE
 * (possible over raw FastCGI) hid everything after it, a duplicate session
 * cookie included; it mallocs nameLen + valueLen + 2 in int arithmetic and
 * asserts when that fails (a PARAMS length near 2^31 killed the worker with
 * SIGABRT); it leaked 48 bytes per management record of an unknown type;
 * and it answers GET_VALUES into a 64-byte stack buffer with no bound.  So
 * a worker reads the records itself:
 *  - before and between requests: management records (request id 0) are
 *    answered (GET_VALUES: FCGI_MAX_CONNS 1, FCGI_MAX_REQS 1,
 *    FCGI_MPXS_CONNS 0, each at most once, as libfcgi did; any other type:
 *    FCGI_UNKNOWN_TYPE), records of other request ids are skipped, a
 *    second BEGIN_REQUEST while one runs gets FCGI_CANT_MPX_CONN;
 *  - BEGIN_REQUEST (role, FCGI_KEEP_CONN), then PARAMS gathered whole
 *    (at most GW_MAX_HEAD bytes) and split into name/value/length triples
 *    (gw_param), every declared length checked against the bytes present:
 *    a length beyond them is a broken head, never an allocation;
 *  - FCGI_STDIN and the reply through FCGX_Stream objects of our own (the
 *    struct is public in fcgiapp.h, with fill/empty procs): FCGX_GetStr,
 *    FCGX_PutStr, FCGX_FFlush, FCGX_GetError and FCGX_HasSeenEOF work on
 *    them unchanged, so the modes did not change.  Our buffer is our own,
 *    so "is more input buffered" is a plain question now (it needed a
 *    mirror of libfcgi's private struct before).
 * For the rest of the gateway the params are also an envp array of
 * "NAME=VALUE" C strings, as libfcgi made them (the CGI environment is C
 * strings anyway); whoever must see a whole value (the cookie) reads the
 * triples.  Reads block, bounded by the socket's SO_RCVTIMEO and the
 * caller's SIGALRM (no SA_RESTART: a read fails with EINTR), as before.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "gateway.h"

#define FC_BUF 8192                 /* one read / one STDOUT record, as libfcgi */
#define FC_LINGER_MS 2000           /* the most a close waits for the peer's end */

struct gw_fcgi {
    FCGX_Request   req;             /* public fields only; never given to libfcgi */
    FCGX_Stream    in, out;
    unsigned char *rbuf;            /* FC_BUF bytes read from the socket */
    size_t         rpos, rend;
    size_t         clen, plen;      /* unread content / padding of the STDIN record */
    unsigned char *wbuf;            /* 8 header + FC_BUF content + 8 padding */
    unsigned char *head;            /* the PARAMS bytes of the request */
    size_t         head_len, head_cap;
    gw_param      *params;
    size_t         nparams, params_cap;
    char         **envp;            /* nparams + 1 */
    char          *env;             /* "NAME=VALUE\0" blocks */
    size_t         env_cap;
    int            begun;
    int            linger;          /* a request was answered: close gently */
    const char    *why;             /* why the last head failed */
};

typedef struct fc_hdr {
    int    type, id;
    size_t len, pad;
} fc_hdr;

/* ------------------------------------------------------------ raw I/O */

/* Refill the read buffer when it is empty.  1 bytes are there, 0 end of
 * file, -1 error (errno). */
static int fc_fill(gw_fcgi *c)
{
    ssize_t n;

    if (c->rpos < c->rend)
        return 1;
    n = read(c->req.ipcFd, c->rbuf, FC_BUF);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    c->rpos = 0;
    c->rend = (size_t)n;
    return 1;
}

/* Take exactly n bytes into dst (NULL: skip them).  0, or -1 with c->why. */
static int fc_take(gw_fcgi *c, void *dst, size_t n)
{
    unsigned char *d = dst;

    while (n) {
        size_t k;
        int r = fc_fill(c);

        if (r <= 0) {
            c->why = r == 0 ? "the peer closed the connection mid-record"
                   : errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK
                   ? "the read timed out" : "the read failed";
            return -1;
        }
        k = c->rend - c->rpos < n ? c->rend - c->rpos : n;
        if (d) {
            memcpy(d, c->rbuf + c->rpos, k);
            d += k;
        }
        c->rpos += k;
        n -= k;
    }
    return 0;
}

/* Write all of [p, p+n).  0, or -1 (errno). */
static int fc_write(gw_fcgi *c, const void *p, size_t n)
{
    const unsigned char *s = p;

    while (n) {
        ssize_t w = write(c->req.ipcFd, s, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fc_put_header(unsigned char *h, int type, int id, size_t len, size_t pad)
{
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(len >> 8);
    h[5] = (unsigned char)len;
    h[6] = (unsigned char)pad;
    h[7] = 0;
}

/* The next record header.  0, or -1 with c->why.  *clean is set when the
 * peer closed exactly between records. */
static int fc_header(gw_fcgi *c, fc_hdr *h, int *clean)
{
    unsigned char b[FCGI_HEADER_LEN];

    if (clean) {
        int r = fc_fill(c);

        *clean = r == 0;
        if (r == 0) {
            c->why = "the peer closed the connection";
            return -1;
        }
    }
    if (fc_take(c, b, sizeof b) != 0)
        return -1;
    if (b[0] != FCGI_VERSION_1) {
        c->why = "not FastCGI version 1";
        return -1;
    }
    h->type = b[1];
    h->id = (b[2] << 8) | b[3];
    h->len = ((size_t)b[4] << 8) | b[5];
    h->pad = b[6];
    return 0;
}

/* ------------------------------------------------------- name-value pairs */

static int nv_len(const unsigned char **p, const unsigned char *end, size_t *len)
{
    const unsigned char *q = *p;

    if (q >= end)
        return -1;
    if (*q & 0x80) {
        if (end - q < 4)
            return -1;
        *len = ((size_t)(q[0] & 0x7f) << 24) | ((size_t)q[1] << 16) |
               ((size_t)q[2] << 8) | q[3];
        *p = q + 4;
    } else {
        *len = *q;
        *p = q + 1;
    }
    return 0;
}

/* The next pair of [*p, end): 1 one more (p moved past it), 0 the end, -1
 * a length beyond the bytes present or a pair cut short. */
int fcgi_nv_next(const unsigned char **p, const unsigned char *end, gw_param *out)
{
    size_t nlen, vlen;
    const unsigned char *q = *p;

    if (q == end)
        return 0;
    if (nv_len(&q, end, &nlen) != 0 || nv_len(&q, end, &vlen) != 0 ||
        nlen > (size_t)(end - q) || vlen > (size_t)(end - q) - nlen)
        return -1;
    out->name = (const char *)q;
    out->nlen = nlen;
    out->value = (const char *)q + nlen;
    out->vlen = vlen;
    *p = q + nlen + vlen;
    return 1;
}

/* Split c->head into c->params and c->envp.  0, or -1 with c->why. */
static int fc_params(gw_fcgi *c)
{
    static const unsigned char none[1];
    const unsigned char *p = c->head ? c->head : none, *end = p + c->head_len;
    size_t n = 0, bytes = 0, i;
    gw_param pr;
    int r;
    char *e;

    while ((r = fcgi_nv_next(&p, end, &pr)) == 1) {
        n++;
        bytes += pr.nlen + pr.vlen + 2;     /* bounded by GW_MAX_HEAD * 3 */
    }
    if (r < 0) {
        c->why = "a param's length runs past the PARAMS stream";
        return -1;
    }
    if (n > GW_MAX_PARAMS) {
        c->why = "too many params";
        return -1;
    }
    if (n + 1 > c->params_cap) {
        gw_param *np = realloc(c->params, (n + 1) * sizeof *np);
        char **ne = np ? realloc(c->envp, (n + 1) * sizeof *ne) : NULL;

        if (np)
            c->params = np;
        if (ne)
            c->envp = ne;
        if (!np || !ne) {
            c->why = "out of memory";
            return -1;
        }
        c->params_cap = n + 1;
    }
    if (bytes > c->env_cap || !c->env) {
        char *ne = realloc(c->env, bytes ? bytes : 1);

        if (!ne) {
            c->why = "out of memory";
            return -1;
        }
        c->env = ne;
        c->env_cap = bytes ? bytes : 1;
    }
    p = c->head ? c->head : none;
    e = c->env;
    for (i = 0; i < n; i++) {
        fcgi_nv_next(&p, end, &pr);
        c->envp[i] = e;
        memcpy(e, pr.name, pr.nlen);
        c->params[i].name = e;
        c->params[i].nlen = pr.nlen;
        e += pr.nlen;
        *e++ = '=';
        memcpy(e, pr.value, pr.vlen);
        c->params[i].value = e;
        c->params[i].vlen = pr.vlen;
        e += pr.vlen;
        *e++ = '\0';
    }
    c->envp[n] = NULL;
    c->nparams = n;
    return 0;
}

/* ------------------------------------------------------ other records */

/* Answer a management record (request id 0).  0, or -1 with c->why. */
static int fc_management(gw_fcgi *c, const fc_hdr *h)
{
    static const char *const known[3][2] = {
        { FCGI_MAX_CONNS, "1" }, { FCGI_MAX_REQS, "1" }, { FCGI_MPXS_CONNS, "0" },
    };
    unsigned char body[0xffff], ans[FCGI_HEADER_LEN + 64];
    size_t n = FCGI_HEADER_LEN, k, pad;

    if (fc_take(c, body, h->len) != 0 || fc_take(c, NULL, h->pad) != 0)
        return -1;
    if (h->type == FCGI_GET_VALUES) {
        const unsigned char *p = body, *end = body + h->len;
        int seen[3] = { 0, 0, 0 }, r;
        gw_param pr;

        while ((r = fcgi_nv_next(&p, end, &pr)) == 1)
            for (k = 0; k < 3; k++)
                if (!seen[k] && pr.nlen == strlen(known[k][0]) &&
                    memcmp(pr.name, known[k][0], pr.nlen) == 0) {
                    seen[k] = 1;
                    ans[n++] = (unsigned char)pr.nlen;
                    ans[n++] = 1;
                    memcpy(ans + n, pr.name, pr.nlen);
                    n += pr.nlen;
                    ans[n++] = (unsigned char)known[k][1][0];
                }
        if (r < 0) {
            c->why = "a malformed GET_VALUES record";
            return -1;
        }
        k = n - FCGI_HEADER_LEN;
        pad = (8 - k % 8) % 8;
        memset(ans + n, 0, pad);
        fc_put_header(ans, FCGI_GET_VALUES_RESULT, 0, k, pad);
        n += pad;
    } else {
        memset(ans + n, 0, 8);
        ans[n] = (unsigned char)h->type;
        n += 8;
        fc_put_header(ans, FCGI_UNKNOWN_TYPE, 0, 8, 0);
    }
    if (fc_write(c, ans, n) != 0) {
        c->why = "a write failed";
        return -1;
    }
    return 0;
}

/* Records that are not the current request's own: management records are
 * answered, other requests' records skipped, a BEGIN_REQUEST while one
 * runs refused (this gateway does not multiplex).  1 handled, 0 the
 * record is the current request's, -1 error (c->why). */
static int fc_other(gw_fcgi *c, const fc_hdr *h)
{
    if (h->id == 0) {
        if (h->type == FCGI_BEGIN_REQUEST) {
            c->why = "BEGIN_REQUEST with request id 0";
            return -1;
        }
        return fc_management(c, h) == 0 ? 1 : -1;
    }
    if (c->begun && h->type == FCGI_BEGIN_REQUEST) {
        unsigned char e[16];

        fc_put_header(e, FCGI_END_REQUEST, h->id, 8, 0);
        memset(e + 8, 0, 8);
        e[12] = FCGI_CANT_MPX_CONN;
        if (fc_write(c, e, sizeof e) != 0) {
            c->why = "a write failed";
            return -1;
        }
    }
    if (c->begun && h->id == c->req.requestId && h->type != FCGI_BEGIN_REQUEST)
        return 0;
    return fc_take(c, NULL, h->len + h->pad) == 0 ? 1 : -1;
}

/* -------------------------------------------------------------- streams */

static void in_error(FCGX_Stream *s, int err)
{
    if (s->FCGI_errno == 0)
        s->FCGI_errno = err ? err : FCGX_PROTOCOL_ERROR;
    s->isClosed = 1;
    s->rdNext = s->stop = s->wrNext = s->stopUnget;
}

/* FCGI_STDIN: deliver the next piece of the current record's content. */
static void in_fill(FCGX_Stream *s)
{
    gw_fcgi *c = s->data;

    for (;;) {
        fc_hdr h;
        int r;

        if (c->clen > 0) {
            size_t k;

            r = fc_fill(c);
            if (r <= 0) {
                in_error(s, r == 0 ? FCGX_PROTOCOL_ERROR : errno);
                return;
            }
            k = c->rend - c->rpos < c->clen ? c->rend - c->rpos : c->clen;
            s->stopUnget = s->rdNext = (unsigned char *)c->rbuf + c->rpos;
            s->stop = s->wrNext = s->rdNext + k;
            c->rpos += k;
            c->clen -= k;
            return;
        }
        if (c->plen) {
            if (fc_take(c, NULL, c->plen) != 0) {
                in_error(s, errno ? errno : FCGX_PROTOCOL_ERROR);
                return;
            }
            c->plen = 0;
        }
        if (fc_header(c, &h, NULL) != 0 || (r = fc_other(c, &h)) < 0) {
            in_error(s, FCGX_PROTOCOL_ERROR);
            return;
        }
        if (r > 0)
            continue;
        if (h.type != FCGI_STDIN) {
            /* FCGI_ABORT_REQUEST (or a stray PARAMS): the body ends here,
             * broken, as with libfcgi */
            in_error(s, FCGX_PROTOCOL_ERROR);
            return;
        }
        if (h.len == 0) {
            if (fc_take(c, NULL, h.pad) != 0) {
                in_error(s, FCGX_PROTOCOL_ERROR);
                return;
            }
            s->isClosed = 1;            /* the end of the body */
            s->rdNext = s->stop = s->wrNext = s->stopUnget;
            return;
        }
        c->clen = h.len;
        c->plen = h.pad;
    }
}

static void out_error(FCGX_Stream *s, int err)
{
    gw_fcgi *c = s->data;

    if (s->FCGI_errno == 0)
        s->FCGI_errno = err ? err : EIO;
    s->isClosed = 1;
    s->wrNext = s->stop = c->wbuf + FCGI_HEADER_LEN;
}

/* FCGI_STDOUT: send what is buffered as one record. */
static void out_empty(FCGX_Stream *s, int do_close)
{
    gw_fcgi *c = s->data;
    unsigned char *start = c->wbuf + FCGI_HEADER_LEN;
    size_t n = (size_t)(s->wrNext - start), pad = (8 - n % 8) % 8;

    (void)do_close;                     /* fcgi_finish ends the stream */
    if (s->isClosed)
        return;
    if (n) {
        memset(s->wrNext, 0, pad);
        fc_put_header(c->wbuf, FCGI_STDOUT, c->req.requestId, n, pad);
        if (fc_write(c, c->wbuf, FCGI_HEADER_LEN + n + pad) != 0) {
            out_error(s, errno);
            return;
        }
    }
    s->wrNext = start;
}

static void streams_reset(gw_fcgi *c)
{
    FCGX_Stream *in = &c->in, *out = &c->out;

    memset(in, 0, sizeof *in);
    in->isReader = 1;
    in->fillBuffProc = in_fill;
    in->data = c;
    in->rdNext = in->stop = in->wrNext = in->stopUnget = c->rbuf;
    memset(out, 0, sizeof *out);
    out->emptyBuffProc = out_empty;
    out->data = c;
    out->wrNext = c->wbuf + FCGI_HEADER_LEN;
    out->stop = c->wbuf + FCGI_HEADER_LEN + FC_BUF;
    out->rdNext = out->stop;
}

/* ------------------------------------------------------------- the API */

/* A connection object without a connection; see gateway.h. */
gw_fcgi *fcgi_new(void)
{
    gw_fcgi *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->rbuf = malloc(FC_BUF);
    c->wbuf = malloc(FCGI_HEADER_LEN + FC_BUF + 8);
    if (!c->rbuf || !c->wbuf) {
        fcgi_free(c);
        return NULL;
    }
    c->req.ipcFd = -1;
    c->req.listen_sock = -1;
    streams_reset(c);
    return c;
}

/* Free c, closing its connection at once (the worker is leaving). */
void fcgi_free(gw_fcgi *c)
{
    if (!c)
        return;
    if (c->req.ipcFd >= 0)
        close(c->req.ipcFd);            /* leaving: no lingering */
    c->req.ipcFd = -1;
    free(c->rbuf);
    free(c->wbuf);
    free(c->head);
    free(c->params);
    free(c->envp);
    free(c->env);
    free(c);
}

/*
 * Close as libfcgi did (OS_IpcClose): end our side, then read and discard
 * until the peer closes, so bytes it still sends (the rest of a body, the
 * end of FCGI_STDIN) neither fail its writes (EPIPE: cgi-fcgi exits 32)
 * nor make a TCP stack answer with a reset that throws our reply away.
 * libfcgi waited 2 s per read, without end while bytes kept coming, and
 * on every close; this waits FC_LINGER_MS in all, and only after a reply
 * (a head that failed or an idle kept connection is simply closed: there
 * is no reply to protect, and a slow client would hold the worker longer).
 */
static void fc_linger_close(int fd)
{
    int64_t end = proc_now_ms() + FC_LINGER_MS;
    char trash[1024];

    if (shutdown(fd, SHUT_WR) == 0)
        for (;;) {
            struct pollfd pf = { fd, POLLIN, 0 };
            int64_t left = end - proc_now_ms();

            if (left <= 0 || poll(&pf, 1, (int)left) <= 0 ||
                read(fd, trash, sizeof trash) <= 0)
                break;
        }
    close(fd);
}

/* Close the connection, lingering as libfcgi did; see gateway.h. */
void fcgi_close(gw_fcgi *c)
{
    if (c->req.ipcFd >= 0 && c->linger)
        fc_linger_close(c->req.ipcFd);
    else if (c->req.ipcFd >= 0)
        close(c->req.ipcFd);
    c->req.ipcFd = -1;
    c->linger = 0;
    c->rpos = c->rend = c->clen = c->plen = 0;
    c->begun = 0;
    c->req.in = c->req.out = c->req.err = NULL;
    c->req.envp = NULL;
    c->nparams = 0;
}

/* Take over an accepted descriptor; see gateway.h. */
void fcgi_attach(gw_fcgi *c, int fd)
{
    fcgi_close(c);
    c->req.ipcFd = fd;
}

/* The connection's descriptor or -1. */
int fcgi_fd(const gw_fcgi *c)
{
    return c->req.ipcFd;
}

/* The current request's public fields and streams; see gateway.h. */
struct FCGX_Request *fcgi_request(gw_fcgi *c)
{
    return &c->req;
}

/* The current request's params with their lengths. */
const gw_param *fcgi_params(const gw_fcgi *c, size_t *n)
{
    *n = c->nparams;
    return c->params;
}

/* Why the last head failed (static text). */
const char *fcgi_why(const gw_fcgi *c)
{
    return c->why ? c->why : "-";
}

/* Whether read bytes wait in the buffer. */
int fcgi_pending(const gw_fcgi *c)
{
    return c->req.ipcFd >= 0 && c->rend > c->rpos;
}

/* Whether FCGI_STDIN bytes sit in our buffer beyond the current piece; see
 * gateway.h (cgi_stream.c polls the socket only when not). */
int cgi_fcgi_more_buffered(const struct FCGX_Request *fr)
{
    const gw_fcgi *c;

    if (!fr || !fr->in || fr->in->isClosed)
        return 0;
    c = fr->in->data;
    return c->rend > c->rpos;
}

/* Read the next request's head; see gateway.h. */
int fcgi_accept(gw_fcgi *c)
{
    int clean = 0;

    c->why = NULL;
    c->begun = 0;
    c->head_len = 0;
    c->nparams = 0;
    c->req.envp = NULL;
    c->req.in = c->req.out = c->req.err = NULL;
    /* what the previous request left of its body's current record */
    if (fc_take(c, NULL, c->clen + c->plen) != 0)
        goto fail;
    c->clen = c->plen = 0;
    for (;;) {
        fc_hdr h;
        int r;

        if (fc_header(c, &h, c->begun ? NULL : &clean) != 0)
            goto fail;
        if (!c->begun && h.type == FCGI_BEGIN_REQUEST && h.id != 0) {
            unsigned char b[8];

            if (h.len != sizeof b) {
                c->why = "a BEGIN_REQUEST of the wrong size";
                goto fail;
            }
            if (fc_take(c, b, sizeof b) != 0 || fc_take(c, NULL, h.pad) != 0)
                goto fail;
            c->req.requestId = h.id;
            c->req.role = (b[0] << 8) | b[1];
            c->req.keepConnection = (b[2] & FCGI_KEEP_CONN) != 0;
            c->begun = 1;
            continue;
        }
        r = fc_other(c, &h);
        if (r < 0)
            goto fail;
        if (r > 0)
            continue;
        if (h.type != FCGI_PARAMS) {
            c->why = "a record other than PARAMS inside the request head";
            goto fail;
        }
        if (h.len == 0) {
            if (fc_take(c, NULL, h.pad) != 0)
                goto fail;
            break;
        }
        if (h.len > GW_MAX_HEAD - c->head_len) {
            c->why = "the request head is over its cap";
            goto fail;
        }
        if (c->head_len + h.len > c->head_cap) {
            size_t cap = c->head_cap ? c->head_cap : FC_BUF;
            unsigned char *nh;

            while (cap < c->head_len + h.len)
                cap *= 2;
            nh = realloc(c->head, cap);
            if (!nh) {
                c->why = "out of memory";
                goto fail;
            }
            c->head = nh;
            c->head_cap = cap;
        }
        if (fc_take(c, c->head + c->head_len, h.len) != 0 || fc_take(c, NULL, h.pad) != 0)
            goto fail;
        c->head_len += h.len;
    }
    if (fc_params(c) != 0)
        goto fail;
    streams_reset(c);
    c->req.in = &c->in;
    c->req.out = &c->out;
    c->req.envp = c->envp;
    c->linger = 1;
    return 0;
fail:
    fcgi_close(c);
    return clean ? FCGI_GONE : FCGI_BROKEN;
}

/* End the request; see gateway.h. */
void fcgi_finish(gw_fcgi *c)
{
    int keep = c->req.keepConnection && c->req.in && c->in.FCGI_errno == 0;

    if (c->req.out && !c->out.isClosed) {
        unsigned char end[2 * FCGI_HEADER_LEN + 8];

        out_empty(&c->out, 1);
        fc_put_header(end, FCGI_STDOUT, c->req.requestId, 0, 0);
        fc_put_header(end + FCGI_HEADER_LEN, FCGI_END_REQUEST, c->req.requestId, 8, 0);
        memset(end + 2 * FCGI_HEADER_LEN, 0, 8);
        end[2 * FCGI_HEADER_LEN + 4] = FCGI_REQUEST_COMPLETE;
        if (c->out.isClosed || fc_write(c, end, sizeof end) != 0)
            keep = 0;
    } else {
        keep = 0;
    }
    c->req.in = c->req.out = c->req.err = NULL;
    c->req.envp = NULL;
    c->nparams = 0;
    c->begun = 0;
    if (!keep)
        fcgi_close(c);
    c->linger = 0;                      /* kept: the peer heard the end */
}
