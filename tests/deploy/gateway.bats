#!/usr/bin/env bats
# tests/deploy/gateway.bats - the gateway as a service runs it: started as
# root, it binds, sets the socket's owner and mode, drops to its own user;
# or it gets its socket from systemd (LISTEN_FDS) and reports readiness
# (NOTIFY_SOCKET).  Clients connect as the users a host has: www-data may,
# others may not.
load ../helpers/common
load deploy

setup_file() {
  [ "$(id -u)" = 0 ] || return 0
  deploy_users_create
}

teardown_file() {
  [ "$(id -u)" = 0 ] || return 0
  deploy_ids
  deploy_users_remove
  deploy_dirs_remove
}

setup() {
  deploy_require_root
  deploy_ids
  deploy_dir
  mkdir "$DDIR/store" "$DDIR/tools"
  chown "$DU_GW:$DG_STORE" "$DDIR/store"
  chmod 2770 "$DDIR/store"
  cp "$SG_BUILDDIR/tests/tools/fcgi_client" "$SG_GATEWAY" "$DDIR/tools/"
  STORE=$DDIR/store/sessions.db
  SOCK=$DDIR/gw.sock
}

teardown() {
  stop_all
}

# req USER: one authorizer request over $SOCK as USER; prints the reply
req() {
  as "$1" "$DDIR/tools/fcgi_client" -s "$SOCK" -t 10 -r authorizer \
    -p REQUEST_URI=/x 2>&1 | tr -d '\r'
}

# proc_ids PID: "uid=R,E,S,F gid=R,E,S,F groups=..." from /proc
proc_ids() {
  awk '/^Uid:/ { u = $2 "," $3 "," $4 "," $5 }
       /^Gid:/ { g = $2 "," $3 "," $4 "," $5 }
       /^Groups:/ { $1 = ""; gr = $0 }
       /^CapEff:/ { c = $2 }
       END { print "uid=" u " gid=" g " caps=" c " groups=" gr }' "/proc/$1/status"
}

@test "--user drops root after binding: master and workers run as the user, caps gone, store files its own 0660" {
  start_bg "$DDIR/tools/sessgate" --store "$STORE" --group --workers 2 \
    --listen "unix:$SOCK" --user "$DU_GW" --socket-owner "$DU_GW:www-data" \
    --socket-mode 0660 2>"$DDIR/gw.err" > "$DDIR/gw.pid"
  pid=$(cat "$DDIR/gw.pid")
  wait_for_socket "$SOCK" 5
  uid=$(id -u "$DU_GW") gid=$(id -g "$DU_GW") sgid=$(getent group "$DG_STORE" | cut -d: -f3)
  for i in $(seq 50); do [ "$(pgrep -c -P "$pid")" -ge 2 ] && break; sleep 0.1; done
  for p in "$pid" $(pgrep -P "$pid"); do
    run proc_ids "$p"
    assert_output --partial "uid=$uid,$uid,$uid,$uid gid=$gid,$gid,$gid,$gid caps=0000000000000000"
    # initgroups: the store's group is among the supplementary groups
    [[ " $output " == *" $sgid "* ]] || fail "no store group $sgid in: $output"
  done
  run file_stat "$SOCK" "$STORE" "$STORE.lock"
  assert_line "$DU_GW:www-data 660 $SOCK"
  # created after the drop: the gateway's user, the directory's group (setgid), 0660
  assert_line "$DU_GW:$DG_STORE 660 $STORE"
  assert_line "$DU_GW:$DG_STORE 660 $STORE.lock"
}

@test "the socket admits www-data (its group) and refuses another user" {
  start_bg "$DDIR/tools/sessgate" --store "$STORE" --group --listen "unix:$SOCK" \
    --user "$DU_GW" --socket-owner "$DU_GW:www-data" 2>"$DDIR/gw.err" >/dev/null
  wait_for_socket "$SOCK" 5
  run req www-data
  assert_output --partial "Status: 200"
  run req "$DU_APP"
  refute_output --partial "Status: 200"
  assert_output --partial "Permission denied"
}

@test "--user is refused when not root, and an unknown user or a bad mode is a usage error" {
  run as "$DU_APP" "$DDIR/tools/sessgate" --store "$DDIR/x.db" --listen "unix:$DDIR/app.sock" --user "$DU_GW"
  [ "$status" -ne 0 ]
  run -2 "$SG_GATEWAY" --store "$STORE" --user "no-such-user-$$"
  assert_output --partial "no such user"
  run -2 "$SG_GATEWAY" --store "$STORE" --listen "unix:$SOCK" --socket-mode 0999
  assert_output --partial "octal mode"
  run -2 "$SG_GATEWAY" --store "$STORE" --listen 127.0.0.1:1 --socket-owner www-data
  assert_output --partial "unix:PATH only"
  # Run as that user already, --user is accepted (a unit with User= and --user).
  chown "$DU_GW" "$DDIR"
  as_prefix "$DU_GW"
  start_bg "${AS[@]}" "$DDIR/tools/sessgate" --store "$STORE" --listen "unix:$SOCK" \
    --user "$DU_GW" 2>"$DDIR/gw.err" >/dev/null
  wait_for_socket "$SOCK" 5 || fail "$(cat "$DDIR/gw.err")"
}

@test "socket activation: systemd-socket-activate passes the socket, the gateway (as its user) serves it and stops with exit 0" {
  require_tool systemd-socket-activate
  "$SG_PYTHON" - "$DDIR/notify.sock" > "$DDIR/notify.log" 2>&1 3>&- <<'PY' &
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)
s.settimeout(20)
try:
    while True:
        m = s.recv(4096).decode()
        print(m, flush=True)
        if "STOPPING=1" in m:
            break
