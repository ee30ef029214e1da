/*
 * cgi_reply.c - incremental parser of a CGI program's reply header block.
 *
 * The program's stdout arrives in arbitrary chunks; reply_feed() takes them
 * as they come and says where the header block ends, so the body that
 * follows can stream on without being copied.  Once the block is complete
 * it is split into lines and each known header is handled from one table
 * (after fcgiwrap's table-driven fix-ups): Status is checked and re-emitted
 * by the gateway, Location without Status means 302, and the session
 * directives (X-Session-Set/Replace/Login/Logout/Rotate) are marked so the
 * caller applies them and never passes them on; any other X-Session-*
 * header is dropped too, so a program cannot leak session headers to the
 * browser by accident.
 *
 * Garbage (a line without a colon, a bad name, a bare CR, a NUL, a control
 * byte, a folded continuation line, a bad Status) is REPLY_ERROR, which the
 * caller turns into 502 as long as nothing has been sent.  The block is
 * capped at GW_MAX_REPLY_HEADER bytes and GW_MAX_REPLY_LINES lines.  Pure
 * code: no libfcgi.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"

/* Start an empty reply. */
void reply_init(reply *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->block, GW_MAX_REPLY_HEADER);
    r->state = REPLY_MORE;
}

/* Release the header block (the header pointers point into it). */
void reply_free(reply *r)
{
    buf_free(&r->block);
    r->nheaders = 0;
}

static reply_state reply_fail(reply *r, const char *why)
{
    r->state = REPLY_ERROR;
    r->error = why;
    return REPLY_ERROR;
}

static int is_tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int parse_status(reply *r, const char *v)
{
    int code;

    if (r->has_status)
        return -1;                      /* two Status headers */
    if (v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' ||
        v[2] < '0' || v[2] > '9' || (v[3] != '\0' && v[3] != ' '))
        return -1;
    code = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
    r->status = code;
    r->has_status = 1;
    return 0;
}

/* What to do with each known header, by name (case-insensitive). */
enum { H_PASS, H_STATUS, H_LOCATION, H_CTYPE, H_DIRECTIVE };
static const struct {
    const char     *name;
    int             kind;
    reply_directive dir;
} header_table[] = {
    { "Status",            H_STATUS,    DIR_NONE },
    { "Location",          H_LOCATION,  DIR_NONE },
    { "Content-Type",      H_CTYPE,     DIR_NONE },
    { "X-Session-Set",     H_DIRECTIVE, DIR_SET },
    { "X-Session-Replace", H_DIRECTIVE, DIR_REPLACE },
    { "X-Session-Login",   H_DIRECTIVE, DIR_LOGIN },
    { "X-Session-Logout",  H_DIRECTIVE, DIR_LOGOUT },
    { "X-Session-Rotate",  H_DIRECTIVE, DIR_ROTATE },
    { "X-Session-Flash",   H_DIRECTIVE, DIR_FLASH },
};

