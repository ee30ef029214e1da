/*
 * verify.c - check that a store kept every write it acknowledged.
 *
 *   verify [--exact] [--check] STORE ACKFILE...
 *
 * An ACKFILE holds lines "ID V" written by storm, mixed or fill only after
 * the library returned SG_OK for a write that left data.v == V.  For every
 * id, the session must load (no touch) and its data.v must be at least the
 * highest acknowledged V: a lower value is a lost acknowledged write.  A
 * last line without its newline (writer killed mid-line) is ignored.
 *
 *   --exact  no writer was killed, so nothing may be missing from the
 *            acknowledgements either: data.v must equal the number of
 *            acknowledged increments (lines with V > 0) of that id, which
 *            catches lost updates between concurrent writers, and the
 *            store's live count must equal the number of distinct ids.
 *   --check  also run sg_store_check (no repair): 0 unparsable records.
 *
 * Prints one line, e.g. "acked=812 sessions=201 missing=0 regressed=0
 * recoveries=1 records=201 bad=0", and exits 0 when everything holds, 1
 * when a promise was broken, 2 when the store does not open or on usage
 * errors.  Opening the store is itself part of the check: after a kill it
 * must succeed, recovering the file when needed; the recovery count of this
 * handle (sg_store_recoveries) is printed so the tests can report it.
 */
#include "sessgate.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ack {
    char id[SG_ID_LEN + 1];
    long long v;
};

static struct ack *acks;     /* Owned: every acknowledged line */
static size_t nacks, cap_acks;

static void add_ack(const char *id, long long v)
{
    if (nacks == cap_acks) {
        size_t ncap = cap_acks ? cap_acks * 2 : 1024;
        void *p = realloc(acks, ncap * sizeof *acks);
        if (!p) {
            fputs("verify: out of memory\n", stderr);
            exit(2);
        }
        acks = p;
        cap_acks = ncap;
    }
    memcpy(acks[nacks].id, id, SG_ID_LEN + 1);
    acks[nacks++].v = v;
}

/* Read one ACKFILE; a final line without '\n' is dropped. */
static void read_acks(const char *path)
{
    FILE *f = fopen(path, "r");   /* Owned here */
    char *line = NULL;            /* Owned by getline, freed below */
    size_t lcap = 0;
    ssize_t len;
    unsigned long lineno = 0;

    if (!f) {
        perror(path);
        exit(2);
    }
    while ((len = getline(&line, &lcap, f)) > 0) {
        char *end;
        long long v;

        lineno++;
        if (line[len - 1] != '\n')
            break;                /* torn last line: not acknowledged */
        line[len - 1] = '\0';
        if (len < SG_ID_LEN + 3 || line[SG_ID_LEN] != ' ') {
            fprintf(stderr, "verify: %s:%lu: bad line '%s'\n", path, lineno, line);
            exit(2);
        }
        line[SG_ID_LEN] = '\0';
        errno = 0;
        v = strtoll(line + SG_ID_LEN + 1, &end, 10);
        if (errno || *end || v < 0 || !sg_id_valid(line)) {
            fprintf(stderr, "verify: %s:%lu: bad line\n", path, lineno);
            exit(2);
        }
        add_ack(line, v);
    }
    free(line);
    fclose(f);
}

static int cmp_ack(const void *a, const void *b)
{
    const struct ack *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c)
        return c;
    return (x->v > y->v) - (x->v < y->v);
}

static long long data_v(const sg_session *s)
{
    char *text = sg_session_data_json(s);   /* Owned here */
    json_t *root, *v;
    long long out = -1;

    if (!text)
        return -1;
    root = json_loads(text, 0, NULL);       /* Owned here */
    free(text);
    v = root ? json_object_get(root, "v") : NULL;
    if (json_is_integer(v))
        out = json_integer_value(v);
    json_decref(root);
    return out;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;    /* Owned: closed at the end */
    sg_error err;
    sg_status rc;
    int exact = 0, check = 0, argi = 1, broken = 0;
    size_t i, j, sessions = 0, missing = 0, regressed = 0, wrong = 0;

    while (argi < argc && strncmp(argv[argi], "--", 2) == 0) {
        if (strcmp(argv[argi], "--exact") == 0)
            exact = 1;
        else if (strcmp(argv[argi], "--check") == 0)
            check = 1;
        else
            break;
        argi++;
    }
    if (argc - argi < 2) {
        fputs("usage: verify [--exact] [--check] STORE ACKFILE...\n", stderr);
        return 2;
    }
    for (i = (size_t)argi + 1; i < (size_t)argc; i++)
        read_acks(argv[i]);
    if (nacks)
        qsort(acks, nacks, sizeof *acks, cmp_ack);

    sg_error_clear(&err);
    rc = sg_store_open(argv[argi], NULL, &st, &err);
    if (rc != SG_OK) {
        fprintf(stderr, "verify: open: %s (%s)\n", sg_strerror(rc), err.text);
        return 2;
    }

    for (i = 0; i < nacks; i = j) {
        long long maxv = 0, got, incr = 0;
        sg_session *s = NULL;   /* Owned per id */

        for (j = i; j < nacks && strcmp(acks[j].id, acks[i].id) == 0; j++) {
            if (acks[j].v > maxv)
                maxv = acks[j].v;
            if (acks[j].v > 0)
                incr++;
        }
        sessions++;
        sg_error_clear(&err);
        rc = sg_session_get(st, acks[i].id, SG_GET_NOTOUCH, &s, &err);
        if (rc != SG_OK) {
            if (missing++ < 5)
                fprintf(stderr, "verify: %s acknowledged v=%lld: %s (%s)\n",
                        acks[i].id, maxv, sg_strerror(rc), err.text);
            continue;
        }
        got = data_v(s);
        sg_session_free(s);
        if (got < maxv) {
            if (regressed++ < 5)
                fprintf(stderr, "verify: %s acknowledged v=%lld, store has v=%lld\n",
                        acks[i].id, maxv, got);
        } else if (exact && got != incr) {
            if (wrong++ < 5)
                fprintf(stderr, "verify: %s: %lld increments acknowledged, store has v=%lld\n",
                        acks[i].id, incr, got);
        }
    }
    printf("acked=%zu sessions=%zu missing=%zu regressed=%zu", nacks, sessions,
           missing, regressed);
    if (exact)
        printf(" wrong=%zu", wrong);
    broken = missing || regressed || wrong;

    if (exact) {
        size_t live = 0;

        sg_error_clear(&err);
        rc = sg_store_count(st, NULL, &live, &err);
        if (rc != SG_OK) {
            fprintf(stderr, "verify: count: %s (%s)\n", sg_strerror(rc), err.text);
            broken = 1;
        }
        printf(" live=%zu", live);
        if (live != sessions)
            broken = 1;
    }
    if (check) {
        sg_check_report rep;

        memset(&rep, 0, sizeof rep);
        sg_error_clear(&err);
        rc = sg_store_check(st, 0, &rep, &err);
        if (rc != SG_OK) {
            fprintf(stderr, "verify: check: %s (%s)\n", sg_strerror(rc), err.text);
            broken = 1;
        }
        printf(" records=%zu bad=%zu", rep.records, rep.bad_records);
        if (rep.bad_records)
            broken = 1;
    }
    printf(" recoveries=%lu\n", sg_store_recoveries(st));
    sg_store_close(st);
    free(acks);
    return broken ? 1 : 0;
}
