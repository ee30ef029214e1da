/*
 * cmd_stats.c - `sessgatectl stats`: the store's figures.
 *
 * "key: value" lines (stable keys, one figure each) so both a person and
 * a monitoring agent can read them.  One full scan of the store.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static int stats_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                     int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    sg_stats stats;
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
    if ((status = cli_open(ctx, CLI_OPEN_READ)))
        return status;

    sg_error_clear(&err);
    rc = sg_store_stats(ctx->st, &stats, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    printf("store: %s\n", sg_store_path(ctx->st));
    printf("sessions: %zu\n", stats.sessions);
    printf("live: %zu\n", stats.live);
    printf("expired: %zu\n", stats.expired);
    printf("users: %zu\n", stats.users);
    printf("anonymous: %zu\n", stats.anonymous);
    printf("file_bytes: %llu\n", (unsigned long long)stats.file_bytes);
    printf("writes: %llu\n", (unsigned long long)stats.writes);
    return CLI_EXIT_OK;
}

/* The `stats` entry of the command table. */
const struct cli_cmd cli_cmd_stats = {
    "stats", "",
    "print the store's figures as key: value lines",
    "  Keys: store, sessions (records, live or not), live, expired, users\n"
    "  (distinct, among live sessions), anonymous, file_bytes, writes.\n",
    stats_run
};
