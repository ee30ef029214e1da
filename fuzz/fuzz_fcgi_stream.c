/*
 * fuzz_fcgi_stream.c - libFuzzer target for the FastCGI record stream as
 * the gateway reads it (issue #17): the bytes a web server (or a hostile
 * raw client) sends on one connection, fed through the gateway's own
 * record reader (gateway/fcgi.c) exactly as request_loop() uses it (a
 * connection attached to a gw_fcgi, keep-alive across requests, the rest
 * of a body left unread), then through the gateway's consumers of what it
 * made of them: the spoof check (inbound_find_spoof), the session cookie
 * over every HTTP_COOKIE param by its length (cookie_find), FCGI_STDIN
 * read to its end (records of other types and ids in between, management
 * records, FCGI_ABORT_REQUEST, a stream cut anywhere), the reply written
 * and the request finished.  Every byte value is fuzzed, 4-byte lengths
 * near 2^31 included (libfcgi asserted on those, so the libfcgi-era
 * target skipped them), and no leak is suppressed.
 *
 * Promises checked besides ASan/UBSan/LSan: every param's triple agrees
 * with its envp entry (name bytes, '=' at nlen, value bytes, NUL at vlen),
 * the params' bytes add up to no more than the PARAMS stream held, a spoof
 * answer is an entry of envp, a COOKIE_ONE verdict carries a valid id, and
 * nothing blocks: the input ends with the peer's write side shut, so every
 * read ends, and our side is non-blocking for writes (answers to a flood
 * of management records fail rather than wait for a reader).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void consume(gw_fcgi *c, size_t input)
{
    FCGX_Request *fr = fcgi_request(c);
    const char *vals[GW_MAX_COOKIE_PARAMS + 1];
    size_t lens[GW_MAX_COOKIE_PARAMS + 1], n = 0, np, i, bytes = 0;
    char name[128], id[SG_ID_LEN + 1], buf[4096];
    const gw_param *p = fcgi_params(c, &np);
    const char *spoof;
    char **e;
    int k, rounds = 0;

    for (i = 0; i < np; i++) {
        if (fr->envp[i] != p[i].name || p[i].name[p[i].nlen] != '=' ||
            p[i].value != p[i].name + p[i].nlen + 1 || p[i].value[p[i].vlen] != '\0')
            abort();
        bytes += p[i].nlen + p[i].vlen;
    }
    if (fr->envp[np] != NULL || bytes > input)
        abort();
    spoof = inbound_find_spoof(fr->envp, name, sizeof name);
    if (spoof) {
        for (e = fr->envp; *e && *e != spoof; e++)
            ;
        if (!*e || inbound_classify(name) != INBOUND_SPOOF)
            abort();
    }
    for (i = 0; i < np && n <= GW_MAX_COOKIE_PARAMS; i++)
        if (p[i].nlen == 11 && memcmp(p[i].name, "HTTP_COOKIE", 11) == 0) {
            vals[n] = p[i].value;
            lens[n] = p[i].vlen;
            n++;
        }
    if (cookie_find(vals, lens, n, "sessgate", id) == COOKIE_ONE && !sg_id_valid(id))
        abort();
    /* FCGI_STDIN: all of it, or (a kept connection's auth request) only
     * a little, leaving the rest for the next head to skip. */
    if (input % 3 == 0)
        (void)FCGX_GetStr(buf, 5, fr->in);
    else
        while ((k = FCGX_GetStr(buf, (int)sizeof buf, fr->in)) > 0 && ++rounds < 100000)
            ;
    (void)cgi_fcgi_more_buffered(fr);
    FCGX_PutS("Status: 200 OK\r\n\r\n", fr->out);
    if (input % 5 == 0)
        FCGX_FFlush(fr->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    gw_fcgi *c;
    int sv[2], i, fl;

    if (!inited) {
        signal(SIGPIPE, SIG_IGN);
        inited = 1;
    }
    if (size > 60000)
        return 0;                       /* fits the socket buffer: no writer thread */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    if (size && write(sv[0], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    shutdown(sv[0], SHUT_WR);
    fl = fcntl(sv[1], F_GETFL);
    fcntl(sv[1], F_SETFL, fl | O_NONBLOCK);    /* every byte is there: reads never wait */
    c = fcgi_new();
    if (!c)
        abort();
    fcgi_attach(c, sv[1]);
    /* Up to 4 requests on the connection, as with FCGI_KEEP_CONN. */
    for (i = 0; i < 4 && fcgi_fd(c) >= 0; i++) {
        if (fcgi_accept(c) != 0) {
            if (fcgi_fd(c) >= 0)
                abort();                /* a failed head closes the connection */
            break;
        }
        consume(c, size);
        fcgi_finish(c);
    }
    fcgi_free(c);
    close(sv[0]);
    return 0;
}
