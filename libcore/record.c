/*
 * record.c - the session record: the one owner of struct sg_session.  Its
 * creation and release, its accessors and the in-memory changes a caller
 * makes before a save (data, user, timeouts, flash), and its stored form:
 * parse and dump.  What a session does in the store (create, get, save,
 * rotate) is session.c; how bytes are stored is the backend's.
 *
 * A record is one compact, ASCII-only JSON object:
 *   {"id":"…","user":"alice"|null,"created":…,"accessed":…,"expires":…,
 *    "idle":1800,"version":7,"data":{…}}
 * plus the optional "rotated", "csrf" and "flash".  Input is parsed
 * strictly: duplicate keys are rejected (jansson would otherwise keep the
 * last one silently), data must be an object.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* New: an empty session object (data = {}), or NULL without memory. */
sg_session *sgi_session_new(void)
{
    sg_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->data = json_object();
    if (!s->data) {
        free(s);
        return NULL;
    }
    return s;
}

/* Release a copy.  Accepts NULL. */
void sg_session_free(sg_session *s)
{
    if (!s)
        return;
    json_decref(s->data);
    json_decref(s->flash);
    free(s->user);
    free(s);
}

const char *sg_session_id(const sg_session *s) { return s->id; }
const char *sg_session_user(const sg_session *s) { return s->user; }
int64_t sg_session_created(const sg_session *s) { return s->created; }
int64_t sg_session_accessed(const sg_session *s) { return s->accessed; }
int64_t sg_session_expires(const sg_session *s) { return s->expires; }
int64_t sg_session_idle_timeout(const sg_session *s) { return s->idle; }
uint64_t sg_session_version(const sg_session *s) { return s->version; }
int sg_session_is_new(const sg_session *s) { return s->is_new; }
const char *sg_session_csrf_token(const sg_session *s) { return s->csrf; }

int64_t sg_session_rotated(const sg_session *s)
{
    return s->rotated ? s->rotated : s->created;
}

/* Constant-time comparison with the session's token. */
int sg_session_check_csrf(const sg_session *s, const char *token)
{
    if (!token || !s->csrf[0])
        return 0;
    /* Why constant time: an early exit on the first wrong byte lets an
     * attacker who can time the answer guess the token byte by byte.
     * The length of a valid token is public (SG_CSRF_LEN). */
    size_t n = strlen(token);
    unsigned char diff = n != SG_CSRF_LEN;
    for (size_t i = 0; i < SG_CSRF_LEN; i++)
        diff |= (unsigned char)(s->csrf[i] ^ (i < n ? token[i] : 0));
    return diff == 0;
}

int sg_session_has_flash(const sg_session *s)
{
    return s->flash && json_array_size(s->flash) > 0;
}

/* Whether user is an acceptable user name (see sg_session_set_user). */
sg_status sgi_user_check(const char *user, sg_error *err)
{
    size_t len = strlen(user);
    if (len == 0 || len > SG_MAX_USER)
        return sgi_err(err, SG_EINVAL, 0,
                       "user name: must be 1 to %d bytes", SG_MAX_USER);
    const unsigned char *p = (const unsigned char *)user;
    while (*p) {
        unsigned c = *p;
        if (c < 0x20 || c == 0x7f)
            return sgi_err(err, SG_EINVAL, 0,
                           "user name: control character 0x%02x not allowed",
                           c);
        int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1
                  : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || (extra == 1 && c < 0xc2) || (c == 0xf4 && p[1] > 0x8f)
            || c > 0xf4)
            return sgi_err(err, SG_EINVAL, 0, "user name: invalid UTF-8");
        for (int i = 1; i <= extra; i++)
            if ((p[i] & 0xc0) != 0x80)
                return sgi_err(err, SG_EINVAL, 0, "user name: invalid UTF-8");
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xf0 && p[1] < 0x90) ||
            (c == 0xed && p[1] > 0x9f))
            return sgi_err(err, SG_EINVAL, 0, "user name: invalid UTF-8");
        p += 1 + extra;
    }
    return SG_OK;
}

/* SG_ETOOBIG when data (or flash) is deeper than SG_MAX_DEPTH or, as
 * stored, over the session's cap. */
