/*
 * gdbm_get.c - print one raw value of a GDBM file, bypassing libsessgate,
 * to see which keys the library wrote (tests/store/index.bats).
 *
 *   gdbm_get FILE KEY
 *
 * Opens read-only with GDBM_NOLOCK (the test runs it while nothing else
 * writes the store).  Prints the value and a newline, exit 0; exit 1 when
 * the key is absent or on a GDBM error, 2 on usage errors.
 */
#include <gdbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    GDBM_FILE db;
    datum key, val;

    if (argc != 3) {
        fputs("usage: gdbm_get FILE KEY\n", stderr);
        return 2;
    }
    db = gdbm_open(argv[1], 0, GDBM_READER | GDBM_NOLOCK, 0600, NULL);
    if (db == NULL) {
        fprintf(stderr, "gdbm_get: %s: %s\n", argv[1], gdbm_strerror(gdbm_errno));
        return 1;
    }
    key.dptr = argv[2];
    key.dsize = (int)strlen(argv[2]);
    val = gdbm_fetch(db, key);
    gdbm_close(db);
    if (val.dptr == NULL)
        return 1;
    fwrite(val.dptr, 1, (size_t)val.dsize, stdout);
    putchar('\n');
    free(val.dptr);
    return 0;
}
