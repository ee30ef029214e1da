/*
 * fuzz_import.c - libFuzzer target for `sessgatectl import`: JSON lines
 * from a backup or another machine, fed to the real command.
 *
 * The input is the command's standard input.  The command itself
 * (cli/cmd_import.c, with cli/util.c) is compiled into this file, so the
 * line reader with its NUL and length checks, the blank-line rule, the
 * batching under sg_store_begin and sg_session_import all run as they do
 * in sessgatectl.  The store is a real GDBM store (write-ahead log and
 * all) in a mkdtemp directory, opened once per process with a fixed clock,
 * so expiry is decided the same way on every run, and a small data cap
 * (FUZZ_MAX_DATA), so the size checks are in reach of fuzzer-sized input.
 *
 * Invariants, besides "no crash, no leak" (ASan/LSan):
 *  - the exit status is 0 without rejected lines and 1 with them, never a
 *    store or usage error; stdout is exactly the one summary line and its
 *    counts add up to the lines read; stderr is one printable line per
 *    message, so a hostile line cannot reach the terminal as control bytes;
 *  - what was imported is exactly what an independent reading of each
 *    line predicts (parse, size cap, liveness at the fixed clock), the
 *    last line for an id winning;
 *  - every imported session reads back with sg_session_get (no touch) and
 *    sg_session_to_json as the record that was imported, ASCII-only and
 *    free of CR, LF and NUL; re-importing that JSON succeeds and stores
 *    the same record; a touching get changes neither version nor data;
 *  - the per-user index lists each imported session under its user;
 *  - after deleting the imported sessions the store holds no key at all
 *    (no orphaned index entry), so the next input starts from empty.
 * A violated invariant prints what broke and calls abort().
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The real command, as sessgatectl links it. */
#include "../cli/util.c"
#include "../cli/args.c"
#include "../cli/cmd_import.c"

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_NOW      1764000000    /* the fixed clock, Unix seconds */
#define FUZZ_MAX_DATA 2048          /* small cap: ETOOBIG within reach */
#define FUZZ_MAX_IDS  4096          /* more lines than a fuzz input holds */

static char store_dir[256];
static char store_path[300];
static struct cli_ctx ctx;          /* ctx.st: the store, opened once */
static FILE *real_stderr;

static int64_t fixed_clock(void *arg)
{
    (void)arg;
    return FUZZ_NOW;
}

static void fail(const char *why, const char *detail)
{
    fprintf(real_stderr ? real_stderr : stderr, "fuzz_import: %s%s%s\n",
            why, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* Remove the temporary store when the fuzzer exits normally. */
static void remove_store(void)
{
    DIR *d;
    struct dirent *e;
    char p[600];

    sg_store_close(ctx.st);
    ctx.st = NULL;
    if (!store_dir[0] || !(d = opendir(store_dir)))
        return;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", store_dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(store_dir);
}

/* Open the store once, under a fresh temporary directory. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    sg_error err = { 0 };

    (void)argc;
    (void)argv;
    real_stderr = stderr;
    snprintf(store_dir, sizeof store_dir, "%s/fuzz_import.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(store_dir))
        fail("mkdtemp failed", store_dir);
    snprintf(store_path, sizeof store_path, "%s/sessions.db", store_dir);
    sg_options_init(&ctx.opt);
    ctx.opt.clock = fixed_clock;
    ctx.opt.max_data = FUZZ_MAX_DATA;
    ctx.store_uri = store_path;
    if (sg_store_open(store_path, &ctx.opt, &ctx.st, &err) != SG_OK)
        fail("cannot open the store", err.text);
    atexit(remove_store);
    return 0;
}

/* One line as the oracle sees it. */
struct expect {
    char   id[SG_ID_LEN + 1];
    char  *dump;        /* Owned: the record as stored, when imported */
    char  *user;        /* Borrowed from parsed; NULL: anonymous */
    sg_session *parsed; /* Owned */
};

/* Predict what sg_session_import does with one line; the order of the
 * checks follows it.  0 imported, 1 skipped (expired), 2 rejected. */
static int predict(const char *line, struct expect *x)
{
    size_t len = strlen(line), dlen;
    char *d;

    memset(x, 0, sizeof *x);
    if (len > FUZZ_MAX_DATA + 1024)
        return 2;
    if (sgi_record_from_json(line, len, &x->parsed, NULL) != SG_OK)
        return 2;
    d = sgi_dump(x->parsed->data, &dlen);
    if (!d)
        fail("out of memory", NULL);
    free(d);
    if (dlen > FUZZ_MAX_DATA)
        return 2;
    if (!sgi_live(x->parsed, FUZZ_NOW))
        return 1;
    memcpy(x->id, x->parsed->id, SG_ID_LEN + 1);
    x->user = x->parsed->user;
    x->dump = sgi_record_to_json(x->parsed, NULL);
    if (!x->dump)
        fail("out of memory", NULL);
    return 0;
}

static void check_text(const char *what, const char *s, size_t n, int lf_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(lf_ok && c == '\n')) || c > 0x7e)
            fail(what, "holds a control or non-ASCII byte");
    }
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int count_key(const char *key, size_t len, void *arg)
{
    (void)key;
    (void)len;
    ++*(size_t *)arg;
    return 0;
}

