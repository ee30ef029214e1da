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
    free(s->data_text);
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

/* data as stored (compact ASCII JSON), after the checks every data write
 * (create, set, merge, import, flash) passes: SG_ETOOBIG when it nests
 * deeper than SG_MAX_DEPTH or, as stored, is over the session's cap.
 * New: *text (NULL: not wanted). */
static sg_status data_stored(const sg_session *s, json_t *data, char **text,
                             size_t *len, sg_error *err)
{
    if (sgi_data_depth_check(data, err) != SG_OK)
        return SG_ETOOBIG;
    size_t n;
    char *t = sgi_dump(data, &n);
    if (!t)
        return sgi_oom(err, "session", NULL);
    if (n > s->max_data) {
        free(t);
        return sgi_err(err, SG_ETOOBIG, 0, "session data: %zu bytes is over "
                       "the store's cap of %zu (raise max_data / --max-data)",
                       n, s->max_data);
    }
    if (text) {
        *text = t;
        *len = n;
    } else {
        free(t);
    }
    return SG_OK;
}

/* SG_ETOOBIG when data (or flash) is deeper than SG_MAX_DEPTH or, as
 * stored, over the session's cap. */
sg_status sgi_data_size_check(const sg_session *s, json_t *data, sg_error *err)
{
    return data_stored(s, data, NULL, NULL, err);
}

/* Make d (a new reference) and text (its stored form, owned; NULL: not
 * dumped yet) s's data. */
static void data_take(sg_session *s, json_t *d, char *text, size_t len)
{
    json_decref(s->data);
    free(s->data_text);
    s->data = d;
    s->data_text = text;
    s->data_len = text ? len : 0;
}

/* s's data as a JSON object (*out borrowed), parsed from its stored text
 * on first use (a record of the current format keeps the data as text
 * until someone asks for it as a value).  SG_ESTORE when the stored text
 * does not parse (a damaged record). */
sg_status sgi_session_data(const sg_session *cs, json_t **out, sg_error *err)
{
    /* Why the cast: the parse is a cache; the value s stands for does not
     * change.  A session copy is not shared between threads. */
    sg_session *s = (sg_session *)cs;
    *out = s->data;
    if (s->data)
        return SG_OK;
    json_error_t je;
    int oom;
    json_t *d = sgi_json_load(s->data_text, s->data_len,
                              JSON_REJECT_DUPLICATES, &je, &oom);
    if (oom)
        return sgi_oom(err, "session", NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        return sgi_err(err, SG_ESTORE, 0, "session %s: stored data is "
                       "damaged (run sessgatectl check --repair)", s->id);
    }
    *out = s->data = d;
    return SG_OK;
}

/* Borrowed: s's data as stored (compact ASCII JSON), *len its length;
 * dumped on first use.  NULL without memory. */
static const char *data_text(const sg_session *cs, size_t *len)
{
    sg_session *s = (sg_session *)cs;       /* a cache, as above */
    if (!s->data_text && !(s->data_text = sgi_dump(s->data, &s->data_len)))
        return NULL;
    *len = s->data_len;
    return s->data_text;
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
    char *text;
    size_t len;
    rc = data_stored(s, d, &text, &len, err);
    if (rc != SG_OK) {
        json_decref(d);
        return rc;
    }
    data_take(s, d, text, len);
    return SG_OK;
}

