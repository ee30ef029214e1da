/*
 * cmd_export.c - `sessgatectl export`: every live session as JSON lines.
 *
 * For backups and for moving sessions to another store (`export | import`
 * keeps ids, so logged-in users stay logged in).  Each line is the record
 * sg_session_to_json writes and sg_session_import reads.  Sessions are
 * read without touching them, a chunk at a time (sg_store_each): the store
 * is never locked for the whole export, nor while a line is written, so a
 * busy gateway is not stalled by a large export or a slow pipe.
 */
#include <stdio.h>

#include "cli.h"

static int export_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    (void)a;
    return cli_each(ctx, NULL, cli_print_json);
}

/* The `export` entry of the command table. */
const struct cli_cmd cli_cmd_export = {
    "export", "",
    "write every live session to standard output, one JSON record a line",
    NULL,
    { { NULL, 0, CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments (it writes to standard output)", CLI_OPEN_READ,
    export_run
};
