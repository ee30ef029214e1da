/*
 * redis_conn.c - the Redis backend's connection: the URI, finding the
 * server (directly, or through Redis Sentinel), authenticating, connecting,
 * reconnecting after errors and running commands.  It lives apart from
 * backend_redis.c (what the store keeps in Redis and how it writes) because
 * authentication, Sentinel discovery and failover change how a handle finds
 * and talks to its server, never what it stores, and the store operations
 * should not have to know about them.
 *
 * Store URIs (query options: prefix=, timeout_ms=, password_file=,
 * min_replicas=, and db= for sockets):
 *     redis://[USER@]HOST[:PORT][/DB][?...]
 *     redis+unix:[//[USER@]]/path/to/socket[?...]
 *     redis+sentinel://[USER@]H1:P1[,H2:P2...]/MASTER[/DB][?...]
 *
 * Secrets.  The password never appears in the URI: a URI is a command-line
 * argument (visible to every user in ps), a config line and a part of
 * every error message.  It comes from password_file=PATH (read once at
 * open, by the process that opens the store: the gateway's service user)
 * or from the environment variable SESSGATE_REDIS_PASSWORD.  A URI that
 * tries to carry one (user:secret@, password=) is refused, and the message
 * shows it masked.  Error texts carry the URI and Redis's own reply, which
 * never echoes the password.
 *
 * Each store handle keeps one connection, opened by open() so that a
 * missing server is reported at once, and reopened by the next lock() after
 * any error: a hiredis context is unusable after an I/O error, and
 * reconnecting in lock() means a gateway worker or a long-lived app
 * survives a Redis restart without reopening its store.  Connecting and
 * every command are bounded by timeout_ms (default 1000), so a hung server
 * becomes an error, never a hung request.
 *
 * Sentinel.  With redis+sentinel:, "the server" is whatever the Sentinels
 * say is MASTER's address now: asked at every (re)connect, and re-asked
 * after a connection error, a -READONLY reply (we are talking to a demoted
 * master) or a +switch-master notice, which the handle receives on a
 * subscription it keeps to the Sentinel that answered and reads, without
 * blocking, before each operation.  A write that fails during a failover
 * is an error to its caller, never retried here (its reply may be what
 * was lost, not the write).  Replication is asynchronous: a write the old
 * master acknowledged but had not yet sent to a replica is lost when that
 * replica is promoted.  min_replicas=N makes each write wait (WAIT N T) for
 * N replicas and report an error when they do not confirm it, so every
 * write reported as done is on a replica too.
 */
#include "redis_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RD_DEFAULT_PORT       6379
#define RD_DEFAULT_SENTINEL_PORT 26379
#define RD_DEFAULT_TIMEOUT_MS 1000
#define RD_MAX_TIMEOUT_MS     600000
#define RD_MAX_DB             1000000
#define RD_MAX_PREFIX         128
#define RD_MAX_USER           128
#define RD_MAX_PASSWORD       4096
#define RD_MAX_PASSWORD_TEXT  "4096"
#define RD_MAX_MASTER_NAME    128
#define RD_MAX_SENTINELS      16
#define RD_MAX_REPLICAS       16

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

/* 1 when s[0..n) may name a Redis ACL user or a Sentinel master: Redis
 * takes any bytes but spaces, we take the characters that need no
 * quoting in a URI, a shell or a config file. */
static int name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* The query keys we know; any other key's value is masked in messages
 * (it may be a password someone tried to pass). */
static int known_key(const char *k, size_t n)
{
    static const char *const keys[] = { "prefix", "timeout_ms", "db",
                                        "password_file", "min_replicas" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
            return 1;
    return 0;
}

/* New: u with secrets masked: the password of a "user:password@" part and
 * the value of every unknown query key become "***".  NULL on no memory. */
char *sgi_uri_masked(const char *u)
{
    size_t n = strlen(u);
    /* A masked value grows the text by at most 3 bytes ("***" for an
     * empty value), and each one takes at least 2 bytes of u ("?=" or
     * "&=" for an empty key, ":@" for an empty password): the result is
     * at most n + 3 * n / 2 bytes.  (2 * n was short for "?=&=&=...".) */
    char *m = malloc(3 * n + 8), *o = m;
    if (!m)
        return NULL;
    const char *p = u;
    const char *q = strchr(u, '?');
    const char *qend = q ? q : u + n;
    const char *auth = strstr(u, "://");
    auth = auth && auth < qend ? auth + 3 : NULL;
    const char *at = NULL;
    if (auth) {
        const char *slash = memchr(auth, '/', (size_t)(qend - auth));
        const char *aend = slash ? slash : qend;
        at = memchr(auth, '@', (size_t)(aend - auth));
    }
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
        memcpy(o, p, (size_t)(colon + 1 - p));
        o += colon + 1 - p;
        memcpy(o, "***", 3);
        o += 3;
        p = at;
    }
    memcpy(o, p, (size_t)(qend - p));
    o += qend - p;
    p = qend;
    while (*p) {                /* p at '?' or '&' */
        *o++ = *p++;
        const char *amp = strchr(p, '&');
        const char *pend = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        if (eq && !known_key(p, (size_t)(eq - p))) {
            memcpy(o, p, (size_t)(eq + 1 - p));
            o += eq + 1 - p;
            memcpy(o, "***", 3);
            o += 3;
        } else {
            memcpy(o, p, (size_t)(pend - p));
            o += pend - p;
        }
        p = pend;
    }
    *o = '\0';
    return m;
}

