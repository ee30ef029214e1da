/*
 * gdbm_fuzzy.c - checkpoints and compactions built behind the lock.
 *
 * Why: a checkpoint used to verify PATH and copy it to PATH.ckpt under the
 * exclusive lock, and a compaction rewrote PATH there too: O(store size)
 * with every writer waiting (1M sessions: 32 s and 109 s, 42 writes timed
 * out; issue 19).  But the history needs no lock to be read: PATH.ckpt
 * changes only by rename, and the log only grows, except where it is cut
 * (a checkpoint empties it, a rebuild cuts a torn tail), which moves the
 * lock page's log_epoch first.  So a new checkpoint is built with no store
 * lock held, from the old checkpoint plus the log up to an offset noted
 * under a lock (no change was in flight then, so every record before it
 * is final); catch-up rounds replay what writers appended meanwhile, each
 * up to an offset noted under the shared lock (an instant: readers go on,
 * a writer waits for nothing but that); and only the last few records,
 * the renames and the emptying of the log happen under the exclusive lock.
 *
 * A compaction is built the same way: the new checkpoint is rewritten
 * from its live records into PATH.new (a fresh GDBM file), copied back as
 * the new checkpoint, both caught up, and both renamed into place under
 * the exclusive lock, the write counter moved before and after so every
 * process reopens PATH; the builder then empties the file it replaced
 * (release_old), so that no other process frees it under its lock.
 *
 * Crash safety.  Until the first rename nothing a reader or a rebuild uses
 * has changed (a killed build leaves PATH.ckpt.new and PATH.new, which the
 * next build removes).  The new checkpoint is caught up to the end of the
 * log before it is renamed into place, so from then on it holds every
 * acknowledged change; replaying the whole log onto it again (a rebuild
 * before the log is emptied) ends in the same state, since every key ends
 * as its last record in the log says or, without one, as the checkpoint
 * has it.  A compacted PATH holds the same records as the one it replaces.
 * With --sync both files are synced before they are renamed: the bulk
 * behind the lock, the last records under it.  Without it they are still
 * written back behind the lock (settle_new): a rename over an existing
 * file makes ext4 write the renamed one out first, and that was most of
 * the swap's exclusive hold.
 *
 * One builder at a time: an OFD lock on a byte of PATH.lock (fcntl
 * F_OFD_SETLK: it does not meet the flock() of the store lock, and goes
 * with the process if it dies).  A writer that finds a build running goes
 * on; the log just grows a little longer.  Nothing unverified becomes a
 * checkpoint: the new one is read back whole before it is used.
 *
 * Who builds.  A build costs about a copy of PATH.ckpt, a replay of the
 * log and a read of every record: 31 s on a store of 60,000 sessions at
 * load 19, minutes at 1M.  Built by the writer whose write made it due,
 * that was the time of one user's request (issue 19).  So a writer builds
 * only a small one (checkpoint plus log at most CKPT_INLINE_MAX, 1 MiB;
 * at 2 MiB that took 145-180 ms at load 17 here), and otherwise leaves it due: sgi_gdbm_checkpoint_now() builds it
 * for whoever is not serving a request (the gateway's master forks a
 * builder for it, sessgatectl checkpoint from a timer).  Should nobody
 * run one, the log still stays bounded: once it reaches CKPT_CAP_RATIO
 * times the size that made it due, with no build running, the writer
 * builds it after all, as every writer used to.  The first checkpoint of
 * a store that predates its log is a copy of PATH under the shared lock
 * (sgi_gdbm_first_checkpoint: there is no history to build from; readers
 * go on, writers wait); check --repair of a store with a checkpoint is a
 * build like the others (sgi_gdbm_repair_behind), without one it rebuilds
 * under the exclusive lock (gdbm_wal.c, gdbm_checkpoint.c).
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Catch-up rounds stop when a round had at most this much log to replay,
 * which is then all the exclusive lock waits for; or after CATCHUP_ROUNDS
 * rounds, when writers append faster than a round replays. */
