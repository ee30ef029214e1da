/*
 * fuzz_redis_uri.c - libFuzzer target for the Redis store URI parser
 * (libcore/redis_conn.c: redis://, redis+unix:, redis+sentinel:, the
 * query options), which reads operators' config and command lines.
 *
 * Besides "no crash, no out-of-bounds read, no leak" (ASan), it checks
 * the promise that matters for secrets: when the input carries a
 * "user:SECRET@" part, the error text never shows the URI as given, and
 * the masked form every message uses does not hold SECRET.  The password
 * environment variable is unset, so nothing but the input decides.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How often needle occurs in hay (overlapping counts). */
static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redis_be b;
    sg_error err = { 0 };

    if (size > 4096 || memchr(data, '\0', size))
        return 0;
    unsetenv(RD_PASSWORD_ENV);
    memset(&b, 0, sizeof b);
    b.uri = malloc(size + 1);
    if (!b.uri)
        return 0;
    memcpy(b.uri, data, size);
    b.uri[size] = '\0';
    /* The secret of a "scheme://user:SECRET@" authority, if any. */
    char secret[4097] = "";
    /* (an authority is before any '?': later "://" are query text) */
    const char *auth = strstr((const char *)b.uri, "://");
    const char *q = strchr(b.uri, '?');
    /* and only after a scheme: "x/y:z://" is a socket path's text */
    if (auth && (!q || auth < q) &&
        strspn(b.uri, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789+.-") == (size_t)(auth - b.uri)) {
        auth += 3;
        size_t alen = strcspn(auth, "/?");
        const char *at = memchr(auth, '@', alen);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon && at - colon - 1 >= 4) {
            memcpy(secret, colon + 1, (size_t)(at - colon - 1));
            secret[at - colon - 1] = '\0';
        }
    }
    /* A secret holding '*' is not checked: the mask itself ("user:***@")
     * can spell it out of the user's last characters and the stars, e.g.
     * user "x*", secret "*:***" ("://x*:*:***@/" masks to "://x*:***@/").
     * Any other secret can only show up in the masked form where the input
     * has it outside the password too (a host named like it). */
    if (strchr(secret, '*'))
        secret[0] = '\0';
    size_t elsewhere = secret[0] ? count(b.uri, secret) - 1 : 0;
    char *orig = strdup(b.uri);
    sg_status rc = sgi_redis_parse_uri(&b, &err);
    if (orig && secret[0]) {
        /* The message never shows the URI as given, and the masked
         * form shows the secret nowhere but where it is not one. */
        char *m = sgi_uri_masked(orig);
        if ((rc != SG_OK && strstr(err.text, orig)) ||
            (m && count(m, secret) > elsewhere))
            abort();
        free(m);
    }
    free(orig);
    sgi_redis_free(&b);
    free(b.prefix);
    free(b.uri);
    return 0;
}
