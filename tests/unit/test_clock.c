/*
 * test_clock.c - expiry when the clock jumps back and forward, through the
 * store's clock callback (sg_options.clock).
 *
 * The library cannot tell a wrong clock from a right one: it sees only the
 * readings.  What it can promise, and what these tests hold it to, is:
 *
 *  1. Liveness is judged on the reading: live while now < expires and
 *     now < accessed + idle (DESIGN §3).
 *  2. `accessed` never moves back: a touch or a save writes
 *     max(accessed, now).  So a backward jump never shortens a session (no
 *     early kill), and a session used while the clock runs behind keeps
 *     its last real touch.
 *  3. An expiry that a user of the session has seen is final: a get that
 *     may touch (no SG_GET_NOTOUCH, writable handle) and finds the session
 *     expired marks the record ended, so a clock that then jumps back (or
 *     returns from a forward jump) cannot bring it back.  A session can
 *     still die early by the size of a forward jump - the reading says it
 *     is dead, and nothing tells the library otherwise.
 *  4. A touch made while the clock ran ahead by J leaves `accessed` up to J
 *     in the future.  When the clock returns, the session is not touched
 *     again (its last touch is "newer" than now) and it lives at most
 *     idle + J from the return, never longer: it is not extended again
 *     until the reading passes that touch.  Rewriting such an `accessed`
 *     down to now instead would kill sessions early after every backward
 *     jump (rule 2), which is the worse failure; so J + idle is the bound.
 *  5. `expires` is fixed at creation: no touch, save or jump moves it, so
 *     a kept-busy session still ends at created + max_age by the reading.
 *
 * Every store here: idle 100 s, touch interval 10 s, max age 1000 s.
 * Usage: test_clock DIR   (a scratch directory)
 */
#include "sessgate.h"
#include "tap.h"

#include <stdint.h>

#define T0    1764000000
#define IDLE  100
#define TOUCH 10
#define MAXAGE 1000

static char dir[512];
static int64_t now_s = T0;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return now_s;
}

static sg_store *open_store(const char *name)
{
    char path[600];
    sg_options o;
    sg_store *st = NULL;
    sg_error err = { 0 };

    sg_options_init(&o);
    o.idle_timeout = IDLE;
    o.touch_interval = TOUCH;
    o.max_age = MAXAGE;
    o.clock = fake_clock;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (sg_store_open(path, &o, &st, &err) != SG_OK)
        printf("# open %s: %s\n", name, err.text);
    return st;
}

/* Create a session at now_s; its id goes to id. */
static sg_session *new_session(sg_store *st, char id[SG_ID_LEN + 1])
{
    sg_session *s = NULL;
    sg_error err = { 0 };

    if (sg_session_create(st, NULL, "{\"k\":1}", 0, 0, &s, &err) != SG_OK) {
        printf("# create: %s\n", err.text);
        return NULL;
    }
    memcpy(id, sg_session_id(s), SG_ID_LEN + 1);
    return s;
}

/* sg_session_get with flags; the status, and *accessed / *expires of the
 * session when it was returned (else left alone). */
static sg_status get(sg_store *st, const char *id, unsigned flags,
                     int64_t *accessed, int64_t *expires)
{
    sg_session *s = NULL;
    sg_status rc = sg_session_get(st, id, flags, &s, NULL);

    if (rc == SG_OK && accessed)
        *accessed = sg_session_accessed(s);
    if (rc == SG_OK && expires)
        *expires = sg_session_expires(s);
    sg_session_free(s);
    return rc;
}

