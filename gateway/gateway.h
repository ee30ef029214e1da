/*
 * gateway.h - the gateway's internal interfaces, one section per file.
 *
 * The gateway (gateway/sessgate) is split the way STYLE.md lays out: pure
 * parsers and builders (buf, cookie, inbound, inject, cgi_reply, respond) that
 * know nothing of FastCGI, so unit tests and fuzz targets can use them alone,
 * and the FastCGI side (listen, prefork, request, mode_auth, mode_cgi, proc).
 * Only the files that talk to libfcgi include <fcgiapp.h>; this header just
 * names its request struct.  Every limit is a named constant here.
 */
#ifndef SESSGATE_GATEWAY_H
#define SESSGATE_GATEWAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "sessgate.h"

/* ---------------------------------------------------------------- limits */
#define GW_MAX_COOKIE        (64 * 1024)  /* bytes of all HTTP_COOKIE params together */
#define GW_MAX_COOKIE_PARAMS 64           /* HTTP_COOKIE params looked at */
#define GW_MAX_REPLY_HEADER  (64 * 1024)  /* bytes of a CGI reply header block */
#define GW_MAX_REPLY_LINES   200          /* header lines of a CGI reply */
#define GW_MAX_INJECT        (1024 * 1024)/* highest --inject-max */
#define GW_MAX_INJECT_KEYS   64           /* keys in --inject keys:a,b */
#define GW_MAX_ENV           512          /* variables given to a CGI program */
#define GW_MAX_WORKERS       256
#define GW_MAX_HEADER_VALUE  (256 * 1024) /* any header value the gateway emits */
#define GW_IO_CHUNK          (64 * 1024)  /* pipe and stream transfer unit */
#define GW_MAX_HEAD          (1024 * 1024)/* bytes of a request's PARAMS stream */
#define GW_MAX_PARAMS        16384        /* params of one request */

/* ------------------------------------------------------------------ buf.c */
/* A growable byte buffer with a hard cap (after curl's dynbuf).  The bytes
 * are always NUL-terminated.  Owner: whoever holds the struct; buf_free. */
typedef struct buf {
    char  *data;
    size_t len, alloc, cap;
    int    failed;          /* an append hit the cap or ENOMEM; sticky */
} buf;

void buf_init(buf *b, size_t cap);
void buf_free(buf *b);
void buf_reset(buf *b);
int  buf_add(buf *b, const void *p, size_t n);
int  buf_adds(buf *b, const char *s);
int  buf_addf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  buf_addc(buf *b, char c);
char *buf_steal(buf *b);

/* ------------------------------------------------------------------ log.c */
/* Levels and formats of --log-level and --log-format (index = option value). */
enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum { LOGF_LOGFMT = 0, LOGF_JSON };
#define LOG_HASH_LEN 12             /* hex digits of a logged id hash */
/* Rate-limited event kinds (log_limit). */
enum { LOG_RL_MALFORMED = 0, LOG_RL_UNKNOWN, LOG_RL_COUNT };

struct gw_config;
/* Draw this run's hash key, open --log-file onto fd 2, catch SIGHUP
 * (reopen).  Call once in the master, before the workers fork.  0 or -1
 * (message printed). */
int  log_setup(const struct gw_config *cfg);
/* One event line: level, event name, free text (may be NULL), then pairs
 * of const char * key, value, ended by a NULL key.  Every value is
 * scrubbed (see log.c); pass session ids through log_idhash anyway. */
void log_event(int level, const char *event, const char *msg, ...);
/* A store failure: event=store_error (level error; warn for a lock
 * timeout) with the library's text and status=NAME. */
void log_store_error(const sg_error *err);
/* A free-text warning: event=message msg="...", scrubbed the same way. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The keyed hash of id for logs (LOG_HASH_LEN hex digits, "-" for none);
 * returns out. */
const char *log_idhash(const char *id, char out[LOG_HASH_LEN + 1]);
/* SipHash-2-4 (exposed for the unit test's reference vectors). */
uint64_t log_siphash(uint64_t k0, uint64_t k1, const void *p, size_t n);
/* Whether an event of a rate-limited kind may be logged now: the first of
 * each 10 s window is, the rest are counted and summarised in one
 * event=suppressed line (by the next one, log_tick or log_flush_limits). */
