/*
 * backend_gdbm.c - the GDBM backend: one GDBM file shared by many
 * processes, serialised by flock() on a lock file, made crash-safe by a
 * write-ahead log and a checkpoint of our own.
 *
 * Files, for a store at PATH:
 *   PATH        the GDBM file every read goes to
 *   PATH.lock   the flock target; its first page is mmap'ed shared and
 *               holds a write counter and a "dirty" flag
 *   PATH.wal    every change since the last checkpoint, appended
 *   PATH.ckpt   a copy of PATH taken while it was known to be clean
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
 * When the log outgrows the GDBM file (and CKPT_MIN_LOG), a clean PATH is
 * verified (every record read back), copied to PATH.ckpt and the log
 * truncated, which bounds both the log and the rebuild time; the copy
 * costs about one byte per byte logged.
 *
 * Size.  Writers make GDBM reuse freed space (tune_writer), and a
 * checkpoint first compacts a PATH that holds more than COMPACT_RATIO
 * times its live bytes plus COMPACT_SLACK (compact).  So PATH stays
 * within that bound of its live data, the checkpoint (a copy of PATH) too,
 * and the log within max(PATH, CKPT_MIN_LOG) plus one record.
 *
 * Closing a GDBM writer handle always syncs it (msync + fsync: measured
 * 4.7 ms per close on ext4), and handles go stale every time another
 * process writes.  Durability is the log's job, not GDBM's, so before
 * closing a writer we point its descriptor at /dev/null (dup3 keeps the
 * number, so nothing else can get it) and the sync becomes a no-op.
 * Writers use GDBM_NOMMAP for that reason (an msync could not be
 * redirected); readers keep GDBM's mmap, whose close never syncs.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_FILE_SIZE 4096
#define LOCK_MAGIC 0x31304b434c475353ULL   /* "SSGLCK01" */
#define WAL_MAGIC 0x4c574753u              /* "SGWL" */
#define WAL_DELETE 0xffffffffu             /* vlen of a delete record */
#define CKPT_MIN_LOG (256 * 1024)          /* never checkpoint below this */
/* Compact PATH (rewrite it from its live records) when, at a checkpoint,
 * it holds more than COMPACT_RATIO times its live bytes (keys plus values)
 * plus COMPACT_SLACK; a fresh GDBM file of sessions is 1.1 to 1.4 times
 * its live bytes (buckets, directory, header), so compaction comes only
 * after real waste, and every checkpoint bounds PATH again. */
#define COMPACT_RATIO 2
#define COMPACT_SLACK (128 * 1024)
#define READ_INODE_CHECK_MS 1000
#define WRITER_READS_MAX 8    /* then reopen as an mmap reader */
/* GDBM 1.23's header magics with 64-bit offsets (plain and numsync), whose
 * header starts: int magic, block_size; off_t dir; int dir_size, dir_bits,
 * bucket_size, bucket_elems; off_t next_block. */
#define GDBM_HDR_MAGIC64 0x13579acfu
#define GDBM_HDR_NUMSYNC64 0x13579ad1u
#define GDBM_HDR_NEXT_BLOCK 32

typedef struct lock_page {
    uint64_t magic;
    uint64_t writes;      /* bumped before every change to the GDBM file */
    uint32_t dirty;       /* raised while a change is in flight */
    uint32_t starved;     /* with dirty: a rebuild failed for lack of
                           * space, so read-only handles read the file as
                           * it is, as writers do (see refresh) */
    /* Writer preference (see defer_to_writers): */
    uint32_t writers_waiting; /* writers polling for PATH.lock now */
    uint32_t unused;
    int64_t writer_until; /* CLOCK_MONOTONIC ms: until then, new readers
                           * let a waiting writer go first */
} lock_page;

typedef struct wal_rec {
    uint32_t magic;
    uint32_t crc;         /* CRC-32 of klen, vlen, key and value */
    uint32_t klen;
    uint32_t vlen;        /* WAL_DELETE for a delete */
} wal_rec;

typedef struct gdbm_be {
    char *dbpath, *lockpath, *walpath, *ckptpath, *tmppath;  /* Owned */
    int lockfd;            /* -1 when closed */
    dev_t lock_dev;
    ino_t lock_ino;
    lock_page *page;       /* Owned mapping of the lock file */
    int walfd;             /* Owned; -1 when closed */
    int nullfd;            /* Owned /dev/null, for closing writers */
    GDBM_FILE db;          /* Owned; NULL when closed */
    int db_writer;         /* db was opened as a writer */
    dev_t db_dev;
    ino_t db_ino;
    off_t db_size;         /* PATH's size when db was opened */
    int verified;          /* PATH read back whole during this exclusive
                            * hold, at write counter verified_writes: a
                            * checkpoint need not walk it again */
    uint64_t verified_writes, verified_live;
    size_t verified_records;
    int64_t inode_checked; /* monotonic ms of the last db inode check */
    int64_t lock_checked;  /* monotonic ms of the last lock inode check */
    int writer_reads;      /* reads served by a writer handle in a row */
    uint64_t seen;         /* counter value db is current with */
    int held;              /* SGI_* */
    int bumped;            /* counter bumped during this exclusive hold */
    int wrote;             /* a change was made during this hold */
    int broken;            /* a GDBM call failed: reopen before next use */
    int damaged;           /* the last open failed on the file's format */
    int truncated;         /* ... because PATH is shorter than its header
                            * says (see db_truncated) */
    int salvaging;         /* check --repair's salvage: open PATH as it is */
    int fixing;            /* recover_writable is setting up PATH.lock */
    int degraded;          /* a rebuild failed for lack of space: read as-is */
    int salvage;           /* unreadable, and no history: no writes until
                            * check --repair salvaged it (see g_open) */
    mode_t mode;
    sg_store *st;          /* Borrowed: back pointer for options/counters */
} gdbm_be;

