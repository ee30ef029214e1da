/*
 * cmd_checkpoint.c - `sessgatectl checkpoint`: build a GDBM store's due
 * checkpoint, outside any request.
 *
 * A writer leaves a big checkpoint due rather than build it inside its own
 * call (the call of a user's request: 31 s on 60,000 sessions under load,
 * minutes at 1M, issue 19).  The gateway's master builds due checkpoints
 * between requests; a site whose writers are only the bindings runs this
 * from a timer (the shipped sessgate-purge.service does, twice an hour).
 * Built behind the lock: writers and readers go on.  Should nobody build
 * them, a writer still does once the log reaches 4 times its due size.
 */
#include <stdio.h>

#include "cli.h"

static int checkpoint_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    int force = cli_arg(a, 'f') != NULL, built = 0, due = 0;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_store_checkpoint(ctx->st, SG_CHECKPOINT_QUERY, &due, &err);
    if (rc == SG_OK)
        rc = sg_store_checkpoint(ctx->st, force ? SG_CHECKPOINT_FORCE : 0,
                                 &built, &err);
    else if (rc == SG_ENOTSUP)
        rc = SG_OK;                     /* Redis: nothing to do, not an error */
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    printf("store: %s\n", sg_store_path(ctx->st));
    printf("due: %s\n", due ? "yes" : "no");
    printf("built: %s\n", built ? "yes" : "no");
    return CLI_EXIT_OK;
}

/* The `checkpoint` entry of the command table. */
const struct cli_cmd cli_cmd_checkpoint = {
    "checkpoint", "[--force]",
    "build the store's checkpoint if one is due (for a timer)",
    "  --force  build one even if none is due\n"
    "  Prints store, due (whether one was due) and built (whether this run\n"
    "  built one) as key: value lines.  Writers and readers go on meanwhile.\n"
    "  GDBM writers leave a big checkpoint due for this (or the gateway) to\n"
    "  build; on Redis there is nothing to do.\n",
    { { "force", 'f', CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments besides its options", CLI_OPEN_WRITE,
    checkpoint_run
};
