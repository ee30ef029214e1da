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
#include <stdio.h>

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

static int list_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    return cli_each(ctx, cli_arg(a, 'u'), cli_arg(a, 'j') ? cli_print_json : list_one);
}

/* The `list` entry of the command table. */
const struct cli_cmd cli_cmd_list = {
    "list", "[--user U] [--json]",
    "list live sessions, oldest first",
    "  --user U  only the sessions of user U\n"
    "  --json    one JSON record per line instead of the columns\n"
    "  Columns: id, user (- for anonymous), created, accessed, expires\n"
    "  (the absolute end; idleness may end it sooner), version.\n",
    { { "user", 'u', CLI_TEXT, 0, 0 },
      { "json", 'j', CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments besides its options", CLI_OPEN_READ,
    list_run
};
