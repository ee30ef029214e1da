/*
 * test_redis.c - unit tests of the Redis backend through the public API.
 *
 *   test_redis DIR                    URI checks only (no server needed)
 *   test_redis DIR SOCKET PREFIX      also the store semantics, against the
 *                                     redis-server on SOCKET (keys PREFIX*)
 *
 * unit.bats runs every test program with DIR alone, so the first form must
 * pass without Redis: URI mistakes are found before any connection.
 * tests/store/redis.bats starts a real server and runs the second form.
 * The semantic tests run under a fake clock, as test_store.c does; with a
 * store clock the backend sets no Redis expiry (Redis cannot know that
 * clock), so expiry and purge are the library's own here.  hiredis is used
 * directly only to play a second party: to see the keys and to steal the
 * lease lock.
 */
#include "sessgate.h"
#include "tap.h"

#include <hiredis.h>
#include <sys/stat.h>

static char dir[512];
static const char *sock, *prefix;
static int64_t fake_now = 1800000000;

static int64_t test_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

/* New: the store at the test server (its URI extended by extra). */
static sg_store *open_store(const char *extra, int lock_timeout_ms)
{
    char uri[1024];
    snprintf(uri, sizeof uri, "redis+unix:%s?prefix=%s%s", sock, prefix, extra);
    sg_options o;
    sg_options_init(&o);
    o.clock = test_clock;
    o.max_per_user = 2;
    if (lock_timeout_ms)
        o.lock_timeout_ms = lock_timeout_ms;
    sg_store *st = NULL;
    sg_error err = { 0 };
    if (sg_store_open(uri, &o, &st, &err) != SG_OK)
        printf("# open %s: %s\n", uri, err.text);
    return st;
}

/* A URI that must be refused before any connection, with text in the
 * message. */
static void bad_uri(const char *uri, sg_status want, const char *text)
{
    sg_store *st = NULL;
    sg_error err = { 0 };
    IS(sg_store_open(uri, NULL, &st, &err), want, "%s is refused", uri);
    OK(st == NULL && strstr(err.text, uri) && strstr(err.text, text),
       "  and the message names it and says '%s' (%s)", text, err.text);
}

/* A URI carrying a secret is refused, and the message shows it masked
 * (shown), never the secret itself. */
static void secret_uri(const char *uri, const char *secret, const char *shown)
{
    sg_store *st = NULL;
    sg_error err = { 0 };
    IS(sg_store_open(uri, NULL, &st, &err), SG_EINVAL, "%s is refused", shown);
    OK(st == NULL && strstr(err.text, shown) && !strstr(err.text, secret),
       "  and the message shows it masked, without the secret (%s)", err.text);
}

/* Authentication, min_replicas and Sentinel URIs: refused before any
 * connection when malformed. */
