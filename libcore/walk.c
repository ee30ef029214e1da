/*
 * walk.c - the whole-store operations: list, each (export), count, purge,
 * stats, compact and check.  Each is one visitor of walk(), the one loop
 * that reads records in chunks under the lock.
 *
 * Why chunks: list, count, export, purge, stats and check visit every session,
 * and a store of a real site's size has a million: holding the lock for the
 * whole walk kept every writer, and with an exclusive walk every gateway
 * read, waiting for seconds and then failing on the lock timeout.  So a
 * walk never holds the lock for more than a chunk of about WALK_HOLD_MS:
 * it collects the keys under the shared lock (the backend's keys_chunk,
 * which resumes where the last chunk stopped), then reads (or purges) the
 * records, each chunk under a lock of its own.  A
 * purge finds the expired sessions of a chunk under the shared lock and
 * takes the exclusive one only to delete those, checked again under it.
 *
 * What a walk sees of writes made during it (docs/sessgatectl.1): each
 * record is read as it is when its chunk is read, so a session changed
 * during the walk shows one of its states; one created during the walk may
 * or may not be listed, one deleted may or may not be; nothing is listed
 * twice; and every session that exists throughout the walk is listed.  For
 * that last promise the keys come from the backend's keys_snapshot when it
 * has one (GDBM: the keys as of one instant, from the checkpoint and the
 * log, read with no lock held; gdbm_snapshot.c): resuming GDBM's own
 * iteration between chunks (keys_chunk) misses sessions when a write
 * reorders the bucket the walk stands in, so that is only the fallback
 * for a store without a checkpoint or log.  Inside sg_store_begin chunks
 * do not release the lock and the walk is one state of the store.
 * Nothing a walk does relies on seeing what was created during it: purge
 * leaves those to the next purge, and check --repair removes an id from
 * an index only after reading its record under the exclusive lock.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A walk chunk holds the lock for about WALK_HOLD_MS, and reads at most
 * WALK_MAX records. */
#define WALK_HOLD_MS 8
#define WALK_KEYS    256    /* keys per keys_chunk call */
#define WALK_MAX     4096

void (*sgi_test_walk_pause)(sg_store *st);
int sgi_test_walk_chunked;
size_t sgi_test_walk_keys;

static int64_t walk_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a chunk begun at t0 that has read k records should end. */
static int chunk_over(int64_t t0, size_t k)
{
    return k >= WALK_MAX || (k % 16 == 0 && k > 0 && walk_ms() - t0 >= WALK_HOLD_MS);
}

/* Load a record for a whole-store walk.  SG_ENOTFOUND (skip it) for one
 * that is gone or damaged, *damaged (may be NULL) telling which: damage is
 * check's business and reported there, not an error of the walk.  Any
 * other failure (out of memory, I/O) is the walk's error: skipping the
 * record would give a false count, or check --repair would delete a sound
 * record. */
static sg_status walk_load(sg_store *st, const char *id, sg_session **s,
                           int *damaged, sg_error *err)
{
    int d;
    sg_error lerr = { 0 };
    sg_status rc = sgi_load_ex(st, id, s, &d, &lerr);
    if (damaged)
        *damaged = d;
    if (rc == SG_ENOTFOUND || d)
        return SG_ENOTFOUND;
    if (rc != SG_OK && err && err->code == SG_OK)
        *err = lerr;
    return rc;
}

/* A walk: what to do with each record, and after each chunk.  A visitor
 * embeds it as its first member. */
typedef struct walker walker;
struct walker {
    int mode;               /* SGI_SHARED, or SGI_EXCLUSIVE to change records */
    /* For each record that is there, under the chunk's lock (exclusive
     * walks) or just after it (shared ones): *s is the record, or NULL
     * for a damaged one.  The visitor may keep *s (and set
     * it to NULL); walk() frees what is left.  Not SG_OK: the walk ends. */
    sg_status (*visit)(walker *w, sg_store *st, const char *id,
                       sg_session **s, sg_error *err);
    /* After each chunk, its lock released (NULL: nothing to do). */
    sg_status (*chunk_end)(walker *w, sg_store *st, sg_error *err);
    int64_t now;            /* the store's clock when the chunk began */
    int stop;               /* set by a visitor: end the walk, SG_OK */
};