/* Replace b->uri (used in every message) by its masked form: called
 * before refusing a URI that holds a secret, so that the refusal, which
 * ends up in logs, does not repeat it. */
static void mask_uri(redis_be *b)
{
    char *m = sgi_uri_masked(b->uri);
    if (m) {
        free(b->uri);
        b->uri = m;
    } else {
        b->uri[0] = '\0';       /* no memory: say nothing rather than leak */
    }
}

/* The query string: prefix=, timeout_ms=, password_file=, min_replicas=,
 * and (unix sockets) db=. */
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
                return sgi_oom(err, "store", b->uri);
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
        } else if (kn == 13 && memcmp(q, "password_file", 13) == 0) {
            if (vn == 0 || v[0] != '/' || memchr(v, '\0', vn))
                return sgi_err(err, SG_EINVAL, 0, "store %s: password_file "
                               "must be an absolute path", b->uri);
            free(b->password_file);
            if (!(b->password_file = dupn(v, vn)))
                return sgi_oom(err, "store", b->uri);
        } else if (kn == 12 && memcmp(q, "min_replicas", 12) == 0) {
            if (parse_num(v, vn, 0, RD_MAX_REPLICAS, &num) < 0)
                return sgi_err(err, SG_EINVAL, 0, "store %s: min_replicas "
                               "must be a number of replicas, 0..%d", b->uri,
                               RD_MAX_REPLICAS);
            b->min_replicas = (int)num;
        } else {
            /* Maybe a password someone tried: mask unknown values first.
             * The key is copied before: q points into the URI mask_uri
             * frees. */
            char key[32];
            snprintf(key, sizeof key, "%.*s", (int)(kn < 31 ? kn : 31), q);
            if (!known_key(q, kn))
                mask_uri(b);
            return sgi_err(err, SG_EINVAL, 0, "store %s: unknown query "
                           "parameter '%s' (known: %sprefix, timeout_ms, "
                           "password_file, min_replicas; a password goes in "
                           "password_file or $" RD_PASSWORD_ENV ")", b->uri,
                           key, allow_db ? "db, " : "");
        }
        q = amp ? amp + 1 : NULL;
    }
    return SG_OK;
}

/* A "USER@" part at p (up to end): sets b->user and moves *pp past it.
 * "USER:SECRET@" is refused, masked. */
static sg_status parse_user(redis_be *b, const char **pp, const char *end,
                            sg_error *err)
{
    const char *p = *pp;
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (!at)
        return SG_OK;
    if (memchr(p, ':', (size_t)(at - p))) {
        mask_uri(b);
        return sgi_err(err, SG_EINVAL, 0, "store %s: passwords in the URI "
                       "are not supported (put it in a file readable only by "
                       "the service and add ?password_file=PATH, or set $"
                       RD_PASSWORD_ENV ")", b->uri);
    }
    if (!name_ok(p, (size_t)(at - p), RD_MAX_USER))
        return sgi_err(err, SG_EINVAL, 0, "store %s: bad user name before "
                       "'@' (1..%d of A-Z a-z 0-9 . _ -)", b->uri,
                       RD_MAX_USER);
    if (!(b->user = dupn(p, (size_t)(at - p))))
        return sgi_oom(err, "store", b->uri);
    *pp = at + 1;
    return SG_OK;
}

