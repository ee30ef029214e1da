/*
 * cookie.c - find the session cookie in the request's Cookie headers.
 *
 * Browsers send "a=1; b=2"; Apache joins several Cookie headers with ", ";
 * lighttpd joins them with "; "; nginx sends one HTTP_COOKIE param per
 * header (web-servers.md section 6).  So the parser takes every HTTP_COOKIE
 * value, splits on both ';' and ',', trims blanks, and compares names byte
 * for byte (RFC 6265: names are case-sensitive).
 *
 * Security rule: when the session name appears more than once (a second
 * Cookie header, a cookie tossed in from a sibling subdomain, a path-scoped
 * duplicate), the id is used only if EVERY copy carries the same valid id.
 * Anything else is COOKIE_BAD, which callers treat as "no session": the
 * client never gets to choose which copy wins.  Input is bounded
 * (GW_MAX_COOKIE bytes, GW_MAX_COOKIE_PARAMS values) and read through
 * explicit lengths, so no byte sequence can make it read out of bounds.
 * Pure code: no libfcgi, so the fuzz target links it alone.
 */
#include <string.h>

#include "gateway.h"

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Check one cookie-pair [p, p+n) against name; update the running verdict.
 * Returns 0 to go on, 1 when the verdict is already COOKIE_BAD. */
static int cookie_pair(const char *p, size_t n, const char *name, size_t nlen,
                       cookie_result *res, char *id)
{
    const char *eq, *v;
    size_t klen, vlen;
    char cand[SG_ID_LEN + 1];

    while (n && is_blank((unsigned char)*p)) {
        p++;
        n--;
    }
    while (n && is_blank((unsigned char)p[n - 1]))
        n--;
    eq = memchr(p, '=', n);
    if (!eq)
        return 0;                   /* no '=': not a cookie-pair, ignore */
    klen = (size_t)(eq - p);
    while (klen && is_blank((unsigned char)p[klen - 1]))
        klen--;
    if (klen != nlen || memcmp(p, name, nlen) != 0)
        return 0;
    v = eq + 1;
    vlen = n - (size_t)(v - p);
    while (vlen && is_blank((unsigned char)*v)) {
        v++;
        vlen--;
    }
    if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
        v++;                        /* RFC 6265 allows a quoted value */
        vlen -= 2;
    }
    if (vlen != SG_ID_LEN) {
        *res = COOKIE_BAD;
        return 1;
    }
    memcpy(cand, v, SG_ID_LEN);
    cand[SG_ID_LEN] = '\0';
    /* Why: the id is checked for its exact shape before anything else sees
     * it; a malformed id must never reach the store. */
    if (!sg_id_valid(cand)) {
        *res = COOKIE_BAD;
        return 1;
    }
    if (*res == COOKIE_ONE && memcmp(id, cand, SG_ID_LEN) != 0) {
        *res = COOKIE_BAD;          /* two different ids: no winner */
        return 1;
    }
    memcpy(id, cand, SG_ID_LEN + 1);
    *res = COOKIE_ONE;
    return 0;
}

/* Look for cookie `name` in the Cookie header values; see gateway.h. */
cookie_result cookie_find(const char *const *vals, const size_t *lens,
                          size_t n, const char *name, char *id)
{
    cookie_result res = COOKIE_NONE;
    size_t nlen = strlen(name), total = 0, i;

    id[0] = '\0';
    if (nlen == 0)
        return COOKIE_NONE;
    if (n > GW_MAX_COOKIE_PARAMS)
        return COOKIE_BAD;      /* absurd number of Cookie headers */
    for (i = 0; i < n; i++) {
        const char *p = vals[i], *end, *q;

        if (!p)
            continue;
        total += lens[i];
        if (lens[i] > GW_MAX_COOKIE || total > GW_MAX_COOKIE) {
            /* Why: an oversized header is refused as a whole rather than
             * parsed partly; a truncated parse could miss a duplicate. */
            id[0] = '\0';
            return COOKIE_BAD;
        }
        end = p + lens[i];
        while (p < end) {
            q = p;
            while (q < end && *q != ';' && *q != ',')
                q++;
            if (cookie_pair(p, (size_t)(q - p), name, nlen, &res, id)) {
                id[0] = '\0';
                return COOKIE_BAD;
            }
            p = q + 1;
        }
    }
    if (res != COOKIE_ONE)
        id[0] = '\0';
    return res;
}
