/*
 * gdbm_reserve.c - room reserved with fallocate before work that must not
 * stop halfway for lack of it: a rebuild (its new file) and a group of
 * changes (the log and PATH).
 *
 * Why: a change that fails whole is a clean error, but one that runs out
 * of room halfway leaves work to undo (a rotation that wrote the new id
 * and could not delete the old one), and a rebuild that runs out of room
 * has done all its work for nothing, while libgdbm 1.23 leaks the header
 * of a new file it cannot write.  FALLOC_FL_KEEP_SIZE allocates the blocks
 * without changing a file's size, so GDBM and the log's readers see
 * nothing of it.  Filesystems without fallocate go on unreserved.
 */
#include "gdbm_be.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reserve, before GDBM sees it, the room the rebuilt file will need: about
 * the size of the file it replaces plus the log.  Why: on a full disk,
 * gdbm_open of a new file fails while writing its header and libgdbm 1.23
 * leaks that header (4 KiB, measured with LeakSanitizer), so a worker that
 * retried a rebuild on every write would leak without bound; and a rebuild
 * that runs out of room halfway has done all its work for nothing.  With
 * FALLOC_FL_KEEP_SIZE the file's size stays as it was (GDBM still sees an
 * empty or a checkpoint file) while its blocks are allocated.  Filesystems
 * without fallocate simply go on unreserved. */
sg_status sgi_gdbm_reserve_rebuild(gdbm_be *b, sg_error *err)
{
    off_t want = sgi_gdbm_file_size(b->dbpath);
    off_t have = sgi_gdbm_file_size(b->tmppath);
    if (have > want)
        want = have;
    want += sgi_gdbm_file_size(b->walpath) + 4 * 4096;
    int fd = open(b->tmppath, O_WRONLY | O_CREAT | O_CLOEXEC, b->mode);
    if (fd < 0)
        return sgi_gdbm_sys_fail(b, err, "cannot create", b->tmppath, errno);
    int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, want);
    int e = errno;
    close(fd);
    if (rc < 0 && e != EOPNOTSUPP && e != ENOSYS && e != EINTR) {
        unlink(b->tmppath);
        return sgi_gdbm_sys_fail(b, err, "cannot reserve room to rebuild from",
                                 b->walpath, e);
    }
    return SG_OK;
}

/* Room for `bytes` of changes in the log and in PATH, allocated now
 * (fallocate with FALLOC_FL_KEEP_SIZE: the sizes stay, the blocks past
 * the end are ours, so the appends and GDBM's extensions that follow
 * cannot meet ENOSPC), and checked against a file size limit (which
 * fallocate does not apply: ulimit -f would give EFBIG halfway).  PATH
 * gets more, for GDBM's bucket splits and blocks.  A bound, not a
 * promise: a directory doubling in a huge store may need more, and then
 * the change that needs it fails whole, as without a reservation. */
sg_status sgi_gdbm_reserve(sg_store *st, size_t bytes, sg_error *err)
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
            return sgi_gdbm_sys_fail(b, err, "no room for the change in",
                                     f[i].path, EFBIG);
        if (fallocate(f[i].fd, FALLOC_FL_KEEP_SIZE, sb.st_size,
                      f[i].room) < 0 &&
            errno != EOPNOTSUPP && errno != ENOSYS && errno != EINTR)
            return sgi_gdbm_sys_fail(b, err, "no room for the change in",
                                     f[i].path, errno);
    }
    return SG_OK;
}
