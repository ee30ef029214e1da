/*
 * test_allocfail.c - out-of-memory behaviour of the whole library: for each
 * public operation, fail its 1st allocation, then its 2nd, 3rd, ... until
 * the operation runs through without reaching the failure, so that every
 * allocation site the operation reaches (in libsessgate and in jansson,
 * GDBM, libuuid and libc beneath it) has failed once.  After each
 * injected failure the call must report an error (or succeed with a
 * verified, correct result where the failure was recoverable), leak
 * nothing, and leave the store whole: it still opens, every session is as
 * it was before the call or as a successful call would have left it (no
 * half-applied write, no lost session), and each user's index still covers
 * the user's sessions.
 *
 * Why: "never aborts on out-of-memory" is a promise about error paths that
 * ordinary tests never run (jansson's test suite does the same thing).
 * The test owns malloc, calloc, realloc and free for the whole process by
 * defining them here, in the executable, so the shared libraries bind to
 * them too; they forward to glibc's __libc_* entry points, count the live
 * blocks (the leak check: the count after a call and its cleanup must be
 * the count before) and fail the Nth allocation made while "armed".  Only
 * the call under test runs armed; setup, checks and printing do not.
 *
 * getrandom() is defined here too and gives a fixed sequence: session ids
 * are then the same in every run of an operation, so GDBM (whose bucket
 * cache depends on the keys' hashes) makes the same allocations each time
 * and the outcome can be compared exactly with a reference run.
 *
 * The data written avoids strings of 14, 30, 62... bytes and numbers of
 * 15, 31... characters: jansson 2.14's lexer ignores a failed growth of
 * its token buffer (issue #362, open upstream), and when the byte it drops
 * is a string's closing quote it reads and writes past a heap block, when
 * it is the byte after a number an assert aborts.  libsessgate cannot
 * prevent either.  Elsewhere the dropped byte silently changed the value
 * parsed (a character or digit short); json.c now detects that.
 *
 * Where it cannot work it says so and skips: under AddressSanitizer (which
 * owns malloc; a second definition would break it) and under valgrind
 * (which redirects malloc in every object, so the injection never fires);
 * a self-test at start also skips rather than passing vacuously if the
 * libraries' allocations do not reach the interposer.
 *
 * Usage: test_allocfail DIR   (a scratch directory)
 */
#include "sessgate.h"
#include "tap.h"

#if defined(__SANITIZE_ADDRESS__)
#define AF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AF_ASAN 1
#endif
#endif

#ifdef AF_ASAN

int main(void)
{
    OK(1, "# SKIP allocation failure injection needs the real malloc, "
       "and AddressSanitizer owns it");
    return tap_done();
}

#else

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* ------------------------------------------------------- the interposer */

/* glibc's own entry points (exported for exactly this use). */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);

/* volatile: the compiler treats malloc as a builtin that touches no global
 * state, and could otherwise keep these in registers across calls. */
static volatile long af_live;        /* blocks allocated and not yet freed */
static volatile int af_armed;        /* count (and maybe fail) allocations */
static volatile long af_seen;        /* allocations made while armed */
static volatile long af_fail_at;     /* fail the Nth of them (1-based) */
static volatile int af_fired;        /* the Nth came and was failed */
static void *volatile af_fired_from; /* its caller, for messages */
static volatile size_t af_fired_size;

/* Whether this allocation is the one to fail (errno set, as malloc does). */
static int af_fail(size_t n, void *caller)
{
    if (!af_armed || ++af_seen != af_fail_at)
        return 0;
    af_fired = 1;
    af_fired_from = caller;
    af_fired_size = n;
    errno = ENOMEM;
    return 1;
}

static void *af_counted(void *p)
{
    if (p)
        af_live++;
    return p;
}

void *malloc(size_t n)
{
    if (af_fail(n, __builtin_return_address(0)))
        return NULL;
    return af_counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t size)
{
    if (af_fail(n * size, __builtin_return_address(0)))
        return NULL;
    return af_counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t n)
{
    if (!p) {                       /* realloc(NULL, n) is malloc(n) */
        if (af_fail(n, __builtin_return_address(0)))
            return NULL;
        return af_counted(__libc_realloc(NULL, n));
    }
    if (n == 0) {                   /* glibc: frees p, returns NULL */
        af_live--;
        __libc_free(p);
        return NULL;
    }
    if (af_fail(n, __builtin_return_address(0)))
        return NULL;                /* p stays valid and live */
    return __libc_realloc(p, n);    /* moved or not, still one block */
}

void free(void *p)
{
    if (!p)
        return;
    af_live--;
    __libc_free(p);
}

/* The aligned allocators, so that no block escapes the count. */
void *memalign(size_t align, size_t n)
{
    if (af_fail(n, __builtin_return_address(0)))
        return NULL;
    return af_counted(__libc_memalign(align, n));
}

