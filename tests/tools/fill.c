/*
 * fill.c - create sessions until the store's disk is full, for the disk
 * full test (tests/store/diskfull.bats).
 *
 *   fill STORE ACKFILE [PAD]
 *
 * Creates sessions with data {"v":0,"pad":"x...PAD bytes"} (PAD 1000 by
 * default) until a call fails, appending "ID 0" to ACKFILE (which must live
 * on another filesystem) after each SG_OK.  Then prints
 * "acked=N status=NAME errno=E" and the error text on a second line.
 *
 * What the test checks with it: the failing call returns an error and not
 * SG_OK (a false success would show up as an acknowledged session that
 * verify cannot find), every session acknowledged before is still there,
 * and the store opens again.  Exit 0 once a call failed, 1 if 100,000
 * creates all succeeded (the disk never filled), 2 on usage errors.
 */
#include "sessgate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILL_MAX 100000

int main(int argc, char **argv)
{
    sg_store *st = NULL;    /* Owned: closed before exit */
    char *data;             /* Owned: the data JSON */
    sg_error err;
    sg_status rc;
    long pad = 1000, n = 0;
    size_t head;
    int fd;

    if (argc < 3 || argc > 4) {
        fputs("usage: fill STORE ACKFILE [PAD]\n", stderr);
        return 2;
    }
    if (argc == 4) {
        char *end;
        errno = 0;
        pad = strtol(argv[3], &end, 10);
        if (errno || end == argv[3] || *end || pad < 0 || pad > 60000) {
            fputs("fill: PAD must be 0..60000\n", stderr);
            return 2;
        }
    }
    data = malloc((size_t)pad + 32);
    if (!data)
        return 2;
    snprintf(data, 32, "{\"v\":0,\"pad\":\"");
    head = strlen(data);
    memset(data + head, 'x', (size_t)pad);
    strcpy(data + head + (size_t)pad, "\"}");

    fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(argv[2]);
        return 2;
    }
    sg_error_clear(&err);
    rc = sg_store_open(argv[1], NULL, &st, &err);
    while (rc == SG_OK && n < FILL_MAX) {
        sg_session *s = NULL;   /* Owned per iteration */
        char line[SG_ID_LEN + 8];
        int len;

        rc = sg_session_create(st, NULL, data, 0, 0, &s, &err);
        if (rc != SG_OK)
            break;
        len = snprintf(line, sizeof line, "%s 0\n", sg_session_id(s));
        if (write(fd, line, (size_t)len) != len) {
            perror("fill: ack write");
            return 2;
        }
        sg_session_free(s);
        n++;
    }
    printf("acked=%ld status=%s errno=%d\n%s\n", n, sg_strerror(rc),
           err.sys_errno, err.text);
    sg_store_close(st);
    close(fd);
    free(data);
    return rc == SG_OK ? 1 : 0;
}
