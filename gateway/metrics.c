/*
 * metrics.c - Prometheus metrics, added up over every worker.
 *
 * The counters live in one MAP_SHARED anonymous mapping that the master
 * makes before it forks, so every worker (and a restarted one) adds into
 * the same numbers with a relaxed atomic add: no lock, no syscall on the
 * request path (php-fpm keeps its scoreboard the same way).  With
 * --metrics-listen the master forks one more child, the metrics process,
 * which answers GET /metrics on that socket (HTTP/1.0, one request per
 * connection, loopback or a unix socket: never the FastCGI socket, so no
 * web server route can expose it by mistake) in the text exposition format
 * 0.0.4.  Names follow Prometheus's naming guide (sessgate_ prefix, _total
 * counters, base units: seconds); the list is in sessgate(8) and README.
 * Without --metrics-listen nothing is mapped and every hook returns at once.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"

static const double lat_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define NLAT (sizeof lat_bounds / sizeof *lat_bounds)
static const double lock_bounds[] = {
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5,
};
#define NLOCK (sizeof lock_bounds / sizeof *lock_bounds)

static const char *const mode_names[MET_NMODES] = { "auth", "cgi" };
static const char *const outcome_names[MET_NOUTCOMES] = {
    "allowed", "denied", "created", "conflict", "unavailable", "error",
};

/* The shared block: plain uint64_t cells, added to atomically. */
typedef struct shared {
    uint64_t counter[MET_NCOUNTERS];
    uint64_t requests[MET_NMODES][MET_NOUTCOMES];
    uint64_t lat_bucket[MET_NMODES][NLAT + 1];   /* last: +Inf */
    uint64_t lat_sum_us[MET_NMODES];
    uint64_t lock_bucket[NLOCK + 1];
    uint64_t lock_sum_us, lock_count;
    int64_t  start_time;
} shared;

static shared *shm;
static int metrics_fd = -1;

static const struct {
    const char *name, *help;
} counter_defs[MET_NCOUNTERS] = {
    [MET_SESSIONS_CREATED] = { "sessgate_sessions_created_total",
        "Sessions created by the gateway (anonymous sessions, X-Session-Login)." },
    [MET_SESSIONS_ROTATED] = { "sessgate_sessions_rotated_total",
        "Sessions moved to a new id (X-Session-Rotate, login)." },
    [MET_SESSIONS_RENEWED] = { "sessgate_sessions_renewed_total",
        "Sessions given a new id because --renew-interval had passed." },
    [MET_SESSIONS_DELETED] = { "sessgate_sessions_deleted_total",
        "Sessions deleted by a logout." },
    [MET_SESSIONS_EXPIRED] = { "sessgate_sessions_expired_on_read_total",
        "Session cookies that named an expired session." },
    [MET_COOKIES_UNKNOWN] = { "sessgate_cookies_unknown_total",
        "Well-formed session cookies naming no session (forged, deleted, purged)." },
    [MET_COOKIES_MALFORMED] = { "sessgate_cookies_malformed_total",
        "Malformed, oversized or ambiguous session cookies." },
    [MET_CONFLICTS] = { "sessgate_conflicts_total",
        "Stale X-Session-Set/Replace refused with 409." },
    [MET_LOCK_TIMEOUTS] = { "sessgate_lock_timeouts_total",
        "Store lock waits that ran out (--lock-timeout), answered 503." },
    [MET_STORE_ERRORS] = { "sessgate_store_errors_total",
        "Store failures answered 503 (lock timeouts included)." },
    [MET_CGI_RUN] = { "sessgate_cgi_programs_total",
        "CGI programs started." },
    [MET_CGI_TIMEOUTS] = { "sessgate_cgi_timeouts_total",
        "CGI programs killed by --cgi-timeout." },
    [MET_CGI_KILLED] = { "sessgate_cgi_killed_total",
        "CGI programs that died of a signal (replies cut off or 502)." },
    [MET_INJECT_TRUNCATED] = { "sessgate_inject_truncated_total",
        "Requests whose session data was over --inject-max." },
    [MET_WORKER_RESTARTS] = { "sessgate_worker_restarts_total",
        "Workers that died and were restarted by the master." },
    [MET_SPOOF_REFUSED] = { "sessgate_spoof_refused_total",
        "Requests refused (403) for a header imitating a session header." },
    [MET_RECORDS_DAMAGED] = { "sessgate_records_damaged_total",
        "Session cookies naming a record that cannot be parsed (treated as no session)." },
    [MET_BODIES_TRUNCATED] = { "sessgate_bodies_truncated_total",
        "cgi mode: request bodies shorter than CONTENT_LENGTH (400, nothing applied)." },
    [MET_CLIENTS_GONE] = { "sessgate_clients_gone_total",
        "cgi mode: programs killed because the web server aborted or hung up." },
    [MET_CONNECTIONS_DROPPED] = { "sessgate_connections_dropped_total",
        "FastCGI connections dropped before their request head arrived (read deadlines)." },
    [MET_QUEUE_REJECTED] = { "sessgate_queue_rejected_total",
        "Requests answered 503 by the master after --queue-timeout." },
    [MET_CGI_ORPHANS] = { "sessgate_cgi_orphans_killed_total",
        "CGI programs of dead workers killed by the master." },
};

