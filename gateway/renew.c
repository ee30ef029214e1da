/*
 * renew.c - --renew-interval: give a session in use a new id every S
 * seconds (OWASP's renewal timeout), sent as a new cookie on that response.
 *
 * Why with --rotate-grace: requests already in flight with the old id (a
 * page loading its assets, a second tab) would otherwise lose the session
 * the moment one of them renews it; the rotation leaves the old id
 * resolving to the renewed session for the grace window.  Only where the
 * new cookie can reach the browser: cgi mode and the RESPONDER role (nginx
 * forwards it with auth_request_set + add_header).  lighttpd drops
 * Set-Cookie from an authorizer, so there a renewal would strand the
 * browser on an id that dies after the grace window: no renewal in the
 * AUTHORIZER role.  A renewal that loses a race with another one (both
 * saw the same old id) is simply skipped: the winner's cookie is on its
 * way, and the grace window covers this request.
 */
#include "gateway.h"

#include <time.h>

/* See gateway.h. */
void renew_maybe(gw_request *rq)
{
    sg_error err;

    if (!rq->cfg->renew_interval || !rq->session || rq->created || !rq->store ||
        rq->role == ROLE_AUTHORIZER)
        return;
    if ((int64_t)time(NULL) - sg_session_rotated(rq->session) < rq->cfg->renew_interval)
        return;
    sg_error_clear(&err);
    if (sg_session_rotate(rq->store, rq->session, &err) == SG_OK)
        rq->renewed = 1;
}
