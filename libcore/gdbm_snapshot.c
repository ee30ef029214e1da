/*
 * gdbm_snapshot.c - the keys of a GDBM store as they were at one instant,
 * read with no lock held, for whole-store walks (walk.c).
 *
 * Why: a walk used to collect keys from PATH itself in chunks, releasing
 * the lock between them and resuming GDBM's iteration after the last key
 * seen.  A create that split the hash bucket the walk stood in, or a
 * delete that moved the keys after it in their probe run, made it miss
 * sessions that existed throughout the walk (tests/store/walksnap.bats
 * shows it).  Holding the lock for the whole collection instead keeps
 * every writer out for seconds on a store of a million sessions.
 *
 * The store's history needs no lock to be read (gdbm_fuzzy.c): PATH.ckpt
 * changes only by rename, and the log only grows except where it is cut,
 * which moves the lock page's log_epoch first.  Under any lock with no
 * change in flight, PATH holds exactly PATH.ckpt (or nothing, when there
 * is none and the log holds everything since PATH was created) plus every
 * record of the log.  So under the shared lock, for an instant, we open
 * PATH.ckpt and PATH.wal and note the log's length L and its epoch; then,
 * with no lock: the log's records before L give each key they touch its
 * last state (put or deleted); the checkpoint's keys not touched there,
 * plus the log's keys whose last record is a put, are the keys PATH had at
 * that instant.  If the log was cut meanwhile (log_epoch moved: a
 * checkpoint was swapped in) the bytes read may be gone, and we start
 * again from the new checkpoint.
 *
 * What a walk sees then: every key that existed at that instant and still
 * exists when its record is read, which includes every session that
 * existed throughout the walk; nothing twice (walk.c sorts the ids).
 *
 * No snapshot (SG_ENOTFOUND, the caller walks PATH in chunks as before):
 * a store with neither a checkpoint nor a log (written by an older
 * version, or by mkstore --raw, and not yet opened writable: the first
 * writable open gives it a checkpoint), a change in flight (a writer died:
 * the next writer rebuilds), a checkpoint or log this process may not
 * read or GDBM cannot open, or a log cut under us three times in a row.
 *
 * The snapshot is the store as its history has it.  A record written
 * into PATH behind the library's back is not in it; check walks the file
 * itself (walk.c), as that is its business.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_TRIES 3
#define SNAP_KEY_MAX 4096     /* longer keys: not a log we understand */

/* The last state of each key the log prefix touches: an open-addressing
 * hash table, keys owned. */
typedef struct touched {
    char **key;           /* NULL: empty slot */
    unsigned char *put;   /* 1: the last record is a put */
    size_t cap, n;        /* cap a power of two */
} touched;

static uint64_t key_hash(const char *k, size_t len)
{
    uint64_t h = 14695981039346656037ULL;     /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

static void touched_free(touched *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->key[i]);
    free(t->key);
    free(t->put);
    memset(t, 0, sizeof *t);
}

