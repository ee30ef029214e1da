/*
 * redis_conn.h - what the Redis backend's two files share: the handle
 * (struct redis_be) and the connection calls of redis_conn.c, which
 * backend_redis.c's store operations use.  Private to libcore.
 */
#ifndef SG_REDIS_CONN_H
#define SG_REDIS_CONN_H

#include "internal.h"

#include <hiredis.h>
#include <stdarg.h>
#include <sys/types.h>

/* The environment variable a password may come from (see redis_conn.c). */
#define RD_PASSWORD_ENV       "SESSGATE_REDIS_PASSWORD"
#define RD_MAX_SENTINELS      16
#define RD_TOKEN_BYTES        16
#define RD_NSCRIPTS           6     /* backend_redis.c: create, save, delete,
                                     * end, stats, count */
/* Length of a Redis run_id (INFO server), 40 hex digits, new at every
 * start of the server: lease tokens begin with it (see r_lock). */
#define RD_RUNID_LEN          40

typedef struct sgi_redis_addr {
    char *host;               /* Owned */
    int port;
} sgi_redis_addr;

typedef struct redis_be {
    char *uri;                /* Owned: the URI as given, for messages */
    char *host;               /* Owned: TCP host, or NULL */
    int port;
    char *sock;               /* Owned: unix socket path, or NULL */
    long db;
    int timeout_ms;
    char *user;               /* Owned: ACL user for AUTH, or NULL */
    char *password;           /* Owned: AUTH secret, or NULL; wiped on free */
    size_t password_len;
    char *password_file;      /* Owned: where it came from; NULL: $env */
    int min_replicas;         /* writes wait for this many replicas */
    char *master_name;        /* Owned: Sentinel master name, or NULL */
    sgi_redis_addr sentinels[RD_MAX_SENTINELS];
    size_t n_sentinels;
    size_t sentinel_next;     /* the Sentinel to ask first */
    /* Owned: a +switch-master subscription per Sentinel, or NULL */
    redisContext *subs[RD_MAX_SENTINELS];
    int64_t sub_tried;        /* when they were last (re)made, monotonic ms */
    char *prefix;             /* Owned */
    char *lock_key;           /* Owned: PREFIX "lock" */
    char *writes_key;         /* Owned: PREFIX "writes" */
    redisContext *c;          /* Owned: the connection, NULL when down */
    int broken;               /* an error happened: reconnect at lock() */
    sg_status last;           /* status of the last failed command (err
                               * may be NULL, or hold an earlier error) */
    int held;                 /* SGI_* held now */
    pid_t pid;                /* process that opened c */
    char run_id[RD_RUNID_LEN + 1];  /* the server's run_id, "" if unknown */
    /* our lease token while held: RUN_ID "." 32 random hex digits */
    char token[RD_RUNID_LEN + 1 + 2 * RD_TOKEN_BYTES + 1];
    /* SHA1s of backend_redis.c's session scripts (SCRIPT LOAD), valid for
     * the connection sha_conn: loaded once per connection */
    char sha[RD_NSCRIPTS][41];
    const void *sha_conn;
} redis_be;

/* Fill b's connection fields and prefix from b->uri (owned strings). */
sg_status sgi_redis_parse_uri(redis_be *b, sg_error *err);

/* Close the connection, if any (the next sgi_redis_up reopens it). */
void sgi_redis_drop(redis_be *b);

/* Close everything and free what parse_uri and up made (not b itself). */
void sgi_redis_free(redis_be *b);

/* Report a failed command (takes r; NULL r marks the connection broken). */
sg_status sgi_redis_fail(redis_be *b, redisReply *r, const char *what,
                         sg_error *err);

/* Connect (if not connected, or after an error) and select the database. */
sg_status sgi_redis_up(redis_be *b, sg_error *err);

/* Run a command.  New: the reply, or NULL with err filled and b->last. */
redisReply *sgi_redis_cmd(redis_be *b, const char *what, sg_error *err,
                          const char *fmt, ...);

/* sgi_redis_cmd for reads: repeated once after a reconnect.  New. */
redisReply *sgi_redis_read(redis_be *b, const char *what, sg_error *err,
                           const char *fmt, ...);

/* sgi_redis_cmd for writes: with min_replicas=N, also waits for N
 * replicas and fails if they do not confirm.  New: the write's reply. */
redisReply *sgi_redis_write(redis_be *b, const char *what, sg_error *err,
                            const char *fmt, ...);
redisReply *sgi_redis_writev(redis_be *b, const char *what, sg_error *err,
                             const char *fmt, va_list ap);

/* Run EVAL of a script with n keys; args after fmt are the keys and args
 * as %s / %b of fmt.  New: the reply, or NULL with err filled. */
#define EVAL(b, what, err, script, fmt, ...) \
    sgi_redis_cmd((b), (what), (err), "EVAL %s " fmt, (script), __VA_ARGS__)
/* EVAL of a script that writes session data (see sgi_redis_write). */
#define EVAL_WRITE(b, what, err, script, fmt, ...) \
    sgi_redis_write((b), (what), (err), "EVAL %s " fmt, (script), __VA_ARGS__)

#endif
