/*
 * listen.c - the socket the workers accept FastCGI connections on.
 *
 * Three ways to get one: systemd binds it and passes it as fd 3 (socket
 * activation, LISTEN_FDS; sdnotify.c), the gateway listens itself (--listen
 * unix:PATH or --listen HOST:PORT, for nginx and Apache mod_authnz_fcgi,
 * which never start FastCGI programs), or a spawner hands it over as fd 0
 * (lighttpd bin-path, mod_fcgid, spawn-fcgi).  A unix socket is made mode
 * 0660 or --socket-mode, owned by --socket-owner (the web server's group
 * connects; nobody else can forge params); it is bound with umask 0177 and
 * only then chown'ed and chmod'ed, so it is never more open than asked; a
 * socket file left by a killed gateway is replaced, and a live one is an
 * error rather than silently stolen.  libfcgi reads any ':' in a path as
 * HOST:PORT, so unix paths with ':' are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "gateway.h"

static int unix_stale(const char *path)
{
    struct sockaddr_un sa;
    struct stat sb;
    int fd, rc;

    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(sb.st_mode)) {
        fprintf(stderr, "sessgate: --listen unix:%s: exists and is not a socket\n", path);
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (rc == 0) {
        fprintf(stderr, "sessgate: --listen unix:%s: another process listens there\n", path);
        return -1;
    }
    /* Why: only a socket nobody accepts on is removed (a killed gateway's). */
    if (unlink(path) < 0 && errno != ENOENT) {
        fprintf(stderr, "sessgate: --listen unix:%s: cannot remove stale socket: %s\n",
                path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Open --listen, or check that fd 0 is a socket; the fd, or -1 (printed). */
int listen_open(gw_config *cfg)
{
    struct stat sb;
    int fd;

    if (FCGX_Init() != 0) {
        fprintf(stderr, "sessgate: libfcgi initialisation failed\n");
        return -1;
    }
    fd = sdnotify_listen_fd();
    if (fd == -2)
        return -1;
    if (fd >= 0) {
        /* Why: the socket unit names the address; a --listen as well would
         * be a second, unsupervised socket (or a fight over the path). */
        if (cfg->listen) {
            fprintf(stderr, "sessgate: systemd passed a socket (LISTEN_FDS) and --listen "
                    "%s was given: drop --listen from the service's command line\n",
                    cfg->listen);
            return -1;
        }
        cfg->listen_systemd = 1;
        return fd;
    }
    if (!cfg->listen) {
        if (fstat(0, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
            fprintf(stderr, "sessgate: no --listen and stdin is not a FastCGI socket "
                    "(start it from a web server or spawn-fcgi, or give --listen)\n");
            return -1;
        }
        return 0;
    }
    if (strncmp(cfg->listen, "unix:", 5) == 0) {
        const char *path = cfg->listen + 5;
        mode_t old;

        if (!*path || strchr(path, ':') || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            fprintf(stderr, "sessgate: --listen %s: the path must be non-empty, "
                    "shorter than 108 bytes and hold no ':'\n", cfg->listen);
            return -1;
        }
        if (unix_stale(path) < 0)
            return -1;
        old = umask(0177);
        fd = FCGX_OpenSocket(path, 128);
        umask(old);
        if (fd < 0) {
            fprintf(stderr, "sessgate: --listen %s: cannot listen: %s\n", cfg->listen,
                    strerror(errno));
            return -1;
        }
        if (cfg->socket_owner.has_uid || cfg->socket_owner.has_gid) {
            uid_t u = cfg->socket_owner.has_uid ? cfg->socket_owner.uid : (uid_t)-1;
            gid_t g = cfg->socket_owner.has_gid ? cfg->socket_owner.gid : (gid_t)-1;

            if (chown(path, u, g) < 0) {
                fprintf(stderr, "sessgate: --socket-owner %s: chown %s: %s\n",
                        cfg->socket_owner_arg, path, strerror(errno));
                close(fd);
                unlink(path);
                return -1;
            }
        }
        /* Why: whoever can connect can send any params (any REMOTE_USER,
         * any cookie); only the owner and the web server's group may. */
        if (chmod(path, (mode_t)cfg->socket_mode) < 0) {
            fprintf(stderr, "sessgate: --listen %s: chmod: %s\n", cfg->listen, strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        return fd;
    }
    {
        const char *colon = strrchr(cfg->listen, ':');
        char *end;
        long port;

        if (!colon) {
            fprintf(stderr, "sessgate: --listen %s: expected unix:PATH or HOST:PORT\n",
                    cfg->listen);
            return -1;
        }
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || port < 1 || port > 65535) {
            fprintf(stderr, "sessgate: --listen %s: port must be 1..65535\n", cfg->listen);
            return -1;
        }
        fd = FCGX_OpenSocket(cfg->listen, 128);
        if (fd < 0) {
            fprintf(stderr, "sessgate: --listen %s: cannot listen: %s\n", cfg->listen,
                    errno ? strerror(errno) : "bad address");
            return -1;
        }
        return fd;
    }
}

/* Close the listening socket and remove a unix socket file we made. */
void listen_close(const gw_config *cfg, int fd)
{
    /* A systemd socket stays systemd's: it keeps listening for the next
     * start; only what --listen made is ours to remove. */
    if (!cfg->listen)
        return;
    close(fd);
    if (strncmp(cfg->listen, "unix:", 5) == 0)
        unlink(cfg->listen + 5);
}
