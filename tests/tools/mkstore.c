/*
 * mkstore.c - fill a store with many sessions fast, for the walk latency
 * tests (tests/store/walks.bats) and bench/run.
 *
 *   mkstore STORE N [USERS [EXPIRED_EVERY]]
 *   mkstore --raw FILE N [USERS [EXPIRED_EVERY]]
 *   mkstore --raw-json FILE N [USERS [EXPIRED_EVERY]]
 *   mkstore --single STORE N [USERS [EXPIRED_EVERY]]
 *
 * Creates N sessions through the library, a batch of them under each
 * sg_store_begin (one lock hold and one checkpoint decision per batch
 * instead of per session, which is what makes 200,000 take seconds, not
 * minutes).  With USERS > 0 the i-th session belongs to user "u<i % USERS>"
 * (USERS = 1: all to one user), else they are anonymous.  With
 * EXPIRED_EVERY = k > 0 every k-th session gets a 1-second lifetime, so
 * that after a second a purge has work.  Prints "created=N seconds=S
 * rate=R".  Exit 0, 1 on a store error, 2 on usage errors.
 *
 * --single takes the lock for each create, as a site's creates do (for
 * make bench's creates/s rows).
 *
 * --raw writes a new GDBM FILE directly (200,000 sessions in a second or
 * two instead of a minute), with the records and the per-user index keys
 * exactly as libsessgate writes them (store.c: records in the current
 * format, record.c sgi_record_dump, each with a CSRF token), and no log or
 * checkpoint: a store as a version without them, or a restored backup,
 * leaves it.  --raw-json writes the records in the old format 1 (JSON)
 * instead, as a store from before format 2 holds them (check --repair
 * converts them).  Before --raw wrote format 1 too, so the 1M bench store
 * was not what a real store looks like: every record read took the JSON
 * path.
 * Expired sessions ended ten seconds ago; the others live for a week, idle
 * or not (an idle timeout of 30 minutes made a store kept for the next
 * bench run, BENCH_WALK_STORE, all expired half an hour later).
 */
#include "internal.h"

#include <fcntl.h>
#include <gdbm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 2000

static long arg(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end == s || *end || v < 0 || v > max ? -1 : v;
}


static void put(GDBM_FILE db, const char *k, const char *v)
{
    datum key = { (char *)k, (int)strlen(k) }, val = { (char *)v, (int)strlen(v) };
    if (gdbm_store(db, key, val, GDBM_REPLACE) != 0) {
        fprintf(stderr, "mkstore: gdbm_store: %s\n", gdbm_strerror(gdbm_errno));
        exit(1);
    }
}

static int raw_fill(const char *file, long n, long users, long every,
                    int json)
{
    GDBM_FILE db = gdbm_open(file, 0, GDBM_NEWDB | GDBM_NOLOCK, 0600, NULL);
    if (!db) {
        fprintf(stderr, "mkstore: %s: %s\n", file, gdbm_strerror(gdbm_errno));
        return 1;
    }
    /* A bucket cache that holds the whole directory: GDBM's default
     * small one rewrites a bucket for nearly every store. */
    size_t cache = 1 << 16;
    (void)gdbm_setopt(db, GDBM_SETCACHESIZE, &cache, sizeof cache);
    long *count = users > 0 ? calloc((size_t)users, sizeof *count) : NULL;
    if (users > 0 && !count)
        return 1;
    long now = (long)time(NULL);
    for (long i = 0; i < n; i++) {
        unsigned char r[16];
        char id[SG_ID_LEN + 1], user[40], rec[512], k[128];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            return 1;
        snprintf(id, sizeof id, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                 "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
                 r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
        int expired = every > 0 && i % every == 0;
        long created = expired ? now - 100 : now;
        long u = users > 0 ? i % users : -1;
        if (u >= 0)
            snprintf(user, sizeof user, "\"u%ld\"", u);
        else
            strcpy(user, "null");
        if (json) {
            snprintf(rec, sizeof rec, "{\"id\":\"%s\",\"user\":%s,\"created\":%ld,"
                     "\"accessed\":%ld,\"expires\":%ld,\"idle\":604800,\"version\":1,"
                     "\"data\":{\"cart\":[1,2,3],\"theme\":\"dark\"}}", id, user,
                     created, created, expired ? now - 10 : now + 604800);
            put(db, id, rec);
        } else {
            static char data[] = "{\"cart\":[1,2,3],\"theme\":\"dark\"}";
            char uname[40];
            sg_session s;
            memset(&s, 0, sizeof s);
            memcpy(s.id, id, sizeof s.id);
            if (u >= 0) {
                snprintf(uname, sizeof uname, "u%ld", u);
                s.user = uname;
            }
            s.created = s.accessed = created;
            s.expires = expired ? now - 10 : now + 604800;
            s.idle = 604800;
            s.version = 1;
            s.data_text = data;
            s.data_len = sizeof data - 1;
            if (sgi_token_new(s.csrf, NULL) != SG_OK)
                return 1;
            char *v2 = sgi_record_dump(&s, NULL);
            if (!v2)
                return 1;
            put(db, id, v2);
            free(v2);
        }
        if (u >= 0) {   /* the index as store.c keeps it: slot n, gen 0 */
            snprintf(k, sizeof k, "us:0:%ld:u%ld", count[u], u);
            put(db, k, id);
            count[u]++;
        }
    }
    free(count);
    gdbm_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;    /* Owned: closed before exit */
    sg_error err;
    sg_status rc;
    long n, users = 0, every = 0, i;
    struct timespec t0, t1;
    int json = argc > 1 && strcmp(argv[1], "--raw-json") == 0;
    int raw = json || (argc > 1 && strcmp(argv[1], "--raw") == 0);
    int single = argc > 1 && strcmp(argv[1], "--single") == 0;
    long batch = single ? 1 : BATCH;

    if (raw || single) {
        argv++;
        argc--;
    }
    if (argc < 3 || argc > 5 || (n = arg(argv[2], 100000000)) < 0 ||
        (argc > 3 && (users = arg(argv[3], 100000000)) < 0) ||
        (argc > 4 && (every = arg(argv[4], 100000000)) < 0)) {
        fputs("usage: mkstore STORE N [USERS [EXPIRED_EVERY]]\n", stderr);
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (raw) {
        if (raw_fill(argv[1], n, users, every, json) != 0)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) +
                      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("created=%ld seconds=%.2f rate=%.0f\n", n, secs,
               secs > 0 ? (double)n / secs : 0.0);
        return 0;
    }
    sg_error_clear(&err);
    rc = sg_store_open(argv[1], NULL, &st, &err);
    for (i = 0; rc == SG_OK && i < n; i++) {
        sg_session *s = NULL;   /* Owned per iteration */
        char user[32];

        if (i % batch == 0) {
            if (i > 0)
                sg_store_end(st);
            if ((rc = sg_store_begin(st, &err)) != SG_OK)
                break;
        }
        if (users > 0)
            snprintf(user, sizeof user, "u%ld", i % users);
        rc = sg_session_create(st, users > 0 ? user : NULL,
                               "{\"cart\":[1,2,3],\"theme\":\"dark\"}", 0,
                               every > 0 && i % every == 0 ? 1 : 0, &s, &err);
        sg_session_free(s);
    }
    if (i > 0)
        sg_store_end(st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != SG_OK) {
        fprintf(stderr, "mkstore: %s (%s)\n", err.text, sg_strerror(rc));
        sg_store_close(st);
        return 1;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("created=%ld seconds=%.2f rate=%.0f\n", n, secs,
           secs > 0 ? (double)n / secs : 0.0);
    sg_store_close(st);
    return 0;
}
