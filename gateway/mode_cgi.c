/*
 * mode_cgi.c - --mode cgi: run a CGI program with the session in its
 * environment, and apply the session changes it asks for.
 *
 * Like fcgiwrap, with what fcgiwrap lacks (reliability.md 1.4):
 *  - only a script that resolves (realpath: symlinks and ".." followed)
 *    inside --cgi-root, or the one --cgi-program, ever runs; a missing
 *    script is 404 and one outside the root 403, and nothing is executed;
 *  - the environment is built from an allow-list (inbound.c), never
 *    inherited; client headers that imitate session names are dropped and
 *    SESSION_* is set by the gateway alone;
 *  - the request body and the reply stream both ways under one poll()
 *    loop, so a program that writes a lot before reading its input cannot
 *    deadlock against us (fcgiwrap copies the whole body first);
 *  - --cgi-timeout kills the program's process group and reaps it.
 * The reply header block is parsed by cgi_reply.c: X-Session-Set/Replace/
 * Login/Logout/Rotate are applied under the store lock and stripped, and a
 * program that fails before any header gives 502 (504 on timeout).  A
 * Set/Replace whose keys another request changed while the program ran
 * gives 409 and is not applied (no lost updates, cgi_stale below).  The
 * directives of one reply are all-or-nothing: one that is rejected
 * (invalid JSON, not an object, too big, a bad user name) gives 502 and
 * none is applied (cgi_apply).  X-Session-Logout: all ends every session
 * of the current user, not only this one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>
#include <jansson.h>

#include "gateway.h"

/* ------------------------------------------------------------ script */

/* Resolve the script to run.  New: *out (free()).  Returns 0 or the HTTP
 * status to answer with (403, 404). */
static int cgi_resolve(gw_request *rq, char **out)
{
    const gw_config *cfg = rq->cfg;
    const char *sf = request_param(rq, "SCRIPT_FILENAME");
    char *joined = NULL, *real;
    size_t rootlen;
    struct stat sb;

    *out = NULL;
    if (cfg->cgi_program) {
        *out = strdup(cfg->cgi_program);
        return *out ? 0 : 500;
    }
    if (!sf || !*sf) {
        const char *root = request_param(rq, "DOCUMENT_ROOT");
        const char *name = request_param(rq, "SCRIPT_NAME");
        if (!root || !name || !*name)
            return 404;
        if (asprintf(&joined, "%s/%s", root, name) < 0)
            return 500;
        sf = joined;
    }
    real = realpath(sf, NULL);          /* owned: handed out or freed */
    if (!real) {
        int e = errno;
        log_msg("cgi script %.300s: %s", sf, strerror(e));
        free(joined);
        return e == EACCES ? 403 : 404;
    }
    free(joined);
    rootlen = strlen(cfg->cgi_root);
    /* Why: the resolved path, not the given one, must lie under the root,
     * or "../" and symlinks would lead anywhere (fcgiwrap runs any path). */
    if (strncmp(real, cfg->cgi_root, rootlen) != 0 ||
        (real[rootlen] != '/' && !(rootlen == 1 && cfg->cgi_root[0] == '/'))) {
        log_msg("cgi script %.300s resolves outside --cgi-root; refused", real);
        free(real);
        return 403;
    }
    if (stat(real, &sb) < 0 || !S_ISREG(sb.st_mode) || access(real, X_OK) < 0) {
        log_msg("cgi script %.300s is not an executable file", real);
        free(real);
        return 403;
    }
    *out = real;
    return 0;
}

/* --------------------------------------------------------- environment */

typedef struct cgi_env {
    char  *vars[GW_MAX_ENV + 1];
    char  *owned[16];               /* strings made here, freed by env_free */
    size_t n, nowned;
} cgi_env;

static int env_has(const cgi_env *env, const char *entry)
{
    size_t i, k = strcspn(entry, "=");

    for (i = 0; i < env->n; i++)
        if (strncmp(env->vars[i], entry, k) == 0 && env->vars[i][k] == '=')
            return 1;
    return 0;
}

static void env_add(cgi_env *env, char *entry)
{
    if (env->n < GW_MAX_ENV && !env_has(env, entry))
        env->vars[env->n++] = entry;
}

static void env_addf(cgi_env *env, const char *name, const char *value)
{
    char *s;

    if (env->nowned == sizeof env->owned / sizeof *env->owned)
        return;
    if (asprintf(&s, "%s=%s", name, value) < 0)
        return;
    env->owned[env->nowned++] = s;
    env_add(env, s);
}

