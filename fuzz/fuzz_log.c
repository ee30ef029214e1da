/*
 * fuzz_log.c - libFuzzer target for the gateway's log lines (log.c).
 *
 * Log lines quote client bytes (paths, cookie names, libcore messages that
 * name ids).  Whatever the bytes, a line must stay one line of printable
 * ASCII, hold no run of 32 or more id-like characters (a session id, a
 * token: they are replaced by their keyed hash), and in JSON format parse
 * as one object.  The first input byte picks the format; the rest, split
 * at the first NUL, is a free-text message and a field value.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1, saved = -1;
    static gw_config cfg;
    char line[8192], *text, *val;
    ssize_t n;
    size_t i, run = 0;

    if (size < 1)
        return 0;
    if (fd < 0) {
        fd = memfd_create("log", 0);
        saved = dup(STDERR_FILENO);
        if (fd < 0 || saved < 0)
            abort();
        cfg.log_level = LOG_DEBUG;
    }
    cfg.log_format = data[0] & 1 ? LOGF_JSON : LOGF_LOGFMT;
    if (log_setup(&cfg) < 0)
        abort();
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    val = text + strlen(text);
    if (val < text + size - 1)
        val++;                          /* the part after the first NUL */
    /* The line goes to fd 2; libFuzzer's own reports must not. */
    if (ftruncate(fd, 0) < 0 || dup2(fd, STDERR_FILENO) < 0)
        abort();
    lseek(fd, 0, SEEK_SET);
    log_event(LOG_WARN, "fuzz", text, "path", val, (const char *)NULL);
    dup2(saved, STDERR_FILENO);
    n = pread(fd, line, sizeof line - 1, 0);
    if (n <= 0 || line[n - 1] != '\n')
        abort();                        /* one whole line, always */
    for (i = 0; i < (size_t)n - 1; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c > 0x7e)
            abort();                    /* a second line or a raw byte */
        run = token_char(c) ? run + 1 : 0;
        if (run >= 32)
            abort();                    /* an id or token got through */
    }
    if (cfg.log_format == LOGF_JSON) {
        json_t *j = json_loadb(line, (size_t)n - 1, 0, NULL);
        if (!json_is_object(j))
            abort();
        json_decref(j);
    }
    free(text);
    return 0;
}
