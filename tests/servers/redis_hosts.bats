#!/usr/bin/env bats
# tests/servers/redis_hosts.bats - examples/redis-two-hosts run for real on
# loopback: web host A and web host B (each its own nginx from
# nginx.conf.in, its own gateways from gateways.in reading SESSGATE_STORE
# from sessgate.env, its own copy of the HTTP app) and the one Redis of
# "host C", started from redis.conf.in.  Every file is the example's own,
# rendered with tests/helpers/servers.bash, so a broken example fails here.
#
# It shows what the example is for: a session started on A is live on B,
# a logout on B ends it on A, a forged cookie is refused by both, and A
# going down does not take the sessions with it.  (Not in tests/run's Redis
# pass list: this file is about Redis only and starts its own server.)
load ../helpers/common
load ../helpers/servers
load ../helpers/server_checks

EX_DIR=examples/redis-two-hosts

# rcli ARGS...: redis-cli as the example's "admin" user (the password in
# the environment, as the example says; the default user is off).
rcli() { REDISCLI_AUTH=$ADMIN_PW redis-cli --no-auth-warning --user admin -p "$SRV_REDIS_PORT" "$@"; }

# start_redis: host C, from redis.conf.in (persistence on, as shipped).
start_redis() {
  SRV_RUNDIR=$HOST_C
  SRV_REDIS_BIND=127.0.0.1
  # Two fresh passwords; the config gets only their SHA-256.
  ADMIN_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  SESSGATE_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  SRV_ADMIN_PASSWORD_SHA256=$(printf '%s' "$ADMIN_PW" | sha256sum | cut -d' ' -f1)
  SRV_SESSGATE_PASSWORD_SHA256=$(printf '%s' "$SESSGATE_PW" | sha256sum | cut -d' ' -f1)
  SRV_REDIS_PORT=$(srv_free_port) || return 1
  srv_render "$SRV_ROOT/$EX_DIR/redis.conf.in" "$HOST_C/redis.conf" || return 1
  srv_bg redis-server redis-server "$HOST_C/redis.conf"
  local pid=$SRV_LAST_PID i
  srv_wait_port "$SRV_REDIS_PORT" 30 "$pid" || return 1
  for i in $(seq 100); do
    [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  return 1
}

# start_host DIR NAME: one web host: its gateways (every line of
# gateways.in, with the store from sessgate.env, sourced by a shell as an
# admin's service would), its app, its nginx.  Sets SRV_PORT.
start_host() {
  local dir=$1 name args
  SRV_RUNDIR=$dir
  SRV_HOST_NAME=$2
  SRV_REDIS_HOST=127.0.0.1
  mkdir -p "$dir/tmp"
  # /etc/sessgate/redis.pw of the host (root:sessgate 0640 there; the
  # test's gateways run as the test's user, so 0600)
  SRV_PASSWORD_FILE=$dir/redis.pw
  (umask 077 && printf '%s\n' "$SESSGATE_PW" > "$SRV_PASSWORD_FILE")
  : >> "$dir/pids"
  srv_render "$SRV_ROOT/$EX_DIR/sessgate.env.in" "$dir/sessgate.env" || return 1
  srv_render "$SRV_ROOT/$EX_DIR/gateways.in" "$dir/gateways" || return 1
  while read -r name args; do
    case $name in ''|'#'*) continue ;; esac
    rm -f "$dir/$name.sock"
    # shellcheck disable=SC2086  # ARGS are words, as in a unit's ExecStart
    srv_bg "$name" sh -c '. "$1" && export SESSGATE_STORE && shift && exec "$@"' \
      sh "$dir/sessgate.env" "$SRV_SESSGATE" --listen "unix:$dir/$name.sock" $args
    srv_wait_socket "$dir/$name.sock" 30 "$SRV_LAST_PID" || return 1
  done < "$dir/gateways"
  SRV_APP_PORT=$(srv_free_port) || return 1
  srv_bg app "$SG_PYTHON" "$SRV_APPS/echo_http.py" "$SRV_APP_PORT"
  srv_wait_port "$SRV_APP_PORT" 30 "$SRV_LAST_PID" || return 1
  srv_nginx "$SRV_ROOT/$EX_DIR/nginx.conf.in"
}

stop_everything() {
  local d
  for d in "$HOST_A" "$HOST_B" "$HOST_C"; do
    [ -d "$d" ] && SRV_RUNDIR=$d srv_stop_all
  done
  return 0
}

start_everything() {
  start_redis || return 1
  start_host "$HOST_A" web-a || return 1
  PORT_A=$SRV_PORT
  start_host "$HOST_B" web-b || return 1
  PORT_B=$SRV_PORT
}

