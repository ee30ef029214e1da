/*
 * core.c - the libsessgate benchmark (`make bench` runs it through
 * bench/run): operations per second of the store, each beside raw GDBM
 * baselines measured in the same run on the same data.
 *
 *   core [--dir DIR] [--seconds S] [--rounds N] [--store URI]...
 *                                      full run; leaves DIR/bench.db
 *   core --get-loop STORE N            N gets and nothing else (bench/run
 *                                      runs this under strace -c to count
 *                                      the syscalls of one get)
 *
 * With --store URI (a redis:// or redis+unix: store; bench/run passes the
 * throw-away redis-server it starts), a second table compares the stores:
 * the same sessgate operations through the same code paths on a fresh
 * GDBM file DIR/cmp.db and on each URI, from 1 and from 8 processes, with
 * the ratio store / gdbm, taken round-robin N times (default 2) keeping
 * each figure's best.  A Redis store also gets its floor: one kept hiredis
 * connection doing GET + json_loads (and GET + json + SET) with no lease
 * lock.  Give it a scratch Redis database: the run leaves its sessions
 * there.
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
 * sessions, so the whole run stays well under a minute (about a minute
 * more for the store comparison with two --store).  The figures are
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
#include <hiredis.h>
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
#define MAX_STORES   4       /* --store URIs compared with GDBM */
#define PAR_PROCS    8       /* processes of the "8 procs" comparison rows */

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

static sg_store *open_store(const char *path, int64_t touch, sg_clock_fn clk,
                            void *clk_arg)
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
    opt.clock_arg = clk_arg;
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
 * read-modify-write an app does (the raw baseline does the same).  From
 * several processes two can pick the same session: the later save gets a
 * conflict, and like an app it reloads and tries again (one op). */
static void op_save(void *arg)
{
    sg_store *st = arg;
    const char *id = ids[rnd() % nids];
    sg_status rc;

    do {
        sg_session *s = NULL;
        char data[512];
        sg_error err;

        sg_error_clear(&err);
        rc = sg_session_get(st, id, SG_GET_NOTOUCH, &s, &err);
        if (rc == SG_OK) {
            make_data(data, sizeof data, rnd());
            rc = sg_session_set_data(s, data, &err);
        }
        if (rc == SG_OK)
            rc = sg_session_save(st, s, &err);
        sg_session_free(s);
        if (rc != SG_OK && rc != SG_ECONFLICT)
            die("save", rc, &err);
    } while (rc == SG_ECONFLICT);
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
/* Write every session of the store at path into a new GDBM file rawpath
 * as its JSON object, under its id. */
static void write_raw_copy(const char *path, const char *rawpath)
{
    sg_store *st = open_store(path, LONG_TIME, NULL, NULL);
    GDBM_FILE db = gdbm_open(rawpath, 0, GDBM_NEWDB | GDBM_NOLOCK, 0600, NULL);

    if (!db)
        die_gdbm("raw create");
    for (size_t i = 0; i < nids; i++) {
        sg_session *s = NULL;
        sg_error err;
        sg_status rc;
        char *json;
        datum key, val;

        sg_error_clear(&err);
        rc = sg_session_get(st, ids[i], SG_GET_NOTOUCH, &s, &err);
        if (rc != SG_OK)
            die("get for the raw copy", rc, &err);
        json = sg_session_to_json(s);
        if (!json)
            die("to_json", SG_ENOMEM, NULL);
        key.dptr = ids[i];
        key.dsize = SG_ID_LEN;
        val.dptr = json;
        val.dsize = (int)strlen(json);
        if (gdbm_store(db, key, val, GDBM_REPLACE) != 0)
            die_gdbm("raw store");
        free(json);
        sg_session_free(s);
    }
    gdbm_close(db);
    sg_store_close(st);
}

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

enum { PAR_SG_UPDATE, PAR_SG_GET, PAR_SG_SAVE, PAR_SG_CREATE, PAR_RAW_SAVE };

/* Wait until the parent closes the "go" pipe (a start barrier). */
static void wait_go(int ready_fd, int go_fd)
{
    char c = 'r';

    if (write(ready_fd, &c, 1) != 1)
        _exit(1);
    close(ready_fd);   /* so a sibling dying before this cannot hang the parent */
    while (read(go_fd, &c, 1) > 0)
        ;
}

/* One worker of run_parallel: open its own handle, wait for the start,
 * run `what` for `seconds`; ops/s. */
static double par_worker(int what, const char *path, const char *rawpath,
                         const char *lockpath, int ready_fd, int go_fd)
{
    double r;

    if (what == PAR_RAW_SAVE) {
        struct raw_w w = { NULL, rawpath, open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600), 0 };
        if (w.lockfd < 0)
            _exit(1);
        wait_go(ready_fd, go_fd);
        return run_for(op_raw_save_open, &w);
    }
    sg_store *st = open_store(path, LONG_TIME, NULL, NULL);
    if (what == PAR_SG_UPDATE) {
        struct upd_ctx c = { st, 0 };
        wait_go(ready_fd, go_fd);
        r = run_for(op_update, &c);
    } else {
        wait_go(ready_fd, go_fd);
        r = run_for(what == PAR_SG_GET ? op_get : what == PAR_SG_SAVE ? op_save
                    : op_create, st);
    }
    sg_store_close(st);
    return r;
}

