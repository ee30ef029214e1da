/*
 * gdbm_be.h - what the files of the GDBM backend share, never installed.
 *
 * The GDBM backend is one GDBM file shared by many processes, serialised
 * by flock() on a lock file and made crash-safe by a write-ahead log and
 * a checkpoint of our own.  Each mechanism has its file:
 *   backend_gdbm.c     the backend proper: open, close, the operations
 *   gdbm_file.c        the GDBM file (open, create, verify) and the owner
 *                      and mode of every file of the store; error texts
 *   gdbm_lockpage.c    PATH.lock: its shared page, flock with a deadline,
 *                      writer preference
 *   gdbm_refresh.c     taking the store lock: making a kept GDBM handle
 *                      current (stale handles, rebuilds due)
 *   gdbm_wal.c         PATH.wal: append, replay, rebuild from the log
 *   gdbm_checkpoint.c  PATH.ckpt copied from a verified PATH under the
 *                      exclusive lock (first checkpoint, repair)
 *   gdbm_fuzzy.c       checkpoints and compactions built behind the lock,
 *                      from the old checkpoint and the log
 *   gdbm_snapshot.c    the keys as of one instant, from the checkpoint
 *                      and the log, for walks (no lock held)
 *   gdbm_reserve.c     fallocate reservations, so no change or rebuild
 *                      stops halfway for lack of room
 * They share one state struct (gdbm_be), the lock page's layout and the
 * functions declared here (prefix sgi_gdbm_).  Callers hold the locks the
 * comment above each function names.
 */
#ifndef SG_GDBM_BE_H
#define SG_GDBM_BE_H

#include "internal.h"

#include <gdbm.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define LOCK_FILE_SIZE 4096
#define LOCK_MAGIC 0x31304b434c475353ULL   /* "SSGLCK01" */
#define WAL_MAGIC 0x4c574753u              /* "SGWL" */
#define WAL_DELETE 0xffffffffu             /* vlen of a delete record */
#define CKPT_MIN_LOG (256 * 1024)          /* never checkpoint below this */
/* A writer whose write made a checkpoint due builds it in its own call only
 * when the checkpoint plus the log come to at most CKPT_INLINE_MAX bytes, or
 * when the log has grown to CKPT_CAP_RATIO times the size that made it due
 * and no build runs (nobody else builds them: the log stays bounded).  See
 * gdbm_fuzzy.c.  It was 2 MiB, a build of 145-180 ms at load 17 here: a
 * request that long.  At 1 MiB a store whose PATH is up to about 512 KiB
 * (a few thousand sessions) still needs no builder of its own. */
#define CKPT_INLINE_MAX (1024 * 1024)
#define CKPT_CAP_RATIO 4
#define WAL_READ_PIECE (1024 * 1024)       /* log bytes replayed at a time */
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
    uint64_t log_epoch;   /* moves whenever the log is cut (sgi_gdbm_wal_cut):
                           * offsets into it noted before no longer hold */
    sgi_figures fig;      /* counters.c's figures: kept here, beside the
                           * write counter, they cost a write hold no put */
} lock_page;

typedef struct wal_rec {
    uint32_t magic;
    uint32_t crc;         /* CRC-32 of klen, vlen, key and value */
    uint32_t klen;
    uint32_t vlen;        /* WAL_DELETE for a delete */
} wal_rec;

