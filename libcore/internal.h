/*
 * internal.h - declarations shared inside libcore (prefix sgi_), never
 * installed.  The store is split in two layers: store.c / session.c know
 * what a session is (expiry, versions, users) and talk to a backend through
 * the function table of backend.h, which only stores bytes under keys and
 * provides the lock.
 */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

#include "sessgate.h"
#include "backend.h"

#include <jansson.h>
#include <stdarg.h>
#include <time.h>

/* Lock modes, in increasing strength. */
enum { SGI_UNLOCKED = 0, SGI_SHARED = 1, SGI_EXCLUSIVE = 2 };

/* counters.c: the figures kept in the store (see there). */
#define SGI_COUNTERS_KEY "stat:counters"
typedef struct sgi_counts {
    uint64_t at, sessions, anonymous, users, expired;
} sgi_counts;
typedef struct sgi_cnt_hold {
    int active, broken, recounted, wrote;
    int valid0;                 /* the figures were right when it began */
    uint64_t w0;                /* write counter when the hold began */
    int64_t d_sessions, d_anonymous, d_users, d_expired;
    sgi_counts recount;
} sgi_cnt_hold;
typedef struct sgi_cnt {
    const sgi_backend *real;    /* the backend's own table; NULL: not kept */
    sgi_backend table;          /* its copy with put and del wrapped */
    sgi_cnt_hold hold;
} sgi_cnt;

struct sg_store {
    const sgi_backend *be;    /* function table of the backend */
    void *be_data;            /* Owned: the backend's state (be->close frees) */
    char *path;               /* Owned: location, for messages */
    sg_options opt;           /* effective options, defaults filled in */
    int lock_mode;            /* SGI_* held now */
    int lock_depth;           /* nesting of sgi_lock calls */
    int begin_depth;          /* nesting of sg_store_begin */
    unsigned long recoveries; /* recoveries done through this handle */
    /* The last user index array this handle sized (store.c slot_count):
     * where to look first, checked on every use. */
    char *hint_user;          /* Owned; NULL when none */
    size_t hint_gen, hint_n;
    size_t index_work;        /* index compaction work in this lock hold */
    size_t index_work_max;    /* the most in one hold (index.c; read by
                               * tests/unit/test_walk.c) */
    int touch_explicit;       /* opt.touch_interval was given, not derived */
    sg_lock_counters locks;   /* lock waits of this handle (sg_store_lock_counters) */
    struct timespec held_since; /* when the outermost lock was taken */
    sgi_cnt cnt;              /* kept figures (counters.c) */
    int nowait;               /* nonzero: a lock another process holds is
                               * SG_ELOCKTIMEOUT/EWOULDBLOCK at once
                               * (sg_session_get with SG_GET_NOWAIT) */
    struct sgi_memo *memo;    /* Owned, or NULL: records kept by gets with
                               * SG_GET_MEMO (memo.c) */
    int memo_fill;            /* nonzero: sgi_load_ex keeps what it reads */
    /* Chains of exclusive holds (store.c walk_gap): */
    int walking;              /* inside a whole-store walk (purge, check) */
    struct timespec lock_asked; /* when the outermost lock was asked for */
    struct timespec ex_released; /* when the last exclusive hold ended */
    uint64_t ex_chain_us;     /* exclusive time since the last gap */
    uint64_t ex_chain_max_us; /* the longest chain, and the longest hold */
    uint64_t ex_hold_max_us;  /* in it (read by tests/unit/test_walk.c) */
};

/* A whole-store walk holds the exclusive lock in a chain of short holds;
 * once a chain reaches WALK_CHAIN_US, it leaves the lock alone for
 * WALK_GAP_US before the next (store.c walk_gap).  Holds less than
 * WALK_GAP_US apart are one chain. */
#define WALK_CHAIN_US 10000
#define WALK_GAP_US    3000

struct sg_session {
    char id[SG_ID_LEN + 1];
    char *user;               /* Owned; NULL = anonymous */
    int64_t created, accessed, expires, idle;
    uint64_t version;         /* version this copy was loaded at / saved as */
    /* The data: as a JSON object, or as its stored text (compact ASCII
     * JSON), or both (then they agree); never neither.  A record read in
     * the current format has only the text until someone asks for the
     * value (record.c: sgi_session_data). */
    json_t *data;             /* Owned reference, or NULL: not parsed yet */
    char *data_text;          /* Owned, NUL-ended, or NULL: not dumped yet */
    size_t data_len;
    int format;               /* SGI_FORMAT_* it was read in; 0: made here */
    int is_new;
    size_t max_data;          /* the store's cap, for set/merge */
    char csrf[SG_CSRF_LEN + 1]; /* CSRF token, hex; "" in a record from
                                 * before tokens (one is added on use) */
    int64_t rotated;          /* last rotation, 0 = never (record "rotated") */
    json_t *flash;            /* Owned: pending flash messages (array of
                               * objects), or NULL for none */
    /* The user of the stored copy this one was loaded (or last saved) as,
     * when known: a save without the store lock (backend rec_save) needs
     * it to tell a login from a plain save without reading the store. */
    int stored_known;
    int stored_anon;          /* the stored copy is anonymous */
    char stored_user[SG_MAX_USER + 1];  /* (no allocation: a load that
                                         * cannot fail halfway) */
};

