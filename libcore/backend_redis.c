/*
 * backend_redis.c - the Redis backend: session records in a Redis server,
 * for deployments whose gateways and apps run on several hosts.
 *
 * Store URIs:
 *     redis://HOST[:PORT][/DB][?prefix=NAME&timeout_ms=N]
 *     redis+unix:/path/to/socket[?db=N&prefix=NAME&timeout_ms=N]
 * Every key of the store lives under the prefix (default "sessgate:"), so
 * several stores can share one Redis database.  Besides the keys store.c
 * writes (36-char session ids, "uidx:NAME" per-user sets, old "user:NAME"
 * indexes) the backend keeps two
 * of its own, PREFIX "lock" (the lease lock) and PREFIX "writes" (a write
 * counter for stats), which keys() hides.
 *
 * Each store handle keeps one connection, opened by open() so that a
 * missing server is reported at once, and reopened by the next lock() after
 * any error: a hiredis context is unusable after an I/O error, and
 * reconnecting in lock() means a gateway worker or a long-lived app
 * survives a Redis restart without reopening its store.  Connecting and
 * every command are bounded by timeout_ms (default 1000), so a hung server
 * becomes an error, never a hung request.
 *
 * What differs from GDBM: sessions expire inside Redis (PEXPIREAT at the
 * end of their life, so no purge is needed), the exclusive lock is a lease
 * in Redis rather than flock(), and durability is whatever the server's
 * persistence (RDB / AOF, replication) gives: a write acknowledged by Redis
 * is in its memory, and survives the death of this process, but not
 * necessarily a crash of the Redis server.
 */
#include "internal.h"

#include <hiredis.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RD_DEFAULT_PORT       6379
#define RD_DEFAULT_PREFIX     "sessgate:"
#define RD_DEFAULT_TIMEOUT_MS 1000
#define RD_MAX_TIMEOUT_MS     600000
#define RD_MAX_DB             1000000
#define RD_MAX_PREFIX         128
/* A holder killed while it holds the lock frees it after this long.  Every
 * write under the lock renews the lease, so only a holder idle for this
 * long (e.g. user code in update() stuck in a slow call) can lose it, and
 * then its writes fail (see WRITE_SCRIPT) instead of clobbering. */
#define RD_LEASE_MS           30000
#define RD_SCAN_COUNT         "1000"
#define RD_TOKEN_BYTES        16
/* Length of a Redis run_id (INFO server), 40 hex digits, new at every
 * start of the server: lease tokens begin with it (see r_lock). */
#define RD_RUNID_LEN          40

typedef struct redis_be {
    char *uri;                /* Owned: the URI as given, for messages */
    char *host;               /* Owned: TCP host, or NULL */
    int port;
    char *sock;               /* Owned: unix socket path, or NULL */
    long db;
    int timeout_ms;
    char *prefix;             /* Owned */
    char *lock_key;           /* Owned: PREFIX "lock" */
    char *writes_key;         /* Owned: PREFIX "writes" */
    redisContext *c;          /* Owned: the connection, NULL when down */
    int broken;               /* an error happened: reconnect at lock() */
    sg_status last;           /* status of the last failed cmd() (err may
                               * be NULL, or hold an earlier error) */
    int held;                 /* SGI_* held now */
    pid_t pid;                /* process that opened c */
    char run_id[RD_RUNID_LEN + 1];  /* the server's run_id, "" if unknown */
    /* our lease token while held: RUN_ID "." 32 random hex digits */
    char token[RD_RUNID_LEN + 1 + 2 * RD_TOKEN_BYTES + 1];
} redis_be;

