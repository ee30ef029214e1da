/*
 * backend_redis.c - the Redis backend: session records in a Redis server,
 * for deployments whose gateways and apps run on several hosts.
 *
 * Every key of the store lives under the prefix (default "sessgate:"), so
 * several stores can share one Redis database.  Besides the keys store.c
 * writes (36-char session ids, "uidx:NAME" per-user sets, old "user:NAME"
 * indexes) the backend keeps keys
 * of its own, PREFIX "lock" (the lease lock), PREFIX "writes" (a write
 * counter for stats) and the figures PREFIX "exp", "ucnt" and "figs"
 * ("figures" below), which keys() hides.
 *
 * The connection (URI, connect, reconnect, commands) is redis_conn.c's.
 *
 * What differs from GDBM: sessions expire inside Redis (PEXPIREAT at the
 * end of their life, so no purge is needed), a write of one session is one
 * server-side script with no store-wide lock ("session writes" below), the
 * exclusive lock that operations on many sessions take is a lease in Redis
 * rather than flock(), and durability is whatever the server's
 * persistence (RDB / AOF, replication) gives: a write acknowledged by Redis
 * is in its memory, and survives the death of this process, but not
 * necessarily a crash of the Redis server.
 */
#include "internal.h"
#include "redis_conn.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RD_DEFAULT_PREFIX     "sessgate:"
/* A holder killed while it holds the lock frees it after this long.  Every
 * write under the lock renews the lease, so only a holder idle for this
 * long (e.g. user code in update() stuck in a slow call) can lose it, and
 * then its writes fail (see WRITE_SCRIPT) instead of clobbering. */
#define RD_LEASE_MS           30000
#define RD_SCAN_COUNT         "1000"