/* The slot of key (len bytes), or the empty slot where it would go. */
static size_t slot_of(const touched *t, const char *key, size_t len)
{
    size_t i = (size_t)key_hash(key, len) & (t->cap - 1);
    while (t->key[i] && (strlen(t->key[i]) != len ||
                         memcmp(t->key[i], key, len) != 0))
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int touched_grow(touched *t)
{
    touched g = { NULL, NULL, t->cap ? t->cap * 2 : 1024, t->n };
    g.key = calloc(g.cap, sizeof *g.key);
    g.put = calloc(g.cap, 1);
    if (!g.key || !g.put) {
        free(g.key);
        free(g.put);
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++)
        if (t->key[i]) {
            size_t j = slot_of(&g, t->key[i], strlen(t->key[i]));
            g.key[j] = t->key[i];
            g.put[j] = t->put[i];
        }
    free(t->key);
    free(t->put);
    *t = g;
    return 0;
}

/* Note that key's last record so far is a put (put = 1) or a delete. */
static int touched_set(touched *t, const char *key, size_t len, int put)
{
    if ((t->n + 1) * 2 > t->cap && touched_grow(t) < 0)
        return -1;
    size_t i = slot_of(t, key, len);
    if (!t->key[i]) {
        if (!(t->key[i] = malloc(len + 1)))
            return -1;
        memcpy(t->key[i], key, len);
        t->key[i][len] = '\0';
        t->n++;
    }
    t->put[i] = (unsigned char)put;
    return 0;
}

static int touched_has(const touched *t, const char *key, size_t len)
{
    return t->cap && t->key[slot_of(t, key, len)] != NULL;
}

/* Each key the log's records in [0, len) of fd touch, with its last
 * state.  Reads a piece at a time; only the keys are looked at (the
 * records were complete and checked when they were noted under a lock:
 * their values are skipped, not read).  0, -1 out of memory or an I/O
 * error (errno), 1 for a log that is not what we noted (cut under us). */
static int read_log(int fd, off_t len, touched *t)
{
    size_t cap = WAL_READ_PIECE;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    off_t off = 0;         /* the next record */
    off_t boff = 0;        /* the log offset of buf[0] */
    size_t have = 0;       /* bytes in buf */
    int r = 0;
    while (r == 0 && off < len) {
        wal_rec h;
        /* Header and key in buf, else refill from off (what is left of
         * the range, at most cap); a record's key always fits. */
        for (int pass = 0; r == 0; pass++) {
            off_t at = off - boff;
            int in = at + (off_t)sizeof h <= (off_t)have;
            if (in) {
                memcpy(&h, buf + at, sizeof h);
                in = h.klen <= SNAP_KEY_MAX &&
                     at + (off_t)(sizeof h + h.klen) <= (off_t)have;
            }
            if (in)
                break;
            if (pass > 0) {
                r = 1;     /* shorter than noted, or not a record */
                break;
            }
            off_t left = len - off;
            size_t want = left < (off_t)cap ? (size_t)left : cap;
            ssize_t n;
            do
                n = pread(fd, buf, want, off);
            while (n < 0 && errno == EINTR);
            if (n < 0)
                r = -1;
            boff = off;
            have = n > 0 ? (size_t)n : 0;
        }
        if (r != 0)
            break;
        uint64_t whole = sizeof h + (uint64_t)h.klen +
                         (h.vlen == WAL_DELETE ? 0 : h.vlen);
        if (h.magic != WAL_MAGIC || h.klen == 0 ||
            whole > (uint64_t)(len - off)) {
            r = 1;
            break;
        }
        if (touched_set(t, buf + (off - boff) + sizeof h, h.klen,
                        h.vlen != WAL_DELETE) < 0) {
            errno = ENOMEM;
            r = -1;
            break;
        }
        off += (off_t)whole;
    }
    free(buf);
    return r;
}

/* What the snapshot starts from, noted under the shared lock. */
typedef struct snap {
    int ckfd, walfd;      /* Owned; -1: none */
    uint64_t epoch;
    off_t loglen;
} snap;

static void snap_close(snap *s)
{
    if (s->ckfd >= 0)
        close(s->ckfd);
    if (s->walfd >= 0)
        close(s->walfd);
    s->ckfd = s->walfd = -1;
}

/* Open the checkpoint and the log and note the log's length and epoch,
 * under the shared lock.  SG_OK, SG_ENOTFOUND when there is nothing to
 * take a snapshot from (see the top), or an error. */
static sg_status note(sg_store *st, snap *s, sg_error *err)
{
    gdbm_be *b = be_of(st);
    s->ckfd = s->walfd = -1;
    s->epoch = 0;
    s->loglen = 0;
    sg_status rc = sgi_lock(st, SGI_SHARED, err);
    if (rc != SG_OK)
        return rc;
    struct stat sb;
    if (!b->page || __atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE)) {
        rc = SG_ENOTFOUND;
    } else {
        s->epoch = __atomic_load_n(&b->page->log_epoch, __ATOMIC_ACQUIRE);
        s->ckfd = open(b->ckptpath, O_RDONLY | O_CLOEXEC);
        s->walfd = open(b->walpath, O_RDONLY | O_CLOEXEC);
        /* One we may not read (a reader outside the store's group) or
         * cannot stat: walk the file instead. */
        if ((s->ckfd < 0 && errno != ENOENT) ||
            (s->walfd < 0 && errno != ENOENT) ||
            (s->walfd >= 0 && fstat(s->walfd, &sb) < 0))
            rc = SG_ENOTFOUND;
        else
            s->loglen = s->walfd >= 0 ? sb.st_size : 0;
        if (rc == SG_OK && s->ckfd < 0 && s->loglen == 0)
            rc = SG_ENOTFOUND;      /* no history: PATH is all there is */
    }
    sgi_unlock(st);
    if (rc != SG_OK)
        snap_close(s);
    return rc;
}