static gdbm_be *be_of(sg_store *st)
{
    return st->be_data;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* The fix to suggest for a system error.  EFBIG is a file size limit
 * (ulimit -f, or the filesystem's), not a full disk. */
static const char *sys_fix(int e, const char *other)
{
    return e == ENOSPC || e == EDQUOT ? "free disk space, then retry"
         : e == EFBIG ? "raise the file size limit (ulimit -f), then retry"
         : e == EACCES || e == EPERM ? "check the files' owner and mode"
         /* Not the disk: the process (EMFILE) or the system (ENFILE) ran
          * out of file descriptors. */
         : e == EMFILE ? "too many open files in this process: raise its "
                         "limit (ulimit -n, LimitNOFILE=) or close some"
         : e == ENFILE ? "too many open files on this system: raise "
                         "fs.file-max or close some"
         : e == ENOMEM ? "out of memory"
         : e == EROFS ? "the filesystem is read-only"
         : other;
}

static sg_status sys_fail(gdbm_be *b, sg_error *err, const char *what,
                          const char *file, int e)
{
    const char *fix = sys_fix(e, "check the disk and the path");
    return sgi_err(err, SG_ESTORE, e, "store %s: %s %s: %s (%s)", b->dbpath,
                   what, file, strerror(e), fix);
}

static sg_status gdbm_fail(gdbm_be *b, sg_error *err, const char *what)
{
    int sys = gdbm_check_syserr(gdbm_errno) ? errno : 0;
    b->broken = 1;
    /* GDBM reports a failed allocation as GDBM_MALLOC_ERROR or, when its
     * bucket cache cannot grow (1.23: cache_elem_new), not at all:
     * gdbm_errno stays GDBM_NO_ERROR.  Out of memory, not damage: no
     * repair to suggest. */
    if (gdbm_errno == GDBM_MALLOC_ERROR ||
        (gdbm_errno == GDBM_NO_ERROR && errno == ENOMEM))
        return sgi_err(err, SG_ENOMEM, 0, "store %s: %s failed: out of "
                       "memory", b->dbpath, what);
    if (sys) {
        /* EINVAL from a seek is GDBM following a garbage offset in a
         * damaged file, not a disk problem. */
        const char *fix = sys_fix(sys, sys == EINVAL
                                  ? "run sessgatectl check --repair"
                                  : "check the disk");
        return sgi_err(err, SG_ESTORE, sys, "store %s: %s failed (%s): %s "
                       "(%s)", b->dbpath, what, gdbm_strerror(gdbm_errno),
                       strerror(sys), fix);
    }
    return sgi_err(err, SG_ESTORE, 0, "store %s: %s failed: %s (run "
                   "sessgatectl check --repair)", b->dbpath, what,
                   gdbm_strerror(gdbm_errno));
}

/* Owner, group and mode.  No code path may narrow those of a store's
 * existing files (DESIGN section 9): a deployment chowns the store to its
 * service user with mode 0660 and runs sessgatectl as root or as another
 * member of the group, and a rebuild, checkpoint or recreated lock file
 * that came out root-owned 0600 locked the service out of its own store.
 * So a file we create (a new PATH.lock, or the PATH.tmp we rename over
 * PATH or PATH.ckpt) takes the owner, group and mode of the file it
 * replaces, or else of the store's other files; a file we open is never
 * chmod'ed, except that --group adds group read and write.  Not root, we
 * cannot give a file away: it keeps the group (we are in it, or we could
 * not share the store through it) and the mode, and the owner becomes us.
 * Only a store with no file yet takes 0600 (0660 with --group). */

/* The store file to copy owner and mode from: `like` if it exists, else
 * the first of PATH, PATH.wal, PATH.ckpt, PATH.lock that exists and is
 * not fd's own file.  0 when the store has none. */
static int owner_ref(gdbm_be *b, int fd, const char *like, struct stat *ref)
{
    struct stat self;
    int known = fstat(fd, &self) == 0;
    const char *cand[] = { like, b->dbpath, b->walpath, b->ckptpath,
                           b->lockpath };
    for (size_t i = 0; i < sizeof cand / sizeof *cand; i++) {
        if (!cand[i] || stat(cand[i], ref) < 0 || !S_ISREG(ref->st_mode))
            continue;
        if (known && ref->st_dev == self.st_dev && ref->st_ino == self.st_ino)
            continue;
        return 1;
    }
    return 0;
}

/* fd is a file we just created, to replace `like` (NULL: a new file of
 * the store): give it the owner, group and mode it should have. */
static void adopt_owner(gdbm_be *b, int fd, const char *like)
{
    struct stat ref, cur;
    if (fd < 0 || b->st->opt.readonly || fstat(fd, &cur) < 0)
        return;
    mode_t want;
    if (owner_ref(b, fd, like, &ref)) {
        if ((ref.st_uid != cur.st_uid || ref.st_gid != cur.st_gid) &&
            fchown(fd, ref.st_uid, ref.st_gid) < 0 && ref.st_gid != cur.st_gid)
            (void)fchown(fd, (uid_t)-1, ref.st_gid);
        want = ref.st_mode & 0777;
        if (b->st->opt.group)
            want |= 0660;
    } else if (b->st->opt.group) {
        /* 0660 whatever the umask (which would make it 0640 under the
         * usual 022). */
        want = b->mode;
    } else {
        return;
    }
    if ((cur.st_mode & 0777) != want)
        (void)fchmod(fd, want);
}

/* fd is an existing store file: with --group it gains group read and
 * write; nothing is ever taken away.  A file someone else owns is left
 * as it is (fchmod fails). */
static void widen_mode(gdbm_be *b, int fd)
{
    struct stat cur;
    if (!b->st->opt.group || b->st->opt.readonly || fd < 0 ||
        fstat(fd, &cur) < 0 || (cur.st_mode & 0660) == 0660)
        return;
    (void)fchmod(fd, (cur.st_mode & 0777) | 0660);
}

/* open(path, flags | O_CREAT, mode) that gives a file it creates the
 * store's owner and mode (adopt_owner) and widens one it finds
 * (widen_mode). */
static int open_store_file(gdbm_be *b, const char *path, int flags)
{
    int fd = open(path, flags | O_CREAT | O_EXCL, b->mode);
    if (fd >= 0) {
        adopt_owner(b, fd, NULL);
        return fd;
    }
    if (errno != EEXIST)
        return -1;
    fd = open(path, flags, b->mode);
    if (fd >= 0)
        widen_mode(b, fd);
    return fd;
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Whether the store has any file but its lock file. */
static int store_exists(gdbm_be *b)
{
    return file_exists(b->dbpath) || file_exists(b->walpath) ||
           file_exists(b->ckptpath);
}

static sg_status g_open(sg_store *st, const char *location, sg_error *err);
static void g_close(sg_store *st);

/* For a read-only handle: do, through a short-lived writable handle on the
 * same store, what only a writer may (recreate a deleted lock file, rebuild
 * after a writer died mid-change), then let the read-only handle go on.
 * An operator's first `sessgatectl list` after an incident used to fail
 * ("open the store writable once") until some writer came along.  Without
 * write access the error says what is wrong and who can fix it (`why`:
 * what needed the writer).
 * Caller holds no lock (the writable open takes the exclusive one). */
static sg_status recover_writable(gdbm_be *b, const char *why, sg_error *err)
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

/* ------------------------------------------------------------ lock file */

static void close_lockfile(gdbm_be *b)
{
    if (b->page)
        munmap(b->page, LOCK_FILE_SIZE);
    b->page = NULL;
    if (b->lockfd >= 0)
        close(b->lockfd);
    b->lockfd = -1;
}

/* Open (creating if needed) and map the lock file. */
static sg_status open_lockfile(gdbm_be *b, sg_error *err)
{
    int ro = b->st->opt.readonly;
    int fd = ro ? open(b->lockpath, O_RDONLY | O_CLOEXEC)
                : open_store_file(b, b->lockpath, O_RDWR | O_CLOEXEC);
    if (fd < 0 && ro && errno == ENOENT && store_exists(b)) {
        /* PATH.lock deleted (by hand, by a cleaner of "stale" lock files)
         * from a store that exists: "does not exist" sent operators
         * looking for a store that was there.  Recreate it the way any
         * writer would (which also rebuilds the store if the deleted page
         * may have carried a dead writer's flag), then open it. */
        sg_status rc = recover_writable(b, "its lock file is missing "
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
                       : sys_fix(e, "check the directory exists and is "
                                 "writable"));
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return sys_fail(b, err, "stat", b->lockpath, e);
    }
    /* A read-only open succeeds on a directory (or a fifo, which would
     * block here): only a regular file can carry the lock page. */
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sgi_err(err, SG_ESTORE, EISDIR, "store %s: lock file %s is "
                       "not a regular file (something else is in its place: "
                       "remove it)", b->dbpath, b->lockpath);
    }
    if (sb.st_size < LOCK_FILE_SIZE && ro && store_exists(b) && !b->fixing) {
        /* Made anew by hand (touch) after a deletion: have a writer set
         * it up, as for a missing one. */
        close(fd);
        b->fixing = 1;
        sg_status rc = recover_writable(b, "its lock file is not set up "
                                        "(made by hand?)", err);
        if (rc == SG_OK)
            rc = open_lockfile(b, err);
        b->fixing = 0;
        return rc;
    }
    /* Growing the file is idempotent, so racing creators are harmless. */
    if (sb.st_size < LOCK_FILE_SIZE && (ro || ftruncate(fd, LOCK_FILE_SIZE) < 0)) {
        int e = ro ? EACCES : errno;
        close(fd);
        return sys_fail(b, err, "cannot size lock file", b->lockpath, e);
    }
    void *p = mmap(NULL, LOCK_FILE_SIZE, ro ? PROT_READ : PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return sys_fail(b, err, "cannot map lock file", b->lockpath, e);
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
        if (file_exists(b->ckptpath) ||
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
        return sys_fail(b, err, "flock", path, errno);
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
            rc = sys_fail(b, err, "flock", path, errno);
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

/* -------------------------------------------------------------- GDBM file */

/* Close a GDBM handle without the sync gdbm_close does for writers (see
 * the top of the file for why). */
static void close_gdbm(gdbm_be *b, GDBM_FILE db, int writer)
{
    if (!db)
        return;
    if (writer && b->nullfd >= 0)
        dup3(b->nullfd, gdbm_fdesc(db), O_CLOEXEC);
    gdbm_close(db);
}

static void close_db(gdbm_be *b)
{
    close_gdbm(b, b->db, b->db_writer);
    b->db = NULL;
}

/* Whether a checkpoint or log exists to rebuild PATH from. */
static int has_history(gdbm_be *b)
{
    struct stat sb;
    return file_exists(b->ckptpath) ||
           (b->walfd >= 0 && fstat(b->walfd, &sb) == 0 && sb.st_size > 0);
}

/* Create a new, empty PATH whole or not at all: GDBM creates the file and
 * writes its header after, and a process killed in between would leave an
 * empty PATH, which cannot be told from a store truncated to nothing.  So
 * it is made at PATH.tmp and renamed into place.  Caller holds the
 * exclusive lock. */
static sg_status create_db(gdbm_be *b, sg_error *err)
{
    unlink(b->tmppath);
    gdbm_errno = GDBM_NO_ERROR;
    GDBM_FILE db = gdbm_open(b->tmppath, 0, GDBM_NEWDB | GDBM_NOLOCK |
                             GDBM_NOMMAP | GDBM_CLOEXEC, b->mode, NULL);
    sg_status rc = SG_OK;
    if (!db)
        rc = gdbm_fail(b, err, "create");
    else {
        adopt_owner(b, gdbm_fdesc(db), b->dbpath);
        if (gdbm_close(db) != 0)
            rc = gdbm_fail(b, err, "create (close)");
    }
    if (rc == SG_OK && rename(b->tmppath, b->dbpath) < 0)
        rc = sys_fail(b, err, "cannot create", b->dbpath, errno);
    if (rc != SG_OK)
        unlink(b->tmppath);
    return rc;
}

static int db_truncated(int fd);
static void note_verified(gdbm_be *b, uint64_t live, size_t records);

/* Make a writer handle reuse the space it frees.  GDBM 1.23's defaults
 * never merge adjacent free blocks and keep most freed space in per-bucket
 * lists of six entries that only that bucket's keys draw from; a session
 * rewritten with data of another size leaves its old block behind as a
 * fragment too small for the next, larger value, which comes from the end
 * of the file.  Measured, 120 sessions (~175 KB live) rewritten with 150 to
 * 2,650-byte values, GDBM alone: 5.8 / 11.5 / 17.2 MB after 10k / 20k / 30k
 * stores, as issue 19 saw; with GDBM_SETCOALESCEBLKS and GDBM_SETCENTFREE
 * 0.24 MB flat (0.27 MB after 200k).  The options are per handle, not
 * stored in the file, so every writer handle sets them. */
static void tune_writer(GDBM_FILE db)
{
    int on = 1;
    (void)gdbm_setopt(db, GDBM_SETCOALESCEBLKS, &on, sizeof on);
    (void)gdbm_setopt(db, GDBM_SETCENTFREE, &on, sizeof on);
}

/* Open PATH through a fresh handle: a writer under the exclusive lock, a
 * reader otherwise.  SG_ENOTFOUND when the file does not exist and may not
 * be created here. */
static sg_status open_db(gdbm_be *b, sg_error *err)
{
    close_db(b);
    int writer = b->held == SGI_EXCLUSIVE && !b->st->opt.readonly;
    struct stat st0;
    if (writer && stat(b->dbpath, &st0) < 0) {
        if (errno != ENOENT)
            return sys_fail(b, err, "stat", b->dbpath, errno);
        /* Never create an empty file where there is history to rebuild. */
        if (has_history(b))
            return SG_ENOTFOUND;
        sg_status rc = create_db(b, err);
        if (rc != SG_OK)
            return rc;
    } else if (writer && st0.st_size == 0) {
        /* GDBM would make an empty file a new, empty store (it does so
         * even without GDBM_WRCREAT) and every session would silently be
         * gone.  We never leave an empty PATH (create_db), so unless
         * nothing was ever written here (an empty file made for us, no
         * log, write counter 0) it is a store truncated to nothing:
         * damage, rebuilt from the log like any other. */
        if (has_history(b) || __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE)) {
            b->damaged = 1;
            gdbm_errno = GDBM_EMPTY_DATABASE;
            return gdbm_fail(b, err, "open");
        }
        sg_status rc = create_db(b, err);
        if (rc != SG_OK)
            return rc;
    }
    int flags = GDBM_NOLOCK | GDBM_CLOEXEC;
    flags |= writer ? GDBM_WRITER | GDBM_NOMMAP : GDBM_READER;
    /* Read the counter before opening: a writer slipping in after makes
     * us reopen next time, never the reverse. */
    uint64_t now = __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE);
    gdbm_errno = GDBM_NO_ERROR;
    b->db = gdbm_open(b->dbpath, 0, flags, b->mode, NULL);
    if (!b->db) {
        if (gdbm_errno == GDBM_FILE_OPEN_ERROR && errno == ENOENT)
            return SG_ENOTFOUND;
        /* A system error (EACCES, EMFILE) or no memory is reported; a
         * format error (bad magic, bad header, truncated) means damage we
         * rebuild.  (Rebuilding a sound store for want of memory would
         * only cost another allocation failure or a needless rebuild.) */
        b->damaged = gdbm_errno != GDBM_MALLOC_ERROR &&
                     (!gdbm_check_syserr(gdbm_errno) ||
                      gdbm_errno == GDBM_FILE_EOF);
        return gdbm_fail(b, err, "open");
    }
    b->db_writer = writer;
    b->truncated = !b->salvaging && db_truncated(gdbm_fdesc(b->db));
    if (b->truncated && !has_history(b)) {
        /* Nothing to rebuild from: serve what GDBM can read, take no
         * writes until check --repair has salvaged it (as for any file
         * that does not read back whole, see g_open). */
        b->salvage = 1;
    } else if (b->truncated) {
        /* GDBM opens it and serves what lies before the cut; a write may
         * even succeed, and a checkpoint then made the damage the history
         * every rebuild starts from.  Damage: rebuilt from the log. */
        close_db(b);
        b->damaged = 1;
        b->broken = 1;
        return sgi_err(err, SG_ESTORE, 0, "store %s: truncated (shorter "
                       "than its header says)", b->dbpath);
    }
    b->damaged = 0;
    if (writer) {
        widen_mode(b, gdbm_fdesc(b->db));
        tune_writer(b->db);
    }
    struct stat sb;
    if (fstat(gdbm_fdesc(b->db), &sb) == 0) {
        b->db_dev = sb.st_dev;
        b->db_ino = sb.st_ino;
        b->db_size = sb.st_size;
    }
    b->inode_checked = mono_ms();
    b->writer_reads = 0;
    b->seen = now;
    b->broken = 0;
    return SG_OK;
}

/* Whether the GDBM file open on fd is shorter than its header says: cut
 * by an operator's mistake or a filesystem fault.  GDBM 1.23 does not
 * notice (it opens the file and fails only on the records past the cut)
 * and never leaves a file shorter than its header's next_block itself: it
 * pads the file out to it after every update (a writer killed mid-extend
 * leaves it longer, which GDBM reports as needing recovery).  Other
 * header formats are not checked. */
static int db_truncated(int fd)
{
    unsigned char h[GDBM_HDR_NEXT_BLOCK + 8];
    struct stat sb;
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h || fstat(fd, &sb) < 0)
        return 0;   /* too short for a header: gdbm_open refuses it */
    uint32_t magic;
    int64_t next;
    memcpy(&magic, h, sizeof magic);
    memcpy(&next, h + GDBM_HDR_NEXT_BLOCK, sizeof next);
    if (magic != GDBM_HDR_MAGIC64 && magic != GDBM_HDR_NUMSYNC64)
        return 0;
    return next > (int64_t)sb.st_size;
}

/* Whether every record of db reads back: a full walk, for files we did
 * not write (see g_open) and before every checkpoint.  GDBM reads a
 * record's key and value together, so a walk that fetches each one
 * touches every block in use.  *live (may be NULL) gets the bytes of
 * keys and values: the store's live data. */
static int db_readable(GDBM_FILE db, uint64_t *live)
{
    gdbm_count_t n = 0, seen = 0;
    uint64_t bytes = 0;
    if (live)
        *live = 0;
    if (db_truncated(gdbm_fdesc(db)) || gdbm_count(db, &n) != 0)
        return 0;
    gdbm_errno = GDBM_NO_ERROR;
    datum k = gdbm_firstkey(db);
    while (k.dptr) {
        datum v = gdbm_fetch(db, k);
        if (!v.dptr) {
            free(k.dptr);
            return 0;
        }
        free(v.dptr);
        seen++;
        bytes += (uint64_t)k.dsize + (uint64_t)v.dsize;
        datum next = gdbm_nextkey(db, k);
        free(k.dptr);
        k = next;
    }
    if (live)
        *live = bytes;
    return (gdbm_errno == GDBM_ITEM_NOT_FOUND || gdbm_errno == GDBM_NO_ERROR)
           && seen == n;
}

/* Whether PATH still names the file our handle has open. */
static int same_inode(gdbm_be *b)
{
    struct stat sb;
    b->inode_checked = mono_ms();
    return stat(b->dbpath, &sb) == 0 && sb.st_dev == b->db_dev &&
           sb.st_ino == b->db_ino;
}

/* ------------------------------------------------------ log and rebuild */

/* Append one change to the log.  On failure the log is cut back to where
 * it was, so a later append never follows a torn record. */
static sg_status wal_append(gdbm_be *b, const char *key, const char *val,
                            size_t vlen, off_t *before_out, sg_error *err)
{
    size_t klen = strlen(key);
    uint32_t v = val ? (uint32_t)vlen : WAL_DELETE;
    size_t total = sizeof(wal_rec) + klen + (val ? vlen : 0);
    char *buf = malloc(total);
    if (!buf)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", b->dbpath);
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
        return sys_fail(b, err, "cannot append to", b->walpath, e);
    }
    if (b->st->opt.sync && fdatasync(b->walfd) < 0)
        return sys_fail(b, err, "cannot sync", b->walpath, errno);
    return SG_OK;
}

/* Apply the log's valid records to db; *valid gets the length of the
 * valid prefix (a torn tail from a killed writer is ignored). */
static sg_status wal_replay(gdbm_be *b, GDBM_FILE db, off_t *valid,
                            sg_error *err)
{
    *valid = 0;
    struct stat sb;
    if (fstat(b->walfd, &sb) < 0)
        return sys_fail(b, err, "stat", b->walpath, errno);
    size_t size = (size_t)sb.st_size;
    if (size == 0)
        return SG_OK;
    char *buf = malloc(size);
    if (!buf)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory reading "
                       "the log", b->dbpath);
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(b->walfd, buf + got, size - got, (off_t)got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    size_t off = 0;
    sg_status rc = SG_OK;
    while (off + sizeof(wal_rec) <= got) {
        wal_rec h;
        memcpy(&h, buf + off, sizeof h);
        size_t vbytes = h.vlen == WAL_DELETE ? 0 : h.vlen;
        if (h.magic != WAL_MAGIC || h.klen == 0 ||
            h.klen > got - off - sizeof h ||
            vbytes > got - off - sizeof h - h.klen)
            break;
        char *key = buf + off + sizeof h;
        char *val = key + h.klen;
        if (wal_crc(h.klen, h.vlen, key, val) != h.crc)
            break;
        datum k = { key, (int)h.klen };
        int r;
        if (h.vlen == WAL_DELETE) {
            r = gdbm_delete(db, k);
            if (r != 0 && gdbm_errno == GDBM_ITEM_NOT_FOUND)
                r = 0;
        } else {
            datum v = { val, (int)h.vlen };
            r = gdbm_store(db, k, v, GDBM_REPLACE);
        }
        if (r != 0) {
            rc = gdbm_fail(b, err, "rebuild (replaying the log)");
            break;
        }
        off += sizeof h + h.klen + vbytes;
    }
    free(buf);
    *valid = (off_t)off;
    return rc;
}

/* Copy src to dst, which gets the owner and mode of `like` (the file it
 * will replace, see adopt_owner), syncing with --sync. */
static sg_status copy_file(gdbm_be *b, const char *src, const char *dst,
                           const char *like, sg_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sys_fail(b, err, "cannot read", src, errno);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, b->mode);
    if (out < 0) {
        int e = errno;
        close(in);
        return sys_fail(b, err, "cannot create", dst, e);
    }
    adopt_owner(b, out, like);
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
                    rc = sys_fail(b, err, "cannot copy to", dst, errno ? errno : ENOSPC);
                break;
            }
            rc = sys_fail(b, err, "cannot copy to", dst, errno);
            break;
        }
    }
    if (rc == SG_OK && b->st->opt.sync && fsync(out) < 0)
        rc = sys_fail(b, err, "cannot sync", dst, errno);
    if (close(out) < 0 && rc == SG_OK)
        rc = sys_fail(b, err, "cannot write", dst, errno);
    close(in);
    if (rc != SG_OK)
        unlink(dst);
    return rc;
}


