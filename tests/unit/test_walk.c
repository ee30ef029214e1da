/*
 * test_walk.c - a whole-store walk on GDBM sees every session that exists
 * throughout it, however much is written while it runs (walk.c,
 * gdbm_snapshot.c).
 *
 * Between two steps of the walk's key collection (the test hook
 * sgi_test_walk_pause, called with no lock held) a second handle on the
 * same store creates sessions and deletes some of them again: creates
 * split hash buckets, deletes move the keys after them in their bucket.
 * The old walk collected keys from PATH in chunks and resumed after the
 * last key it had seen; writes in the bucket where it stood made it miss
 * sessions that were there all along.  This program shows that (the
 * chunked walk, forced with sgi_test_walk_chunked and 8 keys a chunk,
 * misses) and that the walk from a snapshot does not, on a store with a
 * checkpoint and one whose history is its log alone, including when the
 * log is cut (a compaction swaps a new checkpoint in) while the snapshot
 * is read.  Then the same file's other lock holds: the purge's index
 * compaction in slices (sliced), and the swap of a build behind the lock,
 * which must find the new files written back (swap_writeback), and the
 * gaps a purge leaves between its exclusive holds (gaps).
 *
 * Usage: test_walk DIR   (a scratch directory)
 */
#include "internal.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* Sessions in each store (fewer under valgrind: SG_VALGRIND=1). */
static int kept_n = 3000;

static sg_store *writer;        /* the other handle, writing in pauses */
static sg_list *made;           /* ids the pauses created and kept so far */
static unsigned long pauses, failures;
static int compact_in_pause;    /* compact in the next pause */
static long chunked_missed;     /* by the old walk, in all runs */

static void pause_writes(sg_store *st)
{
    (void)st;
    sg_error err = { 0 };
    pauses++;
    if (compact_in_pause) {
        compact_in_pause = 0;
        if (sg_store_compact(writer, NULL, &err) != SG_OK)
            failures++;
    }
    for (int i = 0; i < 8; i++) {
        sg_session *s = NULL;
        if (sg_session_create(writer, NULL, "{\"w\":1}", 0, 0, &s, &err) != SG_OK ||
            sgi_list_push(made, sg_session_id(s)) < 0)
            failures++;
        sg_session_free(s);
    }
    /* Delete half as many of the ones made so far, picked at random. */
    for (int i = 0; i < 4 && made->n > 0; i++) {
        size_t k = (size_t)rand() % made->n;
        if (sg_session_delete(writer, made->ids[k], &err) != SG_OK)
            failures++;
        memcpy(made->ids[k], made->ids[made->n - 1], SG_ID_LEN + 1);
        made->n--;
    }
}

static int by_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The ids of l, sorted.  New. */
static sg_list *sorted(const sg_list *l)
{
    sg_list *c = sgi_list_new();
    for (size_t i = 0; c && i < l->n; i++)
        if (sgi_list_push(c, l->ids[i]) < 0)
            return c;
    if (c && c->n > 1)
        qsort(c->ids, c->n, sizeof *c->ids, by_id);
    return c;
}

/* How many of kept (sorted) a list of the store leaves out; -1 when the
 * list fails. */
static long missed(sg_store *st, const sg_list *kept)
{
    sg_list *l = NULL;
    sg_error err = { 0 };
    if (sg_store_list(st, NULL, &l, &err) != SG_OK) {
        printf("# list: %s\n", err.text);
        return -1;
    }
    sg_list *got = sorted(l);
    sg_list_free(l);
    long m = 0;
    for (size_t i = 0, j = 0; i < kept->n; i++) {
        while (j < got->n && strcmp(got->ids[j], kept->ids[i]) < 0)
            j++;
        if (j == got->n || strcmp(got->ids[j], kept->ids[i]) != 0)
            m++;
    }
    sg_list_free(got);
    return m;
}

/* A store of kept_n sessions at path (with a checkpoint: a compaction gives
 * it one), and the sorted list of them. */