/* See gateway.h. */
int metrics_setup(const gw_config *cfg)
{
    if (!cfg->metrics_listen)
        return 0;
    shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) {
        shm = NULL;
        fprintf(stderr, "sessgate: metrics: mmap: %s\n", strerror(errno));
        return -1;
    }
    memset(shm, 0, sizeof *shm);
    shm->start_time = (int64_t)time(NULL);
    return 0;
}

/* See gateway.h. */
void metrics_add(int counter, uint64_t n)
{
    if (shm && counter >= 0 && counter < MET_NCOUNTERS)
        __atomic_fetch_add(&shm->counter[counter], n, __ATOMIC_RELAXED);
}

static size_t bucket_of(const double *bounds, size_t nb, int64_t us)
{
    size_t i;

    for (i = 0; i < nb; i++)
        if ((double)us <= bounds[i] * 1e6)
            break;
    return i;
}

/* See gateway.h. */
void metrics_request(int mode, int outcome, int64_t us)
{
    if (!shm || mode < 0 || mode >= MET_NMODES || outcome < 0 || outcome >= MET_NOUTCOMES)
        return;
    if (us < 0)
        us = 0;
    __atomic_fetch_add(&shm->requests[mode][outcome], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&shm->lat_bucket[mode][bucket_of(lat_bounds, NLAT, us)], 1,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&shm->lat_sum_us[mode], (uint64_t)us, __ATOMIC_RELAXED);
}

/* See gateway.h. */
void metrics_lock_wait(int64_t us)
{
    if (!shm)
        return;
    if (us < 0)
        us = 0;
    __atomic_fetch_add(&shm->lock_bucket[bucket_of(lock_bounds, NLOCK, us)], 1,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&shm->lock_sum_us, (uint64_t)us, __ATOMIC_RELAXED);
    __atomic_fetch_add(&shm->lock_count, 1, __ATOMIC_RELAXED);
}

/* See gateway.h. */
int metrics_outcome(const char *name)
{
    int i;

    for (i = 0; i < MET_NOUTCOMES; i++)
        if (strcmp(outcome_names[i], name) == 0)
            return i;
    return MET_NOUTCOMES - 1;
}

static uint64_t get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void histogram(buf *b, const char *name, const char *label, const double *bounds,
                      size_t nb, const uint64_t *buckets, uint64_t sum_us)
{
    uint64_t cum = 0;
    size_t i;

    for (i = 0; i <= nb; i++) {
        cum += get(&buckets[i]);
        if (i < nb)
            buf_addf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, *label ? "," : "",
                     bounds[i], (unsigned long long)cum);
        else
            buf_addf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, *label ? "," : "",
                     (unsigned long long)cum);
    }
    if (*label) {
        buf_addf(b, "%s_sum{%s} %.6f\n", name, label, (double)sum_us / 1e6);
        buf_addf(b, "%s_count{%s} %llu\n", name, label, (unsigned long long)cum);
    } else {
        buf_addf(b, "%s_sum %.6f\n", name, (double)sum_us / 1e6);
        buf_addf(b, "%s_count %llu\n", name, (unsigned long long)cum);
    }
}

/* Sessions and users from the store's kept figures (sg_store_counters:
 * no walk).  When those cannot be trusted (after a crash, until check
 * --repair; Redis) the call reads every record, so it runs in this
 * process only, never on a worker's request path, and at most every
 * second or every 30 times its own last duration, whichever is longer: a
 * big store is walked rarely, never back to back. */
