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
 * $sessgate_data, ...) for fastcgi_param / proxy_set_header.  Where the
 * gateway writes, so does the module, with the gateway's rules: an
 * anonymous session when there is none (sessgate_anonymous, the gateway's
 * --anonymous in the responder role), a new id every sessgate_renew_interval
 * (renew.c: only on an allowed request, the old id kept for the store's
 * rotation grace), the flash messages taken once (sessgate_flash), and
 * Set-Cookie with the new id, or expiring a cookie that named no live
 * session (mode_auth.c; attributes from sessgate_cookie).  Client
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
 * SG_ELOCKTIMEOUT.  The writes do the same with their no-wait flags
 * (SG_CREATE_NOWAIT, SG_ROTATE_NOWAIT, SG_FLASH_NOWAIT): a create still
 * busy at the timeout is 503 as the gateway's; a renewal or a flash pop is
 * best effort there as in the gateway, skipped for this request.
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

#define SESSGATE_SECURE_AUTO       0       /* Secure on an https request */
#define SESSGATE_SECURE_ON         1
#define SESSGATE_SECURE_OFF        2

/* What a request has done so far: a busy store lock parks the request
 * and the phase runs again from the stage it stopped at. */
#define SESSGATE_STAGE_LOOKUP      0
#define SESSGATE_STAGE_CHECK       1       /* CSRF (no store access) */
#define SESSGATE_STAGE_CREATE      2
#define SESSGATE_STAGE_RENEW       3
#define SESSGATE_STAGE_FLASH       4
#define SESSGATE_STAGE_DONE        5

/* One store, shared by every location naming the same path. */
typedef struct {
    ngx_str_t   path;           /* full path, NUL-terminated */
    sg_store   *st;             /* this worker's handle; NULL until open */
} ngx_http_sessgate_store_t;

typedef struct {
    ngx_array_t stores;         /* of ngx_http_sessgate_store_t * */
} ngx_http_sessgate_main_conf_t;

/* The session cookie: its name and the attributes of the Set-Cookie the
 * module sends (the gateway's --cookie-* options). */
typedef struct {
    ngx_str_t   name;           /* NULL data: not set at this level */
    ngx_str_t   path;
    ngx_str_t   domain;         /* empty: no Domain attribute */
    ngx_uint_t  secure;         /* SESSGATE_SECURE_* */
    ngx_uint_t  samesite;       /* index into ngx_http_sessgate_samesite */
    time_t      max_age;        /* 0: a session cookie */
} ngx_http_sessgate_cookie_t;

typedef struct {
    ngx_http_sessgate_store_t *store;   /* NULL: off */
    ngx_uint_t  policy;
    ngx_http_sessgate_cookie_t  cookie;
    ngx_str_t   login_url;
    ngx_msec_t  lock_timeout;
    size_t      inject_max;
    ngx_flag_t  csrf;           /* refuse unsafe methods without proof */
    ngx_flag_t  anonymous;      /* create a session when there is none */
    time_t      renew_interval; /* s; 0: never renew */
    ngx_flag_t  flash;          /* take the flash messages ($sessgate_flash) */
} ngx_http_sessgate_loc_conf_t;