static sg_store *fill(const char *path, int checkpoint, sg_list **kept)
{
    sg_store *st = NULL;
    sg_error err = { 0 };
    if (sg_store_open(path, NULL, &st, &err) != SG_OK) {
        printf("# open: %s\n", err.text);
        return NULL;
    }
    if (sg_store_begin(st, &err) != SG_OK)
        return st;
    for (int i = 0; i < kept_n; i++) {
        sg_session *s = NULL;
        char user[16];
        snprintf(user, sizeof user, "u%d", i % 7);
        if (sg_session_create(st, i % 3 ? NULL : user, "{\"k\":1}", 0, 0, &s,
                              &err) != SG_OK)
            printf("# create: %s\n", err.text);
        sg_session_free(s);
    }
    sg_store_end(st);
    if (checkpoint && sg_store_compact(st, NULL, &err) != SG_OK)
        printf("# compact: %s\n", err.text);
    /* A few more after the checkpoint: the log has records too. */
    for (int i = 0; i < 20; i++) {
        sg_session *s = NULL;
        sg_session_create(st, NULL, "{\"k\":2}", 0, 0, &s, &err);
        sg_session_free(s);
    }
    sg_list *l = NULL;
    if (sg_store_list(st, NULL, &l, &err) == SG_OK) {
        *kept = sorted(l);
        sg_list_free(l);
    }
    return st;
}

static void run(const char *dir, const char *name, int checkpoint)
{
    char path[1024], ckpt[1100];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", path);
    sg_list *kept = NULL;
    sg_store *st = fill(path, checkpoint, &kept);
    sg_error err = { 0 };
    OK(st && kept && kept->n == (size_t)kept_n + 20, "%s: %zu sessions to keep", name,
       kept ? kept->n : 0);
    OK((access(ckpt, F_OK) == 0) == checkpoint, "%s: %s checkpoint", name,
       checkpoint ? "with a" : "without a");
    if (!st || !kept || sg_store_open(path, NULL, &writer, &err) != SG_OK) {
        sg_list_free(kept);
        sg_store_close(st);
        return;
    }
    made = sgi_list_new();
    sgi_test_walk_pause = pause_writes;

    /* The old walk: chunks of 8 keys, writes between them.  Whether it
     * misses depends on where the writes land (about one walk in two
     * here); main() wants one miss among all these walks. */
    sgi_test_walk_chunked = 1;
    sgi_test_walk_keys = 8;
    long m = 0;
    int tries;
    for (tries = 1; tries <= 8 && (m = missed(st, kept)) == 0; tries++)
        ;
    printf("# %s: the chunked walk missed %ld session(s) that existed "
           "throughout, in walk %d (%lu pauses)\n", name, m, tries, pauses);
    chunked_missed += m > 0 ? m : 0;

    /* The walk from a snapshot, with the same writes in its pause, and a
     * compaction (the log cut, a new checkpoint) in the first one. */
    sgi_test_walk_chunked = 0;
    sgi_test_walk_keys = 0;
    for (int i = 0; i < 5; i++) {
        unsigned long p0 = pauses;
        compact_in_pause = i == 0;
        m = missed(st, kept);
        OK(m == 0, "%s: a walk from a snapshot misses none (walk %d: %ld "
           "missed, %lu pauses)", name, i + 1, m, pauses - p0);
        if (i == 0)
            OK(pauses - p0 == 2, "%s: a log cut during "
               "the snapshot makes it start again (%lu pauses)", name,
               pauses - p0);
    }
    /* And the count agrees with what is there: kept + made. */
    sgi_test_walk_pause = NULL;
    size_t n = 0;
    OK(sg_store_count(st, NULL, &n, &err) == SG_OK &&
       n == kept->n + made->n, "%s: count %zu = %zu kept + %zu made", name,
       n, kept->n, made->n);
    IS(failures, 0, "%s: every write in the pauses succeeded", name);
    sg_list_free(made);
    sg_list_free(kept);
    sg_store_close(writer);
    sg_store_close(st);
}

