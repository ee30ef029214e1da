/*
 * backend_gdbm.c - the GDBM backend: one GDBM file shared by many
 * processes, serialised by flock() on a lock file, made crash-safe by a
 * write-ahead log and a checkpoint of our own.  This file holds the
 * backend proper (open, close and the operations of backend.h); each
 * mechanism under it has a file of its own, listed in gdbm_be.h.
 *
 * Files, for a store at PATH:
 *   PATH        the GDBM file every read goes to (gdbm_file.c)
 *   PATH.lock   the flock target; its first page is mmap'ed shared and
 *               holds a write counter and a "dirty" flag (gdbm_lockpage.c)
 *   PATH.wal    every change since the last checkpoint, appended
 *               (gdbm_wal.c)
 *   PATH.ckpt   a copy of PATH taken while it was known to be clean
 *               (gdbm_checkpoint.c)
 *
 * A change (change() below) is logged first, then made in GDBM, with the
 * lock page's dirty flag up in between: see gdbm_wal.c for why that makes
 * every acknowledged change survive a kill -9 anywhere.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sg_status g_open(sg_store *st, const char *location, sg_error *err);
/* The write counter in the lock page (memo.c): shared memory, no syscall. */
static int g_stamp(sg_store *st, uint64_t *out)
{
    gdbm_be *b = be_of(st);

    if (!b || !b->page)
        return 0;
    *out = __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE);
    return 1;
}

static void g_close(sg_store *st);
/* For a read-only handle: do, through a short-lived writable handle on the
 * same store, what only a writer may (recreate a deleted lock file, rebuild
 * after a writer died mid-change), then let the read-only handle go on.
 * An operator's first `sessgatectl list` after an incident used to fail
 * ("open the store writable once") until some writer came along.  Without
 * write access the error says what is wrong and who can fix it (`why`:
 * what needed the writer).
 * Caller holds no lock (the writable open takes the exclusive one). */
sg_status sgi_gdbm_recover_writable(gdbm_be *b, const char *why, sg_error *err)
{
    sg_store w = *b->st;
    w.be_data = NULL;
    w.opt.readonly = 0;
    w.lock_mode = 0;
    w.lock_depth = 0;
    w.begin_depth = 0;
    w.recoveries = 0;
    sg_error werr = { 0 };
    sg_status rc = g_open(&w, b->dbpath, &werr);
    if (rc == SG_OK) {
        b->st->recoveries += w.recoveries;
        g_close(&w);
        return SG_OK;
    }
    int e = werr.sys_errno;
    if (e == EACCES || e == EPERM || e == EROFS)
        return sgi_err(err, SG_ESTORE, e, "store %s: %s; only a writer can "
                       "fix that, and this user cannot write the store (%s): "
                       "run sessgatectl check --repair as its owner",
                       b->dbpath, why, strerror(e));
    if (err && err->code == SG_OK)
        *err = werr;
    return rc;
}

/* ---------------------------------------------------------- operations */

static sg_status g_fetch(sg_store *st, const char *key, char **val,
                         size_t *len, sg_error *err)
{
    gdbm_be *b = be_of(st);
    datum k = { (char *)key, (int)strlen(key) };
    gdbm_errno = GDBM_NO_ERROR;
    datum v = gdbm_fetch(b->db, k);
    if (!v.dptr) {
        if (gdbm_errno == GDBM_ITEM_NOT_FOUND)
            return SG_ENOTFOUND;
        return sgi_gdbm_fail(b, err, "fetch");
    }
    /* Hand out a NUL-terminated copy: records are text. */
    char *p = realloc(v.dptr, (size_t)v.dsize + 1);
    if (!p) {
        free(v.dptr);
        return sgi_oom(err, "store", b->dbpath);
    }
    p[v.dsize] = '\0';
    *val = p;
    *len = (size_t)v.dsize;
    return SG_OK;
}

