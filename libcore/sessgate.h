/*
 * sessgate.h - the public API of libsessgate, the only installed header.
 *
 * libsessgate keeps web sessions in a store shared by many processes (web
 * gateway workers, backend apps through the Python and Lua bindings, the
 * sessgatectl admin tool).  No daemon owns the data: every process opens the
 * same store and the library serialises access with filesystem locks.
 *
 * Conventions (borrowed from jansson and curl):
 *  - every public name starts with sg_ / SG_;
 *  - handles are opaque; constructors return an sg_status and fill an out
 *    parameter (set to NULL on error); _close/_free accept NULL;
 *  - the last argument of a call that can fail is a caller-owned sg_error,
 *    which may be NULL; its text names the object, the cause and the fix;
 *  - "New" return values belong to the caller, "Borrowed" ones to the object
 *    they came from and live until it changes or is freed;
 *  - the library never prints, exits or aborts.
 */
#ifndef SESSGATE_H
#define SESSGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SG_VERSION_STRING "0.1.0"

/* Limits.  Every one is also enforced where input arrives. */
#define SG_ID_LEN          36           /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define SG_MAX_USER        256          /* bytes of a user name */
#define SG_CSRF_LEN        64           /* hex digits of a CSRF token (256 bits) */
#define SG_MAX_FLASH       64           /* pending flash messages per session */
#define SG_MAX_DATA        (64 * 1024)  /* default cap on the data JSON, bytes */
#define SG_MAX_DATA_LIMIT  (16 * 1024 * 1024) /* highest cap a store accepts */
/* Deepest nesting of session data a write accepts: the data object itself
 * is level 1, {"a":[{}]} is 3.  Every reader (jansson, Python's json, Lua's
 * cjson, a framework already deep in its own stack) reads this depth back;
 * deeper data is refused with SG_ETOOBIG and nothing is saved. */
#define SG_MAX_DEPTH       64

/* Defaults for sg_options fields left at 0. */
#define SG_DEFAULT_IDLE_TIMEOUT  1800          /* seconds */
#define SG_DEFAULT_MAX_AGE       (7 * 86400)   /* seconds */
#define SG_DEFAULT_LOCK_TIMEOUT  5000          /* milliseconds */
#define SG_MAX_TOUCH_INTERVAL    60            /* seconds, cap on the default */
#define SG_DEFAULT_ROTATE_GRACE  10            /* seconds (lua-resty-session's
                                                * stale_ttl default) */
#define SG_ROTATE_GRACE_NONE     (-1)          /* rotate_grace: no grace at all */

typedef struct sg_store   sg_store;     /* opaque */
typedef struct sg_session sg_session;   /* opaque */
typedef struct sg_list    sg_list;      /* opaque: ids snapshot */

/* Status codes: add new ones last, never renumber. */
typedef enum sg_status {
    SG_OK = 0,
    SG_ENOTFOUND,      /* no such session (also: malformed id on get) */
    SG_EEXPIRED,       /* the session exists but is past its idle or max age */
    SG_ECONFLICT,      /* save based on a stale version */
    SG_EINVAL,         /* bad argument: malformed id, bad JSON, bad user */
    SG_ELOCKTIMEOUT,   /* the store lock was not obtained in time */
    SG_ESTORE,         /* I/O or database error; sys_errno says more */
    SG_ENOMEM,         /* out of memory */
    SG_ETOOBIG,        /* data over the store's size cap */
    SG_ENOTSUP         /* the store has no such thing (a checkpoint on
                        * Redis) */
} sg_status;

#define SG_ERROR_TEXT 256   /* room for a long store path and its fix */

/* Caller-owned error report.  The first error wins: a call does not
 * overwrite an error already stored (code != SG_OK); reset with
 * sg_error_clear(). */
typedef struct sg_error {
    sg_status code;
    int       sys_errno;            /* errno behind an SG_ESTORE, else 0 */
    char      text[SG_ERROR_TEXT];  /* one line, no trailing newline */
} sg_error;

/* Clock used for every expiry decision, in Unix seconds. */
typedef int64_t (*sg_clock_fn)(void *arg);

/* Store options.  Zero (or NULL for the whole struct) means the default;
 * sg_options_init() fills the defaults explicitly. */
