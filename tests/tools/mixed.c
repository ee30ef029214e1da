/*
 * mixed.c - readers and writers sharing one store for a bounded time, for
 * the multi-process consistency test (tests/store/concurrency.bats).
 *
 *   mixed writer STORE SECONDS ACKFILE
 *   mixed reader STORE SECONDS
 *
 * Every session's data is {"v":N,"w":N} (two copies of one counter).  A
 * writer creates sessions (v 0) and increments v and w together, on its own
 * sessions and on random sessions of the other writers, through both write
 * paths: atomic sg_session_update and optimistic load + save (a conflict is
 * counted, not acknowledged).  After each SG_OK it appends "ID V" to
 * ACKFILE, so afterwards `verify --exact` can demand that each session's v
 * equals the number of acknowledged increments: a lost update between two
 * writers, or a reader's touch that wrote back an old copy, shows up there.
 *
 * A reader opens its store with a 1 s touch interval (so its gets write
 * `accessed` now and then, racing the writers) and checks what it sees:
 * every listed session loads, v == w, and neither v nor the version ever
 * goes back between two loads of the same id, nor the live count between
 * two counts (there are no deletes).  It prints "reads=N errors=E" and
 * exits 1 when it saw anything wrong.
 */
#include "sessgate.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, sg_status rc, const sg_error *err)
{
    fprintf(stderr, "mixed[%d]: %s: %s (%s)\n", (int)getpid(), what,
            sg_strerror(rc), err->text);
    exit(3);
}

/* Read data.v and data.w; both -1 when absent. */
static void data_vw(const sg_session *s, long long *v, long long *w)
{
    char *text = sg_session_data_json(s);   /* Owned here */
    json_t *root, *jv, *jw;

    *v = *w = -1;
    if (!text)
        return;
    root = json_loads(text, 0, NULL);       /* Owned here */
    free(text);
    jv = root ? json_object_get(root, "v") : NULL;
    jw = root ? json_object_get(root, "w") : NULL;
    if (json_is_integer(jv))
        *v = json_integer_value(jv);
    if (json_is_integer(jw))
        *w = json_integer_value(jw);
    json_decref(root);
}

static sg_status set_vw(sg_session *s, long long v, sg_error *err)
{
    char buf[80];

    snprintf(buf, sizeof buf, "{\"v\":%lld,\"w\":%lld}", v, v);
    return sg_session_set_data(s, buf, err);
}

static void ack(int fd, const char *id, long long v)
{
    char line[SG_ID_LEN + 32];
    int n = snprintf(line, sizeof line, "%s %lld\n", id, v);

    /* One short write to an O_APPEND file: whole or nothing here. */
    if (write(fd, line, (size_t)n) != n) {
        perror("mixed: ack write");
        exit(3);
    }
}

/* sg_session_update callback: v = w = v + 1; *arg gets the new v. */
static sg_status bump(sg_session *s, void *arg, sg_error *err)
{
    long long v, w;

    data_vw(s, &v, &w);
    if (v < 0 || v != w)
        return SG_EINVAL;
    *(long long *)arg = v + 1;
    return set_vw(s, v + 1, err);
}

/* New: a snapshot of all live ids, or NULL on error (reported). */
static sg_list *snapshot(sg_store *st)
{
    sg_list *l = NULL;
    sg_error err;
    sg_status rc;

    sg_error_clear(&err);
    rc = sg_store_list(st, NULL, &l, &err);
    if (rc != SG_OK)
        die("list", rc, &err);
    return l;
}

static int writer(sg_store *st, double end, const char *ackpath)
{
    char (*own)[SG_ID_LEN + 1] = NULL;   /* Owned: ids this writer made */
    size_t nown = 0, cap = 0;
    sg_list *all = NULL;                 /* Owned: refreshed snapshot */
    unsigned long ops = 0, creates = 0, updates = 0, saves = 0, conflicts = 0;
    int fd = open(ackpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        perror(ackpath);
        return 2;
    }
    while (now_s() < end) {
        unsigned op = nown == 0 ? 0 : rnd() % 10;
        sg_session *s = NULL;   /* Owned per iteration */
        sg_error err;
        sg_status rc;
        long long v, w;

        sg_error_clear(&err);
        if (ops++ % 50 == 0) {
            sg_list_free(all);
            all = snapshot(st);
        }
        if (op < 2) {
            rc = sg_session_create(st, NULL, "{\"v\":0,\"w\":0}", 0, 0, &s, &err);
            if (rc != SG_OK)
                die("create", rc, &err);
            if (nown == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *p = realloc(own, ncap * sizeof *own);
                if (!p) {
                    fputs("mixed: out of memory\n", stderr);
                    return 3;
                }
                own = p;
                cap = ncap;
            }
            memcpy(own[nown++], sg_session_id(s), SG_ID_LEN + 1);
            ack(fd, sg_session_id(s), 0);
            sg_session_free(s);
            creates++;
            continue;
        }
        /* Ops 2..5 and 8: own sessions; 6..7 and 9: anyone's. */
        const char *id = own[rnd() % nown];
        if ((op == 6 || op == 7 || op == 9) && all && sg_list_count(all) > 0)
            id = sg_list_id(all, rnd() % sg_list_count(all));
        if (op <= 7) {
            v = -1;
            rc = sg_session_update(st, id, bump, &v, &err);
            if (rc != SG_OK)
                die("update", rc, &err);
            ack(fd, id, v);
            updates++;
        } else {
            rc = sg_session_get(st, id, SG_GET_NOTOUCH, &s, &err);
            if (rc != SG_OK)
                die("get", rc, &err);
            data_vw(s, &v, &w);
            rc = set_vw(s, v + 1, &err);
            if (rc == SG_OK)
                rc = sg_session_save(st, s, &err);
            sg_session_free(s);
            if (rc == SG_OK) {
                ack(fd, id, v + 1);
                saves++;
            } else if (rc == SG_ECONFLICT) {
                conflicts++;
            } else {
                die("save", rc, &err);
            }
        }
    }
    printf("creates=%lu updates=%lu saves=%lu conflicts=%lu\n", creates,
           updates, saves, conflicts);
    sg_list_free(all);
    free(own);
    close(fd);
    return 0;
}

