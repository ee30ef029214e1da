/*
 * lock_probe.c - time one store operation under a given lock timeout, for
 * the lock timeout test (tests/store/lock.bats).
 *
 *   lock_probe STORE TIMEOUT_MS OP [ID]     OP: create | get | begin
 *
 * Opens the store with lock_timeout_ms = TIMEOUT_MS and runs OP, timing
 * from before the open to the result (the open may itself need the lock).
 * Prints "status=NAME ms=ELAPSED" and, on error, the error text on the next
 * line, so the test can assert both the status and that the wait was
 * bounded by the configured time.  Exit status is the sg_status code.
 */
#include "sessgate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;     /* Owned: closed before exit */
    sg_session *s = NULL;    /* Owned: freed before exit */
    sg_options opt;
    sg_error err;
    sg_status rc;
    double t0;
    char *end;
    long ms;

    if (argc < 4 || argc > 5) {
        fputs("usage: lock_probe STORE TIMEOUT_MS create|get|begin [ID]\n", stderr);
        return 100;
    }
    errno = 0;
    ms = strtol(argv[2], &end, 10);
    if (errno || end == argv[2] || *end || ms < 1 || ms > 600000) {
        fputs("lock_probe: TIMEOUT_MS must be 1..600000\n", stderr);
        return 100;
    }
    sg_options_init(&opt);
    opt.lock_timeout_ms = (int)ms;
    sg_error_clear(&err);
    t0 = now_ms();
    rc = sg_store_open(argv[1], &opt, &st, &err);
    if (rc == SG_OK) {
        if (strcmp(argv[3], "create") == 0) {
            rc = sg_session_create(st, NULL, NULL, 0, 0, &s, &err);
        } else if (strcmp(argv[3], "get") == 0 && argc == 5) {
            rc = sg_session_get(st, argv[4], 0, &s, &err);
        } else if (strcmp(argv[3], "begin") == 0) {
            rc = sg_store_begin(st, &err);
            if (rc == SG_OK)
                sg_store_end(st);
        } else {
            fputs("lock_probe: unknown OP\n", stderr);
            return 100;
        }
    }
    printf("status=%s ms=%.0f\n", sg_strerror(rc), now_ms() - t0);
    if (rc != SG_OK)
        printf("%s\n", err.text);
    sg_session_free(s);
    sg_store_close(st);
    return (int)rc;
}