sg_status sgi_data_size_check(const sg_session *s, json_t *data, sg_error *err)
{
    /* Every data write (create, set, merge, import) passes here. */
    if (sgi_data_depth_check(data, err) != SG_OK)
        return SG_ETOOBIG;
    size_t len;
    char *text = sgi_dump(data, &len);
    if (!text)
        return sgi_oom(err, "session", NULL);
    free(text);
    if (len > s->max_data)
        return sgi_err(err, SG_ETOOBIG, 0, "session data: %zu bytes is over "
                       "the store's cap of %zu (raise max_data / --max-data)",
                       len, s->max_data);
    return SG_OK;
}

/* Replace the data (kept in s until save). */
sg_status sg_session_set_data(sg_session *s, const char *json, sg_error *err)
{
    json_t *d;
    sg_status rc = sgi_data_parse(json, s->max_data, &d, err);
    if (rc != SG_OK)
        return rc;
    /* Why: the cap holds for the data as stored and handed out (compact
     * ASCII JSON with \u escapes), as merge and import check it, not only
     * for the text given: raw UTF-8 or DEL grows up to 6x when escaped,
     * and data stored over the cap would be refused by import, so its
     * export could not be restored (caught by fuzz/fuzz_data's cap check). */
    rc = sgi_data_size_check(s, d, err);
    if (rc != SG_OK) {
        json_decref(d);
        return rc;
    }
    json_decref(s->data);
    s->data = d;
    return SG_OK;
}

/* Merge an object into the data: keys replace, null deletes. */
sg_status sg_session_merge_data(sg_session *s, const char *json, sg_error *err)
{
    json_t *patch;
    sg_status rc = sgi_data_parse(json, s->max_data, &patch, err);
    if (rc != SG_OK)
        return rc;
    /* A shallow copy (values are shared), by json_object_update: jansson's
     * json_copy ignores a failed insert and returns the copy with a key
     * missing, which would then be saved as the data. */
    json_t *next = json_object();
    if (!next || json_object_update(next, s->data) != 0) {
        json_decref(next);
        json_decref(patch);
        return sgi_oom(err, "session", NULL);
    }
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v) {
        if (json_is_null(v) ? (json_object_del(next, k), 0)
                            : json_object_set(next, k, v) != 0) {
            rc = sgi_oom(err, "session", NULL);
            break;
        }
    }
    json_decref(patch);
    if (rc == SG_OK)
        rc = sgi_data_size_check(s, next, err);
    if (rc != SG_OK) {
        json_decref(next);
        return rc;
    }
    json_decref(s->data);
    s->data = next;
    return SG_OK;
}

/* Set or clear the user (kept in s until save). */
sg_status sg_session_set_user(sg_session *s, const char *user, sg_error *err)
{
    char *copy = NULL;
    if (user) {
        sg_status rc = sgi_user_check(user, err);
        if (rc != SG_OK)
            return rc;
        if (!(copy = strdup(user)))
            return sgi_oom(err, "session", NULL);
    }
    free(s->user);
    s->user = copy;
    return SG_OK;
}

/* Change lifetimes (<= 0 keeps). */
sg_status sg_session_set_timeouts(sg_session *s, int64_t idle_timeout,
                                  int64_t max_age, sg_error *err)
{
    (void)err;
    if (idle_timeout > 0)
        s->idle = idle_timeout;
    if (max_age > 0)
        s->expires = sgi_add_sat(s->created, max_age);   /* see sgi_add_sat */
    return SG_OK;
}

/* Queue a flash message in s (stored by save). */
sg_status sg_session_flash_add(sg_session *s, const char *json, sg_error *err)
{
    json_t *m;
    sg_status rc = sgi_data_parse(json, s->max_data, &m, err);
    if (rc != SG_OK)
        return rc;
    if (s->flash && json_array_size(s->flash) >= SG_MAX_FLASH) {
        json_decref(m);
        return sgi_err(err, SG_ETOOBIG, 0, "flash: more than %d pending "
                       "messages", SG_MAX_FLASH);
    }
    if (!s->flash && !(s->flash = json_array())) {
        json_decref(m);
        return sgi_oom(err, "session", NULL);
    }
    if (json_array_append_new(s->flash, m) != 0)
        return sgi_oom(err, "session", NULL);
    /* The cap holds for data and messages together, as stored. */
    rc = sgi_data_size_check(s, s->flash, err);
    if (rc != SG_OK)
        json_array_remove(s->flash, json_array_size(s->flash) - 1);
    return rc;
}

