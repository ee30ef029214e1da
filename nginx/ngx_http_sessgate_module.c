/*
 * ngx_http_sessgate_module.c - the sessgate session check inside nginx.
 *
 * What `sessgate --mode auth` behind auth_request does, without the
 * subrequest and the FastCGI round trip that cap it (issue #14): in the
 * ACCESS phase the module reads the session cookie, looks the id up in a
 * GDBM store through libsessgate (strict: malformed, unknown and expired
 * ids are never adopted; a use touches the idle window), applies the
 * policy (any | session | user), redirects to the login URL or answers 401,
 * and publishes the session in variables ($sessgate_id, $sessgate_user,
 * $sessgate_data, ...) for fastcgi_param / proxy_set_header.  Client
 * request headers that imitate the injected names (X-Session-*,
 * Session-*, Variable-*, any separator byte) are removed from the request
 * before any backend can see them: only this module speaks for the
 * session.  Modelled on ngx_http_auth_basic_module (directives, merging,
 * the access-phase handler) and ngx_http_auth_request_module (variables).
 *
 * Never block a worker for long: one worker serves thousands of
 * connections, so it must not sleep in flock() while another process
 * (sessgatectl, a Python app, a gateway) holds the store's lock.  Lookups
 * use SG_GET_NOWAIT; a busy lock parks the request on a timer (the
 * connection's write event, as ngx_http_limit_req_module delays) with a
 * backoff of 1 to 16 ms, and the phase runs again.  A lock still held
 * after sessgate_lock_timeout is 503, as the gateway answers its
 * SG_ELOCKTIMEOUT.
 *
 * GDBM only.  A Redis store would mean a blocking network round trip
 * inside the event loop (hiredis's synchronous API, which libsessgate
 * uses): one slow Redis server would stall every connection of a worker.
 * Redis deployments keep the FastCGI gateway behind auth_request.
 *
 * Each worker opens its own handle to every configured store (in
 * init_process, after nginx has dropped to its `user`): flock() locks
 * belong to an open file description, so a handle opened in the master
 * and inherited by every worker would let them all hold "one" lock.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sessgate.h>

/* The gateway's own parsers (gateway/cookie.c, inbound.c, inject.c, linked
 * from gateway/libgateway.a): the module reads cookies, judges header
 * names and encodes values with the very code the gateway and its fuzz
 * targets run, so the two cannot drift apart. */
#include "gateway.h"

#define SESSGATE_POLICY_OFF      0
#define SESSGATE_POLICY_ANY      1
#define SESSGATE_POLICY_SESSION  2
#define SESSGATE_POLICY_USER     3

#define SESSGATE_DEFAULT_INJECT    2048    /* the gateway's --inject-max */
#define SESSGATE_MAX_NAME          128     /* a longer header name is judged
                                            * by its prefix, as the gateway's */
#define SESSGATE_RETRY_MIN_MS      1
#define SESSGATE_RETRY_MAX_MS      16

/* One store, shared by every location naming the same path. */
typedef struct {
    ngx_str_t   path;           /* full path, NUL-terminated */
    sg_store   *st;             /* this worker's handle; NULL until open */
} ngx_http_sessgate_store_t;

typedef struct {
    ngx_array_t stores;         /* of ngx_http_sessgate_store_t * */
} ngx_http_sessgate_main_conf_t;

typedef struct {
    ngx_http_sessgate_store_t *store;   /* NULL: off */
    ngx_uint_t  policy;
    ngx_str_t   cookie;
    ngx_str_t   login_url;
    ngx_msec_t  lock_timeout;
    size_t      inject_max;
    ngx_flag_t  csrf;           /* refuse unsafe methods without proof */
} ngx_http_sessgate_loc_conf_t;