/* A record fetched under a chunk's lock, parsed after it (walk_shared). */
typedef struct fetched {
    size_t i;               /* its index in ids */
    char *text;             /* Owned */
    size_t len;
} fetched;

/* walk() for a shared walk with no lock of the caller's: each chunk's
 * records are only fetched under the lock, and parsed and visited after
 * it is released, so the lock is held for the reads alone (a walk is
 * CPU-bound: preempted, it is most likely holding the lock, and every
 * writer waits until it runs again). */
static sg_status walk_shared(sg_store *st, const sg_list *ids, walker *w,
                             sg_error *err)
{
    fetched *f = malloc(WALK_MAX * sizeof *f);
    if (!f)
        return sgi_oom(err, "store", st->path);
    sg_status rc = SG_OK;
    for (size_t i = 0; rc == SG_OK && !w->stop && i < ids->n; ) {
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        w->now = sgi_now(st);
        int64_t t0 = walk_ms();
        size_t k = 0;
        for (size_t in_chunk = 0; i < ids->n && !chunk_over(t0, in_chunk);
             i++, in_chunk++) {
            sg_error ferr = { 0 };
            sg_status frc = st->be->fetch(st, ids->ids[i], &f[k].text,
                                          &f[k].len, &ferr);
            if (frc == SG_ENOTFOUND)
                continue;
            if (frc != SG_OK) {
                rc = frc;
                if (err && err->code == SG_OK)
                    *err = ferr;
                break;
            }
            f[k++].i = i;
        }
        sgi_unlock(st);
        for (size_t j = 0; j < k; j++) {
            if (rc != SG_OK || w->stop) {
                free(f[j].text);
                continue;
            }
            const char *id = ids->ids[f[j].i];
            sg_session *s = NULL;
            int damaged;
            sg_error lerr = { 0 };
            sg_status lrc = sgi_load_text(st, id, f[j].text, f[j].len, &s,
                                          &damaged, &lerr);
            if (lrc != SG_OK && !damaged) {
                /* Out of memory: the walk's error (see walk_load). */
                rc = lrc;
                if (err && err->code == SG_OK)
                    *err = lerr;
                continue;
            }
            rc = w->visit(w, st, id, &s, err);
            sg_session_free(s);
        }
        if (rc == SG_OK && w->chunk_end)
            rc = w->chunk_end(w, st, err);
    }
    free(f);
    return rc;
}

/* The one walk: read the records of ids (gone ones skipped), a chunk under
 * one lock at a time, calling w->visit for each and w->chunk_end after
 * the chunk.  Under a caller's lock (sg_store_begin, the cap) the chunks'
 * locks only nest.  A shared walk visits with the chunk's lock released
 * (walk_shared); an exclusive one, which changes records, under it. */
static sg_status walk(sg_store *st, const sg_list *ids, walker *w,
                      sg_error *err)
{
    if (w->mode == SGI_SHARED && st->lock_mode == SGI_UNLOCKED)
        return walk_shared(st, ids, w, err);
    sg_status rc = SG_OK;
    for (size_t i = 0; rc == SG_OK && !w->stop && i < ids->n; ) {
        rc = sgi_lock(st, w->mode, err);
        if (rc != SG_OK)
            break;
        w->now = sgi_now(st);
        int64_t t0 = walk_ms();
        for (size_t in_chunk = 0; rc == SG_OK && !w->stop && i < ids->n &&
             !chunk_over(t0, in_chunk); i++, in_chunk++) {
            sg_session *s = NULL;
            int damaged;
            sg_status lrc = walk_load(st, ids->ids[i], &s, &damaged, err);
            if (lrc == SG_ENOTFOUND && !damaged)
                continue;
            if (lrc != SG_OK && lrc != SG_ENOTFOUND) {
                rc = lrc;
                break;
            }
            rc = w->visit(w, st, ids->ids[i], &s, err);
            sg_session_free(s);
        }
        sgi_unlock(st);
        if (rc == SG_OK && w->chunk_end)
            rc = w->chunk_end(w, st, err);
    }
    return rc;
}

