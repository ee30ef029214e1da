/*
 * session.c - one session in the store: create, get (strict, with touch),
 * save (with a version check), rotate, delete, atomic update, flash pop,
 * import.  The record itself (fields, accessors, parse, dump) is record.c.
 *
 * Versions: every save, rotate or user change bumps `version`, and a save
 * whose copy was loaded at an older version fails with SG_ECONFLICT rather
 * than silently overwriting a newer write (no lost updates).  Touching
 * `accessed` is not a change of the session and does not bump the version:
 * otherwise every reader would make concurrent writers conflict.
 *
 * Touch: a get that finds `accessed` older than the touch interval rewrites
 * it, so a hot read path stays read-only (shared lock, no write) except
 * once per interval per session.  `accessed` only ever moves forward.
 *
 * Clock jumps: liveness is judged on the clock's reading, and the library
 * cannot tell a wrong reading from a right one.  What it can do is make an
 * expiry that was seen final: a get that may write (no SG_GET_NOTOUCH) or
 * a save that finds a session expired marks the record ended (see
 * mark_ended), so a clock that then jumps back, or returns from a jump
 * forward, cannot bring it back.  (tests/unit/test_clock.c)
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static sg_status readonly_err(sg_store *st, sg_error *err)
{
    return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only",
                   st->path);
}

/* The `expires` of a session whose expiry was seen: one second after the
 * epoch, below every reading a real clock gives, so `now < expires` stays
 * false whichever way the clock jumps later.  (For Redis it is also an
 * expiry time in the past, so the server drops the record at once.) */
#define SESSION_ENDED 1

static int same_user(const char *a, const char *b);

/* The user of the stored copy s was loaded or saved as (NULL anonymous). */
#define STORED_USER(s) ((s)->stored_anon ? NULL : (s)->stored_user)

/* 1 when this write of one session may go to the backend's rec_*
 * operations, one atomic step without the store lock (Redis: a script,
 * backend.h).  Not when this handle holds a lock (sg_store_begin or a
 * nested call: the caller asked for the lock's exclusion, and the script
 * would wait for our own lease), and not with a store clock (tests,
 * embedders): the backend's expiry runs on real time. */
static int unlocked_writes(const sg_store *st)
{
    return st->be->rec_save && st->lock_mode == SGI_UNLOCKED &&
           !st->opt.clock && !st->opt.readonly;
}

/* Mark the stored session id ended if it is still expired by a fresh
 * reading.  Best effort, like a touch: on failure the session is merely
 * expired (by this reading) instead of ended for good.  Where the backend
 * can (rec_end: Redis) it is one atomic step with no store-wide lock; a
 * backend that drops values past their end deletes it instead of writing
 * it ended, which is as final. */
static void mark_ended(sg_store *st, const char *id)
{
    if (st->opt.readonly)
        return;
    if (unlocked_writes(st) && st->be->rec_end) {
        sgi_rec r = { 0 };
        r.id = r.new_id = id;
        r.now = sgi_now(st);
        sg_error ignored = { 0 };
        if (st->be->rec_end(st, &r, &ignored) != SG_OK || !r.fallback)
            return;
    }
    if (sgi_lock(st, SGI_EXCLUSIVE, NULL) != SG_OK)
        return;
    sg_session *cur;
    if (sgi_load(st, id, &cur, NULL) == SG_OK) {
        if (!sgi_live(cur, sgi_now(st)) && cur->expires != SESSION_ENDED) {
            cur->expires = SESSION_ENDED;
            sgi_put(st, cur, NULL);
        }
        sg_session_free(cur);
    }
    sgi_unlock(st);
}

/* Create s under a fresh id with rec_create.  *fallback = 1: nothing
 * done, create under the lock instead. */
static sg_status create_unlocked(sg_store *st, sg_session *s, int *fallback,
                                 sg_error *err)
{
    for (int tries = 0; tries < 4; tries++) {
        sg_status rc = sgi_id_new(s->id, err);
        if (rc != SG_OK)
            return rc;
        size_t len;
        char *text = sgi_record_dump(s, &len);   /* owned, freed below */
        if (!text)
            return sgi_oom(err, "store", st->path);
        sgi_rec r = { 0 };
        sgi_rec_fill(st, s, text, len, &r);
        rc = st->be->rec_create(st, &r, err);
        free(text);
        if (rc != SG_OK)
            return rc;
        if (r.fallback) {
            *fallback = 1;
            return SG_OK;
        }
        if (!r.collision) {
            sgi_stored_as(s);
            return SG_OK;
        }
    }
    return sgi_err(err, SG_ESTORE, 0, "store %s: id generator keeps "
                   "repeating ids", st->path);
}

