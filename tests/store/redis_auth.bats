#!/usr/bin/env bats
# tests/store/redis_auth.bats - Redis authentication: requirepass and Redis 6+
# ACL users, the password from password_file=PATH or
# $SESSGATE_REDIS_PASSWORD, never from the URI, never in a message or log.
#
# One real redis-server per file (unix socket, no persistence) whose ACL
# file gives the default user a password (what `requirepass` does) and
# makes one restricted user, as README "Redis: authentication" tells an
# operator to: its keys limited to the store's prefix, its commands to what
# the backend sends.  The store must work with exactly that.
load ../helpers/common
load ../bindings/bindings

REDIS_SOCK="$BATS_FILE_TMPDIR/redis.sock"
REDIS_PIDFILE="$BATS_FILE_TMPDIR/redis.pid"
# The ACL user's prefix; every test's own prefix lies under it.
ACL_PREFIX="sgacl:"
# The ACL line README "Redis: authentication" documents (keep them equal).
ACL_RULES="-@all +@read +@write -@dangerous +eval +evalsha +script|load +ping +select +wait"

setup_file() {
  command -v redis-server >/dev/null || return 0
  ADMIN_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  APP_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$ADMIN_PW" > "$BATS_FILE_TMPDIR/admin.pw"
  printf '%s\n' "$APP_PW" > "$BATS_FILE_TMPDIR/app.pw"
  chmod 0600 "$BATS_FILE_TMPDIR/admin.pw" "$BATS_FILE_TMPDIR/app.pw"
  # The ACL file holds hashes, not the passwords themselves.
  {
    printf 'user default on #%s ~* &* +@all\n' \
      "$(printf '%s' "$ADMIN_PW" | sha256sum | cut -d' ' -f1)"
    printf 'user sgapp on #%s ~%s* resetchannels %s\n' \
      "$(printf '%s' "$APP_PW" | sha256sum | cut -d' ' -f1)" "$ACL_PREFIX" "$ACL_RULES"
  } > "$BATS_FILE_TMPDIR/users.acl"
  rm -f "$REDIS_SOCK"
  start_bg redis-server --port 0 --unixsocket "$REDIS_SOCK" --protected-mode yes \
    --dir "$BATS_FILE_TMPDIR" --save '' --appendonly no --daemonize no \
    --aclfile "$BATS_FILE_TMPDIR/users.acl" \
    --logfile "$BATS_FILE_TMPDIR/redis.log" > "$REDIS_PIDFILE"
  sed -i "/^$(cat "$REDIS_PIDFILE")\$/d" "$(sg_pidfile)"
  wait_for_socket "$REDIS_SOCK" 10
  local i
  for i in $(seq 100); do
    REDISCLI_AUTH=$ADMIN_PW redis-cli -s "$REDIS_SOCK" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  cat "$BATS_FILE_TMPDIR/redis.log" >&2
  return 1
}

teardown_file() {
  [ -f "$REDIS_PIDFILE" ] && stop_pid "$(cat "$REDIS_PIDFILE")"
  rm -f "$REDIS_PIDFILE"
}

setup() {
  require_tool redis-server redis-cli
  ADMIN_PW=$(head -n 1 "$BATS_FILE_TMPDIR/admin.pw")
  APP_PW=$(head -n 1 "$BATS_FILE_TMPDIR/app.pw")
  PREFIX="${ACL_PREFIX}t$BATS_TEST_NUMBER-$$-$RANDOM:"
  # The ACL user's store, and the default user's (requirepass) store.
  STORE="redis+unix://sgapp@$REDIS_SOCK?password_file=$BATS_FILE_TMPDIR/app.pw&prefix=$PREFIX"
  ADMIN_STORE="redis+unix:$REDIS_SOCK?password_file=$BATS_FILE_TMPDIR/admin.pw&prefix=$PREFIX"
  unset SESSGATE_REDIS_PASSWORD
}

teardown() {
  stop_all
}

ctl() { sessgatectl --store "$STORE" "$@"; }
# redis-cli as the administrator / as the store's ACL user (the password
# through the environment, not the command line)
admin_cli() { REDISCLI_AUTH=$ADMIN_PW redis-cli -s "$REDIS_SOCK" "$@"; }
app_cli() { REDISCLI_AUTH=$APP_PW redis-cli -s "$REDIS_SOCK" --user sgapp "$@"; }

# no_secret FILE...: none of the files holds either password
no_secret() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    ! grep -qF -e "$APP_PW" -e "$ADMIN_PW" "$f" || fail "a password is in $f: $(cat "$f")"
  done
}

