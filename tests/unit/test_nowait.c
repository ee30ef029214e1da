/*
 * test_nowait.c - sg_session_get with SG_GET_NOWAIT, and the writes the
 * nginx module makes (create, rotate, flash pop) with their _NOWAIT flags,
 * never wait for the store's lock: the module calls them from a worker's
 * event loop and retries from a timer instead
 * (nginx/ngx_http_sessgate_module.c).  A busy write stores nothing.
 *
 * Two handles on one store in one process hold separate flocks, so one
 * handle's sg_store_begin is "another process" for the other.
 * Usage: test_nowait DIR   (a scratch directory)
 */
#include "sessgate.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Writer preference: with only a reader (a shared flock, as another
 * process's get holds) on the lock and a writer queued behind it, a
 * no-wait get answers "busy" instead of joining the readers, so the
 * readers drain and the writer gets in (a waiting get would stand back
 * up to 25 ms, inside the worker). */
static void writer_queued(const char *path, sg_store *b, const char *id)
{
    char lockpath[700];
    int pipefd[2], release[2], lockfd;
    pid_t reader, writer;
    sg_session *got = NULL;
    sg_error err = { 0 };
    int busy = 0, status;
    char c;

    snprintf(lockpath, sizeof lockpath, "%s.lock", path);
    if (pipe(pipefd) != 0 || pipe(release) != 0)
        return;
    reader = fork();
    if (reader == 0) {
        /* holds the shared lock until the parent says (or 30 s pass) */
        alarm(30);
        lockfd = open(lockpath, O_RDWR | O_CLOEXEC);
        if (lockfd < 0 || flock(lockfd, LOCK_SH) != 0)
            _exit(1);
        if (write(pipefd[1], "h", 1) != 1)
            _exit(1);
        close(release[1]);
        if (read(release[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(release[0]);
    if (read(pipefd[0], &c, 1) != 1) {
        OK(0, "the reader took the shared lock");
        return;
    }
    IS(sg_session_get(b, id, SG_GET_NOWAIT, &got, &err), SG_OK,
       "a reader's shared lock does not make a no-wait get busy: %s", err.text);
    sg_session_free(got);
    got = NULL;
    writer = fork();
    if (writer == 0) {
        sg_store *w = NULL;
        close(release[1]);          /* (else the reader never sees EOF) */
        sg_options o;
        sg_options_init(&o);
        o.lock_timeout_ms = 5000;
        if (sg_store_open(path, &o, &w, NULL) != SG_OK ||
            sg_store_begin(w, NULL) != SG_OK)
            _exit(1);
        sg_store_end(w);
        sg_store_close(w);
        _exit(0);
    }
    /* Bounded: within 10 s (a loaded machine may be slow to run the
     * writer) the writer has announced itself. */
    for (int i = 0; i < 1000 && !busy; i++) {
        sg_error_clear(&err);
        sg_status rc = sg_session_get(b, id, SG_GET_NOWAIT, &got, &err);
        sg_session_free(got);
        got = NULL;
        busy = rc == SG_ELOCKTIMEOUT && err.sys_errno == EWOULDBLOCK;
        if (!busy)
            sleep_ms(10);
    }
    OK(busy, "a queued writer makes a no-wait get busy (writer preference kept)");
    if (write(release[1], "g", 1) != 1)     /* the reader lets go */
        OK(0, "told the reader to let go");
    close(release[1]);
    waitpid(reader, &status, 0);
    waitpid(writer, &status, 0);
    OK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer got in");
    sg_error_clear(&err);
    IS(sg_session_get(b, id, SG_GET_NOWAIT, &got, &err), SG_OK,
       "free again: the no-wait get reads: %s", err.text);
    sg_session_free(got);
    close(pipefd[0]);
    close(pipefd[1]);
}

/* The write calls under a lock another handle holds: each answers
 * "busy" at once and changes nothing; once free, each does its work. */
static void writes(sg_store *a, sg_store *b)
{
    sg_session *s = NULL, *got = NULL, *made = NULL;
    sg_error err = { 0 };
    char old[SG_ID_LEN + 1], *flash = NULL;
    size_t n0 = 0, n1 = 0;
    int64_t t0, dt;

    IS(sg_session_create(a, NULL, NULL, 0, 0, &s, &err), SG_OK, "create (writes)");
    if (!s)
        return;
    IS(sg_session_flash_add(s, "{\"message\":\"hi\"}", &err), SG_OK, "flash add");
    IS(sg_session_save(a, s, &err), SG_OK, "save the flash: %s", err.text);
    sg_error_clear(&err);
    IS(sg_session_get(b, sg_session_id(s), SG_GET_NOTOUCH, &got, &err), SG_OK,
       "b loads the session");
    if (!got)
        return;
    snprintf(old, sizeof old, "%s", sg_session_id(got));
    IS(sg_store_count(a, NULL, &n0, &err), SG_OK, "count");

    IS(sg_store_begin(a, &err), SG_OK, "a takes the exclusive lock (writes)");
    t0 = now_ms();
    sg_error_clear(&err);
    IS(sg_session_create_ex(b, NULL, NULL, 0, 0, SG_CREATE_NOWAIT, &made, &err),
       SG_ELOCKTIMEOUT, "no-wait create under a held lock: SG_ELOCKTIMEOUT");
    IS(err.sys_errno, EWOULDBLOCK, "... EWOULDBLOCK");
    OK(made == NULL, "... and no session");
    sg_error_clear(&err);
    IS(sg_session_rotate_ex(b, got, SG_ROTATE_NOWAIT, &err), SG_ELOCKTIMEOUT,
       "no-wait rotate under a held lock: SG_ELOCKTIMEOUT");
    IS(err.sys_errno, EWOULDBLOCK, "... EWOULDBLOCK");
    STR_IS(sg_session_id(got), old, "... the copy keeps its id");
    sg_error_clear(&err);
    IS(sg_session_flash_pop_ex(b, got, SG_FLASH_NOWAIT, &flash, &err),
       SG_ELOCKTIMEOUT, "no-wait flash pop under a held lock: SG_ELOCKTIMEOUT");
    IS(err.sys_errno, EWOULDBLOCK, "... EWOULDBLOCK");
    OK(flash == NULL && sg_session_has_flash(got), "... nothing taken");
    dt = now_ms() - t0;
    OK(dt < 150, "... all three at once (%lld ms, lock timeout 300 ms)",
       (long long)dt);
    sg_store_end(a);

    IS(sg_store_count(a, NULL, &n1, &err), SG_OK, "count again");
    IS(n1, n0, "the busy create stored nothing");
    sg_error_clear(&err);
    IS(sg_session_get(a, old, SG_GET_NOTOUCH, &made, &err), SG_OK,
       "the busy rotate left the id working");
    OK(made && sg_session_has_flash(made), "... and the flash in the store");
    sg_session_free(made);
    made = NULL;

    /* Free: each no-wait write does what its plain call does. */
    sg_error_clear(&err);
    IS(sg_session_flash_pop_ex(b, got, SG_FLASH_NOWAIT, &flash, &err), SG_OK,
       "no-wait flash pop on a free store: %s", err.text);
    OK(flash && strstr(flash, "\"hi\""), "... takes the message: %s",
       flash ? flash : "(null)");
    free(flash);
    sg_error_clear(&err);
    IS(sg_session_rotate_ex(b, got, SG_ROTATE_NOWAIT, &err), SG_OK,
       "no-wait rotate on a free store: %s", err.text);
    OK(strcmp(sg_session_id(got), old) != 0, "... a new id");
    sg_error_clear(&err);
    IS(sg_session_get(a, old, SG_GET_NOTOUCH, &made, &err), SG_OK,
       "the old id resolves in the grace window");
    STR_IS(made ? sg_session_id(made) : NULL, sg_session_id(got),
           "... to the renewed session");
    sg_session_free(made);
    made = NULL;
    sg_error_clear(&err);
    IS(sg_session_create_ex(b, NULL, NULL, 0, 0, SG_CREATE_NOWAIT, &made, &err),
       SG_OK, "no-wait create on a free store: %s", err.text);
    OK(made && sg_session_is_new(made), "... a new session");
    sg_session_free(made);
    made = NULL;

    /* Unknown flags are refused, not ignored. */
    sg_error_clear(&err);
    IS(sg_session_create_ex(b, NULL, NULL, 0, 0, 1u, &made, &err), SG_EINVAL,
       "create_ex: unknown flag refused");
    sg_error_clear(&err);
    IS(sg_session_flash_pop_ex(b, got, 2u, &flash, &err), SG_EINVAL,
       "flash_pop_ex: unknown flag refused");
    sg_error_clear(&err);
    IS(sg_session_rotate_ex(b, got, 8u, &err), SG_EINVAL,
       "rotate_ex: unknown flag refused");
    sg_session_free(got);
    sg_session_free(s);
}

int main(int argc, char **argv)
{
    char path[600];
    sg_options o;
    sg_store *a = NULL, *b = NULL;
    sg_session *s = NULL, *got = NULL;
    sg_error err = { 0 };
    sg_lock_counters lc;
    int64_t t0, dt;

    if (argc < 2) {
        fprintf(stderr, "usage: test_nowait DIR\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/nowait.db", argv[1]);
    sg_options_init(&o);
    o.lock_timeout_ms = 300;
    IS(sg_store_open(path, &o, &a, &err), SG_OK, "open handle a: %s", err.text);
    IS(sg_store_open(path, &o, &b, &err), SG_OK, "open handle b: %s", err.text);
    if (!a || !b)
        return tap_done();
    IS(sg_session_create(a, "alice", "{\"k\":1}", 0, 0, &s, &err), SG_OK, "create");

    /* a holds the exclusive lock: b's no-wait get answers at once. */
    IS(sg_store_begin(a, &err), SG_OK, "a takes the exclusive lock");
    sg_error_clear(&err);
    t0 = now_ms();
    IS(sg_session_get(b, sg_session_id(s), SG_GET_NOWAIT, &got, &err),
       SG_ELOCKTIMEOUT, "no-wait get under a held lock: SG_ELOCKTIMEOUT");
    dt = now_ms() - t0;
    OK(dt < 100, "... at once (%lld ms, lock timeout 300 ms)", (long long)dt);
    IS(err.sys_errno, EWOULDBLOCK, "... with sys_errno EWOULDBLOCK");
    OK(got == NULL, "... and no session");
    sg_store_lock_counters(b, &lc);
    IS(lc.timeouts, 0, "a no-wait 'busy' is not counted as a lock timeout");

    /* The same get without the flag waits the lock timeout out. */
    sg_error_clear(&err);
    t0 = now_ms();
    IS(sg_session_get(b, sg_session_id(s), 0, &got, &err), SG_ELOCKTIMEOUT,
       "a waiting get under a held lock times out");
    dt = now_ms() - t0;
    OK(dt >= 250, "... after waiting (%lld ms)", (long long)dt);
    OK(err.sys_errno != EWOULDBLOCK, "... as a timeout, not a 'busy'");
    sg_store_end(a);

    /* Free: the no-wait get reads the session (and the flag is per call). */
    sg_error_clear(&err);
    IS(sg_session_get(b, sg_session_id(s), SG_GET_NOWAIT | SG_GET_DAMAGED_ABSENT,
                      &got, &err), SG_OK, "no-wait get on a free store: %s", err.text);
    STR_IS(got ? sg_session_user(got) : NULL, "alice", "... reads the session");
    sg_session_free(got);
    got = NULL;

    /* Strictness is unchanged: unknown ids are still not found. */
    sg_error_clear(&err);
    IS(sg_session_get(b, "00000000-0000-4000-8000-000000000000", SG_GET_NOWAIT,
                      &got, &err), SG_ENOTFOUND, "no-wait get of an unknown id: not found");

    /* After a busy answer the handle still waits when not asked otherwise. */
    IS(sg_store_begin(a, &err), SG_OK, "a locks again");
    sg_error_clear(&err);
    IS(sg_session_get(b, sg_session_id(s), SG_GET_NOWAIT, &got, &err),
       SG_ELOCKTIMEOUT, "busy again");
    sg_store_end(a);
    sg_error_clear(&err);
    IS(sg_session_get(b, sg_session_id(s), 0, &got, &err), SG_OK,
       "a plain get after a busy one: %s", err.text);
    sg_session_free(got);

    writer_queued(path, b, sg_session_id(s));
    writes(a, b);

    sg_session_free(s);
    sg_store_close(a);
    sg_store_close(b);
    return tap_done();
}
