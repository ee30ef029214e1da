/*
 * config.c - the gateway's options: one table drives getopt_long, --help,
 * validation and (through a test) the man page docs/sessgate.8.
 *
 * Each option names the gw_config field it fills, its type, its range and
 * its help line, so adding an option is one table row (tmux's
 * options-table.c).  Numbers go through strtol with a range check; strings
 * that end up in headers (cookie name, path, domain, login URL) are checked
 * here once, so the request path never has to.  The CGI root and program
 * are resolved with realpath(3) at start-up: the request path compares
 * against the resolved names.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway.h"

enum opt_type { OPT_STR, OPT_LONG, OPT_ENUM, OPT_FLAG, OPT_HELP, OPT_VERSION,
                OPT_STORE,        /* a row of libsessgate's store options */
                OPT_STORE_ROWS }; /* where those rows go in the list */

typedef struct opt_def {
    const char   *name;
    enum opt_type type;
    size_t        off;         /* field in gw_config; OPT_STORE: the row */
    long          min, max;    /* OPT_LONG range */
    const char   *choices;     /* OPT_ENUM: "a|b|c", index stored */
    const char   *arg;         /* metavariable for --help */
    const char   *help;
} opt_def;

#define F(field) offsetof(gw_config, field)

static const opt_def opt_table[] = {
    { "mode", OPT_ENUM, F(mode), 0, 0, "auth|cgi", "auth|cgi",
      "auth: answer with session headers; cgi: run a CGI program (default auth)" },
    { "store", OPT_STR, F(store_uri), 0, 0, NULL, "URI",
      "session store: PATH, gdbm:PATH, redis://[USER@]HOST:PORT/DB, "
      "redis+unix:/SOCKET or redis+sentinel://H:P,H:P/MASTER; a Redis "
      "password via ?password_file=PATH or env SESSGATE_REDIS_PASSWORD "
      "(default: env SESSGATE_STORE)" },
    { "listen", OPT_STR, F(listen), 0, 0, NULL, "unix:PATH|HOST:PORT",
      "listen on this socket (default: the FastCGI socket on fd 0)" },
    { "workers", OPT_LONG, F(workers), 1, GW_MAX_WORKERS, NULL, "N",
      "pre-forked worker processes, restarted when they die (default 1)" },
    { "cookie-name", OPT_STR, F(cookie_name), 0, 0, NULL, "NAME",
      "session cookie name (default sessgate)" },
    { "cookie-path", OPT_STR, F(cookie_path), 0, 0, NULL, "PATH",
      "cookie Path attribute (default /)" },
    { "cookie-domain", OPT_STR, F(cookie_domain), 0, 0, NULL, "DOMAIN",
      "cookie Domain attribute (default: none)" },
    { "cookie-secure", OPT_ENUM, F(cookie_secure), 0, 0, "auto|on|off", "auto|on|off",
      "Secure attribute; auto: when the param HTTPS is on (default auto)" },
    { "cookie-samesite", OPT_ENUM, F(cookie_samesite), 0, 0, "lax|strict|none",
      "lax|strict|none", "cookie SameSite attribute; none needs --cookie-secure on (default lax)" },
    { "cookie-max-age", OPT_LONG, F(cookie_max_age), 0, 315360000, NULL, "S",
      "cookie Max-Age; 0: a session cookie (default 0)" },
    /* --lock-timeout, --idle-timeout, ... --sync, --group: one definition
     * (ranges, defaults, help) in libcore/options.c, shared with
     * sessgatectl and the bindings. */
    { "", OPT_STORE_ROWS, 0, 0, 0, NULL, NULL, NULL },
    { "policy", OPT_ENUM, F(policy), 0, 0, "any|session|user", "any|session|user",
      "any: always 200; session: 401 without a session; user: 401 without a user" },
    { "anonymous", OPT_FLAG, F(anonymous), 0, 0, NULL, NULL,
      "create an anonymous session when there is none (responder role, cgi mode)" },
    { "renew-interval", OPT_LONG, F(renew_interval), 0, 315360000, NULL, "S",
      "give a session in use a new id (and cookie) every S seconds; use with --rotate-grace (default 0: never)" },
    { "csrf", OPT_FLAG, F(csrf), 0, 0, NULL, NULL,
      "refuse POST/PUT/PATCH/DELETE with 403 unless X-CSRF-Token matches the session's token "
      "(and Origin/Sec-Fetch-Site are not foreign)" },
    { "login-url", OPT_STR, F(login_url), 0, 0, NULL, "URL",
      "on 401 send X-Session-Login-Url: URL?next=<request URI>" },
    { "login-redirect", OPT_FLAG, F(login_redirect), 0, 0, NULL, NULL,
      "authorizer role: answer 302 to the login URL instead of 401" },
    { "inject", OPT_STR, F(inject_text), 0, 0, NULL, "all|none|keys:a,b",
      "which data keys go into SESSION_DATA (default all)" },
    { "inject-max", OPT_LONG, F(inject_max), 0, GW_MAX_INJECT, NULL, "BYTES",
      "cap on injected data; over it SESSION_DATA_TRUNCATED=1 (default 2048)" },
    { "cgi-root", OPT_STR, F(cgi_root_arg), 0, 0, NULL, "DIR",
      "cgi mode: run scripts (SCRIPT_FILENAME) only from inside DIR" },
    { "cgi-program", OPT_STR, F(cgi_program_arg), 0, 0, NULL, "FILE",
      "cgi mode: run this one program for every request" },
    { "cgi-timeout", OPT_LONG, F(cgi_timeout), 1, 86400, NULL, "S",
      "kill the CGI program's process group after S seconds (default 30)" },
    { "read-idle-timeout", OPT_LONG, F(read_idle_timeout), 1, 86400, NULL, "S",
      "drop a FastCGI connection that sends nothing for S seconds, idle keep-alive "
      "ones too (default 30)" },
    { "read-timeout", OPT_LONG, F(read_timeout), 1, 86400, NULL, "S",
      "drop a FastCGI connection whose request head (BEGIN + PARAMS) takes longer "
      "than S seconds in all (default 60)" },
    { "queue-timeout", OPT_LONG, F(queue_timeout), 0, 600000, NULL, "MS",
      "with --listen: when every worker has been busy and a connection has waited "
      "MS ms, the master answers it 503 at once; 0: wait without bound (default 0)" },
    { "user", OPT_STR, F(user_arg), 0, 0, NULL, "USER[:GROUP]",
      "as root: switch to USER (and GROUP, else USER's group) after binding the socket" },
    { "socket-owner", OPT_STR, F(socket_owner_arg), 0, 0, NULL, "USER[:GROUP]",
      "owner of the --listen unix socket, e.g. sessgate:www-data (default: the starter)" },
    { "socket-mode", OPT_STR, F(socket_mode_arg), 0, 0, NULL, "MODE",
      "octal mode of the --listen unix socket (default 0660)" },
    { "log-format", OPT_ENUM, F(log_format), 0, 0, "logfmt|json", "logfmt|json",
      "one line per event as logfmt or JSON (default logfmt)" },
    { "log-level", OPT_ENUM, F(log_level), 0, 0, "error|warn|info|debug",
      "error|warn|info|debug", "log events up to this level (default info)" },
    { "log-file", OPT_STR, F(log_file), 0, 0, NULL, "PATH",
      "log to PATH instead of stderr; reopened on SIGHUP" },
    { "metrics-listen", OPT_STR, F(metrics_listen), 0, 0, NULL, "HOST:PORT|unix:PATH",
      "serve Prometheus metrics (GET /metrics) there; keep it off the internet" },
    { "access-log", OPT_FLAG, F(access_log), 0, 0, NULL, NULL,
      "log one event=access line per request (info level)" },
    { "help", OPT_HELP, 0, 0, 0, NULL, NULL, "print this help and exit" },
    { "version", OPT_VERSION, 0, 0, 0, NULL, NULL, "print the version and exit" },
};
#define NOPTS (sizeof opt_table / sizeof *opt_table)
#define MAX_OPTS (NOPTS + 16)