/* Run `what` in nproc processes at once for `seconds`; total ops/s.  The
 * caller holds no store open: each child opens its own handle (and its own
 * Redis connection), as separate gateway workers or apps would.  All
 * children start timing together (after every one has opened its store),
 * so their windows overlap and the sum of their rates is the aggregate
 * rate: without the barrier, children that fork and open late run in
 * windows of their own and the sum overstates it (we measured 2x). */
static double run_parallel(int what, int nproc, const char *path,
                           const char *rawpath, const char *lockpath)
{
    int fds[2], ready[2], go[2];
    pid_t pids[64];
    double total = 0;

    if (nproc > 64 || pipe(fds) != 0 || pipe(ready) != 0 || pipe(go) != 0)
        exit(1);
    fflush(NULL);
    for (int p = 0; p < nproc; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            exit(1);
        if (pids[p] == 0) {
            double r;

            close(fds[0]);
            close(ready[0]);
            close(go[1]);
            rng_state ^= (uint64_t)getpid() << 17;
            r = par_worker(what, path, rawpath, lockpath, ready[1], go[0]);
            if (write(fds[1], &r, sizeof r) != sizeof r)
                _exit(1);
            _exit(0);
        }
    }
    close(fds[1]);
    close(ready[1]);
    close(go[0]);
    for (int p = 0; p < nproc; p++) {
        char c;

        if (read(ready[0], &c, 1) != 1)
            break;   /* a child died before the start: reported below */
    }
    close(go[1]);    /* go */
    close(ready[0]);
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

/* ---------------------------------------------- stores side by side */

/*
 * The comparison runs the same operations, through the same code paths, on
 * a fresh GDBM store and on every --store, each store with CMP_SESSIONS
 * sessions of its own to start with.  The figures are taken round-robin
 * (operation by operation, store by store) `rounds` times and each keeps
 * its best, so a burst of load from elsewhere on a shared machine hits all
 * stores alike instead of deciding a ratio.
 */
#define CMP_SESSIONS 5000

/* In the order they are measured and printed: each floor right after the
 * figure it bounds, so both see the same load; creates last (they grow the
 * stores). */
enum {
    C_GET1, C_FLOOR_GET, C_GET8, C_TOUCH1, C_SAVE1, C_FLOOR_SAVE, C_SAVE8,
    C_UPD1, C_UPD2, C_UPD8, C_CREATE1, C_CREATE8, C_NOPS
};
static const struct { const char *name; int procs; } cmp_ops[C_NOPS] = {
    [C_GET1] = { "get (no touch due)", 1 },
    [C_GET8] = { "get (no touch due)", PAR_PROCS },
    [C_TOUCH1] = { "get + touch (writes)", 1 },
    [C_SAVE1] = { "load + change + save", 1 },
    [C_SAVE8] = { "load + change + save", PAR_PROCS },
    [C_UPD1] = { "atomic update", 1 },
    [C_UPD2] = { "atomic update", 2 },
    [C_UPD8] = { "atomic update", PAR_PROCS },
    [C_CREATE1] = { "create", 1 },
    [C_CREATE8] = { "create", PAR_PROCS },
    [C_FLOOR_GET] = { "floor: GET + json_loads", 1 },
    [C_FLOOR_SAVE] = { "floor: GET + SET", 1 },
};

/* One store of the comparison: its sessions and its best figures. */
struct cmp_store {
    const char *uri;
    const char *label;
    char (*ids)[SG_ID_LEN + 1];   /* Owned: its sessions */
    size_t nids;
    double best[C_NOPS];          /* ops/s; 0: not measured */
    int64_t fake_now;             /* the touch figure's clock, kept across
                                   * rounds: `accessed` stays where it left it */
    uint64_t touches;             /* store writes of the last touch figure */
    unsigned long touch_ops;      /* gets of the last touch figure */
};

/* The floor of a Redis store (defined below). */
static double raw_redis_figure(const char *uri, int save);

/* Make the store's first CMP_SESSIONS sessions. */
static void cmp_prepare(struct cmp_store *c)
{
    sg_store *st = open_store(c->uri, LONG_TIME, NULL, NULL);

    c->ids = malloc(MAX_SESSIONS * sizeof *c->ids);
    if (!c->ids)
        exit(1);
    ids = c->ids;
    nids = 0;
    while (nids < CMP_SESSIONS)
        op_create(st);
    c->nids = nids;
    c->fake_now = (int64_t)time(NULL);
    sg_store_close(st);
}

/* Measure operation `op` once on store c; keep it if it is the best. */
static void cmp_measure(struct cmp_store *c, int op)
{
    double r = 0;
    sg_store *st;

    ids = c->ids;
    nids = c->nids;
    switch (op) {
    case C_GET1:
    case C_SAVE1:
    case C_CREATE1:
        st = open_store(c->uri, LONG_TIME, NULL, NULL);
        r = run_for(op == C_GET1 ? op_get : op == C_SAVE1 ? op_save : op_create, st);
        sg_store_close(st);
        c->nids = nids;   /* create appends (up to MAX_SESSIONS) */
        break;
    case C_UPD1: {
        struct upd_ctx u = { open_store(c->uri, LONG_TIME, NULL, NULL), 0 };
        r = run_for(op_update, &u);
        sg_store_close(u.st);
        break;
    }
    case C_TOUCH1: {
        /* Gets that all write `accessed` (a clock 2 s later at every call,
         * a 1 s touch interval). */
        st = open_store(c->uri, 1, fast_clock, &c->fake_now);
        uint64_t w0 = store_writes(st);
        r = run_for(op_get, st);
        c->touches = store_writes(st) - w0;
        c->touch_ops = last_ops;
        sg_store_close(st);
        break;
    }
    case C_GET8:
        r = run_parallel(PAR_SG_GET, PAR_PROCS, c->uri, NULL, NULL);
        break;
    case C_SAVE8:
        r = run_parallel(PAR_SG_SAVE, PAR_PROCS, c->uri, NULL, NULL);
        break;
    case C_UPD2:
    case C_UPD8:
        r = run_parallel(PAR_SG_UPDATE, op == C_UPD2 ? 2 : PAR_PROCS, c->uri,
                         NULL, NULL);
        break;
    case C_CREATE8:
        r = run_parallel(PAR_SG_CREATE, PAR_PROCS, c->uri, NULL, NULL);
        break;
    case C_FLOOR_GET:
    case C_FLOOR_SAVE:
        if (strncmp(c->uri, "redis", 5) == 0)
            r = raw_redis_figure(c->uri, op == C_FLOOR_SAVE);
        break;
    }
    if (r > c->best[op])
        c->best[op] = r;
}

/* Store labels for the comparison table: "redis unix", "redis tcp". */
static const char *store_label(const char *uri)
{
    if (strncmp(uri, "redis+unix:", 11) == 0)
        return "redis unix";
    if (strncmp(uri, "redis://", 8) == 0)
        return "redis tcp";
    return "gdbm";
}

/* Run the comparison of cs[0] (GDBM) with cs[1..n-1] and print it. */
static void compare_stores(struct cmp_store *cs, int n, int rounds)
{
    for (int k = 0; k < n; k++)
        cmp_prepare(&cs[k]);
    for (int round = 0; round < rounds; round++)
        for (int op = 0; op < C_NOPS; op++)
            for (int k = 0; k < n; k++)
                cmp_measure(&cs[k], op);

    printf("\nstores side by side: sessgate ops/s, best of %d interleaved rounds, "
           "%.1f s each;\n  the same operations and code paths on each store, "
           "%d sessions to start; ratio = store / gdbm\n", rounds, seconds,
           CMP_SESSIONS);
    for (int k = 0; k < n; k++)
        printf("  %-10s = %s\n", cs[k].label, cs[k].uri);
    printf("%-24s %5s %11s", "operation", "procs", "gdbm");
    for (int k = 1; k < n; k++)
        printf(" %11s %7s", cs[k].label, "ratio");
    putchar('\n');
    for (int op = 0; op < C_NOPS; op++) {
        int any = 0;

        for (int k = 0; k < n; k++)
            any |= cs[k].best[op] > 0;
        if (!any)
            continue;
        printf("%-24s %5d", cmp_ops[op].name, cmp_ops[op].procs);
        if (cs[0].best[op] > 0)
            printf(" %11.0f", cs[0].best[op]);
        else
            printf(" %11s", "-");
        for (int k = 1; k < n; k++) {
            if (cs[k].best[op] <= 0)
                printf(" %11s %7s", "-", "");
            else if (cs[0].best[op] > 0)
                printf(" %11.0f %6.2fx", cs[k].best[op], cs[k].best[op] / cs[0].best[op]);
            else
                printf(" %11.0f %7s", cs[k].best[op], "");
        }
        putchar('\n');
    }
    for (int k = 0; k < n; k++) {
        if (cs[k].best[C_FLOOR_GET] > 0)
            printf("%s: get is %.0f%% of its floor, load + change + save %.0f%%\n",
                   cs[k].label, 100 * cs[k].best[C_GET1] / cs[k].best[C_FLOOR_GET],
                   100 * cs[k].best[C_SAVE1] / cs[k].best[C_FLOOR_SAVE]);
        if (cs[k].touches != cs[k].touch_ops)
            printf("warning: %s: get + touch wrote %llu times for %lu gets\n",
                   cs[k].label, (unsigned long long)cs[k].touches, cs[k].touch_ops);
    }
    printf("floor = one kept hiredis connection, no lease lock, no expiry (GDBM's\n"
           "  floor is \"raw kept\" in the table above).  %d processes on %ld CPUs:\n"
           "  those rows measure contention (GDBM: flock on PATH.lock; Redis: one\n"
           "  lease key per store) and round trips, not a parallel speed-up.\n",
           PAR_PROCS, sysconf(_SC_NPROCESSORS_ONLN));
    for (int k = 0; k < n; k++)
        free(cs[k].ids);
}

/* ---------------------------------------------------- raw Redis floor */

/* The floor a Redis store is held to: one kept hiredis connection, GET +
 * json_loads per get, GET + json + SET per save (HGET / HSET of field d:
 * the backend keeps a value in a hash, backend_redis.c; the save also sets
 * field v to the version it wrote into the record, as the store's scripts
 * do, or the store's next save would conflict for ever), no lease lock and no
 * expiry (unsafe across processes, but the least any design can cost).
 * Parses just enough of the store URI (socket or host:port, db, prefix). */
struct raw_redis {
    redisContext *c;
    char prefix[160];
    unsigned long n;
};

static int raw_redis_connect(const char *uri, struct raw_redis *r)
{
    char buf[1024], *q, *v;
    long db = 0;
    struct timeval tv = { 5, 0 };

    snprintf(r->prefix, sizeof r->prefix, "sessgate:");
    if (strncmp(uri, "redis+unix:", 11) == 0)
        snprintf(buf, sizeof buf, "%s", uri + 11);
    else if (strncmp(uri, "redis://", 8) == 0)
        snprintf(buf, sizeof buf, "%s", uri + 8);
    else
        return -1;
    q = strchr(buf, '?');
    if (q) {
        *q++ = '\0';
        for (char *kv = strtok(q, "&"); kv; kv = strtok(NULL, "&")) {
            if (strncmp(kv, "prefix=", 7) == 0)
                snprintf(r->prefix, sizeof r->prefix, "%s", kv + 7);
            else if (strncmp(kv, "db=", 3) == 0)
                db = strtol(kv + 3, NULL, 10);
        }
    }
    if (uri[5] == '+') {
        r->c = redisConnectUnixWithTimeout(buf, tv);
    } else {
        char *slash = strchr(buf, '/');
        int port = 6379;

        if (slash) {
            *slash = '\0';
            db = strtol(slash + 1, NULL, 10);
        }
        v = strrchr(buf, ':');
        if (v) {
            *v = '\0';
            port = (int)strtol(v + 1, NULL, 10);
        }
        r->c = redisConnectWithTimeout(buf, port, tv);
    }
    if (!r->c || r->c->err)
        return -1;
    if (db) {
        redisReply *rep = redisCommand(r->c, "SELECT %ld", db);
        if (!rep)
            return -1;
        freeReplyObject(rep);
    }
    return 0;
}

static void op_raw_redis_get(void *arg)
{
    struct raw_redis *r = arg;
    redisReply *rep = redisCommand(r->c, "HGET %s%s d", r->prefix, ids[rnd() % nids]);
    json_t *j;

    if (!rep || rep->type != REDIS_REPLY_STRING) {
        fputs("bench/core: raw Redis GET failed\n", stderr);
        exit(1);
    }
    j = json_loadb(rep->str, rep->len, 0, NULL);
    if (!j) {
        fputs("bench/core: raw Redis GET: not JSON\n", stderr);
        exit(1);
    }
    json_decref(j);
    freeReplyObject(rep);
}

static void op_raw_redis_save(void *arg)
{
    struct raw_redis *r = arg;
    const char *id = ids[rnd() % nids];
    redisReply *rep = redisCommand(r->c, "HGET %s%s d", r->prefix, id);
    json_t *j;
    char *out;

    if (!rep || rep->type != REDIS_REPLY_STRING) {
        fputs("bench/core: raw Redis GET failed\n", stderr);
        exit(1);
    }
    j = json_loadb(rep->str, rep->len, 0, NULL);
    freeReplyObject(rep);
    if (!j)
        exit(1);
    json_object_set_new(j, "version", json_integer((json_int_t)++r->n));
    out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!out)
        exit(1);
    rep = redisCommand(r->c, "HSET %s%s d %s v %lu", r->prefix, id, out, r->n);
    free(out);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fputs("bench/core: raw Redis SET failed\n", stderr);
        exit(1);
    }
    freeReplyObject(rep);
}

