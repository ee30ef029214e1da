/*
 * redis_conn.c - the Redis backend's connection: the URI, connecting,
 * reconnecting after errors and running commands.  It lives apart from
 * backend_redis.c (what the store keeps in Redis and how it writes) because
 * the connection is where authentication, Sentinel discovery and failover
 * go: those change how a handle finds and talks to its server, never what
 * it stores, and the store operations should not have to know about them.
 *
 * Store URIs:
 *     redis://HOST[:PORT][/DB][?prefix=NAME&timeout_ms=N]
 *     redis+unix:/path/to/socket[?db=N&prefix=NAME&timeout_ms=N]
 * Each store handle keeps one connection, opened by open() so that a
 * missing server is reported at once, and reopened by the next lock() after
 * any error: a hiredis context is unusable after an I/O error, and
 * reconnecting in lock() means a gateway worker or a long-lived app
 * survives a Redis restart without reopening its store.  Connecting and
 * every command are bounded by timeout_ms (default 1000), so a hung server
 * becomes an error, never a hung request.
 */
#include "redis_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RD_DEFAULT_PORT       6379
#define RD_DEFAULT_TIMEOUT_MS 1000
#define RD_MAX_TIMEOUT_MS     600000
#define RD_MAX_DB             1000000
#define RD_MAX_PREFIX         128

/* ------------------------------------------------------------- the URI */

/* Parse a whole decimal number in [lo, hi] from s[0..n). */
static int parse_num(const char *s, size_t n, long lo, long hi, long *out)
{
    char buf[24];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[0] < '0' || buf[0] > '9')
        return -1;              /* strtol would take "+5", " 5", "-5" */
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* The query string: prefix=, timeout_ms=, and (unix sockets) db=. */
static sg_status parse_query(redis_be *b, const char *q, int allow_db,
                             sg_error *err)
{
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq)
            return sgi_err(err, SG_EINVAL, 0, "store %s: bad query parameter "
                           "'%.*s' (use NAME=VALUE)", b->uri, (int)n, q);
        size_t kn = (size_t)(eq - q), vn = n - kn - 1;
        const char *v = eq + 1;
        long num;
        if (kn == 6 && memcmp(q, "prefix", 6) == 0) {
            /* Printable, no spaces: the prefix shows up in redis-cli
             * sessions of admins and in error messages. */
            if (vn == 0 || vn > RD_MAX_PREFIX)
                return sgi_err(err, SG_EINVAL, 0, "store %s: prefix must be "
                               "1..%d bytes", b->uri, RD_MAX_PREFIX);
            for (size_t i = 0; i < vn; i++)
                if (v[i] <= ' ' || v[i] >= 0x7f)
                    return sgi_err(err, SG_EINVAL, 0, "store %s: prefix may "
                                   "hold only printable characters without "
                                   "spaces", b->uri);
            free(b->prefix);
            if (!(b->prefix = dupn(v, vn)))
                return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                               b->uri);
        } else if (kn == 10 && memcmp(q, "timeout_ms", 10) == 0) {
            if (parse_num(v, vn, 1, RD_MAX_TIMEOUT_MS, &num) < 0)
                return sgi_err(err, SG_EINVAL, 0, "store %s: timeout_ms must "
                               "be a number of milliseconds, 1..%d", b->uri,
                               RD_MAX_TIMEOUT_MS);
            b->timeout_ms = (int)num;
        } else if (allow_db && kn == 2 && memcmp(q, "db", 2) == 0) {
            if (parse_num(v, vn, 0, RD_MAX_DB, &num) < 0)
                return sgi_err(err, SG_EINVAL, 0, "store %s: db must be a "
                               "database number, 0..%d", b->uri, RD_MAX_DB);
            b->db = num;
        } else {
            return sgi_err(err, SG_EINVAL, 0, "store %s: unknown query "
                           "parameter '%.*s' (known: %sprefix, timeout_ms)",
                           b->uri, (int)kn, q, allow_db ? "db, " : "");
        }
        q = amp ? amp + 1 : NULL;
    }
    return SG_OK;
}