/* What save_checked does: save, rotate (the old id gets the store's
 * grace window) or rotate with no grace (sg_session_rotate_ex). */
enum { SAVE = 0, ROTATE = 1, ROTATE_NOW = 2 };

/* Save (or rotate) s with rec_save: the record write_next writes,
 * conditional on the version and user s was loaded with, in one step.
 * (It takes s->accessed, not the stored one, as the floor for the new
 * `accessed`: they differ only by a touch since the load.)  *fallback =
 * 1: nothing done, save under the lock instead. */
static sg_status save_unlocked(sg_store *st, sg_session *s, int rotate,
                               int *fallback, sg_error *err)
{
    char new_id[SG_ID_LEN + 1];
    memcpy(new_id, s->id, sizeof new_id);
    sg_status rc;
    if (rotate && (rc = sgi_id_new(new_id, err)) != SG_OK)
        return rc;
    sg_session next = *s;               /* shallow: never freed */
    memcpy(next.id, new_id, sizeof new_id);
    next.version = s->version + 1;
    int64_t now = sgi_now(st);
    next.accessed = s->accessed > now ? s->accessed : now;
    if (rotate)
        next.rotated = now;
    /* As write_next: a login gets a new CSRF token. */
    int login = !same_user(s->user, STORED_USER(s));
    if ((login || !next.csrf[0]) && (rc = sgi_token_new(next.csrf, err)) != SG_OK)
        return rc;
    char alias[SGI_ALIAS_MAX];
    const char *alias_val = NULL;
    int64_t alias_at = 0;
    if (rotate == ROTATE && !login && st->opt.rotate_grace > 0 &&
        sgi_alias_value(st, new_id, alias, &alias_at) > 0)
        alias_val = alias;
    size_t len;
    char *text = sgi_record_dump(&next, &len);  /* owned, freed below */
    if (!text)
        return sgi_oom(err, "store", st->path);
    sgi_rec r = { 0 };
    sgi_rec_fill(st, &next, text, len, &r);
    r.id = s->id;
    r.new_id = new_id;
    r.expect_version = s->version;
    r.expect_user = STORED_USER(s);
    r.alias_val = alias_val;
    r.alias_expire_at = alias_at;
    rc = st->be->rec_save(st, &r, err);
    free(text);
    if (rc == SG_OK && r.fallback) {
        *fallback = 1;
        return SG_OK;
    }
    if (rc == SG_OK && r.collision)
        return sgi_err(err, SG_ESTORE, 0, "store %s: id collision", st->path);
    if (rc == SG_ENOTFOUND)
        return sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found (deleted "
                       "or rotated since it was loaded)", s->id);
    if (rc == SG_EEXPIRED)
        return sgi_err(err, SG_EEXPIRED, 0, "session %s: expired", s->id);
    if (rc == SG_ECONFLICT)
        return sgi_err(err, SG_ECONFLICT, 0, "session %s: conflict: stored "
                       "version %llu, this copy is version %llu (reload and "
                       "apply the change again)", s->id,
                       (unsigned long long)r.stored_version,
                       (unsigned long long)s->version);
    if (rc != SG_OK)
        return rc;
    memcpy(s->id, new_id, SG_ID_LEN + 1);
    memcpy(s->csrf, next.csrf, SG_CSRF_LEN + 1);
    s->rotated = next.rotated;
    s->version = next.version;
    s->accessed = next.accessed;
    sgi_stored_as(s);
    return SG_OK;
}

/* Touch s with rec_save at its own version (a touch is no change of the
 * session: the version stays), so a save that came in between wins and
 * the touch is dropped.  1: do the touch under the lock instead. */
static int touch_unlocked(sg_store *st, sg_session *s)
{
    if (!s->stored_known)
        return 1;
    sg_session t = *s;                  /* shallow: never freed */
    int64_t now = sgi_now(st);
    if (t.accessed < now)
        t.accessed = now;
    if (!t.csrf[0] && sgi_token_new(t.csrf, NULL) != SG_OK)
        return 0;
    size_t len;
    char *text = sgi_record_dump(&t, &len);     /* owned, freed below */
    if (!text)
        return 0;
    sgi_rec r = { 0 };
    sgi_rec_fill(st, &t, text, len, &r);
    r.expect_version = s->version;
    r.expect_user = STORED_USER(s);
    sg_error ignored = { 0 };
    sg_status rc = st->be->rec_save(st, &r, &ignored);
    free(text);
    if (rc == SG_OK && r.fallback)
        return 1;
    if (rc == SG_OK && !r.collision) {
        s->accessed = t.accessed;
        memcpy(s->csrf, t.csrf, SG_CSRF_LEN + 1);
    }
    return 0;
}