@test "requirepass: a store with password_file works; without a password it is NOAUTH at open, exit 3" {
  run -0 sessgatectl --store "$ADMIN_STORE" create --user alice
  id=$output
  run -0 sessgatectl --store "$ADMIN_STORE" get "$id"
  assert_output --partial '"user":"alice"'
  run -3 --separate-stderr sessgatectl --store "redis+unix:$REDIS_SOCK?prefix=$PREFIX" count
  [[ "$stderr" == *"store redis+unix:$REDIS_SOCK?prefix=$PREFIX: Redis INFO failed: NOAUTH"*"add ?password_file=PATH or set \$SESSGATE_REDIS_PASSWORD"* ]] ||
    fail "$stderr"
}

@test "the password may come from \$SESSGATE_REDIS_PASSWORD; password_file wins over it" {
  SESSGATE_REDIS_PASSWORD=$ADMIN_PW run -0 sessgatectl \
    --store "redis+unix:$REDIS_SOCK?prefix=$PREFIX" create
  SESSGATE_REDIS_PASSWORD=$APP_PW run -0 sessgatectl --store "redis+unix://sgapp@$REDIS_SOCK?prefix=$PREFIX" count
  assert_output 1
  # the file's (right) password is used, not the environment's (wrong) one
  SESSGATE_REDIS_PASSWORD=wrong run -0 sessgatectl --store "$STORE" count
  assert_output 1
  # a user without any password is a usage error at once
  run -2 --separate-stderr sessgatectl --store "redis+unix://sgapp@$REDIS_SOCK?prefix=$PREFIX" count
  [[ "$stderr" == *"user sgapp needs a password"* ]] || fail "$stderr"
}

@test "a wrong password is exit 3 naming the URI, never the secret, from the CLI and the gateway" {
  load ../gateway/gateway
  printf 'not-the-%s\n' "$APP_PW" > "$BATS_TEST_TMPDIR/wrong.pw"
  chmod 0600 "$BATS_TEST_TMPDIR/wrong.pw"
  bad="redis+unix://sgapp@$REDIS_SOCK?password_file=$BATS_TEST_TMPDIR/wrong.pw&prefix=$PREFIX"
  run -3 --separate-stderr sessgatectl --store "$bad" create
  [ -z "$output" ]
  [ "$stderr" = "sessgatectl: store $bad: Redis refused the password of user sgapp (WRONGPASS; check password_file $BATS_TEST_TMPDIR/wrong.pw)" ] ||
    fail "$stderr"
  printf '%s\n' "$stderr" > "$BATS_TEST_TMPDIR/ctl.err"
  # the environment's password is not printed either
  SESSGATE_REDIS_PASSWORD="also-$APP_PW" run -3 --separate-stderr sessgatectl \
    --store "redis+unix://sgapp@$REDIS_SOCK?prefix=$PREFIX" create
  [[ "$stderr" == *"(WRONGPASS; check \$SESSGATE_REDIS_PASSWORD)"* ]] || fail "$stderr"
  printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/ctl.err"
  # the gateway refuses to start, with the same message on stderr and in its log
  run -1 "$SG_GATEWAY" --store "$bad" --listen "unix:$BATS_TEST_TMPDIR/gw.sock" \
    --mode auth --log-file "$BATS_TEST_TMPDIR/gw.log"
  printf '%s\n' "$output" > "$BATS_TEST_TMPDIR/gw.out"
  grep -qF "store $bad: Redis refused the password of user sgapp" \
    "$BATS_TEST_TMPDIR/gw.out" "$BATS_TEST_TMPDIR/gw.log" || fail "not logged: $output"
  no_secret "$BATS_TEST_TMPDIR/ctl.err" "$BATS_TEST_TMPDIR/gw.out" "$BATS_TEST_TMPDIR/gw.log" \
    "$BATS_FILE_TMPDIR/redis.log"
}