static int by_created(const void *a, const void *b)
{
    const sgi_dated *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Whether s is live at now and belongs to user (NULL: anyone). */
static int live_of(const sg_session *s, int64_t now, const char *user)
{
    return sgi_live(s, now) &&
           (!user || (s->user && strcmp(s->user, user) == 0));
}

typedef struct live_walk {
    walker w;
    const char *user;       /* NULL: any */
    int64_t now;
    sgi_dated *d;
    size_t k;
} live_walk;

static sg_status live_visit(walker *w, sg_store *st, const char *id,
                            sg_session **s, sg_error *err)
{
    live_walk *lw = (live_walk *)w;
    (void)st, (void)id, (void)err;
    /* A damaged record is check's business (and reported there); it must
     * not stop an admin listing or exporting everything else. */
    if (*s && live_of(*s, lw->now, lw->user)) {
        lw->d[lw->k].created = (*s)->created;
        memcpy(lw->d[lw->k].id, (*s)->id, SG_ID_LEN + 1);
        lw->k++;
    }
    return SG_OK;
}

/* The live sessions among ids, belonging to user (NULL: any), oldest first.
 * New: *out (n entries). */
sg_status sgi_live_sorted(sg_store *st, const sg_list *ids, const char *user,
                          sgi_dated **out, size_t *n, sg_error *err)
{
    *out = NULL;
    *n = 0;
    live_walk lw = { { SGI_SHARED, live_visit, NULL, 0, 0 }, user,
                     sgi_now(st), NULL, 0 };
    if (!(lw.d = malloc((ids->n ? ids->n : 1) * sizeof *lw.d)))
        return sgi_oom(err, "store", st->path);
    sg_status rc = walk(st, ids, &lw.w, err);
    if (rc != SG_OK) {
        free(lw.d);
        return rc;
    }
    qsort(lw.d, lw.k, sizeof *lw.d, by_created);
    *out = lw.d;
    *n = lw.k;
    return SG_OK;
}

/* ------------------------------------------------------ collecting keys */

typedef struct user_walk {
    char **users;
    size_t n, cap;
    int oom;
} user_walk;

/* Append a copy of name to w; 0, or -1 without memory. */
static int name_push(user_walk *w, const char *name)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        char **p = realloc(w->users, cap * sizeof *p);
        if (!p)
            return -1;
        w->users = p;
        w->cap = cap;
    }
    if (!(w->users[w->n] = strdup(name)))
        return -1;
    w->n++;
    return 0;
}

