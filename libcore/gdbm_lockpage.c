/*
 * gdbm_lockpage.c - PATH.lock: the flock target of every process of a
 * store, and its first page, mapped shared, which holds the write counter,
 * the "dirty" flag of a change in flight and the writer preference.
 *
 * Locking.  GDBM's own locking is exclusive and non-blocking (a second
 * writer fails at once instead of waiting), so GDBM is opened with
 * GDBM_NOLOCK and we flock() PATH.lock: shared for reads, exclusive for
 * writes, polled against a deadline so a stuck holder ends in
 * SG_ELOCKTIMEOUT instead of a hang.  Writers also flock() PATH.wal
 * (exclusive, after PATH.lock): someone may delete PATH.lock while a
 * writer holds it, and the next process would create a new one and lock
 * that, so two writers would run at once (tests/store/lockfile.bats).
 * PATH.wal is never deleted or replaced by us, and every writer has it
 * open anyway.  A new lock page on a store that already has a log or a
 * checkpoint is treated as dirty, because the deleted page may have
 * carried the flag of a writer killed mid-change.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void sgi_gdbm_close_lockfile(gdbm_be *b)
{
    if (b->page)
        munmap(b->page, LOCK_FILE_SIZE);
    b->page = NULL;
    if (b->lockfd >= 0)
        close(b->lockfd);
    b->lockfd = -1;
}

/* Open (creating if needed) and map the lock file. */
sg_status sgi_gdbm_open_lockfile(gdbm_be *b, sg_error *err)
{
    int ro = b->st->opt.readonly;
    int fd = ro ? open(b->lockpath, O_RDONLY | O_CLOEXEC)
                : sgi_gdbm_open_store_file(b, b->lockpath, O_RDWR | O_CLOEXEC);
    if (fd < 0 && ro && errno == ENOENT && sgi_gdbm_store_exists(b)) {
        /* PATH.lock deleted (by hand, by a cleaner of "stale" lock files)
         * from a store that exists: "does not exist" sent operators
         * looking for a store that was there.  Recreate it the way any
         * writer would (which also rebuilds the store if the deleted page
         * may have carried a dead writer's flag), then open it. */
        sg_status rc = sgi_gdbm_recover_writable(b, "its lock file is missing "
                                                 "(deleted?)", err);
        if (rc != SG_OK)
            return rc;
        fd = open(b->lockpath, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        return sgi_err(err, SG_ESTORE, e,
                       "store %s: cannot open lock file %s: %s (%s)", b->dbpath,
                       b->lockpath, strerror(e), e == EISDIR
                       ? "something else is in its place: remove it"
                       : sgi_gdbm_sys_fix(e, "check the directory exists "
                                          "and is writable"));
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return sgi_gdbm_sys_fail(b, err, "stat", b->lockpath, e);
    }
    /* A read-only open succeeds on a directory (or a fifo, which would
     * block here): only a regular file can carry the lock page. */
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sgi_err(err, SG_ESTORE, EISDIR, "store %s: lock file %s is "
                       "not a regular file (something else is in its place: "
                       "remove it)", b->dbpath, b->lockpath);
    }
    if (sb.st_size < LOCK_FILE_SIZE && ro && sgi_gdbm_store_exists(b) &&
        !b->fixing) {
        /* Made anew by hand (touch) after a deletion: have a writer set
         * it up, as for a missing one. */
        close(fd);
        b->fixing = 1;
        sg_status rc = sgi_gdbm_recover_writable(b, "its lock file is not "
                                                 "set up (made by hand?)",
                                                 err);
        if (rc == SG_OK)
            rc = sgi_gdbm_open_lockfile(b, err);
        b->fixing = 0;
        return rc;
    }
    /* Growing the file is idempotent, so racing creators are harmless. */
    if (sb.st_size < LOCK_FILE_SIZE && (ro || ftruncate(fd, LOCK_FILE_SIZE) < 0)) {
        int e = ro ? EACCES : errno;
        close(fd);
        return sgi_gdbm_sys_fail(b, err, "cannot size lock file",
                                 b->lockpath, e);
    }
    void *p = mmap(NULL, LOCK_FILE_SIZE, ro ? PROT_READ : PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return sgi_gdbm_sys_fail(b, err, "cannot map lock file",
                                 b->lockpath, e);
    }
    b->lockfd = fd;
    b->lock_dev = sb.st_dev;
    b->lock_ino = sb.st_ino;
    b->page = p;
    if (!ro && __atomic_load_n(&b->page->magic, __ATOMIC_ACQUIRE) != LOCK_MAGIC) {
        /* A new page: the store is new, or PATH.lock was deleted (by
         * hand, by a cleaner of "stale" lock files) and with it any dirty
         * flag a writer killed mid-change left raised.  A store with
         * history is then rebuilt from it by the next writer: costly once,
         * and a rebuild of a sound store changes nothing.  (Racing
         * openers may both raise it: at worst one more rebuild.) */
        struct stat wal;
        if (sgi_gdbm_file_exists(b->ckptpath) ||
            (stat(b->walpath, &wal) == 0 && wal.st_size > 0))
            __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&b->page->magic, LOCK_MAGIC, __ATOMIC_RELEASE);
    }
    return SG_OK;
}