typedef struct {
    ngx_uint_t  stage;          /* SESSGATE_STAGE_* */
    ngx_uint_t  done;           /* every stage is over: variables valid */
    cookie_result cookie;
    ngx_msec_t  start;          /* the stage's first try, for
                                 * sessgate_lock_timeout */
    ngx_msec_t  backoff;        /* next retry delay */
    ngx_uint_t  retries;
    ngx_uint_t  have;           /* a live session was found or made */
    ngx_uint_t  ok;             /* the policy lets the request through */
    ngx_uint_t  created;        /* made by this request */
    ngx_uint_t  renewed;        /* given a new id by this request */
    char        cookie_id[SG_ID_LEN + 1];
    sg_session *session;        /* Owned (pool cleanup): the live session */
    size_t      inject_max;
    ngx_str_t   id, user, data, csrf, login_url, flash;
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
static char *ngx_http_sessgate_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_sessgate_init_process(ngx_cycle_t *cycle);
static void ngx_http_sessgate_exit_process(ngx_cycle_t *cycle);

static ngx_conf_enum_t ngx_http_sessgate_policies[] = {
    { ngx_string("off"), SESSGATE_POLICY_OFF },
    { ngx_string("any"), SESSGATE_POLICY_ANY },
    { ngx_string("session"), SESSGATE_POLICY_SESSION },
    { ngx_string("user"), SESSGATE_POLICY_USER },
    { ngx_null_string, 0 }
};

/* SameSite values, in the order of the gateway's --cookie-samesite. */
static ngx_str_t ngx_http_sessgate_samesite[] = {
    ngx_string("Lax"), ngx_string("Strict"), ngx_string("None")
};

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
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_sessgate_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("sessgate_anonymous"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, anonymous),
      NULL },

    { ngx_string("sessgate_renew_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, renew_interval),
      NULL },

    { ngx_string("sessgate_flash"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_sessgate_loc_conf_t, flash),
      NULL },

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
    VAR_ID, VAR_USER, VAR_DATA, VAR_NEW, VAR_TRUNCATED, VAR_CSRF, VAR_LOGIN,
    VAR_FLASH
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
    { ngx_string("sessgate_flash"), NULL, ngx_http_sessgate_variable,
      VAR_FLASH, NGX_HTTP_VAR_NOCACHEABLE, 0 },
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

/* The request's pool cleanup: frees the session, and finds the context
 * again after an internal redirect (which clears every module's context:
 * ngx_http_realip_module's way), so a request that an index, try_files
 * or error_page sends to another location is not looked up, created or
 * renewed twice. */
static void
ngx_http_sessgate_cleanup(void *data)
{
    ngx_http_sessgate_ctx_t  *ctx = data;

    sg_session_free(ctx->session);
    ctx->session = NULL;
}

static ngx_http_sessgate_ctx_t *
ngx_http_sessgate_get_ctx(ngx_http_request_t *r)
{
    ngx_http_sessgate_ctx_t  *ctx;
    ngx_pool_cleanup_t       *cln;

    ctx = ngx_http_get_module_ctx(r, ngx_http_sessgate_module);
    if (ctx == NULL && (r->internal || r->filter_finalize)) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_sessgate_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_sessgate_module);
                break;
            }
        }
    }
    return ctx;
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

