/*
 * test_set_cookie.c - the gateway's Set-Cookie line (respond.c,
 * respond_cookie) against tests/unit/set_cookie_cases.txt, the table the
 * WSGI middleware is tested against too (tests/bindings/wsgi.bats), so the
 * gateway and sessgate.wsgi cannot drift apart.  Attributes are compared as
 * a set: their order differs between the two and does not matter to a
 * browser.  Prints TAP lines; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../gateway/gateway.h"
#include "tap.h"

#define ID "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3"
#define MAX_ATTRS 16

/* Split "a; b; c" (in place) into at most MAX_ATTRS attributes, sorted. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t split_attrs(char *s, char *out[MAX_ATTRS])
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, ";", &save); t && n < MAX_ATTRS; t = strtok_r(NULL, ";", &save)) {
        while (*t == ' ')
            t++;
        out[n++] = t;
    }
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}

static int same_attrs(char *got, char *want)
{
    char *g[MAX_ATTRS], *w[MAX_ATTRS];
    size_t ng = split_attrs(got, g), nw = split_attrs(want, w);
    if (ng != nw)
        return 0;
    for (size_t i = 0; i < ng; i++)
        if (strcmp(g[i], w[i]) != 0)
            return 0;
    return 1;
}

/* Fill cfg from the OPTIONS column (in place); *https and *id too. */
static int parse_options(char *opts, gw_config *cfg, int *https, const char **id)
{
    char *save = NULL;
    memset(cfg, 0, sizeof *cfg);
    *https = 0;
    *id = ID;
    for (char *t = strtok_r(opts, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *v = strchr(t, '=');
        if (!v)
            return -1;
        *v++ = '\0';
        if (strcmp(t, "name") == 0) cfg->cookie_name = v;
        else if (strcmp(t, "path") == 0) cfg->cookie_path = v;
        else if (strcmp(t, "domain") == 0) cfg->cookie_domain = v;
        else if (strcmp(t, "max_age") == 0) cfg->cookie_max_age = strtol(v, NULL, 10);
        else if (strcmp(t, "samesite") == 0)
            cfg->cookie_samesite = strcmp(v, "strict") == 0 ? SAMESITE_STRICT :
                                   strcmp(v, "none") == 0 ? SAMESITE_NONE : SAMESITE_LAX;
        else if (strcmp(t, "secure") == 0)
            cfg->cookie_secure = strcmp(v, "on") == 0 ? TRI_ON :
                                 strcmp(v, "off") == 0 ? TRI_OFF : TRI_AUTO;
        else if (strcmp(t, "https") == 0) *https = strcmp(v, "1") == 0;
        else if (strcmp(t, "id") == 0) *id = strcmp(v, "-") == 0 ? NULL : ID;
        else
            return -1;
    }
    return cfg->cookie_name && cfg->cookie_path ? 0 : -1;
}

int main(void)
{
    const char *src = getenv("SG_SRCDIR");
    char path[4096], line[1024];
    int cases = 0;
    snprintf(path, sizeof path, "%s/tests/unit/set_cookie_cases.txt", src ? src : ".");
    FILE *f = fopen(path, "r");
    OK(f != NULL, "the shared Set-Cookie table can be read (%s)", path);
    if (!f)
        return tap_done();
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
        char opts[1024], want[1024], got[1024];
        gw_config cfg;
        int https;
        const char *id;
        buf b;
        if (line[0] == '#' || !tab)
            continue;
        if (nl)
            *nl = '\0';
        *tab = '\0';
        snprintf(opts, sizeof opts, "%s", line);
        /* ID in the expected line stands for the id used */
        char *at = strstr(tab + 1, "=ID");
        if (at)
            snprintf(want, sizeof want, "%.*s=%s%s", (int)(at - tab - 1), tab + 1, ID, at + 3);
        else
            snprintf(want, sizeof want, "%s", tab + 1);
        cases++;
        if (parse_options(opts, &cfg, &https, &id) < 0) {
            OK(0, "case [%s]: options parse", line);
            continue;
        }
        buf_init(&b, 4096);
        respond_cookie(&b, &cfg, id, https);
        const char *v = b.data ? strstr(b.data, "Set-Cookie: ") : NULL;
        size_t len = v ? strcspn(v + 12, "\r\n") : 0;
        snprintf(got, sizeof got, "%.*s", (int)len, v ? v + 12 : "");
        char shown[1024];
        snprintf(shown, sizeof shown, "%s", got);
        int same = v && same_attrs(got, want);
        OK(same, "case [%s]", line);
        if (!same)
            printf("#   got '%s'\n#   want '%s'\n", shown, tab + 1);
        buf_free(&b);
    }
    fclose(f);
    OK(cases >= 10, "the table has %d cases", cases);
    return tap_done();
}