static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* Reserve, before GDBM sees it, the room the rebuilt file will need: about
 * the size of the file it replaces plus the log.  Why: on a full disk,
 * gdbm_open of a new file fails while writing its header and libgdbm 1.23
 * leaks that header (4 KiB, measured with LeakSanitizer), so a worker that
 * retried a rebuild on every write would leak without bound; and a rebuild
 * that runs out of room halfway has done all its work for nothing.  With
 * FALLOC_FL_KEEP_SIZE the file's size stays as it was (GDBM still sees an
 * empty or a checkpoint file) while its blocks are allocated.  Filesystems
 * without fallocate simply go on unreserved. */
static sg_status reserve_rebuild(gdbm_be *b, sg_error *err)
{
    off_t want = file_size(b->dbpath);
    off_t have = file_size(b->tmppath);
    if (have > want)
        want = have;
    want += file_size(b->walpath) + 4 * 4096;
    int fd = open(b->tmppath, O_WRONLY | O_CREAT | O_CLOEXEC, b->mode);
    if (fd < 0)
        return sys_fail(b, err, "cannot create", b->tmppath, errno);
    int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, want);
    int e = errno;
    close(fd);
    if (rc < 0 && e != EOPNOTSUPP && e != ENOSYS && e != EINTR) {
        unlink(b->tmppath);
        return sys_fail(b, err, "cannot reserve room to rebuild from",
                        b->walpath, e);
    }
    return SG_OK;
}