#define CATCHUP_SLACK (64 * 1024)
#define CATCHUP_ROUNDS 8
/* Never more than this to replay under the exclusive lock: when writers
 * outran the catch-up rounds, the build is abandoned (the next writer
 * tries again) rather than hold the lock for the rest. */
#define SWAP_TAIL_MAX (1024 * 1024)
#define BUILDER_BYTE 1   /* the byte of PATH.lock a builder locks */

/* A checkpoint being built. */
typedef struct build {
    int basefd;          /* Owned: the PATH.ckpt it starts from; -1: none */
    struct stat base;    /* ... its identity */
    uint64_t epoch;      /* log_epoch when upto was first noted */
    off_t upto;          /* the log bytes the new files hold */
    GDBM_FILE ck;        /* Owned: PATH.ckpt.new */
    GDBM_FILE db;        /* Owned: PATH.new when compacting, else NULL */
    int renamed;         /* PATH.ckpt.new is PATH.ckpt now */
    int olddb;           /* Owned: the PATH a compaction replaced; -1 */
    int compacted;       /* PATH.new is to replace PATH */
    uint64_t live;       /* bytes of keys and values, from the verify walk */
    size_t records;
} build;
#define BUILD_INIT { .basefd = -1, .olddb = -1 }

static int builder_lock(gdbm_be *b, int wait)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                        .l_start = BUILDER_BYTE, .l_len = 1 };
    int r;
    do
        r = fcntl(b->lockfd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    while (r < 0 && errno == EINTR);
    return r == 0;
}

static void builder_unlock(gdbm_be *b)
{
    struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
                        .l_start = BUILDER_BYTE, .l_len = 1 };
    if (b->lockfd >= 0)
        (void)fcntl(b->lockfd, F_OFD_SETLK, &fl);
}

/* Whether PATH.ckpt is still the file k started from (or still absent). */
static int same_base(gdbm_be *b, const build *k)
{
    struct stat sb;
    if (stat(b->ckptpath, &sb) < 0)
        return errno == ENOENT && k->basefd < 0;
    return k->basefd >= 0 && sb.st_dev == k->base.st_dev &&
           sb.st_ino == k->base.st_ino;
}

/* The log's length now, if the offsets k noted still hold: no change in
 * flight (a dead writer's flag: its rebuild may cut the log), no cut
 * since, and the same checkpoint.  -1 otherwise.  Caller holds a lock. */
static off_t log_end(gdbm_be *b, const build *k)
{
    struct stat sb;
    if (__atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&b->page->log_epoch, __ATOMIC_ACQUIRE) != k->epoch ||
        !same_base(b, k) || fstat(b->walfd, &sb) < 0 || sb.st_size < k->upto)
        return -1;
    return sb.st_size;
}

/* Note where the build starts: the checkpoint (kept open, so its inode is
 * not reused while we look at it) and the log's length.  Caller holds a
 * lock. */
static int note_start(gdbm_be *b, build *k)
{
    k->epoch = __atomic_load_n(&b->page->log_epoch, __ATOMIC_ACQUIRE);
    k->basefd = open(b->ckptpath, O_RDONLY | O_CLOEXEC);
    if (k->basefd < 0 ? errno != ENOENT : fstat(k->basefd, &k->base) < 0)
        return 0;
    k->upto = 0;
    k->upto = log_end(b, k);
    return k->upto >= 0;
}

/* Give the PATH a compaction replaced back to the disk, with no lock held.
 * Every process still has it open until its next lock, where it sees the
 * write counter moved and reopens; whoever closed it last used to free it
 * there, under its lock: 30 ms for a 100 MB file here, with everyone else
 * waiting for that writer or reader (the walks at 1M sessions have a
 * 500 MB one).  So the builder empties it first: only once it has no name
 * left (nobody can make it the store again), and nobody reads it any
 * more (a handle on it is stale: its next lock reopens PATH before any
 * read). */