/* Whether b->db holds the change: key has val (len bytes), or is gone
 * (val NULL). */
static int change_landed(gdbm_be *b, const char *key, const char *val,
                         size_t len)
{
    datum k = { (char *)key, (int)strlen(key) };
    gdbm_errno = GDBM_NO_ERROR;
    datum v = gdbm_fetch(b->db, k);
    if (!v.dptr)
        return !val && gdbm_errno == GDBM_ITEM_NOT_FOUND;
    int same = val && (size_t)v.dsize == len && memcmp(v.dptr, val, len) == 0;
    free(v.dptr);
    return same;
}

/* GDBM failed on the change to key (val NULL: delete) for lack of room
 * (gerr: its error); dbst and wal_before are PATH's stat and the log's
 * length before the change.  1 when that settled it, with *rc SG_OK (the
 * change is made after all) or gerr's code (both files cut back, the
 * store clean again); 0 when neither could be done. */
static int undo_full(gdbm_be *b, const char *key, const char *val,
                     size_t len, const struct stat *dbst, off_t wal_before,
                     sg_error *gerr, sg_status *rc, sg_error *err)
{
    /* Out of space happens only while GDBM extends the file, and GDBM
     * writes new space before it rewrites anything referenced (buckets,
     * directory, header)... except the last write of all: 1.23 pads the
     * file out to its last block after writing the header.  That write
     * fails past a file size limit that is not a multiple of the block
     * size (ulimit -f counts KiB), and then the change is whole: cutting
     * the file back cut off the record the bucket and header now point
     * to, and every later read failed ("Malformed hash table").  So first
     * look: a fresh handle that sees the change means it is made. */
    sgi_gdbm_close_db(b);
    if (sgi_gdbm_open_db(b, NULL) == SG_OK &&
        !gdbm_needs_recovery(b->db) &&
        change_landed(b, key, val, len)) {
        __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
        *rc = SG_OK;
        return 1;
    }
    /* Otherwise nothing referenced changed: cutting the file and the log
     * back to their sizes before this change restores the last consistent
     * state.  A clean error. */
    sgi_gdbm_close_db(b);
    if (truncate(b->dbpath, dbst->st_size) == 0 &&
        wal_before >= 0 && ftruncate(b->walfd, wal_before) == 0 &&
        sgi_gdbm_open_db(b, NULL) == SG_OK &&
        !gdbm_needs_recovery(b->db)) {
        __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
        if (err && err->code == SG_OK)
            *err = *gerr;
        *rc = gerr->code;
        return 1;
    }
    return 0;
}

/* Append the change to the log, dirty flag up first.  On failure the flag
 * comes down again when nothing was appended. */
static sg_status log_change(gdbm_be *b, const char *key, const char *val,
                            size_t len, off_t *wal_before, sg_error *err)
{
    __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
    *wal_before = -1;
    /* A local error: best-effort callers pass err NULL (the undo of a
     * rotation, index cleanup), and deciding on *err left the flag up
     * after a clean failure, so every read-only handle then refused to
     * read ("a writer died mid-write") and the next writer had a rebuild
     * to do first, on a disk with no room for one. */
    sg_error werr = { 0 };
    sg_status rc = sgi_gdbm_wal_append(b, key, val, len, wal_before, &werr);
    if (rc != SG_OK) {
        /* Nothing reached GDBM: if the log is back at its old length (a
         * failed cut leaves it longer), the store is still clean. */
        struct stat ws;
        if (*wal_before >= 0 && fstat(b->walfd, &ws) == 0 &&
            ws.st_size == *wal_before)
            __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
        if (err && err->code == SG_OK)
            *err = werr;
    }
    return rc;
}

/* Log a change, then make it in GDBM, with the dirty flag up in between.
 * val NULL: delete. */