/* Rebuild PATH from PATH.ckpt (or nothing) plus the log, under the
 * exclusive lock.  Idempotent: a process killed halfway leaves the dirty
 * flag raised and the next one starts over. */
static sg_status rebuild(gdbm_be *b, sg_check_report *rep, sg_error *err)
{
    close_db(b);
    uint32_t was_dirty = __atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE);
    __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
    b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
    b->bumped = 1;
    sg_status rc = SG_OK;
    unlink(b->tmppath);
    if (file_exists(b->ckptpath))
        rc = copy_file(b, b->ckptpath, b->tmppath, b->dbpath, err);
    if (rc == SG_OK)
        rc = reserve_rebuild(b, err);
    if (rc != SG_OK)
        goto untouched;
    gdbm_errno = GDBM_NO_ERROR;
    GDBM_FILE db = gdbm_open(b->tmppath, 0, GDBM_WRCREAT | GDBM_NOLOCK |
                             GDBM_NOMMAP | GDBM_CLOEXEC, b->mode, NULL);
    if (!db) {
        rc = gdbm_fail(b, err, "rebuild (open checkpoint)");
        goto untouched;
    }
    adopt_owner(b, gdbm_fdesc(db), b->dbpath);
    tune_writer(db);
    off_t valid;
    rc = wal_replay(b, db, &valid, err);
    size_t keys = 0;
    if (rc == SG_OK) {
        gdbm_count_t n;
        if (gdbm_count(db, &n) == 0)
            keys = (size_t)n;
    }
    /* This close may sync: a rebuild is rare and worth making durable. */
    if (gdbm_close(db) != 0 && rc == SG_OK)
        rc = gdbm_fail(b, err, "rebuild (close)");
    if (rc == SG_OK && rename(b->tmppath, b->dbpath) < 0)
        rc = sys_fail(b, err, "cannot replace", b->dbpath, errno);
    if (rc != SG_OK)
        goto untouched;
    /* Cut a torn tail, so that later appends follow valid records. */
    if (ftruncate(b->walfd, valid) < 0)
        return sys_fail(b, err, "cannot truncate", b->walpath, errno);
    __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&b->page->starved, 0, __ATOMIC_RELEASE);
    b->st->recoveries++;
    if (rep) {
        rep->recovered = 1;
        rep->recovered_keys += keys;
    }
    return open_db(b, err);