static void release_old(gdbm_be *b, build *k)
{
    struct stat o, cur;
    if (k->olddb < 0)
        return;
    if (fstat(k->olddb, &o) == 0 && o.st_nlink == 0 &&
        (stat(b->dbpath, &cur) < 0 || cur.st_dev != o.st_dev ||
         cur.st_ino != o.st_ino) &&
        ftruncate(k->olddb, 0) < 0) {
        /* Then whoever closes it last frees it, as before. */
    }
    close(k->olddb);
    k->olddb = -1;
}

static void build_end(gdbm_be *b, build *k)
{
    release_old(b, k);
    sgi_gdbm_close_gdbm(b, k->ck, 1);
    sgi_gdbm_close_gdbm(b, k->db, 1);
    k->ck = k->db = NULL;
    if (k->basefd >= 0)
        close(k->basefd);
    k->basefd = -1;
    if (!k->renamed)
        unlink(b->ckptnewpath);
    unlink(b->dbnewpath);
}

static GDBM_FILE open_writer(gdbm_be *b, const char *path, int flags,
                             const char *like, const char *what,
                             sg_error *err)
{
    gdbm_errno = GDBM_NO_ERROR;
    GDBM_FILE db = gdbm_open(path, 0, flags | GDBM_NOLOCK | GDBM_NOMMAP |
                             GDBM_CLOEXEC, b->mode, NULL);
    if (!db) {
        sgi_gdbm_fail(b, err, what);
        return NULL;
    }
    sgi_gdbm_adopt_owner(b, gdbm_fdesc(db), like);
    sgi_gdbm_tune_writer(db);
    return db;
}

/* Replay the log from k->upto to `to` into the new file(s). */
static sg_status replay_to(gdbm_be *b, build *k, off_t to, sg_error *err)
{
    GDBM_FILE f[2] = { k->ck, k->db };
    for (int i = 0; i < 2; i++) {
        off_t valid;
        if (!f[i])
            continue;
        sg_status rc = sgi_gdbm_wal_replay(b, f[i], k->upto, to, &valid,
                                           "checkpoint (replaying the log)",
                                           err);
        if (rc != SG_OK)
            return rc;
        if (valid != to)
            return sgi_err(err, SG_ESTORE, 0, "store %s: the log changed "
                           "under a checkpoint being built", b->dbpath);
    }
    k->upto = to;
    return SG_OK;
}

/* The old checkpoint (or nothing) plus the log up to k->upto, in
 * PATH.ckpt.new.  No lock held. */
static sg_status start(gdbm_be *b, build *k, sg_error *err)
{
    unlink(b->ckptnewpath);
    unlink(b->dbnewpath);
    int flags = GDBM_WRITER;
    if (k->basefd >= 0) {
        sg_status rc = sgi_gdbm_copy_fd(b, k->basefd, b->ckptnewpath,
                                        b->ckptpath, err);
        if (rc != SG_OK)
            return rc;
    } else {
        flags = GDBM_NEWDB;
    }
    k->ck = open_writer(b, b->ckptnewpath, flags, b->ckptpath,
                        "checkpoint (open)", err);
    if (!k->ck)
        return err ? err->code : SG_ESTORE;
    off_t to = k->upto;
    k->upto = 0;
    return replay_to(b, k, to, err);
}

/* Replay what writers appended since, a round at a time, each up to an
 * offset noted under the shared lock, until a round is short. */
static sg_status catch_up(gdbm_be *b, build *k, sg_error *err)
{
    for (int round = 0; round < CATCHUP_ROUNDS; round++) {
        sg_status rc = sgi_gdbm_take(b, SGI_SHARED, err);
        if (rc != SG_OK)
            return rc;
        off_t end = log_end(b, k);
        sgi_gdbm_unlock_fd(b);
        if (end < 0)
            return sgi_err(err, SG_ESTORE, 0, "store %s: checkpoint "
                           "abandoned: the log was cut meanwhile", b->dbpath);
        off_t behind = end - k->upto;
        rc = replay_to(b, k, end, err);
        if (rc != SG_OK || behind <= CATCHUP_SLACK)
            return rc;
    }
    return SG_OK;
}

