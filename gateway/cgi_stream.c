/*
 * cgi_stream.c - stream the request body to a CGI program and its reply
 * back, under one poll() loop, so a program that writes a lot before
 * reading its input cannot deadlock against us (fcgiwrap copies the whole
 * body first).  A header block is acted on only once the declared body is
 * whole (issue #17); a client that goes away gets its program killed.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "gateway.h"

/* Bytes of FCGI_STDIN's current piece already read (no blocking).  Bytes
 * beyond it that sit in the connection's buffer: cgi_fcgi_more_buffered
 * (fcgi.c).  The socket is polled only when neither has any. */
static size_t fcgi_buffered(const FCGX_Stream *in)
{
    if (!in || in->isClosed || in->stop < in->rdNext)
        return 0;
    return (size_t)(in->stop - in->rdNext);
}

static void on_alarm(int sig)
{
    (void)sig;                          /* only interrupts a blocking read */
}

/* Take more body from FCGI_STDIN.  Called when libfcgi holds bytes or the
 * socket polled readable; a read that would still block ends at the
 * deadline (SIGALRM without SA_RESTART makes read() fail with EINTR). */
static void cgi_read_body(cgi_io *io, int64_t deadline)
{
    FCGX_Stream *in = io->rq->fcgi->in;
    size_t avail = fcgi_buffered(in);
    int n;

    io->in_off = io->in_len = 0;
    if (avail == 0) {
        struct sigaction sa;
        struct itimerval it, off;
        int64_t left = deadline - proc_now_ms();

        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        memset(&it, 0, sizeof it);
        memset(&off, 0, sizeof off);
        if (left < 1)
            left = 1;
        it.it_value.tv_sec = left / 1000;
        it.it_value.tv_usec = (left % 1000) * 1000;
        setitimer(ITIMER_REAL, &it, NULL);
        n = FCGX_GetStr(io->inbuf, 1, in);  /* refills libfcgi's buffer */
        setitimer(ITIMER_REAL, &off, NULL);
        if (n <= 0) {
            io->body_eof = 1;
            return;
        }
        io->in_len = 1;
        io->body_total++;
        avail = fcgi_buffered(in);
    }
    if (avail > GW_IO_CHUNK - io->in_len)
        avail = GW_IO_CHUNK - io->in_len;
    if (avail) {
        n = FCGX_GetStr(io->inbuf + io->in_len, (int)avail, in);
        if (n > 0) {
            io->in_len += (size_t)n;
            io->body_total += (unsigned long long)n;
        }
    }
}

/* Whether the whole body declared by CONTENT_LENGTH has arrived. */
static int cgi_body_whole(const cgi_io *io)
{
    return io->content_length < 0 ||
           io->body_total >= (unsigned long long)io->content_length;
}

/*
 * Why (issue #17): through a server that streams the body (Apache
 * mod_proxy_fcgi), a client can declare 100000 bytes, send 10 and hang up;
 * the program then sees a short body and may still answer with session
 * directives, which must not be applied: the request never arrived whole.
 * So a header block is acted on only once the declared body is complete
 * (the answer is held, bounded, until then: a program may answer before
 * reading its input), and a body that ends short is a 400 with the
 * session unchanged.
 */
static int cgi_truncated(cgi_io *io)
{
    char got[24], want[24];

    snprintf(got, sizeof got, "%llu", io->body_total);
    snprintf(want, sizeof want, "%lld", io->content_length);
    metrics_add(MET_BODIES_TRUNCATED, 1);
    log_event(LOG_WARN, "body_truncated", "the request body ended before CONTENT_LENGTH; "
              "the program's session directives were not applied",
              "received", got, "declared", want, (const char *)NULL);
    request_fail(io->rq, 400, "400 Bad Request: the request body was cut short; "
                              "the session was not changed\n");
    io->failed = 1;
    return -1;
}
void cgi_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
/* Handle bytes from the program's stdout.  -1 to stop. */
static int cgi_output(cgi_io *io, const char *p, size_t n)
{
    FCGX_Stream *out = io->rq->fcgi->out;
    size_t used = 0;

    if (io->deferred) {
        if (n && buf_add(&io->pending, p, n) < 0)
            return -1;
        return 0;
    }
    if (!io->sent) {
        switch (reply_feed(&io->r, p, n, &used)) {
        case REPLY_MORE:
            return 0;
        case REPLY_ERROR:
            log_msg("cgi program sent a bad reply header block (%s); 502", io->r.error);
            request_fail(io->rq, 502, "502 Bad Gateway: the program's reply was malformed\n");
            io->failed = 1;
            return -1;
        case REPLY_DONE:
            p += used;
            n -= used;
            if (!cgi_body_whole(io)) {
                if (io->body_eof)
                    return cgi_truncated(io);
                io->deferred = 1;       /* decided when the body ends */
                if (n && buf_add(&io->pending, p, n) < 0)
                    return cgi_truncated(io);   /* cannot happen: backpressure */
                return 0;
            }
            if (cgi_send_headers(io) < 0)
                return -1;
            break;
        }
    }
    if (n && FCGX_PutStr(p, (int)n, out) < 0)
        return -1;                      /* the web server went away */
    return 0;
}

/* The body is whole (or ended): act on a held header block.  -1 to stop. */
static int cgi_resolve_deferred(cgi_io *io)
{
    io->deferred = 0;
    if (!cgi_body_whole(io))
        return cgi_truncated(io);
    if (cgi_send_headers(io) < 0)
        return -1;
    if (io->pending.len &&
        FCGX_PutStr(io->pending.data, (int)io->pending.len, io->rq->fcgi->out) < 0)
        return -1;
    buf_free(&io->pending);
    return 0;
}

