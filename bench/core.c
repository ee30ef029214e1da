/*
 * core.c - the libsessgate benchmark (`make bench` runs it through
 * bench/run): operations per second of the store, each beside raw GDBM
 * baselines measured in the same run on the same data.
 *
 *   core [--dir DIR] [--seconds S]     full run; leaves DIR/bench.db
 *   core --get-loop STORE N            N gets and nothing else (bench/run
 *                                      runs this under strace -c to count
 *                                      the syscalls of one get)
 *
 * Why these baselines: DESIGN §4 keeps one GDBM handle per process open
 * and reopens only when another process wrote, because opening GDBM per
 * operation is ~50x slower.  So a get is compared with (a) the floor, a
 * kept-open handle doing gdbm_fetch + json_loads with no locking at all
 * (unsafe across processes, but the least any design can cost), and (b) the
 * naive safe design, gdbm_open + fetch + json_loads + close per operation.
 * Writes are compared with a kept-open gdbm_store and with flock + open +
 * fetch + modify + store + close per operation (the naive safe writer, also
 * run from 2 and 8 processes).  The targets printed are the project's:
 * get >= 10x the open-per-op baseline and >= 25% of the kept-open floor.
 *
 * Each figure is a time-boxed loop (S seconds, default 1) on the same
 * sessions, so the whole run stays well under a minute.  The figures are
 * wall-clock rates: on a busy machine (bench/run prints the load average)
 * they move by tens of percent between runs; compare ratios, which are
 * measured in the same run.  Note that the open-per-op baseline gets
 * slower as the file grows (gdbm_open reads the directory), so the "10x"
 * target depends on how many sessions the create phase made.
 */
#include "sessgate.h"

#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESSIONS 20000   /* cap on the sessions the create phase makes */
#define MIN_SESSIONS 1000    /* the create phase makes at least this many */
#define LONG_TIME    100000000LL   /* s: idle/max age that never expire */

static double seconds = 1.0;          /* length of each timed loop */
static char (*ids)[SG_ID_LEN + 1];    /* Owned: the sessions under test */
static size_t nids;
static char **raw_keys;               /* Owned: the same keys as GDBM sees them */
static int *raw_klen;
static size_t nraw;
static size_t raw_bytes;              /* mean record size, for the header */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, sg_status rc, const sg_error *err)
{
    fprintf(stderr, "bench/core: %s: %s (%s)\n", what, sg_strerror(rc),
            err ? err->text : "");
    exit(1);
}

static void die_gdbm(const char *what)
{
    fprintf(stderr, "bench/core: %s: %s\n", what, gdbm_strerror(gdbm_errno));
    exit(1);
}

/* A timed loop: call op(arg) until `seconds` passed; return ops/s. */
typedef void (*op_fn)(void *arg);

static unsigned long last_ops;   /* operations of the last run_for */

static double run_for(op_fn op, void *arg)
{
    double t0 = now_s(), t;
    unsigned long n = 0;

    do {
        for (int i = 0; i < 16; i++)
            op(arg);
        n += 16;
        t = now_s() - t0;
    } while (t < seconds);
    last_ops = n;
    return (double)n / t;
}

/* The store's write counter (bumped once per write). */
static uint64_t store_writes(sg_store *st)
{
    sg_stats stats;
    sg_error err;
    sg_status rc;

    memset(&stats, 0, sizeof stats);
    sg_error_clear(&err);
    rc = sg_store_stats(st, &stats, &err);
    if (rc != SG_OK)
        die("stats", rc, &err);
    return stats.writes;
}

/* A web-ish session payload, about 200 bytes. */
static void make_data(char *buf, size_t cap, unsigned long visits)
{
    snprintf(buf, cap,
             "{\"csrf\":\"%08x%08x%08x%08x\",\"cart\":[101,202,303],"
             "\"theme\":\"dark\",\"lang\":\"en-GB\",\"visits\":%lu,"
             "\"ua\":\"Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\"}",
             rnd(), rnd(), rnd(), rnd(), visits);
}

static sg_store *open_store(const char *path, int64_t touch, sg_clock_fn clk)
{
    sg_store *st = NULL;
    sg_options opt;
    sg_error err;
    sg_status rc;

    sg_options_init(&opt);
    opt.idle_timeout = LONG_TIME;
    opt.max_age = LONG_TIME;
    opt.touch_interval = touch;
    opt.lock_timeout_ms = 60000;
    opt.clock = clk;
    sg_error_clear(&err);
    rc = sg_store_open(path, &opt, &st, &err);
    if (rc != SG_OK)
        die("open", rc, &err);
    return st;
}