/* The floor works on JSON copies of the store's sessions, under PREFIX
 * "raw:" ID (field d: the record as a plain design would store it,
 * sg_session_to_json; v: its version), as write_raw_copy does for GDBM:
 * since record format 2 the store's own records are not JSON, and the
 * floor is "fetch + parse a JSON session".  Made once per store, pipelined;
 * r->prefix then names the copies. */
static void raw_redis_copy(const char *uri, struct raw_redis *r)
{
    size_t n = strlen(r->prefix);
    redisReply *rep;

    if (n + 4 >= sizeof r->prefix) {
        fputs("bench/core: Redis prefix too long for the raw copy\n", stderr);
        exit(1);
    }
    memcpy(r->prefix + n, "raw:", 5);
    rep = redisCommand(r->c, "EXISTS %s%s", r->prefix, ids[0]);
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        freeReplyObject(rep);
        return;                 /* made by an earlier figure */
    }
    if (rep)
        freeReplyObject(rep);
    sg_store *st = open_store(uri, LONG_TIME, NULL, NULL);
    for (size_t i = 0; i < nids; i++) {
        sg_session *s = NULL;
        sg_error err;
        sg_status rc;
        char *json;

        sg_error_clear(&err);
        rc = sg_session_get(st, ids[i], SG_GET_NOTOUCH, &s, &err);
        if (rc != SG_OK)
            die("get for the raw Redis copy", rc, &err);
        json = sg_session_to_json(s);
        if (!json)
            die("to_json", SG_ENOMEM, NULL);
        redisAppendCommand(r->c, "HSET %s%s d %s v %llu", r->prefix, ids[i],
                           json, (unsigned long long)sg_session_version(s));
        free(json);
        sg_session_free(s);
    }
    sg_store_close(st);
    for (size_t i = 0; i < nids; i++) {
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || !rep ||
            rep->type == REDIS_REPLY_ERROR) {
            fputs("bench/core: raw Redis copy failed\n", stderr);
            exit(1);
        }
        freeReplyObject(rep);
    }
}