static int reader(sg_store *st, double end)
{
    sg_list *all = NULL;   /* Owned: refreshed snapshot */
    unsigned long reads = 0, errors = 0;
    size_t last_count = 0;

    while (now_s() < end) {
        sg_session *a = NULL, *b = NULL;   /* Owned per iteration */
        sg_error err;
        sg_status rc;
        const char *id;
        long long va, wa, vb, wb;

        sg_error_clear(&err);
        if (reads % 100 == 0) {
            size_t n = 0;

            sg_list_free(all);
            all = snapshot(st);
            rc = sg_store_count(st, NULL, &n, &err);
            if (rc != SG_OK)
                die("count", rc, &err);
            if (n < last_count) {
                fprintf(stderr, "mixed reader: live count went back %zu -> %zu\n",
                        last_count, n);
                errors++;
            }
            last_count = n;
        }
        reads++;
        if (sg_list_count(all) == 0)
            continue;
        id = sg_list_id(all, rnd() % sg_list_count(all));
        rc = sg_session_get(st, id, 0, &a, &err);
        if (rc == SG_OK)
            rc = sg_session_get(st, id, 0, &b, &err);
        if (rc != SG_OK) {
            fprintf(stderr, "mixed reader: get %s: %s (%s)\n", id,
                    sg_strerror(rc), err.text);
            errors++;
        } else {
            data_vw(a, &va, &wa);
            data_vw(b, &vb, &wb);
            if (va < 0 || va != wa || vb != wb) {
                fprintf(stderr, "mixed reader: %s: torn data v=%lld w=%lld\n",
                        id, va, wa);
                errors++;
            }
            if (vb < va || sg_session_version(b) < sg_session_version(a)) {
                fprintf(stderr, "mixed reader: %s went back: v %lld -> %lld, "
                        "version %llu -> %llu\n", id, va, vb,
                        (unsigned long long)sg_session_version(a),
                        (unsigned long long)sg_session_version(b));
                errors++;
            }
        }
        sg_session_free(a);
        sg_session_free(b);
    }
    sg_list_free(all);
    printf("reads=%lu errors=%lu\n", reads, errors);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;   /* Owned: closed before exit */
    sg_options opt;
    sg_error err;
    sg_status rc;
    char *endp;
    long secs;
    int is_writer, ret;

    if (argc < 4 || (strcmp(argv[1], "writer") == 0 && argc != 5) ||
        (strcmp(argv[1], "reader") == 0 && argc != 4) ||
        (strcmp(argv[1], "writer") != 0 && strcmp(argv[1], "reader") != 0)) {
        fputs("usage: mixed writer STORE SECONDS ACKFILE | mixed reader STORE SECONDS\n",
              stderr);
        return 2;
    }
    is_writer = strcmp(argv[1], "writer") == 0;
    errno = 0;
    secs = strtol(argv[3], &endp, 10);
    if (errno || endp == argv[3] || *endp || secs < 1 || secs > 600) {
        fputs("mixed: SECONDS must be 1..600\n", stderr);
        return 2;
    }
    rng_state = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
    sg_options_init(&opt);
    opt.lock_timeout_ms = 30000;
    if (!is_writer)
        opt.touch_interval = 1;
    sg_error_clear(&err);
    rc = sg_store_open(argv[2], &opt, &st, &err);
    if (rc != SG_OK)
        die("open", rc, &err);
    if (is_writer)
        ret = writer(st, now_s() + (double)secs, argv[4]);
    else
        ret = reader(st, now_s() + (double)secs);
    sg_store_close(st);
    return ret;
}
