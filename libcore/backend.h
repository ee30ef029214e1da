/*
 * backend.h - the store backend interface: a small table of functions.
 *
 * A backend stores opaque byte values under NUL-terminated keys and
 * provides the store-wide lock.  Everything a session means (expiry,
 * versions, users, the per-user index) lives above it in store.c and
 * session.c, so a second backend (Redis) is one new file and one line in
 * the table of store.c; the gateway, sessgatectl and the bindings do not
 * change.  No backend parses a value: what it needs to know about one
 * (when it may drop it) comes as an argument, computed once above it.
 *
 * Contract for every backend:
 *  - lock() takes the lock in the given mode (SGI_SHARED / SGI_EXCLUSIVE)
 *    within the store's lock timeout (else SG_ELOCKTIMEOUT), and makes sure
 *    what the following calls read is current: no read through a view that
 *    another process's write has made stale.
 *  - fetch/put/del/keys run only between lock() and unlock(); put and del
 *    only under SGI_EXCLUSIVE.
 *  - put returns SG_OK only when the value is in the backend such that the
 *    death of this process at any later instant cannot lose it.
 *  - put's expire_at (Unix seconds, real time; 0 = never) is the first
 *    instant at which the value is of no use to the layer above (for a
 *    session record: the end of its life, sgi_expire_at).  A backend may
 *    drop the value from then on (Redis does, with PEXPIREAT) or keep it
 *    until deleted (GDBM does: purge removes it); it must not drop it
 *    earlier.
 */
#ifndef SG_BACKEND_H
#define SG_BACKEND_H

#include "sessgate.h"

struct sgi_counts;

/* Called for each key by keys(); a nonzero return stops the walk. */
typedef int (*sgi_key_fn)(const char *key, size_t len, void *arg);

/* Where a chunked walk stands (keys_chunk).  Zeroed to start; released
 * with sgi_cursor_free (store.c). */
#define SGI_CURSOR_KEEP 8
typedef struct sgi_cursor {
    int started, done;
    char *last[SGI_CURSOR_KEEP]; /* Owned: the last keys walked, newest first */
    int nlast;
    unsigned long restarts;      /* times the walk lost its place */
} sgi_cursor;

/* One session write for the optional rec_* operations below.  What the
 * backend must know about the record (version, user, created, end of
 * life) comes in these fields, computed above it: no backend parses a
 * record. */
typedef struct sgi_rec {
    const char *id;           /* the stored session (create: the new id) */
    const char *new_id;       /* save: the id to write under (id unless
                               * rotating) */
    const char *val;          /* the record */
    size_t len;
    int64_t expire_at;        /* as for put */
    uint64_t expect_version;  /* save: the version the caller's copy has */
    uint64_t version;         /* the version written */
    const char *user;         /* the record's user, NULL anonymous */
    const char *expect_user;  /* save: the stored copy's user (the caller
                               * loaded it at expect_version) */
    int64_t created;          /* the record's created */
    int64_t live_until;       /* min(expires, accessed + idle): store time */
    int64_t now;              /* store time */
    int cap;                  /* max live sessions per user, 0 = none */
    const char *alias_val;    /* save with rotate: the value for the old
                               * id's alias key (SGI_ALIAS_PREFIX), or NULL */
    int64_t alias_expire_at;  /* as expire_at, for the alias */
    /* out */
    uint64_t stored_version;  /* on SG_ECONFLICT */
    int fallback;             /* 1: nothing was done; do the write under
                               * the exclusive lock instead (a multi-key
                               * operation holds it, or a record or index
                               * of an older format is involved) */
    int collision;            /* create / rotate: the new id exists */
} sgi_rec;
/* The store's figures (counters.c) where every process sees them and a
 * write hold updates them with no write of its own.  Zero on a new area;
 * counters.c alone gives the fields their meaning. */
typedef struct sgi_figures {
    uint64_t magic;                 /* counters.c's mark once set up */
    uint64_t at;                    /* the write counter they are right at */
    uint64_t sessions, anonymous, users, expired;
} sgi_figures;

