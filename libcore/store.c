/*
 * store.c - opening a store, the lock discipline above the backend, and the
 * whole-store operations: count, list, purge, stats, check, and the
 * per-user index.
 *
 * Locks nest per handle: sg_store_begin() takes the exclusive lock and
 * every call made before sg_store_end() runs under it instead of taking its
 * own.  A shared lock is never upgraded in place (two readers upgrading
 * would deadlock each other); code that finds it must write releases the
 * shared lock, takes the exclusive one and reads again.
 *
 * The per-user index (key "user:NAME" -> JSON array of ids) is kept a
 * superset of the user's sessions: ids are added before the session is
 * written and removed after it is deleted, so a process killed between the
 * two leaves at worst a stale id, which every reader verifies and purge
 * removes.  GDBM has no multi-key transactions; this ordering is what makes
 * that safe.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Fill *opt with the defaults. */
void sg_options_init(sg_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->idle_timeout = SG_DEFAULT_IDLE_TIMEOUT;
    opt->max_age = SG_DEFAULT_MAX_AGE;
    opt->touch_interval = SG_DEFAULT_IDLE_TIMEOUT / 10 < SG_MAX_TOUCH_INTERVAL
                        ? SG_DEFAULT_IDLE_TIMEOUT / 10 : SG_MAX_TOUCH_INTERVAL;
    opt->lock_timeout_ms = SG_DEFAULT_LOCK_TIMEOUT;
    opt->max_data = SG_MAX_DATA;
}

static sg_status fill_options(const sg_options *in, sg_options *o,
                              int *explicit_touch, sg_error *err)
{
    sg_options_init(o);
    *explicit_touch = 0;
    if (!in)
        return SG_OK;
    if (in->idle_timeout < 0 || in->max_age < 0 || in->touch_interval < 0 ||
        in->lock_timeout_ms < 0 || in->max_per_user < 0)
        return sgi_err(err, SG_EINVAL, 0, "store options: negative timeout "
                       "or cap");
    if (in->max_data > SG_MAX_DATA_LIMIT)
        return sgi_err(err, SG_EINVAL, 0, "store options: max_data %zu is "
                       "over the limit of %d bytes", in->max_data,
                       SG_MAX_DATA_LIMIT);
    if (in->idle_timeout)
        o->idle_timeout = in->idle_timeout;
    if (in->max_age)
        o->max_age = in->max_age;
    if (in->touch_interval) {
        o->touch_interval = in->touch_interval;
        *explicit_touch = 1;
    } else {
        int64_t t = o->idle_timeout / 10;
        o->touch_interval = t < 1 ? 1 : t > SG_MAX_TOUCH_INTERVAL
                          ? SG_MAX_TOUCH_INTERVAL : t;
    }
    if (in->lock_timeout_ms)
        o->lock_timeout_ms = in->lock_timeout_ms;
    if (in->max_data)
        o->max_data = in->max_data;
    o->max_per_user = in->max_per_user;
    o->sync = in->sync;
    o->group = in->group;
    o->readonly = in->readonly;
    if (in->rotate_grace < 0)
        return sgi_err(err, SG_EINVAL, 0, "store options: negative rotate_grace");
    o->rotate_grace = in->rotate_grace;
    o->clock = in->clock;
    o->clock_arg = in->clock_arg;
    return SG_OK;
}

/* Open or create the store at uri.  New: *out. */
sg_status sg_store_open(const char *uri, const sg_options *opt,
                        sg_store **out, sg_error *err)
{
    *out = NULL;
    if (!uri)
        return sgi_err(err, SG_EINVAL, 0, "store: no location given (pass "
                       "--store PATH or set SESSGATE_STORE)");
    const sgi_backend *be = &sgi_backend_gdbm;
    const char *loc = uri;
    if (strncmp(uri, "gdbm:", 5) == 0) {
        loc = uri + 5;
    } else if (strncmp(uri, "redis://", 8) == 0 ||
               strncmp(uri, "redis+unix:", 11) == 0) {
        be = &sgi_backend_redis;    /* parses the whole URI itself */
    } else if (strstr(uri, "://")) {
        return sgi_err(err, SG_EINVAL, 0, "store %s: unknown store type "
                       "(use a path, gdbm:PATH, redis://HOST:PORT/DB or "
                       "redis+unix:/SOCKET)", uri);
    }
    sg_store *st = calloc(1, sizeof *st);
    if (!st)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", uri);
    sg_status rc = fill_options(opt, &st->opt, &st->touch_explicit, err);
    if (rc != SG_OK) {
        free(st);
        return rc;
    }
    st->be = be;
    st->path = strdup(loc);
    if (!st->path) {
        free(st);
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", uri);
    }
    rc = be->open(st, loc, err);
    if (rc != SG_OK) {
        free(st->path);
        free(st);
        return rc;
    }
    sgi_counters_attach(st);
    *out = st;
    return SG_OK;
}