/* Create and store a new session.  New: *out. */
static sg_status create_session(sg_store *st, const char *user,
                                const char *data_json, int64_t idle_timeout,
                                int64_t max_age, sg_session **out,
                                sg_error *err);

sg_status sg_session_create(sg_store *st, const char *user,
                            const char *data_json, int64_t idle_timeout,
                            int64_t max_age, sg_session **out, sg_error *err)
{
    return sg_session_create_ex(st, user, data_json, idle_timeout, max_age,
                                0, out, err);
}

/* The no-wait flag is the handle's for one call, as in sg_session_get:
 * only the outermost lock waits, so inside sg_store_begin it changes
 * nothing.  Why the write calls have it too: the nginx module creates
 * and renews sessions from a worker's event loop (issue #14), where a
 * wait in flock() would stall every connection of the worker. */
#define WITH_NOWAIT(st, flag, call) do { \
        int was_ = (st)->nowait; \
        (st)->nowait = (flag) != 0; \
        rc = (call); \
        (st)->nowait = was_; \
    } while (0)

sg_status sg_session_create_ex(sg_store *st, const char *user,
                               const char *data_json, int64_t idle_timeout,
                               int64_t max_age, unsigned flags,
                               sg_session **out, sg_error *err)
{
    sg_status rc;
    *out = NULL;
    if (flags & ~(unsigned)SG_CREATE_NOWAIT)
        return sgi_err(err, SG_EINVAL, 0, "create: unknown flags %#x", flags);
    WITH_NOWAIT(st, flags & SG_CREATE_NOWAIT,
                create_session(st, user, data_json, idle_timeout, max_age,
                               out, err));
    return rc;
}

static sg_status create_session(sg_store *st, const char *user,
                                const char *data_json, int64_t idle_timeout,
                                int64_t max_age, sg_session **out,
                                sg_error *err)
{
    *out = NULL;
    if (st->opt.readonly)
        return readonly_err(st, err);
    if (user && sgi_user_check(user, err) != SG_OK)
        return SG_EINVAL;
    sg_session *s = sgi_session_new();
    if (!s)
        return sgi_oom(err, "session", NULL);
    s->max_data = st->opt.max_data;
    sg_status rc = SG_OK;
    /* The checks of every data write, and the stored text kept. */
    if (data_json && (rc = sg_session_set_data(s, data_json, err)) != SG_OK)
        goto fail;
    if (user && !(s->user = strdup(user))) {
        rc = sgi_oom(err, "session", NULL);
        goto fail;
    }
    rc = sgi_token_new(s->csrf, err);
    if (rc != SG_OK)
        goto fail;
    int64_t now = sgi_now(st);
    s->created = s->accessed = now;
    s->idle = idle_timeout > 0 ? idle_timeout : st->opt.idle_timeout;
    s->expires = now + (max_age > 0 ? max_age : st->opt.max_age);
    s->version = 1;
    s->is_new = 1;
    if (unlocked_writes(st)) {
        int fallback = 0;
        rc = create_unlocked(st, s, &fallback, err);
        if (rc != SG_OK)
            goto fail;
        if (!fallback) {
            *out = s;
            return SG_OK;
        }
    }
    rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        goto fail;
    /* 128 random bits never collide in practice; checking costs one fetch
     * and makes "a create never replaces a session" unconditional. */
    for (int tries = 0; rc == SG_OK; tries++) {
        rc = sgi_id_new(s->id, err);
        if (rc != SG_OK)
            break;
        char *old;
        size_t len;
        sg_status f = st->be->fetch(st, s->id, &old, &len, err);
        if (f == SG_ENOTFOUND)
            break;
        if (f != SG_OK) {
            rc = f;
            break;
        }
        free(old);
        if (tries == 3)
            rc = sgi_err(err, SG_ESTORE, 0, "store %s: id generator keeps "
                         "repeating ids", st->path);
    }
    if (rc == SG_OK && s->user)
        rc = sgi_index_add(st, s->user, s->id, err);   /* index first */
    int written = 0;
    if (rc == SG_OK) {
        rc = sgi_put(st, s, err);
        written = rc == SG_OK;
    }
    if (rc == SG_OK && s->user)
        rc = sgi_enforce_cap(st, s->user, s->id, err);
    /* The cap could not be enforced (out of memory, say): take the new
     * session back out, so a create that fails leaves none behind; an
     * orphan whose id nobody holds would still count against the cap.
     * Its index entry stays (a superset is safe); sessions the cap had
     * evicted by then stay evicted. */
    if (rc != SG_OK && written)
        (void)st->be->del(st, s->id, NULL);
    sgi_unlock(st);
    if (rc != SG_OK)
        goto fail;
    sgi_stored_as(s);
    *out = s;
    return SG_OK;
fail:
    sg_session_free(s);
    return rc;
}