typedef struct sg_options {
    int64_t  idle_timeout;     /* s; default SG_DEFAULT_IDLE_TIMEOUT */
    int64_t  max_age;          /* s; default SG_DEFAULT_MAX_AGE */
    int64_t  touch_interval;   /* s; default min(idle/10, 60), at least 1 */
    int      lock_timeout_ms;  /* default SG_DEFAULT_LOCK_TIMEOUT */
    int      max_per_user;     /* cap on live sessions of one user; 0 = none */
    size_t   max_data;         /* cap on the data JSON; default SG_MAX_DATA */
    int      sync;             /* nonzero: fsync after every write */
    int      group;            /* nonzero: create files 0660, not 0600 */
    int      readonly;         /* nonzero: never write (no touch, no create) */
    sg_clock_fn clock;         /* NULL: time(2).  For tests and embedders. */
    void    *clock_arg;
    int64_t  rotate_grace;     /* s the old id of a rotation (never of a
                                * login, logout or user change) keeps
                                * resolving to the session; default
                                * SG_DEFAULT_ROTATE_GRACE; none:
                                * SG_ROTATE_GRACE_NONE (sg_options_set
                                * with 0 stores it; sg_store_options
                                * reports it as 0) */
} sg_options;

/* Fill *opt with the defaults (all fields explicit). */
void sg_options_init(sg_options *opt);

/* One store option as every face offers it: the gateway's and
 * sessgatectl's --FLAG, the bindings' keyword NAME.  The library's table
 * (sg_option_at) is the one definition of their ranges, defaults and help,
 * and sg_store_open() enforces the same ranges. */
typedef struct sg_option_info {
    const char *name;      /* sg_options field and bindings keyword */
    const char *flag;      /* command-line option, without the "--" */
    const char *arg;       /* metavariable ("MS", "S"); NULL: an on/off flag */
    int64_t     min, max;  /* range of a value given (0 also means the default,
                            * but for rotate_grace, where it means none) */
    int64_t     def_value; /* the default */
    const char *def_text;  /* the default in words when it is derived, or NULL */
    const char *help;      /* one line, lower case, no default, no full stop */
    unsigned    faces;     /* SG_FACE_* offering it */
} sg_option_info;

#define SG_FACE_GATEWAY   1u   /* sessgate --FLAG */
#define SG_FACE_CLI       2u   /* sessgatectl --FLAG */
#define SG_FACE_BINDINGS  4u   /* Python Store(NAME=), Lua sg.open(path, {NAME=}) */

/* Borrowed (static): the i-th store option, NULL past the last. */
const sg_option_info *sg_option_at(size_t i);

/* Borrowed (static): the option whose name or flag is key, or NULL. */
const sg_option_info *sg_option_find(const char *key);

/* Set the option key (name or flag) of *opt to value, which must lie in
 * the option's range (flags: 0 or 1).  SG_EINVAL names the range. */
sg_status sg_options_set(sg_options *opt, const char *key, int64_t value,
                         sg_error *err);

/* Borrowed: a static English name for a status ("conflict", "not found"). */
const char *sg_strerror(sg_status code);

/* Reset an error report to SG_OK / empty. */
void sg_error_clear(sg_error *err);

/* Borrowed: the library version string. */
const char *sg_version(void);

/* ---------------------------------------------------------------- store */

/* Open or create the store at uri ("PATH" or "gdbm:PATH").  The GDBM file
 * is created with mode 0600 (0660 with opt->group) beside PATH.lock.
 * "redis://HOST:PORT/DB" or "redis+unix:/SOCKET?db=N" (both with optional
 * "prefix=NAME&timeout_ms=N") use a Redis server instead.
 * New: *out is released with sg_store_close(). */
sg_status sg_store_open(const char *uri, const sg_options *opt,
                        sg_store **out, sg_error *err);

/* Close the store and release its handle.  Accepts NULL. */
void sg_store_close(sg_store *st);

/* Borrowed: the store's effective options (defaults filled in). */
const sg_options *sg_store_options(const sg_store *st);

/* Borrowed: the store's path (for messages). */
const char *sg_store_path(const sg_store *st);

/* Take the store's exclusive lock and keep it: every call on this handle
 * until sg_store_end() runs under it, so a load, a change and a save form
 * one atomic step.  Calls nest (each begin needs one end). */
sg_status sg_store_begin(sg_store *st, sg_error *err);

