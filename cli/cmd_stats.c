/*
 * cmd_stats.c - `sessgatectl stats`: the store's figures.
 *
 * "key: value" lines (stable keys, one figure each) so both a person and
 * a monitoring agent can read them, or one JSON object (--json).
 *
 * --by-user and --ages are the expensive part, asked for on purpose: one
 * walk that loads every live session (a shared lock per record, never the
 * whole store at once, so writers go on), then sessions per user (top N,
 * most first, ties by name) and how old and how idle the sessions are, in
 * fixed buckets.  What an app owner asks ("who holds 5,000 sessions?",
 * "do sessions live minutes or days?"); php-fpm's status page and Redis's
 * INFO keyspace answer the same questions for their users.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Upper bounds (seconds) of the age and idle buckets; the last is open. */
static const struct { int64_t le; const char *name; } buckets[] = {
    { 60, "1m" }, { 600, "10m" }, { 3600, "1h" }, { 21600, "6h" },
    { 86400, "1d" }, { 604800, "7d" }, { INT64_MAX, "inf" },
};
#define NBUCKETS (sizeof buckets / sizeof *buckets)

typedef struct user_count {
    char  *user;        /* Owned */
    size_t n;
} user_count;

typedef struct walk {
    user_count *users;  /* Owned */
    size_t      nusers, cap;
    size_t      walked, anonymous;
    size_t      age[NBUCKETS], idle[NBUCKETS];
} walk;

static size_t bucket(int64_t secs)
{
    size_t i;

    for (i = 0; i + 1 < NBUCKETS; i++)
        if (secs <= buckets[i].le)
            break;
    return i;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const user_count *)a)->user, ((const user_count *)b)->user);
}

static int by_count(const void *a, const void *b)
{
    const user_count *x = a, *y = b;

    if (x->n != y->n)
        return x->n < y->n ? 1 : -1;
    return strcmp(x->user, y->user);
}

static int add_user(walk *w, const char *user)
{
    if (w->nusers == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        user_count *u = realloc(w->users, cap * sizeof *u);
        if (!u)
            return -1;
        w->users = u;
        w->cap = cap;
    }
    w->users[w->nusers].user = strdup(user);
    if (!w->users[w->nusers].user)
        return -1;
    w->users[w->nusers++].n = 1;
    return 0;
}

static void walk_free(walk *w)
{
    size_t i;

    for (i = 0; i < w->nusers; i++)
        free(w->users[i].user);
    free(w->users);
}