static redis_be *be_of(sg_store *st)
{
    return st->be_data;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
static sg_status parse_uri(redis_be *b, sg_error *err)
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

static void drop_conn(redis_be *b)
{
    if (b->c)
        redisFree(b->c);
    b->c = NULL;
    b->broken = 0;
}

/* Record a failed command: an I/O error (NULL reply) leaves the context
 * unusable, so the next lock() reconnects. */
static sg_status cmd_fail(redis_be *b, redisReply *r, const char *what,
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
static sg_status conn_up(redis_be *b, sg_error *err)
{
    /* A connection inherited across fork() would interleave two
     * processes' commands and replies on one socket: the child opens its
     * own (redisFree only closes the child's copy of the descriptor). */
    if (b->c && !b->broken && !b->c->err && b->pid == getpid())
        return SG_OK;
    drop_conn(b);
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
            sg_status rc = cmd_fail(b, r, "SELECT", err);
            drop_conn(b);
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
        sg_status rc = cmd_fail(b, r, "INFO", err);
        drop_conn(b);
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
        if (conn_up(b, NULL) == SG_OK) {
            va_copy(again, ap);
            r = quiet_command(b->c, fmt, again);
            va_end(again);
        }
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        b->last = cmd_fail(b, r, what, err);
        return NULL;
    }
    return r;
}

static redisReply *cmd(redis_be *b, const char *what, sg_error *err,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = cmd_v(b, what, err, 0, fmt, ap);
    va_end(ap);
    return r;
}

/* cmd for reads: repeated once after a reconnect. */
static redisReply *read_cmd(redis_be *b, const char *what, sg_error *err,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = cmd_v(b, what, err, 1, fmt, ap);
    va_end(ap);
    return r;
}

/* Run EVAL of a script with n keys; args after fmt are the keys and args
 * as %s / %b of fmt.  New: the reply, or NULL with err filled. */
#define EVAL(b, what, err, script, fmt, ...) \
    cmd((b), (what), (err), "EVAL %s " fmt, (script), __VA_ARGS__)

/* ----------------------------------------------------------------- lock */

/* Take the lease if it is free: SET NX PX.  1 taken, 0 held by another,
 * -1 error. */
static int try_lease(redis_be *b, sg_error *err)
{
    redisReply *r = cmd(b, "SET (lock)", err, "SET %s %s NX PX %d",
                        b->lock_key, b->token, RD_LEASE_MS);
    if (!r)
        return -1;
    int taken = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return taken;
}

/*
 * Shared: reads in Redis are always current (one server holds the one copy
 * and applies commands one at a time), so readers need no lock at all; we
 * only make sure the connection is up, reconnecting after an error.  A
 * reader can see a write sequence half done (session written, index not
 * yet), which store.c already tolerates: the index is a superset hint that
 * readers verify.
 *
 * Exclusive: a lease lock, SET PREFIX"lock" TOKEN NX PX lease, polled with
 * backoff until the store's lock timeout.  Not WATCH/MULTI: the layers
 * above need load -> change -> save under one lock, with arbitrary work in
 * between (session.c's checked save, the per-user index, and user code in
 * the bindings' update()), which an optimistic transaction cannot hold; a
 * lease lock gives the same exclusion flock() gives for GDBM.  The lease
 * (instead of a plain key) frees the lock when its holder is killed; the
 * random token makes sure only the holder releases it, and every write
 * checks it (WRITE_SCRIPT), so a holder whose lease ran out cannot
 * overwrite the next holder's work.
 *
 * A server with persistence keeps the lease key across its own restart
 * (the AOF holds SET ... PXAT), but not its holder: that process lost its
 * connection and could not release it, or exited on the error.  Without
 * more, every writer would then wait out the rest of the lease, up to
 * RD_LEASE_MS, after the server is back.  So a token starts with the
 * server's run_id, which is new at every start, and a waiter that finds a
 * lease of an earlier run breaks it (compare-and-delete).  That is safe:
 * the old holder's connection died with that run, and any write it still
 * sends carries the old token, which WRITE_SCRIPT refuses.
 */

/* A fresh token for the current connection: RUN_ID "." random hex. */
static sg_status make_token(redis_be *b, sg_error *err)
{
    unsigned char raw[RD_TOKEN_BYTES];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return sgi_err(err, SG_ESTORE, errno, "store %s: cannot get random "
                       "bytes for the lock token: %s", b->uri, strerror(errno));
    size_t n = strlen(b->run_id);
    memcpy(b->token, b->run_id, n);
    b->token[n++] = '.';
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(b->token + n + 2 * i, 3, "%02x", raw[i]);
    return SG_OK;
}

/* 1 when lease value v was taken on an earlier run of this server (it
 * starts with another run_id).  Values of unknown form never are. */
static int lease_stale(const redis_be *b, const char *v)
{
    return b->run_id[0] && strlen(v) > RD_RUNID_LEN && v[RD_RUNID_LEN] == '.' &&
           strspn(v, "0123456789abcdef") == RD_RUNID_LEN &&
           memcmp(v, b->run_id, RD_RUNID_LEN) != 0;
}

/* Compare-and-delete: release the lease only if it is still ours (after a
 * lease ran out, the key may belong to the next holder).  Also breaks a
 * lease of an earlier run of the server (r_lock). */
static const char UNLOCK_SCRIPT[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

static sg_status r_lock(sg_store *st, int mode, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = conn_up(b, err);
    if (rc != SG_OK)
        return rc;
    if (mode != SGI_EXCLUSIVE) {
        b->held = mode;
        return SG_OK;
    }
    rc = make_token(b, err);
    if (rc != SG_OK)
        return rc;
    int timeout = st->opt.lock_timeout_ms;
    int64_t deadline = mono_ms() + timeout;
    long sleep_ns = 500000;
    int retried = 0, check_token = 0, looked = 0;
    for (;;) {
        sg_error lerr = { 0 };
        int t = try_lease(b, &lerr);
        if (t < 0 && !retried && b->broken) {
            /* The kept connection died since the last command (a Redis
             * restart): reconnect once before reporting anything.  If the
             * lost reply was our SET succeeding, the key holds our token,
             * which the check below recognises; on a new run of the
             * server that token is stale, so take the lease anew. */
            char old_run[sizeof b->run_id];
            memcpy(old_run, b->run_id, sizeof old_run);
            retried = check_token = 1;
            looked = 0;
            rc = conn_up(b, err);
            if (rc != SG_OK)
                return rc;
            if (strcmp(old_run, b->run_id) != 0) {
                check_token = 0;
                if ((rc = make_token(b, err)) != SG_OK)
                    return rc;
            }
            continue;
        }
        if (t < 0) {
            if (err && err->code == SG_OK)
                *err = lerr;
            return lerr.code;
        }
        /* Held: once per wait (and after a reconnect), look at the value:
         * our own lost SET, or a lease of an earlier run to break. */
        if (t == 0 && (check_token || !looked)) {
            redisReply *r = cmd(b, "GET (lock)", err, "GET %s", b->lock_key);
            if (!r)
                return b->last;
            if (r->type == REDIS_REPLY_STRING && check_token &&
                strcmp(r->str, b->token) == 0) {
                t = 1;
            } else if (r->type == REDIS_REPLY_STRING && lease_stale(b, r->str)) {
                redisReply *d = EVAL(b, "EVAL (break stale lock)", err,
                                     UNLOCK_SCRIPT, "1 %s %s", b->lock_key,
                                     r->str);
                freeReplyObject(r);
                if (!d)
                    return b->last;
                freeReplyObject(d);
                continue;       /* take it now; look again if beaten */
            }
            freeReplyObject(r);
            check_token = 0;
            looked = 1;
        }
        if (t == 1) {
            b->held = SGI_EXCLUSIVE;
            return SG_OK;
        }
        if (mono_ms() >= deadline)
            return sgi_err(err, SG_ELOCKTIMEOUT, 0, "store %s: lock timeout "
                           "after %d ms (another process holds %s; raise "
                           "--lock-timeout)", b->uri, timeout, b->lock_key);
        struct timespec ts = { 0, sleep_ns };
        nanosleep(&ts, NULL);
        /* Back off to 20 ms: each poll is a network round trip. */
        if (sleep_ns < 20000000)
            sleep_ns *= 2;
    }
}

static void r_unlock(sg_store *st)
{
    redis_be *b = be_of(st);
    /* After an error under the lock (a command timed out, say) reconnect
     * to release it: otherwise every other process would wait out the
     * lease.  A failure here leaves the lease to run out: nothing to
     * report, and unlock cannot fail by contract. */
    if (b->held == SGI_EXCLUSIVE && conn_up(b, NULL) == SG_OK) {
        sg_error ignored = { 0 };
        redisReply *r = EVAL(b, "EVAL (unlock)", &ignored, UNLOCK_SCRIPT,
                             "1 %s %s", b->lock_key, b->token);
        if (r)
            freeReplyObject(r);
    }
    b->held = SGI_UNLOCKED;
    memset(b->token, 0, sizeof b->token);
}

/* ---------------------------------------------------------- operations */

static char *key_of(redis_be *b, const char *key)
{
    size_t n = strlen(b->prefix), m = strlen(key);
    char *k = malloc(n + m + 1);
    if (k) {
        memcpy(k, b->prefix, n);
        memcpy(k + n, key, m + 1);
    }
    return k;
}

static sg_status r_fetch(sg_store *st, const char *key, char **val,
                         size_t *len, sg_error *err)
{
    redis_be *b = be_of(st);
    char *k = key_of(b, key);
    if (!k)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    redisReply *r = read_cmd(b, "GET", err, "GET %s", k);
    free(k);
    if (!r)
        return b->last;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return SG_ENOTFOUND;
    }
    if (r->type != REDIS_REPLY_STRING)
        return cmd_fail(b, r, "GET", err);
    char *p = malloc((size_t)r->len + 1);
    if (!p) {
        freeReplyObject(r);
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    }
    memcpy(p, r->str, (size_t)r->len);
    p[r->len] = '\0';
    *val = p;
    *len = (size_t)r->len;
    freeReplyObject(r);
    return SG_OK;
}

/* Writes run as scripts so that each is one atomic step that (1) checks
 * the lease is still ours, refusing the write otherwise, (2) renews the
 * lease, (3) counts the write, and (4) writes the value with its expiry:
 * a separate SET then PEXPIREAT could leave a session without expiry if
 * this process died in between. */
static const char WRITE_SCRIPT[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[4]) "
    "redis.call('incr', KEYS[3]) "
    "redis.call('set', KEYS[2], ARGV[2]) "
    "if ARGV[3] ~= '' then redis.call('pexpireat', KEYS[2], ARGV[3]) end "
    "return 1";

static const char DEL_SCRIPT[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[2]) "
    "local n = redis.call('del', KEYS[2]) "
    "if n > 0 then redis.call('incr', KEYS[3]) end "
    "return n";

static sg_status write_check(sg_store *st, redis_be *b, sg_error *err)
{
    if (st->opt.readonly)
        return sgi_err(err, SG_ESTORE, EROFS, "store %s: opened read-only",
                       b->uri);
    if (b->held != SGI_EXCLUSIVE)
        return sgi_err(err, SG_EINVAL, 0, "store %s: write without the "
                       "exclusive lock", b->uri);
    return SG_OK;
}

/* Map a script's "lease lost" error to a message with its cause. */
static sg_status script_fail(redis_be *b, sg_error *err, sg_error *serr)
{
    if (strstr(serr->text, "SESSGATE lock lease lost"))
        return sgi_err(err, SG_ESTORE, 0, "store %s: write refused: this "
                       "process lost the lock lease (a step under the lock "
                       "took over %d ms, or Redis restarted)", b->uri,
                       RD_LEASE_MS);
    if (err && err->code == SG_OK)
        *err = *serr;
    return serr->code;
}

static sg_status r_put(sg_store *st, const char *key, const char *val,
                       size_t len, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    /* A session record expires in Redis when the session dies: at
     * min(expires, accessed + idle), the first instant sgi_live() says no,
     * so Redis never drops a live session and expired ones vanish without
     * purge.  Not with a store clock (tests, embedders): Redis measures
     * real time and would drop records the store's clock still finds
     * live.  Index keys ("uidx:NAME" sets) never expire; readers verify ids.
     * Redis's clock decides the instant, so hosts whose clocks differ from
     * the server's (no NTP) see sessions vanish early or linger. */
    char at[32] = "";
    if (strlen(key) == SG_ID_LEN && sg_id_valid(key) && !st->opt.clock) {
        sg_session *s;
        sg_error perr = { 0 };
        if (sgi_record_parse(val, len, &s, &perr) == SG_OK) {
            int64_t end = s->expires;
            int64_t idle_end = sgi_add_sat(s->accessed, s->idle);
            if (idle_end < end)
                end = idle_end;
            sg_session_free(s);
            if (end > 0 && end < INT64_MAX / 1000)
                snprintf(at, sizeof at, "%lld", (long long)end * 1000);
        }
    }
    char *k = key_of(b, key);
    if (!k)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    sg_error serr = { 0 };
    redisReply *r = EVAL(b, "write", &serr, WRITE_SCRIPT, "3 %s %s %s %s %b %s %d",
                         b->lock_key, k, b->writes_key, b->token, val, len,
                         at, RD_LEASE_MS);
    free(k);
    if (!r)
        return script_fail(b, err, &serr);
    freeReplyObject(r);
    return SG_OK;
}

static sg_status r_del(sg_store *st, const char *key, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    char *k = key_of(b, key);
    if (!k)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    sg_error serr = { 0 };
    redisReply *r = EVAL(b, "delete", &serr, DEL_SCRIPT, "3 %s %s %s %s %d",
                         b->lock_key, k, b->writes_key, b->token, RD_LEASE_MS);
    free(k);
    if (!r)
        return script_fail(b, err, &serr);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return n > 0 ? SG_OK : SG_ENOTFOUND;
}

/* ------------------------------------------------------ per-user sets */

/* Each user's index is a Redis SET, PREFIX "uidx:NAME", so adding and
 * removing an id is one SADD / SREM whatever the user's count (store.c
 * keeps the old format, a JSON array under "user:NAME", readable and
 * converts it).  The writes are scripts for the same reasons as
 * WRITE_SCRIPT: lease checked and renewed, write counted, in one step;
 * they also say whether an old-format key is there, so that store.c need
 * not ask in a round trip of its own on every create. */
static const char SET_SCRIPT[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[2]) "
    "local n = redis.call(ARGV[4], KEYS[2], ARGV[3]) "
    "if n > 0 then redis.call('incr', KEYS[3]) end "
    "return n + 2 * redis.call('exists', KEYS[4])";

static char *set_key(redis_be *b, const char *user)
{
    size_t n = strlen(b->prefix), m = strlen(user);
    char *k = malloc(n + sizeof SGI_INDEX_PREFIX + m);
    if (k) {
        memcpy(k, b->prefix, n);
        memcpy(k + n, SGI_INDEX_PREFIX, sizeof SGI_INDEX_PREFIX - 1);
        memcpy(k + n + sizeof SGI_INDEX_PREFIX - 1, user, m + 1);
    }
    return k;
}

/* SADD or SREM id; *changed 1 when the set changed, *legacy 1 when the
 * user has an old-format index key. */
static sg_status set_change(sg_store *st, const char *op, const char *user,
                            const char *id, int *changed, int *legacy,
                            sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    char *k = set_key(b, user);
    char *old = NULL;
    size_t n = strlen(b->prefix), m = strlen(user);
    if (k && (old = malloc(n + sizeof SGI_USER_PREFIX + m))) {
        memcpy(old, b->prefix, n);
        memcpy(old + n, SGI_USER_PREFIX, sizeof SGI_USER_PREFIX - 1);
        memcpy(old + n + sizeof SGI_USER_PREFIX - 1, user, m + 1);
    }
    if (!k || !old) {
        free(k);
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    }
    sg_error serr = { 0 };
    redisReply *r = EVAL(b, op, &serr, SET_SCRIPT, "4 %s %s %s %s %s %d %s %s",
                         b->lock_key, k, b->writes_key, old, b->token,
                         RD_LEASE_MS, id, op);
    free(k);
    free(old);
    if (!r)
        return script_fail(b, err, &serr);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    *changed = (v & 1) != 0;
    *legacy = (v & 2) != 0;
    freeReplyObject(r);
    return SG_OK;
}

static sg_status r_set_add(sg_store *st, const char *user, const char *id,
                           int *legacy, sg_error *err)
{
    int changed;
    return set_change(st, "sadd", user, id, &changed, legacy, err);
}

static sg_status r_set_remove(sg_store *st, const char *user, const char *id,
                              int *legacy, sg_error *err)
{
    int changed = 0;
    sg_status rc = set_change(st, "srem", user, id, &changed, legacy, err);
    return rc == SG_OK && !changed ? SG_ENOTFOUND : rc;
}

static sg_status r_set_ids(sg_store *st, const char *user, sg_list *l,
                           sg_error *err)
{
    redis_be *b = be_of(st);
    char *k = set_key(b, user);
    if (!k)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    redisReply *r = read_cmd(b, "SMEMBERS", err, "SMEMBERS %s", k);
    free(k);
    if (!r)
        return b->last;
    if (r->type != REDIS_REPLY_ARRAY)
        return cmd_fail(b, r, "SMEMBERS", err);
    sg_status rc = SG_OK;
    for (size_t i = 0; i < r->elements && rc == SG_OK; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len == SG_ID_LEN &&
            strlen(e->str) == SG_ID_LEN && sg_id_valid(e->str) &&
            sgi_list_push(l, e->str) < 0)
            rc = sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    }
    freeReplyObject(r);
    return rc;
}