static void store_gauges(const gw_config *cfg, buf *b)
{
    static sg_store *st;
    static sg_counters cached;
    static int64_t at_ms, gap_ms = 10000, took_us;
    static int ok;
    sg_error err;
    int64_t now = proc_now_ms();

    if (!at_ms || now - at_ms >= gap_ms) {
        int64_t t0 = proc_now_us();

        sg_error_clear(&err);
        if (!st && sg_store_open(cfg->store_uri, &cfg->store_opt, &st, &err) != SG_OK)
            st = NULL;
        ok = st && sg_store_counters(st, &cached, &err) == SG_OK;
        if (!ok)
            log_store_error(&err);
        took_us = proc_now_us() - t0;
        gap_ms = took_us * 30 / 1000 > 1000 ? took_us * 30 / 1000 : 1000;
        at_ms = proc_now_ms();
    }
    buf_adds(b, "# HELP sessgate_store_stats_seconds How long the last store stats call "
                "took (the gauges below are at most max(1 s, 30x this) old).\n"
                "# TYPE sessgate_store_stats_seconds gauge\n");
    buf_addf(b, "sessgate_store_stats_seconds %.6f\n", (double)took_us / 1e6);
    buf_adds(b, "# HELP sessgate_store_up Whether the store answered the last stats call.\n"
                "# TYPE sessgate_store_up gauge\n");
    buf_addf(b, "sessgate_store_up %d\n", ok);
    if (!ok)
        return;
    buf_adds(b, "# HELP sessgate_sessions Session records in the store (live, and "
                "expired ones not yet purged).\n# TYPE sessgate_sessions gauge\n");
    buf_addf(b, "sessgate_sessions %zu\n", cached.sessions);
    buf_adds(b, "# HELP sessgate_users Users with a session record.\n"
                "# TYPE sessgate_users gauge\n");
    buf_addf(b, "sessgate_users %zu\n", cached.users);
    buf_adds(b, "# HELP sessgate_store_figures_kept Whether the figures came from the "
                "store's kept counters (1) or a walk (0).\n"
                "# TYPE sessgate_store_figures_kept gauge\n");
    buf_addf(b, "sessgate_store_figures_kept %d\n", cached.kept);
}

/* See gateway.h. */
int metrics_render(const gw_config *cfg, buf *b)
{
    int m, o, i;
    char label[64];

    buf_adds(b, "# HELP sessgate_build_info The gateway's and library's versions.\n"
                "# TYPE sessgate_build_info gauge\n");
    buf_addf(b, "sessgate_build_info{version=\"%s\",library=\"%s\"} 1\n",
             SG_VERSION_STRING, sg_version());
    buf_adds(b, "# HELP sessgate_start_time_seconds When the gateway started (Unix time).\n"
                "# TYPE sessgate_start_time_seconds gauge\n");
    buf_addf(b, "sessgate_start_time_seconds %lld\n", shm ? (long long)shm->start_time : 0LL);
    buf_adds(b, "# HELP sessgate_workers Worker processes configured.\n"
                "# TYPE sessgate_workers gauge\n");
    buf_addf(b, "sessgate_workers %ld\n", cfg->workers);
    if (!shm)
        return b->failed ? -1 : 0;
    buf_adds(b, "# HELP sessgate_requests_total Requests answered, by mode and outcome.\n"
                "# TYPE sessgate_requests_total counter\n");
    for (m = 0; m < MET_NMODES; m++)
        for (o = 0; o < MET_NOUTCOMES; o++)
            buf_addf(b, "sessgate_requests_total{mode=\"%s\",outcome=\"%s\"} %llu\n",
                     mode_names[m], outcome_names[o],
                     (unsigned long long)get(&shm->requests[m][o]));
    buf_adds(b, "# HELP sessgate_request_duration_seconds Time to answer a request.\n"
                "# TYPE sessgate_request_duration_seconds histogram\n");
    for (m = 0; m < MET_NMODES; m++) {
        snprintf(label, sizeof label, "mode=\"%s\"", mode_names[m]);
        histogram(b, "sessgate_request_duration_seconds", label, lat_bounds, NLAT,
                  shm->lat_bucket[m], get(&shm->lat_sum_us[m]));
    }
    buf_adds(b, "# HELP sessgate_lock_wait_seconds Time a request waited for the store "
                "lock.\n# TYPE sessgate_lock_wait_seconds histogram\n");
    histogram(b, "sessgate_lock_wait_seconds", "", lock_bounds, NLOCK, shm->lock_bucket,
              get(&shm->lock_sum_us));
    for (i = 0; i < MET_NCOUNTERS; i++) {
        buf_addf(b, "# HELP %s %s\n# TYPE %s counter\n", counter_defs[i].name,
                 counter_defs[i].help, counter_defs[i].name);
        buf_addf(b, "%s %llu\n", counter_defs[i].name,
                 (unsigned long long)get(&shm->counter[i]));
    }
    store_gauges(cfg, b);
    return b->failed ? -1 : 0;
}

