/*
 * test_privsep.c - unit tests of the gateway's user/group parser
 * (privsep_parse in privsep.c) and of the systemd socket hand-over check
 * (sdnotify_listen_fd).
 *
 * privsep_parse turns --user USER[:GROUP] and --socket-owner
 * USER[:GROUP] / :GROUP into ids through the user and group databases,
 * names or numbers; everything else is a usage error with a message, never
 * a silent "root".  The users used here exist on every Debian system
 * (root, daemon, nobody; groups root, daemon, nogroup).  Prints TAP lines;
 * exits 1 on any failure.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../gateway/gateway.h"

static int n_test, n_fail;

static void check(int ok, const char *what)
{
    n_test++;
    if (!ok)
        n_fail++;
    printf("%sok %d - %s\n", ok ? "" : "not ", n_test, what);
}

static int parse(const char *spec, int need_user, gw_ids *ids, char *msg)
{
    return privsep_parse(spec, need_user, ids, msg, 256);
}

int main(void)
{
    gw_ids ids;
    char msg[256], text[600];
    struct passwd *pw = getpwnam("daemon");
    struct group *gr = getgrnam("nogroup");

    uid_t duid;
    gid_t dgid, ngid;

    if (!pw || !gr) {
        printf("1..0 # skip no user daemon or group nogroup here\n");
        return 0;
    }
    /* getpw and getgr return static storage: keep the numbers */
    duid = pw->pw_uid;
    dgid = pw->pw_gid;
    ngid = gr->gr_gid;

    check(parse("daemon", 1, &ids, msg) == 0 && ids.has_uid && ids.has_gid &&
          ids.uid == duid && ids.gid == dgid && strcmp(ids.name, "daemon") == 0,
          "USER: the user and its primary group");
    check(parse("daemon:nogroup", 1, &ids, msg) == 0 && ids.uid == duid &&
          ids.gid == ngid, "USER:GROUP: the named group");
    snprintf(text, sizeof text, "%ld:%ld", (long)duid, (long)ngid);
    check(parse(text, 1, &ids, msg) == 0 && ids.uid == duid && ids.gid == ngid &&
          strcmp(ids.name, "daemon") == 0, "numeric UID:GID, name found for the uid");
    check(parse(":nogroup", 0, &ids, msg) == 0 && !ids.has_uid && ids.has_gid &&
          ids.gid == ngid, "--socket-owner :GROUP: the group alone");
    check(parse(":nogroup", 1, &ids, msg) < 0 && strstr(msg, "expected USER"),
          "--user :GROUP is refused (a user is needed)");
    check(parse("no-such-user-xyz", 1, &ids, msg) < 0 && strstr(msg, "no such user"),
          "an unknown user is an error naming it");
    check(parse("daemon:no-such-group-xyz", 1, &ids, msg) < 0 && strstr(msg, "no such group"),
          "an unknown group is an error naming it");
    check(parse("", 0, &ids, msg) < 0 && parse(":", 0, &ids, msg) < 0,
          "empty specs are refused");
    check(parse("4000000000", 1, &ids, msg) < 0, "an id out of range is not a user");
    check(parse("123abc", 1, &ids, msg) < 0, "a half-numeric name is looked up, not parsed");
    check(parse("987654:nogroup", 1, &ids, msg) == 0 && ids.uid == 987654 &&
          ids.gid == ngid && ids.name[0] == '\0',
          "a uid without a passwd entry works with an explicit group");
    check(parse("987654", 1, &ids, msg) < 0 && strstr(msg, "USER:GROUP"),
          "a uid without a passwd entry and no group is refused");
    memset(text, 'a', 400);
    text[400] = '\0';
    check(parse(text, 1, &ids, msg) < 0 && strstr(msg, "too long"), "an over-long name is refused");

    /* privsep_drop without a user does nothing. */
    memset(&ids, 0, sizeof ids);
    check(privsep_drop(&ids) == 0, "no --user: nothing to drop");

    /* LISTEN_FDS for another pid, or none: not ours. */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    check(sdnotify_listen_fd() == -1, "no LISTEN_FDS: no socket from systemd");
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "1", 1);
    check(sdnotify_listen_fd() == -1 && getenv("LISTEN_FDS"),
          "LISTEN_PID of another process: ignored, left alone");
    snprintf(text, sizeof text, "%ld", (long)getpid());
    setenv("LISTEN_PID", text, 1);
    setenv("LISTEN_FDS", "2", 1);
    check(sdnotify_listen_fd() == -2 && !getenv("LISTEN_FDS") && !getenv("LISTEN_PID"),
          "two sockets: an error, and the variables are cleared");
    setenv("LISTEN_PID", text, 1);
    setenv("LISTEN_FDS", "x", 1);
    check(sdnotify_listen_fd() == -2, "a malformed count is an error");
    unsetenv("NOTIFY_SOCKET");
    check(sdnotify_send("READY=1") == 0, "no NOTIFY_SOCKET: nothing sent, no error");

    printf("1..%d\n", n_test);
    return n_fail ? 1 : 0;
}