/* The gateway's rows with libsessgate's store options (faces
 * SG_FACE_GATEWAY) in place of the OPT_STORE_ROWS marker.  Built once. */
static const opt_def *all_options(size_t *count)
{
    static opt_def all[MAX_OPTS];
    static char helps[16][200];
    static size_t n;
    const sg_option_info *r;
    size_t i, j, h = 0;

    if (n) {
        *count = n;
        return all;
    }
    for (i = 0; i < NOPTS; i++) {
        if (opt_table[i].type != OPT_STORE_ROWS) {
            all[n++] = opt_table[i];
            continue;
        }
        for (j = 0; (r = sg_option_at(j)) != NULL && h < 16; j++) {
            opt_def *o;

            if (!(r->faces & SG_FACE_GATEWAY))
                continue;
            o = &all[n++];
            o->name = r->flag;
            o->type = OPT_STORE;
            o->off = j;
            o->min = (long)r->min;
            o->max = (long)r->max;
            o->choices = NULL;
            o->arg = r->arg;
            if (!r->arg)
                snprintf(helps[h], sizeof helps[h], "%s", r->help);
            else if (r->def_text)
                snprintf(helps[h], sizeof helps[h], "%s (default %s)", r->help,
                         r->def_text);
            else
                snprintf(helps[h], sizeof helps[h], "%s (default %lld)", r->help,
                         (long long)r->def_value);
            o->help = helps[h++];
        }
    }
    *count = n;
    return all;
}