setup_file() {
  require_tool nginx redis-server redis-cli curl
  [ -x "$SG_GATEWAY" ] || skip "gateway/sessgate is not built"
  HOST_A=$BATS_FILE_TMPDIR/a HOST_B=$BATS_FILE_TMPDIR/b HOST_C=$BATS_FILE_TMPDIR/c
  srv_init "$HOST_C" "$BATS_FILE_TMPDIR/unused.db"
  # A port picked free can be taken before it is bound: retry once.
  if ! start_everything; then
    stop_everything
    start_everything || { for SRV_RUNDIR in "$HOST_A" "$HOST_B" "$HOST_C"; do srv_failed || true; done; return 1; }
  fi
  # The URIs the web hosts use (TCP) and the one tools on host C use (its
  # socket): the same keys.
  STORE_TCP=$(sh -c '. "$1"; printf "%s\n" "$SESSGATE_STORE"' sh "$HOST_A/sessgate.env")
  STORE_UNIX="redis+unix://sessgate@$HOST_C/redis.sock?db=0&prefix=sessgate:&password_file=$HOST_A/redis.pw"
  export HOST_A HOST_B HOST_C PORT_A PORT_B STORE_TCP STORE_UNIX SRV_REDIS_PORT ADMIN_PW SESSGATE_PW
}

teardown_file() {
  stop_everything
}

setup() {
  # new_session and strict_ids (server_checks) create on SRV_STORE: the
  # shared Redis, over TCP like the web hosts.
  SRV_STORE=$STORE_TCP
}

url_a() { printf 'http://127.0.0.1:%s/%s\n' "$PORT_A" "${1#/}"; }
url_b() { printf 'http://127.0.0.1:%s/%s\n' "$PORT_B" "${1#/}"; }

# expect_app_user HOST ID USER: the app behind HOST got the gateway's
# X-Session-Id ID and X-Session-User USER, and HOST answered.
expect_app_user() {
  expect_status 200
  [ "$(header X-Web-Host)" = "$1" ] || fail "answered by $(header X-Web-Host), not $1"
  printf '%s\n' "$BODY" | grep -qx "X-Session-Id: $2" || fail "no X-Session-Id $2 at $1: $BODY"
  printf '%s\n' "$BODY" | grep -qx "X-Session-User: $3" || fail "no X-Session-User $3 at $1: $BODY"
}

@test "redis two hosts: Redis runs the example's settings and both hosts' gateways use its TCP URI" {
  [ "$(rcli CONFIG GET appendonly | sed -n 2p)" = yes ]
  [ "$(rcli CONFIG GET appendfsync | sed -n 2p)" = everysec ]
  [ "$(rcli CONFIG GET maxmemory-policy | sed -n 2p)" = noeviction ]
  [ "$(rcli CONFIG GET protected-mode | sed -n 2p)" = yes ]
  [ -S "$HOST_C/redis.sock" ]
  [[ $STORE_TCP == "redis://sessgate@127.0.0.1:$SRV_REDIS_PORT/0?prefix=sessgate:&timeout_ms=1000&password_file=$HOST_A/redis.pw" ]] ||
    fail "sessgate.env gave $STORE_TCP"
  # Six gateway processes (three per host) reach the one server over TCP.
  local pid name n=0
  for d in "$HOST_A" "$HOST_B"; do
    # (each host names its own password file)
    local want=${STORE_TCP/"$HOST_A/redis.pw"/"$d/redis.pw"}
    while read -r pid name; do
      case $name in gw-*) ;; *) continue ;; esac
      tr '\0' '\n' < "/proc/$pid/environ" | grep -qxF "SESSGATE_STORE=$want" ||
        fail "$d $name runs without SESSGATE_STORE=$want"
      n=$((n + 1))
    done < "$d/pids"
  done
  [ "$n" = 6 ] || fail "$n gateways, want 6"
}

@test "redis two hosts: a login on host A is a live session on host B" {
  req "$(url_a '/login/counter.sh?login=alice')"
  expect_status 200
  [ "$(header X-Web-Host)" = web-a ]
  local id
  id=$(set_cookie_id)
  [[ $id =~ ^$ID_RE$ ]] || fail "no session cookie from host A: $HDRS"
  req "$(url_b /private/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-b "$id" alice
  req "$(url_b /app/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-b "$id" alice
  req "$(url_a /private/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-a "$id" alice
  # It is one record in Redis, seen the same way over host C's socket.
  run -0 sessgatectl --store "$STORE_UNIX" get "$id"
  assert_output --partial '"user":"alice"'
  [ "$(rcli EXISTS "sessgate:$id")" = 1 ]
}

