/*
 * cmd_count.c - `sessgatectl count`: how many sessions are live.
 *
 * A number on one line, for monitoring scripts: all live sessions, or
 * those of one user (to check a per-user cap).  Expired sessions not yet
 * purged are not counted: they are invisible to everyone else too.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static int count_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                     int argc, char **argv)
{
    static const struct option longopts[] = {
        { "user", required_argument, NULL, 'u' },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *user = NULL;
    size_t n = 0;
    sg_error err;
    sg_status rc;
    int c, status;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            user = optarg;
            break;
        case 'h':
            return cli_help(self);
        default:
            return cli_bad_option(self, argv, c);
        }
    }
    if (optind != argc)
        return cli_usage(self, "takes no arguments besides its options");
    if ((status = cli_open(ctx, CLI_OPEN_READ)))
        return status;

    sg_error_clear(&err);
    rc = sg_store_count(ctx->st, user, &n, &err);
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
    count_run
};
