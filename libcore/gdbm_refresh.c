/*
 * gdbm_refresh.c - taking the store lock (the backend's lock and unlock)
 * and making the kept GDBM handle current under it.
 *
 * Staleness.  A GDBM handle caches the header and buckets and does not see
 * other processes' writes.  A writer bumps the counter in the lock page
 * BEFORE it changes anything; a process whose handle was opened at another
 * counter value reopens before reading.  Opening per operation costs ~50x
 * a kept handle, so handles are kept while the counter stands still.  The
 * file's inode is also compared with the handle's (always before a write,
 * at most once a second before a read) so a file replaced behind our back
 * (a backup restored with mv) is noticed too.
 *
 * Why a file of its own: what to do when the handle is not current has
 * many cases (a dead writer's flag, a file missing or cut, a read-only
 * handle that cannot rebuild, a disk too full to rebuild), and each must
 * end in the same place: the lock held in the mode asked for and a
 * handle that reads what the last writer wrote.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* What refresh() found.  Not an sg_status: "create or rebuild first,
 * under the exclusive lock" is no error a caller of the library should
 * ever see (it used to travel as SG_EEXPIRED, a public code that means
 * something else). */
typedef enum refresh_rc {
    REFRESH_DONE,            /* b->db is current, or *rc says why not */
    REFRESH_NEEDS_EXCLUSIVE  /* the store must be created or rebuilt
                              * first: by a writer under the exclusive
                              * lock (a read-only handle: recover_writable) */
} refresh_rc;

/* The dirty flag is up: a writer died mid-change, or a rebuild failed.
 * Under the exclusive lock a writer rebuilds (*rc: how that went).
 * *read_as_is: a rebuild already failed for lack of space, and this
 * handle reads the file as it is rather than fail every read until space
 * returns. */
static refresh_rc on_dirty(gdbm_be *b, int *read_as_is, sg_status *rc,
                           sg_error *err)
{
    int excl = b->held == SGI_EXCLUSIVE;
    int ro = b->st->opt.readonly;
    *read_as_is = 0;
    if (excl && !ro) {
        sg_error rerr = { 0 };    /* err may be NULL, or hold one */
        *rc = sgi_gdbm_rebuild(b, NULL, &rerr);
        int e = rerr.sys_errno;
        if (*rc != SG_OK && err && err->code == SG_OK)
            *err = rerr;
        b->degraded = *rc != SG_OK &&
                      (e == ENOSPC || e == EDQUOT || e == EFBIG);
        if (b->degraded)
            __atomic_store_n(&b->page->starved, 1, __ATOMIC_RELEASE);
        return REFRESH_DONE;
    }
    /* A read-only handle cannot rebuild.  Once a writer has tried and
     * found no room, it reads the file as it is, like that writer:
     * refusing sent sessgatectl get/list/export to "open the store
     * writable", which fails the same way until there is room. */
    if (ro && !__atomic_load_n(&b->page->starved, __ATOMIC_ACQUIRE))
        return REFRESH_NEEDS_EXCLUSIVE;   /* g_lock: recover_writable */
    if (!ro && !b->degraded)
        return REFRESH_NEEDS_EXCLUSIVE;
    *read_as_is = 1;
    return REFRESH_DONE;
}

/* Whether the kept handle b->db may serve this hold as it is. */
static int handle_current(gdbm_be *b)
{
    int excl = b->held == SGI_EXCLUSIVE;
    uint64_t now = __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE);
    int fresh = b->db && !b->broken && now == b->seen &&
                (!excl || b->db_writer);
    /* A writer handle reads through read(2) (no mmap, see the top of
     * gdbm_file.c); after a run of reads without a write, a reader is
     * cheaper. */
    if (fresh && !excl && b->db_writer && ++b->writer_reads > WRITER_READS_MAX)
        fresh = 0;
    if (fresh && (excl || mono_ms() - b->inode_checked >= READ_INODE_CHECK_MS))
        fresh = sgi_gdbm_same_inode(b);
    /* A writer also looks for a cut (two syscalls): a kept handle goes on
     * writing into a truncated file as if nothing happened. */
    if (fresh && excl && sgi_gdbm_db_truncated(gdbm_fdesc(b->db)))
        fresh = 0;
    /* A reader's mmap of a file cut behind its back faults (SIGBUS, which
     * killed the process: measured with a kept handle after a cut to a
     * third).  GDBM never shrinks a file in place, and a write that grows
     * it moves the counter, so a file smaller than at open is a cut: one
     * fstat per read, then the reopen finds the damage and rebuilds. */
    if (fresh && !b->db_writer) {
        struct stat sb;
        if (fstat(gdbm_fdesc(b->db), &sb) < 0 || sb.st_size < b->db_size)
            fresh = 0;
    }
    return fresh;
}

/* Open PATH afresh; a file missing (with history) or damaged is rebuilt
 * from our own checkpoint and log, under the exclusive lock. */