static sg_status r_set_count(sg_store *st, const char *user, size_t *n,
                             sg_error *err)
{
    redis_be *b = be_of(st);
    char *k = set_key(b, user);
    if (!k)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    redisReply *r = read_cmd(b, "SCARD", err, "SCARD %s", k);
    free(k);
    if (!r)
        return b->last;
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
        return cmd_fail(b, r, "SCARD", err);
    *n = (size_t)r->integer;
    freeReplyObject(r);
    return SG_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct keyset {
    char **k;
    size_t n, cap;
} keyset;

static void keyset_free(keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->k[i]);
    free(ks->k);
}

/* The prefix as a SCAN MATCH pattern: glob characters escaped, then "*". */
static char *match_pattern(const char *prefix)
{
    size_t n = strlen(prefix);
    char *p = malloc(2 * n + 2), *o = p;
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", prefix[i]))
            *o++ = '\\';
        *o++ = prefix[i];
    }
    *o++ = '*';
    *o = '\0';
    return p;
}

/* Every key under the prefix except our own lock and counter.  SCAN may
 * return a key twice (while Redis rehashes, and writers run while readers
 * scan: readers take no lock), and the callers count what they get, so
 * collect, sort and drop duplicates before calling fn.  That also lets fn
 * change the store. */
