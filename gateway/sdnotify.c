/*
 * sdnotify.c - the two systemd protocols a supervised daemon speaks.
 *
 * Socket activation: systemd (or systemd-socket-activate, or any manager
 * that follows sd_listen_fds(3)) binds the socket itself and starts us with
 * it as fd 3, LISTEN_FDS=1 and LISTEN_PID=<our pid>.  Readiness: with
 * Type=notify, systemd waits for the datagram "READY=1" on the unix socket
 * named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace)
 * before it counts the service as started; "STOPPING=1" says a stop began.
 *
 * Both protocols are a few lines and documented as stable interfaces
 * (systemd's "Interface Portability and Stability" page), so they are
 * implemented here rather than linking libsystemd: the gateway keeps
 * working unchanged under other managers and in containers without
 * systemd, and gains no dependency.  The variables are removed from the
 * environment once read, so CGI programs and restarted workers never see a
 * LISTEN_PID that is not theirs (what sd_listen_fds(1) does too).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gateway.h"

#define SD_LISTEN_FDS_START 3

/* The socket passed by systemd, or -1 when none, -2 on error; see gateway.h. */
int sdnotify_listen_fd(void)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    char *end;
    long pid, n;
    struct stat sb;
    int fd = SD_LISTEN_FDS_START;

    if (!pid_s || !fds_s)
        return -1;
    errno = 0;
    pid = strtol(pid_s, &end, 10);
    if (errno || end == pid_s || *end || pid != (long)getpid())
        return -1;          /* meant for another process (a parent of ours) */
    errno = 0;
    n = strtol(fds_s, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (errno || end == fds_s || *end || n < 1) {
        fprintf(stderr, "sessgate: LISTEN_FDS=%s: expected a positive count\n", fds_s);
        return -2;
    }
    if (n > 1) {
        /* Why: one gateway serves one socket; a second ListenStream= in
         * the unit is a mistake better reported than half-served. */
        fprintf(stderr, "sessgate: systemd passed %ld sockets; give the socket unit "
                "exactly one Listen line\n", n);
        return -2;
    }
    if (fstat(fd, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
        fprintf(stderr, "sessgate: LISTEN_FDS=1 but fd 3 is not a socket\n");
        return -2;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);   /* never into a CGI program */
    return fd;
}

/* Send one state string to $NOTIFY_SOCKET; 0 (also when unset) or -1. */
int sdnotify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    socklen_t salen;
    int fd;
    ssize_t rc;

    if (!path || !*path)
        return 0;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) {
        log_msg("NOTIFY_SOCKET=%s: not a unix socket path; no readiness sent", path);
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';              /* abstract namespace */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_msg("NOTIFY_SOCKET: socket: %s", strerror(errno));
        return -1;
    }
    rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    close(fd);
    if (rc < 0) {
        log_msg("NOTIFY_SOCKET=%s: cannot send %s: %s", path, state, strerror(errno));
        return -1;
    }
    return 0;
}