static int collect_user_key(const char *key, size_t len, void *arg)
{
    user_walk *w = arg;
    /* An index in any format: a Redis set "uidx:NAME", the first slot
     * "us:G:0:NAME" of a GDBM array, or an old "user:NAME". */
    size_t plen = sizeof SGI_INDEX_PREFIX - 1;
    if (len > 3 && memcmp(key, "us:", 3) == 0) {
        plen = 3;
        while (plen < len && key[plen] >= '0' && key[plen] <= '9')
            plen++;
        if (plen == 3 || len <= plen + 3 || memcmp(key + plen, ":0:", 3) != 0)
            return 0;
        plen += 3;
    } else if (len <= plen || memcmp(key, SGI_INDEX_PREFIX, plen) != 0) {
        plen = sizeof SGI_USER_PREFIX - 1;
        if (len <= plen || memcmp(key, SGI_USER_PREFIX, plen) != 0)
            return 0;
    }
    if (name_push(w, key + plen) < 0) {
        w->oom = 1;
        return 1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_users(user_walk *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->users[i]);
    free(w->users);
}

typedef struct key_walk {
    sg_list *ids;
    user_walk *users;       /* NULL: session keys only */
    user_walk *aliases;     /* NULL: no rotation aliases */
    int oom;
} key_walk;

static int collect_key(const char *key, size_t len, void *arg)
{
    key_walk *w = arg;
    size_t alen = sizeof SGI_ALIAS_PREFIX - 1;
    if (w->aliases && len == alen + SG_ID_LEN &&
        memcmp(key, SGI_ALIAS_PREFIX, alen) == 0) {
        if (name_push(w->aliases, key) < 0) {
            w->oom = 1;
            return 1;
        }
        return 0;
    }
    if (len == SG_ID_LEN && sg_id_valid(key)) {
        if (sgi_list_push(w->ids, key) < 0) {
            w->oom = 1;
            return 1;
        }
        return 0;
    }
    return w->users ? collect_user_key(key, len, w->users) : 0;
}

static void cursor_free(sgi_cursor *c)
{
    for (int i = 0; i < c->nlast; i++)
        free(c->last[i]);
    c->nlast = 0;
}

/* Every session key in the store, sorted, each once, and with users the
 * name of every per-user index (sorted, each once), collected in chunks.
 * With snapshot, the keys as of one instant when the backend can tell
 * them (keys_snapshot: the keys the store's history holds); without, the
 * keys of the file itself, for check, whose business is also a record
 * written there behind the library's back.  New: *out (and
 * users->users). */
static sg_status all_keys(sg_store *st, sg_list **out, user_walk *users,
                          user_walk *aliases, int snapshot, sg_error *err)
{
    *out = NULL;
    key_walk w = { sgi_list_new(), users, aliases, 0 };
    if (!w.ids)
        return sgi_oom(err, "store", st->path);
    sg_status rc = SG_ENOTFOUND;
    /* A snapshot when the backend can take one and no caller's lock makes
     * the walk consistent anyway (see the top). */
    if (snapshot && st->be->keys_snapshot && st->lock_mode == SGI_UNLOCKED &&
        !sgi_test_walk_chunked)
        rc = st->be->keys_snapshot(st, collect_key, &w, err);
    if (rc != SG_ENOTFOUND) {
        /* done, or failed */
    } else if ((rc = SG_OK, st->be->keys_chunk)) {
        sgi_cursor c;
        memset(&c, 0, sizeof c);
        while (rc == SG_OK && !c.done) {
            rc = sgi_lock(st, SGI_SHARED, err);
            if (rc != SG_OK)
                break;
            int64_t t0 = walk_ms();
            size_t max = sgi_test_walk_keys ? sgi_test_walk_keys : WALK_KEYS;
            do
                rc = st->be->keys_chunk(st, &c, max, collect_key, &w, err);
            while (rc == SG_OK && !c.done && !sgi_test_walk_keys &&
                   walk_ms() - t0 < WALK_HOLD_MS);
            sgi_unlock(st);
            if (rc == SG_OK && !c.done && sgi_test_walk_pause)
                sgi_test_walk_pause(st);
        }
        cursor_free(&c);
    } else {
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc == SG_OK) {
            rc = st->be->keys(st, collect_key, &w, err);
            sgi_unlock(st);
        }
    }
    if (rc == SG_OK && (w.oom || (users && users->oom)))
        rc = sgi_oom(err, "store", st->path);
    if (rc != SG_OK) {
        sg_list_free(w.ids);
        if (users) {
            free_users(users);
            memset(users, 0, sizeof *users);
        }
        if (aliases) {
            free_users(aliases);
            memset(aliases, 0, sizeof *aliases);
        }
        return rc;
    }
    sgi_list_sort_unique(w.ids);
    if (users && users->n > 1) {
        qsort(users->users, users->n, sizeof *users->users, by_name);
        size_t j = 1;
        for (size_t i = 1; i < users->n; i++) {
            if (strcmp(users->users[i], users->users[j - 1]) == 0)
                free(users->users[i]);
            else
                users->users[j++] = users->users[i];
        }
        users->n = j;
    }
    *out = w.ids;
    return SG_OK;
}

/* ------------------------------------------------------ whole-store ops */

/* Live sessions (of user, or all), oldest first.  New: *out. */
sg_status sg_store_list(sg_store *st, const char *user, sg_list **out,
                        sg_error *err)
{
    *out = NULL;
    sg_list *ids = NULL;
    sg_status rc;
    if (user) {
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc == SG_OK) {
            rc = sgi_index_ids(st, user, &ids, err);
            sgi_unlock(st);
        }
    } else {
        rc = all_keys(st, &ids, NULL, NULL, 1, err);
    }
    sgi_dated *d = NULL;
    size_t n = 0;
    if (rc == SG_OK) {
        rc = sgi_live_sorted(st, ids, user, &d, &n, err);
        sg_list_free(ids);
    }
    if (rc != SG_OK)
        return rc;
    sg_list *l = sgi_list_new();
    for (size_t i = 0; l && i < n; i++)
        if (sgi_list_push(l, d[i].id) < 0) {
            sg_list_free(l);
            l = NULL;
        }
    free(d);
    if (!l)
        return sgi_oom(err, "store", st->path);
    *out = l;
    return SG_OK;
}

typedef struct each_walk {
    walker w;
    const char *user;
    sg_each_fn fn;
    void *arg;
    sg_session **chunk;     /* the chunk's live sessions, owned */
    size_t k;
} each_walk;