static sg_status r_keys(sg_store *st, sgi_key_fn fn, void *arg, sg_error *err)
{
    redis_be *b = be_of(st);
    keyset ks = { 0 };
    char *pat = match_pattern(b->prefix);
    if (!pat)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->uri);
    size_t plen = strlen(b->prefix);
    char cursor[32] = "0";
    sg_status rc = SG_OK;
    do {
        /* Only the first page may be repeated: a cursor means nothing
         * to a restarted server. */
        int first = strcmp(cursor, "0") == 0;
        redisReply *r = first ? read_cmd(b, "SCAN", err, "SCAN %s MATCH %s "
                                         "COUNT " RD_SCAN_COUNT, cursor, pat)
                              : cmd(b, "SCAN", err, "SCAN %s MATCH %s COUNT "
                                    RD_SCAN_COUNT, cursor, pat);
        if (!r) {
            rc = b->last;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = cmd_fail(b, r, "SCAN", err);
            break;
        }
        memcpy(cursor, r->element[0]->str, (size_t)r->element[0]->len + 1);
        redisReply *a = r->element[1];
        for (size_t i = 0; i < a->elements && rc == SG_OK; i++) {
            redisReply *e = a->element[i];
            if (e->type != REDIS_REPLY_STRING || (size_t)e->len <= plen ||
                memcmp(e->str, b->prefix, plen) != 0 ||
                strlen(e->str) != (size_t)e->len)
                continue;       /* not ours, or holds a NUL */
            const char *name = e->str + plen;
            if (strcmp(name, "lock") == 0 || strcmp(name, "writes") == 0)
                continue;
            if (ks.n == ks.cap) {
                size_t cap = ks.cap ? ks.cap * 2 : 64;
                char **p = realloc(ks.k, cap * sizeof *p);
                if (!p) {
                    rc = sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                                 b->uri);
                    break;
                }
                ks.k = p;
                ks.cap = cap;
            }
            if (!(ks.k[ks.n] = strdup(name)))
                rc = sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                             b->uri);
            else
                ks.n++;
        }
        freeReplyObject(r);
    } while (rc == SG_OK && strcmp(cursor, "0") != 0);
    free(pat);
    if (rc == SG_OK && ks.n > 1)
        qsort(ks.k, ks.n, sizeof *ks.k, cmp_str);
    for (size_t i = 0; rc == SG_OK && i < ks.n; i++) {
        if (i > 0 && strcmp(ks.k[i], ks.k[i - 1]) == 0)
            continue;
        if (fn(ks.k[i], strlen(ks.k[i]), arg))
            break;
    }
    keyset_free(&ks);
    return rc;
}