/* Read the new checkpoint back whole; its live bytes decide compaction. */
static sg_status verify(gdbm_be *b, build *k, sg_error *err)
{
    gdbm_count_t n = 0;
    if (!sgi_gdbm_db_readable(k->ck, &k->live) || gdbm_count(k->ck, &n) != 0)
        return sgi_err(err, SG_ESTORE, 0, "store %s: a new checkpoint fails "
                       "verification; not used", b->dbpath);
    k->records = (size_t)n;
    return SG_OK;
}

/* Rewrite the new checkpoint from its live records into PATH.new, then
 * make PATH.ckpt.new a copy of that: both compact, both open. */
static sg_status compact(gdbm_be *b, build *k, sg_error *err)
{
    k->db = open_writer(b, b->dbnewpath, GDBM_NEWDB, b->dbpath,
                        "compact (create)", err);
    if (!k->db)
        return err ? err->code : SG_ESTORE;
    sg_status rc = sgi_gdbm_copy_records(b, k->ck, k->db, NULL, NULL, err);
    sgi_gdbm_close_gdbm(b, k->ck, 1);
    k->ck = NULL;
    sgi_gdbm_close_gdbm(b, k->db, 1);
    k->db = NULL;
    if (rc == SG_OK)
        rc = sgi_gdbm_copy_file(b, b->dbnewpath, b->ckptnewpath, b->ckptpath,
                                err);
    if (rc != SG_OK)
        return rc;
    k->ck = open_writer(b, b->ckptnewpath, GDBM_WRITER, b->ckptpath,
                        "compact (open)", err);
    k->db = k->ck ? open_writer(b, b->dbnewpath, GDBM_WRITER, b->dbpath,
                                "compact (open)", err) : NULL;
    k->compacted = k->db != NULL;
    return k->db ? SG_OK : (err ? err->code : SG_ESTORE);
}

static sg_status sync_new(gdbm_be *b, build *k, sg_error *err)
{
    if (!b->st->opt.sync)
        return SG_OK;
    if (gdbm_sync(k->ck) != 0 || (k->db && gdbm_sync(k->db) != 0))
        return sgi_gdbm_fail(b, err, "checkpoint (sync)");
    return SG_OK;
}

/* Start the writeback of what the page cache holds of one new file: the
 * blocks are allocated then, as the rename would have them allocated (it
 * does not wait for the disk either). */
static int write_back(int fd)
{
    if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0)
        return 0;
    /* A filesystem that does not take it: the plain way. */
    return errno == ENOSYS || errno == EINVAL || errno == ESPIPE
           ? fdatasync(fd) : -1;
}

/* Behind the lock, just before the swap: the new files' writeback started
 * (with --sync, both synced: the bulk here, the last records under the
 * lock).  Not for durability (without --sync the log is what makes a
 * change durable) but for the exclusive hold: ext4 (auto_da_alloc, its
 * default) starts the writeback of a file's delayed allocations inside
 * rename(2) when the file replaces another, so renaming a freshly written
 * PATH.new over PATH did all of PATH.new's block allocation and I/O
 * submission under the lock: the swap of a compaction of 200,000 sessions
 * (a 100 MB file) held it 161-204 ms with nothing in the log to replay
 * (38-41 ms at 26 MB, of a swap otherwise 0.1 ms).  Started here, the
 * rename finds only the pages the last records dirtied.  A failure
 * abandons the build, as a failed sync does. */