static sg_status each_visit(walker *w, sg_store *st, const char *id,
                            sg_session **s, sg_error *err)
{
    each_walk *ew = (each_walk *)w;
    (void)st, (void)id, (void)err;
    if (*s && live_of(*s, w->now, ew->user)) {
        ew->chunk[ew->k++] = *s;
        *s = NULL;
    }
    return SG_OK;
}

/* fn runs here, with the lock released. */
static sg_status each_chunk_end(walker *w, sg_store *st, sg_error *err)
{
    each_walk *ew = (each_walk *)w;
    (void)st, (void)err;
    for (size_t j = 0; j < ew->k; j++) {
        if (!w->stop)
            w->stop = ew->fn(ew->chunk[j], ew->arg) != 0;
        sg_session_free(ew->chunk[j]);
    }
    ew->k = 0;
    return SG_OK;
}

/* Call fn for each live session (of user, or all), oldest first.  A chunk
 * of sessions is loaded under the shared lock, and fn runs for them after
 * it is released: fn may block (writing to a pipe) for as long as it
 * likes. */
sg_status sg_store_each(sg_store *st, const char *user, sg_each_fn fn,
                        void *arg, sg_error *err)
{
    sg_list *l;
    sg_status rc = sg_store_list(st, user, &l, err);
    if (rc != SG_OK)
        return rc;
    each_walk ew = { { SGI_SHARED, each_visit, each_chunk_end, 0, 0 },
                     user, fn, arg, malloc(WALK_MAX * sizeof(sg_session *)), 0 };
    if (!ew.chunk) {
        sg_list_free(l);
        return sgi_oom(err, "store", st->path);
    }
    rc = walk(st, l, &ew.w, err);
    for (size_t j = 0; j < ew.k; j++)       /* a chunk cut by an error */
        sg_session_free(ew.chunk[j]);
    free(ew.chunk);
    sg_list_free(l);
    return rc;
}

/* Count live sessions, all or of one user. */
sg_status sg_store_count(sg_store *st, const char *user, size_t *out,
                         sg_error *err)
{
    sg_list *l;
    sg_status rc = sg_store_list(st, user, &l, err);
    if (rc != SG_OK)
        return rc;
    *out = l->n;
    sg_list_free(l);
    return SG_OK;
}

typedef struct purge_walk {
    walker w;
    int64_t now;            /* one reading for the whole purge */
    sg_list dead;           /* the chunk's expired ids */
    size_t count;
    user_walk due;          /* users whose index compaction is due */
} purge_walk;

/* Under the shared lock: note the expired. */
static sg_status purge_find(walker *w, sg_store *st, const char *id,
                            sg_session **s, sg_error *err)
{
    purge_walk *pw = (purge_walk *)w;
    (void)id;
    if (*s && !sgi_live(*s, pw->now) && sgi_list_push(&pw->dead, (*s)->id) < 0)
        return sgi_oom(err, "store", st->path);
    return SG_OK;
}

typedef struct purge_del {
    walker w;
    purge_walk *pw;
} purge_del;

/* Under the exclusive lock, each read again first: it may have been
 * touched or deleted since. */
static sg_status purge_delete(walker *w, sg_store *st, const char *id,
                              sg_session **s, sg_error *err)
{
    purge_walk *pw = ((purge_del *)w)->pw;
    (void)id;
    if (!*s || sgi_live(*s, pw->now))
        return SG_OK;
    sg_status rc = st->be->del(st, (*s)->id, err);
    if (rc == SG_ENOTFOUND)
        rc = SG_OK;
    int due = 0;
    if (rc == SG_OK && (*s)->user)
        rc = sgi_index_remove_later(st, (*s)->user, (*s)->id, &due, err);
    if (rc == SG_OK && due && name_push(&pw->due, (*s)->user) < 0)
        rc = sgi_oom(err, "store", st->path);
    if (rc == SG_OK)
        pw->count++;
    return rc;
}