static sg_status change(sg_store *st, const char *key, const char *val,
                        size_t len, sg_error *err)
{
    gdbm_be *b = be_of(st);
    if (st->opt.readonly)
        return sgi_err(err, SG_ESTORE, EROFS, "store %s: opened read-only",
                       b->dbpath);
    if (b->salvage && !sgi_gdbm_file_exists(b->ckptpath))
        return sgi_err(err, SG_ESTORE, 0, "store %s: %s, with no "
                       "checkpoint or log to rebuild it from (run sessgatectl "
                       "check --repair to salvage what GDBM can read)",
                       b->dbpath, b->truncated ? "truncated (shorter than its "
                       "header says)" : "damaged");
    b->salvage = 0;   /* a checkpoint exists now: repaired since */
    if (!b->bumped) {
        b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
        b->bumped = 1;
    }
    b->wrote = 1;
    b->writer_reads = 0;
    struct stat dbst;
    if (fstat(gdbm_fdesc(b->db), &dbst) < 0)
        return sgi_gdbm_sys_fail(b, err, "stat", b->dbpath, errno);
    off_t wal_before;
    sg_status rc = log_change(b, key, val, len, &wal_before, err);
    if (rc != SG_OK)
        return rc;
    datum k = { (char *)key, (int)strlen(key) };
    int r;
    gdbm_errno = GDBM_NO_ERROR;
    if (val) {
        datum v = { (char *)val, (int)len };
        r = gdbm_store(b->db, k, v, GDBM_REPLACE);
    } else {
        r = gdbm_delete(b->db, k);
        if (r != 0 && gdbm_errno == GDBM_ITEM_NOT_FOUND) {
            __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
            return SG_ENOTFOUND;
        }
    }
    if (r == 0) {
        __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
        return SG_OK;
    }
    sg_error gerr = { 0 };
    sgi_gdbm_fail(b, &gerr, val ? "write" : "delete");
    int e = gerr.sys_errno;
    if ((e == ENOSPC || e == EFBIG || e == EDQUOT) &&
        undo_full(b, key, val, len, &dbst, wal_before, &gerr, &rc, err))
        return rc;
    /* GDBM may be half-changed.  The change is in the log, so a rebuild
     * makes the store whole and includes it: then it succeeded.  If the
     * rebuild fails too, the flag stays up and the next locker rebuilds;
     * the caller gets the error. */
    if (sgi_gdbm_rebuild(b, NULL, NULL) == SG_OK)
        return SG_OK;
    if (err && err->code == SG_OK)
        *err = gerr;
    return gerr.code;
}

/* expire_at is not needed: GDBM keeps every value until a delete (purge
 * removes dead sessions). */
static sg_status g_put(sg_store *st, const char *key, const char *val,
                       size_t len, int64_t expire_at, sg_error *err)
{
    (void)expire_at;
    return change(st, key, val, len, err);
}

static sg_status g_del(sg_store *st, const char *key, sg_error *err)
{
    return change(st, key, NULL, 0, err);
}

/* k's bytes made a NUL-terminated string in place (GDBM's keys are not
 * terminated); NULL, and k freed, when out of memory. */
static char *key_text(datum k)
{
    char *key = realloc(k.dptr, (size_t)k.dsize + 1);
    if (!key) {
        free(k.dptr);
        return NULL;
    }
    key[k.dsize] = '\0';
    return key;
}

/* Walk every key.  The callback must not change the store (GDBM's
 * iteration order breaks under deletes): collect, then act. */
