/*
 * request.c - one worker's accept loop and the per-request context.
 *
 * Each worker opens the store once and keeps the handle (libcore reopens
 * it internally when another process has written): opening GDBM per
 * request costs ~50x a kept handle (DESIGN 4).  Each accepted request gets
 * one gw_request on the stack that carries everything a mode needs; there
 * are no per-request globals.  The role comes from the protocol (the
 * BEGIN_REQUEST record) and from FCGI_ROLE params: if either says
 * AUTHORIZER, it is the authorizer role (Apache sends FCGI_ROLE twice).
 * The session cookie is read from every HTTP_COOKIE param: nginx sends one
 * per Cookie header, so every param is walked here, by its length (a NUL
 * inside a value hides nothing: issue #17).  The records themselves are
 * read by fcgi.c, not libfcgi.
 */
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "gateway.h"

static volatile sig_atomic_t worker_busy;

/* Why: an idle worker sits in accept() inside libfcgi and can leave at
 * once; a busy one finishes its request (the loop checks prefork_stop). */
static void on_worker_term(int sig)
{
    (void)sig;
    if (!worker_busy)
        _exit(0);
    prefork_stop = 1;
}

/* Borrowed: the first value of param name, or NULL. */
const char *request_param(const gw_request *rq, const char *name)
{
    size_t n = strlen(name);
    char **e;

    for (e = rq->envp; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static sg_store *store_handle(const gw_config *cfg, sg_store **st)
{
    sg_error err;

    if (*st)
        return *st;
    sg_error_clear(&err);
    if (sg_store_open(cfg->store_uri, &cfg->store_opt, st, &err) != SG_OK) {
        log_store_error(&err);
        *st = NULL;
    }
    return *st;
}

/* The request path without its query string (which may carry tokens),
 * cut to size.  Returns out. */
static const char *request_path(const gw_request *rq, char *out, size_t size)
{
    const char *u = rq->request_uri;
    size_t n;

    if (!u || !*u)
        u = request_param(rq, "SCRIPT_NAME");
    if (!u || !*u)
        return strcpy(out, "-");
    n = strcspn(u, "?#");
    if (n >= size)
        n = size - 1;
    memcpy(out, u, n);
    out[n] = '\0';
    return out;
}

/* Look the cookie up and load the session; see gateway.h. */
int request_load_session(gw_request *rq)
{
    const char *vals[GW_MAX_COOKIE_PARAMS + 1];
    size_t lens[GW_MAX_COOKIE_PARAMS + 1], n = 0, i;
    char path[256], h[LOG_HASH_LEN + 1];
    sg_error err;
    sg_status rc;

    for (i = 0; i < rq->nparams && n <= GW_MAX_COOKIE_PARAMS; i++)
        if (rq->params[i].nlen == 11 && memcmp(rq->params[i].name, "HTTP_COOKIE", 11) == 0) {
            vals[n] = rq->params[i].value;
            lens[n] = rq->params[i].vlen;
            n++;
        }
    rq->cookie = cookie_find(vals, lens, n, rq->cfg->cookie_name, rq->cookie_id);
    /* Why rate-limited: a stream of forged cookies must not flood the log
     * (or the disk); the first of each window is logged, the rest counted. */
    if (rq->cookie == COOKIE_BAD)
        metrics_add(MET_COOKIES_MALFORMED, 1);
    if (rq->cookie == COOKIE_BAD && log_limit(LOG_RL_MALFORMED))
        log_event(LOG_WARN, "cookie_malformed",
                  "ignoring a malformed, oversized or ambiguous session cookie",
                  "cookie", rq->cfg->cookie_name, "path", request_path(rq, path, sizeof path),
                  (const char *)NULL);
    if (rq->cookie != COOKIE_ONE)
        return 0;
    if (!rq->store)
        return -1;          /* store_handle() logged why, once */
    sg_error_clear(&err);
    rc = sg_session_get(rq->store, rq->cookie_id, SG_GET_DAMAGED_ABSENT,
                        &rq->session, &err);
    switch (rc) {
    case SG_OK:
        return 0;
    case SG_ENOTFOUND:
        if (err.sys_errno == EBADMSG) {
            /* Why (issue #17): a damaged record is a session that does not
             * exist: the request goes on without it and the cookie is
             * expired, instead of a 503 on every request of that browser.
             * Logged by its keyed hash: the raw id is a credential. */
            rq->session = NULL;
            metrics_add(MET_RECORDS_DAMAGED, 1);
            log_event(LOG_WARN, "record_damaged", "the session's record is damaged; "
                      "treated as no session (run sessgatectl check --repair)",
                      "sid", log_idhash(rq->cookie_id, h), (const char *)NULL);
            return 0;
        }
        /* fall through */
    case SG_EINVAL:
        rq->session = NULL;
        metrics_add(MET_COOKIES_UNKNOWN, 1);
        if (log_limit(LOG_RL_UNKNOWN))
            log_event(LOG_INFO, "cookie_unknown", "the session cookie names no session",
                      "sid", log_idhash(rq->cookie_id, h),
                      "path", request_path(rq, path, sizeof path), (const char *)NULL);
        return 0;
    case SG_EEXPIRED:
        rq->session = NULL;
        metrics_add(MET_SESSIONS_EXPIRED, 1);
        log_event(LOG_DEBUG, "session_expired", NULL,
                  "sid", log_idhash(rq->cookie_id, h), (const char *)NULL);
        return 0;
    default:
        rq->session = NULL;
        log_store_error(&err);
        return -1;
    }
}

/* Create an anonymous session for this request; see gateway.h. */
int request_create_session(gw_request *rq)
{
    sg_error err;

    if (!rq->store)
        return -1;          /* store_handle() logged why, once */
    sg_error_clear(&err);
    if (sg_session_create(rq->store, NULL, NULL, 0, 0, &rq->session, &err) != SG_OK) {
        log_store_error(&err);
        return -1;
    }
    rq->created = 1;
    metrics_add(MET_SESSIONS_CREATED, 1);
    return 0;
}

/* Send the header block, the blank line and body (may be NULL). */
int request_send(gw_request *rq, const char *body)
{
    FCGX_Stream *out = rq->fcgi->out;

    if (rq->head.failed) {
        log_msg("response header block over its cap; sending 500");
        buf_reset(&rq->head);
        respond_status(&rq->head, 500);
        body = "500 Internal Server Error\n";
        rq->gw_failed = 1;
    }
    rq->status = 200;
    if (rq->head.data && strncmp(rq->head.data, "Status: ", 8) == 0)
        rq->status = atoi(rq->head.data + 8);
    if (FCGX_PutStr(rq->head.data ? rq->head.data : "", (int)rq->head.len, out) < 0 ||
        FCGX_PutS("\r\n", out) < 0 ||
        (body && FCGX_PutS(body, out) < 0))
        return -1;
    return 0;
}

/* Answer with a small plain-text error page. */
void request_fail(gw_request *rq, int status, const char *text)
{
    buf_reset(&rq->head);
    respond_status(&rq->head, status);
    respond_header(&rq->head, "Content-Type", "text/plain; charset=us-ascii");
    rq->gw_failed = 1;
    request_send(rq, text);
}

static gw_role request_role(const FCGX_Request *fr)
{
    char **e;

    if (fr->role == FCGI_AUTHORIZER)
        return ROLE_AUTHORIZER;
    for (e = fr->envp; e && *e; e++)
        if (strcmp(*e, "FCGI_ROLE=AUTHORIZER") == 0)
            return ROLE_AUTHORIZER;
    return ROLE_RESPONDER;
}

static const struct {
    gw_mode mode;
    void  (*handle)(gw_request *rq);
} modes[] = {
    { MODE_AUTH, mode_auth_handle },
    { MODE_CGI,  mode_cgi_handle },
};

/* See gateway.h. */
void log_inject_truncated(const gw_request *rq, const char *data_json)
{
    char h[LOG_HASH_LEN + 1], bytes[24], cap[24];

    snprintf(bytes, sizeof bytes, "%zu", data_json ? strlen(data_json) : 0);
    metrics_add(MET_INJECT_TRUNCATED, 1);
    snprintf(cap, sizeof cap, "%zu", rq->cfg->inject.max);
    log_event(LOG_INFO, "inject_truncated", "session data over --inject-max: SESSION_DATA cut",
              "sid", log_idhash(sg_session_id(rq->session), h), "bytes", bytes,
              "cap", cap, (const char *)NULL);
}

/* What became of a request, for the access log and the metrics. */
const char *request_outcome(const gw_request *rq)
{
    if (rq->gw_failed || !rq->status)
        return rq->status == 503 ? "unavailable" : rq->status == 409 ? "conflict"
             : rq->status >= 500 || !rq->status ? "error" : "denied";
    if (rq->created)
        return "created";
    if (rq->cfg->mode == MODE_AUTH && rq->status != 200)
        return "denied";
    return "allowed";
}

static void access_line(const gw_request *rq, int64_t t0_us)
{
    char path[512], status[8], secs[32], h[LOG_HASH_LEN + 1];
    const char *method = request_param(rq, "REQUEST_METHOD");
    const char *user = rq->session ? sg_session_user(rq->session) : NULL;
    char *enc = user && *user ? inject_user(user) : NULL;      /* owned here */

    snprintf(status, sizeof status, "%d", rq->status);
    snprintf(secs, sizeof secs, "%.6f", (double)(proc_now_us() - t0_us) / 1e6);
    log_event(LOG_INFO, "access", NULL,
              "mode", rq->cfg->mode == MODE_CGI ? "cgi" : "auth",
              "method", method ? method : "-",
              "path", request_path(rq, path, sizeof path),
              "status", status, "outcome", request_outcome(rq),
              "user", enc ? enc : "-",
              "seconds", secs,
              "sid", log_idhash(rq->session ? sg_session_id(rq->session)
                                : rq->cookie == COOKIE_ONE ? rq->cookie_id : NULL, h),
              (const char *)NULL);
    free(enc);
}

static int request_handle(const gw_config *cfg, sg_store *st, gw_fcgi *c)
{
    FCGX_Request *fr = fcgi_request(c);
    gw_request rq;
    const char *https;
    size_t i;
    int64_t t0 = proc_now_us();
    sg_lock_counters l0, l1;

    memset(&rq, 0, sizeof rq);
    rq.cfg = cfg;
    rq.store = st;
    rq.fcgi = fr;
    rq.envp = fr->envp;
    rq.params = fcgi_params(c, &rq.nparams);
    rq.role = request_role(fr);
    https = request_param(&rq, "HTTPS");
    rq.https = https && strcasecmp(https, "on") == 0;
    rq.request_uri = request_param(&rq, "REQUEST_URI");
    buf_init(&rq.head, GW_MAX_REPLY_HEADER + 4 * GW_MAX_HEADER_VALUE);
    sg_store_lock_counters(st, &l0);
    for (i = 0; i < sizeof modes / sizeof *modes; i++)
        if (modes[i].mode == (gw_mode)cfg->mode)
            modes[i].handle(&rq);
    sg_store_lock_counters(st, &l1);
    if (l1.acquired != l0.acquired || l1.timeouts != l0.timeouts)
        metrics_lock_wait((int64_t)(l1.wait_us - l0.wait_us));
    if (l1.timeouts != l0.timeouts)
        metrics_add(MET_LOCK_TIMEOUTS, l1.timeouts - l0.timeouts);
    {
        int outcome = metrics_outcome(request_outcome(&rq));

        if (rq.gw_failed && rq.status == 503)
            metrics_add(MET_STORE_ERRORS, 1);
        metrics_request(cfg->mode == MODE_CGI ? 1 : 0, outcome, proc_now_us() - t0);
    }
    if (cfg->access_log)
        access_line(&rq, t0);
    sg_session_free(rq.session);
    buf_free(&rq.head);
    return rq.abort;
}

/*
 * Per-connection read deadlines (issue #17).  A client that sent a
 * BEGIN record and two bytes must not hold its worker for as long as it
 * likes (with the default --workers 1, the whole gateway).  So:
 *  - SO_RCVTIMEO/SO_SNDTIMEO = --read-idle-timeout: a read or write that
 *    makes no progress for that long fails, and the connection is dropped
 *    (this also ends idle keep-alive connections);
 *  - an ITIMER_REAL of --read-timeout around fcgi_accept: the request's
 *    BEGIN and PARAMS must arrive within that in all (a client dripping a
 *    byte a second is cut off); SIGALRM without SA_RESTART makes the read
 *    fail with EINTR, and the connection is dropped.
 */
static void on_read_alarm(int sig)
{
    (void)sig;                          /* only interrupts a blocking read */
}

static void request_set_timeouts(const gw_config *cfg, int fd)
{
    struct timeval tv = { cfg->read_idle_timeout, 0 };

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void request_alarm(long seconds)
{
    struct itimerval it;

    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = seconds;
    setitimer(ITIMER_REAL, &it, NULL);
}

/*
 * Why epoll with EPOLLEXCLUSIVE: every worker waits on the same listening
 * socket, and with poll() each new connection woke all of them; all but
 * one then found accept() empty (EAGAIN) and went back to sleep, N wakeups
 * and N-1 wasted accept()s per connection with --workers N.  nginx opens a
 * new FastCGI connection per request unless fastcgi_keep_conn is on, so
 * that was per request.  An exclusive epoll wait is woken alone.  The
 * socket stays non-blocking (two workers can still race for one
 * connection, and the master polls it to answer 503 when all are busy).
 * Where the kernel refuses EPOLLEXCLUSIVE (before Linux 4.5), this returns
 * -1 and the loop polls as before.
 */
static int request_accept_setup(int listen_fd)
{
    struct epoll_event ev;
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (epfd < 0)
        return -1;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        close(epfd);
        return -1;
    }
    return epfd;
}

/*
 * What libfcgi's own accept did beside accepting, kept since the workers
 * accept connections themselves (issue #17; lost in between): a TCP
 * connection gets TCP_NODELAY (a reply is a few small writes; Nagle would
 * hold them back), and with FCGI_WEB_SERVER_ADDRS set (a comma-separated
 * list of addresses) a TCP connection from any other address is closed
 * unread.  libfcgi checked IPv4 peers only; an IPv6 peer must be listed
 * too (an IPv4 peer on an IPv6 socket, ::ffff:A.B.C.D, matches A.B.C.D).
 * Unix sockets are left to their file mode.
 *
 * Nothing of it is asked per connection that can be known before: the
 * list was read and parsed at start-up (cfg->peers), the listening
 * socket's family is looked up once per worker, and TCP_NODELAY is set on
 * the listening socket once, which Linux hands to every connection it
 * accepts.  A connection costs one getpeername(), and only with a list.
 */
static int listen_inet;         /* the listening socket is TCP (per worker) */

/* Once per worker, on the listening socket: see above. */
static void request_listen_setup(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int one = 1;

    listen_inet = getsockname(listen_fd, (struct sockaddr *)&ss, &len) == 0 &&
                  (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    if (listen_inet)
        setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Whether the peer of the new connection fd may talk to us: 1 keep it,
 * 0 not. */
static int request_peer_ok(const gw_config *cfg, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const unsigned char *a;
    char addr[INET6_ADDRSTRLEN];
    int family;
    size_t i;

    if (!listen_inet || !cfg->npeers)
        return 1;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    family = ss.ss_family;
    if (family == AF_INET) {
        a = (const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr;
    } else if (family == AF_INET6) {
        a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
            family = AF_INET;
            a += 12;
        }
    } else {
        return 0;
    }
    for (i = 0; i < cfg->npeers; i++)
        if (cfg->peers[i].family == family &&
            memcmp(cfg->peers[i].a, a, family == AF_INET ? 4 : 16) == 0)
            return 1;
    if (log_limit(LOG_RL_MALFORMED) && inet_ntop(family, a, addr, sizeof addr))
        log_event(LOG_WARN, "peer_refused", "a connection from an address not in "
                  "FCGI_WEB_SERVER_ADDRS was closed", "peer", addr, (const char *)NULL);
    return 0;
}

/* The next connection on listen_fd (non-blocking: see above), waiting in
 * epfd (or poll() when epfd is -1), or -1 when told to stop or the socket
 * is broken (errno). */
static int request_accept(const gw_config *cfg, int epfd, int listen_fd)
{
    for (;;) {
        int fd, n;

        if (prefork_stop)
            return -1;
        if (epfd >= 0) {
            struct epoll_event ev;

            n = epoll_wait(epfd, &ev, 1, -1);
        } else {
            struct pollfd pf = { listen_fd, POLLIN, 0 };

            n = poll(&pf, 1, -1);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED || errno == EPROTO)
                continue;               /* another worker got it, or it left */
            return -1;
        }
        if (!request_peer_ok(cfg, fd)) {
            close(fd);
            continue;
        }
        request_set_timeouts(cfg, fd);
        return fd;
    }
}

/* Run one worker's accept loop; see gateway.h. */
int request_loop(const gw_config *cfg, int listen_fd)
{
    gw_fcgi *c;
    FCGX_Request *fr;
    sg_store *st = NULL;
    struct sigaction sa;
    int errors = 0, fl, epfd;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_worker_term;     /* no SA_RESTART: accept() returns */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_read_alarm;      /* no SA_RESTART: read() returns */
    sigaction(SIGALRM, &sa, NULL);
    /* A web server that hangs up must not kill the worker: writes fail
     * with EPIPE instead.  CGI children get SIG_DFL back before exec. */
    signal(SIGPIPE, SIG_IGN);
    c = fcgi_new();
    if (!c) {
        log_msg("cannot set up a FastCGI connection: out of memory");
        return 1;
    }
    fr = fcgi_request(c);
    fl = fcntl(listen_fd, F_GETFL);
    if (fl >= 0)
        fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
    epfd = request_accept_setup(listen_fd);
    request_listen_setup(listen_fd);
    store_handle(cfg, &st);
    while (!prefork_stop) {
        int rc, fd;

        if (fcgi_fd(c) < 0) {
            worker_busy = 0;
            prefork_mark_busy(0);
            fd = request_accept(cfg, epfd, listen_fd);
            if (fd < 0) {
                if (prefork_stop)
                    break;
                /* Why: a listening socket that keeps failing will not heal. */
                if (++errors > 100) {
                    log_msg("accept keeps failing (%s); worker exits", strerror(errno));
                    break;
                }
                {
                    struct timespec ts = { 0, 10000000L };
                    nanosleep(&ts, NULL);
                }
                continue;
            }
            errors = 0;
            prefork_mark_busy(1);
            fcgi_attach(c, fd);
        }
        worker_busy = 0;                /* SIGTERM now: leave at once */
        if (!fcgi_pending(c)) {
            /* A peer that closes between requests (the normal end of a
             * kept connection) or stays idle is let go quietly. */
            struct pollfd pf = { fcgi_fd(c), POLLIN, 0 };
            char ch;

            if (poll(&pf, 1, (int)cfg->read_idle_timeout * 1000) <= 0 ||
                recv(fcgi_fd(c), &ch, 1, MSG_PEEK) <= 0) {
                fcgi_close(c);
                continue;
            }
        }
        request_alarm(cfg->read_timeout);
        rc = fcgi_accept(c);
        request_alarm(0);
        /* A request whose head did not arrive whole is never answered: a
         * client stalled mid-PARAMS must not be served with half its
         * params.  fcgi_accept closed the connection. */
        if (rc < 0) {
            if (prefork_stop)
                break;
            if (rc == FCGI_BROKEN) {
                metrics_add(MET_CONNECTIONS_DROPPED, 1);
                log_event(LOG_INFO, "connection_dropped", "a FastCGI connection timed out, "
                          "broke or spoke malformed FastCGI before its request was read",
                          "reason", fcgi_why(c), (const char *)NULL);
            }
            continue;
        }
        worker_busy = 1;
        if (request_handle(cfg, store_handle(cfg, &st), c)) {
            /* Why: FCGI_END_REQUEST would make the web server end the
             * reply as complete (a normal-looking 200 with half a body).
             * Send what we have, then hang up: nginx logs "upstream
             * prematurely closed" and cuts the client off. */
            FCGX_FFlush(fr->out);
            if (fr->ipcFd >= 0)
                shutdown(fr->ipcFd, SHUT_RDWR);
            fr->keepConnection = 0;
        } else if (fr->keepConnection && fr->in && !FCGX_HasSeenEOF(fr->in)) {
            /* Why (issue #17): on a kept connection (FCGI_KEEP_CONN) the
             * rest of a body the mode never read (auth mode never reads
             * one) sits in front of the next request.  So the rest of
             * FCGI_STDIN is read and discarded before END_REQUEST, bounded
             * by --read-timeout; a body that does not end in time (an
             * authorizer's, which Apache never ends) closes the connection
             * cleanly after the answer instead. */
            static char sink[8192];

            FCGX_FFlush(fr->out);       /* the answer goes out first */
            request_alarm(cfg->read_timeout);
            while (FCGX_GetStr(sink, (int)sizeof sink, fr->in) > 0)
                ;
            request_alarm(0);
            if (FCGX_GetError(fr->in) != 0 || !FCGX_HasSeenEOF(fr->in))
                fr->keepConnection = 0;
        }
        fcgi_finish(c);
        log_tick();
    }
    log_flush_limits();
    fcgi_free(c);
    sg_store_close(st);
    if (epfd >= 0)
        close(epfd);
    return errors > 100 ? 1 : 0;
}