/*
 * Whether the web server has gone away or aborted the request: called when
 * the connection polls readable after the body ended, when nothing more is
 * due from it.  Why (issue #17): a silent program kept running until
 * --cgi-timeout after its client left (FCGI_ABORT_REQUEST, a closed
 * connection, nginx closing because its client did), holding the worker.
 * End of file, an error or an FCGI_ABORT_REQUEST record (type 2) at the
 * head of the stream means gone; anything else is left for libfcgi.
 */
static int cgi_client_gone(int fd)
{
    unsigned char h[8];
    ssize_t k = recv(fd, h, sizeof h, MSG_PEEK | MSG_DONTWAIT);

    if (k == 0)
        return 1;
    if (k < 0)
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    return k >= 2 && h[0] == FCGI_VERSION_1 && h[1] == FCGI_ABORT_REQUEST;
}

/* One turn of the pump: what it polls, and where each kind sits in pf
 * (-1 when not polled). */
typedef struct pump_set {
    struct pollfd pf[3];
    int np, out, in, ipc, gone;
} pump_set;

static int pump_add(pump_set *ps, int fd, short events)
{
    ps->pf[ps->np].fd = fd;
    ps->pf[ps->np].events = events;
    ps->pf[ps->np].revents = 0;
    return ps->np++;
}

/* What to wait for: the program's output (unless held output is at its
 * cap: backpressure), then one of its input, more body from the server,
 * or, the body done, the server going away. */
static void pump_set_build(const cgi_io *io, int ipc, int reading, int watch, pump_set *ps)
{
    ps->np = 0;
    ps->out = ps->in = ps->ipc = ps->gone = -1;
    if (io->from_child >= 0 && !(io->deferred && io->pending.len >= CGI_PENDING_MAX))
        ps->out = pump_add(ps, io->from_child, POLLIN);
    if (io->to_child >= 0 && io->in_off < io->in_len)
        ps->in = pump_add(ps, io->to_child, POLLOUT);
    else if (reading && !io->body_eof)
        ps->ipc = pump_add(ps, ipc, POLLIN);
    else if (io->body_eof && watch && ipc >= 0)
        ps->gone = pump_add(ps, ipc, POLLIN | POLLRDHUP);
}

/* The server's side polled readable after the body: when it went away,
 * kill the program at once (nobody is left to read the answer); 1 then. */
static int pump_client_gone(cgi_io *io, int ipc)
{
    if (!cgi_client_gone(ipc))
        return 0;
    proc_kill(io->pid, SIGKILL);
    io->client_gone = 1;
    metrics_add(MET_CLIENTS_GONE, 1);
    log_event(LOG_INFO, "client_gone", "the web server aborted the request or "
              "closed the connection; the program's process group was killed",
              (const char *)NULL);
    return 1;
}

/* Hand the program body bytes it can take now. */
static void pump_to_child(cgi_io *io)
{
    ssize_t w = write(io->to_child, io->inbuf + io->in_off, io->in_len - io->in_off);

    if (w > 0)
        io->in_off += (size_t)w;
    else if (w < 0 && errno != EAGAIN && errno != EINTR)
        cgi_close_fd(&io->to_child);    /* it closed its stdin: wants no more */
}

/* Run the poll loop until the program's stdout ends (and a held header
 * block is decided) or time runs out.  Returns 1 on timeout, 0 otherwise. */
int cgi_pump(cgi_io *io, int64_t deadline)
{
    char *chunk = malloc(GW_IO_CHUNK);      /* owned here, freed below */
    int ipc = io->rq->fcgi->ipcFd, timed_out = 0, watch = 1;
    pump_set ps;

    if (!chunk) {
        log_msg("out of memory in cgi mode");
        return 0;
    }
    while (io->from_child >= 0 || io->deferred) {
        int64_t now = proc_now_ms();
        int reading = io->to_child >= 0 || io->deferred;

        if (io->to_child < 0)
            io->in_off = io->in_len;    /* the program wants no more: count only */
        /* Refill from what libfcgi already buffered: no poll needed. */
        if (reading && io->in_off == io->in_len && !io->body_eof &&
            (fcgi_buffered(io->rq->fcgi->in) > 0 ||
             cgi_fcgi_more_buffered(io->rq->fcgi) != 0)) {
            cgi_read_body(io, deadline);
            if (io->to_child < 0)
                continue;               /* counted; look at libfcgi's buffer again */
        }
        if (io->to_child >= 0 && io->in_off == io->in_len && io->body_eof)
            cgi_close_fd(&io->to_child);    /* the program sees end of input */
        if (io->deferred && io->body_eof) {
            if (cgi_resolve_deferred(io) < 0)
                break;
            continue;
        }
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        pump_set_build(io, ipc, reading, watch, &ps);
        if (ps.np == 0)
            break;                      /* nothing left to wait for */
        if (poll(ps.pf, (nfds_t)ps.np, (int)(deadline - now)) < 0) {
            if (errno == EINTR)
                continue;
            log_msg("poll: %s", strerror(errno));
            break;
        }
        if (ps.gone >= 0 && ps.pf[ps.gone].revents) {
            if (pump_client_gone(io, ipc))
                break;
            watch = 0;                  /* data of another kind: leave it to libfcgi */
        }
        if (ps.in >= 0 && ps.pf[ps.in].revents)
            pump_to_child(io);
        if (ps.ipc >= 0 && ps.pf[ps.ipc].revents)
            cgi_read_body(io, deadline);
        if (ps.out >= 0 && ps.pf[ps.out].revents) {
            ssize_t n = read(io->from_child, chunk, GW_IO_CHUNK);
            if (n > 0) {
                if (cgi_output(io, chunk, (size_t)n) < 0)
                    break;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                cgi_close_fd(&io->from_child);
        }
    }
    free(chunk);
    return timed_out;
}