/* Close and free.  Accepts NULL.  Releases any lock still held. */
void sg_store_close(sg_store *st)
{
    if (!st)
        return;
    if (st->lock_mode != SGI_UNLOCKED)
        st->be->unlock(st);
    st->be->close(st);
    free(st->hint_user);
    free(st->path);
    free(st);
}

/* Borrowed: effective options. */
const sg_options *sg_store_options(const sg_store *st)
{
    return &st->opt;
}

/* Borrowed: the store's path. */
const char *sg_store_path(const sg_store *st)
{
    return st->path;
}

/* Recoveries done through this handle. */
unsigned long sg_store_recoveries(const sg_store *st)
{
    return st->recoveries;
}

/* Take the lock in mode, or count one more level if already held in a mode
 * at least as strong. */
sg_status sgi_lock(sg_store *st, int mode, sg_error *err)
{
    if (st->lock_mode >= mode) {
        st->lock_depth++;
        return SG_OK;
    }
    if (st->lock_mode != SGI_UNLOCKED)
        return sgi_err(err, SG_EINVAL, 0, "store %s: cannot write while "
                       "only a read lock is held", st->path);
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    sg_status rc = st->be->lock(st, mode, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st->locks.wait_us += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                    (t1.tv_nsec - t0.tv_nsec) / 1000);
    if (rc == SG_ELOCKTIMEOUT && !st->nowait)
        st->locks.timeouts++;       /* (a no-wait "busy" is no timeout) */
    if (rc != SG_OK)
        return rc;
    st->locks.acquired++;
    st->lock_mode = mode;
    st->lock_depth = 1;
    if (mode == SGI_EXCLUSIVE)
        sgi_counters_begin(st);     /* counters.c: figures follow the hold */
    return SG_OK;
}

/* See sessgate.h. */
void sg_store_lock_counters(const sg_store *st, sg_lock_counters *out)
{
    if (st)
        *out = st->locks;
    else
        memset(out, 0, sizeof *out);
}

/* Release one level of sgi_lock. */
void sgi_unlock(sg_store *st)
{
    if (st->lock_depth > 0 && --st->lock_depth == 0) {
        if (st->lock_mode == SGI_EXCLUSIVE)
            sgi_counters_end(st);   /* the hold's last put */
        st->be->unlock(st);
        st->lock_mode = SGI_UNLOCKED;
    }
}

/* Take and keep the exclusive lock (nests). */
sg_status sg_store_begin(sg_store *st, sg_error *err)
{
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only",
                       st->path);
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc == SG_OK)
        st->begin_depth++;
    return rc;
}

/* Release one level of sg_store_begin.  Accepts NULL. */
void sg_store_end(sg_store *st)
{
    if (!st || st->begin_depth == 0)
        return;
    st->begin_depth--;
    sgi_unlock(st);
}

/* Current time in Unix seconds, through the store's clock. */
int64_t sgi_now(const sg_store *st)
{
    return st->opt.clock ? st->opt.clock(st->opt.clock_arg)
                         : (int64_t)time(NULL);
}

/* Whether a session is live at now: before its absolute end and within its
 * idle window. */
int sgi_live(const sg_session *s, int64_t now)
{
    return now < s->expires && now < sgi_add_sat(s->accessed, s->idle);
}

/* When a backend may drop session s's record (backend.h, put): the first
 * instant sgi_live() says no, min(expires, accessed + idle), so a backend
 * that expires records by itself (Redis) never drops a live session and
 * dead ones vanish without purge.  0 (never) with a store clock (tests,
 * embedders): a backend measures real time and would drop records the
 * store's clock still finds live; and for an end too far off to express
 * in milliseconds.  The one place outside sgi_live() that knows the rule. */
