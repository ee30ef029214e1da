/*
 * cgi_apply.c - apply the session changes a CGI program asks for in its
 * reply (X-Session-Set/Replace/Login/Logout/Rotate/Flash), under the store
 * lock, all or nothing; and refuse them when the session changed while the
 * program ran (cgi_stale: no lost updates).
 *
 * Like cgi_reply.c it knows nothing of FastCGI or of the request: it takes
 * the parsed reply, the store and the session the program was given, and
 * says what happened and which cookie the browser needs (apply_result);
 * the caller writes the header lines.  tests/unit/test_cgi_apply.c drives
 * it against a real store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway.h"

static int directive_on(const char *v)
{
    return *v && strcmp(v, "0") != 0;
}

/* Whether json values a and b (either may be NULL: key absent) are equal. */
static int json_same(json_t *a, json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

/*
 * Why (DESIGN 3, no lost updates): the program computed its X-Session-Set
 * and X-Session-Replace values from the SESSION_DATA it was given (a
 * counter: n+1).  If another request saved the session while it ran, the
 * copy reloaded under the lock is newer, and merging into it would silently
 * overwrite that request's write: two concurrent increments would count as
 * one (measured: up to half of concurrent increments lost).  So a change is
 * stale when a key it sets (Set), or the data it replaces (Replace), no
 * longer holds what the program was given.  Keys it did not name may have
 * changed freely, e.g. by the program itself through the bindings, which is
 * why the reload stays.  1 stale (or unreadable: fail safe), 0 not.
 */
static int cgi_stale(const sg_session *seen, const sg_session *cur, const reply *r)
{
    char *seen_text, *cur_text;
    json_t *seen_data, *cur_data;
    int stale = 0;
    size_t i;

    if (!seen || !cur || sg_session_version(seen) == sg_session_version(cur))
        return 0;
    for (i = 0; i < r->nheaders; i++)
        if (r->headers[i].directive == DIR_SET || r->headers[i].directive == DIR_REPLACE)
            break;
    if (i == r->nheaders)
        return 0;                       /* no Set/Replace: nothing to overwrite */
    seen_text = sg_session_data_json(seen);     /* owned here, freed below */
    cur_text = sg_session_data_json(cur);       /* owned here, freed below */
    seen_data = seen_text ? json_loads(seen_text, 0, NULL) : NULL;
    cur_data = cur_text ? json_loads(cur_text, 0, NULL) : NULL;
    if (!json_is_object(seen_data) || !json_is_object(cur_data))
        stale = 1;
    for (i = 0; i < r->nheaders && !stale; i++) {
        const reply_header *h = &r->headers[i];
        json_t *change, *v;
        const char *key;

        if (h->directive == DIR_REPLACE)
            stale = !json_equal(seen_data, cur_data);
        else if (h->directive == DIR_SET) {
            change = json_loads(h->value, 0, NULL);
            /* Not an object: not applied below either (logged there). */
            if (json_is_object(change))
                json_object_foreach(change, key, v)
                    if (!json_same(json_object_get(seen_data, key),
                                   json_object_get(cur_data, key))) {
                        stale = 1;
                        break;
                    }
            json_decref(change);
        }
    }
    json_decref(seen_data);
    json_decref(cur_data);
    free(seen_text);
    free(cur_text);
    return stale;
}

/* What the directives of r ask for, from the reply alone. */
static void apply_plan_read(const reply *r, apply_plan *p)
{
    size_t i;

    memset(p, 0, sizeof *p);
    for (i = 0; i < r->nheaders; i++) {
        switch (r->headers[i].directive) {
        case DIR_SET: case DIR_REPLACE: case DIR_LOGIN: case DIR_FLASH:
            p->want = 1;
            break;
        case DIR_LOGOUT:
            if (strcmp(r->headers[i].value, "all") == 0)
                p->logout_all = 1;
            p->logout |= directive_on(r->headers[i].value);
            break;
        case DIR_ROTATE:
            p->rotate |= directive_on(r->headers[i].value);
            break;
        default:
            break;
        }
    }
}

static void cookie_set(apply_result *out, const char *id)
{
    out->cookie = APPLY_COOKIE_SET;
    snprintf(out->id, sizeof out->id, "%s", id);
}

/* X-Session-Logout: end the session (and with "all" every session of its
 * user) and expire the cookie.  APPLY_OK or APPLY_STORE. */
static int apply_logout(sg_store *st, const sg_session *seen, const apply_plan *p,
                        apply_result *out)
{
    /* "all": every session of the current user ends, in one step that a
     * login of that user elsewhere cannot interleave with
     * (sg_store_delete_user); the current one too, user or not. */
    const char *user = seen ? sg_session_user(seen) : NULL;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    if (p->logout_all && user) {
        size_t n = 0;
        rc = sg_store_delete_user(st, user, &n, &err);
        if (rc != SG_OK) {
            log_msg("%s", err.text);
            return APPLY_STORE;
        }
        metrics_add(MET_SESSIONS_DELETED, n);
        sg_error_clear(&err);
    }
    if (seen) {
        rc = sg_session_delete(st, sg_session_id(seen), &err);
        if (rc != SG_OK && rc != SG_ENOTFOUND) {
            log_store_error(&err);
            return APPLY_STORE;
        }
        if (rc == SG_OK)
            metrics_add(MET_SESSIONS_DELETED, 1);
    }
    if (p->want || p->rotate)
        log_msg("X-Session-Logout given: other X-Session directives ignored");
    out->cookie = APPLY_COOKIE_EXPIRE;
    return APPLY_OK;
}

/* Apply the data and user directives of r to s (not yet saved).  Sets
 * *changed when one applied and *rotate on a login.  Returns SG_OK, the
 * status of the first rejected directive (*bad: its name; err: why) or
 * SG_ENOMEM. */
static sg_status apply_edits(sg_session *s, const reply *r, int *changed, int *rotate,
                             const char **bad, sg_error *err)
{
    size_t i;
    sg_status rc;

    for (i = 0; i < r->nheaders; i++) {
        const reply_header *h = &r->headers[i];

        sg_error_clear(err);
        switch (h->directive) {
        case DIR_SET:
            rc = sg_session_merge_data(s, h->value, err);
            break;
        case DIR_REPLACE:
            rc = sg_session_set_data(s, h->value, err);
            break;
        case DIR_LOGIN:
            rc = sg_session_set_user(s, h->value, err);
            if (rc == SG_OK)
                *rotate = 1;
            break;
        case DIR_FLASH:
            rc = sg_session_flash_add(s, h->value, err);
            break;
        default:
            continue;
        }
        if (rc == SG_ENOMEM)
            return rc;
        if (rc != SG_OK) {
            *bad = h->name;
            return rc;
        }
        *changed = 1;
    }
    return SG_OK;
}

/* Under the store lock, which the caller began and which ends here:
 * refuse a stale change, make a session when there is none, apply the
 * edits to the copy s (taken: may be NULL, freed here) and write it once.
 * Returns an APPLY_* code. */
static int apply_locked(sg_store *st, const sg_session *seen, sg_session *s,
                        int created, int renewed, const apply_plan *p, const reply *r,
                        apply_result *out)
{
    sg_error err;
    sg_status rc;
    int changed = 0, rotate = p->rotate;
    const char *bad = NULL;

    sg_error_clear(&err);
    if (p->want && cgi_stale(seen, s, r)) {
        char h[LOG_HASH_LEN + 1];

        sg_store_end(st);
        log_event(LOG_WARN, "conflict", "the session changed while the program ran; its "
                  "X-Session-Set/Replace would overwrite that change: not applied, 409",
                  "sid", log_idhash(sg_session_id(s), h), (const char *)NULL);
        metrics_add(MET_CONFLICTS, 1);
        sg_session_free(s);
        return APPLY_STALE;
    }
    if (!s) {
        /* Made under the lock we hold: if a directive is then rejected it
         * is deleted again before anyone could have learnt its id. */
        rc = sg_session_create(st, NULL, NULL, 0, 0, &s, &err);
        if (rc != SG_OK)
            goto store_fail;
        created = 2;
    }
    rc = apply_edits(s, r, &changed, &rotate, &bad, &err);
    if (rc == SG_ENOMEM)
        goto store_fail;
    if (bad) {
        log_msg("%s from the program rejected: %s; no X-Session directive of this "
                "reply applied, 502", bad, err.text);
        if (created == 2)
            (void)sg_session_delete(st, sg_session_id(s), NULL);
        sg_store_end(st);
        sg_session_free(s);
        return APPLY_REJECTED;
    }
    sg_error_clear(&err);
    /* One write: a rotate stores the pending changes under the new id. */
    if (rotate && !created)
        rc = sg_session_rotate(st, s, &err);
    else
        rc = changed ? sg_session_save(st, s, &err) : SG_OK;
    if (rc == SG_ECONFLICT) {
        sg_store_end(st);
        log_msg("%s; nothing applied, 409", err.text);
        metrics_add(MET_CONFLICTS, 1);
        sg_session_free(s);
        return APPLY_STALE;
    }
    if (rc != SG_OK)
        goto store_fail;
    sg_store_end(st);
    if (created == 2)
        metrics_add(MET_SESSIONS_CREATED, 1);
    else if (rotate && !created)
        metrics_add(MET_SESSIONS_ROTATED, 1);
    if (created || rotate || renewed)
        cookie_set(out, sg_session_id(s));
    sg_session_free(s);
    return APPLY_OK;
store_fail:
    if (created == 2)
        (void)sg_session_delete(st, sg_session_id(s), NULL);
    sg_store_end(st);
    log_store_error(&err);
    sg_session_free(s);
    return APPLY_STORE;
}

/*
 * Apply the program's X-Session-* directives; see gateway.h.
 *
 * Why all-or-nothing (issue #12, item 6): the directives of one reply are
 * one change of the session, as the program meant it.  Applying the good
 * ones of a reply whose X-Session-Set is invalid JSON (or too big) stores
 * a state the program never asked for, and passing its 200 on tells the
 * client that a change happened that did not.  So every directive is
 * applied to one copy under the store lock, and only when all of them are
 * accepted is the copy written, in one write (a rotate saves the pending
 * changes with the new id); otherwise nothing is written and the client
 * gets an error, not the program's body.
 */
int cgi_apply(sg_store *st, const sg_session *seen, int created, int renewed,
              const reply *r, apply_result *out)
{
    sg_session *s = NULL;
    sg_error err;
    sg_status rc;
    apply_plan p;

    memset(out, 0, sizeof *out);
    apply_plan_read(r, &p);
    if (!p.want && !p.logout && !p.rotate) {
        if ((created || renewed) && seen)
            cookie_set(out, sg_session_id(seen));
        return APPLY_OK;
    }
    if (!st)
        return APPLY_STORE;     /* store_handle() logged why, once */
    if (p.logout)
        return apply_logout(st, seen, &p, out);
    sg_error_clear(&err);
    /* Why: the program may have changed the session itself (bindings)
     * while it ran; reload it under the lock so nothing is lost. */
    if (sg_store_begin(st, &err) != SG_OK) {
        log_store_error(&err);
        return APPLY_STORE;
    }
    if (seen) {
        rc = sg_session_get(st, sg_session_id(seen), SG_GET_NOTOUCH | SG_GET_DAMAGED_ABSENT,
                            &s, &err);
        if (rc != SG_OK && rc != SG_ENOTFOUND && rc != SG_EEXPIRED) {
            sg_store_end(st);
            log_store_error(&err);
            return APPLY_STORE;
        }
    }
    if (!s && !p.want) {
        sg_store_end(st);
        if (renewed && seen)
            cookie_set(out, sg_session_id(seen));
        return APPLY_OK;                /* rotate without a session: nothing */
    }
    return apply_locked(st, seen, s, created, renewed, &p, r, out);
}