static int get_int(json_t *o, const char *k, int64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* Parse a stored record.  New: *out.  SG_EINVAL when it is not a valid
 * record (the caller decides whether that is damage or bad input). */
sg_status sgi_record_parse(const char *text, size_t len, sg_session **out,
                           sg_error *err)
{
    *out = NULL;
    json_error_t je;
    int oom;
    json_t *o = sgi_json_load(text, len, JSON_REJECT_DUPLICATES, &je, &oom);
    if (oom)    /* not SG_EINVAL: that would make a sound record "damaged" */
        return sgi_oom(err, "session record", NULL);
    if (!o)
        return sgi_err(err, SG_EINVAL, 0, "session record: invalid JSON: %s",
                       je.text);
    sg_session *s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(o);
        return sgi_oom(err, "session record", NULL);
    }
    sg_status rc = SG_EINVAL;
    const char *why = "not an object";
    if (!json_is_object(o))
        goto fail;
    why = "bad id";
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!id || !sg_id_valid(id))
        goto fail;
    memcpy(s->id, id, SG_ID_LEN + 1);
    why = "bad user";
    json_t *u = json_object_get(o, "user");
    if (json_is_string(u)) {
        if (sgi_user_check(json_string_value(u), NULL) != SG_OK)
            goto fail;
        s->user = strdup(json_string_value(u));
        if (!s->user) {
            rc = sgi_oom(err, "session record", NULL);
            goto fail_set;
        }
    } else if (u && !json_is_null(u)) {
        goto fail;
    }
    int64_t version;
    why = "bad timestamps";
    if (get_int(o, "created", &s->created) || get_int(o, "accessed", &s->accessed)
        || get_int(o, "expires", &s->expires) || get_int(o, "idle", &s->idle)
        || s->idle <= 0)
        goto fail;
    why = "bad version";
    if (get_int(o, "version", &version) || version < 0)
        goto fail;
    s->version = (uint64_t)version;
    why = "bad data";
    json_t *d = json_object_get(o, "data");
    if (!json_is_object(d))
        goto fail;
    s->data = json_incref(d);
    /* Optional fields (absent in records written before they existed). */
    why = "bad csrf token";
    json_t *c = json_object_get(o, "csrf");
    if (c) {
        if (!json_is_string(c) || !sgi_token_valid(json_string_value(c)))
            goto fail;
        memcpy(s->csrf, json_string_value(c), SG_CSRF_LEN + 1);
    }
    why = "bad rotation time";
    if (json_object_get(o, "rotated") && get_int(o, "rotated", &s->rotated))
        goto fail;
    why = "bad flash messages";
    json_t *fl = json_object_get(o, "flash");
    if (fl) {
        size_t i;
        json_t *m;
        if (!json_is_array(fl) || json_array_size(fl) > SG_MAX_FLASH)
            goto fail;
        json_array_foreach(fl, i, m)
            if (!json_is_object(m))
                goto fail;
        if (json_array_size(fl) > 0)
            s->flash = json_incref(fl);
    }
    json_decref(o);
    *out = s;
    return SG_OK;
fail:
    rc = sgi_err(err, SG_EINVAL, 0, "session record: %s", why);
fail_set:
    json_decref(o);
    sg_session_free(s);
    return rc;
}

/* New: the record as compact ASCII JSON (malloc'd), *len its length;
 * NULL without memory. */
char *sgi_record_dump(const sg_session *s, size_t *len)
{
    json_t *o = json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:O}",
                          "id", s->id, "user", s->user,
                          "created", (json_int_t)s->created,
                          "accessed", (json_int_t)s->accessed,
                          "expires", (json_int_t)s->expires,
                          "idle", (json_int_t)s->idle,
                          "version", (json_int_t)s->version,
                          "data", s->data);
    if (!o)
        return NULL;
    if ((s->rotated && json_object_set_new(o, "rotated", json_integer(s->rotated)) != 0) ||
        (s->csrf[0] && json_object_set_new(o, "csrf", json_string(s->csrf)) != 0) ||
        (s->flash && json_array_size(s->flash) > 0 &&
         json_object_set(o, "flash", s->flash) != 0)) {
        json_decref(o);
        return NULL;
    }
    char *text = sgi_dump(o, len);
    json_decref(o);
    return text;
}

/* New: the data as compact ASCII JSON; free() it. */
char *sg_session_data_json(const sg_session *s)
{
    return sgi_dump(s->data, NULL);
}

/* New: the whole record as compact ASCII JSON; free() it. */
char *sg_session_to_json(const sg_session *s)
{
    return sgi_record_dump(s, NULL);
}