static sg_status settle_new(gdbm_be *b, build *k, sg_error *err)
{
    if (b->st->opt.sync)
        return sync_new(b, k, err);
    GDBM_FILE f[2] = { k->ck, k->db };
    for (int i = 0; i < 2; i++)
        if (f[i] && write_back(gdbm_fdesc(f[i])) != 0)
            return sgi_gdbm_sys_fail(b, err, "cannot write back",
                                     i ? b->dbnewpath : b->ckptnewpath,
                                     errno);
    return SG_OK;
}

/* Whether path names the file db has open: PATH.lock deleted and made
 * anew releases our builder lock with the old descriptor, and a second
 * builder may then have put files of its own at our paths. */
static int ours(const char *path, GDBM_FILE db)
{
    struct stat a, f;
    return !db || (stat(path, &a) == 0 && fstat(gdbm_fdesc(db), &f) == 0 &&
                   a.st_dev == f.st_dev && a.st_ino == f.st_ino);
}

void (*sgi_test_swap_hook)(sg_store *st, int ck_fd, int db_fd);

/* Under the exclusive lock: the last records, then the renames, then the
 * log emptied.  See the top of the file for why each order is safe. */
static sg_status swap(gdbm_be *b, build *k, sg_error *err)
{
    sg_status rc = sgi_gdbm_take(b, SGI_EXCLUSIVE, err);
    if (rc != SG_OK)
        return rc;
    off_t end = log_end(b, k);
    if (end < 0)
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: checkpoint abandoned: "
                     "the log was cut meanwhile", b->dbpath);
    else if (end - k->upto > SWAP_TAIL_MAX)
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: checkpoint abandoned: "
                     "writers outran it", b->dbpath);
    if (rc == SG_OK && (!ours(b->ckptnewpath, k->ck) ||
                        !ours(b->dbnewpath, k->db)))
        rc = sgi_err(err, SG_ESTORE, 0, "store %s: checkpoint abandoned: "
                     "another builder took its files", b->dbpath);
    if (rc == SG_OK)
        rc = replay_to(b, k, end, err);
    if (rc == SG_OK)
        rc = sync_new(b, k, err);
    if (rc == SG_OK && sgi_test_swap_hook)
        sgi_test_swap_hook(b->st, gdbm_fdesc(k->ck),
                           k->db ? gdbm_fdesc(k->db) : -1);
    if (rc == SG_OK) {
        sgi_gdbm_close_gdbm(b, k->ck, 1);
        sgi_gdbm_close_gdbm(b, k->db, 1);
        k->ck = k->db = NULL;
        if (rename(b->ckptnewpath, b->ckptpath) < 0)
            rc = sgi_gdbm_sys_fail(b, err, "cannot replace", b->ckptpath,
                                   errno);
        else
            k->renamed = 1;
    }
    if (rc == SG_OK && k->compacted) {
        /* (Kept open for release_old.) */
        k->olddb = open(b->dbpath, O_RDWR | O_CLOEXEC);
        sgi_gdbm_bump_same(b);
        if (rename(b->dbnewpath, b->dbpath) < 0)
            rc = sgi_gdbm_sys_fail(b, err, "cannot replace", b->dbpath, errno);
        sgi_gdbm_bump_same(b);
    }
    if (rc == SG_OK)
        rc = sgi_gdbm_wal_cut(b, 0, err);
    sgi_gdbm_unlock_fd(b);
    return rc;
}

/* Build from the offsets noted in k, then swap.  No lock held. */
static sg_status run(gdbm_be *b, build *k, int force_compact, sg_error *err)
{
    sg_status rc = start(b, k, err);
    if (rc == SG_OK)
        rc = catch_up(b, k, err);
    if (rc == SG_OK)
        rc = verify(b, k, err);
    uint64_t bound = COMPACT_RATIO * k->live + COMPACT_SLACK;
    if (rc == SG_OK &&
        (force_compact || (uint64_t)sgi_gdbm_file_size(b->dbpath) > bound ||
         (uint64_t)sgi_gdbm_file_size(b->ckptnewpath) > bound)) {
        rc = compact(b, k, err);
        if (rc == SG_OK)
            rc = catch_up(b, k, err);
    }
    if (rc == SG_OK)
        rc = settle_new(b, k, err);   /* the bulk, behind the lock */
    /* What writers logged while that ran (100 MB take a few hundred ms)
     * would otherwise all be replayed under the exclusive lock: caught up
     * here, and its pages settled too. */
    if (rc == SG_OK)
        rc = catch_up(b, k, err);
    if (rc == SG_OK)
        rc = settle_new(b, k, err);
    if (rc == SG_OK)
        rc = swap(b, k, err);
    build_end(b, k);
    return rc;
}