/* Release one level of sg_store_begin().  Accepts NULL. */
void sg_store_end(sg_store *st);

/* Count live sessions, all of them (user NULL) or of one user. */
sg_status sg_store_count(sg_store *st, const char *user, size_t *out,
                         sg_error *err);

/* Delete every session of user ("log out everywhere"); *removed (may be
 * NULL) gets how many.  Atomic with respect to concurrent creates and
 * logins for that user: they come wholly before (and are deleted) or
 * wholly after.  SG_EINVAL for a bad user name. */
sg_status sg_store_delete_user(sg_store *st, const char *user, size_t *removed,
                               sg_error *err);

/* Delete every session of the store; *removed (may be NULL) gets how
 * many. */
sg_status sg_store_clear(sg_store *st, size_t *removed, sg_error *err);

/* Remove expired sessions; *removed (may be NULL) gets how many. */
sg_status sg_store_purge(sg_store *st, size_t *removed, sg_error *err);

/* Store figures, for sessgatectl stats. */
typedef struct sg_stats {
    size_t   sessions;      /* records in the store, live or not */
    size_t   live;          /* live sessions */
    size_t   expired;       /* expired, not yet purged */
    size_t   users;         /* distinct users among live sessions */
    size_t   anonymous;     /* live sessions without a user */
    uint64_t file_bytes;    /* size of the store file */
    uint64_t writes;        /* write counter kept in the lock file */
} sg_stats;

/* How long this handle waited for the store's lock, added up since it was
 * opened: for a caller's metrics (the gateway's lock-wait histogram).
 * Cheap: counted in the lock path, no store access. */
typedef struct sg_lock_counters {
    uint64_t acquired;      /* locks taken (outermost only) */
    uint64_t timeouts;      /* SG_ELOCKTIMEOUT returned */
    uint64_t wait_us;       /* microseconds spent waiting, taken or not */
    uint64_t max_hold_us;   /* longest hold of the exclusive lock (outermost,
                             * from taken to released) */
} sg_lock_counters;

void sg_store_lock_counters(const sg_store *st, sg_lock_counters *out);

/* The figures a store keeps as it is written (by default; GDBM in its
 * lock page, Redis in its write scripts): no walk when they are right,
 * which they are unless a writer died mid-write (GDBM) or an older
 * version wrote; then every record is read (kept = 0) until a recount
 * (sg_store_check(repair), sg_store_keep_counters(on), or this call on a
 * handle that may write).  On Redis, sessions are those not yet past
 * their end (Redis drops them itself). */
typedef struct sg_counters {
    size_t   sessions;        /* records: live, and expired ones not purged */
    size_t   anonymous;       /* of those, without a user */
    size_t   users;           /* users with at least one record */
    uint64_t expired_removed; /* records removed after they had expired */
    uint64_t file_bytes;
    uint64_t writes;
    int      kept;            /* 1: from the kept figures; 0: counted now */
} sg_counters;

sg_status sg_store_counters(sg_store *st, sg_counters *out, sg_error *err);

/* Start (on: count once, in chunks, then keep the figures) or stop keeping
 * a store's figures (GDBM, Redis).  SG_EINVAL on a read-only handle. */
sg_status sg_store_keep_counters(sg_store *st, int on, sg_error *err);

/* Fill *out with the store's figures (one full scan). */
sg_status sg_store_stats(sg_store *st, sg_stats *out, sg_error *err);

/* Result of sg_store_check. */
typedef struct sg_check_report {
    size_t records;         /* session records read */
    size_t bad_records;     /* records that did not parse (removed by repair) */
    size_t recovered_keys;  /* keys kept by a GDBM recovery */
    size_t failed_keys;     /* keys a GDBM recovery could not keep */
    int    recovered;       /* nonzero: a gdbm_recover ran */
    size_t old_format;      /* records in an older format (repair rewrites
                             * them in the current one) */
} sg_check_report;

/* Verify every record; with repair nonzero, remove unparsable records and
 * rebuild the file when GDBM reports damage. */
sg_status sg_store_check(sg_store *st, int repair, sg_check_report *out,
                         sg_error *err);

/* Result of sg_store_compact. */
typedef struct sg_compact_report {
    uint64_t bytes_before;  /* all the store's files, before */
    uint64_t bytes_after;   /* ... and after */
    uint64_t live_bytes;    /* keys and values of the records kept */
    size_t   records;       /* records kept */
    int      compacted;     /* zero: nothing to compact (Redis) */
} sg_compact_report;

