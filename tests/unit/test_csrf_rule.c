/*
 * test_csrf_rule.c - the gateway's --csrf decision (csrf.c, csrf_refusal)
 * against tests/unit/csrf_cases.txt, the table the WSGI middleware's
 * csrf=True check is tested against too (tests/bindings/wsgi.bats), so the
 * gateway and sessgate.wsgi cannot drift apart.  Needs a scratch directory
 * (argv[1]) for the store that gives the session its token.  Prints TAP
 * lines; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../gateway/gateway.h"
#include "tap.h"

#define NCOLS 6

int main(int argc, char **argv)
{
    const char *src = getenv("SG_SRCDIR");
    char path[4096], line[1024];
    sg_store *st = NULL;
    sg_session *s = NULL;
    int cases = 0;

    snprintf(path, sizeof path, "%s/csrf.db", argc > 1 ? argv[1] : ".");
    /* Calls outside OK(), which evaluates its condition twice. */
    sg_status rc = sg_store_open(path, NULL, &st, NULL);
    OK(rc == SG_OK, "a store in the scratch dir");
    rc = st ? sg_session_create(st, "alice", NULL, 0, 0, &s, NULL) : SG_ESTORE;
    OK(rc == SG_OK, "a session");
    snprintf(path, sizeof path, "%s/tests/unit/csrf_cases.txt", src ? src : ".");
    FILE *f = fopen(path, "r");
    OK(f != NULL, "the shared CSRF table can be read (%s)", path);
    if (!f || !s) {
        sg_session_free(s);
        sg_store_close(st);
        if (f)
            fclose(f);
        return tap_done();
    }
    gw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.csrf = 1;
    while (fgets(line, sizeof line, f)) {
        char copy[1024], *col[NCOLS], *save = NULL, *nl = strchr(line, '\n');
        char env[5][1100], *envp[6];
        size_t n = 0, ne = 0;
        if (line[0] == '#' || !strchr(line, '\t'))
            continue;
        if (nl)
            *nl = '\0';
        snprintf(copy, sizeof copy, "%s", line);
        for (char *t = strtok_r(copy, "\t", &save); t && n < NCOLS; t = strtok_r(NULL, "\t", &save))
            col[n++] = t;
        cases++;
        if (n != NCOLS) {
            OK(0, "case [%s]: %zu columns", line, n);
            continue;
        }
        static const char *const names[] = { "REQUEST_METHOD", "HTTP_SEC_FETCH_SITE",
                                             "HTTP_ORIGIN", "HTTP_HOST" };
        for (size_t i = 0; i < 4; i++)
            if (strcmp(col[i + 1], "-") != 0)
                snprintf(env[ne], sizeof env[ne], "%s=%s", names[i], col[i + 1]), ne++;
        const char *tok = col[5];
        if (strcmp(tok, "ok") == 0)
            snprintf(env[ne], sizeof env[ne], "HTTP_X_CSRF_TOKEN=%s", sg_session_csrf_token(s)), ne++;
        else if (strcmp(tok, "wrong") == 0)
            snprintf(env[ne], sizeof env[ne], "HTTP_X_CSRF_TOKEN=%064d", 0), ne++;
        for (size_t i = 0; i < ne; i++)
            envp[i] = env[i];
        envp[ne] = NULL;
        gw_request rq;
        memset(&rq, 0, sizeof rq);
        rq.cfg = &cfg;
        rq.envp = envp;
        rq.session = strcmp(tok, "nosession") == 0 ? NULL : s;
        const char *why = csrf_refusal(&rq);
        int want_refuse = strcmp(col[0], "refuse") == 0;
        OK((why != NULL) == want_refuse, "case [%s]%s%s", line, why ? ": " : "", why ? why : "");
    }
    fclose(f);
    OK(cases >= 20, "the table has %d cases", cases);
    sg_session_free(s);
    sg_store_close(st);
    return tap_done();
}
