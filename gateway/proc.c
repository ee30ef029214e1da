/*
 * proc.c - start, kill and reap CGI programs.
 *
 * A CGI program runs in its own process group so that a timeout kills it
 * and everything it started (fcgiwrap has no timeout, and its one kill()
 * call has its arguments swapped, so it never kills anything).  All
 * killing goes through proc_kill(pid, sig).  The child gets a clean slate:
 * default signal dispositions and mask (ignored signals survive exec), no
 * inherited descriptors beyond stdin/stdout/stderr (the store's lock file
 * and the FastCGI sockets must not leak: a flock is shared by every copy of
 * its descriptor), and only the environment it is given.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"

/* Monotonic milliseconds. */
int64_t proc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic clock in microseconds. */
int64_t proc_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Send sig to pid's process group, or to pid when it has none of its own. */
int proc_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return -1;              /* never kill(0) or kill(-1) by mistake */
    if (kill(-pid, sig) == 0)
        return 0;
    return kill(pid, sig);
}

static void close_from(int lowfd)
{
    if (close_range((unsigned)lowfd, ~0U, 0) == 0)
        return;
    {
        long max = sysconf(_SC_OPEN_MAX), fd;
        if (max < 0 || max > 65536)
            max = 65536;
        for (fd = lowfd; fd < max; fd++)
            close((int)fd);
    }
}

/* Start path in its own process group; see gateway.h. */
pid_t proc_spawn(const char *path, char *const envp[], const char *dir,
                 int *to_child, int *from_child)
{
    int in[2], out[2];
    pid_t pid;

    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        int e = errno;
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        int sig;
        char *argv[2];

        setpgid(0, 0);
        for (sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(127);
        close_from(3);
        if (dir && chdir(dir) < 0)
            _exit(127);
        argv[0] = (char *)path;
        argv[1] = NULL;
        execve(path, argv, envp);
        _exit(127);
    }
    /* Both sides call setpgid so the group exists before either goes on. */
    setpgid(pid, pid);
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    *from_child = out[0];
    return pid;
}

/* Kill pid's group and reap pid, however long that takes (SIGKILL). */
static int reap_killed(pid_t pid)
{
    int status;

    proc_kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

/* Wait for pid until deadline_ms; then kill its group and reap it.
 *
 * The program has usually closed its stdout by now and is about to exit,
 * and the request is not finished until it is reaped: the wait is on the
 * request's path.  A pidfd (Linux 5.3) turns readable the moment the
 * program exits, so poll() on it wakes at once.  Kernels without pidfds
 * fall back to short, growing naps (1, 2, 4 ... 50 ms), which measured
 * about 1 ms on every request of a trivial program in make bench. */
int proc_reap(pid_t pid, int64_t deadline_ms)
{
    int status, delay = 1;
#ifdef SYS_pidfd_open
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);   /* close-on-exec */
#else
    int pidfd = -1;
#endif

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        int64_t left;

        if (r == pid || (r < 0 && errno != EINTR)) {
            if (pidfd >= 0)
                close(pidfd);
            return r == pid ? status : -1;
        }
        left = deadline_ms - proc_now_ms();
        if (left <= 0) {
            if (pidfd >= 0)
                close(pidfd);
            return reap_killed(pid);
        }
        if (pidfd >= 0) {
            struct pollfd pf = { .fd = pidfd, .events = POLLIN };
            if (poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR) {
                close(pidfd);           /* cannot poll it: nap instead */
                pidfd = -1;
            }
            continue;
        }
        {
            struct timespec ts = { 0, (long)delay * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (delay < 50)
            delay *= 2;
    }
}