int  log_limit(int kind);
/* Between requests: reopen after SIGHUP, write due summaries. */
void log_tick(void);
/* Write every pending summary (a worker on its way out). */
void log_flush_limits(void);
/* Ask for a reopen of --log-file at the next line (what SIGHUP does). */
void log_reopen_request(void);
/* Whether a SIGHUP came since the last call (the master forwards it). */
int  log_hup_taken(void);

/* -------------------------------------------------------------- metrics.c */
enum {
    MET_SESSIONS_CREATED = 0, MET_SESSIONS_ROTATED,
    MET_SESSIONS_DELETED, MET_SESSIONS_EXPIRED, MET_COOKIES_UNKNOWN,
    MET_COOKIES_MALFORMED, MET_CONFLICTS, MET_LOCK_TIMEOUTS, MET_STORE_ERRORS,
    MET_CGI_RUN, MET_CGI_TIMEOUTS, MET_CGI_KILLED, MET_INJECT_TRUNCATED,
    MET_WORKER_RESTARTS,
    MET_SPOOF_REFUSED, MET_RECORDS_DAMAGED, MET_BODIES_TRUNCATED, MET_CLIENTS_GONE,
    MET_CONNECTIONS_DROPPED, MET_QUEUE_REJECTED, MET_CGI_ORPHANS,   /* issue #17 */
    MET_SESSIONS_RENEWED,
    MET_NCOUNTERS
};
#define MET_NMODES    2             /* gw_mode */
#define MET_NOUTCOMES 6             /* allowed denied created conflict unavailable error */

/* Map the counters shared by every worker (only with --metrics-listen).
 * In the master, before fork.  0 or -1 (printed). */
int  metrics_setup(const struct gw_config *cfg);
/* Bind --metrics-listen (if given).  0 or -1 (printed). */
int  metrics_listen_open(const struct gw_config *cfg);
void metrics_close(const struct gw_config *cfg);
/* The metrics process's loop: answer GET /metrics.  Never returns. */
int  metrics_serve(const struct gw_config *cfg);
/* Append the exposition text.  0 or -1 (over the buffer's cap). */
int  metrics_render(const struct gw_config *cfg, buf *b);
/* Hooks for the request path: lock-free, no-ops without --metrics-listen. */
void metrics_add(int counter, uint64_t n);
void metrics_request(int mode, int outcome, int64_t us);
void metrics_lock_wait(int64_t us);
/* The index of an outcome name (request_outcome). */
int  metrics_outcome(const char *name);

/* --------------------------------------------------------------- cookie.c */
typedef enum cookie_result {
    COOKIE_NONE = 0,     /* no cookie with that name */
    COOKIE_ONE,          /* every copy names the same valid id: *id filled */
    COOKIE_BAD           /* present, but malformed, conflicting or oversized */
} cookie_result;

/* Look for cookie `name` in the Cookie header values vals[0..n).  Copies of
 * the name in several values, or several times in one, count only when they
 * all carry the same valid id.  id must hold SG_ID_LEN + 1 bytes. */
cookie_result cookie_find(const char *const *vals, const size_t *lens,
                          size_t n, const char *name, char *id);

/* -------------------------------------------------------------- inbound.c */
typedef enum inbound_class {
    INBOUND_DROP = 0,    /* not for a CGI program */
    INBOUND_CGI,         /* a CGI/1.1 variable from the allow-list */
    INBOUND_HTTP,        /* a client header (HTTP_*) that may pass */
    INBOUND_SPOOF        /* looks like an injected name: always dropped */
} inbound_class;

/* Classify one FastCGI param name for the CGI program's environment. */
inbound_class inbound_classify(const char *name);
/* Borrowed: the first "NAME=VALUE" entry of envp whose name is
 * INBOUND_SPOOF (name gets a copy of the name, cut to namesz - 1), or NULL. */
const char *inbound_find_spoof(char *const *envp, char *name, size_t namesz);

/* ---------------------------------------------------------------- inject.c */
typedef enum inject_mode { INJECT_ALL = 0, INJECT_NONE, INJECT_KEYS } inject_mode;

typedef struct inject_spec {
    inject_mode mode;
    size_t      nkeys;
    char       *keys[GW_MAX_INJECT_KEYS];   /* owned by the spec: inject_spec_free */
    size_t      max;                        /* byte cap on SESSION_DATA */
} inject_spec;