int64_t sgi_expire_at(const sg_store *st, const sg_session *s)
{
    if (st->opt.clock)
        return 0;
    int64_t end = s->expires;
    int64_t idle_end = sgi_add_sat(s->accessed, s->idle);
    if (idle_end < end)
        end = idle_end;
    return end > 0 && end < INT64_MAX / 1000 ? end : 0;
}

/* The default touch interval for an idle timeout: 1/10 of it, at least
 * 1 s, at most SG_MAX_TOUCH_INTERVAL. */
static int64_t touch_for_idle(int64_t idle)
{
    int64_t t = idle / 10;
    return t < 1 ? 1 : t > SG_MAX_TOUCH_INTERVAL ? SG_MAX_TOUCH_INTERVAL : t;
}

/* The touch interval for session s.  Why per session: a session may carry
 * its own idle timeout, shorter than the store's; the store's interval
 * (60 s for the default 1800 s idle) would then never rewrite `accessed`
 * of a session idling out after 4 s, and it would expire while read every
 * second (issue #12).  An interval the store was given explicitly is kept
 * unless it is not shorter than the session's idle timeout, which would
 * let the same happen. */
int64_t sgi_touch_interval(const sg_store *st, const sg_session *s)
{
    if (st->touch_explicit && st->opt.touch_interval < s->idle)
        return st->opt.touch_interval;
    return touch_for_idle(s->idle);
}

/* Load a record (no liveness check).  New: *out.  Caller holds a lock. */
sg_status sgi_load(sg_store *st, const char *id, sg_session **out,
                   sg_error *err)
{
    return sgi_load_ex(st, id, out, NULL, err);
}

/* sgi_load, telling a damaged record apart from other store errors. */
sg_status sgi_load_ex(sg_store *st, const char *id, sg_session **out,
                      int *damaged, sg_error *err)
{
    *out = NULL;
    if (damaged)
        *damaged = 0;
    char *text;
    size_t len;
    sg_status rc = st->be->fetch(st, id, &text, &len, err);
    if (rc != SG_OK)
        return rc;
    sg_error perr = { 0 };
    rc = sgi_record_parse(text, len, out, &perr);
    free(text);
    if (rc == SG_EINVAL || (rc == SG_OK && strcmp((*out)->id, id) != 0)) {
        sg_session_free(*out);
        *out = NULL;
        if (damaged)
            *damaged = 1;
        return sgi_err(err, SG_ESTORE, 0, "store %s: record %s is damaged "
                       "(run sessgatectl check --repair)", st->path, id);
    }
    if (rc != SG_OK)
        return sgi_err(err, rc, 0, "%s", perr.text);
    (*out)->max_data = st->opt.max_data;
    return SG_OK;
}

/* Write a record.  Caller holds the exclusive lock. */
sg_status sgi_put(sg_store *st, const sg_session *s, sg_error *err)
{
    size_t len;
    char *text = sgi_record_dump(s, &len);
    if (!text)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", st->path);
    sg_status rc = st->be->put(st, s->id, text, len, sgi_expire_at(st, s), err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------ id lists */

/* New: an empty list, or NULL without memory. */
sg_list *sgi_list_new(void)
{
    return calloc(1, sizeof(sg_list));
}

/* Append an id; 0 on success, -1 without memory. */
int sgi_list_push(sg_list *l, const char *id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->ids, cap * sizeof l->ids[0]);
        if (!p)
            return -1;
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids[l->n++], id, SG_ID_LEN + 1);
    return 0;
}

size_t sg_list_count(const sg_list *l)
{
    return l ? l->n : 0;
}

/* Borrowed: the i-th id, NULL past the end. */
const char *sg_list_id(const sg_list *l, size_t i)
{
    return l && i < l->n ? l->ids[i] : NULL;
}

void sg_list_free(sg_list *l)
{
    if (!l)
        return;
    free(l->ids);
    free(l);
}

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

static sg_status oom(sg_store *st, sg_error *err)
{
    return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", st->path);
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

static int by_id(const void *a, const void *b)
{
    return memcmp(a, b, SG_ID_LEN);
}

/* Sort l by id and drop repeats. */
static void list_sort_unique(sg_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->ids, l->n, sizeof l->ids[0], by_id);
    size_t j = 1;
    for (size_t i = 1; i < l->n; i++)
        if (memcmp(l->ids[i], l->ids[j - 1], SG_ID_LEN) != 0)
            memcpy(l->ids[j++], l->ids[i], SG_ID_LEN + 1);
    l->n = j;
}