/* One walk over the live sessions.  0, or an exit status (reported). */
static int walk_store(sg_store *st, walk *w)
{
    sg_list *ids = NULL;
    sg_error err;
    sg_status rc;
    size_t i, j, n;
    int64_t now = (int64_t)time(NULL);

    sg_error_clear(&err);
    rc = sg_store_list(st, NULL, &ids, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    n = sg_list_count(ids);
    for (i = 0; i < n; i++) {
        sg_session *s = NULL;
        const char *user;

        sg_error_clear(&err);
        rc = sg_session_get(st, sg_list_id(ids, i), SG_GET_NOTOUCH, &s, &err);
        if (rc == SG_ENOTFOUND || rc == SG_EEXPIRED)
            continue;               /* gone since the list: not live now */
        if (rc != SG_OK) {
            sg_list_free(ids);
            return cli_fail(&err, rc);
        }
        w->walked++;
        w->age[bucket(now - sg_session_created(s))]++;
        w->idle[bucket(now - sg_session_accessed(s))]++;
        user = sg_session_user(s);
        if (!user)
            w->anonymous++;
        else if (add_user(w, user) < 0) {
            sg_session_free(s);
            sg_list_free(ids);
            cli_msg("out of memory");
            return CLI_EXIT_STORE;
        }
        sg_session_free(s);
    }
    sg_list_free(ids);
    /* Count per user: sort by name, fold runs, then most first. */
    if (w->nusers) {
        qsort(w->users, w->nusers, sizeof *w->users, by_name);
        for (i = 1, j = 0; i < w->nusers; i++) {
            if (strcmp(w->users[i].user, w->users[j].user) == 0) {
                w->users[j].n++;
                free(w->users[i].user);
            } else
                w->users[++j] = w->users[i];
        }
        w->nusers = j + 1;
        qsort(w->users, w->nusers, sizeof *w->users, by_count);
    }
    return CLI_EXIT_OK;
}

static json_t *hist_json(const size_t *counts)
{
    json_t *o = json_object();
    size_t i;

    for (i = 0; o && i < NBUCKETS; i++)
        json_object_set_new(o, buckets[i].name, json_integer((json_int_t)counts[i]));
    return o;
}

static int print_json(sg_store *st, const sg_stats *stats, const sg_counters *cnt,
                      const walk *w, int by_user, int ages, long top)
{
    json_t *o = json_object(), *u;
    size_t i;
    int rc;

    if (!o)
        goto oom;
    json_object_set_new(o, "store", json_string(sg_store_path(st)));
    if (stats) {
        json_object_set_new(o, "sessions", json_integer((json_int_t)stats->sessions));
        json_object_set_new(o, "live", json_integer((json_int_t)stats->live));
        json_object_set_new(o, "expired", json_integer((json_int_t)stats->expired));
        json_object_set_new(o, "users", json_integer((json_int_t)stats->users));
        json_object_set_new(o, "anonymous", json_integer((json_int_t)stats->anonymous));
        json_object_set_new(o, "file_bytes", json_integer((json_int_t)stats->file_bytes));
        json_object_set_new(o, "writes", json_integer((json_int_t)stats->writes));
    } else {
        json_object_set_new(o, "sessions", json_integer((json_int_t)cnt->sessions));
        json_object_set_new(o, "users", json_integer((json_int_t)cnt->users));
        json_object_set_new(o, "anonymous", json_integer((json_int_t)cnt->anonymous));
        json_object_set_new(o, "expired_removed",
                            json_integer((json_int_t)cnt->expired_removed));
        json_object_set_new(o, "file_bytes", json_integer((json_int_t)cnt->file_bytes));
        json_object_set_new(o, "writes", json_integer((json_int_t)cnt->writes));
        json_object_set_new(o, "counted", json_string(cnt->kept ? "kept" : "walk"));
    }
    if (by_user) {
        u = json_array();
        for (i = 0; u && i < w->nusers && (long)i < top; i++) {
            json_t *e = json_pack("{s:s, s:I}", "user", w->users[i].user,
                                  "sessions", (json_int_t)w->users[i].n);
            if (e)
                json_array_append_new(u, e);
        }
        json_object_set_new(o, "by_user", u);
        json_object_set_new(o, "walked", json_integer((json_int_t)w->walked));
        json_object_set_new(o, "walked_users", json_integer((json_int_t)w->nusers));
        json_object_set_new(o, "walked_anonymous", json_integer((json_int_t)w->anonymous));
    }
    if (ages) {
        json_object_set_new(o, "age_seconds", hist_json(w->age));
        json_object_set_new(o, "idle_seconds", hist_json(w->idle));
        if (!by_user)
            json_object_set_new(o, "walked", json_integer((json_int_t)w->walked));
    }
    /* Names are UTF-8 (the library checks); JSON_ENSURE_ASCII keeps the
     * line plain ASCII whatever the terminal. */
    rc = json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (rc < 0)
        goto oom;
    putchar('\n');
    return CLI_EXIT_OK;
oom:
    cli_msg("out of memory writing JSON");
    return CLI_EXIT_STORE;
}

static int stats_run(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *keep_arg = cli_arg(a, 'k');
    int json = cli_arg(a, 'j') != NULL, by_user = cli_arg(a, 'u') != NULL;
    int ages = cli_arg(a, 'a') != NULL, full = cli_arg(a, 'w') != NULL;
    int64_t top = cli_num(a, 't', 10);
    int keep = -1, status;
    sg_stats stats;
    sg_counters cnt;
    sg_error err;
    sg_status rc;
    walk w;
    size_t i;

    if (keep_arg != NULL && strcmp(keep_arg, "on") == 0)
        keep = 1;
    else if (keep_arg != NULL && strcmp(keep_arg, "off") == 0)
        keep = 0;
    else if (keep_arg != NULL)
        return cli_usage(a->cmd, "--keep takes on or off, not '%s'", keep_arg);
    if ((status = cli_open(ctx, keep >= 0 ? 0 : CLI_OPEN_READ)))
        return status;

    sg_error_clear(&err);
    if (keep >= 0 && (rc = sg_store_keep_counters(ctx->st, keep, &err)) != SG_OK)
        return cli_fail(&err, rc);
    rc = full ? sg_store_stats(ctx->st, &stats, &err)
              : sg_store_counters(ctx->st, &cnt, &err);
    if (rc != SG_OK)
        return cli_fail(&err, rc);
    memset(&w, 0, sizeof w);
    if ((by_user || ages) && (status = walk_store(ctx->st, &w))) {
        walk_free(&w);
        return status;
    }
    if (json) {
        status = print_json(ctx->st, full ? &stats : NULL, &cnt, &w, by_user, ages, (long)top);
        walk_free(&w);
        return status;
    }
    printf("store: %s\n", sg_store_path(ctx->st));
    if (full) {
        printf("sessions: %zu\n", stats.sessions);
        printf("live: %zu\n", stats.live);
        printf("expired: %zu\n", stats.expired);
        printf("users: %zu\n", stats.users);
        printf("anonymous: %zu\n", stats.anonymous);
        printf("file_bytes: %llu\n", (unsigned long long)stats.file_bytes);
        printf("writes: %llu\n", (unsigned long long)stats.writes);
    } else {
        printf("sessions: %zu\n", cnt.sessions);
        printf("users: %zu\n", cnt.users);
        printf("anonymous: %zu\n", cnt.anonymous);
        printf("expired_removed: %llu\n", (unsigned long long)cnt.expired_removed);
        printf("file_bytes: %llu\n", (unsigned long long)cnt.file_bytes);
        printf("writes: %llu\n", (unsigned long long)cnt.writes);
        printf("counted: %s\n", cnt.kept ? "kept" : "walk");
    }
    if (by_user || ages)
        printf("walked: %zu\n", w.walked);
    if (ages)
        for (i = 0; i < NBUCKETS; i++)
            printf("age_le_%s: %zu\n", buckets[i].name, w.age[i]);
    if (ages)
        for (i = 0; i < NBUCKETS; i++)
            printf("idle_le_%s: %zu\n", buckets[i].name, w.idle[i]);
    if (by_user) {
        char shown[256];

        /* "user N NAME": the name last and made printable, so a name with
         * blanks or ':' cannot break the line's shape. */
        for (i = 0; i < w.nusers && (int64_t)i < top; i++)
            printf("user: %zu %s\n", w.users[i].n,
                   cli_show(w.users[i].user, shown, sizeof shown));
    }
    walk_free(&w);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_msg("write error on standard output");
        return CLI_EXIT_STORE;
    }
    return CLI_EXIT_OK;
}