/* Parse "all", "none" or "keys:a,b" into *spec.  0 or -1 (msg filled). */
int  inject_spec_parse(inject_spec *spec, const char *text, char *msg, size_t msgsz);
void inject_spec_free(inject_spec *spec);

/* Build SESSION_DATA from the session's data JSON.  New: *out (free()) or
 * NULL when nothing is injected; *truncated set when over the cap.
 * Returns 0, or -1 when out of memory or the data is not an object. */
int inject_data(const inject_spec *spec, const char *data_json,
                char **out, int *truncated);

/* SESSION_DATA from data_json: *view is data_json itself when that can be
 * injected as it is (--inject all and printable ASCII: libcore already
 * hands out compact ASCII JSON, so nothing is parsed or copied), or a new
 * string also stored in *owned (free()).  Both NULL when nothing is
 * injected; *truncated set when over the cap.  0, or -1 when out of memory
 * or the data is not an object. */
int inject_data_view(const inject_spec *spec, const char *data_json,
                     const char **view, char **owned, int *truncated);

/* Percent-encode a user name for a header or variable: bytes outside
 * 0x21..0x7e and '%' become %XX.  New: free(). NULL on ENOMEM. */
char *inject_user(const char *user);

/* Whether s is safe as a header value: printable ASCII and space only. */
int inject_header_safe(const char *s);

/* The names a target injects under: the authorizer's Variable-*, the
 * responder's X-Session-*, a CGI program's SESSION_*. */
typedef struct inject_names {
    const char *id, *user, *data, *is_new, *truncated, *csrf, *flash;
} inject_names;
extern const inject_names inject_authorizer, inject_responder, inject_cgi;

/* Where inject_session puts one name and value (a header block, an
 * environment). */
typedef void (*inject_put_fn)(void *ctx, const char *name, const char *value);

struct gw_request;
/* (inject_session.c) Inject rq->session (not NULL) under nm's names through put: id, user
 * (percent-encoded), data (--inject, --inject-max; truncation flagged and
 * logged), the new-session flag, the CSRF token, and the flash messages,
 * which leave the store here, once.  Empty values are left out. */
void inject_session(struct gw_request *rq, const inject_names *nm,
                    inject_put_fn put, void *ctx);

/* ------------------------------------------------------------- cgi_reply.c */
typedef enum reply_state { REPLY_MORE = 0, REPLY_DONE, REPLY_ERROR } reply_state;

typedef enum reply_directive {
    DIR_NONE = 0, DIR_SET, DIR_REPLACE, DIR_LOGIN, DIR_LOGOUT, DIR_ROTATE,
    DIR_DROP,            /* an unknown X-Session-* header: never passed on */
    DIR_FLASH            /* X-Session-Flash: {json}, queue a flash message */
} reply_directive;

typedef struct reply_header {
    char           *name;      /* NUL-terminated, points into reply.block */
    char           *value;     /* trimmed, NUL-terminated, into reply.block */
    reply_directive directive; /* DIR_NONE: pass to the client */
} reply_header;

typedef struct reply {
    buf          block;        /* the raw header block, then split in place */
    reply_state  state;
    unsigned char last, last2; /* the two bytes before the next one fed */
    size_t       count;        /* bytes fed so far */
    int          status;       /* 100..599 after DONE */
    int          has_status, has_location, has_content_type;
    size_t       nheaders;
    reply_header headers[GW_MAX_REPLY_LINES];
    const char  *error;        /* static text after REPLY_ERROR */
} reply;

void reply_init(reply *r);
void reply_free(reply *r);
/* Feed n bytes of the program's stdout.  *used gets how many bytes belong
 * to the header block; the rest of the input is body.  Once DONE or ERROR
 * the state sticks. */
reply_state reply_feed(reply *r, const char *p, size_t n, size_t *used);
/* Feed end of output: a block without its blank line is an error. */
reply_state reply_eof(reply *r);
/* Borrowed: the reason phrase for a status code. */
const char *reply_reason(int status);