/* The chunk's expired sessions deleted, under the exclusive lock. */
static sg_status purge_chunk_end(walker *w, sg_store *st, sg_error *err)
{
    purge_walk *pw = (purge_walk *)w;
    if (pw->dead.n == 0)
        return SG_OK;
    purge_del del = { { SGI_EXCLUSIVE, purge_delete, NULL, 0, 0 }, pw };
    sg_status rc = walk(st, &pw->dead, &del.w, err);
    pw->dead.n = 0;
    /* A big index's compaction, which a delete above made due, in slices
     * of its own (index.c): inside the delete's exclusive step it kept
     * everyone out for O(the user's sessions). */
    for (size_t i = 0; i < pw->due.n; i++) {
        if (rc == SG_OK)
            rc = sgi_index_compact(st, pw->due.users[i], err);
        free(pw->due.users[i]);
    }
    pw->due.n = 0;
    return rc;
}

/* Remove expired sessions and their index entries, a chunk at a time: the
 * expired ones are found under the shared lock, and the exclusive one is
 * taken only to delete those, checked again under it. */
sg_status sg_store_purge(sg_store *st, size_t *removed, sg_error *err)
{
    if (removed)
        *removed = 0;
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only",
                       st->path);
    sg_list *ids;
    user_walk aliases = { 0 };
    sg_status rc = all_keys(st, &ids, NULL, st->opt.rotate_grace > 0 ?
                            &aliases : NULL, 1, err);
    if (rc != SG_OK)
        return rc;
    purge_walk pw = { { SGI_SHARED, purge_find, purge_chunk_end, 0, 0 },
                      sgi_now(st), { 0, 0, NULL }, 0, { 0 } };
    st->walking++;          /* its exclusive holds leave gaps (store.c) */
    rc = walk(st, ids, &pw.w, err);
    free(pw.dead.ids);
    free_users(&pw.due);
    sg_list_free(ids);
    /* Rotation grace aliases whose window has closed, found by the same
     * key walk (it used to be a walk of every key under the exclusive
     * lock: seconds on a store of a million sessions), each resolved
     * again under the exclusive lock, a batch at a time.  Best effort. */
    for (size_t i = 0; rc == SG_OK && i < aliases.n; ) {
        if (sgi_lock(st, SGI_EXCLUSIVE, NULL) != SG_OK)
            break;
        int64_t t0 = walk_ms();
        for (size_t k = 0; i < aliases.n && !chunk_over(t0, k); i++, k++) {
            char id[SG_ID_LEN + 1];
            const char *key = aliases.users[i];
            if (sgi_alias_resolve(st, key + sizeof SGI_ALIAS_PREFIX - 1,
                                  id) != SG_OK)
                (void)st->be->del(st, key, NULL);
        }
        sgi_unlock(st);
    }
    st->walking--;
    free_users(&aliases);
    if (removed)
        *removed = pw.count;
    return rc;
}

typedef struct stats_walk {
    walker w;
    int64_t now;
    sg_stats *out;
} stats_walk;

static sg_status stats_visit(walker *w, sg_store *st, const char *id,
                             sg_session **s, sg_error *err)
{
    stats_walk *sw = (stats_walk *)w;
    (void)st, (void)id, (void)err;
    if (!*s)
        return SG_OK;       /* damaged: check's business */
    sw->out->sessions++;
    if (sgi_live(*s, sw->now)) {
        sw->out->live++;
        if (!(*s)->user)
            sw->out->anonymous++;
    } else {
        sw->out->expired++;
    }
    return SG_OK;
}

/* Store figures (one full walk, in chunks). */
sg_status sg_store_stats(sg_store *st, sg_stats *out, sg_error *err)
{
    memset(out, 0, sizeof *out);
    sg_list *ids;
    user_walk w = { 0 };
    sg_status rc = all_keys(st, &ids, &w, NULL, 1, err);
    if (rc != SG_OK)
        return rc;
    stats_walk sw = { { SGI_SHARED, stats_visit, NULL, 0, 0 }, sgi_now(st), out };
    rc = walk(st, ids, &sw.w, err);
    /* Users with at least one live session. */
    for (size_t i = 0; rc == SG_OK && i < w.n; i++) {
        sg_list *uids = NULL;
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        rc = sgi_index_ids(st, w.users[i], &uids, err);
        sgi_unlock(st);
        sgi_dated *d;
        size_t n;
        if (rc == SG_OK)
            rc = sgi_live_sorted(st, uids, w.users[i], &d, &n, err);
        sg_list_free(uids);
        if (rc == SG_OK) {
            out->users += n > 0;
            free(d);
        }
    }
    free_users(&w);
    sg_list_free(ids);
    if (rc == SG_OK && (rc = sgi_lock(st, SGI_SHARED, err)) == SG_OK) {
        st->be->info(st, &out->file_bytes, &out->writes);
        sgi_unlock(st);
    }
    return rc;
}

