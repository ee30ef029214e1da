/*
 * index.c - the per-user index: which sessions a user has, for list --user,
 * count, the per-user cap and "log out everywhere".
 *
 * The index is kept a superset of the user's sessions: ids are added before
 * the session is written and removed after it is deleted, so a process
 * killed between the two leaves at worst a stale id, which every reader
 * verifies and purge removes.  GDBM has no multi-key transactions; this
 * ordering is what makes that safe.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ per-user index */

/*
 * A user's index is a set of session ids that costs O(1) (GDBM: O(log n)
 * fetches and one put) per add and per remove, so a busy account (an API
 * client, a kiosk login) costs about what anyone else does per create.  On
 * Redis it is a SET under "uidx:NAME" (the backend's set_* functions:
 * SADD, SREM, SMEMBERS, SCARD).  On a backend without sets (GDBM) it is an
 * append-only array of slots in plain keys:
 *     "ugen:NAME"        -> "G R": the array's generation G, and R, the
 *                           removes counted since it was written
 *     "us:G:I:NAME"      -> the id in slot I of generation G; the slots of
 *                           a generation are 0..n-1, with no hole
 * An add finds n by probing (exponential, then binary search: O(log n)
 * fetches, which cost far less than a write) and writes slot n: one put,
 * the fewest there can be.  A remove only counts: R+1 in "ugen:NAME" (the
 * id stays, as a stale entry, which every reader verifies anyway).  When R
 * passes half of n, the array is compacted: the ids whose records are
 * still the user's are written as generation G+1, "ugen:NAME" switched to
 * it, and the old slots deleted; O(n), once per n/2 removes, so O(1) per
 * remove amortised, and the index stays within about twice the user's
 * sessions.  Each key names the user last, after parts of fixed shape
 * (decimal numbers ended by ':'), so no two (generation, slot, user) share
 * a key whatever bytes a name holds, and no key has the shape of an id.
 *
 * Crashes.  Each put is durable, the sequence is not.  An add is one put.
 * A compaction writes the new generation whole before it switches to it,
 * and deletes the old one after: cut anywhere, the index in use is the
 * old one or the new one, both supersets; a cut cleanup leaves dead keys
 * of an old generation behind, nothing worse.  Readers drop duplicates.
 *
 * The old format, one key "user:NAME" holding a JSON array of every id,
 * made each create rewrite the whole array: quadratic in a user's session
 * count.  It is still read (its ids join the set), and converted on the
 * first write to that user's index, or by check --repair.
 */