/* --------------------------------------------------------------- config.c */
typedef enum gw_mode { MODE_AUTH = 0, MODE_CGI } gw_mode;
typedef enum gw_policy { POLICY_ANY = 0, POLICY_SESSION, POLICY_USER } gw_policy;
typedef enum gw_tristate { TRI_AUTO = 0, TRI_ON, TRI_OFF } gw_tristate;
typedef enum gw_samesite { SAMESITE_LAX = 0, SAMESITE_STRICT, SAMESITE_NONE } gw_samesite;

/* A user and/or group resolved from USER[:GROUP] (privsep.c). */
typedef struct gw_ids {
    int   has_uid, has_gid;
    uid_t uid;
    gid_t gid;               /* USER's primary group unless GROUP given */
    char  name[256];         /* the user's name, "" for a bare uid */
} gw_ids;

/* One address of FCGI_WEB_SERVER_ADDRS, parsed (AF_INET: a[0..3]). */
typedef struct gw_peer_addr {
    int           family;        /* AF_INET or AF_INET6 */
    unsigned char a[16];
} gw_peer_addr;

typedef struct gw_config {
    long        mode;            /* gw_mode */
    const char *store_uri;
    const char *listen;
    long        workers;
    const char *cookie_name, *cookie_path, *cookie_domain;
    long        cookie_secure;   /* gw_tristate */
    long        cookie_samesite; /* gw_samesite */
    long        cookie_max_age;
    long        policy;          /* gw_policy */
    long        anonymous;
    long        csrf;            /* refuse unsafe methods without same-origin proof */
    long        renew_interval;  /* s between id renewals of a session in use */
    const char *login_url;
    long        login_redirect;
    const char *inject_text;
    inject_spec inject;
    long        inject_max;
    const char *cgi_root_arg, *cgi_program_arg;
    char       *cgi_root;        /* realpath; owned by the config */
    char       *cgi_program;     /* realpath; owned by the config */
    long        cgi_timeout;
    long        read_idle_timeout, read_timeout;   /* per FastCGI connection, s */
    long        queue_timeout;                     /* ms; 0: no bound */
    const char *user_arg;        /* --user USER[:GROUP] */
    gw_ids      run_as;
    const char *socket_owner_arg, *socket_mode_arg;
    gw_ids      socket_owner;    /* --socket-owner: has_uid/has_gid say what */
    long        socket_mode;     /* --socket-mode, parsed (default 0660) */
    int         listen_systemd;  /* the socket came from systemd (LISTEN_FDS) */
    long        log_format;      /* LOGF_* */
    long        log_level;       /* LOG_* */
    const char *log_file;
    long        access_log;
    const char *metrics_listen;
    sg_options  store_opt;
    /* FCGI_WEB_SERVER_ADDRS, read and parsed once at start-up: the only
     * peers a TCP connection may come from; npeers 0: any.  Owned. */
    gw_peer_addr *peers;
    size_t      npeers;
} gw_config;

/* Parse argv into *cfg.  Returns -1 to go on, or an exit status (0 after
 * --help/--version, 2 after a usage error, message printed). */
int  config_parse(gw_config *cfg, int argc, char **argv);
void config_free(gw_config *cfg);
/* Print --help to stdout. */
void config_usage(void);

/* ---------------------------------------------------------------- respond.c */
/* Append "Status: N Reason\r\n". */
void respond_status(buf *b, int status);
/* Append "Name: value\r\n"; refuses (returns -1, logs) a value with a byte
 * outside printable ASCII, so no CR/LF/NUL can ever be emitted. */
int  respond_header(buf *b, const char *name, const char *value);
/* Append the session cookie: id set, or id NULL for an expiring one;
 * with it Cache-Control: no-store and Vary: Cookie (a response that sets
 * or ends a session must never be served to someone else from a cache). */
void respond_cookie(buf *b, const gw_config *cfg, const char *id, int https);
/* Append the login URL with next=<percent-encoded uri>. New: free(). */
char *respond_login_url(const char *login_url, const char *request_uri);

/* ---------------------------------------------------------------- proc.c */
/* Send sig to the process group led by pid (falls back to pid alone). */
int  proc_kill(pid_t pid, int sig);
/* Start path in its own process group with stdin/stdout on pipes and the
 * given environment, in directory dir.  Returns the pid or -1 (errno). */
pid_t proc_spawn(const char *path, char *const envp[], const char *dir,
                 int *to_child, int *from_child);
/* Wait for pid until deadline_ms (monotonic); on expiry kill its group
 * and reap it.  Returns the wait status, or -1. */