/* Run the import command on data; *out and *errtext get what it printed. */
static int run_import(const uint8_t *data, size_t size, char **out,
                      size_t *outlen, char **errtext, size_t *errlen)
{
    static char empty[1];
    static char arg0[] = "import";
    char *argv[] = { arg0, NULL };
    FILE *saved_in = stdin, *saved_out = stdout, *saved_err = stderr;
    /* fmemopen refuses a zero size: an empty stdin is a stream at EOF. */
    FILE *in = size ? fmemopen((void *)data, size, "r") : fmemopen(empty, 1, "r");
    FILE *o = open_memstream(out, outlen);
    FILE *e = open_memstream(errtext, errlen);
    struct cli_args args;
    int status;

    if (!in || !o || !e)
        fail("cannot make the command's streams", NULL);
    if (!size)
        fgetc(in);                          /* now at EOF */
    /* The command prints through stdin/stdout/stderr; glibc lets them be
     * assigned.  libFuzzer and the sanitizers keep their own handle and
     * fd 2, so a crash in here is still reported. */
    stdin = in;
    stdout = o;
    stderr = e;
    /* As sessgatectl's main does: parse against the command's table entry
     * (the store is open already, so nothing is reopened), then run. */
    status = cli_parse(&ctx, &cli_cmd_import, 1, argv, &args);
    if (status < 0)
        status = cli_cmd_import.run(&ctx, &args);
    stdin = saved_in;
    stdout = saved_out;
    stderr = saved_err;
    fclose(in);
    fclose(o);
    fclose(e);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct expect x[FUZZ_MAX_IDS];
    size_t nx = 0, nlines = 0, want_imp = 0, want_skip = 0, want_rej = 0;
    char *out = NULL, *errtext = NULL;
    size_t outlen = 0, errlen = 0;
    unsigned long imp, skip, rej;
    int status, pos = 0;
    sg_error err = { 0 };

    /* The oracle: split the input the way read_line does. */
    for (size_t start = 0; start < size;) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t end = nl ? (size_t)(nl - data) : size, n = end - start;
        char *line;

        if (memchr(data + start, '\0', n)) {
            want_rej++;                     /* "a NUL byte in the line" */
            nlines++;
            start = end + 1;
            continue;
        }
        if (n && data[start + n - 1] == '\r')
            n--;
        line = malloc(n + 1);               /* exact size for ASan */
        if (!line)
            fail("out of memory", NULL);
        memcpy(line, data + start, n);
        line[n] = '\0';
        start = end + 1;
        if (line[strspn(line, " \t\r\f\v")] == '\0') {
            free(line);                     /* blank: not counted */
            continue;
        }
        nlines++;
        if (nx == FUZZ_MAX_IDS) {           /* -max_len far above the default */
            free(line);
            for (size_t i = 0; i < nx; i++) {
                free(x[i].dump);
                sg_session_free(x[i].parsed);
            }
            return 0;
        }
        switch (predict(line, &x[nx])) {
        case 0:
            want_imp++;
            nx++;
            break;
        case 1:
            want_skip++;
            sg_session_free(x[nx].parsed);
            break;
        default:
            want_rej++;
            sg_session_free(x[nx].parsed);
            break;
        }
        free(line);
    }

    status = run_import(data, size, &out, &outlen, &errtext, &errlen);

    /* What it said. */
    if (status == CLI_EXIT_STORE || status == CLI_EXIT_USAGE)
        fail("import failed", errtext);
    if (sscanf(out, "imported %lu, skipped %lu (expired), rejected %lu\n%n",
               &imp, &skip, &rej, &pos) != 3 || (size_t)pos != outlen)
        fail("stdout is not the one summary line", out);
    if (imp + skip + rej != nlines)
        fail("the counts do not add up to the lines read", out);
    if (imp != want_imp || skip != want_skip || rej != want_rej)
        fail("counts differ from what each line predicts", out);
    if (status != (rej ? CLI_EXIT_NOTFOUND : CLI_EXIT_OK))
        fail("exit status does not match the rejected count", out);
    check_text("stderr", errtext, errlen, 1);
    for (const char *p = errtext; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, "sessgatectl: import: ", 21) != 0 || !strchr(p, '\n'))
            fail("stderr line not a one-line import message", p);

    /* The stored sessions are exactly the last imported copy of each id. */
    sg_list *all = NULL;
    size_t distinct = 0;
    if (sg_store_list(ctx.st, NULL, &all, &err) != SG_OK)
        fail("list failed", err.text);
    for (size_t i = 0; i < nx; i++) {
        int last = 1;
        for (size_t j = i + 1; j < nx && last; j++)
            last = strcmp(x[i].id, x[j].id) != 0;
        if (!last)
            continue;
        distinct++;

        sg_session *s = NULL, *again = NULL, *touched = NULL;
        char *json, *json2, *d1, *d2;
        if (sg_session_get(ctx.st, x[i].id, SG_GET_NOTOUCH, &s, &err) != SG_OK)
            fail("imported session does not read back", err.text);
        json = sg_session_to_json(s);
        if (!json || strcmp(json, x[i].dump) != 0)
            fail("read back differs from the imported record", json);
        check_text("to_json", json, strlen(json), 0);
        if (sg_session_import(ctx.st, json, &err) != SG_OK)
            fail("re-import of to_json output failed", err.text);
        if (sg_session_get(ctx.st, x[i].id, SG_GET_NOTOUCH, &again, &err) != SG_OK)
            fail("re-imported session does not read back", err.text);
        json2 = sg_session_to_json(again);
        if (!json2 || strcmp(json, json2) != 0)
            fail("re-import changed the record", json2);
        if (sg_session_get(ctx.st, x[i].id, 0, &touched, &err) != SG_OK)
            fail("touching get failed", err.text);
        d1 = sg_session_data_json(s);
        d2 = sg_session_data_json(touched);
        if (!d1 || !d2 || strcmp(d1, d2) != 0 ||
            sg_session_version(touched) != sg_session_version(s) ||
            !same_str(sg_session_user(touched), sg_session_user(s)) ||
            sg_session_expires(touched) != sg_session_expires(s))
            fail("a touch changed more than the idle window", x[i].id);
        if (x[i].user) {
            sg_list *ul = NULL;
            size_t k, n;
            if (sg_store_list(ctx.st, x[i].user, &ul, &err) != SG_OK)
                fail("list --user failed", err.text);
            n = sg_list_count(ul);
            for (k = 0; k < n && strcmp(sg_list_id(ul, k), x[i].id); k++)
                ;
            if (k == n)
                fail("imported session missing from its user's list", x[i].id);
            sg_list_free(ul);
        }
        free(d1);
        free(d2);
        free(json);
        free(json2);
        sg_session_free(s);
        sg_session_free(again);
        sg_session_free(touched);
    }
    if (sg_list_count(all) != distinct)
        fail("the store holds sessions that were not imported", NULL);

    /* Back to an empty store for the next input. */
    for (size_t i = 0; i < sg_list_count(all); i++) {
        sg_error_clear(&err);
        if (sg_session_delete(ctx.st, sg_list_id(all, i), &err) != SG_OK)
            fail("delete failed", err.text);
    }
    sg_list_free(all);
    size_t keys = 0;
    sg_error_clear(&err);
    if (sgi_lock(ctx.st, SGI_SHARED, &err) != SG_OK)
        fail("lock failed", err.text);
    if (ctx.st->be->keys(ctx.st, count_key, &keys, &err) != SG_OK)
        fail("key walk failed", err.text);
    sgi_unlock(ctx.st);
    if (keys != 0)
        fail("keys left behind after deleting every session", NULL);

    for (size_t i = 0; i < nx; i++) {
        free(x[i].dump);
        sg_session_free(x[i].parsed);
    }
    free(out);
    free(errtext);
    return 0;
}