untouched:
    /* PATH was not touched, so the store is as sound as it was: a flag
     * that was down goes down again.  (Left up, a check --repair that
     * failed on a full disk would leave every later writer a rebuild to
     * do first, failing for the same lack of room.) */
    unlink(b->tmppath);
    __atomic_store_n(&b->page->dirty, was_dirty, __ATOMIC_RELEASE);
    return rc;
}

/* The bytes of all the store's files together. */
static uint64_t files_bytes(gdbm_be *b)
{
    const char *f[] = { b->dbpath, b->walpath, b->ckptpath, b->lockpath };
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        struct stat sb;
        if (stat(f[i], &sb) == 0)
            total += (uint64_t)sb.st_size;
    }
    return total;
}

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
        sg_status rc = gdbm_fail(b, err, "compact (create)");
        unlink(b->tmppath);
        return rc;
    }
    adopt_owner(b, gdbm_fdesc(out), b->dbpath);
    tune_writer(out);
    sg_status rc = SG_OK;
    uint64_t live = 0;
    size_t records = 0;
    gdbm_errno = GDBM_NO_ERROR;
    datum k = gdbm_firstkey(b->db);
    while (k.dptr && rc == SG_OK) {
        datum v = gdbm_fetch(b->db, k);
        if (!v.dptr)
            rc = gdbm_fail(b, err, "compact (read)");
        else if (gdbm_store(out, k, v, GDBM_REPLACE) != 0)
            rc = gdbm_fail(b, err, "compact (write)");
        else {
            live += (uint64_t)k.dsize + (uint64_t)v.dsize;
            records++;
        }
        free(v.dptr);
        datum next = { NULL, 0 };
        if (rc == SG_OK) {
            gdbm_errno = GDBM_NO_ERROR;
            next = gdbm_nextkey(b->db, k);
        }
        free(k.dptr);
        k = next;
    }
    free(k.dptr);
    if (rc == SG_OK && gdbm_errno != GDBM_ITEM_NOT_FOUND)
        rc = gdbm_fail(b, err, "compact (iterate)");
    if (rc == SG_OK && b->st->opt.sync && gdbm_sync(out) != 0)
        rc = gdbm_fail(b, err, "compact (sync)");
    close_gdbm(b, out, 1);   /* no second sync (see the top of the file) */
    if (rc != SG_OK) {
        unlink(b->tmppath);
        return rc;
    }
    b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
    b->bumped = 1;
    if (rename(b->tmppath, b->dbpath) < 0) {
        rc = sys_fail(b, err, "cannot replace", b->dbpath, errno);
        unlink(b->tmppath);
        return rc;
    }
    b->seen = __atomic_add_fetch(&b->page->writes, 1, __ATOMIC_ACQ_REL);
    rc = open_db(b, err);
    if (rc == SG_OK)
        note_verified(b, live, records);   /* every record written back */
    return rc;
}

/* Whether PATH, through a fresh handle, is whole: not truncated, and
 * every record reads back (db_readable).  *live gets its live bytes. */