/* A pool copy of the session's id in ctx->id (again after a renewal). */
static ngx_int_t
ngx_http_sessgate_copy_id(ngx_http_request_t *r, ngx_http_sessgate_ctx_t *ctx)
{
    ctx->id.len = SG_ID_LEN;
    ctx->id.data = ngx_pnalloc(r->pool, SG_ID_LEN);
    if (ctx->id.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(ctx->id.data, sg_session_id(ctx->session), SG_ID_LEN);
    return NGX_OK;
}

/* Keep the session (ctx owns it; freed by the pool cleanup) and the
 * values every use needs as pool copies in ctx. */
static ngx_int_t
ngx_http_sessgate_keep(ngx_http_request_t *r, sg_session *s,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    const char  *user, *csrf;

    sg_session_free(ctx->session);
    ctx->session = s;
    ctx->inject_max = lcf->inject_max;
    ctx->have = 1;
    if (ngx_http_sessgate_copy_id(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }
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

/* Whether a write's answer was the no-wait "busy" (retry later). */
static ngx_uint_t
ngx_http_sessgate_busy(sg_status rc, sg_error *err)
{
    return rc == SG_ELOCKTIMEOUT && err->sys_errno == EWOULDBLOCK;
}

/* The store handle of this location, opened if need be, or NULL. */
static sg_store *
ngx_http_sessgate_handle(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf)
{
    if (lcf->store->st == NULL
        && ngx_http_sessgate_open(lcf->store, r->connection->log) != NGX_OK)
    {
        return NULL;
    }
    return lcf->store->st;
}

/* One try at an anonymous session (the gateway's --anonymous:
 * request_create_session): NGX_OK (ctx has it), NGX_AGAIN (busy),
 * NGX_ERROR (the store failed: 503). */
static ngx_int_t
ngx_http_sessgate_create(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    sg_store    *st = ngx_http_sessgate_handle(r, lcf);
    sg_session  *s = NULL;
    sg_status    rc;
    sg_error     err;

    if (st == NULL) {
        return NGX_ERROR;
    }
    sg_error_clear(&err);
    rc = sg_session_create_ex(st, NULL, NULL, 0, 0, SG_CREATE_NOWAIT, &s,
                              &err);
    if (rc == SG_OK) {
        ctx->created = 1;
        return ngx_http_sessgate_keep(r, s, lcf, ctx);   /* takes s */
    }
    if (ngx_http_sessgate_busy(rc, &err)) {
        return NGX_AGAIN;
    }
    ngx_log_error(NGX_LOG_ERR, r->connection->log, err.sys_errno,
                  "sessgate: %s", err.text);
    return NGX_ERROR;
}

/* One try at a renewal (renew.c's renew_maybe, the interval already
 * judged): NGX_AGAIN when busy, else NGX_OK, renewed or not: a renewal
 * that fails (another request renewed first, a logout) is skipped, as in
 * the gateway. */
static ngx_int_t
ngx_http_sessgate_renew(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    sg_store   *st = ngx_http_sessgate_handle(r, lcf);
    sg_status   rc;
    sg_error    err;

    if (st == NULL) {
        return NGX_OK;
    }
    sg_error_clear(&err);
    rc = sg_session_rotate_ex(st, ctx->session, SG_ROTATE_NOWAIT, &err);
    if (rc == SG_OK) {
        ctx->renewed = 1;
        return ngx_http_sessgate_copy_id(r, ctx) == NGX_OK ? NGX_OK
                                                            : NGX_ERROR;
    }
    if (ngx_http_sessgate_busy(rc, &err)) {
        return NGX_AGAIN;
    }
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "sessgate: the session was not renewed: %s",
                  sg_strerror(rc));
    return NGX_OK;
}

/* One try at taking the flash messages (inject_session.c): NGX_AGAIN when
 * busy, else NGX_OK with ctx->flash set when there were any.  A failure
 * leaves them in the store and is logged, as in the gateway. */
static ngx_int_t
ngx_http_sessgate_flash(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    sg_store   *st = ngx_http_sessgate_handle(r, lcf);
    sg_status   rc;
    sg_error    err;
    char       *json = NULL;

    if (st == NULL) {
        return NGX_OK;
    }
    sg_error_clear(&err);
    rc = sg_session_flash_pop_ex(st, ctx->session, SG_FLASH_NOWAIT, &json,
                                 &err);
    if (ngx_http_sessgate_busy(rc, &err)) {
        return NGX_AGAIN;
    }
    if (rc != SG_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "sessgate: flash messages not delivered: %s",
                      sg_strerror(rc));
        return NGX_OK;
    }
    if (ngx_strcmp(json, "[]") == 0) {
        free(json);
        return NGX_OK;
    }
    return ngx_http_sessgate_pool_copy(r->pool, json, &ctx->flash);
}

/* ------------------------------------------------------------- the cookie */

static ngx_int_t
ngx_http_sessgate_add_header(ngx_http_request_t *r, const char *key,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h = ngx_list_push(&r->headers_out.headers);

    if (h == NULL) {
        return NGX_ERROR;
    }
    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = value;
    h->value.len = len;
    return NGX_OK;
}

/* Set-Cookie with id, or expiring the cookie (id NULL), exactly as the
 * gateway's respond_cookie (gateway/respond.c): with no-store, so no
 * shared cache hands the session to the next client, and Vary: Cookie.
 * Pushed now, in the access phase: the upstream's or the static file's
 * headers are added to these, and an error page keeps them. */
static ngx_int_t
ngx_http_sessgate_set_cookie(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, const char *id)
{
    ngx_http_sessgate_cookie_t  *c = &lcf->cookie;
    ngx_uint_t                   secure = c->secure == SESSGATE_SECURE_ON;
    size_t                       len;
    u_char                      *p, *v;

#if (NGX_HTTP_SSL)
    if (c->secure == SESSGATE_SECURE_AUTO && r->connection->ssl) {
        secure = 1;
    }
#endif
    len = c->name.len + 1 + SG_ID_LEN + sizeof("; Path=") - 1 + c->path.len
          + sizeof("; HttpOnly; SameSite=Strict") - 1
          + sizeof("; Secure") - 1
          + sizeof("; Max-Age=") - 1 + NGX_TIME_T_LEN
          + sizeof("; Domain=") - 1 + c->domain.len;
    v = ngx_pnalloc(r->pool, len);
    if (v == NULL) {
        return NGX_ERROR;
    }
    p = ngx_sprintf(v, "%V=%s; Path=%V; HttpOnly; SameSite=%V", &c->name,
                    id ? id : "", &c->path,
                    &ngx_http_sessgate_samesite[c->samesite]);
    if (secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }
    if (id == NULL) {
        p = ngx_cpymem(p, "; Max-Age=0", sizeof("; Max-Age=0") - 1);
    } else if (c->max_age > 0) {
        p = ngx_sprintf(p, "; Max-Age=%T", c->max_age);
    }
    if (c->domain.len) {
        p = ngx_sprintf(p, "; Domain=%V", &c->domain);
    }
    if (ngx_http_sessgate_add_header(r, "Set-Cookie", v, p - v) != NGX_OK
        || ngx_http_sessgate_add_header(r, "Cache-Control",
                                        (u_char *) "no-store", 8) != NGX_OK
        || ngx_http_sessgate_add_header(r, "Vary", (u_char *) "Cookie", 6)
           != NGX_OK)
    {
        return NGX_ERROR;
    }
    return NGX_OK;
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

/* Whether the policy lets the request through. */
static ngx_uint_t
ngx_http_sessgate_allowed(ngx_http_sessgate_loc_conf_t *lcf,
    ngx_http_sessgate_ctx_t *ctx)
{
    switch (lcf->policy) {
    case SESSGATE_POLICY_SESSION:
        return ctx->have;
    case SESSGATE_POLICY_USER:
        return ctx->have && ctx->has_user;
    default:
        return 1;
    }
}

static ngx_int_t
ngx_http_sessgate_decide(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

    if (ngx_http_sessgate_allowed(lcf, ctx)) {
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

/* The next stage: its lock wait starts afresh. */
static void
ngx_http_sessgate_stage(ngx_http_sessgate_ctx_t *ctx, ngx_uint_t stage)
{
    ctx->stage = stage;
    ctx->start = ngx_current_msec;
    ctx->backoff = SESSGATE_RETRY_MIN_MS;
}

/* A stage found the lock busy: NGX_AGAIN (parked until the timer runs
 * the phase again) while sessgate_lock_timeout lasts, else NGX_DECLINED
 * (logged). */
static ngx_int_t
ngx_http_sessgate_wait(ngx_http_request_t *r,
    ngx_http_sessgate_loc_conf_t *lcf, ngx_http_sessgate_ctx_t *ctx,
    const char *then)
{
    if (ngx_current_msec - ctx->start < lcf->lock_timeout) {
        return ngx_http_sessgate_park(r, ctx);
    }
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "sessgate: store %V: the lock was held by another "
                  "process for %M ms (%ui tries); %s "
                  "(raise sessgate_lock_timeout?)",
                  &lcf->store->path, lcf->lock_timeout, ctx->retries, then);
    return NGX_DECLINED;
}

static ngx_int_t
ngx_http_sessgate_handler(ngx_http_request_t *r)
{
    ngx_http_sessgate_loc_conf_t  *lcf;
    ngx_http_sessgate_ctx_t       *ctx;
    ngx_pool_cleanup_t            *cln;
    ngx_int_t                      rc;
    const char                    *why;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_sessgate_module);
    if (lcf->policy == SESSGATE_POLICY_OFF || lcf->store == NULL) {
        return NGX_DECLINED;
    }
    ctx = ngx_http_sessgate_get_ctx(r);
    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_sessgate_ctx_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (ctx == NULL || cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        cln->handler = ngx_http_sessgate_cleanup;
        cln->data = ctx;
        ngx_http_set_ctx(r, ctx, ngx_http_sessgate_module);
        if (ngx_http_sessgate_strip(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        if (ngx_http_sessgate_find_cookie(r, &lcf->cookie.name, ctx)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_http_sessgate_stage(ctx, SESSGATE_STAGE_LOOKUP);
    }

    /* The order of mode_auth.c: lookup, CSRF, create, policy, renewal
     * (allowed requests only), the flash messages (inject_session). */
    if (ctx->stage == SESSGATE_STAGE_LOOKUP) {
        if (ctx->cookie == COOKIE_ONE) {
            rc = ngx_http_sessgate_lookup(r, lcf, ctx);
            if (rc == NGX_AGAIN) {
                rc = ngx_http_sessgate_wait(r, lcf, ctx, "answering 503");
                if (rc == NGX_AGAIN) {
                    return NGX_AGAIN;
                }
            }
            if (rc != NGX_OK) {
                ctx->stage = SESSGATE_STAGE_DONE;
                ctx->done = 1;
                return NGX_HTTP_SERVICE_UNAVAILABLE;
            }
        }
        ngx_http_sessgate_stage(ctx, SESSGATE_STAGE_CHECK);
    }
    if (ctx->stage == SESSGATE_STAGE_CHECK) {
        if (lcf->csrf && (why = ngx_http_sessgate_csrf(r, ctx)) != NULL) {
            /* as the gateway: checked before the policy, logged, 403 */
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "sessgate: unsafe request without same-origin "
                          "proof (%s); 403", why);
            ctx->stage = SESSGATE_STAGE_DONE;
            ctx->done = 1;
            return NGX_HTTP_FORBIDDEN;
        }
        ngx_http_sessgate_stage(ctx, SESSGATE_STAGE_CREATE);
    }
    if (ctx->stage == SESSGATE_STAGE_CREATE) {
        if (!ctx->have && lcf->anonymous) {
            rc = ngx_http_sessgate_create(r, lcf, ctx);
            if (rc == NGX_AGAIN) {
                rc = ngx_http_sessgate_wait(r, lcf, ctx, "answering 503");
                if (rc == NGX_AGAIN) {
                    return NGX_AGAIN;
                }
            }
            if (rc != NGX_OK) {
                ctx->stage = SESSGATE_STAGE_DONE;
                ctx->done = 1;
                return NGX_HTTP_SERVICE_UNAVAILABLE;
            }
        }
        /* Only an allowed request renews or takes messages: a 401 or 302
         * does not reach the app, and a renewal's cookie on it would
         * strand the browser (mode_auth.c). */
        ctx->ok = ngx_http_sessgate_allowed(lcf, ctx);
        ngx_http_sessgate_stage(ctx, SESSGATE_STAGE_RENEW);
    }
    if (ctx->stage == SESSGATE_STAGE_RENEW) {
        if (ctx->ok && ctx->have && !ctx->created && lcf->renew_interval
            && (int64_t) ngx_time() - sg_session_rotated(ctx->session)
               >= (int64_t) lcf->renew_interval)
        {
            rc = ngx_http_sessgate_renew(r, lcf, ctx);
            if (rc == NGX_AGAIN
                && ngx_http_sessgate_wait(r, lcf, ctx,
                                          "not renewing the session this "
                                          "time") == NGX_AGAIN)
            {
                return NGX_AGAIN;
            }
            if (rc == NGX_ERROR) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        ngx_http_sessgate_stage(ctx, SESSGATE_STAGE_FLASH);
    }
    if (ctx->stage == SESSGATE_STAGE_FLASH) {
        if (ctx->ok && ctx->have && lcf->flash
            && sg_session_has_flash(ctx->session))
        {
            rc = ngx_http_sessgate_flash(r, lcf, ctx);
            if (rc == NGX_AGAIN
                && ngx_http_sessgate_wait(r, lcf, ctx,
                                          "leaving the flash messages for a "
                                          "later request") == NGX_AGAIN)
            {
                return NGX_AGAIN;
            }
            if (rc == NGX_ERROR) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        ctx->stage = SESSGATE_STAGE_DONE;
        ctx->done = 1;
        /* The browser learns a new id, or forgets one that named no live
         * session (mode_auth.c's allow and deny). */
        if (ctx->created || ctx->renewed) {
            rc = ngx_http_sessgate_set_cookie(r, lcf,
                                              sg_session_id(ctx->session));
        } else if (!ctx->have && ctx->cookie != COOKIE_NONE) {
            rc = ngx_http_sessgate_set_cookie(r, lcf, NULL);
        } else {
            rc = NGX_OK;
        }
        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    ctx = ngx_http_sessgate_get_ctx(r->main);
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
        case VAR_FLASH:
            val = ctx->flash;
            break;
        default:            /* VAR_NEW */
            if (ctx->created) {
                ngx_str_set(&val, "1");
            }
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

/* Whether every byte of v is printable ASCII outside the separators sep
 * (alnum: letters, digits and sep only). */
static ngx_uint_t
ngx_http_sessgate_chars_ok(ngx_str_t *v, const char *sep, ngx_uint_t alnum)
{
    ngx_uint_t  i;
    u_char      c;

    for (i = 0; i < v->len; i++) {
        c = v->data[i];
        if (alnum) {
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || ngx_strchr(sep, c)))
            {
                return 0;
            }
        } else if (c <= 0x20 || c >= 0x7f || ngx_strchr(sep, c)) {
            return 0;
        }
    }
    return 1;
}

/* sessgate_cookie NAME [path=P] [domain=D] [secure=auto|on|off]
 * [samesite=lax|strict|none] [max_age=TIME]: the gateway's --cookie-*
 * options, checked by the same rules (gateway/config.c).  A level that
 * names the cookie gives all its attributes (the rest are defaults). */
static char *
ngx_http_sessgate_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_sessgate_loc_conf_t  *lcf = conf;
    ngx_http_sessgate_cookie_t    *c = &lcf->cookie;
    ngx_str_t                     *value, v;
    ngx_uint_t                     i, k;
    time_t                         t;

    (void) cmd;
    if (c->name.data != NULL) {
        return "is duplicate";
    }
    value = cf->args->elts;
    c->name = value[1];
    ngx_str_set(&c->path, "/");
    ngx_str_null(&c->domain);
    c->secure = SESSGATE_SECURE_AUTO;
    c->samesite = 0;
    c->max_age = 0;
    /* An RFC 6265 token: compared byte for byte, it must not hold a
     * separator the parser splits on. */
    if (c->name.len == 0 || c->name.len > 128
        || !ngx_http_sessgate_chars_ok(&c->name, "()<>@,;:\\\"/[]?={}", 0))
    {
        return "is not a valid cookie name";
    }
    for (i = 2; i < cf->args->nelts; i++) {
        v = value[i];
        if (v.len > 5 && ngx_strncmp(v.data, "path=", 5) == 0) {
            v.data += 5;
            v.len -= 5;
            if (v.data[0] != '/' || v.len > 1024
                || !ngx_http_sessgate_chars_ok(&v, ";,", 0))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessgate_cookie "
                                   "\"%V\": must start with / and hold no "
                                   "blank, ';' or ','", &value[i]);
                return NGX_CONF_ERROR;
            }
            c->path = v;
        } else if (v.len > 7 && ngx_strncmp(v.data, "domain=", 7) == 0) {
            v.data += 7;
            v.len -= 7;
            if (v.len > 253 || !ngx_http_sessgate_chars_ok(&v, ".-", 1)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessgate_cookie "
                                   "\"%V\": not a domain name", &value[i]);
                return NGX_CONF_ERROR;
            }
            c->domain = v;
        } else if (ngx_strcmp(v.data, "secure=auto") == 0) {
            c->secure = SESSGATE_SECURE_AUTO;
        } else if (ngx_strcmp(v.data, "secure=on") == 0) {
            c->secure = SESSGATE_SECURE_ON;
        } else if (ngx_strcmp(v.data, "secure=off") == 0) {
            c->secure = SESSGATE_SECURE_OFF;
        } else if (v.len > 9 && ngx_strncmp(v.data, "samesite=", 9) == 0) {
            v.data += 9;
            v.len -= 9;
            for (k = 0; k < 3; k++) {
                if (v.len == ngx_http_sessgate_samesite[k].len
                    && ngx_strncasecmp(v.data,
                                       ngx_http_sessgate_samesite[k].data,
                                       v.len) == 0)
                {
                    break;
                }
            }
            if (k == 3) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessgate_cookie "
                                   "\"%V\": lax, strict or none", &value[i]);
                return NGX_CONF_ERROR;
            }
            c->samesite = k;
        } else if (v.len > 8 && ngx_strncmp(v.data, "max_age=", 8) == 0) {
            v.data += 8;
            v.len -= 8;
            t = ngx_parse_time(&v, 1);
            if (t == (time_t) NGX_ERROR || t > 315360000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessgate_cookie "
                                   "\"%V\": a time up to 3650d", &value[i]);
                return NGX_CONF_ERROR;
            }
            c->max_age = t;
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sessgate_cookie: "
                               "unknown parameter \"%V\" (path=, domain=, "
                               "secure=, samesite=, max_age=)", &value[i]);
            return NGX_CONF_ERROR;
        }
    }
    /* Browsers drop a SameSite=None cookie without Secure, and the
     * __Host- and __Secure- prefixes bind the attributes: a cookie that
     * breaks them would be lost silently (gateway/config.c). */
    if (c->samesite == 2 && c->secure != SESSGATE_SECURE_ON) {
        return "samesite=none needs secure=on (browsers drop SameSite=None "
               "cookies without Secure)";
    }
    if (c->name.len >= 7 && ngx_strncasecmp(c->name.data,
                                            (u_char *) "__Host-", 7) == 0)
    {
        if (c->secure == SESSGATE_SECURE_OFF || c->domain.len
            || c->path.len != 1)
        {
            return "a __Host- cookie is always Secure, has path=/ and no "
                   "domain";
        }
        c->secure = SESSGATE_SECURE_ON;
    } else if (c->name.len >= 9
               && ngx_strncasecmp(c->name.data, (u_char *) "__Secure-", 9)
                  == 0)
    {
        if (c->secure == SESSGATE_SECURE_OFF) {
            return "a __Secure- cookie is always Secure";
        }
        c->secure = SESSGATE_SECURE_ON;
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
    /* set by ngx_pcalloc(): cookie (name.data NULL: unset),
     * login_url = { 0, NULL } */
    conf->store = NGX_CONF_UNSET_PTR;
    conf->policy = NGX_CONF_UNSET_UINT;
    conf->lock_timeout = NGX_CONF_UNSET_MSEC;
    conf->inject_max = NGX_CONF_UNSET_SIZE;
    conf->csrf = NGX_CONF_UNSET;
    conf->anonymous = NGX_CONF_UNSET;
    conf->renew_interval = NGX_CONF_UNSET;
    conf->flash = NGX_CONF_UNSET;
    return conf;
}

static char *
ngx_http_sessgate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_sessgate_loc_conf_t  *prev = parent;
    ngx_http_sessgate_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->store, prev->store, NULL);
    ngx_conf_merge_uint_value(conf->policy, prev->policy, SESSGATE_POLICY_OFF);
    if (conf->cookie.name.data == NULL) {
        if (prev->cookie.name.data == NULL) {
            ngx_str_set(&prev->cookie.name, "sessgate");
            ngx_str_set(&prev->cookie.path, "/");
        }
        conf->cookie = prev->cookie;
    }
    ngx_conf_merge_str_value(conf->login_url, prev->login_url, "");
    ngx_conf_merge_msec_value(conf->lock_timeout, prev->lock_timeout,
                              SG_DEFAULT_LOCK_TIMEOUT);
    ngx_conf_merge_size_value(conf->inject_max, prev->inject_max,
                              SESSGATE_DEFAULT_INJECT);
    ngx_conf_merge_value(conf->csrf, prev->csrf, 0);
    ngx_conf_merge_value(conf->anonymous, prev->anonymous, 0);
    ngx_conf_merge_sec_value(conf->renew_interval, prev->renew_interval, 0);
    ngx_conf_merge_value(conf->flash, prev->flash, 0);
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