@test "an ACL user limited to the prefix and the backend's commands runs every store operation" {
  load ../gateway/gateway
  run -0 ctl create --user alice --data '{"n":1}'
  id=$output
  run -0 ctl set "$id" '{"n":2}'
  run -0 ctl get "$id"
  assert_output --partial '"n":2'
  run -0 ctl rotate "$id"
  new=$output
  run -0 ctl list --user alice
  assert_output --partial "$new"
  run -0 ctl count
  assert_output 1
  run -0 ctl stats
  run -0 ctl check
  run -0 ctl purge
  run -0 ctl export
  assert_output --partial "$new"
  # the Python binding: an atomic update through the same user
  export STORE
  run -0 "$SG_PYTHON" -c '
import os, sessgate
store = sessgate.Store(os.environ["STORE"])
with store.update("'"$new"'") as s:
    s["n"] = s["n"] + 40
print(store.get("'"$new"'")["n"])'
  assert_output 42
  # the gateway, started with the ACL user's URI, answers for the session
  GW_SOCK="$BATS_TEST_TMPDIR/gw.sock"
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --mode auth \
    --log-file "$BATS_TEST_TMPDIR/gw.log" 2>>"$BATS_TEST_TMPDIR/gw.err" > "$BATS_TEST_TMPDIR/gw.pid"
  wait_for_socket "$GW_SOCK" 5
  run -0 gw_req -p REQUEST_METHOD=GET -p REQUEST_URI=/app -p "HTTP_COOKIE=sessgate=$new"
  assert_line "Status: 200 OK"
  assert_line "X-Session-User: alice"
  run -0 ctl delete "$new"
  run -0 ctl count
  assert_output 0
  no_secret "$BATS_TEST_TMPDIR/gw.log" "$BATS_TEST_TMPDIR/gw.err"
}

@test "that ACL user can do no more: other keys, FLUSHALL, CONFIG, KEYS and CLIENT are refused" {
  run -0 ctl create
  admin_cli SET "other:key" secret-data >/dev/null
  run app_cli GET "other:key"
  assert_output --partial NOPERM
  run app_cli SET "other:key" overwritten
  assert_output --partial NOPERM
  local -a c
  while read -r -a c; do
    run app_cli "${c[@]}"
    assert_output --partial NOPERM
  done <<'EOF'
FLUSHALL
FLUSHDB
CONFIG GET requirepass
KEYS sgacl:*
CLIENT LIST
ACL LIST
SCRIPT FLUSH
EOF
  [ "$(admin_cli GET other:key)" = secret-data ]
  [ "$(admin_cli DBSIZE)" -ge 2 ]
  # a store whose prefix lies outside the user's keys cannot write
  run -3 --separate-stderr sessgatectl \
    --store "redis+unix://sgapp@$REDIS_SOCK?password_file=$BATS_FILE_TMPDIR/app.pw&prefix=other:" create
  # (a create is one EVALSHA script since issue #13, no lease SET)
  [[ "$stderr" == *": Redis write failed: NOPERM"* ]] || fail "$stderr"
}

@test "secrets in the URI are refused, masked in the message, exit 2" {
  run -2 --separate-stderr sessgatectl --store "redis+unix://sgapp:$APP_PW@$REDIS_SOCK?prefix=$PREFIX" count
  [[ "$stderr" == *"store redis+unix://sgapp:***@$REDIS_SOCK?prefix=$PREFIX: passwords in the URI are not supported"* ]] ||
    fail "$stderr"
  printf '%s\n' "$stderr" > "$BATS_TEST_TMPDIR/err"
  run -2 --separate-stderr sessgatectl --store "redis+unix:$REDIS_SOCK?prefix=$PREFIX&password=$APP_PW" count
  [[ "$stderr" == *"&password=***: unknown query parameter 'password'"* ]] || fail "$stderr"
  printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/err"
  run -2 --separate-stderr sessgatectl --store "redis://sgapp:$APP_PW@127.0.0.1:1/0" count
  printf '%s\n' "$stderr" >> "$BATS_TEST_TMPDIR/err"
  no_secret "$BATS_TEST_TMPDIR/err"
}

@test "a password file every user can read is refused; one the caller cannot open is a clear store error" {
  cp "$BATS_FILE_TMPDIR/app.pw" "$BATS_TEST_TMPDIR/open.pw"
  chmod 0644 "$BATS_TEST_TMPDIR/open.pw"
  run -3 --separate-stderr sessgatectl \
    --store "redis+unix://sgapp@$REDIS_SOCK?password_file=$BATS_TEST_TMPDIR/open.pw&prefix=$PREFIX" count
  [[ "$stderr" == *"password_file $BATS_TEST_TMPDIR/open.pw is readable or writable by every user (chmod o-rwx"* ]] ||
    fail "$stderr"
  run -3 --separate-stderr sessgatectl \
    --store "redis+unix://sgapp@$REDIS_SOCK?password_file=$BATS_TEST_TMPDIR/none.pw&prefix=$PREFIX" count
  [[ "$stderr" == *"cannot read password_file $BATS_TEST_TMPDIR/none.pw: No such file or directory"* ]] ||
    fail "$stderr"
  mkfifo "$BATS_TEST_TMPDIR/fifo.pw"
  chmod 0600 "$BATS_TEST_TMPDIR/fifo.pw"
  run -3 --separate-stderr timeout 10 "$SG_CTL" \
    --store "redis+unix://sgapp@$REDIS_SOCK?password_file=$BATS_TEST_TMPDIR/fifo.pw&prefix=$PREFIX" count
  [[ "$stderr" == *"is not a regular file"* ]] || fail "$stderr"
}

