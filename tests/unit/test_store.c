/*
 * test_store.c - unit tests of the libsessgate API in one process: every
 * public function, its error paths, expiry through a test clock, versions
 * and conflicts, rotation, the per-user index and cap, purge, stats, check
 * and import.  Cross-process behaviour (kill -9, contention, disk full) is
 * in tests/store/.
 *
 * Usage: test_store DIR   (a scratch directory)
 */
#include "sessgate.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[512];
static int64_t fake_now = 1764000000;

static int64_t test_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static const char *path(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static sg_store *open_store(const char *name, sg_options *o)
{
    sg_options def;
    if (!o) {
        sg_options_init(&def);
        o = &def;
    }
    o->clock = test_clock;
    sg_store *st = NULL;
    sg_error err = { 0 };
    sg_status rc = sg_store_open(path(name), o, &st, &err);
    if (rc != SG_OK)
        printf("# open %s: %s\n", name, err.text);
    return st;
}

static void test_basics(void)
{
    sg_error err = { 0 };
    sg_store *st = open_store("basic.db", NULL);
    OK(st != NULL, "a new store opens");
    struct stat sb;
    OK(stat(path("basic.db"), &sb) == 0 && (sb.st_mode & 0777) == 0600,
       "the store file is created with mode 0600");
    OK(stat(path("basic.db.lock"), &sb) == 0, "a lock file is created beside it");

    sg_session *s = NULL;
    IS(sg_session_create(st, "alice", "{\"cart\":[1,2],\"n\":0}", 0, 0, &s, &err),
       SG_OK, "create with user and data");
    OK(sg_id_valid(sg_session_id(s)), "the new id is a valid lower-case UUID");
    STR_IS(sg_session_user(s), "alice", "the user is kept");
    IS(sg_session_version(s), 1, "a new session is version 1");
    OK(sg_session_is_new(s), "a created session is new");
    IS(sg_session_created(s), fake_now, "created is now");
    IS(sg_session_expires(s), fake_now + SG_DEFAULT_MAX_AGE, "expires is now + max age");
    IS(sg_session_idle_timeout(s), SG_DEFAULT_IDLE_TIMEOUT, "idle timeout is the default");
    char *d = sg_session_data_json(s);
    STR_IS(d, "{\"cart\":[1,2],\"n\":0}", "data round-trips compactly");
    free(d);
    char id[SG_ID_LEN + 1];
    memcpy(id, sg_session_id(s), sizeof id);

    sg_session *g = NULL;
    IS(sg_session_get(st, id, 0, &g, &err), SG_OK, "get finds it");
    OK(g && !sg_session_is_new(g), "a loaded session is not new");
    STR_IS(g ? sg_session_user(g) : NULL, "alice", "get returns the user");
    char *rec = g ? sg_session_to_json(g) : NULL;
    OK(rec && strstr(rec, "\"version\":1") && strstr(rec, id), "to_json gives the record");
    free(rec);

    IS(sg_session_merge_data(g, "{\"n\":1,\"cart\":null,\"x\":\"\\u00e9\"}", &err),
       SG_OK, "merge sets, deletes and adds keys");
    d = sg_session_data_json(g);
    STR_IS(d, "{\"n\":1,\"x\":\"\\u00E9\"}", "merged data is ASCII-escaped JSON");
    free(d);
    IS(sg_session_save(st, g, &err), SG_OK, "save");
    IS(sg_session_version(g), 2, "save bumps the version");

    /* s is now stale (version 1). */
    sg_error_clear(&err);
    IS(sg_session_set_data(s, "{\"lost\":true}", &err), SG_OK, "set_data on a stale copy");
    IS(sg_session_save(st, s, &err), SG_ECONFLICT, "a stale save is a conflict");
    OK(strstr(err.text, "conflict") != NULL, "the conflict message says so: %s", err.text);
    sg_session *chk = NULL;
    sg_session_get(st, id, SG_GET_NOTOUCH, &chk, NULL);
    d = chk ? sg_session_data_json(chk) : NULL;
    STR_IS(d, "{\"n\":1,\"x\":\"\\u00E9\"}", "the conflicting save overwrote nothing");
    free(d);
    sg_session_free(chk);
    sg_session_free(s);

    /* Rotation.  Issue #12: with the default options (sg_options_init)
     * the old id resolves to the session for SG_DEFAULT_ROTATE_GRACE
     * seconds, then dies. */
    sg_error_clear(&err);
    IS(sg_store_options(st)->rotate_grace, SG_DEFAULT_ROTATE_GRACE,
       "the default grace is SG_DEFAULT_ROTATE_GRACE");
    OK(SG_DEFAULT_ROTATE_GRACE >= 2 && SG_DEFAULT_ROTATE_GRACE <= 30,
       "the default grace is a few seconds (%d)", SG_DEFAULT_ROTATE_GRACE);
    IS(sg_session_rotate(st, g, &err), SG_OK, "rotate");
    OK(strcmp(sg_session_id(g), id) != 0, "rotate gives a new id");
    int64_t rotated_at = fake_now;
    fake_now = rotated_at + SG_DEFAULT_ROTATE_GRACE - 1;
    IS(sg_session_get(st, id, SG_GET_NOTOUCH, &chk, NULL), SG_OK,
       "by default the old id resolves within the grace window");
    STR_IS(chk ? sg_session_id(chk) : NULL, sg_session_id(g), "to the rotated session");
    sg_session_free(chk);
    chk = NULL;
    fake_now = rotated_at + SG_DEFAULT_ROTATE_GRACE;
    IS(sg_session_get(st, id, 0, &chk, NULL), SG_ENOTFOUND, "and stops working at its end");
    fake_now = rotated_at;
    IS(sg_session_get(st, sg_session_id(g), 0, &chk, NULL), SG_OK, "the new id works");
    d = chk ? sg_session_data_json(chk) : NULL;
    STR_IS(d, "{\"n\":1,\"x\":\"\\u00E9\"}", "rotation keeps the data");
    free(d);
    IS(chk ? sg_session_version(chk) : 0, 3, "rotation bumps the version");
    sg_session_free(chk);

    /* Delete. */
    IS(sg_session_delete(st, sg_session_id(g), NULL), SG_OK, "delete");
    IS(sg_session_delete(st, sg_session_id(g), NULL), SG_ENOTFOUND, "delete twice: not found");
    IS(sg_session_get(st, sg_session_id(g), 0, &chk, NULL), SG_ENOTFOUND, "a deleted id is not found");
    IS(sg_session_save(st, g, NULL), SG_ENOTFOUND, "saving a deleted session does not resurrect it");
    IS(sg_session_get(st, sg_session_id(g), 0, &chk, NULL), SG_ENOTFOUND, "still gone after that save");
    sg_session_free(g);
    sg_store_close(st);
}

static void test_errors(void)
{
    sg_error err = { 0 };
    sg_store *st = open_store("errors.db", NULL);
    sg_session *s = NULL;
    IS(sg_session_create(st, NULL, "[1,2]", 0, 0, &s, &err), SG_EINVAL, "data must be an object");
    OK(s == NULL, "out parameter is NULL on error");
    sg_error_clear(&err);
    IS(sg_session_create(st, NULL, "{\"a\":1,\"a\":2}", 0, 0, &s, &err), SG_EINVAL,
       "duplicate keys are rejected");
    sg_error_clear(&err);
    IS(sg_session_create(st, NULL, "{\"a\":", 0, 0, &s, &err), SG_EINVAL, "invalid JSON is rejected");
    OK(strstr(err.text, "invalid JSON") != NULL, "message names the cause: %s", err.text);
    sg_error_clear(&err);
    IS(sg_session_create(st, "bad\nuser", NULL, 0, 0, &s, &err), SG_EINVAL, "CR/LF in a user is rejected");
    IS(sg_session_create(st, "", NULL, 0, 0, &s, NULL), SG_EINVAL, "an empty user is rejected");
    IS(sg_session_create(st, "\xc3\x28", NULL, 0, 0, &s, NULL), SG_EINVAL, "invalid UTF-8 user is rejected");
    IS(sg_session_create(st, "J\xc3\xbcrgen", NULL, 0, 0, &s, NULL), SG_OK, "a UTF-8 user is fine");
    sg_session_free(s);
    char big[SG_MAX_USER + 2];
    memset(big, 'u', sizeof big - 1);
    big[sizeof big - 1] = 0;
    IS(sg_session_create(st, big, NULL, 0, 0, &s, NULL), SG_EINVAL, "an over-long user is rejected");
    size_t n = SG_MAX_DATA + 100;
    char *huge = malloc(n + 16);
    strcpy(huge, "{\"k\":\"");
    memset(huge + 6, 'x', n);
    strcpy(huge + 6 + n, "\"}");
    sg_error_clear(&err);
    IS(sg_session_create(st, NULL, huge, 0, 0, &s, &err), SG_ETOOBIG, "data over the cap is too big");
    OK(strstr(err.text, "cap") != NULL, "message names the cap: %s", err.text);
    IS(sg_session_create(st, NULL, "{}", 0, 0, &s, NULL), SG_OK, "create anonymous");
    sg_error_clear(&err);
    IS(sg_session_merge_data(s, huge, &err), SG_ETOOBIG, "merge over the cap is too big");
    char *d = sg_session_data_json(s);
    STR_IS(d, "{}", "a failed merge leaves the data unchanged");
    free(d);
    /* DEL is ASCII but a control character no header may carry. */
    IS(sg_session_merge_data(s, "{\"del\":\"a\\u007fb\"}", NULL), SG_OK, "merge a string holding DEL");
    d = sg_session_data_json(s);
    STR_IS(d, "{\"del\":\"a\\u007fb\"}", "DEL comes out escaped, never raw");
    free(d);
    sg_session_merge_data(s, "{\"del\":null}", NULL);
    /* Growth by merging many small pieces also hits the cap. */
    char piece[2048];
    sg_status rc = SG_OK;
    for (int i = 0; i < 100 && rc == SG_OK; i++) {
        snprintf(piece, sizeof piece, "{\"k%d\":\"%01000d\"}", i, 0);
        rc = sg_session_merge_data(s, piece, NULL);
    }
    IS(rc, SG_ETOOBIG, "merges that grow past the cap stop with too big");
    free(huge);
    sg_session_free(s);

    sg_session *g = NULL;
    IS(sg_session_get(st, "not-an-id", 0, &g, NULL), SG_ENOTFOUND, "a malformed id is not found");
    IS(sg_session_get(st, "0B5C0000-0000-0000-0000-000000000000", 0, &g, NULL), SG_ENOTFOUND,
       "an upper-case id is malformed");
    IS(sg_session_get(st, "0b5c0000-0000-0000-0000-000000000000x", 0, &g, NULL), SG_ENOTFOUND,
       "a trailing byte makes an id malformed");
    IS(sg_session_delete(st, "../../etc/passwd", NULL), SG_EINVAL, "delete of a malformed id is invalid");
    IS(sg_id_valid("0b5c0000-0000-0000-0000-000000000000"), 1, "sg_id_valid accepts the shape");
    IS(sg_id_valid("0b5c0000-0000-0000-0000-00000000000"), 0, "sg_id_valid rejects 35 chars");
    IS(sg_id_valid("0b5c0000x0000-0000-0000-000000000000"), 0, "sg_id_valid rejects a wrong separator");
    IS(sg_id_valid(NULL), 0, "sg_id_valid rejects NULL");
    STR_IS(sg_strerror(SG_ECONFLICT), "conflict", "sg_strerror names statuses");
    STR_IS(sg_strerror((sg_status)999), "unknown status", "sg_strerror of an unknown code");
    OK(strcmp(sg_version(), SG_VERSION_STRING) == 0, "sg_version");

    /* First error wins. */
    sg_error_clear(&err);
    sg_session_get(st, "bad", 0, &g, &err);
    sg_session_delete(st, "bad", &err);
    IS(err.code, SG_ENOTFOUND, "the first error recorded wins");

    sg_store *bad = NULL;
    sg_error_clear(&err);
    IS(sg_store_open("memcached://127.0.0.1:1/0", NULL, &bad, &err), SG_EINVAL, "an unknown scheme is rejected");
    OK(strstr(err.text, "redis://") != NULL, "the message lists the known forms: %s", err.text);
    sg_error_clear(&err);
    IS(sg_store_open(path("no/such/dir/x.db"), NULL, &bad, &err), SG_ESTORE,
       "a store in a missing directory fails");
    OK(strstr(err.text, "no/such/dir") != NULL, "the message names the path: %s", err.text);
    sg_options o;
    sg_options_init(&o);
    o.idle_timeout = -1;
    IS(sg_store_open(path("neg.db"), &o, &bad, NULL), SG_EINVAL, "negative options are rejected");
    sg_store_close(NULL);
    sg_session_free(NULL);
    sg_list_free(NULL);
    sg_store_end(NULL);
    sg_error_clear(NULL);
    OK(1, "close/free/end/clear accept NULL");
    sg_store_close(st);

    char uri[700];
    snprintf(uri, sizeof uri, "gdbm:%s", path("prefixed.db"));
    IS(sg_store_open(uri, NULL, &bad, NULL), SG_OK, "a gdbm: URI opens the path after the prefix");
    struct stat sb;
    OK(stat(path("prefixed.db"), &sb) == 0, "the file is created without the prefix");
    sg_store_close(bad);
}

static void test_expiry(void)
{
    sg_options o;
    sg_options_init(&o);
    o.idle_timeout = 100;
    o.max_age = 1000;
    o.touch_interval = 10;
    sg_store *st = open_store("expiry.db", &o);
    IS(sg_store_options(st)->touch_interval, 10, "the touch interval is configurable");
    sg_session *s = NULL, *g = NULL;
    fake_now = 1764000000;
    sg_session_create(st, "bob", NULL, 0, 0, &s, NULL);
    char id[SG_ID_LEN + 1];
    memcpy(id, sg_session_id(s), sizeof id);

    fake_now += 5;
    IS(sg_session_get(st, id, 0, &g, NULL), SG_OK, "live within the idle window");
    IS(g ? sg_session_accessed(g) : 0, fake_now - 5, "no touch within the touch interval");
    sg_session_free(g);
    fake_now += 10;
    IS(sg_session_get(st, id, SG_GET_NOTOUCH, &g, NULL), SG_OK, "NOTOUCH get");
    IS(g ? sg_session_accessed(g) : 0, fake_now - 15, "NOTOUCH does not touch");
    sg_session_free(g);
    IS(sg_session_get(st, id, 0, &g, NULL), SG_OK, "get after the touch interval");
    IS(g ? sg_session_accessed(g) : 0, fake_now, "touches accessed");
    IS(g ? sg_session_version(g) : 0, 1, "touching does not bump the version");
    sg_session_free(g);
    IS(sg_session_save(st, s, NULL), SG_OK, "a copy loaded before a touch still saves (no conflict)");

    fake_now += 99;
    IS(sg_session_get(st, id, 0, &g, NULL), SG_OK, "touching extended the idle window");
    sg_session_free(g);
    fake_now += 100;
    IS(sg_session_get(st, id, 0, &g, NULL), SG_EEXPIRED, "idle expiry");
    OK(g == NULL, "an expired session is never returned");
    IS(sg_session_save(st, s, NULL), SG_EEXPIRED, "an expired session cannot be saved back to life");

    /* Absolute expiry even when kept busy. */
    sg_session_free(s);
    sg_session_create(st, NULL, NULL, 0, 0, &s, NULL);
    memcpy(id, sg_session_id(s), sizeof id);
    int64_t start = fake_now;
    sg_status rc = SG_OK;
    while (rc == SG_OK && fake_now < start + 2000) {
        fake_now += 50;
        rc = sg_session_get(st, id, 0, &g, NULL);
        sg_session_free(g);
    }
    IS(rc, SG_EEXPIRED, "a busy session still ends at its max age");
    OK(fake_now >= start + 1000 && fake_now < start + 1050, "and not before (%lld s)",
       (long long)(fake_now - start));
    sg_session_free(s);

    /* Per-session overrides. */
    sg_session_create(st, NULL, NULL, 5, 20, &s, NULL);
    IS(sg_session_idle_timeout(s), 5, "per-session idle timeout");
    IS(sg_session_expires(s), fake_now + 20, "per-session max age");
    memcpy(id, sg_session_id(s), sizeof id);
    fake_now += 6;
    IS(sg_session_get(st, id, 0, &g, NULL), SG_EEXPIRED, "the per-session idle timeout applies");
    sg_session_set_timeouts(s, 50, 60, NULL);
    IS(sg_session_idle_timeout(s), 50, "set_timeouts changes the idle timeout");
    IS(sg_session_expires(s), sg_session_created(s) + 60, "set_timeouts changes the max age");
    sg_session_free(s);

    size_t removed = 99;
    IS(sg_store_purge(st, &removed, NULL), SG_OK, "purge");
    IS(removed, 3, "purge removed the three expired sessions");
    size_t count = 9;
    sg_store_count(st, NULL, &count, NULL);
    IS(count, 0, "nothing live is left");
    sg_store_close(st);
}

/* Rotate s (sg_session_rotate_ex flags), let `later` seconds pass on the
 * fake clock, and look its old id up: SG_OK while a grace window keeps
 * it, SG_ENOTFOUND once it is dead. */
static sg_status rotate_probe(sg_store *st, sg_session *s, unsigned flags,
                              int64_t later)
{
    char old[SG_ID_LEN + 1];
    sg_session *g = NULL;

    memcpy(old, sg_session_id(s), sizeof old);
    if (sg_session_rotate_ex(st, s, flags, NULL) != SG_OK)
        return SG_ESTORE;
    fake_now += later;
    sg_status rc = sg_session_get(st, old, SG_GET_NOTOUCH, &g, NULL);
    if (rc == SG_OK && strcmp(sg_session_id(g), sg_session_id(s)) != 0)
        rc = SG_EINVAL;                 /* resolved to another session */
    sg_session_free(g);
    return rc;
}

/* Issue #12: with rotate_grace, the old id of a rotate resolves to the
 * session for the window and then dies; a login leaves no grace. */
static void test_rotate_grace(void)
{
    sg_options o;
    sg_options_init(&o);
    o.rotate_grace = 5;
    sg_store *st = open_store("grace.db", &o);
    sg_session *s = NULL, *g = NULL;
    char old[SG_ID_LEN + 1], pre[SG_ID_LEN + 1];
    fake_now = 1764000000;
    IS(sg_session_create(st, "bob", "{\"k\":1}", 0, 0, &s, NULL), SG_OK, "create");
    memcpy(old, sg_session_id(s), sizeof old);
    IS(sg_session_rotate(st, s, NULL), SG_OK, "rotate");
    fake_now += 4;
    IS(sg_session_get(st, old, 0, &g, NULL), SG_OK, "the old id resolves within the grace window");
    STR_IS(g ? sg_session_id(g) : NULL, sg_session_id(s), "to the renewed session (its new id)");
    sg_session_free(g);
    g = NULL;
    fake_now += 1;
    IS(sg_session_get(st, old, 0, &g, NULL), SG_ENOTFOUND, "and is dead after it");
    IS(sg_session_get(st, sg_session_id(s), 0, &g, NULL), SG_OK, "the new id lives on");
    sg_session_free(g);
    g = NULL;
    sg_session_free(s);
    /* a login (user change in the rotation) leaves no grace */
    IS(sg_session_create(st, NULL, NULL, 0, 0, &s, NULL), SG_OK, "an anonymous session");
    memcpy(pre, sg_session_id(s), sizeof pre);
    sg_session_set_user(s, "eve", NULL);
    IS(sg_session_rotate(st, s, NULL), SG_OK, "login: user change and rotation in one");
    IS(sg_session_get(st, pre, 0, &g, NULL), SG_ENOTFOUND, "the pre-login id dies at once");
    sg_session_free(s);
    size_t removed = 0;
    IS(sg_store_purge(st, &removed, NULL), SG_OK, "purge drops closed grace aliases");
    sg_store_close(st);

    /* The default (a zeroed struct, as every face passes for "the
     * default", or sg_options_init): a plain rotate keeps the old id for
     * SG_DEFAULT_ROTATE_GRACE; a login, SG_ROTATE_NOW and a logout to
     * anonymous leave none. */
    memset(&o, 0, sizeof o);
    st = open_store("grace-default.db", &o);
    IS(sg_store_options(st)->rotate_grace, SG_DEFAULT_ROTATE_GRACE,
       "a zero rotate_grace is the default");
    fake_now = 1764000000;
    IS(sg_session_create(st, "bob", NULL, 0, 0, &s, NULL), SG_OK, "create");
    IS(rotate_probe(st, s, 0, SG_DEFAULT_ROTATE_GRACE - 1), SG_OK,
       "the old id resolves for the default window");
    IS(rotate_probe(st, s, 0, SG_DEFAULT_ROTATE_GRACE), SG_ENOTFOUND,
       "and dies at its end");
    IS(rotate_probe(st, s, SG_ROTATE_NOW, 0), SG_ENOTFOUND,
       "SG_ROTATE_NOW: the old id dies at once");
    IS(sg_session_rotate_ex(st, s, 2, NULL), SG_EINVAL, "unknown rotate flags are refused");
    sg_session_set_user(s, NULL, NULL);
    IS(rotate_probe(st, s, 0, 0), SG_ENOTFOUND, "a logout to anonymous leaves no grace");
    sg_session_set_user(s, "eve", NULL);
    IS(rotate_probe(st, s, 0, 0), SG_ENOTFOUND, "a login leaves no grace");
    sg_session_free(s);
    sg_store_close(st);

    /* No grace: sg_options_set(0) stores SG_ROTATE_GRACE_NONE, reported
     * as 0; the old id dies at once. */
    sg_options_init(&o);
    IS(sg_options_set(&o, "rotate-grace", 0, NULL), SG_OK, "--rotate-grace 0");
    IS(o.rotate_grace, SG_ROTATE_GRACE_NONE, "is stored as SG_ROTATE_GRACE_NONE");
    st = open_store("grace-none.db", &o);
    IS(sg_store_options(st)->rotate_grace, 0, "and is in effect 0");
    IS(sg_session_create(st, "bob", NULL, 0, 0, &s, NULL), SG_OK, "create");
    IS(rotate_probe(st, s, 0, 0), SG_ENOTFOUND, "no grace: the old id dies at once");
    sg_session_free(s);
    sg_store_close(st);
    o.rotate_grace = -2;
    IS(sg_store_open(path("grace-bad.db"), &o, &st, NULL), SG_EINVAL,
       "a negative grace other than SG_ROTATE_GRACE_NONE is refused");
}

/* Issue #12: a CSRF token per session, new at login, kept by rotate;
 * flash messages popped once. */
static void test_csrf_and_flash(void)
{
    sg_store *st = open_store("csrf.db", NULL);
    sg_session *s = NULL, *g = NULL, *h = NULL;
    fake_now = 1764000000;
    IS(sg_session_create(st, NULL, NULL, 0, 0, &s, NULL), SG_OK, "create");
    char tok[SG_CSRF_LEN + 1], id[SG_ID_LEN + 1];
    memcpy(tok, sg_session_csrf_token(s), sizeof tok);
    IS(strlen(tok), SG_CSRF_LEN, "a new session has a %d-digit token", SG_CSRF_LEN);
    OK(sg_session_check_csrf(s, tok), "its own token checks");
    OK(!sg_session_check_csrf(s, NULL) && !sg_session_check_csrf(s, "") &&
       !sg_session_check_csrf(s, "00") , "NULL, empty and short tokens fail");
    char wrong[SG_CSRF_LEN + 2];
    memcpy(wrong, tok, sizeof tok);
    wrong[SG_CSRF_LEN - 1] = wrong[SG_CSRF_LEN - 1] == 'a' ? 'b' : 'a';
    OK(!sg_session_check_csrf(s, wrong), "one wrong digit fails");
    memcpy(wrong, tok, sizeof tok);
    strcat(wrong, "0");
    OK(!sg_session_check_csrf(s, wrong), "a longer token fails");
    memcpy(id, sg_session_id(s), sizeof id);
    IS(sg_session_get(st, id, 0, &g, NULL), SG_OK, "get");
    STR_IS(sg_session_csrf_token(g), tok, "the token is stored");
    IS(sg_session_rotate(st, g, NULL), SG_OK, "rotate");
    STR_IS(sg_session_csrf_token(g), tok, "rotate keeps the token");
    sg_session_set_user(g, "ann", NULL);
    IS(sg_session_save(st, g, NULL), SG_OK, "login (save with a new user)");
    OK(strcmp(sg_session_csrf_token(g), tok) != 0, "login gives a new token");
    memcpy(id, sg_session_id(g), sizeof id);
    sg_session_free(g);
    IS(sg_session_get(st, id, 0, &g, NULL), SG_OK, "get after login");
    OK(!sg_session_check_csrf(g, tok), "the pre-login token no longer checks");

    IS(sg_session_flash_add(g, "{\"message\":\"Saved\",\"category\":\"info\"}", NULL), SG_OK,
       "flash_add");
    IS(sg_session_flash_add(g, "[1]", NULL), SG_EINVAL, "a flash message must be an object");
    IS(sg_session_save(st, g, NULL), SG_OK, "save with a flash message");
    IS(sg_session_get(st, id, 0, &h, NULL), SG_OK, "a second copy");
    OK(sg_session_has_flash(h), "it sees the message");
    char *out = NULL;
    IS(sg_session_flash_pop(st, h, &out, NULL), SG_OK, "pop");
    STR_IS(out, "[{\"message\":\"Saved\",\"category\":\"info\"}]", "pop returns the messages");
    free(out);
    OK(!sg_session_has_flash(h), "the copy has none left");
    IS(sg_session_save(st, h, NULL), SG_OK, "the popping copy still saves");
    IS(sg_session_flash_pop(st, g, &out, NULL), SG_OK, "a second pop");
    STR_IS(out, "[]", "finds nothing: a message is consumed once");
    free(out);
    sg_session_free(g);
    sg_session_free(h);
    sg_session_free(s);
    sg_store_close(st);
}

/* Issue #12: the touch interval follows the idle timeout of the session
 * read, not the store's: a session made with idle 4 s on a store with the
 * default idle (1800 s, touch 60 s) stays alive while read every second. */
static void test_touch_follows_session_idle(void)
{
    for (int explicit_opts = 0; explicit_opts < 2; explicit_opts++) {
        sg_options o;
        if (explicit_opts)
            sg_options_init(&o);            /* touch_interval 60 given */
        else
            memset(&o, 0, sizeof o);        /* everything derived */
        sg_store *st = open_store(explicit_opts ? "touch1.db" : "touch0.db", &o);
        sg_session *s = NULL, *g = NULL;
        fake_now = 1764000000;
        IS(sg_session_create(st, "u", NULL, 4, 0, &s, NULL), SG_OK,
           "create with idle 4 on a default store (%s options)",
           explicit_opts ? "filled" : "zero");
        char id[SG_ID_LEN + 1];
        memcpy(id, sg_session_id(s), sizeof id);
        sg_session_free(s);
        sg_status rc = SG_OK;
        int i;
        for (i = 0; i < 12 && rc == SG_OK; i++) {
            fake_now += 1;
            rc = sg_session_get(st, id, 0, &g, NULL);
            sg_session_free(g);
            g = NULL;
        }
        IS(rc, SG_OK, "read every second for 12 s, still alive (stopped at %d)", i);
        fake_now += 4;
        IS(sg_session_get(st, id, 0, &g, NULL), SG_EEXPIRED,
           "and it still idles out after 4 s unread");
        sg_session_free(g);
        sg_store_close(st);
    }
}

static sg_status add_one(sg_session *s, void *arg, sg_error *err)
{
    (void)arg;
    char *d = sg_session_data_json(s);
    int n = 0;
    const char *p = strstr(d, "\"n\":");
    if (p)
        n = atoi(p + 4);
    free(d);
    char buf[64];
    snprintf(buf, sizeof buf, "{\"n\":%d}", n + 1);
    return sg_session_merge_data(s, buf, err);
}

static sg_status refuse(sg_session *s, void *arg, sg_error *err)
{
    (void)arg;
    sg_session_merge_data(s, "{\"n\":-1}", NULL);
    return SG_EINVAL + 0 * (err != NULL);
}

static void test_users_and_update(void)
{
    sg_options o;
    sg_options_init(&o);
    o.max_per_user = 2;
    sg_store *st = open_store("users.db", &o);
    sg_session *s[4];
    for (int i = 0; i < 3; i++) {
        fake_now += 1;
        sg_session_create(st, "carol", NULL, 0, 0, &s[i], NULL);
    }
    sg_session_create(st, "dave", NULL, 0, 0, &s[3], NULL);
    size_t n = 0;
    sg_store_count(st, "carol", &n, NULL);
    IS(n, 2, "the per-user cap keeps 2 sessions");
    sg_session *g = NULL;
    IS(sg_session_get(st, sg_session_id(s[0]), 0, &g, NULL), SG_ENOTFOUND, "the oldest was evicted");
    IS(sg_session_get(st, sg_session_id(s[2]), 0, &g, NULL), SG_OK, "the newest is kept");
    sg_session_free(g);
    sg_list *l = NULL;
    IS(sg_store_list(st, "carol", &l, NULL), SG_OK, "list by user");
    IS(sg_list_count(l), 2, "two listed");
    STR_IS(sg_list_id(l, 0), sg_session_id(s[1]), "oldest first");
    OK(sg_list_id(l, 2) == NULL, "past the end is NULL");
    sg_list_free(l);
    sg_store_count(st, NULL, &n, NULL);
    IS(n, 3, "count of all sessions");
    sg_store_count(st, "nobody", &n, NULL);
    IS(n, 0, "count of an unknown user is 0");

    /* Same-second creates (timestamps tie): the cap never evicts the
     * session create just returned. */
    for (int i = 0; i < 5; i++) {
        sg_session *t = NULL;
        IS(sg_session_create(st, "gina", NULL, 0, 0, &t, NULL), SG_OK, "create #%d in one second", i + 1);
        IS(t ? sg_session_get(st, sg_session_id(t), SG_GET_NOTOUCH, &g, NULL) : SG_ESTORE, SG_OK,
           "the session just created survives the cap");
        sg_session_free(g);
        sg_session_free(t);
    }
    sg_store_count(st, "gina", &n, NULL);
    IS(n, 2, "and the cap still holds");

    /* Login: user change moves the index entry. */
    sg_session *a = NULL;
    sg_session_create(st, NULL, "{\"n\":0}", 0, 0, &a, NULL);
    sg_session_set_user(a, "dave", NULL);
    IS(sg_session_save(st, a, NULL), SG_OK, "login saves a user onto an anonymous session");
    sg_store_count(st, "dave", &n, NULL);
    IS(n, 2, "the user's count includes it");
    sg_session_set_user(a, NULL, NULL);
    sg_session_save(st, a, NULL);
    sg_store_count(st, "dave", &n, NULL);
    IS(n, 1, "logout (user cleared) removes it from the user's list");

    /* Atomic update. */
    const char *aid = sg_session_id(a);
    for (int i = 0; i < 10; i++)
        sg_session_update(st, aid, add_one, NULL, NULL);
    IS(sg_session_get(st, aid, 0, &g, NULL), SG_OK, "updated session loads");
    char *d = g ? sg_session_data_json(g) : NULL;
    STR_IS(d, "{\"n\":10}", "ten atomic increments give 10");
    free(d);
    sg_session_free(g);
    IS(sg_session_update(st, aid, refuse, NULL, NULL), SG_EINVAL, "an update fn's error is returned");
    sg_session_get(st, aid, 0, &g, NULL);
    d = g ? sg_session_data_json(g) : NULL;
    STR_IS(d, "{\"n\":10}", "and nothing is saved");
    free(d);
    sg_session_free(g);
    IS(sg_session_update(st, "bad", add_one, NULL, NULL), SG_ENOTFOUND, "update of a malformed id");

    /* begin/end nest and other calls run under them. */
    IS(sg_store_begin(st, NULL), SG_OK, "begin");
    IS(sg_store_begin(st, NULL), SG_OK, "begin nests");
    sg_session_get(st, aid, 0, &g, NULL);
    sg_session_merge_data(g, "{\"n\":11}", NULL);
    IS(sg_session_save(st, g, NULL), SG_OK, "save inside begin");
    sg_session_free(g);
    sg_store_end(st);
    sg_store_end(st);
    sg_store_end(st);   /* extra end is harmless */
    /* After end, another handle can take the lock at once. */
    sg_options o2;
    sg_options_init(&o2);
    o2.lock_timeout_ms = 100;
    sg_store *st2 = open_store("users.db", &o2);
    IS(sg_store_begin(st2, NULL), SG_OK, "the lock is free after end");
    sg_store_end(st2);
    IS(sg_store_begin(st, NULL), SG_OK, "the first handle takes it again");
    sg_error err = { 0 };
    IS(sg_session_get(st2, aid, 0, &g, &err), SG_ELOCKTIMEOUT,
       "a reader on another handle times out while a writer holds the lock");
    OK(strstr(err.text, "lock timeout after 100 ms") != NULL, "message: %s", err.text);
    sg_store_end(st);

    /* A handle sees writes made through another handle. */
    IS(sg_session_get(st2, aid, 0, &g, NULL), SG_OK, "second handle reads");
    sg_session_merge_data(g, "{\"from\":2}", NULL);
    sg_session_save(st2, g, NULL);
    sg_session_free(g);
    sg_session_get(st, aid, 0, &g, NULL);
    d = g ? sg_session_data_json(g) : NULL;
    STR_IS(d, "{\"n\":11,\"from\":2}", "the first handle sees the second's write");
    free(d);
    sg_session_free(g);
    sg_store_close(st2);

    sg_stats stats;
    IS(sg_store_stats(st, &stats, NULL), SG_OK, "stats");
    IS(stats.live, 6, "stats: live");
    IS(stats.users, 3, "stats: users");
    IS(stats.anonymous, 1, "stats: anonymous");
    OK(stats.file_bytes > 0 && stats.writes > 0, "stats: file size and write counter");

    /* Export/import. */
    sg_session_get(st, aid, SG_GET_NOTOUCH, &g, NULL);
    char *rec = sg_session_to_json(g);
    sg_store *st3 = open_store("import.db", NULL);
    IS(sg_session_import(st3, rec, NULL), SG_OK, "import an exported record");
    sg_session *back = NULL;
    IS(sg_session_get(st3, aid, SG_GET_NOTOUCH, &back, NULL), SG_OK, "the imported id works");
    char *rec2 = back ? sg_session_to_json(back) : NULL;
    STR_IS(rec2, rec, "the record round-trips exactly");
    free(rec2);
    sg_session_free(back);
    IS(sg_session_import(st3, "{\"id\":\"x\"}", NULL), SG_EINVAL, "a bad record is rejected");
    IS(sg_session_import(st3, "not json", NULL), SG_EINVAL, "non-JSON is rejected");
    char expired[512];
    snprintf(expired, sizeof expired, "{\"id\":\"%s\",\"user\":null,\"created\":1,\"accessed\":1,"
             "\"expires\":2,\"idle\":1,\"version\":1,\"data\":{}}",
             "11111111-2222-3333-4444-555555555555");
    IS(sg_session_import(st3, expired, NULL), SG_EEXPIRED, "an expired record is skipped");
    free(rec);
    sg_session_free(g);
    sg_store_close(st3);

    sg_check_report rep;
    IS(sg_store_check(st, 0, &rep, NULL), SG_OK, "check of a healthy store");
    IS(rep.bad_records, 0, "no bad records");
    IS(sg_store_check(st, 1, &rep, NULL), SG_OK, "check --repair of a healthy store");
    OK(rep.recovered, "repair rebuilt the file");
    sg_store_count(st, NULL, &n, NULL);
    IS(n, 6, "nothing was lost by the rebuild");
    sg_store_count(st, "carol", &n, NULL);
    IS(n, 2, "the user index survives the rebuild");
    for (int i = 0; i < 4; i++)
        sg_session_free(s[i]);
    sg_session_free(a);
    sg_store_close(st);
}

static void test_group_mode_and_damaged_listing(void)
{
    mode_t old = umask(022);
    sg_options o;
    sg_options_init(&o);
    o.group = 1;
    sg_store *st = open_store("group.db", &o);
    sg_session *s = NULL;
    sg_session_create(st, "hal", NULL, 0, 0, &s, NULL);
    const char *names[] = { "group.db", "group.db.lock", "group.db.wal" };
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        OK(stat(path(names[i]), &sb) == 0 && (sb.st_mode & 0777) == 0660,
           "--group makes %s 0660 under umask 022 (got %o)", names[i], sb.st_mode & 0777);
    }
    umask(old);
    sg_session_free(s);
    sg_store_close(st);
}

