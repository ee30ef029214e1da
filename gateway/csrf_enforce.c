/*
 * csrf_enforce.c - --csrf in the gateway: the rule of csrf.c on the
 * request's FastCGI params; a refusal is logged and answered 403.  Apart
 * from csrf.c because it reads and answers through request.c (libfcgi),
 * which the nginx module, deciding with csrf.c's rule, does not link.
 */
#include "gateway.h"

static const char *rq_param(void *rq, const char *name)
{
    return request_param(rq, name);
}

/* See gateway.h. */
const char *csrf_refusal(const gw_request *rq)
{
    if (!rq->cfg->csrf)
        return NULL;
    return csrf_decide(rq_param, (void *)rq, rq->session);
}

/* See gateway.h. */
int csrf_enforce(gw_request *rq)
{
    const char *why = csrf_refusal(rq);

    if (!why)
        return 0;
    log_event(LOG_WARN, "csrf_refused", "unsafe request without same-origin proof; 403",
              "reason", why, (const char *)NULL);
    request_fail(rq, 403, "403 Forbidden: cross-site request refused (CSRF check failed)\n");
    return -1;
}
