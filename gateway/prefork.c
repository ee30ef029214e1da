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
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
    if (i == cfg->workers)
        _exit(metrics_serve(cfg));
    _exit(request_loop(cfg, fd));
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

    for (i = 0; i < n; i++) {
        pids[i] = start_worker(cfg, fd, master, i);
        started[i] = time(NULL);
        if (pids[i] < 0)
            log_msg("cannot start worker: %s", strerror(errno));
    }
    while (!master_stop) {
        pid_t pid;
        int status;

        sigsuspend(&old);
        master_child = 0;
        if (log_hup_taken()) {          /* SIGHUP: every worker reopens its log */
            log_tick();
            for (i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGHUP);
        }
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (i = 0; i < n; i++)
                if (pids[i] == pid)
                    break;
            if (i == n)
                continue;
            pids[i] = 0;
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
    }

    /* Stop: TERM every worker, give them 10 s to finish requests, then KILL. */
    sdnotify_send("STOPPING=1");
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
    return 0;
}
