/*
 * id.c - session ids: 128 random bits from getrandom(2), in the 36-char
 * lower-case UUID text form.
 *
 * Why not uuid_generate_random(): libuuid silently falls back to a weak
 * generator when the kernel cannot supply randomness, and a v4 UUID carries
 * only 122 random bits.  A session id is a bearer credential, so we take
 * all 16 bytes from the kernel and fail closed if it cannot give them.
 * libuuid is used only to write the text form.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <uuid.h>

/* Fill raw with n bytes from the kernel, failing closed. */
static sg_status random_bytes(unsigned char *raw, size_t n, const char *what,
                              sg_error *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(raw + got, n - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return sgi_err(err, SG_ESTORE, errno,
                           "%s: getrandom failed (%s); refusing to make a "
                           "guessable one", what, strerror(errno));
        }
        got += (size_t)k;
    }
    return SG_OK;
}

/* Fill out with a fresh CSRF token: 32 bytes from the same source as ids
 * (getrandom, failing closed), as 64 lower-case hex digits. */
sg_status sgi_token_new(char out[SG_CSRF_LEN + 1], sg_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[SG_CSRF_LEN / 2];
    sg_status rc = random_bytes(raw, sizeof raw, "csrf token", err);
    if (rc != SG_OK)
        return rc;
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[SG_CSRF_LEN] = '\0';
    return SG_OK;
}

/* Whether text is a token as sgi_token_new writes it. */
int sgi_token_valid(const char *text)
{
    size_t i;
    for (i = 0; i < SG_CSRF_LEN; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return 0;
    return text[i] == '\0';
}

/* Fill out with a fresh id, or fail with SG_ESTORE. */
sg_status sgi_id_new(char out[SG_ID_LEN + 1], sg_error *err)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sgi_err(err, SG_ESTORE, errno,
                           "session id: getrandom failed (%s); refusing to "
                           "make a guessable id", strerror(errno));
        }
        got += (size_t)n;
    }
    uuid_unparse_lower(raw, out);
    return SG_OK;
}

/* Whether text is exactly a 36-char lower-case UUID (8-4-4-4-12 hex).
 * Checked before any store access: nothing else reaches the backend. */
int sg_id_valid(const char *text)
{
    if (!text)
        return 0;
    for (int i = 0; i < SG_ID_LEN; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return text[SG_ID_LEN] == '\0';
}