except socket.timeout:
    print("timeout", flush=True)
PY
  listener=$!
  echo "$listener" >> "$(sg_pidfile)"
  wait_for_socket "$DDIR/notify.sock" 5
  # What PID 1 does for sessgate-auth.socket + .service: bind as root, give
  # the socket its owner and mode, start the service as User=.
  start_bg systemd-socket-activate -l "$SOCK" -E NOTIFY_SOCKET="$DDIR/notify.sock" \
    setpriv --reuid="$DU_GW" --regid="$DU_GW" --init-groups --no-new-privs -- \
    "$DDIR/tools/sessgate" --store "$STORE" --group --workers 2 \
    2>"$DDIR/gw.err" > "$DDIR/gw.pid"
  pid=$(cat "$DDIR/gw.pid")
  wait_for_socket "$SOCK" 5
  chown "$DU_GW:www-data" "$SOCK"
  chmod 0660 "$SOCK"
  run req www-data
  assert_output --partial "Status: 200"
  for i in $(seq 100); do grep -q READY=1 "$DDIR/notify.log" && break; sleep 0.05; done
  run cat "$DDIR/notify.log"
  assert_line "READY=1"
  # the process systemd started is the gateway's master, as the user
  [ "$(stat -c %U "/proc/$pid")" = "$DU_GW" ]
  # systemctl reload (the units' ExecReload=) sends SIGHUP: logs reopen,
  # the gateway keeps serving
  kill -HUP "$pid"
  sleep 0.2
  run req www-data
  assert_output --partial "Status: 200"
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "exit $rc: $(cat "$DDIR/gw.err")"
  wait "$listener" || true
  run cat "$DDIR/notify.log"
  assert_line "STOPPING=1"
  # systemd's socket is systemd's: the gateway does not remove it
  [ -S "$SOCK" ]
}

@test "LISTEN_FDS meant for another process is ignored; with --listen as well it is an error" {
  run env LISTEN_PID=1 LISTEN_FDS=1 "$SG_GATEWAY" --store "$STORE" </dev/null
  [ "$status" -eq 1 ]
  assert_output --partial "stdin is not a FastCGI socket"
  start_bg systemd-socket-activate -l "$DDIR/x.sock" "$SG_GATEWAY" --store "$STORE" \
    --listen "unix:$SOCK" 2>"$DDIR/gw.err" > "$DDIR/gw.pid"
  pid=$(cat "$DDIR/gw.pid")
  wait_for_socket "$DDIR/x.sock" 5
  # systemd-socket-activate execs the program on the first connection
  (exec 9<>/dev/null; "$SG_PYTHON" -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$DDIR/x.sock") || true
  rc=0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  wait "$pid" || rc=$?
  [ "$rc" -eq 1 ]
  run cat "$DDIR/gw.err"
  assert_output --partial "drop --listen"
}

# The master's checkpoint builder (tests/store/checkpoint.bats runs the
# gateway as root) as a service runs it: the gateway as its own user, the
# store shared with the application through their group.  The app's writes
# make a checkpoint due that is too big to build inline (100 sessions of
# 8 KB: checkpoint plus log over 1 MiB), the builder (a child of the master,
# as the gateway's user) builds it; every file keeps the group and 0660 and
# the app still reads and writes.  About 2 s.
@test "running as its user, the gateway's checkpoint builder builds the app's due checkpoint; files keep group and mode" {
  cp "$SG_BUILDDIR/tests/tools/duewrite" "$SG_CTL" "$DDIR/tools/"
  start_bg "$DDIR/tools/sessgate" --store "$STORE" --group --workers 1 \
    --listen "unix:$SOCK" --user "$DU_GW" --socket-owner "$DU_GW:www-data" \
    2>"$DDIR/gw.err" > "$DDIR/gw.pid"
  wait_for_socket "$SOCK" 5 || fail "$(cat "$DDIR/gw.err")"
  # a first write makes PATH.ckpt and PATH.wal, the app's own for now
  run -0 as "$DU_APP" "$DDIR/tools/sessgatectl" --store "$STORE" create --user ann
  # past the first due checkpoint (small: the writer builds it) to the
  # second (checkpoint and log both over 1 MB), 200 writes on
  run -0 as "$DU_APP" "$DDIR/tools/duewrite" "$STORE" 8000 200 3000
  local W=$output line i
  for ((i = 0; i < 100; i++)); do
    line=$(grep 'checkpoint_built' "$DDIR/gw.err" | head -n1)
    [ -n "$line" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || fail "no checkpoint built by the gateway in 10 s (writer: $W): $(cat "$DDIR/gw.err")"
  ! grep -Ei 'error|denied|cannot' "$DDIR/gw.err" || fail "$(cat "$DDIR/gw.err")"
  [ "$(stat -c %s "$STORE.wal")" -lt "$(stat -c %s "$STORE")" ] || fail "the log is still due"
  [ "$(stat -c %U "$STORE.ckpt")" = "$DU_GW" ] || fail "PATH.ckpt not the builder's: $(file_stat "$STORE.ckpt")"
  run file_stat "$STORE" "$STORE.ckpt" "$STORE.wal" "$STORE.lock"
  for f in "$STORE" "$STORE.ckpt" "$STORE.wal" "$STORE.lock"; do
    assert_line --regexp "^[^:]+:$DG_STORE 660 $f\$"
  done
  # the other members of the group go on reading and writing
  run -0 as "$DU_APP" "$DDIR/tools/sessgatectl" --store "$STORE" count
  assert_output 101
  run -0 as "$DU_CTL" "$DDIR/tools/sessgatectl" --store "$STORE" create --user bob
  run -0 as "$DU_APP" "$DDIR/tools/sessgatectl" --store "$STORE" count
  assert_output 102
}