/* Load a live session (strict).  New: *out. */
static sg_status get_session(sg_store *st, const char *id, unsigned flags,
                             sg_session **out, sg_error *err);

sg_status sg_session_get(sg_store *st, const char *id, unsigned flags,
                         sg_session **out, sg_error *err)
{
    *out = NULL;
    if (!sg_id_valid(id))
        return sgi_err(err, SG_ENOTFOUND, 0, "session: malformed id");
    /* Only the outermost lock waits (an sg_store_begin around the get
     * already holds it), so the flag is the handle's for this call. */
    int was = st->nowait;
    st->nowait = (flags & SG_GET_NOWAIT) != 0;
    sg_status rc = get_session(st, id, flags, out, err);
    st->nowait = was;
    return rc;
}

static sg_status get_session(sg_store *st, const char *id, unsigned flags,
                             sg_session **out, sg_error *err)
{
    sg_session *s = NULL;
    sg_status rc;
    int damaged = 0;
    /* SG_GET_MEMO: the record as this handle last read it, while no
     * writer has moved the store's counter since (memo.c). */
    if ((flags & SG_GET_MEMO) &&
        (s = sgi_memo_get(st, id)) != NULL)
        goto loaded;
    rc = sgi_lock(st, SGI_SHARED, err);
    if (rc != SG_OK)
        return rc;
    sg_error lerr = { 0 };
    st->memo_fill = (flags & SG_GET_MEMO) != 0;
    rc = sgi_load_ex(st, id, &s, &damaged, &lerr);
    st->memo_fill = 0;
    /* An id rotated away within the grace window resolves to the session
     * it became.  The new id may itself have been renewed within the
     * window (a renewal interval shorter than the grace), so the aliases
     * are followed, a bounded number of hops, each with its own window. */
    char hop[SG_ID_LEN + 1], renewed[SG_ID_LEN + 1];
    memcpy(hop, id, SG_ID_LEN + 1);
    for (int hops = 0; rc == SG_ENOTFOUND && st->opt.rotate_grace > 0 &&
         hops < SGI_MAX_ALIAS_HOPS && sgi_alias_resolve(st, hop, renewed) == SG_OK; hops++) {
        sg_error_clear(&lerr);
        rc = sgi_load_ex(st, renewed, &s, &damaged, &lerr);
        if (rc == SG_OK)
            id = s->id;
        memcpy(hop, renewed, SG_ID_LEN + 1);
    }
    sgi_unlock(st);
    if (rc != SG_OK && rc != SG_ENOTFOUND && err && err->code == SG_OK)
        *err = lerr;
    if (rc == SG_ENOTFOUND)
        return sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found", id);
    /* Why: a record that fails to parse can never become a session again,
     * so on a request path it is one that does not exist; answering 503
     * for it would lock that browser out until check --repair. */
    if (damaged && (flags & SG_GET_DAMAGED_ABSENT)) {
        sg_error_clear(err);            /* replace the SG_ESTORE text */
        return sgi_err(err, SG_ENOTFOUND, EBADMSG, "session %s: record is damaged; "
                       "read as absent (run sessgatectl check --repair)", id);
    }
    if (rc != SG_OK)
        return rc;
loaded:;
    int64_t now = sgi_now(st);
    if (!sgi_live(s, now)) {
        /* A get that may write is a use of the session: the user saw it
         * expire, and a backward clock jump must not revive it.  A no-touch
         * get (an admin looking) leaves the store as it is. */
        if (!(flags & SG_GET_NOTOUCH) && s->expires != SESSION_ENDED)
            mark_ended(st, id);
        sg_session_free(s);
        return sgi_err(err, SG_EEXPIRED, 0, "session %s: expired", id);
    }
    /* A record from before CSRF tokens gets one on its first use, written
     * like a touch, so that every reader sees the same token. */
    if (!(flags & SG_GET_NOTOUCH) && !st->opt.readonly &&
        (now - s->accessed >= sgi_touch_interval(st, s) || !s->csrf[0])) {
        /* Touch under the exclusive lock, re-reading first: the copy we
         * hold may be stale by now.  Inside sg_store_begin this nests.
         * Best effort: a failed touch still returns the session it read. */
        if ((!unlocked_writes(st) || touch_unlocked(st, s)) &&
            sgi_lock(st, SGI_EXCLUSIVE, NULL) == SG_OK) {
            sg_session *fresh;
            if (sgi_load(st, id, &fresh, NULL) == SG_OK) {
                now = sgi_now(st);
                if (sgi_live(fresh, now)) {
                    if (fresh->accessed < now)
                        fresh->accessed = now;
                    if (!fresh->csrf[0])
                        (void)sgi_token_new(fresh->csrf, NULL);
                    if (sgi_put(st, fresh, NULL) == SG_OK) {
                        sg_session_free(s);
                        s = fresh;
                        fresh = NULL;
                    }
                }
                sg_session_free(fresh);
            }
            sgi_unlock(st);
        }
    }
    *out = s;
    return SG_OK;
}

