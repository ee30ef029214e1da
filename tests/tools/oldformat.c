/*
 * oldformat.c - fixture generator for the record format tests
 * (tests/store/format.bats): rewrite every live session of a store in
 * record format 1, the JSON object earlier versions of libsessgate stored,
 * so that a test has a store as those versions left it.
 *
 *   oldformat STORE_URI
 *
 * Writes through the library's own backend put (in the write-ahead log on
 * GDBM, with its expiry on Redis), as an earlier version's write did;
 * only the bytes of the record are the old ones.  Prints how many records
 * it rewrote; exit 0, 1 on a store error, 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: oldformat STORE_URI\n", stderr);
        return 2;
    }
    sg_store *st = NULL;
    sg_error err = { 0 };
    sg_list *ids = NULL;
    sg_status rc = sg_store_open(argv[1], NULL, &st, &err);
    if (rc == SG_OK)
        rc = sg_store_list(st, NULL, &ids, &err);
    if (rc == SG_OK)
        rc = sgi_lock(st, SGI_EXCLUSIVE, &err);
    size_t n = 0;
    for (size_t i = 0; rc == SG_OK && i < sg_list_count(ids); i++) {
        sg_session *s = NULL;
        rc = sgi_load(st, sg_list_id(ids, i), &s, &err);
        size_t len = 0;
        char *json = rc == SG_OK ? sgi_record_to_json(s, &len) : NULL;
        if (rc == SG_OK && !json)
            rc = sgi_oom(&err, "oldformat", NULL);
        if (rc == SG_OK)
            rc = st->be->put(st, s->id, json, len, sgi_expire_at(st, s), &err);
        n += rc == SG_OK;
        free(json);
        sg_session_free(s);
    }
    if (st && st->lock_mode != SGI_UNLOCKED)
        sgi_unlock(st);
    sg_list_free(ids);
    sg_store_close(st);
    if (rc != SG_OK) {
        fprintf(stderr, "oldformat: %s\n", err.text);
        return 1;
    }
    printf("%zu\n", n);
    return 0;
}
