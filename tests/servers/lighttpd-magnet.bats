#!/usr/bin/env bats
# tests/servers/lighttpd-magnet.bats - the session check inside lighttpd
# (mod_magnet, Debian lighttpd-modules-lua, Lua 5.4) through the sessgate
# Lua binding, configured exactly as examples/lighttpd-magnet ships it.  The
# authorizer's cases of tests/servers/lighttpd.bats (live, absent, forged,
# expired, spoof set, policy, login redirect, POST, hostile values, big
# cookies, fail closed) run against the magnet path, plus what only the
# magnet can do on lighttpd: set and refresh the cookie, and hand the
# session to an HTTP backend.
#
# As root, with a GDBM store, lighttpd drops to www-data after binding (as
# a Debian host runs it), so the magnet scripts, the binding and the store
# are used unprivileged; the store directory belongs to www-data and
# sessgatectl runs as www-data too.  (The Redis pass keeps the current
# user: the test redis-server's socket is private to it.)
# backends: gdbm redis
load ../helpers/common
load ../helpers/servers
load ../helpers/server_checks

# The store's owner when lighttpd runs unprivileged; empty otherwise.
magnet_user() {
  if [ "$(id -u)" = 0 ] && [ "${SG_STORE_BACKEND:-gdbm}" = gdbm ] && id www-data >/dev/null 2>&1 &&
     command -v runuser >/dev/null; then
    echo www-data
  fi
}

# sessgatectl (common.bash's) as the store's owner when there is one
# (new_session and make_expired use it).
sessgatectl() {
  if [ -n "${MAGNET_USER:-}" ]; then
    runuser -u "$MAGNET_USER" -- "${sg_valgrind[@]}" "$SG_CTL" "$@"
  else
    "${sg_valgrind[@]}" "$SG_CTL" "$@"
  fi
}

setup_file() {
  require_tool lighttpd curl
  [ -f /usr/lib/lighttpd/mod_magnet.so ] || skip "mod_magnet is missing (apt-get install lighttpd-modules-lua)"
  [ -f "$SG_BUILDDIR/bindings/lua/sessgate_core.so" ] || skip "the Lua binding is not built"
  MAGNET_USER=$(magnet_user)
  local store
  if [ -n "$MAGNET_USER" ]; then
    install -d -o "$MAGNET_USER" -g "$(id -gn "$MAGNET_USER")" -m 0700 "$BATS_FILE_TMPDIR/store"
    # the web user must traverse this run's own directories to its store
    local d=$BATS_FILE_TMPDIR
    while [ "$d" != "$(dirname "$BATS_RUN_TMPDIR")" ] && [ "$d" != / ]; do
      chmod o+x "$d"
      d=$(dirname "$d")
    done
    store=$BATS_FILE_TMPDIR/store/sessions.db
    sessgatectl --store "$store" purge > /dev/null
  else
    store=$(BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR make_store)
  fi
  srv_init "$BATS_FILE_TMPDIR/run" "$store"
  SRV_MAGNET_USER=$MAGNET_USER srv_start lighttpd_magnet || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT MAGNET_USER
  make_expired
}

teardown_file() {
  srv_stop_all
}