/* Whether key is in the store (a raw fetch). */
static int has_key(sg_store *st, const char *key)
{
    char *v = NULL;
    size_t len;
    if (sgi_lock(st, SGI_SHARED, NULL) != SG_OK)
        return -1;
    sg_status rc = st->be->fetch(st, key, &v, &len, NULL);
    sgi_unlock(st);
    free(v);
    return rc == SG_OK;
}

/* A rotation with a grace window leaves alias:OLD; purge drops those
 * whose window has closed (found by the walk's own key collection now,
 * not by a walk of every key under the exclusive lock) and keeps the
 * others. */
static void aliases(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/alias.db", dir);
    sg_options opt;
    sg_options_init(&opt);
    opt.rotate_grace = 1;
    sg_store *st = NULL;
    sg_error err = { 0 };
    if (sg_store_open(path, &opt, &st, &err) != SG_OK) {
        OK(0, "aliases: open: %s", err.text);
        return;
    }
    enum { OLD = 40, NEW = 10 };
    char old[OLD + NEW][SG_ID_LEN + 1];
    int bad = 0;
    for (int i = 0; i < OLD + NEW; i++) {
        sg_session *s = NULL;
        if (i == OLD) {
            struct timespec ts = { 1, 300000000 };   /* past the window */
            nanosleep(&ts, NULL);
        }
        if (sg_session_create(st, NULL, "{}", 0, 0, &s, &err) != SG_OK) {
            bad++;
            continue;
        }
        memcpy(old[i], sg_session_id(s), SG_ID_LEN + 1);
        if (sg_session_rotate(st, s, &err) != SG_OK)
            bad++;
        sg_session_free(s);
    }
    IS(bad, 0, "aliases: %d sessions created and rotated", OLD + NEW);
    size_t removed = 0;
    OK(sg_store_purge(st, &removed, &err) == SG_OK, "aliases: purge");
    int gone = 0, kept = 0;
    for (int i = 0; i < OLD + NEW; i++) {
        char key[SG_ID_LEN + sizeof SGI_ALIAS_PREFIX];
        memcpy(key, SGI_ALIAS_PREFIX, sizeof SGI_ALIAS_PREFIX - 1);
        memcpy(key + sizeof SGI_ALIAS_PREFIX - 1, old[i], SG_ID_LEN + 1);
        int h = has_key(st, key);
        gone += i < OLD && h == 0;
        kept += i >= OLD && h == 1;
    }
    IS(gone, OLD, "aliases: purge removed every alias whose window closed");
    IS(kept, NEW, "aliases: purge kept every alias still in its window");
    sg_store_close(st);
}

/* ------------------------------------------ the index compacted in slices */

/* A purge used to compact a big per-user index (index.c) inside one of
 * its exclusive steps, and check --repair rebuilt each user's index under
 * one exclusive hold: O(the user's sessions) with everyone kept out.  Now
 * both work in slices: the most compaction work inside one lock hold
 * (st->index_work_max) stays bounded, whatever the user's session
 * count, and a second handle writing between the slices (adding sessions
 * to the array being compacted, or compacting it itself first) loses no
 * session from the index. */
static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

/* Open path with the fake clock, set to its start. */
static sg_status open_fake(const char *path, sg_store **st, sg_error *err)
{
    sg_options opt;
    sg_options_init(&opt);
    opt.clock = fake_clock;
    fake_now = 2000000000;
    return sg_store_open(path, &opt, st, err);
}

static sg_store *other;         /* writes in the index pauses */
static sg_list *other_made, *busy_live;
static int other_compacts;      /* delete one of busy's in pause 2 */
static unsigned long index_pauses;

static void index_pause(sg_store *st, const char *user)
{
    (void)st;
    sg_error err = { 0 };
    index_pauses++;
    for (int i = 0; i < 3; i++) {
        sg_session *s = NULL;
        if (sg_session_create(other, user, "{}", 1000000, 1000000, &s, &err) != SG_OK ||
            sgi_list_push(other_made, sg_session_id(s)) < 0)
            failures++;
        sg_session_free(s);
    }
    /* A writer's remove compacts a due array itself, in its own hold (of
     * the other handle: not counted in st's figure): the compaction in
     * slices must notice and stop. */
    if (other_compacts && index_pauses == 2 && busy_live->n > 0) {
        if (sg_session_delete(other, busy_live->ids[busy_live->n - 1], &err) != SG_OK)
            failures++;
        busy_live->n--;
    }
}

