/*
 * inbound.c - which FastCGI params may reach a CGI program's environment.
 *
 * The child environment is built from an allow-list, never inherited
 * (fcgiwrap hands its own environment and every param to the program).
 * Client headers arrive as HTTP_* params; CGI folds '-' and '_' together
 * and web servers differ in how they treat '_' in header names
 * (web-servers.md 3.3, 4.4, 5.3), so a client can produce HTTP_X_SESSION_ID
 * from "X-Session-Id", "X_Session_Id" or "X-Session_Id".  lighttpd goes
 * further: it turns EVERY byte outside [A-Za-z0-9] into '_' (measured on
 * 1.4.69 for all 94 visible bytes: "X-Session.User", "X-Session+User",
 * "X*Session'User" all became HTTP_X_SESSION_USER; Apache 2.4 and nginx
 * fold only '-' and drop other names).  So names are compared with every
 * non-alphanumeric byte folded to '_', the widest rule any server applies.
 * Any header that, once folded, looks like a name the gateway injects
 * (X-Session-*, Session-*, Variable-*) is dropped in cgi mode, and makes
 * auth mode refuse the request (inbound_find_spoof): only the gateway
 * speaks for the session.  HTTP_PROXY is dropped too (httpoxy,
 * CVE-2016-5387).
 * Pure code: no libfcgi.
 */
#include <string.h>

#include "gateway.h"

/* The CGI/1.1 variables (RFC 3875) and the common extensions servers send. */
static const char *const cgi_vars[] = {
    "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "DOCUMENT_ROOT",
    "DOCUMENT_URI", "GATEWAY_INTERFACE", "HTTPS", "PATH_INFO",
    "PATH_TRANSLATED", "QUERY_STRING", "REDIRECT_STATUS", "REMOTE_ADDR",
    "REMOTE_HOST", "REMOTE_PORT", "REMOTE_USER", "REQUEST_METHOD",
    "REQUEST_SCHEME", "REQUEST_URI", "SCRIPT_FILENAME", "SCRIPT_NAME",
};

/* Header names (folded, without HTTP_) that imitate injected names. */
static const char *const spoof_prefixes[] = { "X_SESSION", "SESSION", "VARIABLE" };

static int is_cgi_name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Why: lighttpd maps every byte outside [A-Za-z0-9] of a header name to
 * '_' (web-servers.md 3.3, re-measured for issue #17), so that is the fold
 * the comparison must use; a narrower one lets "X-Session.User" through. */
static unsigned char fold(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 'A');
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return c;
    return c ? '_' : c;
}

/* Whether the folded form of s starts with prefix followed by '_' or end. */
static int folded_match(const char *s, const char *prefix)
{
    size_t i;

    for (i = 0; prefix[i]; i++)
        if (fold((unsigned char)s[i]) != (unsigned char)prefix[i])
            return 0;       /* also stops at s's NUL */
    return s[i] == '\0' || fold((unsigned char)s[i]) == '_';
}

/* Classify one param name; see gateway.h. */
inbound_class inbound_classify(const char *name)
{
    const char *h;
    size_t i;

    if (!name || !*name)
        return INBOUND_DROP;
    /* A web server may pass SESSION_* itself (nginx fastcgi_param); the
     * gateway sets those, so any inbound copy is a spoof. */
    if (folded_match(name, "SESSION"))
        return INBOUND_SPOOF;
    if (folded_match(name, "HTTP") && name[4] != '\0') {
        h = name + 5;
        for (i = 0; i < sizeof spoof_prefixes / sizeof *spoof_prefixes; i++)
            if (folded_match(h, spoof_prefixes[i]))
                return INBOUND_SPOOF;
        if (strncmp(name, "HTTP_", 5) != 0 || !*h)
            return INBOUND_DROP;
        for (i = 0; h[i]; i++)
            if (!is_cgi_name_char((unsigned char)h[i]))
                return INBOUND_DROP;    /* not a canonical CGI name */
        if (strcmp(h, "PROXY") == 0)
            return INBOUND_DROP;        /* httpoxy */
        return INBOUND_HTTP;
    }
    if (strncmp(name, "SERVER_", 7) == 0) {
        for (i = 7; name[i]; i++)
            if (!is_cgi_name_char((unsigned char)name[i]))
                return INBOUND_DROP;
        return name[7] ? INBOUND_CGI : INBOUND_DROP;
    }
    for (i = 0; i < sizeof cgi_vars / sizeof *cgi_vars; i++)
        if (strcmp(name, cgi_vars[i]) == 0)
            return INBOUND_CGI;
    return INBOUND_DROP;
}

/* Borrowed: the first param in envp whose name imitates an injected one
 * (INBOUND_SPOOF), or NULL.  Each entry is "NAME=VALUE"; the name is
 * compared without copying, so no length limit applies. */
const char *inbound_find_spoof(char *const *envp, char *name, size_t namesz)
{
    char *const *e;

    for (e = envp; e && *e; e++) {
        size_t k = strcspn(*e, "=");

        if (k == 0 || (*e)[k] != '=')
            continue;
        if (k >= namesz)
            k = namesz - 1;     /* a long name is judged by its prefix */
        memcpy(name, *e, k);
        name[k] = '\0';
        if (inbound_classify(name) == INBOUND_SPOOF)
            return *e;
    }
    return NULL;
}