/* Give the space the store does not use back to the disk: a GDBM store is
 * rewritten from its live records into a new file renamed in place, under
 * the exclusive lock and crash-safe, then checkpointed (which empties the
 * log).  Stores also compact themselves when the file outgrows its live
 * data (see README).  On Redis, nothing to do: SG_OK, compacted 0. */
sg_status sg_store_compact(sg_store *st, sg_compact_report *out,
                           sg_error *err);

/* sg_store_checkpoint's flags. */
#define SG_CHECKPOINT_FORCE 1   /* build one even if none is due */
#define SG_CHECKPOINT_QUERY 2   /* build nothing: *built tells whether one
                                 * is due (cheap, takes no lock) */

/* Build a due checkpoint of a GDBM store (a copy of the file from which,
 * with the log, it is rebuilt after a crash; building one empties the
 * log).  Writers leave a big one due rather than build it inside a
 * request: the gateway builds it between requests (its master forks a
 * builder), `sessgatectl checkpoint` from a timer; should nobody, a writer
 * builds it once the log reaches 4 times the size that made it due (see
 * README).  Takes no lock for long: writers and readers go on.  Waits for
 * a build running in another process.  *built (may be NULL): whether this
 * call built one.  A store without checkpoints (Redis) answers every call,
 * the query too, SG_ENOTSUP with *built 0: a caller that polls (the
 * gateway's master) stops and closes its handle instead of asking again
 * once a second. */
sg_status sg_store_checkpoint(sg_store *st, int flags, int *built,
                              sg_error *err);

/* Number of times this handle recovered the store since it was opened
 * (a killed writer leaves the file needing recovery). */
unsigned long sg_store_recoveries(const sg_store *st);

/* ------------------------------------------------------------- sessions */

/* Whether text is exactly a 36-char lower-case UUID. */
int sg_id_valid(const char *text);

/* Create a session with a fresh random id and store it.  user may be NULL
 * (anonymous); data_json may be NULL (empty object) or a JSON object;
 * idle_timeout and max_age override the store's when > 0.  With a per-user
 * cap, the user's oldest sessions beyond it are deleted.
 * New: *out is released with sg_session_free(). */
sg_status sg_session_create(sg_store *st, const char *user,
                            const char *data_json, int64_t idle_timeout,
                            int64_t max_age, sg_session **out, sg_error *err);

/* sg_session_create with flags.  SG_CREATE_NOWAIT (the bit of
 * SG_GET_NOWAIT): never wait for the store's lock (GDBM; no effect on
 * Redis); when another process holds it the call returns SG_ELOCKTIMEOUT
 * at once with err->sys_errno EWOULDBLOCK, having stored nothing, and the
 * caller tries again later (the nginx module does, from a timer).  Other
 * bits: SG_EINVAL. */
#define SG_CREATE_NOWAIT 4u
sg_status sg_session_create_ex(sg_store *st, const char *user,
                               const char *data_json, int64_t idle_timeout,
                               int64_t max_age, unsigned flags,
                               sg_session **out, sg_error *err);

#define SG_GET_NOTOUCH  1u   /* do not extend the idle window */
/* A record that cannot be parsed reads as absent: SG_ENOTFOUND with
 * err->sys_errno set to EBADMSG (so the caller can log and count it), not
 * SG_ESTORE.  For request paths, where a damaged record must not lock a
 * browser out (issue #17); admin tools keep the SG_ESTORE default. */
#define SG_GET_DAMAGED_ABSENT 2u
/* Never wait for the store's lock (GDBM; no effect on Redis): when another
 * process holds it, or a writer is queued for it, the get returns
 * SG_ELOCKTIMEOUT at once with err->sys_errno set to EWOULDBLOCK, and the
 * caller tries again later (the nginx module does, from a timer, so a
 * worker's event loop never sleeps in the library).  A touch or expiry
 * mark that would have to wait is skipped, as any failed touch is. */
#define SG_GET_NOWAIT 4u
/* Keep the record read, and the next time, when no writer has changed the
 * store since (GDBM's write counter, in shared memory) and it was read
 * less than a second ago, parse the kept copy instead of locking and
 * reading the store: no lock, no syscall.  The answer is the one a locked
 * read would give (every write moves the counter first; liveness and the
 * touch are decided as in any get); a store FILE replaced behind the
 * library's back (a restored backup) is noticed within that second, as by
 * any reader.  For a web server's per-request check (the nginx module,
 * the lighttpd magnet script); no effect on Redis.  Per handle. */