@test "redis two hosts: a session made with sessgatectl on host C's socket is seen through both hosts" {
  local id
  id=$(sessgatectl --store "$STORE_UNIX" create --user bob --data '{"k":"v"}')
  req "$(url_a /app/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-a "$id" bob
  printf '%s\n' "$BODY" | grep -qx 'X-Session-Data: {"k":"v"}' || fail "$BODY"
  req "$(url_b /app/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-b "$id" bob
}

@test "redis two hosts: a logout on host B ends the session on host A" {
  local id
  req "$(url_a '/login/counter.sh?login=carol')"
  expect_status 200
  id=$(set_cookie_id)
  [[ $id =~ ^$ID_RE$ ]] || fail "no session cookie from host A: $HDRS"
  req "$(url_a /private/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-a "$id" carol
  req "$(url_b '/login/counter.sh?logout=1')" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(header X-Web-Host)" = web-b ]
  header Set-Cookie | grep -q '^sessgate=[^;]*;.*Max-Age=0' || fail "cookie not expired: $HDRS"
  run -1 sessgatectl --store "$STORE_TCP" get "$id"
  # Host A now refuses it: a login redirect, and the app sees no session.
  req "$(url_a /private/x)" -H "Cookie: sessgate=$id"
  expect_status 302
  expect_login_location /login/counter.sh /private/x
  req "$(url_a /app/x)" -H "Cookie: sessgate=$id"
  expect_status 200
  if printf '%s\n' "$BODY" | grep -i -e "^X-Session-Id:" -e "^X-Session-User:"; then
    fail "host A still passes the logged-out session on"
  fi
}

@test "redis two hosts: forged, malformed, unknown and expired cookies are refused on both hosts" {
  local label val host
  while read -r label val; do
    for host in a b; do
      req "$("url_$host" /private/x)" -H "Cookie: sessgate=$val"
      [ "$STATUS" = 302 ] || fail "host $host: $label id: HTTP $STATUS: $BODY"
      if printf '%s\n' "$BODY" | grep -q '^echo'; then fail "host $host: $label id reached the app"; fi
      req "$("url_$host" /app/x)" -H "Cookie: sessgate=$val"
      expect_status 200
      if printf '%s\n' "$BODY" | grep -i -e "^X-Session-Id:" -e "^X-Session-User:"; then
        fail "host $host: $label id passed on as a session"
      fi
    done
  done < <(strict_ids)
  # Nor can a client hand the app a session identity in headers.
  local id
  id=$(new_session --user alice)
  for host in a b; do
    # (refused by the gateway with 403, or served without them)
    req "$("url_$host" /app/x)" "${SPOOF[@]}" -H "Cookie: sessgate=$id"
    expect_spoof_harmless "$id"
    [ "$STATUS" = 403 ] || expect_app_user "web-$host" "$id" alice
  done
}

@test "redis two hosts: Redis lets nobody in without a password, and the sessgate user only at its own keys" {
  run redis-cli -p "$SRV_REDIS_PORT" GET "sessgate:x"
  assert_output --partial NOAUTH
  run -3 --separate-stderr sessgatectl --store "redis://127.0.0.1:$SRV_REDIS_PORT/0?prefix=sessgate:" count
  [[ "$stderr" == *"NOAUTH"* ]] || fail "$stderr"
  rcli SET other:secret 1 > /dev/null
  local c
  for c in "GET other:secret" "FLUSHALL" "CONFIG SET protected-mode no" "KEYS sessgate:*"; do
    # shellcheck disable=SC2086  # words of a command
    run env REDISCLI_AUTH="$SESSGATE_PW" redis-cli --no-auth-warning --user sessgate -p "$SRV_REDIS_PORT" $c
    assert_output --partial NOPERM
  done
  rcli DEL other:secret > /dev/null
  # and neither password is in any log of the three hosts
  ! grep -rqF -e "$ADMIN_PW" -e "$SESSGATE_PW" --include='*.log' "$HOST_A" "$HOST_B" "$HOST_C" ||
    fail "a password is in a log"
}

# Last but one: it stops host A's gateways.
@test "redis two hosts: with host A's gateways down, host B still serves its sessions and A fails closed" {
  local id
  id=$(new_session --user dave)
  SRV_RUNDIR=$HOST_A srv_stop gw-any
  SRV_RUNDIR=$HOST_A srv_stop gw-user
  req "$(url_b /private/x)" -H "Cookie: sessgate=$id"
  expect_app_user web-b "$id" dave
  req "$(url_a /private/x)" -H "Cookie: sessgate=$id"
  expect_closed
  if printf '%s\n' "$BODY" | grep -q '^echo'; then fail "host A's app ran without its gateway"; fi
}

@test "redis two hosts: no sanitizer report or crash in any log" {
  local d
  for d in "$HOST_A" "$HOST_B" "$HOST_C"; do
    SRV_RUNDIR=$d chk_logs_clean
  done
}
