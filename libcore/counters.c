/*
 * counters.c - figures a store keeps as it is written, so `stats` need not
 * read every record (0.34 s at 12k sessions, growing with the store).
 *
 * What is kept, in the backend's figures area (sgi_figures: the GDBM lock
 * page, which every process maps; Redis has none):
 *     sessions   records stored (live, and expired ones not yet purged)
 *     anonymous  those without a user
 *     users      users with at least one record (from "ucnt:NAME" keys,
 *                each user's record count)
 *     expired    records removed after they had expired (purge, deletes)
 *     at         the backend's write counter when the figures were right
 *
 * Kept by default on every GDBM store (`stats --keep off` stops it for
 * one store: a marker record SGI_COUNTERS_KEY = "off").  Why it is cheap
 * enough to be the default: the figures live in shared memory beside the
 * write counter, so a hold adds its deltas there with no write of its
 * own.  A touch or a data save costs one fetch and two small parses; only
 * a change of a session's user (a create or delete of a user's session, a
 * login) costs a put, of "ucnt:NAME".  (The first design kept them as a
 * record in the data file: one more put per write hold, which halved
 * creates, so it was opt-in.)  Redis expires records inside the server,
 * unseen by any put or del: there the write scripts keep the figures
 * themselves (backend.h `counts`, backend_redis.c "figures"), and this
 * file only asks for them, recounts and walks as for GDBM.
 *
 * How: on a store opened for writing the function table is wrapped
 * (sgi_counters_attach): every put and del of a session record goes
 * through here first, reads what it replaces, and adds the difference to
 * this hold's deltas (and to the user's count).  When the exclusive hold
 * ends (sgi_unlock), the deltas are added to the figures and `at` is set
 * to the write counter, under the same lock.
 *
 * Why that stays right after kill -9 (the "figures stale" rule): the
 * write counter is bumped before a hold's first change, and `at` follows
 * only when the hold ends.  A writer killed in between leaves `at` behind
 * the counter; so does a rebuild from the write-ahead log, a writer that
 * does not keep the figures (an older version), and a lock file made anew
 * (its figures area is zero: no magic).  Figures whose `at` is not the
 * write counter are never used: stats reads every record instead (exact,
 * and says so), and a recount (`check --repair`, `stats --keep on`, or a
 * stats call through a handle that may write, such as the gateway's
 * gauges) installs them again if no write overtook the count.  A hold on
 * stale figures leaves them stale: deltas are only added to figures known
 * right.  So the figures are right or not used.  (A power loss may keep
 * the data file's last writes and lose the lock page's: run check
 * --repair after one.)
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIGURES_MAGIC UINT64_C(0x5347464947310001)  /* "SGFIG1", version 1 */
#define COUNTERS_OFF  "off"     /* SGI_COUNTERS_KEY: this store keeps none */

static const sgi_backend *real_be(const sg_store *st)
{
    return st->cnt.real ? st->cnt.real : st->be;
}

/* The shared figures area, or NULL (Redis, or not mapped). */
static sgi_figures *figures(sg_store *st)
{
    const sgi_backend *be = real_be(st);

    return be->figures ? be->figures(st) : NULL;
}

#define UCOUNT_PREFIX "ucnt:"       /* "ucnt:NAME" -> records of user NAME */

static int is_ucount_key(const char *key)
{
    return strncmp(key, UCOUNT_PREFIX, sizeof UCOUNT_PREFIX - 1) == 0;
}

/* What a stored record means for the figures. */
typedef struct facts {
    int present, anonymous, expired;
    char *user;                 /* Owned; NULL: anonymous or absent */
} facts;

static void facts_free(facts *f)
{
    free(f->user);
    f->user = NULL;
}

/* The user of a record as record.c writes it, {"id":"<id>","user":...,
 * read without parsing the record: a put only needs to know whose record
 * it replaces and whose it writes, and a parse of each would cost a
 * create a good part of its time.  1 and *user (owned; NULL: anonymous),
 * 0 when the record does not start that way (or the name holds an
 * escape): then it is parsed; -1 when out of memory. */