static void test_random_ids_never_found(void)
{
    sg_store *st = open_store("strict.db", NULL);
    sg_session *s = NULL;
    sg_session_create(st, NULL, NULL, 0, 0, &s, NULL);
    int found = 0;
    char id[SG_ID_LEN + 1];
    for (int i = 0; i < 1000; i++) {
        unsigned v[4];
        for (int k = 0; k < 4; k++)
            v[k] = (unsigned)rand() * 2654435761u ^ (unsigned)i;
        snprintf(id, sizeof id, "%08x-%04x-%04x-%04x-%04x%08x", v[0], v[1] & 0xffff,
                 v[1] >> 16, v[2] & 0xffff, v[2] >> 16, v[3]);
        sg_session *g = NULL;
        if (sg_session_get(st, id, 0, &g, NULL) != SG_ENOTFOUND || g)
            found++;
        sg_session_free(g);
    }
    IS(found, 0, "1,000 random well-formed ids are never found");
    sg_session_free(s);
    sg_store_close(st);
}

static void test_readonly_and_damage(void)
{
    sg_store *st = open_store("ro.db", NULL);
    sg_session *s = NULL;
    sg_session_create(st, "eve", NULL, 0, 0, &s, NULL);
    sg_store_close(st);
    sg_options o;
    sg_options_init(&o);
    o.readonly = 1;
    st = open_store("ro.db", &o);
    sg_session *g = NULL;
    IS(sg_session_get(st, sg_session_id(s), 0, &g, NULL), SG_OK, "a read-only handle reads");
    sg_session_free(g);
    sg_session *n = NULL;
    IS(sg_session_create(st, NULL, NULL, 0, 0, &n, NULL), SG_EINVAL, "a read-only handle cannot create");
    sg_store_close(st);

    /* The store file overwritten with garbage: rebuilt from the
     * checkpoint and log, nothing lost. */
    int fd = open(path("ro.db"), O_WRONLY | O_TRUNC);
    OK(fd >= 0 && write(fd, "garbage garbage garbage garbage", 31) == 31, "overwrite the store with garbage");
    close(fd);
    sg_error err = { 0 };
    sg_options_init(&o);
    o.clock = test_clock;
    st = NULL;
    IS(sg_store_open(path("ro.db"), &o, &st, &err), SG_OK, "a garbage store file is rebuilt on open");
    IS(st ? sg_store_recoveries(st) : 0, 1, "and that counts as one recovery");
    IS(st ? sg_session_get(st, sg_session_id(s), 0, &g, NULL) : SG_ESTORE, SG_OK,
       "the session written before is still there");
    sg_session_free(g);
    sg_store_close(st);

    /* The store file deleted: rebuilt, not recreated empty. */
    unlink(path("ro.db"));
    st = open_store("ro.db", NULL);
    IS(st ? sg_session_get(st, sg_session_id(s), 0, &g, NULL) : SG_ESTORE, SG_OK,
       "a deleted store file is rebuilt from its log");
    sg_session_free(g);
    sg_store_close(st);

    /* Garbage with no history to rebuild from: a clear error. */
    st = open_store("nohist.db", NULL);
    sg_store_close(st);
    unlink(path("nohist.db.wal"));
    fd = open(path("nohist.db"), O_WRONLY | O_TRUNC);
    OK(fd >= 0 && write(fd, "garbage garbage garbage garbage", 31) == 31, "overwrite a store without history");
    close(fd);
    sg_error_clear(&err);
    IS(sg_store_open(path("nohist.db"), NULL, &st, &err), SG_ESTORE, "it fails to open");
    OK(strstr(err.text, "nohist.db") && strstr(err.text, "check --repair"),
       "the message names the file and the fix: %s", err.text);
    sg_session_free(s);
}