static void test_back_after_expiry(void)
{
    sg_store *st = open_store("back_after.db");
    char id[SG_ID_LEN + 1];
    sg_session *old;

    now_s = T0;
    old = new_session(st, id);
    now_s = T0 + IDLE + 50;
    IS(get(st, id, 0, NULL, NULL), SG_EEXPIRED, "idle past: a get finds it expired");
    now_s = T0 + 50;
    IS(get(st, id, 0, NULL, NULL), SG_EEXPIRED,
       "clock back to before the expiry: it stays dead (no revival)");
    IS(get(st, id, SG_GET_NOTOUCH, NULL, NULL), SG_EEXPIRED,
       "a no-touch get agrees");
    now_s = T0 - 5000;
    IS(get(st, id, 0, NULL, NULL), SG_EEXPIRED,
       "even a clock back to before its creation does not revive it");
    now_s = T0 + 50;
    IS(old ? sg_session_save(st, old, NULL) : SG_OK, SG_EEXPIRED,
       "a copy loaded before the expiry cannot save it back to life");
    IS(get(st, id, 0, NULL, NULL), SG_EEXPIRED, "and the get still says expired");
    size_t n = 99;
    IS(sg_store_count(st, NULL, &n, NULL), SG_OK, "count");
    IS(n, 0, "it is not counted as live");
    size_t removed = 0;
    IS(sg_store_purge(st, &removed, NULL), SG_OK, "purge under the back clock");
    IS(removed, 1, "purge removes the dead session");
    sg_session_free(old);

    /* Kept busy up to its max age: accessed + idle reaches past expires,
     * so only the max age ends it, and a backward jump must not undo that
     * either. */
    now_s = T0;
    old = new_session(st, id);
    for (now_s = T0 + 50; now_s < T0 + MAXAGE; now_s += 50)
        get(st, id, 0, NULL, NULL);
    now_s = T0 + MAXAGE + 10;
    IS(get(st, id, 0, NULL, NULL), SG_EEXPIRED, "past the max age, though touched 10 s ago");
    now_s = T0 + MAXAGE - 20;
    IS(get(st, id, 0, NULL, NULL), SG_EEXPIRED,
       "clock back to before the max age: it stays dead");
    sg_session_free(old);
    sg_store_close(st);
}

static void test_back_before_expiry(void)
{
    sg_store *st = open_store("back_before.db");
    char id[SG_ID_LEN + 1];
    sg_session *s;
    int64_t acc = 0, exp = 0;

    now_s = T0;
    s = new_session(st, id);
    now_s = T0 + 20;
    IS(get(st, id, 0, &acc, NULL), SG_OK, "live at +20");
    IS(acc, T0 + 20, "the get touched it (+20 is past the touch interval)");

    now_s = T0 + 5;   /* back 15 s */
    IS(get(st, id, 0, &acc, &exp), SG_OK, "clock back 15 s: still live");
    IS(acc, T0 + 20, "accessed is not moved back by the touch path");
    IS(exp, T0 + MAXAGE, "expires is not moved");

    now_s = T0 - 3000;   /* back before its creation */
    IS(get(st, id, 0, &acc, NULL), SG_OK, "clock back before the creation: still live");
    IS(acc, T0 + 20, "accessed is not moved back");
    IS(s ? sg_session_merge_data(s, "{\"k\":2}", NULL) : SG_EINVAL, SG_OK, "change the data");
    IS(s ? sg_session_save(st, s, NULL) : SG_EINVAL, SG_OK, "save while the clock is behind");
    IS(s ? sg_session_accessed(s) : 0, T0 + 20, "the save does not move accessed back either");
    IS(get(st, id, SG_GET_NOTOUCH, &acc, NULL), SG_OK, "reload");
    IS(acc, T0 + 20, "the stored accessed is the real last touch");

    /* Not killed early: by the reading it lives until accessed + idle. */
    now_s = T0 + 20 + IDLE - 1;
    IS(get(st, id, SG_GET_NOTOUCH, NULL, NULL), SG_OK,
       "live until the reading reaches the last touch + idle");
    now_s = T0 + 20 + IDLE;
    IS(get(st, id, SG_GET_NOTOUCH, NULL, NULL), SG_EEXPIRED, "and dead from then on");
    sg_session_free(s);

    /* Kept busy through backward jumps, it still ends at its max age. */
    now_s = T0;
    s = new_session(st, id);
    sg_status rc = SG_OK;
    int steps = 0;
    while (rc == SG_OK && now_s < T0 + 2 * MAXAGE && steps < 1000) {
        now_s += steps % 5 == 4 ? -30 : 40;   /* forward 160, back 30 */
        rc = get(st, id, 0, NULL, &exp);
        steps++;
    }
    IS(rc, SG_EEXPIRED, "a session kept busy through backward jumps ends");
    OK(now_s >= T0 + MAXAGE && now_s < T0 + MAXAGE + 40,
       "at its max age by the reading (+%lld)", (long long)(now_s - T0));
    sg_session_free(s);
    sg_store_close(st);
}