typedef struct owned { const char *user; char id[SG_ID_LEN + 1]; } owned;

static int by_owner(const void *a, const void *b)
{
    const owned *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    return c ? c : memcmp(x->id, y->id, SG_ID_LEN);
}

/* Compact; nothing to do without a backend op.  The backend takes the
 * locks it needs (GDBM builds the new file behind the lock, writers going
 * on), or works under the exclusive hold of an sg_store_begin. */
sg_status sg_store_compact(sg_store *st, sg_compact_report *out,
                           sg_error *err)
{
    sg_compact_report rep;
    memset(&rep, 0, sizeof rep);
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only; "
                       "cannot compact", st->path);
    sg_status rc = SG_OK;
    if (st->be->compact) {
        int held = st->lock_mode != SGI_UNLOCKED;
        if (held && (rc = sgi_lock(st, SGI_EXCLUSIVE, err)) != SG_OK)
            return rc;
        rc = st->be->compact(st, &rep, err);
        if (held)
            sgi_unlock(st);
    }
    if (out)
        *out = rep;
    return rc;
}

typedef struct check_walk {
    walker w;
    int repair;
    sg_check_report *rep;
    /* (user, id) of every record that names a user, to rebuild the
     * indexes from; user names borrowed from names. */
    owned *own;
    size_t nown, capown;
    user_walk names;
    sg_list bad;            /* the chunk's damaged ids (repair) */
    sg_list old;            /* the chunk's records in an older format (repair) */
} check_walk;

/* Under the shared lock: count, note the damaged and the owners. */
static sg_status check_visit(walker *w, sg_store *st, const char *id,
                             sg_session **s, sg_error *err)
{
    check_walk *cw = (check_walk *)w;
    cw->rep->records++;
    if (!*s) {
        cw->rep->bad_records++;
        if (cw->repair && sgi_list_push(&cw->bad, id) < 0)
            return sgi_oom(err, "store", st->path);
        return SG_OK;
    }
    if ((*s)->format != SGI_FORMAT_CURRENT) {
        cw->rep->old_format++;
        if (cw->repair && sgi_list_push(&cw->old, id) < 0)
            return sgi_oom(err, "store", st->path);
    }
    if (!cw->repair || !(*s)->user)
        return SG_OK;
    if (cw->nown == cw->capown) {
        size_t cap = cw->capown ? cw->capown * 2 : 64;
        owned *p = realloc(cw->own, cap * sizeof *p);
        if (!p)
            return sgi_oom(err, "store", st->path);
        cw->own = p;
        cw->capown = cap;
    }
    /* A copy of the name, shared with the previous record when it has
     * the same owner. */
    user_walk *names = &cw->names;
    if ((names->n == 0 || strcmp(names->users[names->n - 1], (*s)->user) != 0) &&
        name_push(names, (*s)->user) < 0)
        return sgi_oom(err, "store", st->path);
    cw->own[cw->nown].user = names->users[names->n - 1];
    memcpy(cw->own[cw->nown].id, (*s)->id, SG_ID_LEN + 1);
    cw->nown++;
    return SG_OK;
}

/* Under the exclusive lock: a record still damaged is deleted; one
 * rewritten since is sound now. */
static sg_status check_delete(walker *w, sg_store *st, const char *id,
                              sg_session **s, sg_error *err)
{
    (void)w;
    if (*s)
        return SG_OK;
    sg_status rc = st->be->del(st, id, err);
    return rc == SG_ENOTFOUND ? SG_OK : rc;
}

/* Under the exclusive lock: a record still in an older format is written
 * again as it is, in the current one (same version: nothing about the
 * session changes, so no copy of it held elsewhere conflicts). */
static sg_status check_convert(walker *w, sg_store *st, const char *id,
                               sg_session **s, sg_error *err)
{
    (void)w, (void)id;
    if (!*s || (*s)->format == SGI_FORMAT_CURRENT)
        return SG_OK;
    return sgi_put(st, *s, err);
}

/* The chunk's damaged records deleted and its old-format ones converted,
 * under the exclusive lock. */
