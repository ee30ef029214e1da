/*
 * churn.c - drive one kind of store write until it fails, and check
 * afterwards that the failure changed nothing it should not have, for the
 * write error tests (tests/store/ioerror.bats).
 *
 *   churn seed    STORE STATE N [USERS]  create N sessions {"v":0}, users
 *                                        u0..u(USERS-1) round robin (0:
 *                                        anonymous); STATE gets "ID 0" lines
 *   churn expired STORE STATE N          create N sessions that are already
 *                                        expired (made through a clock one
 *                                        day behind); their ids go to
 *                                        STATE.gone
 *   churn save    STORE STATE [MAX]      load, set {"v":V+1,"pad":...}, save
 *   churn rotate  STORE STATE [MAX]      rotate (the old id goes to GONE)
 *   churn verify  STORE STATE            the store holds exactly STATE
 *
 * STATE holds the expected state, one "ID V" line per session: the save and
 * rotate loops go round the sessions in it, one operation after another,
 * until a call fails (or MAX operations, default 100000, all succeeded),
 * then rewrite STATE with what was acknowledged (SG_OK) and append the ids
 * that must be gone to STATE.gone.  Saves grow and shrink the record
 * (a pad of 0..2999 bytes), so both the log and the GDBM file need new
 * space now and then.  They print "ops=N status=NAME errno=E" and the error
 * text on a second line, and exit 0 once a call failed, 1 if all MAX
 * operations succeeded.
 *
 * verify opens the store afresh and checks, with exact figures:
 *   - every STATE session loads (no touch) with data.v equal to V: lower
 *     is a lost write, higher a failed save that was applied anyway;
 *   - every id in STATE.gone is not live (rotated away, or expired);
 *   - the live count equals the STATE lines ("extra" counts the others);
 *   - sg_store_check finds no unparsable record.
 * It prints "sessions=N ok=N wrong=N missing=N revived=N live=N extra=N
 * records=N bad=N" and exits 0 when all hold except extra (which the test
 * judges), 1 otherwise, 2 when the store does not open or on usage errors.
 */
#include "sessgate.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHURN_MAX_SESSIONS 100000
#define CHURN_DEFAULT_OPS  100000
#define CHURN_PAD_MAX      3000

struct entry {
    char id[SG_ID_LEN + 1];
    long long v;
};

static struct entry *ents;   /* Owned: the STATE lines */
static size_t nents;

static void usage(void)
{
    fputs("usage: churn seed|expired|save|rotate|verify STORE FILE [N] [USERS]\n",
          stderr);
    exit(2);
}

static long arg_long(const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "churn: bad number '%s' (%ld..%ld)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

/* Read the "ID V" lines of path into ents. */
static void read_state(const char *path)
{
    FILE *f = fopen(path, "r");   /* Owned here */
    char line[128];

    if (!f) {
        perror(path);
        exit(2);
    }
    ents = calloc(CHURN_MAX_SESSIONS, sizeof *ents);
    if (!ents)
        exit(2);
    while (fgets(line, sizeof line, f)) {
        long long v = 0;
        if (nents == CHURN_MAX_SESSIONS || strlen(line) < SG_ID_LEN + 1) {
            fprintf(stderr, "churn: %s: bad or too many lines\n", path);
            exit(2);
        }
        line[SG_ID_LEN] = '\0';
        if (!sg_id_valid(line) || sscanf(line + SG_ID_LEN + 1, "%lld", &v) != 1) {
            fprintf(stderr, "churn: %s: bad line\n", path);
            exit(2);
        }
        memcpy(ents[nents].id, line, SG_ID_LEN + 1);
        ents[nents++].v = v;
    }
    fclose(f);
}

/* Rewrite path with ents (through a temporary file and rename, so a
 * failure cannot leave half a state behind). */
static void write_state(const char *path)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        exit(2);
    }
    for (size_t i = 0; i < nents; i++)
        fprintf(f, "%s %lld\n", ents[i].id, ents[i].v);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror(path);
        exit(2);
    }
}

static FILE *open_gone(const char *state, const char *mode)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s.gone", state);
    f = fopen(path, mode);
    if (!f && mode[0] == 'a') {
        perror(path);
        exit(2);
    }
    return f;
}

