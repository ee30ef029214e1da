/*
 * cmd_count.c - `sessgatectl count`: how many sessions are live.
 *
 * A number on one line, for monitoring scripts: all live sessions, or
 * those of one user (to check a per-user cap).  Expired sessions not yet
 * purged are not counted: they are invisible to everyone else too.
 */
#include <stdio.h>

#include "cli.h"

static int count_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    size_t n = 0;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_store_count(ctx->st, cli_arg(a, 'u'), &n, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    printf("%zu\n", n);
    return CLI_EXIT_OK;
}

/* The `count` entry of the command table. */
const struct cli_cmd cli_cmd_count = {
    "count", "[--user U]",
    "print the number of live sessions (of user U)",
    NULL,
    { { "user", 'u', CLI_TEXT, 0, 0 } },
    0, 0, "takes no arguments besides its options", CLI_OPEN_READ,
    count_run
};