static redis_be *be_of(sg_store *st)
{
    return st->be_data;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------------- lock */

/* Take the lease if it is free: SET NX PX.  1 taken, 0 held by another,
 * -1 error. */
static int try_lease(redis_be *b, sg_error *err)
{
    redisReply *r = sgi_redis_cmd(b, "SET (lock)", err, "SET %s %s NX PX %d",
                        b->lock_key, b->token, RD_LEASE_MS);
    if (!r)
        return -1;
    int taken = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return taken;
}

/*
 * Shared: reads in Redis are always current (one server holds the one copy
 * and applies commands one at a time), so readers need no lock at all; we
 * only make sure the connection is up, reconnecting after an error.  A
 * reader can see a write sequence half done (session written, index not
 * yet), which store.c already tolerates: the index is a superset hint that
 * readers verify.
 *
 * Exclusive: a lease lock, SET PREFIX"lock" TOKEN NX PX lease, polled with
 * backoff until the store's lock timeout.  Not WATCH/MULTI: the layers
 * above need load -> change -> save under one lock, with arbitrary work in
 * between (session.c's checked save, the per-user index, and user code in
 * the bindings' update()), which an optimistic transaction cannot hold; a
 * lease lock gives the same exclusion flock() gives for GDBM.  The lease
 * (instead of a plain key) frees the lock when its holder is killed; the
 * random token makes sure only the holder releases it, and every write
 * checks it (WRITE_SCRIPT), so a holder whose lease ran out cannot
 * overwrite the next holder's work.
 *
 * A server with persistence keeps the lease key across its own restart
 * (the AOF holds SET ... PXAT), but not its holder: that process lost its
 * connection and could not release it, or exited on the error.  Without
 * more, every writer would then wait out the rest of the lease, up to
 * RD_LEASE_MS, after the server is back.  So a token starts with the
 * server's run_id, which is new at every start, and a waiter that finds a
 * lease of an earlier run breaks it (compare-and-delete).  That is safe:
 * the old holder's connection died with that run, and any write it still
 * sends carries the old token, which WRITE_SCRIPT refuses.
 */

/* A fresh token for the current connection: RUN_ID "." random hex. */
static sg_status make_token(redis_be *b, sg_error *err)
{
    unsigned char raw[RD_TOKEN_BYTES];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return sgi_err(err, SG_ESTORE, errno, "store %s: cannot get random "
                       "bytes for the lock token: %s", b->uri, strerror(errno));
    size_t n = strlen(b->run_id);
    memcpy(b->token, b->run_id, n);
    b->token[n++] = '.';
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(b->token + n + 2 * i, 3, "%02x", raw[i]);
    return SG_OK;
}

/* 1 when lease value v was taken on an earlier run of this server (it
 * starts with another run_id).  Values of unknown form never are. */
static int lease_stale(const redis_be *b, const char *v)
{
    return b->run_id[0] && strlen(v) > RD_RUNID_LEN && v[RD_RUNID_LEN] == '.' &&
           strspn(v, "0123456789abcdef") == RD_RUNID_LEN &&
           memcmp(v, b->run_id, RD_RUNID_LEN) != 0;
}

/* Compare-and-delete: release the lease only if it is still ours (after a
 * lease ran out, the key may belong to the next holder).  Also breaks a
 * lease of an earlier run of the server (r_lock). */
static const char UNLOCK_SCRIPT[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

static sg_status r_lock(sg_store *st, int mode, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = sgi_redis_up(b, err);
    if (rc != SG_OK)
        return rc;
    if (mode != SGI_EXCLUSIVE) {
        b->held = mode;
        return SG_OK;
    }
    rc = make_token(b, err);
    if (rc != SG_OK)
        return rc;
    int timeout = st->opt.lock_timeout_ms;
    int64_t deadline = mono_ms() + timeout;
    long sleep_ns = 500000;
    int retried = 0, check_token = 0, looked = 0;
    for (;;) {
        sg_error lerr = { 0 };
        int t = try_lease(b, &lerr);
        if (t < 0 && !retried && b->broken) {
            /* The kept connection died since the last command (a Redis
             * restart): reconnect once before reporting anything.  If the
             * lost reply was our SET succeeding, the key holds our token,
             * which the check below recognises; on a new run of the
             * server that token is stale, so take the lease anew. */
            char old_run[sizeof b->run_id];
            memcpy(old_run, b->run_id, sizeof old_run);
            retried = check_token = 1;
            looked = 0;
            rc = sgi_redis_up(b, err);
            if (rc != SG_OK)
                return rc;
            if (strcmp(old_run, b->run_id) != 0) {
                check_token = 0;
                if ((rc = make_token(b, err)) != SG_OK)
                    return rc;
            }
            continue;
        }
        if (t < 0) {
            if (err && err->code == SG_OK)
                *err = lerr;
            return lerr.code;
        }
        /* Held: once per wait (and after a reconnect), look at the value:
         * our own lost SET, or a lease of an earlier run to break. */
        if (t == 0 && (check_token || !looked)) {
            redisReply *r = sgi_redis_cmd(b, "GET (lock)", err, "GET %s", b->lock_key);
            if (!r)
                return b->last;
            if (r->type == REDIS_REPLY_STRING && check_token &&
                strcmp(r->str, b->token) == 0) {
                t = 1;
            } else if (r->type == REDIS_REPLY_STRING && lease_stale(b, r->str)) {
                redisReply *d = EVAL(b, "EVAL (break stale lock)", err,
                                     UNLOCK_SCRIPT, "1 %s %s", b->lock_key,
                                     r->str);
                freeReplyObject(r);
                if (!d)
                    return b->last;
                freeReplyObject(d);
                continue;       /* take it now; look again if beaten */
            }
            freeReplyObject(r);
            check_token = 0;
            looked = 1;
        }
        if (t == 1) {
            b->held = SGI_EXCLUSIVE;
            return SG_OK;
        }
        if (mono_ms() >= deadline)
            return sgi_err(err, SG_ELOCKTIMEOUT, 0, "store %s: lock timeout "
                           "after %d ms (another process holds %s; raise "
                           "--lock-timeout)", b->uri, timeout, b->lock_key);
        struct timespec ts = { 0, sleep_ns };
        nanosleep(&ts, NULL);
        /* Back off to 20 ms: each poll is a network round trip. */
        if (sleep_ns < 20000000)
            sleep_ns *= 2;
    }
}

static void r_unlock(sg_store *st)
{
    redis_be *b = be_of(st);
    /* After an error under the lock (a command timed out, say) reconnect
     * to release it: otherwise every other process would wait out the
     * lease.  A failure here leaves the lease to run out: nothing to
     * report, and unlock cannot fail by contract. */
    if (b->held == SGI_EXCLUSIVE && sgi_redis_up(b, NULL) == SG_OK) {
        sg_error ignored = { 0 };
        redisReply *r = EVAL(b, "EVAL (unlock)", &ignored, UNLOCK_SCRIPT,
                             "1 %s %s", b->lock_key, b->token);
        if (r)
            freeReplyObject(r);
    }
    b->held = SGI_UNLOCKED;
    memset(b->token, 0, sizeof b->token);
}

/* ---------------------------------------------------------- operations */

static char *key_of(redis_be *b, const char *key)
{
    size_t n = strlen(b->prefix), m = strlen(key);
    char *k = malloc(n + m + 1);
    if (k) {
        memcpy(k, b->prefix, n);
        memcpy(k + n, key, m + 1);
    }
    return k;
}

static sg_status r_fetch(sg_store *st, const char *key, char **val,
                         size_t *len, sg_error *err)
{
    redis_be *b = be_of(st);
    char *k = key_of(b, key);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    /* Values are hashes (field "d", see "session writes" below); a plain
     * string is a value of an older format (or one an admin SET), read
     * with GET: a second round trip for those only. */
    sg_error herr = { 0 };
    redisReply *r = sgi_redis_read(b, "HGET", &herr, "HGET %s d", k);
    if (!r && strstr(herr.text, "WRONGTYPE"))
        r = sgi_redis_read(b, "GET", err, "GET %s", k);
    else if (!r && err && err->code == SG_OK)
        *err = herr;
    free(k);
    if (!r)
        return b->last;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return SG_ENOTFOUND;
    }
    if (r->type != REDIS_REPLY_STRING)
        return sgi_redis_fail(b, r, "GET", err);
    char *p = malloc((size_t)r->len + 1);
    if (!p) {
        freeReplyObject(r);
        return sgi_oom(err, "store", b->uri);
    }
    memcpy(p, r->str, (size_t)r->len);
    p[r->len] = '\0';
    *val = p;
    *len = (size_t)r->len;
    freeReplyObject(r);
    return SG_OK;
}

/* The store's figures (sg_store_counters), kept by the same scripts that
 * write the session keys, in the same atomic step ("figures" below):
 * fig_add / fig_rem put a session key's entry id..user into the sorted set
 * P"exp" (score: the key's PEXPIREAT in ms, or +inf) or take it out, and
 * move the counts only when the set changed (ZADD / ZREM said so), so a
 * count always equals the entries it counts, whatever ran before: P"ucnt"
 * (user -> entries) and P"figs" field anon; field expired counts entries
 * removed at or after their end.  fig_trim removes up to `limit` entries
 * whose key Redis has expired (score < now, in ms: the caller's clock,
 * not the server's TIME, which an ACL made for older versions would
 * refuse; a clock ahead of the server's only trims an entry early, and the
 * next write of its key adds it again).  bump counts n
 * writes, and moves P"figs" field at along only if it was equal to the
 * write counter before: figures whose `at` lags the counter were not
 * followed by every write (a store written before they existed, an older
 * version of sessgate writing) and are not used until a recount. */
#define RD_LUA_FIG \
    "local function fig_add(P, id, user, at) " \
    "  local score = '+inf' " \
    "  if at ~= '' then score = at end " \
    "  if redis.call('zadd', P .. 'exp', score, id .. user) == 1 then " \
    "    if user == '' then redis.call('hincrby', P .. 'figs', 'anon', 1) " \
    "    else redis.call('hincrby', P .. 'ucnt', user, 1) end " \
    "  end " \
    "end " \
    "local function fig_rem(P, id, user, expired) " \
    "  if redis.call('zrem', P .. 'exp', id .. user) == 1 then " \
    "    if user == '' then redis.call('hincrby', P .. 'figs', 'anon', -1) " \
    "    elseif redis.call('hincrby', P .. 'ucnt', user, -1) <= 0 then " \
    "      redis.call('hdel', P .. 'ucnt', user) end " \
    "    if expired then redis.call('hincrby', P .. 'figs', 'expired', 1) end " \
    "  end " \
    "end " \
    "local function fig_trim(P, limit, now) " \
    "  local old = redis.call('zrangebyscore', P .. 'exp', '-inf', " \
    "                         '(' .. now, 'limit', 0, limit) " \
    "  for _, m in ipairs(old) do fig_rem(P, m:sub(1, 36), m:sub(37), true) end " \
    "  return #old " \
    "end " \
    "local function bump(P, W, n) " \
    "  local F = P .. 'figs' " \
    "  if tonumber(redis.call('hget', F, 'at') or '0') == " \
    "     tonumber(redis.call('get', W) or '0') then " \
    "    redis.call('hincrby', F, 'at', n) end " \
    "  redis.call('incrby', W, n) " \
    "end "
/* Entries a create trims (above): more than one, so a backlog left by a
 * quiet spell shrinks while sessions are made. */
#define RD_TRIM_PER_CREATE "4"

/* Writes run as scripts so that each is one atomic step that (1) checks
 * the lease is still ours, refusing the write otherwise, (2) renews the
 * lease, (3) counts the write, and (4) writes the value with its expiry:
 * a separate SET then PEXPIREAT could leave a session without expiry if
 * this process died in between. */
static const char WRITE_SCRIPT[] = RD_LUA_FIG
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[4]) "
    "bump(ARGV[5], KEYS[3], 1) "
    "redis.call('del', KEYS[2]) "
    "redis.call('hset', KEYS[2], 'd', ARGV[2]) "
    "if ARGV[3] ~= '' then redis.call('pexpireat', KEYS[2], ARGV[3]) end "
    "return 1";

/* A session record's entry leaves the figures with it: counted expired
 * when its end (x) had come (purge). */
static const char DEL_SCRIPT[] = RD_LUA_FIG
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[2]) "
    "local f = {} "
    "if #ARGV[4] == 36 and redis.call('type', KEYS[2])['ok'] == 'hash' then "
    "  f = redis.call('hmget', KEYS[2], 'u', 'x') end "
    "local n = redis.call('del', KEYS[2]) "
    "if f[1] then "
    "  fig_rem(ARGV[3], ARGV[4], f[1], tonumber(f[2] or '0') <= tonumber(ARGV[5])) end "
    "if n > 0 then bump(ARGV[3], KEYS[3], 1) end "
    "return n";

static sg_status write_check(sg_store *st, redis_be *b, sg_error *err)
{
    if (st->opt.readonly)
        return sgi_err(err, SG_ESTORE, EROFS, "store %s: opened read-only",
                       b->uri);
    if (b->held != SGI_EXCLUSIVE)
        return sgi_err(err, SG_EINVAL, 0, "store %s: write without the "
                       "exclusive lock", b->uri);
    return SG_OK;
}