typedef struct gdbm_be {
    char *dbpath, *lockpath, *walpath, *ckptpath, *tmppath;  /* Owned */
    char *ckptnewpath, *dbnewpath; /* Owned: PATH.ckpt.new, PATH.new, which
                                    * gdbm_fuzzy.c builds behind the lock */
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

static inline gdbm_be *be_of(sg_store *st)
{
    return st->be_data;
}

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* gdbm_file.c */
const char *sgi_gdbm_sys_fix(int e, const char *other);
sg_status sgi_gdbm_sys_fail(gdbm_be *b, sg_error *err, const char *what,
                            const char *file, int e);
sg_status sgi_gdbm_fail(gdbm_be *b, sg_error *err, const char *what);
void sgi_gdbm_adopt_owner(gdbm_be *b, int fd, const char *like);
int sgi_gdbm_open_store_file(gdbm_be *b, const char *path, int flags);
int sgi_gdbm_file_exists(const char *path);
int sgi_gdbm_store_exists(gdbm_be *b);
off_t sgi_gdbm_file_size(const char *path);
uint64_t sgi_gdbm_files_bytes(gdbm_be *b);
void sgi_gdbm_close_gdbm(gdbm_be *b, GDBM_FILE db, int writer);
void sgi_gdbm_close_db(gdbm_be *b);
int sgi_gdbm_has_history(gdbm_be *b);
void sgi_gdbm_tune_writer(GDBM_FILE db);
sg_status sgi_gdbm_open_db(gdbm_be *b, sg_error *err);
int sgi_gdbm_db_truncated(int fd);
int sgi_gdbm_db_readable(GDBM_FILE db, uint64_t *live);
int sgi_gdbm_same_inode(gdbm_be *b);
sg_status sgi_gdbm_copy_records(gdbm_be *b, GDBM_FILE from, GDBM_FILE to,
                                uint64_t *live, size_t *records,
                                sg_error *err);

/* gdbm_lockpage.c */
void sgi_gdbm_close_lockfile(gdbm_be *b);
sg_status sgi_gdbm_open_lockfile(gdbm_be *b, sg_error *err);
void sgi_gdbm_unlock_fd(gdbm_be *b);
sg_status sgi_gdbm_take(gdbm_be *b, int mode, sg_error *err);

/* gdbm_refresh.c */
sg_status sgi_gdbm_lock(sg_store *st, int mode, sg_error *err);
void sgi_gdbm_unlock(sg_store *st);
void sgi_gdbm_lock_yield(sg_store *st);

/* gdbm_wal.c */
sg_status sgi_gdbm_wal_append(gdbm_be *b, const char *key, const char *val,
                              size_t vlen, off_t *before_out, sg_error *err);
sg_status sgi_gdbm_copy_fd(gdbm_be *b, int in, const char *dst,
                           const char *like, sg_error *err);
sg_status sgi_gdbm_wal_cut(gdbm_be *b, off_t len, sg_error *err);
sg_status sgi_gdbm_wal_replay(gdbm_be *b, GDBM_FILE db, off_t from, off_t to,
                              off_t *valid, const char *what, sg_error *err);
sg_status sgi_gdbm_copy_file(gdbm_be *b, const char *src, const char *dst,
                             const char *like, sg_error *err);
sg_status sgi_gdbm_rebuild(gdbm_be *b, sg_check_report *rep, sg_error *err);

/* gdbm_reserve.c */
sg_status sgi_gdbm_reserve_rebuild(gdbm_be *b, sg_error *err);
sg_status sgi_gdbm_reserve(sg_store *st, size_t bytes, sg_error *err);

/* gdbm_checkpoint.c */
void sgi_gdbm_note_verified(gdbm_be *b, uint64_t live, size_t records);
sg_status sgi_gdbm_checkpoint_as(gdbm_be *b, int force_compact, sg_error *err);
sg_status sgi_gdbm_checkpoint(gdbm_be *b, sg_error *err);

/* gdbm_fuzzy.c */
int sgi_gdbm_checkpoint_due(gdbm_be *b);
int sgi_gdbm_writer_builds(gdbm_be *b);
sg_status sgi_gdbm_checkpoint_now(gdbm_be *b, int force, int *built,
                                  sg_error *err);
void sgi_gdbm_checkpoint_behind(gdbm_be *b);
void sgi_gdbm_build_leftovers(gdbm_be *b);
sg_status sgi_gdbm_first_checkpoint(gdbm_be *b, sg_error *err);
sg_status sgi_gdbm_repair_behind(gdbm_be *b, sg_check_report *rep, int *done,
                                 sg_error *err);
sg_status sgi_gdbm_compact_behind(gdbm_be *b, size_t *records,
                                  uint64_t *live, sg_error *err);

/* gdbm_snapshot.c (caller holds no lock) */
sg_status sgi_gdbm_keys_snapshot(sg_store *st, sgi_key_fn fn, void *arg,
                                 sg_error *err);

/* backend_gdbm.c */
sg_status sgi_gdbm_recover_writable(gdbm_be *b, const char *why, sg_error *err);

/* gdbm_lockpage.c: bump the write counter for a change that keeps every
 * record (a compaction's rename); kept figures follow.  Returns it. */
uint64_t sgi_gdbm_bump_same(gdbm_be *b);

#endif