static int list_has(const sg_list *sorted, const char *id)
{
    return sorted->n && bsearch(id, sorted->ids, sorted->n,
                                sizeof sorted->ids[0], by_id) != NULL;
}

/* Fetch key (owned: freed here; NULL means out of memory).  *text is new,
 * or NULL when the key is absent, which is not an error. */
static sg_status fetch_owned(sg_store *st, char *key, char **text,
                             size_t *len, sg_error *err)
{
    *text = NULL;
    if (!key)
        return oom(st, err);
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
        return oom(st, err);
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
        return oom(st, err);
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
            rc = oom(st, err);
    }
    return rc;
}

/* Replace user's array (generation gen, n slots) by the ids of l, as the
 * next generation: written whole, switched to, then the old slots
 * deleted.  Caller holds the exclusive lock. */
static sg_status array_rewrite(sg_store *st, const char *user, size_t gen,
                               size_t n, const sg_list *l, sg_error *err)
{
    sg_status rc = SG_OK;
    for (size_t i = 0; rc == SG_OK && i < l->n; i++)
        rc = slot_put(st, user, gen + 1, i, l->ids[i], err);
    if (rc == SG_OK && l->n == 0) {
        /* Why: a user with no session left must leave no key behind, or
         * the store keeps one "ugen:NAME" per user it ever saw.  The
         * array starts again at generation 0; a slot of an old generation
         * 0 that a cut cleanup left is a stale entry, which readers verify
         * and the next compaction deletes. */
        char *key = keyf(SGI_GEN_PREFIX "%s", user);
        rc = key ? del_quiet(st, key, err) : oom(st, err);
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
        rc = key ? del_quiet(st, key, err) : oom(st, err);
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
    list_sort_unique(&l);
    for (size_t i = 0; rc == SG_OK && keep && i < keep->n; i++)
        if (sgi_list_push(&live, keep->ids[i]) < 0)
            rc = oom(st, err);
    for (size_t i = 0; rc == SG_OK && i < l.n; i++) {
        int mine = 0;
        if (keep && list_has(keep, l.ids[i]))
            continue;
        rc = owned_by(st, l.ids[i], user, &mine, err);
        if (rc == SG_OK && mine && sgi_list_push(&live, l.ids[i]) < 0)
            rc = oom(st, err);
    }
    if (rc == SG_OK)
        rc = array_rewrite(st, user, gen, n, &live, err);
    free(l.ids);
    free(live.ids);
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
 * stale (so a user's last delete leaves no key behind). */
static sg_status array_remove(sg_store *st, const char *user, const char *id,
                              sg_error *err)
{
    (void)id;               /* stays as a stale entry until compacted */
    size_t gen, removed, n;
    sg_status rc = meta_get(st, user, &gen, &removed, err);
    if (rc == SG_OK)
        rc = slot_count(st, user, gen, &n, err);
    if (rc != SG_OK)
        return rc;
    if (n == 0)
        return SG_ENOTFOUND;
    if (2 * (removed + 1) >= n)
        return array_compact(st, user, gen, n, NULL, err);
    return meta_put(st, user, gen, removed + 1, err);
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
        return oom(st, err);
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
        rc = key ? del_quiet(st, key, err) : oom(st, err);
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
        return oom(st, err);
    int found;
    sg_status rc = legacy_ids(st, user, l, &found, err);
    if (rc == SG_OK)
        rc = st->be->set_ids ? st->be->set_ids(st, user, l, err)
                             : array_ids(st, user, l, err);
    if (rc != SG_OK) {
        sg_list_free(l);
        return rc;
    }
    list_sort_unique(l);
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

/* A walk chunk (see "Walks" below) holds the lock for about WALK_HOLD_MS,
 * and reads at most WALK_MAX records. */
#define WALK_HOLD_MS 8
#define WALK_KEYS    256    /* keys per keys_chunk call */
#define WALK_MAX     4096

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

typedef struct dated { int64_t created; char id[SG_ID_LEN + 1]; } dated;

static int by_created(const void *a, const void *b)
{
    const dated *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The live sessions among ids, belonging to user (NULL: any), oldest first.
 * New: *out (n entries). */
static sg_status live_sorted(sg_store *st, const sg_list *ids, const char *user,
                             dated **out, size_t *n, sg_error *err)
{
    *out = NULL;
    *n = 0;
    dated *d = malloc((ids->n ? ids->n : 1) * sizeof *d);
    if (!d)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", st->path);
    int64_t now = sgi_now(st);
    size_t k = 0;
    /* A shared lock per chunk (see "Walks" below); under a caller's lock
     * (the cap, sg_store_begin) these only nest. */
    int locked = 0;
    int64_t t0 = 0;
    for (size_t i = 0, in_chunk = 0; i < ids->n; i++, in_chunk++) {
        if (!locked || chunk_over(t0, in_chunk)) {
            if (locked)
                sgi_unlock(st);
            sg_status rc = sgi_lock(st, SGI_SHARED, err);
            locked = rc == SG_OK;
            if (!locked) {
                free(d);
                return rc;
            }
            t0 = walk_ms();
            in_chunk = 0;
        }
        sg_session *s;
        int damaged;
        sg_error lerr = { 0 };
        sg_status rc = sgi_load_ex(st, ids->ids[i], &s, &damaged, &lerr);
        /* A damaged record is check's business (and reported there); it
         * must not stop an admin listing or exporting everything else. */
        if (rc == SG_ENOTFOUND || damaged)
            continue;
        if (rc != SG_OK) {
            if (err && err->code == SG_OK)
                *err = lerr;
            sgi_unlock(st);
            free(d);
            return rc;
        }
        if (sgi_live(s, now) && (!user || (s->user && strcmp(s->user, user) == 0))) {
            d[k].created = s->created;
            memcpy(d[k].id, s->id, SG_ID_LEN + 1);
            k++;
        }
        sg_session_free(s);
    }
    if (locked)
        sgi_unlock(st);
    qsort(d, k, sizeof *d, by_created);
    *out = d;
    *n = k;
    return SG_OK;
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
    dated *d;
    size_t n;
    rc = live_sorted(st, ids, user, &d, &n, err);
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
            rc = oom(st, err);
        }
    }
    /* Everything indexed that is not a kept live session goes: evicted,
     * expired, gone, or another user's now. */
    list_sort_unique(&live);
    for (size_t i = 0; rc == SG_OK && i < ids->n; i++)
        if (!list_has(&live, ids->ids[i]))
            rc = set_remove(st, user, ids->ids[i], err);
    free(live.ids);
    free(d);
    sg_list_free(ids);
    return rc;
}

/* Make user's index hold exactly the ids of `want` (sorted, unique) plus
 * any session of the user's that a concurrent write added meanwhile: an id
 * outside `want` goes only when its record is gone or not the user's.
 * Adds first, removals after: a superset throughout.  Caller holds the
 * exclusive lock. */
static sg_status index_rebuild(sg_store *st, const char *user,
                               const sg_list *want, sg_error *err)
{
    sg_status rc = legacy_convert(st, user, err);
    if (rc == SG_OK && !st->be->set_add) {
        /* The array: one compaction to want plus the user's others. */
        size_t gen, removed, n;
        rc = meta_get(st, user, &gen, &removed, err);
        if (rc == SG_OK)
            rc = slot_count(st, user, gen, &n, err);
        if (rc == SG_OK && (n > 0 || want->n > 0))
            rc = array_compact(st, user, gen, n, want, err);
        if (rc == SG_OK && n == 0 && want->n == 0)
            rc = SG_OK;
        return rc;
    }
    for (size_t i = 0; rc == SG_OK && i < want->n; i++)
        rc = set_add(st, user, want->ids[i], err);
    sg_list *have = NULL;
    if (rc == SG_OK)
        rc = sgi_index_ids(st, user, &have, err);
    for (size_t i = 0; rc == SG_OK && i < have->n; i++) {
        if (list_has(want, have->ids[i]))
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

/* ------------------------------------------------------ whole-store ops */

/*
 * Walks.  list, count, export, purge, stats and check visit every session,
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
 * twice.  On GDBM, creates and deletes during the collection can also make
 * it miss a session that existed throughout (see g_keys_chunk), so a walk
 * that must see everything (a backup to compare with) is run while nothing
 * writes, or inside sg_store_begin, under which chunks do not release the
 * lock.  Nothing a walk does relies on seeing everything: purge leaves a
 * missed session to the next purge, and check --repair removes an id from
 * an index only after reading its record under the exclusive lock.
 */
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
    int oom;
} key_walk;

static int collect_key(const char *key, size_t len, void *arg)
{
    key_walk *w = arg;
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
 * New: *out (and users->users). */
static sg_status all_keys(sg_store *st, sg_list **out, user_walk *users,
                          sg_error *err)
{
    *out = NULL;
    key_walk w = { sgi_list_new(), users, 0 };
    if (!w.ids)
        return oom(st, err);
    sg_status rc = SG_OK;
    if (st->be->keys_chunk) {
        sgi_cursor c;
        memset(&c, 0, sizeof c);
        while (rc == SG_OK && !c.done) {
            rc = sgi_lock(st, SGI_SHARED, err);
            if (rc != SG_OK)
                break;
            int64_t t0 = walk_ms();
            do
                rc = st->be->keys_chunk(st, &c, WALK_KEYS, collect_key, &w,
                                        err);
            while (rc == SG_OK && !c.done && walk_ms() - t0 < WALK_HOLD_MS);
            sgi_unlock(st);
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
        rc = oom(st, err);
    if (rc != SG_OK) {
        sg_list_free(w.ids);
        if (users) {
            free_users(users);
            memset(users, 0, sizeof *users);
        }
        return rc;
    }
    list_sort_unique(w.ids);
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
        rc = all_keys(st, &ids, NULL, err);
    }
    dated *d = NULL;
    size_t n = 0;
    if (rc == SG_OK) {
        rc = live_sorted(st, ids, user, &d, &n, err);
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
        return oom(st, err);
    *out = l;
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
    sg_session **chunk = malloc(WALK_MAX * sizeof *chunk);
    if (!chunk) {
        sg_list_free(l);
        return oom(st, err);
    }
    int stop = 0;
    for (size_t i = 0; rc == SG_OK && !stop && i < l->n; ) {
        size_t k = 0;
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        int64_t now = sgi_now(st);
        int64_t t0 = walk_ms();
        for (size_t in_chunk = 0; i < l->n && !chunk_over(t0, in_chunk);
             i++, in_chunk++) {
            sg_session *s;
            sg_status lrc = walk_load(st, l->ids[i], &s, NULL, err);
            if (lrc == SG_ENOTFOUND)
                continue;       /* ended since the list: not live */
            if (lrc != SG_OK) {
                rc = lrc;
                break;
            }
            if (sgi_live(s, now) &&
                (!user || (s->user && strcmp(s->user, user) == 0)))
                chunk[k++] = s;
            else
                sg_session_free(s);
        }
        sgi_unlock(st);
        for (size_t j = 0; j < k; j++) {
            if (rc == SG_OK && !stop)
                stop = fn(chunk[j], arg);
            sg_session_free(chunk[j]);
        }
    }
    free(chunk);
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

/* Remove expired sessions and their index entries, a chunk at a time. */
sg_status sg_store_purge(sg_store *st, size_t *removed, sg_error *err)
{
    if (removed)
        *removed = 0;
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only",
                       st->path);
    sg_list *ids;
    sg_status rc = all_keys(st, &ids, NULL, err);
    if (rc != SG_OK)
        return rc;
    int64_t now = sgi_now(st);
    size_t count = 0;
    sg_list dead = { 0, 0, NULL };
    for (size_t i = 0; rc == SG_OK && i < ids->n; ) {
        /* The chunk's expired sessions, found under the shared lock. */
        dead.n = 0;
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        int64_t t0 = walk_ms();
        for (size_t in_chunk = 0; rc == SG_OK && i < ids->n &&
             !chunk_over(t0, in_chunk); i++, in_chunk++) {
            sg_session *s;
            sg_status lrc = walk_load(st, ids->ids[i], &s, NULL, err);
            if (lrc == SG_ENOTFOUND)
                continue;
            if (lrc != SG_OK) {
                rc = lrc;
                break;
            }
            if (!sgi_live(s, now) && sgi_list_push(&dead, s->id) < 0)
                rc = oom(st, err);
            sg_session_free(s);
        }
        sgi_unlock(st);
        if (rc != SG_OK || dead.n == 0)
            continue;
        /* Deleted under the exclusive lock, each read again first: it may
         * have been touched or deleted since. */
        int locked = 0;
        int64_t tx = 0;
        for (size_t j = 0, in_chunk = 0; rc == SG_OK && j < dead.n;
             j++, in_chunk++) {
            if (!locked || chunk_over(tx, in_chunk)) {
                if (locked)
                    sgi_unlock(st);
                rc = sgi_lock(st, SGI_EXCLUSIVE, err);
                if (!(locked = rc == SG_OK))
                    break;
                tx = walk_ms();
                in_chunk = 0;
            }
            sg_session *s;
            sg_status lrc = walk_load(st, dead.ids[j], &s, NULL, err);
            if (lrc == SG_ENOTFOUND)
                continue;
            if (lrc != SG_OK) {
                rc = lrc;
                break;
            }
            if (!sgi_live(s, now)) {
                rc = st->be->del(st, s->id, err);
                if (rc == SG_ENOTFOUND)
                    rc = SG_OK;
                if (rc == SG_OK && s->user)
                    rc = sgi_index_remove(st, s->user, s->id, err);
                if (rc == SG_OK)
                    count++;
            }
            sg_session_free(s);
        }
        if (locked)
            sgi_unlock(st);
    }
    free(dead.ids);
    sg_list_free(ids);
    /* Rotation grace aliases whose window has closed. */
    if (rc == SG_OK && st->opt.rotate_grace > 0 &&
        sgi_lock(st, SGI_EXCLUSIVE, NULL) == SG_OK) {
        sgi_alias_purge(st, now);
        sgi_unlock(st);
    }
    if (removed)
        *removed = count;
    return rc;
}

/* Store figures (one full walk, in chunks). */
sg_status sg_store_stats(sg_store *st, sg_stats *out, sg_error *err)
{
    memset(out, 0, sizeof *out);
    sg_list *ids;
    user_walk w = { 0 };
    sg_status rc = all_keys(st, &ids, &w, err);
    if (rc != SG_OK)
        return rc;
    int64_t now = sgi_now(st);
    for (size_t i = 0; rc == SG_OK && i < ids->n; ) {
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        int64_t t0 = walk_ms();
        for (size_t in_chunk = 0; rc == SG_OK && i < ids->n &&
             !chunk_over(t0, in_chunk); i++, in_chunk++) {
            sg_session *s;
            sg_status lrc = walk_load(st, ids->ids[i], &s, NULL, err);
            if (lrc == SG_ENOTFOUND)
                continue;
            if (lrc != SG_OK) {
                rc = lrc;
                break;
            }
            out->sessions++;
            if (sgi_live(s, now)) {
                out->live++;
                if (!s->user)
                    out->anonymous++;
            } else {
                out->expired++;
            }
            sg_session_free(s);
        }
        sgi_unlock(st);
    }
    /* Users with at least one live session. */
    for (size_t i = 0; rc == SG_OK && i < w.n; i++) {
        sg_list *uids = NULL;
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        rc = sgi_index_ids(st, w.users[i], &uids, err);
        sgi_unlock(st);
        dated *d;
        size_t n;
        if (rc == SG_OK)
            rc = live_sorted(st, uids, w.users[i], &d, &n, err);
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

/* Compact under the exclusive lock; nothing to do without a backend op. */
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
        rc = sgi_lock(st, SGI_EXCLUSIVE, err);
        if (rc != SG_OK)
            return rc;
        rc = st->be->compact(st, &rep, err);
        sgi_unlock(st);
    }
    if (out)
        *out = rep;
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
    sg_status rc = SG_OK;
    if (repair && (rc = sgi_lock(st, SGI_EXCLUSIVE, err)) == SG_OK) {
        rc = st->be->check(st, 1, &rep, err);
        sgi_unlock(st);
    }
    sg_list *ids = NULL;
    user_walk w = { 0 };
    if (rc == SG_OK)
        rc = all_keys(st, &ids, repair ? &w : NULL, err);
    /* (user, id) of every record that names a user, to rebuild the
     * indexes from; user names borrowed from names[]. */
    owned *own = NULL;
    size_t nown = 0, capown = 0;
    user_walk names = { 0 };
    sg_list bad = { 0, 0, NULL };
    for (size_t i = 0; rc == SG_OK && i < ids->n; ) {
        bad.n = 0;
        rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        int64_t t0 = walk_ms();
        for (size_t in_chunk = 0; rc == SG_OK && i < ids->n &&
             !chunk_over(t0, in_chunk); i++, in_chunk++) {
            sg_session *s;
            int damaged;
            sg_status lrc = walk_load(st, ids->ids[i], &s, &damaged, err);
            if (lrc == SG_ENOTFOUND && damaged) {
                rep.records++;
                rep.bad_records++;
                if (repair && sgi_list_push(&bad, ids->ids[i]) < 0)
                    rc = oom(st, err);
                continue;
            }
            if (lrc == SG_ENOTFOUND)
                continue;
            if (lrc != SG_OK) {
                rc = lrc;
                break;
            }
            rep.records++;
            if (repair && s->user) {
                if (nown == capown) {
                    size_t cap = capown ? capown * 2 : 64;
                    owned *p = realloc(own, cap * sizeof *p);
                    if (!p)
                        rc = oom(st, err);
                    else {
                        own = p;
                        capown = cap;
                    }
                }
                /* A copy of the name, shared with the previous record
                 * when it has the same owner. */
                if (rc == SG_OK && (names.n == 0 ||
                                    strcmp(names.users[names.n - 1], s->user) != 0) &&
                    name_push(&names, s->user) < 0)
                    rc = oom(st, err);
                if (rc == SG_OK) {
                    own[nown].user = names.users[names.n - 1];
                    memcpy(own[nown].id, s->id, SG_ID_LEN + 1);
                    nown++;
                }
            }
            sg_session_free(s);
        }
        sgi_unlock(st);
        if (rc != SG_OK || bad.n == 0)
            continue;
        rc = sgi_lock(st, SGI_EXCLUSIVE, err);
        int locked = rc == SG_OK;
        for (size_t j = 0; rc == SG_OK && j < bad.n; j++) {
            sg_session *s;
            int damaged;
            sg_status lrc = walk_load(st, bad.ids[j], &s, &damaged, err);
            if (lrc == SG_OK)
                sg_session_free(s);     /* rewritten since: sound now */
            else if (lrc == SG_ENOTFOUND && damaged)
                rc = st->be->del(st, bad.ids[j], err);
            else if (lrc != SG_ENOTFOUND)
                rc = lrc;
            if (rc == SG_ENOTFOUND)
                rc = SG_OK;
        }
        if (locked)
            sgi_unlock(st);
    }
    free(bad.ids);
    /* Each user's index rebuilt under a lock of its own: the owners in
     * order of name, then the users with an index but no session. */
    if (rc == SG_OK && nown > 1)
        qsort(own, nown, sizeof *own, by_owner);
    sg_list want = { 0, 0, NULL };
    for (size_t i = 0; rc == SG_OK && i < nown; ) {
        size_t j = i;
        want.n = 0;
        for (; j < nown && strcmp(own[j].user, own[i].user) == 0; j++)
            if (sgi_list_push(&want, own[j].id) < 0) {
                rc = oom(st, err);
                break;
            }
        if (rc == SG_OK && (rc = sgi_lock(st, SGI_EXCLUSIVE, err)) == SG_OK) {
            list_sort_unique(&want);
            rc = index_rebuild(st, own[i].user, &want, err);
            sgi_unlock(st);
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
        if ((rc = sgi_lock(st, SGI_EXCLUSIVE, err)) == SG_OK) {
            rc = index_rebuild(st, w.users[i], &empty, err);
            sgi_unlock(st);
        }
    }
    free(own);
    free_users(&names);
    free_users(&w);
    sg_list_free(ids);
    /* Repair recounts the kept figures (counters.c), chunked like the
     * walks above. */
    if (rc == SG_OK && repair)
        rc = sgi_counters_rebuild(st, err);
    if (out)
        *out = rep;
    if (rc == SG_OK && rep.bad_records && !repair)
        return sgi_err(err, SG_ESTORE, 0, "store %s: %zu damaged record(s) "
                       "(run sessgatectl check --repair)", st->path,
                       rep.bad_records);
    return rc;
}