static int quick_user(const char *val, size_t len, char **user)
{
    static const char head[] = "{\"id\":\"", mid[] = "\",\"user\":";
    size_t p = sizeof head - 1 + SG_ID_LEN;
    const char *start, *end;

    *user = NULL;
    if (len < p + sizeof mid - 1 + 5 || memcmp(val, head, sizeof head - 1) != 0 ||
        memcmp(val + p, mid, sizeof mid - 1) != 0)
        return 0;
    p += sizeof mid - 1;
    if (memcmp(val + p, "null", 4) == 0 && (val[p + 4] == ',' || val[p + 4] == '}'))
        return 1;
    if (val[p] != '"')
        return 0;
    start = val + p + 1;
    end = memchr(start, '"', len - p - 1);
    if (!end || memchr(start, '\\', (size_t)(end - start)))
        return 0;
    *user = strndup(start, (size_t)(end - start));
    return *user ? 1 : -1;
}

/* 0, or -1 when out of memory (the figures cannot follow).  expiry: also
 * find whether the record has expired (a removal counts that). */
static int record_facts(sg_store *st, const char *val, size_t len, facts *f,
                        int expiry)
{
    sg_session *s = NULL;
    sg_error ignored;
    int q;

    memset(f, 0, sizeof *f);
    if (!val)
        return 0;
    f->present = 1;
    if (!expiry && (q = quick_user(val, len, &f->user)) != 0) {
        f->anonymous = f->user == NULL;
        return q < 0 ? -1 : 0;
    }
    sg_error_clear(&ignored);
    if (sgi_record_parse(val, len, &s, &ignored) != SG_OK)
        return ignored.code == SG_ENOMEM ? -1 : 0;  /* damaged: check --repair */
    f->anonymous = s->user == NULL;
    f->expired = !sgi_live(s, sgi_now(st));
    if (s->user && !(f->user = strdup(s->user))) {
        sg_session_free(s);
        return -1;
    }
    sg_session_free(s);
    return 0;
}

/* The facts of the record stored under key now (absent: all zero).  A
 * fetch that fails fails the write it came for, before anything is
 * written: a failed call changes nothing. */
static sg_status old_facts(sg_store *st, const char *key, facts *f, int expiry,
                           sg_error *err)
{
    char *val = NULL;
    size_t len = 0;
    int r;

    memset(f, 0, sizeof *f);
    sg_status rc = real_be(st)->fetch(st, key, &val, &len, err);
    if (rc == SG_ENOTFOUND) {
        if (err && err->code == SG_ENOTFOUND)
            sg_error_clear(err);        /* absent is no error here */
        return SG_OK;
    }
    if (rc != SG_OK)
        return rc;
    r = record_facts(st, val, len, f, expiry);
    free(val);
    return r < 0 ? sgi_oom(err, "store", st->path) : SG_OK;
}

/* A user's record count ("ucnt:NAME"), with its key. */
typedef struct ucount {
    char *key;                  /* Owned; NULL: no user */
    long long n;
} ucount;

/* Read user's count (before the write it follows, so a failure fails the
 * write cleanly).  user NULL: nothing to read. */
static sg_status ucount_get(sg_store *st, const char *user, ucount *u, sg_error *err)
{
    size_t klen;
    char *val = NULL;
    size_t len;
    sg_status rc;

    u->key = NULL;
    u->n = 0;
    if (!user)
        return SG_OK;
    klen = sizeof UCOUNT_PREFIX + strlen(user);
    if (!(u->key = malloc(klen)))
        return sgi_oom(err, "store", st->path);
    snprintf(u->key, klen, UCOUNT_PREFIX "%s", user);
    rc = real_be(st)->fetch(st, u->key, &val, &len, err);
    if (rc == SG_OK)
        u->n = strtoll(val, NULL, 10);
    free(val);
    if (rc == SG_ENOTFOUND) {
        if (err && err->code == SG_ENOTFOUND)
            sg_error_clear(err);
        rc = SG_OK;
    }
    if (rc != SG_OK) {
        free(u->key);
        u->key = NULL;
    }
    return rc;
}

/* Write n + d as the user's count (after the write it follows: a failure
 * leaves the figures stale, never the write undone); moves the users
 * figure when the count leaves or reaches zero.  Frees u->key. */