static sg_status g_keys(sg_store *st, sgi_key_fn fn, void *arg, sg_error *err)
{
    gdbm_be *b = be_of(st);
    gdbm_errno = GDBM_NO_ERROR;
    datum k = gdbm_firstkey(b->db);
    while (k.dptr) {
        char *key = key_text(k);
        if (!key)
            return sgi_oom(err, "store", b->dbpath);
        int stop = fn(key, (size_t)k.dsize, arg);
        if (stop) {
            free(key);
            return SG_OK;
        }
        datum cur = { key, k.dsize };
        k = gdbm_nextkey(b->db, cur);
        free(key);
    }
    /* A walk that got to the end ends with GDBM_ITEM_NOT_FOUND.  No key
     * and GDBM_NO_ERROR is GDBM failing without saying so (its bucket
     * cache could not grow): taking that for the end made list, count,
     * purge, stats and check see part of the store, or none of it, and
     * report success (check --repair then emptied every user index). */
    if (gdbm_errno != GDBM_ITEM_NOT_FOUND)
        return sgi_gdbm_fail(b, err, "iterate");
    return SG_OK;
}

/* One chunk of a walk that releases the lock between chunks (store.c).
 * GDBM walks its hash buckets in directory order and each bucket slot by
 * slot, and resumes after a given key by finding that key again.  So while
 * nobody writes, a walk resumed after the last key of the previous chunk
 * is exactly the walk in one go.  Writes in between can move keys: a
 * create may split a bucket, a delete moves keys back within one; only
 * keys of the bucket the walk stands in are affected, so a walk may then
 * miss or repeat a few sessions (store.c drops repeats; the man page says
 * what a walk promises).  If the key to resume after was deleted, the walk
 * resumes after the newest of the last CURSOR_KEEP keys that still
 * exists, repeating the few after it, and only if every one of them has
 * gone does it start again from the first key (counted in restarts; after
 * a few, the rest is walked in one chunk so that the walk ends). */
static sg_status g_keys_chunk(sg_store *st, sgi_cursor *c, size_t max,
                              sgi_key_fn fn, void *arg, sg_error *err)
{
    gdbm_be *b = be_of(st);
    datum k = { NULL, 0 };
    gdbm_errno = GDBM_NO_ERROR;
    if (c->restarts > 3)
        max = SIZE_MAX;
    if (!c->started) {
        c->started = 1;
        k = gdbm_firstkey(b->db);
    } else {
        int i;
        for (i = 0; i < c->nlast; i++) {
            datum cur = { c->last[i], (int)strlen(c->last[i]) };
            if (gdbm_exists(b->db, cur)) {
                gdbm_errno = GDBM_NO_ERROR;
                k = gdbm_nextkey(b->db, cur);
                break;
            }
        }
        if (i == c->nlast) {
            c->restarts++;
            gdbm_errno = GDBM_NO_ERROR;
            k = gdbm_firstkey(b->db);
        }
    }
    for (size_t n = 0; k.dptr; n++) {
        char *key = key_text(k);
        if (!key)
            return sgi_oom(err, "store", b->dbpath);
        int stop = fn(key, (size_t)k.dsize, arg);
        /* Remember it (the cursor owns it from here). */
        if (c->nlast == SGI_CURSOR_KEEP)
            free(c->last[--c->nlast]);
        memmove(c->last + 1, c->last, (size_t)c->nlast * sizeof *c->last);
        c->last[0] = key;
        c->nlast++;
        if (stop) {
            c->done = 1;
            return SG_OK;
        }
        if (n + 1 >= max)
            return SG_OK;
        datum cur = { key, k.dsize };
        gdbm_errno = GDBM_NO_ERROR;
        k = gdbm_nextkey(b->db, cur);
    }
    /* As in g_keys: no key and no GDBM_ITEM_NOT_FOUND is a failure. */
    if (gdbm_errno != GDBM_ITEM_NOT_FOUND)
        return sgi_gdbm_fail(b, err, "iterate");
    c->done = 1;
    return SG_OK;
}

/* check --repair on a store with no history of our own: salvage what GDBM
 * can still read (of a truncated file too).  Caller holds the exclusive
 * lock. */