static long long data_v(const sg_session *s)
{
    char *text = sg_session_data_json(s);   /* Owned here */
    json_t *root;
    long long v = -1;

    if (!text)
        return -1;
    root = json_loads(text, 0, NULL);       /* Owned here */
    free(text);
    if (root && json_is_integer(json_object_get(root, "v")))
        v = json_integer_value(json_object_get(root, "v"));
    json_decref(root);
    return v;
}

static int64_t day_behind(void *arg)
{
    (void)arg;
    return (int64_t)time(NULL) - 86400;
}

static sg_store *open_store(const char *path, int behind)
{
    sg_store *st = NULL;
    sg_options opt;
    sg_error err;
    sg_status rc;

    sg_options_init(&opt);
    if (behind) {
        opt.clock = day_behind;
        opt.idle_timeout = 60;
    }
    sg_error_clear(&err);
    rc = sg_store_open(path, &opt, &st, &err);
    if (rc != SG_OK) {
        printf("open: %s\n%s\n", sg_strerror(rc), err.text);
        exit(2);
    }
    return st;
}

static void report(long ops, sg_status rc, const sg_error *err)
{
    printf("ops=%ld status=%s errno=%d\n%s\n", ops,
           rc == SG_OK ? "ok" : sg_strerror(rc), err->sys_errno, err->text);
}

static int seed(const char *store, const char *state, long n, long users,
                int expired)
{
    sg_store *st = open_store(store, expired);   /* Owned */
    FILE *out = expired ? open_gone(state, "a") : NULL;
    sg_error err;
    sg_status rc = SG_OK;
    char user[32];

    ents = calloc((size_t)n + 1, sizeof *ents);
    if (!ents)
        return 2;
    for (long i = 0; i < n && rc == SG_OK; i++) {
        sg_session *s = NULL;   /* Owned per iteration */
        snprintf(user, sizeof user, "u%ld", users ? i % users : 0);
        sg_error_clear(&err);
        rc = sg_session_create(st, users ? user : NULL, "{\"v\":0}", 0, 0,
                               &s, &err);
        if (rc != SG_OK)
            break;
        if (out)
            fprintf(out, "%s\n", sg_session_id(s));
        memcpy(ents[nents].id, sg_session_id(s), SG_ID_LEN + 1);
        ents[nents++].v = 0;
        sg_session_free(s);
    }
    sg_store_close(st);
    if (rc != SG_OK) {
        report((long)nents, rc, &err);
        return 2;
    }
    if (out)
        fclose(out);
    else
        write_state(state);
    return 0;
}

/* One save: v+1 with a pad whose length wanders, so records grow and
 * shrink. */
static sg_status save_one(sg_store *st, struct entry *e, long op, sg_error *err)
{
    static char data[CHURN_PAD_MAX + 64];
    sg_session *s = NULL;   /* Owned */
    size_t pad = (size_t)(op * 787 % CHURN_PAD_MAX);
    int head;
    sg_status rc;

    head = snprintf(data, sizeof data, "{\"v\":%lld,\"pad\":\"", e->v + 1);
    memset(data + head, 'p', pad);
    strcpy(data + head + pad, "\"}");
    rc = sg_session_get(st, e->id, SG_GET_NOTOUCH, &s, err);
    if (rc == SG_OK)
        rc = sg_session_set_data(s, data, err);
    if (rc == SG_OK)
        rc = sg_session_save(st, s, err);
    if (rc == SG_OK)
        e->v++;
    sg_session_free(s);
    return rc;
}

static sg_status rotate_one(sg_store *st, struct entry *e, FILE *gone,
                            sg_error *err)
{
    sg_session *s = NULL;   /* Owned */
    sg_status rc = sg_session_get(st, e->id, SG_GET_NOTOUCH, &s, err);

    if (rc == SG_OK)
        rc = sg_session_rotate(st, s, err);
    if (rc == SG_OK) {
        fprintf(gone, "%s\n", e->id);
        memcpy(e->id, sg_session_id(s), SG_ID_LEN + 1);
    }
    sg_session_free(s);
    return rc;
}