static void ucount_set(sg_store *st, ucount *u, int d)
{
    sg_error ignored;
    long long n2 = u->n + d;
    char num[32];
    sg_status rc;

    if (!u->key)
        return;
    sg_error_clear(&ignored);
    if (n2 <= 0)
        rc = real_be(st)->del(st, u->key, &ignored);
    else {
        snprintf(num, sizeof num, "%lld", n2);
        rc = real_be(st)->put(st, u->key, num, strlen(num), 0, &ignored);
    }
    free(u->key);
    u->key = NULL;
    if (rc != SG_OK && rc != SG_ENOTFOUND)
        st->cnt.hold.broken = 1;
    else
        st->cnt.hold.d_users += (u->n <= 0 && n2 > 0) - (u->n > 0 && n2 <= 0);
}

static int same_user(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* One session record going from was to now: everything read first (a
 * failure fails the write, nothing changed), then the write, then the
 * figures follow.  now NULL: a delete. */
static sg_status follow(sg_store *st, const char *key, const char *val, size_t len,
                        int64_t expire_at, sg_error *err)
{
    sgi_cnt_hold *h = &st->cnt.hold;
    facts was, now;
    ucount uw = { NULL, 0 }, un = { NULL, 0 };
    int moved;
    sg_status rc;

    memset(&now, 0, sizeof now);
    rc = old_facts(st, key, &was, val == NULL, err);
    if (rc != SG_OK)
        return rc;
    if (val && record_facts(st, val, len, &now, 0) < 0)
        rc = sgi_oom(err, "store", st->path);
    moved = !same_user(was.user, now.user);
    if (rc == SG_OK && moved)
        rc = ucount_get(st, was.user, &uw, err);
    if (rc == SG_OK && moved)
        rc = ucount_get(st, now.user, &un, err);
    if (rc == SG_OK)
        rc = val ? real_be(st)->put(st, key, val, len, expire_at, err)
                 : real_be(st)->del(st, key, err);
    if (rc == SG_OK) {
        h->d_sessions += now.present - was.present;
        h->d_anonymous += (now.present && now.anonymous) -
                          (was.present && was.anonymous);
        if (!val && was.present && was.expired)
            h->d_expired++;
        ucount_set(st, &uw, -1);
        ucount_set(st, &un, +1);
    } else if (rc != SG_ENOTFOUND) {
        h->broken = 1;          /* a failed write may have half happened */
    }
    free(uw.key);
    free(un.key);
    facts_free(&was);
    facts_free(&now);
    return rc;
}

static sg_status cnt_put(sg_store *st, const char *key, const char *val,
                         size_t len, int64_t expire_at, sg_error *err)
{
    if (!st->cnt.hold.active || !sg_id_valid(key))
        return real_be(st)->put(st, key, val, len, expire_at, err);
    return follow(st, key, val, len, expire_at, err);
}

static sg_status cnt_del(sg_store *st, const char *key, sg_error *err)
{
    if (!st->cnt.hold.active || !sg_id_valid(key))
        return real_be(st)->del(st, key, err);
    return follow(st, key, NULL, 0, 0, err);
}

static void wrap(sg_store *st)
{
    if (st->cnt.real)
        return;
    st->cnt.real = st->be;
    st->cnt.table = *st->be;
    st->cnt.table.put = cnt_put;
    st->cnt.table.del = cnt_del;
    st->be = &st->cnt.table;
}

/* Whether the store said `stats --keep off` (caller holds a lock). */
static int kept_off(sg_store *st)
{
    char *val = NULL;
    size_t len = 0;
    sg_error ignored;
    int off;

    sg_error_clear(&ignored);
    if (real_be(st)->fetch(st, SGI_COUNTERS_KEY, &val, &len, &ignored) != SG_OK)
        return 0;
    off = len == sizeof COUNTERS_OFF - 1 && memcmp(val, COUNTERS_OFF, len) == 0;
    free(val);
    return off;
}

/* See internal.h. */
void sgi_counters_attach(sg_store *st)
{
    sg_error ignored;
    int off;

    /* Redis removes expired records by itself (PEXPIREAT), unseen by any
     * put or del here: figures kept this way would drift. */
    if (!st->be->figures || st->opt.readonly || st->cnt.real)
        return;
    sg_error_clear(&ignored);
    if (st->be->lock(st, SGI_SHARED, &ignored) != SG_OK)
        return;
    off = kept_off(st);
    st->be->unlock(st);
    if (!off)
        wrap(st);
}

static uint64_t writes_now(sg_store *st)
{
    uint64_t bytes, writes;

    st->be->info(st, &bytes, &writes);
    return writes;
}

/* The figures, when right as of write counter w: 0 and *c, or -1. */
static int figures_read(sg_store *st, uint64_t w, sgi_counts *c)
{
    sgi_figures *f = figures(st);

    memset(c, 0, sizeof *c);
    if (!f || f->magic != FIGURES_MAGIC)
        return -1;
    c->at = f->at;
    c->sessions = f->sessions;
    c->anonymous = f->anonymous;
    c->users = f->users;
    c->expired = f->expired;
    return c->at == w ? 0 : -1;
}

/* Install c as right at write counter c->at (caller holds SGI_EXCLUSIVE). */
static void figures_write(sg_store *st, const sgi_counts *c)
{
    sgi_figures *f = figures(st);

    if (!f)
        return;
    f->sessions = c->sessions;
    f->anonymous = c->anonymous;
    f->users = c->users;
    f->expired = c->expired;
    f->at = c->at;
    f->magic = FIGURES_MAGIC;
}

static int first_key(const char *key, size_t len, void *arg)
{
    (void)key;
    (void)len;
    *(int *)arg = 1;
    return 1;                   /* one is enough */
}

/* See internal.h. */
void sgi_counters_begin(sg_store *st)
{
    sgi_figures *f;

    if (!st->cnt.real)
        return;
    memset(&st->cnt.hold, 0, sizeof st->cnt.hold);
    st->cnt.hold.active = 1;
    st->cnt.hold.w0 = writes_now(st);
    /* A store never written to, with a lock page of its own: its figures
     * are all zero, right now; set them up so the first writes keep them
     * (a lock page made anew beside old data is not: it holds a key). */
    f = figures(st);
    if (f && f->magic != FIGURES_MAGIC && st->cnt.hold.w0 == 0) {
        sg_error ignored;
        int any = 0;
        sgi_counts zero;

        sg_error_clear(&ignored);
        if (real_be(st)->keys(st, first_key, &any, &ignored) == SG_OK && !any) {
            memset(&zero, 0, sizeof zero);
            figures_write(st, &zero);
        }
    }
    {
        sgi_counts c;

        st->cnt.hold.valid0 = figures_read(st, st->cnt.hold.w0, &c) == 0;
    }
}

static uint64_t add_signed(uint64_t v, int64_t d)
{
    if (d < 0 && (uint64_t)(-d) > v)
        return 0;           /* cannot happen on right figures; stay sane */
    return v + (uint64_t)d;
}

/* See internal.h. */
void sgi_counters_end(sg_store *st)
{
    sgi_cnt_hold *h = &st->cnt.hold;
    sgi_counts c;
    uint64_t w1;

    if (!st->cnt.real || !h->active)
        return;
    h->active = 0;
    w1 = writes_now(st);
    if (h->recounted) {
        c = h->recount;
    } else {
        /* Nothing written: nothing to follow.  A hold that could not
         * follow its own changes (a failed put, out of memory) or that
         * began on stale figures leaves them stale. */
        if (w1 == h->w0 || h->broken || !h->valid0)
            return;
        (void)figures_read(st, 0, &c);  /* right as of w0; the backend may
                                         * have moved their stamp along */
        c.sessions = add_signed(c.sessions, h->d_sessions);
        c.anonymous = add_signed(c.anonymous, h->d_anonymous);
        c.users = add_signed(c.users, h->d_users);
        c.expired = add_signed(c.expired, h->d_expired);
    }
    c.at = w1;
    figures_write(st, &c);
}

/* ------------------------------------------------------------ reading */

/* A recount reads every key, in chunks that each hold the shared lock for
 * a few milliseconds (as store.c's walks do), so writers never wait long:
 * first the names (sorted, each once: a chunked walk may see a key twice),
 * then each value. */
#define COUNT_KEYS    256
#define COUNT_HOLD_MS 8

typedef struct key_list {
    char **keys;
    size_t n, cap;
    int oom;
} key_list;

static int list_push(key_list *l, const char *key)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **k = realloc(l->keys, cap * sizeof *k);
        if (!k) {
            l->oom = 1;
            return -1;
        }
        l->keys = k;
        l->cap = cap;
    }
    if (!(l->keys[l->n] = strdup(key))) {
        l->oom = 1;
        return -1;
    }
    l->n++;
    return 0;
}