static sg_status check_chunk_end(walker *w, sg_store *st, sg_error *err)
{
    check_walk *cw = (check_walk *)w;
    sg_status rc = SG_OK;
    if (cw->bad.n > 0) {
        walker del = { SGI_EXCLUSIVE, check_delete, NULL, 0, 0 };
        rc = walk(st, &cw->bad, &del, err);
        cw->bad.n = 0;
    }
    if (rc == SG_OK && cw->old.n > 0) {
        walker conv = { SGI_EXCLUSIVE, check_convert, NULL, 0, 0 };
        rc = walk(st, &cw->old, &conv, err);
        cw->old.n = 0;
    }
    return rc;
}

/* Each user's index rebuilt from the records' owners (own, nown), each
 * under locks of its own (a big one in slices): the owners in order of name, then the users of
 * indexed (names of every index, sorted) that have no session. */
static sg_status rebuild_indexes(sg_store *st, owned *own, size_t nown,
                                 const user_walk *indexed, sg_error *err)
{
    sg_status rc = SG_OK;
    user_walk w = *indexed;
    if (nown > 1)
        qsort(own, nown, sizeof *own, by_owner);
    sg_list want = { 0, 0, NULL };
    for (size_t i = 0; rc == SG_OK && i < nown; ) {
        size_t j = i;
        want.n = 0;
        for (; j < nown && strcmp(own[j].user, own[i].user) == 0; j++)
            if (sgi_list_push(&want, own[j].id) < 0) {
                rc = sgi_oom(err, "store", st->path);
                break;
            }
        if (rc == SG_OK) {      /* (it takes the locks it needs) */
            sgi_list_sort_unique(&want);
            rc = sgi_index_rebuild(st, own[i].user, &want, err);
        }
        i = j;
    }
    free(want.ids);
    for (size_t i = 0; rc == SG_OK && i < w.n; i++) {
        owned key;
        key.user = w.users[i];
        memset(key.id, 0, sizeof key.id);
        size_t lo = 0, hi = nown;    /* first entry of user w.users[i] */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(own[mid].user, key.user) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nown && strcmp(own[lo].user, key.user) == 0)
            continue;
        sg_list empty = { 0, 0, NULL };   /* a user with no session */
        rc = sgi_index_rebuild(st, w.users[i], &empty, err);
    }
    return rc;
}

/* Verify every record; with repair, rebuild the file, drop unparsable
 * records and rebuild the per-user index from the records.  The walk is
 * chunked like every other; what repair deletes or drops from an index it
 * reads again under the exclusive lock first. */
sg_status sg_store_check(sg_store *st, int repair, sg_check_report *out,
                         sg_error *err)
{
    sg_check_report rep;
    memset(&rep, 0, sizeof rep);
    if (repair && st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only; "
                       "cannot repair", st->path);
    /* The backend takes the locks it needs (GDBM rebuilds the file behind
     * the lock when it can, writers going on). */
    sg_status rc = repair ? st->be->check(st, 1, &rep, err) : SG_OK;
    st->walking++;          /* its exclusive holds leave gaps (store.c) */
    sg_list *ids = NULL;
    user_walk w = { 0 };
    if (rc == SG_OK)
        rc = all_keys(st, &ids, repair ? &w : NULL, NULL, 0, err);
    check_walk cw;
    memset(&cw, 0, sizeof cw);
    cw.w = (walker){ SGI_SHARED, check_visit, check_chunk_end, 0, 0 };
    cw.repair = repair;
    cw.rep = &rep;
    if (rc == SG_OK)
        rc = walk(st, ids, &cw.w, err);
    free(cw.bad.ids);
    free(cw.old.ids);
    if (rc == SG_OK)
        rc = rebuild_indexes(st, cw.own, cw.nown, &w, err);
    free(cw.own);
    free_users(&cw.names);
    free_users(&w);
    sg_list_free(ids);
    /* Repair recounts the kept figures (counters.c), chunked like the
     * walks above. */
    if (rc == SG_OK && repair)
        rc = sgi_counters_rebuild(st, err);
    st->walking--;
    if (out)
        *out = rep;
    if (rc == SG_OK && rep.bad_records && !repair)
        return sgi_err(err, SG_ESTORE, 0, "store %s: %zu damaged record(s) "
                       "(run sessgatectl check --repair)", st->path,
                       rep.bad_records);
    return rc;
}
