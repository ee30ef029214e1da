/*
 * util.c - helpers several sessgatectl commands share.
 *
 * Everything here exists so that the command files stay short and behave
 * alike: one way to parse a number (strtoll plus a range check, never
 * atoi), one way to turn a library status into an exit status, one shape
 * for every error ("sessgatectl: <cause and fix>" on one stderr line), and
 * one place that opens the store.  Text that came from the user is passed
 * through cli_show() before it reaches a message, so a hostile argument
 * cannot put control characters or a second line on the terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

/* Exit status for a library status (DESIGN.md section 6). */
int cli_exit_for(sg_status code)
{
    switch (code) {
    case SG_OK:
        return CLI_EXIT_OK;
    case SG_ENOTFOUND:
    case SG_EEXPIRED:
        return CLI_EXIT_NOTFOUND;
    case SG_EINVAL:
    case SG_ETOOBIG:
        /* Only input from the command line reaches the library unchecked
         * (a user name, a data size): the caller's mistake. */
        return CLI_EXIT_USAGE;
    case SG_ECONFLICT:       /* cannot happen under our locks; a store matter */
    case SG_ELOCKTIMEOUT:
    case SG_ESTORE:
    case SG_ENOMEM:
    default:
        return CLI_EXIT_STORE;
    }
}