# A failed test shows what lighttpd said (a script error is logged there,
# and a dead lighttpd explains every failure after it).
teardown() {
  [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
  echo "--- lighttpd alive: $(kill -0 "$(awk '$2 == "lighttpd" {print $1}' "$SRV_RUNDIR/pids")" 2>&1 && echo yes)"
  tail -n 20 "$SRV_RUNDIR/error.log" "$SRV_RUNDIR/lighttpd.log" 2>/dev/null
}

@test "lighttpd magnet: the backend sees the stored session as SESSION_*" {
  chk_auth_session /app/whoami.cgi
}

@test "lighttpd magnet: without a cookie the backend sees no session" {
  chk_auth_none /app/whoami.cgi
}

@test "lighttpd magnet: a logged-in user reaches /private/" {
  local id
  id=$(new_session --user alice)
  req "$(srv_url /private/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "$BODY"
}

@test "lighttpd magnet: no user on /private/ gets a 302 to the login page with the original URI" {
  local anon
  anon=$(new_session)
  req "$(srv_url '/private/whoami.cgi?q=1&r=a%20b')" -H "Cookie: sessgate=$anon"
  expect_status 302
  expect_login_location /cgi/counter.sh '/private/whoami.cgi?q=1&r=a%20b'
  if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "backend ran"; fi
  req "$(srv_url /private/whoami.cgi)"
  expect_status 302
}

@test "lighttpd magnet: forged, malformed, unknown and expired ids never pass /private/" {
  chk_strict_user /private/whoami.cgi 302
}

@test "lighttpd magnet: policy session: no session is a 401 naming the login page; a session passes" {
  local anon
  req "$(srv_url '/session/whoami.cgi?x=1')"
  expect_status 401
  [ "$(header WWW-Authenticate)" = 'SessGate realm="sessgate"' ] || fail "$HDRS"
  [ "$(header X-Session-Login-Url)" = '/login?next=%2Fsession%2Fwhoami.cgi%3Fx%3D1' ] || fail "$HDRS"
  if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "backend ran"; fi
  anon=$(new_session)
  req "$(srv_url /session/whoami.cgi)" -H "Cookie: sessgate=$anon"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$anon" ] || fail "$BODY"
  [ -z "$(body_var SESSION_USER)" ] || fail "$BODY"
}

@test "lighttpd magnet: a save or a logout by another process is seen by the very next request" {
  local id
  id=$(new_session --user alice --data '{"k":"one"}')
  req "$(srv_url /private/whoami.cgi)" -H "Cookie: sessgate=$id"
  [ "$(body_var SESSION_DATA)" = '{"k":"one"}' ] || fail "$BODY"
  req "$(srv_url /private/whoami.cgi)" -H "Cookie: sessgate=$id"   # (kept copy)
  [ "$(body_var SESSION_DATA)" = '{"k":"one"}' ] || fail "$BODY"
  sessgatectl --store "$SRV_STORE" set "$id" '{"k":"two"}' > /dev/null
  req "$(srv_url /private/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_DATA)" = '{"k":"two"}' ] || fail "stale data: $BODY"
  sessgatectl --store "$SRV_STORE" delete "$id" > /dev/null
  req "$(srv_url /private/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 302
}