void *aligned_alloc(size_t align, size_t n)
{
    if (af_fail(n, __builtin_return_address(0)))
        return NULL;
    return af_counted(__libc_memalign(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    if (af_fail(n, __builtin_return_address(0)))
        return ENOMEM;
    void *p = af_counted(__libc_memalign(align, n));
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

/* Fixed id sequence (see the top of the file).  Each call gives 16 bytes
 * from a splitmix64 step of a counter that each run resets. */
static uint64_t af_random_seq;

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    (void)flags;
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            af_random_seq += 0x9e3779b97f4a7c15ULL;
        uint64_t z = af_random_seq;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        p[i] = (unsigned char)(z >> (8 * (i % 8)));
    }
    return (ssize_t)len;
}

static void arm(long n)
{
    af_seen = 0;
    af_fired = 0;
    af_fired_from = NULL;
    af_fired_size = 0;
    af_fail_at = n;
    af_armed = 1;
}

static void disarm(void)
{
    af_armed = 0;
}

/* Name the code that made the failed allocation: library and nearest
 * exported symbol, or an offset for addr2line. */
static void where(void *addr, char *buf, size_t n)
{
    Dl_info di;
    if (addr && dladdr(addr, &di) && di.dli_fname) {
        const char *base = strrchr(di.dli_fname, '/');
        base = base ? base + 1 : di.dli_fname;
        if (di.dli_sname && di.dli_saddr)
            snprintf(buf, n, "%s:%s+0x%lx", base, di.dli_sname,
                     (unsigned long)((char *)addr - (char *)di.dli_saddr));
        else
            snprintf(buf, n, "%s+0x%lx", base,
                     (unsigned long)((char *)addr - (char *)di.dli_fbase));
    } else {
        snprintf(buf, n, "%p", addr);
    }
}

/* GDBM 1.23 leaks one block (the first bucket, allocated apart from its
 * cache) when creating a new file fails at _gdbm_file_extend: gdbm_fd_open
 * frees it only on success.  Not ours to fix; tolerated at that site only,
 * and counted. */
static int known_gdbm_leak(void *from, long leaked)
{
    Dl_info di;
    return leaked == 1 && from && dladdr(from, &di) && di.dli_sname &&
           strcmp(di.dli_sname, "_gdbm_file_extend") == 0;
}

/* ------------------------------------------------------------ the store */

#define T0 ((int64_t)1764000000)
#define MAXSESS 16
#define DESC 4096

static char dir[512];
static int64_t verify_now = T0 - 999;  /* every record is live then */
static const char *const users[] = { "alice", "bob", "carol", "dave", "erin" };
#define NUSERS (sizeof users / sizeof users[0])
static const char *const suffixes[] = { "", ".lock", ".wal", ".ckpt", ".tmp" };
#define NSUFFIX (sizeof suffixes / sizeof suffixes[0])

static char tmpl_path[600], work_path[600], new_path[600];
static char seed_id[5][SG_ID_LEN + 1];  /* S1..S4 and the expired one */
#define S1 seed_id[0]
#define S3 seed_id[2]
#define S4 seed_id[3]

static int64_t clock_fn(void *arg)
{
    return *(const int64_t *)arg;
}

static void store_options(sg_options *o, int64_t *now)
{
    sg_options_init(o);
    o->max_per_user = 2;
    o->clock = clock_fn;
    o->clock_arg = now;
}

static const char *suffixed(char *buf, size_t n, const char *base,
                            const char *suffix)
{
    snprintf(buf, n, "%s%s", base, suffix);
    return buf;
}

static void remove_store(const char *base)
{
    char p[700];
    for (size_t i = 0; i < NSUFFIX; i++)
        unlink(suffixed(p, sizeof p, base, suffixes[i]));
}

/* Copy a file with read/write only: nothing here may allocate. */
static int copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY);
    if (in < 0)
        return errno == ENOENT ? 0 : -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char buf[16384];
    ssize_t r = out < 0 ? -1 : 0;
    while (out >= 0 && (r = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)r) != r) {
            r = -1;
            break;
        }
    close(in);
    if (out >= 0)
        close(out);
    return r < 0 ? -1 : 0;
}

/* Put the seeded store back at work_path. */
static void restore_work(void)
{
    char a[700], b[700];
    remove_store(work_path);
    for (size_t i = 0; i < NSUFFIX; i++)
        if (copy_file(suffixed(a, sizeof a, tmpl_path, suffixes[i]),
                      suffixed(b, sizeof b, work_path, suffixes[i])) < 0)
            printf("# cannot copy %s\n", a);
}

/* Every session record in a store (with the verify clock, at which all are
 * live) and each user's indexed count.  0, or -1 with *why filled. */