/* ------------------------------------------------------ sessgate ops */

static void op_create(void *arg)
{
    sg_store *st = arg;
    sg_session *s = NULL;
    char data[512];
    sg_error err;
    sg_status rc;

    make_data(data, sizeof data, 0);
    sg_error_clear(&err);
    rc = sg_session_create(st, NULL, data, LONG_TIME, LONG_TIME, &s, &err);
    if (rc != SG_OK)
        die("create", rc, &err);
    if (nids < MAX_SESSIONS)
        memcpy(ids[nids++], sg_session_id(s), SG_ID_LEN + 1);
    sg_session_free(s);
}

static void op_get(void *arg)
{
    sg_store *st = arg;
    sg_session *s = NULL;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_session_get(st, ids[rnd() % nids], 0, &s, &err);
    if (rc != SG_OK)
        die("get", rc, &err);
    sg_session_free(s);
}

/* Clock for the touch figure: 2 s later at every call, so every get finds
 * `accessed` older than its 1 s touch interval and writes. */
static int64_t fast_clock(void *arg)
{
    int64_t *t = arg;

    *t += 2;
    return *t;
}

/* Load a random session, change its data, save it: the optimistic
 * read-modify-write an app does (the raw baseline does the same). */
static void op_save(void *arg)
{
    sg_store *st = arg;
    sg_session *s = NULL;
    char data[512];
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_session_get(st, ids[rnd() % nids], SG_GET_NOTOUCH, &s, &err);
    if (rc == SG_OK) {
        make_data(data, sizeof data, rnd());
        rc = sg_session_set_data(s, data, &err);
    }
    if (rc == SG_OK)
        rc = sg_session_save(st, s, &err);
    if (rc != SG_OK)
        die("save", rc, &err);
    sg_session_free(s);
}

static sg_status bump_fn(sg_session *s, void *arg, sg_error *err)
{
    char data[512];

    make_data(data, sizeof data, ++*(unsigned long *)arg);
    return sg_session_set_data(s, data, err);
}

struct upd_ctx {
    sg_store *st;
    unsigned long n;
};

static void op_update(void *arg)
{
    struct upd_ctx *c = arg;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_session_update(c->st, ids[rnd() % nids], bump_fn, &c->n, &err);
    if (rc != SG_OK)
        die("update", rc, &err);
}

/* -------------------------------------------------------- raw GDBM ops */

static void fetch_parse(GDBM_FILE db, size_t k)
{
    datum key = { raw_keys[k], raw_klen[k] };
    datum v = gdbm_fetch(db, key);
    json_t *j;

    if (!v.dptr)
        die_gdbm("raw fetch");
    j = json_loadb(v.dptr, (size_t)v.dsize, 0, NULL);
    if (!j) {
        fputs("bench/core: raw record does not parse\n", stderr);
        exit(1);
    }
    json_decref(j);
    free(v.dptr);
}

static void op_raw_get_kept(void *arg)
{
    fetch_parse(arg, rnd() % nraw);
}

static void op_raw_get_open(void *arg)
{
    const char *path = arg;
    GDBM_FILE db = gdbm_open(path, 0, GDBM_READER | GDBM_NOLOCK, 0, NULL);

    if (!db)
        die_gdbm("raw open");
    fetch_parse(db, rnd() % nraw);
    gdbm_close(db);
}

/* Read-modify-write of one record on an open writer handle. */
static void rmw(GDBM_FILE db, size_t k, unsigned long n)
{
    datum key = { raw_keys[k], raw_klen[k] };
    datum v = gdbm_fetch(db, key);
    json_t *j;
    char *out;

    if (!v.dptr)
        die_gdbm("raw fetch");
    j = json_loadb(v.dptr, (size_t)v.dsize, 0, NULL);
    free(v.dptr);
    if (!j)
        exit(1);
    json_object_set_new(j, "version", json_integer((json_int_t)n));
    out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!out)
        exit(1);
    v.dptr = out;
    v.dsize = (int)strlen(out);
    if (gdbm_store(db, key, v, GDBM_REPLACE) != 0)
        die_gdbm("raw store");
    free(out);
}

struct raw_w {
    GDBM_FILE db;
    const char *path;
    int lockfd;
    unsigned long n;
};

static void op_raw_save_kept(void *arg)
{
    struct raw_w *w = arg;

    rmw(w->db, rnd() % nraw, ++w->n);
}