typedef struct {
    ngx_uint_t  done;           /* the lookup is over */
    cookie_result cookie;
    ngx_msec_t  start;          /* first try, for sessgate_lock_timeout */
    ngx_msec_t  backoff;        /* next retry delay */
    ngx_uint_t  retries;
    ngx_uint_t  have;           /* a live session was found */
    char        cookie_id[SG_ID_LEN + 1];
    sg_session *session;        /* Owned (pool cleanup): the live session */
    size_t      inject_max;
    ngx_str_t   id, user, data, csrf, login_url;
    ngx_uint_t  data_done;      /* data and truncated computed (lazily) */
    ngx_uint_t  truncated;
    ngx_uint_t  has_user;
} ngx_http_sessgate_ctx_t;

static ngx_int_t ngx_http_sessgate_handler(ngx_http_request_t *r);
static void ngx_http_sessgate_retry(ngx_http_request_t *r);
static ngx_int_t ngx_http_sessgate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_sessgate_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_sessgate_init(ngx_conf_t *cf);
static void *ngx_http_sessgate_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_sessgate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_sessgate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_sessgate_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_sessgate_cookie_name(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_sessgate_init_process(ngx_cycle_t *cycle);
static void ngx_http_sessgate_exit_process(ngx_cycle_t *cycle);

static ngx_conf_enum_t ngx_http_sessgate_policies[] = {
    { ngx_string("off"), SESSGATE_POLICY_OFF },
    { ngx_string("any"), SESSGATE_POLICY_ANY },
    { ngx_string("session"), SESSGATE_POLICY_SESSION },
    { ngx_string("user"), SESSGATE_POLICY_USER },
    { ngx_null_string, 0 }
};

static ngx_conf_post_handler_pt ngx_http_sessgate_cookie_post =
    ngx_http_sessgate_cookie_name;

static ngx_command_t ngx_http_sessgate_commands[] = {

    { ngx_string("sessgate_store"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_sessgate_store,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sessgate_policy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, policy),
      &ngx_http_sessgate_policies },

    { ngx_string("sessgate_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, cookie),
      &ngx_http_sessgate_cookie_post },

    { ngx_string("sessgate_login_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, login_url),
      NULL },

    { ngx_string("sessgate_lock_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, lock_timeout),
      NULL },

    { ngx_string("sessgate_csrf"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, csrf),
      NULL },

    { ngx_string("sessgate_inject_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, inject_max),
      NULL },

      ngx_null_command
};

static ngx_http_module_t ngx_http_sessgate_module_ctx = {
    ngx_http_sessgate_add_variables,       /* preconfiguration */
    ngx_http_sessgate_init,                /* postconfiguration */
    ngx_http_sessgate_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    ngx_http_sessgate_create_loc_conf,     /* create location configuration */
    ngx_http_sessgate_merge_loc_conf       /* merge location configuration */
};

ngx_module_t ngx_http_sessgate_module = {
    NGX_MODULE_V1,
    &ngx_http_sessgate_module_ctx,         /* module context */
    ngx_http_sessgate_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_sessgate_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_sessgate_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

/* The variables, named after the gateway's injected SESSION_* values. */
enum {
    VAR_ID, VAR_USER, VAR_DATA, VAR_NEW, VAR_TRUNCATED, VAR_CSRF, VAR_LOGIN
};

static ngx_http_variable_t ngx_http_sessgate_vars[] = {
    { ngx_string("sessgate_id"), NULL, ngx_http_sessgate_variable, VAR_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("sessgate_user"), NULL, ngx_http_sessgate_variable, VAR_USER,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("sessgate_data"), NULL, ngx_http_sessgate_variable, VAR_DATA,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("sessgate_new"), NULL, ngx_http_sessgate_variable, VAR_NEW,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("sessgate_data_truncated"), NULL, ngx_http_sessgate_variable,
      VAR_TRUNCATED, NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("sessgate_csrf"), NULL, ngx_http_sessgate_variable, VAR_CSRF,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },
    { ngx_string("sessgate_login_url"), NULL, ngx_http_sessgate_variable,
      VAR_LOGIN, NGX_HTTP_VAR_NOCACHEABLE, 0 },
      ngx_http_null_variable
};

/* ------------------------------------------------------ look-alike headers */

/* Whether a client header name imitates a session name: judged as the
 * gateway judges the HTTP_* param a web server makes of it (inbound.c:
 * every byte outside [A-Za-z0-9] folded to '_', the widest rule any server
 * applies, so "X-Session.User" counts as much as "X-Session-User"). */
static ngx_uint_t
ngx_http_sessgate_is_spoof(ngx_str_t *name)
{
    char    param[sizeof("HTTP_") + SESSGATE_MAX_NAME];
    size_t  n = name->len < SESSGATE_MAX_NAME ? name->len : SESSGATE_MAX_NAME;

    ngx_memcpy(param, "HTTP_", 5);
    ngx_memcpy(param + 5, name->data, n);
    param[5 + n] = '\0';
    return inbound_classify(param) == INBOUND_SPOOF;
}

/* Drop every client header that imitates a session name from the request,
 * so no backend (fastcgi_pass, proxy_pass, $http_*) ever sees one.  nginx
 * lists cannot delete, so the list is rebuilt without them; the pointers
 * in headers_in (host, cookies, ...) name headers that are all kept. */
static ngx_int_t
ngx_http_sessgate_strip(ngx_http_request_t *r)
{
    ngx_uint_t        i, n = 0, spoofs = 0;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;
    ngx_list_t        kept;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            n++;
            spoofs += ngx_http_sessgate_is_spoof(&h[i].key);
        }
    }
    if (spoofs == 0) {
        return NGX_OK;
    }
    if (ngx_list_init(&kept, r->pool, n, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_sessgate_is_spoof(&h[i].key)) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "sessgate: removed client header \"%V\" that "
                              "imitates a session header", &h[i].key);
                continue;
            }
            nh = ngx_list_push(&kept);
            if (nh == NULL) {
                return NGX_ERROR;
            }
            *nh = h[i];
        }
    }
    r->headers_in.headers = kept;
    return NGX_OK;
}

/* ------------------------------------------------------------- the cookie */

/* Every Cookie header (nginx keeps each apart, as it sends one HTTP_COOKIE
 * param per header): the gateway's cookie_find decides. */
static ngx_int_t
ngx_http_sessgate_find_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_http_sessgate_ctx_t *ctx)
{
    ngx_uint_t         i, n = r->headers_in.cookies.nelts;
    ngx_table_elt_t  **hh = r->headers_in.cookies.elts;
    const char       **vals;
    size_t            *lens;

    ctx->cookie = COOKIE_NONE;
    ctx->cookie_id[0] = '\0';
    if (n == 0) {
        return NGX_OK;
    }
    vals = ngx_palloc(r->pool, n * sizeof(char *));
    lens = ngx_palloc(r->pool, n * sizeof(size_t));
    if (vals == NULL || lens == NULL) {
        return NGX_ERROR;
    }
    for (i = 0; i < n; i++) {
        vals[i] = (const char *) hh[i]->value.data;
        lens[i] = hh[i]->value.len;
    }
    ctx->cookie = cookie_find(vals, lens, n, (const char *) name->data,
                              ctx->cookie_id);
    return NGX_OK;
}

