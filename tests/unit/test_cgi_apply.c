/*
 * test_cgi_apply.c - unit tests of applying a CGI program's session
 * directives (gateway/cgi_apply.c) against a real GDBM store.
 *
 * Each case feeds a reply header block through the real parser
 * (cgi_reply.c), calls cgi_apply with the session the program was given,
 * and checks the outcome code, the cookie the browser is told about and
 * what the store then holds: merge, replace, login (new id, old one dead),
 * rotate, logout (one and all), flash, a session made for a program that
 * writes without one, all-or-nothing rejection (nothing stored, no session
 * left behind), the stale check (409, nothing stored) and a missing store.
 *
 * Usage: test_cgi_apply DIR   (a scratch directory).  Prints TAP lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../gateway/gateway.h"
#include "tap.h"

static sg_store *st;

/* Parse text as a reply header block into *r (reply_free it). */
static int parse(reply *r, const char *text)
{
    size_t used;

    reply_init(r);
    return reply_feed(r, text, strlen(text), &used) == REPLY_DONE ? 0 : -1;
}

/* Apply text's directives for seen; returns the APPLY_* code. */
static int apply(const char *text, const sg_session *seen, int created, apply_result *res)
{
    reply r;
    int rc;

    if (parse(&r, text) < 0) {
        printf("# reply did not parse: %s\n", text);
        return -99;
    }
    rc = cgi_apply(st, seen, created, 0, &r, res);
    reply_free(&r);
    return rc;
}

/* New: a session with user (may be NULL) and data. */
static sg_session *make(const char *user, const char *data)
{
    sg_session *s = NULL;

    if (sg_session_create(st, user, data, 0, 0, &s, NULL) != SG_OK)
        printf("# create failed\n");
    return s;
}

/* New: the stored data of id, or NULL when the session is gone. */
static char *stored_data(const char *id)
{
    sg_session *s = NULL;
    char *d;

    if (sg_session_get(st, id, SG_GET_NOTOUCH, &s, NULL) != SG_OK)
        return NULL;
    d = sg_session_data_json(s);
    sg_session_free(s);
    return d;
}

static int alive(const char *id)
{
    sg_session *s = NULL;
    int ok = sg_session_get(st, id, SG_GET_NOTOUCH, &s, NULL) == SG_OK;

    sg_session_free(s);
    return ok;
}

static size_t count(void)
{
    size_t n = 0;

    sg_store_count(st, NULL, &n, NULL);
    return n;
}

static void test_no_directive(void)
{
    apply_result res;
    sg_session *s = make(NULL, NULL);

    IS(apply("Content-Type: text/plain\r\n\r\n", s, 0, &res), APPLY_OK, "no directive: OK");
    IS(res.cookie, APPLY_COOKIE_KEEP, "no directive on an old session: the cookie stays");
    IS(apply("Content-Type: text/plain\r\n\r\n", s, 1, &res), APPLY_OK, "no directive, new session: OK");
    IS(res.cookie, APPLY_COOKIE_SET, "a session made by this request gets its cookie");
    STR_IS(res.id, sg_session_id(s), "... with its id");
    IS(apply("X-Session-Rotate: 0\r\n\r\n", s, 0, &res), APPLY_OK, "X-Session-Rotate: 0 is no rotation");
    OK(alive(sg_session_id(s)) && res.cookie == APPLY_COOKIE_KEEP, "... the id stays");
    sg_session_free(s);
}

static void test_set_replace(void)
{
    apply_result res;
    sg_session *s = make(NULL, "{\"a\":1}");
    char *d;

    IS(apply("X-Session-Set: {\"b\":2}\r\n\r\n", s, 0, &res), APPLY_OK, "Set applies");
    d = stored_data(sg_session_id(s));
    STR_IS(d, "{\"a\":1,\"b\":2}", "Set merges into the stored data");
    free(d);
    IS(res.cookie, APPLY_COOKIE_KEEP, "Set keeps the id and the cookie");
    sg_session_free(s);
}