/* Whether every id of want is in user's index. */
static size_t index_missing(sg_store *st, const char *user, const sg_list *want)
{
    sg_list *have = NULL;
    size_t missing = want->n;
    if (sgi_lock(st, SGI_SHARED, NULL) != SG_OK)
        return missing;
    if (sgi_index_ids(st, user, &have, NULL) == SG_OK) {
        missing = 0;
        for (size_t i = 0; i < want->n; i++)
            missing += !sgi_list_has(have, want->ids[i]);
    }
    sgi_unlock(st);
    sg_list_free(have);
    return missing;
}

static void sliced(const char *dir, int compacts)
{
    enum { BUSY = 1500 };       /* a third live, the rest expired */
    char path[1024];
    snprintf(path, sizeof path, "%s/sliced%d.db", dir, compacts);
    sg_store *st = NULL;
    sg_error err = { 0 };
    if (open_fake(path, &st, &err) != SG_OK ||
        open_fake(path, &other, &err) != SG_OK) {
        OK(0, "sliced: open: %s", err.text);
        sg_store_close(st);
        return;
    }
    busy_live = sgi_list_new();
    other_made = sgi_list_new();
    other_compacts = compacts;
    index_pauses = 0;
    int bad = sg_store_begin(st, &err) != SG_OK;
    for (int i = 0; i < BUSY; i++) {
        sg_session *s = NULL;
        int live = i % 3 == 0;
        if (sg_session_create(st, "busy", "{}", 1000000, live ? 1000000 : 10,
                              &s, &err) != SG_OK)
            bad++;
        else if (live && sgi_list_push(busy_live, sg_session_id(s)) < 0)
            bad++;
        sg_session_free(s);
    }
    sg_store_end(st);
    IS(bad, 0, "sliced %d: %d sessions of one user created", compacts, BUSY);
    fake_now += 100;
    sgi_test_index_pause = index_pause;
    st->index_work_max = 0;
    size_t removed = 0;
    sg_status prc = sg_store_purge(st, &removed, &err);
    OK(prc == SG_OK, "sliced %d: purge", compacts);
    IS(removed, BUSY - BUSY / 3, "sliced %d: purge removed the expired", compacts);
    OK(index_pauses >= 2, "sliced %d: the purge compacted the index in slices "
       "(%lu pauses)", compacts, index_pauses);
    OK(st->index_work_max <= 4 * 128, "sliced %d: at most %d items of "
       "compaction work in one lock hold during the purge (%zu)", compacts,
       4 * 128, st->index_work_max);
    for (size_t i = 0; i < other_made->n; i++)
        if (sgi_list_push(busy_live, other_made->ids[i]) < 0)
            failures++;
    sgi_list_sort_unique(busy_live);
    IS(index_missing(st, "busy", busy_live), 0, "sliced %d: the index holds "
       "each of the user's %zu live sessions, also those written between "
       "slices", compacts, busy_live->n);
    size_t n = 0;
    OK(sg_store_count(st, "busy", &n, &err) == SG_OK && n == busy_live->n,
       "sliced %d: count --user %zu = %zu", compacts, n, busy_live->n);

    /* check --repair's rebuild of the index, in slices too. */
    st->index_work_max = 0;
    size_t before = other_made->n;
    sg_check_report rep;
    prc = sg_store_check(st, 1, &rep, &err);
    OK(prc == SG_OK, "sliced %d: check --repair", compacts);
    OK(st->index_work_max <= 4 * 128, "sliced %d: at most %d items of "
       "index work in one lock hold during check --repair (%zu)", compacts,
       4 * 128, st->index_work_max);
    for (size_t i = before; i < other_made->n; i++)
        if (sgi_list_push(busy_live, other_made->ids[i]) < 0)
            failures++;
    sgi_list_sort_unique(busy_live);
    IS(index_missing(st, "busy", busy_live), 0, "sliced %d: after the "
       "repair the index holds each of the user's %zu live sessions",
       compacts, busy_live->n);
    sgi_test_index_pause = NULL;
    IS(failures, 0, "sliced %d: every write in the pauses succeeded", compacts);
    sg_list_free(busy_live);
    sg_list_free(other_made);
    sg_store_close(other);
    sg_store_close(st);
}

