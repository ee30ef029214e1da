/*
 * store.c - opening a store, its options, the lock discipline above the
 * backend, the clock and liveness, and reading and writing one record.
 * The per-user index is in index.c, the whole-store walks in walk.c.
 *
 * Locks nest per handle: sg_store_begin() takes the exclusive lock and
 * every call made before sg_store_end() runs under it instead of taking its
 * own.  A shared lock is never upgraded in place (two readers upgrading
 * would deadlock each other); code that finds it must write releases the
 * shared lock, takes the exclusive one and reads again.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sg_status fill_options(const sg_options *in, sg_options *o,
                              int *explicit_touch, sg_error *err)
{
    sg_options_init(o);
    *explicit_touch = 0;
    if (!in)
        return SG_OK;
    /* The ranges are options.c's table: the one the command lines use. */
    sg_status rc = sgi_options_check(in, err);
    if (rc != SG_OK)
        return rc;
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
    /* 0: the default; SG_ROTATE_GRACE_NONE: no grace (stored as 0). */
    if (in->rotate_grace)
        o->rotate_grace = in->rotate_grace < 0 ? 0 : in->rotate_grace;
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
               strncmp(uri, "redis+unix:", 11) == 0 ||
               strncmp(uri, "redis+sentinel://", 17) == 0) {
        be = &sgi_backend_redis;    /* parses the whole URI itself */
    } else if (strstr(uri, "://")) {
        /* Masked: a mistyped scheme must not print the password a
         * "user:pw@" part holds. */
        char *shown = sgi_uri_masked(uri);
        sg_status rc = sgi_err(err, SG_EINVAL, 0, "store %s: unknown store "
                               "type (use a path, gdbm:PATH, redis://HOST:PORT"
                               "/DB or redis+unix:/SOCKET)", shown ? shown : "");
        free(shown);
        return rc;
    }
    sg_store *st = calloc(1, sizeof *st);
    if (!st)
        return sgi_oom(err, "store", uri);
    sg_status rc = fill_options(opt, &st->opt, &st->touch_explicit, err);
    if (rc != SG_OK) {
        free(st);
        return rc;
    }
    st->be = be;
    st->path = strdup(loc);
    if (!st->path) {
        free(st);
        return sgi_oom(err, "store", uri);
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
    sgi_memo_free(st);
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

static int64_t us_between(const struct timespec *a, const struct timespec *b)
{
    return (int64_t)(b->tv_sec - a->tv_sec) * 1000000 +
           (b->tv_nsec - a->tv_nsec) / 1000;
}

/* Before a whole-store walk takes the exclusive lock again.  Its holds are
 * short (walk.c, index.c), but it takes the next one microseconds after
 * releasing the last, and flock() is not fair: a writer polling for the
 * lock every 0.5 ms, a reader every 2 ms, nearly never hit the gap, and
 * waited through the whole chain.  A purge of 200,000 sessions held the
 * lock in holds of at most 19 ms, but in chains of up to 170 ms, and a
 * writer and a reader beside it each waited 170 ms.  So: a writer already
 * waiting goes first (the backend's lock_yield), and once the chain has
 * held the lock for WALK_CHAIN_US the walk leaves it alone for
 * WALK_GAP_US, longer than a waiting reader's poll interval (readers
 * announce nothing).  That costs a purge about a quarter more time in its
 * exclusive steps. */
static void walk_gap(sg_store *st)
{
    if (st->ex_chain_us >= WALK_CHAIN_US) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = WALK_GAP_US - us_between(&st->ex_released, &now);
        if (left > 0) {
            struct timespec ts = { 0, (long)left * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    if (st->be->lock_yield && !st->nowait)
        st->be->lock_yield(st);
}

/* An exclusive hold asked for at st->lock_asked ended (the lock released)
 * at *end: count it into its chain. */
static void chain_count(sg_store *st, const struct timespec *end)
{
    uint64_t hold = (uint64_t)us_between(&st->lock_asked, end);
    if (st->ex_released.tv_sec == 0 ||
        us_between(&st->ex_released, &st->lock_asked) >= WALK_GAP_US)
        st->ex_chain_us = 0;
    st->ex_chain_us += hold;
    if (st->ex_chain_us > st->ex_chain_max_us)
        st->ex_chain_max_us = st->ex_chain_us;
    if (hold > st->ex_hold_max_us)
        st->ex_hold_max_us = hold;
    st->ex_released = *end;
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

    if (mode == SGI_EXCLUSIVE && st->walking)
        walk_gap(st);
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
    st->held_since = t1;
    st->lock_asked = t0;
    st->index_work = 0;
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
        struct timespec end;
        if (st->lock_mode == SGI_EXCLUSIVE)
            sgi_counters_end(st);   /* figures follow the hold */
        /* (Before unlock(), which may go on to build a checkpoint after
         * releasing the lock.) */
        clock_gettime(CLOCK_MONOTONIC, &end);
        st->be->unlock(st);
        if (st->lock_mode == SGI_EXCLUSIVE) {
            chain_count(st, &end);
            /* How long other writers (and, on GDBM, readers) were kept
             * out: the figure #13 asks to keep small (update() holds the
             * lock only for its write, never while the caller's code runs). */
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            uint64_t us = (uint64_t)((t.tv_sec - st->held_since.tv_sec) * 1000000 +
                                     (t.tv_nsec - st->held_since.tv_nsec) / 1000);
            if (us > st->locks.max_hold_us)
                st->locks.max_hold_us = us;
        }
        st->lock_mode = SGI_UNLOCKED;
    }
}

/* See sessgate.h.  Outside any hold of the caller's: a build takes the
 * locks it needs for an instant at a time. */
sg_status sg_store_checkpoint(sg_store *st, int flags, int *built,
                              sg_error *err)
{
    int done = 0;
    sg_status rc = SG_OK;
    if (!st->be->checkpoint) {
        /* Masked: a Redis URI may hold a password. */
        char *shown = sgi_uri_masked(st->path);
        rc = sgi_err(err, SG_ENOTSUP, 0, "store %s: keeps no checkpoints "
                     "(only GDBM stores do); nothing to build",
                     shown ? shown : "");
        free(shown);
    } else if (!(flags & SG_CHECKPOINT_QUERY) && st->opt.readonly)
        rc = sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only; cannot "
                     "build a checkpoint", st->path);
    else if (!(flags & SG_CHECKPOINT_QUERY) && st->lock_mode != SGI_UNLOCKED)
        rc = sgi_err(err, SG_EINVAL, 0, "store %s: a checkpoint cannot be "
                     "built inside sg_store_begin", st->path);
    else
        rc = st->be->checkpoint(st, flags, &done, err);
    if (built)
        *built = rc == SG_OK && done;
    return rc;
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
    return sgi_load_text(st, id, text, len, out, damaged, err);
}

/* The second half of sgi_load_ex: the session in text (len bytes, as the
 * backend's fetch of id gave it; freed here).  Needs no lock: a walk
 * parses a chunk's records after releasing it (walk.c). */
sg_status sgi_load_text(sg_store *st, const char *id, char *text,
                        size_t len, sg_session **out, int *damaged,
                        sg_error *err)
{
    *out = NULL;
    if (damaged)
        *damaged = 0;
    sg_error perr = { 0 };
    sg_status rc = sgi_record_parse(text, len, out, &perr);
    if (rc == SG_OK && st->memo_fill && strcmp((*out)->id, id) == 0)
        sgi_memo_put(st, id, text, len);
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
    sgi_stored_as(*out);
    return SG_OK;
}

/* Remember s's user as the stored copy's (stored_known 0 for a name over
 * SG_MAX_USER, which only an old record can hold: saves of s then take
 * the locked path). */
void sgi_stored_as(sg_session *s)
{
    size_t n = s->user ? strlen(s->user) : 0;
    s->stored_anon = !s->user;
    s->stored_known = n <= SG_MAX_USER;
    if (s->stored_known)
        memcpy(s->stored_user, s->user ? s->user : "", n + 1);
}

/* Fill the record fields of a backend's rec_* call for s (backend.h). */
void sgi_rec_fill(const sg_store *st, const sg_session *s, const char *text,
                  size_t len, sgi_rec *r)
{
    r->id = r->new_id = s->id;
    r->val = text;
    r->len = len;
    r->expire_at = sgi_expire_at(st, s);
    r->version = s->version;
    r->user = s->user;
    r->created = s->created;
    int64_t end = sgi_add_sat(s->accessed, s->idle);
    r->live_until = s->expires < end ? s->expires : end;
    r->now = sgi_now(st);
    r->cap = st->opt.max_per_user > 0 ? st->opt.max_per_user : 0;
}

/* Write a record's text (the dump of s), with the fields a backend's
 * rec_* operations check when it has them.  Caller holds the exclusive
 * lock. */
sg_status sgi_put_text(sg_store *st, const sg_session *s, const char *text,
                       size_t len, sg_error *err)
{
    if (st->be->rec_put) {
        sgi_rec r = { 0 };
        sgi_rec_fill(st, s, text, len, &r);
        return st->be->rec_put(st, &r, err);
    }
    return st->be->put(st, s->id, text, len, sgi_expire_at(st, s), err);
}

/* Write a record.  Caller holds the exclusive lock. */
sg_status sgi_put(sg_store *st, const sg_session *s, sg_error *err)
{
    size_t len;
    char *text = sgi_record_dump(s, &len);
    if (!text)
        return sgi_oom(err, "store", st->path);
    sg_status rc = sgi_put_text(st, s, text, len, err);
    free(text);
    return rc;
}