/* Merge an object into the data: keys replace, null deletes. */
sg_status sg_session_merge_data(sg_session *s, const char *json, sg_error *err)
{
    json_t *patch, *base;
    sg_status rc = sgi_session_data(s, &base, err);
    if (rc == SG_OK)
        rc = sgi_data_parse(json, s->max_data, &patch, err);
    if (rc != SG_OK)
        return rc;
    /* A shallow copy (values are shared), by json_object_update: jansson's
     * json_copy ignores a failed insert and returns the copy with a key
     * missing, which would then be saved as the data. */
    json_t *next = json_object();
    if (!next || json_object_update(next, base) != 0) {
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
    char *text = NULL;
    size_t len = 0;
    if (rc == SG_OK)
        rc = data_stored(s, next, &text, &len, err);
    if (rc != SG_OK) {
        json_decref(next);
        return rc;
    }
    data_take(s, next, text, len);
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

/* Parse a record in JSON: format 1 as stored before, and every line of
 * an export.  New: *out.  SG_EINVAL when it is not a valid record (the
 * caller decides whether that is damage or bad input). */
sg_status sgi_record_from_json(const char *text, size_t len, sg_session **out,
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
    s->format = SGI_FORMAT_JSON;
    *out = s;
    return SG_OK;
fail:
    rc = sgi_err(err, SG_EINVAL, 0, "session record: %s", why);
fail_set:
    json_decref(o);
    sg_session_free(s);
    return rc;
}

/*
 * The stored form, format 2.  A fixed header of printable ASCII, then the
 * variable parts, so that reading a session's metadata takes no JSON
 * parse, and its data stays the compact ASCII JSON text it was stored as
 * until someone asks for it as a value (the gateway injects the text as
 * it is).  Why fixed widths: a reader finds every field at a known offset
 * (a Redis script reads the version with one string.sub), and a future
 * format 3 is told apart by the magic alone.
 *
 *   offset  bytes  field
 *        0      4  "SGR2"   magic and format number
 *        5     20  version     each number: decimal, zero-padded to 20
 *       26     20  created     characters, '-' first when negative
 *       47     20  accessed    (printf "%020lld"); each field is preceded
 *       68     20  expires     by one space
 *       89     20  idle
 *      110     20  rotated     (0: never)
 *      131     36  id
 *      168     64  csrf token, hex (64 '-': none, a record from before tokens)
 *      233      3  user length (0: anonymous)
 *      237     10  flash length (0: no pending messages)
 *      248     10  data length
 *      258      1  ' '
 *      259         user (UTF-8, as sgi_user_check allows), flash (a JSON
 *                  array), data (a JSON object), back to back; the record
 *                  ends exactly after the data.
 *
 * Format 1 is the JSON object of before (first byte '{'): still read, and
 * rewritten as format 2 by the next write of the session or by check
 * --repair.  Everything that validates data runs when it is written (set,
 * merge, create, import); reading checks the header strictly and that the
 * data is one printable-ASCII {...} (so no byte of it can break a header
 * or an environment variable even if the file was damaged); its full
 * parse, when someone asks for the value, reports damage as SG_ESTORE.
 */
#define V2_MAGIC     "SGR2"
#define V2_NUM       20
#define V2_F_VERSION 5
#define V2_F_ID      131
#define V2_F_CSRF    168
#define V2_F_ULEN    233
#define V2_F_FLEN    237
#define V2_F_DLEN    248
#define V2_HEADER    259

/* The number of the 20 characters at p (see the table above); -1 when
 * they are not one. */
static int v2_int(const char *p, int64_t *out)
{
    int neg = *p == '-';
    int64_t v = 0;
    for (int i = neg; i < V2_NUM; i++) {
        unsigned d = (unsigned char)p[i] - '0';
        if (d > 9)
            return -1;
        /* Accumulated negative, so INT64_MIN fits. */
        if (v < (INT64_MIN + (int64_t)d) / 10)
            return -1;
        v = v * 10 - (int64_t)d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return -1;
        v = -v;
    }
    *out = v;
    return 0;
}

/* The unsigned decimal of the n characters at p; -1 when not one. */
static int v2_len(const char *p, int n, size_t *out)
{
    size_t v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned char)p[i] - '0';
        if (d > 9)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The fixed header of a format-2 record of len bytes into s (numbers, id,
 * token) and len[] (user, flash, data).  NULL, or what is wrong. */
static const char *v2_header(const char *text, size_t len, sg_session *s,
                             size_t part[3])
{
    if (len < V2_HEADER || text[V2_HEADER - 1] != ' ')
        return "bad header";
    for (int f = 4; f < V2_F_ID; f += V2_NUM + 1)
        if (text[f] != ' ')
            return "bad header";
    if (text[V2_F_ID - 1] != ' ' || text[V2_F_CSRF - 1] != ' ' ||
        text[V2_F_ULEN - 1] != ' ' || text[V2_F_FLEN - 1] != ' ' ||
        text[V2_F_DLEN - 1] != ' ' ||
        v2_len(text + V2_F_ULEN, 3, &part[0]) ||
        v2_len(text + V2_F_FLEN, 10, &part[1]) ||
        v2_len(text + V2_F_DLEN, 10, &part[2]))
        return "bad header";
    if (part[0] > SG_MAX_USER || V2_HEADER + part[0] + part[1] + part[2] != len)
        return "bad length";
    int64_t f[6];
    for (int i = 0; i < 6; i++)
        if (v2_int(text + V2_F_VERSION + i * (V2_NUM + 1), &f[i]))
            return "bad timestamps";
    if (f[4] <= 0)
        return "bad timestamps";
    if (f[0] < 0)
        return "bad version";
    s->version = (uint64_t)f[0];
    s->created = f[1];
    s->accessed = f[2];
    s->expires = f[3];
    s->idle = f[4];
    s->rotated = f[5];
    memcpy(s->id, text + V2_F_ID, SG_ID_LEN);
    s->id[SG_ID_LEN] = '\0';
    if (!sg_id_valid(s->id))
        return "bad id";
    if (text[V2_F_CSRF] == '-') {
        for (int i = 0; i < SG_CSRF_LEN; i++)
            if (text[V2_F_CSRF + i] != '-')
                return "bad csrf token";
        return NULL;
    }
    memcpy(s->csrf, text + V2_F_CSRF, SG_CSRF_LEN);
    s->csrf[SG_CSRF_LEN] = '\0';
    return sgi_token_valid(s->csrf) ? NULL : "bad csrf token";
}

/* The flash messages (a JSON array of objects, n bytes at p) into s.
 * SG_EINVAL when they are not that. */
static sg_status v2_flash(const char *p, size_t n, sg_session *s,
                          sg_error *err)
{
    json_error_t je;
    int oom;
    json_t *fl = sgi_json_load(p, n, JSON_REJECT_DUPLICATES, &je, &oom);
    if (oom)
        return sgi_oom(err, "session record", NULL);
    size_t i;
    json_t *m;
    int ok = json_is_array(fl) && json_array_size(fl) <= SG_MAX_FLASH;
    json_array_foreach(fl, i, m)
        ok = ok && json_is_object(m);
    if (ok && json_array_size(fl) > 0)
        s->flash = fl;
    else
        json_decref(fl);
    return ok ? SG_OK : SG_EINVAL;
}

static sg_status v2_parse(const char *text, size_t len, sg_session **out,
                          sg_error *err)
{
    size_t part[3];                 /* user, flash, data */
    sg_session *s = calloc(1, sizeof *s);
    if (!s)
        return sgi_oom(err, "session record", NULL);
    sg_status rc = SG_EINVAL;
    const char *why = v2_header(text, len, s, part);
    if (why)
        goto fail;
    const char *p = text + V2_HEADER;
    why = "bad user";
    if (part[0] > 0) {
        if (memchr(p, '\0', part[0]))
            goto fail;
        if (!(s->user = strndup(p, part[0]))) {
            rc = sgi_oom(err, "session record", NULL);
            goto fail_set;
        }
        if (sgi_user_check(s->user, NULL) != SG_OK)
            goto fail;
    }
    p += part[0];
    why = "bad flash messages";
    if (part[1] > 0 && (rc = v2_flash(p, part[1], s, err)) != SG_OK) {
        if (rc != SG_EINVAL)
            goto fail_set;
        goto fail;
    }
    p += part[1];
    /* The data is not parsed here (that is the point); what is checked
     * is what keeps it safe to hand on as it is. */
    why = "bad data";
    size_t dlen = part[2];
    if (dlen < 2 || p[0] != '{' || p[dlen - 1] != '}')
        goto fail;
    for (size_t i = 0; i < dlen; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            goto fail;
    if (!(s->data_text = malloc(dlen + 1))) {
        rc = sgi_oom(err, "session record", NULL);
        goto fail_set;
    }
    memcpy(s->data_text, p, dlen);
    s->data_text[dlen] = '\0';
    s->data_len = dlen;
    s->format = SGI_FORMAT_CURRENT;
    *out = s;
    return SG_OK;
fail:
    rc = sgi_err(err, SG_EINVAL, 0, "session record: %s", why);
fail_set:
    sg_session_free(s);
    return rc;
}

/* Parse a stored record, of any format.  New: *out.  SG_EINVAL when it is
 * not a valid record (the caller decides whether that is damage). */
sg_status sgi_record_parse(const char *text, size_t len, sg_session **out,
                           sg_error *err)
{
    *out = NULL;
    if (len >= 4 && memcmp(text, V2_MAGIC, 4) == 0)
        return v2_parse(text, len, out, err);
    return sgi_record_from_json(text, len, out, err);
}

/* New: the record in its stored form (format 2, malloc'd and NUL-ended),
 * *len (may be NULL) its length; NULL without memory. */
char *sgi_record_dump(const sg_session *s, size_t *len)
{
    size_t dlen, flen = 0, ulen = s->user ? strlen(s->user) : 0;
    const char *data = data_text(s, &dlen);
    if (!data)
        return NULL;
    char *flash = NULL;             /* owned here */
    if (s->flash && json_array_size(s->flash) > 0 &&
        !(flash = sgi_dump(s->flash, &flen)))
        return NULL;
    size_t n = V2_HEADER + ulen + flen + dlen;
    char *r = malloc(n + 1);
    if (!r) {
        free(flash);
        return NULL;
    }
    char csrf[SG_CSRF_LEN + 1];
    if (s->csrf[0])
        memcpy(csrf, s->csrf, sizeof csrf);
    else {
        memset(csrf, '-', SG_CSRF_LEN);
        csrf[SG_CSRF_LEN] = '\0';
    }
    int h = snprintf(r, V2_HEADER + 1,
                     V2_MAGIC " %020lld %020lld %020lld %020lld %020lld %020lld "
                     "%s %s %03zu %010zu %010zu ",
                     (long long)s->version, (long long)s->created,
                     (long long)s->accessed, (long long)s->expires,
                     (long long)s->idle, (long long)s->rotated, s->id, csrf,
                     ulen, flen, dlen);
    if (h != V2_HEADER) {           /* a field out of its width: a bug */
        free(r);
        free(flash);
        return NULL;
    }
    char *p = r + V2_HEADER;
    memcpy(p, s->user ? s->user : "", ulen);
    memcpy(p + ulen, flash ? flash : "", flen);
    memcpy(p + ulen + flen, data, dlen);
    r[n] = '\0';
    free(flash);
    if (len)
        *len = n;
    return r;
}

/* New: the record as one compact ASCII JSON object (the form of get and
 * export, and format 1), *len (may be NULL) its length; NULL without
 * memory or when its stored data is damaged. */
char *sgi_record_to_json(const sg_session *s, size_t *len)
{
    json_t *data;
    if (sgi_session_data(s, &data, NULL) != SG_OK)
        return NULL;
    json_t *o = json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:O}",
                          "id", s->id, "user", s->user,
                          "created", (json_int_t)s->created,
                          "accessed", (json_int_t)s->accessed,
                          "expires", (json_int_t)s->expires,
                          "idle", (json_int_t)s->idle,
                          "version", (json_int_t)s->version,
                          "data", data);
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

/* New: the data as compact ASCII JSON; free() it.  The stored text as it
 * is: no parse, no dump. */
char *sg_session_data_json(const sg_session *s)
{
    size_t len;
    const char *t = data_text(s, &len);
    char *copy = t ? malloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, t, len);
        copy[len] = '\0';
    }
    return copy;
}

/* New: the whole record as compact ASCII JSON; free() it. */
char *sg_session_to_json(const sg_session *s)
{
    return sgi_record_to_json(s, NULL);
}
