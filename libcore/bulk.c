/*
 * bulk.c - ending many sessions at once: every session of one user ("log
 * out everywhere", sg_store_delete_user) and every session of the store
 * (sg_store_clear).
 *
 * Both run under the store's exclusive lock from the first read to the
 * last delete.  Why: a create for the same user takes that lock too, so it
 * comes wholly before (and its session is deleted) or wholly after (and
 * survives): "log out everywhere" can never leave behind a session that
 * was being created at that moment, on either backend.  delete_user finds
 * the sessions through the per-user index (a superset of them; each id is
 * verified against its record), so its cost follows the user's sessions,
 * not the store's size.  As in sg_session_delete, the record goes first
 * and the index entry after: a process killed between the two leaves a
 * stale entry, which readers verify and purge removes.
 *
 * Also here: the grace aliases of rotations (sg_options.rotate_grace).  A
 * rotation leaves "alias:OLD" -> "NEW UNTIL" so that requests already in
 * flight with the old id (a page loading 20 assets, a second tab) still
 * find the session until UNTIL; never for a login, logout or user change
 * (session.c decides), so a fixated pre-login id dies at login at once.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Delete the record id if it belongs to user (NULL: to anyone), then its
 * index entry.  *gone is set when a record was deleted.  Caller holds the
 * exclusive lock. */
static sg_status delete_one(sg_store *st, const char *id, const char *user,
                            int *gone, sg_error *err)
{
    sg_session *s = NULL;
    int damaged = 0;
    sg_error lerr = { 0 };
    *gone = 0;
    sg_status rc = sgi_load_ex(st, id, &s, &damaged, &lerr);
    if (rc == SG_ENOTFOUND) {
        if (user)       /* a stale index entry: drop it */
            (void)sgi_index_remove(st, user, id, NULL);
        return SG_OK;
    }
    if (rc != SG_OK && !damaged) {
        if (err && err->code == SG_OK)
            *err = lerr;
        return rc;
    }
    /* A damaged record has no readable owner: clear removes it, a
     * per-user delete leaves it to check --repair. */
    if (damaged && user)
        return SG_OK;
    if (!damaged && user && (!s->user || strcmp(s->user, user) != 0)) {
        (void)sgi_index_remove(st, user, id, NULL);   /* stale: not theirs */
        sg_session_free(s);
        return SG_OK;
    }
    rc = st->be->del(st, id, err);
    if (rc == SG_ENOTFOUND)
        rc = SG_OK;
    else if (rc == SG_OK)
        *gone = 1;
    if (rc == SG_OK && s && s->user)
        (void)sgi_index_remove(st, s->user, id, NULL);
    sg_session_free(s);
    return rc;
}

/* Delete every session of user under one exclusive lock. */
sg_status sg_store_delete_user(sg_store *st, const char *user, size_t *removed,
                               sg_error *err)
{
    if (removed)
        *removed = 0;
    if (!user)
        return sgi_err(err, SG_EINVAL, 0, "delete user: no user given");
    if (sgi_user_check(user, err) != SG_OK)
        return SG_EINVAL;
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only", st->path);
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    sg_list *ids;
    rc = sgi_index_ids(st, user, &ids, err);
    size_t n = 0;
    for (size_t i = 0; rc == SG_OK && i < sg_list_count(ids); i++) {
        int gone;
        rc = delete_one(st, sg_list_id(ids, i), user, &gone, err);
        n += (size_t)gone;
    }
    sg_list_free(ids);
    sgi_unlock(st);
    if (removed)
        *removed = n;
    return rc;
}

typedef struct clear_walk {
    sg_list *ids;
    int oom;
} clear_walk;

static int collect_id(const char *key, size_t len, void *arg)
{
    clear_walk *w = arg;
    if (len == SG_ID_LEN && sg_id_valid(key) && sgi_list_push(w->ids, key) < 0) {
        w->oom = 1;
        return 1;
    }
    return 0;
}