/* ---------------------------------------------------------- the values */

/* Pool copy of a string the gateway's code made with malloc (freed). */
static ngx_int_t
ngx_http_sessgate_pool_copy(ngx_pool_t *pool, char *text, ngx_str_t *out)
{
    if (text == NULL) {
        return NGX_ERROR;
    }
    out->len = ngx_strlen(text);
    out->data = ngx_pnalloc(pool, out->len ? out->len : 1);
    if (out->data != NULL) {
        ngx_memcpy(out->data, text, out->len);
    }
    free(text);
    return out->data ? NGX_OK : NGX_ERROR;
}

static void
ngx_http_sessgate_free_session(void *data)
{
    sg_session_free(data);
}

/* The data JSON, made when a variable first asks for it: a location that
 * never uses $sessgate_data pays no JSON encoding. */
static ngx_int_t
ngx_http_sessgate_need_data(ngx_http_request_t *r,
    ngx_http_sessgate_ctx_t *ctx)
{
    char         *json, *data = NULL;
    int           truncated = 0;
    inject_spec   spec;

    ngx_memzero(&spec, sizeof(inject_spec));
    if (ctx->data_done || ctx->session == NULL) {
        return NGX_OK;
    }
    json = sg_session_data_json(ctx->session);     /* owned here */
    if (json == NULL) {
        return NGX_ERROR;
    }
    /* SESSION_DATA exactly as the gateway builds it (inject.c): compact
     * ASCII JSON for one header line; over the cap, or not encodable, it
     * is left out and flagged, never an error page. */
    spec.mode = INJECT_ALL;
    spec.max = ctx->inject_max;
    if (inject_data(&spec, json, &data, &truncated) < 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "sessgate: session data could not be injected");
        truncated = 1;
    }
    free(json);
    ctx->truncated = truncated != 0;
    ctx->data_done = 1;
    if (data == NULL) {
        return NGX_OK;
    }
    return ngx_http_sessgate_pool_copy(r->pool, data, &ctx->data);
}