static void list_free(key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    memset(l, 0, sizeof *l);
}

static int collect(const char *key, size_t len, void *arg)
{
    key_list *l = arg;
    (void)len;

    if (!sg_id_valid(key) && !is_ucount_key(key))
        return 0;
    return list_push(l, key) < 0;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a recount found besides the figures: the user of every record
 * (sorted) and the "ucnt:" keys there were. */
typedef struct recount_out {
    key_list users, ucnt;
    key_list uval;              /* the value of each "ucnt:" key, same index */
} recount_out;

/* Count every record, in chunks.  *w_start: the write counter before the
 * walk began. */
static sg_status recount(sg_store *st, sgi_counts *c, uint64_t *w_start,
                         recount_out *ro, sg_error *err)
{
    const sgi_backend *be = real_be(st);
    key_list l;
    sg_status rc;
    size_t i, j;
    uint64_t bytes;

    memset(c, 0, sizeof *c);
    memset(&l, 0, sizeof l);
    memset(ro, 0, sizeof *ro);
    rc = sgi_lock(st, SGI_SHARED, err);
    if (rc != SG_OK)
        return rc;
    be->info(st, &bytes, w_start);
    if (be->keys_chunk && st->lock_depth == 1) {
        sgi_cursor cur;

        memset(&cur, 0, sizeof cur);
        while (rc == SG_OK && !cur.done && !l.oom) {
            int64_t t0 = mono_ms();

            do
                rc = be->keys_chunk(st, &cur, COUNT_KEYS, collect, &l, err);
            while (rc == SG_OK && !cur.done && !l.oom && mono_ms() - t0 < COUNT_HOLD_MS);
            sgi_unlock(st);
            if (rc == SG_OK && !cur.done && !l.oom)
                rc = sgi_lock(st, SGI_SHARED, err);
            else
                break;
        }
        for (int k = 0; k < cur.nlast; k++)
            free(cur.last[k]);
    } else {
        rc = be->keys(st, collect, &l, err);    /* inside a caller's lock: at once */
        sgi_unlock(st);
    }
    if (l.n > 1)
        qsort(l.keys, l.n, sizeof *l.keys, by_key);
    i = 0;
    while (rc == SG_OK && !l.oom && i < l.n) {
        int64_t t0 = mono_ms();

        rc = sgi_lock(st, SGI_SHARED, err);
        int locked = rc == SG_OK;
        for (j = 0; rc == SG_OK && i < l.n; i++, j++) {
            facts f;

            if (j % 64 == 63 && mono_ms() - t0 >= COUNT_HOLD_MS)
                break;                  /* let writers in; go on after */
            if (i > 0 && strcmp(l.keys[i], l.keys[i - 1]) == 0)
                continue;
            if (is_ucount_key(l.keys[i])) {
                char *val = NULL;
                size_t vlen;
                sg_status frc = be->fetch(st, l.keys[i], &val, &vlen, err);

                if (frc == SG_ENOTFOUND) {
                    if (err && err->code == SG_ENOTFOUND)
                        sg_error_clear(err);
                    continue;           /* gone since the names were read */
                }
                if ((rc = frc) != SG_OK)
                    break;
                if (list_push(&ro->ucnt, l.keys[i]) == 0)
                    list_push(&ro->uval, val);
                free(val);
                continue;
            }
            if ((rc = old_facts(st, l.keys[i], &f, 0, err)) != SG_OK)
                break;
            c->sessions += f.present;
            c->anonymous += f.present && f.anonymous;
            if (f.user)
                list_push(&ro->users, f.user);
            facts_free(&f);
        }
        if (locked)
            sgi_unlock(st);
    }
    if (rc == SG_OK && (l.oom || ro->users.oom || ro->ucnt.oom || ro->uval.oom))
        rc = sgi_oom(err, "store", st->path);
    list_free(&l);
    if (ro->users.n > 1)
        qsort(ro->users.keys, ro->users.n, sizeof *ro->users.keys, by_key);
    for (i = 0; i < ro->users.n; i++)
        c->users += i == 0 || strcmp(ro->users.keys[i], ro->users.keys[i - 1]) != 0;
    return rc;
}

/* Under the exclusive lock: make the "ucnt:" keys what the recount found. */
static sg_status write_ucounts(sg_store *st, const recount_out *ro, sg_error *err)
{
    /* Only what differs is written: the keys are mostly right (a stale
     * figure is usually one killed hold), and every put here is made
     * under the exclusive lock, while writers wait.  Both lists are in
     * name order ("ucnt:" + NAME sorts as NAME). */
    const sgi_backend *be = real_be(st);
    sg_status rc = SG_OK;
    size_t i = 0, j, k = 0;

    while (rc == SG_OK && (i < ro->users.n || k < ro->ucnt.n)) {
        const char *kname = k < ro->ucnt.n
                          ? ro->ucnt.keys[k] + sizeof UCOUNT_PREFIX - 1 : NULL;
        int cmp;

        for (j = i; j < ro->users.n && strcmp(ro->users.keys[j], ro->users.keys[i]) == 0; j++)
            ;
        cmp = i >= ro->users.n ? 1 : !kname ? -1 : strcmp(ro->users.keys[i], kname);
        if (cmp > 0) {                  /* a count of a user with no record */
            rc = be->del(st, ro->ucnt.keys[k++], err);
            if (rc == SG_ENOTFOUND)
                rc = SG_OK;
            continue;
        }
        char num[32];
        snprintf(num, sizeof num, "%zu", j - i);
        if (cmp == 0 && strcmp(ro->uval.keys[k], num) == 0) {
            i = j;
            k++;
            continue;                   /* right already */
        }
        size_t klen = sizeof UCOUNT_PREFIX + strlen(ro->users.keys[i]);
        char *key = malloc(klen);
        if (!key)
            return sgi_oom(err, "store", st->path);
        snprintf(key, klen, UCOUNT_PREFIX "%s", ro->users.keys[i]);
        rc = be->put(st, key, num, strlen(num), 0, err);
        free(key);
        i = j;
        if (cmp == 0)
            k++;
    }
    return rc;
}

/* The removals of expired records are history, not in the keys: keep
 * the last figures' count, even stale (0 when there never were any). */
static uint64_t expired_so_far(sg_store *st)
{
    sgi_counts c;

    figures_read(st, 0, &c);
    return c.expired;
}

/* Recount; when no write overtook the count, install the figures (and the
 * "ucnt:" keys) under the exclusive lock.  *out: what was counted.  No
 * lock held by the caller. */
static sg_status rebuild(sg_store *st, sgi_counts *out, sg_error *err)
{
    sgi_counts c;
    uint64_t w_start, w_now, bytes;
    recount_out ro;
    sg_status rc;

    rc = recount(st, &c, &w_start, &ro, err);
    c.expired = expired_so_far(st);
    *out = c;
    if (rc == SG_OK)
        rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK) {
        list_free(&ro.users);
        list_free(&ro.ucnt);
        list_free(&ro.uval);
        return rc;
    }
    st->be->info(st, &bytes, &w_now);
    /* Only a count that no write overtook is right; under constant writes
     * the figures stay unused (stats walks) until a quieter moment. */
    if (w_now == w_start) {
        st->cnt.hold.active = 0;        /* these puts are the recount's own */
        rc = write_ucounts(st, &ro, err);
        st->cnt.hold.active = 1;
        if (rc == SG_OK) {
            st->cnt.hold.recount = c;
            st->cnt.hold.recounted = 1;
        } else
            st->cnt.hold.broken = 1;
    }
    sgi_unlock(st);                     /* sgi_counters_end installs them */
    list_free(&ro.users);
    list_free(&ro.ucnt);
    list_free(&ro.uval);
    return rc;
}

