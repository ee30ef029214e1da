/*
 * main.c - sessgatectl's entry point: global options, the command table,
 * the exit status.
 *
 * This file only wires things together.  The global options are
 * libsessgate's store-option table (sg_option_at: ranges, defaults and
 * help shared with the gateway and the bindings) between --store and
 * --help/--version; getopt_long's option array and the --help text are
 * both derived from it, so they cannot drift apart (and tests/cli/usage.bats
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
    &cli_cmd_compact, &cli_cmd_checkpoint,
    NULL
};

/* The global options besides the store options, which come from the
 * library's table (sg_option_at, rows for SG_FACE_CLI) between --store
 * and --help: name, argument (NULL: a flag), help. */
static const struct gopt_def {
    const char *name;
    const char *arg;
    const char *help;
} gopt_store = {
    "store", "URI",
    "the session store: PATH, gdbm:PATH, redis://[USER@]HOST:PORT/DB, "
    "redis+unix:/SOCKET or redis+sentinel://H:P,H:P/MASTER; a Redis "
    "password via ?password_file=PATH or $SESSGATE_REDIS_PASSWORD "
    "(default: $SESSGATE_STORE)"
}, gopt_tail[] = {
    { "help", NULL, "print this help and exit" },
    { "version", NULL, "print the version and exit" },
};

#define GOPT_STORE    1
#define GOPT_HELP     2
#define GOPT_VERSION  3
#define GOPT_TABLE    256   /* + the row of sg_option_at() */

static void print_gopt(const char *name, const char *arg, const char *help,
                       const char *def)
{
    char left[64];

    snprintf(left, sizeof left, "--%s%s%s", name, arg ? " " : "", arg ? arg : "");
    if (def)
        printf("  %-20s %s (default %s)\n", left, help, def);
    else
        printf("  %-20s %s\n", left, help);
}

static void print_help(void)
{
    const sg_option_info *r;
    size_t i;

    printf("Usage: %s [OPTIONS] COMMAND [ARGS]\n"
           "Create, inspect and maintain the web sessions of a sessgate store.\n"
           "\nOptions:\n", CLI_PROG);
    print_gopt(gopt_store.name, gopt_store.arg, gopt_store.help, NULL);
    for (i = 0; (r = sg_option_at(i)) != NULL; i++) {
        char def[32];

        if (!(r->faces & SG_FACE_CLI))
            continue;
        if (r->def_text)
            snprintf(def, sizeof def, "%s", r->def_text);
        else
            snprintf(def, sizeof def, "%lld", (long long)r->def_value);
        print_gopt(r->flag, r->arg, r->help, r->arg ? def : NULL);
    }
    for (i = 0; i < sizeof gopt_tail / sizeof gopt_tail[0]; i++)
        print_gopt(gopt_tail[i].name, gopt_tail[i].arg, gopt_tail[i].help, NULL);
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
    const sg_option_info *r;
    char flag[48];
    sg_error err;
    int64_t v = 1;
    int rc;

    switch (id) {
    case GOPT_STORE:
        ctx->store_uri = arg;
        return -1;
    case GOPT_HELP:
        print_help();
        return CLI_EXIT_OK;
    case GOPT_VERSION:
        printf("%s %s\n", CLI_PROG, sg_version());
        return CLI_EXIT_OK;
    }
    r = sg_option_at((size_t)(id - GOPT_TABLE));
    snprintf(flag, sizeof flag, "--%s", r->flag);
    if (r->arg && (rc = cli_parse_int(NULL, flag, arg, r->min, r->max, &v)))
        return rc;
    sg_error_clear(&err);
    if (sg_options_set(&ctx->opt, r->name, v, &err) != SG_OK)
        return cli_fail(&err, err.code);     /* the table and the row disagree */
    return -1;
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
    struct option longopts[64];
    struct cli_ctx ctx;
    struct cli_args args;
    const struct cli_cmd *cmd;
    const sg_option_info *r;
    char shown[64];
    size_t i, n = 0;
    int c, status;

    memset(&ctx, 0, sizeof ctx);   /* zero options: the store's defaults */
    ctx.store_uri = getenv("SESSGATE_STORE");

    longopts[n++] = (struct option){ gopt_store.name, required_argument, NULL, GOPT_STORE };
    for (i = 0; (r = sg_option_at(i)) != NULL && n < 60; i++)
        if (r->faces & SG_FACE_CLI)
            longopts[n++] = (struct option){ r->flag, r->arg ? required_argument
                                                            : no_argument,
                                             NULL, GOPT_TABLE + (int)i };
    longopts[n++] = (struct option){ "help", no_argument, NULL, GOPT_HELP };
    longopts[n++] = (struct option){ "version", no_argument, NULL, GOPT_VERSION };
    longopts[n] = (struct option){ NULL, 0, NULL, 0 };

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

    status = cli_parse(&ctx, cmd, argc - optind, argv + optind, &args);
    if (status < 0)
        status = cmd->run(&ctx, &args);
    status = finish_output(status);
    sg_store_close(ctx.st);
    return status;
}