/* Print --help to stdout, one line per table row. */
void config_usage(void)
{
    size_t i, nopts;
    const opt_def *opts = all_options(&nopts);

    printf("Usage: sessgate [OPTION]...\n"
           "FastCGI session gateway: answers whether a request has a session\n"
           "(--mode auth) or runs a CGI program with the session (--mode cgi).\n\n");
    for (i = 0; i < nopts; i++) {
        char left[64];
        const opt_def *o = &opts[i];

        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        printf("  %-28s %s\n", left, o->help);
    }
    printf("\nSee sessgate(8).\n");
}

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "sessgate: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nTry 'sessgate --help'.\n");
    return 2;
}

static int set_option(gw_config *cfg, const opt_def *o, const char *arg)
{
    char *end;
    long v;
    const char *p;
    size_t idx, len;

    switch (o->type) {
    case OPT_STR:
        *(const char **)((char *)cfg + o->off) = arg;
        return 0;
    case OPT_FLAG:
        *(long *)((char *)cfg + o->off) = 1;
        return 0;
    case OPT_LONG:
    case OPT_STORE:
        v = 1;
        errno = 0;
        if (o->arg)
            v = strtol(arg, &end, 10);
        if (o->arg && (errno || end == arg || *end || v < o->min || v > o->max)) {
            char range[64];
            snprintf(range, sizeof range, "%ld..%ld", o->min, o->max);
            fprintf(stderr, "sessgate: --%s %s: expected a whole number in %s\n",
                    o->name, arg, range);
            fprintf(stderr, "Try 'sessgate --help'.\n");
            return 2;
        }
        if (o->type == OPT_STORE) {
            sg_error err;

            sg_error_clear(&err);
            if (sg_options_set(&cfg->store_opt, sg_option_at(o->off)->name, v,
                               &err) != SG_OK) {
                fprintf(stderr, "sessgate: %s\n", err.text);
                return 2;
            }
            return 0;
        }
        *(long *)((char *)cfg + o->off) = v;
        return 0;
    case OPT_ENUM:
        len = strlen(arg);
        for (p = o->choices, idx = 0; *p; idx++) {
            size_t n = strcspn(p, "|");
            if (n == len && strncmp(p, arg, n) == 0) {
                *(long *)((char *)cfg + o->off) = (long)idx;
                return 0;
            }
            p += n;
            if (*p)
                p++;
        }
        fprintf(stderr, "sessgate: --%s %s: expected one of %s\n", o->name, arg,
                o->choices);
        fprintf(stderr, "Try 'sessgate --help'.\n");
        return 2;
    default:
        return 0;
    }
}

static int check_chars(const char *s, const char *extra_ok, int alnum)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (alnum && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || (c && strchr(extra_ok, c))))
            return -1;
        if (!alnum && (c <= 0x20 || c >= 0x7f || strchr(extra_ok, c)))
            return -1;
    }
    return 0;
}

/* FCGI_WEB_SERVER_ADDRS (a comma- or blank-separated list of IPv4 and
 * IPv6 addresses, libfcgi's variable) into cfg->peers, once: the workers
 * compare each TCP peer with it (request.c) without reading the
 * environment or parsing text per connection.  An entry that is not an
 * address used to match no peer, silently; now it stops the start.
 * Returns -1 to go on, or an exit status. */
static int config_peers(gw_config *cfg)
{
    const char *list = getenv("FCGI_WEB_SERVER_ADDRS");
    size_t cap = 0;

    if (!list || !*list)
        return -1;
    while (*list) {
        char one[INET6_ADDRSTRLEN + 1];
        gw_peer_addr *pa;
        size_t k;

        list += strspn(list, " ,");
        k = strcspn(list, " ,");
        if (!k)
            break;
        if (k >= sizeof one)
            return usage_error("FCGI_WEB_SERVER_ADDRS: %.60s...: not an IPv4 or IPv6 "
                               "address%s", list, "");
        memcpy(one, list, k);
        one[k] = '\0';
        list += k;
        if (cfg->npeers == cap) {
            gw_peer_addr *grown = realloc(cfg->peers, (cap = cap ? cap * 2 : 4) * sizeof *grown);
            if (!grown)
                return usage_error("FCGI_WEB_SERVER_ADDRS: out of memory%s%s", "", "");
            cfg->peers = grown;
        }
        pa = &cfg->peers[cfg->npeers];
        memset(pa, 0, sizeof *pa);
        if (inet_pton(AF_INET, one, pa->a) == 1)
            pa->family = AF_INET;
        else if (inet_pton(AF_INET6, one, pa->a) == 1)
            pa->family = AF_INET6;
        else
            return usage_error("FCGI_WEB_SERVER_ADDRS: %s: not an IPv4 or IPv6 address "
                               "(names are not looked up)%s", one, "");
        cfg->npeers++;
    }
    if (!cfg->npeers)
        return usage_error("FCGI_WEB_SERVER_ADDRS lists no address: unset it to "
                           "accept any peer%s%s", "", "");
    return -1;
}