/* HOST[:PORT] or [IPV6][:PORT] in p[0..n): a new *host, and *port. */
static sg_status parse_hostport(redis_be *b, const char *p, size_t n,
                                char **host, int *port, int def_port,
                                sg_error *err)
{
    const char *hend = p + n, *hs = p, *he, *colon;
    *port = def_port;
    if (n > 0 && *p == '[') {   /* [IPv6]:PORT */
        const char *rb = memchr(p, ']', n);
        if (!rb)
            return sgi_err(err, SG_EINVAL, 0, "store %s: unclosed '[' in "
                           "the host", b->uri);
        hs = p + 1;
        he = rb;
        colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != hend)
            return sgi_err(err, SG_EINVAL, 0, "store %s: junk after ']'",
                           b->uri);
    } else {
        colon = memchr(p, ':', n);
        he = colon ? colon : hend;
    }
    if (he == hs)
        return sgi_err(err, SG_EINVAL, 0, "store %s: no host (use "
                       "redis://HOST:PORT/DB)", b->uri);
    long num;
    if (colon) {
        if (parse_num(colon + 1, (size_t)(hend - colon - 1), 1, 65535, &num) < 0)
            return sgi_err(err, SG_EINVAL, 0, "store %s: port must be 1..65535",
                           b->uri);
        *port = (int)num;
    }
    if (!(*host = dupn(hs, (size_t)(he - hs))))
        return sgi_oom(err, "store", b->uri);
    return SG_OK;
}

/* H1:P1,H2:P2,... of a redis+sentinel: URI, into b->sentinels. */
static sg_status parse_sentinels(redis_be *b, const char *p, const char *end,
                                 sg_error *err)
{
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (b->n_sentinels == RD_MAX_SENTINELS)
            return sgi_err(err, SG_EINVAL, 0, "store %s: at most %d "
                           "Sentinels", b->uri, RD_MAX_SENTINELS);
        sgi_redis_addr *a = &b->sentinels[b->n_sentinels];
        sg_status rc = parse_hostport(b, p, (size_t)(e - p), &a->host,
                                      &a->port, RD_DEFAULT_SENTINEL_PORT, err);
        if (rc != SG_OK)
            return rc;
        b->n_sentinels++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return SG_OK;
}

/* Read the password from b->password_file, or $SESSGATE_REDIS_PASSWORD.
 * The file must be a regular file no other user can read: a password any
 * local account can read protects nothing, and refusing it at open is
 * the moment an operator is looking. */
