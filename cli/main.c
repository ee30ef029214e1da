/*
 * main.c - sessgatectl's entry point: global options, the command table,
 * the exit status.
 *
 * This file only wires things together.  The global options are one
 * table from which both getopt_long's option array and the --help text
 * are derived, so the two cannot drift apart (and tests/cli/usage.bats
 * checks the man page against --help).  Each command is one entry in
 * cli_table, defined in its own cmd_<name>.c; adding a command is one new
 * file plus one line here.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Every command, in the order --help lists them. */
static const struct cli_cmd *const cli_table[] = {
    &cli_cmd_create, &cli_cmd_get,    &cli_cmd_set,    &cli_cmd_delete,
    &cli_cmd_rotate, &cli_cmd_list,   &cli_cmd_count,  &cli_cmd_purge,
    &cli_cmd_stats,  &cli_cmd_export, &cli_cmd_import, &cli_cmd_check,
    &cli_cmd_compact,
    NULL
};

enum gopt {
    GOPT_STORE = 1, GOPT_LOCK_TIMEOUT, GOPT_IDLE_TIMEOUT, GOPT_MAX_AGE,
    GOPT_TOUCH_INTERVAL, GOPT_MAX_PER_USER, GOPT_MAX_DATA, GOPT_SYNC, GOPT_GROUP,
    GOPT_HELP, GOPT_VERSION
};

/* The global options: name, argument (NULL: a flag), help, id. */
static const struct gopt_def {
    const char *name;
    const char *arg;
    const char *help;
    int id;
} gopt_table[] = {
    { "store", "URI",
      "the session store: PATH, gdbm:PATH, redis://HOST:PORT/DB or "
      "redis+unix:/SOCKET (default: $SESSGATE_STORE)", GOPT_STORE },
    { "lock-timeout", "MS", "give up waiting for the store lock after MS milliseconds (default 5000)", GOPT_LOCK_TIMEOUT },
    { "idle-timeout", "S", "store default idle timeout in seconds (default 1800)", GOPT_IDLE_TIMEOUT },
    { "max-age", "S", "store default absolute lifetime in seconds (default 604800)", GOPT_MAX_AGE },
    { "touch-interval", "S", "extend the idle window only when older than S seconds (default: idle/10, at most 60)", GOPT_TOUCH_INTERVAL },
    { "max-per-user", "N", "keep at most N sessions per user, evicting the oldest (default 0: no cap)", GOPT_MAX_PER_USER },
    { "max-data", "BYTES", "cap on a session's data JSON (default 65536)", GOPT_MAX_DATA },
    { "sync", NULL, "fsync the store after every write", GOPT_SYNC },
    { "group", NULL, "create the store files with mode 0660 instead of 0600", GOPT_GROUP },
    { "help", NULL, "print this help and exit", GOPT_HELP },
    { "version", NULL, "print the version and exit", GOPT_VERSION },
};
#define GOPT_COUNT (sizeof gopt_table / sizeof gopt_table[0])

static void print_help(void)
{
    size_t i;

    printf("Usage: %s [OPTIONS] COMMAND [ARGS]\n"
           "Create, inspect and maintain the web sessions of a sessgate store.\n"
           "\nOptions:\n", CLI_PROG);
    for (i = 0; i < GOPT_COUNT; i++) {
        char left[64];
        const struct gopt_def *g = &gopt_table[i];

        snprintf(left, sizeof left, "--%s%s%s", g->name, g->arg ? " " : "",
                 g->arg ? g->arg : "");
        printf("  %-20s %s\n", left, g->help);
    }
    printf("\nCommands:\n");
    for (i = 0; cli_table[i] != NULL; i++) {
        const struct cli_cmd *c = cli_table[i];
        int n = printf("  %s%s%s", c->name, c->usage[0] ? " " : "", c->usage);

        if (n > 22)
            printf("\n%23s", "");
        else
            printf("%*s", 23 - n, "");
        printf("%s\n", c->help);
    }
    printf("\n'%s COMMAND --help' describes one command.\n"
           "Exit status: 0 done, 1 not found or expired, 2 usage error, "
           "3 store error.\n", CLI_PROG);
}

