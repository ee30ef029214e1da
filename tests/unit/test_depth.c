/*
 * test_depth.c - the nesting limit of session data (SG_MAX_DEPTH) through
 * the public C API: every write path (create, set, merge, import) accepts
 * data nested exactly SG_MAX_DEPTH levels and refuses one level more with
 * SG_ETOOBIG, leaving the copy and the store unchanged.  Arrays and
 * objects count alike; a deep value under a shallow key counts in full.
 */
#include <stdlib.h>
#include <string.h>

#include "sessgate.h"
#include "tap.h"

static char dir[512];

/* New: {"a":{"a":...}} nested depth levels deep (depth >= 1); with
 * arrays, [[...]] under {"a":...}. */
static char *deep(int depth, int arrays)
{
    size_t n = (size_t)depth * 8 + 16;
    char *t = malloc(n), *p = t;
    if (!t)
        return NULL;
    p += sprintf(p, "{");
    for (int i = 1; i < depth; i++)
        p += sprintf(p, arrays ? (i == 1 ? "\"a\":[" : "[") : "\"a\":{");
    for (int i = 1; i < depth; i++)
        p += sprintf(p, arrays ? "]" : "}");
    sprintf(p, "}");
    return t;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    snprintf(dir, sizeof dir, "%s/depth.db", argv[1]);
    sg_error err = { 0 };
    sg_store *st = NULL;
    /* OK() evaluates its condition twice: calls go outside it. */
    sg_status rc = sg_store_open(dir, NULL, &st, &err);
    OK(rc == SG_OK, "store opens");
    if (!st)
        return tap_done();

    for (int arrays = 0; arrays <= 1; arrays++) {
        const char *kind = arrays ? "arrays" : "objects";
        char *at = deep(SG_MAX_DEPTH, arrays), *over = deep(SG_MAX_DEPTH + 1, arrays);
        sg_session *s = NULL;
        sg_error_clear(&err);
        rc = sg_session_create(st, NULL, at, 0, 0, &s, &err);
        OK(rc == SG_OK, "create accepts %s nested %d levels", kind, SG_MAX_DEPTH);
        sg_session *t = NULL;
        sg_error_clear(&err);
        IS(sg_session_create(st, NULL, over, 0, 0, &t, &err), SG_ETOOBIG,
           "create refuses %s nested %d levels", kind, SG_MAX_DEPTH + 1);
        OK(t == NULL && strstr(err.text, "nested deeper than the limit of 64"),
           "the error names the limit: %s", err.text);
        if (s) {
            sg_error_clear(&err);
            IS(sg_session_set_data(s, over, &err), SG_ETOOBIG,
               "set_data refuses one level more (%s)", kind);
            char *now = sg_session_data_json(s);
            STR_IS(now, at, "the copy keeps its data");
            free(now);
            sg_error_clear(&err);
            rc = sg_session_set_data(s, "{}", &err);
            OK(rc == SG_OK, "set_data {}");
            /* merge: {"x": value SG_MAX_DEPTH - 1 deep} is SG_MAX_DEPTH deep */
            char *inner = deep(SG_MAX_DEPTH - 1, arrays);
            char *patch = malloc(strlen(inner) + 8);
            sprintf(patch, "{\"x\":%s}", inner);
            sg_error_clear(&err);
            rc = sg_session_merge_data(s, patch, &err);
            OK(rc == SG_OK, "merge accepts a value that makes %d levels", SG_MAX_DEPTH);
            free(inner);
            free(patch);
            inner = deep(SG_MAX_DEPTH, arrays);
            patch = malloc(strlen(inner) + 8);
            sprintf(patch, "{\"y\":%s}", inner);
            sg_error_clear(&err);
            IS(sg_session_merge_data(s, patch, &err), SG_ETOOBIG,
               "merge refuses a value that makes %d levels", SG_MAX_DEPTH + 1);
            free(inner);
            free(patch);
            sg_error_clear(&err);
            rc = sg_session_save(st, s, &err);
            OK(rc == SG_OK, "save at the limit");
            /* import: the record with data one level too deep */
            char *rec = sg_session_to_json(s);
            char *d = strstr(rec, "\"data\":");
            size_t head = (size_t)(d - rec) + 7;
            char *bad = malloc(head + strlen(over) + 2);
            memcpy(bad, rec, head);
            sprintf(bad + head, "%s}", over);
            sg_error_clear(&err);
            IS(sg_session_import(st, bad, &err), SG_ETOOBIG,
               "import refuses a record with data %d levels deep", SG_MAX_DEPTH + 1);
            sg_session *back = NULL;
            sg_error_clear(&err);
            rc = sg_session_get(st, sg_session_id(s), SG_GET_NOTOUCH, &back, &err);
            OK(rc == SG_OK, "the stored session is still there");
            char *bd = back ? sg_session_data_json(back) : NULL;
            char *sd = sg_session_data_json(s);
            STR_IS(bd, sd, "and unchanged by the refused import");
            free(bd);
            free(sd);
            sg_session_free(back);
            free(bad);
            free(rec);
        }
        sg_session_free(s);
        free(at);
        free(over);
    }
    sg_store_close(st);
    return tap_done();
}
