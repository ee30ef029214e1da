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
#include <stdlib.h>

#include "cli.h"

/* Print one session; stops the walk when out of memory. */
static int export_one(const sg_session *s, void *arg)
{
    char *json = sg_session_to_json(s);     /* Owned: freed below */

    if (json == NULL) {
        *(int *)arg = 1;
        return 1;
    }
    printf("%s\n", json);
    free(json);
    return 0;
}

static int export_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    sg_error err;
    sg_status rc;
    int oom = 0;

    (void)a;
    sg_error_clear(&err);
    rc = sg_store_each(ctx->st, NULL, export_one, &oom, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    if (oom) {
        cli_msg("out of memory formatting a session");
        return CLI_EXIT_STORE;
    }
    return CLI_EXIT_OK;
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