/*
 * Writer preference.  flock() gives no fairness: with 4 to 8 processes
 * calling get in a tight loop some reader always held PATH.lock shared, and
 * a writer polling for it exclusively timed out in a third of the trials.
 * So a writer that has to wait says so in the lock page: it counts itself
 * in writers_waiting and keeps writer_until a little in the future while it
 * polls; a reader about to take the lock first waits while writer_until
 * lies ahead, so the readers in flight drain and the writer's next poll
 * gets in.  The deadline (not the count alone) is what readers obey, so a
 * writer killed while it waited holds nobody up for more than
 * WRITER_ANNOUNCE_MS; and a reader stands back at most READER_DEFER_MAX_MS
 * per lock, so a stream of writers cannot starve readers in turn.  A value
 * far in the future (a lock page from before a reboot: CLOCK_MONOTONIC
 * starts again) is ignored.
 */
#define WRITER_ANNOUNCE_MS 20
#define READER_DEFER_MAX_MS 25

/* Returns nonzero when it would have waited on a no-wait handle. */
static int defer_to_writers(gdbm_be *b)
{
    if (!b->page)
        return 0;
    int64_t t0 = mono_ms(), t = t0;
    for (;;) {
        int64_t until = __atomic_load_n(&b->page->writer_until,
                                        __ATOMIC_ACQUIRE);
        if (until <= t || until > t + 4 * WRITER_ANNOUNCE_MS ||
            t - t0 >= READER_DEFER_MAX_MS)
            return 0;
        if (b->st->nowait)
            return 1;
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
        t = mono_ms();
    }
}

/* The backend's lock_yield (a whole-store walk about to take the exclusive
 * lock again, store.c walk_gap): stand back for a writer already waiting,
 * as a reader does, at most READER_DEFER_MAX_MS.  A walk that announced
 * itself cleared its own deadline once it had the lock. */
void sgi_gdbm_lock_yield(sg_store *st)
{
    gdbm_be *b = be_of(st);
    if (b)
        (void)defer_to_writers(b);
}

/* A writer stops waiting: the last one out clears the deadline. */
static void writer_done_waiting(gdbm_be *b)
{
    uint32_t n = __atomic_load_n(&b->page->writers_waiting, __ATOMIC_ACQUIRE);
    while (n > 0 && !__atomic_compare_exchange_n(&b->page->writers_waiting,
                                                 &n, n - 1, 0,
                                                 __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE))
        ;
    if (n <= 1)
        __atomic_store_n(&b->page->writer_until, 0, __ATOMIC_RELEASE);
}

/* The answer of a no-wait handle (SG_GET_NOWAIT) to a lock it would have
 * to wait for: the caller retries later, on its own clock. */
static sg_status busy(gdbm_be *b, sg_error *err, const char *path)
{
    return sgi_err(err, SG_ELOCKTIMEOUT, EWOULDBLOCK, "store %s: %s is "
                   "held by another process (not waiting: asked not to)",
                   b->dbpath, path);
}

/* flock fd (path, for messages) with a deadline.  flock() cannot time out
 * by itself and a library must not install signal handlers, so we poll:
 * try, then sleep with a backoff from 20 us up to 2 ms (500 us for a
 * writer on PATH.lock, which readers now make way for: see above).
 * *deadline is set on the first wait (0: none yet), so two locks share one
 * timeout. */