/* Map a script's "lease lost" error to a message with its cause. */
static sg_status script_fail(redis_be *b, sg_error *err, sg_error *serr)
{
    if (strstr(serr->text, "SESSGATE lock lease lost"))
        return sgi_err(err, SG_ESTORE, 0, "store %s: write refused: this "
                       "process lost the lock lease (a step under the lock "
                       "took over %d ms, or Redis restarted)", b->uri,
                       RD_LEASE_MS);
    if (err && err->code == SG_OK)
        *err = *serr;
    return serr->code;
}

static sg_status r_put(sg_store *st, const char *key, const char *val,
                       size_t len, int64_t expire_at, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    /* A value with an end (a session record: sgi_expire_at) expires in
     * Redis at that instant, so dead sessions vanish without purge; one
     * without (index keys) stays until deleted.  Redis's clock decides
     * the instant, so hosts whose clocks differ from the server's (no NTP)
     * see sessions vanish early or linger. */
    char at[32] = "";
    if (expire_at > 0 && expire_at < INT64_MAX / 1000)
        snprintf(at, sizeof at, "%lld", (long long)expire_at * 1000);
    char *k = key_of(b, key);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    sg_error serr = { 0 };
    redisReply *r = EVAL_WRITE(b, "write", &serr, WRITE_SCRIPT, "3 %s %s %s %s %b %s %d %s",
                         b->lock_key, k, b->writes_key, b->token, val, len,
                         at, RD_LEASE_MS, b->prefix);
    free(k);
    if (!r)
        return script_fail(b, err, &serr);
    freeReplyObject(r);
    return SG_OK;
}

static sg_status r_del(sg_store *st, const char *key, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    char *k = key_of(b, key);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    sg_error serr = { 0 };
    redisReply *r = EVAL_WRITE(b, "delete", &serr, DEL_SCRIPT, "3 %s %s %s %s %d %s %s %lld",
                         b->lock_key, k, b->writes_key, b->token, RD_LEASE_MS,
                         b->prefix, key, (long long)sgi_now(st));
    free(k);
    if (!r)
        return script_fail(b, err, &serr);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return n > 0 ? SG_OK : SG_ENOTFOUND;
}

/* ------------------------------------------- session writes, no lease */

/*
 * Each write of one session is ONE server-side script (EVALSHA): create,
 * save (also rotate, login and touch) and delete.  A Redis script runs
 * alone on the server, so its checks and writes are one atomic step on
 * the session's own keys, without the store-wide lease and in one round
 * trip (the lease path costs four: SET NX, GET, the write, the release).
 *
 * Where the version lives: every value this backend writes is a Redis
 * HASH whose field "d" holds the value, and a session record also has
 * "v" (version), "u" (user, "" anonymous), "c" (created) and "x" (end of
 * life in store time: min(expires, accessed + idle)), written from the
 * sgi_rec fields the layer above computed.  So a script checks a version
 * or a liveness without parsing the record (backend.h), and readers still
 * fetch with one command (HGET d).  Values of an older format (a plain
 * string, e.g. a store written before this change, or a hash without
 * "v") make a script answer "fallback": that write then runs under the
 * lease as before (store.c), which rewrites the record in the new format.
 *
 * The lease stays for what spans many sessions: purge, check --repair,
 * import, delete --user/--all, the conversion of an old-format index,
 * and sg_store_begin's explicit holds.  Every script first checks the
 * lease key: while a lease is held it does nothing and answers
 * "fallback", and the caller queues for the lease like any writer, so a
 * multi-key operation still sees no single-session write come between.
 *
 * The user cap is enforced inside the create and login scripts (evict
 * the user's oldest live sessions beyond the cap, drop dead index
 * entries), so concurrent creates from many hosts end at exactly the cap.
 * The scripts touch keys they compute from the prefix (PREFIX..id for
 * index members): fine on a single server or replica set, not on Redis
 * Cluster (which sessgate does not support).
 */

#define RD_SC_CREATE 0
#define RD_SC_SAVE   1
#define RD_SC_DELETE 2
#define RD_SC_END    3
#define RD_SC_STATS  4
#define RD_SC_COUNT  5

/* Results of the scripts: {code[, stored version]}. */
enum { RS_OK = 0, RS_NOTFOUND, RS_CONFLICT, RS_EXPIRED, RS_COLLISION,
       RS_FALLBACK };

/* plan(P, S, user, keep, keep_c, cap, now): the ids of S to evict (the
 * oldest live sessions of user beyond cap, never keep, which counts as
 * live) and to drop from S (gone, dead, another user's); nil when a
 * member has an older format.  apply() does it; returns the writes. */
#define RD_LUA_CAP \
    "local function plan(P, S, user, keep, keep_c, cap, now) " \
    "  if cap <= 0 then return {}, {} end " \
    "  local n = redis.call('scard', S) " \
    "  if redis.call('sismember', S, keep) == 0 then n = n + 1 end " \
    "  if n <= cap then return {}, {} end " \
    "  local live, drop = {{keep_c, keep}}, {} " \
    "  for _, id in ipairs(redis.call('smembers', S)) do " \
    "    if id ~= keep then " \
    "      local k = P .. id " \
    "      local t = redis.call('type', k)['ok'] " \
    "      if t == 'hash' then " \
    "        local f = redis.call('hmget', k, 'u', 'x', 'c') " \
    "        if not f[1] then return nil end " \
    "        if f[1] == user and tonumber(f[2]) > now then " \
    "          live[#live + 1] = {tonumber(f[3]), id} " \
    "        else drop[#drop + 1] = id end " \
    "      elseif t == 'none' then drop[#drop + 1] = id " \
    "      else return nil end " \
    "    end " \
    "  end " \
    "  table.sort(live, function(a, b) " \
    "    if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end) " \
    "  local excess, evict = #live - cap, {} " \
    "  for _, e in ipairs(live) do " \
    "    if excess > 0 and e[2] ~= keep then " \
    "      evict[#evict + 1] = e[2] excess = excess - 1 end " \
    "  end " \
    "  return evict, drop " \
    "end " \
    "local function apply(P, S, evict, drop, user) " \
    "  for _, id in ipairs(evict) do " \
    "    redis.call('del', P .. id) redis.call('srem', S, id) " \
    "    fig_rem(P, id, user, false) end " \
    "  for _, id in ipairs(drop) do redis.call('srem', S, id) end " \
    "  return #evict " \
    "end " \
    "local function put(k, a) " \
    "  redis.call('del', k) " \
    "  redis.call('hset', k, 'v', a.v, 'u', a.u, 'c', a.c, 'x', a.x, 'd', a.d) " \
    "  if a.at ~= '' then redis.call('pexpireat', k, a.at) end " \
    "end "

/* KEYS: lock, writes, key, uidx:USER, user:USER (old index format).
 * ARGV: prefix, record, expire ms or '', live_until, created, now, user
 * or '', cap, id. */
static const char REC_CREATE_SCRIPT[] = RD_LUA_FIG RD_LUA_CAP
    "if redis.call('exists', KEYS[1]) == 1 then return {5} end "
    "if redis.call('exists', KEYS[3]) == 1 then return {4} end "
    "local user = ARGV[7] "
    "local evict, drop = {}, {} "
    "if user ~= '' then "
    "  if redis.call('exists', KEYS[5]) == 1 then return {5} end "
    "  evict, drop = plan(ARGV[1], KEYS[4], user, ARGV[9], tonumber(ARGV[5]), "
    "                     tonumber(ARGV[8]), tonumber(ARGV[6])) "
    "  if not evict then return {5} end "
    "end "
    "put(KEYS[3], {v = '1', u = user, c = ARGV[5], x = ARGV[4], d = ARGV[2], "
    "              at = ARGV[3]}) "
    "fig_add(ARGV[1], ARGV[9], user, ARGV[3]) "
    "local w = 1 "
    "if user ~= '' then "
    "  redis.call('sadd', KEYS[4], ARGV[9]) "
    "  w = w + apply(ARGV[1], KEYS[4], evict, drop, user) "
    "end "
    "fig_trim(ARGV[1], " RD_TRIM_PER_CREATE ", ARGV[6] .. '000') "
    "bump(ARGV[1], KEYS[2], w) "
    "return {0}";

