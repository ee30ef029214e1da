/*
 * log.c - one line per event, logfmt or JSON, that never carries a secret.
 *
 * The gateway's log is the web server's error log (lighttpd, mod_fcgid,
 * spawn-fcgi), the supervisor's journal, or --log-file.  Each event is one
 * line written with a single write(2), so the lines of concurrent workers
 * never interleave.  Fields (stable, documented in sessgate(8)):
 *     ts level pid event msg [event fields...]
 * logfmt: ts=2026-01-02T03:04:05.678Z level=warn pid=12 event=conflict ...
 * json:   {"ts":"...","level":"warn","pid":12,"event":"conflict",...}
 *
 * Secrets (DESIGN 9): a session id is a bearer credential, so no line ever
 * holds one.  Call sites log log_idhash(id): a keyed hash (SipHash-2-4, a
 * key drawn from getrandom(2) when the process starts, before the workers
 * fork), the same for one id throughout a run, so lines about one session
 * correlate, and useless to anyone who reads the log.  As a second line of
 * defence every message and field value is scrubbed before it is written:
 * any run of 32 or more letters, digits, '-' or '_' (a session id, a CSRF
 * token, a cookie value) becomes "~" and its hash.  Bytes outside printable
 * ASCII become '?': a client cannot forge a log line.
 *
 * --log-file PATH is opened onto fd 2 (so sanitizer reports and libraries
 * write there too) and reopened on SIGHUP, after logrotate moved it: the
 * handler only sets a flag; the next log line, or the worker's next
 * request (log_tick), reopens.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"

#define LOG_LINE   4096            /* bytes of one line, newline included */
#define LOG_TOKEN  32              /* a run this long is scrubbed */
#define LOG_WINDOW 10              /* seconds of one rate-limit window */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static struct {
    int         format;            /* LOGF_* */
    int         level;             /* highest level written */
    const char *file;              /* --log-file, or NULL: stderr as given */
    uint64_t    k0, k1;            /* the hash key of this run */
} lg = { LOGF_LOGFMT, LOG_INFO, NULL, 0x736f6d6570736575ULL, 0x646f72616e646f6dULL };

static volatile sig_atomic_t reopen_wanted;

/* ------------------------------------------------------------- hashing */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                        \
    do {                                                                \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);       \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                          \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                          \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);       \
    } while (0)