/* Keep the session (freed with the request's pool) and the values every
 * use needs as pool copies in ctx. */
static ngx_int_t
ngx_http_sessgate_keep(ngx_http_request_t *r, sg_session *s,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    const char          *user, *csrf;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        sg_session_free(s);
        return NGX_ERROR;
    }
    cln->handler = ngx_http_sessgate_free_session;
    cln->data = s;
    ctx->session = s;
    ctx->inject_max = lcf->inject_max;
    ctx->have = 1;
    ctx->id.len = SG_ID_LEN;
    ctx->id.data = ngx_pnalloc(r->pool, SG_ID_LEN);
    if (ctx->id.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(ctx->id.data, sg_session_id(s), SG_ID_LEN);
    user = sg_session_user(s);
    if (user && *user) {
        ctx->has_user = 1;
        if (ngx_http_sessgate_pool_copy(r->pool, inject_user(user), &ctx->user)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }
    csrf = sg_session_csrf_token(s);
    if (*csrf) {
        ctx->csrf.len = ngx_strlen(csrf);
        ctx->csrf.data = ngx_pnalloc(r->pool, ctx->csrf.len);
        if (ctx->csrf.data == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(ctx->csrf.data, csrf, ctx->csrf.len);
    }
    return NGX_OK;
}

/* ------------------------------------------------------------ the store */

static ngx_int_t
ngx_http_sessgate_open(ngx_http_sessgate_store_t *store, ngx_log_t *log)
{
    sg_error  err;

    sg_error_clear(&err);
    if (sg_store_open((const char *) store->path.data, NULL, &store->st, &err)
        != SG_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, err.sys_errno,
                      "sessgate: cannot open the session store: %s", err.text);
        store->st = NULL;
        return NGX_ERROR;
    }
    return NGX_OK;
}

/* One try at the lookup: NGX_OK (ctx filled or no session), NGX_AGAIN
 * (the lock is busy), NGX_ERROR (the store failed: 503). */
static ngx_int_t
ngx_http_sessgate_lookup(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    sg_session  *s = NULL;
    sg_status    rc;
    sg_error     err;

    if (lcf->store->st == NULL
        && ngx_http_sessgate_open(lcf->store, r->connection->log) != NGX_OK)
    {
        return NGX_ERROR;
    }
    sg_error_clear(&err);
    /* A damaged record reads as absent (as in the gateway): it can never
     * become a session again, so it must not lock a browser out.
     * SG_GET_MEMO: a session this worker read while nobody has written
     * since is parsed from the worker's copy, with no lock and no
     * syscall (libcore/memo.c): most of a session's requests. */
    rc = sg_session_get(lcf->store->st, ctx->cookie_id,
                        SG_GET_NOWAIT | SG_GET_DAMAGED_ABSENT | SG_GET_MEMO,
                        &s, &err);
    switch (rc) {
    case SG_OK:
        return ngx_http_sessgate_keep(r, s, lcf, ctx);   /* takes s */
    case SG_ENOTFOUND:
    case SG_EEXPIRED:
        if (err.sys_errno == EBADMSG) {
            /* (never the id in a log: the text names it) */
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "sessgate: a damaged session record was read as "
                          "absent (run sessgatectl check --repair)");
        }
        return NGX_OK;
    case SG_ELOCKTIMEOUT:
        if (err.sys_errno == EWOULDBLOCK) {
            return NGX_AGAIN;
        }
        /* fall through */
    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, err.sys_errno,
                      "sessgate: %s", err.text);
        return NGX_ERROR;
    }
}