/* KEYS: lock, writes, key, new key (= key unless rotating), uidx:USER,
 * user:USER, uidx:OLDUSER, user:OLDUSER, alias:ID.
 * ARGV: prefix, expected version, version, record, expire ms or '',
 * live_until, created, now, user or '', expected user or '', cap, id,
 * new id, alias value or '', alias expire ms or ''. */
static const char REC_SAVE_SCRIPT[] = RD_LUA_FIG RD_LUA_CAP
    "if redis.call('exists', KEYS[1]) == 1 then return {5} end "
    "local t = redis.call('type', KEYS[3])['ok'] "
    "if t == 'none' then return {1} end "
    "if t ~= 'hash' then return {5} end "
    "local m = redis.call('hmget', KEYS[3], 'v', 'u', 'x') "
    "if not m[1] or not m[2] or not m[3] then return {5} end "
    "if m[1] ~= ARGV[2] or m[2] ~= ARGV[10] then return {2, m[1]} end "
    "if tonumber(m[3]) <= tonumber(ARGV[8]) then return {3} end "
    "local user, old = ARGV[9], m[2] "
    "local rotating = KEYS[4] ~= KEYS[3] "
    "local login = user ~= old "
    "if rotating and redis.call('exists', KEYS[4]) == 1 then return {4} end "
    "local evict, drop = {}, {} "
    "if user ~= '' and login then "
    "  if redis.call('exists', KEYS[6]) == 1 then return {5} end "
    "  evict, drop = plan(ARGV[1], KEYS[5], user, ARGV[13], tonumber(ARGV[7]), "
    "                     tonumber(ARGV[11]), tonumber(ARGV[8])) "
    "  if not evict then return {5} end "
    "end "
    "if old ~= '' and (rotating or login) and "
    "   redis.call('exists', KEYS[8]) == 1 then return {5} end "
    "put(KEYS[4], {v = ARGV[3], u = user, c = ARGV[7], x = ARGV[6], "
    "              d = ARGV[4], at = ARGV[5]}) "
    "if rotating or login then fig_rem(ARGV[1], ARGV[12], old, false) end "
    "fig_add(ARGV[1], ARGV[13], user, ARGV[5]) "
    "local w = 1 "
    "if user ~= '' and (rotating or login) then "
    "  redis.call('sadd', KEYS[5], ARGV[13]) "
    "  w = w + apply(ARGV[1], KEYS[5], evict, drop, user) "
    "end "
    "if rotating then "
    "  redis.call('del', KEYS[3]) w = w + 1 "
    "  if ARGV[14] ~= '' then "
    "    redis.call('del', KEYS[9]) redis.call('hset', KEYS[9], 'd', ARGV[14]) "
    "    if ARGV[15] ~= '' then redis.call('pexpireat', KEYS[9], ARGV[15]) end "
    "    w = w + 1 "
    "  end "
    "end "
    "if old ~= '' and (rotating or login) then "
    "  redis.call('srem', KEYS[7], ARGV[12]) end "
    "bump(ARGV[1], KEYS[2], w) "
    "return {0}";

/* KEYS: lock, writes, key.  ARGV: prefix, id (and now, unused: the
 * same call as REC_END_SCRIPT's, rec_remove). */
static const char REC_DELETE_SCRIPT[] = RD_LUA_FIG
    "if redis.call('exists', KEYS[1]) == 1 then return {5} end "
    "local t = redis.call('type', KEYS[3])['ok'] "
    "if t == 'none' then return {1} end "
    "if t ~= 'hash' then return {5} end "
    "local u = redis.call('hget', KEYS[3], 'u') "
    "if not u then return {5} end "
    "if u ~= '' and redis.call('exists', ARGV[1] .. 'user:' .. u) == 1 then "
    "  return {5} end "
    "redis.call('del', KEYS[3]) "
    "if u ~= '' then redis.call('srem', ARGV[1] .. 'uidx:' .. u, ARGV[2]) end "
    "fig_rem(ARGV[1], ARGV[2], u, false) "
    "bump(ARGV[1], KEYS[2], 1) "
    "return {0}";

/* mark_ended (session.c): a session seen expired is ended for good.  A
 * record past its end is Redis's to drop, so ending it is deleting it, if
 * it is still past its end now (field x <= now): a write that revived it
 * since wins.  KEYS: lock, writes, key.  ARGV: prefix, id, now. */
static const char REC_END_SCRIPT[] = RD_LUA_FIG
    "if redis.call('exists', KEYS[1]) == 1 then return {5} end "
    "local t = redis.call('type', KEYS[3])['ok'] "
    "if t == 'none' then return {1} end "
    "if t ~= 'hash' then return {5} end "
    "local m = redis.call('hmget', KEYS[3], 'u', 'x') "
    "if not m[1] or not m[2] then return {5} end "
    "if tonumber(m[2]) > tonumber(ARGV[3]) then return {0} end "
    "redis.call('del', KEYS[3]) "
    "if m[1] ~= '' then redis.call('srem', ARGV[1] .. 'uidx:' .. m[1], ARGV[2]) end "
    "fig_rem(ARGV[1], ARGV[2], m[1], true) "
    "bump(ARGV[1], KEYS[2], 1) "
    "return {0}";

/* ------------------------------------------------------------ figures */

/*
 * The store's figures (sessions, anonymous, users, expired) for an O(1)
 * `stats` (sg_store_counters), kept by the write scripts themselves (see
 * RD_LUA_FIG): P"exp" holds an entry id..user per session key with the
 * key's expiry as score, P"ucnt" the entries per user, P"figs" the
 * anonymous ones, the expired count, the write counter they are right at
 * (at) and a state ("off", "counting:TOKEN" while a recount runs).  Redis
 * drops a session key at its PEXPIREAT unseen by any script, so its entry
 * stays behind (score < now) until a create or a stats call trims it;
 * stats counts those as gone meanwhile.  Every count moves in the same
 * script as the key it follows, so a process killed at any instant leaves
 * them right; only a recount can be left half done (state stays
 * "counting:"): then stats walks until the next one.  Costs: a ZSCORE-like
 * O(log n) per session write, one entry (~80 bytes) per session.
 */

/* KEYS: writes.  ARGV: prefix, now ms, trim limit (0: read only).
 * {kept (1 right, 0 not, -1 kept off), sessions, anonymous, users,
 * expired, more to trim, writes}: an entry past its end counts as gone. */