int  proc_reap(pid_t pid, int64_t deadline_ms);
/* Monotonic clock in milliseconds. */
int64_t proc_now_ms(void);
/* Monotonic clock in microseconds. */
int64_t proc_now_us(void);

/* ---------------------------------------------------------------- fcgi.c */
struct FCGX_Request;

/* One FastCGI param with its lengths (a name or value may hold a NUL).
 * Both point into NUL-terminated storage of the connection, valid until
 * the request ends: name[nlen] is '=', value[vlen] is '\0'. */
typedef struct gw_param {
    const char *name, *value;
    size_t      nlen, vlen;
} gw_param;

/* One worker's FastCGI connection: the gateway's own record reader and
 * writer (issue #17: libfcgi dropped param lengths, asserted on a PARAMS
 * length near 2^31 and leaked on unknown management records). */
typedef struct gw_fcgi gw_fcgi;

#define FCGI_GONE   (-1)    /* fcgi_accept: the peer closed between requests */
#define FCGI_BROKEN (-2)    /* fcgi_accept: a broken, slow or malformed head */

/* A connection object (no connection yet), or NULL when out of memory. */
gw_fcgi *fcgi_new(void);
void     fcgi_free(gw_fcgi *c);
/* Take over the accepted descriptor fd (closing any previous one). */
void     fcgi_attach(gw_fcgi *c, int fd);
/* The connection's descriptor, or -1 when there is none. */
int      fcgi_fd(const gw_fcgi *c);
/* Close the connection (if any). */
void     fcgi_close(gw_fcgi *c);
/* Read the next request's head (BEGIN_REQUEST and PARAMS; management
 * records are answered on the way).  0, or FCGI_GONE / FCGI_BROKEN with
 * the connection closed (fcgi_why says why). */
int      fcgi_accept(gw_fcgi *c);
/* Why the last fcgi_accept failed (static text). */
const char *fcgi_why(const gw_fcgi *c);
/* The current request: requestId, role, keepConnection, ipcFd, envp and
 * the streams in (FCGI_STDIN) and out (FCGI_STDOUT) for the FCGX_ stream
 * calls.  Never hand it to libfcgi's FCGX_Accept_r/Finish_r/Free. */
struct FCGX_Request *fcgi_request(gw_fcgi *c);
/* The current request's params, in order, with their lengths. */
const gw_param *fcgi_params(const gw_fcgi *c, size_t *n);
/* Whether bytes already read from the socket wait in the buffer. */
int      fcgi_pending(const gw_fcgi *c);
/* End the request: FCGI_STDOUT's end and FCGI_END_REQUEST; the connection
 * is kept only with FCGI_KEEP_CONN and no error on either stream. */
void     fcgi_finish(gw_fcgi *c);
/* The next name-value pair of [*p, end): 1 (and *p moved past it), 0 at
 * the end, -1 when a declared length runs past end.  out points into the
 * input (not NUL-terminated). */
int      fcgi_nv_next(const unsigned char **p, const unsigned char *end, gw_param *out);

/* ---------------------------------------------------------------- request.c */

typedef enum gw_role { ROLE_RESPONDER = 0, ROLE_AUTHORIZER } gw_role;

/* One request: everything a mode handler needs, nothing global. */
typedef struct gw_request {
    const gw_config     *cfg;
    sg_store            *store;     /* the worker's kept handle (borrowed) */
    struct FCGX_Request *fcgi;      /* borrowed */
    char               **envp;      /* the params as C strings, borrowed */
    const gw_param      *params;    /* the same with their lengths, borrowed */
    size_t               nparams;
    gw_role              role;
    int                  https;
    const char          *request_uri;
    char                 cookie_id[SG_ID_LEN + 1];
    cookie_result        cookie;
    sg_session          *session;   /* owned: freed by request_done */
    int                  created;   /* session made by this request */
    int                  renewed;   /* session given a new id by this request */
    buf                  head;      /* response header block being built */
    int                  status;    /* HTTP status sent (request_send) */
    int                  gw_failed; /* the answer was request_fail's page */
    int                  abort;     /* end the FastCGI request without
                                     * FCGI_END_REQUEST: the reply is cut */
} gw_request;