/* Redis checks its own data structures; there is no file to repair.  A
 * PING proves the server answers.  (store.c then drops unparsable records
 * and rebuilds the per-user index, the same as for GDBM.) */
static sg_status r_check(sg_store *st, int repair, sg_check_report *rep,
                         sg_error *err)
{
    (void)repair;
    (void)rep;
    redis_be *b = be_of(st);
    redisReply *r = read_cmd(b, "PING", err, "PING");
    if (!r)
        return b->last;
    freeReplyObject(r);
    return SG_OK;
}

/* Approximate figures for stats: writes is the counter every write bumps
 * (exact across processes, but it counts since the key was created, and
 * a Redis without persistence forgets it on restart); bytes is the
 * server's used_memory, an upper bound covering every key of every
 * database on that server, not only this store's: Redis has no cheap
 * per-prefix size (MEMORY USAGE per key would mean a full scan). */
static void r_info(sg_store *st, uint64_t *bytes, uint64_t *writes)
{
    redis_be *b = be_of(st);
    sg_error ignored = { 0 };
    *bytes = *writes = 0;
    redisReply *r = cmd(b, "GET", &ignored, "GET %s", b->writes_key);
    if (r) {
        if (r->type == REDIS_REPLY_STRING)
            *writes = strtoull(r->str, NULL, 10);
        freeReplyObject(r);
    }
    r = cmd(b, "INFO", &ignored, "INFO memory");
    if (r) {
        const char *m = r->type == REDIS_REPLY_STRING
                      ? strstr(r->str, "used_memory:") : NULL;
        if (m)
            *bytes = strtoull(m + 12, NULL, 10);
        freeReplyObject(r);
    }
}

