/*
 * cmd_purge.c - `sessgatectl purge`: remove expired sessions.
 *
 * Never needed for correctness (expired sessions are invisible), but it
 * keeps the store file small; run it from cron.  Prints how many records
 * were removed so the cron log shows the store is being cleaned.
 */
#include <stdio.h>

#include "cli.h"

static int purge_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    size_t removed = 0;
    sg_error err;
    sg_status rc;

    (void)a;
    sg_error_clear(&err);
    rc = sg_store_purge(ctx->st, &removed, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    printf("%zu\n", removed);
    return CLI_EXIT_OK;
}

/* The `purge` entry of the command table. */
const struct cli_cmd cli_cmd_purge = {
    "purge", "",
    "remove expired sessions and print how many were removed",
    NULL,
    { { NULL, 0, CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments", CLI_OPEN_WRITE,
    purge_run
};
