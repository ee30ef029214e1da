/*
 * gdbm_file.c - the GDBM file itself: opening it (a writer under the
 * exclusive lock, a reader otherwise), creating it whole or not at all,
 * telling a sound file from a truncated or unreadable one, and the owner
 * and mode of every file of the store; with the error texts all of the
 * backend uses.
 *
 * Why a file of its own: every other mechanism (the log's rebuild, the
 * checkpoint, the refresh of a stale handle) ends in "open PATH again and
 * check it", and the checks must be the same everywhere: a truncated file
 * that one path let through became the history every later rebuild
 * started from (issue 19 item 0).
 *
 * Closing a GDBM writer handle always syncs it (msync + fsync: measured
 * 4.7 ms per close on ext4), and handles go stale every time another
 * process writes.  Durability is the log's job, not GDBM's, so before
 * closing a writer we point its descriptor at /dev/null (dup3 keeps the
 * number, so nothing else can get it) and the sync becomes a no-op.
 * Writers use GDBM_NOMMAP for that reason (an msync could not be
 * redirected); readers keep GDBM's mmap, whose close never syncs.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The fix to suggest for a system error.  EFBIG is a file size limit
 * (ulimit -f, or the filesystem's), not a full disk. */
const char *sgi_gdbm_sys_fix(int e, const char *other)
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

sg_status sgi_gdbm_sys_fail(gdbm_be *b, sg_error *err, const char *what,
                            const char *file, int e)
{
    const char *fix = sgi_gdbm_sys_fix(e, "check the disk and the path");
    return sgi_err(err, SG_ESTORE, e, "store %s: %s %s: %s (%s)", b->dbpath,
                   what, file, strerror(e), fix);
}