/* Load the stored copy of s under the exclusive lock and check its version.
 * New: *cur. */
static sg_status load_current(sg_store *st, const sg_session *s,
                              sg_session **cur, sg_error *err)
{
    sg_status rc = sgi_load(st, s->id, cur, err);
    if (rc == SG_ENOTFOUND)
        return sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found (deleted "
                       "or rotated since it was loaded)", s->id);
    if (rc != SG_OK)
        return rc;
    if (!sgi_live(*cur, sgi_now(st))) {
        /* Seen expired by a writer: ended for good (see mark_ended). */
        if ((*cur)->expires != SESSION_ENDED)
            mark_ended(st, s->id);
        rc = sgi_err(err, SG_EEXPIRED, 0, "session %s: expired", s->id);
    }
    else if ((*cur)->version != s->version)
        rc = sgi_err(err, SG_ECONFLICT, 0, "session %s: conflict: stored "
                     "version %llu, this copy is version %llu (reload and "
                     "apply the change again)", s->id,
                     (unsigned long long)(*cur)->version,
                     (unsigned long long)s->version);
    if (rc != SG_OK) {
        sg_session_free(*cur);
        *cur = NULL;
    }
    return rc;
}

static int same_user(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Write s as version+1 under id new_id (s->id unless rotating), keeping
 * the index in step.  Caller holds the exclusive lock; cur is the stored
 * copy. */
static sg_status write_next(sg_store *st, sg_session *s, const sg_session *cur,
                            const char *new_id, int grace, sg_error *err)
{
    sg_session next = *s;
    memcpy(next.id, new_id, SG_ID_LEN + 1);
    next.version = cur->version + 1;
    int64_t now = sgi_now(st);
    next.accessed = cur->accessed > now ? cur->accessed : now;
    if (strcmp(new_id, s->id) != 0)
        next.rotated = now;
    int rotating = strcmp(new_id, s->id) != 0;
    int login = !same_user(s->user, cur->user);
    sg_status rc = SG_OK;
    /* Why: a token an attacker learnt before the login (a fixated or
     * shared pre-login session) must not be valid after it (Django's
     * rotate_token); a plain rotate keeps it, so forms already on the
     * page still post. */
    if (login || !next.csrf[0])
        rc = sgi_token_new(next.csrf, err);
    /* Index before record (a superset is safe, a missing entry is not). */
    if (rc == SG_OK && s->user && (rotating || login))
        rc = sgi_index_add(st, s->user, new_id, err);
    /* The record is dumped once: its length sizes the reservation below
     * and the same text is written. */
    size_t len = 0;
    char *text = NULL;                  /* owned here, freed below */
    if (rc == SG_OK && !(text = sgi_record_dump(&next, &len)))
        rc = sgi_oom(err, "store", st->path);
    /* Room for the rest first: once the record is written, the old id
     * (and the sessions the cap evicts) must go too, and a delete that
     * failed for lack of space left both ids working, as the undo below
     * needs room as well.  (The index entry above is safe to leave.) */
    if (rc == SG_OK && (rotating || login) && st->be->reserve)
        rc = st->be->reserve(st, 2 * len + 4096, err);
    int written = 0;
    if (rc == SG_OK) {
        rc = sgi_put_text(st, &next, text, len, err);
        written = rc == SG_OK;
    }
    free(text);
    /* The cap before the old id goes: once it has gone, nothing may fail
     * (the caller would hold a dead id and not know the new one). */
    if (rc == SG_OK && s->user && login)
        rc = sgi_enforce_cap(st, s->user, new_id, err);
    if (rc == SG_OK && rotating) {
        rc = st->be->del(st, s->id, err);
        if (rc == SG_ENOTFOUND)
            rc = SG_OK;
        /* Grace for a renewal or rotate only: a login (user change) must
         * kill the old, possibly fixated, id at once, and so must a
         * rotate the caller asks to be at once (ROTATE_NOW). */
        if (rc == SG_OK && grace && !login && st->opt.rotate_grace > 0)
            sgi_alias_put(st, s->id, new_id);
    }
    /* Failed after the record was written: undo, best effort, so that an
     * error leaves the session as it was under the id the caller holds
     * (the index keeps a stale entry: safe).  Sessions the cap evicted by
     * then stay evicted. */
    if (rc != SG_OK && written) {
        if (rotating)
            (void)st->be->del(st, new_id, NULL);
        else
            (void)sgi_put(st, cur, NULL);
    }
    /* Cleanup once the change is made: an entry left behind is stale,
     * which readers verify and purge removes, so its failure must not fail
     * a save or rotate that has happened. */
    if (rc == SG_OK && cur->user && (rotating || login))
        (void)sgi_index_remove(st, cur->user, cur->id, NULL);
    if (rc == SG_OK) {
        memcpy(s->id, new_id, SG_ID_LEN + 1);
        sgi_stored_as(s);
        memcpy(s->csrf, next.csrf, SG_CSRF_LEN + 1);
        s->rotated = next.rotated;
        s->version = next.version;
        s->accessed = next.accessed;
    }
    return rc;
}

/* Save s under the exclusive lock after a version check, keeping its id
 * or (rotate) moving it to a fresh one. */
static sg_status save_checked(sg_store *st, sg_session *s, int rotate,
                              sg_error *err)
{
    if (st->opt.readonly)
        return readonly_err(st, err);
    if (unlocked_writes(st) && s->stored_known) {
        int fallback = 0;
        sg_status frc = save_unlocked(st, s, rotate, &fallback, err);
        if (!fallback)
            return frc;
    }
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    sg_session *cur;
    rc = load_current(st, s, &cur, err);
    if (rc == SG_OK) {
        char id[SG_ID_LEN + 1];
        memcpy(id, s->id, sizeof id);
        if (rotate) {
            char *old;
            size_t len;
            rc = sgi_id_new(id, err);
            if (rc == SG_OK && st->be->fetch(st, id, &old, &len, NULL) == SG_OK) {
                free(old);
                rc = sgi_err(err, SG_ESTORE, 0, "store %s: id collision",
                             st->path);
            }
        }
        if (rc == SG_OK)
            rc = write_next(st, s, cur, id, rotate == ROTATE, err);
        sg_session_free(cur);
    }
    sgi_unlock(st);
    return rc;
}

/* Save with a version check. */
sg_status sg_session_save(sg_store *st, sg_session *s, sg_error *err)
{
    return save_checked(st, s, SAVE, err);
}

/* New id for the same session; the old one resolves to it for the
 * store's rotate_grace (none after a login). */
sg_status sg_session_rotate(sg_store *st, sg_session *s, sg_error *err)
{
    return save_checked(st, s, ROTATE, err);
}

/* sg_session_rotate; SG_ROTATE_NOW: the old id dies at once whatever the
 * store's grace (a login the library cannot see: no user change). */
sg_status sg_session_rotate_ex(sg_store *st, sg_session *s, unsigned flags,
                               sg_error *err)
{
    sg_status rc;
    if (flags & ~(unsigned)(SG_ROTATE_NOW | SG_ROTATE_NOWAIT))
        return sgi_err(err, SG_EINVAL, 0, "rotate: unknown flags %#x", flags);
    WITH_NOWAIT(st, flags & SG_ROTATE_NOWAIT,
                save_checked(st, s, (flags & SG_ROTATE_NOW) ? ROTATE_NOW
                                                            : ROTATE, err));
    return rc;
}

/* Delete by id. */
sg_status sg_session_delete(sg_store *st, const char *id, sg_error *err)
{
    if (!sg_id_valid(id))
        return sgi_err(err, SG_EINVAL, 0, "session: malformed id");
    if (st->opt.readonly)
        return readonly_err(st, err);
    if (unlocked_writes(st)) {
        sgi_rec r = { 0 };
        r.id = r.new_id = id;
        sg_status frc = st->be->rec_delete(st, &r, err);
        if (frc == SG_ENOTFOUND)
            return sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found", id);
        if (frc != SG_OK || !r.fallback)
            return frc;
    }
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    sg_session *cur = NULL;
    sg_status lrc = sgi_load(st, id, &cur, NULL);   /* damaged: delete anyway */
    rc = st->be->del(st, id, err);
    if (rc == SG_ENOTFOUND)
        sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found", id);
    /* After the delete, like write_next: a stale entry is safe. */
    if (rc == SG_OK && lrc == SG_OK && cur->user)
        (void)sgi_index_remove(st, cur->user, id, NULL);
    sg_session_free(cur);
    sgi_unlock(st);
    return rc;
}

/* Pause before retry `tries` of an update that lost a race: random, up to
 * a ceiling doubling from 0.1 ms to 12.8 ms, so that writers of one hot
 * session spread out instead of colliding again in step. */
static void update_backoff(int tries)
{
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)getpid() * 2654435761u + (unsigned)tries;
    long ceiling_us = 100L << (tries < 7 ? tries : 7);
    struct timespec ts = { 0, (long)(r % (unsigned)ceiling_us) * 1000 };
    nanosleep(&ts, NULL);
}