/* Remove what a build killed midway left (PATH.ckpt.new, PATH.new), if no
 * build runs now: a writable open does this, so the files do not wait for
 * the next checkpoint to be given back. */
void sgi_gdbm_build_leftovers(gdbm_be *b)
{
    if ((!sgi_gdbm_file_exists(b->ckptnewpath) &&
         !sgi_gdbm_file_exists(b->dbnewpath)) || !builder_lock(b, 0))
        return;
    unlink(b->ckptnewpath);
    unlink(b->dbnewpath);
    builder_unlock(b);
}

/* The log's length and the length at which a checkpoint is due: the
 * larger of CKPT_MIN_LOG and PATH's size.  0 if either is unknown, or if
 * the log is shorter than CKPT_MIN_LOG (then nothing is due). */
static int log_and_due(gdbm_be *b, off_t *log, off_t *due)
{
    struct stat wal, db;
    /* (One fstat per write while the log is short: no stat of PATH.) */
    if (b->walfd < 0 || fstat(b->walfd, &wal) < 0 ||
        wal.st_size < CKPT_MIN_LOG || stat(b->dbpath, &db) < 0)
        return 0;
    *log = wal.st_size;
    *due = db.st_size > CKPT_MIN_LOG ? db.st_size : CKPT_MIN_LOG;
    return 1;
}

/* Whether the log has outgrown both CKPT_MIN_LOG and PATH, so that a
 * checkpoint is due.  Takes no lock: a size seen a little late only moves
 * the checkpoint by a write. */
int sgi_gdbm_checkpoint_due(gdbm_be *b)
{
    off_t log, due;
    return log_and_due(b, &log, &due) && log >= due;
}

/* Whether the writer whose write made a checkpoint due builds it in its
 * own call (see "Who builds" at the top): when it is small, when there is
 * no checkpoint to build from (the copy under the lock then happens while
 * the log is small, see sgi_gdbm_checkpoint_behind), or when the log has
 * reached its cap because nobody else built one. */
int sgi_gdbm_writer_builds(gdbm_be *b)
{
    off_t log, due;
    if (!log_and_due(b, &log, &due) || log < due)
        return 0;
    return !sgi_gdbm_file_exists(b->ckptpath) ||
           sgi_gdbm_file_size(b->ckptpath) + log <= CKPT_INLINE_MAX ||
           log >= CKPT_CAP_RATIO * due;
}

/* Release the exclusive lock the caller holds (dirty flag down), then
 * build a checkpoint behind it, unless one is being built already.  On
 * failure the log just keeps growing, and the next writer tries again. */
void sgi_gdbm_checkpoint_behind(gdbm_be *b)
{
    build k = BUILD_INIT;
    /* Busy: another process is building one; its files are its own. */
    if (!builder_lock(b, 0)) {
        sgi_gdbm_unlock_fd(b);
        return;
    }
    int go = note_start(b, &k);
    if (go && k.basefd < 0) {
        /* No checkpoint to build from (never taken yet, or deleted): the
         * log need not hold all of PATH.  Copy PATH under the lock, as
         * before; on a store born with its log that comes while it is
         * small (the first CKPT_MIN_LOG of changes). */
        (void)sgi_gdbm_checkpoint(b, NULL);
        go = 0;
    }
    sgi_gdbm_unlock_fd(b);
    if (go)
        (void)run(b, &k, 0, NULL);
    build_end(b, &k);
    builder_unlock(b);
}

