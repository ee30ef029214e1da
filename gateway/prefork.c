/*
 * prefork.c - run N workers on one listening socket and keep them alive.
 *
 * Workers are plain processes that each run request_loop() on the shared
 * socket (the kernel hands each connection to one accept()).  The master
 * only supervises: a worker that dies is replaced (with a pause when
 * workers keep dying at once, so a broken store does not become a fork
 * loop), and SIGTERM or SIGINT stops every worker and exits 0.  Workers ask
 * the kernel for SIGTERM when the master dies (fcgiwrap's prefork children
 * outlive their master, issue #19).  A worker that gets SIGTERM while idle
 * leaves at once; one busy with a request finishes it first.
 *
 * Started by a spawner on fd 0 with one worker, the process is the worker
 * itself: the spawner (lighttpd, mod_fcgid) already restarts it.
 *
 * Issue #19: a third duty, checkpoints.  A GDBM writer leaves a big
 * checkpoint due rather than build it inside the user's request it serves
 * (minutes on a large store).  Once a second the master asks the store
 * whether one is due (two stat calls, through a read-only handle it uses
 * for nothing else) and, if so, forks a builder that builds it and exits; the master
 * itself never waits for it.  A store without checkpoints (Redis) answers
 * the first question SG_ENOTSUP: the master closes that handle (its Redis
 * connection) and never asks again.  One builder at a time; SIGTERM stops it too
 * (a killed build is crash-safe: it is built beside the store's files).
 *
 * Issue #17, two more duties, both fed by a small shared table (one slot
 * per worker: does it hold a connection, which CGI program does it run):
 *  - the master is the workers' child subreaper, so a CGI program whose
 *    worker died (SIGSEGV, OOM kill) is reparented to it, not to init; it
 *    kills that program's process group at once and reaps it, where before
 *    it ran on unsupervised (--cgi-timeout lived in the dead worker);
 *  - with --queue-timeout MS, a bounded wait: while every worker is busy the
 *    master watches the listening socket, and a connection that has been
 *    waiting there MS ms is accepted by the master and answered 503
 *    (Retry-After: 1) at once, instead of queueing without bound in the
 *    kernel's backlog (measured before: 3-9 s in cgi mode under load).
 *    The bound is on the wait, which is what a client feels; the backlog's
 *    length is the kernel's (listen(2)).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"

volatile sig_atomic_t prefork_stop;
/* The master's worker table.  File scope so a forked worker still reaches
 * its inherited copy (no false leak report from valgrind in workers). */
static pid_t *pids;
static time_t *started;
static volatile sig_atomic_t master_stop, master_child;
/* Checkpoints (see the top): the master's polling handle, the builder. */
static sg_store *ckpt_poll;
static pid_t ckpt_builder;
static int64_t ckpt_next;
static int ckpt_none;           /* the store has no checkpoints: stop asking */

/* One slot per worker, shared with it (MAP_SHARED, made before the forks). */
typedef struct worker_slot {
    int   busy;                 /* holds a connection: cannot accept */
    pid_t cgi;                  /* the CGI program it runs, 0: none */
} worker_slot;
static worker_slot *slots;      /* the master's view; NULL without a master */
static worker_slot *my_slot;    /* in a worker: its own slot */

/* See gateway.h. */
void prefork_mark_busy(int busy)
{
    if (my_slot)
        __atomic_store_n(&my_slot->busy, busy, __ATOMIC_RELAXED);
}

/* See gateway.h. */
void prefork_mark_cgi(pid_t pid)
{
    if (my_slot)
        __atomic_store_n(&my_slot->cgi, pid, __ATOMIC_RELAXED);
}

/* Whether every request worker holds a connection (or is dead). */
static int all_busy(long nw)
{
    long i;

    for (i = 0; i < nw; i++)
        if (pids[i] > 0 && !__atomic_load_n(&slots[i].busy, __ATOMIC_RELAXED))
            return 0;
    return 1;
}

