/*
 * log.c - one line on stderr per request problem.
 *
 * The gateway's stderr is the web server's error log (lighttpd, mod_fcgid,
 * spawn-fcgi) or the supervisor's journal.  Each message is one line with a
 * UTC timestamp and the worker's pid, written with a single write(2) so the
 * lines of concurrent workers never interleave.  Messages often quote
 * client input (a cookie, a header), so every byte outside printable ASCII
 * is shown as '?': a client cannot forge a log line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"

/* Print "TIMESTAMP sessgate[PID]: message" on stderr as one write. */
void log_msg(const char *fmt, ...)
{
    char line[1024];
    size_t n, i, start;
    time_t now = time(NULL);
    struct tm tm;
    va_list ap;
    int k;

    gmtime_r(&now, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ", &tm);
    k = snprintf(line + n, sizeof line - n, " sessgate[%ld]: ", (long)getpid());
    if (k > 0)
        n += (size_t)k;
    start = n;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k < sizeof line - n - 1 ? (size_t)k : sizeof line - n - 2;
    /* Why: messages quote client bytes; keep each one a single clean line. */
    for (i = start; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            line[i] = '?';
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}
