/*
 * cmd_set.c - `sessgatectl set ID JSON`: merge keys into a session's data.
 *
 * The merge runs through sg_session_update, under the store's exclusive
 * lock from load to save, so a web worker changing the same session at
 * the same moment cannot lose this change or have its own change lost
 * (no read-modify-write race).  Top-level keys replace, a null value
 * deletes the key.  The JSON is checked before the store is opened, so a
 * malformed argument is a usage error (2) whatever the id.
 */
#include <stdio.h>

#include "cli.h"

/* sg_update_fn: merge the JSON text in arg into the session. */
static sg_status set_merge(sg_session *s, void *arg, sg_error *err)
{
    return sg_session_merge_data(s, (const char *)arg, err);
}

static int set_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *id = a->argv[0], *json = a->argv[1];
    sg_error err;
    sg_status rc;
    int status;

    if ((status = cli_check_json(a->cmd, "JSON", json)))
        return status;
    if ((status = cli_check_id(id)))
        return status;
    if ((status = cli_open(ctx, 0)))
        return status;

    sg_error_clear(&err);
    rc = sg_session_update(ctx->st, id, set_merge, (void *)json, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    return CLI_EXIT_OK;
}

/* The `set` entry of the command table. */
const struct cli_cmd cli_cmd_set = {
    "set", "ID JSON",
    "merge a JSON object into the session's data (null deletes a key)",
    "  The merge is atomic: the store stays locked from load to save.\n",
    { { NULL, 0, CLI_FLAG, 0, 0 } },
    2, 2, "needs a session id and a JSON object", 0,
    set_run
};
