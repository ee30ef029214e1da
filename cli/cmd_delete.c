/*
 * cmd_delete.c - `sessgatectl delete ID`: end a session now.
 *
 * The administrator's logout: the id stops working at once for every
 * process sharing the store.  Deleting an id that is not there is exit 1,
 * so a script can tell "deleted" from "was already gone".
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static int delete_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                      int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    sg_error err;
    sg_status rc;
    int c, status;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h')
            return cli_help(self);
        return cli_bad_option(self, argv, c);
    }
    if (argc - optind != 1)
        return cli_usage(self, "needs exactly one session id");
    /* The library calls a malformed id SG_EINVAL here; to the user it is
     * simply not a session, as with get. */
    if ((status = cli_check_id(argv[optind])))
        return status;
    if ((status = cli_open(ctx, 0)))
        return status;

    sg_error_clear(&err);
    rc = sg_session_delete(ctx->st, argv[optind], &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    return CLI_EXIT_OK;
}

/* The `delete` entry of the command table. */
const struct cli_cmd cli_cmd_delete = {
    "delete", "ID",
    "delete the session (its id stops working at once)",
    NULL,
    delete_run
};