static void env_free(cgi_env *env)
{
    size_t i;

    for (i = 0; i < env->nowned; i++)
        free(env->owned[i]);
}

/* Build the program's environment: fixed PATH, allowed params, the
 * session.  *truncated says whether SESSION_DATA was left out. */
static void cgi_build_env(gw_request *rq, cgi_env *env, const char *flash)
{
    char **e;
    buf cookies;
    int ncookies = 0, truncated = 0;

    memset(env, 0, sizeof *env);
    /* The gateway's own variables first: nothing from the request can
     * shadow them (env_add keeps the first of a name). */
    env_addf(env, "PATH", "/usr/local/bin:/usr/bin:/bin");
    /* The gateway's store, so a program using the bindings opens the same
     * sessions (sessgate.Store() and sg.open() read SESSGATE_STORE). */
    env_addf(env, "SESSGATE_STORE", rq->cfg->store_uri);
    if (rq->session) {
        const char *user = sg_session_user(rq->session);
        char *data_json, *data = NULL;

        env_addf(env, "SESSION_ID", sg_session_id(rq->session));
        if (user && *user) {
            char *enc = inject_user(user);
            if (enc) {
                env_addf(env, "SESSION_USER", enc);
                free(enc);
            }
        }
        data_json = sg_session_data_json(rq->session);
        if (inject_data(&rq->cfg->inject, data_json, &data, &truncated) < 0) {
            char h[LOG_HASH_LEN + 1];

            log_event(LOG_WARN, "inject_failed", "session data could not be injected",
                      "sid", log_idhash(sg_session_id(rq->session), h), (const char *)NULL);
            truncated = 1;
        } else if (truncated)
            log_inject_truncated(rq, data_json);
        if (data && *data)
            env_addf(env, "SESSION_DATA", data);
        free(data);
        free(data_json);
        if (rq->created)
            env_addf(env, "SESSION_NEW", "1");
        if (*sg_session_csrf_token(rq->session))
            env_addf(env, "SESSION_CSRF", sg_session_csrf_token(rq->session));
        if (flash)
            env_addf(env, "SESSION_FLASH", flash);
        if (truncated)
            env_addf(env, "SESSION_DATA_TRUNCATED", "1");
    }
    /* Several Cookie params (nginx) become one variable, joined by "; ",
     * so the program sees them all, not just the last (fcgiwrap). */
    buf_init(&cookies, GW_MAX_COOKIE + 64);
    for (e = rq->envp; e && *e; e++)
        if (strncmp(*e, "HTTP_COOKIE=", 12) == 0) {
            buf_adds(&cookies, ncookies++ ? "; " : "HTTP_COOKIE=");
            buf_adds(&cookies, *e + 12);
        }
    if (ncookies > 1 && !cookies.failed) {
        char *c = buf_steal(&cookies);
        if (c && env->nowned < sizeof env->owned / sizeof *env->owned) {
            env->owned[env->nowned++] = c;
            env_add(env, c);
        } else
            free(c);
    }
    buf_free(&cookies);
    for (e = rq->envp; e && *e; e++) {
        char name[128];
        size_t k = strcspn(*e, "=");

        if (k == 0 || k >= sizeof name || (*e)[k] != '=')
            continue;
        memcpy(name, *e, k);
        name[k] = '\0';
        switch (inbound_classify(name)) {
        case INBOUND_CGI:
        case INBOUND_HTTP:
            env_add(env, *e);
            break;
        default:
            break;              /* dropped: spoof or not for CGI */
        }
    }
    if (!env_has(env, "GATEWAY_INTERFACE="))
        env_addf(env, "GATEWAY_INTERFACE", "CGI/1.1");
    env->vars[env->n] = NULL;
}

/* ------------------------------------------------------- session edits */

static int directive_on(const char *v)
{
    return *v && strcmp(v, "0") != 0;
}

