/*
 * inject.c - the values the gateway injects: SESSION_DATA and SESSION_USER.
 *
 * Injected values end up in HTTP header lines (Variable-*, X-Session-*) and
 * in CGI environments, so each one must be a single line of printable
 * ASCII: no CR, LF or NUL can ever come out, whatever the session holds.
 * Data is compact JSON with \u escapes for everything outside ASCII (and
 * DEL, which jansson leaves raw); user names are percent-encoded.  Web
 * servers cap header sizes (nginx: 4 KB fastcgi_buffer_size by default), so
 * the data is limited by --inject (which keys) and --inject-max (bytes):
 * over the cap the data is left out and the backend is told
 * (SESSION_DATA_TRUNCATED=1), never a 500.  Pure code: no libfcgi, no
 * store (the nginx module links it); inject_session.c puts the values
 * under each target's names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway.h"

/* Parse "all", "none" or "keys:a,b" into *spec (keys owned by spec). */
int inject_spec_parse(inject_spec *spec, const char *text, char *msg, size_t msgsz)
{
    const char *p, *q;

    spec->nkeys = 0;
    if (strcmp(text, "all") == 0) {
        spec->mode = INJECT_ALL;
        return 0;
    }
    if (strcmp(text, "none") == 0) {
        spec->mode = INJECT_NONE;
        return 0;
    }
    if (strncmp(text, "keys:", 5) != 0) {
        snprintf(msg, msgsz, "--inject %s: expected all, none or keys:a,b", text);
        return -1;
    }
    spec->mode = INJECT_KEYS;
    for (p = text + 5;; p = q + 1) {
        q = strchr(p, ',');
        if (!q)
            q = p + strlen(p);
        if (q == p) {
            snprintf(msg, msgsz, "--inject %s: empty key name", text);
            inject_spec_free(spec);
            return -1;
        }
        if (spec->nkeys == GW_MAX_INJECT_KEYS) {
            snprintf(msg, msgsz, "--inject: more than %d keys", GW_MAX_INJECT_KEYS);
            inject_spec_free(spec);
            return -1;
        }
        spec->keys[spec->nkeys] = strndup(p, (size_t)(q - p));
        if (!spec->keys[spec->nkeys]) {
            snprintf(msg, msgsz, "--inject: out of memory");
            inject_spec_free(spec);
            return -1;
        }
        spec->nkeys++;
        if (!*q)
            break;
    }
    return 0;
}

/* Release the key names of a spec. */
void inject_spec_free(inject_spec *spec)
{
    size_t i;

    for (i = 0; i < spec->nkeys; i++)
        free(spec->keys[i]);
    spec->nkeys = 0;
}

/* Whether s is printable ASCII (space included). */
int inject_header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/* New: JSON text with every DEL byte written as \u007f (DEL can only sit
 * inside a string in valid JSON, so the escape keeps it valid). */
static char *escape_del(const char *s)
{
    size_t n = 0, i, j;
    char *out;

    for (i = 0; s[i]; i++)
        n += s[i] == 0x7f ? 6 : 1;
    out = malloc(n + 1);
    if (!out)
        return NULL;
    for (i = j = 0; s[i]; i++) {
        if (s[i] == 0x7f) {
            memcpy(out + j, "\\u007f", 6);
            j += 6;
        } else
            out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

/* SESSION_DATA from data_json without a copy when possible; see gateway.h. */
int inject_data_view(const inject_spec *spec, const char *data_json,
                     const char **view, char **owned, int *truncated)
{
    json_t *data = NULL, *pick = NULL;
    json_error_t jerr;
    char *text = NULL, *clean;
    size_t i;

    *view = NULL;
    *owned = NULL;
    *truncated = 0;
    if (spec->mode == INJECT_NONE || !data_json)
        return 0;
    if (spec->mode == INJECT_ALL && inject_header_safe(data_json)) {
        if (strlen(data_json) > spec->max)
            *truncated = 1;
        else
            *view = data_json;
        return 0;
    }
    data = json_loads(data_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!data || !json_is_object(data)) {
        json_decref(data);
        return -1;
    }
    if (spec->mode == INJECT_KEYS) {
        pick = json_object();
        if (!pick)
            goto fail;
        for (i = 0; i < spec->nkeys; i++) {
            json_t *v = json_object_get(data, spec->keys[i]);
            if (v && json_object_set(pick, spec->keys[i], v) < 0)
                goto fail;
        }
        json_decref(data);
        data = pick;
        pick = NULL;
    }
    text = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(data);
    data = NULL;
    if (!text)
        return -1;
    clean = escape_del(text);
    free(text);
    if (!clean)
        return -1;
    /* Why: the last line of defence; whatever jansson does, nothing that
     * is not printable ASCII is ever injected. */
    if (!inject_header_safe(clean)) {
        free(clean);
        return -1;
    }
    if (strlen(clean) > spec->max) {
        free(clean);
        *truncated = 1;
        return 0;
    }
    *view = *owned = clean;
    return 0;
fail:
    json_decref(pick);
    json_decref(data);
    return -1;
}

/* Build SESSION_DATA; see gateway.h. */
int inject_data(const inject_spec *spec, const char *data_json,
                char **out, int *truncated)
{
    const char *view;
    char *owned;

    *out = NULL;
    if (inject_data_view(spec, data_json, &view, &owned, truncated) < 0)
        return -1;
    if (view && !owned && !(owned = strdup(view)))
        return -1;
    *out = owned;
    return 0;
}

/* New: the user name percent-encoded for a header; see gateway.h. */
char *inject_user(const char *user)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0, i, j;
    char *out;

    for (i = 0; user[i]; i++) {
        unsigned char c = (unsigned char)user[i];
        n += (c <= 0x20 || c >= 0x7f || c == '%') ? 3 : 1;
    }
    out = malloc(n + 1);
    if (!out)
        return NULL;
    for (i = j = 0; user[i]; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c <= 0x20 || c >= 0x7f || c == '%') {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        } else
            out[j++] = (char)c;
    }
    out[j] = '\0';
    return out;
}
