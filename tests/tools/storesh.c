/*
 * storesh.c - a line-oriented shell over ONE store handle, for the stale
 * handle test (tests/store/stale_handle.bats).
 *
 *   storesh STORE            commands on stdin, one answer line each
 *
 * The point is the handle's lifetime: a long-running storesh keeps the
 * store open across commands, exactly like a gateway worker or a Python
 * app, while other processes change the store (write, rotate, delete,
 * recover and replace the file).  Its answers show whether a kept handle
 * ever serves stale data.  Commands and answers:
 *
 *   create [JSON]      ok ID
 *   get ID             ok VERSION DATA      (no touch, so reads stay reads)
 *   save ID JSON       ok VERSION           (load, replace data, save)
 *   rotate ID          ok NEWID
 *   delete ID          ok
 *   count              ok N
 *   check | repair     ok records=N bad=N recovered=N
 *   recoveries         ok N
 *
 * Any failure answers "err STATUS: TEXT".  Output is flushed per line.
 */
#include "sessgate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void answer_err(sg_status rc, const sg_error *err)
{
    printf("err %s: %s\n", sg_strerror(rc), err->text);
}

static void run(sg_store *st, char *cmd, char *arg1, char *rest)
{
    sg_session *s = NULL;   /* Owned: freed at the end */
    sg_error err;
    sg_status rc = SG_OK;

    sg_error_clear(&err);
    if (strcmp(cmd, "create") == 0) {
        /* arg1 and rest together are the JSON (it may hold spaces). */
        char *json = NULL;   /* Owned */
        if (arg1) {
            size_t n = strlen(arg1) + (rest ? strlen(rest) + 1 : 0) + 1;
            json = malloc(n);
            if (!json) {
                puts("err out of memory");
                return;
            }
            snprintf(json, n, "%s%s%s", arg1, rest ? " " : "", rest ? rest : "");
        }
        rc = sg_session_create(st, NULL, json, 0, 0, &s, &err);
        free(json);
        if (rc == SG_OK)
            printf("ok %s\n", sg_session_id(s));
    } else if (strcmp(cmd, "get") == 0 && arg1) {
        rc = sg_session_get(st, arg1, SG_GET_NOTOUCH, &s, &err);
        if (rc == SG_OK) {
            char *data = sg_session_data_json(s);   /* Owned */
            printf("ok %llu %s\n", (unsigned long long)sg_session_version(s),
                   data ? data : "?");
            free(data);
        }
    } else if (strcmp(cmd, "save") == 0 && arg1 && rest) {
        rc = sg_session_get(st, arg1, SG_GET_NOTOUCH, &s, &err);
        if (rc == SG_OK)
            rc = sg_session_set_data(s, rest, &err);
        if (rc == SG_OK)
            rc = sg_session_save(st, s, &err);
        if (rc == SG_OK)
            printf("ok %llu\n", (unsigned long long)sg_session_version(s));
    } else if (strcmp(cmd, "rotate") == 0 && arg1) {
        rc = sg_session_get(st, arg1, SG_GET_NOTOUCH, &s, &err);
        if (rc == SG_OK)
            rc = sg_session_rotate(st, s, &err);
        if (rc == SG_OK)
            printf("ok %s\n", sg_session_id(s));
    } else if (strcmp(cmd, "delete") == 0 && arg1) {
        rc = sg_session_delete(st, arg1, &err);
        if (rc == SG_OK)
            puts("ok");
    } else if (strcmp(cmd, "count") == 0) {
        size_t n = 0;
        rc = sg_store_count(st, NULL, &n, &err);
        if (rc == SG_OK)
            printf("ok %zu\n", n);
    } else if (strcmp(cmd, "check") == 0 || strcmp(cmd, "repair") == 0) {
        sg_check_report rep;
        memset(&rep, 0, sizeof rep);
        rc = sg_store_check(st, cmd[0] == 'r', &rep, &err);
        if (rc == SG_OK)
            printf("ok records=%zu bad=%zu recovered=%d\n", rep.records,
                   rep.bad_records, rep.recovered);
    } else if (strcmp(cmd, "recoveries") == 0) {
        printf("ok %lu\n", sg_store_recoveries(st));
    } else {
        printf("err usage: unknown command '%s'\n", cmd);
    }
    if (rc != SG_OK)
        answer_err(rc, &err);
    sg_session_free(s);
}

int main(int argc, char **argv)
{
    sg_store *st = NULL;   /* Owned: closed at EOF */
    char *line = NULL;     /* Owned by getline */
    size_t cap = 0;
    ssize_t len;
    sg_error err;
    sg_status rc;

    if (argc != 2) {
        fputs("usage: storesh STORE < commands\n", stderr);
        return 2;
    }
    sg_error_clear(&err);
    rc = sg_store_open(argv[1], NULL, &st, &err);
    if (rc != SG_OK) {
        fprintf(stderr, "storesh: open: %s (%s)\n", sg_strerror(rc), err.text);
        return 1;
    }
    while ((len = getline(&line, &cap, stdin)) > 0) {
        char *save = NULL, *cmd, *arg1, *rest;

        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        cmd = strtok_r(line, " ", &save);
        if (!cmd)
            continue;
        arg1 = strtok_r(NULL, " ", &save);
        rest = strtok_r(NULL, "", &save);
        run(st, cmd, arg1, rest);
        fflush(stdout);
    }
    free(line);
    sg_store_close(st);
    return 0;
}
