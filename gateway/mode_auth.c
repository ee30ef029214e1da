/*
 * mode_auth.c - --mode auth: tell the web server whether the request has a
 * session, and which.
 *
 * Two audiences (DESIGN 5, web-servers.md 2):
 *  - AUTHORIZER role (lighttpd, Apache mod_authnz_fcgi / mod_fcgid): a 200
 *    carries only Variable-SESSION_* headers, which the server turns into
 *    the backend's environment.  Nothing else: Apache copies every other
 *    header of a 200 to the browser.  FCGI_STDIN is never read (Apache never
 *    ends it, lighttpd does not on POST: the read would block).
 *  - RESPONDER role (nginx auth_request): X-Session-* headers for
 *    auth_request_set, and Set-Cookie when a session was created here.
 * A denial is 401 with WWW-Authenticate and X-Session-Login-Url (nginx can
 * only redirect itself, from error_page 401), or in the authorizer role
 * optionally a 302 to the login URL.  A store failure is 503, never a 200.
 *
 * A request that carries a client header imitating an injected name
 * (X-Session-*, Session-*, Variable-*, in any spelling a web server folds
 * into one, inbound.c) is refused with 403 before anything else.  Why: in
 * auth mode the gateway cannot take a header away from the backend, and
 * the web server builds the backend's HTTP_* variables from the same
 * headers by the same folding as the gateway's params; refusing here
 * protects every integration even when its config misses a spelling
 * (issue #17: lighttpd folds "X-Session.User" into HTTP_X_SESSION_USER).
 * 403 because nginx auth_request understands only 2xx, 401 and 403.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* inject_session's put for a header block. */
static void put_header(void *head, const char *name, const char *value)
{
    respond_header(head, name, value);
}

static void allow(gw_request *rq)
{
    respond_status(&rq->head, 200);
    if (rq->session)
        inject_session(rq, rq->role == ROLE_AUTHORIZER ? &inject_authorizer
                                                       : &inject_responder,
                       put_header, &rq->head);
    if (rq->role == ROLE_RESPONDER) {
        if (rq->created || rq->renewed)
            respond_cookie(&rq->head, rq->cfg, sg_session_id(rq->session), rq->https);
        else if (!rq->session && rq->cookie != COOKIE_NONE)
            respond_cookie(&rq->head, rq->cfg, NULL, rq->https);
    } else if (rq->renewed) {
        /* Apache's authorizer: it hands a 200's Set-Cookie to the browser
         * (renew_maybe renews nowhere else in this role). */
        respond_cookie(&rq->head, rq->cfg, sg_session_id(rq->session), rq->https);
    }
    request_send(rq, NULL);
}

static void deny(gw_request *rq)
{
    const gw_config *cfg = rq->cfg;
    char *login = NULL;
    const char *body = rq->cfg->policy == POLICY_USER
                     ? "401 Unauthorized: please log in\n"
                     : "401 Unauthorized: no session\n";

    if (cfg->login_url)
        login = respond_login_url(cfg->login_url, rq->request_uri);   /* owned here */
    if (rq->role == ROLE_AUTHORIZER && cfg->login_redirect && login) {
        respond_status(&rq->head, 302);
        respond_header(&rq->head, "Location", login);
        body = "302 Found: please log in\n";
    } else {
        respond_status(&rq->head, 401);
        respond_header(&rq->head, "WWW-Authenticate", "SessGate realm=\"sessgate\"");
        if (login)
            respond_header(&rq->head, "X-Session-Login-Url", login);
    }
    /* A cookie that named no live session is expired in the browser. */
    if (!rq->session && rq->cookie != COOKIE_NONE)
        respond_cookie(&rq->head, cfg, NULL, rq->https);
    respond_header(&rq->head, "Content-Type", "text/plain; charset=us-ascii");
    request_send(rq, rq->head.failed ? NULL : body);
    free(login);
}

/* Answer one request in auth mode. */
void mode_auth_handle(gw_request *rq)
{
    const gw_config *cfg = rq->cfg;
    char name[128];
    int ok;

    if (inbound_find_spoof(rq->envp, name, sizeof name)) {
        metrics_add(MET_SPOOF_REFUSED, 1);
        log_event(LOG_WARN, "spoof_refused",
                  "a request header imitates a session header; refused with 403",
                  "param", name, (const char *)NULL);
        request_fail(rq, 403, "403 Forbidden: a request header imitates the "
                              "gateway's session headers\n");
        return;
    }
    if (request_load_session(rq) < 0) {
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        return;
    }
    if (csrf_enforce(rq) < 0)
        return;
    /* lighttpd drops Set-Cookie on an authorizer 200, so a session made
     * there would never reach the browser: only the responder role creates. */
    if (!rq->session && cfg->anonymous && rq->role == ROLE_RESPONDER &&
        request_create_session(rq) < 0) {
        request_fail(rq, 503, "503 Service Unavailable: session store unavailable\n");
        return;
    }
    switch (cfg->policy) {
    case POLICY_SESSION:
        ok = rq->session != NULL;
        break;
    case POLICY_USER:
        ok = rq->session && sg_session_user(rq->session);
        break;
    default:
        ok = 1;
    }
    /* Only an allowed request renews: a 401/403 does not carry the new
     * cookie, so a renewal there would strand the browser on an id that
     * dies after the grace window. */
    if (ok) {
        renew_maybe(rq);
        allow(rq);
    } else
        deny(rq);
}