/* FastCGI record header: version 1, type, request id, content length. */
static size_t fcgi_record(unsigned char *p, int type, unsigned id, size_t len)
{
    p[0] = 1;
    p[1] = (unsigned char)type;
    p[2] = (unsigned char)(id >> 8);
    p[3] = (unsigned char)id;
    p[4] = (unsigned char)(len >> 8);
    p[5] = (unsigned char)len;
    p[6] = p[7] = 0;
    return 8;
}

/* Accept one waiting connection and answer it 503 over FastCGI.  Bounded:
 * at most ~200 ms to read its BEGIN record and ~200 ms to drain what it
 * sends after our answer (closing with unread input would reset the
 * connection and could destroy the answer before the server reads it). */
static void reject_one(int lfd)
{
    static const char body[] = "Status: 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\nRetry-After: 1\r\n\r\n"
        "503 Service Unavailable: every worker is busy (--queue-timeout)\n";
    static unsigned long rejected;
    unsigned char h[16], out[64 + sizeof body];
    size_t got = 0, n = 0;
    int64_t end = proc_now_ms() + 200;
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (c < 0)
        return;                         /* a worker took it after all */
    while (got < sizeof h && proc_now_ms() < end) {
        struct pollfd pf = { c, POLLIN, 0 };
        ssize_t k;

        if (poll(&pf, 1, 20) <= 0)
            continue;
        k = recv(c, h + got, sizeof h - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (got == sizeof h && h[0] == 1 && h[1] == 1 /* FCGI_BEGIN_REQUEST */) {
        unsigned id = ((unsigned)h[2] << 8) | h[3];

        n += fcgi_record(out + n, 6 /* STDOUT */, id, sizeof body - 1);
        memcpy(out + n, body, sizeof body - 1);
        n += sizeof body - 1;
        n += fcgi_record(out + n, 6, id, 0);
        n += fcgi_record(out + n, 3 /* END_REQUEST */, id, 8);
        memset(out + n, 0, 8);          /* appStatus 0, FCGI_REQUEST_COMPLETE */
        n += 8;
        if (send(c, out, n, MSG_NOSIGNAL) < 0) {
            /* it left: nothing to answer */
        }
    }
    shutdown(c, SHUT_WR);
    end = proc_now_ms() + 200;
    while (proc_now_ms() < end) {
        struct pollfd pf = { c, POLLIN, 0 };
        char sink[4096];

        if (poll(&pf, 1, 20) > 0 && recv(c, sink, sizeof sink, 0) <= 0)
            break;
    }
    close(c);
    metrics_add(MET_QUEUE_REJECTED, 1);
    if (rejected++ % 100 == 0)
        log_event(LOG_WARN, "queue_full", "every worker busy past --queue-timeout; "
                  "answered 503 (logged once per 100)", (const char *)NULL);
}

static void on_master_term(int sig)
{
    (void)sig;
    master_stop = 1;
}

static void on_master_chld(int sig)
{
    (void)sig;
    master_child = 1;
}

/* Worker slot i, or with --metrics-listen the metrics process (last slot). */
static int start_worker(const gw_config *cfg, int fd, pid_t master, long i)
{
    pid_t pid = fork();
    sigset_t none;

    if (pid != 0)
        return pid;
    /* Child: back to plain signal handling, then serve. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(0);                       /* the master died before prctl */
    my_slot = slots && i < cfg->workers ? &slots[i] : NULL;
    if (i == cfg->workers)
        _exit(metrics_serve(cfg));
    _exit(request_loop(cfg, fd));
}

/* In the builder: build the due checkpoint with a handle of its own, log
 * how long it took, exit. */
static void build_checkpoint(const gw_config *cfg)
{
    sg_store *st = NULL;
    sg_error err;
    int built = 0;
    int64_t t0 = proc_now_ms();

    sg_error_clear(&err);
    if (sg_store_open(cfg->store_uri, &cfg->store_opt, &st, &err) != SG_OK ||
        sg_store_checkpoint(st, 0, &built, &err) != SG_OK) {
        log_store_error(&err);
        sg_store_close(st);
        _exit(1);
    }
    sg_store_close(st);
    if (built) {
        char ms[24];

        snprintf(ms, sizeof ms, "%lld", (long long)(proc_now_ms() - t0));
        log_event(LOG_INFO, "checkpoint_built", "the store's due checkpoint "
                  "was built between requests", "ms", ms, (const char *)NULL);
    }
    _exit(0);
}

/* Once a second: if the store has a checkpoint due and no builder runs,
 * fork one (see the top). */
static void checkpoint_tick(const gw_config *cfg, pid_t master)
{
    sg_error err;
    sigset_t none;
    int due = 0;
    pid_t pid;
    sg_status rc;

    if (ckpt_none || ckpt_builder > 0 || proc_now_ms() < ckpt_next ||
        !cfg->store_uri)
        return;
    ckpt_next = proc_now_ms() + 1000;
    sg_error_clear(&err);
    /* Read-only: the master only asks; the first checkpoint of a raw store
     * or a rebuild is a writer's (a worker's, the builder's) to do, not
     * something to keep this loop busy with. */
    if (!ckpt_poll) {
        sg_options ro = cfg->store_opt;

        ro.readonly = 1;
        if (sg_store_open(cfg->store_uri, &ro, &ckpt_poll, &err) != SG_OK)
            ckpt_poll = NULL;
    }
    if (!ckpt_poll) {
        ckpt_next = proc_now_ms() + 60000;   /* the workers report it */
        return;
    }
    rc = sg_store_checkpoint(ckpt_poll, SG_CHECKPOINT_QUERY, &due, &err);
    if (rc == SG_ENOTSUP) {
        /* The library says this store (Redis) has none: no handle, no
         * Redis connection held, no question asked once a second, for
         * nothing.  The URI is not ours to parse. */
        sg_store_close(ckpt_poll);
        ckpt_poll = NULL;
        ckpt_none = 1;
        return;
    }
    if (rc != SG_OK || !due)
        return;
    pid = fork();
    if (pid < 0) {
        log_msg("cannot start a checkpoint builder: %s", strerror(errno));
        return;
    }
    if (pid > 0) {
        ckpt_builder = pid;
        return;
    }
    /* Builder: plain signals (SIGTERM ends it), gone with the master. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(0);
    build_checkpoint(cfg);
}

/* Run the workers until SIGTERM; see gateway.h.  Exit status. */
int prefork_run(const gw_config *cfg, int fd)
{
    long i, n = cfg->workers + (cfg->metrics_listen ? 1 : 0);
    struct sigaction sa;
    sigset_t block, old;
    pid_t master = getpid();

    if (n == 1 && !cfg->listen && !cfg->listen_systemd)
        return request_loop(cfg, fd);

    pids = calloc((size_t)n, sizeof *pids);         /* owned here, freed below */
    started = calloc((size_t)n, sizeof *started);   /* owned here, freed below */
    if (!pids || !started) {
        free(pids);
        free(started);
        log_msg("out of memory starting workers");
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_master_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_master_chld;
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);

    /* Why shared and made before the forks: each worker writes its own
     * slot, the master reads them all (queue bound, orphans). */
    slots = mmap(NULL, (size_t)n * sizeof *slots, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        slots = NULL;                   /* both duties off; still serves */
    else
        memset(slots, 0, (size_t)n * sizeof *slots);
    /* Orphans of a dead worker come to us, not to init (see the top). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (cfg->queue_timeout > 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }

    for (i = 0; i < n; i++) {
        pids[i] = start_worker(cfg, fd, master, i);
        started[i] = time(NULL);
        if (pids[i] < 0)
            log_msg("cannot start worker: %s", strerror(errno));
    }
    while (!master_stop) {
        pid_t pid;
        int status;

        if (cfg->queue_timeout > 0 && slots) {
            /* Bounded wait (see the top): look every 20 ms. */
            static int64_t waiting_since;
            struct timespec tick = { 0, 20000000L };
            struct pollfd pf = { fd, POLLIN, 0 };
            int busy = all_busy(cfg->workers);

            if (ppoll(&pf, busy ? 1 : 0, &tick, &old) > 0 && (pf.revents & POLLIN) &&
                all_busy(cfg->workers)) {
                if (!waiting_since)
                    waiting_since = proc_now_ms();
                else if (proc_now_ms() - waiting_since >= cfg->queue_timeout)
                    reject_one(fd);
            } else if (!busy || !all_busy(cfg->workers))
                waiting_since = 0;
        } else {
            /* A tick a second, for checkpoint_tick; signals wake it too. */
            struct timespec tick = { 1, 0 };

            ppoll(NULL, 0, &tick, &old);
        }
        master_child = 0;
        if (log_hup_taken()) {          /* SIGHUP: every worker reopens its log */
            log_tick();
            for (i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGHUP);
        }
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == ckpt_builder) {
                ckpt_builder = 0;
                continue;
            }
            for (i = 0; i < n; i++)
                if (pids[i] == pid)
                    break;
            if (i == n)
                continue;               /* a reaped orphan (subreaper) */
            pids[i] = 0;
            if (slots) {
                pid_t cgi = __atomic_exchange_n(&slots[i].cgi, 0, __ATOMIC_RELAXED);

                slots[i].busy = 0;
                if (cgi > 0) {
                    char ps[16];

                    /* Why: its --cgi-timeout died with the worker; nobody
                     * else would ever stop it.  Reaped by this loop. */
                    proc_kill(cgi, SIGKILL);
                    metrics_add(MET_CGI_ORPHANS, 1);
                    snprintf(ps, sizeof ps, "%ld", (long)cgi);
                    log_event(LOG_WARN, "cgi_orphan_killed", "a dead worker's CGI program "
                              "was killed with its process group", "pid", ps,
                              (const char *)NULL);
                }
            }
            if (master_stop)
                continue;
            metrics_add(MET_WORKER_RESTARTS, 1);
            if (WIFSIGNALED(status))
                log_msg("worker %ld killed by signal %d; restarting", (long)pid,
                        WTERMSIG(status));
            else
                log_msg("worker %ld exited with status %d; restarting", (long)pid,
                        WEXITSTATUS(status));
            /* Why: a worker dying at once means something is broken (store
             * gone, out of fds); pause rather than fork as fast as we can. */
            if (time(NULL) - started[i] < 1)
                sleep(1);
        }
        for (i = 0; i < n && !master_stop; i++)
            if (pids[i] <= 0) {
                pids[i] = start_worker(cfg, fd, master, i);
                started[i] = time(NULL);
                if (pids[i] < 0)
                    log_msg("cannot start worker: %s", strerror(errno));
            }
        if (!master_stop)
            checkpoint_tick(cfg, master);
    }

    /* Stop: TERM every worker, give them 10 s to finish requests, then KILL.
     * A checkpoint builder just stops (the next one starts over). */
    sdnotify_send("STOPPING=1");
    if (ckpt_builder > 0) {
        kill(ckpt_builder, SIGTERM);
        waitpid(ckpt_builder, NULL, 0);
        ckpt_builder = 0;
    }
    sg_store_close(ckpt_poll);
    ckpt_poll = NULL;
    for (i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    {
        int64_t deadline = proc_now_ms() + 10000;
        long alive = n;

        while (alive > 0) {
            pid_t pid = waitpid(-1, NULL, WNOHANG);
            if (pid > 0) {
                for (i = 0; i < n; i++)
                    if (pids[i] == pid)
                        pids[i] = 0;
            } else if (pid < 0 && errno == ECHILD)
                break;
            for (alive = 0, i = 0; i < n; i++)
                alive += pids[i] > 0;
            if (alive && proc_now_ms() > deadline) {
                for (i = 0; i < n; i++)
                    if (pids[i] > 0)
                        kill(pids[i], SIGKILL);
                deadline = proc_now_ms() + 60000;
            }
            if (alive && pid <= 0) {
                struct timespec ts = { 0, 10000000L };
                nanosleep(&ts, NULL);
            }
        }
    }
    free(pids);
    free(started);
    pids = NULL;
    started = NULL;
    if (slots)
        munmap(slots, (size_t)n * sizeof *slots);
    slots = NULL;
    return 0;
}