/* Simulate a writer killed mid-change: raise the dirty flag in the lock
 * page (offset 16) and leave a torn record at the end of the log. */
static void kill_writer_midway(const char *name)
{
    char lock[600], wal[600];
    snprintf(lock, sizeof lock, "%s.lock", path(name));
    snprintf(wal, sizeof wal, "%s.wal", path(name));
    int fd = open(lock, O_WRONLY);
    uint32_t one = 1;
    OK(fd >= 0 && pwrite(fd, &one, sizeof one, 16) == sizeof one, "raise the dirty flag");
    close(fd);
    fd = open(wal, O_WRONLY | O_APPEND);
    OK(fd >= 0 && write(fd, "SGWL\1\2\3torn", 11) == 11, "leave a torn record in the log");
    close(fd);
}

static void test_crash_recovery(void)
{
    sg_options o;
    sg_options_init(&o);
    sg_store *st = open_store("crash.db", &o);
    sg_session *s = NULL, *g = NULL;
    sg_session_create(st, "frank", "{\"n\":1}", 0, 0, &s, NULL);
    sg_session_merge_data(s, "{\"n\":2}", NULL);
    sg_session_save(st, s, NULL);
    kill_writer_midway("crash.db");
    IS(sg_session_get(st, sg_session_id(s), 0, &g, NULL), SG_OK,
       "after a writer died mid-write the next read rebuilds and finds the session");
    char *d = g ? sg_session_data_json(g) : NULL;
    STR_IS(d, "{\"n\":2}", "with its last acknowledged value");
    free(d);
    sg_session_free(g);
    IS(sg_store_recoveries(st), 1, "one recovery was counted");
    sg_session_merge_data(s, "{\"n\":3}", NULL);
    IS(sg_session_save(st, s, NULL), SG_OK, "writes go on after the rebuild (the torn tail was cut)");
    sg_store_close(st);
    st = open_store("crash.db", &o);
    sg_session_get(st, sg_session_id(s), 0, &g, NULL);
    d = g ? sg_session_data_json(g) : NULL;
    STR_IS(d, "{\"n\":3}", "and survive a reopen");
    free(d);
    sg_session_free(g);

    /* Enough writes to force checkpoints, then a crash: still whole. */
    char big[4096];
    snprintf(big, sizeof big, "{\"pad\":\"%03000d\"}", 7);
    sg_status rc = SG_OK;
    for (int i = 0; i < 800 && rc == SG_OK; i++) {
        sg_session_set_data(s, big, NULL);
        rc = sg_session_save(st, s, NULL);
    }
    IS(rc, SG_OK, "800 saves of 3 KB");
    struct stat sb;
    OK(stat(path("crash.db.ckpt"), &sb) == 0 && sb.st_size > 0, "a checkpoint was taken");
    OK(stat(path("crash.db.wal"), &sb) == 0 && sb.st_size < 2 * 1024 * 1024,
       "the log was cut at the checkpoint (%lld bytes)", (long long)sb.st_size);
    sg_session_merge_data(s, "{\"last\":true}", NULL);
    sg_session_save(st, s, NULL);
    kill_writer_midway("crash.db");
    sg_store_close(st);
    st = open_store("crash.db", &o);
    IS(st ? sg_session_get(st, sg_session_id(s), 0, &g, NULL) : SG_ESTORE, SG_OK,
       "rebuilt from checkpoint + log after a crash");
    d = g ? sg_session_data_json(g) : NULL;
    OK(d && strstr(d, "\"last\":true"), "the write after the checkpoint is there");
    free(d);
    sg_session_free(g);

    sg_check_report rep;
    IS(sg_store_check(st, 1, &rep, NULL), SG_OK, "check --repair rebuilds and checkpoints");
    OK(rep.recovered && rep.recovered_keys >= 2, "it reports the keys it kept (%zu)", rep.recovered_keys);
    /* Only the index rewrite that follows the checkpoint is logged. */
    OK(stat(path("crash.db.wal"), &sb) == 0 && sb.st_size < 4096,
       "and leaves a near-empty log (%lld bytes)", (long long)sb.st_size);
    sg_session_free(s);
    sg_store_close(st);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_store DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    test_basics();
    test_errors();
    test_expiry();
    test_touch_follows_session_idle();
    test_csrf_and_flash();
    test_rotate_grace();
    test_users_and_update();
    test_random_ids_never_found();
    test_group_mode_and_damaged_listing();
    test_readonly_and_damage();
    test_crash_recovery();
    return tap_done();
}
