/*
 * cgi_script.c - which program cgi mode runs (the first of its five jobs;
 * the others: cgi_env.c, cgi_apply.c, cgi_stream.c, and mode_cgi.c which
 * strings them together).
 *
 * Only a script that resolves (realpath: symlinks and ".." followed) inside
 * --cgi-root, or the one --cgi-program, ever runs; a missing script is 404
 * and one outside the root 403, and nothing is executed (fcgiwrap runs any
 * path it is given).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway.h"

/* Resolve the script to run.  New: *out (free()).  Returns 0 or the HTTP
 * status to answer with (403, 404). */
int cgi_resolve(gw_request *rq, char **out)
{
    const gw_config *cfg = rq->cfg;
    const char *sf = request_param(rq, "SCRIPT_FILENAME");
    char *joined = NULL, *real;
    size_t rootlen;
    struct stat sb;

    *out = NULL;
    if (cfg->cgi_program) {
        *out = strdup(cfg->cgi_program);
        return *out ? 0 : 500;
    }
    if (!sf || !*sf) {
        const char *root = request_param(rq, "DOCUMENT_ROOT");
        const char *name = request_param(rq, "SCRIPT_NAME");
        if (!root || !name || !*name)
            return 404;
        if (asprintf(&joined, "%s/%s", root, name) < 0)
            return 500;
        sf = joined;
    }
    real = realpath(sf, NULL);          /* owned: handed out or freed */
    if (!real) {
        int e = errno;
        log_msg("cgi script %.300s: %s", sf, strerror(e));
        free(joined);
        return e == EACCES ? 403 : 404;
    }
    free(joined);
    rootlen = strlen(cfg->cgi_root);
    /* Why: the resolved path, not the given one, must lie under the root,
     * or "../" and symlinks would lead anywhere (fcgiwrap runs any path). */
    if (strncmp(real, cfg->cgi_root, rootlen) != 0 ||
        (real[rootlen] != '/' && !(rootlen == 1 && cfg->cgi_root[0] == '/'))) {
        log_msg("cgi script %.300s resolves outside --cgi-root; refused", real);
        free(real);
        return 403;
    }
    if (stat(real, &sb) < 0 || !S_ISREG(sb.st_mode) || access(real, X_OK) < 0) {
        log_msg("cgi script %.300s is not an executable file", real);
        free(real);
        return 403;
    }
    *out = real;
    return 0;
}
