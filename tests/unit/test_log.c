/*
 * test_log.c - unit tests of the gateway's log lines (log.c).
 *
 * What must hold: SipHash-2-4 matches the paper's reference vector; an id
 * hashes to the same short value within a run and differently in the next
 * (a fresh key per start); no line ever holds a session id or a long token
 * however it is passed (a field, free text, a JSON string); logfmt and JSON
 * lines parse; control bytes cannot start a new line; rate-limited events
 * are logged once per window and summarised.  Prints TAP; exits 1 on a
 * failure.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "../../gateway/gateway.h"

#define ID1 "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3"
#define TOKEN "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg"

static char logpath[4096];

/* Point fd 2 at a fresh file; return it. */
static void capture_start(void)
{
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* What was logged since capture_start (static buffer). */
static const char *captured(void)
{
    static char text[65536];
    FILE *f = fopen(logpath, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;

    if (f)
        fclose(f);
    text[n] = '\0';
    return text;
}

static void setup(gw_config *cfg, long format)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->log_format = format;
    cfg->log_level = LOG_DEBUG;
    log_setup(cfg);
}

int main(int argc, char **argv)
{
    gw_config cfg;
    unsigned char msg[15];
    char h1[LOG_HASH_LEN + 1], h2[LOG_HASH_LEN + 1], h3[LOG_HASH_LEN + 1];
    const char *out;
    int i, saved = dup(STDERR_FILENO);

    snprintf(logpath, sizeof logpath, "%s/log", argc > 1 ? argv[1] : ".");
    for (i = 0; i < 15; i++)
        msg[i] = (unsigned char)i;
    /* key 00..0f as two little-endian words; message 00..0e */
    IS(log_siphash(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, msg, 15),
       (long long)0xa129ca6149be45e5ULL, "SipHash-2-4 reference vector (15 bytes)");
    IS(log_siphash(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, msg, 0),
       (long long)0x726fdb47dd0e0e31ULL, "SipHash-2-4 reference vector (empty)");

    setup(&cfg, LOGF_LOGFMT);
    log_idhash(ID1, h1);
    log_idhash(ID1, h2);
    STR_IS(h1, h2, "one id hashes the same within a run");
    IS(strlen(h1), LOG_HASH_LEN, "the hash has %d hex digits", LOG_HASH_LEN);
    setup(&cfg, LOGF_LOGFMT);       /* a new start: a new key */
    log_idhash(ID1, h3);
    OK(strcmp(h1, h3) != 0, "a new start hashes it differently (random key)");

    capture_start();
    log_idhash(ID1, h1);
    log_event(LOG_WARN, "conflict", "session " ID1 " changed", "sid", h1,
              "uri", "/a?next=" ID1 "&t=" TOKEN, (const char *)NULL);
    log_msg("store: session %s: conflict: stored version 3", ID1);
    log_msg("evil\nts=forged level=error \"quoted\"\x01");
    out = captured();
    OK(!strstr(out, ID1), "no raw id in any line, whichever way it was passed");
    OK(!strstr(out, TOKEN), "no long token either");
    OK(strstr(out, h1) != NULL, "the id's hash is there instead");
    OK(strstr(out, "sid=") && strstr(out, "event=conflict"), "logfmt fields");
    {
        int lines = 0;
        for (const char *p = out; *p; p++)
            lines += *p == '\n';
        IS(lines, 3, "a newline in a message does not start a line");
    }
    OK(strstr(out, "msg=\"evil?ts=forged level=error \\\"quoted\\\"?\"") != NULL,
       "control bytes become '?', quotes are escaped");

    setup(&cfg, LOGF_JSON);
    capture_start();
    log_idhash(ID1, h1);
    log_event(LOG_INFO, "access", NULL, "path", "/x\"y\\z", "sid", h1,
              "user", ID1, (const char *)NULL);
    log_msg("two\nlines \x7f and \xc3\xa9");
    out = captured();
    OK(!strstr(out, ID1), "json: no raw id");
    {
        const char *p = out;
        int good = 0, total = 0;

        while (*p) {
            const char *nl = strchr(p, '\n');
            json_t *j;
            size_t len = nl ? (size_t)(nl - p) : strlen(p);

            total++;
            j = json_loadb(p, len, 0, NULL);
            if (j && json_is_string(json_object_get(j, "ts")) &&
                json_is_integer(json_object_get(j, "pid")) &&
                json_is_string(json_object_get(j, "event")))
                good++;
            json_decref(j);
            p += len + (nl ? 1 : 0);
        }
        IS(total, 2, "json: one line per event");
        IS(good, 2, "json: every line is an object with ts, pid, event");
    }

    {
        /* A message longer than a line (4 KB), quotes and backslashes that
         * double when escaped, and a field after it: the line is cut in
         * the text, never in its syntax (fuzz_log found a lost quote). */
        static char big[6001];
        json_t *j;

        for (i = 0; i < 6000; i++)
            big[i] = "ab\"\\ "[i % 5];
        big[6000] = '\0';
        setup(&cfg, LOGF_JSON);
        capture_start();
        log_event(LOG_WARN, "fuzz", big, "path", "/after", (const char *)NULL);
        out = captured();
        j = json_loadb(out, strlen(out) - 1, 0, NULL);
        OK(json_is_object(j) && json_is_string(json_object_get(j, "msg")),
           "json: a line cut at its limit is still one JSON object");
        json_decref(j);
        setup(&cfg, LOGF_LOGFMT);
        capture_start();
        log_event(LOG_WARN, "fuzz", big, "path", "/after", (const char *)NULL);
        out = captured();
        OK(strlen(out) > 2 && out[strlen(out) - 1] == '\n' && out[strlen(out) - 2] == '"',
           "logfmt: a cut message keeps its closing quote");
    }

    setup(&cfg, LOGF_LOGFMT);
    capture_start();
    for (i = 0; i < 50; i++)
        if (log_limit(LOG_RL_UNKNOWN))
            log_event(LOG_INFO, "cookie_unknown", NULL, (const char *)NULL);
    log_flush_limits();
    out = captured();
    {
        int n = 0;
        for (const char *p = out; (p = strstr(p, "event=cookie_unknown")); p++)
            n++;
        IS(n, 1, "50 unknown cookies in a window: one line");
    }
    OK(strstr(out, "of=cookie_unknown count=49") != NULL,
       "and one summary with the count of the rest");

    cfg.log_level = LOG_WARN;
    log_setup(&cfg);
    capture_start();
    log_event(LOG_INFO, "access", NULL, (const char *)NULL);
    log_event(LOG_WARN, "conflict", NULL, (const char *)NULL);
    out = captured();
    OK(!strstr(out, "access") && strstr(out, "conflict"), "--log-level warn drops info");

    dup2(saved, STDERR_FILENO);
    close(saved);
    return tap_done();
}
