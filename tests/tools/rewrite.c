/*
 * rewrite.c - rewrite a constant working set of sessions many times with
 * data of varying size, and report how big the store's files get, for the
 * size bound test (tests/store/size.bats) and the "store size after N
 * rewrites" bench row.
 *
 *   rewrite seed   STORE STATE N         create N sessions {"v":0}; STATE
 *                                        gets "ID 0" lines
 *   rewrite run    STORE STATE OPS [EVERY]
 *                                        OPS saves round the STATE sessions,
 *                                        each {"v":V+1,"pad":"x..."} with a
 *                                        pad of 0..2499 bytes; every EVERY
 *                                        saves (and at the end) print
 *                                        "ops=N files=BYTES live=BYTES"; each
 *                                        acknowledged save is appended to
 *                                        STATE.acks ("INDEX V", one write)
 *                                        and folded into STATE at the end
 *   rewrite verify STORE STATE           every STATE session loads with its
 *                                        acknowledged v (or one more: a save
 *                                        killed between its ack and STATE's
 *                                        rename); prints "ok N live=BYTES"
 *
 * files= is the size of PATH, PATH.wal, PATH.ckpt, PATH.lock, PATH.tmp and
 * the files a checkpoint is built in (PATH.ckpt.new, PATH.new);
 * live= the bytes of the records themselves (key plus JSON), the store's
 * live data.  A kill -9 of `run` at any moment leaves STATE plus
 * STATE.acks naming, for every session, a v that was acknowledged.  Exit 0 on success, 1 on a
 * failed call or a verify mismatch, 2 on usage errors.
 */
#include "sessgate.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAD_MAX 2500
#define IDLEN 36

typedef struct ent {
    char id[IDLEN + 1];
    long v;
} ent;

static unsigned long long files_size(const char *path)
{
    static const char *const sfx[] = { "", ".wal", ".ckpt", ".lock", ".tmp",
                                       ".ckpt.new", ".new" };
    unsigned long long total = 0;
    char buf[4096];
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        struct stat sb;
        if (snprintf(buf, sizeof buf, "%s%s", path, sfx[i]) < (int)sizeof buf &&
            stat(buf, &sb) == 0)
            total += (unsigned long long)sb.st_size;
    }
    return total;
}

static ent *load_state(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 64;
    ent *e = malloc(cap * sizeof *e);
    *n = 0;
    char id[IDLEN + 1];
    long v;
    while (e && fscanf(f, "%36s %ld", id, &v) == 2) {
        if (*n == cap) {
            ent *g = realloc(e, 2 * cap * sizeof *e);
            if (!g) {
                free(e);
                e = NULL;
                break;
            }
            e = g;
            cap *= 2;
        }
        snprintf(e[*n].id, sizeof e[*n].id, "%s", id);
        e[*n].v = v;
        (*n)++;
    }
    fclose(f);
    /* Then the acknowledgements since STATE was last written. */
    char ap[4096];
    if (e && snprintf(ap, sizeof ap, "%s.acks", path) < (int)sizeof ap &&
        (f = fopen(ap, "r")) != NULL) {
        unsigned long idx;
        while (fscanf(f, "%lu %ld", &idx, &v) == 2)
            if (idx < *n && v > e[idx].v)
                e[idx].v = v;
        fclose(f);
    }
    return e;
}

static int save_state(const char *path, const ent *e, size_t n)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s %ld\n", e[i].id, e[i].v);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    char ap[4096];
    if (snprintf(ap, sizeof ap, "%s.acks", path) < (int)sizeof ap)
        unlink(ap);
    return 0;
}

/* The live bytes: each session's record as the store keeps it, measured
 * as id plus the JSON of the session. */
static unsigned long long live_bytes(sg_store *st, const ent *e, size_t n)
{
    unsigned long long total = 0;
    for (size_t i = 0; i < n; i++) {
        sg_session *s = NULL;
        sg_error err;
        sg_error_clear(&err);
        if (sg_session_get(st, e[i].id, SG_GET_NOTOUCH, &s, &err) == SG_OK) {
            char *j = sg_session_data_json(s);
            total += IDLEN + (j ? strlen(j) : 0) + 120;  /* + the fixed fields */
            free(j);
        }
        sg_session_free(s);
    }
    return total;
}

