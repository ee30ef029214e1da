/*
 * cmd_export.c - `sessgatectl export`: every live session as JSON lines.
 *
 * For backups and for moving sessions to another store (`export | import`
 * keeps ids, so logged-in users stay logged in).  Each line is the record
 * sg_session_to_json writes and sg_session_import reads.  Sessions are
 * read one at a time without touching them; the store is not locked for
 * the whole export, so a busy gateway is not stalled by a large one.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int export_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                      int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    sg_list *ids = NULL;    /* Owned: freed below */
    sg_error err;
    sg_status rc;
    size_t i, n;
    int c, status;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h')
            return cli_help(self);
        return cli_bad_option(self, argv, c);
    }
    if (optind != argc)
        return cli_usage(self, "takes no arguments (it writes to standard output)");
    if ((status = cli_open(ctx, CLI_OPEN_READ)))
        return status;

    sg_error_clear(&err);
    rc = sg_store_list(ctx->st, NULL, &ids, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    n = sg_list_count(ids);
    for (i = 0; i < n; i++) {
        sg_session *s = NULL;   /* Owned: freed at the end of the loop */
        char *json;             /* Owned: freed at the end of the loop */

        rc = sg_session_get(ctx->st, sg_list_id(ids, i), SG_GET_NOTOUCH, &s, &err);
        if (rc == SG_ENOTFOUND || rc == SG_EEXPIRED) {
            sg_error_clear(&err);   /* ended since the snapshot */
            continue;
        }
        if (rc != SG_OK) {
            sg_list_free(ids);
            return cli_fail(&err, rc);
        }
        json = sg_session_to_json(s);
        sg_session_free(s);
        if (json == NULL) {
            sg_list_free(ids);
            cli_msg("out of memory formatting a session");
            return CLI_EXIT_STORE;
        }
        printf("%s\n", json);
        free(json);
    }
    sg_list_free(ids);
    return CLI_EXIT_OK;
}

/* The `export` entry of the command table. */
const struct cli_cmd cli_cmd_export = {
    "export", "",
    "write every live session to standard output, one JSON record a line",
    NULL,
    export_run
};