/* See internal.h. */
sg_status sgi_counters_rebuild(sg_store *st, sg_error *err)
{
    sgi_counts c;

    if (st->be->recount)
        return st->be->recount(st, err);    /* the backend's own (Redis) */
    if (!st->cnt.real)
        return SG_OK;
    return rebuild(st, &c, err);
}

/* The figures by reading every record, as sg_store_stats does: for a
 * store that keeps none, or whose kept ones are not right. */
static sg_status walked_counters(sg_store *st, sg_counters *out, sg_error *err)
{
    sg_stats s;
    sg_status rc = sg_store_stats(st, &s, err);

    out->sessions = s.sessions;
    out->anonymous = s.anonymous;
    out->users = s.users;
    out->writes = s.writes;
    out->file_bytes = s.file_bytes;
    return rc;
}

/* The figures a backend keeps itself (Redis: its write scripts move them,
 * backend_redis.c "figures").  Not right (a store written before they
 * existed, a recount cut short, an older writer): a handle that may write
 * counts once, in chunks, as for GDBM; otherwise, or kept off, walk. */
static sg_status backend_counters(sg_store *st, sg_counters *out, sg_error *err)
{
    sgi_counts c;
    int kept = 0;
    sg_status rc = st->be->counts(st, &c, &kept, err);

    if (rc == SG_OK && kept == 0 && !st->opt.readonly) {
        rc = st->be->recount(st, err);
        if (rc == SG_OK)
            rc = st->be->counts(st, &c, &kept, err);
    }
    if (rc != SG_OK)
        return rc;
    if (kept == 1) {
        uint64_t bytes, writes;

        st->be->info(st, &bytes, &writes);
        out->sessions = (size_t)c.sessions;
        out->anonymous = (size_t)c.anonymous;
        out->users = (size_t)c.users;
        out->expired_removed = c.expired;
        out->writes = c.at;
        out->file_bytes = bytes;
        out->kept = 1;
        return SG_OK;
    }
    rc = walked_counters(st, out, err);
    out->expired_removed = c.expired;
    return rc;
}

