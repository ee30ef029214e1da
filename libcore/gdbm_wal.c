/*
 * gdbm_wal.c - PATH.wal, the write-ahead log, and the rebuild of PATH
 * from PATH.ckpt plus the log.
 *
 * Crash safety.  GDBM rewrites buckets in place and splits them in several
 * writes; a writer killed in the middle tears a bucket, and gdbm_recover
 * then drops the whole bucket, taking sessions acknowledged long before
 * with it (measured: tests/store/kill.bats, and libcore-bugs in the issue
 * notes).  So GDBM is not our source of truth after a crash.  Every change
 * is first appended to PATH.wal (one write(2), checksummed), with the dirty
 * flag raised before the append and lowered after GDBM has the change.  A
 * process killed anywhere in between leaves the flag raised (the lock page
 * lives in the page cache, which outlives the process), and the next
 * process to take the lock rebuilds PATH from PATH.ckpt plus the log's
 * valid prefix.  We do not depend on GDBM noticing its own damage.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* CRC-32 (IEEE), bytewise; the log is not on the read path. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

static uint32_t wal_crc(uint32_t klen, uint32_t vlen, const char *key,
                        const char *val)
{
    uint32_t crc = crc32_update(0, &klen, sizeof klen);
    crc = crc32_update(crc, &vlen, sizeof vlen);
    crc = crc32_update(crc, key, klen);
    if (vlen != WAL_DELETE)
        crc = crc32_update(crc, val, vlen);
    return crc;
}

/* Append one change to the log.  On failure the log is cut back to where
 * it was, so a later append never follows a torn record. */
sg_status sgi_gdbm_wal_append(gdbm_be *b, const char *key, const char *val,
                              size_t vlen, off_t *before_out, sg_error *err)
{
    size_t klen = strlen(key);
    uint32_t v = val ? (uint32_t)vlen : WAL_DELETE;
    size_t total = sizeof(wal_rec) + klen + (val ? vlen : 0);
    char *buf = malloc(total);
    if (!buf)
        return sgi_oom(err, "store", b->dbpath);
    wal_rec h = { WAL_MAGIC, wal_crc((uint32_t)klen, v, key, val),
                  (uint32_t)klen, v };
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, key, klen);
    if (val)
        memcpy(buf + sizeof h + klen, val, vlen);
    off_t before = lseek(b->walfd, 0, SEEK_END);
    *before_out = before;   /* -1 if lseek failed */
    ssize_t n = before < 0 ? -1 : write(b->walfd, buf, total);
    int e = errno;
    if (n >= 0 && n != (ssize_t)total) {
        /* A short write to a regular file means out of room; writing the
         * rest tells which room (ENOSPC, EDQUOT, or EFBIG past a file size
         * limit).  The tail is cut below either way. */
        ssize_t m = write(b->walfd, buf + n, total - (size_t)n);
        e = m < 0 ? errno : ENOSPC;
    }
    free(buf);
    if (n != (ssize_t)total) {
        if (before >= 0 && ftruncate(b->walfd, before) < 0) {
            /* Cannot cut the torn tail: make the next locker rebuild,
             * which replays only the valid prefix and cuts it. */
            __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
        }
        return sgi_gdbm_sys_fail(b, err, "cannot append to", b->walpath, e);
    }
    if (b->st->opt.sync && fdatasync(b->walfd) < 0)
        return sgi_gdbm_sys_fail(b, err, "cannot sync", b->walpath, errno);
    return SG_OK;
}

/* Cut the log to len bytes (0: empty it, after a checkpoint), records
 * others may have counted on: log_epoch moves first, so a checkpoint
 * being built from offsets in the log (gdbm_fuzzy.c) knows they no longer
 * hold.  A cut that changes nothing moves nothing. */
sg_status sgi_gdbm_wal_cut(gdbm_be *b, off_t len, sg_error *err)
{
    struct stat sb;
    if (fstat(b->walfd, &sb) == 0 && sb.st_size == len)
        return SG_OK;
    __atomic_add_fetch(&b->page->log_epoch, 1, __ATOMIC_ACQ_REL);
    if (ftruncate(b->walfd, len) < 0)
        return sgi_gdbm_sys_fail(b, err, "cannot truncate", b->walpath, errno);
    return SG_OK;
}

