/*
 * cmd_create.c - `sessgatectl create`: make a session and print its id.
 *
 * For administrators and scripts that need a session without a browser:
 * seeding a test user, handing a support engineer a session, or creating
 * one on behalf of a login service.  The id comes from the library
 * (getrandom, never chosen by the caller: no fixation), so the only
 * inputs are the user, the initial data and the two lifetimes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int create_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    sg_session *s = NULL;   /* Owned: freed below */
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_session_create(ctx->st, cli_arg(a, 'u'), cli_arg(a, 'd'),
                           cli_num(a, 'i', 0), cli_num(a, 't', 0), &s, &err);
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
    { { "user", 'u', CLI_TEXT, 0, 0 },
      { "data", 'd', CLI_JSON, 0, 0 },
      { "ttl", 't', CLI_NUMBER, 1, CLI_MAX_SECONDS },
      { "idle", 'i', CLI_NUMBER, 1, CLI_MAX_SECONDS } },
    0, 0, "takes no arguments besides its options", CLI_OPEN_WRITE,
    create_run
};