/* Park the request until a timer runs the phases again (the way
 * ngx_http_limit_req_module delays a request). */
static ngx_int_t
ngx_http_sessgate_park(ngx_http_request_t *r, ngx_http_sessgate_ctx_t *ctx)
{
    ngx_event_t  *wev = r->connection->write;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_sessgate_retry;
    wev->delayed = 1;
    ngx_add_timer(wev, ctx->backoff);
    if (ctx->backoff < SESSGATE_RETRY_MAX_MS) {
        ctx->backoff *= 2;
    }
    ctx->retries++;
    return NGX_AGAIN;
}

static void
ngx_http_sessgate_retry(ngx_http_request_t *r)
{
    ngx_event_t  *wev = r->connection->write;

    if (wev->delayed) {
        /* woken by the socket, not the timer: keep waiting */
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }
        return;
    }
    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}

/* ----------------------------------------------------------------- CSRF */

/* The request headers the gateway's --csrf rule reads, by the FastCGI
 * param the gateway reads each from. */
static const struct {
    const char  *param;
    ngx_str_t    header;
} ngx_http_sessgate_csrf_headers[] = {
    { "HTTP_SEC_FETCH_SITE", ngx_string("Sec-Fetch-Site") },
    { "HTTP_ORIGIN", ngx_string("Origin") },
    { "HTTP_HOST", ngx_string("Host") },
    { "HTTP_X_CSRF_TOKEN", ngx_string("X-CSRF-Token") },
};

/* A NUL-terminated pool copy of v, or NULL. */
static const char *
ngx_http_sessgate_cstr(ngx_pool_t *pool, ngx_str_t *v)
{
    u_char  *p = ngx_pnalloc(pool, v->len + 1);

    if (p == NULL) {
        return NULL;
    }
    ngx_memcpy(p, v->data, v->len);
    p[v->len] = '\0';
    return (const char *) p;
}

/* csrf_decide's view of the request: the param NAME as the gateway would
 * get it from nginx's fastcgi_params (a header's first value), or NULL. */
static const char *
ngx_http_sessgate_csrf_param(void *arg, const char *name)
{
    ngx_http_request_t  *r = arg;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h;
    const ngx_str_t     *want = NULL;
    const char          *method;
    ngx_uint_t           i;

    if (ngx_strcmp(name, "REQUEST_METHOD") == 0) {
        /* (only asked for an unsafe method: out of memory, still one) */
        method = ngx_http_sessgate_cstr(r->pool, &r->method_name);
        return method ? method : "?";
    }
    for (i = 0; i < sizeof(ngx_http_sessgate_csrf_headers)
                    / sizeof(ngx_http_sessgate_csrf_headers[0]); i++)
    {
        if (ngx_strcmp(name, ngx_http_sessgate_csrf_headers[i].param) == 0) {
            want = &ngx_http_sessgate_csrf_headers[i].header;
            break;
        }
    }
    if (want == NULL) {
        return NULL;
    }
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == want->len
                && ngx_strncasecmp(h[i].key.data, want->data, want->len) == 0)
            {
                return ngx_http_sessgate_cstr(r->pool, &h[i].value);
            }
        }
    }
    return NULL;
}

