/*
 * privsep.c - run as an unprivileged user once the socket is bound.
 *
 * A gateway started as root (by an init script, or to create its socket in
 * a root-owned directory) must not serve requests as root: whoever can
 * reach the socket sends the params, and a bug would be a root bug.  Like
 * spawn-fcgi's -u/-g and php-fpm's pool user, `--user USER[:GROUP]` drops
 * to that user after the socket exists and before any store file or worker
 * is made: supplementary groups from the group database (initgroups, so
 * membership of the store's group counts), then the gid, then the uid, in
 * that order (after setuid the process could no longer change its groups).
 * It then checks that root cannot be regained: a setuid(0) that works means
 * the drop failed silently (a kernel or a capability set we did not expect)
 * and the gateway stops rather than serve.
 *
 * Names are looked up once at start-up (config_check), so a typo is a
 * usage error, not a failure after the socket was made.  USER and GROUP
 * may also be numeric ids.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"

/* A decimal id, or -1 when s is not all digits or out of range. */
static long numeric_id(const char *s)
{
    char *end;
    long v;

    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v >= (long)INT_MAX)
        return -1;
    return v;
}

/* Parse USER[:GROUP] (or :GROUP when !need_user) into *ids; see gateway.h. */
int privsep_parse(const char *spec, int need_user, gw_ids *ids, char *msg, size_t msgsz)
{
    const char *colon = strchr(spec, ':');
    size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
    char user[256], group[256];

    memset(ids, 0, sizeof *ids);
    if (ulen >= sizeof user || (colon && strlen(colon + 1) >= sizeof group)) {
        snprintf(msg, msgsz, "name too long (a user or group name has at most %zu bytes)",
                 sizeof user - 1);
        return -1;
    }
    memcpy(user, spec, ulen);
    user[ulen] = '\0';
    snprintf(group, sizeof group, "%s", colon ? colon + 1 : "");
    if (!*user && need_user) {
        snprintf(msg, msgsz, "%s: expected USER or USER:GROUP", spec);
        return -1;
    }
    if (!*user && !*group) {
        snprintf(msg, msgsz, "%s: expected USER, USER:GROUP or :GROUP", spec);
        return -1;
    }
    if (*user) {
        struct passwd *pw = getpwnam(user);
        long n = pw ? -1 : numeric_id(user);

        if (!pw && n >= 0)
            pw = getpwuid((uid_t)n);
        if (!pw && n < 0) {
            snprintf(msg, msgsz, "%s: no such user '%s'", spec, user);
            return -1;
        }
        ids->has_uid = 1;
        ids->uid = pw ? pw->pw_uid : (uid_t)n;
        ids->gid = pw ? pw->pw_gid : (gid_t)n;
        ids->has_gid = pw != NULL || *group;    /* a bare uid has no group */
        if (pw)
            snprintf(ids->name, sizeof ids->name, "%s", pw->pw_name);
    }
    if (*group) {
        struct group *gr = getgrnam(group);
        long n = gr ? -1 : numeric_id(group);

        if (!gr && n < 0) {
            snprintf(msg, msgsz, "%s: no such group '%s'", spec, group);
            return -1;
        }
        ids->has_gid = 1;
        ids->gid = gr ? gr->gr_gid : (gid_t)n;
    }
    if (need_user && !ids->has_gid) {
        snprintf(msg, msgsz, "%s: user id %s has no passwd entry: give USER:GROUP",
                 spec, user);
        return -1;
    }
    return 0;
}

/* Become ids (groups, gid, uid) and check root is gone; see gateway.h. */
int privsep_drop(const gw_ids *ids)
{
    if (!ids->has_uid)
        return 0;
    if (geteuid() != 0) {
        /* Already that user (a unit with User= and the same --user): fine. */
        if (getuid() == ids->uid && geteuid() == ids->uid && getgid() == ids->gid &&
            getegid() == ids->gid)
            return 0;
        fprintf(stderr, "sessgate: --user: only root can switch users (running as uid %ld)\n",
                (long)geteuid());
        return -1;
    }
    if (ids->name[0] ? initgroups(ids->name, ids->gid) < 0
                     : setgroups(1, &ids->gid) < 0) {
        fprintf(stderr, "sessgate: --user: cannot set the supplementary groups: %s\n",
                strerror(errno));
        return -1;
    }
    if (setgid(ids->gid) < 0 || setuid(ids->uid) < 0) {
        fprintf(stderr, "sessgate: --user: cannot switch to uid %ld gid %ld: %s\n",
                (long)ids->uid, (long)ids->gid, strerror(errno));
        return -1;
    }
    if (getuid() != ids->uid || geteuid() != ids->uid || getgid() != ids->gid ||
        getegid() != ids->gid) {
        fprintf(stderr, "sessgate: --user: the switch to uid %ld gid %ld did not take\n",
                (long)ids->uid, (long)ids->gid);
        return -1;
    }
    /* Why: a drop that can be undone is no drop; refuse to serve then. */
    if (ids->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0 ||
                          (ids->gid != 0 && setgid(0) == 0))) {
        fprintf(stderr, "sessgate: --user: root could be regained after the switch; "
                "refusing to run\n");
        return -1;
    }
    return 0;
}