/* See sessgate.h. */
sg_status sg_store_counters(sg_store *st, sg_counters *out, sg_error *err)
{
    sgi_counts c;
    sg_status rc;

    memset(out, 0, sizeof *out);
    if (st->be->counts)
        return backend_counters(st, out, err);
    if (!st->be->figures)
        return walked_counters(st, out, err);    /* no figures kept */
    rc = sgi_lock(st, SGI_SHARED, err);
    if (rc != SG_OK)
        return rc;
    st->be->info(st, &out->file_bytes, &out->writes);
    if (figures_read(st, out->writes, &c) == 0) {
        out->kept = 1;
        sgi_unlock(st);
    } else if (st->cnt.real) {
        /* Stale, and this handle keeps them: count once, install. */
        sgi_unlock(st);
        rc = rebuild(st, &c, err);
    } else {
        uint64_t w_start;
        recount_out ro;

        sgi_unlock(st);
        rc = recount(st, &c, &w_start, &ro, err);
        c.expired = expired_so_far(st);
        list_free(&ro.users);
        list_free(&ro.ucnt);
        list_free(&ro.uval);
    }
    out->sessions = (size_t)c.sessions;
    out->anonymous = (size_t)c.anonymous;
    out->users = (size_t)c.users;
    out->expired_removed = c.expired;
    return rc;
}

