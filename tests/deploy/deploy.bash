# tests/deploy/deploy.bash - users, groups and directories for the deploy
# suites, which run every part as the user a real host runs it as.
#
# Only what must runs as root here: creating and removing the test's system
# users, nginx's master (binding, then workers as www-data), and the
# gateway's start when it drops privileges itself (--user).  Everything else
# goes through `as USER CMD...` (setpriv: real/effective/saved uid and gid,
# the user's supplementary groups, no_new_privs).
#
# The users' names carry a per-file id, so two runs on one machine (CI's
# two passes, a developer beside the lead) never share or delete each
# other's users:
#   $DU_GW   the gateway's user        (groups: $DG_STORE)
#   $DU_APP  the web application's user (groups: $DG_STORE)
#   $DU_CTL  the administrator's user   (groups: $DG_STORE), runs sessgatectl
#   $DG_STORE  the group that shares the store
# www-data (nginx's workers) is Debian's and is never changed.
#
#   deploy_require_root     skip (n/a) unless root: users cannot be made otherwise
#   deploy_users_create     make the users and group (setup_file)
#   deploy_users_remove     remove them again (teardown_file); idempotent
#   deploy_dir              a fresh 0755 directory others can traverse: $DDIR
#   deploy_stage            `make install DESTDIR=$DDIR/root prefix=/usr`: the
#                           programs and modules where other users can read them
#   as USER CMD...          run CMD as USER (with USER's groups)
#   file_stat PATH...       "owner:group mode name" per file, for assertions

deploy_require_root() {
  [ "$(id -u)" = 0 ] ||
    skip "n/a when not root: the deploy suite creates system users (CI runs as root)"
  require_tool setpriv useradd userdel groupadd groupdel
}

deploy_ids() {
  # Short, the same in every test of this file's run, unique to it (from
  # the run's tmpdir name, which mktemp made unique).
  local id
  id=$(printf '%s' "$BATS_FILE_TMPDIR" | cksum | awk '{ printf "%06x", $1 % 16777216 }')
  DG_STORE=sgst$id DU_GW=sggw$id DU_APP=sgap$id DU_CTL=sgct$id
  export DG_STORE DU_GW DU_APP DU_CTL
}

deploy_users_create() {
  deploy_ids
  deploy_users_remove
  groupadd --system "$DG_STORE"
  local u
  for u in "$DU_GW" "$DU_APP" "$DU_CTL"; do
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group --groups "$DG_STORE" "$u"
  done
  printf '%s\n' "$DG_STORE" "$DU_GW" "$DU_APP" "$DU_CTL" > "$BATS_FILE_TMPDIR/deploy.users"
}

deploy_users_remove() {
  local u
  for u in "$DU_GW" "$DU_APP" "$DU_CTL"; do
    if id "$u" >/dev/null 2>&1; then
      # (a process of the user still running, stopped by PID in teardown
      # normally, would make plain userdel fail: -f then)
      userdel "$u" 2>/dev/null || userdel -f "$u" 2>/dev/null || true
    fi
    getent group "$u" >/dev/null && groupdel "$u" 2>/dev/null
  done
  if getent group "$DG_STORE" >/dev/null; then groupdel "$DG_STORE" || true; fi
}

deploy_dir() {
  DDIR=$(mktemp -d "${TMPDIR:-/tmp}/sessgate-deploy.XXXXXX")
  chmod 0755 "$DDIR"
  echo "$DDIR" >> "$BATS_FILE_TMPDIR/deploy.dirs"
  export DDIR
}

deploy_dirs_remove() {
  local d
  [ -f "$BATS_FILE_TMPDIR/deploy.dirs" ] || return 0
  while read -r d; do
    case $d in */sessgate-deploy.*) rm -rf "$d" ;; esac
  done < "$BATS_FILE_TMPDIR/deploy.dirs"
  rm -f "$BATS_FILE_TMPDIR/deploy.dirs"
}

deploy_stage() {
  make -s -C "$SG_BUILDDIR" install prefix=/usr DESTDIR="$DDIR/root" \
    > "$DDIR/install.log" 2>&1 || { cat "$DDIR/install.log"; return 1; }
  STAGE_SBIN=$DDIR/root/usr/sbin STAGE_BIN=$DDIR/root/usr/bin
  STAGE_PY=$DDIR/root/usr/lib/python3/dist-packages
  export STAGE_SBIN STAGE_BIN STAGE_PY
}

as() {
  local u=$1
  shift
  setpriv --reuid="$u" --regid="$(id -gn "$u")" --init-groups --no-new-privs \
    --reset-env -- env HOME=/nonexistent "$@"
}

file_stat() { stat -c '%U:%G %a %n' "$@"; }
