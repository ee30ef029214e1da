/*
 * cmd_list.c - `sessgatectl list`: one line per live session.
 *
 * The default form is for people: fixed columns (id, user, created,
 * accessed, expires, version) with UTC times, "-" for an anonymous
 * session.  --json prints the full record of each session on its own
 * line, for scripts.  The store is read a chunk at a time
 * (sg_store_each), never locked for the whole list; a session that ends
 * before its chunk is read is left out, because it is no longer live.
 * Nothing is touched.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

/* Print one session in the human form. */
static void list_line(const sg_session *s)
{
    char created[32], accessed[32], expires[32];
    const char *user = sg_session_user(s);

    printf("%s  %-16s  %s  %s  %s  %llu\n", sg_session_id(s),
           user != NULL ? user : "-",
           cli_time(sg_session_created(s), created, sizeof created),
           cli_time(sg_session_accessed(s), accessed, sizeof accessed),
           cli_time(sg_session_expires(s), expires, sizeof expires),
           (unsigned long long)sg_session_version(s));
}

static int list_one(const sg_session *s, void *arg)
{
    (void)arg;
    list_line(s);
    return 0;
}

/* Print one session as JSON; stops the walk when out of memory. */
static int list_json(const sg_session *s, void *arg)
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

static int list_run(struct cli_ctx *ctx, const struct cli_cmd *self,
                    int argc, char **argv)
{
    static const struct option longopts[] = {
        { "user", required_argument, NULL, 'u' },
        { "json", no_argument,       NULL, 'j' },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *user = NULL;
    int as_json = 0;
    sg_error err;
    sg_status rc;
    int c, status, oom = 0;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            user = optarg;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'h':
            return cli_help(self);
        default:
            return cli_bad_option(self, argv, c);
        }
    }
    if (optind != argc)
        return cli_usage(self, "takes no arguments besides its options");
    if ((status = cli_open(ctx, CLI_OPEN_READ)))
        return status;

    sg_error_clear(&err);
    rc = sg_store_each(ctx->st, user, as_json ? list_json : list_one, &oom,
                       &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    if (oom) {
        cli_msg("out of memory formatting a session");
        return CLI_EXIT_STORE;
    }
    return CLI_EXIT_OK;
}

/* The `list` entry of the command table. */
const struct cli_cmd cli_cmd_list = {
    "list", "[--user U] [--json]",
    "list live sessions, oldest first",
    "  --user U  only the sessions of user U\n"
    "  --json    one JSON record per line instead of the columns\n"
    "  Columns: id, user (- for anonymous), created, accessed, expires\n"
    "  (the absolute end; idleness may end it sooner), version.\n",
    list_run
};