static void op_raw_save_open(void *arg)
{
    struct raw_w *w = arg;
    GDBM_FILE db;

    if (flock(w->lockfd, LOCK_EX) != 0)
        exit(1);
    db = gdbm_open(w->path, 0, GDBM_WRITER | GDBM_NOLOCK, 0, NULL);
    if (!db)
        die_gdbm("raw open");
    rmw(db, rnd() % nraw, ++w->n);
    gdbm_close(db);
    flock(w->lockfd, LOCK_UN);
}

static void raw_create(GDBM_FILE db, unsigned long n)
{
    char key[64], data[512], rec[1024];
    datum k, v;

    snprintf(key, sizeof key, "raw-%08x-%012lu", rnd(), n);
    make_data(data, sizeof data, 0);
    snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"user\":null,\"created\":1,"
             "\"accessed\":1,\"expires\":2,\"version\":1,\"data\":%s}", key, data);
    k.dptr = key;
    k.dsize = (int)strlen(key);
    v.dptr = rec;
    v.dsize = (int)strlen(rec);
    if (gdbm_store(db, k, v, GDBM_INSERT) != 0)
        die_gdbm("raw insert");
}

static void op_raw_create_kept(void *arg)
{
    struct raw_w *w = arg;

    raw_create(w->db, ++w->n);
}

static void op_raw_create_open(void *arg)
{
    struct raw_w *w = arg;
    GDBM_FILE db;

    if (flock(w->lockfd, LOCK_EX) != 0)
        exit(1);
    db = gdbm_open(w->path, 0, GDBM_WRITER | GDBM_NOLOCK, 0, NULL);
    if (!db)
        die_gdbm("raw open");
    raw_create(db, ++w->n);
    gdbm_close(db);
    flock(w->lockfd, LOCK_UN);
}

/* Collect the session keys as GDBM stores them (skipping the per-user
 * index records), so the raw baselines read exactly the same records. */
static void load_raw_keys(const char *path)
{
    GDBM_FILE db = gdbm_open(path, 0, GDBM_READER | GDBM_NOLOCK, 0, NULL);
    datum k;

    if (!db)
        die_gdbm("raw open for keys");
    raw_keys = calloc(MAX_SESSIONS + 16, sizeof *raw_keys);
    raw_klen = calloc(MAX_SESSIONS + 16, sizeof *raw_klen);
    if (!raw_keys || !raw_klen)
        exit(1);
    k = gdbm_firstkey(db);
    while (k.dptr && nraw < MAX_SESSIONS + 16) {
        datum next;

        if (k.dsize >= SG_ID_LEN && k.dsize <= SG_ID_LEN + 1 &&
            k.dptr[8] == '-') {
            raw_keys[nraw] = k.dptr;   /* Owned by raw_keys now */
            raw_klen[nraw++] = k.dsize;
            next = gdbm_nextkey(db, k);
        } else {
            next = gdbm_nextkey(db, k);
            free(k.dptr);
        }
        k = next;
    }
    for (size_t i = 0; i < nraw && i < 100; i++) {
        datum key = { raw_keys[i], raw_klen[i] };
        datum v = gdbm_fetch(db, key);
        raw_bytes += (size_t)v.dsize;
        free(v.dptr);
    }
    if (nraw)
        raw_bytes /= nraw < 100 ? nraw : 100;
    gdbm_close(db);
    if (nraw == 0) {
        fputs("bench/core: no session keys found in the GDBM file\n", stderr);
        exit(1);
    }
}

/* ------------------------------------------------------- multi-process */

enum { PAR_SG_UPDATE, PAR_RAW_SAVE };

/* Run `what` in nproc processes at once for `seconds`; total ops/s. */
static double run_parallel(int what, int nproc, const char *path,
                           const char *rawpath, const char *lockpath)
{
    int fds[2];
    pid_t pids[64];
    double total = 0;

    if (pipe(fds) != 0)
        exit(1);
    fflush(NULL);
    for (int p = 0; p < nproc; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            exit(1);
        if (pids[p] == 0) {
            double r;

            close(fds[0]);
            rng_state ^= (uint64_t)getpid() << 17;
            if (what == PAR_SG_UPDATE) {
                struct upd_ctx c = { open_store(path, LONG_TIME, NULL), 0 };
                r = run_for(op_update, &c);
                sg_store_close(c.st);
            } else {
                struct raw_w w = { NULL, rawpath, open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600), 0 };
                if (w.lockfd < 0)
                    _exit(1);
                r = run_for(op_raw_save_open, &w);
            }
            if (write(fds[1], &r, sizeof r) != sizeof r)
                _exit(1);
            _exit(0);
        }
    }
    close(fds[1]);
    for (int p = 0; p < nproc; p++) {
        double r;

        if (read(fds[0], &r, sizeof r) == sizeof r)
            total += r;
    }
    for (int p = 0; p < nproc; p++) {
        int status;

        waitpid(pids[p], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench/core: a worker process failed\n");
            exit(1);
        }
    }
    close(fds[0]);
    return total;
}

