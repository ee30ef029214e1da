/*
 * incr.c - the C side of the mixed-language concurrency test
 * (tests/bindings/mixed.bats).
 *
 *   incr STORE ID N [SLEEP_MS]
 *                       N atomic increments of data.n with sg_session_update;
 *                       with SLEEP_MS, the change function sleeps that long
 *                       each run (an app's slow call), and the program
 *                       prints "runs=R max_hold_us=H": how often the
 *                       function ran and this handle's longest hold of the
 *                       exclusive lock (tests/store/update.bats)
 *
 * Python and Lua processes increment the same counter through their
 * bindings at the same time; the test checks that the final value is the
 * exact total, which holds only if the lock taken by sg_session_update and
 * the one taken by the bindings (sg_store_begin / sg_store_end) exclude
 * each other.  sessgatectl set cannot serve here: it merges a value, it
 * does not read and add.  Exit 0 when all N succeeded, 1 on the first
 * failed call (its message on stderr), 2 on usage errors.
 */
#include "sessgate.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long sleep_ms;   /* each run of incr_one sleeps this long */
static long runs;       /* runs of incr_one */

/* Change function: data.n += 1 (a missing n counts as 0). */
static sg_status incr_one(sg_session *s, void *arg, sg_error *err)
{
    char *text;         /* Owned: the data JSON, freed below */
    json_t *data;       /* Owned: parsed data, decref'd below */
    json_int_t n = 0;
    char buf[64];
    sg_status rc;

    (void)arg;
    runs++;
    if (sleep_ms > 0) {
        struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    text = sg_session_data_json(s);
    if (text == NULL)
        return SG_ENOMEM;
    data = json_loads(text, 0, NULL);
    free(text);
    if (data == NULL)
        return SG_EINVAL;
    if (json_is_integer(json_object_get(data, "n")))
        n = json_integer_value(json_object_get(data, "n"));
    json_decref(data);
    snprintf(buf, sizeof buf, "{\"n\":%lld}", (long long)n + 1);
    rc = sg_session_merge_data(s, buf, err);
    return rc;
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;    /* Owned: closed before exit */
    sg_error err;
    char *end;
    long n, i;

    if (argc != 4 && argc != 5) {
        fputs("usage: incr STORE ID N [SLEEP_MS]\n", stderr);
        return 2;
    }
    if (argc == 5) {
        errno = 0;
        sleep_ms = strtol(argv[4], &end, 10);
        if (errno != 0 || *end != '\0' || end == argv[4] || sleep_ms < 0 ||
            sleep_ms > 600000L) {
            fprintf(stderr, "incr: bad sleep %s (0..600000 ms)\n", argv[4]);
            return 2;
        }
    }
    errno = 0;
    n = strtol(argv[3], &end, 10);
    if (errno != 0 || *end != '\0' || end == argv[3] || n < 0 || n > 100000000L) {
        fprintf(stderr, "incr: bad count %s (0..100000000)\n", argv[3]);
        return 2;
    }
    sg_error_clear(&err);
    if (sg_store_open(argv[1], NULL, &st, &err) != SG_OK) {
        fprintf(stderr, "incr: %s\n", err.text);
        return 1;
    }
    for (i = 0; i < n; i++) {
        if (sg_session_update(st, argv[2], incr_one, NULL, &err) != SG_OK) {
            fprintf(stderr, "incr: increment %ld: %s\n", i + 1, err.text);
            sg_store_close(st);
            return 1;
        }
    }
    if (argc == 5) {
        sg_lock_counters lc;
        sg_store_lock_counters(st, &lc);
        printf("runs=%ld max_hold_us=%llu\n", runs,
               (unsigned long long)lc.max_hold_us);
    }
    sg_store_close(st);
    return 0;
}