static sg_status salvage(gdbm_be *b, sg_check_report *rep, sg_error *err)
{
    b->salvaging = 1;
    sg_status rc = sgi_gdbm_open_db(b, err);
    b->salvaging = 0;
    gdbm_recovery rcvr;
    memset(&rcvr, 0, sizeof rcvr);
    /* GDBM's own figures miss records it drops without noticing
     * (measured: a torn data block lost 3 of 20 sessions with
     * failed_keys 0, and recovered_keys counted some twice), so the
     * report compares the number of keys before and after instead,
     * where the damaged file can still count them. */
    gdbm_count_t before = 0, after = 0;
    int counted = rc == SG_OK && gdbm_count(b->db, &before) == 0;
    /* GDBM_RCVR_BACKUP: the salvage replaces the file with what it
     * could read; the damaged original stays beside it as PATH.~N~
     * for anyone who can do better. */
    if (rc == SG_OK && gdbm_recover(b->db, &rcvr, GDBM_RCVR_FORCE |
                                    GDBM_RCVR_BACKUP) != 0)
        rc = sgi_gdbm_fail(b, err, "recover");
    if (rc == SG_OK && gdbm_count(b->db, &after) != 0)
        after = rcvr.recovered_keys;
    size_t lost = counted && before > after ? (size_t)(before - after)
                                            : rcvr.failed_keys;
    if (rc == SG_OK && after == 0 && (lost > 0 || rcvr.failed_buckets > 0)) {
        /* Nothing read back: an empty store is no repair.  Put the
         * damaged file back (GDBM renamed it to the backup name) and
         * say so, as for a file GDBM cannot open at all. */
        sgi_gdbm_close_db(b);
        if (rcvr.backup_name)
            (void)rename(rcvr.backup_name, b->dbpath);
        b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: damaged, with no "
                     "checkpoint or log, and GDBM's salvage read no record "
                     "back (%zu keys lost, %zu bad buckets); left as it "
                     "was (restore a backup, or move it away to start an "
                     "empty store)", b->dbpath, lost, rcvr.failed_buckets);
    }
    free(rcvr.backup_name);
    if (rc == SG_OK) {
        b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
        b->st->recoveries++;
        b->salvage = 0;
        rep->recovered = 1;
        rep->recovered_keys += (size_t)after;
        rep->failed_keys += lost;
    }
    return rc;
}

/* Repair: rebuild from checkpoint + log (which also compacts the file),
 * then take a fresh checkpoint.  Caller holds the exclusive lock. */
static sg_status repair_locked(gdbm_be *b, sg_check_report *rep,
                               sg_error *err)
{
    sg_status rc;
    if (sgi_gdbm_has_history(b)) {
        /* A rebuild starts from the checkpoint, a copy of PATH as it
         * was, waste and all: compact too. */
        rc = sgi_gdbm_rebuild(b, rep, err);
        if (rc == SG_OK)
            return sgi_gdbm_checkpoint_as(b, 1, err);
    } else {
        rc = salvage(b, rep, err);
    }
    if (rc == SG_OK)
        rc = sgi_gdbm_checkpoint(b, err);
    return rc;
}

/* Caller holds no lock (then a store with a checkpoint is repaired behind
 * the lock, writers and readers going on: gdbm_fuzzy.c), or the exclusive
 * one (sg_store_begin). */
static sg_status g_check(sg_store *st, int repair, sg_check_report *rep,
                         sg_error *err)
{
    gdbm_be *b = be_of(st);
    if (!repair)
        return SG_OK;
    sg_status rc;
    if (st->lock_mode == SGI_UNLOCKED) {
        int done = 0;
        rc = sgi_gdbm_repair_behind(b, rep, &done, err);
        if (rc != SG_OK || done)
            return rc;
    }
    if ((rc = sgi_lock(st, SGI_EXCLUSIVE, err)) != SG_OK)
        return rc;
    rc = repair_locked(b, rep, err);
    sgi_unlock(st);
    return rc;
}

/* sessgatectl compact: rewrite PATH from its live records, then take a
 * checkpoint (which empties the log).  Caller holds no lock, or the
 * exclusive one. */