/* sessgate_csrf on: why this request must be refused, or NULL.  The
 * gateway's own rule (csrf_decide, gateway/csrf.c), so the module, the
 * gateway's --csrf and sessgate.wsgi decide tests/unit/csrf_cases.txt
 * alike.  Safe methods are out before anything is copied.  A header
 * that cannot be copied (no memory) reads as absent, and without the
 * token the answer is a refusal. */
static const char *
ngx_http_sessgate_csrf(ngx_http_request_t *r, ngx_http_sessgate_ctx_t *ctx)
{
    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_OPTIONS
                     |NGX_HTTP_TRACE))
    {
        return NULL;
    }
    return csrf_decide(ngx_http_sessgate_csrf_param, r, ctx->session);
}

/* ----------------------------------------------------------- the answer */

/* The login URL with next=<the original URI, every byte but RFC 3986's
 * unreserved ones percent-encoded> (gateway/respond.c). */
static ngx_int_t
ngx_http_sessgate_login(ngx_http_request_t *r, ngx_str_t *login,
    ngx_str_t *out)
{
    static const u_char  hex[] = "0123456789ABCDEF";
    ngx_str_t           *uri = &r->unparsed_uri;
    size_t               n, i;
    u_char              *p, c;

    if (r->main != r) {
        uri = &r->main->unparsed_uri;
    }
    n = login->len + sizeof("&next=") - 1 + uri->len * 3;
    p = ngx_pnalloc(r->pool, n);
    if (p == NULL) {
        return NGX_ERROR;
    }
    out->data = p;
    p = ngx_cpymem(p, login->data, login->len);
    if (uri->len) {
        p = ngx_cpymem(p, ngx_strlchr(login->data, login->data + login->len,
                                      '?') ? "&next=" : "?next=", 6);
        for (i = 0; i < uri->len; i++) {
            c = uri->data[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
                || c == '~')
            {
                *p++ = c;
            } else {
                *p++ = '%';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 15];
            }
        }
    }
    out->len = (size_t) (p - out->data);
    return NGX_OK;
}