/* See sessgate.h. */
sg_status sg_store_keep_counters(sg_store *st, int on, sg_error *err)
{
    sg_status rc;

    if (!st->be->figures && !st->be->keep)
        return sgi_err(err, SG_EINVAL, 0, "store %s: this store keeps no "
                       "figures", st->path);
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only", st->path);
    if (st->be->keep)
        return st->be->keep(st, on, err);   /* the backend's own (Redis) */
    rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    st->cnt.hold.active = 0;
    if (on) {
        rc = real_be(st)->del(st, SGI_COUNTERS_KEY, err);
        if (rc == SG_ENOTFOUND)
            rc = SG_OK;
    } else {
        sgi_figures *f = figures(st);

        rc = real_be(st)->put(st, SGI_COUNTERS_KEY, COUNTERS_OFF,
                              sizeof COUNTERS_OFF - 1, 0, err);
        if (f)
            f->magic = 0;               /* nobody may use them now */
    }
    sgi_unlock(st);
    if (rc != SG_OK || !on) {
        if (!on && st->cnt.real) {
            st->be = st->cnt.real;
            st->cnt.real = NULL;
        }
        return rc;
    }
    wrap(st);
    /* A count that writes overtook is not installed; try a few times. */
    for (int tries = 0; tries < 5; tries++) {
        sg_counters now;

        rc = sgi_counters_rebuild(st, err);
        if (rc != SG_OK)
            return rc;
        rc = sg_store_counters(st, &now, err);
        if (rc != SG_OK || now.kept)
            return rc;
    }
    return sgi_err(err, SG_ESTORE, 0, "store %s: writes kept overtaking the count; "
                   "try again when the store is quieter", st->path);
}