#define SG_GET_MEMO 8u

/* Load a live session.  Strict: a malformed, unknown or expired id gives
 * SG_ENOTFOUND or SG_EEXPIRED and never a session.  Unless SG_GET_NOTOUCH,
 * extends the idle window when `accessed` is older than the touch interval
 * (the only write a get can do).  New: *out, freed with sg_session_free(). */
sg_status sg_session_get(sg_store *st, const char *id, unsigned flags,
                         sg_session **out, sg_error *err);

/* Save user, data and expiry.  Fails with SG_ECONFLICT when the stored
 * version is not the one this copy was loaded at (someone saved since);
 * on success the copy's version is the new one. */
sg_status sg_session_save(sg_store *st, sg_session *s, sg_error *err);

/* Give the session a new id, keeping its data.  The old id keeps
 * resolving to the session for the store's rotate_grace (default
 * SG_DEFAULT_ROTATE_GRACE s: requests in flight keep it), except when the
 * rotation changes the user (a login or logout: the old id dies at once).
 * s is updated to the new id.  Also checks the version. */
sg_status sg_session_rotate(sg_store *st, sg_session *s, sg_error *err);

/* sg_session_rotate with flags: SG_ROTATE_NOW kills the old id at once
 * whatever the store's grace, for a login the library cannot see (the app
 * keeps its login in the data, not in the session's user: Flask's
 * regenerate, a privilege change).  SG_ROTATE_NOWAIT: as SG_CREATE_NOWAIT
 * (s keeps its id when the lock was busy).  Other bits: SG_EINVAL. */
#define SG_ROTATE_NOW 1u
#define SG_ROTATE_NOWAIT 4u
sg_status sg_session_rotate_ex(sg_store *st, sg_session *s, unsigned flags,
                               sg_error *err);

/* Delete the session with this id.  SG_ENOTFOUND if there is none,
 * SG_EINVAL if the id is malformed. */
sg_status sg_session_delete(sg_store *st, const char *id, sg_error *err);

/* Change function for sg_session_update: edit s and return SG_OK to save,
 * anything else to abandon (that status is returned). */
typedef sg_status (*sg_update_fn)(sg_session *s, void *arg, sg_error *err);

/* Atomic read-modify-write, optimistic: load id, call fn with NO lock held,
 * save only if no other writer saved the session since the load; if one
 * did, load again and call fn again (a bounded number of times, then
 * SG_ECONFLICT).  So fn MAY RUN MORE THAN ONCE for one call: it must only
 * change s (and may compute from it), not act on the world (send mail,
 * charge a card) — do that after update() returns SG_OK.  The store's
 * exclusive lock is held only for the final write, never while fn runs,
 * so a slow fn delays nobody else.  No lost updates: the save that counts
 * is from a copy no other save came between. */
sg_status sg_session_update(sg_store *st, const char *id, sg_update_fn fn,
                            void *arg, sg_error *err);

/* Release a session copy.  Accepts NULL. */
void sg_session_free(sg_session *s);

/* Borrowed accessors. */
const char *sg_session_id(const sg_session *s);
const char *sg_session_user(const sg_session *s);    /* NULL: anonymous */
int64_t     sg_session_created(const sg_session *s);
int64_t     sg_session_accessed(const sg_session *s);
int64_t     sg_session_expires(const sg_session *s);   /* absolute end */
int64_t     sg_session_idle_timeout(const sg_session *s);
uint64_t    sg_session_version(const sg_session *s);
int         sg_session_is_new(const sg_session *s);  /* made by this create */

/* When the session last got a new id (rotate, login), or its creation
 * time if never: what sessgate --renew-interval measures from. */
int64_t sg_session_rotated(const sg_session *s);

/* Borrowed: the session's CSRF token, SG_CSRF_LEN lower-case hex digits
 * from the same random source as ids; made with the session, replaced at
 * every change of user (login, logout to anonymous), kept by rotate.  ""
 * only for a record written before tokens existed and read with
 * SG_GET_NOTOUCH or from a read-only store (any other get adds one). */