static refresh_rc reopen(gdbm_be *b, sg_status *rc, sg_error *err)
{
    int excl = b->held == SGI_EXCLUSIVE;
    int ro = b->st->opt.readonly;
    sg_error local = { 0 };
    *rc = sgi_gdbm_open_db(b, &local);
    int damaged = *rc == SG_ENOTFOUND ||
                  (*rc == SG_OK ? gdbm_needs_recovery(b->db) != 0
                                : b->damaged);
    if (!damaged) {
        if (*rc != SG_OK && err && err->code == SG_OK)
            *err = local;
        return REFRESH_DONE;
    }
    if (ro && sgi_gdbm_has_history(b))
        return REFRESH_NEEDS_EXCLUSIVE;   /* g_lock: recover_writable */
    if (ro) {
        *rc = sgi_err(err, SG_ESTORE, 0, "store %s: missing or damaged, "
                      "and this handle is read-only (run sessgatectl check "
                      "--repair)", b->dbpath);
        return REFRESH_DONE;
    }
    /* Advise check --repair only where it can help: its salvage
     * (gdbm_recover) needs a file GDBM can open. */
    if (*rc != SG_ENOTFOUND && !sgi_gdbm_has_history(b)) {
        int opened = *rc == SG_OK;
        *rc = sgi_err(err, SG_ESTORE, 0, "store %s: damaged, with no "
                      "checkpoint or log to rebuild it from: %s (%s)",
                      b->dbpath,
                      opened ? "needs recovery" : gdbm_strerror(gdbm_errno),
                      opened ? "restore a backup, or run sessgatectl "
                      "check --repair to salvage what GDBM can read"
                      : "GDBM cannot read it, so check --repair cannot "
                      "salvage it: restore a backup, or move it away to "
                      "start an empty store");
        return REFRESH_DONE;
    }
    if (!excl)
        return REFRESH_NEEDS_EXCLUSIVE;
    *rc = sgi_gdbm_rebuild(b, NULL, err);
    return REFRESH_DONE;
}

/* Make b->db current under the lock held.  REFRESH_DONE with *rc SG_OK
 * when it is; REFRESH_NEEDS_EXCLUSIVE when the store must be created or
 * rebuilt first (never under the exclusive lock of a writer). */
static refresh_rc refresh(gdbm_be *b, sg_status *rc, sg_error *err)
{
    *rc = SG_OK;
    if (__atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE)) {
        int read_as_is;
        refresh_rc r = on_dirty(b, &read_as_is, rc, err);
        if (!read_as_is)
            return r;
    } else {
        b->degraded = 0;
        /* Never left over for the next writer killed mid-change. */
        if (b->held == SGI_EXCLUSIVE && !b->st->opt.readonly &&
            __atomic_load_n(&b->page->starved, __ATOMIC_ACQUIRE))
            __atomic_store_n(&b->page->starved, 0, __ATOMIC_RELEASE);
    }
    if (handle_current(b))
        return REFRESH_DONE;
    return reopen(b, rc, err);
}

/* After the store was created or rebuilt for us: take the lock in `mode`
 * again and refresh, which should now find nothing to do. */
static sg_status retake(gdbm_be *b, int mode, sg_error *err)
{
    sg_status rc = sgi_gdbm_take(b, mode, err);
    if (rc != SG_OK)
        return rc;
    if (refresh(b, &rc, err) == REFRESH_NEEDS_EXCLUSIVE)
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: keeps needing "
                     "recovery; run sessgatectl check --repair", b->dbpath);
    if (rc != SG_OK)
        sgi_gdbm_unlock_fd(b);
    return rc;
}

/* A writable handle needs the exclusive lock to create or rebuild the
 * store: take it, do it, let it go.  SG_OK too for a reader (mode
 * SGI_SHARED) whose rebuild just failed for lack of space: it goes on
 * and reads the file as it is (b->degraded). */
static sg_status create_or_rebuild(gdbm_be *b, int mode, sg_error *err)
{
    sg_error xerr = { 0 };
    sg_status rc = sgi_gdbm_take(b, SGI_EXCLUSIVE, &xerr);
    int needs = 0;
    if (rc == SG_OK)
        needs = refresh(b, &rc, &xerr) == REFRESH_NEEDS_EXCLUSIVE;
    sgi_gdbm_unlock_fd(b);
    if ((rc == SG_OK && !needs) || (mode == SGI_SHARED && b->degraded))
        return SG_OK;
    if (err && err->code == SG_OK)
        *err = xerr;
    return needs ? sgi_err(err, SG_ESTORE, 0, "store %s: cannot recover",
                           b->dbpath) : rc;
}

/* The backend's lock(): take the lock, then make the handle current,
 * creating or rebuilding the store first where that is due. */
sg_status sgi_gdbm_lock(sg_store *st, int mode, sg_error *err)
{
    gdbm_be *b = be_of(st);
    sg_status rc = sgi_gdbm_take(b, mode, err);
    if (rc != SG_OK)
        return rc;
    if (refresh(b, &rc, err) == REFRESH_DONE) {
        if (rc != SG_OK)
            sgi_gdbm_unlock_fd(b);
        return rc;
    }
    sgi_gdbm_unlock_fd(b);
    if (st->opt.readonly) {
        /* A rebuild is due and this handle may not write: have a writable
         * handle do it, then read. */
        sgi_gdbm_close_db(b);
        rc = sgi_gdbm_recover_writable(b, "a writer died mid-write, or the "
                                       "file is damaged", err);
    } else {
        rc = create_or_rebuild(b, mode, err);
    }
    if (rc != SG_OK)
        return rc;
    return retake(b, mode, err);
}

/* The backend's unlock(): release, and if this hold's writes made the log
 * due for a checkpoint that this writer is to build (a small one, or the
 * log at its cap: sgi_gdbm_writer_builds), build it behind the lock
 * (gdbm_fuzzy.c).  A bigger one stays due for a builder that serves no
 * request (sgi_gdbm_checkpoint_now). */
void sgi_gdbm_unlock(sg_store *st)
{
    gdbm_be *b = be_of(st);
    if (b->held == SGI_UNLOCKED)
        return;
    if (b->wrote && !__atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE) &&
        sgi_gdbm_writer_builds(b)) {
        sgi_gdbm_checkpoint_behind(b);   /* releases the lock first */
        return;
    }
    sgi_gdbm_unlock_fd(b);
}