/* Take the builder lock (waiting for a build running elsewhere) and note
 * where a build behind the lock starts, under the shared lock; *ready 0
 * when there is no checkpoint to build from or a rebuild is due.  On
 * SG_OK the caller holds the builder lock (builder_unlock after
 * build_end). */
static sg_status behind_start(gdbm_be *b, build *k, int *ready, sg_error *err)
{
    *ready = 0;
    if (!builder_lock(b, 1))
        return sgi_gdbm_sys_fail(b, err, "cannot lock", b->lockpath, errno);
    sg_status rc = sgi_gdbm_take(b, SGI_SHARED, err);
    if (rc != SG_OK) {
        builder_unlock(b);
        return rc;
    }
    *ready = note_start(b, k) && k->basefd >= 0;
    sgi_gdbm_unlock_fd(b);
    return SG_OK;
}

/* sessgatectl compact: a checkpoint behind the lock that compacts
 * whatever the waste.  Caller holds no lock.  *records and *live get what
 * the verify walk counted. */
sg_status sgi_gdbm_compact_behind(gdbm_be *b, size_t *records,
                                  uint64_t *live, sg_error *err)
{
    build k = BUILD_INIT;
    int ready = 0;
    sg_status rc = behind_start(b, &k, &ready, err);
    if (rc != SG_OK)
        return rc;
    if (!ready) {
        /* No checkpoint to build from, or a rebuild due: the old way,
         * under the exclusive lock (which also rebuilds first). */
        build_end(b, &k);
        rc = sgi_lock(b->st, SGI_EXCLUSIVE, err);
        if (rc == SG_OK) {
            rc = sgi_gdbm_checkpoint_as(b, 1, err);
            k.records = b->verified ? b->verified_records : 0;
            k.live = b->verified ? b->verified_live : 0;
            sgi_unlock(b->st);
        }
    } else {
        rc = run(b, &k, 1, err);
    }
    build_end(b, &k);
    builder_unlock(b);
    *records = k.records;
    *live = k.live;
    return rc;
}

/* check --repair behind the lock: PATH rebuilt from the checkpoint and the
 * log as a build that compacts (run: PATH.new and PATH.ckpt.new made from
 * PATH.ckpt plus the log with no lock held, the log written meanwhile
 * replayed in rounds, and only the last of it, at most SWAP_TAIL_MAX,
 * replayed under the exclusive lock before the renames).  That is what a
 * rebuild under the exclusive lock (sgi_gdbm_rebuild, then a compacting
 * checkpoint) leaves too, but writers and readers go on meanwhile: the
 * rebuild used to keep them out for all of it (issue 19).  PATH is never
 * read, so a damaged one is replaced like any other.  *done 0 when there
 * is no checkpoint to build from or a rebuild is due (a writer died
 * mid-change): then nothing was done, for the caller's old way.  Caller
 * holds no lock. */
sg_status sgi_gdbm_repair_behind(gdbm_be *b, sg_check_report *rep, int *done,
                                 sg_error *err)
{
    build k = BUILD_INIT;
    int ready = 0;
    *done = 0;
    sg_status rc = behind_start(b, &k, &ready, err);
    if (rc != SG_OK)
        return rc;
    if (ready) {
        *done = 1;
        rc = run(b, &k, 1, err);
        if (rc == SG_OK) {
            b->st->recoveries++;
            rep->recovered = 1;
            rep->recovered_keys += k.records;
        }
    }
    build_end(b, &k);
    builder_unlock(b);
    return rc;
}

/* Build a checkpoint now if one is due (or, with force, anyway), for a
 * caller that serves no request: the gateway's builder, sessgatectl
 * checkpoint.  Caller holds no lock.  Waits for a build running
 * elsewhere, then looks again.  *built: whether this call built one. */