/* The `stats` entry of the command table. */
const struct cli_cmd cli_cmd_stats = {
    "stats", "[--keep on|off] [--walk] [--json] [--by-user [--top N]] [--ages]",
    "print the store's figures as key: value lines (or --json)",
    "  Keys: store, sessions (records: live, or expired and not purged),\n"
    "  users (with a record), anonymous, expired_removed (records removed\n"
    "  after they had expired), file_bytes, writes, counted (kept: figures the store\n"
    "  keeps, no walk; walk: every record read: on Redis, on a store told\n"
    "  --keep off, or after a crash until a recount: check --repair, --keep on,\n"
    "  or the gateway's metrics).  A GDBM store keeps them by default.\n"
    "  --keep on|off   count once and keep the figures (the default), or stop\n"
    "                  keeping them in this GDBM store\n"
    "  --walk          read every record for exact live figures: sessions,\n"
    "                  live, expired, users (among live), anonymous, file_bytes,\n"
    "                  writes\n"
    "  --json          the same figures as one JSON object\n"
    "  --by-user       sessions per user, most first: lines \"user: N NAME\"\n"
    "  --top N         with --by-user, the first N users only (default 10)\n"
    "  --ages          how old (age_le_*) and how long idle (idle_le_*) the live\n"
    "                  sessions are, in buckets up to 1m 10m 1h 6h 1d 7d inf\n"
    "  --by-user and --ages load every live session once (one walk): the\n"
    "  expensive form, for an operator's question, not for a poller.\n",
    { { "json", 'j', CLI_FLAG, 0, 0 },
      { "by-user", 'u', CLI_FLAG, 0, 0 },
      { "top", 't', CLI_NUMBER, 1, 1000000 },
      { "ages", 'a', CLI_FLAG, 0, 0 },
      { "walk", 'w', CLI_FLAG, 0, 0 },
      { "keep", 'k', CLI_TEXT, 0, 0 } },
    0, 0, "takes no arguments", 0,
    stats_run
};
