/*
 * cmd_compact.c - `sessgatectl compact`: give the space a store does not
 * use back to the disk.
 *
 * A GDBM store compacts itself at a checkpoint once its file holds more
 * than twice its live data (plus 128 KiB), so this is for an operator who
 * wants the room now: after purging most of a store, or for a store
 * written by a sessgate older than 0.1.0, whose files grew without bound.
 * The file is rewritten from its live records into a new file renamed in
 * place, under the exclusive lock (writers wait, as for any write), and a
 * checkpoint empties the log.  Prints the figures as key: value lines.
 */
#include <stdio.h>

#include "cli.h"

static int compact_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    sg_compact_report rep = { 0, 0, 0, 0, 0 };
    sg_error err;
    sg_status rc;

    (void)a;
    sg_error_clear(&err);
    rc = sg_store_compact(ctx->st, &rep, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    printf("store: %s\n", sg_store_path(ctx->st));
    if (!rep.compacted) {
        printf("compacted: no (nothing to do: the server manages its memory)\n");
        return CLI_EXIT_OK;
    }
    printf("compacted: yes\n");
    printf("records: %zu\n", rep.records);
    printf("live_bytes: %llu\n", (unsigned long long)rep.live_bytes);
    printf("bytes_before: %llu\n", (unsigned long long)rep.bytes_before);
    printf("bytes_after: %llu\n", (unsigned long long)rep.bytes_after);
    return CLI_EXIT_OK;
}

/* The `compact` entry of the command table. */
const struct cli_cmd cli_cmd_compact = {
    "compact", "",
    "rewrite the store file from its live records, giving free space back",
    "  Prints store, compacted, records, live_bytes and the bytes of all the\n"
    "  store's files before and after, as key: value lines.  Writers wait\n"
    "  while it runs.  GDBM stores also compact themselves when the file\n"
    "  holds more than twice its live data; on Redis there is nothing to do.\n",
    { { NULL, 0, CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments", CLI_OPEN_WRITE,
    compact_run
};
