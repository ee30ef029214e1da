/*
 * renew.c - --renew-interval: give a session in use a new id every S
 * seconds (OWASP's renewal timeout), sent as a new cookie on that response.
 *
 * Why with --rotate-grace: requests already in flight with the old id (a
 * page loading its assets, a second tab) would otherwise lose the session
 * the moment one of them renews it; the rotation leaves the old id
 * resolving to the renewed session for the grace window.  A renewal that
 * loses a race with another one (both saw the same old id) is simply
 * skipped: the winner's cookie is on its way, and the grace window covers
 * this request.
 *
 * Only where the new cookie reaches the browser (renew_cookie_delivered):
 * a renewal whose cookie is dropped strands the browser on an id that
 * dies after the grace window, which is worse than no renewal.  It is
 * delivered in cgi mode, in the RESPONDER role (nginx auth_request, with
 * auth_request_set + add_header) and by Apache in the AUTHORIZER role
 * (mod_authnz_fcgi and mod_fcgid copy a 200's Set-Cookie to the browser:
 * measured, shared/reference web-servers.md 2.1); Apache says who it is
 * with FCGI_APACHE_ROLE.  lighttpd drops Set-Cookie from an authorizer's
 * 200, so there (an AUTHORIZER without FCGI_APACHE_ROLE) no renewal.
 */
#include "gateway.h"

#include <string.h>
#include <time.h>

/* See gateway.h. */
int renew_cookie_delivered(const gw_request *rq)
{
    char **e;

    if (rq->role != ROLE_AUTHORIZER)
        return 1;
    for (e = rq->envp; e && *e; e++)
        if (strncmp(*e, "FCGI_APACHE_ROLE=", 17) == 0)
            return 1;
    return 0;
}

/* See gateway.h. */
void renew_maybe(gw_request *rq)
{
    sg_error err;

    if (!rq->cfg->renew_interval || !rq->session || rq->created || !rq->store ||
        !renew_cookie_delivered(rq))
        return;
    if ((int64_t)time(NULL) - sg_session_rotated(rq->session) < rq->cfg->renew_interval)
        return;
    sg_error_clear(&err);
    if (sg_session_rotate(rq->store, rq->session, &err) == SG_OK) {
        rq->renewed = 1;
        metrics_add(MET_SESSIONS_RENEWED, 1);
    }
}
