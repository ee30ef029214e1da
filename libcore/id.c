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