/* ---------------------------------------------------------- the server */

/* See gateway.h. */
int metrics_listen_open(const gw_config *cfg)
{
    const char *spec = cfg->metrics_listen;
    int fd, one = 1;

    if (!spec)
        return 0;
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sa;
        const char *path = spec + 5;
        mode_t old;

        if (!*path || strlen(path) >= sizeof sa.sun_path) {
            fprintf(stderr, "sessgate: --metrics-listen %s: bad socket path\n", spec);
            return -1;
        }
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            struct stat sb;

            if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
                connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                unlink(path);           /* a stale socket of a killed gateway */
            close(fd);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        old = umask(0117);              /* 0660: owner and group scrape */
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
            umask(old);
            fprintf(stderr, "sessgate: --metrics-listen %s: %s\n", spec, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        umask(old);
    } else {
        struct addrinfo hints, *ai = NULL;
        char host[256];
        const char *colon = strrchr(spec, ':');
        int rc;

        if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host || !colon[1]) {
            fprintf(stderr, "sessgate: --metrics-listen %s: expected HOST:PORT or unix:PATH\n",
                    spec);
            return -1;
        }
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(host, colon + 1, &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "sessgate: --metrics-listen %s: %s\n", spec, gai_strerror(rc));
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
            fprintf(stderr, "sessgate: --metrics-listen %s: %s\n", spec, strerror(errno));
            if (fd >= 0)
                close(fd);
            freeaddrinfo(ai);
            return -1;
        }
        freeaddrinfo(ai);
    }
    metrics_fd = fd;
    return 0;
}

/* Read the request head (bounded, 2 s) and answer one request. */
static void serve_one(const gw_config *cfg, int c)
{
    char req[2048];
    size_t n = 0;
    int64_t deadline = proc_now_ms() + 2000;
    const char *status = "200 OK", *ctype = "text/plain; version=0.0.4; charset=utf-8";
    buf body, head;

    while (n < sizeof req - 1 && !memmem(req, n, "\r\n\r\n", 4) && !memmem(req, n, "\n\n", 2)) {
        struct pollfd pf = { c, POLLIN, 0 };
        int64_t left = deadline - proc_now_ms();
        ssize_t r;

        req[n] = '\0';
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return;
        r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0)
            return;
        n += (size_t)r;
    }
    req[n] = '\0';
    buf_init(&body, 1024 * 1024);
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0 ||
        strncmp(req, "HEAD /metrics ", 14) == 0) {
        if (metrics_render(cfg, &body) < 0) {
            status = "500 Internal Server Error";
            buf_reset(&body);
            buf_adds(&body, "metrics: out of room\n");
        }
    } else if (strncmp(req, "GET ", 4) == 0 || strncmp(req, "HEAD ", 5) == 0) {
        status = "404 Not Found";
        ctype = "text/plain; charset=us-ascii";
        buf_adds(&body, "404 Not Found: the metrics are at /metrics\n");
    } else {
        status = "405 Method Not Allowed";
        ctype = "text/plain; charset=us-ascii";
        buf_adds(&body, "405 Method Not Allowed\n");
    }
    buf_init(&head, 4096);
    buf_addf(&head, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n", status, ctype, body.len);
    if (write(c, head.data, head.len) == (ssize_t)head.len && strncmp(req, "HEAD", 4) != 0) {
        size_t off = 0;

        while (off < body.len) {
            ssize_t w = write(c, body.data + off, body.len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    buf_free(&head);
    buf_free(&body);
}

/* See gateway.h. */
int metrics_serve(const gw_config *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int c = accept4(metrics_fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            log_msg("metrics: accept: %s", strerror(errno));
            sleep(1);
            continue;
        }
        serve_one(cfg, c);
        close(c);
        log_tick();
    }
    return 0;
}

/* See gateway.h. */
void metrics_close(const gw_config *cfg)
{
    if (metrics_fd >= 0) {
        close(metrics_fd);
        metrics_fd = -1;
        if (cfg->metrics_listen && strncmp(cfg->metrics_listen, "unix:", 5) == 0)
            unlink(cfg->metrics_listen + 5);
    }
}