/* cachestat(2) (Linux 6.5), which the C library may not wrap yet: 451 in
 * the syscall table the architectures share since Linux 5.1. */
#if !defined(__NR_cachestat) && (defined(__x86_64__) || defined(__i386__) || \
    defined(__aarch64__) || defined(__arm__) || defined(__riscv) || \
    defined(__powerpc__) || defined(__s390x__))
#define __NR_cachestat 451
#endif
struct sg_cachestat_range { uint64_t off, len; };
struct sg_cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted,
             nr_recently_evicted;
};
#define TMPFS_MAGIC_ 0x01021994

static long swap_dirty = -1;    /* pages of the new files left dirty */
static int swaps, swap_compacts, swap_unknown;

static long dirty_pages(int fd)
{
    struct statfs fs;
    struct sg_cachestat_range r = { 0, 0 };
    struct sg_cachestat cs;
    if (fstatfs(fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC_)
        return -1;              /* tmpfs: never written back */
#ifdef __NR_cachestat
    if (syscall(__NR_cachestat, fd, &r, &cs, 0) != 0)
        return -1;
    return (long)cs.nr_dirty;
#else
    (void)r, (void)cs;
    return -1;
#endif
}

static void swap_hook(sg_store *st, int ck_fd, int db_fd)
{
    (void)st;
    long ck = dirty_pages(ck_fd), db = db_fd >= 0 ? dirty_pages(db_fd) : 0;
    swaps++;
    swap_compacts += db_fd >= 0;
    if (ck < 0 || db < 0) {
        swap_unknown = 1;
        return;
    }
    if (ck + db > swap_dirty)
        swap_dirty = ck + db;
}

/* The swap of a build behind the lock (gdbm_fuzzy.c) holds the exclusive
 * lock for its last records and its renames; on ext4 a rename over an
 * existing file writes the renamed file's unwritten pages out first, so
 * all of a new PATH.new (and PATH.ckpt.new) that the build had left in
 * the page cache was written back under the lock: 161-204 ms for the
 * 100 MB of a compaction of 200,000 sessions.  Counted here as the new
 * files' dirty pages when the hook runs, just before the renames, for a
 * compaction and a checkpoint: only what the last records touch may be
 * left (none here: nothing is written meanwhile). */
static void swap_writeback(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/swap.db", dir);
    sg_store *st = NULL;
    sg_error err = { 0 };
    if (sg_store_open(path, NULL, &st, &err) != SG_OK) {
        OK(0, "swap: open: %s", err.text);
        return;
    }
    char data[1024];
    snprintf(data, sizeof data, "{\"pad\":\"%0900d\"}", 7);
    int bad = sg_store_begin(st, &err) != SG_OK;
    for (int i = 0; !bad && i < kept_n; i++) {
        sg_session *s = NULL;
        bad += sg_session_create(st, NULL, data, 0, 0, &s, &err) != SG_OK;
        sg_session_free(s);
    }
    sg_store_end(st);
    /* The first compaction runs under the lock (no checkpoint yet). */
    bad += sg_store_compact(st, NULL, &err) != SG_OK;
    IS(bad, 0, "swap: %d sessions of 1 KB and a checkpoint", kept_n);
    for (int i = 0; i < 50; i++) {
        sg_session *s = NULL;
        sg_session_create(st, NULL, data, 0, 0, &s, &err);
        sg_session_free(s);
    }
    sgi_test_swap_hook = swap_hook;
    int oldfd = open(path, O_RDONLY);   /* as another process's handle */
    sg_status rc = sg_store_compact(st, NULL, &err);
    OK(rc == SG_OK, "swap: compact behind the lock");
    /* The PATH it replaced: whoever closed it last freed it, under its
     * next lock (30 ms for 100 MB); the builder gives it back first. */
    struct stat old;
    OK(oldfd >= 0 && fstat(oldfd, &old) == 0 && old.st_nlink == 0 &&
       old.st_blocks == 0, "swap: the compaction gave the file it replaced "
       "back to the disk itself (%lld blocks left)", (long long)old.st_blocks);
    if (oldfd >= 0)
        close(oldfd);
    for (int i = 0; i < 50; i++) {
        sg_session *s = NULL;
        sg_session_create(st, NULL, data, 0, 0, &s, &err);
        sg_session_free(s);
    }
    int built = 0;
    rc = sg_store_checkpoint(st, SG_CHECKPOINT_FORCE, &built, &err);
    OK(rc == SG_OK && built, "swap: a checkpoint behind the lock");
    sgi_test_swap_hook = NULL;
    OK(swaps >= 2 && swap_compacts >= 1, "swap: the compaction and the "
       "checkpoint swapped under the hook (%d swaps, %d compacting)", swaps,
       swap_compacts);
    if (swap_unknown)
        printf("# skipped: the page cache cannot be asked here (cachestat "
               "needs Linux 6.5; tmpfs never writes back)\n");
    else
        OK(swap_dirty >= 0 && swap_dirty <= 4, "swap: the renames under the "
           "exclusive lock find the new files written back (%ld pages left "
           "dirty at most)", swap_dirty);
    sg_store_close(st);
}

/* A purge's exclusive holds are short, but it took each one again
 * microseconds after releasing the last, and flock() is not fair: a
 * waiting writer or reader nearly never got in between, and waited through
 * the whole chain (170 ms at 200,000 sessions, in holds of at most 19 ms).
 * Every session here expired, so each of the walk's chunks has a long run
 * of deletes and index compactions to do under the exclusive lock: no
 * chain of holds (holds less than WALK_GAP_US apart) may pass WALK_CHAIN_US
 * by more than its last hold. */
static void gaps(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/gaps.db", dir);
    sg_store *st = NULL;
    sg_error err = { 0 };
    if (open_fake(path, &st, &err) != SG_OK) {
        OK(0, "gaps: open: %s", err.text);
        return;
    }
    int bad = sg_store_begin(st, &err) != SG_OK;
    for (int i = 0; !bad && i < kept_n; i++) {
        sg_session *s = NULL;
        char user[16];
        snprintf(user, sizeof user, "g%d", i % 4);
        bad += sg_session_create(st, i % 2 ? NULL : user, "{\"k\":1}", 1000,
                                 10, &s, &err) != SG_OK;
        sg_session_free(s);
    }
    sg_store_end(st);
    IS(bad, 0, "gaps: %d sessions created", kept_n);
    fake_now += 100;
    st->ex_chain_max_us = st->ex_hold_max_us = 0;
    size_t removed = 0;
    sg_status rc = sg_store_purge(st, &removed, &err);
    OK(rc == SG_OK && removed == (size_t)kept_n, "gaps: the purge removed "
       "all %zu", removed);
    OK(st->ex_chain_max_us <= WALK_CHAIN_US + st->ex_hold_max_us, "gaps: the "
       "purge's exclusive holds came in chains of at most %d us plus a hold "
       "(longest chain %llu us, longest hold %llu us)", WALK_CHAIN_US,
       (unsigned long long)st->ex_chain_max_us,
       (unsigned long long)st->ex_hold_max_us);
    sg_store_close(st);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: test_walk DIR\n", stderr);
        return 2;
    }
    const char *vg = getenv("SG_VALGRIND");
    if (vg && strcmp(vg, "1") == 0)
        kept_n = 1000;
    srand(19);
    run(argv[1], "ckpt", 1);
    run(argv[1], "logonly", 0);
    aliases(argv[1]);
    sliced(argv[1], 0);
    sliced(argv[1], 1);
    swap_writeback(argv[1]);
    gaps(argv[1]);
    OK(chunked_missed > 0, "the chunked walk (the old one) misses sessions "
       "under the same writes (%ld in all)", chunked_missed);
    return tap_done();
}
