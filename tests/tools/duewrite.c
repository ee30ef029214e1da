/*
 * duewrite.c - one writer, as a gateway worker is one, writing sessions
 * until its writes have made the store's checkpoint due, timing every
 * call: the longest one is what a user's request paid (issue 19: the
 * writer whose write made a checkpoint due used to build it in that call).
 *
 *   duewrite STORE PAD AFTER [MAX]
 *
 * Creates 100 sessions whose data is {"pad":"x..."} of PAD bytes, then
 * saves them over and over with the pad changed (one sg_session_save per
 * write), through one store handle, until AFTER writes after the log
 * (STORE.wal) first reached its due size (the larger of 256 KiB and
 * STORE's size), or MAX writes (default 100,000).  Then prints
 *     writes=N max_ms=X max_at=I due_at=J due_max_ms=Y wal_max=B
 *     due_bytes=D cuts=C
 * max_at is the index of the longest call, due_at of the first call after
 * which the log was due or had been emptied by a checkpoint (-1: never), due_max_ms the longest call from
 * that one on (the one that made it due used to build the checkpoint), wal_max the longest log seen after a
 * call, due_bytes the due size seen then, cuts how many times the log was
 * seen shorter than after the call before (a checkpoint emptied it).  Exit 0, 1 on a failed call (its
 * message on stderr), 2 on usage errors.
 */
#include "sessgate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static long long size_of(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fputs("usage: duewrite STORE PAD AFTER [MAX]\n", stderr);
        return 2;
    }
    const char *store = argv[1];
    long pad = atol(argv[2]), after = atol(argv[3]);
    long max = argc > 4 ? atol(argv[4]) : 100000;
    size_t n = strlen(store) + 8;
    char *wal = malloc(n), *data = malloc((size_t)pad + 16);
    if (!wal || !data || pad < 1 || after < 0 || max <= 0) {
        fputs("duewrite: bad arguments or out of memory\n", stderr);
        return 2;
    }
    snprintf(wal, n, "%s.wal", store);
    memcpy(data, "{\"pad\":\"", 8);
    memset(data + 8, 'x', (size_t)pad);
    memcpy(data + 8 + pad, "\"}", 3);

    sg_options opt;
    sg_options_init(&opt);
    sg_store *st = NULL;
    sg_error err;
    sg_error_clear(&err);
    if (sg_store_open(store, &opt, &st, &err) != SG_OK) {
        fprintf(stderr, "duewrite: %s\n", err.text);
        return 1;
    }
    /* Rewrites of a few sessions: creates alone never make the log due,
     * since PATH grows with it. */
    enum { KEEP = 100 };
    sg_session *keep[KEEP] = { 0 };
    double max_ms = 0, due_max = 0;
    long i, max_at = -1, due_at = -1;
    long long wal_max = 0, due_bytes = 0, wal_last = 0;
    long cuts = 0;
    int rc = 0;
    for (i = 0; i < max && (due_at < 0 || i - due_at <= after); i++) {
        sg_session **s = &keep[i % KEEP];
        double t0 = now_ms();
        sg_status r;
        if (!*s) {
            r = sg_session_create(st, NULL, data, 0, 0, s, &err);
        } else {
            data[8 + i % pad] = (char)('a' + i % 26);
            r = sg_session_set_data(*s, data, &err);
            if (r == SG_OK)
                r = sg_session_save(st, *s, &err);
        }
        double ms = now_ms() - t0;
        if (r != SG_OK) {
            fprintf(stderr, "duewrite: write %ld: %s\n", i, err.text);
            rc = 1;
            break;
        }
        if (ms > max_ms) {
            max_ms = ms;
            max_at = i;
        }
        long long w = size_of(wal), d = size_of(store);
        int cut = w < wal_last;   /* a checkpoint emptied it */
        cuts += cut;
        wal_last = w;
        if (d < 256 * 1024)
            d = 256 * 1024;
        if (w > wal_max) {
            wal_max = w;
            due_bytes = d;
        }
        if (due_at < 0 && (w >= d || cut))
            due_at = i;
        if (due_at >= 0 && ms > due_max)
            due_max = ms;
    }
    for (int k = 0; k < KEEP; k++)
        sg_session_free(keep[k]);
    printf("writes=%ld max_ms=%.1f max_at=%ld due_at=%ld due_max_ms=%.1f "
           "wal_max=%lld due_bytes=%lld cuts=%ld\n", i, max_ms, max_at,
           due_at, due_max, wal_max, due_bytes, cuts);
    sg_store_close(st);
    free(wal);
    free(data);
    return rc;
}