/* The floor of a Redis store, from one process: GET + json_loads (save:
 * GET + json + SET) on a kept connection; ops/s. */
static double raw_redis_figure(const char *uri, int save)
{
    struct raw_redis r = { NULL, "", 0 };
    double fig;

    if (raw_redis_connect(uri, &r) != 0) {
        fprintf(stderr, "bench/core: %s: raw hiredis connection failed: %s\n",
                uri, r.c ? r.c->errstr : "out of memory");
        exit(1);
    }
    raw_redis_copy(uri, &r);
    fig = run_for(save ? op_raw_redis_save : op_raw_redis_get, &r);
    redisFree(r.c);
    return fig;
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
    st = open_store(path, LONG_TIME, NULL, NULL);
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
    char path[4096], rawpath[4096], lockpath[4096], cmppath[4096];
    double c_sg, c_kept, c_open, g_sg, g_kept, g_open, t_sg, s_sg, s_kept,
           s_open, u2, u8, r2, r8;
    int64_t fake_now;
    uint64_t touches = 0;
    unsigned long last_touch_ops = 0;
    struct cmp_store cs[MAX_STORES + 1];
    int ncs = 1, rounds = 2;

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
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 20) {
                fputs("bench/core: --rounds must be 1..20\n", stderr);
                return 2;
            }
            rounds = (int)n;
        } else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            if (ncs == MAX_STORES + 1) {
                fprintf(stderr, "bench/core: at most %d --store\n", MAX_STORES);
                return 2;
            }
            memset(&cs[ncs], 0, sizeof cs[ncs]);
            cs[ncs].uri = argv[++i];
            cs[ncs].label = store_label(cs[ncs].uri);
            ncs++;
        } else {
            fputs("usage: core [--dir DIR] [--seconds S] [--rounds N] [--store URI]...\n"
                  "       core --get-loop STORE N\n", stderr);
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
    snprintf(cmppath, sizeof cmppath, "%s/cmp.db", dir);
    unlink(path);
    ids = malloc(MAX_SESSIONS * sizeof *ids);
    if (!ids)
        return 1;

    printf("libsessgate %s core benchmark, GDBM %d.%d, %.1f s per figure, store %s\n",
           sg_version(), GDBM_VERSION_MAJOR, GDBM_VERSION_MINOR, seconds, path);

    /* Create: time-boxed, then topped up to MIN_SESSIONS. */
    sg_store *st = open_store(path, LONG_TIME, NULL, NULL);
    c_sg = run_for(op_create, st);
    while (nids < MIN_SESSIONS)
        op_create(st);
    sg_store_close(st);

    /* The raw baselines' file: the same sessions, each as the JSON object
     * a plain design would store (sg_session_to_json), under the same
     * keys.  Why not a copy of ours: since record format 2 our records are
     * not JSON, and the floor is "fetch + parse a JSON session".  The raw
     * writers work on it too, so they never touch our file. */
    write_raw_copy(path, rawpath);
    load_raw_keys(rawpath);

    /* Gets with a touch interval that never elapses: pure reads. */
    st = open_store(path, LONG_TIME, NULL, NULL);
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
        st = open_store(path, 1, fast_clock, &fake_now);
        uint64_t w0 = store_writes(st);
        t_sg = run_for(op_get, st);
        touches = store_writes(st) - w0;
        last_touch_ops = last_ops;
        sg_store_close(st);
    }

    st = open_store(path, LONG_TIME, NULL, NULL);
    s_sg = run_for(op_save, st);
    sg_store_close(st);

    u2 = run_parallel(PAR_SG_UPDATE, 2, path, rawpath, lockpath);
    u8 = run_parallel(PAR_SG_UPDATE, 8, path, rawpath, lockpath);

    /* Raw GDBM baselines on the same records. */
    {
        GDBM_FILE db = gdbm_open(rawpath, 0, GDBM_READER | GDBM_NOLOCK, 0, NULL);
        if (!db)
            die_gdbm("raw open");
        g_kept = run_for(op_raw_get_kept, db);
        gdbm_close(db);
        g_open = run_for(op_raw_get_open, rawpath);
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

    /* GDBM beside the other stores, on a fresh GDBM file of its own (the
     * raw baselines above keep bench.db's size; get-loop reads bench.db). */
    if (ncs > 1) {
        char (*keep)[SG_ID_LEN + 1] = ids;

        fflush(stdout);
        unlink(cmppath);
        memset(&cs[0], 0, sizeof cs[0]);
        cs[0].uri = cmppath;
        cs[0].label = "gdbm";
        compare_stores(cs, ncs, rounds);
        ids = keep;
    }

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
