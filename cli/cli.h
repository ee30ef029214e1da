/*
 * cli.h - what sessgatectl's main.c, util.c and cmd_*.c files share.
 *
 * sessgatectl is the admin tool over libsessgate.  Following tmux, every
 * command lives in its own cmd_<name>.c and exports one `struct cli_cmd`
 * entry (name, usage, help, its options, its argument count, how it opens
 * the store, run function); main.c lists them in one table and only wires
 * things together: global options (the store options come from
 * libsessgate's table, sg_option_at), the lookup of the command, the exit
 * status.  args.c parses every command's line against its entry, once;
 * util.c holds what several commands need (number parsing, error
 * reporting, opening the store), so each command file reads as the few
 * library calls it makes.
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

/* Longest lifetime a command line gives one session (create --ttl,
 * --idle): 100 years, the store options' own limit (libcore/options.c). */
#define CLI_MAX_SECONDS   (100LL * 366 * 86400)
/* Longest import line: the largest data a store accepts plus room for the
 * rest of the record and its \u escapes.  Longer lines are rejected. */
#define CLI_MAX_LINE      ((size_t)SG_MAX_DATA_LIMIT * 6 + 4096)

/* State shared by main.c and the command being run. */
struct cli_ctx {
    const char *store_uri;  /* Borrowed: from argv or the environment */
    sg_options  opt;        /* zero fields mean the store's defaults */
    sg_store   *st;         /* Owned: opened by cli_open(), closed by main */
};

/* What a command option takes. */
enum cli_opt_type {
    CLI_FLAG = 0,   /* nothing: present or not */
    CLI_TEXT,       /* any text */
    CLI_NUMBER,     /* a whole number in [min, max] (cli_parse_int) */
    CLI_JSON        /* one JSON object (cli_check_json, after the count) */
};

/* One option of a command, as its table entry declares it. */
struct cli_opt {
    const char *name;       /* long name without "--"; NULL ends the list */
    char        key;        /* what run() asks for: cli_arg(a, 'u') */
    enum cli_opt_type type;
    int64_t     min, max;   /* CLI_NUMBER only */
};

#define CLI_MAX_OPTS 8      /* options of one command (--help is implicit) */

struct cli_cmd;

/* A command line parsed against its command's table entry. */
struct cli_args {
    const struct cli_cmd *cmd;
    int         argc;               /* the arguments after the options */
    char      **argv;
    const char *val[CLI_MAX_OPTS];  /* per option: NULL absent, flags "" */
    int64_t     num[CLI_MAX_OPTS];  /* per CLI_NUMBER option */
};

/* Run a parsed command.  Returns an exit status. */
typedef int (*cli_run_fn)(struct cli_ctx *ctx, const struct cli_args *a);

#define CLI_OPEN_READ   1u  /* the command never writes: open read-only */
#define CLI_OPEN_WRITE  2u  /* open for writing before run */

/* One entry of the command table (each cmd_<name>.c defines one).  Like
 * tmux's cmd_entry: the entry declares the options and the argument
 * count, and cli_parse() does the getopt loop, --help, the count check
 * and the opening of the store for every command alike. */
struct cli_cmd {
    const char *name;
    const char *usage;     /* arguments after the name, "" when none */
    const char *help;      /* one line, lower case, no full stop */
    const char *details;   /* more lines for `COMMAND --help`, or NULL */
    struct cli_opt opts[CLI_MAX_OPTS];
    int         args_min, args_max;  /* -1: no upper bound */
    const char *args_error;          /* usage error for another count */
    unsigned    open;      /* CLI_OPEN_*; 0: run opens it when it must */
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
extern const struct cli_cmd cli_cmd_checkpoint;

/* ------------------------------------------------------------ args.c */

/* Parse argv (argv[0] is the command name) against cmd's entry, then
 * open the store as the entry asks.  Returns -1 to run the command with
 * *a filled, or an exit status (help printed, usage error reported). */
int cli_parse(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc,
              char **argv, struct cli_args *a);

/* Borrowed: the value of option key, "" for a flag given, NULL if absent. */
const char *cli_arg(const struct cli_args *a, char key);

/* The number given for option key, or def when absent. */
int64_t cli_num(const struct cli_args *a, char key, int64_t def);

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

/* Open the store named by ctx into ctx->st; returns an exit status (with
 * the message printed on failure). */
int cli_open(struct cli_ctx *ctx, unsigned flags);

/* sg_each_fn: print s as one JSON line; when out of memory set
 * *(int *)arg and stop the walk. */
int cli_print_json(const sg_session *s, void *arg);

/* Walk the live sessions (of user, NULL: all) with fn, its arg an int
 * that fn sets when out of memory; returns an exit status (reported). */
int cli_each(struct cli_ctx *ctx, const char *user, sg_each_fn fn);

/* Borrowed (buf): s made printable for a message: control bytes and
 * non-ASCII as \xNN, cut to fit buf with "..." on the end. */
const char *cli_show(const char *s, char *buf, size_t size);

/* Borrowed (buf): t as UTC "YYYY-MM-DDTHH:MM:SSZ". */
const char *cli_time(int64_t t, char *buf, size_t size);

#endif /* SG_CLI_H */
