/*
 * test_cookie.c - unit tests of the gateway's cookie parser (cookie.c).
 *
 * The rule under test: the session id is taken only when every copy of the
 * session cookie, across ';' and ',' separators and repeated HTTP_COOKIE
 * params, names the same valid id; anything else selects no session.  Also
 * that hostile input (huge, binary, many cookies) neither crashes nor
 * selects anything.  Prints TAP lines; exits 1 on any failure.
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

#define ID1 "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3"
#define ID2 "11111111-2222-4333-8444-555555555555"

static cookie_result find1(const char *hdr, char *id)
{
    const char *v[1] = { hdr };
    size_t l[1] = { strlen(hdr) };
    return cookie_find(v, l, 1, "sessgate", id);
}

static cookie_result find2(const char *a, const char *b, char *id)
{
    const char *v[2] = { a, b };
    size_t l[2] = { strlen(a), strlen(b) };
    return cookie_find(v, l, 2, "sessgate", id);
}

/* Decode the table's escapes (\t \v \f \\ \xHH) and put the ids in for
 * ID1 and ID2.  Writes at most cap - 1 bytes; returns the length. */
static size_t table_decode(const char *in, char *out, size_t cap)
{
    size_t n = 0;

    while (*in && n + SG_ID_LEN < cap) {
        if (strncmp(in, "ID1", 3) == 0 || strncmp(in, "ID2", 3) == 0) {
            memcpy(out + n, in[2] == '1' ? ID1 : ID2, SG_ID_LEN);
            n += SG_ID_LEN;
            in += 3;
        } else if (in[0] == '\\' && in[1]) {
            switch (in[1]) {
            case 't': out[n++] = '\t'; in += 2; break;
            case 'v': out[n++] = '\v'; in += 2; break;
            case 'f': out[n++] = '\f'; in += 2; break;
            case 'x': {
                char hex[3] = { in[2], in[2] ? in[3] : 0, 0 };
                out[n++] = (char)strtol(hex, NULL, 16);
                in += 4;
                break;
            }
            default: out[n++] = in[1]; in += 2; break;
            }
        } else
            out[n++] = *in++;
    }
    out[n] = '\0';
    return n;
}

/* Issue #17: the C and Python parsers share one table of cases. */
static void run_table(void)
{
    const char *src = getenv("SG_SRCDIR");
    char path[4096], line[1024], hdr[4096], id[SG_ID_LEN + 1], what[1200];
    FILE *f;
    int cases = 0, bad = 0;

    snprintf(path, sizeof path, "%s/tests/unit/cookie_cases.txt", src ? src : ".");
    f = fopen(path, "r");
    check(f != NULL, "the shared cookie table can be read");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
        const char *v[1];
        size_t l[1];
        cookie_result r, want;
        const char *want_id = NULL;

        if (line[0] == '#' || !tab)
            continue;
        if (nl)
            *nl = '\0';
        *tab = '\0';
        if (strcmp(line, "ID1") == 0) { want = COOKIE_ONE; want_id = ID1; }
        else if (strcmp(line, "ID2") == 0) { want = COOKIE_ONE; want_id = ID2; }
        else if (strcmp(line, "-") == 0) want = COOKIE_NONE;
        else want = COOKIE_BAD;
        l[0] = table_decode(tab + 1, hdr, sizeof hdr);
        v[0] = hdr;
        r = cookie_find(v, l, 1, "sessgate", id);
        cases++;
        if (r != want || (want_id && strcmp(id, want_id) != 0)) {
            bad++;
            snprintf(what, sizeof what, "table case [%s] wants %s, got %d", tab + 1, line, (int)r);
            check(0, what);
        }
    }
    fclose(f);
    snprintf(what, sizeof what, "all %d cases of the shared cookie table", cases);
    check(bad == 0 && cases >= 30, what);
}

