/*
 * counters.c - figures a store keeps as it is written, so `stats` need not
 * read every record (0.34 s at 12k sessions, growing with the store).
 *
 * What is kept, in one record under SGI_COUNTERS_KEY:
 *     sessions   records stored (live, and expired ones not yet purged)
 *     anonymous  those without a user
 *     users      users with at least one record (from "ucnt:NAME" keys,
 *                each user's record count)
 *     expired    records removed after they had expired (purge, deletes)
 *     at         the backend's write counter when the figures were right
 *
 * Opt-in per store (sg_store_keep_counters, `sessgatectl stats --keep
 * on`): keeping them costs each write hold one more put (two when a user
 * gains or loses a record), which a store that never asks should not pay.
 * Only GDBM: Redis expires records inside the server, unseen by any put or
 * del, so figures kept this way would drift; it keeps walking.
 *
 * How: when a store that has the record is opened for writing, its
 * function table is wrapped (sgi_counters_attach): every put and del of a
 * session record goes through here first, reads what it replaces, and
 * adds the difference to this hold's deltas (and to the user's count).
 * When the exclusive hold ends (sgi_unlock) and it wrote anything, the
 * deltas are added to the record, written with `at` = the write counter as
 * the hold's last put, under the same lock.
 *
 * Why that stays right after kill -9: the GDBM write counter is bumped
 * before a hold's first change, and the figures are the hold's last put.
 * A process killed anywhere in between leaves `at` behind the counter; so
 * does a rebuild from the write-ahead log, a writer that does not keep the
 * figures (an older version, a handle opened before --keep on), a put that
 * failed, or a deleted lock file (the counter starts over).  Figures whose
 * `at` is not the write counter are never used: stats reads every record
 * instead (exact, and says so), and `check --repair` recounts, in chunks
 * like the other walks, and writes them back if no write overtook the
 * count.  A hold on stale figures leaves them stale: deltas are only ever
 * added to figures known right.  So the figures are right or not used.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNTERS_FMT "sgcounters 1 at=%" PRIu64 " sessions=%" PRIu64 \
                     " anonymous=%" PRIu64 " users=%" PRIu64 " expired=%" PRIu64

static const sgi_backend *real_be(const sg_store *st)
{
    return st->cnt.real ? st->cnt.real : st->be;
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

/* 0, or -1 when out of memory (the figures cannot follow). */
static int record_facts(sg_store *st, const char *val, size_t len, facts *f)
{
    sg_session *s = NULL;
    sg_error ignored;

    memset(f, 0, sizeof *f);
    if (!val)
        return 0;
    f->present = 1;
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

/* The facts of the record stored under key now (absent: all zero). */
static int old_facts(sg_store *st, const char *key, facts *f)
{
    char *val = NULL;
    size_t len = 0;
    sg_error ignored;
    int r;

    memset(f, 0, sizeof *f);
    sg_error_clear(&ignored);
    sg_status rc = real_be(st)->fetch(st, key, &val, &len, &ignored);
    if (rc == SG_ENOTFOUND)
        return 0;
    if (rc != SG_OK)
        return -1;
    r = record_facts(st, val, len, f);
    free(val);
    return r;
}

/* Add d to user's record count ("ucnt:NAME"); a count that leaves or
 * reaches zero moves the users figure.  0 or -1. */
static int ucount_add(sg_store *st, const char *user, int d)
{
    size_t klen = sizeof UCOUNT_PREFIX + strlen(user);
    char *key = malloc(klen), *val = NULL, num[32];
    size_t len;
    sg_error ignored;
    long long n = 0, n2;
    sg_status rc;

    if (!key)
        return -1;
    snprintf(key, klen, UCOUNT_PREFIX "%s", user);
    sg_error_clear(&ignored);
    rc = real_be(st)->fetch(st, key, &val, &len, &ignored);
    if (rc == SG_OK)
        n = strtoll(val, NULL, 10);
    free(val);
    if (rc != SG_OK && rc != SG_ENOTFOUND) {
        free(key);
        return -1;
    }
    n2 = n + d;
    if (n2 <= 0)
        rc = real_be(st)->del(st, key, &ignored);
    else {
        snprintf(num, sizeof num, "%lld", n2);
        rc = real_be(st)->put(st, key, num, strlen(num), 0, &ignored);
    }
    free(key);
    if (rc != SG_OK && rc != SG_ENOTFOUND)
        return -1;
    st->cnt.hold.d_users += (n <= 0 && n2 > 0) - (n > 0 && n2 <= 0);
    return 0;
}

static int same_user(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Account for a record going from was to now. */
static void add_change(sg_store *st, const facts *was, const facts *now, int removed)
{
    sgi_cnt_hold *h = &st->cnt.hold;

    h->d_sessions += now->present - was->present;
    h->d_anonymous += (now->present && now->anonymous) - (was->present && was->anonymous);
    if (removed && was->present && was->expired)
        h->d_expired++;
    if (!same_user(was->user, now->user)) {
        if (was->user && ucount_add(st, was->user, -1) < 0)
            h->broken = 1;
        if (now->user && ucount_add(st, now->user, +1) < 0)
            h->broken = 1;
    }
}

static sg_status cnt_put(sg_store *st, const char *key, const char *val,
                         size_t len, int64_t expire_at, sg_error *err)
{
    facts was, now;

    if (!st->cnt.hold.active || !sg_id_valid(key))
        return real_be(st)->put(st, key, val, len, expire_at, err);
    if (old_facts(st, key, &was) < 0)
        st->cnt.hold.broken = 1;
    sg_status rc = real_be(st)->put(st, key, val, len, expire_at, err);
    if (rc != SG_OK) {
        st->cnt.hold.broken = 1;
        facts_free(&was);
        return rc;
    }
    st->cnt.hold.wrote = 1;
    if (record_facts(st, val, len, &now) < 0)
        st->cnt.hold.broken = 1;
    add_change(st, &was, &now, 0);
    facts_free(&was);
    facts_free(&now);
    return rc;
}

static sg_status cnt_del(sg_store *st, const char *key, sg_error *err)
{
    facts was, now;

    if (!st->cnt.hold.active || !sg_id_valid(key))
        return real_be(st)->del(st, key, err);
    if (old_facts(st, key, &was) < 0)
        st->cnt.hold.broken = 1;
    sg_status rc = real_be(st)->del(st, key, err);
    if (rc != SG_OK && rc != SG_ENOTFOUND) {
        st->cnt.hold.broken = 1;
        facts_free(&was);
        return rc;
    }
    st->cnt.hold.wrote |= rc == SG_OK;
    memset(&now, 0, sizeof now);
    if (rc == SG_OK)
        add_change(st, &was, &now, 1);
    facts_free(&was);
    return rc;
}

/* See internal.h. */
void sgi_counters_attach(sg_store *st)
{
    char *val = NULL;
    size_t len;
    sg_error ignored;
    sg_status rc;

    /* Redis removes expired records by itself (PEXPIREAT), unseen by any
     * put or del here: figures kept this way would drift. */
    if (strcmp(st->be->scheme, "gdbm") != 0 || st->opt.readonly || st->cnt.real)
        return;
    /* Opt-in per store (sg_store_keep_counters): keeping the figures costs
     * every write hold one more put, so only a store that has them pays. */
    sg_error_clear(&ignored);
    if (st->be->lock(st, SGI_SHARED, &ignored) != SG_OK)
        return;
    rc = st->be->fetch(st, SGI_COUNTERS_KEY, &val, &len, &ignored);
    st->be->unlock(st);
    free(val);
    if (rc != SG_OK)
        return;
    st->cnt.real = st->be;
    st->cnt.table = *st->be;
    st->cnt.table.put = cnt_put;
    st->cnt.table.del = cnt_del;
    st->be = &st->cnt.table;
}

static uint64_t writes_now(sg_store *st)
{
    uint64_t bytes, writes;

    st->be->info(st, &bytes, &writes);
    return writes;
}

/* Parse the record: 0 and *c, or -1 (absent or not ours). */
static int counters_read(sg_store *st, sgi_counts *c)
{
    const sgi_backend *be = st->cnt.real ? st->cnt.real : st->be;
    char *val = NULL;
    size_t len = 0;
    sg_error ignored;
    int n;

    memset(c, 0, sizeof *c);
    sg_error_clear(&ignored);
    if (be->fetch(st, SGI_COUNTERS_KEY, &val, &len, &ignored) != SG_OK)
        return -1;
    n = sscanf(val, COUNTERS_FMT, &c->at, &c->sessions, &c->anonymous, &c->users,
               &c->expired);
    free(val);
    return n == 5 ? 0 : -1;
}

static sg_status counters_write(sg_store *st, const sgi_counts *c, sg_error *err)
{
    char text[256];
    int n = snprintf(text, sizeof text, COUNTERS_FMT, c->at, c->sessions, c->anonymous,
                     c->users, c->expired);

    return real_be(st)->put(st, SGI_COUNTERS_KEY, text, (size_t)n, 0, err);
}

/* See internal.h. */
void sgi_counters_begin(sg_store *st)
{
    if (!st->cnt.real)
        return;
    memset(&st->cnt.hold, 0, sizeof st->cnt.hold);
    st->cnt.hold.active = 1;
    st->cnt.hold.w0 = writes_now(st);
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
    sg_error ignored;
    uint64_t w1;

    if (!st->cnt.real || !h->active)
        return;
    h->active = 0;
    w1 = writes_now(st);
    if (h->recounted) {
        c = h->recount;
    } else {
        /* Only after this hold's own writes all went through: a hold
         * that wrote nothing of ours (a rebuild, a failed check) leaves
         * the backend in a state we do not touch, and the figures stale. */
        if (w1 == h->w0 || h->broken || !h->wrote)
            return;
        if (counters_read(st, &c) < 0) {
            /* No record: right only for a store that never had a write
             * (a new one): it had no sessions then. */
            if (h->w0 != 0)
                return;
            memset(&c, 0, sizeof c);
        } else if (c.at != h->w0)
            return;                     /* stale before this hold: stays stale */
        c.sessions = add_signed(c.sessions, h->d_sessions);
        c.anonymous = add_signed(c.anonymous, h->d_anonymous);
        c.users = add_signed(c.users, h->d_users);
        c.expired = add_signed(c.expired, h->d_expired);
    }
    c.at = w1;
    sg_error_clear(&ignored);
    if (counters_write(st, &c, &ignored) != SG_OK)
        return;
    /* A backend that counted that put as one more write (or a put that
     * checkpointed) leaves `at` behind: the figures are then not used. */
    if (writes_now(st) != w1) {
        c.at = writes_now(st);
        (void)counters_write(st, &c, &ignored);
    }
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
                list_push(&ro->ucnt, l.keys[i]);
                continue;
            }
            if (old_facts(st, l.keys[i], &f) < 0) {
                rc = sgi_err(err, SG_ESTORE, 0, "store %s: a record could not be "
                             "read while counting", st->path);
                break;
            }
            c->sessions += f.present;
            c->anonymous += f.present && f.anonymous;
            if (f.user)
                list_push(&ro->users, f.user);
            facts_free(&f);
        }
        if (locked)
            sgi_unlock(st);
    }
    if (rc == SG_OK && (l.oom || ro->users.oom || ro->ucnt.oom))
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
    const sgi_backend *be = real_be(st);
    sg_status rc = SG_OK;
    size_t i, j;

    for (i = 0; rc == SG_OK && i < ro->ucnt.n; i++) {
        rc = be->del(st, ro->ucnt.keys[i], err);
        if (rc == SG_ENOTFOUND)
            rc = SG_OK;
    }
    for (i = 0; rc == SG_OK && i < ro->users.n; i = j) {
        char num[32], *key;
        size_t klen = sizeof UCOUNT_PREFIX + strlen(ro->users.keys[i]);

        for (j = i; j < ro->users.n && strcmp(ro->users.keys[j], ro->users.keys[i]) == 0; j++)
            ;
        if (!(key = malloc(klen)))
            return sgi_oom(err, "store", st->path);
        snprintf(key, klen, UCOUNT_PREFIX "%s", ro->users.keys[i]);
        snprintf(num, sizeof num, "%zu", j - i);
        rc = be->put(st, key, num, strlen(num), 0, err);
        free(key);
    }
    return rc;
}

