/*
 * csrf.c - --csrf: refuse state-changing requests that do not prove they
 * come from the session's own site.
 *
 * A request with an unsafe method (anything but GET, HEAD, OPTIONS and
 * TRACE: those must not change state) passes only when all of these hold:
 *  - Sec-Fetch-Site is not "cross-site" (Fetch Metadata: every current
 *    browser sends it, and OWASP now names it the first line of defence);
 *  - Origin, when sent, names the host the request was sent to ("null",
 *    from sandboxed frames and some redirects, never does);
 *  - X-CSRF-Token equals the session's token (sg_session_check_csrf,
 *    constant time): only a page of the site, which got the token from
 *    the gateway (SESSION_CSRF), can know it.  No session, no token.
 * The header checks stop what a browser marks as foreign; the token stops
 * the rest (old browsers, plugins, a missing Origin).  Why a header and
 * not a form field: the gateway streams the body to the program and never
 * reads it, and in auth mode it never sees it; apps that post forms check
 * the field themselves (s.check_csrf, the WSGI middleware).  Pure code on
 * params: no libfcgi (the nginx module links it; the gateway's request
 * and its answer to a refusal are csrf_enforce.c's).
 */
#include <string.h>
#include <strings.h>

#include "gateway.h"

/* Whether method may change state. */
static int csrf_unsafe(const char *method)
{
    static const char *const safe[] = { "GET", "HEAD", "OPTIONS", "TRACE" };
    size_t i;

    if (!method)
        return 0;                       /* no method: not HTTP, nothing to guard */
    for (i = 0; i < sizeof safe / sizeof *safe; i++)
        if (strcmp(method, safe[i]) == 0)
            return 0;
    return 1;
}

/* Split "host[:port]" or "[v6]:port" (len bytes at p) into host and port
 * (port NULL/0 when absent).  0, or -1 when malformed. */
static int split_hostport(const char *p, size_t len, const char **host,
                          size_t *hostlen, const char **port, size_t *portlen)
{
    const char *end = p + len, *colon;

    *port = NULL;
    *portlen = 0;
    if (len == 0)
        return -1;
    if (*p == '[') {
        const char *rb = memchr(p, ']', len);
        if (!rb)
            return -1;
        *host = p;
        *hostlen = (size_t)(rb + 1 - p);
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != end)
            return -1;
    } else {
        colon = memchr(p, ':', len);
        *host = p;
        *hostlen = colon ? (size_t)(colon - p) : len;
    }
    if (colon) {
        *port = colon + 1;
        *portlen = (size_t)(end - colon - 1);
        if (*portlen == 0 || strspn(*port, "0123456789") < *portlen)
            return -1;
    }
    return *hostlen ? 0 : -1;
}

/* Whether Origin (scheme://host[:port]) names the host of the request
 * (Host header host[:port]; a Host without a port, as nginx's $host gives,
 * is compared by name only). */
static int csrf_origin_matches(const char *origin, const char *hosthdr)
{
    const char *rest, *oh, *op, *hh, *hp;
    size_t ohl, opl, hhl, hpl;
    const char *dflt;

    if (!hosthdr || !*hosthdr)
        return 0;
    if (strncasecmp(origin, "https://", 8) == 0) {
        rest = origin + 8;
        dflt = "443";
    } else if (strncasecmp(origin, "http://", 7) == 0) {
        rest = origin + 7;
        dflt = "80";
    } else
        return 0;                       /* "null", other schemes */
    if (strchr(rest, '/') || strchr(rest, '?') || strchr(rest, '@'))
        return 0;
    if (split_hostport(rest, strlen(rest), &oh, &ohl, &op, &opl) < 0 ||
        split_hostport(hosthdr, strlen(hosthdr), &hh, &hhl, &hp, &hpl) < 0)
        return 0;
    if (ohl != hhl || strncasecmp(oh, hh, ohl) != 0)
        return 0;
    if (hp) {                           /* both ports known: they must agree */
        if (!op) {
            op = dflt;
            opl = strlen(dflt);
        }
        if (opl != hpl || memcmp(op, hp, opl) != 0)
            return 0;
    }
    return 1;
}

/* See gateway.h. */
const char *csrf_decide(csrf_param_fn get, void *arg, const sg_session *s)
{
    const char *site, *origin, *token;

    if (!csrf_unsafe(get(arg, "REQUEST_METHOD")))
        return NULL;
    site = get(arg, "HTTP_SEC_FETCH_SITE");
    if (site && strcasecmp(site, "cross-site") == 0)
        return "Sec-Fetch-Site: cross-site";
    origin = get(arg, "HTTP_ORIGIN");
    if (origin && !csrf_origin_matches(origin, get(arg, "HTTP_HOST")))
        return "Origin does not name this host";
    if (!s)
        return "no session (so no CSRF token)";
    token = get(arg, "HTTP_X_CSRF_TOKEN");
    if (!token || !*token)
        return "no X-CSRF-Token header";
    if (!sg_session_check_csrf(s, token))
        return "X-CSRF-Token does not match the session's token";
    return NULL;
}
