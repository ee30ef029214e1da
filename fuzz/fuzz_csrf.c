/*
 * fuzz_csrf.c - libFuzzer target for the --csrf checks (gateway/csrf.c),
 * whose Origin and Host parsing sees raw client headers.
 *
 * The input is split on '\n' into Origin, Host, Sec-Fetch-Site and the
 * method.  Besides "no crash, no out-of-bounds read" (ASan), it checks the
 * promise that matters: a request without a session is never let through
 * by an unsafe method, whatever its headers say; and a GET always is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = { "HTTP_ORIGIN=", "HTTP_HOST=",
                                         "HTTP_SEC_FETCH_SITE=", "REQUEST_METHOD=" };
    char *envp[5] = { NULL };
    size_t start = 0, n = 0, i;
    gw_config cfg;
    gw_request rq;
    const char *method = NULL;

    for (i = 0; i <= size && n < 4; i++)
        if (i == size || data[i] == '\n') {
            size_t len = strlen(names[n]) + (i - start);
            char *e = malloc(len + 1);              /* exact size: ASan sees overreads */
            if (!e)
                goto out;
            memcpy(e, names[n], strlen(names[n]));
            memcpy(e + strlen(names[n]), data + start, i - start);
            e[len] = '\0';
            envp[n++] = e;
            start = i + 1;
        }
    memset(&cfg, 0, sizeof cfg);
    cfg.csrf = 1;
    memset(&rq, 0, sizeof rq);
    rq.cfg = &cfg;
    rq.envp = envp;
    method = request_param(&rq, "REQUEST_METHOD");
    {
        const char *why = csrf_refusal(&rq);
        int safe = !method || !strcmp(method, "GET") || !strcmp(method, "HEAD") ||
                   !strcmp(method, "OPTIONS") || !strcmp(method, "TRACE");
        if (safe ? why != NULL : why == NULL)
            abort();                    /* no session must never pass */
    }
out:
    for (i = 0; i < n; i++)
        free(envp[i]);
    return 0;
}
