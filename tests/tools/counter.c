/*
 * counter.c - one integer counter in one session, driven from many
 * processes, for the store's lost-update tests (tests/store/concurrency.bats).
 *
 *   counter init  STORE          create a session with data {"n":0}; print id
 *   counter incr  STORE ID N [MS]  N atomic increments with sg_session_update;
 *                                with MS, each holds the lock MS ms between
 *                                the load and the save (a slow writer, for
 *                                tests/store/lockfile.bats)
 *   counter cas   STORE ID N     N successful load / +1 / save loops; print
 *                                "saves=N conflicts=C" (conflicts are retried)
 *   counter stale STORE ID       load two copies at the same version, save
 *                                both; print "first=CODE second=CODE"
 *   counter get   STORE ID       print "n=N version=V"
 *
 * Why a program and not the CLI: the tests need many processes hammering
 * the library's own atomic and optimistic paths at full speed, and the exact
 * status of every call.  Exit 0 on success, 1 when a call fails in a way the
 * mode does not allow, 2 on usage errors.
 */
#include "sessgate.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fputs("usage: counter init|incr|cas|stale|get STORE [ID] [N] [MS]\n", stderr);
    exit(2);
}

static long arg_long(const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "counter: bad number '%s' (%ld..%ld)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

static void fail(const char *what, sg_status rc, const sg_error *err)
{
    fprintf(stderr, "counter: %s: %s (%s)\n", what, sg_strerror(rc),
            err->text);
    exit(1);
}

/* Read data.n of a session; -1 when absent or not an integer. */
static long long session_n(const sg_session *s)
{
    char *text = sg_session_data_json(s);   /* Owned here */
    json_t *root, *n;
    long long v = -1;

    if (!text)
        return -1;
    root = json_loads(text, 0, NULL);       /* Owned here */
    free(text);
    n = root ? json_object_get(root, "n") : NULL;
    if (json_is_integer(n))
        v = json_integer_value(n);
    json_decref(root);
    return v;
}

static sg_status set_n(sg_session *s, long long v, sg_error *err)
{
    char buf[64];

    snprintf(buf, sizeof buf, "{\"n\":%lld}", v);
    return sg_session_merge_data(s, buf, err);
}

/* sg_session_update callback: n += 1, after sleeping *(long *)arg ms
 * (arg NULL: no sleep) with the lock held. */
static sg_status incr_fn(sg_session *s, void *arg, sg_error *err)
{
    long long n = session_n(s);

    if (arg && *(long *)arg > 0) {
        long ms = *(long *)arg;
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (n < 0) {
        fprintf(stderr, "counter: session has no integer n\n");
        return SG_EINVAL;
    }
    return set_n(s, n + 1, err);
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;        /* Owned: closed before exit */
    sg_session *s = NULL;       /* Owned per call */
    sg_error err;
    sg_status rc;
    const char *mode, *id;
    long i, count;

    if (argc < 3)
        usage();
    mode = argv[1];
    sg_error_clear(&err);
    /* Lock waits are generous: 8 processes queue behind each other. */
    sg_options opt;
    sg_options_init(&opt);
    opt.lock_timeout_ms = 30000;
    rc = sg_store_open(argv[2], &opt, &st, &err);
    if (rc != SG_OK)
        fail("open", rc, &err);

    if (strcmp(mode, "init") == 0) {
        rc = sg_session_create(st, NULL, "{\"n\":0}", 0, 0, &s, &err);
        if (rc != SG_OK)
            fail("create", rc, &err);
        printf("%s\n", sg_session_id(s));
        sg_session_free(s);
        sg_store_close(st);
        return 0;
    }
    if (argc < 4)
        usage();
    id = argv[3];

    if (strcmp(mode, "incr") == 0) {
        long hold = 0;

        if (argc != 5 && argc != 6)
            usage();
        count = arg_long(argv[4], 0, 100000000);
        if (argc == 6)
            hold = arg_long(argv[5], 0, 10000);
        for (i = 0; i < count; i++) {
            rc = sg_session_update(st, id, incr_fn, hold ? &hold : NULL, &err);
            if (rc != SG_OK)
                fail("update", rc, &err);
        }
    } else if (strcmp(mode, "cas") == 0) {
        long saves = 0, conflicts = 0;

        if (argc != 5)
            usage();
        count = arg_long(argv[4], 0, 100000000);
        while (saves < count) {
            long long n;

            rc = sg_session_get(st, id, SG_GET_NOTOUCH, &s, &err);
            if (rc != SG_OK)
                fail("get", rc, &err);
            n = session_n(s);
            if (n < 0)
                fail("get (no n)", SG_EINVAL, &err);
            rc = set_n(s, n + 1, &err);
            if (rc == SG_OK)
                rc = sg_session_save(st, s, &err);
            sg_session_free(s);
            s = NULL;
            if (rc == SG_OK) {
                saves++;
            } else if (rc == SG_ECONFLICT) {
                conflicts++;
                sg_error_clear(&err);
            } else {
                fail("save", rc, &err);
            }
        }
        printf("saves=%ld conflicts=%ld\n", saves, conflicts);
    } else if (strcmp(mode, "stale") == 0) {
        sg_session *a = NULL, *b = NULL;   /* Owned: both freed below */
        sg_status r1, r2;
        sg_error e1, e2;

        rc = sg_session_get(st, id, SG_GET_NOTOUCH, &a, &err);
        if (rc == SG_OK)
            rc = sg_session_get(st, id, SG_GET_NOTOUCH, &b, &err);
        if (rc != SG_OK)
            fail("get", rc, &err);
        if (sg_session_version(a) != sg_session_version(b))
            fail("two loads gave different versions", SG_EINVAL, &err);
        sg_error_clear(&e1);
        sg_error_clear(&e2);
        r1 = set_n(a, 111, &e1);
        if (r1 == SG_OK)
            r1 = sg_session_save(st, a, &e1);
        r2 = set_n(b, 222, &e2);
        if (r2 == SG_OK)
            r2 = sg_session_save(st, b, &e2);
        /* Numeric codes: SG_OK is 0, SG_ECONFLICT 3 (never renumbered). */
        printf("first=%d second=%d\n", (int)r1, (int)r2);
        if (r2 != SG_OK)
            fprintf(stderr, "second save: %s\n", e2.text);
        sg_session_free(a);
        sg_session_free(b);
    } else if (strcmp(mode, "get") == 0) {
        rc = sg_session_get(st, id, SG_GET_NOTOUCH, &s, &err);
        if (rc != SG_OK)
            fail("get", rc, &err);
        printf("n=%lld version=%llu\n", session_n(s),
               (unsigned long long)sg_session_version(s));
        sg_session_free(s);
    } else {
        usage();
    }
    sg_store_close(st);
    return 0;
}