static void note_verified(gdbm_be *b, uint64_t live, size_t records)
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
    if (open_db(b, &ignored) != SG_OK || gdbm_needs_recovery(b->db) ||
        !db_readable(b->db, live) || gdbm_count(b->db, &n) != 0)
        return 0;
    note_verified(b, *live, (size_t)n);
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
static sg_status checkpoint_as(gdbm_be *b, int force_compact, sg_error *err)
{
    uint64_t live = 0;
    if (!verify_db(b, &live)) {
        sg_error rerr = { 0 };
        __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
        if (rebuild(b, NULL, &rerr) != SG_OK) {
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
    if (force_compact || (uint64_t)file_size(b->dbpath) >
                         COMPACT_RATIO * live + COMPACT_SLACK) {
        sg_error cerr = { 0 };
        if (compact(b, &cerr) != SG_OK) {
            /* Out of room, say: PATH stands as it was; checkpoint that. */
            if (force_compact) {
                if (err && err->code == SG_OK)
                    *err = cerr;
                return cerr.code;
            }
            if (open_db(b, err) != SG_OK)
                return err ? err->code : SG_ESTORE;
        }
    }
    sg_status rc = copy_file(b, b->dbpath, b->tmppath, b->ckptpath, err);
    if (rc == SG_OK && rename(b->tmppath, b->ckptpath) < 0) {
        rc = sys_fail(b, err, "cannot replace", b->ckptpath, errno);
        unlink(b->tmppath);
    }
    if (rc == SG_OK && ftruncate(b->walfd, 0) < 0)
        rc = sys_fail(b, err, "cannot truncate", b->walpath, errno);
    return rc;
}

static sg_status checkpoint(gdbm_be *b, sg_error *err)
{
    return checkpoint_as(b, 0, err);
}

static void maybe_checkpoint(gdbm_be *b)
{
    struct stat wal, db;
    if (fstat(b->walfd, &wal) < 0 || wal.st_size < CKPT_MIN_LOG)
        return;
    if (stat(b->dbpath, &db) < 0 || wal.st_size < db.st_size)
        return;
    checkpoint(b, NULL);   /* on failure the log just keeps growing */
}

/* ------------------------------------------------------------- locking */

/* Make b->db current.  Under the shared lock, returns SG_EEXPIRED
 * (internal: "needs the exclusive lock") when the store must be created or
 * rebuilt first. */
static sg_status refresh(gdbm_be *b, sg_error *err)
{
    int excl = b->held == SGI_EXCLUSIVE;
    int ro = b->st->opt.readonly;
    if (__atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE)) {
        if (excl && !ro) {
            sg_error rerr = { 0 };    /* err may be NULL, or hold one */
            sg_status rc = rebuild(b, NULL, &rerr);
            int e = rerr.sys_errno;
            if (rc != SG_OK && err && err->code == SG_OK)
                *err = rerr;
            b->degraded = rc != SG_OK &&
                          (e == ENOSPC || e == EDQUOT || e == EFBIG);
            if (b->degraded)
                __atomic_store_n(&b->page->starved, 1, __ATOMIC_RELEASE);
            return rc;
        }
        /* A read-only handle cannot rebuild.  Once a writer has tried and
         * found no room, it reads the file as it is, like that writer:
         * refusing sent sessgatectl get/list/export to "open the store
         * writable", which fails the same way until there is room. */
        if (ro && !__atomic_load_n(&b->page->starved, __ATOMIC_ACQUIRE))
            return SG_EEXPIRED;   /* g_lock: recover_writable */
        /* A rebuild already failed for lack of space: serve reads from the
         * file as it is rather than fail every read until space returns. */
        if (!ro && !b->degraded)
            return SG_EEXPIRED;
    } else {
        b->degraded = 0;
        /* Never left over for the next writer killed mid-change. */
        if (excl && !ro && __atomic_load_n(&b->page->starved, __ATOMIC_ACQUIRE))
            __atomic_store_n(&b->page->starved, 0, __ATOMIC_RELEASE);
    }
    uint64_t now = __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE);
    int fresh = b->db && !b->broken && now == b->seen &&
                (!excl || b->db_writer);
    /* A writer handle reads through read(2) (no mmap, see the top of the
     * file); after a run of reads without a write, a reader is cheaper. */
    if (fresh && !excl && b->db_writer && ++b->writer_reads > WRITER_READS_MAX)
        fresh = 0;
    if (fresh && (excl || mono_ms() - b->inode_checked >= READ_INODE_CHECK_MS))
        fresh = same_inode(b);
    /* A writer also looks for a cut (two syscalls): a kept handle goes on
     * writing into a truncated file as if nothing happened. */
    if (fresh && excl && db_truncated(gdbm_fdesc(b->db)))
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
    if (fresh)
        return SG_OK;
    sg_error local = { 0 };
    sg_status rc = open_db(b, &local);
    int damaged = rc == SG_ENOTFOUND ||
                  (rc == SG_OK ? gdbm_needs_recovery(b->db) != 0 : b->damaged);
    if (!damaged) {
        if (rc != SG_OK && err && err->code == SG_OK)
            *err = local;
        return rc;
    }
    /* Missing (with history to rebuild from) or damaged: rebuild from our
     * own checkpoint and log, under the exclusive lock. */
    if (ro && has_history(b))
        return SG_EEXPIRED;       /* g_lock: recover_writable */
    if (ro)
        return sgi_err(err, SG_ESTORE, 0, "store %s: missing or damaged, "
                       "and this handle is read-only (run sessgatectl check "
                       "--repair)", b->dbpath);
    /* Advise check --repair only where it can help: its salvage
     * (gdbm_recover) needs a file GDBM can open. */
    if (rc != SG_ENOTFOUND && !has_history(b))
        return sgi_err(err, SG_ESTORE, 0, "store %s: damaged, with no "
                       "checkpoint or log to rebuild it from: %s (%s)",
                       b->dbpath,
                       rc == SG_OK ? "needs recovery" : gdbm_strerror(gdbm_errno),
                       rc == SG_OK ? "restore a backup, or run sessgatectl "
                       "check --repair to salvage what GDBM can read"
                       : "GDBM cannot read it, so check --repair cannot "
                       "salvage it: restore a backup, or move it away to "
                       "start an empty store");
    if (!excl)
        return SG_EEXPIRED;
    return rebuild(b, NULL, err);
}

