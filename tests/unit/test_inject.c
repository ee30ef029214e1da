/*
 * test_inject.c - unit tests of what the gateway injects and emits:
 * SESSION_DATA (inject.c: --inject all|none|keys, the byte cap, ASCII-only
 * JSON), SESSION_USER encoding, the Set-Cookie and login URL shapes
 * (respond.c) and the inbound param classification (inbound.c).  The
 * invariant throughout: no injected or emitted value ever holds a byte
 * outside printable ASCII.  Prints TAP lines; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../gateway/gateway.h"

static int n_test, n_fail;

static void check(int ok, const char *what)
{
    n_test++;
    if (!ok)
        n_fail++;
    printf("%sok %d - %s\n", ok ? "" : "not ", n_test, what);
}

static char *data(const char *spec_text, size_t max, const char *json, int *trunc)
{
    inject_spec spec;
    char msg[200], *out = NULL;

    memset(&spec, 0, sizeof spec);
    if (inject_spec_parse(&spec, spec_text, msg, sizeof msg) < 0)
        return strdup("SPEC-ERROR");
    spec.max = max;
    if (inject_data(&spec, json, &out, trunc) < 0)
        out = strdup("INJECT-ERROR");
    inject_spec_free(&spec);
    return out;
}

static int streq_free(char *got, const char *want)
{
    int ok = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
    if (!ok)
        printf("# got [%s] want [%s]\n", got ? got : "(null)", want ? want : "(null)");
    free(got);
    return ok;
}

int main(void)
{
    int t;
    char *s;
    inject_spec spec;
    char msg[200];
    gw_config cfg;
    buf b;

    check(streq_free(data("all", 2048, "{\"a\":1,\"b\":\"x\"}", &t), "{\"a\":1,\"b\":\"x\"}") && !t,
          "--inject all passes the data as is");
    check(streq_free(data("none", 2048, "{\"a\":1}", &t), NULL) && !t,
          "--inject none injects nothing and is not 'truncated'");
    check(streq_free(data("keys:b,zz,a", 2048, "{\"a\":1,\"b\":[2],\"c\":3}", &t),
                     "{\"b\":[2],\"a\":1}") && !t,
          "--inject keys: picks only the named keys, in the order given");
    check(streq_free(data("keys:zz", 2048, "{\"a\":1}", &t), "{}"), "no named key present gives {}");
    check(streq_free(data("all", 10, "{\"a\":\"0123456789\"}", &t), NULL) && t,
          "over the cap: data left out and truncated flagged");
    check(streq_free(data("all", 18, "{\"a\":\"0123456789\"}", &t), "{\"a\":\"0123456789\"}") && !t,
          "exactly at the cap: data kept");
    check(streq_free(data("keys:a", 8, "{\"a\":1,\"b\":\"0123456789\"}", &t), "{\"a\":1}") && !t,
          "the cap applies to what is injected, after picking keys");
    check(streq_free(data("all", 2048, "{\"u\":\"caf\xc3\xa9 \xe2\x80\xa8\"}", &t),
                     "{\"u\":\"caf\\u00E9 \\u2028\"}"),
          "non-ASCII is written as \\u escapes");
    check(streq_free(data("all", 2048, "{\"d\":\"a\x7f" "b\"}", &t), "{\"d\":\"a\\u007fb\"}"),
          "DEL is written as \\u007f");
    check(streq_free(data("all", 2048, "{\"n\":\"l1\\nl2\\r\\u0000\"}", &t),
                     "{\"n\":\"l1\\nl2\\r\\u0000\"}"),
          "escaped CR, LF and NUL stay escaped");
    s = data("all", 4096, "{\"x\":\"\xf0\x9f\x98\x80\", \"y\" : [1, 2]}", &t);
    check(s && inject_header_safe(s) && !strchr(s, ' '), "the output is compact printable ASCII");
    free(s);
    check(streq_free(data("keys:a", 2048, "[1,2]", &t), "INJECT-ERROR"),
          "a non-object is refused when it has to be parsed");
    check(streq_free(data("all", 2048, "{\"\xc3\xa9\":", &t), "INJECT-ERROR"),
          "invalid JSON that is not plain ASCII is refused");

    memset(&spec, 0, sizeof spec);
    check(inject_spec_parse(&spec, "keys:", msg, sizeof msg) < 0, "keys: without a key is refused");
    check(inject_spec_parse(&spec, "keys:a,,b", msg, sizeof msg) < 0, "an empty key is refused");
    check(inject_spec_parse(&spec, "some", msg, sizeof msg) < 0 && strstr(msg, "all, none"),
          "an unknown --inject value is refused with the choices");

    check(streq_free(inject_user("alice"), "alice"), "a plain user name is unchanged");
    check(streq_free(inject_user("jos\xc3\xa9 a%b"), "jos%C3%A9%20a%25b"),
          "non-ASCII, blanks and % are percent-encoded in user names");
    check(streq_free(inject_user("a\r\nX-Evil: 1"), "a%0D%0AX-Evil:%201"),
          "CR and LF in a user name can never reach a header");

    check(streq_free(respond_login_url("/login", "/n/a b/x?q=1&r=2"),
                     "/login?next=%2Fn%2Fa%20b%2Fx%3Fq%3D1%26r%3D2"),
          "the login URL carries next= with the URI percent-encoded");
    check(streq_free(respond_login_url("/login?app=1", "/x"), "/login?app=1&next=%2Fx"),
          "a login URL with a query gets &next=");
    check(streq_free(respond_login_url("/login", NULL), "/login"), "no REQUEST_URI: no next=");
    check(streq_free(respond_login_url("/login", "/\r\n\xff"), "/login?next=%2F%0D%0A%FF"),
          "hostile bytes in the URI are encoded");

    memset(&cfg, 0, sizeof cfg);
    cfg.cookie_name = "sessgate";
    cfg.cookie_path = "/";
    buf_init(&b, 4096);
    respond_cookie(&b, &cfg, "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3", 0);
    check(b.data && strcmp(b.data, "Set-Cookie: sessgate=0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3;"
                                   " Path=/; HttpOnly; SameSite=Lax\r\n"
                                   "Cache-Control: no-store\r\nVary: Cookie\r\n") == 0,
          "the default cookie has Path, HttpOnly and SameSite=Lax only, "
          "followed by Cache-Control: no-store and Vary: Cookie");
    buf_reset(&b);
    respond_cookie(&b, &cfg, "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3", 1);
    check(strstr(b.data, "; Secure") != NULL, "Secure is added over HTTPS (auto)");
    buf_reset(&b);
    cfg.cookie_secure = TRI_OFF;
    cfg.cookie_max_age = 3600;
    cfg.cookie_domain = "example.org";
    respond_cookie(&b, &cfg, "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3", 1);
    check(strstr(b.data, "Secure") == NULL &&
          strstr(b.data, "; Max-Age=3600; Domain=example.org\r\n") != NULL,
          "--cookie-secure off, Max-Age and Domain");
    buf_reset(&b);
    respond_cookie(&b, &cfg, NULL, 0);
    check(strncmp(b.data, "Set-Cookie: sessgate=; Path=/", 29) == 0 &&
          strstr(b.data, "; Max-Age=0;") != NULL && !strstr(b.data, "3600"),
          "the expiring cookie is empty with Max-Age=0");
    check(strstr(b.data, "\r\nCache-Control: no-store\r\n") != NULL,
          "the expiring cookie comes with Cache-Control: no-store too");
    buf_reset(&b);
    cfg.cookie_samesite = SAMESITE_STRICT;
    respond_cookie(&b, &cfg, "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3", 0);
    check(strstr(b.data, "; SameSite=Strict;") != NULL && !strstr(b.data, "Lax"),
          "--cookie-samesite strict");
    buf_reset(&b);
    cfg.cookie_samesite = SAMESITE_NONE;
    cfg.cookie_secure = TRI_ON;
    respond_cookie(&b, &cfg, "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3", 0);
    check(strstr(b.data, "; SameSite=None; Secure;") != NULL, "--cookie-samesite none, with Secure");
    cfg.cookie_samesite = SAMESITE_LAX;
    cfg.cookie_secure = TRI_OFF;
    buf_reset(&b);
    check(respond_header(&b, "X-A", "ok\r\nX-B: injected") < 0 && b.len == 0,
          "respond_header refuses a value with CR/LF and appends nothing");
    buf_free(&b);

    check(inbound_classify("HTTP_X_SESSION_ID") == INBOUND_SPOOF, "HTTP_X_SESSION_ID is a spoof");
    check(inbound_classify("HTTP_X_SESSION_USER") == INBOUND_SPOOF, "HTTP_X_SESSION_USER is a spoof");
    check(inbound_classify("HTTP_SESSION_ID") == INBOUND_SPOOF, "HTTP_SESSION_ID is a spoof");
    check(inbound_classify("HTTP_VARIABLE_SESSION_ID") == INBOUND_SPOOF, "HTTP_VARIABLE_* is a spoof");
    check(inbound_classify("HTTP_X-Session_Id") == INBOUND_SPOOF, "folding '-' and '_' still spoofs");
    check(inbound_classify("http_x_session_data") == INBOUND_SPOOF, "lower case still spoofs");
    check(inbound_classify("SESSION_ID") == INBOUND_SPOOF, "an inbound SESSION_ID is a spoof");
    check(inbound_classify("HTTP_SESSION") == INBOUND_SPOOF, "HTTP_SESSION (CVE-2018-1283) is a spoof");
    check(inbound_classify("HTTP_USER_AGENT") == INBOUND_HTTP, "HTTP_USER_AGENT passes");
    check(inbound_classify("HTTP_X_SESSIONS") == INBOUND_HTTP, "HTTP_X_SESSIONS is another name");
    check(inbound_classify("HTTP_PROXY") == INBOUND_DROP, "HTTP_PROXY is dropped (httpoxy)");
    check(inbound_classify("HTTP_A-B") == INBOUND_DROP, "a non-canonical HTTP_ name is dropped");
    check(inbound_classify("REQUEST_METHOD") == INBOUND_CGI, "REQUEST_METHOD passes");
    check(inbound_classify("SERVER_NAME") == INBOUND_CGI, "SERVER_* passes");
    check(inbound_classify("LD_PRELOAD") == INBOUND_DROP, "LD_PRELOAD is dropped");
    check(inbound_classify("PATH") == INBOUND_DROP, "PATH from the request is dropped");
    check(inbound_classify("HTTP") == INBOUND_DROP && inbound_classify("HTTP_") == INBOUND_DROP &&
          inbound_classify("") == INBOUND_DROP, "degenerate names are dropped");

    /* Issue #17: lighttpd folds every byte outside [A-Za-z0-9] of a header
     * name into '_'.  Every such byte, as every separator, must still spoof. */
    {
        int c, bad = 0, badenv = 0;
        char nm[64], hit[128];

        for (c = 1; c < 256; c++) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                continue;
            snprintf(nm, sizeof nm, "HTTP_X%cSESSION%cUSER", c, c);
            bad += inbound_classify(nm) != INBOUND_SPOOF;
            snprintf(nm, sizeof nm, "HTTP_X_Session%cId", c);
            bad += inbound_classify(nm) != INBOUND_SPOOF;
            snprintf(nm, sizeof nm, "HTTP%cVARIABLE%cSESSION_ID", c, c);
            bad += inbound_classify(nm) != INBOUND_SPOOF;
            snprintf(nm, sizeof nm, "HTTP_SESSION%c", c);
            bad += inbound_classify(nm) != INBOUND_SPOOF;
            snprintf(nm, sizeof nm, "HTTP_X_SESSIONS%cID=v", c);
            {
                char *envp[] = { (char *)"HTTP_HOST=h", nm, NULL };
                badenv += inbound_find_spoof(envp, hit, sizeof hit) != NULL;
            }
            snprintf(nm, sizeof nm, "HTTP_X_SESSION%cID=v", c);
            {
                char *envp[] = { (char *)"HTTP_HOST=h", nm, NULL };
                badenv += inbound_find_spoof(envp, hit, sizeof hit) != nm;
            }
        }
        check(bad == 0, "every non-alphanumeric separator byte folds into a spoof name");
        check(badenv == 0, "inbound_find_spoof finds the spoof param and only it");
    }

    printf("# %d tests, %d failed\n", n_test, n_fail);
    return n_fail ? 1 : 0;
}
