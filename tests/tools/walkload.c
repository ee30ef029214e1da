/*
 * walkload.c - writers and readers in tight loops, each timing every call,
 * for the walk and fairness latency tests (tests/store/walks.bats) and
 * bench/run.
 *
 *   walkload STORE STOPFILE MAXSECS WRITERS READERS [PAUSE_US [TIMEOUT_MS]]
 *
 * Forks WRITERS processes that each create a session and delete it again,
 * and READERS processes that each get one session created beforehand
 * (a gateway's read: SG_GET_NOTOUCH off, with a touch interval that does not
 * elapse), every process with its own store handle and the store's default
 * lock timeout (or TIMEOUT_MS).  Writers sleep PAUSE_US (default 0)
 * between two rounds, readers never.  They loop until STOPFILE exists or MAXSECS have passed,
 * then the parent prints
 *     writes=N write_max_ms=X reads=N read_max_ms=X failures=N
 *     write_lock_wait_max_ms=X read_lock_wait_max_ms=X
 * (one line) where *_max_ms is the longest single call of its kind,
 * failures counts calls that returned anything but SG_OK (the first
 * failure's message goes to stderr), and *_lock_wait_max_ms the longest
 * time one call waited for the store lock (sg_store_lock_counters).  A
 * call's time beyond its lock wait is its own work: under the lock, or
 * after it (a writer whose write makes a checkpoint due builds it in its
 * call), or waiting for a CPU.  Exit 0 when every process ran, 1 otherwise,
 * 2 on usage errors.  Writes "ready" to stderr once every process runs.
 */
#include "sessgate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64

struct result {
    long ops, failures;
    double max_ms;
    int writer;
    double max_wait_ms;     /* the longest wait for the lock in one call */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static long pause_us;

/* The call's wait for the lock (the handle's counters since lc0). */
static void note_wait(struct result *r, sg_store *st,
                      const sg_lock_counters *lc0)
{
    sg_lock_counters lc1;
    sg_store_lock_counters(st, &lc1);
    double w = (double)(lc1.wait_us - lc0->wait_us) / 1000;
    r->max_wait_ms = w > r->max_wait_ms ? w : r->max_wait_ms;
}
static int timeout_ms;

static void child(const char *uri, const char *stop, double end, int writer,
                  const char *read_id, int out)
{
    struct result r = { 0, 0, 0, writer, 0 };
    sg_lock_counters lc0;
    sg_store *st = NULL;
    sg_error err;
    sg_options opt;
    int first = 1;

    sg_options_init(&opt);
    opt.touch_interval = 3600;
    opt.lock_timeout_ms = timeout_ms;
    sg_error_clear(&err);
    if (sg_store_open(uri, &opt, &st, &err) != SG_OK) {
        fprintf(stderr, "walkload: open: %s\n", err.text);
        _exit(1);
    }
    for (long i = 0; ; i++) {
        if (i % 64 == 0 && (access(stop, F_OK) == 0 || now_ms() > end))
            break;
        sg_session *s = NULL;
        sg_status rc;
        double t0 = now_ms(), t;

        sg_error_clear(&err);
        sg_store_lock_counters(st, &lc0);
        if (writer) {
            rc = sg_session_create(st, NULL, "{\"w\":1}", 0, 0, &s, &err);
            t = now_ms() - t0;
            note_wait(&r, st, &lc0);
            r.max_ms = t > r.max_ms ? t : r.max_ms;
            r.ops++;
            if (rc == SG_OK) {
                char id[SG_ID_LEN + 1];
                memcpy(id, sg_session_id(s), sizeof id);
                sg_session_free(s);
                s = NULL;
                t0 = now_ms();
                sg_store_lock_counters(st, &lc0);
                rc = sg_session_delete(st, id, &err);
                t = now_ms() - t0;
                note_wait(&r, st, &lc0);
                r.max_ms = t > r.max_ms ? t : r.max_ms;
                r.ops++;
            }
            if (pause_us > 0) {
                struct timespec ts = { pause_us / 1000000, pause_us % 1000000 * 1000 };
                nanosleep(&ts, NULL);
            }
        } else {
            rc = sg_session_get(st, read_id, 0, &s, &err);
            t = now_ms() - t0;
            note_wait(&r, st, &lc0);
            r.max_ms = t > r.max_ms ? t : r.max_ms;
            r.ops++;
        }
        sg_session_free(s);
        if (rc != SG_OK) {
            r.failures++;
            if (first)
                fprintf(stderr, "walkload: %s failed: %s (%s)\n",
                        writer ? "write" : "read", err.text, sg_strerror(rc));
            first = 0;
        }
    }
    sg_store_close(st);
    if (write(out, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(1);
    _exit(0);
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;
    sg_session *s = NULL;
    sg_error err;
    int pfd[2], nw, nr, bad = 0;
    pid_t pids[MAX_PROCS];
    char id[SG_ID_LEN + 1];

    if (argc > 6)
        pause_us = atol(argv[6]);
    if (argc > 7)
        timeout_ms = atoi(argv[7]);
    if (argc < 6 || argc > 8 || pause_us < 0 || timeout_ms < 0 ||
        (nw = atoi(argv[4])) < 0 || (nr = atoi(argv[5])) < 0 ||
        nw + nr > MAX_PROCS || atof(argv[3]) <= 0) {
        fputs("usage: walkload STORE STOPFILE MAXSECS WRITERS READERS "
              "[PAUSE_US [TIMEOUT_MS]]\n", stderr);
        return 2;
    }
    double end = now_ms() + atof(argv[3]) * 1000;
    sg_error_clear(&err);
    if (sg_store_open(argv[1], NULL, &st, &err) != SG_OK ||
        sg_session_create(st, NULL, "{\"r\":1}", 0, 0, &s, &err) != SG_OK) {
        fprintf(stderr, "walkload: %s\n", err.text);
        return 1;
    }
    memcpy(id, sg_session_id(s), sizeof id);
    sg_session_free(s);
    sg_store_close(st);
    if (pipe(pfd) < 0) {
        perror("walkload: pipe");
        return 1;
    }
    fflush(NULL);
    for (int i = 0; i < nw + nr; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("walkload: fork");
            return 1;
        }
        if (pids[i] == 0) {
            close(pfd[0]);
            child(argv[1], argv[2], end, i < nw, id, pfd[1]);
        }
    }
    close(pfd[1]);
    fputs("ready\n", stderr);
    struct result sum[2] = { { 0, 0, 0, 0, 0 }, { 0, 0, 0, 1, 0 } }, r;
    int got = 0;
    while (read(pfd[0], &r, sizeof r) == (ssize_t)sizeof r) {
        struct result *a = &sum[r.writer ? 1 : 0];
        a->ops += r.ops;
        a->failures += r.failures;
        a->max_ms = r.max_ms > a->max_ms ? r.max_ms : a->max_ms;
        a->max_wait_ms = r.max_wait_ms > a->max_wait_ms ? r.max_wait_ms
                                                       : a->max_wait_ms;
        got++;
    }
    for (int i = 0; i < nw + nr; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            bad = 1;
    }
    printf("writes=%ld write_max_ms=%.1f reads=%ld read_max_ms=%.1f "
           "failures=%ld write_lock_wait_max_ms=%.1f "
           "read_lock_wait_max_ms=%.1f\n",
           sum[1].ops, sum[1].max_ms, sum[0].ops, sum[0].max_ms,
           sum[0].failures + sum[1].failures, sum[1].max_wait_ms,
           sum[0].max_wait_ms);
    return bad || got != nw + nr;
}