static void unlock_fd(gdbm_be *b)
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
static sg_status take(gdbm_be *b, int mode, sg_error *err)
{
    int64_t deadline = 0;
    for (int tries = 0; ; tries++) {
        if (b->lockfd < 0) {
            sg_status rc = open_lockfile(b, err);
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
        close_lockfile(b);
        close_db(b);
        /* Give up only once the lock timeout is spent too: a waiter that
         * the unfair flock() polling leaves behind for a while may see a
         * few deletions in a row without anything being wrong. */
        if (tries >= 5 && (deadline == 0 || mono_ms() >= deadline))
            return sgi_err(err, SG_ESTORE, 0, "store %s: lock file %s keeps "
                           "changing; is something deleting it?", b->dbpath,
                           b->lockpath);
    }
}

static sg_status g_lock(sg_store *st, int mode, sg_error *err)
{
    gdbm_be *b = be_of(st);
    sg_status rc = take(b, mode, err);
    if (rc != SG_OK)
        return rc;
    rc = refresh(b, err);
    if (rc != SG_EEXPIRED) {
        if (rc != SG_OK)
            unlock_fd(b);
        return rc;
    }
    if (st->opt.readonly) {
        /* A rebuild is due and this handle may not write: have a writable
         * handle do it, then read. */
        unlock_fd(b);
        close_db(b);
        rc = recover_writable(b, "a writer died mid-write, or the file is "
                              "damaged", err);
        if (rc == SG_OK)
            rc = take(b, mode, err);
        if (rc == SG_OK && (rc = refresh(b, err)) != SG_OK) {
            unlock_fd(b);
            if (rc == SG_EEXPIRED)
                rc = sgi_err(err, SG_ESTORE, 0, "store %s: keeps needing "
                             "recovery; run sessgatectl check --repair",
                             b->dbpath);
        }
        return rc;
    }
    /* Needs the exclusive lock (create, rebuild): take it, do it, then
     * come back to the mode asked for. */
    unlock_fd(b);
    sg_error xerr = { 0 };
    rc = take(b, SGI_EXCLUSIVE, &xerr);
    if (rc == SG_OK)
        rc = refresh(b, &xerr);
    unlock_fd(b);
    /* A reader whose rebuild just failed for lack of space goes on and
     * reads the file as it is (refresh knows: b->degraded). */
    if (rc != SG_OK && !(mode == SGI_SHARED && b->degraded)) {
        if (err && err->code == SG_OK)
            *err = xerr;
        return rc == SG_EEXPIRED ? sgi_err(err, SG_ESTORE, 0, "store %s: "
                                           "cannot recover", b->dbpath) : rc;
    }
    rc = take(b, mode, err);
    if (rc == SG_OK)
        rc = refresh(b, err);
    if (rc != SG_OK) {
        unlock_fd(b);
        if (rc == SG_EEXPIRED)
            rc = sgi_err(err, SG_ESTORE, 0, "store %s: keeps needing "
                         "recovery; run sessgatectl check --repair", b->dbpath);
    }
    return rc;
}

static void g_unlock(sg_store *st)
{
    gdbm_be *b = be_of(st);
    if (b->held == SGI_UNLOCKED)
        return;
    if (b->wrote && !__atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE))
        maybe_checkpoint(b);
    unlock_fd(b);
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
        return gdbm_fail(b, err, "fetch");
    }
    /* Hand out a NUL-terminated copy: records are text. */
    char *p = realloc(v.dptr, (size_t)v.dsize + 1);
    if (!p) {
        free(v.dptr);
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                       b->dbpath);
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

/* Log a change, then make it in GDBM, with the dirty flag up in between.
 * val NULL: delete. */
static sg_status change(sg_store *st, const char *key, const char *val,
                        size_t len, sg_error *err)
{
    gdbm_be *b = be_of(st);
    if (st->opt.readonly)
        return sgi_err(err, SG_ESTORE, EROFS, "store %s: opened read-only",
                       b->dbpath);
    if (b->salvage && !file_exists(b->ckptpath))
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
        return sys_fail(b, err, "stat", b->dbpath, errno);
    __atomic_store_n(&b->page->dirty, 1, __ATOMIC_RELEASE);
    off_t wal_before = -1;
    /* A local error: best-effort callers pass err NULL (the undo of a
     * rotation, index cleanup), and deciding on *err left the flag up
     * after a clean failure, so every read-only handle then refused to
     * read ("a writer died mid-write") and the next writer had a rebuild
     * to do first, on a disk with no room for one. */
    sg_error werr = { 0 };
    sg_status rc = wal_append(b, key, val, len, &wal_before, &werr);
    if (rc != SG_OK) {
        /* Nothing reached GDBM: if the log is back at its old length (a
         * failed cut leaves it longer), the store is still clean. */
        struct stat ws;
        if (wal_before >= 0 && fstat(b->walfd, &ws) == 0 &&
            ws.st_size == wal_before)
            __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
        if (err && err->code == SG_OK)
            *err = werr;
        return rc;
    }
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
    if (r != 0) {
        sg_error gerr = { 0 };
        gdbm_fail(b, &gerr, val ? "write" : "delete");
        int e = gerr.sys_errno;
        if (e == ENOSPC || e == EFBIG || e == EDQUOT) {
            /* Out of space happens only while GDBM extends the file, and
             * GDBM writes new space before it rewrites anything referenced
             * (buckets, directory, header)... except the last write of
             * all: 1.23 pads the file out to its last block after writing
             * the header.  That write fails past a file size limit that is
             * not a multiple of the block size (ulimit -f counts KiB), and
             * then the change is whole: cutting the file back cut off the
             * record the bucket and header now point to, and every later
             * read failed ("Malformed hash table").  So first look: a
             * fresh handle that sees the change means it is made. */
            close_db(b);
            if (open_db(b, NULL) == SG_OK && !gdbm_needs_recovery(b->db) &&
                change_landed(b, key, val, len)) {
                __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
                return SG_OK;
            }
            /* Otherwise nothing referenced changed: cutting the file and
             * the log back to their sizes before this change restores the
             * last consistent state.  A clean error. */
            close_db(b);
            if (truncate(b->dbpath, dbst.st_size) == 0 &&
                wal_before >= 0 && ftruncate(b->walfd, wal_before) == 0 &&
                open_db(b, NULL) == SG_OK && !gdbm_needs_recovery(b->db)) {
                __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
                if (err && err->code == SG_OK)
                    *err = gerr;
                return gerr.code;
            }
        }
        /* GDBM may be half-changed.  The change is in the log, so a
         * rebuild makes the store whole and includes it: then it
         * succeeded.  If the rebuild fails too, the flag stays up and the
         * next locker rebuilds; the caller gets the error. */
        if (rebuild(b, NULL, NULL) == SG_OK)
            return SG_OK;
        if (err && err->code == SG_OK)
            *err = gerr;
        return gerr.code;
    }
    __atomic_store_n(&b->page->dirty, 0, __ATOMIC_RELEASE);
    return SG_OK;
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

/* Walk every key.  The callback must not change the store (GDBM's
 * iteration order breaks under deletes): collect, then act. */
static sg_status g_keys(sg_store *st, sgi_key_fn fn, void *arg, sg_error *err)
{
    gdbm_be *b = be_of(st);
    gdbm_errno = GDBM_NO_ERROR;
    datum k = gdbm_firstkey(b->db);
    while (k.dptr) {
        char *key = realloc(k.dptr, (size_t)k.dsize + 1);
        if (!key) {
            free(k.dptr);
            return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                           b->dbpath);
        }
        key[k.dsize] = '\0';
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
        return gdbm_fail(b, err, "iterate");
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
        char *key = realloc(k.dptr, (size_t)k.dsize + 1);
        if (!key) {
            free(k.dptr);
            return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory",
                           b->dbpath);
        }
        key[k.dsize] = '\0';
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
        return gdbm_fail(b, err, "iterate");
    c->done = 1;
    return SG_OK;
}

/* Repair: rebuild from checkpoint + log (which also compacts the file),
 * then take a fresh checkpoint.  Caller holds the exclusive lock. */