static void test_replace_and_login(void)
{
    apply_result res;
    sg_session *s = make(NULL, "{\"a\":1}");
    char old[SG_ID_LEN + 1], *d;
    sg_session *now = NULL;
    sg_status rc;

    snprintf(old, sizeof old, "%s", sg_session_id(s));
    IS(apply("X-Session-Replace: {\"c\":3}\r\nX-Session-Login: alice\r\n\r\n", s, 0, &res),
       APPLY_OK, "Replace + Login apply");
    IS(res.cookie, APPLY_COOKIE_SET, "a login sends a cookie");
    OK(strcmp(res.id, old) != 0, "... with a new id");
    OK(!alive(old), "the old id stops working at once");
    d = stored_data(res.id);
    STR_IS(d, "{\"c\":3}", "the new id holds the replaced data");
    free(d);
    rc = sg_session_get(st, res.id, SG_GET_NOTOUCH, &now, NULL);  /* (OK evaluates twice) */
    OK(rc == SG_OK && now && sg_session_user(now) && strcmp(sg_session_user(now), "alice") == 0,
       "the new id holds the user");
    sg_session_free(now);
    sg_session_free(s);
}

static void test_rotate_logout(void)
{
    apply_result res;
    sg_session *s = make("bob", NULL), *t = make("bob", NULL), *u = make("carol", NULL);
    char old[SG_ID_LEN + 1];

    snprintf(old, sizeof old, "%s", sg_session_id(s));
    IS(apply("X-Session-Rotate: 1\r\n\r\n", s, 0, &res), APPLY_OK, "Rotate applies");
    OK(res.cookie == APPLY_COOKIE_SET && strcmp(res.id, old) != 0 && alive(res.id),
       "Rotate: new id in the cookie");
    /* Issue #12: a plain rotate leaves the default grace window (the old
     * id resolves to the new one; test_store checks its end on a fake
     * clock). */
    sg_session *via_old = NULL;
    IS(sg_session_get(st, old, SG_GET_NOTOUCH, &via_old, NULL), SG_OK,
       "Rotate: the old id resolves within the default grace window");
    OK(via_old && strcmp(sg_session_id(via_old), res.id) == 0, "to the new id");
    sg_session_free(via_old);
    IS(apply("X-Session-Logout: 1\r\nX-Session-Set: {\"x\":1}\r\n\r\n", t, 0, &res), APPLY_OK,
       "Logout applies");
    IS(res.cookie, APPLY_COOKIE_EXPIRE, "Logout expires the cookie");
    OK(!alive(sg_session_id(t)), "Logout deletes the session");
    OK(alive(sg_session_id(u)), "another session stays");
    sg_session_free(s);
    sg_session_free(t);

    s = make("dave", NULL);
    t = make("dave", NULL);
    IS(apply("X-Session-Logout: all\r\n\r\n", s, 0, &res), APPLY_OK, "Logout: all applies");
    OK(!alive(sg_session_id(s)) && !alive(sg_session_id(t)), "every session of the user ends");
    OK(alive(sg_session_id(u)), "another user's session stays");
    sg_session_free(s);
    sg_session_free(t);
    sg_session_free(u);
}

static void test_flash_and_new(void)
{
    apply_result res;
    sg_session *s = make(NULL, NULL), *got = NULL;
    size_t before;
    sg_status rc;

    IS(apply("X-Session-Flash: {\"message\":\"hi\"}\r\n\r\n", s, 0, &res), APPLY_OK, "Flash applies");
    rc = sg_session_get(st, sg_session_id(s), SG_GET_NOTOUCH, &got, NULL);
    OK(rc == SG_OK && sg_session_has_flash(got), "the flash message is stored");
    sg_session_free(got);
    sg_session_free(s);

    before = count();
    IS(apply("X-Session-Set: {\"n\":1}\r\n\r\n", NULL, 0, &res), APPLY_OK,
       "Set without a session applies");
    IS(res.cookie, APPLY_COOKIE_SET, "... to a session made for it, sent as a cookie");
    IS(count(), before + 1, "one session was made");
    {
        char *d = stored_data(res.id);
        STR_IS(d, "{\"n\":1}", "the new session holds the data");
        free(d);
    }
    IS(apply("X-Session-Rotate: 1\r\n\r\n", NULL, 0, &res), APPLY_OK,
       "Rotate without a session does nothing");
    IS(res.cookie, APPLY_COOKIE_KEEP, "... and sends no cookie");
}

