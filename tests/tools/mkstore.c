/*
 * mkstore.c - fill a store with many sessions fast, for the walk latency
 * tests (tests/store/walks.bats) and bench/run.
 *
 *   mkstore STORE N [USERS [EXPIRED_EVERY]]
 *
 * Creates N sessions through the library, a batch of them under each
 * sg_store_begin (one lock hold and one checkpoint decision per batch
 * instead of per session, which is what makes 200,000 take seconds, not
 * minutes).  With USERS > 0 the i-th session belongs to user "u<i % USERS>"
 * (USERS = 1: all to one user), else they are anonymous.  With
 * EXPIRED_EVERY = k > 0 every k-th session gets a 1-second lifetime, so
 * that after a second a purge has work.  Prints "created=N seconds=S
 * rate=R".  Exit 0, 1 on a store error, 2 on usage errors.
 */
#include "sessgate.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 2000

static long arg(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end == s || *end || v < 0 || v > max ? -1 : v;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;    /* Owned: closed before exit */
    sg_error err;
    sg_status rc;
    long n, users = 0, every = 0, i;
    struct timespec t0, t1;

    if (argc < 3 || argc > 5 || (n = arg(argv[2], 100000000)) < 0 ||
        (argc > 3 && (users = arg(argv[3], 100000000)) < 0) ||
        (argc > 4 && (every = arg(argv[4], 100000000)) < 0)) {
        fputs("usage: mkstore STORE N [USERS [EXPIRED_EVERY]]\n", stderr);
        return 2;
    }
    sg_error_clear(&err);
    rc = sg_store_open(argv[1], NULL, &st, &err);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; rc == SG_OK && i < n; i++) {
        sg_session *s = NULL;   /* Owned per iteration */
        char user[32];

        if (i % BATCH == 0) {
            if (i > 0)
                sg_store_end(st);
            if ((rc = sg_store_begin(st, &err)) != SG_OK)
                break;
        }
        if (users > 0)
            snprintf(user, sizeof user, "u%ld", i % users);
        rc = sg_session_create(st, users > 0 ? user : NULL,
                               "{\"cart\":[1,2,3],\"theme\":\"dark\"}", 0,
                               every > 0 && i % every == 0 ? 1 : 0, &s, &err);
        sg_session_free(s);
    }
    if (i > 0)
        sg_store_end(st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != SG_OK) {
        fprintf(stderr, "mkstore: %s (%s)\n", err.text, sg_strerror(rc));
        sg_store_close(st);
        return 1;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("created=%ld seconds=%.2f rate=%.0f\n", n, secs,
           secs > 0 ? (double)n / secs : 0.0);
    sg_store_close(st);
    return 0;
}