/* SipHash-2-4 of p[0..n) under key (k0, k1) (Aumasson, Bernstein 2012). */
uint64_t log_siphash(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
    const unsigned char *in = p;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)n << 56, m;
    size_t i, left = n & 7, end = n - left;

    for (i = 0; i < end; i += 8) {
        m = 0;
        for (int j = 7; j >= 0; j--)
            m = (m << 8) | in[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < left; i++)
        b |= (uint64_t)in[end + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void hash_text(const char *p, size_t n, char out[LOG_HASH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = log_siphash(lg.k0, lg.k1, p, n);
    int i;

    for (i = LOG_HASH_LEN - 1; i >= 0; i--, h >>= 4)
        out[i] = hex[h & 15];
    out[LOG_HASH_LEN] = '\0';
}

/* The keyed hash of a session id (or any secret) for a log line. */
const char *log_idhash(const char *id, char out[LOG_HASH_LEN + 1])
{
    if (!id || !*id) {
        strcpy(out, "-");
        return out;
    }
    hash_text(id, strlen(id), out);
    return out;
}

/* ------------------------------------------------------------ output */

static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Append text s to line (at *n, room cap) scrubbed: tokens hashed, unsafe
 * bytes as '?', and quoted for the format when quote is set. */
static void put_value(char *line, size_t *n, size_t cap, const char *s, int quote)
{
    size_t i = 0, len = strlen(s);

    while (i < len && *n + 8 < cap) {
        unsigned char c = (unsigned char)s[i];
        size_t run = 0;

        while (i + run < len && token_char((unsigned char)s[i + run]))
            run++;
        if (run >= LOG_TOKEN) {
            char h[LOG_HASH_LEN + 1];

            hash_text(s + i, run, h);
            if (*n + 1 + LOG_HASH_LEN + 8 >= cap)
                break;
            line[(*n)++] = '~';
            memcpy(line + *n, h, LOG_HASH_LEN);
            *n += LOG_HASH_LEN;
            i += run;
            continue;
        }
        if (run) {                      /* a short run: copy as it is */
            if (*n + run + 8 >= cap)
                run = cap - *n - 8;
            memcpy(line + *n, s + i, run);
            *n += run;
            i += run;
            continue;
        }
        if (c < 0x20 || c > 0x7e)
            c = '?';
        else if (quote && (c == '"' || c == '\\'))
            line[(*n)++] = '\\';
        line[(*n)++] = (char)c;
        i++;
    }
}

static int needs_quotes(const char *s)
{
    if (!*s)
        return 1;
    for (; *s; s++)
        if (*s == ' ' || *s == '"' || *s == '=' || *s == '\\' ||
            (unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 1;
    return 0;
}

/* Append s whole, or nothing when it does not fit.  put_value leaves 8
 * bytes of slack below cap, so the short closers of a started field (a
 * quote) always fit and a line is never cut inside its syntax. */
static void put_raw(char *line, size_t *n, size_t cap, const char *s)
{
    size_t k = strlen(s);

    if (*n + k > cap)
        return;
    memcpy(line + *n, s, k);
    *n += k;
}

/* One "key=value" (logfmt) or "\"key\":\"value\"" (json) field, or nothing
 * when the line has no room left for its key: a long value is cut (its
 * text, never its quotes), and the fields after it are left out, so a
 * JSON line stays JSON (fuzz_log found a cut closing quote). */
static void put_field(char *line, size_t *n, size_t cap, const char *key,
                      const char *val, int number)
{
    if (*n + strlen(key) + 16 >= cap)
        return;
    if (lg.format == LOGF_JSON) {
        put_raw(line, n, cap, *n > 1 ? ",\"" : "\"");
        put_value(line, n, cap, key, 1);
        put_raw(line, n, cap, number ? "\":" : "\":\"");
        put_value(line, n, cap, val, 1);
        if (!number)
            put_raw(line, n, cap, "\"");
    } else {
        int q = needs_quotes(val);

        if (*n)
            put_raw(line, n, cap, " ");
        put_value(line, n, cap, key, 0);
        put_raw(line, n, cap, q ? "=\"" : "=");
        put_value(line, n, cap, val, q);
        if (q)
            put_raw(line, n, cap, "\"");
    }
}

static void reopen_now(void)
{
    int fd;

    reopen_wanted = 0;
    if (!lg.file)
        return;
    fd = open(lg.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return;                         /* keep writing to the old one */
    if (fd != STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
}

static void emit(int level, const char *event, const char *msg, va_list ap)
{
    char line[LOG_LINE], ts[40], pid[24];
    size_t n = 0, cap = sizeof line - 2;
    struct timespec now;
    struct tm tm;
    const char *k, *v;

    if (reopen_wanted)
        reopen_now();
    if (level > lg.level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + strlen(ts), sizeof ts - strlen(ts), ".%03ldZ",
             (long)(now.tv_nsec / 1000000));
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (lg.format == LOGF_JSON)
        line[n++] = '{';
    put_field(line, &n, cap, "ts", ts, 0);
    put_field(line, &n, cap, "level", level_names[level], 0);
    put_field(line, &n, cap, "pid", pid, 1);
    put_field(line, &n, cap, "event", event, 0);
    if (msg)
        put_field(line, &n, cap, "msg", msg, 0);
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        put_field(line, &n, cap, k, v ? v : "-", 0);
    }
    if (lg.format == LOGF_JSON)
        line[n++] = '}';
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}

/* See gateway.h. */
void log_event(int level, const char *event, const char *msg, ...)
{
    va_list ap;

    va_start(ap, msg);
    emit(level, event, msg, ap);
    va_end(ap);
}

static void event_noargs(int level, const char *event, const char *msg, ...)
{
    va_list ap;

    va_start(ap, msg);
    emit(level, event, msg, ap);
    va_end(ap);
}

/* A free-text warning (the gateway's older messages). */
void log_msg(const char *fmt, ...)
{
    char text[LOG_LINE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    event_noargs(LOG_WARN, "message", text, (const char *)NULL);
}

/* See gateway.h. */
void log_store_error(const sg_error *err)
{
    static const char *const names[] = {
        "ok", "notfound", "expired", "conflict", "invalid", "lock_timeout",
        "store", "nomem", "toobig",
    };
    unsigned code = (unsigned)err->code;

    log_event(err->code == SG_ELOCKTIMEOUT ? LOG_WARN : LOG_ERROR, "store_error",
              err->text[0] ? err->text : "store failure",
              "status", code < sizeof names / sizeof *names ? names[code] : "unknown",
              (const char *)NULL);
}

/* ------------------------------------------------------- rate limits */

static struct {
    time_t        start;           /* window start, 0: none open */
    unsigned long suppressed;
} limits[LOG_RL_COUNT];

static const char *const limit_events[LOG_RL_COUNT] = {
    "cookie_malformed", "cookie_unknown",
};

static void limit_summary(int kind)
{
    char count[24], window[24];

    snprintf(count, sizeof count, "%lu", limits[kind].suppressed);
    snprintf(window, sizeof window, "%d", LOG_WINDOW);
    log_event(LOG_WARN, "suppressed", "more events of this kind in the last window",
              "of", limit_events[kind], "count", count, "window_seconds", window,
              (const char *)NULL);
    limits[kind].suppressed = 0;
}

/* See gateway.h. */
int log_limit(int kind)
{
    time_t now = time(NULL);

    if (kind < 0 || kind >= LOG_RL_COUNT)
        return 1;
    if (limits[kind].start && now - limits[kind].start < LOG_WINDOW) {
        limits[kind].suppressed++;
        return 0;
    }
    if (limits[kind].suppressed)
        limit_summary(kind);
    limits[kind].start = now;
    return 1;
}

/* See gateway.h. */
void log_tick(void)
{
    time_t now = time(NULL);
    int k;

    if (reopen_wanted)
        reopen_now();
    for (k = 0; k < LOG_RL_COUNT; k++)
        if (limits[k].suppressed && now - limits[k].start >= LOG_WINDOW) {
            limit_summary(k);
            limits[k].start = 0;
        }
}

/* See gateway.h. */
void log_flush_limits(void)
{
    int k;

    for (k = 0; k < LOG_RL_COUNT; k++)
        if (limits[k].suppressed)
            limit_summary(k);
}

/* ------------------------------------------------------------- setup */

static volatile sig_atomic_t hup_forward;

static void on_hup(int sig)
{
    (void)sig;
    reopen_wanted = 1;
    hup_forward = 1;
}

/* See gateway.h. */
int log_hup_taken(void)
{
    int was = hup_forward;

    hup_forward = 0;
    return was;
}

/* See gateway.h. */
void log_reopen_request(void)
{
    reopen_wanted = 1;
}

/* See gateway.h. */
int log_setup(const gw_config *cfg)
{
    unsigned char key[16];
    size_t got = 0;
    struct sigaction sa;

    lg.format = (int)cfg->log_format;
    lg.level = (int)cfg->log_level;
    lg.file = cfg->log_file;
    while (got < sizeof key) {
        ssize_t r = getrandom(key + got, sizeof key - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "sessgate: getrandom: %s\n", strerror(errno));
            return -1;
        }
        got += (size_t)r;
    }
    memcpy(&lg.k0, key, 8);
    memcpy(&lg.k1, key + 8, 8);
    if (lg.file) {
        int fd = open(lg.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            fprintf(stderr, "sessgate: --log-file %s: %s\n", lg.file, strerror(errno));
            return -1;
        }
        if (fd != STDERR_FILENO) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}
