/*
 * respond.c - build the header lines the gateway sends.
 *
 * All response headers pass through respond_header(), which refuses any
 * value with a byte outside printable ASCII: whatever a session, a cookie
 * or a program holds, no CR, LF or NUL can split a header the gateway
 * writes.  The session cookie has one shape, from the contract:
 *   NAME=<id>; Path=P; HttpOnly; SameSite=S[; Secure][; Max-Age=N][; Domain=D]
 * (S from --cookie-samesite, Lax by default), followed by Cache-Control:
 * no-store and Vary: Cookie.
 * and an expiring copy (logout, expired session) with an empty value and
 * Max-Age=0.  Pure code: no libfcgi.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* Append "Status: N Reason\r\n". */
void respond_status(buf *b, int status)
{
    buf_addf(b, "Status: %d %s\r\n", status, reply_reason(status));
}

/* Append one header line; -1 (and nothing appended) for an unsafe value. */
int respond_header(buf *b, const char *name, const char *value)
{
    if (!inject_header_safe(value) || !inject_header_safe(name)) {
        log_msg("refused to emit header %s with unsafe bytes", name);
        return -1;
    }
    buf_adds(b, name);
    buf_add(b, ": ", 2);
    buf_adds(b, value);
    buf_add(b, "\r\n", 2);
    return b->failed ? -1 : 0;
}

/* Append the session cookie (id) or its expiring copy (id NULL). */
void respond_cookie(buf *b, const gw_config *cfg, const char *id, int https)
{
    buf v;
    int secure = cfg->cookie_secure == TRI_ON ||
                 (cfg->cookie_secure == TRI_AUTO && https);

    buf_init(&v, 4096);
    static const char *const samesite[] = { "Lax", "Strict", "None" };

    buf_addf(&v, "%s=%s; Path=%s; HttpOnly; SameSite=%s", cfg->cookie_name,
             id ? id : "", cfg->cookie_path,
             samesite[cfg->cookie_samesite >= 0 && cfg->cookie_samesite <= 2
                      ? cfg->cookie_samesite : 0]);
    if (secure)
        buf_adds(&v, "; Secure");
    if (!id)
        buf_adds(&v, "; Max-Age=0");
    else if (cfg->cookie_max_age > 0)
        buf_addf(&v, "; Max-Age=%ld", cfg->cookie_max_age);
    if (cfg->cookie_domain)
        buf_addf(&v, "; Domain=%s", cfg->cookie_domain);
    /* Why no-store: a shared cache that kept this response would hand the
     * cookie, and so the session, to the next client asking for the URL
     * (Django and PHP send the same).  Vary: Cookie tells caches that any
     * other response of this URL depends on the cookie too. */
    if (!v.failed && respond_header(b, "Set-Cookie", v.data) == 0) {
        respond_header(b, "Cache-Control", "no-store");
        respond_header(b, "Vary", "Cookie");
    }
    buf_free(&v);
}

/* New: login_url plus next=<REQUEST_URI percent-encoded> (free()). */
char *respond_login_url(const char *login_url, const char *request_uri)
{
    static const char hex[] = "0123456789ABCDEF";
    buf b;
    const unsigned char *p;

    buf_init(&b, GW_MAX_HEADER_VALUE);
    buf_adds(&b, login_url);
    if (request_uri && *request_uri) {
        buf_adds(&b, strchr(login_url, '?') ? "&next=" : "?next=");
        for (p = (const unsigned char *)request_uri; *p; p++) {
            /* RFC 3986 unreserved characters stay; all else is %XX. */
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || strchr("-._~", *p))
                buf_addc(&b, (char)*p);
            else {
                buf_addc(&b, '%');
                buf_addc(&b, hex[*p >> 4]);
                buf_addc(&b, hex[*p & 15]);
            }
        }
    }
    return buf_steal(&b);
}