typedef struct snap {
    size_t n;
    char id[MAXSESS][SG_ID_LEN + 1];
    char *rec[MAXSESS];
} snap;

static void snap_free(snap *sn)
{
    for (size_t i = 0; i < sn->n; i++)
        free(sn->rec[i]);
    sn->n = 0;
}

static int take_snapshot(const char *path, snap *sn, char *why, size_t wn)
{
    sg_options o;
    store_options(&o, &verify_now);
    sg_store *st = NULL;
    sg_error err = { 0 };
    sn->n = 0;
    if (sg_store_open(path, &o, &st, &err) != SG_OK) {
        snprintf(why, wn, "the store no longer opens: %s", err.text);
        return -1;
    }
    int rc = -1;
    sg_list *l = NULL;
    size_t per_user[NUSERS] = { 0 };
    if (sg_store_list(st, NULL, &l, &err) != SG_OK) {
        snprintf(why, wn, "list fails: %s", err.text);
        goto out;
    }
    for (size_t i = 0; i < sg_list_count(l) && i < MAXSESS; i++) {
        sg_session *s = NULL;
        if (sg_session_get(st, sg_list_id(l, i), SG_GET_NOTOUCH, &s, &err) != SG_OK) {
            snprintf(why, wn, "listed session %s does not load: %s",
                     sg_list_id(l, i), err.text);
            goto out;
        }
        memcpy(sn->id[sn->n], sg_list_id(l, i), SG_ID_LEN + 1);
        sn->rec[sn->n++] = sg_session_to_json(s);
        for (size_t u = 0; u < NUSERS; u++)
            if (sg_session_user(s) && strcmp(sg_session_user(s), users[u]) == 0)
                per_user[u]++;
        sg_session_free(s);
    }
    /* The index must cover every session of its user (a superset is
     * fine: count verifies each indexed id). */
    for (size_t u = 0; u < NUSERS; u++) {
        size_t n = 0;
        if (sg_store_count(st, users[u], &n, &err) != SG_OK || n != per_user[u]) {
            snprintf(why, wn, "the index of %s finds %zu of its %zu sessions %s",
                     users[u], n, per_user[u], err.text);
            goto out;
        }
    }
    sg_check_report rep;
    if (sg_store_check(st, 0, &rep, &err) != SG_OK) {
        snprintf(why, wn, "check fails: %s", err.text);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        snap_free(sn);
    sg_list_free(l);
    sg_store_close(st);
    return rc;
}

static const char *snap_rec(const snap *sn, const char *id)
{
    for (size_t i = 0; i < sn->n; i++)
        if (strcmp(sn->id[i], id) == 0)
            return sn->rec[i];
    return NULL;
}

static int snap_equal(const snap *a, const snap *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const char *r = snap_rec(b, a->id[i]);
        if (!r || strcmp(r, a->rec[i]) != 0)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ operations */

typedef struct ctx {
    int64_t now;            /* the op's clock */
    sg_store *st;           /* the handle the op runs on */
    sg_store *ost;          /* a handle the op opened */
    sg_session *s;          /* a copy loaded before the op */
    sg_session *out;        /* a session the op returned */
    sg_list *list;
    char *str;
    size_t n;
    sg_stats stats;
    sg_check_report rep;
    sg_error err;
} ctx;

enum {
    OP_OUT = 1,        /* on error the outputs are NULL */
    OP_INPLACE = 2,    /* on error the loaded copy c->s is unchanged */
    OP_MEM = 4,        /* works on a copy only: the store is not touched */
    OP_NEWSTORE = 8,   /* opens a store that does not exist yet */
    OP_NOSTORE = 16,   /* the op opens the store itself */
    OP_MOVE = 32,      /* on error the id c->s holds must still work */
    OP_TOUCH = 64,     /* get with touch: a failed touch is allowed */
    OP_EVICTS = 128,   /* a failing call may have removed sessions that
                        * a successful one removes (purge, the user cap) */
};

typedef struct op {
    const char *name;
    unsigned flags;
    void (*prepare)(ctx *c);
    sg_status (*run)(ctx *c);
    void (*describe)(ctx *c, char *buf, size_t n);
} op;

static void load_copy(ctx *c, const char *id)
{
    if (sg_session_get(c->st, id, SG_GET_NOTOUCH, &c->s, NULL) != SG_OK)
        printf("# cannot load %s\n", id);
}

static void p_none(ctx *c) { (void)c; }
static void p_s1(ctx *c) { load_copy(c, S1); }

static void p_save(ctx *c)
{
    load_copy(c, S1);
    sg_session_merge_data(c->s, "{\"n\":1,\"cart\":null}", NULL);
}

static void p_login(ctx *c)
{
    load_copy(c, S3);
    sg_session_set_user(c->s, "alice", NULL);
}

static sg_status r_open_new(ctx *c)
{
    sg_options o;
    store_options(&o, &c->now);
    return sg_store_open(new_path, &o, &c->ost, &c->err);
}

static sg_status r_open_existing(ctx *c)
{
    sg_options o;
    store_options(&o, &c->now);
    return sg_store_open(work_path, &o, &c->ost, &c->err);
}

static sg_status r_create_anon(ctx *c)
{
    return sg_session_create(c->st, NULL, NULL, 0, 0, &c->out, &c->err);
}

static sg_status r_create_user(ctx *c)
{
    return sg_session_create(c->st, "alice",
                             "{\"cart\":[7,8],\"from\":\"the sign-in page\"}",
                             0, 0, &c->out, &c->err);
}

static sg_status r_get(ctx *c)
{
    return sg_session_get(c->st, S1, 0, &c->out, &c->err);
}

static sg_status r_get_notouch(ctx *c)
{
    return sg_session_get(c->st, S1, SG_GET_NOTOUCH, &c->out, &c->err);
}

static sg_status r_save(ctx *c) { return sg_session_save(c->st, c->s, &c->err); }
static sg_status r_rotate(ctx *c) { return sg_session_rotate(c->st, c->s, &c->err); }
static sg_status r_delete(ctx *c) { return sg_session_delete(c->st, S1, &c->err); }

static sg_status add_key(sg_session *s, void *arg, sg_error *err)
{
    (void)arg;
    return sg_session_merge_data(s, "{\"n\":2,\"seen\":\"the update callback\"}", err);
}

static sg_status r_update(ctx *c)
{
    return sg_session_update(c->st, S1, add_key, NULL, &c->err);
}

static sg_status r_set_data(ctx *c)
{
    return sg_session_set_data(c->s, "{\"replaced\":true,\"list\":[1,2,3],"
                               "\"text\":\"a value of some length\"}", &c->err);
}

static sg_status r_merge_data(ctx *c)
{
    return sg_session_merge_data(c->s, "{\"cart\":null,\"n\":5,"
                                 "\"more\":\"a longer string value\"}", &c->err);
}

static sg_status r_set_user(ctx *c) { return sg_session_set_user(c->s, "bob", &c->err); }

static sg_status r_data_json(ctx *c)
{
    c->str = sg_session_data_json(c->s);
    return c->str ? SG_OK : SG_ENOMEM;
}

static sg_status r_to_json(ctx *c)
{
    c->str = sg_session_to_json(c->s);
    return c->str ? SG_OK : SG_ENOMEM;
}

static sg_status r_list_all(ctx *c) { return sg_store_list(c->st, NULL, &c->list, &c->err); }
static sg_status r_list_user(ctx *c) { return sg_store_list(c->st, "alice", &c->list, &c->err); }
static sg_status r_count_all(ctx *c) { return sg_store_count(c->st, NULL, &c->n, &c->err); }
static sg_status r_count_user(ctx *c) { return sg_store_count(c->st, "alice", &c->n, &c->err); }
static sg_status r_purge(ctx *c) { return sg_store_purge(c->st, &c->n, &c->err); }
static sg_status r_stats(ctx *c) { return sg_store_stats(c->st, &c->stats, &c->err); }
static sg_status r_check0(ctx *c) { return sg_store_check(c->st, 0, &c->rep, &c->err); }
static sg_status r_check1(ctx *c) { return sg_store_check(c->st, 1, &c->rep, &c->err); }

#define IMPORT_ID "0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e"

static sg_status r_import_new(ctx *c)
{
    char rec[512];
    snprintf(rec, sizeof rec, "{\"id\":\"" IMPORT_ID "\",\"user\":\"dave\","
             "\"created\":%lld,\"accessed\":%lld,\"expires\":%lld,\"idle\":1800,"
             "\"version\":3,\"data\":{\"imported\":[1,2],\"why\":\"moved from "
             "another store\"}}", (long long)T0 - 1, (long long)T0 - 1,
             (long long)T0 + 1000);
    return sg_session_import(c->st, rec, &c->err);
}

static sg_status r_import_replace(ctx *c)
{
    char rec[512];
    snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"user\":\"erin\",\"created\":%lld,"
             "\"accessed\":%lld,\"expires\":%lld,\"idle\":1800,\"version\":9,"
             "\"data\":{\"replaced\":\"by an import\"}}", S4,
             (long long)T0 - 2, (long long)T0 - 2, (long long)T0 + 1000);
    return sg_session_import(c->st, rec, &c->err);
}

static void d_session(const sg_session *s, char *buf, size_t n)
{
    char *j = s ? sg_session_to_json(s) : NULL;
    snprintf(buf, n, "%s", s ? (j ? j : "(to_json failed)") : "null");
    free(j);
}

static void d_out(ctx *c, char *buf, size_t n) { d_session(c->out, buf, n); }
static void d_s(ctx *c, char *buf, size_t n) { d_session(c->s, buf, n); }
static void d_nothing(ctx *c, char *buf, size_t n) { (void)c; snprintf(buf, n, "-"); }
static void d_str(ctx *c, char *buf, size_t n) { snprintf(buf, n, "%s", c->str ? c->str : "null"); }
static void d_n(ctx *c, char *buf, size_t n) { snprintf(buf, n, "%zu", c->n); }

static void d_list(ctx *c, char *buf, size_t n)
{
    if (!c->list) {
        snprintf(buf, n, "null");
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < sg_list_count(c->list); i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s,", sg_list_id(c->list, i));
}

static void d_stats(ctx *c, char *buf, size_t n)
{
    snprintf(buf, n, "sessions %zu live %zu expired %zu users %zu anonymous %zu",
             c->stats.sessions, c->stats.live, c->stats.expired,
             c->stats.users, c->stats.anonymous);
}

static void d_check(ctx *c, char *buf, size_t n)
{
    snprintf(buf, n, "records %zu bad %zu recovered %d", c->rep.records,
             c->rep.bad_records, c->rep.recovered);
}

/* A handle that open returned must work: a count, and S1 when seeded. */
static void d_opened(ctx *c, char *buf, size_t n)
{
    if (!c->ost) {
        snprintf(buf, n, "null");
        return;
    }
    size_t k = 0;
    sg_session *s = NULL;
    sg_status rc = sg_store_count(c->ost, NULL, &k, NULL);
    if (rc == SG_OK && k > 0)
        rc = sg_session_get(c->ost, S1, SG_GET_NOTOUCH, &s, NULL);
    char *j = s ? sg_session_to_json(s) : NULL;
    snprintf(buf, n, "rc %d count %zu %s", (int)rc, k, j ? j : "");
    free(j);
    sg_session_free(s);
}

static const op ops[] = {
    { "sg_store_open (new store)", OP_OUT | OP_NEWSTORE | OP_NOSTORE, p_none, r_open_new, d_opened },
    { "sg_store_open (existing store)", OP_OUT | OP_NOSTORE, p_none, r_open_existing, d_opened },
    { "sg_session_create (anonymous)", OP_OUT, p_none, r_create_anon, d_out },
    { "sg_session_create (user, data, per-user cap)", OP_OUT | OP_EVICTS, p_none, r_create_user, d_out },
    { "sg_session_get (with touch)", OP_OUT | OP_TOUCH, p_none, r_get, d_out },
    { "sg_session_get (SG_GET_NOTOUCH)", OP_OUT, p_none, r_get_notouch, d_out },
    { "sg_session_save", OP_INPLACE, p_save, r_save, d_s },
    { "sg_session_save (login: user change, cap)", OP_INPLACE | OP_EVICTS, p_login, r_save, d_s },
    { "sg_session_rotate", OP_INPLACE | OP_MOVE, p_s1, r_rotate, d_s },
    { "sg_session_delete", 0, p_none, r_delete, d_nothing },
    { "sg_session_update", 0, p_none, r_update, d_nothing },
    { "sg_session_set_data", OP_INPLACE | OP_MEM, p_s1, r_set_data, d_s },
    { "sg_session_merge_data", OP_INPLACE | OP_MEM, p_s1, r_merge_data, d_s },
    { "sg_session_set_user", OP_INPLACE | OP_MEM, p_s1, r_set_user, d_s },
    { "sg_session_data_json", OP_OUT | OP_MEM, p_s1, r_data_json, d_str },
    { "sg_session_to_json", OP_OUT | OP_MEM, p_s1, r_to_json, d_str },
    { "sg_store_list (all)", OP_OUT, p_none, r_list_all, d_list },
    { "sg_store_list (one user)", OP_OUT, p_none, r_list_user, d_list },
    { "sg_store_count (all)", 0, p_none, r_count_all, d_n },
    { "sg_store_count (one user)", 0, p_none, r_count_user, d_n },
    { "sg_store_purge", OP_EVICTS, p_none, r_purge, d_n },
    { "sg_store_stats", 0, p_none, r_stats, d_stats },
    { "sg_store_check (repair 0)", 0, p_none, r_check0, d_check },
    { "sg_store_check (repair 1)", 0, p_none, r_check1, d_check },
    { "sg_session_import (new id)", 0, p_none, r_import_new, d_nothing },
    { "sg_session_import (replacing, other user)", 0, p_none, r_import_replace, d_nothing },
};
#define NOPS (sizeof ops / sizeof ops[0])

/* One run of an op: store restored, handle opened, copy loaded (all
 * unarmed), the op armed to fail its Nth allocation (0: none).  Fills
 * the result's description, before (the copy's description before the
 * op) and *fired; returns the op's status and the live-block change. */
typedef struct run_result {
    sg_status rc;
    int fired;
    long allocs;
    long leaked;
    void *fired_from;
    size_t fired_size;
    unsigned long recoveries;
    char errtext[SG_ERROR_TEXT];
    char desc[DESC];
    char before[DESC];
    char held_id[SG_ID_LEN + 1];   /* the id c->s holds after the op */
} run_result;

static void run_once(const op *o, long n, run_result *r)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.now = o->flags & OP_TOUCH ? T0 + 100 : T0;
    if (o->flags & OP_NEWSTORE)
        remove_store(new_path);
    else
        restore_work();
    af_random_seq = 1;
    long live0 = af_live;
    if (!(o->flags & OP_NOSTORE)) {
        sg_options opt;
        store_options(&opt, &c.now);
        if (sg_store_open(work_path, &opt, &c.st, &c.err) != SG_OK)
            printf("# cannot open %s: %s\n", work_path, c.err.text);
        sg_error_clear(&c.err);
    }
    o->prepare(&c);
    r->before[0] = '\0';
    if (o->flags & OP_INPLACE)
        o->describe(&c, r->before, sizeof r->before);
    unsigned long rec0 = c.st ? sg_store_recoveries(c.st) : 0;

    arm(n);
    r->rc = o->run(&c);
    disarm();

    r->fired = af_fired;
    r->allocs = af_seen;
    r->fired_from = af_fired_from;
    r->fired_size = af_fired_size;
    r->recoveries = c.st ? sg_store_recoveries(c.st) - rec0
                  : c.ost ? sg_store_recoveries(c.ost) : 0;
    snprintf(r->errtext, sizeof r->errtext, "%s", c.err.text);
    o->describe(&c, r->desc, sizeof r->desc);
    r->held_id[0] = '\0';
    if (c.s)
        memcpy(r->held_id, sg_session_id(c.s), SG_ID_LEN + 1);

    sg_session_free(c.s);
    sg_session_free(c.out);
    sg_list_free(c.list);
    free(c.str);
    sg_store_close(c.ost);
    sg_store_close(c.st);
    r->leaked = af_live - live0;
}

/* Per-op tallies. */
typedef struct tally {
    long sites;          /* injected failures */
    long recovered;      /* of which the call still succeeded (verified) */
    long rebuilt;        /* of which the store was rebuilt from its log */
    long gdbm_leaks;     /* of which GDBM leaked (see known_gdbm_leak) */
    long codes[SG_ETOOBIG + 1];
    int bad_status, bad_result, leaks, bad_state, printed;
} tally;

static long total_sites;
static int verbose;     /* ALLOCFAIL_VERBOSE=1: name every recovered site */

static void problem(tally *t, int *counter, const op *o, long n,
                    const run_result *r, const char *what)
{
    (*counter)++;
    if (t->printed++ >= 6)
        return;
    char w[300];
    where(r->fired_from, w, sizeof w);
    printf("# %s, allocation %ld (%zu bytes, from %s): %s\n", o->name, n,
           r->fired_size, w, what);
    if (r->errtext[0])
        printf("#   error: %s\n", r->errtext);
}

static void test_op(const op *o, const snap *seed)
{
    tally t;
    memset(&t, 0, sizeof t);
    const char *path = o->flags & OP_NEWSTORE ? new_path : work_path;
    static run_result ref, r;
    char why[600];

    /* Reference run, nothing failed: what success looks like. */
    run_once(o, 0, &ref);
    snap after = { 0 };
    int have_after = 0;
    IS(ref.rc, SG_OK, "%s: succeeds without injection", o->name);
    if (!(o->flags & OP_MEM)) {
        have_after = take_snapshot(path, &after, why, sizeof why) == 0;
        OK(have_after, "%s: the reference store is whole%s%s", o->name,
           have_after ? "" : ": ", have_after ? "" : why);
    }
    if (ref.rc != SG_OK || (!(o->flags & OP_MEM) && !have_after))
        return;
    /* The seeded store as the op starts from; an empty one for a new. */
    snap empty = { 0 };
    const snap *before = o->flags & OP_NEWSTORE ? &empty : seed;

    long n;
    for (n = 1; n < 20000; n++) {
        run_once(o, n, &r);
        if (!r.fired) {
            /* Fewer than n allocations: every site has been failed. */
            if (r.rc != SG_OK || strcmp(r.desc, ref.desc) != 0)
                problem(&t, &t.bad_result, o, n, &r,
                        "the run past the last site differs from the reference");
            break;
        }
        t.sites++;
        if ((unsigned)r.rc <= SG_ETOOBIG)
            t.codes[r.rc]++;
        if (r.recoveries)
            t.rebuilt++;
        if (known_gdbm_leak(r.fired_from, r.leaked)) {
            t.gdbm_leaks++;
        } else if (r.leaked != 0) {
            snprintf(why, sizeof why, "%ld block(s) leaked", r.leaked);
            problem(&t, &t.leaks, o, n, &r, why);
        }

        /* SG_OK after an injected failure is right only where what failed
         * was optional or was retried, and then the result and the store
         * must be exactly the reference run's.  The cases (ALLOCFAIL_VERBOSE
         * names each site):
         *  - sg_session_get with touch: the touch is best effort, and the
         *    session comes back as read, untouched (and the store as it
         *    was); the one case where the reference result is not needed;
         *  - sg_session_delete, and sg_session_import over an existing
         *    session: the old record is loaded only to find its owner's
         *    index entry; without it, or when removing that entry fails,
         *    the entry stays behind, stale, which readers verify (store.c);
         *  - sg_session_rotate, and a save that changes the user: the same
         *    index cleanup, after the change is made (session.c);
         *  - GDBM's bucket cache, which frees an old entry and retries;
         *  - a GDBM write that fails after the change is in the log: the
         *    store is rebuilt from the log, the change with it
         *    (backend_gdbm.c, change()).
         * Anything else that comes back SG_OK is a false success. */
        int ok_touch = (o->flags & OP_TOUCH) && r.rc == SG_OK;
        if (r.rc == SG_OK) {
            t.recovered++;
            if (verbose) {
                char w[300];
                where(r.fired_from, w, sizeof w);
                printf("#     recovered: %s, allocation %ld (%zu bytes, from %s)\n",
                       o->name, n, r.fired_size, w);
            }
            if (strcmp(r.desc, ref.desc) != 0 &&
                !(ok_touch && snap_rec(seed, S1) && strcmp(r.desc, snap_rec(seed, S1)) == 0)) {
                snprintf(why, sizeof why, "false success: got %.200s want %.200s",
                         r.desc, ref.desc);
                problem(&t, &t.bad_result, o, n, &r, why);
            }
        } else {
            if (r.rc != SG_ENOMEM && r.rc != SG_ESTORE) {
                snprintf(why, sizeof why, "status %s (%d), not out of memory "
                         "or a store error", sg_strerror(r.rc), (int)r.rc);
                problem(&t, &t.bad_status, o, n, &r, why);
            }
            const char *want = o->flags & OP_INPLACE ? r.before
                             : o->flags & OP_OUT ? "null" : NULL;
            if (want && strcmp(r.desc, want) != 0) {
                snprintf(why, sizeof why, "a failed call changed its output: "
                         "got %.200s want %.200s", r.desc, want);
                problem(&t, &t.bad_result, o, n, &r, why);
            }
        }
        if (o->flags & OP_MEM)
            continue;

        /* The store afterwards, injection off. */
        snap now = { 0 };
        if (take_snapshot(path, &now, why, sizeof why) != 0) {
            problem(&t, &t.bad_state, o, n, &r, why);
            continue;
        }
        if (r.rc == SG_OK && !ok_touch) {
            if (!snap_equal(&now, &after))
                problem(&t, &t.bad_state, o, n, &r,
                        "succeeded but the store is not what success leaves");
        } else {
            /* An error: the store as before.  No session new or changed;
             * none gone, except those a success removes too and a failing
             * call may have removed on the way (purge's, the cap's). */
            for (size_t i = 0; i < now.n; i++) {
                const char *b = snap_rec(before, now.id[i]);
                if (!b || strcmp(b, now.rec[i]) != 0) {
                    snprintf(why, sizeof why, "failed, yet %s session %s: "
                             "%.200s", b ? "changed" : "left new", now.id[i],
                             now.rec[i]);
                    problem(&t, &t.bad_state, o, n, &r, why);
                }
            }
            for (size_t i = 0; i < before->n; i++)
                if (!snap_rec(&now, before->id[i]) &&
                    (!(o->flags & OP_EVICTS) || snap_rec(&after, before->id[i]))) {
                    snprintf(why, sizeof why, "failed, yet session %s is gone",
                             before->id[i]);
                    problem(&t, &t.bad_state, o, n, &r, why);
                }
            if ((o->flags & OP_MOVE) && !snap_rec(&now, r.held_id)) {
                snprintf(why, sizeof why, "failed, and the id the caller holds "
                         "(%s) no longer works", r.held_id);
                problem(&t, &t.bad_state, o, n, &r, why);
            }
        }
        snap_free(&now);
    }
    snap_free(&after);
    total_sites += t.sites;

    OK(n < 20000, "%s: the loop ends (%ld allocations)", o->name, ref.allocs);
    OK(t.bad_status == 0, "%s: %ld injected failures give an error status "
       "(%d wrong)", o->name, t.sites, t.bad_status);
    OK(t.bad_result == 0, "%s: no false success, outputs untouched on "
       "error (%d wrong)", o->name, t.bad_result);
    OK(t.leaks == 0, "%s: nothing leaks (%d leaking)", o->name, t.leaks);
    if (!(o->flags & OP_MEM))
        OK(t.bad_state == 0, "%s: the store stays whole (%d damaging)",
           o->name, t.bad_state);
    printf("#   %s: %ld sites failed: %ld ENOMEM, %ld ESTORE, %ld recovered "
           "(verified), %ld with a rebuild%s\n", o->name, t.sites,
           t.codes[SG_ENOMEM], t.codes[SG_ESTORE], t.recovered, t.rebuilt,
           t.gdbm_leaks ? ", 1 known GDBM leak" : "");
}

/* Build the seeded template store (unarmed). */
static int seed_store(void)
{
    int64_t now = T0;
    sg_options o;
    store_options(&o, &now);
    sg_store *st = NULL;
    sg_error err = { 0 };
    remove_store(tmpl_path);
    if (sg_store_open(tmpl_path, &o, &st, &err) != SG_OK) {
        printf("# cannot create %s: %s\n", tmpl_path, err.text);
        return -1;
    }
    static const struct { int64_t at; const char *user, *data; int64_t idle; } seeds[] = {
        { T0 - 10, "alice", "{\"cart\":[1,2,3],\"note\":\"abcdefghijklmnopqrstuvwxyz\"}", 0 },
        { T0 - 5, "alice", NULL, 0 },
        { T0 - 3, NULL, "{\"k\":\"v\"}", 0 },
        { T0 - 2, "bob", "{\"theme\":\"dark\"}", 0 },
        { T0 - 1000, "carol", NULL, 10 },   /* expired at T0 */
    };
    af_random_seq = 1000;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        sg_session *s = NULL;
        now = seeds[i].at;
        if (sg_session_create(st, seeds[i].user, seeds[i].data, seeds[i].idle, 0,
                              &s, &err) != SG_OK) {
            printf("# cannot seed: %s\n", err.text);
            sg_store_close(st);
            return -1;
        }
        memcpy(seed_id[i], sg_session_id(s), SG_ID_LEN + 1);
        sg_session_free(s);
    }
    sg_store_close(st);
    return 0;
}