sg_status sgi_gdbm_fail(gdbm_be *b, sg_error *err, const char *what)
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
        const char *fix = sgi_gdbm_sys_fix(sys, sys == EINVAL
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
void sgi_gdbm_adopt_owner(gdbm_be *b, int fd, const char *like)
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
int sgi_gdbm_open_store_file(gdbm_be *b, const char *path, int flags)
{
    int fd = open(path, flags | O_CREAT | O_EXCL, b->mode);
    if (fd >= 0) {
        sgi_gdbm_adopt_owner(b, fd, NULL);
        return fd;
    }
    if (errno != EEXIST)
        return -1;
    fd = open(path, flags, b->mode);
    if (fd >= 0)
        widen_mode(b, fd);
    return fd;
}

int sgi_gdbm_file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Whether the store has any file but its lock file. */
int sgi_gdbm_store_exists(gdbm_be *b)
{
    return sgi_gdbm_file_exists(b->dbpath) ||
           sgi_gdbm_file_exists(b->walpath) ||
           sgi_gdbm_file_exists(b->ckptpath);
}

off_t sgi_gdbm_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* The bytes of all the store's files together. */
uint64_t sgi_gdbm_files_bytes(gdbm_be *b)
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

/* Close a GDBM handle without the sync gdbm_close does for writers (see
 * the top of the file for why). */
void sgi_gdbm_close_gdbm(gdbm_be *b, GDBM_FILE db, int writer)
{
    if (!db)
        return;
    if (writer && b->nullfd >= 0)
        dup3(b->nullfd, gdbm_fdesc(db), O_CLOEXEC);
    gdbm_close(db);
}

void sgi_gdbm_close_db(gdbm_be *b)
{
    sgi_gdbm_close_gdbm(b, b->db, b->db_writer);
    b->db = NULL;
}

/* Whether a checkpoint or log exists to rebuild PATH from. */
int sgi_gdbm_has_history(gdbm_be *b)
{
    struct stat sb;
    return sgi_gdbm_file_exists(b->ckptpath) ||
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
        rc = sgi_gdbm_fail(b, err, "create");
    else {
        sgi_gdbm_adopt_owner(b, gdbm_fdesc(db), b->dbpath);
        if (gdbm_close(db) != 0)
            rc = sgi_gdbm_fail(b, err, "create (close)");
    }
    if (rc == SG_OK && rename(b->tmppath, b->dbpath) < 0)
        rc = sgi_gdbm_sys_fail(b, err, "cannot create", b->dbpath, errno);
    if (rc != SG_OK)
        unlink(b->tmppath);
    return rc;
}

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
void sgi_gdbm_tune_writer(GDBM_FILE db)
{
    int on = 1;
    (void)gdbm_setopt(db, GDBM_SETCOALESCEBLKS, &on, sizeof on);
    (void)gdbm_setopt(db, GDBM_SETCENTFREE, &on, sizeof on);
}

/* Open PATH through a fresh handle: a writer under the exclusive lock, a
 * reader otherwise.  SG_ENOTFOUND when the file does not exist and may not
 * be created here. */
sg_status sgi_gdbm_open_db(gdbm_be *b, sg_error *err)
{
    sgi_gdbm_close_db(b);
    int writer = b->held == SGI_EXCLUSIVE && !b->st->opt.readonly;
    struct stat st0;
    if (writer && stat(b->dbpath, &st0) < 0) {
        if (errno != ENOENT)
            return sgi_gdbm_sys_fail(b, err, "stat", b->dbpath, errno);
        /* Never create an empty file where there is history to rebuild. */
        if (sgi_gdbm_has_history(b))
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
        if (sgi_gdbm_has_history(b) ||
            __atomic_load_n(&b->page->writes, __ATOMIC_ACQUIRE)) {
            b->damaged = 1;
            gdbm_errno = GDBM_EMPTY_DATABASE;
            return sgi_gdbm_fail(b, err, "open");
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
        return sgi_gdbm_fail(b, err, "open");
    }
    b->db_writer = writer;
    b->truncated = !b->salvaging && sgi_gdbm_db_truncated(gdbm_fdesc(b->db));
    if (b->truncated && !sgi_gdbm_has_history(b)) {
        /* Nothing to rebuild from: serve what GDBM can read, take no
         * writes until check --repair has salvaged it (as for any file
         * that does not read back whole, see g_open). */
        b->salvage = 1;
    } else if (b->truncated) {
        /* GDBM opens it and serves what lies before the cut; a write may
         * even succeed, and a checkpoint then made the damage the history
         * every rebuild starts from.  Damage: rebuilt from the log. */
        sgi_gdbm_close_db(b);
        b->damaged = 1;
        b->broken = 1;
        return sgi_err(err, SG_ESTORE, 0, "store %s: truncated (shorter "
                       "than its header says)", b->dbpath);
    }
    b->damaged = 0;
    if (writer) {
        widen_mode(b, gdbm_fdesc(b->db));
        sgi_gdbm_tune_writer(b->db);
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
int sgi_gdbm_db_truncated(int fd)
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
int sgi_gdbm_db_readable(GDBM_FILE db, uint64_t *live)
{
    gdbm_count_t n = 0, seen = 0;
    uint64_t bytes = 0;
    if (live)
        *live = 0;
    if (sgi_gdbm_db_truncated(gdbm_fdesc(db)) || gdbm_count(db, &n) != 0)
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

/* Store every record of `from` into `to` (a new file: a compaction's
 * rewrite).  *live and *records (may be NULL) get the bytes of keys and
 * values and the number of records copied. */
sg_status sgi_gdbm_copy_records(gdbm_be *b, GDBM_FILE from, GDBM_FILE to,
                                uint64_t *live, size_t *records,
                                sg_error *err)
{
    sg_status rc = SG_OK;
    uint64_t bytes = 0;
    size_t n = 0;
    gdbm_errno = GDBM_NO_ERROR;
    datum k = gdbm_firstkey(from);
    while (k.dptr && rc == SG_OK) {
        datum v = gdbm_fetch(from, k);
        if (!v.dptr)
            rc = sgi_gdbm_fail(b, err, "compact (read)");
        else if (gdbm_store(to, k, v, GDBM_REPLACE) != 0)
            rc = sgi_gdbm_fail(b, err, "compact (write)");
        else {
            bytes += (uint64_t)k.dsize + (uint64_t)v.dsize;
            n++;
        }
        free(v.dptr);
        datum next = { NULL, 0 };
        if (rc == SG_OK) {
            gdbm_errno = GDBM_NO_ERROR;
            next = gdbm_nextkey(from, k);
        }
        free(k.dptr);
        k = next;
    }
    free(k.dptr);
    if (rc == SG_OK && gdbm_errno != GDBM_ITEM_NOT_FOUND)
        rc = sgi_gdbm_fail(b, err, "compact (iterate)");
    if (live)
        *live = bytes;
    if (records)
        *records = n;
    return rc;
}

/* Whether PATH still names the file our handle has open. */
int sgi_gdbm_same_inode(gdbm_be *b)
{
    struct stat sb;
    b->inode_checked = mono_ms();
    return stat(b->dbpath, &sb) == 0 && sb.st_dev == b->db_dev &&
           sb.st_ino == b->db_ino;
}