static int churn(const char *op, const char *store, const char *state, long max)
{
    sg_store *st;
    FILE *gone = open_gone(state, "a");   /* Owned */
    sg_error err;
    sg_status rc = SG_OK;
    long ops = 0;

    read_state(state);
    if (nents == 0)
        usage();
    st = open_store(store, 0);
    sg_error_clear(&err);
    while (ops < max) {
        struct entry *e = &ents[(size_t)ops % nents];
        rc = op[0] == 's' ? save_one(st, e, ops, &err)
                          : rotate_one(st, e, gone, &err);
        if (rc != SG_OK)
            break;
        ops++;
    }
    report(ops, rc, &err);
    sg_store_close(st);
    fclose(gone);
    write_state(state);
    return rc == SG_OK ? 1 : 0;
}

static int verify(const char *store, const char *state)
{
    sg_store *st;
    FILE *gone;
    sg_error err;
    sg_check_report rep;
    size_t ok = 0, wrong = 0, missing = 0, revived = 0, live = 0;
    char line[128];
    int broken;

    read_state(state);
    st = open_store(store, 0);
    for (size_t i = 0; i < nents; i++) {
        sg_session *s = NULL;   /* Owned per iteration */
        long long v;
        sg_error_clear(&err);
        if (sg_session_get(st, ents[i].id, SG_GET_NOTOUCH, &s, &err) != SG_OK) {
            if (missing++ < 3)
                fprintf(stderr, "churn: %s (v=%lld) is gone: %s\n",
                        ents[i].id, ents[i].v, err.text);
            continue;
        }
        v = data_v(s);
        sg_session_free(s);
        if (v == ents[i].v) {
            ok++;
        } else if (wrong++ < 3) {
            fprintf(stderr, "churn: %s: acknowledged v=%lld, store has v=%lld\n",
                    ents[i].id, ents[i].v, v);
        }
    }
    gone = open_gone(state, "r");
    while (gone && fgets(line, sizeof line, gone)) {
        sg_session *s = NULL;
        line[strcspn(line, "\n")] = '\0';
        if (sg_session_get(st, line, SG_GET_NOTOUCH, &s, NULL) == SG_OK &&
            revived++ < 3)
            fprintf(stderr, "churn: %s should be gone but is live\n", line);
        sg_session_free(s);
    }
    if (gone)
        fclose(gone);
    sg_error_clear(&err);
    broken = sg_store_count(st, NULL, &live, &err) != SG_OK;
    if (broken)
        fprintf(stderr, "churn: count: %s\n", err.text);
    memset(&rep, 0, sizeof rep);
    sg_error_clear(&err);
    if (sg_store_check(st, 0, &rep, &err) != SG_OK) {
        fprintf(stderr, "churn: check: %s\n", err.text);
        broken = 1;
    }
    printf("sessions=%zu ok=%zu wrong=%zu missing=%zu revived=%zu live=%zu "
           "extra=%zu records=%zu bad=%zu\n", nents, ok, wrong, missing,
           revived, live, live > nents ? live - nents : 0, rep.records,
           rep.bad_records);
    sg_store_close(st);
    free(ents);
    return broken || wrong || missing || revived || rep.bad_records ||
           live < nents ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *op;

    if (argc < 4)
        usage();
    op = argv[1];
    if (strcmp(op, "seed") == 0 && (argc == 5 || argc == 6))
        return seed(argv[2], argv[3], arg_long(argv[4], 1, CHURN_MAX_SESSIONS),
                    argc == 6 ? arg_long(argv[5], 0, 1000) : 0, 0);
    if (strcmp(op, "expired") == 0 && argc == 5)
        return seed(argv[2], argv[3], arg_long(argv[4], 1, CHURN_MAX_SESSIONS),
                    0, 1);
    if ((strcmp(op, "save") == 0 || strcmp(op, "rotate") == 0) &&
        (argc == 4 || argc == 5))
        return churn(op, argv[2], argv[3],
                     argc == 5 ? arg_long(argv[4], 1, 100000000) : CHURN_DEFAULT_OPS);
    if (strcmp(op, "verify") == 0 && argc == 4)
        return verify(argv[2], argv[3]);
    usage();
    return 2;
}