/* Borrowed: the first value of param name, or NULL. */
const char *request_param(const gw_request *rq, const char *name);
/* Look the cookie up and load the session (strict).  0, or -1 on a store
 * failure (503 already logged). */
int  request_load_session(gw_request *rq);
/* Create an anonymous session.  0 or -1 (logged). */
int  request_create_session(gw_request *rq);
/* Send the built header block and an optional body; 0 or -1. */
int  request_send(gw_request *rq, const char *body);
/* Answer with a plain error page (503, 502, ...). */
void request_fail(gw_request *rq, int status, const char *text);
/* Log event=inject_truncated for rq's session (data_json: its data). */
void log_inject_truncated(const gw_request *rq, const char *data_json);
/* Borrowed, static: allowed, denied, created, conflict, unavailable or
 * error (the outcome label of the access log and the metrics). */
const char *request_outcome(const gw_request *rq);
/* Run the accept loop of one worker until told to stop.  Exit status. */
int  request_loop(const gw_config *cfg, int listen_fd);

/* --------------------------------------------------------------- renew.c */
/* With --renew-interval: rotate rq->session when its id is older than the
 * interval, where the new cookie reaches the browser; sets rq->renewed. */
void renew_maybe(gw_request *rq);
/* Whether a Set-Cookie of this request's answer reaches the browser: cgi
 * mode, the RESPONDER role, and Apache's AUTHORIZER (not lighttpd's). */
int  renew_cookie_delivered(const gw_request *rq);
/* ---------------------------------------------------------------- csrf.c */
/* The --csrf rule on any source of request params: get(arg, NAME) gives
 * the value of the param NAME ("REQUEST_METHOD", "HTTP_SEC_FETCH_SITE",
 * "HTTP_ORIGIN", "HTTP_HOST", "HTTP_X_CSRF_TOKEN") or NULL; s is the
 * request's session or NULL.  Why an unsafe request lacks same-origin
 * proof (static text), or NULL when it may pass.  Pure: the nginx module
 * decides with it too. */
typedef const char *(*csrf_param_fn)(void *arg, const char *name);
const char *csrf_decide(csrf_param_fn get, void *arg, const sg_session *s);
/* ------------------------------------------------------- csrf_enforce.c */
/* With --csrf: csrf_decide on the request's params, or NULL without. */
const char *csrf_refusal(const gw_request *rq);
/* csrf_refusal, and on a refusal log it and answer 403.  0 to go on, -1
 * when the answer went out. */
int  csrf_enforce(gw_request *rq);
/* --------------------------------------------------------- mode_*.c */
void mode_auth_handle(gw_request *rq);
void mode_cgi_handle(gw_request *rq);

/* ------------------------------------------------------------ cgi_script.c */
/* Resolve the script to run.  New: *out (free()).  Returns 0 or the HTTP
 * status to answer with (403, 404). */
int  cgi_resolve(gw_request *rq, char **out);

/* --------------------------------------------------------------- cgi_env.c */
typedef struct cgi_env {
    char  *vars[GW_MAX_ENV + 1];
    char  *owned[16];               /* strings made here, freed by cgi_env_free */
    size_t n, nowned;
} cgi_env;

/* Build the program's environment: fixed PATH, the store, the session
 * (inject_session: its flash messages leave the store here), the allowed
 * params. */
void cgi_build_env(gw_request *rq, cgi_env *env);
void cgi_env_free(cgi_env *env);

/* ------------------------------------------------------------- cgi_apply.c */
/* What cgi_apply did. */
enum {
    APPLY_OK = 0,           /* applied (or nothing to apply) */
    APPLY_STALE = 1,        /* stale (cgi_stale): nothing applied, 409 */
    APPLY_REJECTED = 2,     /* a directive was invalid: nothing applied, 502 */
    APPLY_STORE = -1        /* store failure: 503 */
};

/* What the directives of a reply ask for. */
typedef struct apply_plan {
    int want;               /* Set, Replace, Login or Flash: a change to save */
    int logout, logout_all, rotate;
} apply_plan;

/* The cookie the browser needs after cgi_apply. */
typedef enum apply_cookie {
    APPLY_COOKIE_KEEP = 0,  /* none: the browser's is right */
    APPLY_COOKIE_SET,       /* set it to apply_result.id */
    APPLY_COOKIE_EXPIRE     /* expire it (logout) */
} apply_cookie;

