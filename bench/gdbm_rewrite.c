/*
 * gdbm_rewrite.c - the baseline of the "store size after N rewrites" rows
 * (bench/storesize.bash): the same workload as tests/tools/rewrite, 120
 * keys rewritten round robin with values of 150 to 2,649 bytes, straight
 * into one GDBM file through one handle, with GDBM 1.23's default free
 * space handling (what every sessgate writer used before) or with the
 * options sessgate's writers now set.
 *
 *   gdbm_rewrite FILE OPS EVERY default|tuned
 *
 * Prints "ops=N bytes=SIZE" every EVERY stores.  Exit 1 on a failed store.
 */
#include <gdbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEYS 120
#define PAD_MAX 2500

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: gdbm_rewrite FILE OPS EVERY default|tuned\n");
        return 2;
    }
    const char *file = argv[1];
    long ops = strtol(argv[2], NULL, 10), every = strtol(argv[3], NULL, 10);
    int tuned = strcmp(argv[4], "tuned") == 0;
    remove(file);
    GDBM_FILE db = gdbm_open(file, 0, GDBM_NEWDB | GDBM_NOLOCK | GDBM_NOMMAP,
                             0600, NULL);
    char *val = malloc(PAD_MAX + 200);
    if (!db || !val) {
        fprintf(stderr, "gdbm_rewrite: cannot open %s\n", file);
        free(val);
        return 1;
    }
    if (tuned) {
        int on = 1;
        gdbm_setopt(db, GDBM_SETCOALESCEBLKS, &on, sizeof on);
        gdbm_setopt(db, GDBM_SETCENTFREE, &on, sizeof on);
    }
    unsigned long long seed = 88172645463325252ULL;
    char key[64];
    int rc = 0;
    for (long op = 0; op < ops; op++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int len = 150 + (int)((seed >> 33) % PAD_MAX);
        snprintf(key, sizeof key, "0b5c1d2e-0000-4000-8000-%012ld", op % KEYS);
        memset(val, 'x', (size_t)len);
        datum k = { key, (int)strlen(key) }, v = { val, len };
        if (gdbm_store(db, k, v, GDBM_REPLACE) != 0) {
            fprintf(stderr, "gdbm_rewrite: store: %s\n", gdbm_strerror(gdbm_errno));
            rc = 1;
            break;
        }
        if (every > 0 && (op + 1) % every == 0) {
            struct stat sb;
            printf("ops=%ld bytes=%lld\n", op + 1,
                   stat(file, &sb) == 0 ? (long long)sb.st_size : -1LL);
        }
    }
    gdbm_close(db);
    free(val);
    return rc;
}
