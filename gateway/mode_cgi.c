/*
 * mode_cgi.c - --mode cgi: run a CGI program with the session in its
 * environment, and apply the session changes it asks for.
 *
 * Like fcgiwrap, with what fcgiwrap lacks (reliability.md 1.4).  The five
 * jobs live in their own files and this one strings them together:
 *  - cgi_script.c: only a script that resolves inside --cgi-root, or the
 *    one --cgi-program, ever runs (404 missing, 403 outside the root);
 *  - cgi_env.c: the environment is built from an allow-list (inbound.c),
 *    never inherited; SESSION_* is set by the gateway alone;
 *  - cgi_stream.c: the request body and the reply stream both ways under
 *    one poll() loop (no deadlock against a program that writes first);
 *    --cgi-timeout kills the program's process group and reaps it;
 *  - cgi_apply.c: the X-Session-* directives of the reply (parsed by
 *    cgi_reply.c) are applied under the store lock, all or nothing, and
 *    refused with 409 when the session changed while the program ran
 *    (cgi_stale: no lost updates); a rejected one gives 502;
 *  - here: the header block that goes out (the gateway's cookie, the
 *    program's own Set-Cookie for the session cookie only when allowed),
 *    and the end of the run: a program that fails before any header gives
 *    502 (504 on timeout).
 * X-Session-Logout: all ends every session of the current user, not only
 * this one.
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
int cgi_send_headers(cgi_io *io)
{
    gw_request *rq = io->rq;
    const reply *r = &io->r;
    size_t i, before;
    int cookie;
    const char *own;
    apply_result res;

    buf_reset(&rq->head);
    respond_status(&rq->head, r->status);
    before = rq->head.len;
    switch (cgi_apply(rq->store, rq->session, rq->created, rq->renewed, r, &res)) {
    case APPLY_OK:
        if (res.cookie != APPLY_COOKIE_KEEP)
            respond_cookie(&rq->head, rq->cfg,
                           res.cookie == APPLY_COOKIE_SET ? res.id : NULL, rq->https);
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
    /* The cookie lines are all that was appended (with Cache-Control:
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
/* The session before the program runs: loaded (strict), the CSRF check,
 * renewal, an anonymous session.  0 to go on, -1 when the answer went out. */
static int cgi_session(gw_request *rq)
{
    if (request_load_session(rq) < 0) {
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        return -1;
    }
    /* Before an anonymous session is made: a request refused here must
     * leave nothing behind. */
    if (csrf_enforce(rq) < 0)
        return -1;
    renew_maybe(rq);
    if (!rq->session && rq->cfg->anonymous && request_create_session(rq) < 0) {
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        return -1;
    }
    return 0;
}

/* CONTENT_LENGTH, or -1 when absent or unusable (the old behaviour). */
static long long cgi_content_length(const gw_request *rq)
{
    const char *cl = request_param(rq, "CONTENT_LENGTH");
    char *end;
    long long v;

    errno = 0;
    v = cl && *cl ? strtoll(cl, &end, 10) : -1;
    if (cl && *cl && (errno || *end || v < 0))
        v = -1;
    return v;
}

/* After the pump: kill what is left, reap, count, and answer when nothing
 * went out yet (504 on timeout, else 502). */
static void cgi_finish(cgi_io *io, const char *script, int timed_out, int64_t deadline)
{
    gw_request *rq = io->rq;
    int broke = io->from_child >= 0 || io->deferred;  /* stopped before the output ended */
    int status;

    if (io->client_gone)
        rq->abort = 1;                  /* nobody to answer */
    cgi_close_fd(&io->to_child);
    cgi_close_fd(&io->from_child);
    if (timed_out)
        log_msg("cgi program %.300s killed after %ld s (--cgi-timeout)", script,
                rq->cfg->cgi_timeout);
    if (timed_out || broke)
        proc_kill(io->pid, SIGKILL);
    status = proc_reap(io->pid, (timed_out || broke) ? proc_now_ms() : deadline);
    prefork_mark_cgi(0);
    if (timed_out)
        metrics_add(MET_CGI_TIMEOUTS, 1);
    else if (!broke && status != -1 && WIFSIGNALED(status))
        metrics_add(MET_CGI_KILLED, 1);     /* not our own kill after a 409/502 */
    if (io->sent && (timed_out || (status != -1 && WIFSIGNALED(status)))) {
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
    if (io->sent || io->failed || io->client_gone)
        return;
    if (timed_out) {
        request_fail(rq, 504, "504 Gateway Timeout: the program took too long\n");
        return;
    }
    reply_eof(&io->r);
    if (status != -1 && WIFSIGNALED(status))
        log_msg("cgi program %.300s died of signal %d before any header; 502",
                script, WTERMSIG(status));
    else
        log_msg("cgi program %.300s exited (status %d) before its header block "
                "ended; 502", script, status != -1 && WIFEXITED(status)
                ? WEXITSTATUS(status) : -1);
    request_fail(rq, 502, "502 Bad Gateway: the program sent no reply\n");
}

/* Answer one request in cgi mode. */
void mode_cgi_handle(gw_request *rq)
{
    const gw_config *cfg = rq->cfg;
    char *script = NULL, *dir, *slash;
    cgi_env env;
    cgi_io io;
    int code;
    int64_t deadline = proc_now_ms() + cfg->cgi_timeout * 1000;

    code = cgi_resolve(rq, &script);
    if (code) {
        request_fail(rq, code, code == 404 ? "404 Not Found\n" :
                               code == 403 ? "403 Forbidden\n" : "500 Internal Server Error\n");
        return;
    }
    if (cgi_session(rq) < 0) {
        free(script);
        return;
    }
    cgi_build_env(rq, &env);
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
    cgi_env_free(&env);
    free(dir);
    if (io.pid < 0) {
        log_msg("cannot start %.300s: %s", script, strerror(errno));
        request_fail(rq, 502, "502 Bad Gateway: the program could not be started\n");
    } else {
        metrics_add(MET_CGI_RUN, 1);
        fcntl(io.to_child, F_SETFL, O_NONBLOCK);
        fcntl(io.from_child, F_SETFL, O_NONBLOCK);
        /* In the responder role the web server always ends FCGI_STDIN; an
         * authorizer (misconfigured) never does, so never read it there. */
        io.body_eof = rq->role == ROLE_AUTHORIZER;
        io.content_length = rq->role == ROLE_RESPONDER ? cgi_content_length(rq) : -1;
        cgi_finish(&io, script, cgi_pump(&io, deadline), deadline);
    }
    reply_free(&io.r);
    buf_free(&io.pending);
    free(io.inbuf);
    free(script);
}
