/*
 * fuzz_id.c - libFuzzer target for session ids as they arrive from outside.
 *
 * Every id a client or an admin hands in goes through sg_id_valid: the
 * gateway's cookie parser (cookie_find, which first trims blanks and an
 * RFC 6265 quote pair off the value), sessgatectl arguments, import lines
 * and the bindings.  A session id is a bearer credential and the contract
 * is strict (DESIGN.md section 3): exactly the 36-char lower-case UUID
 * text form, rejected before any store access.  Invariants checked:
 *
 *  - sg_id_valid accepts exactly what an independent reading of the spec
 *    accepts (36 chars, lower-case hex, '-' at 8, 13, 18 and 23), and
 *    never reads past the NUL (exact-size copy, ASan);
 *  - an accepted id round-trips through libuuid (uuid_parse, then
 *    uuid_unparse_lower gives the same text), and whatever libuuid writes
 *    is accepted;
 *  - the near misses of an accepted id are rejected: upper case, braces,
 *    35 and 37 chars, a dash moved;
 *  - a rejected id never reaches the store: sg_session_get and
 *    sg_session_delete are called with a NULL store, so any access to it
 *    would crash;
 *  - cookie_find on "sessgate=<input>" selects a session exactly when the
 *    trimmed, unquoted value is a valid id, and then that id; it never
 *    hands out an id that sg_id_valid rejects.
 * A violated invariant prints its line and calls abort() (a libFuzzer crash).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid.h>

#include "gateway.h"
#include "internal.h"   /* sgi_id_new, the real generator */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define COOKIE_NAME "sessgate"

/* A violated invariant: say which, then abort (also before libFuzzer's
 * handlers are installed, i.e. in LLVMFuzzerInitialize). */
#define CHECK(ok) do { \
        if (!(ok)) { \
            fprintf(stderr, "fuzz_id: invariant failed at line %d: %s\n", \
                    __LINE__, #ok); \
            abort(); \
        } \
    } while (0)

/* The spec, written independently of libcore/id.c. */
static int spec_valid(const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    if (n != SG_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-')
                return 0;
        } else if (p[i] == '\0' || !memchr(hex, p[i], 16)) {
            return 0;
        }
    }
    return 1;
}

/* sg_id_valid on n bytes, through an exact-size NUL-terminated copy so
 * ASan catches a read past the end. */
static int valid_bytes(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    int v;

    CHECK(c != NULL);
    memcpy(c, p, n);
    c[n] = '\0';
    v = sg_id_valid(c);
    free(c);
    return v;
}

/* cookie_find over the given param values (exact-size copies). */
static cookie_result find(const char *const *vals, size_t n, char *id)
{
    const char *copies[4];
    size_t lens[4];
    cookie_result r;

    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(vals[i]);
        char *c = malloc(lens[i] ? lens[i] : 1);
        CHECK(c != NULL);
        memcpy(c, vals[i], lens[i]);
        copies[i] = c;
    }
    r = cookie_find(copies, lens, n, COOKIE_NAME, id);
    for (size_t i = 0; i < n; i++)
        free((void *)copies[i]);
    CHECK(r == COOKIE_ONE ? sg_id_valid(id) : id[0] == '\0');
    return r;
}

/* An accepted id: libuuid agrees, its near misses are refused, and the
 * cookie parser takes it in every form a browser or server may send. */
