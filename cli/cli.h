/*
 * cli.h - what sessgatectl's main.c, util.c and cmd_*.c files share.
 *
 * sessgatectl is the admin tool over libsessgate.  Following tmux, every
 * command lives in its own cmd_<name>.c and exports one `struct cli_cmd`
 * entry (name, usage, one-line help, run function); main.c lists them in
 * one table and only wires things together: global options, the lookup of
 * the command, the exit status.  util.c holds what several commands need
 * (number parsing, error reporting, opening the store), so each command
 * file reads as the few library calls it makes.
 *
 * Exit statuses are part of the outside contract (DESIGN.md section 6):
 * 0 done, 1 not found or expired, 2 usage error, 3 store error.
 */
#ifndef SG_CLI_H
#define SG_CLI_H

#include <stdint.h>

#include "sessgate.h"

#define CLI_PROG "sessgatectl"

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_NOTFOUND = 1,  /* no such session, or expired (also: import rejected a line) */
    CLI_EXIT_USAGE = 2,     /* bad command line or malformed input argument */
    CLI_EXIT_STORE = 3      /* store, lock, memory or output failure */
};

/* Limits on numbers from the command line (parsed with strtoll + range). */
#define CLI_MAX_SECONDS   (100LL * 366 * 86400)  /* any duration: 100 years */
#define CLI_MAX_LOCK_MS   (3600 * 1000)          /* an hour */
#define CLI_MAX_PER_USER  1000000
/* Longest import line: the largest data a store accepts plus room for the
 * rest of the record and its \u escapes.  Longer lines are rejected. */
#define CLI_MAX_LINE      ((size_t)SG_MAX_DATA_LIMIT * 6 + 4096)

/* State shared by main.c and the command being run. */
struct cli_ctx {
    const char *store_uri;  /* Borrowed: from argv or the environment */
    sg_options  opt;        /* zero fields mean the store's defaults */
    sg_store   *st;         /* Owned: opened by cli_open(), closed by main */
};

struct cli_cmd;

/* Run a command: argv[0] is the command name.  Returns an exit status. */
typedef int (*cli_run_fn)(struct cli_ctx *ctx, const struct cli_cmd *self,
                          int argc, char **argv);

/* One entry of the command table (each cmd_<name>.c defines one). */
struct cli_cmd {
    const char *name;
    const char *usage;     /* arguments after the name, "" when none */
    const char *help;      /* one line, lower case, no full stop */
    const char *details;   /* more lines for `COMMAND --help`, or NULL */
    cli_run_fn  run;
};

extern const struct cli_cmd cli_cmd_create;
extern const struct cli_cmd cli_cmd_get;
extern const struct cli_cmd cli_cmd_set;
extern const struct cli_cmd cli_cmd_delete;
extern const struct cli_cmd cli_cmd_rotate;
extern const struct cli_cmd cli_cmd_list;
extern const struct cli_cmd cli_cmd_count;
extern const struct cli_cmd cli_cmd_purge;
extern const struct cli_cmd cli_cmd_stats;
extern const struct cli_cmd cli_cmd_export;
extern const struct cli_cmd cli_cmd_import;
extern const struct cli_cmd cli_cmd_check;
extern const struct cli_cmd cli_cmd_compact;

/* ------------------------------------------------------------ util.c */

/* Exit status for a library status. */
int cli_exit_for(sg_status code);

/* Print "sessgatectl: <text>" on stderr; returns the exit status for code
 * (uses the library's text, or its status name when the text is empty). */
int cli_fail(const sg_error *err, sg_status code);

/* Print "sessgatectl: <formatted>" on stderr as one line. */
void cli_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a usage error of cmd (NULL: the global command line); returns
 * CLI_EXIT_USAGE. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Report getopt_long's complaint c ('?' or ':') about argv; returns
 * CLI_EXIT_USAGE. */
int cli_bad_option(const struct cli_cmd *cmd, char **argv, int c);

/* Print `COMMAND --help` on stdout; returns CLI_EXIT_OK. */
int cli_help(const struct cli_cmd *cmd);

/* Make the next getopt_long call start afresh on a new argv. */
void cli_optreset(void);

/* Parse text as a decimal integer in [min, max] for option name; returns
 * CLI_EXIT_OK, or reports and returns CLI_EXIT_USAGE. */
int cli_parse_int(const struct cli_cmd *cmd, const char *name,
                  const char *text, int64_t min, int64_t max, int64_t *out);

/* Check that text is one JSON object (what: "--data", "JSON"); returns
 * CLI_EXIT_OK, or reports and returns CLI_EXIT_USAGE. */
int cli_check_json(const struct cli_cmd *cmd, const char *what,
                   const char *text);

/* Check that id has the shape of a session id; a malformed id is reported
 * as not found (strict: it can never name a session).  Returns
 * CLI_EXIT_OK or CLI_EXIT_NOTFOUND. */
int cli_check_id(const char *id);

#define CLI_OPEN_READ  1u   /* the command never writes: open read-only */

/* Open the store named by ctx into ctx->st; returns an exit status (with
 * the message printed on failure). */
int cli_open(struct cli_ctx *ctx, unsigned flags);

/* Borrowed (buf): s made printable for a message: control bytes and
 * non-ASCII as \xNN, cut to fit buf with "..." on the end. */
const char *cli_show(const char *s, char *buf, size_t size);

/* Borrowed (buf): t as UTC "YYYY-MM-DDTHH:MM:SSZ". */
const char *cli_time(int64_t t, char *buf, size_t size);

#endif /* SG_CLI_H */
