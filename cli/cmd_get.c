/*
 * cmd_get.c - `sessgatectl get ID...`: print sessions as JSON.
 *
 * An administrator looking at a session must not change it: by default
 * the read is SG_GET_NOTOUCH, so inspecting a session does not keep it
 * alive.  --touch does what a web request does (extend the idle window,
 * at most once per touch interval), which is how a script can keep a
 * session alive and how the tests observe the touch interval.  Strict
 * like the library: a malformed, unknown or expired id is "not found"
 * (exit 1) and prints nothing on stdout.  Several ids may be given, so a
 * script (or a test of strictness over many ids) pays for one process and
 * one store open instead of one per id.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

/* Print the record of one id; returns an exit status (1: not found). */
static int get_one(struct cli_ctx *ctx, const char *id, unsigned flags)
{
    sg_session *s = NULL;   /* Owned: freed below */
    char *json;             /* Owned: freed below */
    sg_error err;
    sg_status rc;
    int status;

    if ((status = cli_check_id(id)))
        return status;
    /* Opened at the first well-formed id: malformed ids never reach the
     * store (nor need one), as with set, delete and rotate. */
    if ((status = cli_open(ctx, (flags & SG_GET_NOTOUCH) ? CLI_OPEN_READ : 0)))
        return status;
    sg_error_clear(&err);
    rc = sg_session_get(ctx->st, id, flags, &s, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    json = sg_session_to_json(s);
    sg_session_free(s);
    if (json == NULL) {
        cli_msg("out of memory formatting the session");
        return CLI_EXIT_STORE;
    }
    printf("%s\n", json);
    free(json);
    return CLI_EXIT_OK;
}

static int get_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    unsigned flags = cli_arg(a, 't') ? 0 : SG_GET_NOTOUCH;
    int i, status, worst = CLI_EXIT_OK;

    /* Several ids: each is looked up on its own; one that is not found
     * is reported and the rest still print (exit 1 at the end).  A store
     * error stops at once: the next lookup would only repeat it. */
    for (i = 0; i < a->argc; i++) {
        status = get_one(ctx, a->argv[i], flags);
        if (status == CLI_EXIT_NOTFOUND)
            worst = status;
        else if (status != CLI_EXIT_OK)
            return status;
    }
    return worst;
}

/* The `get` entry of the command table. */
const struct cli_cmd cli_cmd_get = {
    "get", "[--touch] ID...",
    "print each session as one JSON line (does not extend it)",
    "  --touch  use the session like a web request does: extend its idle\n"
    "           window when the last touch is older than the touch interval\n"
    "  With several ids: one record per line for each one found; each id\n"
    "  not found gets its own stderr line and the exit status is 1.\n",
    { { "touch", 't', CLI_FLAG, 0, 0 } },
    1, -1, "needs a session id", 0,
    get_run
};