static void test_forward(void)
{
    sg_store *st = open_store("forward.db");
    char id[SG_ID_LEN + 1], id2[SG_ID_LEN + 1];
    sg_session *s, *s2;
    int64_t acc = 0;

    now_s = T0;
    s = new_session(st, id);
    s2 = new_session(st, id2);

    /* Forward by less than idle - touch: alive, and touched. */
    now_s = T0 + IDLE - TOUCH - 5;
    IS(get(st, id, 0, &acc, NULL), SG_OK, "forward %d s (< idle - touch): alive",
       IDLE - TOUCH - 5);
    IS(acc, now_s, "touched at the forward reading");

    /* Forward past idle: dead, and it stays dead when the clock returns. */
    now_s = T0 + IDLE + 1;
    IS(get(st, id2, 0, NULL, NULL), SG_EEXPIRED, "forward past idle: dead");
    now_s = T0 + 2;
    IS(get(st, id2, 0, NULL, NULL), SG_EEXPIRED,
       "clock returns: the session seen dead stays dead");

    /* The first session's accessed is now J = 85 s in the future. */
    int64_t touched = T0 + IDLE - TOUCH - 5;
    now_s = T0 + 2;
    IS(get(st, id, 0, &acc, NULL), SG_OK, "clock returns: the session touched ahead is alive");
    IS(acc, touched, "accessed stays where the ahead clock put it (not moved back)");
    /* Used every 5 s after the return: no touch until the reading passes
     * the ahead touch by the interval, so it is not extended on top. */
    int64_t last = 0;
    for (now_s = T0 + 5; now_s < touched; now_s += 5) {
        get(st, id, 0, &acc, NULL);
        if (acc != touched)
            break;
        last = now_s;
    }
    IS(acc, touched, "no touch while accessed is ahead of the clock");
    OK(last >= touched - 5, "checked up to +%lld", (long long)(last - T0));

    /* Left alone: dead no later than idle + J after the return (T0 + 2). */
    now_s = touched + IDLE - 1;
    IS(get(st, id, SG_GET_NOTOUCH, NULL, NULL), SG_OK, "alive within idle of the ahead touch");
    /* touched + IDLE is (T0 + 2) + IDLE + J - 2: inside the bound. */
    now_s = touched + IDLE;
    IS(get(st, id, SG_GET_NOTOUCH, NULL, NULL), SG_EEXPIRED, "and dead at idle + J");
    sg_session_free(s);
    sg_session_free(s2);

    /* Created while the clock runs ahead: the max age counts from that
     * reading, so it outlives created + max_age by at most the jump. */
    now_s = T0 + 500;
    s = new_session(st, id);
    IS(s ? sg_session_expires(s) : 0, T0 + 500 + MAXAGE, "expires from the ahead reading");
    now_s = T0;
    IS(get(st, id, 0, &acc, NULL), SG_OK, "alive after the clock returns");
    IS(acc, T0 + 500, "created/accessed stay at the ahead reading");
    sg_session_free(s);
    sg_store_close(st);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_clock DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    test_back_after_expiry();
    test_back_before_expiry();
    test_forward();
    return tap_done();
}