static void test_auth_uris(void)
{
    secret_uri("redis://user:pw0rd@h/0", "pw0rd", "redis://user:***@h/0");
    secret_uri("redis+unix://user:pw0rd@/s", "pw0rd", "redis+unix://user:***@/s");
    secret_uri("redis://h/0?prefix=a:&password=hunter2", "hunter2",
               "redis://h/0?prefix=a:&password=***");
    secret_uri("redis+sentinel://u:hunter2@h:1/m?pass=x", "hunter2",
               "redis+sentinel://u:***@h:1/m?pass=***");
    secret_uri("rediss://u:hunter2@h:1/0", "hunter2", "rediss://u:***@h:1/0");
    /* Empty keys mask to more than twice their length: the masked copy
     * must not overrun (found by fuzz_redis_uri; ASan sees it here). */
    char empties[1200] = "redis://h/0?pw=hunter2";
    for (int i = 0; i < 500; i++)
        strcat(empties, "&=");
    secret_uri(empties, "hunter2", "redis://h/0?pw=***&=***&=***");
    unsetenv("SESSGATE_REDIS_PASSWORD");
    bad_uri("redis://app@h/0", SG_EINVAL, "user app needs a password");
    bad_uri("redis://a b@h/0", SG_EINVAL, "bad user name");
    bad_uri("redis://@h/0", SG_EINVAL, "bad user name");
    bad_uri("redis://h/0?password_file=rel/pw", SG_EINVAL, "absolute path");
    bad_uri("redis://h/0?min_replicas=17", SG_EINVAL, "min_replicas must be");
    bad_uri("redis://h/0?min_replicas=-1", SG_EINVAL, "min_replicas must be");
    bad_uri("redis+sentinel://h1:1,h2:2", SG_EINVAL, "master's name");
    bad_uri("redis+sentinel://h1:1,h2:2/", SG_EINVAL, "master's name");
    bad_uri("redis+sentinel://h1:1,h2:2/a b", SG_EINVAL, "master's name");
    bad_uri("redis+sentinel://h1:1,,h2:2/m", SG_EINVAL, "no host");
    bad_uri("redis+sentinel://h1:99999/m", SG_EINVAL, "port must be");
    bad_uri("redis+sentinel://[::1]:5,h:6/m/x", SG_EINVAL, "database must be");
    bad_uri("redis+sentinel://h:6/m?db=2", SG_EINVAL, "unknown query parameter 'db'");
    char many[400] = "redis+sentinel://";
    for (int i = 0; i < 17; i++)
        strcat(many, i ? ",h:1" : "h:1");
    strcat(many, "/m");
    bad_uri(many, SG_EINVAL, "at most 16 Sentinels");

    char uri[700];
    snprintf(uri, sizeof uri, "redis://app@127.0.0.1:1/0?password_file=%s/nopw",
             dir);
    bad_uri(uri, SG_ESTORE, "cannot read password_file");
    /* A password file every user may read is refused before it is used. */
    char pw[600];
    snprintf(pw, sizeof pw, "%s/pw.world", dir);
    FILE *f = fopen(pw, "w");
    if (f) {
        fputs("s3cret\n", f);
        fclose(f);
    }
    chmod(pw, 0644);
    snprintf(uri, sizeof uri, "redis://app@127.0.0.1:1/0?password_file=%s", pw);
    bad_uri(uri, SG_ESTORE, "readable or writable by every user");
    chmod(pw, 0600);
    snprintf(uri, sizeof uri, "redis://app@127.0.0.1:1/0?password_file=%s&"
             "timeout_ms=200", pw);
    bad_uri(uri, SG_ESTORE, "cannot connect to Redis");
    snprintf(uri, sizeof uri, "redis://app@127.0.0.1:1/0?password_file=%s", dir);
    bad_uri(uri, SG_ESTORE, "not a regular file");
    /* Nobody listens on port 1: every Sentinel is reported as down. */
    bad_uri("redis+sentinel://127.0.0.1:1/mymaster?timeout_ms=200", SG_ESTORE,
            "no Sentinel gave the address of master mymaster");
}

static void test_uris(void)
{
    bad_uri("redis://", SG_EINVAL, "no host");
    bad_uri("redis://h:0/0", SG_EINVAL, "port must be 1..65535");
    bad_uri("redis://h:65536", SG_EINVAL, "port must be 1..65535");
    bad_uri("redis://h:+5", SG_EINVAL, "port must be");
    bad_uri("redis://h/x", SG_EINVAL, "database must be a number");
    bad_uri("redis://h/99999999999999999999", SG_EINVAL, "database must be");
    bad_uri("redis://[::1/0", SG_EINVAL, "unclosed");
    bad_uri("redis://h/0?timeout_ms=0", SG_EINVAL, "timeout_ms must be");
    bad_uri("redis://h/0?timeout_ms=9999999", SG_EINVAL, "timeout_ms must be");
    bad_uri("redis://h/0?db=1", SG_EINVAL, "unknown query parameter 'db'");
    bad_uri("redis://h/0?prefix", SG_EINVAL, "NAME=VALUE");
    bad_uri("redis://h/0?prefix=", SG_EINVAL, "prefix must be");
    bad_uri("redis://h/0?prefix=a%20b c", SG_EINVAL, "printable");
    bad_uri("redis+unix:", SG_EINVAL, "absolute socket path");
    bad_uri("redis+unix:rel.sock", SG_EINVAL, "absolute socket path");
    bad_uri("redis+unix:/s?db=x", SG_EINVAL, "db must be");
    bad_uri("redis+unix:/s?db=-1", SG_EINVAL, "db must be");
    bad_uri("rediss://h/0", SG_EINVAL, "unknown store type");

    char uri[700];
    snprintf(uri, sizeof uri, "redis+unix:%s/none.sock?timeout_ms=200", dir);
    bad_uri(uri, SG_ESTORE, "start redis-server or fix the URI");
    /* ENOENT would tell sessgatectl "no such store file": not for Redis. */
    sg_store *st = NULL;
    sg_error err = { 0 };
    sg_store_open(uri, NULL, &st, &err);
    IS(err.sys_errno, 0, "a missing socket is not reported as ENOENT");
}