static char *keyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* New: a key from a format, or NULL without memory. */
static char *keyf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *k = malloc((size_t)n + 1);
    if (!k)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(k, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return k;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Append to l the ids in old-format index text: a JSON array of strings
 * (whitespace allowed); strings that are not ids are skipped.  0; 1 when
 * the text is not such an array; -1 without memory.  Parsed here rather
 * than by jansson, which under memory pressure can drop a byte of an id
 * without noticing (see json.c). */
static int index_parse(const char *p, const char *end, sg_list *l)
{
    p = skip_space(p, end);
    if (p == end || *p++ != '[')
        return 1;
    p = skip_space(p, end);
    if (p < end && *p == ']')
        return skip_space(p + 1, end) == end ? 0 : 1;
    for (;;) {
        p = skip_space(p, end);
        if (p == end || *p != '"')
            return 1;
        const char *start = ++p;
        while (p < end && *p != '"')
            p += *p == '\\' && p + 1 < end ? 2 : 1;
        if (p >= end)
            return 1;
        if (p - start == SG_ID_LEN) {
            char id[SG_ID_LEN + 1];
            memcpy(id, start, SG_ID_LEN);
            id[SG_ID_LEN] = '\0';
            if (sg_id_valid(id) && sgi_list_push(l, id) < 0)
                return -1;
        }
        p = skip_space(p + 1, end);
        if (p < end && *p == ']')
            return skip_space(p + 1, end) == end ? 0 : 1;
        if (p == end || *p++ != ',')
            return 1;
    }
}

static sg_status del_quiet(sg_store *st, const char *key, sg_error *err)
{
    sg_status rc = st->be->del(st, key, err);
    return rc == SG_ENOTFOUND ? SG_OK : rc;
}

/* Fetch key (owned: freed here; NULL means out of memory).  *text is new,
 * or NULL when the key is absent, which is not an error. */
static sg_status fetch_owned(sg_store *st, char *key, char **text,
                             size_t *len, sg_error *err)
{
    *text = NULL;
    if (!key)
        return sgi_oom(err, "store", st->path);
    sg_status rc = st->be->fetch(st, key, text, len, err);
    free(key);
    if (rc == SG_ENOTFOUND) {
        *text = NULL;
        return SG_OK;
    }
    return rc;
}

/* The array's generation and remove count ("ugen:NAME"; absent: 0 0). */
static sg_status meta_get(sg_store *st, const char *user, size_t *gen,
                          size_t *removed, sg_error *err)
{
    *gen = *removed = 0;
    char *text;
    size_t len;
    sg_status rc = fetch_owned(st, keyf(SGI_GEN_PREFIX "%s", user), &text,
                               &len, err);
    if (rc != SG_OK || !text)
        return rc;
    unsigned long long g = 0, r = 0;
    if (sscanf(text, "%llu %llu", &g, &r) == 2 && g < SIZE_MAX && r < SIZE_MAX) {
        *gen = (size_t)g;
        *removed = (size_t)r;
    }
    free(text);
    return SG_OK;
}

static sg_status meta_put(sg_store *st, const char *user, size_t gen,
                          size_t removed, sg_error *err)
{
    char *key = keyf(SGI_GEN_PREFIX "%s", user);
    if (!key)
        return sgi_oom(err, "store", st->path);
    char buf[48];
    int len = snprintf(buf, sizeof buf, "%zu %zu", gen, removed);
    sg_status rc = st->be->put(st, key, buf, (size_t)len, 0, err);
    free(key);
    return rc;
}

/* Slot i of generation gen into id[] ("" when it holds no id); *exists
 * whether the key is there at all. */
static sg_status slot_get(sg_store *st, const char *user, size_t gen,
                          size_t i, char id[SG_ID_LEN + 1], int *exists,
                          sg_error *err)
{
    id[0] = '\0';
    *exists = 0;
    char *text;
    size_t len;
    sg_status rc = fetch_owned(st, keyf("us:%zu:%zu:%s", gen, i, user),
                               &text, &len, err);
    if (rc != SG_OK || !text)
        return rc;
    *exists = 1;
    if (len == SG_ID_LEN) {
        memcpy(id, text, SG_ID_LEN);
        id[SG_ID_LEN] = '\0';
        if (!sg_id_valid(id))
            id[0] = '\0';
    }
    free(text);
    return SG_OK;
}

/* Remember n slots for user's generation gen (best effort). */
static void hint_set(sg_store *st, const char *user, size_t gen, size_t n)
{
    if (!st->hint_user || strcmp(st->hint_user, user) != 0) {
        free(st->hint_user);
        st->hint_user = strdup(user);
    }
    st->hint_gen = gen;
    st->hint_n = n;
}

/* The number of slots of generation gen: the first absent one, found by
 * doubling, then bisecting (slots are written in order, never with a
 * hole), in O(log n) fetches.  The handle remembers the last array it
 * sized: a user's creates in a row (the busy account) then cost two
 * fetches here, and the guess is checked, never trusted. */
static sg_status slot_count(sg_store *st, const char *user, size_t gen,
                            size_t *n, sg_error *err)
{
    char id[SG_ID_LEN + 1];
    int ex;
    *n = 0;
    sg_status rc;
    size_t lo = 0, hi = 1;          /* slot lo exists; is hi there? */
    if (st->hint_user && st->hint_n > 0 && st->hint_gen == gen &&
        strcmp(st->hint_user, user) == 0) {
        rc = slot_get(st, user, gen, st->hint_n - 1, id, &ex, err);
        if (rc != SG_OK)
            return rc;
        if (ex) {
            lo = st->hint_n - 1;
            hi = st->hint_n;
        }
    }
    if (lo == 0) {
        rc = slot_get(st, user, gen, 0, id, &ex, err);
        if (rc != SG_OK || !ex)
            return rc;
    }
    for (size_t step = hi - lo; ; step *= 2) {
        rc = slot_get(st, user, gen, hi, id, &ex, err);
        if (rc != SG_OK)
            return rc;
        if (!ex)
            break;
        lo = hi;
        hi = lo + 2 * step;
    }
    while (hi - lo > 1) {           /* lo exists, hi does not */
        size_t mid = lo + (hi - lo) / 2;
        rc = slot_get(st, user, gen, mid, id, &ex, err);
        if (rc != SG_OK)
            return rc;
        if (ex)
            lo = mid;
        else
            hi = mid;
    }
    *n = hi;
    hint_set(st, user, gen, hi);
    return SG_OK;
}

static sg_status slot_put(sg_store *st, const char *user, size_t gen,
                          size_t i, const char *id, sg_error *err)
{
    char *key = keyf("us:%zu:%zu:%s", gen, i, user);
    if (!key)
        return sgi_oom(err, "store", st->path);
    sg_status rc = st->be->put(st, key, id, SG_ID_LEN, 0, err);
    free(key);
    return rc;
}

/* Append the ids of generation gen (n slots) to l. */
static sg_status slots_read(sg_store *st, const char *user, size_t gen,
                            size_t n, sg_list *l, sg_error *err)
{
    sg_status rc = SG_OK;
    for (size_t i = 0; rc == SG_OK && i < n; i++) {
        char id[SG_ID_LEN + 1];
        int ex;
        rc = slot_get(st, user, gen, i, id, &ex, err);
        if (rc == SG_OK && id[0] && sgi_list_push(l, id) < 0)
            rc = sgi_oom(err, "store", st->path);
    }
    return rc;
}

void (*sgi_test_index_pause)(sg_store *st, const char *user);

/* Count k items of compaction work (slot reads, ownership checks, slot
 * writes and deletes) done inside the current lock hold. */
static void work(sg_store *st, size_t k)
{
    st->index_work += k;
    if (st->index_work > st->index_work_max)
        st->index_work_max = st->index_work;
}

/* Replace user's array (generation gen, n slots) by the ids of l, as the
 * next generation: written whole, switched to, then the old slots
 * deleted.  Caller holds the exclusive lock. */
static sg_status array_rewrite(sg_store *st, const char *user, size_t gen,
                               size_t n, const sg_list *l, sg_error *err)
{
    sg_status rc = SG_OK;
    work(st, l->n + n);
    for (size_t i = 0; rc == SG_OK && i < l->n; i++)
        rc = slot_put(st, user, gen + 1, i, l->ids[i], err);
    if (rc == SG_OK && l->n == 0) {
        /* Why: a user with no session left must leave no key behind, or
         * the store keeps one "ugen:NAME" per user it ever saw.  The
         * array starts again at generation 0; a slot of an old generation
         * 0 that a cut cleanup left is a stale entry, which readers verify
         * and the next compaction deletes. */
        char *key = keyf(SGI_GEN_PREFIX "%s", user);
        rc = key ? del_quiet(st, key, err) : sgi_oom(err, "store", st->path);
        free(key);
        if (rc == SG_OK)
            hint_set(st, user, 0, 0);
    } else if (rc == SG_OK) {
        rc = meta_put(st, user, gen + 1, 0, err);
        if (rc == SG_OK)
            hint_set(st, user, gen + 1, l->n);
    }
    for (size_t i = 0; rc == SG_OK && i < n; i++) {
        char *key = keyf("us:%zu:%zu:%s", gen, i, user);
        rc = key ? del_quiet(st, key, err) : sgi_oom(err, "store", st->path);
        free(key);
    }
    return rc;
}

/* Whether id's record exists and belongs to user.  *mine; an error other
 * than a missing or damaged record is returned. */
static sg_status owned_by(sg_store *st, const char *id, const char *user,
                          int *mine, sg_error *err)
{
    sg_session *s;
    int damaged;
    sg_error lerr = { 0 };
    *mine = 0;
    sg_status rc = sgi_load_ex(st, id, &s, &damaged, &lerr);
    if (rc == SG_OK) {
        *mine = s->user && strcmp(s->user, user) == 0;
        sg_session_free(s);
        return SG_OK;
    }
    if (rc == SG_ENOTFOUND || damaged)
        return SG_OK;
    if (err && err->code == SG_OK)
        *err = lerr;
    return rc;
}

/* Compact user's array: keep, once each, the ids whose records are still
 * the user's, plus those of keep (sorted; may be NULL). */
static sg_status array_compact(sg_store *st, const char *user, size_t gen,
                               size_t n, const sg_list *keep, sg_error *err)
{
    sg_list l = { 0, 0, NULL }, live = { 0, 0, NULL };
    sg_status rc = slots_read(st, user, gen, n, &l, err);
    work(st, 2 * n);                /* each slot read, each id checked */
    sgi_list_sort_unique(&l);
    for (size_t i = 0; rc == SG_OK && keep && i < keep->n; i++)
        if (sgi_list_push(&live, keep->ids[i]) < 0)
            rc = sgi_oom(err, "store", st->path);
    for (size_t i = 0; rc == SG_OK && i < l.n; i++) {
        int mine = 0;
        if (keep && sgi_list_has(keep, l.ids[i]))
            continue;
        rc = owned_by(st, l.ids[i], user, &mine, err);
        if (rc == SG_OK && mine && sgi_list_push(&live, l.ids[i]) < 0)
            rc = sgi_oom(err, "store", st->path);
    }
    if (rc == SG_OK)
        rc = array_rewrite(st, user, gen, n, &live, err);
    free(l.ids);
    free(live.ids);
    return rc;
}

/* ------------------------------------------------ compaction in slices */

/*
 * Why slices: a compaction is O(user's sessions) (a fetch and a parse per
 * slot to check its owner, a put per live id, a delete per old slot), and
 * a purge (and check --repair's index rebuild) ran it inside one exclusive
 * hold: a user with 100,000 sessions kept every writer and gateway read
 * out for a second or more.  In slices the same work is done at most
 * about COMPACT_SLICE items per lock hold:
 *   1. copy: the next slots of generation G (and, for a rebuild, the ids
 *      it wants, first), checked, written as slots of G+1 (not in use);
 *   2. switch, in the hold that copies the last slot there is (slots added
 *      between holds included): "ugen:NAME" names G+1, with the removes
 *      counted since the start;
 *   3. delete G's slots, a slice per hold (then "ugen:NAME" itself when
 *      G+1 is empty).
 * Between holds writers add to G (copied by a later slice) and count
 * removes.  Each copy slice first checks that G is still the array in use
 * and the same one (its slot 0 holds the id it held at the start: a
 * generation number comes back only after the array was emptied, and a
 * compaction deletes slot 0 first).  If another compaction came first (a
 * writer's own, of a small array), this one stops; what it wrote of G+1
 * then lies in or after that one's slots: stale or duplicate entries,
 * which readers verify and drop.  A delete slice deletes only while G is
 * not in use.  A crash leaves what a cut array_compact leaves: G or G+1 in
 * use, both supersets, maybe dead keys.
 */
#define COMPACT_SLICE 128   /* work items per lock hold */

typedef struct slicer {
    const char *user;
    const sg_list *keep;    /* ids written unchecked, first; or NULL */
    size_t gen;             /* G */
    int has_first;
    char first[SG_ID_LEN + 1];  /* slot 0 of G at the start */
    size_t removed0;        /* G's remove count at the start */
    size_t next;            /* the next source: keep's ids, then G's slots */
    size_t m;               /* slots of G+1 written */
    size_t nold;            /* G's slots when switched */
    sg_list seen;           /* ids written; sorted up to `sorted` */
    size_t sorted;
} slicer;

/* Whether id was written already. */
static int slicer_seen(const slicer *c, const char *id)
{
    sg_list view = { c->sorted, c->sorted, c->seen.ids };
    if (c->sorted && sgi_list_has(&view, id))
        return 1;
    for (size_t i = c->sorted; i < c->seen.n; i++)
        if (memcmp(c->seen.ids[i], id, SG_ID_LEN + 1) == 0)
            return 1;
    return 0;
}

/* Under the lock: whether G is still the array in use, the same one. */
static sg_status slicer_current(sg_store *st, const slicer *c, int *same,
                                sg_error *err)
{
    size_t gen, removed;
    char id[SG_ID_LEN + 1];
    int ex = 0;
    *same = 0;
    sg_status rc = meta_get(st, c->user, &gen, &removed, err);
    if (rc != SG_OK || gen != c->gen)
        return rc;
    rc = slot_get(st, c->user, gen, 0, id, &ex, err);
    *same = rc == SG_OK && ex == c->has_first &&
            (!ex || strcmp(id, c->first) == 0);
    return rc;
}

/* One copy slice, under the exclusive lock; *done once G+1 is in use. */
static sg_status slicer_copy(sg_store *st, slicer *c, int *done,
                             sg_error *err)
{
    size_t kn = c->keep ? c->keep->n : 0, n, did = 0;
    sg_status rc = slot_count(st, c->user, c->gen, &n, err);
    while (rc == SG_OK && c->next < kn + n && did < COMPACT_SLICE) {
        char id[SG_ID_LEN + 1];
        int ex, mine = 1;
        if (c->next < kn) {
            memcpy(id, c->keep->ids[c->next], SG_ID_LEN + 1);
            did++;
        } else {
            rc = slot_get(st, c->user, c->gen, c->next - kn, id, &ex, err);
            if (rc == SG_OK && id[0] && !slicer_seen(c, id))
                rc = owned_by(st, id, c->user, &mine, err);
            else
                mine = 0;
            did += 2;
        }
        if (rc == SG_OK && mine && !slicer_seen(c, id)) {
            rc = slot_put(st, c->user, c->gen + 1, c->m, id, err);
            if (rc == SG_OK) {
                c->m++;
                did++;
                if (sgi_list_push(&c->seen, id) < 0)
                    rc = sgi_oom(err, "store", st->path);
            }
        }
        if (rc == SG_OK)
            c->next++;
    }
    work(st, did);
    sgi_list_sort_unique(&c->seen);
    c->sorted = c->seen.n;
    if (rc != SG_OK || c->next < kn + n)
        return rc;
    size_t gen, removed;
    rc = meta_get(st, c->user, &gen, &removed, err);
    if (rc == SG_OK)
        rc = meta_put(st, c->user, c->gen + 1,
                      removed > c->removed0 ? removed - c->removed0 : 0, err);
    if (rc == SG_OK) {
        hint_set(st, c->user, c->gen + 1, c->m);
        c->nold = n;
        *done = 1;
    }
    return rc;
}

/* One delete slice of G's slots from *d, under the exclusive lock; *stop
 * when G is in use again (emptied and started again) or all are gone. */
static sg_status slicer_delete(sg_store *st, slicer *c, size_t *d, int *stop,
                               sg_error *err)
{
    size_t gen, removed;
    sg_status rc = meta_get(st, c->user, &gen, &removed, err);
    if (rc != SG_OK || gen == c->gen) {
        *stop = 1;
        return rc;
    }
    size_t did = 0;
    for (; rc == SG_OK && *d < c->nold && did < COMPACT_SLICE; did++) {
        char *key = keyf("us:%zu:%zu:%s", c->gen, *d, c->user);
        rc = key ? del_quiet(st, key, err) : sgi_oom(err, "store", st->path);
        free(key);
        if (rc == SG_OK)
            ++*d;
    }
    work(st, did);
    if (rc != SG_OK || *d < c->nold)
        return rc;
    *stop = 1;
    /* A user with no session left leaves no key behind (array_rewrite). */
    size_t n = 1;
    if (gen == c->gen + 1)
        rc = slot_count(st, c->user, gen, &n, err);
    if (rc == SG_OK && n == 0) {
        char *key = keyf(SGI_GEN_PREFIX "%s", c->user);
        rc = key ? del_quiet(st, key, err) : sgi_oom(err, "store", st->path);
        free(key);
        if (rc == SG_OK)
            hint_set(st, c->user, 0, 0);
    }
    return rc;
}

/* Compact user's array in slices (see above): when due (if_due: half of
 * it or more removed), or to keep's ids plus the user's others (a
 * rebuild).  Small arrays in one hold.  *lost (may be NULL) 1 when another
 * compaction came first and this one stopped. */
static sg_status compact_sliced(sg_store *st, const char *user,
                                const sg_list *keep, int if_due, int *lost,
                                sg_error *err)
{
    slicer c;
    memset(&c, 0, sizeof c);
    c.user = user;
    c.keep = keep && keep->n > 0 ? keep : NULL;
    size_t kn = c.keep ? c.keep->n : 0, n = 0;
    if (lost)
        *lost = 0;
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    rc = meta_get(st, user, &c.gen, &c.removed0, err);
    if (rc == SG_OK)
        rc = slot_count(st, user, c.gen, &n, err);
    int want = if_due ? n > 0 && 2 * c.removed0 >= n : n > 0 || kn > 0;
    if (rc == SG_OK && want && n + kn <= COMPACT_SLICE)
        rc = array_compact(st, user, c.gen, n, keep, err);
    else if (rc == SG_OK && want)
        rc = slot_get(st, user, c.gen, 0, c.first, &c.has_first, err);
    sgi_unlock(st);
    if (rc != SG_OK || !want || n + kn <= COMPACT_SLICE)
        return rc;
    int done = 0, same = 1;
    while (rc == SG_OK && same && !done &&
           (!sgi_test_index_pause || (sgi_test_index_pause(st, user), 1)) &&
           (rc = sgi_lock(st, SGI_EXCLUSIVE, err)) == SG_OK) {
        rc = slicer_current(st, &c, &same, err);
        if (rc == SG_OK && same)
            rc = slicer_copy(st, &c, &done, err);
        sgi_unlock(st);
    }
    if (lost && rc == SG_OK && !same)
        *lost = 1;
    size_t d = 0;
    int stop = 0;
    while (rc == SG_OK && done && !stop &&
           (rc = sgi_lock(st, SGI_EXCLUSIVE, err)) == SG_OK) {
        rc = slicer_delete(st, &c, &d, &stop, err);
        sgi_unlock(st);
    }
    free(c.seen.ids);
    return rc;
}

/* Add id to user's array: one put. */
static sg_status array_add(sg_store *st, const char *user, const char *id,
                           sg_error *err)
{
    size_t gen, removed, n;
    sg_status rc = meta_get(st, user, &gen, &removed, err);
    if (rc == SG_OK)
        rc = slot_count(st, user, gen, &n, err);
    if (rc == SG_OK)
        rc = slot_put(st, user, gen, n, id, err);
    if (rc == SG_OK)
        hint_set(st, user, gen, n + 1);
    return rc;
}

/* Count a remove from user's array, compacting when half of it or more is
 * stale (so a user's last delete leaves no key behind); with later (due
 * not NULL), a big array's compaction is only noted in *due. */
static sg_status array_remove_ex(sg_store *st, const char *user, int *due,
                                 sg_error *err)
{
    size_t gen, removed, n;
    sg_status rc = meta_get(st, user, &gen, &removed, err);
    if (rc == SG_OK)
        rc = slot_count(st, user, gen, &n, err);
    if (rc != SG_OK)
        return rc;
    if (n == 0)
        return SG_ENOTFOUND;
    if (2 * (removed + 1) >= n && !(due && n > COMPACT_SLICE))
        return array_compact(st, user, gen, n, NULL, err);
    if (due)
        *due = 2 * (removed + 1) >= n;
    return meta_put(st, user, gen, removed + 1, err);
}

static sg_status array_remove(sg_store *st, const char *user, const char *id,
                              sg_error *err)
{
    (void)id;               /* stays as a stale entry until compacted */
    return array_remove_ex(st, user, NULL, err);
}

/* Append the ids of user's array to l. */
static sg_status array_ids(sg_store *st, const char *user, sg_list *l,
                           sg_error *err)
{
    size_t gen, removed, n;
    sg_status rc = meta_get(st, user, &gen, &removed, err);
    if (rc == SG_OK)
        rc = slot_count(st, user, gen, &n, err);
    if (rc == SG_OK)
        rc = slots_read(st, user, gen, n, l, err);
    return rc;
}

/* The set operations, through the backend's own sets when it has them;
 * *legacy (may be NULL) 1 when the backend saw an old-format key. */
static sg_status set_add_ex(sg_store *st, const char *user, const char *id,
                            int *legacy, sg_error *err)
{
    int ignored = 0;
    return st->be->set_add
         ? st->be->set_add(st, user, id, legacy ? legacy : &ignored, err)
         : array_add(st, user, id, err);
}

static sg_status set_add(sg_store *st, const char *user, const char *id,
                         sg_error *err)
{
    return set_add_ex(st, user, id, NULL, err);
}

static sg_status set_remove_ex(sg_store *st, const char *user, const char *id,
                               int *legacy, sg_error *err)
{
    int ignored = 0;
    sg_status rc = st->be->set_remove
                 ? st->be->set_remove(st, user, id,
                                      legacy ? legacy : &ignored, err)
                 : array_remove(st, user, id, err);
    return rc == SG_ENOTFOUND ? SG_OK : rc;
}

static sg_status set_remove(sg_store *st, const char *user, const char *id,
                            sg_error *err)
{
    return set_remove_ex(st, user, id, NULL, err);
}

/* How many ids user's index holds: at least the user's live sessions. */
static sg_status set_count(sg_store *st, const char *user, size_t *n,
                           sg_error *err)
{
    if (st->be->set_count)
        return st->be->set_count(st, user, n, err);
    size_t gen, removed;
    sg_status rc = meta_get(st, user, &gen, &removed, err);
    return rc == SG_OK ? slot_count(st, user, gen, n, err) : rc;
}

/* Append the ids of user's old-format key to l; *found whether there is
 * one (a damaged one counts: it is to be deleted). */
static sg_status legacy_ids(sg_store *st, const char *user, sg_list *l,
                            int *found, sg_error *err)
{
    *found = 0;
    char *text;
    size_t len;
    sg_status rc = fetch_owned(st, keyf(SGI_USER_PREFIX "%s", user), &text,
                               &len, err);
    if (rc != SG_OK || !text)
        return rc;
    *found = 1;
    size_t before = l->n;
    int r = index_parse(text, text + len, l);
    free(text);
    if (r < 0)
        return sgi_oom(err, "store", st->path);
    if (r > 0)
        l->n = before;      /* damaged: no ids (check --repair rebuilds) */
    return SG_OK;
}

/* Convert user's old-format key, if any: its ids into the set, then the
 * key deleted (in that order: a superset throughout).  Caller holds the
 * exclusive lock. */
static sg_status legacy_convert(sg_store *st, const char *user, sg_error *err)
{
    sg_list l = { 0, 0, NULL };
    int found;
    sg_status rc = legacy_ids(st, user, &l, &found, err);
    for (size_t i = 0; rc == SG_OK && i < l.n; i++)
        rc = set_add(st, user, l.ids[i], err);
    free(l.ids);
    if (rc == SG_OK && found) {
        char *key = keyf(SGI_USER_PREFIX "%s", user);
        rc = key ? del_quiet(st, key, err) : sgi_oom(err, "store", st->path);
        free(key);
    }
    return rc;
}

/* The user's indexed ids, sorted, each once.  New: *out.  A damaged index
 * reads as empty (it is only a superset hint; check --repair rebuilds
 * it).  Caller holds a lock. */
sg_status sgi_index_ids(sg_store *st, const char *user, sg_list **out,
                        sg_error *err)
{
    *out = NULL;
    sg_list *l = sgi_list_new();
    if (!l)
        return sgi_oom(err, "store", st->path);
    int found;
    sg_status rc = legacy_ids(st, user, l, &found, err);
    if (rc == SG_OK)
        rc = st->be->set_ids ? st->be->set_ids(st, user, l, err)
                             : array_ids(st, user, l, err);
    if (rc != SG_OK) {
        sg_list_free(l);
        return rc;
    }
    sgi_list_sort_unique(l);
    *out = l;
    return SG_OK;
}

/* Add id to user's index (no-op if there).  Caller holds the exclusive
 * lock. */
sg_status sgi_index_add(sg_store *st, const char *user, const char *id,
                        sg_error *err)
{
    /* A backend with sets says whether an old-format key is there (one
     * round trip less per create on Redis); converting after the add
     * keeps the superset just as well. */
    if (st->be->set_add) {
        int legacy = 0;
        sg_status rc = set_add_ex(st, user, id, &legacy, err);
        return rc == SG_OK && legacy ? legacy_convert(st, user, err) : rc;
    }
    sg_status rc = legacy_convert(st, user, err);
    return rc == SG_OK ? set_add(st, user, id, err) : rc;
}

/* Remove id from user's index.  Caller holds the exclusive lock. */
sg_status sgi_index_remove(sg_store *st, const char *user, const char *id,
                           sg_error *err)
{
    if (st->be->set_remove) {
        int legacy = 0;
        sg_status rc = set_remove_ex(st, user, id, &legacy, err);
        if (rc == SG_OK && legacy)
            rc = legacy_convert(st, user, err);
        /* The id may have come back with the old key's ids. */
        return rc == SG_OK && legacy ? set_remove(st, user, id, err) : rc;
    }
    sg_status rc = legacy_convert(st, user, err);
    return rc == SG_OK ? set_remove(st, user, id, err) : rc;
}

/* See internal.h. */
sg_status sgi_index_remove_later(sg_store *st, const char *user,
                                 const char *id, int *due, sg_error *err)
{
    *due = 0;
    if (st->be->set_remove)
        return sgi_index_remove(st, user, id, err);
    sg_status rc = legacy_convert(st, user, err);
    if (rc == SG_OK)
        rc = array_remove_ex(st, user, due, err);
    return rc == SG_ENOTFOUND ? SG_OK : rc;
}

/* See internal.h. */
sg_status sgi_index_compact(sg_store *st, const char *user, sg_error *err)
{
    return st->be->set_add ? SG_OK
                           : compact_sliced(st, user, NULL, 1, NULL, err);
}

/* Evict the user's oldest live sessions beyond the cap, never `keep` (the
 * session being created or logged in: timestamps are whole seconds, so it
 * may tie with older ones), and drop dead ids from the index.  Caller holds
 * the exclusive lock.  The index is a superset of the user's live
 * sessions, so while it holds no more ids than the cap there is nothing to
 * evict: one count, not a load of every session, on each create. */
sg_status sgi_enforce_cap(sg_store *st, const char *user, const char *keep,
                          sg_error *err)
{
    int cap = st->opt.max_per_user;
    if (cap <= 0 || !user)
        return SG_OK;
    sg_status rc = legacy_convert(st, user, err);
    size_t have = 0;
    if (rc == SG_OK)
        rc = set_count(st, user, &have, err);
    if (rc != SG_OK || have <= (size_t)cap)
        return rc;
    sg_list *ids;
    rc = sgi_index_ids(st, user, &ids, err);
    if (rc != SG_OK)
        return rc;
    sgi_dated *d;
    size_t n;
    rc = sgi_live_sorted(st, ids, user, &d, &n, err);
    if (rc != SG_OK) {
        sg_list_free(ids);
        return rc;
    }
    size_t excess = n > (size_t)cap ? n - (size_t)cap : 0;
    sg_list live = { 0, 0, NULL };
    for (size_t i = 0; i < n && rc == SG_OK; i++) {
        int is_keep = keep && strcmp(d[i].id, keep) == 0;
        if (excess > 0 && !is_keep) {
            rc = st->be->del(st, d[i].id, err);
            if (rc == SG_ENOTFOUND)
                rc = SG_OK;
            excess--;
        } else if (sgi_list_push(&live, d[i].id) < 0) {
            rc = sgi_oom(err, "store", st->path);
        }
    }
    /* Everything indexed that is not a kept live session goes: evicted,
     * expired, gone, or another user's now. */
    sgi_list_sort_unique(&live);
    for (size_t i = 0; rc == SG_OK && i < ids->n; i++)
        if (!sgi_list_has(&live, ids->ids[i]))
            rc = set_remove(st, user, ids->ids[i], err);
    free(live.ids);
    free(d);
    sg_list_free(ids);
    return rc;
}

static sg_status set_rebuild(sg_store *st, const char *user,
                             const sg_list *want, sg_error *err);

/* Whether user's array already holds exactly the ids of want (sorted,
 * unique), each once: then a rebuild has nothing to do.  Read under the
 * shared lock, only for an array small enough to read in one hold (check
 * --repair of a sound store used to rewrite every user's index: a put and
 * a delete per session, a log that grew by the store's size, and the
 * checkpoint builds that followed, all under writers' feet). */
static sg_status array_is(sg_store *st, const char *user, const sg_list *want,
                          int *same, sg_error *err)
{
    *same = 0;
    size_t gen, removed, n;
    sg_status rc = sgi_lock(st, SGI_SHARED, err);
    if (rc != SG_OK)
        return rc;
    rc = meta_get(st, user, &gen, &removed, err);
    if (rc == SG_OK)
        rc = slot_count(st, user, gen, &n, err);
    sg_list l = { 0, 0, NULL };
    if (rc == SG_OK && n == want->n && n > 0 && n <= 4 * COMPACT_SLICE) {
        rc = slots_read(st, user, gen, n, &l, err);
        sgi_list_sort_unique(&l);
        *same = rc == SG_OK && l.n == n;
        for (size_t i = 0; *same && i < n; i++)
            *same = memcmp(l.ids[i], want->ids[i], SG_ID_LEN + 1) == 0;
    }
    sgi_unlock(st);
    free(l.ids);
    return rc;
}

/* Make user's index hold exactly the ids of `want` (sorted, unique) plus
 * any session of the user's that a concurrent write added meanwhile: an id
 * outside `want` goes only when its record is gone or not the user's.
 * Adds first, removals after: a superset throughout.  On GDBM the array is
 * compacted in slices, each under an exclusive lock of its own (or nested
 * in a caller's hold); with sets, under one exclusive lock. */
sg_status sgi_index_rebuild(sg_store *st, const char *user,
                            const sg_list *want, sg_error *err)
{
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    rc = legacy_convert(st, user, err);
    if (rc == SG_OK && !st->be->set_add) {
        sgi_unlock(st);
        int same = 0;
        if ((rc = array_is(st, user, want, &same, err)) != SG_OK || same)
            return rc;
        /* The array: one compaction to want plus the user's others, in
         * slices.  Another compaction coming first does not keep want's
         * ids: start again, and after three such, in one hold. */
        int lost = 1;
        for (int i = 0; rc == SG_OK && lost && i < 3; i++)
            rc = compact_sliced(st, user, want, 0, &lost, err);
        if (rc != SG_OK || !lost)
            return rc;
        if ((rc = sgi_lock(st, SGI_EXCLUSIVE, err)) != SG_OK)
            return rc;
        size_t gen, removed, n;
        rc = meta_get(st, user, &gen, &removed, err);
        if (rc == SG_OK)
            rc = slot_count(st, user, gen, &n, err);
        if (rc == SG_OK && (n > 0 || want->n > 0))
            rc = array_compact(st, user, gen, n, want, err);
        sgi_unlock(st);
        return rc;
    }
    rc = rc == SG_OK ? set_rebuild(st, user, want, err) : rc;
    sgi_unlock(st);
    return rc;
}

/* sgi_index_rebuild on a backend with sets, under the exclusive lock. */
static sg_status set_rebuild(sg_store *st, const char *user,
                             const sg_list *want, sg_error *err)
{
    sg_status rc = SG_OK;
    for (size_t i = 0; rc == SG_OK && i < want->n; i++)
        rc = set_add(st, user, want->ids[i], err);
    sg_list *have = NULL;
    if (rc == SG_OK)
        rc = sgi_index_ids(st, user, &have, err);
    for (size_t i = 0; rc == SG_OK && i < have->n; i++) {
        if (sgi_list_has(want, have->ids[i]))
            continue;
        sg_session *s;
        int damaged;
        sg_error lerr = { 0 };
        sg_status lrc = sgi_load_ex(st, have->ids[i], &s, &damaged, &lerr);
        if (lrc == SG_OK) {
            int mine = s->user && strcmp(s->user, user) == 0;
            sg_session_free(s);
            if (mine)
                continue;
        } else if (lrc != SG_ENOTFOUND && !damaged) {
            if (err && err->code == SG_OK)
                *err = lerr;
            rc = lrc;
            break;
        }
        rc = set_remove(st, user, have->ids[i], err);
    }
    sg_list_free(have);
    return rc;
}