static sg_status g_compact(sg_store *st, sg_compact_report *rep,
                           sg_error *err)
{
    gdbm_be *b = be_of(st);
    rep->bytes_before = sgi_gdbm_files_bytes(b);
    sg_status rc;
    if (b->held == SGI_UNLOCKED) {
        /* Built behind the lock (gdbm_fuzzy.c); writers go on. */
        rc = sgi_gdbm_compact_behind(b, &rep->records, &rep->live_bytes,
                                     err);
    } else {
        /* Inside the caller's exclusive hold (sg_store_begin). */
        rc = sgi_gdbm_checkpoint_as(b, 1, err);
        rep->records = b->verified ? b->verified_records : 0;
        rep->live_bytes = b->verified ? b->verified_live : 0;
    }
    rep->bytes_after = sgi_gdbm_files_bytes(b);
    rep->compacted = rc == SG_OK;
    return rc;
}

/* sg_store_checkpoint.  A query keeps no GDBM file open afterwards: the
 * gateway's master polls with a handle it uses for nothing else, and a
 * kept handle would hold a compacted PATH's old inode (its disk space)
 * for good. */
static sg_status g_checkpoint(sg_store *st, int flags, int *built,
                              sg_error *err)
{
    gdbm_be *b = be_of(st);
    if (flags & SG_CHECKPOINT_QUERY) {
        if (b->held == SGI_UNLOCKED)
            sgi_gdbm_close_db(b);
        *built = sgi_gdbm_checkpoint_due(b);
        return SG_OK;
    }
    return sgi_gdbm_checkpoint_now(b, flags & SG_CHECKPOINT_FORCE, built,
                                   err);
}

static void g_info(sg_store *st, uint64_t *bytes, uint64_t *writes)
{
    gdbm_be *b = be_of(st);
    struct stat sb;
    *bytes = stat(b->dbpath, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    *writes = b->page ? __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE) : 0;
}

static void g_close(sg_store *st)
{
    gdbm_be *b = be_of(st);
    if (!b)
        return;
    sgi_gdbm_close_db(b);
    sgi_gdbm_close_lockfile(b);
    if (b->walfd >= 0)
        close(b->walfd);
    if (b->nullfd >= 0)
        close(b->nullfd);
    free(b->dbpath);
    free(b->lockpath);
    free(b->walpath);
    free(b->ckptpath);
    free(b->tmppath);
    free(b->ckptnewpath);
    free(b->dbnewpath);
    free(b);
    st->be_data = NULL;
}

static char *suffixed(const char *path, const char *suffix)
{
    size_t n = strlen(path), m = strlen(suffix);
    char *p = malloc(n + m + 1);
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, suffix, m + 1);
    }
    return p;
}

/* A new gdbm_be for the store at location, hung on st (g_close frees it),
 * with its paths; no file opened yet. */
static sg_status be_new(sg_store *st, const char *location, sg_error *err)
{
    gdbm_be *b = calloc(1, sizeof *b);
    if (!b)
        return sgi_oom(err, "store", location);
    b->lockfd = b->walfd = b->nullfd = -1;
    b->st = st;
    b->mode = st->opt.group ? 0660 : 0600;
    st->be_data = b;
    b->dbpath = strdup(location);
    b->lockpath = suffixed(location, ".lock");
    b->walpath = suffixed(location, ".wal");
    b->ckptpath = suffixed(location, ".ckpt");
    b->tmppath = suffixed(location, ".tmp");
    b->ckptnewpath = suffixed(location, ".ckpt.new");
    b->dbnewpath = suffixed(location, ".new");
    if (!b->dbpath || !b->lockpath || !b->walpath || !b->ckptpath ||
        !b->tmppath || !b->ckptnewpath || !b->dbnewpath) {
        g_close(st);
        return sgi_oom(err, "store", location);
    }
    return SG_OK;
}