/* redis://HOST[:PORT][/DB][?...] or redis+unix:/PATH[?...]. */
sg_status sgi_redis_parse_uri(redis_be *b, sg_error *err)
{
    const char *u = b->uri;
    b->port = RD_DEFAULT_PORT;
    b->timeout_ms = RD_DEFAULT_TIMEOUT_MS;
    if (strncmp(u, "redis+unix:", 11) == 0) {
        const char *p = u + 11;
        if (strncmp(p, "//", 2) == 0)
            p += 2;             /* redis+unix:///path is the same thing */
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/')
            return sgi_err(err, SG_EINVAL, 0, "store %s: needs an absolute "
                           "socket path (redis+unix:/path/to/redis.sock)", u);
        if (!(b->sock = dupn(p, n)))
            return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", u);
        return parse_query(b, q ? q + 1 : NULL, 1, err);
    }
    if (strncmp(u, "redis://", 8) != 0)
        return sgi_err(err, SG_EINVAL, 0, "store %s: not a Redis URI (use "
                       "redis://HOST:PORT/DB or redis+unix:/SOCKET)", u);
    const char *p = u + 8;
    const char *q = strchr(p, '?');
    const char *end = q ? q : p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hend = slash ? slash : end;
    const char *hs = p, *he;
    const char *colon;
    /* Checked first: a "user:password@" part would read as a bad port. */
    if (memchr(p, '@', (size_t)(hend - p)))
        return sgi_err(err, SG_EINVAL, 0, "store %s: passwords in the URI "
                       "are not supported (use a unix socket with "
                       "permissions, or a trusted network)", u);
    if (*p == '[') {            /* [IPv6]:PORT */
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (!rb)
            return sgi_err(err, SG_EINVAL, 0, "store %s: unclosed '[' in "
                           "the host", u);
        hs = p + 1;
        he = rb;
        colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != hend)
            return sgi_err(err, SG_EINVAL, 0, "store %s: junk after ']'", u);
    } else {
        colon = memchr(p, ':', (size_t)(hend - p));
        he = colon ? colon : hend;
    }
    if (he == hs)
        return sgi_err(err, SG_EINVAL, 0, "store %s: no host (use "
                       "redis://HOST:PORT/DB)", u);
    if (!(b->host = dupn(hs, (size_t)(he - hs))))
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", u);
    long num;
    if (colon) {
        if (parse_num(colon + 1, (size_t)(hend - colon - 1), 1, 65535, &num) < 0)
            return sgi_err(err, SG_EINVAL, 0, "store %s: port must be 1..65535",
                           u);
        b->port = (int)num;
    }
    if (slash && slash + 1 < end) {
        if (parse_num(slash + 1, (size_t)(end - slash - 1), 0, RD_MAX_DB,
                      &num) < 0)
            return sgi_err(err, SG_EINVAL, 0, "store %s: database must be a "
                           "number, 0..%d", u, RD_MAX_DB);
        b->db = num;
    }
    return parse_query(b, q ? q + 1 : NULL, 0, err);
}

/* ---------------------------------------------------------- connection */

/* redisvCommand without SIGPIPE.  hiredis writes with write(2), and a
 * write to a connection the server closed (Redis killed or restarted)
 * raises SIGPIPE, whose default action kills the whole process: a gateway
 * worker or an app must get an error instead.  A library must not change
 * the process's signal dispositions, so block SIGPIPE in this thread for
 * the call and swallow one we caused (not one already pending before). */
static redisReply *quiet_command(redisContext *c, const char *fmt, va_list ap)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    redisReply *r = redisvCommand(c, fmt, ap);
    if (!was_pending) {
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = { 0, 0 };
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

static redisReply *quiet(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = quiet_command(c, fmt, ap);
    va_end(ap);
    return r;
}

void sgi_redis_drop(redis_be *b)
{
    if (b->c)
        redisFree(b->c);
    b->c = NULL;
    b->broken = 0;
}

/* Record a failed command: an I/O error (NULL reply) leaves the context
 * unusable, so the next lock() reconnects. */
sg_status sgi_redis_fail(redis_be *b, redisReply *r, const char *what,
                         sg_error *err)
{
    sg_status rc;
    if (!r) {
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: Redis %s failed: %s (is "
                     "redis-server running and reachable?)", b->uri, what,
                     b->c && b->c->errstr[0] ? b->c->errstr : "connection lost");
        b->broken = 1;
    } else {
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: Redis %s failed: %s",
                     b->uri, what, r->type == REDIS_REPLY_ERROR && r->str
                     ? r->str : "unexpected reply");
        freeReplyObject(r);
    }
    return rc;
}