typedef struct sgi_backend {
    const char *scheme;   /* "gdbm", "redis" */
    sg_status (*open)(sg_store *st, const char *location, sg_error *err);
    void (*close)(sg_store *st);
    sg_status (*lock)(sg_store *st, int mode, sg_error *err);
    void (*unlock)(sg_store *st);
    /* New: *val (malloc'd, NUL-terminated for convenience), *len bytes.
     * SG_ENOTFOUND when absent. */
    sg_status (*fetch)(sg_store *st, const char *key, char **val,
                       size_t *len, sg_error *err);
    sg_status (*put)(sg_store *st, const char *key, const char *val,
                     size_t len, int64_t expire_at, sg_error *err);
    /* SG_ENOTFOUND when absent. */
    sg_status (*del)(sg_store *st, const char *key, sg_error *err);
    sg_status (*keys)(sg_store *st, sgi_key_fn fn, void *arg, sg_error *err);
    /* Optional (NULL: store.c walks with keys() under one lock, fine for a
     * backend whose readers take no lock).  The next at most `max` keys of
     * a walk that the caller releases the lock between: call fn for each,
     * set c->done once past the last.  Keys that exist throughout the walk
     * are seen at least once unless concurrent writes reorder the backend
     * (see the GDBM one); repeats are possible.  Caller holds a lock. */
    sg_status (*keys_chunk)(sg_store *st, sgi_cursor *c, size_t max,
                            sgi_key_fn fn, void *arg, sg_error *err);
    /* Optional (NULL: keys_chunk).  Every key of the store as of one
     * instant, read with no lock held (only an instant under the shared
     * lock): a key that exists throughout the walk is seen, whatever is
     * written meanwhile.  SG_ENOTFOUND, fn not called: no snapshot can be
     * taken now (the caller walks with keys_chunk).  Repeats are possible.
     * Caller holds no lock. */
    sg_status (*keys_snapshot)(sg_store *st, sgi_key_fn fn, void *arg,
                               sg_error *err);
    /* Structural check and repair (caller holds no lock, or SGI_EXCLUSIVE:
     * the backend takes what it needs). */
    sg_status (*check)(sg_store *st, int repair, sg_check_report *rep,
                       sg_error *err);
    /* File size and write counter, for stats. */
    void (*info)(sg_store *st, uint64_t *bytes, uint64_t *writes);
    /* Optional (NULL: nothing to do).  Make room for about `bytes` of
     * puts and dels that must not stop halfway for lack of space (a
     * rotation that wrote the new id and could not delete the old one
     * would leave both working: its undo needs room too), or fail as the
     * first of them would have.  Caller holds SGI_EXCLUSIVE. */
    sg_status (*reserve)(sg_store *st, size_t bytes, sg_error *err);
    /* Optional (NULL: store.c keeps each user's index in plain keys).  A
     * native set of ids per user, each call O(1) in the set's size: add
     * (no-op when there), remove (SG_ENOTFOUND when absent), append every
     * member to l, count.  add and remove under SGI_EXCLUSIVE, and set
     * *legacy to 1 when the user also has an index in the old format
     * (store.c then converts it). */
    sg_status (*set_add)(sg_store *st, const char *user, const char *id,
                         int *legacy, sg_error *err);
    sg_status (*set_remove)(sg_store *st, const char *user, const char *id,
                            int *legacy, sg_error *err);
    sg_status (*set_ids)(sg_store *st, const char *user, struct sg_list *l,
                         sg_error *err);
    sg_status (*set_count)(sg_store *st, const char *user, size_t *n,
                           sg_error *err);
    /* Optional (NULL: nothing to compact, as on Redis).  Give the space
     * the store does not use back to the disk; fill *rep.  Caller holds
     * no lock (the backend takes what it needs) or SGI_EXCLUSIVE. */
    sg_status (*compact)(sg_store *st, sg_compact_report *rep, sg_error *err);
    /* Optional (NULL: no checkpoints, as on Redis; sg_store_checkpoint
     * answers SG_ENOTSUP).  With
     * SG_CHECKPOINT_QUERY set *built to whether a checkpoint is due,
     * cheaply and taking no lock; else build one if due (or with
     * SG_CHECKPOINT_FORCE, anyway) and set *built to whether this call
     * did.  Caller holds no lock. */
    sg_status (*checkpoint)(sg_store *st, int flags, int *built,
                            sg_error *err);
    /* Optional (NULL: store.c takes the exclusive lock for every write).
     * Single-session writes, each ONE atomic step with NO store-wide lock,
     * called with no lock held:
     *  - rec_create: write r->id if it does not exist (else collision),
     *    add it to r->user's index and evict beyond r->cap, as
     *    sgi_enforce_cap does;
     *  - rec_save: if the stored r->id has version r->expect_version and
     *    user r->expect_user (else SG_ECONFLICT, stored_version set) and is
     *    live at r->now (else SG_EEXPIRED), write it under r->new_id,
     *    delete r->id when rotating (and write alias_val), keep both users'
     *    indexes in step, cap a new user; SG_ENOTFOUND when absent;
     *  - rec_delete: delete r->id and its index entry; SG_ENOTFOUND.
     * Any of them may set r->fallback instead (see sgi_rec).
     * rec_put: put, with the record's fields, under SGI_EXCLUSIVE (store.c's
     * locked path), so that the three above can check what it wrote. */
    sg_status (*rec_create)(sg_store *st, sgi_rec *r, sg_error *err);
    sg_status (*rec_save)(sg_store *st, sgi_rec *r, sg_error *err);
    sg_status (*rec_delete)(sg_store *st, sgi_rec *r, sg_error *err);
    sg_status (*rec_put)(sg_store *st, const sgi_rec *r, sg_error *err);
    /* Optional, beside the rec_* above (NULL: under the exclusive lock).
     * End r->id if it is no longer live at r->now (its stored end of life
     * has passed: session.c's mark_ended) in one atomic step with no
     * store-wide lock; a backend that drops values past their expire_at
     * deletes it.  Nothing when it is live; SG_ENOTFOUND when absent; may
     * set r->fallback. */
    sg_status (*rec_end)(sg_store *st, sgi_rec *r, sg_error *err);
    /* Optional (NULL: the figures are counters.c's, in `figures`, or none).
     * Figures a backend keeps itself, moved by its own writes in the same
     * atomic steps (Redis, whose records expire inside the server):
     *  - counts: fill *c (at: the write counter) and set *kept to 1 when
     *    they are right, 0 when not (never counted, a recount unfinished,
     *    a writer that does not keep them), -1 when kept off;
     *  - recount: count every record again, writers going on meanwhile
     *    (nothing when kept off);
     *  - keep: stop (0) or start (1: then recount) keeping them. */
    sg_status (*counts)(sg_store *st, struct sgi_counts *c, int *kept,
                        sg_error *err);
    sg_status (*recount)(sg_store *st, sg_error *err);
    sg_status (*keep)(sg_store *st, int on, sg_error *err);
    /* Optional (NULL: no figures are kept, as on Redis, whose records
     * expire inside the server).  The figures area shared by every
     * process of the store, written under SGI_EXCLUSIVE, read under a
     * lock; NULL while it is not mapped. */
    sgi_figures *(*figures)(sg_store *st);
    /* Optional: the store's write counter, which every writer moves
     * BEFORE it changes anything, read without a lock or a syscall; 0
     * when it cannot be read now.  Makes SG_GET_MEMO possible (memo.c). */
    int (*stamp)(sg_store *st, uint64_t *out);
    /* Optional (NULL: nothing to wait for).  Called with no lock held by a
     * whole-store walk about to take the exclusive lock again (store.c
     * walk_gap): let a writer already waiting for the lock go first, for a
     * bounded time. */
    void (*lock_yield)(sg_store *st);
} sgi_backend;

extern const sgi_backend sgi_backend_gdbm;
extern const sgi_backend sgi_backend_redis;

#endif