static void r_close(sg_store *st)
{
    redis_be *b = be_of(st);
    if (!b)
        return;
    drop_conn(b);
    free(b->uri);
    free(b->host);
    free(b->sock);
    free(b->prefix);
    free(b->lock_key);
    free(b->writes_key);
    free(b);
    st->be_data = NULL;
}

static sg_status r_open(sg_store *st, const char *location, sg_error *err)
{
    redis_be *b = calloc(1, sizeof *b);
    if (!b)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", location);
    st->be_data = b;
    b->uri = strdup(location);
    if (!b->uri) {
        r_close(st);
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", location);
    }
    sg_status rc = parse_uri(b, err);
    if (rc == SG_OK && !b->prefix && !(b->prefix = strdup(RD_DEFAULT_PREFIX)))
        rc = sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", location);
    if (rc == SG_OK) {
        b->lock_key = key_of(b, "lock");
        b->writes_key = key_of(b, "writes");
        if (!b->lock_key || !b->writes_key)
            rc = sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                         location);
    }
    /* Connect now, so a server that is down shows at open with the URI
     * and the fix, not at the first request. */
    if (rc == SG_OK)
        rc = conn_up(b, err);
    if (rc != SG_OK)
        r_close(st);
    return rc;
}

const sgi_backend sgi_backend_redis = {
    .scheme = "redis",
    .open = r_open,
    .close = r_close,
    .lock = r_lock,
    .unlock = r_unlock,
    .fetch = r_fetch,
    .put = r_put,
    .del = r_del,
    .keys = r_keys,
    .check = r_check,
    .info = r_info,
    .set_add = r_set_add,
    .set_remove = r_set_remove,
    .set_ids = r_set_ids,
    .set_count = r_set_count,
};