/* Delete every session of the store under one exclusive lock. */
sg_status sg_store_clear(sg_store *st, size_t *removed, sg_error *err)
{
    if (removed)
        *removed = 0;
    if (st->opt.readonly)
        return sgi_err(err, SG_EINVAL, 0, "store %s: opened read-only", st->path);
    sg_status rc = sgi_lock(st, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    clear_walk w = { sgi_list_new(), 0 };
    if (!w.ids)
        rc = sgi_oom(err, "store", st->path);
    if (rc == SG_OK)
        rc = st->be->keys(st, collect_id, &w, err);
    if (rc == SG_OK && w.oom)
        rc = sgi_oom(err, "store", st->path);
    size_t n = 0;
    for (size_t i = 0; rc == SG_OK && i < sg_list_count(w.ids); i++) {
        int gone;
        rc = delete_one(st, sg_list_id(w.ids, i), NULL, &gone, err);
        n += (size_t)gone;
    }
    sg_list_free(w.ids);
    sgi_unlock(st);
    if (removed)
        *removed = n;
    return rc;
}

/* Now in milliseconds, for grace windows: the store's clock (whole
 * seconds) when it has one, else real time to the millisecond.
 *
 * Why not whole seconds: a window of S whole seconds closes at the first
 * second boundary after now+S-1, so it lasts anywhere between S-1 and S
 * seconds, and the requests in flight with the old id that it is for are
 * the ones served last, when the window matters. */
static int64_t alias_now_ms(const sg_store *st)
{
    struct timespec ts;
    if (st->opt.clock || clock_gettime(CLOCK_REALTIME, &ts) < 0) {
        int64_t now = sgi_now(st);
        return now < INT64_MAX / 1000 ? now * 1000 : INT64_MAX;
    }
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Record that old_id now means new_id for the store's grace window:
 * "NEWID SECONDS.MMM" (the end of the window).  With a backend that
 * expires keys (Redis) the alias goes by itself at the end of the window
 * (rounded up: never earlier); with GDBM purge removes it.  Best effort:
 * without the alias the old id simply stops working at once, as it does
 * with no grace.  Caller holds the exclusive lock. */
void sgi_alias_put(sg_store *st, const char *old_id, const char *new_id)
{
    char key[sizeof SGI_ALIAS_PREFIX + SG_ID_LEN];
    char val[SGI_ALIAS_MAX];
    int64_t expire_at;
    int n = sgi_alias_value(st, new_id, val, &expire_at);
    snprintf(key, sizeof key, "%s%s", SGI_ALIAS_PREFIX, old_id);
    if (n > 0)
        (void)st->be->put(st, key, val, (size_t)n, expire_at, NULL);
}

/* The value of the alias that says "now new_id" for the store's grace
 * window, and the instant a backend may drop it.  Its length, or -1.
 * (Also written by a backend's rec_save, backend.h.) */
int sgi_alias_value(const sg_store *st, const char *new_id,
                    char val[SGI_ALIAS_MAX], int64_t *expire_at)
{
    int64_t grace = st->opt.rotate_grace;
    int64_t until = sgi_add_sat(alias_now_ms(st),
                                grace < INT64_MAX / 1000 ? grace * 1000 : INT64_MAX);
    /* Real time only, like sgi_expire_at: a backend measures real time
     * and would drop an alias that the store's clock still finds open. */
    *expire_at = st->opt.clock ? 0 : until / 1000 + (until % 1000 != 0);
    int n = snprintf(val, SGI_ALIAS_MAX, "%s %lld.%03d", new_id,
                     (long long)(until / 1000), (int)(until % 1000));
    return n > 0 && n < SGI_ALIAS_MAX ? n : -1;
}

/* The end of an alias's window in milliseconds from "SECONDS[.MMM]" (the
 * form without milliseconds is that of aliases written before them);
 * -1 when malformed. */
static int64_t alias_until_ms(const char *text)
{
    char *end = NULL;
    errno = 0;
    long long sec = strtoll(text, &end, 10);
    if (end == text || errno || sec < 0 || sec >= INT64_MAX / 1000)
        return -1;
    int64_t ms = 0;
    if (*end == '.') {
        for (int i = 1; i <= 3; i++) {
            if (end[i] < '0' || end[i] > '9')
                return -1;
            ms = ms * 10 + (end[i] - '0');
        }
        end += 4;
    }
    return *end == '\0' ? (int64_t)sec * 1000 + ms : -1;
}

/* The id that id was rotated to, if its grace window is still open:
 * SG_OK with out filled, else SG_ENOTFOUND.  Caller holds a lock. */
sg_status sgi_alias_resolve(sg_store *st, const char *id, char out[SG_ID_LEN + 1])
{
    char key[sizeof SGI_ALIAS_PREFIX + SG_ID_LEN];
    char *val = NULL;
    size_t len = 0;
    snprintf(key, sizeof key, "%s%s", SGI_ALIAS_PREFIX, id);
    if (st->be->fetch(st, key, &val, &len, NULL) != SG_OK)
        return SG_ENOTFOUND;
    sg_status rc = SG_ENOTFOUND;
    if (len > SG_ID_LEN + 1 && val[SG_ID_LEN] == ' ') {
        memcpy(out, val, SG_ID_LEN);
        out[SG_ID_LEN] = '\0';
        int64_t until = alias_until_ms(val + SG_ID_LEN + 1);
        if (sg_id_valid(out) && until >= 0 && alias_now_ms(st) < until)
            rc = SG_OK;
    }
    free(val);
    return rc;
}