static ngx_int_t
ngx_http_sessgate_decide(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    ngx_uint_t        ok;
    ngx_table_elt_t  *h;

    switch (lcf->policy) {
    case SESSGATE_POLICY_SESSION:
        ok = ctx->have;
        break;
    case SESSGATE_POLICY_USER:
        ok = ctx->have && ctx->has_user;
        break;
    default:
        ok = 1;
    }
    if (ok) {
        return NGX_OK;
    }
    if (lcf->login_url.len) {
        if (ngx_http_sessgate_login(r, &lcf->login_url, &ctx->login_url)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_http_clear_location(r);
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Location");
        h->value = ctx->login_url;
        r->headers_out.location = h;
        return NGX_HTTP_MOVED_TEMPORARILY;
    }
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    ngx_str_set(&h->value, "SessGate realm=\"sessgate\"");
    r->headers_out.www_authenticate = h;
    return NGX_HTTP_UNAUTHORIZED;
}

static ngx_int_t
ngx_http_sessgate_handler(ngx_http_request_t *r)
{
    ngx_http_sessgate_loc_conf_t  *lcf;
    ngx_http_sessgate_ctx_t       *ctx;
    ngx_int_t                      rc;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_sessgate_module);
    if (lcf->policy == SESSGATE_POLICY_OFF || lcf->store == NULL) {
        return NGX_DECLINED;
    }
    ctx = ngx_http_get_module_ctx(r, ngx_http_sessgate_module);
    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_sessgate_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_http_set_ctx(r, ctx, ngx_http_sessgate_module);
        if (ngx_http_sessgate_strip(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        if (ngx_http_sessgate_find_cookie(r, &lcf->cookie, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->start = ngx_current_msec;
        ctx->backoff = SESSGATE_RETRY_MIN_MS;
    }
    if (!ctx->done && ctx->cookie == COOKIE_ONE) {
        rc = ngx_http_sessgate_lookup(r, lcf, ctx);
        if (rc == NGX_AGAIN) {
            if (ngx_current_msec - ctx->start < lcf->lock_timeout) {
                return ngx_http_sessgate_park(r, ctx);
            }
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "sessgate: store %V: the lock was held by another "
                          "process for %M ms (%ui tries); answering 503 "
                          "(raise sessgate_lock_timeout?)",
                          &lcf->store->path, lcf->lock_timeout, ctx->retries);
            ctx->done = 1;
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
        if (rc != NGX_OK) {
            ctx->done = 1;
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }
    ctx->done = 1;
    if (lcf->csrf) {
        const char  *why = ngx_http_sessgate_csrf(r, ctx);

        if (why != NULL) {
            /* as the gateway: checked before the policy, logged, 403 */
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "sessgate: unsafe request without same-origin "
                          "proof (%s); 403", why);
            return NGX_HTTP_FORBIDDEN;
        }
    }
    return ngx_http_sessgate_decide(r, lcf, ctx);
}

/* ----------------------------------------------------------- variables */

static ngx_int_t
ngx_http_sessgate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_sessgate_ctx_t  *ctx;
    ngx_str_t                 val = ngx_null_string;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_sessgate_module);
    if (ctx != NULL && ctx->done) {
        if ((data == VAR_DATA || data == VAR_TRUNCATED)
            && ngx_http_sessgate_need_data(r->main, ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }
        switch (data) {
        case VAR_ID:
            val = ctx->id;
            break;
        case VAR_USER:
            val = ctx->user;
            break;
        case VAR_DATA:
            val = ctx->data;
            break;
        case VAR_TRUNCATED:
            if (ctx->truncated) {
                ngx_str_set(&val, "1");
            }
            break;
        case VAR_CSRF:
            val = ctx->csrf;
            break;
        case VAR_LOGIN:
            val = ctx->login_url;
            break;
        default:            /* VAR_NEW: this module never creates one */
            break;
        }
    }
    /* Empty means absent, as with the gateway's injected values. */
    if (val.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    v->data = val.data;
    v->len = val.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    return NGX_OK;
}

static ngx_int_t
ngx_http_sessgate_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_sessgate_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }
        var->get_handler = v->get_handler;
        var->data = v->data;
    }
    return NGX_OK;
}

/* ------------------------------------------------------- configuration */

static char *
ngx_http_sessgate_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sessgate_loc_conf_t   *lcf = conf;
    ngx_http_sessgate_main_conf_t  *mcf;
    ngx_http_sessgate_store_t     **stores, *store;
    ngx_str_t                      *value, path;
    ngx_uint_t                      i;

    if (lcf->store != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }
    value = cf->args->elts;
    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->store = NULL;
        return NGX_CONF_OK;
    }
    if (ngx_strncmp(value[1].data, "redis", 5) == 0) {
        /* see the top of the file */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": the nginx module "
                           "reads GDBM stores only (a Redis call would block "
                           "the worker); use the FastCGI gateway with "
                           "auth_request for Redis", &value[1]);
        return NGX_CONF_ERROR;
    }
    path = value[1];
    if (ngx_strncmp(path.data, "gdbm:", 5) == 0) {
        path.data += 5;
        path.len -= 5;
    }
    if (path.len == 0) {
        return "needs a path";
    }
    /* relative paths are relative to nginx's prefix (-p) */
    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_sessgate_module);
    stores = mcf->stores.elts;
    for (i = 0; i < mcf->stores.nelts; i++) {
        if (stores[i]->path.len == path.len
            && ngx_strncmp(stores[i]->path.data, path.data, path.len) == 0)
        {
            lcf->store = stores[i];
            return NGX_CONF_OK;
        }
    }
    store = ngx_pcalloc(cf->pool, sizeof(ngx_http_sessgate_store_t));
    if (store == NULL) {
        return NGX_CONF_ERROR;
    }
    /* NUL-terminated for libsessgate */
    store->path.data = ngx_pnalloc(cf->pool, path.len + 1);
    if (store->path.data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(store->path.data, path.data, path.len);
    store->path.data[path.len] = '\0';
    store->path.len = path.len;
    stores = ngx_array_push(&mcf->stores);
    if (stores == NULL) {
        return NGX_CONF_ERROR;
    }
    *stores = store;
    lcf->store = store;
    (void) cmd;
    return NGX_CONF_OK;
}

