/*
 * gdbm_checkpoint.c - PATH.ckpt: a verified copy of PATH from which, with
 * the log, PATH can always be rebuilt; and compaction of PATH.
 *
 * Why: the log alone would grow forever and a rebuild would replay all of
 * it.  When the log outgrows the GDBM file (and CKPT_MIN_LOG), a clean
 * PATH is verified (every record read back), copied to PATH.ckpt and the
 * log truncated, which bounds both the log and the rebuild time; the copy
 * costs about one byte per byte logged.  Nothing unverified is ever
 * checkpointed: the checkpoint becomes the only history.
 *
 * Size.  Writers make GDBM reuse freed space (tune_writer), and a
 * checkpoint first compacts a PATH that holds more than COMPACT_RATIO
 * times its live bytes plus COMPACT_SLACK (compact).  So PATH stays
 * within that bound of its live data, the checkpoint (a copy of PATH) too,
 * and the log within max(PATH, CKPT_MIN_LOG) plus one record.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rewrite PATH from its live records into PATH.tmp and rename that into
 * place: the space GDBM never gave back (see tune_writer), and a store
 * that shrank, returned to the disk.  Caller holds the exclusive lock with
 * the dirty flag down and b->db open on a verified PATH.  Crash-safe like
 * a rebuild: until the rename PATH stands untouched (a killed compaction
 * leaves only PATH.tmp, which the next one removes); after it the new
 * PATH holds the same records, so PATH.ckpt plus the log still rebuild it
 * exactly.  Durability against power loss is --sync's job, as for the
 * checkpoint copy: only then is the new file synced before the rename
 * (an fsync of a 60 MB file took most of a 12 s compaction here, all of
 * it under the exclusive lock).
 * The write counter moves before and after the rename, so every other
 * process reopens: a handle on the old file reads old, equal data. */
static sg_status compact(gdbm_be *b, sg_error *err)
{
    unlink(b->tmppath);
    gdbm_errno = GDBM_NO_ERROR;
    GDBM_FILE out = gdbm_open(b->tmppath, 0, GDBM_NEWDB | GDBM_NOLOCK |
                              GDBM_NOMMAP | GDBM_CLOEXEC, b->mode, NULL);
    if (!out) {
        sg_status rc = sgi_gdbm_fail(b, err, "compact (create)");
        unlink(b->tmppath);
        return rc;
    }
    sgi_gdbm_adopt_owner(b, gdbm_fdesc(out), b->dbpath);
    sgi_gdbm_tune_writer(out);
    uint64_t live = 0;
    size_t records = 0;
    sg_status rc = sgi_gdbm_copy_records(b, b->db, out, &live, &records, err);
    if (rc == SG_OK && b->st->opt.sync && gdbm_sync(out) != 0)
        rc = sgi_gdbm_fail(b, err, "compact (sync)");
    /* No second sync (see the top of gdbm_file.c). */
    sgi_gdbm_close_gdbm(b, out, 1);
    if (rc != SG_OK) {
        unlink(b->tmppath);
        return rc;
    }
    b->seen = sgi_gdbm_bump_same(b);
    b->bumped = 1;
    if (rename(b->tmppath, b->dbpath) < 0) {
        rc = sgi_gdbm_sys_fail(b, err, "cannot replace", b->dbpath, errno);
        unlink(b->tmppath);
        return rc;
    }
    b->seen = sgi_gdbm_bump_same(b);
    rc = sgi_gdbm_open_db(b, err);
    if (rc == SG_OK)
        /* Every record was written back. */
        sgi_gdbm_note_verified(b, live, records);
    return rc;
}

/* Whether PATH, through a fresh handle, is whole: not truncated, and
 * every record reads back (db_readable).  *live gets its live bytes. */
void sgi_gdbm_note_verified(gdbm_be *b, uint64_t live, size_t records)
{
    b->verified = 1;
    b->verified_writes = __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE);
    b->verified_live = live;
    b->verified_records = records;
}

static int verify_db(gdbm_be *b, uint64_t *live)
{
    /* Walked already under this hold (g_open's first checkpoint, a
     * compaction) and nothing written since: one walk of a big store is
     * seconds that writers wait. */
    if (b->verified && b->db && !b->broken && b->held == SGI_EXCLUSIVE &&
        b->verified_writes == __atomic_load_n(&b->page->writes,
                                              __ATOMIC_ACQUIRE)) {
        *live = b->verified_live;
        return 1;
    }
    sg_error ignored = { 0 };
    gdbm_count_t n = 0;
    if (sgi_gdbm_open_db(b, &ignored) != SG_OK || gdbm_needs_recovery(b->db) ||
        !sgi_gdbm_db_readable(b->db, live) || gdbm_count(b->db, &n) != 0)
        return 0;
    sgi_gdbm_note_verified(b, *live, (size_t)n);
    return 1;
}

/* Copy a clean PATH to PATH.ckpt and empty the log.  Caller holds the
 * exclusive lock with the dirty flag down.  A kill anywhere is safe: until
 * the rename the old checkpoint and the full log stand; after it, replaying
 * the old log onto the new checkpoint only rewrites values it already has.
 *
 * Nothing is checkpointed unverified: the checkpoint and an empty log
 * become the only history, so a copy of a damaged PATH (truncated behind
 * a kept handle's back, say: the handle's writes still succeed) made the
 * damage permanent, and check --repair then had nothing to rebuild from.
 * So PATH is walked first (every record read back, which costs about what
 * the copy does); a PATH that fails is rebuilt from the old checkpoint
 * and the full log instead, and checkpointed only if that verifies. */
sg_status sgi_gdbm_checkpoint_as(gdbm_be *b, int force_compact, sg_error *err)
{
    uint64_t live = 0;
    if (!verify_db(b, &live)) {
        sg_error rerr = { 0 };
        __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
        if (sgi_gdbm_rebuild(b, NULL, &rerr) != SG_OK) {
            if (err && err->code == SG_OK)
                *err = rerr;
            return rerr.code ? rerr.code : SG_ESTORE;
        }
        if (!verify_db(b, &live))
            return sgi_err(err, SG_ESTORE, 0, "store %s: fails verification "
                           "even when rebuilt from its checkpoint and log; "
                           "not checkpointed (run sessgatectl check --repair)",
                           b->dbpath);
    }
    /* Bound PATH by its live data, and so the checkpoint, which copies it,
     * and the log, which is cut once it outgrows PATH. */
    if (force_compact || (uint64_t)sgi_gdbm_file_size(b->dbpath) >
                         COMPACT_RATIO * live + COMPACT_SLACK) {
        sg_error cerr = { 0 };
        if (compact(b, &cerr) != SG_OK) {
            /* Out of room, say: PATH stands as it was; checkpoint that. */
            if (force_compact) {
                if (err && err->code == SG_OK)
                    *err = cerr;
                return cerr.code;
            }
            if (sgi_gdbm_open_db(b, err) != SG_OK)
                return err ? err->code : SG_ESTORE;
        }
    }
    sg_status rc = sgi_gdbm_copy_file(b, b->dbpath, b->tmppath,
                                      b->ckptpath, err);
    if (rc == SG_OK && rename(b->tmppath, b->ckptpath) < 0) {
        rc = sgi_gdbm_sys_fail(b, err, "cannot replace", b->ckptpath, errno);
        unlink(b->tmppath);
    }
    if (rc == SG_OK)
        rc = sgi_gdbm_wal_cut(b, 0, err);
    return rc;
}

sg_status sgi_gdbm_checkpoint(gdbm_be *b, sg_error *err)
{
    return sgi_gdbm_checkpoint_as(b, 0, err);
}