/* Optimistic read-modify-write: load with no lock held, run fn with no
 * lock held, then save with the version check (the exclusive lock only for
 * that write).  On a conflict (another writer saved in between) reload and
 * run fn again, up to SGI_UPDATE_TRIES times.  Why: under a lock, an
 * application's slow fn (a 2 s call) stopped every reader and writer of
 * the store for as long (issue #13).  The totals stay exact because the
 * save only succeeds on the version fn saw. */
sg_status sg_session_update(sg_store *st, const char *id, sg_update_fn fn,
                            void *arg, sg_error *err)
{
    sg_status rc = SG_ECONFLICT;
    for (int tries = 0; tries < SGI_UPDATE_TRIES; tries++) {
        if (tries > 0)
            update_backoff(tries - 1);
        sg_session *s;
        rc = sg_session_get(st, id, SG_GET_NOTOUCH, &s, err);
        if (rc != SG_OK)
            return rc;
        rc = fn(s, arg, err);
        if (rc != SG_OK) {              /* abandoned by fn: nothing saved */
            sg_session_free(s);
            return rc;
        }
        sg_error serr = { 0 };
        rc = sg_session_save(st, s, &serr);
        sg_session_free(s);
        if (rc != SG_ECONFLICT || tries + 1 == SGI_UPDATE_TRIES) {
            if (rc != SG_OK && err && err->code == SG_OK && serr.code != SG_OK)
                *err = serr;
            return rc;
        }
    }
    return rc;
}