static void test_all_or_nothing(void)
{
    apply_result res;
    sg_session *s = make(NULL, "{\"a\":1}");
    char old[SG_ID_LEN + 1], *d;
    size_t before;

    snprintf(old, sizeof old, "%s", sg_session_id(s));
    IS(apply("X-Session-Set: {\"b\":2}\r\nX-Session-Replace: [1]\r\nX-Session-Rotate: 1\r\n\r\n",
             s, 0, &res), APPLY_REJECTED, "a reply with one invalid directive is rejected");
    d = stored_data(old);
    STR_IS(d, "{\"a\":1}", "none of its directives was applied");
    free(d);
    OK(alive(old) && res.cookie == APPLY_COOKIE_KEEP, "the id did not rotate");
    IS(apply("X-Session-Set: {not json\r\n\r\n", s, 0, &res), APPLY_REJECTED, "invalid JSON is rejected");
    sg_session_free(s);

    before = count();
    IS(apply("X-Session-Set: {\"ok\":1}\r\nX-Session-Set: nope\r\n\r\n", NULL, 0, &res),
       APPLY_REJECTED, "a rejected reply without a session is rejected");
    IS(count(), before, "... and leaves no session behind");
}

static void test_stale(void)
{
    apply_result res;
    sg_session *seen = make(NULL, "{\"n\":1,\"m\":1}"), *other = NULL;
    char *d;

    /* Another request saves while the program runs. */
    sg_session_get(st, sg_session_id(seen), SG_GET_NOTOUCH, &other, NULL);
    sg_session_merge_data(other, "{\"n\":5}", NULL);
    IS(sg_session_save(st, other, NULL), SG_OK, "(a concurrent save)");
    sg_session_free(other);

    IS(apply("X-Session-Set: {\"n\":2}\r\n\r\n", seen, 0, &res), APPLY_STALE,
       "a Set of a key changed meanwhile is stale");
    d = stored_data(sg_session_id(seen));
    STR_IS(d, "{\"n\":5,\"m\":1}", "nothing was applied");
    free(d);
    IS(apply("X-Session-Set: {\"m\":2}\r\n\r\n", seen, 0, &res), APPLY_OK,
       "a Set of a key nobody else changed applies");
    d = stored_data(sg_session_id(seen));
    STR_IS(d, "{\"n\":5,\"m\":2}", "... onto the newer copy");
    free(d);
    IS(apply("X-Session-Replace: {}\r\n\r\n", seen, 0, &res), APPLY_STALE,
       "a Replace of data changed meanwhile is stale");
    sg_session_free(seen);
}

static void test_no_store(void)
{
    apply_result res;
    reply r;
    sg_session *s = make(NULL, NULL);

    parse(&r, "X-Session-Set: {\"a\":1}\r\n\r\n");
    IS(cgi_apply(NULL, s, 0, 0, &r, &res), APPLY_STORE, "a directive without a store is a store failure");
    reply_free(&r);
    parse(&r, "Content-Type: text/plain\r\n\r\n");
    IS(cgi_apply(NULL, s, 0, 1, &r, &res), APPLY_OK, "no directive needs no store");
    IS(res.cookie, APPLY_COOKIE_SET, "a renewed id still reaches the browser");
    reply_free(&r);
    sg_session_free(s);
}

int main(int argc, char **argv)
{
    char path[600];
    sg_error err = { 0 };

    if (argc != 2) {
        fprintf(stderr, "usage: test_cgi_apply DIR\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/apply.db", argv[1]);
    if (sg_store_open(path, NULL, &st, &err) != SG_OK) {
        printf("not ok 1 - open %s: %s\n1..1\n", path, err.text);
        return 1;
    }
    test_no_directive();
    test_set_replace();
    test_replace_and_login();
    test_rotate_logout();
    test_flash_and_new();
    test_all_or_nothing();
    test_stale();
    test_no_store();
    sg_store_close(st);
    return tap_done();
}
