/*
 * cmd_delete.c - `sessgatectl delete ID | --user U | --all --yes`: end
 * sessions now.
 *
 * The administrator's logout: the id stops working at once for every
 * process sharing the store.  Deleting an id that is not there is exit 1,
 * so a script can tell "deleted" from "was already gone".  `--user U`
 * logs a user out everywhere (every session of U, atomically with respect
 * to a login of U happening at the same moment) and `--all` empties the
 * store; both print how many sessions they deleted.  `--all` wants
 * `--yes` too: it ends every user's session at once, and a mistyped
 * command line must not be able to do that.
 */
#include <stdio.h>

#include "cli.h"

static int delete_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    const struct cli_cmd *self = a->cmd;
    const char *user = cli_arg(a, 'u');
    int all = cli_arg(a, 'a') != NULL, yes = cli_arg(a, 'y') != NULL;
    size_t removed = 0;
    sg_error err;
    sg_status rc;
    int status;

    if (user || all) {
        if (user && all)
            return cli_usage(self, "give --user U or --all, not both");
        if (a->argc != 0)
            return cli_usage(self, "takes no session id with --user or --all");
        if (all && !yes)
            return cli_usage(self, "--all deletes every session of the store; "
                             "add --yes to confirm");
        if ((status = cli_open(ctx, 0)))
            return status;
        sg_error_clear(&err);
        rc = user ? sg_store_delete_user(ctx->st, user, &removed, &err)
                  : sg_store_clear(ctx->st, &removed, &err);
        if (rc != SG_OK)
            return cli_fail(&err, rc);
        printf("%zu\n", removed);
        return CLI_EXIT_OK;
    }
    if (yes)
        return cli_usage(self, "--yes goes with --all");
    if (a->argc != 1)
        return cli_usage(self, "needs exactly one session id, --user U or --all --yes");
    /* The library calls a malformed id SG_EINVAL here; to the user it is
     * simply not a session, as with get. */
    if ((status = cli_check_id(a->argv[0])))
        return status;
    if ((status = cli_open(ctx, 0)))
        return status;

    sg_error_clear(&err);
    rc = sg_session_delete(ctx->st, a->argv[0], &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    return CLI_EXIT_OK;
}

/* The `delete` entry of the command table.  The count depends on the
 * options, so run checks it. */
const struct cli_cmd cli_cmd_delete = {
    "delete", "ID | --user U | --all --yes",
    "delete a session, every session of a user, or every session",
    "  ID         delete this session (its id stops working at once)\n"
    "  --user U   delete every session of user U (log out everywhere);\n"
    "             prints how many\n"
    "  --all      delete every session of the store; needs --yes;\n"
    "             prints how many\n",
    { { "user", 'u', CLI_TEXT, 0, 0 },
      { "all", 'a', CLI_FLAG, 0, 0 },
      { "yes", 'y', CLI_FLAG, 0, 0 } },
    0, -1, "", 0,
    delete_run
};