/* Take the flash messages of s's stored copy without the store lock
 * (unlocked_writes): load, then save the copy without them conditional on
 * the version it was loaded at (rec_save: one atomic step), again from the
 * load when another write came in between.  So of two concurrent pops
 * exactly one saves the copy that held a message: none is shown twice,
 * and a message queued meanwhile is not lost.  *taken: the messages
 * (owned), NULL for none.  *fallback = 1: nothing done, pop under the
 * lock instead. */
static sg_status flash_pop_unlocked(sg_store *st, sg_session *s,
                                    json_t **taken, int *fallback,
                                    sg_error *err)
{
    *taken = NULL;
    for (int tries = 0; tries < SGI_UPDATE_TRIES; tries++) {
        if (tries > 0)
            update_backoff(tries - 1);
        sg_session *cur;
        sg_status rc = sgi_lock(st, SGI_SHARED, err);
        if (rc != SG_OK)
            return rc;
        rc = sgi_load(st, s->id, &cur, err);
        sgi_unlock(st);
        if (rc == SG_ENOTFOUND)
            return sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found", s->id);
        if (rc != SG_OK)
            return rc;
        if (!sgi_live(cur, sgi_now(st))) {
            sg_session_free(cur);
            return sgi_err(err, SG_EEXPIRED, 0, "session %s: expired", s->id);
        }
        if (!cur->flash || !cur->stored_known) {
            *fallback = cur->flash != NULL;     /* an older format: locked */
            sg_session_free(cur);
            return SG_OK;
        }
        uint64_t loaded = cur->version;
        json_t *t = cur->flash;
        cur->flash = NULL;
        sg_error serr = { 0 };
        rc = save_unlocked(st, cur, 0, fallback, &serr);
        sg_session_free(cur);
        if (rc == SG_OK && !*fallback) {
            *taken = t;
            if (s->version == loaded)
                s->version = loaded + 1;        /* the copy stays current */
            return SG_OK;
        }
        json_decref(t);
        if (rc == SG_OK)                        /* fallback */
            return SG_OK;
        if (rc != SG_ECONFLICT) {
            if (err && err->code == SG_OK)
                *err = serr;
            return rc;
        }
    }
    return sgi_err(err, SG_ECONFLICT, 0, "session %s: flash messages: "
                   "conflicting writes kept winning (%d tries)", s->id,
                   SGI_UPDATE_TRIES);
}