static sg_status load_password(redis_be *b, sg_error *err)
{
    if (!b->password_file) {
        /* secure_getenv: a set-user-ID program linked with us must not
         * take a password from its caller's environment. */
        const char *env = secure_getenv(RD_PASSWORD_ENV);
        if (!env || !*env)
            return SG_OK;
        size_t n = strlen(env);
        if (n > RD_MAX_PASSWORD)
            return sgi_err(err, SG_EINVAL, 0, "store %s: $" RD_PASSWORD_ENV
                           " is longer than %d bytes", b->uri,
                           RD_MAX_PASSWORD);
        if (!(b->password = dupn(env, n)))
            return sgi_oom(err, "store", b->uri);
        b->password_len = n;
        return SG_OK;
    }
    /* O_NONBLOCK: a FIFO named here must not hang the open (it is
     * refused below, as everything that is not a regular file). */
    int fd = open(b->password_file, O_RDONLY | O_CLOEXEC | O_NOCTTY |
                  O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        /* sys_errno stays 0: ENOENT would read as "no such store". */
        return sgi_err(err, SG_ESTORE, 0, "store %s: cannot read "
                       "password_file %s: %s%s", b->uri, b->password_file,
                       strerror(e), e == EACCES ? " (it must be readable by "
                       "the user the gateway or app runs as, e.g. through "
                       "its group)" : "");
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sgi_err(err, SG_ESTORE, 0, "store %s: password_file %s is not "
                       "a regular file", b->uri, b->password_file);
    }
    if (sb.st_mode & (S_IROTH | S_IWOTH)) {
        close(fd);
        return sgi_err(err, SG_ESTORE, 0, "store %s: password_file %s is "
                       "readable or writable by every user (chmod o-rwx; "
                       "give the service's group read access instead)",
                       b->uri, b->password_file);
    }
    char *buf = malloc(RD_MAX_PASSWORD + 2);
    if (!buf) {
        close(fd);
        return sgi_oom(err, "store", b->uri);
    }
    size_t n = 0;
    while (n < RD_MAX_PASSWORD + 1) {
        ssize_t r = read(fd, buf + n, RD_MAX_PASSWORD + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            explicit_bzero(buf, RD_MAX_PASSWORD + 2);
            free(buf);
            return sgi_err(err, SG_ESTORE, 0, "store %s: cannot read "
                           "password_file %s: %s", b->uri, b->password_file,
                           strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    /* One trailing newline is the editor's, not the password's. */
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0 || n > RD_MAX_PASSWORD) {
        explicit_bzero(buf, RD_MAX_PASSWORD + 2);
        free(buf);
        return sgi_err(err, SG_ESTORE, 0, "store %s: password_file %s %s",
                       b->uri, b->password_file, n == 0 ? "is empty" :
                       "is longer than " RD_MAX_PASSWORD_TEXT " bytes");
    }
    buf[n] = '\0';
    b->password = buf;
    b->password_len = n;
    return SG_OK;
}

/* load_password, and a user needs a password (AUTH USER takes one). */
static sg_status load_password_checked(redis_be *b, sg_error *err)
{
    sg_status rc = load_password(b, err);
    if (rc == SG_OK && b->user && !b->password)
        rc = sgi_err(err, SG_EINVAL, 0, "store %s: user %s needs a password "
                     "(add ?password_file=PATH, or set $" RD_PASSWORD_ENV ")",
                     b->uri, b->user);
    return rc;
}

/* redis://, redis+unix: or redis+sentinel: (see the top of the file). */
sg_status sgi_redis_parse_uri(redis_be *b, sg_error *err)
{
    const char *u = b->uri;
    sg_status rc;
    b->port = RD_DEFAULT_PORT;
    b->timeout_ms = RD_DEFAULT_TIMEOUT_MS;
    if (strncmp(u, "redis+unix:", 11) == 0) {
        const char *p = u + 11;
        const char *q = strchr(p, '?');
        const char *end = q ? q : p + strlen(p);
        if (strncmp(p, "//", 2) == 0) {
            p += 2;             /* redis+unix:///path is the same thing */
            const char *slash = memchr(p, '/', (size_t)(end - p));
            if ((rc = parse_user(b, &p, slash ? slash : end, err)) != SG_OK)
                return rc;
        }
        size_t n = (size_t)(end - p);
        if (n == 0 || p[0] != '/')
            return sgi_err(err, SG_EINVAL, 0, "store %s: needs an absolute "
                           "socket path (redis+unix:/path/to/redis.sock)", u);
        if (!(b->sock = dupn(p, n)))
            return sgi_oom(err, "store", u);
        if ((rc = parse_query(b, q ? q + 1 : NULL, 1, err)) != SG_OK)
            return rc;
        return load_password_checked(b, err);
    }
    int sentinel = strncmp(u, "redis+sentinel://", 17) == 0;
    if (!sentinel && strncmp(u, "redis://", 8) != 0) {
        mask_uri(b);
        return sgi_err(err, SG_EINVAL, 0, "store %s: not a Redis URI (use "
                       "redis://HOST:PORT/DB, redis+unix:/SOCKET or "
                       "redis+sentinel://H1:P1,H2:P2/MASTER)", b->uri);
    }
    const char *p = u + (sentinel ? 17 : 8);
    const char *q = strchr(p, '?');
    const char *end = q ? q : p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hend = slash ? slash : end;
    /* Checked first: a "user:password@" part would read as a bad port. */
    if ((rc = parse_user(b, &p, hend, err)) != SG_OK)
        return rc;
    u = b->uri;
    long num;
    if (sentinel) {
        if ((rc = parse_sentinels(b, p, hend, err)) != SG_OK)
            return rc;
        const char *name = slash ? slash + 1 : end;
        const char *nend = memchr(name, '/', (size_t)(end - name));
        if (!nend)
            nend = end;
        if (!name_ok(name, (size_t)(nend - name), RD_MAX_MASTER_NAME))
            return sgi_err(err, SG_EINVAL, 0, "store %s: needs the master's "
                           "name after the Sentinels (redis+sentinel://"
                           "H1:P1,H2:P2/MASTER; 1..%d of A-Z a-z 0-9 . _ -)",
                           u, RD_MAX_MASTER_NAME);
        if (!(b->master_name = dupn(name, (size_t)(nend - name))))
            return sgi_oom(err, "store", u);
        slash = nend < end ? nend : NULL;
    } else if ((rc = parse_hostport(b, p, (size_t)(hend - p), &b->host,
                                    &b->port, RD_DEFAULT_PORT, err)) != SG_OK) {
        return rc;
    }
    if (slash && slash + 1 < end) {
        if (parse_num(slash + 1, (size_t)(end - slash - 1), 0, RD_MAX_DB,
                      &num) < 0)
            return sgi_err(err, SG_EINVAL, 0, "store %s: database must be a "
                           "number, 0..%d", u, RD_MAX_DB);
        b->db = num;
    }
    if ((rc = parse_query(b, q ? q + 1 : NULL, 0, err)) != SG_OK)
        return rc;
    return load_password_checked(b, err);
}

/* ---------------------------------------------------------- connection */

/* hiredis without SIGPIPE.  hiredis writes with write(2), and a write to a
 * connection the server closed (Redis killed or restarted) raises SIGPIPE,
 * whose default action kills the whole process: a gateway worker or an app
 * must get an error instead.  A library must not change the process's
 * signal dispositions, so block SIGPIPE in this thread for the call and
 * swallow one we caused (not one already pending before). */
typedef struct pipe_guard {
    sigset_t set, old;
    int was_pending;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
    sigset_t pending;
    sigemptyset(&g->set);
    sigaddset(&g->set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &g->set, &g->old);
}

static void pipe_unblock(pipe_guard *g)
{
    if (!g->was_pending) {
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = { 0, 0 };
            sigtimedwait(&g->set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* redisvCommand without SIGPIPE. */
static redisReply *quiet_command(redisContext *c, const char *fmt, va_list ap)
{
    pipe_guard g;
    pipe_block(&g);
    redisReply *r = redisvCommand(c, fmt, ap);
    pipe_unblock(&g);
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sgi_redis_drop(redis_be *b)
{
    if (b->c)
        redisFree(b->c);
    b->c = NULL;
    b->broken = 0;
}

static void drop_sub(redis_be *b, size_t i)
{
    if (b->subs[i])
        redisFree(b->subs[i]);
    b->subs[i] = NULL;
}

static void drop_subs(redis_be *b)
{
    for (size_t i = 0; i < RD_MAX_SENTINELS; i++)
        drop_sub(b, i);
}

static int have_subs(const redis_be *b)
{
    for (size_t i = 0; i < b->n_sentinels; i++)
        if (b->subs[i])
            return 1;
    return 0;
}

/* Free what sgi_redis_parse_uri and sgi_redis_up made (not b itself). */
void sgi_redis_free(redis_be *b)
{
    sgi_redis_drop(b);
    drop_subs(b);
    free(b->host);
    free(b->sock);
    free(b->user);
    if (b->password)
        explicit_bzero(b->password, b->password_len);
    free(b->password);
    free(b->password_file);
    free(b->master_name);
    for (size_t i = 0; i < b->n_sentinels; i++)
        free(b->sentinels[i].host);
    b->host = b->sock = b->user = b->password = b->password_file = NULL;
    b->master_name = NULL;
    b->n_sentinels = 0;
}

/* Record a failed command: an I/O error (NULL reply) leaves the context
 * unusable, and -READONLY means the server is no master (any more: a
 * failover demoted it), so in both cases the next lock() reconnects,
 * asking the Sentinels again if the URI names them. */
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
        const char *msg = r->type == REDIS_REPLY_ERROR && r->str ? r->str
                        : "unexpected reply";
        const char *hint = "";
        if (strncmp(msg, "READONLY", 8) == 0) {
            b->broken = 1;
            hint = b->master_name ? " (the master was demoted by a failover; "
                   "the next operation asks the Sentinels)" : " (this server "
                   "is a replica: point the URI at the master, or use "
                   "redis+sentinel:)";
        } else if (strncmp(msg, "NOAUTH", 6) == 0) {
            hint = " (the server wants a password: add ?password_file=PATH "
                   "or set $" RD_PASSWORD_ENV ")";
        } else if (strncmp(msg, "NOPERM", 6) == 0) {
            hint = " (the Redis ACL user lacks a command or key the store "
                   "needs: see the ACL line in the README)";
        }
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: Redis %s failed: %s%s",
                     b->uri, what, msg, hint);
        freeReplyObject(r);
    }
    return rc;
}

/* New: a connection to host:port (or the unix socket sock), close-on-exec
 * and with the command timeout; NULL with why filled. */
static redisContext *open_ctx_ms(redis_be *b, const char *host, int port,
                                 const char *sock, int ms, char *why,
                                 size_t whylen)
{
    (void)b;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    redisContext *c = sock ? redisConnectUnixWithTimeout(sock, tv)
                           : redisConnectWithTimeout(host, port, tv);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(why, whylen, "%s", c->errstr);
        redisFree(c);
        return NULL;
    }
    /* Close-on-exec, like every descriptor of the GDBM backend: a program
     * the app runs (os.execute, a CGI) must not inherit the connection,
     * which would bypass the socket's file permissions and could write
     * into our command stream.  hiredis 0.14 has no option for it. */
    int fdflags = fcntl(c->fd, F_GETFD);
    if (fdflags < 0 || fcntl(c->fd, F_SETFD, fdflags | FD_CLOEXEC) < 0) {
        snprintf(why, whylen, "cannot set close-on-exec: %s", strerror(errno));
        redisFree(c);
        return NULL;
    }
    /* Commands get the same bound as connecting: a server that stops
     * answering becomes an error, never a hung request. */
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(why, whylen, "cannot set the timeout: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

static redisContext *open_ctx(redis_be *b, const char *host, int port,
                              const char *sock, char *why, size_t whylen)
{
    return open_ctx_ms(b, host, port, sock, b->timeout_ms, why, whylen);
}

/* Subscribe c (a connection to Sentinel i) to +switch-master, as subs[i];
 * takes c.  The subscriptions are a help, not a need: without them a
 * switch is still found by the next error (READONLY, a lost connection). */
static void subscribe(redis_be *b, size_t i, redisContext *c)
{
    drop_sub(b, i);
    redisReply *r = quiet(c, "SUBSCRIBE +switch-master");
    if (r && r->type == REDIS_REPLY_ARRAY)
        b->subs[i] = c;
    else
        redisFree(c);
    if (r)
        freeReplyObject(r);
}

/* Subscribe to every other Sentinel too: each publishes +switch-master
 * when IT learns of the new master, and the one that ran the failover
 * does so last, after re-pointing the replicas (seconds later, in
 * tests/store/redis_sentinel.bats), while the old master may still take
 * writes.  Connects are bounded by 100 ms (or timeout_ms if shorter) so
 * a Sentinel host that is gone costs little, and are tried only here,
 * when the handle (re)connects anyway. */
static void subscribe_others(redis_be *b, size_t answered)
{
    int ms = b->timeout_ms < 100 ? b->timeout_ms : 100;
    for (size_t k = 0; k < b->n_sentinels; k++) {
        if (k == answered || b->subs[k])
            continue;
        char w[160];
        redisContext *c = open_ctx_ms(b, b->sentinels[k].host,
                                      b->sentinels[k].port, NULL, ms, w,
                                      sizeof w);
        if (c)
            subscribe(b, k, c);
    }
}

/* Ask the Sentinels, in order starting with the last one that answered,
 * for the master's address (into *host, *port; new string), and keep a
 * +switch-master subscription on the one that answers.  Only one
 * Sentinel is asked when it answers: Sentinels agree on the master once a
 * failover is over, and during one a wrong answer costs an error (the old
 * master refuses the connection, or says READONLY or "slave" to ROLE). */
static sg_status sentinel_ask(redis_be *b, char **host, int *port,
                              sg_error *err)
{
    char why[256] = "no Sentinel";
    for (size_t k = 0; k < b->n_sentinels; k++) {
        size_t i = (b->sentinel_next + k) % b->n_sentinels;
        const sgi_redis_addr *a = &b->sentinels[i];
        char w[160];
        redisContext *c = open_ctx(b, a->host, a->port, NULL, w, sizeof w);
        if (!c) {
            snprintf(why, sizeof why, "Sentinel %s:%d: %s", a->host, a->port, w);
            continue;
        }
        redisReply *r = quiet(c, "SENTINEL get-master-addr-by-name %s",
                              b->master_name);
        long num = 0;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_STRING ||
            parse_num(r->element[1]->str, (size_t)r->element[1]->len, 1,
                      65535, &num) < 0) {
            snprintf(why, sizeof why, "Sentinel %s:%d: %s", a->host, a->port,
                     !r ? c->errstr : r->type == REDIS_REPLY_NIL
                     ? "does not know this master name"
                     : r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            if (r)
                freeReplyObject(r);
            redisFree(c);
            continue;
        }
        char *h = dupn(r->element[0]->str, (size_t)r->element[0]->len);
        freeReplyObject(r);
        if (!h) {
            redisFree(c);
            return sgi_oom(err, "store", b->uri);
        }
        subscribe(b, i, c);
        subscribe_others(b, i);
        b->sub_tried = now_ms();
        b->sentinel_next = i;
        *host = h;
        *port = (int)num;
        return SG_OK;
    }
    return sgi_err(err, SG_ESTORE, 0, "store %s: no Sentinel gave the address "
                   "of master %s (%s; start redis-sentinel or fix the URI)",
                   b->uri, b->master_name, why);
}

/* Read what the Sentinel subscriptions hold, without waiting: a
 * +switch-master for our master marks the connection for a reconnect.
 * When every subscription is lost they are renewed at most once a second,
 * from a Sentinel that answers (which may also name a new master). */
static void sentinel_poll(redis_be *b)
{
    if (!b->master_name)
        return;
    if (!have_subs(b)) {
        if (now_ms() - b->sub_tried < 1000)
            return;
        char *h = NULL;
        int port = 0;
        if (sentinel_ask(b, &h, &port, NULL) == SG_OK) {
            if (!b->host || strcmp(h, b->host) != 0 || port != b->port)
                b->broken = 1;
            free(h);
        }
        b->sub_tried = now_ms();
        return;
    }
    struct pollfd pfd[RD_MAX_SENTINELS];
    size_t idx[RD_MAX_SENTINELS], np = 0;
    for (size_t i = 0; i < b->n_sentinels; i++)
        if (b->subs[i]) {
            pfd[np] = (struct pollfd){ .fd = b->subs[i]->fd, .events = POLLIN };
            idx[np++] = i;
        }
    if (poll(pfd, (nfds_t)np, 0) <= 0)
        return;
    size_t n = strlen(b->master_name);
    for (size_t k = 0; k < np; k++) {
        if (!pfd[k].revents)
            continue;
        redisContext *c = b->subs[idx[k]];
        if (redisBufferRead(c) != REDIS_OK) {
            drop_sub(b, idx[k]);    /* that Sentinel went away */
            continue;
        }
        void *rep = NULL;
        while (redisGetReplyFromReader(c, &rep) == REDIS_OK && rep) {
            redisReply *r = rep;
            /* ["message", "+switch-master", "NAME OLDIP OLDPORT NEWIP NEWPORT"] */
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                r->element[2]->type == REDIS_REPLY_STRING &&
                (size_t)r->element[2]->len > n &&
                memcmp(r->element[2]->str, b->master_name, n) == 0 &&
                r->element[2]->str[n] == ' ') {
                /* Ask that Sentinel first: it knows the new master, the
                 * others (the one that ran the failover among them) may
                 * not yet. */
                b->broken = 1;
                b->sentinel_next = idx[k];
            }
            freeReplyObject(r);
            rep = NULL;
        }
    }
}

/* After connecting: AUTH, then (Sentinel) ROLE, SELECT and INFO. */
static sg_status conn_setup(redis_be *b, sg_error *err)
{
    redisReply *r;
    if (b->password) {
        /* Why not HELLO: Redis 5 and look-alikes lack it; AUTH with one
         * argument is also what requirepass alone wants. */
        r = b->user ? quiet(b->c, "AUTH %s %b", b->user, b->password,
                            b->password_len)
                    : quiet(b->c, "AUTH %b", b->password, b->password_len);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            /* Redis's error code (WRONGPASS, ERR) is enough: the message is
             * long, and sg_error has 160 bytes for the URI and the fix. */
            const char *msg = !r ? b->c->errstr : r->str;
            int n = !r ? (int)strlen(msg) : (int)strcspn(msg, " ");
            sg_status rc = sgi_err(err, SG_ESTORE, 0, "store %s: Redis refused "
                                   "the password%s%s (%.*s; check %s%s)",
                                   b->uri, b->user ? " of user " : "",
                                   b->user ? b->user : "", n, msg,
                                   b->password_file ? "password_file " : "$"
                                   RD_PASSWORD_ENV, b->password_file
                                   ? b->password_file : "");
            if (r)
                freeReplyObject(r);
            return rc;
        }
        freeReplyObject(r);
    }
    if (b->master_name) {
        /* The Sentinels may still name a master they are demoting; ROLE
         * says what the server thinks it is.  A user not allowed ROLE
         * (NOPERM) only loses this check: READONLY catches it later. */
        r = quiet(b->c, "ROLE");
        if (!r)
            return sgi_redis_fail(b, r, "ROLE", err);
        int replica = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                      r->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(r->element[0]->str, "master") != 0;
        freeReplyObject(r);
        if (replica)
            return sgi_err(err, SG_ESTORE, 0, "store %s: the Sentinels name "
                           "%s:%d as master %s, but it is a replica (a "
                           "failover is under way; retry)", b->uri, b->host,
                           b->port, b->master_name);
    }
    if (b->db != 0) {
        r = quiet(b->c, "SELECT %ld", b->db);
        if (!r || r->type != REDIS_REPLY_STATUS)
            return sgi_redis_fail(b, r, "SELECT", err);
        freeReplyObject(r);
    }
    /* The run_id tells a lease taken before a restart of the server from
     * a live one (r_lock).  A server that hides it (INFO renamed away, a
     * Redis look-alike, an ACL user without INFO) only loses that: leases
     * then just run out.  A NOAUTH here is the first sign that the server
     * wants a password we do not have: say so at open. */
    b->run_id[0] = '\0';
    r = quiet(b->c, "INFO server");
    if (!r || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0))
        return sgi_redis_fail(b, r, "INFO", err);
    const char *id = r->type == REDIS_REPLY_STRING ? strstr(r->str, "run_id:")
                                                   : NULL;
    if (id && strspn(id + 7, "0123456789abcdef") == RD_RUNID_LEN) {
        memcpy(b->run_id, id + 7, RD_RUNID_LEN);
        b->run_id[RD_RUNID_LEN] = '\0';
    }
    freeReplyObject(r);
    return SG_OK;
}

/* Connect (if not connected, or after an error) and select the database. */
sg_status sgi_redis_up(redis_be *b, sg_error *err)
{
    /* A connection inherited across fork() would interleave two
     * processes' commands and replies on one socket: the child opens its
     * own (redisFree only closes the child's copy of the descriptor). */
    if (b->pid != getpid()) {
        sgi_redis_drop(b);
        drop_subs(b);
        b->pid = getpid();
    }
    if (b->c && !b->broken && !b->c->err) {
        sentinel_poll(b);
        if (!b->broken)
            return SG_OK;
    }
    sgi_redis_drop(b);
    if (b->master_name) {
        char *h = NULL;
        int port = 0;
        sg_status rc = sentinel_ask(b, &h, &port, err);
        if (rc != SG_OK)
            return rc;
        free(b->host);
        b->host = h;
        b->port = port;
    }
    char why[160];
    redisContext *c = open_ctx(b, b->host, b->port, b->sock, why, sizeof why);
    if (!c) {
        /* sys_errno stays 0: an ENOENT here is a missing socket of a
         * server that is down, not a missing store, and callers treat
         * ENOENT as "no such store". */
        if (b->master_name)
            return sgi_err(err, SG_ESTORE, 0, "store %s: cannot connect to "
                           "master %s at %s:%d: %s (a failover may be under "
                           "way; retry)", b->uri, b->master_name, b->host,
                           b->port, why);
        return sgi_err(err, SG_ESTORE, 0, "store %s: cannot connect to Redis: "
                       "%s (start redis-server or fix the URI)", b->uri, why);
    }
    b->c = c;
    b->pid = getpid();
    sg_status rc = conn_setup(b, err);
    if (rc != SG_OK)
        sgi_redis_drop(b);
    return rc;
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

/* The write confirmation of min_replicas: WAIT N T, pipelined behind the
 * write so it costs no extra round trip.  T is half the command timeout,
 * so the WAIT's own answer comes back before the socket gives up, and
 * never 0 (WAIT 0 would wait forever). */
redisReply *sgi_redis_write(redis_be *b, const char *what, sg_error *err,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = sgi_redis_writev(b, what, err, fmt, ap);
    va_end(ap);
    return r;
}

/* sgi_redis_write with a va_list (backend_redis.c's scripts). */
redisReply *sgi_redis_writev(redis_be *b, const char *what, sg_error *err,
                             const char *fmt, va_list ap)
{
    if (b->min_replicas == 0)
        return cmd_v(b, what, err, 0, fmt, ap);
    if (!b->c || b->broken) {
        b->last = sgi_err(err, SG_ESTORE, 0, "store %s: not connected to "
                          "Redis (a previous error closed the connection)",
                          b->uri);
        return NULL;
    }
    int wait_ms = b->timeout_ms / 2 > 0 ? b->timeout_ms / 2 : 1;
    redisReply *r = NULL, *w = NULL;
    pipe_guard g;
    pipe_block(&g);
    if (redisvAppendCommand(b->c, fmt, ap) == REDIS_OK &&
        redisAppendCommand(b->c, "WAIT %d %d", b->min_replicas,
                           wait_ms) == REDIS_OK &&
        redisGetReply(b->c, (void **)&r) == REDIS_OK)
        redisGetReply(b->c, (void **)&w);
    pipe_unblock(&g);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (w)
            freeReplyObject(w);
        b->last = sgi_redis_fail(b, r, what, err);
        return NULL;
    }
    if (!w || w->type != REDIS_REPLY_INTEGER) {
        /* The write is done on the master, but we cannot say it is on a
         * replica: an error, never a false success. */
        freeReplyObject(r);
        b->last = sgi_redis_fail(b, w, "WAIT (for min_replicas)", err);
        return NULL;
    }
    long long got = w->integer;
    freeReplyObject(w);
    if (got < b->min_replicas) {
        freeReplyObject(r);
        b->last = sgi_err(err, SG_ESTORE, 0, "store %s: %s not confirmed by "
                          "%d replica%s in %d ms (min_replicas=%d; got %lld): "
                          "it may be lost in a failover", b->uri, what,
                          b->min_replicas, b->min_replicas > 1 ? "s" : "",
                          wait_ms, b->min_replicas, got);
        return NULL;
    }
    return r;
}