/* Apply one record (key, value or WAL_DELETE) to db. */
static int apply(GDBM_FILE db, const wal_rec *h, char *key, char *val)
{
    datum k = { key, (int)h->klen };
    if (h->vlen == WAL_DELETE) {
        int r = gdbm_delete(db, k);
        return r != 0 && gdbm_errno == GDBM_ITEM_NOT_FOUND ? 0 : r;
    }
    datum v = { val, (int)h->vlen };
    return gdbm_store(db, k, v, GDBM_REPLACE);
}

/* Apply the valid records of buf (len bytes, of the `limit` the range
 * holds from buf[0] on) to db, up to the first torn or incomplete one;
 * *used gets the bytes applied, *torn is set when a record is damaged or
 * runs past the range, *need to the size of a record that is only partly
 * in buf.  -1 when GDBM fails. */
static int apply_buf(GDBM_FILE db, char *buf, size_t len, off_t limit,
                     size_t *used, int *torn, size_t *need)
{
    size_t off = 0;
    *torn = 0;
    *need = 0;
    while (off + sizeof(wal_rec) <= len) {
        wal_rec h;
        memcpy(&h, buf + off, sizeof h);
        uint64_t whole = sizeof h + (uint64_t)h.klen +
                         (h.vlen == WAL_DELETE ? 0 : h.vlen);
        if (h.magic != WAL_MAGIC || h.klen == 0 ||
            whole > (uint64_t)limit - off) {
            *torn = 1;
            break;
        }
        if (whole > len - off) {
            *need = (size_t)whole;
            break;
        }
        char *key = buf + off + sizeof h;
        char *val = key + h.klen;
        if (wal_crc(h.klen, h.vlen, key, val) != h.crc) {
            *torn = 1;
            break;
        }
        if (apply(db, &h, key, val) != 0) {
            *used = off;
            return -1;
        }
        off += (size_t)whole;
    }
    *used = off;
    return 0;
}

/* Apply the log's valid records from offset `from` (where a record
 * starts) up to `to` (-1: the end of the log) to db, reading a piece at a
 * time (the whole log in memory was hundreds of MB on a big store);
 * *valid gets the offset after the last record applied: a torn tail from
 * a killed writer, or `to`, ends it.  what names the step in errors. */
sg_status sgi_gdbm_wal_replay(gdbm_be *b, GDBM_FILE db, off_t from, off_t to,
                              off_t *valid, const char *what, sg_error *err)
{
    *valid = from;
    if (to < 0) {
        struct stat sb;
        if (fstat(b->walfd, &sb) < 0)
            return sgi_gdbm_sys_fail(b, err, "stat", b->walpath, errno);
        to = sb.st_size;
    }
    size_t cap = 0, have = 0, need = WAL_READ_PIECE;
    char *buf = NULL;
    off_t off = from;   /* the log offset of buf[0] */
    sg_status rc = SG_OK;
    while (off + (off_t)have < to) {
        if (need > cap) {
            size_t ncap = cap ? cap : WAL_READ_PIECE;
            while (ncap < need)
                ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory "
                             "reading the log", b->dbpath);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - have;
        if ((off_t)want > to - off - (off_t)have)
            want = (size_t)(to - off - (off_t)have);
        ssize_t n = pread(b->walfd, buf + have, want, off + (off_t)have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;    /* shorter than it was: what is there is all */
        have += (size_t)n;
        size_t used;
        int torn;
        if (apply_buf(db, buf, have, to - off, &used, &torn, &need) != 0)
            rc = sgi_gdbm_fail(b, err, what);
        off += (off_t)used;
        have -= used;
        memmove(buf, buf + used, have);
        if (rc != SG_OK || torn)
            break;
    }
    free(buf);
    *valid = off;
    return rc;
}

/* Copy src to dst, which gets the owner and mode of `like` (the file it
 * will replace, see adopt_owner), syncing with --sync. */
sg_status sgi_gdbm_copy_file(gdbm_be *b, const char *src, const char *dst,
                             const char *like, sg_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sgi_gdbm_sys_fail(b, err, "cannot read", src, errno);
    sg_status rc = sgi_gdbm_copy_fd(b, in, dst, like, err);
    close(in);
    return rc;
}

/* Copy what the file open on `in` holds from its current offset on to
 * dst, as sgi_gdbm_copy_file does. */
sg_status sgi_gdbm_copy_fd(gdbm_be *b, int in, const char *dst,
                           const char *like, sg_error *err)
{
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, b->mode);
    if (out < 0)
        return sgi_gdbm_sys_fail(b, err, "cannot create", dst, errno);
    sgi_gdbm_adopt_owner(b, out, like);
    sg_status rc = SG_OK;
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 20, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EXDEV || errno == ENOSYS || errno == EINVAL) {
                char buf[65536];
                ssize_t r;
                while ((r = read(in, buf, sizeof buf)) > 0)
                    if (write(out, buf, (size_t)r) != r) {
                        r = -1;
                        break;
                    }
                if (r < 0)
                    rc = sgi_gdbm_sys_fail(b, err, "cannot copy to", dst,
                                           errno ? errno : ENOSPC);
                break;
            }
            rc = sgi_gdbm_sys_fail(b, err, "cannot copy to", dst, errno);
            break;
        }
    }
    if (rc == SG_OK && b->st->opt.sync && fsync(out) < 0)
        rc = sgi_gdbm_sys_fail(b, err, "cannot sync", dst, errno);
    if (close(out) < 0 && rc == SG_OK)
        rc = sgi_gdbm_sys_fail(b, err, "cannot write", dst, errno);
    if (rc != SG_OK)
        unlink(dst);
    return rc;
}

