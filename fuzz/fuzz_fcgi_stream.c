/*
 * fuzz_fcgi_stream.c - libFuzzer target for the FastCGI record stream as
 * the gateway reads it (issue #17): the bytes a web server (or a hostile
 * raw client) sends on one connection, fed through libfcgi exactly as
 * request_loop() does (a connection accepted by us, handed over as ipcFd
 * with listen_sock -1, keep-alive across requests), then through the
 * gateway's own consumers of what libfcgi made of it: the refusal of a
 * request head that did not arrive whole (FCGX_GetError), the spoof check
 * (inbound_find_spoof), the session cookie over every HTTP_COOKIE param
 * (cookie_find), and FCGI_STDIN read to its end (records of other types
 * and ids in between, FCGI_ABORT_REQUEST, a stream cut anywhere).
 *
 * Promises checked besides ASan/UBSan: a spoof answer is an entry of envp, a COOKIE_ONE verdict carries a valid id, and nothing
 * blocks: the input ends with the peer's write side shut, so every read
 * ends (the target would hang, and libFuzzer report a timeout, otherwise).
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* Known, and not ours to fix here: libfcgi 2.4.2 leaks 48 bytes (two
 * allocations inside libfcgi.so) for a stream that starts with a management
 * record (request id 0) of an unknown type; found by this target.  A
 * client can grow a worker by 48 bytes per such connection; noted in
 * SECURITY.md.  Leaks anywhere else still fail the run. */
const char *__lsan_default_suppressions(void)
{
    return "leak:libfcgi.so\n";
}

static void consume(FCGX_Request *fr)
{
    const char *vals[GW_MAX_COOKIE_PARAMS + 1];
    size_t lens[GW_MAX_COOKIE_PARAMS + 1], n = 0;
    char name[128], id[SG_ID_LEN + 1], buf[4096];
    const char *spoof;
    char **e;
    int k, rounds = 0;

    /* (No "every entry has '='" check: libfcgi keeps no lengths, so a NUL
     * inside a name or value cuts the entry short as a C string, "REQ\0
     * EST_URI=/x" reads as "REQ"; found by this target, see issue #17 7.) */
    spoof = inbound_find_spoof(fr->envp, name, sizeof name);
    if (spoof) {
        for (e = fr->envp; *e && *e != spoof; e++)
            ;
        if (!*e || inbound_classify(name) != INBOUND_SPOOF)
            abort();
    }
    for (e = fr->envp; e && *e && n <= GW_MAX_COOKIE_PARAMS; e++)
        if (strncmp(*e, "HTTP_COOKIE=", 12) == 0) {
            vals[n] = *e + 12;
            lens[n] = strlen(vals[n]);
            n++;
        }
    if (cookie_find(vals, lens, n, "sessgate", id) == COOKIE_ONE && !sg_id_valid(id))
        abort();
    /* FCGI_STDIN to its end (bounded: the input is finite). */
    while ((k = FCGX_GetStr(buf, (int)sizeof buf, fr->in)) > 0 && ++rounds < 100000)
        ;
    FCGX_PutS("Status: 200 OK\r\n\r\n", fr->out);
}

/* Whether the input could declare a name or value length over 16 MiB.
 * Found by this target: libfcgi 2.4.2 mallocs nameLen + valueLen + 2 in
 * int arithmetic and asserts on the failed allocation, so one such PARAMS
 * record kills a worker (SIGABRT; the master restarts it); reproduced
 * against the real gateway.  Not fixable in the gateway short of reading
 * PARAMS itself (noted in SECURITY.md).  libfcgi's framing (padding,
 * records of other types) is too loose to model here, so every input that
 * holds a byte >= 0x81 (the only first bytes of a 4-byte length over
 * 16 MiB) is skipped: high bytes in names and values go unfuzzed. */
static int huge_param_length(const uint8_t *d, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (d[i] >= 0x81)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    FCGX_Request fr;
    int sv[2], i;

    if (!inited) {
        signal(SIGPIPE, SIG_IGN);
        if (FCGX_Init() != 0)
            abort();
        inited = 1;
    }
    if (size > 60000)
        return 0;                       /* fits the socket buffer: no writer thread */
    if (huge_param_length(data, size))
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    if (size && write(sv[0], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    shutdown(sv[0], SHUT_WR);
    if (FCGX_InitRequest(&fr, -1, 0) != 0)
        abort();
    fr.ipcFd = sv[1];
    fr.keepConnection = 1;
    /* Up to 4 requests on the connection, as with FCGI_KEEP_CONN. */
    for (i = 0; i < 4 && fr.ipcFd >= 0; i++) {
        int rc = FCGX_Accept_r(&fr);

        if (rc >= 0 && fr.in && FCGX_GetError(fr.in) != 0) {
            FCGX_Free(&fr, 1);          /* the gateway never answers these */
            break;
        }
        if (rc < 0)
            break;
        consume(&fr);
        FCGX_Finish_r(&fr);
    }
    FCGX_Free(&fr, 1);
    close(sv[0]);
    return 0;
}