/* Connect (if not connected, or after an error) and select the database. */
sg_status sgi_redis_up(redis_be *b, sg_error *err)
{
    /* A connection inherited across fork() would interleave two
     * processes' commands and replies on one socket: the child opens its
     * own (redisFree only closes the child's copy of the descriptor). */
    if (b->c && !b->broken && !b->c->err && b->pid == getpid())
        return SG_OK;
    sgi_redis_drop(b);
    struct timeval tv = { b->timeout_ms / 1000, (b->timeout_ms % 1000) * 1000 };
    redisContext *c = b->sock ? redisConnectUnixWithTimeout(b->sock, tv)
                              : redisConnectWithTimeout(b->host, b->port, tv);
    if (!c)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    if (c->err) {
        /* sys_errno stays 0: an ENOENT here is a missing socket of a
         * server that is down, not a missing store, and callers treat
         * ENOENT as "no such store". */
        sg_status rc = sgi_err(err, SG_ESTORE, 0, "store %s: cannot connect "
                               "to Redis: %s (start redis-server or fix the "
                               "URI)", b->uri, c->errstr);
        redisFree(c);
        return rc;
    }
    /* Close-on-exec, like every descriptor of the GDBM backend: a program
     * the app runs (os.execute, a CGI) must not inherit the connection,
     * which would bypass the socket's file permissions and could write
     * into our command stream.  hiredis 0.14 has no option for it. */
    int fdflags = fcntl(c->fd, F_GETFD);
    if (fdflags < 0 || fcntl(c->fd, F_SETFD, fdflags | FD_CLOEXEC) < 0) {
        sg_status rc = sgi_err(err, SG_ESTORE, errno, "store %s: cannot set "
                               "close-on-exec on the Redis connection: %s",
                               b->uri, strerror(errno));
        redisFree(c);
        return rc;
    }
    /* Commands get the same bound as connecting: a server that stops
     * answering becomes an error, never a hung request. */
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        sg_status rc = sgi_err(err, SG_ESTORE, 0, "store %s: cannot set the "
                               "Redis timeout: %s", b->uri, c->errstr);
        redisFree(c);
        return rc;
    }
    b->c = c;
    b->pid = getpid();
    if (b->db != 0) {
        redisReply *r = quiet(c, "SELECT %ld", b->db);
        if (!r || r->type != REDIS_REPLY_STATUS) {
            sg_status rc = sgi_redis_fail(b, r, "SELECT", err);
            sgi_redis_drop(b);
            return rc;
        }
        freeReplyObject(r);
    }
    /* The run_id tells a lease taken before a restart of the server from
     * a live one (r_lock).  A server that hides it (INFO renamed away, a
     * Redis look-alike) only loses that: leases then just run out. */
    b->run_id[0] = '\0';
    redisReply *r = quiet(c, "INFO server");
    if (!r) {
        sg_status rc = sgi_redis_fail(b, r, "INFO", err);
        sgi_redis_drop(b);
        return rc;
    }
    const char *id = r->type == REDIS_REPLY_STRING ? strstr(r->str, "run_id:")
                                                   : NULL;
    if (id && strspn(id + 7, "0123456789abcdef") == RD_RUNID_LEN) {
        memcpy(b->run_id, id + 7, RD_RUNID_LEN);
        b->run_id[RD_RUNID_LEN] = '\0';
    }
    freeReplyObject(r);
    return SG_OK;
}

/* Run a command.  New: the reply, or NULL with err filled.  With retry,
 * an I/O error reconnects and runs the command once more: a kept
 * connection finds out only by using it that the server restarted since,
 * and a read is safe to repeat, so a restart costs readers nothing.
 * Writes are never repeated (a lost reply may hide a done write). */
static redisReply *cmd_v(redis_be *b, const char *what, sg_error *err,
                         int retry, const char *fmt, va_list ap)
{
    if (!b->c || b->broken) {
        b->last = sgi_err(err, SG_ESTORE, 0, "store %s: not connected to "
                          "Redis (a previous error closed the connection)",
                          b->uri);
        return NULL;
    }
    va_list again;
    va_copy(again, ap);
    redisReply *r = quiet_command(b->c, fmt, again);
    va_end(again);
    if (!r && retry) {
        b->broken = 1;
        if (sgi_redis_up(b, NULL) == SG_OK) {
            va_copy(again, ap);
            r = quiet_command(b->c, fmt, again);
            va_end(again);
        }
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        b->last = sgi_redis_fail(b, r, what, err);
        return NULL;
    }
    return r;
}

redisReply *sgi_redis_cmd(redis_be *b, const char *what, sg_error *err,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = cmd_v(b, what, err, 0, fmt, ap);
    va_end(ap);
    return r;
}

/* cmd for reads: repeated once after a reconnect. */
redisReply *sgi_redis_read(redis_be *b, const char *what, sg_error *err,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = cmd_v(b, what, err, 1, fmt, ap);
    va_end(ap);
    return r;
}