struct sg_list {
    size_t n, cap;
    char (*ids)[SG_ID_LEN + 1]; /* Owned */
};

/* error.c: record an error unless one is already there (first wins).
 * Returns code, so `return sgi_err(err, SG_EINVAL, 0, "...")` reads well. */
sg_status sgi_err(sg_error *err, sg_status code, int sys_errno,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* SG_ENOMEM with "WHAT NAME: out of memory" (name may be NULL). */
sg_status sgi_oom(sg_error *err, const char *what, const char *name);

/* options.c: check every number of *in against the option table (0 is
 * the default); SG_EINVAL names the option and its range. */
sg_status sgi_options_check(const sg_options *in, sg_error *err);

/* id.c */
sg_status sgi_id_new(char out[SG_ID_LEN + 1], sg_error *err);
sg_status sgi_token_new(char out[SG_CSRF_LEN + 1], sg_error *err);
int sgi_token_valid(const char *text);

/* json.c: JSON text of data and records (jansson). */
sg_status sgi_data_parse(const char *text, size_t max, json_t **out,
                         sg_error *err);
char *sgi_dump(const json_t *v, size_t *len);
sg_status sgi_data_depth_check(const json_t *data, sg_error *err);
/* json_loadb, but NULL with *oom set when an allocation failed during it. */
json_t *sgi_json_load(const char *text, size_t len, size_t flags,
                      json_error_t *je, int *oom);

/* record.c: the session record (new, free, accessors, parse, dump).
 * Stored formats: 1 = a JSON object (read, never written any more),
 * 2 = a fixed header and the data as text (see record.c). */
#define SGI_FORMAT_JSON    1
#define SGI_FORMAT_CURRENT 2
sg_session *sgi_session_new(void);
sg_status sgi_record_parse(const char *text, size_t len, sg_session **out,
                           sg_error *err);
sg_status sgi_record_from_json(const char *text, size_t len, sg_session **out,
                               sg_error *err);
char *sgi_record_dump(const sg_session *s, size_t *len);
char *sgi_record_to_json(const sg_session *s, size_t *len);
sg_status sgi_session_data(const sg_session *s, json_t **out, sg_error *err);
sg_status sgi_user_check(const char *user, sg_error *err);
sg_status sgi_data_size_check(const sg_session *s, json_t *data,
                              sg_error *err);

/* store.c: locking with nesting, the clock, liveness. */
sg_status sgi_lock(sg_store *st, int mode, sg_error *err);
void sgi_unlock(sg_store *st);
int64_t sgi_now(const sg_store *st);
int sgi_live(const sg_session *s, int64_t now);
int64_t sgi_touch_interval(const sg_store *st, const sg_session *s);
int64_t sgi_expire_at(const sg_store *st, const sg_session *s);
void sgi_stored_as(sg_session *s);
void sgi_rec_fill(const sg_store *st, const sg_session *s, const char *text,
                  size_t len, sgi_rec *r);
sg_status sgi_put_text(sg_store *st, const sg_session *s, const char *text,
                       size_t len, sg_error *err);

/* a + b, saturated at the int64 limits.  Why: timestamps and lifetimes come
 * from stored and imported records, so accessed + idle or created + max_age
 * can exceed INT64_MAX, and signed overflow is undefined behaviour (an
 * import line with "accessed":9223372036854775807 hit it in sgi_live;
 * confirmed with fuzz/fuzz_import).  Saturating keeps the comparisons
 * right: such a session ends "never", not in 1970. */
static inline int64_t sgi_add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Load a record by id (no liveness check).  New: *out.  A record that
 * does not parse is SG_ESTORE, with *damaged (may be NULL) set to 1. */
sg_status sgi_load(sg_store *st, const char *id, sg_session **out,
                   sg_error *err);
/* memo.c: records kept for SG_GET_MEMO gets. */
sg_session *sgi_memo_get(sg_store *st, const char *id);
void sgi_memo_put(sg_store *st, const char *id, const char *text, size_t len);
void sgi_memo_free(sg_store *st);
sg_status sgi_load_ex(sg_store *st, const char *id, sg_session **out,
                      int *damaged, sg_error *err);
sg_status sgi_load_text(sg_store *st, const char *id, char *text,
                        size_t len, sg_session **out, int *damaged,
                        sg_error *err);
/* Write a record as it is.  Caller holds the exclusive lock. */
sg_status sgi_put(sg_store *st, const sg_session *s, sg_error *err);

/* index.c: per-user index: a set of ids per user (a superset of the
 * user's sessions; readers verify each), O(1) per add and remove; see
 * index.c for its keys.  Caller holds the lock. */
sg_status sgi_index_add(sg_store *st, const char *user, const char *id,
                        sg_error *err);
sg_status sgi_index_remove(sg_store *st, const char *user, const char *id,
                           sg_error *err);
sg_status sgi_index_ids(sg_store *st, const char *user, sg_list **out,
                        sg_error *err);
sg_status sgi_enforce_cap(sg_store *st, const char *user, const char *keep,
                          sg_error *err);
/* Make user's index hold the ids of want (sorted, unique) plus any
 * session of the user's added meanwhile.  Takes the locks it needs, each
 * for a bounded slice of the work (or nests in a caller's). */
sg_status sgi_index_rebuild(sg_store *st, const char *user,
                            const sg_list *want, sg_error *err);
/* As sgi_index_remove, but a compaction of a big array that the remove
 * makes due is left to sgi_index_compact (*due set), to be run with the
 * lock released: purge's exclusive steps stay bounded.  Caller holds the
 * exclusive lock. */
sg_status sgi_index_remove_later(sg_store *st, const char *user,
                                 const char *id, int *due, sg_error *err);
/* Compact user's index if it is due, a slice at a time, each under an
 * exclusive lock of its own (or nested in a caller's). */
sg_status sgi_index_compact(sg_store *st, const char *user, sg_error *err);
/* Called (when set) with no lock held before each copy slice of a
 * compaction in slices: tests/unit/test_walk.c writes there. */
extern void (*sgi_test_index_pause)(sg_store *st, const char *user);

/* walk.c: the live sessions among ids, belonging to user (NULL: any),
 * oldest first.  New: *out (n entries).  Takes a shared lock per chunk. */
typedef struct sgi_dated { int64_t created; char id[SG_ID_LEN + 1]; } sgi_dated;
sg_status sgi_live_sorted(sg_store *st, const sg_list *ids, const char *user,
                          sgi_dated **out, size_t *n, sg_error *err);

/* walk.c: hooks for tests/unit/test_walk.c only (never set otherwise).
 * sgi_test_walk_pause runs with no lock held wherever a whole-store walk
 * has released the lock between two steps of its key collection (between
 * chunks; in a snapshot, after noting where it starts); with
 * sgi_test_walk_chunked set the walk takes no snapshot, and
 * sgi_test_walk_keys > 0 makes each chunk that many keys. */
extern void (*sgi_test_walk_pause)(sg_store *st);
extern int sgi_test_walk_chunked;
extern size_t sgi_test_walk_keys;

/* gdbm_fuzzy.c: called (when set) in the swap of a checkpoint or
 * compaction built behind the lock, under the exclusive lock just before
 * the renames, with the new files' descriptors (db_fd -1 unless
 * compacting): tests/unit/test_walk.c counts what is left for the renames
 * to write back. */
extern void (*sgi_test_swap_hook)(sg_store *st, int ck_fd, int db_fd);

/* counters.c: wrap the backend's put/del (at open), and bracket every
 * exclusive hold (sgi_lock/sgi_unlock); recount in chunks and write the
 * figures back if no write overtook the count (check --repair; no lock
 * held by the caller). */
void sgi_counters_attach(sg_store *st);
void sgi_counters_begin(sg_store *st);
void sgi_counters_end(sg_store *st);
sg_status sgi_counters_rebuild(sg_store *st, sg_error *err);

/* idlist.c: id lists. */
sg_list *sgi_list_new(void);
int sgi_list_push(sg_list *l, const char *id);
void sgi_list_sort_unique(sg_list *l);
int sgi_list_has(const sg_list *sorted, const char *id);

#define SGI_ALIAS_PREFIX "alias:"   /* old id -> "NEWID UNTIL" for a rotate's grace */
#define SGI_MAX_ALIAS_HOPS 8        /* renewals followed within a grace window */
#define SGI_UPDATE_TRIES 100        /* runs of an update()'s fn before SG_ECONFLICT */
/* bulk.c: rotation grace aliases. */
void sgi_alias_put(sg_store *st, const char *old_id, const char *new_id);
#define SGI_ALIAS_MAX (SG_ID_LEN + 32)
int sgi_alias_value(const sg_store *st, const char *new_id,
                    char val[SGI_ALIAS_MAX], int64_t *expire_at);
sg_status sgi_alias_resolve(sg_store *st, const char *id, char out[SG_ID_LEN + 1]);
#define SGI_USER_PREFIX "user:"     /* old index format: a JSON array */
#define SGI_INDEX_PREFIX "uidx:"    /* the set (Redis) */
#define SGI_GEN_PREFIX "ugen:"      /* the slot array's generation (GDBM) */

/* redis_conn.c: New: uri with any password it holds ("user:pw@", unknown
 * query values) shown as "***", for messages; NULL on no memory. */
char *sgi_uri_masked(const char *uri);

#endif
