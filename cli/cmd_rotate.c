/*
 * cmd_rotate.c - `sessgatectl rotate ID`: give a session a new id.
 *
 * Rotation is the defence against session fixation and theft: the data
 * moves to a fresh random id.  The old id resolves to it for --rotate-grace
 * seconds (the store-option table's default, as the gateway's and the
 * bindings'), so a browser's requests in flight keep the session; with
 * --rotate-grace 0 it stops working at once (cutting off a leaked id:
 * or delete the session).  The load and the rotation run under one
 * exclusive lock (sg_store_begin), so no writer can slip in between and
 * be lost.
 */
#include <stdio.h>

#include "cli.h"

static int rotate_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    sg_session *s = NULL;   /* Owned: freed below */
    sg_error err;
    sg_status rc;
    int status;

    if ((status = cli_check_id(a->argv[0])))
        return status;
    if ((status = cli_open(ctx, 0)))
        return status;

    sg_error_clear(&err);
    rc = sg_store_begin(ctx->st, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    rc = sg_session_get(ctx->st, a->argv[0], SG_GET_NOTOUCH, &s, &err);
    if (rc == SG_OK)
        rc = sg_session_rotate(ctx->st, s, &err);
    sg_store_end(ctx->st);
    if (rc != SG_OK) {
        sg_session_free(s);
        return cli_fail(&err, rc);
    }
    printf("%s\n", sg_session_id(s));
    sg_session_free(s);
    return CLI_EXIT_OK;
}

/* The `rotate` entry of the command table. */
const struct cli_cmd cli_cmd_rotate = {
    "rotate", "ID",
    "move the session to a new id, print it (the old id works for "
    "--rotate-grace seconds, then dies)",
    NULL,
    { { NULL, 0, CLI_FLAG, 0, 0 } },
    1, 1, "needs exactly one session id", 0,
    rotate_run
};
