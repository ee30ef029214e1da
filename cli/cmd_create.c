/*
 * cmd_create.c - `sessgatectl create`: make a session and print its id.
 *
 * For administrators and scripts that need a session without a browser:
 * seeding a test user, handing a support engineer a session, or creating
 * one on behalf of a login service.  The id comes from the library
 * (getrandom, never chosen by the caller: no fixation), so the only
 * inputs are the user, the initial data and the two lifetimes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int create_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                      int argc, char **argv)
{
    static const struct option longopts[] = {
        { "user", required_argument, NULL, 'u' },
        { "data", required_argument, NULL, 'd' },
        { "ttl",  required_argument, NULL, 't' },
        { "idle", required_argument, NULL, 'i' },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *user = NULL, *data = NULL;
    int64_t ttl = 0, idle = 0;
    sg_session *s = NULL;   /* Owned: freed below */
    sg_error err;
    sg_status rc;
    int c, status;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            user = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 't':
            if ((status = cli_parse_int(self, "--ttl", optarg, 1, CLI_MAX_SECONDS, &ttl)))
                return status;
            break;
        case 'i':
            if ((status = cli_parse_int(self, "--idle", optarg, 1, CLI_MAX_SECONDS, &idle)))
                return status;
            break;
        case 'h':
            return cli_help(self);
        default:
            return cli_bad_option(self, argv, c);
        }
    }
    if (optind != argc)
        return cli_usage(self, "takes no arguments besides its options");
    if (data != NULL && (status = cli_check_json(self, "--data", data)))
        return status;
    if ((status = cli_open(ctx, 0)))
        return status;

    sg_error_clear(&err);
    rc = sg_session_create(ctx->st, user, data, idle, ttl, &s, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    printf("%s\n", sg_session_id(s));
    sg_session_free(s);
    return CLI_EXIT_OK;
}

/* The `create` entry of the command table. */
const struct cli_cmd cli_cmd_create = {
    "create", "[--user U] [--data JSON] [--ttl S] [--idle S]",
    "create a session and print its id",
    "  --user U     the session's user (default: anonymous)\n"
    "  --data JSON  the initial data, a JSON object (default: {})\n"
    "  --ttl S      absolute lifetime in seconds (default: the store's --max-age)\n"
    "  --idle S     idle timeout in seconds (default: the store's --idle-timeout)\n",
    create_run
};