typedef struct apply_result {
    apply_cookie cookie;
    char         id[SG_ID_LEN + 1];  /* APPLY_COOKIE_SET: the id to send */
} apply_result;

/* Apply the X-Session-* directives of the program's reply r to the session
 * it was given (seen, NULL for none) in st (NULL: the store is unavailable),
 * under the store lock, all or nothing.  created/renewed: seen was made or
 * given a new id by this request (the browser needs the cookie either way).
 * Fills *out; returns an APPLY_* code.  No libfcgi, no request. */
int  cgi_apply(sg_store *st, const sg_session *seen, int created, int renewed,
               const reply *r, apply_result *out);

/* ------------------------------------------------------------ cgi_stream.c */
typedef struct cgi_io {
    gw_request *rq;
    pid_t   pid;
    int     to_child, from_child;
    char   *inbuf;                  /* body bytes on their way to the program */
    size_t  in_len, in_off;
    int     body_eof;
    long long content_length;       /* CONTENT_LENGTH, -1 when not given */
    unsigned long long body_total;  /* body bytes received from the server */
    int     deferred;               /* header block done, body not yet whole */
    buf     pending;                /* output held while deferred */
    int     client_gone;            /* abort or hang-up seen: program killed */
    reply   r;
    int     sent;                   /* the header block has gone out */
    int     failed;                 /* an error answer went out */
} cgi_io;

/* Output held back while the body is still arriving: beyond this the
 * program's stdout is not read (backpressure), so memory stays bounded. */
#define CGI_PENDING_MAX (1024 * 1024)

/* Run the poll loop until the program's stdout ends (and a held header
 * block is decided) or time runs out.  Returns 1 on timeout, 0 otherwise. */
int  cgi_pump(cgi_io *io, int64_t deadline);
/* (fcgi.c) Whether FCGI_STDIN bytes were already read from the socket
 * beyond the current piece (so no poll() on the socket would report
 * them): 1 yes, 0 no. */
int  cgi_fcgi_more_buffered(const struct FCGX_Request *fr);
/* Close *fd if open and set it to -1. */
void cgi_close_fd(int *fd);
/* (mode_cgi.c) Emit the reply's header block, with the session changes
 * applied.  0, or -1 when an error answer went out instead. */
int  cgi_send_headers(cgi_io *io);

/* ---------------------------------------------------------------- privsep.c */
/* Resolve USER[:GROUP] (":GROUP" too unless need_user) into *ids through
 * the user and group databases; names or numeric ids.  0, or -1 with msg. */
int  privsep_parse(const char *spec, int need_user, gw_ids *ids, char *msg, size_t msgsz);
/* Become ids: supplementary groups, gid, uid; then check that root cannot
 * be regained.  No-op without a uid.  0, or -1 (printed on stderr). */
int  privsep_drop(const gw_ids *ids);

/* ---------------------------------------------------------------- sdnotify.c */
/* The socket systemd passed (LISTEN_PID is us, LISTEN_FDS=1): fd 3; -1 when
 * none was passed, -2 on a malformed hand-over (printed).  Clears the
 * variables. */
int  sdnotify_listen_fd(void);
/* Send "READY=1", "STOPPING=1"... to $NOTIFY_SOCKET if set.  0 or -1 (logged). */
int  sdnotify_send(const char *state);

/* ---------------------------------------------------------------- listen.c */
/* Open the listening socket: systemd's (LISTEN_FDS), --listen's, or fd 0.
 * Sets cfg->listen_systemd.  fd or -1 (printed). */
int  listen_open(gw_config *cfg);
void listen_close(const gw_config *cfg, int fd);

/* ---------------------------------------------------------------- prefork.c */
/* Run cfg->workers workers on fd; restart dead ones; SIGTERM stops all. */
int  prefork_run(const gw_config *cfg, int fd);
/* Set by the SIGTERM handler in a worker: finish the request and leave. */
extern volatile sig_atomic_t prefork_stop;
/* In a pre-forked worker: tell the master whether this worker holds a
 * connection (busy) and which CGI program it runs (0: none), so the master
 * can answer 503 when all are busy and kill what a dead worker left. */
void prefork_mark_busy(int busy);
void prefork_mark_cgi(pid_t pid);

#endif /* SESSGATE_GATEWAY_H */