sg_status sgi_gdbm_checkpoint_now(gdbm_be *b, int force, int *built,
                                  sg_error *err)
{
    build k = BUILD_INIT;
    *built = 0;
    if (!builder_lock(b, 1))
        return sgi_gdbm_sys_fail(b, err, "cannot lock", b->lockpath, errno);
    sg_status rc = SG_OK;
    int ready = 0;
    for (int tries = 0; tries < 2 && rc == SG_OK && !ready; tries++) {
        rc = sgi_gdbm_take(b, SGI_SHARED, err);
        if (rc != SG_OK)
            break;
        if (!force && !sgi_gdbm_checkpoint_due(b)) {
            sgi_gdbm_unlock_fd(b);
            builder_unlock(b);
            return SG_OK;
        }
        int dirty = __atomic_load_n(&b->page->dirty, __ATOMIC_ACQUIRE);
        ready = note_start(b, &k);
        sgi_gdbm_unlock_fd(b);
        if (ready || !dirty)
            break;
        /* A writer died mid-change: rebuild first (the exclusive lock's
         * refresh does), then note again. */
        build_end(b, &k);
        rc = sgi_lock(b->st, SGI_EXCLUSIVE, err);
        if (rc == SG_OK)
            sgi_unlock(b->st);
    }
    if (rc == SG_OK && ready && k.basefd >= 0) {
        rc = run(b, &k, 0, err);
    } else if (rc == SG_OK) {
        /* No checkpoint to build from: the old way, under the lock. */
        build_end(b, &k);
        rc = sgi_lock(b->st, SGI_EXCLUSIVE, err);
        if (rc == SG_OK) {
            rc = sgi_gdbm_checkpoint(b, err);
            sgi_unlock(b->st);
        }
    }
    build_end(b, &k);
    builder_unlock(b);
    *built = rc == SG_OK;
    return rc;
}

/* The first checkpoint of a store that predates its log (written by an
 * older version or mkstore --raw, restored from a backup): PATH, read back
 * whole, copied to PATH.ckpt.  There is no history to build one from, so
 * PATH itself must stand still meanwhile: under the shared lock, which
 * keeps writers out (they wait for the walk and the copy, as before) but
 * lets readers go on (they used to wait too: 2.4-5 s at 200,000
 * sessions).  The log is empty and stays so until the rename: no writer
 * runs.  One at a time (the builder lock; PATH.ckpt.new is the builder's).
 * An unreadable PATH is not copied (its damage would become the history)
 * and takes no writes until check --repair has salvaged it.  Compaction is
 * left to the next checkpoint.  Caller holds no lock. */
sg_status sgi_gdbm_first_checkpoint(gdbm_be *b, sg_error *err)
{
    if (!builder_lock(b, 1))
        return sgi_gdbm_sys_fail(b, err, "cannot lock", b->lockpath, errno);
    sg_status rc = sgi_lock(b->st, SGI_SHARED, err);
    if (rc != SG_OK) {
        builder_unlock(b);
        return rc;
    }
    struct stat wal;
    gdbm_count_t n = 0;
    uint64_t live = 0;
    if (sgi_gdbm_file_exists(b->ckptpath) || fstat(b->walfd, &wal) != 0 ||
        wal.st_size != 0) {
        /* Another process took it meanwhile. */
    } else if (gdbm_count(b->db, &n) != 0 ||
               (n > 0 && !sgi_gdbm_db_readable(b->db, &live))) {
        b->salvage = 1;
    } else if (n > 0) {
        rc = sgi_gdbm_copy_file(b, b->dbpath, b->ckptnewpath, b->ckptpath,
                                err);
        if (rc == SG_OK && rename(b->ckptnewpath, b->ckptpath) < 0) {
            rc = sgi_gdbm_sys_fail(b, err, "cannot replace", b->ckptpath,
                                   errno);
            unlink(b->ckptnewpath);
        }
    }
    sgi_unlock(b->st);
    builder_unlock(b);
    return rc;
}