int main(void)
{
    char id[SG_ID_LEN + 1];
    char *big;
    size_t i;

    run_table();

    check(find1("sessgate=" ID1, id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "a single cookie gives its id");
    check(find1("a=1; sessgate=" ID1 "; b=2", id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "the id is found among other cookies with ';'");
    check(find1("a=1, sessgate=" ID1 ",b=2", id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "',' separates cookies too (Apache joins headers with a comma)");
    check(find1("  sessgate  =  " ID1 "  ", id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "blanks around name and value are ignored");
    check(find1("sessgate=\"" ID1 "\"", id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "a quoted value is accepted (RFC 6265)");
    check(find1("a=1; b=2", id) == COOKIE_NONE && id[0] == '\0',
          "no session cookie: none");
    check(find1("", id) == COOKIE_NONE, "an empty header: none");
    check(find1("Sessgate=" ID1, id) == COOKIE_NONE, "names match byte for byte (case)");
    check(find1("sessgatex=" ID1 "; xsessgate=" ID1, id) == COOKIE_NONE,
          "longer or shorter names do not match");
    check(find1("sessgate=" ID1 "; sessgate=" ID1, id) == COOKIE_ONE,
          "the same id twice is still that id");
    check(find1("sessgate=" ID1 "; sessgate=" ID2, id) == COOKIE_BAD && id[0] == '\0',
          "two different ids in one header: no winner");
    check(find1("sessgate=" ID1 ", sessgate=" ID2, id) == COOKIE_BAD,
          "two different ids joined by a comma: no winner");
    check(find2("a=1; sessgate=" ID1, "sessgate=" ID2, id) == COOKIE_BAD && id[0] == '\0',
          "two different ids in two HTTP_COOKIE params: no winner");
    check(find2("sessgate=" ID2, "a=1; sessgate=" ID1, id) == COOKIE_BAD,
          "order of the params does not matter");
    check(find2("sessgate=" ID1, "sessgate=" ID1, id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "the same id in two params is that id");
    check(find2("sessgate=" ID1, "sessgate=forged", id) == COOKIE_BAD,
          "a valid copy beside a malformed one: no session");
    check(find1("sessgate=" ID1 "; sessgate=", id) == COOKIE_BAD,
          "a valid copy beside an empty one: no session");
    check(find1("sessgate=0B5C1A2E-3F4D-4A5B-8C6D-7E8F90A1B2C3", id) == COOKIE_BAD,
          "an upper-case id is malformed");
    check(find1("sessgate=" ID1 "x", id) == COOKIE_BAD, "an id with a trailing byte is malformed");
    check(find1("sessgate=../../etc/passwd", id) == COOKIE_BAD, "a path is malformed");
    check(find1("sessgate", id) == COOKIE_NONE, "a pair without '=' is ignored");
    check(find1(";;;,,,=;=", id) == COOKIE_NONE, "separators only: none");
    {
        const char *v[1] = { "sessgate=" ID1 "\0garbage" };
        size_t l[1] = { 9 + 36 + 8 };
        check(cookie_find(v, l, 1, "sessgate", id) == COOKIE_BAD,
              "a NUL byte inside the value makes it malformed");
    }
    {
        const char *v[1] = { "sessgate=" ID1 };
        size_t l[1] = { 9 + 36 };
        check(cookie_find(v, l, 1, "other", id) == COOKIE_NONE,
              "a configured cookie name is honoured");
        check(cookie_find(v, l, 1, "", id) == COOKIE_NONE, "an empty name never matches");
    }

    /* 1,000 cookies before the session cookie. */
    big = malloc(1000 * 16 + 64);
    big[0] = '\0';
    for (i = 0; i < 1000; i++)
        sprintf(big + strlen(big), "c%zu=v%zu; ", i, i);
    strcat(big, "sessgate=" ID1);
    check(find1(big, id) == COOKIE_ONE && strcmp(id, ID1) == 0,
          "1,000 cookies: the session cookie is still found");
    free(big);

    /* A 64 KB header is over the cap: refused as a whole. */
    big = malloc(GW_MAX_COOKIE + 100);
    memset(big, 'a', GW_MAX_COOKIE + 99);
    memcpy(big, "sessgate=" ID1 "; x=", 9 + 36 + 4);
    big[GW_MAX_COOKIE + 99] = '\0';
    check(find1(big, id) == COOKIE_BAD && id[0] == '\0',
          "a header over GW_MAX_COOKIE selects no session");
    free(big);

    /* Every byte value, in many shapes: must not crash or select. */
    {
        unsigned char junk[512];
        const char *v[1] = { (const char *)junk };
        size_t l[1] = { sizeof junk };
        int bad = 0;
        unsigned seed = 1;
        for (i = 0; i < 20000; i++) {
            size_t k;
            for (k = 0; k < sizeof junk; k++) {
                seed = seed * 1103515245u + 12345u;
                junk[k] = (unsigned char)(seed >> 16);
            }
            if (cookie_find(v, l, 1, "sessgate", id) == COOKIE_ONE)
                bad++;
        }
        check(bad == 0, "20,000 random byte strings select no session");
    }
    {
        const char *v[GW_MAX_COOKIE_PARAMS + 1];
        size_t l[GW_MAX_COOKIE_PARAMS + 1];
        for (i = 0; i <= GW_MAX_COOKIE_PARAMS; i++) {
            v[i] = "sessgate=" ID1;
            l[i] = strlen(v[i]);
        }
        check(cookie_find(v, l, GW_MAX_COOKIE_PARAMS + 1, "sessgate", id) == COOKIE_BAD,
              "more HTTP_COOKIE params than the cap: no session");
    }

    printf("# %d tests, %d failed\n", n_test, n_fail);
    return n_fail ? 1 : 0;
}