static const char STATS_SCRIPT[] = RD_LUA_FIG
    "local P, now = ARGV[1], ARGV[2] "
    "local more = 0 "
    "if tonumber(ARGV[3]) > 0 then "
    "  fig_trim(P, tonumber(ARGV[3]), now) "
    "  if redis.call('zcount', P .. 'exp', '-inf', '(' .. now) > 0 then "
    "    more = 1 end "
    "end "
    "local f = redis.call('hmget', P .. 'figs', 'at', 'state', 'anon', 'expired') "
    "local w = tonumber(redis.call('get', KEYS[1]) or '0') "
    "local kept = 0 "
    "if f[2] == 'off' then kept = -1 "
    "elseif not f[2] and tonumber(f[1] or '0') == w then kept = 1 end "
    "local anon, expired = tonumber(f[3] or '0'), tonumber(f[4] or '0') "
    "local users = redis.call('hlen', P .. 'ucnt') "
    "local sessions = redis.call('zcard', P .. 'exp') "
    "if kept == 1 then "
    "  local old = redis.call('zrangebyscore', P .. 'exp', '-inf', '(' .. now) "
    "  local gone = {} "
    "  for _, m in ipairs(old) do "
    "    local u = m:sub(37) "
    "    if u == '' then anon = anon - 1 else gone[u] = (gone[u] or 0) + 1 end "
    "  end "
    "  for u, n in pairs(gone) do "
    "    if tonumber(redis.call('hget', P .. 'ucnt', u) or '0') <= n then "
    "      users = users - 1 end "
    "  end "
    "  sessions = sessions - #old "
    "  expired = expired + #old "
    "end "
    "return {kept, sessions, anon, users, expired, more, w}";

/* A recount, step by step (r_recount): adds the entry of every session
 * key in one SCAN page.  Writers may run between the steps: an entry is
 * counted once whoever adds it first (fig_add), and a key deleted before
 * the scan reaches it is never counted.  ARGV: prefix, SCAN pattern,
 * cursor, count, now ms.  The next cursor. */
static const char COUNT_SCRIPT[] = RD_LUA_FIG
    "local P = ARGV[1] "
    "local r = redis.call('scan', ARGV[3], 'match', ARGV[2], 'count', ARGV[4]) "
    "for _, k in ipairs(r[2]) do "
    "  local id = k:sub(#P + 1) "
    "  if #id == 36 and not id:find(':', 1, true) and "
    "     redis.call('type', k)['ok'] == 'hash' then "
    "    local f = redis.call('hmget', k, 'v', 'u') "
    "    if f[1] and f[2] then "
    "      local ttl = redis.call('pttl', k) "
    "      if ttl >= 0 then "
    "        fig_add(P, id, f[2], string.format('%d', tonumber(ARGV[5]) + ttl)) "
    "      elseif ttl == -1 then fig_add(P, id, f[2], '') end "
    "    end "
    "  end "
    "end "
    "return r[1]";

/* Start a recount: empty the entries and counts (the expired count is
 * history: kept), mark it running.  Not when kept off.  ARGV: prefix,
 * token. */
static const char COUNT_BEGIN_SCRIPT[] =
    "local F = ARGV[1] .. 'figs' "
    "if redis.call('hget', F, 'state') == 'off' then return 0 end "
    "redis.call('del', ARGV[1] .. 'exp', ARGV[1] .. 'ucnt') "
    "redis.call('hset', F, 'state', 'counting:' .. ARGV[2], 'anon', 0) "
    "return 1";

/* End the recount started with token, unless another began since: the
 * figures are right at the write counter now.  KEYS: writes. */
static const char COUNT_END_SCRIPT[] =
    "local F = ARGV[1] .. 'figs' "
    "if redis.call('hget', F, 'state') ~= 'counting:' .. ARGV[2] then "
    "  return 0 end "
    "redis.call('hdel', F, 'state') "
    "redis.call('hset', F, 'at', redis.call('get', KEYS[1]) or '0') "
    "return 1";

static const char *const rec_scripts[RD_NSCRIPTS] = {
    REC_CREATE_SCRIPT, REC_SAVE_SCRIPT, REC_DELETE_SCRIPT, REC_END_SCRIPT,
    STATS_SCRIPT, COUNT_SCRIPT
};

/* Run script sc with EVALSHA: loaded (SCRIPT LOAD) once per connection,
 * and loaded again on NOSCRIPT (the server restarted, or SCRIPT FLUSH).
 * fmt holds the key count, keys and args.  New: the reply, or NULL. */
static redisReply *rec_eval(redis_be *b, int sc, sg_error *err,
                            const char *fmt, ...)
{
    int reloaded = 0, resent = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (b->sha_conn != (const void *)b->c || !b->sha[sc][0]) {
            if (b->sha_conn != (const void *)b->c) {
                memset(b->sha, 0, sizeof b->sha);
                b->sha_conn = b->c;
            }
            /* Safe to repeat (sgi_redis_read): loading twice is harmless. */
            redisReply *l = sgi_redis_read(b, "SCRIPT LOAD", err,
                                           "SCRIPT LOAD %s", rec_scripts[sc]);
            if (!l)
                return NULL;
            if (l->type != REDIS_REPLY_STRING || l->len != 40) {
                b->last = sgi_redis_fail(b, l, "SCRIPT LOAD", err);
                return NULL;
            }
            memcpy(b->sha[sc], l->str, 40);
            b->sha[sc][40] = '\0';
            freeReplyObject(l);
        }
        char f[256];
        int fn = snprintf(f, sizeof f, "EVALSHA %s %s", b->sha[sc], fmt);
        if (fn < 0 || (size_t)fn >= sizeof f) {   /* a bug of ours */
            b->last = sgi_err(err, SG_ESTORE, 0, "store %s: script call "
                              "too long", b->uri);
            return NULL;
        }
        sg_error serr = { 0 };
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = sgi_redis_writev(b, "write", &serr, f, ap);
        va_end(ap);
        if (r)
            return r;
        if (!reloaded && strstr(serr.text, "NOSCRIPT")) {
            reloaded = 1;
            b->sha[sc][0] = '\0';
            continue;
        }
        /* A kept connection to a server that restarted since: the write
         * of the command itself failed (EPIPE), so no server ran it and
         * it is safe to send again on a new connection, once.  (After a
         * read error it is not: the script may have run.) */
        if (!resent && strstr(serr.text, "Broken pipe") &&
            sgi_redis_up(b, NULL) == SG_OK) {
            resent = 1;
            continue;
        }
        if (err && err->code == SG_OK)
            *err = serr;
        return NULL;
    }
    return NULL;
}