/* The keys of the checkpoint (fd) that the log did not touch, to fn;
 * *stop set when fn asked to stop.  SG_ENOTFOUND, fn not called, when
 * GDBM cannot open it. */
static sg_status ckpt_keys(gdbm_be *b, int fd, const touched *t,
                           sgi_key_fn fn, void *arg, int *stop,
                           sg_error *err)
{
    /* A checkpoint GDBM cannot open (fn not called yet): walk the file
     * instead. */
    int dfd = dup(fd);
    if (dfd < 0)
        return SG_ENOTFOUND;
    gdbm_errno = GDBM_NO_ERROR;
    GDBM_FILE db = gdbm_fd_open(dfd, b->ckptpath, 0, GDBM_READER |
                                GDBM_NOLOCK | GDBM_CLOERROR, NULL);
    if (!db)
        return SG_ENOTFOUND;
    sg_status rc = SG_OK;
    datum k = gdbm_firstkey(db);
    while (k.dptr) {
        char *key = realloc(k.dptr, (size_t)k.dsize + 1);
        if (!key) {
            free(k.dptr);
            rc = sgi_oom(err, "store", b->dbpath);
            break;
        }
        key[k.dsize] = '\0';
        if (!touched_has(t, key, (size_t)k.dsize) &&
            fn(key, (size_t)k.dsize, arg)) {
            free(key);
            *stop = 1;
            break;
        }
        datum cur = { key, k.dsize };
        gdbm_errno = GDBM_NO_ERROR;
        k = gdbm_nextkey(db, cur);
        free(key);
    }
    if (rc == SG_OK && !*stop && gdbm_errno != GDBM_ITEM_NOT_FOUND)
        rc = sgi_gdbm_fail(b, err, "iterate the checkpoint");
    gdbm_close(db);
    return rc;
}

/* See the top.  Caller holds no lock. */
sg_status sgi_gdbm_keys_snapshot(sg_store *st, sgi_key_fn fn, void *arg,
                                 sg_error *err)
{
    gdbm_be *b = be_of(st);
    for (int tries = 0; tries < SNAP_TRIES; tries++) {
        snap s;
        sg_status rc = note(st, &s, err);
        if (rc != SG_OK)
            return rc;
        if (sgi_test_walk_pause)
            sgi_test_walk_pause(st);
        touched t = { NULL, NULL, 0, 0 };
        int r = s.walfd >= 0 ? read_log(s.walfd, s.loglen, &t) : 0;
        /* A cut moves the epoch before it truncates: unchanged now, so
         * nothing we read had been cut. */
        if (r == 0 && __atomic_load_n(&b->page->log_epoch, __ATOMIC_ACQUIRE)
                      != s.epoch)
            r = 1;
        if (r < 0) {
            rc = errno == ENOMEM ? sgi_oom(err, "store", b->dbpath)
                                 : sgi_gdbm_sys_fail(b, err, "cannot read",
                                                     b->walpath, errno);
            touched_free(&t);
            snap_close(&s);
            return rc;
        }
        if (r == 1) {
            touched_free(&t);
            snap_close(&s);
            continue;
        }
        int stop = 0;
        if (s.ckfd >= 0)
            rc = ckpt_keys(b, s.ckfd, &t, fn, arg, &stop, err);
        for (size_t i = 0; rc == SG_OK && !stop && i < t.cap; i++)
            if (t.key[i] && t.put[i])
                stop = fn(t.key[i], strlen(t.key[i]), arg);
        touched_free(&t);
        snap_close(&s);
        return rc;
    }
    return SG_ENOTFOUND;
}