/* Take and remove the pending flash messages of id, atomically. */
static sg_status flash_pop(sg_store *st, sg_session *s, char **json_out,
                           sg_error *err);

sg_status sg_session_flash_pop(sg_store *st, sg_session *s, char **json_out,
                               sg_error *err)
{
    return sg_session_flash_pop_ex(st, s, 0, json_out, err);
}

sg_status sg_session_flash_pop_ex(sg_store *st, sg_session *s, unsigned flags,
                                  char **json_out, sg_error *err)
{
    sg_status rc;
    *json_out = NULL;
    if (flags & ~(unsigned)SG_FLASH_NOWAIT)
        return sgi_err(err, SG_EINVAL, 0, "flash pop: unknown flags %#x",
                       flags);
    WITH_NOWAIT(st, flags & SG_FLASH_NOWAIT, flash_pop(st, s, json_out, err));
    return rc;
}

static sg_status flash_pop(sg_store *st, sg_session *s, char **json_out,
                           sg_error *err)
{
    const char *id = s->id;
    *json_out = NULL;
    if (st->opt.readonly)
        return readonly_err(st, err);
    json_t *taken = NULL;
    sg_session *cur = NULL;
    sg_status rc;
    if (unlocked_writes(st)) {
        int fallback = 0;
        rc = flash_pop_unlocked(st, s, &taken, &fallback, err);
        if (!fallback)
            goto done;
    }
    /* Why one exclusive lock from load to write: two requests of one
     * session (two tabs) must never both show the same message. */
    rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    rc = sgi_load(st, id, &cur, err);
    if (rc == SG_ENOTFOUND)
        rc = sgi_err(err, SG_ENOTFOUND, 0, "session %s: not found", id);
    else if (rc == SG_OK && !sgi_live(cur, sgi_now(st)))
        rc = sgi_err(err, SG_EEXPIRED, 0, "session %s: expired", id);
    if (rc == SG_OK && cur->flash) {
        taken = cur->flash;
        cur->flash = NULL;
        cur->version++;
        rc = sgi_put(st, cur, err);
        if (rc == SG_OK && s->version + 1 == cur->version)
            s->version = cur->version;      /* the copy stays current */
    }
    sgi_unlock(st);
done:
    if (rc == SG_OK) {
        json_decref(s->flash);
        s->flash = NULL;
    }
    if (rc == SG_OK) {
        *json_out = taken ? sgi_dump(taken, NULL) : strdup("[]");
        if (!*json_out)
            rc = sgi_oom(err, "session", NULL);
    }
    json_decref(taken);
    sg_session_free(cur);
    return rc;
}

/* Import one exported record, keeping its id. */
sg_status sg_session_import(sg_store *st, const char *record_json,
                            sg_error *err)
{
    if (st->opt.readonly)
        return readonly_err(st, err);
    if (!record_json)
        return sgi_err(err, SG_EINVAL, 0, "import: missing record");
    size_t len = strlen(record_json);
    if (len > st->opt.max_data + 1024)
        return sgi_err(err, SG_ETOOBIG, 0, "import: record of %zu bytes is "
                       "over the store's cap", len);
    sg_session *s;
    sg_status rc = sgi_record_from_json(record_json, len, &s, err);
    if (rc != SG_OK)
        return rc;
    s->max_data = st->opt.max_data;
    rc = sgi_data_size_check(s, s->data, err);
    if (rc == SG_OK && !sgi_live(s, sgi_now(st)))
        rc = sgi_err(err, SG_EEXPIRED, 0, "import: session %s has expired",
                     s->id);
    if (rc == SG_OK)
        rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK) {
        sg_session_free(s);
        return rc;
    }
    /* Index before record, the replaced owner's entry removed after (best
     * effort, as in write_next): removing it first left the session out of
     * its owner's index when the import then failed. */
    sg_session *cur;        /* the record replaced; NULL if none (or unreadable) */
    (void)sgi_load(st, s->id, &cur, NULL);
    /* A record replaced by one of the same user is in that user's index
     * already: adding it again would leave a duplicate entry, which one
     * delete does not account for. */
    if (rc == SG_OK && s->user && !(cur && same_user(cur->user, s->user)))
        rc = sgi_index_add(st, s->user, s->id, err);
    if (rc == SG_OK)
        rc = sgi_put(st, s, err);
    if (rc == SG_OK && cur && cur->user && !same_user(cur->user, s->user))
        (void)sgi_index_remove(st, cur->user, s->id, NULL);
    sg_session_free(cur);
    sgi_unlock(st);
    sg_session_free(s);
    return rc;
}
