/*
 * fcgi_client - a tiny FastCGI client for driving the gateway in tests.
 *
 *   fcgi_client -s SOCKET [-r responder|authorizer] [-p NAME=VALUE]...
 *               [-b FILE|-] [-n] [-t SECONDS]
 *
 * cgi-fcgi (libfcgi-bin) always uses the RESPONDER role and sends each
 * param once; tests need the AUTHORIZER role, repeated params (two
 * HTTP_COOKIE, two FCGI_ROLE), huge params and a request whose FCGI_STDIN
 * never ends (-n: what Apache does to an authorizer).  SOCKET is a unix
 * socket path, or HOST:PORT.  The body (-b) is streamed while the reply is
 * read, so a large body cannot deadlock the test itself.  The reply's
 * FCGI_STDOUT goes raw to stdout, FCGI_STDERR to stderr.  Exit status: 0
 * when FCGI_END_REQUEST arrived, 3 on timeout (-t, default 30 s), 4 when
 * the gateway closed the connection without ending the request, 1 on
 * connection errors, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define T_BEGIN 1
#define T_END 3
#define T_PARAMS 4
#define T_STDIN 5
#define T_STDOUT 6
#define T_STDERR 7

typedef struct obuf { unsigned char *p; size_t len, cap, off; } obuf;

static void oadd(obuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n)
            c *= 2;
        b->p = realloc(b->p, c);
        if (!b->p) {
            perror("fcgi_client");
            exit(1);
        }
        b->cap = c;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void record(obuf *b, int type, const void *p, size_t n)
{
    unsigned char h[8] = { 1, (unsigned char)type, 0, 1,
                           (unsigned char)(n >> 8), (unsigned char)n, 0, 0 };
    oadd(b, h, 8);
    if (n)
        oadd(b, p, n);
}

static void put_len(obuf *b, size_t n)
{
    unsigned char l[4];
    if (n < 128) {
        l[0] = (unsigned char)n;
        oadd(b, l, 1);
    } else {
        l[0] = (unsigned char)((n >> 24) | 0x80);
        l[1] = (unsigned char)(n >> 16);
        l[2] = (unsigned char)(n >> 8);
        l[3] = (unsigned char)n;
        oadd(b, l, 4);
    }
}

static int connect_to(const char *where)
{
    int fd;

    if (where[0] != '/' && strchr(where, ':')) {
        char host[256];
        const char *colon = strrchr(where, ':');
        struct addrinfo hints, *res;
        size_t hl = (size_t)(colon - where);

        if (hl >= sizeof host)
            return -1;
        memcpy(host, where, hl);
        host[hl] = '\0';
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
            return -1;
        fd = socket(res->ai_family, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
            freeaddrinfo(res);
            return -1;
        }
        freeaddrinfo(res);
        return fd;
    } else {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        if (strlen(where) >= sizeof sa.sun_path)
            return -1;
        strcpy(sa.sun_path, where);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            return -1;
        return fd;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: fcgi_client -s SOCKET [-r responder|authorizer] "
            "[-p NAME=VALUE]... [-b FILE|-] [-n] [-t SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *bodyfile = NULL;
    int role = 1, no_end = 0, timeout = 30, c, fd, body_fd = -1, body_done = 1;
    /* static: the early exits (timeout, closed) leave them reachable, so a
     * SANITIZE build reports no leak and keeps the exit status 3 or 4 */
    static obuf out, params;
    unsigned char in[70000];
    size_t in_len = 0, i;
    int ended = 0;
    time_t start = time(NULL);

    while ((c = getopt(argc, argv, "s:r:p:b:nt:")) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'r':
            if (strcmp(optarg, "authorizer") == 0) role = 2;
            else if (strcmp(optarg, "responder") == 0) role = 1;
            else usage();
            break;
        case 'p': {
            const char *eq = strchr(optarg, '=');
            if (!eq)
                usage();
            put_len(&params, (size_t)(eq - optarg));
            put_len(&params, strlen(eq + 1));
            oadd(&params, optarg, (size_t)(eq - optarg));
            oadd(&params, eq + 1, strlen(eq + 1));
            break;
        }
        case 'b': bodyfile = optarg; break;
        case 'n': no_end = 1; break;
        case 't': timeout = atoi(optarg); break;
        default: usage();
        }
    }
    if (!sock)
        usage();
    {
        unsigned char begin[8] = { 0, (unsigned char)role, 0, 0, 0, 0, 0, 0 };
        record(&out, T_BEGIN, begin, 8);
    }
    for (i = 0; i < params.len; i += 65535)
        record(&out, T_PARAMS, params.p + i, params.len - i > 65535 ? 65535 : params.len - i);
    record(&out, T_PARAMS, NULL, 0);
    if (bodyfile) {
        body_fd = strcmp(bodyfile, "-") == 0 ? 0 : open(bodyfile, O_RDONLY);
        if (body_fd < 0) {
            perror(bodyfile);
            return 1;
        }
        body_done = 0;
    } else if (!no_end)
        record(&out, T_STDIN, NULL, 0);

    fd = connect_to(sock);
    if (fd < 0) {
        fprintf(stderr, "fcgi_client: cannot connect to %s: %s\n", sock, strerror(errno));
        return 1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (!ended) {
        struct pollfd pf = { fd, POLLIN, 0 };
        int left = (int)(timeout - (time(NULL) - start));

        if (left <= 0) {
            fprintf(stderr, "fcgi_client: timeout after %d s\n", timeout);
            free(out.p);
            free(params.p);
            return 3;
        }
        /* Keep the outgoing buffer topped up with body records. */
        if (!body_done && out.len - out.off < 65536) {
            char chunk[32768];
            ssize_t n = read(body_fd, chunk, sizeof chunk);
            if (n > 0)
                record(&out, T_STDIN, chunk, (size_t)n);
            else {
                body_done = 1;
                if (!no_end)
                    record(&out, T_STDIN, NULL, 0);
            }
        }
        if (out.off < out.len)
            pf.events |= POLLOUT;
        if (poll(&pf, 1, 1000) < 0)
            continue;
        if (pf.revents & POLLOUT) {
            ssize_t w = write(fd, out.p + out.off, out.len - out.off);
            if (w > 0) {
                out.off += (size_t)w;
                if (out.off == out.len)
                    out.off = out.len = 0;
            } else if (w < 0 && errno != EAGAIN) {
                out.off = out.len = 0;   /* the gateway stopped reading */
                body_done = 1;
            }
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(fd, in + in_len, sizeof in - in_len);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                fprintf(stderr, "fcgi_client: connection closed before END_REQUEST\n");
                fflush(stdout);
                free(out.p);            /* a clean exit 4 under LeakSanitizer too */
                free(params.p);
                return 4;
            }
            if (r > 0)
                in_len += (size_t)r;
            for (;;) {
                size_t clen, plen;
                if (in_len < 8)
                    break;
                clen = ((size_t)in[4] << 8) | in[5];
                plen = in[6];
                if (in_len < 8 + clen + plen)
                    break;
                if (in[1] == T_STDOUT && clen)
                    fwrite(in + 8, 1, clen, stdout);
                else if (in[1] == T_STDERR && clen)
                    fwrite(in + 8, 1, clen, stderr);
                else if (in[1] == T_END)
                    ended = 1;
                memmove(in, in + 8 + clen + plen, in_len - 8 - clen - plen);
                in_len -= 8 + clen + plen;
            }
        }
    }
    fflush(stdout);
    free(out.p);
    free(params.p);
    return 0;
}