/* Whether the libraries' allocations reach this file's malloc, and the
 * injection fails them. */
static int interposer_works(void)
{
    char *(*volatile dup)(const char *) = strdup;
    arm(1);
    json_t *j = json_object();    /* jansson -> malloc */
    disarm();
    int jansson = j == NULL;
    json_decref(j);
    arm(1);
    char *d = dup("x");           /* libc-internal malloc */
    disarm();
    int libc = d == NULL;
    free(d);
    long live0 = af_live;
    d = dup("balanced");
    free(d);
    return jansson && libc && af_live == live0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_allocfail DIR\n");
        return 2;
    }
    /* stdout's buffer is allocated by the first printf: do it now. */
    printf("# failing each allocation of each public operation in turn\n");
    if (RUNNING_ON_VALGRIND) {
        OK(1, "# SKIP under valgrind: it replaces malloc in every object, "
           "so allocation failures cannot be injected");
        return tap_done();
    }
    if (!interposer_works()) {
        OK(1, "# SKIP the libraries' allocations do not reach this "
           "program's malloc (valgrind, or a preloaded allocator?), so "
           "nothing can be injected");
        return tap_done();
    }
    verbose = getenv("ALLOCFAIL_VERBOSE") != NULL;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    snprintf(tmpl_path, sizeof tmpl_path, "%s/allocfail-seed.db", dir);
    snprintf(work_path, sizeof work_path, "%s/allocfail.db", dir);
    snprintf(new_path, sizeof new_path, "%s/allocfail-new.db", dir);
    OK(seed_store() == 0, "the seeded store is made");
    snap seed = { 0 };
    char why[600] = "";
    restore_work();
    OK(take_snapshot(work_path, &seed, why, sizeof why) == 0 && seed.n == 5,
       "the seeded store holds 5 sessions %s", why);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < NOPS; i++)
        test_op(&ops[i], &seed);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snap_free(&seed);
    printf("# allocation sites failed: %ld across %zu operations (%.1f s)\n",
           total_sites, NOPS, (double)(t1.tv_sec - t0.tv_sec) +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    remove_store(tmpl_path);
    remove_store(work_path);
    remove_store(new_path);
    return tap_done();
}

#endif /* AF_ASAN */