const char *sg_session_csrf_token(const sg_session *s);

/* Whether token is the session's CSRF token, compared in constant time
 * (no early exit on the first differing byte).  0 for NULL or "". */
int sg_session_check_csrf(const sg_session *s, const char *token);

/* Queue a flash message (a JSON object, e.g. {"message":"Saved",
 * "category":"info"}) in s, stored by sg_session_save().  SG_EINVAL for
 * invalid JSON or a non-object, SG_ETOOBIG beyond SG_MAX_FLASH messages
 * or the store's data cap. */
sg_status sg_session_flash_add(sg_session *s, const char *json, sg_error *err);

/* Whether s holds pending flash messages (a cheap test before a pop). */
int sg_session_has_flash(const sg_session *s);

/* Take the pending flash messages of session s from the store and remove
 * them there, in one step under the exclusive lock: of two concurrent
 * pops one gets the messages and the other none.  s (the caller's copy)
 * follows: its messages are dropped and, if it was current, its version
 * moves with the store's so it can still be saved.  New: *json_out, a
 * JSON array ("[]" when none), free() it. */
sg_status sg_session_flash_pop(sg_store *st, sg_session *s, char **json_out,
                               sg_error *err);

/* sg_session_flash_pop with flags.  SG_FLASH_NOWAIT: as SG_CREATE_NOWAIT
 * (nothing is taken when the lock was busy).  Other bits: SG_EINVAL. */
#define SG_FLASH_NOWAIT 4u
sg_status sg_session_flash_pop_ex(sg_store *st, sg_session *s, unsigned flags,
                                  char **json_out, sg_error *err);

/* New: the data as compact ASCII JSON ("{}" when empty); free() it.
 * NULL only when out of memory. */
char *sg_session_data_json(const sg_session *s);

/* New: the whole record as compact ASCII JSON; free() it. */
char *sg_session_to_json(const sg_session *s);

/* Replace the data with a JSON object (text).  SG_EINVAL for invalid JSON,
 * a non-object or duplicate keys; SG_ETOOBIG over the store's cap or
 * nested deeper than SG_MAX_DEPTH.  The
 * change is kept in s until sg_session_save(). */
sg_status sg_session_set_data(sg_session *s, const char *json, sg_error *err);

/* Merge a JSON object into the data (top-level keys replace; a null value
 * deletes the key).  Same errors as sg_session_set_data. */
sg_status sg_session_merge_data(sg_session *s, const char *json,
                                sg_error *err);

/* Set or clear (NULL) the user.  SG_EINVAL for an empty name, one over
 * SG_MAX_USER bytes, invalid UTF-8 or a control character. */
sg_status sg_session_set_user(sg_session *s, const char *user, sg_error *err);

/* Change the session's lifetimes (seconds; <= 0 keeps the current one).
 * The absolute end becomes created + max_age. */
sg_status sg_session_set_timeouts(sg_session *s, int64_t idle_timeout,
                                  int64_t max_age, sg_error *err);

/* ---------------------------------------------------------------- lists */

/* Snapshot the ids of live sessions, all or of one user, oldest first.
 * New: *out, freed with sg_list_free(). */
sg_status sg_store_list(sg_store *st, const char *user, sg_list **out,
                        sg_error *err);

/* Call fn for each live session, all or of one user, oldest first (a
 * nonzero return stops the walk).  The sessions are read a chunk at a
 * time, each chunk under a shared lock that is released before fn runs,
 * so a long walk (an export to a slow pipe) never holds up writers; see
 * sessgatectl(1) for what such a walk sees of writes made during it.
 * The session is borrowed for the call. */
typedef int (*sg_each_fn)(const sg_session *s, void *arg);
sg_status sg_store_each(sg_store *st, const char *user, sg_each_fn fn,
                        void *arg, sg_error *err);

size_t      sg_list_count(const sg_list *l);
const char *sg_list_id(const sg_list *l, size_t i);   /* Borrowed; NULL past the end */
void        sg_list_free(sg_list *l);

/* ------------------------------------------------------ export / import */

/* Import one record as written by sg_session_to_json (sessgatectl import).
 * The id is kept; an existing session with that id is replaced.  Expired
 * records are skipped with SG_EEXPIRED. */
sg_status sg_session_import(sg_store *st, const char *record_json,
                            sg_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SESSGATE_H */