/* A cookie name is an RFC 6265 token: compared byte for byte, it must not
 * hold a separator the parser splits on. */
static char *
ngx_http_sessgate_cookie_name(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t   *name = data;
    ngx_uint_t   i;
    u_char       c;

    (void) cf;
    (void) post;
    if (name->len == 0) {
        return "is empty";
    }
    for (i = 0; i < name->len; i++) {
        c = name->data[i];
        if (c <= 0x20 || c >= 0x7f || ngx_strchr("()<>@,;:\\\"/[]?={}", c)) {
            return "is not a valid cookie name";
        }
    }
    return NGX_CONF_OK;
}

static void *
ngx_http_sessgate_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_sessgate_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_sessgate_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }
    if (ngx_array_init(&mcf->stores, cf->pool, 2,
                       sizeof(ngx_http_sessgate_store_t *)) != NGX_OK)
    {
        return NULL;
    }
    return mcf;
}

static void *
ngx_http_sessgate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_sessgate_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_sessgate_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }
    /* set by ngx_pcalloc(): cookie, login_url = { 0, NULL } */
    conf->store = NGX_CONF_UNSET_PTR;
    conf->policy = NGX_CONF_UNSET_UINT;
    conf->lock_timeout = NGX_CONF_UNSET_MSEC;
    conf->inject_max = NGX_CONF_UNSET_SIZE;
    conf->csrf = NGX_CONF_UNSET;
    return conf;
}

static char *
ngx_http_sessgate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_sessgate_loc_conf_t  *prev = parent;
    ngx_http_sessgate_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->store, prev->store, NULL);
    ngx_conf_merge_uint_value(conf->policy, prev->policy, SESSGATE_POLICY_OFF);
    ngx_conf_merge_str_value(conf->cookie, prev->cookie, "sessgate");
    ngx_conf_merge_str_value(conf->login_url, prev->login_url, "");
    ngx_conf_merge_msec_value(conf->lock_timeout, prev->lock_timeout,
                              SG_DEFAULT_LOCK_TIMEOUT);
    ngx_conf_merge_size_value(conf->inject_max, prev->inject_max,
                              SESSGATE_DEFAULT_INJECT);
    ngx_conf_merge_value(conf->csrf, prev->csrf, 0);
    if (conf->policy != SESSGATE_POLICY_OFF && conf->store == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "sessgate_policy is set but no sessgate_store");
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static ngx_int_t
ngx_http_sessgate_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_sessgate_handler;
    return NGX_OK;
}

/* ------------------------------------------------------------- processes */

/* Each worker opens its own handles (see the top of the file).  A store
 * that cannot be opened now is tried again by the first request. */
static ngx_int_t
ngx_http_sessgate_init_process(ngx_cycle_t *cycle)
{
    ngx_http_sessgate_main_conf_t  *mcf;
    ngx_http_sessgate_store_t     **stores;
    ngx_uint_t                      i;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_sessgate_module);
    if (mcf == NULL) {
        return NGX_OK;
    }
    stores = mcf->stores.elts;
    for (i = 0; i < mcf->stores.nelts; i++) {
        (void) ngx_http_sessgate_open(stores[i], cycle->log);
    }
    return NGX_OK;
}

static void
ngx_http_sessgate_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_sessgate_main_conf_t  *mcf;
    ngx_http_sessgate_store_t     **stores;
    ngx_uint_t                      i;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_sessgate_module);
    if (mcf == NULL) {
        return;
    }
    stores = mcf->stores.elts;
    for (i = 0; i < mcf->stores.nelts; i++) {
        sg_store_close(stores[i]->st);
        stores[i]->st = NULL;
    }
}