/* Read {code[, version]} from a script's reply (takes r). */
static sg_status rec_result(redis_be *b, redisReply *r, sgi_rec *rec,
                            sg_error *err)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return sgi_redis_fail(b, r, "EVALSHA", err);
    long long code = r->element[0]->integer;
    if (code == RS_CONFLICT && r->elements > 1 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        rec->stored_version = strtoull(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
    switch (code) {
    case RS_OK:        return SG_OK;
    case RS_NOTFOUND:  return SG_ENOTFOUND;
    case RS_CONFLICT:  return SG_ECONFLICT;
    case RS_EXPIRED:   return SG_EEXPIRED;
    case RS_COLLISION: rec->collision = 1; return SG_OK;
    default:           rec->fallback = 1; return SG_OK;
    }
}

/* PREFIX + a + b, or NULL without memory. */
static char *key3(redis_be *b, const char *a, const char *c)
{
    size_t n = strlen(b->prefix), m = strlen(a), o = c ? strlen(c) : 0;
    char *k = malloc(n + m + o + 1);
    if (k) {
        memcpy(k, b->prefix, n);
        memcpy(k + n, a, m);
        memcpy(k + n + m, c ? c : "", o + 1);
    }
    return k;
}

static void at_ms(int64_t expire_at, char out[32])
{
    out[0] = '\0';
    if (expire_at > 0 && expire_at < INT64_MAX / 1000)
        snprintf(out, 32, "%lld", (long long)expire_at * 1000);
}

static sg_status rec_prep(sg_store *st, redis_be *b, sgi_rec *r, sg_error *err)
{
    r->fallback = r->collision = 0;
    if (st->opt.readonly)
        return sgi_err(err, SG_ESTORE, EROFS, "store %s: opened read-only",
                       b->uri);
    return sgi_redis_up(b, err);
}

static sg_status r_rec_create(sg_store *st, sgi_rec *r, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = rec_prep(st, b, r, err);
    if (rc != SG_OK)
        return rc;
    const char *u = r->user ? r->user : "";
    char *k = key_of(b, r->id);
    char *ix = key3(b, SGI_INDEX_PREFIX, u);
    char *old = key3(b, SGI_USER_PREFIX, u);
    char at[32];
    at_ms(r->expire_at, at);
    if (!k || !ix || !old) {
        rc = sgi_oom(err, "store", b->uri);
    } else {
        redisReply *rep = rec_eval(b, RD_SC_CREATE, err,
            "5 %s %s %s %s %s %s %b %s %lld %lld %lld %s %d %s",
            b->lock_key, b->writes_key, k, ix, old, b->prefix, r->val, r->len,
            at, (long long)r->live_until, (long long)r->created,
            (long long)r->now, u, r->cap, r->id);
        rc = rep ? rec_result(b, rep, r, err) : b->last ? b->last : SG_ESTORE;
    }
    free(k);
    free(ix);
    free(old);
    return rc;
}

static sg_status r_rec_save(sg_store *st, sgi_rec *r, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = rec_prep(st, b, r, err);
    if (rc != SG_OK)
        return rc;
    const char *u = r->user ? r->user : "";
    const char *eu = r->expect_user ? r->expect_user : "";
    char *k = key_of(b, r->id), *nk = key_of(b, r->new_id);
    char *ix = key3(b, SGI_INDEX_PREFIX, u), *old = key3(b, SGI_USER_PREFIX, u);
    char *oix = key3(b, SGI_INDEX_PREFIX, eu);
    char *oold = key3(b, SGI_USER_PREFIX, eu);
    char *al = key3(b, SGI_ALIAS_PREFIX, r->id);
    char at[32], aat[32];
    at_ms(r->expire_at, at);
    at_ms(r->alias_expire_at, aat);
    if (!k || !nk || !ix || !old || !oix || !oold || !al) {
        rc = sgi_oom(err, "store", b->uri);
    } else {
        redisReply *rep = rec_eval(b, RD_SC_SAVE, err,
            "9 %s %s %s %s %s %s %s %s %s "
            "%s %llu %llu %b %s %lld %lld %lld %s %s %d %s %s %s %s",
            b->lock_key, b->writes_key, k, nk, ix, old, oix, oold, al,
            b->prefix, (unsigned long long)r->expect_version,
            (unsigned long long)r->version, r->val, r->len, at,
            (long long)r->live_until, (long long)r->created,
            (long long)r->now, u, eu, r->cap, r->id, r->new_id,
            r->alias_val ? r->alias_val : "", aat);
        rc = rep ? rec_result(b, rep, r, err) : b->last ? b->last : SG_ESTORE;
    }
    free(k);
    free(nk);
    free(ix);
    free(old);
    free(oix);
    free(oold);
    free(al);
    return rc;
}

/* rec_delete and rec_end: one call, script sc (RD_SC_DELETE or
 * RD_SC_END) on KEYS lock, writes, key and ARGV prefix, id, now (the
 * delete script has no use for now). */
static sg_status rec_remove(sg_store *st, int sc, sgi_rec *r, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = rec_prep(st, b, r, err);
    if (rc != SG_OK)
        return rc;
    char *k = key_of(b, r->id);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    redisReply *rep = rec_eval(b, sc, err, "3 %s %s %s %s %s %lld",
                               b->lock_key, b->writes_key, k, b->prefix, r->id,
                               (long long)r->now);
    free(k);
    return rep ? rec_result(b, rep, r, err) : b->last ? b->last : SG_ESTORE;
}

static sg_status r_rec_delete(sg_store *st, sgi_rec *r, sg_error *err)
{
    return rec_remove(st, RD_SC_DELETE, r, err);
}

static sg_status r_rec_end(sg_store *st, sgi_rec *r, sg_error *err)
{
    return rec_remove(st, RD_SC_END, r, err);
}

/* put with the record's fields, under the lease (store.c's locked path). */
static const char REC_PUT_SCRIPT[] = RD_LUA_FIG
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[2]) "
    "bump(ARGV[9], KEYS[3], 1) "
    "if redis.call('type', KEYS[2])['ok'] == 'hash' then "
    "  local ou = redis.call('hget', KEYS[2], 'u') "
    "  if ou then fig_rem(ARGV[9], ARGV[10], ou, false) end "
    "end "
    "redis.call('del', KEYS[2]) "
    "redis.call('hset', KEYS[2], 'v', ARGV[4], 'u', ARGV[5], 'c', ARGV[6], "
    "           'x', ARGV[7], 'd', ARGV[8]) "
    "if ARGV[3] ~= '' then redis.call('pexpireat', KEYS[2], ARGV[3]) end "
    "fig_add(ARGV[9], ARGV[10], ARGV[5], ARGV[3]) "
    "return 1";

static sg_status r_rec_put(sg_store *st, const sgi_rec *r, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    char at[32];
    at_ms(r->expire_at, at);
    char *k = key_of(b, r->id);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    sg_error serr = { 0 };
    redisReply *rep = EVAL_WRITE(b, "write", &serr, REC_PUT_SCRIPT,
                           "3 %s %s %s %s %d %s %llu %s %lld %lld %b %s %s",
                           b->lock_key, k, b->writes_key, b->token,
                           RD_LEASE_MS, at, (unsigned long long)r->version,
                           r->user ? r->user : "", (long long)r->created,
                           (long long)r->live_until, r->val, r->len,
                           b->prefix, r->id);
    free(k);
    if (!rep)
        return script_fail(b, err, &serr);
    freeReplyObject(rep);
    return SG_OK;
}

/* ------------------------------------------------------ per-user sets */

/* Each user's index is a Redis SET, PREFIX "uidx:NAME", so adding and
 * removing an id is one SADD / SREM whatever the user's count (store.c
 * keeps the old format, a JSON array under "user:NAME", readable and
 * converts it).  The writes are scripts for the same reasons as
 * WRITE_SCRIPT: lease checked and renewed, write counted, in one step;
 * they also say whether an old-format key is there, so that store.c need
 * not ask in a round trip of its own on every create. */
static const char SET_SCRIPT[] = RD_LUA_FIG
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then "
    "return redis.error_reply('SESSGATE lock lease lost') end "
    "redis.call('pexpire', KEYS[1], ARGV[2]) "
    "local n = redis.call(ARGV[4], KEYS[2], ARGV[3]) "
    "if n > 0 then bump(ARGV[5], KEYS[3], 1) end "
    "return n + 2 * redis.call('exists', KEYS[4])";

static char *set_key(redis_be *b, const char *user)
{
    size_t n = strlen(b->prefix), m = strlen(user);
    char *k = malloc(n + sizeof SGI_INDEX_PREFIX + m);
    if (k) {
        memcpy(k, b->prefix, n);
        memcpy(k + n, SGI_INDEX_PREFIX, sizeof SGI_INDEX_PREFIX - 1);
        memcpy(k + n + sizeof SGI_INDEX_PREFIX - 1, user, m + 1);
    }
    return k;
}

/* SADD or SREM id; *changed 1 when the set changed, *legacy 1 when the
 * user has an old-format index key. */