static sg_status add_one(sg_session *s, void *arg, sg_error *err)
{
    (void)arg;
    return sg_session_merge_data(s, "{\"u\":1}", err);
}

static void test_semantics(void)
{
    sg_error err = { 0 };
    sg_store *st = open_store("", 0);
    OK(st != NULL, "a Redis store opens");
    if (!st)
        return;
    STR_IS(strstr(sg_store_path(st), "redis+unix:"), sg_store_path(st),
           "the store's path is its URI, for messages");

    sg_session *s = NULL, *g = NULL, *g2 = NULL;
    IS(sg_session_create(st, "alice", "{\"n\":0}", 0, 0, &s, &err), SG_OK,
       "create with user and data");
    char id[SG_ID_LEN + 1];
    memcpy(id, sg_session_id(s), sizeof id);
    IS(sg_session_get(st, id, 0, &g, &err), SG_OK, "get finds it");
    IS(sg_session_get(st, id, 0, &g2, &err), SG_OK, "a second copy");
    IS(sg_session_merge_data(g, "{\"n\":1}", &err), SG_OK, "change one copy");
    IS(sg_session_save(st, g, &err), SG_OK, "save it");
    IS(sg_session_merge_data(g2, "{\"n\":2}", &err), SG_OK, "change the other");
    IS(sg_session_save(st, g2, NULL), SG_ECONFLICT, "its save is a conflict");
    sg_session_free(g);
    sg_session_free(g2);
    g = NULL;
    IS(sg_session_update(st, id, add_one, NULL, &err), SG_OK, "update under the lock");
    IS(sg_session_get(st, id, SG_GET_NOTOUCH, &g, &err), SG_OK, "get again");
    char *d = g ? sg_session_data_json(g) : NULL;
    STR_IS(d, "{\"n\":1,\"u\":1}", "both the save and the update are there");
    free(d);
    sg_session_free(g);

    /* Per-user cap of 2: a third session evicts the oldest. */
    sg_session *b = NULL, *c = NULL;
    fake_now += 1;
    IS(sg_session_create(st, "alice", NULL, 0, 0, &b, &err), SG_OK, "second session");
    fake_now += 1;
    IS(sg_session_create(st, "alice", NULL, 0, 0, &c, &err), SG_OK, "third session");
    size_t n = 99;
    IS(sg_store_count(st, "alice", &n, &err), SG_OK, "count by user");
    IS(n, 2, "the cap keeps two");
    IS(sg_session_get(st, id, 0, &g, NULL), SG_ENOTFOUND, "the oldest was evicted");

    /* Rotation: the old id resolves for the default grace, then dies. */
    char old[SG_ID_LEN + 1];
    memcpy(old, sg_session_id(b), sizeof old);
    IS(sg_session_rotate(st, b, &err), SG_OK, "rotate");
    fake_now += SG_DEFAULT_ROTATE_GRACE - 1;
    IS(sg_session_get(st, old, SG_GET_NOTOUCH, &g, NULL), SG_OK,
       "the old id resolves within the default grace window");
    OK(g && strcmp(sg_session_id(g), sg_session_id(b)) == 0, "to the new id");
    sg_session_free(g);
    g = NULL;
    fake_now += 1;
    IS(sg_session_get(st, old, 0, &g, NULL), SG_ENOTFOUND, "the old id is gone after it");

    /* Expiry under the store clock, and purge. */
    sg_session *e = NULL;
    IS(sg_session_create(st, NULL, NULL, 10, 0, &e, &err), SG_OK, "a session with idle 10");
    fake_now += 11;
    IS(sg_session_get(st, sg_session_id(e), 0, &g, NULL), SG_EEXPIRED, "it expires on the store's clock");
    size_t removed = 0;
    IS(sg_store_purge(st, &removed, &err), SG_OK, "purge");
    IS(removed, 1, "purge removes it");
    IS(sg_session_delete(st, sg_session_id(c), &err), SG_OK, "delete");
    IS(sg_session_delete(st, sg_session_id(c), NULL), SG_ENOTFOUND, "delete again: not found");
    sg_stats stats;
    IS(sg_store_stats(st, &stats, &err), SG_OK, "stats");
    IS(stats.live, 1, "one live session left");
    OK(stats.writes > 5, "the write counter moved (%llu)", (unsigned long long)stats.writes);
    sg_check_report rep;
    IS(sg_store_check(st, 1, &rep, &err), SG_OK, "check --repair (PING, index rebuild)");
    sg_session_free(e);
    sg_session_free(b);
    sg_session_free(c);
    sg_session_free(s);

    /* Lease lock between two handles. */
    sg_store *st2 = open_store("", 200);
    IS(sg_store_begin(st, &err), SG_OK, "the first handle takes the lock");
    sg_session *x = NULL;
    sg_error lerr = { 0 };
    IS(sg_session_create(st2, NULL, NULL, 0, 0, &x, &lerr), SG_ELOCKTIMEOUT,
       "a writer on a second handle times out");
    OK(strstr(lerr.text, "lock timeout after 200 ms") && strstr(lerr.text, "raise --lock-timeout"),
       "with the standard message (%s)", lerr.text);
    size_t cnt = 0;
    IS(sg_store_count(st2, NULL, &cnt, &err), SG_OK, "readers need no lock");

    /* A holder whose lease was lost must not write. */
    redisContext *rc = redisConnectUnix(sock);
    OK(rc && !rc->err, "a direct hiredis connection");
    if (rc && !rc->err) {
        redisReply *r = redisCommand(rc, "DEL %slock", prefix);
        IS(r ? r->integer : -1, 1, "steal the lease (as if it ran out)");
        freeReplyObject(r);
    }
    lerr = (sg_error){ 0 };
    IS(sg_session_create(st, NULL, NULL, 0, 0, &x, &lerr), SG_ESTORE,
       "a write after the lease is lost is refused");
    OK(strstr(lerr.text, "lease") != NULL, "saying so (%s)", lerr.text);
    sg_store_end(st);
    IS(sg_session_create(st2, NULL, NULL, 0, 0, &x, &err), SG_OK,
       "the second handle writes once the lock is free");
    sg_session_free(x);
    if (rc)
        redisFree(rc);

    /* Read-only handles refuse writes. */
    char uri[1024];
    snprintf(uri, sizeof uri, "redis+unix:%s?prefix=%s", sock, prefix);
    sg_options o;
    sg_options_init(&o);
    o.readonly = 1;
    sg_store *ro = NULL;
    IS(sg_store_open(uri, &o, &ro, &err), SG_OK, "a read-only handle opens");
    IS(ro ? sg_session_create(ro, NULL, NULL, 0, 0, &x, NULL) : SG_OK, SG_EINVAL,
       "and refuses to create");
    /* No checkpoints on Redis: said as such, so a poller (the gateway's
     * master) stops asking instead of holding a connection for nothing. */
    int due = 1;
    sg_error_clear(&err);
    IS(ro ? sg_store_checkpoint(ro, SG_CHECKPOINT_QUERY, &due, &err) : SG_OK,
       SG_ENOTSUP, "the checkpoint query answers not supported");
    OK(due == 0, "and nothing due");
    OK(strstr(err.text, "keeps no checkpoints") != NULL, "the text says why: %s",
       err.text);
    IS(sg_store_checkpoint(st, SG_CHECKPOINT_FORCE, &due, NULL), SG_ENOTSUP,
       "so does a forced build");
    sg_store_close(ro);
    sg_store_close(st2);
    sg_store_close(st);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: test_redis DIR [SOCKET PREFIX]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    test_uris();
    test_auth_uris();
    if (argc == 4) {
        sock = argv[2];
        prefix = argv[3];
        test_semantics();
    } else {
        printf("# no SOCKET PREFIX: store semantics not run (tests/store/redis.bats runs them)\n");
    }
    return tap_done();
}