/* Split the complete block into headers and apply the table. */
static reply_state reply_split(reply *r)
{
    char *p = r->block.data, *end = r->block.data + r->block.len;

    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *colon, *v, *ve, *q;
        reply_header *h;
        size_t i;
        int kind = H_PASS;

        if (!nl)
            return reply_fail(r, "header line without end");
        ve = nl;
        if (ve > p && ve[-1] == '\r')
            ve--;
        if (ve == p)
            break;                      /* the blank line */
        if (*p == ' ' || *p == '\t')
            return reply_fail(r, "folded header line");
        colon = memchr(p, ':', (size_t)(ve - p));
        if (!colon || colon == p)
            return reply_fail(r, "header line without a name");
        for (q = p; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return reply_fail(r, "bad character in a header name");
        for (q = colon + 1; q < ve; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return reply_fail(r, "control character in a header value");
        }
        if (r->nheaders == GW_MAX_REPLY_LINES)
            return reply_fail(r, "too many header lines");
        *colon = '\0';
        v = colon + 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *ve = '\0';
        h = &r->headers[r->nheaders];
        h->name = p;
        h->value = v;
        h->directive = DIR_NONE;
        for (i = 0; i < sizeof header_table / sizeof *header_table; i++)
            if (strcasecmp(p, header_table[i].name) == 0) {
                kind = header_table[i].kind;
                h->directive = header_table[i].dir;
                break;
            }
        switch (kind) {
        case H_STATUS:
            if (parse_status(r, v) < 0)
                return reply_fail(r, "bad Status header");
            break;                      /* re-emitted by the gateway */
        case H_LOCATION:
            if (!*v)
                return reply_fail(r, "empty Location header");
            r->has_location = 1;
            r->nheaders++;
            break;
        case H_CTYPE:
            r->has_content_type = 1;
            r->nheaders++;
            break;
        case H_DIRECTIVE:
            r->nheaders++;
            break;
        default:
            /* Why: only the gateway speaks X-Session-* to the outside. */
            if (strncasecmp(p, "X-Session-", 10) == 0)
                h->directive = DIR_DROP;
            r->nheaders++;
            break;
        }
        p = nl + 1;
    }
    if (r->nheaders == 0 && !r->has_status)
        return reply_fail(r, "no header at all");
    if (!r->has_status)
        r->status = r->has_location ? 302 : 200;
    r->state = REPLY_DONE;
    return REPLY_DONE;
}

/* Feed bytes of the program's stdout; see gateway.h. */
reply_state reply_feed(reply *r, const char *p, size_t n, size_t *used)
{
    size_t i;

    *used = 0;
    if (r->state != REPLY_MORE)
        return r->state;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '\0')
            return reply_fail(r, "NUL byte in the header block");
        if (r->last == '\r' && c != '\n')
            return reply_fail(r, "bare CR in the header block");
        if (c == '\n') {
            /* The block ends at an empty line: LF right after LF (or at
             * the very start), or CR LF right after LF. */
            int empty = r->last == '\r' ? (r->last2 == '\n' || r->count == 1)
                                        : (r->last == '\n' || r->count == 0);
            if (empty) {
                if (buf_add(&r->block, p, i + 1) < 0)
                    return reply_fail(r, "header block too large");
                *used = i + 1;
                return reply_split(r);
            }
        }
        r->last2 = r->last;
        r->last = c;
        if (++r->count >= GW_MAX_REPLY_HEADER)
            return reply_fail(r, "header block too large");
    }
    if (buf_add(&r->block, p, n) < 0)
        return reply_fail(r, "header block too large");
    *used = n;
    return REPLY_MORE;
}

/* Feed end of output; see gateway.h. */
reply_state reply_eof(reply *r)
{
    if (r->state == REPLY_MORE)
        return reply_fail(r, "output ended inside the header block");
    return r->state;
}

/* Borrowed: the reason phrase for status. */
const char *reply_reason(int status)
{
    static const struct { int code; const char *text; } reasons[] = {
        { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
        { 204, "No Content" }, { 206, "Partial Content" },
        { 301, "Moved Permanently" }, { 302, "Found" }, { 303, "See Other" },
        { 304, "Not Modified" }, { 307, "Temporary Redirect" },
        { 308, "Permanent Redirect" }, { 400, "Bad Request" },
        { 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "Not Found" },
        { 405, "Method Not Allowed" }, { 409, "Conflict" },
        { 413, "Content Too Large" }, { 429, "Too Many Requests" },
        { 500, "Internal Server Error" }, { 502, "Bad Gateway" },
        { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
    };
    size_t i;

    for (i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (reasons[i].code == status)
            return reasons[i].text;
    return status < 200 ? "Info" : status < 300 ? "OK" : status < 400 ? "Redirect"
         : status < 500 ? "Client Error" : "Server Error";
}
