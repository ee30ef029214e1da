/*
 * hold_lock.c - hold a store's exclusive lock for a while, for the lock
 * timeout test (tests/store/lock.bats).
 *
 *   hold_lock STORE MS
 *
 * Opens the store, takes the exclusive lock with sg_store_begin (the same
 * lock an atomic read-modify-write holds), prints "locked" on stdout once it
 * holds it, sleeps MS milliseconds, releases it and prints "released".  The
 * test starts it in the background, waits for "locked", and checks that a
 * second process gives up with SG_ELOCKTIMEOUT instead of hanging.
 */
#include "sessgate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    sg_store *st = NULL;   /* Owned: closed before exit */
    sg_error err;
    sg_status rc;
    struct timespec ts;
    char *end;
    long ms;

    if (argc != 3) {
        fputs("usage: hold_lock STORE MS\n", stderr);
        return 2;
    }
    errno = 0;
    ms = strtol(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || ms < 0 || ms > 3600000) {
        fputs("hold_lock: MS must be 0..3600000\n", stderr);
        return 2;
    }
    sg_error_clear(&err);
    rc = sg_store_open(argv[1], NULL, &st, &err);
    if (rc == SG_OK)
        rc = sg_store_begin(st, &err);
    if (rc != SG_OK) {
        fprintf(stderr, "hold_lock: %s (%s)\n", sg_strerror(rc), err.text);
        sg_store_close(st);
        return 1;
    }
    printf("locked\n");
    fflush(stdout);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    sg_store_end(st);
    printf("released\n");
    fflush(stdout);
    sg_store_close(st);
    return 0;
}