static sg_status flock_deadline(gdbm_be *b, int fd, const char *path, int op,
                                int64_t *deadline, sg_error *err)
{
    if (flock(fd, op | LOCK_NB) == 0)
        return SG_OK;
    if (errno != EWOULDBLOCK && errno != EINTR)
        return sgi_gdbm_sys_fail(b, err, "flock", path, errno);
    if (b->st->nowait)
        return busy(b, err, path);
    int timeout = b->st->opt.lock_timeout_ms;
    if (*deadline == 0)
        *deadline = mono_ms() + timeout;
    int announce = op == LOCK_EX && fd == b->lockfd && b->page &&
                   !b->st->opt.readonly;
    if (announce)
        __atomic_add_fetch(&b->page->writers_waiting, 1, __ATOMIC_ACQ_REL);
    long sleep_ns = 20000, max_ns = announce ? 500000 : 2000000;
    sg_status rc;
    for (;;) {
        if (announce)
            __atomic_store_n(&b->page->writer_until,
                             mono_ms() + WRITER_ANNOUNCE_MS, __ATOMIC_RELEASE);
        struct timespec ts = { 0, sleep_ns };
        nanosleep(&ts, NULL);
        if (flock(fd, op | LOCK_NB) == 0) {
            rc = SG_OK;
            break;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            rc = sgi_gdbm_sys_fail(b, err, "flock", path, errno);
            break;
        }
        if (mono_ms() >= *deadline) {
            rc = sgi_err(err, SG_ELOCKTIMEOUT, 0,
                         "store %s: lock timeout after %d ms (another "
                         "process holds %s; raise --lock-timeout)",
                         b->dbpath, timeout, path);
            break;
        }
        if (sleep_ns < max_ns)
            sleep_ns *= 2;
    }
    if (announce)
        writer_done_waiting(b);
    return rc;
}

void sgi_gdbm_unlock_fd(gdbm_be *b)
{
    if (b->held == SGI_EXCLUSIVE && b->walfd >= 0)
        flock(b->walfd, LOCK_UN);
    flock(b->lockfd, LOCK_UN);
    b->held = SGI_UNLOCKED;
    b->bumped = 0;
    b->wrote = 0;
    b->verified = 0;
}

/* Take the flock and check the lock path still names the locked file. */
sg_status sgi_gdbm_take(gdbm_be *b, int mode, sg_error *err)
{
    int64_t deadline = 0;
    for (int tries = 0; ; tries++) {
        if (b->lockfd < 0) {
            sg_status rc = sgi_gdbm_open_lockfile(b, err);
            if (rc != SG_OK)
                return rc;
        }
        if (mode == SGI_SHARED && defer_to_writers(b))
            return busy(b, err, b->lockpath);
        sg_status rc = flock_deadline(b, b->lockfd, b->lockpath,
                                      mode == SGI_EXCLUSIVE ? LOCK_EX : LOCK_SH,
                                      &deadline, err);
        if (rc != SG_OK)
            return rc;
        /* Writers check every time: a write under a lock nobody else takes
         * could corrupt the file.  Readers check once a second, which saves
         * a third of a read's syscalls; a reader under a stale lock can at
         * worst read stale data until then. */
        int64_t t = mono_ms();
        if (mode == SGI_SHARED && t - b->lock_checked < READ_INODE_CHECK_MS) {
            b->held = mode;
            return SG_OK;
        }
        struct stat sb;
        if (stat(b->lockpath, &sb) == 0 && sb.st_dev == b->lock_dev &&
            sb.st_ino == b->lock_ino) {
            /* A writer that took a PATH.lock made after a deletion may
             * still share the store with one holding the deleted file:
             * PATH.wal, which both have open, keeps them apart (see the
             * top of the file).  Always after PATH.lock, so no two
             * processes wait for each other. */
            if (mode == SGI_EXCLUSIVE && b->walfd >= 0) {
                rc = flock_deadline(b, b->walfd, b->walpath, LOCK_EX,
                                    &deadline, err);
                if (rc != SG_OK) {
                    flock(b->lockfd, LOCK_UN);
                    return rc;
                }
            }
            b->lock_checked = t;
            b->held = mode;
            return SG_OK;
        }
        /* Deleted or replaced: exclusion only works if every process
         * locks the same file, so lock the one the path names now. */
        flock(b->lockfd, LOCK_UN);
        sgi_gdbm_close_lockfile(b);
        sgi_gdbm_close_db(b);
        /* Give up only once the lock timeout is spent too: a waiter that
         * the unfair flock() polling leaves behind for a while may see a
         * few deletions in a row without anything being wrong. */
        if (tries >= 5 && (deadline == 0 || mono_ms() >= deadline))
            return sgi_err(err, SG_ESTORE, 0, "store %s: lock file %s keeps "
                           "changing; is something deleting it?", b->dbpath,
                           b->lockpath);
    }
}

/* Bump the write counter for a change that leaves every record as it was
 * (a compaction's rename of PATH): figures that were right before it
 * (counters.c, stamped with the counter) stay right, so their stamp moves
 * with it.  Caller holds PATH.lock exclusively.  Returns the new value. */
uint64_t sgi_gdbm_bump_same(gdbm_be *b)
{
    uint64_t old = __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE);
    uint64_t now = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);

    if (b->page->fig.at == old)
        b->page->fig.at = now;
    return now;
}
