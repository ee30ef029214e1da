/*
 * gdbm_put.c - write one raw key/value pair into a GDBM file, bypassing
 * libsessgate, for the damaged-record tests (tests/cli/check.bats).
 *
 *   gdbm_put FILE KEY VALUE
 *
 * The library never stores a record it cannot parse, so the only way to
 * show that `sessgatectl check` finds one (and `check --repair` removes
 * it) is to write it behind the library's back, as a bug, a bad restore
 * or a different program would.  Opens with GDBM_NOLOCK like the library
 * (the test runs it while nothing else uses the store), creating FILE if
 * need be (a store in an old format, tests/store/index.bats).  Exit 0 on
 * success, 1 on a GDBM error, 2 on usage errors.
 */
#include <gdbm.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    GDBM_FILE db;
    datum key, val;

    if (argc != 4) {
        fputs("usage: gdbm_put FILE KEY VALUE\n", stderr);
        return 2;
    }
    db = gdbm_open(argv[1], 0, GDBM_WRCREAT | GDBM_NOLOCK, 0600, NULL);
    if (db == NULL) {
        fprintf(stderr, "gdbm_put: %s: %s\n", argv[1], gdbm_strerror(gdbm_errno));
        return 1;
    }
    key.dptr = argv[2];
    key.dsize = (int)strlen(argv[2]);
    val.dptr = argv[3];
    val.dsize = (int)strlen(argv[3]);
    if (gdbm_store(db, key, val, GDBM_REPLACE) != 0) {
        fprintf(stderr, "gdbm_put: store: %s\n", gdbm_strerror(gdbm_errno));
        gdbm_close(db);
        return 1;
    }
    gdbm_close(db);
    return 0;
}
