#!/usr/bin/env bats
# tests/bindings/openresty.bats - examples/openresty under a real nginx with
# Debian's libnginx-mod-http-lua (LuaJIT): access_by_lua_block checks the
# sessgate session (GDBM store) with the LuaJIT build of the Lua module,
# and a client can neither pass without a session nor inject identity.

load ../helpers/common
load ../helpers/servers
load bindings

setup_file() {
  local moddir=/usr/lib/nginx/modules
  [ -f "$moddir/ngx_http_lua_module.so" ] || skip "libnginx-mod-http-lua is not installed"
  [ -f "$SG_BUILDDIR/bindings/lua/luajit/sessgate_core.so" ] ||
    skip "the LuaJIT module is not built (libluajit2-5.1-dev)"
  export STORE="$BATS_FILE_TMPDIR/store/sessions.db"
  srv_init "$BATS_FILE_TMPDIR/run" "$STORE"
  SRV_MODDIR=$moddir SRV_STORE=$STORE SRV_RUNDIR=$SRV_RUNDIR
  SRV_LUA_PATH="$SG_SRCDIR/bindings/lua/?.lua;$SG_SRCDIR/examples/openresty/?.lua"
  SRV_LUA_CPATH="$SG_BUILDDIR/bindings/lua/luajit/?.so"
  SRV_PORT=$(srv_free_port)
  srv_render "$SG_SRCDIR/examples/openresty/nginx.conf.in" "$SRV_RUNDIR/nginx.conf"
  # The store exists before nginx starts (as sessgatectl or an app makes it).
  sessgatectl --store "$STORE" delete "$(sessgatectl --store "$STORE" create)"
  # Under make SANITIZE=address the module carries ASan, whose runtime must
  # be the first library of the process (as for the interpreters).
  local pre=()
  if [[ "${SG_SANITIZE:-}" == *address* ]]; then
    pre=(env LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)"
         ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
  fi
  srv_bg nginx "${pre[@]}" nginx -p "$SRV_RUNDIR" -e "$SRV_RUNDIR/error.log" \
    -c "$SRV_RUNDIR/nginx.conf" -g 'daemon off;'
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID" || srv_failed
  export SRV_PORT SRV_RUNDIR
}

teardown_file() {
  srv_stop_all
}

# req PATH [COOKIE] [HEADER...]: "STATUS BODY" (first line), no redirects.
req() {
  local path=$1 cookie=${2:-} h=()
  shift; shift || true
  [ -z "$cookie" ] || h+=(-H "Cookie: sessgate=$cookie")
  for x in "$@"; do h+=(-H "$x"); done
  curl -s -o "$BATS_TEST_TMPDIR/body" -w '%{http_code} %{redirect_url}' "${h[@]}" \
    "http://127.0.0.1:$SRV_PORT$path"
  printf ' %s\n' "$(head -n 1 "$BATS_TEST_TMPDIR/body")"
}

@test "nginx runs the Lua module on LuaJIT" {
  run -0 req /public
  assert_output --partial "200"
  run ! grep -E '\[(error|crit|alert|emerg)\]' "$SRV_RUNDIR/error.log"
}

@test "no cookie, a forged or a malformed one: 401, the content phase never runs" {
  run -0 req /app/x
  assert_output --regexp '^401 '
  run -0 req /app/x 0b5c1d2e-0000-4000-8000-000000000000
  assert_output --regexp '^401 '
  run -0 req /app/x '../../etc/passwd'
  assert_output --regexp '^401 '
}

@test "a live session passes; the app sees the session and its user" {
  id=$(sessgatectl --store "$STORE" create --user alice)
  run -0 req /app/x "$id"
  assert_output "200  session $id user alice header-user alice"
  anon=$(sessgatectl --store "$STORE" create)
  run -0 req /app/x "$anon"
  assert_output "200  session $anon user - header-user -"
}

@test "a client's own X-Session-User never reaches the app" {
  anon=$(sessgatectl --store "$STORE" create)
  run -0 req /app/x "$anon" "X-Session-User: root" "X-Session-Id: forged"
  assert_output "200  session $anon user - header-user -"
}

@test "/private/ needs a logged-in user: anonymous and absent sessions go to the login page" {
  anon=$(sessgatectl --store "$STORE" create)
  run -0 req /private/page "$anon"
  assert_output --regexp "^302 http://127.0.0.1:$SRV_PORT/login\?next=%2Fprivate%2Fpage "
  id=$(sessgatectl --store "$STORE" create --user bob)
  run -0 req /private/page "$id"
  assert_output "200  hello bob"
}

@test "a deleted or rotated session stops working at once, in every worker" {
  id=$(sessgatectl --store "$STORE" create --user carol)
  for i in 1 2 3 4; do run -0 req /app/x "$id"; assert_output --regexp '^200 '; done
  new=$(sessgatectl --store "$STORE" --rotate-grace 0 rotate "$id")
  for i in 1 2 3 4; do run -0 req /app/x "$id"; assert_output --regexp '^401 '; done
  run -0 req /app/x "$new"
  assert_output --regexp '^200 '
  sessgatectl --store "$STORE" delete "$new"
  for i in 1 2 3 4; do run -0 req /app/x "$new"; assert_output --regexp '^401 '; done
}

@test "the request extends the session's idle window (touch), as the gateway does" {
  id=$(sessgatectl --store "$STORE" create --user dave --idle 20)
  before=$(sessgatectl --store "$STORE" get "$id" | "$SG_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["accessed"])')
  sleep 2.1
  run -0 req /app/x "$id"
  after=$(sessgatectl --store "$STORE" get "$id" | "$SG_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["accessed"])')
  [ "$after" -gt "$before" ]
}
