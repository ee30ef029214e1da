/*
 * args.c - the one command-line parser behind every sessgatectl command.
 *
 * Each cmd_<name>.c declares its options and its argument count in its
 * table entry (tmux's cmd_entry); this file turns the entry into
 * getopt_long's array, runs the loop, answers --help, range-checks numbers,
 * checks the count, checks JSON options and opens the store, always in
 * that order, so every command reports the same mistake the same way and
 * a command file holds only the library calls it makes.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Index of the option keyed key in a's command, or -1. */
static int opt_index(const struct cli_args *a, char key)
{
    int i;

    for (i = 0; i < CLI_MAX_OPTS && a->cmd->opts[i].name != NULL; i++)
        if (a->cmd->opts[i].key == key)
            return i;
    return -1;
}

/* Borrowed: the value of option key. */
const char *cli_arg(const struct cli_args *a, char key)
{
    int i = opt_index(a, key);

    return i < 0 ? NULL : a->val[i];
}

/* The number of option key, or def. */
int64_t cli_num(const struct cli_args *a, char key, int64_t def)
{
    int i = opt_index(a, key);

    return i < 0 || a->val[i] == NULL ? def : a->num[i];
}

/* Borrowed (buf): "--name", for messages. */
static const char *dashed(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "--%s", name);
    return buf;
}

/* Parse, check and open as cmd's entry says. */
int cli_parse(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc,
              char **argv, struct cli_args *a)
{
    struct option longopts[CLI_MAX_OPTS + 2];
    int n, c, i, status, count;

    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    for (n = 0; n < CLI_MAX_OPTS && cmd->opts[n].name != NULL; n++) {
        longopts[n].name = cmd->opts[n].name;
        longopts[n].has_arg = cmd->opts[n].type == CLI_FLAG ? no_argument
                                                             : required_argument;
        longopts[n].flag = NULL;
        longopts[n].val = 256 + n;
    }
    longopts[n] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[n + 1] = (struct option){ NULL, 0, NULL, 0 };

    cli_optreset();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const struct cli_opt *o;

        if (c == 'h')
            return cli_help(cmd);
        if (c < 256 || c >= 256 + n)
            return cli_bad_option(cmd, argv, c);
        i = c - 256;
        o = &cmd->opts[i];
        a->val[i] = o->type == CLI_FLAG ? "" : optarg;
        if (o->type == CLI_NUMBER) {
            char flag[48];

            if ((status = cli_parse_int(cmd, dashed(o->name, flag, sizeof flag),
                                        optarg, o->min, o->max, &a->num[i])))
                return status;
        }
    }
    a->argc = argc - optind;
    a->argv = argv + optind;
    count = a->argc;
    if (count < cmd->args_min || (cmd->args_max >= 0 && count > cmd->args_max))
        return cli_usage(cmd, "%s", cmd->args_error);
    for (i = 0; i < n; i++)
        if (cmd->opts[i].type == CLI_JSON && a->val[i] != NULL) {
            char flag[48];

            if ((status = cli_check_json(cmd, dashed(cmd->opts[i].name, flag,
                                                     sizeof flag), a->val[i])))
                return status;
        }
    if (cmd->open && (status = cli_open(ctx, cmd->open & CLI_OPEN_READ)))
        return status;
    return -1;
}