/* Whether json values a and b (either may be NULL: key absent) are equal. */
static int json_same(json_t *a, json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

/*
 * Why (DESIGN 3, no lost updates): the program computed its X-Session-Set
 * and X-Session-Replace values from the SESSION_DATA it was given (a
 * counter: n+1).  If another request saved the session while it ran, the
 * copy reloaded under the lock is newer, and merging into it would silently
 * overwrite that request's write: two concurrent increments would count as
 * one (measured: up to half of concurrent increments lost).  So a change is
 * stale when a key it sets (Set), or the data it replaces (Replace), no
 * longer holds what the program was given.  Keys it did not name may have
 * changed freely, e.g. by the program itself through the bindings, which is
 * why the reload stays.  1 stale (or unreadable: fail safe), 0 not.
 */
static int cgi_stale(const sg_session *seen, const sg_session *cur, const reply *r)
{
    char *seen_text, *cur_text;
    json_t *seen_data, *cur_data;
    int stale = 0;
    size_t i;

    if (!seen || !cur || sg_session_version(seen) == sg_session_version(cur))
        return 0;
    for (i = 0; i < r->nheaders; i++)
        if (r->headers[i].directive == DIR_SET || r->headers[i].directive == DIR_REPLACE)
            break;
    if (i == r->nheaders)
        return 0;                       /* no Set/Replace: nothing to overwrite */
    seen_text = sg_session_data_json(seen);     /* owned here, freed below */
    cur_text = sg_session_data_json(cur);       /* owned here, freed below */
    seen_data = seen_text ? json_loads(seen_text, 0, NULL) : NULL;
    cur_data = cur_text ? json_loads(cur_text, 0, NULL) : NULL;
    if (!json_is_object(seen_data) || !json_is_object(cur_data))
        stale = 1;
    for (i = 0; i < r->nheaders && !stale; i++) {
        const reply_header *h = &r->headers[i];
        json_t *change, *v;
        const char *key;

        if (h->directive == DIR_REPLACE)
            stale = !json_equal(seen_data, cur_data);
        else if (h->directive == DIR_SET) {
            change = json_loads(h->value, 0, NULL);
            /* Not an object: not applied below either (logged there). */
            if (json_is_object(change))
                json_object_foreach(change, key, v)
                    if (!json_same(json_object_get(seen_data, key),
                                   json_object_get(cur_data, key))) {
                        stale = 1;
                        break;
                    }
            json_decref(change);
        }
    }
    json_decref(seen_data);
    json_decref(cur_data);
    free(seen_text);
    free(cur_text);
    return stale;
}

/* What cgi_apply did. */
enum {
    APPLY_OK = 0,           /* applied (or nothing to apply) */
    APPLY_STALE = 1,        /* stale (cgi_stale): nothing applied, 409 */
    APPLY_REJECTED = 2,     /* a directive was invalid: nothing applied, 502 */
    APPLY_STORE = -1        /* store failure: 503 */
};

/*
 * Apply the program's X-Session-* directives.  Appends Set-Cookie to
 * rq->head as needed.  Returns an APPLY_* code.
 *
 * Why all-or-nothing (issue #12, item 6): the directives of one reply are
 * one change of the session, as the program meant it.  Applying the good
 * ones of a reply whose X-Session-Set is invalid JSON (or too big) stores
 * a state the program never asked for, and passing its 200 on tells the
 * client that a change happened that did not.  So every directive is
 * applied to one copy under the store lock, and only when all of them are
 * accepted is the copy written, in one write (a rotate saves the pending
 * changes with the new id); otherwise nothing is written and the client
 * gets an error, not the program's body.
 */
static int cgi_apply(gw_request *rq, const reply *r)
{
    sg_store *st = rq->store;
    sg_session *s = NULL;
    sg_error err;
    sg_status rc;
    size_t i;
    int want = 0, logout = 0, logout_all = 0, rotate = 0, changed = 0;
    int created = rq->created;
    const char *bad = NULL;

    for (i = 0; i < r->nheaders; i++) {
        switch (r->headers[i].directive) {
        case DIR_SET: case DIR_REPLACE: case DIR_LOGIN: case DIR_FLASH:
            want = 1;
            break;
        case DIR_LOGOUT:
            if (strcmp(r->headers[i].value, "all") == 0)
                logout_all = 1;
            logout |= directive_on(r->headers[i].value);
            break;
        case DIR_ROTATE:
            rotate |= directive_on(r->headers[i].value);
            break;
        default:
            break;
        }
    }
    if (!want && !logout && !rotate) {
        if (rq->created || rq->renewed)
            respond_cookie(&rq->head, rq->cfg, sg_session_id(rq->session), rq->https);
        return APPLY_OK;
    }
    if (!st)
        return APPLY_STORE;     /* store_handle() logged why, once */
    sg_error_clear(&err);
    if (logout) {
        /* "all": every session of the current user ends, in one step
         * that a login of that user elsewhere cannot interleave with
         * (sg_store_delete_user); the current one too, user or not. */
        const char *user = rq->session ? sg_session_user(rq->session) : NULL;
        if (logout_all && user) {
            size_t n = 0;
            rc = sg_store_delete_user(st, user, &n, &err);
            if (rc != SG_OK) {
                log_msg("%s", err.text);
                return APPLY_STORE;
            }
            metrics_add(MET_SESSIONS_DELETED, n);
            sg_error_clear(&err);
        }
        if (rq->session) {
            rc = sg_session_delete(st, sg_session_id(rq->session), &err);
            if (rc != SG_OK && rc != SG_ENOTFOUND) {
                log_store_error(&err);
                return APPLY_STORE;
            }
            if (rc == SG_OK)
                metrics_add(MET_SESSIONS_DELETED, 1);
        }
        if (want || rotate)
            log_msg("X-Session-Logout given: other X-Session directives ignored");
        respond_cookie(&rq->head, rq->cfg, NULL, rq->https);
        return APPLY_OK;
    }
    /* Why: the program may have changed the session itself (bindings)
     * while it ran; reload it under the lock so nothing is lost. */
    if (sg_store_begin(st, &err) != SG_OK) {
        log_store_error(&err);
        return APPLY_STORE;
    }
    if (rq->session) {
        rc = sg_session_get(st, sg_session_id(rq->session), SG_GET_NOTOUCH | SG_GET_DAMAGED_ABSENT,
                            &s, &err);
        if (rc != SG_OK && rc != SG_ENOTFOUND && rc != SG_EEXPIRED)
            goto store_fail;
        sg_error_clear(&err);
    }
    if (!s && !want) {
        sg_store_end(st);
        if (rq->renewed && rq->session)
            respond_cookie(&rq->head, rq->cfg, sg_session_id(rq->session), rq->https);
        return APPLY_OK;                /* rotate without a session: nothing */
    }
    if (want && cgi_stale(rq->session, s, r)) {
        char h[LOG_HASH_LEN + 1];

        sg_store_end(st);
        log_event(LOG_WARN, "conflict", "the session changed while the program ran; its "
                  "X-Session-Set/Replace would overwrite that change: not applied, 409",
                  "sid", log_idhash(sg_session_id(s), h), (const char *)NULL);
        metrics_add(MET_CONFLICTS, 1);
        sg_session_free(s);
        return APPLY_STALE;
    }
    if (!s) {
        /* Made under the lock we hold: if a directive is then rejected it
         * is deleted again before anyone could have learnt its id. */
        rc = sg_session_create(st, NULL, NULL, 0, 0, &s, &err);
        if (rc != SG_OK)
            goto store_fail;
        created = 2;
    }
    for (i = 0; i < r->nheaders && !bad; i++) {
        const reply_header *h = &r->headers[i];

        sg_error_clear(&err);
        switch (h->directive) {
        case DIR_SET:
            rc = sg_session_merge_data(s, h->value, &err);
            break;
        case DIR_REPLACE:
            rc = sg_session_set_data(s, h->value, &err);
            break;
        case DIR_LOGIN:
            rc = sg_session_set_user(s, h->value, &err);
            if (rc == SG_OK)
                rotate = 1;
            break;
        case DIR_FLASH:
            rc = sg_session_flash_add(s, h->value, &err);
            break;
        default:
            continue;
        }
        if (rc == SG_OK)
            changed = 1;
        else if (rc == SG_ENOMEM)
            goto store_fail;
        else
            bad = h->name;
    }
    if (bad) {
        log_msg("%s from the program rejected: %s; no X-Session directive of this "
                "reply applied, 502", bad, err.text);
        if (created == 2)
            (void)sg_session_delete(st, sg_session_id(s), NULL);
        sg_store_end(st);
        sg_session_free(s);
        return APPLY_REJECTED;
    }
    sg_error_clear(&err);
    /* One write: a rotate stores the pending changes under the new id. */
    if (rotate && !created)
        rc = sg_session_rotate(st, s, &err);
    else
        rc = changed ? sg_session_save(st, s, &err) : SG_OK;
    if (rc == SG_ECONFLICT) {
        sg_store_end(st);
        log_msg("%s; nothing applied, 409", err.text);
        metrics_add(MET_CONFLICTS, 1);
        sg_session_free(s);
        return APPLY_STALE;
    }
    if (rc != SG_OK)
        goto store_fail;
    sg_store_end(st);
    if (created == 2)
        metrics_add(MET_SESSIONS_CREATED, 1);
    else if (rotate && !created)
        metrics_add(MET_SESSIONS_ROTATED, 1);
    if (created || rotate || rq->renewed)
        respond_cookie(&rq->head, rq->cfg, sg_session_id(s), rq->https);
    sg_session_free(s);
    return APPLY_OK;
store_fail:
    if (created == 2)
        (void)sg_session_delete(st, sg_session_id(s), NULL);
    sg_store_end(st);
    log_store_error(&err);
    sg_session_free(s);
    return APPLY_STORE;
}

/* ----------------------------------------------------------- streaming */

typedef struct cgi_io {
    gw_request *rq;
    pid_t   pid;
    int     to_child, from_child;
    char   *inbuf;                  /* body bytes on their way to the program */
    size_t  in_len, in_off;
    int     body_eof;
    long long content_length;       /* CONTENT_LENGTH, -1 when not given */
    unsigned long long body_total;  /* body bytes received from the server */
    int     deferred;               /* header block done, body not yet whole */
    buf     pending;                /* output held while deferred */
    int     client_gone;            /* abort or hang-up seen: program killed */
    reply   r;
    int     sent;                   /* the header block has gone out */
    int     failed;                 /* an error answer went out */
} cgi_io;

/* Output held back while the body is still arriving: beyond this the
 * program's stdout is not read (backpressure), so memory stays bounded. */
#define CGI_PENDING_MAX (1024 * 1024)

/* Bytes libfcgi already holds for FCGI_STDIN (readable without blocking). */
static size_t fcgi_buffered(const FCGX_Stream *in)
{
    if (!in || in->isClosed || in->stop < in->rdNext)
        return 0;
    return (size_t)(in->stop - in->rdNext);
}

/*
 * libfcgi reads the socket in 8 KB gulps that can hold several records,
 * but a stream shows only the current record (rdNext..stop).  When the
 * rest of the body (or its end record) already sits in that buffer, the
 * socket never polls readable again, and waiting for it would stall until
 * the timeout.  So we look at the reader's private buffer end.  This mirrors
 * FCGX_Stream_Data of fcgiapp.c, unchanged from libfcgi 2.4.0 to 2.4.6;
 * the checks below make a different layout answer "maybe" (1), and a
 * "maybe" read is bounded by the request deadline (SIGALRM).
 */
struct fcgi_stream_data_mirror {
    unsigned char *buff;
    int bufflen;
    unsigned char *mBuff;
    unsigned char *buffStop;
    int type, eorStop, skip, contentLen, paddingLen, isAnythingWritten, rawWrite;
    FCGX_Request *reqDataPtr;
};

static int fcgi_more_buffered(const FCGX_Request *fr)
{
    const FCGX_Stream *in = fr->in;
    const struct fcgi_stream_data_mirror *d;

    if (!in || in->isClosed)
        return 0;
    d = in->data;
    if (!d || d->reqDataPtr != fr || d->bufflen <= 0 || d->bufflen > (1 << 24) ||
        d->buff > in->rdNext || in->rdNext > d->buffStop ||
        d->buffStop > d->buff + d->bufflen)
        return 1;                       /* unknown layout: maybe */
    return d->buffStop > in->rdNext;
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

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The value of a Set-Cookie for the session cookie, or NULL when header
 * name: value is something else.  The header name is matched the way the
 * web server reads it (case ignored); the cookie name byte for byte, as
 * browsers do, after the blanks a browser skips.  Borrowed: into value. */
static const char *cgi_own_cookie(const gw_config *cfg, const char *name,
                                  const char *value)
{
    size_t n = strlen(cfg->cookie_name), k;

    if (strcasecmp(name, "Set-Cookie") != 0 && strcasecmp(name, "Set-Cookie2") != 0)
        return NULL;
    value += strspn(value, " \t");
    k = strcspn(value, "=");
    if (value[k] != '=')
        return NULL;
    while (k && (value[k - 1] == ' ' || value[k - 1] == '\t'))
        k--;
    if (k != n || memcmp(value, cfg->cookie_name, n) != 0)
        return NULL;
    value += strcspn(value, "=") + 1;
    return value + strspn(value, " \t");
}

/*
 * Whether the program's own Set-Cookie for the session cookie may pass.
 * Why (issue #17): the gateway owns its cookie.  A program printing
 * "Set-Cookie: sessgate=<id>" could pin a browser to an id of its choosing
 * (fixation: an app echoing a client-supplied id) or undo the gateway's
 * rotation or logout.  But an app behind cgi mode that manages the session
 * through the bindings (sessgate.wsgi: create on first write, rotate on
 * login) must tell the browser about the id it made.  So it passes only
 * when the gateway sets no cookie in this response and the value is empty
 * (an expiry: pins nothing) or names a live session in the store (an id
 * the store made, never one a client chose).  Anything else is dropped and
 * logged (event=cgi_cookie_dropped).
 */
static int cgi_cookie_allowed(gw_request *rq, const char *v, int gateway_sets)
{
    char id[SG_ID_LEN + 1];
    size_t k = strcspn(v, ";");
    sg_session *s = NULL;
    sg_error err;
    int ok;

    while (k && (v[k - 1] == ' ' || v[k - 1] == '\t'))
        k--;
    if (gateway_sets)
        return 0;
    if (k == 0 || (k == 2 && v[0] == '"' && v[1] == '"'))
        return 1;
    if (k == SG_ID_LEN + 2 && v[0] == '"' && v[k - 1] == '"') {
        v++;
        k -= 2;
    }
    if (k != SG_ID_LEN || !rq->store)
        return 0;
    memcpy(id, v, SG_ID_LEN);
    id[SG_ID_LEN] = '\0';
    if (!sg_id_valid(id))
        return 0;
    sg_error_clear(&err);
    ok = sg_session_get(rq->store, id, SG_GET_NOTOUCH | SG_GET_DAMAGED_ABSENT, &s, &err)
         == SG_OK;
    sg_session_free(s);
    return ok;
}

/* Emit the reply's header block, with the session changes applied. */
static int cgi_send_headers(cgi_io *io)
{
    gw_request *rq = io->rq;
    const reply *r = &io->r;
    size_t i, before;
    int cookie;
    const char *own;

    buf_reset(&rq->head);
    respond_status(&rq->head, r->status);
    before = rq->head.len;
    switch (cgi_apply(rq, r)) {
    case APPLY_OK:
        break;
    case APPLY_STALE:
        request_fail(rq, 409, "409 Conflict: the session changed while the program ran; "
                              "nothing was applied (retry)\n");
        io->failed = 1;
        return -1;
    case APPLY_REJECTED:
        request_fail(rq, 502, "502 Bad Gateway: the program's session change was "
                              "rejected; nothing was applied\n");
        io->failed = 1;
        return -1;
    default:
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        io->failed = 1;
        return -1;
    }
    /* cgi_apply appended only the cookie lines (with Cache-Control:
     * no-store and Vary: Cookie, see respond_cookie). */
    cookie = rq->head.len != before;
    for (i = 0; i < r->nheaders; i++) {
        if (r->headers[i].directive != DIR_NONE)
            continue;
        /* Why: a response that sets or ends the session must not be
         * stored by a cache, whatever the program asked for. */
        if (cookie && strcasecmp(r->headers[i].name, "Cache-Control") == 0)
            continue;
        if ((own = cgi_own_cookie(rq->cfg, r->headers[i].name, r->headers[i].value)) &&
            !cgi_cookie_allowed(rq, own, cookie)) {
            log_event(LOG_WARN, "cgi_cookie_dropped", cookie
                      ? "the program set the session cookie beside the gateway's; dropped"
                      : "the program set the session cookie to no live session; dropped",
                      (const char *)NULL);
            continue;
        }
        buf_addf(&rq->head, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
    }
    /* The program's output was built from the session: a cache must key
     * it on the cookie (as Django's SessionMiddleware does). */
    if (!cookie && rq->session)
        respond_header(&rq->head, "Vary", "Cookie");
    io->sent = 1;
    return request_send(rq, NULL);
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

/* Run the poll loop until the program's stdout ends (and a held header
 * block is decided) or time runs out.  Returns 1 on timeout, 0 otherwise. */
static int cgi_pump(cgi_io *io, int64_t deadline)
{
    char *chunk = malloc(GW_IO_CHUNK);      /* owned here, freed below */
    int ipc = io->rq->fcgi->ipcFd, timed_out = 0, watch = 1;

    if (!chunk) {
        log_msg("out of memory in cgi mode");
        return 0;
    }
    while (io->from_child >= 0 || io->deferred) {
        struct pollfd pf[3];
        int np = 0, i_out = -1, i_in = -1, i_ipc = -1, i_gone = -1, left;
        int64_t now = proc_now_ms();
        int reading = io->to_child >= 0 || io->deferred;

        if (io->to_child < 0)
            io->in_off = io->in_len;    /* the program wants no more: count only */
        /* Refill from what libfcgi already buffered: no poll needed. */
        if (reading && io->in_off == io->in_len && !io->body_eof &&
            (fcgi_buffered(io->rq->fcgi->in) > 0 || fcgi_more_buffered(io->rq->fcgi))) {
            cgi_read_body(io, deadline);
            if (io->to_child < 0)
                continue;               /* counted; look at libfcgi's buffer again */
        }
        if (io->to_child >= 0 && io->in_off == io->in_len && io->body_eof)
            close_fd(&io->to_child);    /* the program sees end of input */
        if (io->deferred && io->body_eof) {
            if (cgi_resolve_deferred(io) < 0)
                break;
            continue;
        }
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        left = (int)(deadline - now);
        if (io->from_child >= 0 && !(io->deferred && io->pending.len >= CGI_PENDING_MAX)) {
            pf[np].fd = io->from_child;
            pf[np].events = POLLIN;
            i_out = np++;
        }
        if (io->to_child >= 0 && io->in_off < io->in_len) {
            pf[np].fd = io->to_child;
            pf[np].events = POLLOUT;
            i_in = np++;
        } else if (reading && !io->body_eof) {
            pf[np].fd = ipc;
            pf[np].events = POLLIN;
            i_ipc = np++;
        } else if (io->body_eof && watch && ipc >= 0) {
            pf[np].fd = ipc;
            pf[np].events = POLLIN | POLLRDHUP;
            i_gone = np++;
        }
        if (np == 0)
            break;                      /* nothing left to wait for */
        if (poll(pf, (nfds_t)np, left) < 0) {
            if (errno == EINTR)
                continue;
            log_msg("poll: %s", strerror(errno));
            break;
        }
        if (i_gone >= 0 && pf[i_gone].revents) {
            if (cgi_client_gone(ipc)) {
                /* Kill at once: nobody is left to read the answer. */
                proc_kill(io->pid, SIGKILL);
                io->client_gone = 1;
                metrics_add(MET_CLIENTS_GONE, 1);
                log_event(LOG_INFO, "client_gone", "the web server aborted the request or "
                          "closed the connection; the program's process group was killed",
                          (const char *)NULL);
                break;
            }
            watch = 0;                  /* data of another kind: leave it to libfcgi */
        }
        if (i_in >= 0 && pf[i_in].revents) {
            ssize_t w = write(io->to_child, io->inbuf + io->in_off, io->in_len - io->in_off);
            if (w > 0)
                io->in_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                /* The program closed its stdin: it wants no more body. */
                close_fd(&io->to_child);
            }
        }
        if (i_ipc >= 0 && pf[i_ipc].revents)
            cgi_read_body(io, deadline);
        if (i_out >= 0 && pf[i_out].revents) {
            ssize_t n = read(io->from_child, chunk, GW_IO_CHUNK);
            if (n > 0) {
                if (cgi_output(io, chunk, (size_t)n) < 0)
                    break;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                close_fd(&io->from_child);
        }
    }
    free(chunk);
    return timed_out;
}

/* Answer one request in cgi mode. */
void mode_cgi_handle(gw_request *rq)
{
    const gw_config *cfg = rq->cfg;
    char *script = NULL, *dir, *slash, *flash = NULL;
    cgi_env env;
    cgi_io io;
    int status, timed_out, broke, code;
    int64_t deadline = proc_now_ms() + cfg->cgi_timeout * 1000;

    code = cgi_resolve(rq, &script);
    if (code) {
        request_fail(rq, code, code == 404 ? "404 Not Found\n" :
                               code == 403 ? "403 Forbidden\n" : "500 Internal Server Error\n");
        return;
    }
    if (request_load_session(rq) < 0) {
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        free(script);
        return;
    }
    /* Before an anonymous session is made: a request refused here must
     * leave nothing behind. */
    if (csrf_enforce(rq) < 0) {
        free(script);
        return;
    }
    renew_maybe(rq);
    if (!rq->session && cfg->anonymous && request_create_session(rq) < 0) {
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        free(script);
        return;
    }
    /* Flash messages are taken from the store now, once: a second request
     * of the same session running at the same time gets none of them. */
    if (rq->session && sg_session_has_flash(rq->session) && rq->store) {
        sg_error ferr;

        sg_error_clear(&ferr);
        if (sg_session_flash_pop(rq->store, rq->session, &flash, &ferr) != SG_OK) {
            log_msg("flash messages not delivered: %s", ferr.text);
            flash = NULL;
        } else if (strcmp(flash, "[]") == 0) {
            free(flash);
            flash = NULL;
        }
    }
    cgi_build_env(rq, &env, flash);
    free(flash);
    dir = strdup(script);
    slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';

    memset(&io, 0, sizeof io);
    io.rq = rq;
    io.to_child = io.from_child = -1;
    buf_init(&io.pending, CGI_PENDING_MAX + GW_IO_CHUNK);
    reply_init(&io.r);
    io.inbuf = malloc(GW_IO_CHUNK);        /* owned here, freed below */
    io.pid = io.inbuf ? proc_spawn(script, env.vars, dir, &io.to_child, &io.from_child) : -1;
    if (io.pid > 0)
        prefork_mark_cgi(io.pid);       /* the master kills it if we die */
    env_free(&env);
    free(dir);
    if (io.pid < 0) {
        log_msg("cannot start %.300s: %s", script, strerror(errno));
        request_fail(rq, 502, "502 Bad Gateway: the program could not be started\n");
        goto out;
    }
    metrics_add(MET_CGI_RUN, 1);
    fcntl(io.to_child, F_SETFL, O_NONBLOCK);
    fcntl(io.from_child, F_SETFL, O_NONBLOCK);
    /* In the responder role the web server always ends FCGI_STDIN; an
     * authorizer (misconfigured) never does, so never read it there. */
    io.body_eof = rq->role == ROLE_AUTHORIZER;
    io.content_length = -1;
    if (rq->role == ROLE_RESPONDER) {
        const char *cl = request_param(rq, "CONTENT_LENGTH");
        char *end;
        long long v;

        errno = 0;
        v = cl && *cl ? strtoll(cl, &end, 10) : -1;
        if (cl && *cl && (errno || *end || v < 0))
            v = -1;                     /* unusable: the old behaviour */
        io.content_length = v;
    }

    timed_out = cgi_pump(&io, deadline);
    broke = io.from_child >= 0 || io.deferred;  /* stopped before the output ended */
    if (io.client_gone)
        rq->abort = 1;                  /* nobody to answer */
    close_fd(&io.to_child);
    close_fd(&io.from_child);
    if (timed_out)
        log_msg("cgi program %.300s killed after %ld s (--cgi-timeout)", script, cfg->cgi_timeout);
    if (timed_out || broke)
        proc_kill(io.pid, SIGKILL);
    status = proc_reap(io.pid, (timed_out || broke) ? proc_now_ms() : deadline);
    prefork_mark_cgi(0);
    if (timed_out)
        metrics_add(MET_CGI_TIMEOUTS, 1);
    else if (!broke && status != -1 && WIFSIGNALED(status))
        metrics_add(MET_CGI_KILLED, 1);     /* not our own kill after a 409/502 */
    if (io.sent && (timed_out || (status != -1 && WIFSIGNALED(status)))) {
        char sig[16];

        /* Why: its header block (often a 200) already went out; ending the
         * FastCGI request normally would pass a cut body off as whole. */
        snprintf(sig, sizeof sig, "%d", timed_out ? SIGKILL
                 : WTERMSIG(status));
        log_event(LOG_WARN, "cgi_killed", timed_out
                  ? "cgi program killed by --cgi-timeout after its header block; reply cut off"
                  : "cgi program died of a signal after its header block; reply cut off",
                  "script", script, "signal", sig, "phase", "body", (const char *)NULL);
        rq->abort = 1;
    }
    if (!io.sent && !io.failed && !io.client_gone) {
        if (timed_out)
            request_fail(rq, 504, "504 Gateway Timeout: the program took too long\n");
        else {
            reply_eof(&io.r);
            if (status != -1 && WIFSIGNALED(status))
                log_msg("cgi program %.300s died of signal %d before any header; 502",
                        script, WTERMSIG(status));
            else
                log_msg("cgi program %.300s exited (status %d) before its header block "
                        "ended; 502", script, status != -1 && WIFEXITED(status)
                        ? WEXITSTATUS(status) : -1);
            request_fail(rq, 502, "502 Bad Gateway: the program sent no reply\n");
        }
    }
out:
    reply_free(&io.r);
    buf_free(&io.pending);
    free(io.inbuf);
    free(script);
}