/* Validate what getopt could not and resolve paths.  The store options
 * are already in cfg->store_opt: zero fields are the store's defaults (a
 * zero touch interval lets the library derive it from the idle timeout of
 * each session it reads, since a session may carry its own). */
static int config_check(gw_config *cfg)
{
    char msg[256];
    struct stat sb;

    if (!cfg->store_uri)
        cfg->store_uri = getenv("SESSGATE_STORE");
    if (!cfg->store_uri || !*cfg->store_uri)
        return usage_error("no store: give --store URI or set SESSGATE_STORE%s%s", "", "");
    /* Why: these strings go into every Set-Cookie; check them once here. */
    if (!*cfg->cookie_name || strlen(cfg->cookie_name) > 128 ||
        check_chars(cfg->cookie_name, "!#$%&'*+-.^_`|~", 1) < 0)
        return usage_error("--cookie-name %s: use letters, digits and !#$%%&'*+-.^_`|~%s",
                           cfg->cookie_name, "");
    if (cfg->cookie_path[0] != '/' || strlen(cfg->cookie_path) > 1024 ||
        check_chars(cfg->cookie_path, ";,", 0) < 0)
        return usage_error("--cookie-path %s: must start with / and hold no blank, ';' or ','%s",
                           cfg->cookie_path, "");
    if (cfg->cookie_domain && (!*cfg->cookie_domain || strlen(cfg->cookie_domain) > 253 ||
        check_chars(cfg->cookie_domain, ".-", 1) < 0))
        return usage_error("--cookie-domain %s: not a domain name%s", cfg->cookie_domain, "");
    /* Why: browsers drop a SameSite=None cookie without Secure, and the
     * __Host-/__Secure- prefixes are promises the browser enforces by
     * refusing the cookie; a config that breaks them would silently lose
     * every session, so it is refused here, at start-up. */
    if (cfg->cookie_samesite == SAMESITE_NONE && cfg->cookie_secure != TRI_ON)
        return usage_error("--cookie-samesite none needs --cookie-secure on "
                           "(browsers drop SameSite=None cookies without Secure)%s%s", "", "");
    if (strncasecmp(cfg->cookie_name, "__Host-", 7) == 0) {
        if (cfg->cookie_secure == TRI_OFF || cfg->cookie_domain ||
            strcmp(cfg->cookie_path, "/") != 0)
            return usage_error("--cookie-name %s: a __Host- cookie is always Secure, "
                               "has Path=/ and no Domain; drop --cookie-secure off, "
                               "--cookie-domain and --cookie-path%s", cfg->cookie_name, "");
        cfg->cookie_secure = TRI_ON;
    } else if (strncasecmp(cfg->cookie_name, "__Secure-", 9) == 0) {
        if (cfg->cookie_secure == TRI_OFF)
            return usage_error("--cookie-name %s: a __Secure- cookie is always Secure; "
                               "drop --cookie-secure off%s", cfg->cookie_name, "");
        cfg->cookie_secure = TRI_ON;
    }
    if (cfg->login_url && (!*cfg->login_url || strlen(cfg->login_url) > 2048 ||
        check_chars(cfg->login_url, "", 0) < 0))
        return usage_error("--login-url %s: must be a URL without blanks%s", cfg->login_url, "");
    if (cfg->login_redirect && !cfg->login_url)
        return usage_error("--login-redirect needs --login-url%s%s", "", "");
    if (inject_spec_parse(&cfg->inject, cfg->inject_text, msg, sizeof msg) < 0)
        return usage_error("%s%s", msg, "");
    cfg->inject.max = (size_t)cfg->inject_max;

    if (cfg->mode == MODE_CGI) {
        if (!!cfg->cgi_root_arg == !!cfg->cgi_program_arg)
            return usage_error("--mode cgi needs exactly one of --cgi-root DIR and --cgi-program FILE%s%s", "", "");
        if (cfg->cgi_root_arg) {
            cfg->cgi_root = realpath(cfg->cgi_root_arg, NULL);
            if (!cfg->cgi_root || stat(cfg->cgi_root, &sb) < 0 || !S_ISDIR(sb.st_mode))
                return usage_error("--cgi-root %s: %s", cfg->cgi_root_arg,
                                   cfg->cgi_root ? "not a directory" : strerror(errno));
        } else {
            cfg->cgi_program = realpath(cfg->cgi_program_arg, NULL);
            if (!cfg->cgi_program || stat(cfg->cgi_program, &sb) < 0 ||
                !S_ISREG(sb.st_mode) || access(cfg->cgi_program, X_OK) < 0)
                return usage_error("--cgi-program %s: %s", cfg->cgi_program_arg,
                                   cfg->cgi_program ? "not an executable file" : strerror(errno));
        }
    } else if (cfg->cgi_root_arg || cfg->cgi_program_arg) {
        return usage_error("--cgi-root and --cgi-program need --mode cgi%s%s", "", "");
    }

    if (cfg->user_arg && privsep_parse(cfg->user_arg, 1, &cfg->run_as, msg, sizeof msg) < 0)
        return usage_error("--user %s%s", msg, "");
    if (cfg->socket_owner_arg &&
        privsep_parse(cfg->socket_owner_arg, 0, &cfg->socket_owner, msg, sizeof msg) < 0)
        return usage_error("--socket-owner %s%s", msg, "");
    cfg->socket_mode = 0660;
    if (cfg->socket_mode_arg) {
        char *end;
        long m;

        errno = 0;
        m = strtol(cfg->socket_mode_arg, &end, 8);
        if (errno || end == cfg->socket_mode_arg || *end || m < 0 || m > 0777)
            return usage_error("--socket-mode %s: expected an octal mode 0..0777, e.g. 0660%s",
                               cfg->socket_mode_arg, "");
        cfg->socket_mode = m;
    }
    if ((cfg->socket_owner_arg || cfg->socket_mode_arg) &&
        (!cfg->listen || strncmp(cfg->listen, "unix:", 5) != 0))
        return usage_error("--socket-owner and --socket-mode apply to --listen unix:PATH only "
                           "(systemd sets a passed socket's owner: SocketUser=, SocketMode=)%s%s",
                           "", "");

    return config_peers(cfg);
}