static sg_status set_change(sg_store *st, const char *op, const char *user,
                            const char *id, int *changed, int *legacy,
                            sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = write_check(st, b, err);
    if (rc != SG_OK)
        return rc;
    char *k = set_key(b, user);
    char *old = NULL;
    size_t n = strlen(b->prefix), m = strlen(user);
    if (k && (old = malloc(n + sizeof SGI_USER_PREFIX + m))) {
        memcpy(old, b->prefix, n);
        memcpy(old + n, SGI_USER_PREFIX, sizeof SGI_USER_PREFIX - 1);
        memcpy(old + n + sizeof SGI_USER_PREFIX - 1, user, m + 1);
    }
    if (!k || !old) {
        free(k);
        return sgi_oom(err, "store", b->uri);
    }
    sg_error serr = { 0 };
    redisReply *r = EVAL_WRITE(b, op, &serr, SET_SCRIPT, "4 %s %s %s %s %s %d %s %s %s",
                         b->lock_key, k, b->writes_key, old, b->token,
                         RD_LEASE_MS, id, op, b->prefix);
    free(k);
    free(old);
    if (!r)
        return script_fail(b, err, &serr);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    *changed = (v & 1) != 0;
    *legacy = (v & 2) != 0;
    freeReplyObject(r);
    return SG_OK;
}

static sg_status r_set_add(sg_store *st, const char *user, const char *id,
                           int *legacy, sg_error *err)
{
    int changed;
    return set_change(st, "sadd", user, id, &changed, legacy, err);
}

static sg_status r_set_remove(sg_store *st, const char *user, const char *id,
                              int *legacy, sg_error *err)
{
    int changed = 0;
    sg_status rc = set_change(st, "srem", user, id, &changed, legacy, err);
    return rc == SG_OK && !changed ? SG_ENOTFOUND : rc;
}

static sg_status r_set_ids(sg_store *st, const char *user, sg_list *l,
                           sg_error *err)
{
    redis_be *b = be_of(st);
    char *k = set_key(b, user);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    redisReply *r = sgi_redis_read(b, "SMEMBERS", err, "SMEMBERS %s", k);
    free(k);
    if (!r)
        return b->last;
    if (r->type != REDIS_REPLY_ARRAY)
        return sgi_redis_fail(b, r, "SMEMBERS", err);
    sg_status rc = SG_OK;
    for (size_t i = 0; i < r->elements && rc == SG_OK; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len == SG_ID_LEN &&
            strlen(e->str) == SG_ID_LEN && sg_id_valid(e->str) &&
            sgi_list_push(l, e->str) < 0)
            rc = sgi_oom(err, "store", b->uri);
    }
    freeReplyObject(r);
    return rc;
}

static sg_status r_set_count(sg_store *st, const char *user, size_t *n,
                             sg_error *err)
{
    redis_be *b = be_of(st);
    char *k = set_key(b, user);
    if (!k)
        return sgi_oom(err, "store", b->uri);
    redisReply *r = sgi_redis_read(b, "SCARD", err, "SCARD %s", k);
    free(k);
    if (!r)
        return b->last;
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
        return sgi_redis_fail(b, r, "SCARD", err);
    *n = (size_t)r->integer;
    freeReplyObject(r);
    return SG_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct keyset {
    char **k;
    size_t n, cap;
} keyset;

static void keyset_free(keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->k[i]);
    free(ks->k);
}

/* The prefix as a SCAN MATCH pattern: glob characters escaped, then "*". */
static char *match_pattern(const char *prefix)
{
    size_t n = strlen(prefix);
    char *p = malloc(2 * n + 2), *o = p;
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", prefix[i]))
            *o++ = '\\';
        *o++ = prefix[i];
    }
    *o++ = '*';
    *o = '\0';
    return p;
}

/* Every key under the prefix except our own lock and counter.  SCAN may
 * return a key twice (while Redis rehashes, and writers run while readers
 * scan: readers take no lock), and the callers count what they get, so
 * collect, sort and drop duplicates before calling fn.  That also lets fn
 * change the store. */
static sg_status r_keys(sg_store *st, sgi_key_fn fn, void *arg, sg_error *err)
{
    redis_be *b = be_of(st);
    keyset ks = { 0 };
    char *pat = match_pattern(b->prefix);
    if (!pat)
        return sgi_oom(err, "store", b->uri);
    size_t plen = strlen(b->prefix);
    char cursor[32] = "0";
    sg_status rc = SG_OK;
    do {
        /* Only the first page may be repeated: a cursor means nothing
         * to a restarted server. */
        int first = strcmp(cursor, "0") == 0;
        redisReply *r = first ? sgi_redis_read(b, "SCAN", err, "SCAN %s MATCH %s "
                                         "COUNT " RD_SCAN_COUNT, cursor, pat)
                              : sgi_redis_cmd(b, "SCAN", err, "SCAN %s MATCH %s COUNT "
                                    RD_SCAN_COUNT, cursor, pat);
        if (!r) {
            rc = b->last;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = sgi_redis_fail(b, r, "SCAN", err);
            break;
        }
        memcpy(cursor, r->element[0]->str, (size_t)r->element[0]->len + 1);
        redisReply *a = r->element[1];
        for (size_t i = 0; i < a->elements && rc == SG_OK; i++) {
            redisReply *e = a->element[i];
            if (e->type != REDIS_REPLY_STRING || (size_t)e->len <= plen ||
                memcmp(e->str, b->prefix, plen) != 0 ||
                strlen(e->str) != (size_t)e->len)
                continue;       /* not ours, or holds a NUL */
            const char *name = e->str + plen;
            if (strcmp(name, "lock") == 0 || strcmp(name, "writes") == 0 ||
                strcmp(name, "exp") == 0 || strcmp(name, "ucnt") == 0 ||
                strcmp(name, "figs") == 0)
                continue;       /* ours (lease, counter, figures) */
            if (ks.n == ks.cap) {
                size_t cap = ks.cap ? ks.cap * 2 : 64;
                char **p = realloc(ks.k, cap * sizeof *p);
                if (!p) {
                    rc = sgi_oom(err, "store", b->uri);
                    break;
                }
                ks.k = p;
                ks.cap = cap;
            }
            if (!(ks.k[ks.n] = strdup(name)))
                rc = sgi_oom(err, "store", b->uri);
            else
                ks.n++;
        }
        freeReplyObject(r);
    } while (rc == SG_OK && strcmp(cursor, "0") != 0);
    free(pat);
    if (rc == SG_OK && ks.n > 1)
        qsort(ks.k, ks.n, sizeof *ks.k, cmp_str);
    for (size_t i = 0; rc == SG_OK && i < ks.n; i++) {
        if (i > 0 && strcmp(ks.k[i], ks.k[i - 1]) == 0)
            continue;
        if (fn(ks.k[i], strlen(ks.k[i]), arg))
            break;
    }
    keyset_free(&ks);
    return rc;
}

/* Now, Unix ms, as the figures' scores are (PEXPIREAT). */
static long long real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Entries of ended sessions a stats call trims per script run, so that
 * one call never blocks the server long; it runs again while more are
 * left (a handle that may write only). */
#define RD_TRIM_PER_STATS 10000

/* The figures (see "figures" above): *kept 1 right, 0 not (stats walks),
 * -1 kept off.  A handle that may write first trims the entries of
 * sessions Redis has dropped. */