static sg_status g_check(sg_store *st, int repair, sg_check_report *rep,
                         sg_error *err)
{
    gdbm_be *b = be_of(st);
    if (!repair)
        return SG_OK;
    sg_status rc;
    if (has_history(b)) {
        /* A rebuild starts from the checkpoint, a copy of PATH as it
         * was, waste and all: compact too (below). */
        rc = rebuild(b, rep, err);
        if (rc == SG_OK)
            return checkpoint_as(b, 1, err);
    } else {
        /* No history of our own: salvage what GDBM can still read (of a
         * truncated file too). */
        b->salvaging = 1;
        rc = open_db(b, err);
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
            rc = gdbm_fail(b, err, "recover");
        if (rc == SG_OK && gdbm_count(b->db, &after) != 0)
            after = rcvr.recovered_keys;
        size_t lost = counted && before > after ? (size_t)(before - after)
                                                : rcvr.failed_keys;
        if (rc == SG_OK && after == 0 && (lost > 0 || rcvr.failed_buckets > 0)) {
            /* Nothing read back: an empty store is no repair.  Put the
             * damaged file back (GDBM renamed it to the backup name) and
             * say so, as for a file GDBM cannot open at all. */
            close_db(b);
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
    }
    if (rc == SG_OK)
        rc = checkpoint(b, err);
    return rc;
}

/* sessgatectl compact: rewrite PATH from its live records, then take a
 * checkpoint (which empties the log).  Caller holds the exclusive lock. */
static sg_status g_compact(sg_store *st, sg_compact_report *rep,
                           sg_error *err)
{
    gdbm_be *b = be_of(st);
    rep->bytes_before = files_bytes(b);
    sg_status rc = checkpoint_as(b, 1, err);
    rep->bytes_after = files_bytes(b);
    if (rc == SG_OK) {
        rep->records = b->verified ? b->verified_records : 0;
        rep->live_bytes = b->verified ? b->verified_live : 0;
        rep->compacted = 1;
    }
    return rc;
}

/* Room for `bytes` of changes in the log and in PATH, allocated now
 * (fallocate with FALLOC_FL_KEEP_SIZE: the sizes stay, the blocks past
 * the end are ours, so the appends and GDBM's extensions that follow
 * cannot meet ENOSPC), and checked against a file size limit (which
 * fallocate does not apply: ulimit -f would give EFBIG halfway).  PATH
 * gets more, for GDBM's bucket splits and blocks.  A bound, not a
 * promise: a directory doubling in a huge store may need more, and then
 * the change that needs it fails whole, as without a reservation. */
static sg_status g_reserve(sg_store *st, size_t bytes, sg_error *err)
{
    gdbm_be *b = be_of(st);
    struct rlimit rl;
    int limited = getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
                  rl.rlim_cur != RLIM_INFINITY;
    struct { int fd; const char *path; off_t room; } f[2] = {
        { b->walfd, b->walpath, (off_t)bytes },
        { b->db ? gdbm_fdesc(b->db) : -1, b->dbpath,
          (off_t)bytes + 6 * 4096 },
    };
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        if (f[i].fd < 0 || fstat(f[i].fd, &sb) < 0)
            continue;
        if (limited && (rlim_t)(sb.st_size + f[i].room) > rl.rlim_cur)
            return sys_fail(b, err, "no room for the change in", f[i].path,
                            EFBIG);
        if (fallocate(f[i].fd, FALLOC_FL_KEEP_SIZE, sb.st_size,
                      f[i].room) < 0 &&
            errno != EOPNOTSUPP && errno != ENOSYS && errno != EINTR)
            return sys_fail(b, err, "no room for the change in", f[i].path,
                            errno);
    }
    return SG_OK;
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
    close_db(b);
    close_lockfile(b);
    if (b->walfd >= 0)
        close(b->walfd);
    if (b->nullfd >= 0)
        close(b->nullfd);
    free(b->dbpath);
    free(b->lockpath);
    free(b->walpath);
    free(b->ckptpath);
    free(b->tmppath);
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

static sg_status g_open(sg_store *st, const char *location, sg_error *err)
{
    if (!*location)
        return sgi_err(err, SG_EINVAL, 0, "store: empty path (pass --store "
                       "PATH or set SESSGATE_STORE)");
    gdbm_be *b = calloc(1, sizeof *b);
    if (!b)
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", location);
    b->lockfd = b->walfd = b->nullfd = -1;
    b->st = st;
    b->mode = st->opt.group ? 0660 : 0600;
    st->be_data = b;
    b->dbpath = strdup(location);
    b->lockpath = suffixed(location, ".lock");
    b->walpath = suffixed(location, ".wal");
    b->ckptpath = suffixed(location, ".ckpt");
    b->tmppath = suffixed(location, ".tmp");
    if (!b->dbpath || !b->lockpath || !b->walpath || !b->ckptpath || !b->tmppath) {
        g_close(st);
        return sgi_err(err, SG_ENOMEM, 0, "store %s: out of memory", location);
    }
    sg_status rc = open_lockfile(b, err);
    if (rc == SG_OK) {
        int ro = st->opt.readonly;
        b->walfd = ro ? open(b->walpath, O_RDONLY | O_CLOEXEC)
                      : open_store_file(b, b->walpath,
                                        O_RDWR | O_APPEND | O_CLOEXEC);
        if (b->walfd < 0 && !(ro && errno == ENOENT))
            rc = sys_fail(b, err, "cannot open", b->walpath, errno);
        if (!ro) {
            b->nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        }
    }
    /* Open (create, or recover) the GDBM file now so errors show here.  A
     * store that predates its log gets a checkpoint, or a rebuild would
     * start from nothing. */
    if (rc == SG_OK && !st->opt.readonly) {
        sg_error xerr = { 0 };
        rc = g_lock(st, SGI_EXCLUSIVE, &xerr);
        if (rc != SG_OK && (xerr.sys_errno == ENOSPC || xerr.sys_errno == EDQUOT ||
                            xerr.sys_errno == EFBIG)) {
            /* A rebuild is due but there is no room for it: open anyway,
             * reads serve the file as it is, writes fail until space
             * returns (and then rebuild first). */
            rc = g_lock(st, SGI_SHARED, err);
            if (rc == SG_OK)
                g_unlock(st);
            goto done;
        }
        if (rc != SG_OK && err && err->code == SG_OK)
            *err = xerr;
        if (rc == SG_OK) {
            struct stat wal;
            if (!file_exists(b->ckptpath) && fstat(b->walfd, &wal) == 0 &&
                wal.st_size == 0) {
                gdbm_count_t n = 0;
                /* The first checkpoint of a file we did not write must not
                 * copy damage: a copy of a truncated file would become the
                 * history every later rebuild and repair start from, and
                 * GDBM's own salvage would never run.  An unreadable file
                 * takes no writes either (a rebuild from a log without its
                 * checkpoint would replace it with the log alone) until
                 * check --repair has salvaged it. */
                uint64_t live = 0;
                if (gdbm_count(b->db, &n) != 0 ||
                    (n > 0 && !db_readable(b->db, &live)))
                    b->salvage = 1;
                else if (n > 0) {
                    note_verified(b, live, (size_t)n);
                    rc = checkpoint(b, err);
                }
            }
            g_unlock(st);
        }
    } else if (rc == SG_OK) {
        rc = g_lock(st, SGI_SHARED, err);
        if (rc == SG_OK)
            g_unlock(st);
    }
done:
    if (rc != SG_OK)
        g_close(st);
    return rc;
}

const sgi_backend sgi_backend_gdbm = {
    .scheme = "gdbm",
    .open = g_open,
    .close = g_close,
    .lock = g_lock,
    .unlock = g_unlock,
    .fetch = g_fetch,
    .put = g_put,
    .del = g_del,
    .keys = g_keys,
    .keys_chunk = g_keys_chunk,
    .check = g_check,
    .info = g_info,
    .reserve = g_reserve,
    .compact = g_compact,
};