/* Parse argv into *cfg; see gateway.h. */
int config_parse(gw_config *cfg, int argc, char **argv)
{
    struct option longopts[MAX_OPTS + 1];
    size_t i, nopts;
    const opt_def *opts = all_options(&nopts);
    int c, rc;

    memset(cfg, 0, sizeof *cfg);
    cfg->mode = MODE_AUTH;
    cfg->workers = 1;
    cfg->cookie_name = "sessgate";
    cfg->cookie_path = "/";
    cfg->cookie_secure = TRI_AUTO;
    cfg->policy = POLICY_ANY;
    cfg->inject_text = "all";
    cfg->inject_max = 2048;
    cfg->cgi_timeout = 30;
    cfg->read_idle_timeout = 30;
    cfg->read_timeout = 60;
    cfg->log_format = LOGF_LOGFMT;
    cfg->log_level = LOG_INFO;

    for (i = 0; i < nopts; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg = (opts[i].type == OPT_FLAG || opts[i].type == OPT_HELP ||
                               opts[i].type == OPT_VERSION ||
                               (opts[i].type == OPT_STORE && !opts[i].arg))
                              ? no_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 256 + (int)i;
    }
    memset(&longopts[nopts], 0, sizeof longopts[nopts]);
    opterr = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const opt_def *o;

        if (c < 256 || c >= 256 + (int)nopts) {
            fprintf(stderr, "Try 'sessgate --help'.\n");
            return 2;
        }
        o = &opts[c - 256];
        if (o->type == OPT_HELP) {
            config_usage();
            return 0;
        }
        if (o->type == OPT_VERSION) {
            printf("sessgate %s (libsessgate %s)\n", SG_VERSION_STRING, sg_version());
            return 0;
        }
        rc = set_option(cfg, o, optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'%s", argv[optind], "");
    return config_check(cfg);
}

/* Release what config_parse allocated. */
void config_free(gw_config *cfg)
{
    inject_spec_free(&cfg->inject);
    free(cfg->cgi_root);
    free(cfg->cgi_program);
    cfg->cgi_root = cfg->cgi_program = NULL;
    free(cfg->peers);
    cfg->peers = NULL;
    cfg->npeers = 0;
}