static sg_status r_counts(sg_store *st, struct sgi_counts *c, int *kept,
                          sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = sgi_redis_up(b, err);
    if (rc != SG_OK)
        return rc;
    int limit = st->opt.readonly ? 0 : RD_TRIM_PER_STATS;
    for (int round = 0; round < 1000; round++) {
        redisReply *r = rec_eval(b, RD_SC_STATS, err, "1 %s %s %lld %d",
                                 b->writes_key, b->prefix, real_ms(), limit);
        if (!r)
            return b->last ? b->last : SG_ESTORE;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 7)
            return sgi_redis_fail(b, r, "EVALSHA (stats)", err);
        long long v[7];
        for (size_t i = 0; i < 7; i++) {
            if (r->element[i]->type != REDIS_REPLY_INTEGER)
                return sgi_redis_fail(b, r, "EVALSHA (stats)", err);
            v[i] = r->element[i]->integer;
        }
        freeReplyObject(r);
        if (v[5] && limit)
            continue;                   /* trim the rest first */
        *kept = (int)v[0];
        memset(c, 0, sizeof *c);
        c->sessions = v[1] > 0 ? (uint64_t)v[1] : 0;
        c->anonymous = v[2] > 0 ? (uint64_t)v[2] : 0;
        c->users = v[3] > 0 ? (uint64_t)v[3] : 0;
        c->expired = v[4] > 0 ? (uint64_t)v[4] : 0;
        c->at = v[6] > 0 ? (uint64_t)v[6] : 0;
        return SG_OK;
    }
    return sgi_err(err, SG_ESTORE, 0, "store %s: stats: ended sessions "
                   "keep coming faster than they are trimmed", b->uri);
}

/* Count every session key again (check --repair, stats --keep on, a
 * stats of stale figures through a handle that may write): one SCAN page
 * per script run, writers going on between them.  Nothing when kept off. */
static sg_status r_recount(sg_store *st, sg_error *err)
{
    redis_be *b = be_of(st);
    if (st->opt.readonly)
        return sgi_err(err, SG_ESTORE, EROFS, "store %s: opened read-only",
                       b->uri);
    sg_status rc = sgi_redis_up(b, err);
    if (rc != SG_OK)
        return rc;
    unsigned char raw[8];
    char token[2 * sizeof raw + 1];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return sgi_err(err, SG_ESTORE, errno, "store %s: cannot get random "
                       "bytes: %s", b->uri, strerror(errno));
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    redisReply *r = EVAL_WRITE(b, "EVAL (recount)", err, COUNT_BEGIN_SCRIPT,
                               "0 %s %s", b->prefix, token);
    if (!r)
        return b->last;
    int on = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (!on)
        return SG_OK;                   /* kept off */
    char *pat = match_pattern(b->prefix);
    if (!pat)
        return sgi_oom(err, "store", b->uri);
    char cursor[32] = "0";
    do {
        r = rec_eval(b, RD_SC_COUNT, err, "0 %s %s %s %s %lld", b->prefix,
                     pat, cursor, RD_SCAN_COUNT, real_ms());
        if (!r) {
            rc = b->last ? b->last : SG_ESTORE;
            break;
        }
        if (r->type != REDIS_REPLY_STRING || (size_t)r->len >= sizeof cursor) {
            rc = sgi_redis_fail(b, r, "EVALSHA (recount)", err);
            break;
        }
        memcpy(cursor, r->str, (size_t)r->len + 1);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    free(pat);
    if (rc != SG_OK)
        return rc;                      /* stays "counting": not used */
    r = EVAL_WRITE(b, "EVAL (recount)", err, COUNT_END_SCRIPT, "1 %s %s %s",
                   b->writes_key, b->prefix, token);
    if (!r)
        return b->last;
    freeReplyObject(r);
    return SG_OK;
}

/* stats --keep off / on. */
static sg_status r_keep(sg_store *st, int on, sg_error *err)
{
    redis_be *b = be_of(st);
    sg_status rc = sgi_redis_up(b, err);
    if (rc != SG_OK)
        return rc;
    char *f = key_of(b, "figs");
    if (!f)
        return sgi_oom(err, "store", b->uri);
    redisReply *r = on ? sgi_redis_write(b, "HDEL", err, "HDEL %s state", f)
                       : sgi_redis_write(b, "HSET", err, "HSET %s state off", f);
    free(f);
    if (!r)
        return b->last;
    freeReplyObject(r);
    return on ? r_recount(st, err) : SG_OK;
}

/* Redis checks its own data structures; there is no file to repair.  A
 * PING proves the server answers.  (store.c then drops unparsable records
 * and rebuilds the per-user index, the same as for GDBM.) */
static sg_status r_check(sg_store *st, int repair, sg_check_report *rep,
                         sg_error *err)
{
    (void)repair;
    (void)rep;
    redis_be *b = be_of(st);
    redisReply *r = sgi_redis_read(b, "PING", err, "PING");
    if (!r)
        return b->last;
    freeReplyObject(r);
    return SG_OK;
}

/* Approximate figures for stats: writes is the counter every write bumps
 * (exact across processes, but it counts since the key was created, and
 * a Redis without persistence forgets it on restart); bytes is the
 * server's used_memory, an upper bound covering every key of every
 * database on that server, not only this store's: Redis has no cheap
 * per-prefix size (MEMORY USAGE per key would mean a full scan). */
static void r_info(sg_store *st, uint64_t *bytes, uint64_t *writes)
{
    redis_be *b = be_of(st);
    sg_error ignored = { 0 };
    *bytes = *writes = 0;
    redisReply *r = sgi_redis_cmd(b, "GET", &ignored, "GET %s", b->writes_key);
    if (r) {
        if (r->type == REDIS_REPLY_STRING)
            *writes = strtoull(r->str, NULL, 10);
        freeReplyObject(r);
    }
    r = sgi_redis_cmd(b, "INFO", &ignored, "INFO memory");
    if (r) {
        const char *m = r->type == REDIS_REPLY_STRING
                      ? strstr(r->str, "used_memory:") : NULL;
        if (m)
            *bytes = strtoull(m + 12, NULL, 10);
        freeReplyObject(r);
    }
}

static void r_close(sg_store *st)
{
    redis_be *b = be_of(st);
    if (!b)
        return;
    sgi_redis_free(b);
    free(b->uri);
    free(b->prefix);
    free(b->lock_key);
    free(b->writes_key);
    free(b);
    st->be_data = NULL;
}

static sg_status r_open(sg_store *st, const char *location, sg_error *err)
{
    redis_be *b = calloc(1, sizeof *b);
    if (!b)
        return sgi_oom(err, "store", location);
    st->be_data = b;
    b->uri = strdup(location);
    if (!b->uri) {
        r_close(st);
        return sgi_oom(err, "store", location);
    }
    sg_status rc = sgi_redis_parse_uri(b, err);
    if (rc == SG_OK && !b->prefix && !(b->prefix = strdup(RD_DEFAULT_PREFIX)))
        rc = sgi_oom(err, "store", location);
    if (rc == SG_OK) {
        b->lock_key = key_of(b, "lock");
        b->writes_key = key_of(b, "writes");
        if (!b->lock_key || !b->writes_key)
            rc = sgi_oom(err, "store", location);
    }
    /* Connect now, so a server that is down shows at open with the URI
     * and the fix, not at the first request. */
    if (rc == SG_OK)
        rc = sgi_redis_up(b, err);
    if (rc != SG_OK)
        r_close(st);
    return rc;
}

const sgi_backend sgi_backend_redis = {
    .scheme = "redis",
    .open = r_open,
    .close = r_close,
    .lock = r_lock,
    .unlock = r_unlock,
    .fetch = r_fetch,
    .put = r_put,
    .del = r_del,
    .keys = r_keys,
    .check = r_check,
    .info = r_info,
    .set_add = r_set_add,
    .set_remove = r_set_remove,
    .set_ids = r_set_ids,
    .set_count = r_set_count,
    .rec_create = r_rec_create,
    .rec_save = r_rec_save,
    .rec_delete = r_rec_delete,
    .rec_put = r_rec_put,
    .rec_end = r_rec_end,
    .counts = r_counts,
    .recount = r_recount,
    .keep = r_keep,
};
