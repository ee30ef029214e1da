/*
 * error.c - status names and the caller-owned error report.
 *
 * Library code never prints: every failure comes back as an sg_status plus,
 * when the caller passed one, an sg_error whose text names the object, the
 * cause and the fix.  The first error recorded wins, so a low-level cause is
 * not overwritten by a vaguer message from a caller further up.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
    [SG_OK] = "ok",
    [SG_ENOTFOUND] = "not found",
    [SG_EEXPIRED] = "expired",
    [SG_ECONFLICT] = "conflict",
    [SG_EINVAL] = "invalid argument",
    [SG_ELOCKTIMEOUT] = "lock timeout",
    [SG_ESTORE] = "store error",
    [SG_ENOMEM] = "out of memory",
    [SG_ETOOBIG] = "too big",
    [SG_ENOTSUP] = "not supported",
};

/* Borrowed: static name of a status. */
const char *sg_strerror(sg_status code)
{
    if ((unsigned)code < sizeof status_names / sizeof status_names[0] &&
        status_names[code])
        return status_names[code];
    return "unknown status";
}

/* Reset a report to SG_OK. */
void sg_error_clear(sg_error *err)
{
    if (!err)
        return;
    err->code = SG_OK;
    err->sys_errno = 0;
    err->text[0] = '\0';
}

/* Borrowed: version string. */
const char *sg_version(void)
{
    return SG_VERSION_STRING;
}

/* Record an error (first wins); returns code. */
sg_status sgi_err(sg_error *err, sg_status code, int sys_errno,
                  const char *fmt, ...)
{
    if (!err || err->code != SG_OK)
        return code;
    err->code = code;
    err->sys_errno = sys_errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    /* One line, always: a message may quote user input. */
    for (char *p = err->text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

/* Record SG_ENOMEM as "WHAT NAME: out of memory" (NAME may be NULL: "WHAT:
 * out of memory"); returns SG_ENOMEM.  One wording for every allocation
 * failure in libcore, naming the object it happened to. */
sg_status sgi_oom(sg_error *err, const char *what, const char *name)
{
    if (name)
        return sgi_err(err, SG_ENOMEM, 0, "%s %s: out of memory", what, name);
    return sgi_err(err, SG_ENOMEM, 0, "%s: out of memory", what);
}
