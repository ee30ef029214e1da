/*
 * storm.c - a writer that creates and updates sessions as fast as it can
 * until it is killed, for the kill -9 test (tests/store/kill.bats).
 *
 *   storm STORE ACKFILE
 *
 * Each session's data is {"v":N,"pad":"x..."}; v only grows.  Operations
 * are a random mix of create (v 0), load + save (v+1) and atomic update
 * (v+1), with a random pad of 0..3000 bytes so that records move and the
 * GDBM file keeps growing (a writer killed while the file grows is what
 * leaves a store needing recovery).
 *
 * The durability contract under test is "a write that returned SG_OK
 * survives kill -9 of any process at any moment".  So the line "ID V" is
 * appended to ACKFILE with one write(2) only AFTER the library returned
 * SG_OK: every acknowledged line is a promise the store must keep.  A kill
 * between the SG_OK and the write only loses an acknowledgement, which is
 * allowed.  The verifier ignores a last line without its newline.
 *
 * Exits 3 on any unexpected library error (the test then fails with the
 * message); otherwise it runs until killed.
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

#define PAD_MAX 3000

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: fast, good enough to pick operations. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static void die(const char *what, sg_status rc, const sg_error *err)
{
    fprintf(stderr, "storm: %s: %s (%s)\n", what, sg_strerror(rc), err->text);
    exit(3);
}

/* Write all of buf to fd, retrying short writes. */
static void ack(int fd, const char *id, long long v)
{
    char line[SG_ID_LEN + 32];
    int n = snprintf(line, sizeof line, "%s %lld\n", id, v);
    const char *p = line;

    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("storm: ack write");
            exit(3);
        }
        p += w;
        n -= (int)w;
    }
}

/* New: data JSON text {"v":v,"pad":"xxx"} with a random pad; free(). */
static char *make_data(long long v)
{
    size_t pad = rnd() % (PAD_MAX + 1);
    char *buf = malloc(pad + 64);
    int n;

    if (!buf) {
        fputs("storm: out of memory\n", stderr);
        exit(3);
    }
    n = snprintf(buf, 64, "{\"v\":%lld,\"pad\":\"", v);
    memset(buf + n, 'x', pad);
    strcpy(buf + n + pad, "\"}");
    return buf;
}

static long long data_v(const sg_session *s)
{
    char *text = sg_session_data_json(s);   /* Owned here */
    json_t *root, *v;
    long long out = -1;

    if (!text)
        return -1;
    root = json_loads(text, 0, NULL);       /* Owned here */
    free(text);
    v = root ? json_object_get(root, "v") : NULL;
    if (json_is_integer(v))
        out = json_integer_value(v);
    json_decref(root);
    return out;
}

/* sg_session_update callback: v += 1; *arg gets the new v. */
static sg_status bump(sg_session *s, void *arg, sg_error *err)
{
    long long v = data_v(s);
    char *data;
    sg_status rc;

    if (v < 0)
        return SG_EINVAL;
    data = make_data(v + 1);
    rc = sg_session_set_data(s, data, err);
    free(data);
    *(long long *)arg = v + 1;
    return rc;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;                 /* Owned for the process's life */
    char (*ids)[SG_ID_LEN + 1] = NULL;   /* Owned: ids this run created */
    size_t nids = 0, cap = 0;
    sg_error err;
    sg_status rc;
    int fd;

    if (argc != 3) {
        fputs("usage: storm STORE ACKFILE\n", stderr);
        return 2;
    }
    rng_state = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
    fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(argv[2]);
        return 2;
    }
    sg_error_clear(&err);
    rc = sg_store_open(argv[1], NULL, &st, &err);
    if (rc != SG_OK)
        die("open", rc, &err);

    for (;;) {
        unsigned op = nids < 4 ? 0 : rnd() % 4;
        sg_session *s = NULL;            /* Owned per iteration */
        char *data;
        long long v;

        sg_error_clear(&err);
        if (op == 0) {
            data = make_data(0);
            rc = sg_session_create(st, NULL, data, 0, 0, &s, &err);
            free(data);
            if (rc != SG_OK)
                die("create", rc, &err);
            if (nids == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                void *p = realloc(ids, ncap * sizeof *ids);
                if (!p) {
                    fputs("storm: out of memory\n", stderr);
                    return 3;
                }
                ids = p;
                cap = ncap;
            }
            memcpy(ids[nids++], sg_session_id(s), SG_ID_LEN + 1);
            ack(fd, sg_session_id(s), 0);
            sg_session_free(s);
        } else if (op <= 2) {
            const char *id = ids[rnd() % nids];

            rc = sg_session_get(st, id, SG_GET_NOTOUCH, &s, &err);
            if (rc != SG_OK)
                die("get", rc, &err);
            v = data_v(s) + 1;
            data = make_data(v);
            rc = sg_session_set_data(s, data, &err);
            free(data);
            if (rc == SG_OK)
                rc = sg_session_save(st, s, &err);
            if (rc != SG_OK)
                die("save", rc, &err);
            ack(fd, id, v);
            sg_session_free(s);
        } else {
            const char *id = ids[rnd() % nids];

            v = -1;
            rc = sg_session_update(st, id, bump, &v, &err);
            if (rc != SG_OK)
                die("update", rc, &err);
            ack(fd, id, v);
        }
    }
}