static const struct cli_cmd *find_cmd(const char *name)
{
    size_t i;

    for (i = 0; cli_table[i] != NULL; i++)
        if (strcmp(cli_table[i]->name, name) == 0)
            return cli_table[i];
    return NULL;
}

/* Apply one global option; returns an exit status, or -1 to go on. */
static int apply_gopt(struct cli_ctx *ctx, int id, const char *arg)
{
    int64_t v;
    int rc = CLI_EXIT_OK;

    switch (id) {
    case GOPT_STORE:
        ctx->store_uri = arg;
        break;
    case GOPT_LOCK_TIMEOUT:
        if ((rc = cli_parse_int(NULL, "--lock-timeout", arg, 1, CLI_MAX_LOCK_MS, &v)) == 0)
            ctx->opt.lock_timeout_ms = (int)v;
        break;
    case GOPT_IDLE_TIMEOUT:
        if ((rc = cli_parse_int(NULL, "--idle-timeout", arg, 1, CLI_MAX_SECONDS, &v)) == 0)
            ctx->opt.idle_timeout = v;
        break;
    case GOPT_MAX_AGE:
        if ((rc = cli_parse_int(NULL, "--max-age", arg, 1, CLI_MAX_SECONDS, &v)) == 0)
            ctx->opt.max_age = v;
        break;
    case GOPT_TOUCH_INTERVAL:
        if ((rc = cli_parse_int(NULL, "--touch-interval", arg, 1, CLI_MAX_SECONDS, &v)) == 0)
            ctx->opt.touch_interval = v;
        break;
    case GOPT_MAX_PER_USER:
        if ((rc = cli_parse_int(NULL, "--max-per-user", arg, 0, CLI_MAX_PER_USER, &v)) == 0)
            ctx->opt.max_per_user = (int)v;
        break;
    case GOPT_MAX_DATA:
        if ((rc = cli_parse_int(NULL, "--max-data", arg, 2, SG_MAX_DATA_LIMIT, &v)) == 0)
            ctx->opt.max_data = (size_t)v;
        break;
    case GOPT_SYNC:
        ctx->opt.sync = 1;
        break;
    case GOPT_GROUP:
        ctx->opt.group = 1;
        break;
    case GOPT_HELP:
        print_help();
        return CLI_EXIT_OK;
    case GOPT_VERSION:
        printf("%s %s\n", CLI_PROG, sg_version());
        return CLI_EXIT_OK;
    }
    return rc != CLI_EXIT_OK ? rc : -1;
}

/* Flush stdout and turn a failed write (full disk, closed pipe) into
 * exit 3: a caller piping `export` to a file must not get a silent 0. */
static int finish_output(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_msg("cannot write to standard output: %s", strerror(errno));
        if (status == CLI_EXIT_OK)
            status = CLI_EXIT_STORE;
    }
    return status;
}

/* Parse the global options, find the command, run it, map the status. */
int main(int argc, char **argv)
{
    struct option longopts[GOPT_COUNT + 1];
    struct cli_ctx ctx;
    const struct cli_cmd *cmd;
    char shown[64];
    size_t i;
    int c, status;

    memset(&ctx, 0, sizeof ctx);   /* zero options: the store's defaults */
    ctx.store_uri = getenv("SESSGATE_STORE");

    for (i = 0; i < GOPT_COUNT; i++) {
        longopts[i].name = gopt_table[i].name;
        longopts[i].has_arg = gopt_table[i].arg ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = gopt_table[i].id;
    }
    longopts[GOPT_COUNT] = (struct option){ NULL, 0, NULL, 0 };

    cli_optreset();
    /* "+": stop at the command name, so command options stay for it. */
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        if (c == 'h')
            c = GOPT_HELP;
        if (c == '?' || c == ':')
            return cli_bad_option(NULL, argv, c);
        status = apply_gopt(&ctx, c, optarg);
        if (status >= 0)
            return finish_output(status);
    }
    if (optind >= argc)
        return cli_usage(NULL, "no command given");
    cmd = find_cmd(argv[optind]);
    if (cmd == NULL)
        return cli_usage(NULL, "unknown command '%s'",
                         cli_show(argv[optind], shown, sizeof shown));

    argc -= optind;
    argv += optind;
    cli_optreset();
    status = cmd->run(&ctx, cmd, argc, argv);
    status = finish_output(status);
    sg_store_close(ctx.st);
    return status;
}