static void check_accepted(const char *id)
{
    uuid_t raw;
    char text[SG_ID_LEN + 1], buf[SG_ID_LEN + 8], got[SG_ID_LEN + 1];
    const char *vals[2];
    int letters = 0;

    CHECK(uuid_parse(id, raw) == 0);
    uuid_unparse_lower(raw, text);
    CHECK(strcmp(text, id) == 0);

    /* Upper case (when there is a letter to change). */
    memcpy(buf, id, SG_ID_LEN + 1);
    for (int i = 0; i < SG_ID_LEN; i++)
        if (buf[i] >= 'a' && buf[i] <= 'f') {
            buf[i] = (char)(buf[i] - 'a' + 'A');
            letters = 1;
        }
    CHECK(!letters || !sg_id_valid(buf));
    /* Braces, as Windows writes GUIDs. */
    buf[0] = '{';
    memcpy(buf + 1, id, SG_ID_LEN);
    buf[SG_ID_LEN + 1] = '}';
    buf[SG_ID_LEN + 2] = '\0';
    CHECK(!sg_id_valid(buf));
    /* 35 and 37 characters. */
    CHECK(!valid_bytes(id, SG_ID_LEN - 1) && !valid_bytes(id + 1, SG_ID_LEN - 1));
    memcpy(buf, id, SG_ID_LEN);
    buf[SG_ID_LEN] = '0';
    buf[SG_ID_LEN + 1] = '\0';
    CHECK(!sg_id_valid(buf));
    /* A dash one place off. */
    memcpy(buf, id, SG_ID_LEN + 1);
    buf[8] = buf[9];
    buf[9] = '-';
    CHECK(!sg_id_valid(buf));

    /* The cookie parser: plain, quoted, repeated with the same id. */
    char c1[64], c2[128];
    snprintf(c1, sizeof c1, COOKIE_NAME "=%s", id);
    vals[0] = c1;
    CHECK(find(vals, 1, got) == COOKIE_ONE && strcmp(got, id) == 0);
    snprintf(c1, sizeof c1, COOKIE_NAME "=\"%s\"", id);
    CHECK(find(vals, 1, got) == COOKIE_ONE && strcmp(got, id) == 0);
    snprintf(c2, sizeof c2, "a=1; " COOKIE_NAME "=%s, " COOKIE_NAME "=%s", id, id);
    vals[0] = c2;
    CHECK(find(vals, 1, got) == COOKIE_ONE && strcmp(got, id) == 0);
    /* Names match byte for byte: another case is another cookie. */
    snprintf(c1, sizeof c1, "Sessgate=%s", id);
    vals[0] = c1;
    CHECK(find(vals, 1, got) == COOKIE_NONE);
    /* Two different ids, in one header or two: no winner. */
    snprintf(c1, sizeof c1, COOKIE_NAME "=%s", id);
    char other[SG_ID_LEN + 1];
    memcpy(other, id, SG_ID_LEN + 1);
    other[0] = other[0] == '0' ? '1' : '0';
    snprintf(c2, sizeof c2, COOKIE_NAME "=%s", other);
    vals[0] = c1;
    vals[1] = c2;
    CHECK(find(vals, 2, got) == COOKIE_BAD);
    vals[0] = c2;
    vals[1] = c1;
    CHECK(find(vals, 2, got) == COOKIE_BAD);
    /* A near miss in a cookie is bad, not absent. */
    snprintf(c1, sizeof c1, COOKIE_NAME "={%s}", id);
    vals[0] = c1;
    CHECK(find(vals, 1, got) == COOKIE_BAD);
}

/* A rejected id: never handed to the store (NULL store: any use of it
 * would crash), and libuuid cannot have written it. */
static void check_rejected(const char *text)
{
    sg_session *s = (sg_session *)1;
    sg_error err = { 0 };
    uuid_t raw;
    char back[SG_ID_LEN + 1];

    CHECK(sg_session_get(NULL, text, SG_GET_NOTOUCH, &s, &err) == SG_ENOTFOUND
          && s == NULL && err.code == SG_ENOTFOUND);
    sg_error_clear(&err);
    CHECK(sg_session_delete(NULL, text, &err) == SG_EINVAL);
    if (uuid_parse(text, raw) == 0) {
        /* libuuid is laxer (upper case); its own output must still pass. */
        uuid_unparse_lower(raw, back);
        CHECK(sg_id_valid(back) && strcmp(back, text) != 0);
    }
}

/* What cookie_find must say about the single pair "sessgate=<p[0..n)>"
 * when p holds no separator: blanks trimmed, then one quote pair. */
static cookie_result expect_cookie(const unsigned char *p, size_t n)
{
    while (n && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    return spec_valid(p, n) ? COOKIE_ONE : COOKIE_BAD;
}

/* Fresh ids from the real generator are valid and distinct. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char a[SG_ID_LEN + 1], b[SG_ID_LEN + 1];

    (void)argc;
    (void)argv;
    for (int i = 0; i < 64; i++) {
        CHECK(sgi_id_new(a, NULL) == SG_OK && sgi_id_new(b, NULL) == SG_OK);
        CHECK(sg_id_valid(a) && sg_id_valid(b) && strcmp(a, b) != 0);
        check_accepted(a);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);          /* Owned: exact size for ASan */
    char *cookie, id[SG_ID_LEN + 1];
    size_t clen = sizeof COOKIE_NAME + size;   /* "sessgate=" + input */
    const char *vals[1];
    cookie_result r;
    int v;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';

    /* sg_id_valid against the spec (it sees up to the first NUL). */
    v = sg_id_valid(copy);
    CHECK(v == spec_valid((const unsigned char *)copy, strlen(copy)));
    if (v)
        check_accepted(copy);
    else
        check_rejected(copy);

    /* The same bytes as the value of the session cookie. */
    cookie = malloc(clen);
    if (!cookie) {
        free(copy);
        return 0;
    }
    memcpy(cookie, COOKIE_NAME "=", sizeof COOKIE_NAME);
    memcpy(cookie + sizeof COOKIE_NAME, data, size);
    vals[0] = cookie;
    r = cookie_find(vals, &clen, 1, COOKIE_NAME, id);
    if (r == COOKIE_ONE)
        CHECK(sg_id_valid(id) && memmem(data, size, id, SG_ID_LEN));
    else
        CHECK(id[0] == '\0');
    if (!memchr(data, ';', size) && !memchr(data, ',', size)) {
        CHECK(r == expect_cookie(data, size));
        CHECK(r != COOKIE_ONE || spec_valid((const unsigned char *)id, strlen(id)));
    }
    free(cookie);
    free(copy);
    return 0;
}
