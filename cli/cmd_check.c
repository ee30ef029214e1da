/*
 * cmd_check.c - `sessgatectl check`: verify the store, optionally repair.
 *
 * Reads every record and reports how many there are, how many do not
 * parse, and what a GDBM recovery kept or lost.  Without --repair nothing
 * is changed and damage gives exit 3, so it can run from a health check;
 * with --repair unparsable records are removed and a damaged file is
 * rebuilt (gdbm_recover, logged by the figures here), and the exit status
 * is 0 once the store is whole again.
 */
#include <stdio.h>

#include "cli.h"

static int check_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    sg_check_report rep = { 0 };
    int repair = cli_arg(a, 'r') != NULL;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_store_check(ctx->st, repair, &rep, &err);
    /* Damage found without --repair comes back as SG_ESTORE with the
     * report filled in: print the figures, then the error. */
    if (rc != SG_OK && !(rc == SG_ESTORE && rep.bad_records > 0))
        return cli_fail(&err, rc);
    printf("store: %s\n", sg_store_path(ctx->st));
    printf("records: %zu\n", rep.records);
    printf("bad_records: %zu%s\n", rep.bad_records,
           rep.bad_records > 0 ? (repair ? " (removed)" : " (run check --repair)") : "");
    /* Opening a damaged store rebuilds it from its log before check gets
     * to look (sg_store_recoveries counts that): say so, or a store that
     * was just rebuilt would read "recovered: no". */
    printf("recovered: %s\n", rep.recovered ? "yes"
           : sg_store_recoveries(ctx->st) > 0 ? "yes (when the store was opened)"
           : "no");
    printf("recovered_keys: %zu\n", rep.recovered_keys);
    printf("failed_keys: %zu\n", rep.failed_keys);
    printf("old_format: %zu%s\n", rep.old_format,
           rep.old_format > 0 ? (repair ? " (converted)" : " (check --repair converts)") : "");
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    if (rep.bad_records > 0 && !repair) {
        cli_msg("store %s: %zu damaged record(s) (run sessgatectl check --repair)",
                sg_store_path(ctx->st), rep.bad_records);
        return CLI_EXIT_STORE;
    }
    return CLI_EXIT_OK;
}

/* The `check` entry of the command table. */
const struct cli_cmd cli_cmd_check = {
    "check", "[--repair]",
    "verify every record; exit 3 if damage remains",
    "  --repair  remove unparsable records and rebuild a damaged file\n"
    "  Prints store, records, bad_records, recovered, recovered_keys and\n"
    "  failed_keys as key: value lines.\n",
    { { "repair", 'r', CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments besides its options", CLI_OPEN_WRITE,
    check_run
};