/* Rebuild PATH from PATH.ckpt (or nothing) plus the log, under the
 * exclusive lock.  Idempotent: a process killed halfway leaves the dirty
 * flag raised and the next one starts over. */
sg_status sgi_gdbm_rebuild(gdbm_be *b, sg_check_report *rep, sg_error *err)
{
    sgi_gdbm_close_db(b);
    uint32_t was_dirty = __atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE);
    __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
    b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
    b->bumped = 1;
    sg_status rc = SG_OK;
    unlink(b->tmppath);
    if (sgi_gdbm_file_exists(b->ckptpath))
        rc = sgi_gdbm_copy_file(b, b->ckptpath, b->tmppath, b->dbpath, err);
    if (rc == SG_OK)
        rc = sgi_gdbm_reserve_rebuild(b, err);
    if (rc != SG_OK)
        goto untouched;
    gdbm_errno = GDBM_NO_ERROR;
    GDBM_FILE db = gdbm_open(b->tmppath, 0, GDBM_WRCREAT | GDBM_NOLOCK |
                             GDBM_NOMMAP | GDBM_CLOEXEC, b->mode, NULL);
    if (!db) {
        rc = sgi_gdbm_fail(b, err, "rebuild (open checkpoint)");
        goto untouched;
    }
    sgi_gdbm_adopt_owner(b, gdbm_fdesc(db), b->dbpath);
    sgi_gdbm_tune_writer(db);
    off_t valid;
    rc = sgi_gdbm_wal_replay(b, db, 0, -1, &valid,
                             "rebuild (replaying the log)", err);
    size_t keys = 0;
    if (rc == SG_OK) {
        gdbm_count_t n;
        if (gdbm_count(db, &n) == 0)
            keys = (size_t)n;
    }
    /* This close may sync: a rebuild is rare and worth making durable. */
    if (gdbm_close(db) != 0 && rc == SG_OK)
        rc = sgi_gdbm_fail(b, err, "rebuild (close)");
    if (rc == SG_OK && rename(b->tmppath, b->dbpath) < 0)
        rc = sgi_gdbm_sys_fail(b, err, "cannot replace", b->dbpath, errno);
    if (rc != SG_OK)
        goto untouched;
    /* Cut a torn tail, so that later appends follow valid records. */
    if (sgi_gdbm_wal_cut(b, valid, err) != SG_OK)
        return err ? err->code : SG_ESTORE;
    __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&b->page->starved, 0, __ATOMIC_RELEASE);
    b->st->recoveries++;
    if (rep) {
        rep->recovered = 1;
        rep->recovered_keys += keys;
    }
    return sgi_gdbm_open_db(b, err);

untouched:
    /* PATH was not touched, so the store is as sound as it was: a flag
     * that was down goes down again.  (Left up, a check --repair that
     * failed on a full disk would leave every later writer a rebuild to
     * do first, failing for the same lack of room.) */
    unlink(b->tmppath);
    __atomic_store_n(&b->page->dirty, was_dirty, __ATOMIC_RELEASE);
    return rc;
}