static int fail(const char *what, sg_status rc, const sg_error *err)
{
    fprintf(stderr, "rewrite: %s: %s: %s\n", what, sg_strerror(rc), err->text);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        goto usage;
    const char *mode = argv[1], *store = argv[2], *statep = argv[3];
    sg_options opt;
    sg_options_init(&opt);
    opt.lock_timeout_ms = 30000;
    sg_store *st = NULL;
    sg_error err;
    sg_error_clear(&err);
    sg_status rc = sg_store_open(store, &opt, &st, &err);
    if (rc != SG_OK)
        return fail("open", rc, &err);
    int ret = 0;
    if (strcmp(mode, "seed") == 0 && argc == 5) {
        long n = strtol(argv[4], NULL, 10);
        ent *e = calloc((size_t)(n > 0 ? n : 1), sizeof *e);
        for (long i = 0; e && i < n && ret == 0; i++) {
            sg_session *s = NULL;
            rc = sg_session_create(st, NULL, "{\"v\":0}", 0, 0, &s, &err);
            if (rc != SG_OK)
                ret = fail("create", rc, &err);
            else
                snprintf(e[i].id, sizeof e[i].id, "%s", sg_session_id(s));
            sg_session_free(s);
        }
        if (!e || (ret == 0 && save_state(statep, e, (size_t)n) != 0)) {
            fprintf(stderr, "rewrite: cannot write %s\n", statep);
            ret = 1;
        }
        free(e);
    } else if (strcmp(mode, "run") == 0 && (argc == 5 || argc == 6)) {
        long ops = strtol(argv[4], NULL, 10);
        long every = argc == 6 ? strtol(argv[5], NULL, 10) : 0;
        size_t n = 0;
        ent *e = load_state(statep, &n);
        char *json = malloc(PAD_MAX + 64);
        if (!e || n == 0 || !json) {
            fprintf(stderr, "rewrite: no sessions in %s\n", statep);
            free(e);
            free(json);
            sg_store_close(st);
            return 2;
        }
        char ap[4096];
        int acks = snprintf(ap, sizeof ap, "%s.acks", statep) < (int)sizeof ap
                   ? open(ap, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
                   : -1;
        if (acks < 0) {
            fprintf(stderr, "rewrite: cannot open %s.acks\n", statep);
            free(e);
            free(json);
            sg_store_close(st);
            return 1;
        }
        /* Sizes from an LCG seeded by the writes so far, and the round
         * robin going on where the last run stopped: runs are
         * reproducible, and short runs still spread over every session. */
        unsigned long long done = 0;
        for (size_t i = 0; i < n; i++)
            done += (unsigned long long)e[i].v;
        unsigned long long seed = 88172645463325252ULL ^ (done * 2654435761ULL);
        for (long op = 0; op < ops && ret == 0; op++) {
            size_t idx = (size_t)((done + (unsigned long long)op) % n);
            ent *x = &e[idx];
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            int pad = (int)((seed >> 33) % PAD_MAX);
            int len = snprintf(json, PAD_MAX + 64, "{\"v\":%ld,\"pad\":\"", x->v + 1);
            memset(json + len, 'x', (size_t)pad);
            memcpy(json + len + pad, "\"}", 3);
            sg_session *s = NULL;
            rc = sg_session_get(st, x->id, SG_GET_NOTOUCH, &s, &err);
            if (rc == SG_OK)
                rc = sg_session_set_data(s, json, &err);
            if (rc == SG_OK)
                rc = sg_session_save(st, s, &err);
            sg_session_free(s);
            if (rc != SG_OK) {
                ret = fail("save", rc, &err);
                break;
            }
            x->v++;
            char line[64];
            int ll = snprintf(line, sizeof line, "%lu %ld\n",
                              (unsigned long)idx, x->v);
            if (write(acks, line, (size_t)ll) != ll) {
                fprintf(stderr, "rewrite: cannot write %s\n", ap);
                ret = 1;
            }
            if (every > 0 && (op + 1) % every == 0) {
                printf("ops=%ld files=%llu live=%llu\n", op + 1,
                       files_size(store), live_bytes(st, e, n));
                fflush(stdout);
            }
        }
        close(acks);
        if (save_state(statep, e, n) != 0) {
            fprintf(stderr, "rewrite: cannot write %s\n", statep);
            ret = 1;
        }
        if (ret == 0)
            printf("ops=%ld files=%llu live=%llu\n", ops, files_size(store),
                   live_bytes(st, e, n));
        free(json);
        free(e);
    } else if (strcmp(mode, "verify") == 0 && argc == 4) {
        size_t n = 0, ok = 0;
        ent *e = load_state(statep, &n);
        for (size_t i = 0; e && i < n; i++) {
            sg_session *s = NULL;
            sg_error_clear(&err);
            rc = sg_session_get(st, e[i].id, SG_GET_NOTOUCH, &s, &err);
            long v = -1;
            if (rc == SG_OK) {
                char *j = sg_session_data_json(s);
                const char *p = j ? strstr(j, "\"v\":") : NULL;
                if (p)
                    v = strtol(p + 4, NULL, 10);
                free(j);
            }
            sg_session_free(s);
            if (v == e[i].v || v == e[i].v + 1)
                ok++;
            else
                fprintf(stderr, "rewrite: %s: want v=%ld, store has %ld (%s)\n",
                        e[i].id, e[i].v, v, rc == SG_OK ? "ok" : err.text);
        }
        if (!e || ok != n)
            ret = 1;
        printf("ok %zu live=%llu files=%llu\n", ok,
               e ? live_bytes(st, e, n) : 0, files_size(store));
        free(e);
    } else {
        sg_store_close(st);
        goto usage;
    }
    sg_store_close(st);
    return ret;
usage:
    fprintf(stderr, "usage: rewrite seed|run|verify STORE STATE [N|OPS [EVERY]]\n");
    return 2;
}