/* ----------------------------------------------------------- printing */

static void row(const char *name, double sg, double kept, double open)
{
    printf("%-26s %12.0f", name, sg);
    if (kept > 0)
        printf(" %12.0f %7.2fx", kept, sg / kept);
    else
        printf(" %12s %8s", "-", "");
    if (open > 0)
        printf(" %12.0f %7.2fx", open, sg / open);
    else
        printf(" %12s %8s", "-", "");
    putchar('\n');
}

static int get_loop(const char *path, const char *count)
{
    char *end;
    long n;
    sg_store *st;
    sg_list *l = NULL;
    sg_error err;
    sg_status rc;

    errno = 0;
    n = strtol(count, &end, 10);
    if (errno || end == count || *end || n < 0 || n > 100000000) {
        fputs("bench/core: bad count\n", stderr);
        return 2;
    }
    st = open_store(path, LONG_TIME, NULL);
    sg_error_clear(&err);
    rc = sg_store_list(st, NULL, &l, &err);
    if (rc != SG_OK)
        die("list", rc, &err);
    nids = sg_list_count(l);
    ids = nids ? malloc(nids * sizeof *ids) : NULL;
    if (!ids) {
        fputs(nids ? "bench/core: out of memory\n" : "bench/core: empty store\n",
              stderr);
        sg_list_free(l);
        sg_store_close(st);
        return 1;
    }
    for (size_t i = 0; i < nids; i++)
        memcpy(ids[i], sg_list_id(l, i), SG_ID_LEN + 1);
    sg_list_free(l);
    /* One get outside the counted loop would still be counted by strace;
     * bench/run subtracts a run with n = 0 instead. */
    for (long i = 0; i < n; i++)
        op_get(st);
    sg_store_close(st);
    free(ids);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    const char *made_dir = NULL;   /* our mkdtemp directory, removed at the end */
    char path[4096], rawpath[4096], lockpath[4096];
    double c_sg, c_kept, c_open, g_sg, g_kept, g_open, t_sg, s_sg, s_kept,
           s_open, u2, u8, r2, r8;
    int64_t fake_now;
    uint64_t touches = 0;
    unsigned long last_touch_ops = 0;

    if (argc == 4 && strcmp(argv[1], "--get-loop") == 0)
        return get_loop(argv[2], argv[3]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            seconds = strtod(argv[++i], &end);
            if (*end || seconds < 0.05 || seconds > 60) {
                fputs("bench/core: --seconds must be 0.05..60\n", stderr);
                return 2;
            }
        } else {
            fputs("usage: core [--dir DIR] [--seconds S] | core --get-loop STORE N\n",
                  stderr);
            return 2;
        }
    }
    if (!dir) {
        static char tmpl[] = "/tmp/sessgate-bench.XXXXXX";
        dir = mkdtemp(tmpl);
        made_dir = dir;
        if (!dir) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(path, sizeof path, "%s/bench.db", dir);
    snprintf(rawpath, sizeof rawpath, "%s/raw.db", dir);
    snprintf(lockpath, sizeof lockpath, "%s/raw.db.lock", dir);
    unlink(path);
    ids = malloc(MAX_SESSIONS * sizeof *ids);
    if (!ids)
        return 1;

    printf("libsessgate %s core benchmark, GDBM %d.%d, %.1f s per figure, store %s\n",
           sg_version(), GDBM_VERSION_MAJOR, GDBM_VERSION_MINOR, seconds, path);

    /* Create: time-boxed, then topped up to MIN_SESSIONS. */
    sg_store *st = open_store(path, LONG_TIME, NULL);
    c_sg = run_for(op_create, st);
    while (nids < MIN_SESSIONS)
        op_create(st);
    sg_store_close(st);

    /* Copy the file for the raw writers, so they never touch ours. */
    {
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, rawpath);
        if (system(cmd) != 0) {
            fputs("bench/core: cp failed\n", stderr);
            return 1;
        }
    }
    load_raw_keys(path);

    /* Gets with a touch interval that never elapses: pure reads. */
    st = open_store(path, LONG_TIME, NULL);
    {
        uint64_t w0 = store_writes(st);
        g_sg = run_for(op_get, st);
        if (store_writes(st) != w0)
            printf("warning: gets with no touch due wrote to the store\n");
    }
    sg_store_close(st);

    /* Gets that all write `accessed`. */
    fake_now = (int64_t)time(NULL);
    {
        sg_options opt;
        sg_error err;
        sg_status rc;

        sg_options_init(&opt);
        opt.idle_timeout = LONG_TIME;
        opt.max_age = LONG_TIME;
        opt.touch_interval = 1;
        opt.lock_timeout_ms = 60000;
        opt.clock = fast_clock;
        opt.clock_arg = &fake_now;
        sg_error_clear(&err);
        rc = sg_store_open(path, &opt, &st, &err);
        if (rc != SG_OK)
            die("open", rc, &err);
        uint64_t w0 = store_writes(st);
        t_sg = run_for(op_get, st);
        touches = store_writes(st) - w0;
        last_touch_ops = last_ops;
        sg_store_close(st);
    }

    st = open_store(path, LONG_TIME, NULL);
    s_sg = run_for(op_save, st);
    sg_store_close(st);

    u2 = run_parallel(PAR_SG_UPDATE, 2, path, rawpath, lockpath);
    u8 = run_parallel(PAR_SG_UPDATE, 8, path, rawpath, lockpath);

    /* Raw GDBM baselines on the same records. */
    {
        GDBM_FILE db = gdbm_open(path, 0, GDBM_READER | GDBM_NOLOCK, 0, NULL);
        if (!db)
            die_gdbm("raw open");
        g_kept = run_for(op_raw_get_kept, db);
        gdbm_close(db);
        g_open = run_for(op_raw_get_open, path);
    }
    {
        struct raw_w w = { NULL, rawpath, -1, 0 };

        w.lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        w.db = gdbm_open(rawpath, 0, GDBM_WRITER | GDBM_NOLOCK, 0, NULL);
        if (!w.db || w.lockfd < 0)
            die_gdbm("raw open for writing");
        s_kept = run_for(op_raw_save_kept, &w);
        c_kept = run_for(op_raw_create_kept, &w);
        gdbm_close(w.db);
        w.db = NULL;
        s_open = run_for(op_raw_save_open, &w);
        c_open = run_for(op_raw_create_open, &w);
        close(w.lockfd);
    }
    r2 = run_parallel(PAR_RAW_SAVE, 2, path, rawpath, lockpath);
    r8 = run_parallel(PAR_RAW_SAVE, 8, path, rawpath, lockpath);

    printf("%zu sessions, records of ~%zu bytes; ops/s, ratio = sessgate / baseline\n",
           nids, raw_bytes);
    printf("%-26s %12s %12s %8s %12s %8s\n", "operation", "sessgate",
           "raw kept", "ratio", "raw open/op", "ratio");
    row("create", c_sg, c_kept, c_open);
    row("get (no touch due)", g_sg, g_kept, g_open);
    row("get + touch (writes)", t_sg, s_kept, s_open);
    row("load + change + save", s_sg, s_kept, s_open);
    row("atomic update, 2 procs", u2, 0, r2);
    row("atomic update, 8 procs", u8, 0, r8);
    printf("raw kept = one GDBM handle kept open, no locking (get: gdbm_fetch +\n"
           "  json_loads; touch, save: fetch + json + gdbm_store; create: gdbm_store);\n"
           "  raw open/op = gdbm_open + the same + gdbm_close per operation (writes\n"
           "  under flock; 2 and 8 processes for the update rows).\n");
    printf("get + touch: %llu store writes for %lu gets\n",
           (unsigned long long)touches, last_touch_ops);
    printf("target: get >= 10x the open-per-op baseline: %.1fx  %s\n",
           g_sg / g_open, g_sg >= 10 * g_open ? "MET" : "MISSED");
    printf("target: get >= 25%% of kept-open fetch + json_loads: %.0f%%  %s\n",
           100 * g_sg / g_kept, g_sg >= 0.25 * g_kept ? "MET" : "MISSED");

    for (size_t i = 0; i < nraw; i++)
        free(raw_keys[i]);
    free(raw_keys);
    free(raw_klen);
    free(ids);
    if (made_dir) {
        /* Only a directory this run made with mkdtemp (no quoting issue:
         * the name is our template). */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", made_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench/core: could not remove %s\n", made_dir);
    }
    return 0;
}
