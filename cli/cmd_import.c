/*
 * cmd_import.c - `sessgatectl import`: load JSON lines from stdin.
 *
 * The other half of `export`: each line is one session record, imported
 * with its id (an existing session with that id is replaced).  Expired
 * records are skipped, not errors: an export taken a while ago is still a
 * good backup.  A bad line is reported with its line number and the rest
 * still go in, so one damaged line cannot cost the whole restore; the
 * exit status is then 1 so a script notices.  A store error stops the
 * import (exit 3): going on would only repeat it.
 *
 * Lines are read with a hard cap (CLI_MAX_LINE), never an unbounded
 * buffer, and imported in batches under one exclusive lock, which is far
 * faster than locking per record yet never holds the lock for long.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define IMPORT_BATCH        256   /* records per exclusive-lock hold */
#define IMPORT_MAX_MESSAGES 20    /* rejected lines reported one by one */

/* A growable line buffer with a hard cap. */
struct linebuf {
    char  *p;       /* Owned: freed by import_run */
    size_t len;
    size_t cap;
};

/* Read one line without its newline.  Returns 1 (a line), 0 (end of
 * input) or -1 (out of memory).  *bad is set for a line over max bytes
 * (the rest is skipped) or holding a NUL byte. */
static int read_line(FILE *in, struct linebuf *b, size_t max, const char **bad)
{
    int ch, any = 0;

    b->len = 0;
    *bad = NULL;
    while ((ch = getc(in)) != EOF) {
        any = 1;
        if (ch == '\n')
            break;
        if (*bad != NULL)
            continue;
        if (ch == '\0') {
            *bad = "a NUL byte in the line";
            continue;
        }
        if (b->len >= max) {
            *bad = "line too long";
            continue;
        }
        if (b->len + 1 >= b->cap) {
            size_t ncap = b->cap ? b->cap * 2 : 4096;
            char *np;

            if (ncap > max + 1)
                ncap = max + 1;
            np = realloc(b->p, ncap);
            if (np == NULL)
                return -1;
            b->p = np;
            b->cap = ncap;
        }
        b->p[b->len++] = (char)ch;
    }
    if (!any)
        return 0;
    if (b->cap == 0) {
        b->p = malloc(1);
        if (b->p == NULL)
            return -1;
        b->cap = 1;
    }
    if (b->len > 0 && b->p[b->len - 1] == '\r')
        b->len--;
    b->p[b->len] = '\0';
    return 1;
}

static int blank(const char *s)
{
    return s[strspn(s, " \t\r\f\v")] == '\0';
}

static int import_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    struct linebuf line = { NULL, 0, 0 };
    unsigned long lineno = 0, imported = 0, skipped = 0, rejected = 0;
    int r, status = CLI_EXIT_OK, locked = 0, in_batch = 0;
    const char *bad;
    sg_error err;
    sg_status rc;

    (void)a;
    sg_error_clear(&err);
    while ((r = read_line(stdin, &line, CLI_MAX_LINE, &bad)) == 1) {
        lineno++;
        if (bad == NULL && blank(line.p))
            continue;
        if (bad != NULL) {
            rc = SG_EINVAL;
        } else {
            if (!locked) {
                rc = sg_store_begin(ctx->st, &err);
                if (rc != SG_OK) {
                    status = cli_fail(&err, rc);
                    break;
                }
                locked = 1;
                in_batch = 0;
            }
            rc = sg_session_import(ctx->st, line.p, &err);
            if (++in_batch == IMPORT_BATCH) {
                sg_store_end(ctx->st);
                locked = 0;
            }
        }
        if (rc == SG_OK) {
            imported++;
        } else if (rc == SG_EEXPIRED) {
            skipped++;
        } else if (rc == SG_EINVAL || rc == SG_ETOOBIG) {
            if (++rejected <= IMPORT_MAX_MESSAGES) {
                char shown[SG_ERROR_TEXT + 8];

                cli_msg("import: line %lu rejected: %s", lineno,
                        bad != NULL ? bad
                                    : cli_show(err.text[0] ? err.text : sg_strerror(rc),
                                               shown, sizeof shown));
            } else if (rejected == IMPORT_MAX_MESSAGES + 1) {
                cli_msg("import: further rejected lines are counted, not shown");
            }
        } else {
            char shown[SG_ERROR_TEXT + 8];

            cli_msg("import: line %lu: %s (import stopped)", lineno,
                    cli_show(err.text[0] ? err.text : sg_strerror(rc),
                             shown, sizeof shown));
            status = cli_exit_for(rc);
            break;
        }
        sg_error_clear(&err);
    }
    if (locked)
        sg_store_end(ctx->st);
    free(line.p);
    if (r < 0) {
        cli_msg("import: out of memory reading line %lu", lineno + 1);
        status = CLI_EXIT_STORE;
    } else if (status == CLI_EXIT_OK && ferror(stdin)) {
        cli_msg("import: cannot read standard input after line %lu", lineno);
        status = CLI_EXIT_STORE;
    }
    printf("imported %lu, skipped %lu (expired), rejected %lu\n",
           imported, skipped, rejected);
    if (status == CLI_EXIT_OK && rejected > 0)
        status = CLI_EXIT_NOTFOUND;
    return status;
}

/* The `import` entry of the command table. */
const struct cli_cmd cli_cmd_import = {
    "import", "",
    "read JSON lines (as export writes them) from standard input",
    "  Ids are kept; an existing session with the same id is replaced.\n"
    "  Expired records are skipped.  A malformed line is reported with its\n"
    "  number and the import goes on; the exit status is then 1.\n",
    { { NULL, 0, CLI_FLAG, 0, 0 } },
    0, 0, "takes no arguments (it reads standard input)", CLI_OPEN_WRITE,
    import_run
};