/* Whether the store predates its log (no checkpoint, empty log): then it
 * gets a checkpoint, or a rebuild would start from nothing.  Caller holds
 * a lock. */
static int needs_first_checkpoint(gdbm_be *b)
{
    struct stat wal;
    return !sgi_gdbm_file_exists(b->ckptpath) && fstat(b->walfd, &wal) == 0 &&
           wal.st_size == 0;
}

/* Open (create, or recover) the GDBM file of a writable handle now so
 * errors show at open. */
static sg_status open_writable(sg_store *st, sg_error *err)
{
    sg_error xerr = { 0 };
    sg_status rc = sgi_gdbm_lock(st, SGI_EXCLUSIVE, &xerr);
    if (rc != SG_OK && (xerr.sys_errno == ENOSPC || xerr.sys_errno == EDQUOT ||
                        xerr.sys_errno == EFBIG)) {
        /* A rebuild is due but there is no room for it: open anyway,
         * reads serve the file as it is, writes fail until space
         * returns (and then rebuild first). */
        rc = sgi_gdbm_lock(st, SGI_SHARED, err);
        if (rc == SG_OK)
            sgi_gdbm_unlock(st);
        return rc;
    }
    if (rc != SG_OK) {
        if (err && err->code == SG_OK)
            *err = xerr;
        return rc;
    }
    int first = needs_first_checkpoint(be_of(st));
    sgi_gdbm_unlock(st);
    if (first)
        rc = sgi_gdbm_first_checkpoint(be_of(st), err);
    sgi_gdbm_build_leftovers(be_of(st));
    return rc;
}

static sg_status g_open(sg_store *st, const char *location, sg_error *err)
{
    if (!*location)
        return sgi_err(err, SG_EINVAL, 0, "store: empty path (pass --store "
                       "PATH or set SESSGATE_STORE)");
    sg_status rc = be_new(st, location, err);
    if (rc != SG_OK)
        return rc;
    gdbm_be *b = be_of(st);
    int ro = st->opt.readonly;
    rc = sgi_gdbm_open_lockfile(b, err);
    if (rc == SG_OK) {
        b->walfd = ro ? open(b->walpath, O_RDONLY | O_CLOEXEC)
                      : sgi_gdbm_open_store_file(b, b->walpath,
                                                 O_RDWR | O_APPEND | O_CLOEXEC);
        if (b->walfd < 0 && !(ro && errno == ENOENT))
            rc = sgi_gdbm_sys_fail(b, err, "cannot open", b->walpath, errno);
        if (!ro)
            b->nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    if (rc == SG_OK && !ro) {
        rc = open_writable(st, err);
    } else if (rc == SG_OK) {
        rc = sgi_gdbm_lock(st, SGI_SHARED, err);
        if (rc == SG_OK)
            sgi_gdbm_unlock(st);
    }
    if (rc != SG_OK)
        g_close(st);
    return rc;
}

/* The figures area in the lock page (counters.c). */
static sgi_figures *g_figures(sg_store *st)
{
    gdbm_be *b = be_of(st);

    return b && b->page ? &b->page->fig : NULL;
}

const sgi_backend sgi_backend_gdbm = {
    .scheme = "gdbm",
    .open = g_open,
    .close = g_close,
    .lock = sgi_gdbm_lock,
    .unlock = sgi_gdbm_unlock,
    .fetch = g_fetch,
    .put = g_put,
    .del = g_del,
    .keys = g_keys,
    .keys_chunk = g_keys_chunk,
    .keys_snapshot = sgi_gdbm_keys_snapshot,
    .check = g_check,
    .info = g_info,
    .reserve = sgi_gdbm_reserve,
    .compact = g_compact,
    .checkpoint = g_checkpoint,
    .figures = g_figures,
    .stamp = g_stamp,
    .lock_yield = sgi_gdbm_lock_yield,
};