@test "min_replicas=1 on a master without replicas: each write is an error, exit 3, never a success" {
  run -3 --separate-stderr sessgatectl --store "$STORE&min_replicas=1&timeout_ms=400" create
  [[ "$stderr" == *": write not confirmed by 1 replica in 200 ms (min_replicas=1; got 0)"* ]] ||
    fail "$stderr"
  # reads need no replica
  run -0 sessgatectl --store "$STORE&min_replicas=1" count
}

@test "as production runs: the gateway drops to its user and reads a password file only its group may read" {
  [ "$(id -u)" = 0 ] || skip "n/a when not root: needs system users"
  load ../deploy/deploy
  deploy_require_root
  deploy_ids
  deploy_users_create
  deploy_dir
  mkdir "$DDIR/etc" "$DDIR/tools" "$DDIR/log"
  chmod 0755 "$DDIR/etc"
  chown "$DU_GW" "$DDIR/log"
  # root:GROUP 0640, the way a package or an admin installs it
  cp "$BATS_FILE_TMPDIR/app.pw" "$DDIR/etc/redis.pw"
  chown "root:$DG_STORE" "$DDIR/etc/redis.pw"
  chmod 0640 "$DDIR/etc/redis.pw"
  cp "$SG_BUILDDIR/tests/tools/fcgi_client" "$SG_GATEWAY" "$SG_CTL" "$DDIR/tools/"
  # Redis over TCP on loopback, protected-mode yes (the default user has
  # a password): the socket of this file's server is not reachable for
  # other users, as a host's would be through /run/redis and its group.
  port=$(free_port)
  start_bg redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
    --dir "$DDIR" --save '' --appendonly no --daemonize no \
    --aclfile "$BATS_FILE_TMPDIR/users.acl" --logfile "$DDIR/redis.log" > /dev/null
  for i in $(seq 100); do
    REDISCLI_AUTH=$ADMIN_PW redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  S="redis://sgapp@127.0.0.1:$port/0?password_file=$DDIR/etc/redis.pw&prefix=$PREFIX"
  # the administrator (in the group) creates a session as himself
  run -0 as "$DU_CTL" "$DDIR/tools/sessgatectl" --store "$S" create --user carol
  id=$output
  # a user outside the group cannot read the file: a clear error, exit 3
  run -3 as nobody "$DDIR/tools/sessgatectl" --store "$S" count
  assert_output --partial "cannot read password_file $DDIR/etc/redis.pw: Permission denied (it must be readable by the user"
  # the gateway, started as root, drops to its user; its workers open the store
  start_bg "$DDIR/tools/sessgate" --store "$S" --listen "unix:$DDIR/gw.sock" --mode auth \
    --user "$DU_GW" --socket-mode 0666 --workers 2 --log-file "$DDIR/log/gw.log" \
    2>"$DDIR/gw.err" > "$DDIR/gw.pid"
  wait_for_socket "$DDIR/gw.sock" 5
  run as "$DU_APP" "$DDIR/tools/fcgi_client" -s "$DDIR/gw.sock" -t 10 -r authorizer \
    -p REQUEST_METHOD=GET -p REQUEST_URI=/x -p "HTTP_COOKIE=sessgate=$id"
  [ "$status" = 0 ] || fail "$output $(cat "$DDIR/gw.err" "$DDIR/log/gw.log")"
  assert_output --partial "Variable-SESSION_USER: carol"
  pid=$(cat "$DDIR/gw.pid")
  for p in $(pgrep -P "$pid"); do
    [ "$(stat -c %U "/proc/$p")" = "$DU_GW" ] || fail "worker $p is not $DU_GW"
  done
  stop_all
  no_secret "$DDIR/log/gw.log" "$DDIR/gw.err" "$DDIR/redis.log"
  deploy_users_remove
  deploy_dirs_remove
}