/* See internal.h. */
sg_status sgi_counters_rebuild(sg_store *st, sg_error *err)
{
    sgi_counts c, old;
    uint64_t w_start, w_now, bytes;
    recount_out ro;
    sg_status rc;

    if (!st->cnt.real)
        return SG_OK;
    rc = recount(st, &c, &w_start, &ro, err);
    if (rc == SG_OK)
        rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK) {
        list_free(&ro.users);
        list_free(&ro.ucnt);
        return rc;
    }
    st->be->info(st, &bytes, &w_now);
    /* Only a count that no write overtook is right; under constant writes
     * the figures stay unused (stats walks) until a quieter repair. */
    if (w_now == w_start) {
        st->cnt.hold.active = 0;        /* these puts are the recount's own */
        rc = write_ucounts(st, &ro, err);
        st->cnt.hold.active = 1;
        /* The removals of expired records are history, not in the keys. */
        c.expired = counters_read(st, &old) == 0 ? old.expired : 0;
        if (rc == SG_OK) {
            st->cnt.hold.recount = c;
            st->cnt.hold.recounted = 1;
        } else
            st->cnt.hold.broken = 1;
    }
    sgi_unlock(st);
    list_free(&ro.users);
    list_free(&ro.ucnt);
    return rc;
}

/* See sessgate.h. */
sg_status sg_store_counters(sg_store *st, sg_counters *out, sg_error *err)
{
    sgi_counts c, old;
    sg_status rc;

    memset(out, 0, sizeof *out);
    if (strcmp(st->be->scheme, "gdbm") != 0) {
        /* Redis: records expire inside the server, so nothing is kept;
         * read every record (SCAN), as sg_store_stats does. */
        sg_stats s;

        rc = sg_store_stats(st, &s, err);
        out->sessions = s.sessions;
        out->anonymous = s.anonymous;
        out->users = s.users;
        out->writes = s.writes;
        out->file_bytes = s.file_bytes;
        return rc;
    }
    rc = sgi_lock(st, SGI_SHARED, err);
    if (rc != SG_OK)
        return rc;
    st->be->info(st, &out->file_bytes, &out->writes);
    if (counters_read(st, &c) == 0 && c.at == out->writes) {
        out->kept = 1;
        sgi_unlock(st);
    } else {
        uint64_t w_start;
        recount_out ro;

        c.expired = counters_read(st, &old) == 0 ? old.expired : 0;
        sgi_unlock(st);
        old = c;
        rc = recount(st, &c, &w_start, &ro, err);
        list_free(&ro.users);
        list_free(&ro.ucnt);
        c.expired = old.expired;
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

    if (strcmp(st->be->scheme, "gdbm") != 0)
        return sgi_err(err, SG_EINVAL, 0, "store %s: only a GDBM store keeps its "
                       "figures (Redis expires records inside the server)", st->path);
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only", st->path);
    if (!on) {
        rc = sgi_lock(st, SGI_EXCLUSIVE, err);
        if (rc != SG_OK)
            return rc;
        const sgi_backend *real = st->cnt.real ? st->cnt.real : st->be;
        st->cnt.hold.active = 0;
        rc = real->del(st, SGI_COUNTERS_KEY, err);
        if (rc == SG_ENOTFOUND)
            rc = SG_OK;
        sgi_unlock(st);
        if (st->cnt.real) {
            st->be = st->cnt.real;
            st->cnt.real = NULL;
        }
        return rc;
    }
    if (!st->cnt.real) {
        st->cnt.real = st->be;
        st->cnt.table = *st->be;
        st->cnt.table.put = cnt_put;
        st->cnt.table.del = cnt_del;
        st->be = &st->cnt.table;
    }
    /* A count that writes overtook is not written; try a few times. */
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
