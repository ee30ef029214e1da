/*
 * cgi_env.c - the environment of a CGI program run by cgi mode.
 *
 * Built from an allow-list (inbound.c), never inherited: a fixed PATH, the
 * gateway's store, the session (SESSION_*, set by the gateway alone), the
 * CGI/1.1 variables and the client headers that may pass.  Client headers
 * that imitate session names are dropped.  The gateway's own variables go
 * in first, so nothing from the request can shadow them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

static int env_has(const cgi_env *env, const char *entry)
{
    size_t i, k = strcspn(entry, "=");

    for (i = 0; i < env->n; i++)
        if (strncmp(env->vars[i], entry, k) == 0 && env->vars[i][k] == '=')
            return 1;
    return 0;
}

static void env_add(cgi_env *env, char *entry)
{
    if (env->n < GW_MAX_ENV && !env_has(env, entry))
        env->vars[env->n++] = entry;
}

static void env_addf(cgi_env *env, const char *name, const char *value)
{
    char *s;

    if (env->nowned == sizeof env->owned / sizeof *env->owned)
        return;
    if (asprintf(&s, "%s=%s", name, value) < 0)
        return;
    env->owned[env->nowned++] = s;
    env_add(env, s);
}

void cgi_env_free(cgi_env *env)
{
    size_t i;

    for (i = 0; i < env->nowned; i++)
        free(env->owned[i]);
}

/* inject_session's put for the environment. */
static void put_env(void *env, const char *name, const char *value)
{
    env_addf(env, name, value);
}

/* Build the program's environment; see gateway.h. */
void cgi_build_env(gw_request *rq, cgi_env *env)
{
    char **e;
    buf cookies;
    int ncookies = 0;

    memset(env, 0, sizeof *env);
    /* The gateway's own variables first: nothing from the request can
     * shadow them (env_add keeps the first of a name). */
    env_addf(env, "PATH", "/usr/local/bin:/usr/bin:/bin");
    /* The gateway's store, so a program using the bindings opens the same
     * sessions (sessgate.Store() and sg.open() read SESSGATE_STORE). */
    env_addf(env, "SESSGATE_STORE", rq->cfg->store_uri);
    if (rq->session)
        inject_session(rq, &inject_cgi, put_env, env);
    /* Several Cookie params (nginx) become one variable, joined by "; ",
     * so the program sees them all, not just the last (fcgiwrap). */
    buf_init(&cookies, GW_MAX_COOKIE + 64);
    for (e = rq->envp; e && *e; e++)
        if (strncmp(*e, "HTTP_COOKIE=", 12) == 0) {
            buf_adds(&cookies, ncookies++ ? "; " : "HTTP_COOKIE=");
            buf_adds(&cookies, *e + 12);
        }
    if (ncookies > 1 && !cookies.failed) {
        char *c = buf_steal(&cookies);
        if (c && env->nowned < sizeof env->owned / sizeof *env->owned) {
            env->owned[env->nowned++] = c;
            env_add(env, c);
        } else
            free(c);
    }
    buf_free(&cookies);
    for (e = rq->envp; e && *e; e++) {
        char name[128];
        size_t k = strcspn(*e, "=");

        if (k == 0 || k >= sizeof name || (*e)[k] != '=')
            continue;
        memcpy(name, *e, k);
        name[k] = '\0';
        switch (inbound_classify(name)) {
        case INBOUND_CGI:
        case INBOUND_HTTP:
            env_add(env, *e);
            break;
        default:
            break;              /* dropped: spoof or not for CGI */
        }
    }
    if (!env_has(env, "GATEWAY_INTERFACE="))
        env_addf(env, "GATEWAY_INTERFACE", "CGI/1.1");
    env->vars[env->n] = NULL;
}
