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
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static sg_status bulk_oom(sg_store *st, sg_error *err)
{
    return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", st->path);
}

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
        rc = bulk_oom(st, err);
    if (rc == SG_OK)
        rc = st->be->keys(st, collect_id, &w, err);
    if (rc == SG_OK && w.oom)
        rc = bulk_oom(st, err);
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