/* Print "sessgatectl: <formatted>" on stderr as one line. */
void cli_msg(const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Print the library's message for code; returns the exit status. */
int cli_fail(const sg_error *err, sg_status code)
{
    char shown[SG_ERROR_TEXT + 8];

    if (err != NULL && err->code != SG_OK)
        code = err->code;
    if (err != NULL && err->text[0] != '\0')
        /* The library promises one line; cli_show() keeps that promise
         * even if it is broken. */
        cli_msg("%s", cli_show(err->text, shown, sizeof shown));
    else
        cli_msg("%s", sg_strerror(code));
    return cli_exit_for(code);
}

/* Report a usage error; returns CLI_EXIT_USAGE. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_PROG ": ", stderr);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd != NULL)
        fprintf(stderr, " (see %s %s --help)\n", CLI_PROG, cmd->name);
    else
        fprintf(stderr, " (see %s --help)\n", CLI_PROG);
    return CLI_EXIT_USAGE;
}

/* Report getopt_long's complaint; returns CLI_EXIT_USAGE. */
int cli_bad_option(const struct cli_cmd *cmd, char **argv, int c)
{
    char shown[64];
    /* With opterr = 0 getopt_long prints nothing; the offending word is
     * the one before optind (for a short option, optopt names it). */
    const char *word = optind > 0 ? argv[optind - 1] : "?";

    if (optopt != 0 && c == '?' && word[0] == '-' && word[1] != '-') {
        char shortopt[3] = { '-', (char)optopt, '\0' };
        return cli_usage(cmd, "unknown option %s",
                         cli_show(shortopt, shown, sizeof shown));
    }
    if (c == ':')
        return cli_usage(cmd, "option %s needs a value",
                         cli_show(word, shown, sizeof shown));
    return cli_usage(cmd, "unknown option %s",
                     cli_show(word, shown, sizeof shown));
}

/* Print `COMMAND --help` on stdout. */
int cli_help(const struct cli_cmd *cmd)
{
    printf("Usage: %s [OPTIONS] %s%s%s\n%c%s.\n", CLI_PROG, cmd->name,
           cmd->usage[0] != '\0' ? " " : "", cmd->usage,
           cmd->help[0] >= 'a' && cmd->help[0] <= 'z' ? cmd->help[0] - 'a' + 'A'
                                                        : cmd->help[0],
           cmd->help + 1);
    if (cmd->details != NULL)
        printf("\n%s", cmd->details);
    printf("\nGlobal options (--store, --lock-timeout, ...): %s --help\n",
           CLI_PROG);
    return CLI_EXIT_OK;
}

/* Reset getopt_long for a new argv (GNU: optind 0 reinitialises). */
void cli_optreset(void)
{
    optind = 0;
    opterr = 0;
}

/* Parse a decimal integer in [min, max]. */
int cli_parse_int(const struct cli_cmd *cmd, const char *name,
                  const char *text, int64_t min, int64_t max, int64_t *out)
{
    char shown[48];
    char *end = NULL;
    long long v = 0;

    /* strtoll alone would accept " 12", "+12" and "12abc"; a digit first
     * and nothing after keeps "--ttl 1h" from meaning one second. */
    errno = 0;
    if (text[0] >= '0' && text[0] <= '9')
        v = strtoll(text, &end, 10);
    else if (text[0] == '-' && text[1] >= '0' && text[1] <= '9')
        v = strtoll(text, &end, 10);
    else
        end = NULL;
    if (end == NULL || *end != '\0' || errno == ERANGE || v < min || v > max)
        return cli_usage(cmd, "%s: '%s' is not a whole number from %lld to %lld",
                         name, cli_show(text, shown, sizeof shown),
                         (long long)min, (long long)max);
    *out = (int64_t)v;
    return CLI_EXIT_OK;
}

/* Check that text is one JSON object. */
int cli_check_json(const struct cli_cmd *cmd, const char *what,
                   const char *text)
{
    json_error_t jerr;
    /* Owned: freed below; only parsed to judge the text.  The library
     * checks again; doing it here first makes malformed input a usage
     * error (2) even when the id is unknown, with jansson's position. */
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    int ok;

    if (j == NULL) {
        char shown[JSON_ERROR_TEXT_LENGTH + 8];
        return cli_usage(cmd, "%s is not valid JSON: %s at character %d",
                         what, cli_show(jerr.text, shown, sizeof shown),
                         jerr.position);
    }
    ok = json_is_object(j);
    json_decref(j);
    if (!ok)
        return cli_usage(cmd, "%s must be a JSON object ({...})", what);
    return CLI_EXIT_OK;
}

/* Check the shape of a session id; malformed ids are "not found". */
int cli_check_id(const char *id)
{
    char shown[48];

    if (sg_id_valid(id))
        return CLI_EXIT_OK;
    cli_msg("session '%s': not found (a session id is a 36-character "
            "lower-case UUID)", cli_show(id, shown, sizeof shown));
    return CLI_EXIT_NOTFOUND;
}

/* Open the store named by ctx. */
int cli_open(struct cli_ctx *ctx, unsigned flags)
{
    sg_error err;
    sg_options opt = ctx->opt;
    sg_status rc;

    if (ctx->st != NULL)
        return CLI_EXIT_OK;
    if (ctx->store_uri == NULL || ctx->store_uri[0] == '\0')
        return cli_usage(NULL, "no store given: pass --store PATH or set "
                               "SESSGATE_STORE");
    if (flags & CLI_OPEN_READ)
        opt.readonly = 1;
    if (opt.group) {
        /* --group asks for 0660, but the library creates with open()'s
         * mode, which the umask trims (022 gives 0640).  The user asked
         * for group access explicitly, so let the group bits through. */
        mode_t old = umask(0);

        umask(old & ~(mode_t)0060);
    }
    sg_error_clear(&err);
    rc = sg_store_open(ctx->store_uri, &opt, &ctx->st, &err);
    if (rc != SG_OK && (flags & CLI_OPEN_READ) && err.sys_errno == ENOENT) {
        char shown[96];

        /* Read-only commands never create a store, so a mistyped path is
         * an error; say so plainly instead of naming the lock file. */
        cli_msg("store %s does not exist (check --store or SESSGATE_STORE; "
                "a command that writes, such as create, creates it)",
                cli_show(ctx->store_uri, shown, sizeof shown));
        return CLI_EXIT_STORE;
    }
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    return CLI_EXIT_OK;
}

/* Print one session as a JSON line; on out of memory flag arg, stop. */
int cli_print_json(const sg_session *s, void *arg)
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

/* Walk the live sessions (of user) through fn, a chunk at a time. */
int cli_each(struct cli_ctx *ctx, const char *user, sg_each_fn fn)
{
    sg_error err;
    sg_status rc;
    int oom = 0;

    sg_error_clear(&err);
    rc = sg_store_each(ctx->st, user, fn, &oom, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    if (oom) {
        cli_msg("out of memory formatting a session");
        return CLI_EXIT_STORE;
    }
    return CLI_EXIT_OK;
}

/* Make s printable for a one-line message. */
const char *cli_show(const char *s, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (size < 8) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        size_t need = (c < 0x20 || c >= 0x7f) ? 4 : 1;

        if (o + need + 4 > size) {      /* room for "..." and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (need == 4) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* Format a Unix time as UTC ISO 8601. */
const char *cli_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
    return buf;
}
