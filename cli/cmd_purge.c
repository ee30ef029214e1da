/*
 * cmd_purge.c - `sessgatectl purge`: remove expired sessions.
 *
 * Never needed for correctness (expired sessions are invisible), but it
 * keeps the store file small; run it from cron.  Prints how many records
 * were removed so the cron log shows the store is being cleaned.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static int purge_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                     int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    size_t removed = 0;
    sg_error err;
    sg_status rc;
    int c, status;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h')
            return cli_help(self);
        return cli_bad_option(self, argv, c);
    }
    if (optind != argc)
        return cli_usage(self, "takes no arguments");
    if ((status = cli_open(ctx, 0)))
        return status;

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
    purge_run
};