@test "lighttpd magnet: the check touches the session (its idle window moves)" {
  local id before after
  id=$(new_session --user alice --idle 20)         # touch interval 2 s
  before=$(sessgatectl --store "$SRV_STORE" get "$id" | "$SG_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["accessed"])')
  sleep 3
  req "$(srv_url /app/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 200
  after=$(sessgatectl --store "$SRV_STORE" get "$id" | "$SG_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["accessed"])')
  [ "$after" -gt "$before" ] || fail "accessed $before -> $after"
}

@test "lighttpd magnet: a session is made and its cookie set by lighttpd itself" {
  local id
  req "$(srv_url /anon/whoami.cgi)"
  expect_status 200
  id=$(set_cookie_id)
  [[ $id =~ ^$ID_RE$ ]] || fail "no session cookie: $HDRS"
  header Set-Cookie | grep -q "^sessgate=$id; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600$" ||
    fail "cookie attributes: $(header Set-Cookie)"
  header Cache-Control | grep -qx no-store || fail "no Cache-Control: no-store: $HDRS"
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "the backend did not get the new session: $BODY"
  [ "$(body_var SESSION_NEW)" = 1 ] || fail "SESSION_NEW: $BODY"
  sessgatectl --store "$SRV_STORE" get "$id" > /dev/null || fail "not in the store"
  # the next request carries it: same session, not new, no new cookie
  req "$(srv_url /anon/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "$BODY"
  [ -z "$(body_var SESSION_NEW)" ] || fail "$BODY"
  [ -z "$(header Set-Cookie)" ] || fail "cookie sent again without a touch: $HDRS"
}

@test "lighttpd magnet: a touch refreshes a persistent cookie; a dead one is expired" {
  local id
  id=$(new_session --idle 20)
  sleep 3
  req "$(srv_url /anon/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 200
  header Set-Cookie | grep -q "^sessgate=$id; .*Max-Age=3600" || fail "not refreshed: $HDRS"
  req "$(srv_url /app/whoami.cgi)" -H "Cookie: sessgate=$(cat /proc/sys/kernel/random/uuid)"
  expect_status 200
  header Set-Cookie | grep -q '^sessgate=; .*Max-Age=0' || fail "unknown id not expired: $HDRS"
  [ -z "$(body_var SESSION_ID)" ] || fail "$BODY"
}

@test "lighttpd magnet: an HTTP backend (mod_proxy) gets the session as headers, never the client's" {
  local id
  id=$(new_session --user alice --data '{"k":"v"}')
  req "$(srv_url /papp/x)" -H "Cookie: sessgate=$id"
  expect_status 200
  printf '%s\n' "$BODY" | grep -qx "X-Session-Id: $id" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx "X-Session-User: alice" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx 'X-Session-Data: {"k":"v"}' || fail "$BODY"
  chk_spoof /papp/x
  chk_spoof /papp/x "$id"
  chk_spoof_folded /papp/x "$id"
}

@test "lighttpd magnet: a POST is checked without touching its body, which reaches the backend" {
  chk_auth_post /app/whoami.cgi
}

@test "lighttpd magnet: a session header spelled with any separator byte never reaches a backend" {
  local id
  id=$(new_session --user alice)
  chk_spoof_folded /app/whoami.cgi
  chk_spoof_folded /app/whoami.cgi "$id"
  chk_spoof_folded /private/whoami.cgi "$id"
}

@test "lighttpd magnet: the spoof set never reaches the backend, and a real session survives it" {
  local id
  id=$(new_session --user alice)
  chk_spoof /app/whoami.cgi
  chk_spoof /app/whoami.cgi "$id"
  chk_spoof /private/whoami.cgi "$id"
  [ "${SPOOF_SERVED:-0}" -ge 1 ] || fail "stripped requests should be served"
}

@test "lighttpd magnet: duplicate and comma-joined session cookies never choose a session" {
  local a b
  a=$(new_session --user alice)
  b=$(new_session --user mallory)
  chk_cookie_copies /app/whoami.cgi "$a" "$b"
}

@test "lighttpd magnet: CR, LF, NUL and non-ASCII in session values never break a header" {
  chk_hostile_values /app/whoami.cgi
}

@test "lighttpd magnet: a 16 KB cookie and 1,000 cookies are handled without an error" {
  chk_big_cookies /app/whoami.cgi
}

@test "lighttpd magnet: session data over the inject cap is left out and flagged, never a 500" {
  chk_truncated /app/whoami.cgi
}

@test "lighttpd magnet: a store that cannot be opened fails closed (503)" {
  local id
  id=$(new_session --user alice)
  req "$(srv_url /down/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_closed
  expect_status 503
}

@test "lighttpd magnet: lighttpd's worker runs as the web user when started as root" {
  [ -n "${MAGNET_USER:-}" ] || skip "n/a: not root with a GDBM store (the unprivileged run needs both)"
  local lpid
  lpid=$(awk '$2 == "lighttpd" {print $1}' "$SRV_RUNDIR/pids")
  lpid=$(pgrep -P "$lpid" -x lighttpd || echo "$lpid")
  [ "$(ps -o user= -p "$lpid" | tr -d ' ')" = "$MAGNET_USER" ] || fail "lighttpd runs as $(ps -o user= -p "$lpid")"
  [ "$(stat -c %U "$SRV_STORE")" = "$MAGNET_USER" ] || fail "store owner $(stat -c %U "$SRV_STORE")"
}

@test "the magnet's cookie rule agrees with the gateway's on every case of cookie_cases.txt" {
  local pre=()     # an ASan-built binding needs ASan's runtime first
  [[ "${SG_SANITIZE:-}" != *address* ]] ||
    pre=(LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
  run -0 env "${pre[@]}" LUA_PATH="$SG_SRCDIR/bindings/lua/?.lua;$SG_SRCDIR/examples/lighttpd-magnet/?.lua;;" \
    LUA_CPATH="$SG_BUILDDIR/bindings/lua/?.so;;" lua5.4 - "$SG_SRCDIR/tests/unit/cookie_cases.txt" <<'LUA'
local m = require "sessgate_magnet"
local ID1 = "0b5c0b5c-0b5c-4b5c-8b5c-0b5c0b5c0b5c"
local ID2 = "1a2b3c4d-1a2b-4c3d-9e8f-1a2b3c4d5e6f"
local esc = { t = "\t", v = "\v", f = "\f", ["\\"] = "\\" }
local function unescape(s)          -- \t \v \f \\ \xHH, left to right
  local out, i = {}, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" and s:sub(i + 1, i + 1) == "x" then
      out[#out + 1] = string.char(tonumber(s:sub(i + 2, i + 3), 16)); i = i + 4
    elseif c == "\\" and esc[s:sub(i + 1, i + 1)] then
      out[#out + 1] = esc[s:sub(i + 1, i + 1)]; i = i + 2
    else
      out[#out + 1] = c; i = i + 1
    end
  end
  return table.concat(out)
end
local n, bad = 0, 0
for line in io.lines(arg[1]) do
  if line ~= "" and line:sub(1, 1) ~= "#" then
    local want, header = line:match("^([^\t]+)\t(.*)$")
    header = unescape(header):gsub("ID1", ID1):gsub("ID2", ID2)
    local res, id = m.cookie_find(header, "sessgate")
    local got = res == "one" and (id == ID1 and "ID1" or id == ID2 and "ID2" or id) or
                (res == "none" and "-" or "bad")
    n = n + 1
    if got ~= want then bad = bad + 1; print(("case %q: got %s, want %s"):format(header, got, want)) end
  end
end
print(("%d cases, %d wrong"):format(n, bad))
os.exit(bad == 0 and n > 20 and 0 or 1)
LUA
}

# Last: after every other test has run.
@test "lighttpd magnet: no sanitizer report or crash in any server log" {
  chk_logs_clean
}
