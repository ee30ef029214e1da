#!/usr/bin/env bats
# tests/servers/nginx-module.bats - ngx_http_sessgate_module (nginx/) loaded
# by Debian's packaged nginx with load_module, configured as
# examples/nginx-module/nginx.conf.in: the session is checked inside nginx,
# with no gateway.  The nginx suite's auth-mode cases (live, absent,
# forged/malformed/unknown/expired, the spoof set, policy, login redirect)
# run against it, asserting on what the backends print, and so do the
# gateway's writes (tests/servers/nginx.bats, tests/gateway/auth.bats): an
# anonymous session and its cookie, the cookie's attributes, the expiring
# cookie for an id that names no live session, renewal with its grace and
# never on a denial, flash messages taken once.  Plus the module's own
# promise: a store lock held by another process never blocks the worker
# (it serves other requests meanwhile) and gives 503 past the timeout, for
# a create as for a lookup; a renewal then is skipped, not a 503.
#
# As production runs: as root, nginx's master binds and its worker runs as
# an unprivileged user of this run, in the group that shares the store
# (files 0660); not root, everything runs as the caller.
# backends: gdbm
load ../helpers/common
load ../helpers/servers
load ../helpers/server_checks
# Python queues flash messages (sets the module paths, ASan preload).
load ../bindings/bindings

MODULE=$SG_BUILDDIR/nginx/ngx_http_sessgate_module.so

# A short user/group name unique to this file's run (as tests/deploy).
nm_user() {
  printf 'sgnm%s' "$(printf '%s' "$BATS_FILE_TMPDIR" | cksum | awk '{ printf "%06x", $1 % 16777216 }')"
}

# nm_pre: NM_PRE=(the prefix that runs the packaged nginx).  Under make
# SANITIZE=address the module carries ASan, whose runtime must be the
# process's first library (as tests/bindings/openresty.bats).
nm_pre() {
  NM_PRE=()
  if [[ "${SG_SANITIZE:-}" == *address* ]]; then
    NM_PRE=(env LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)"
            ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
  fi
}
nm_nginx() { nm_pre; "${NM_PRE[@]}" nginx "$@"; }

# nm_refused 'HTTP BLOCK' TEXT: nginx -t refuses a configuration that loads
# the module with that http block, saying TEXT.
nm_refused() {
  local conf=$BATS_TEST_TMPDIR/t.conf
  printf 'load_module %s;\nevents {}\nhttp { %s }\n' "$MODULE" "$1" > "$conf"
  run nm_nginx -t -q -g "pid $BATS_TEST_TMPDIR/p; error_log stderr;" -c "$conf"
  assert_failure
  assert_output --partial "$2"
}

setup_file() {
  require_tool nginx fcgiwrap curl
  [ -f "$MODULE" ] || skip "the nginx module is not built (needs nginx-dev)"
  local store_dir=$BATS_FILE_TMPDIR/store
  srv_init "$BATS_FILE_TMPDIR/run" "$store_dir/sessions.db"
  SRV_MODULE=$MODULE
  mkdir -p "$store_dir"
  sessgatectl --store "$SRV_STORE" --group purge > /dev/null
  if [ "$(id -u)" = 0 ]; then
    NM_USER=$(nm_user)
    userdel "$NM_USER" 2>/dev/null || true
    getent group "$NM_USER" > /dev/null && groupdel "$NM_USER"
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --user-group "$NM_USER"
    echo "$NM_USER" > "$BATS_FILE_TMPDIR/nm.user"
    # The store's directory and files belong to its group (0660 files,
    # 2770 directory: libsessgate may create a checkpoint or log there).
    chgrp -R "$NM_USER" "$store_dir"
    chmod 2770 "$store_dir"
    SRV_USER_LINE="user $NM_USER $NM_USER;"
    # The worker must traverse the test's directories (bats makes them 0700).
    local d=$BATS_FILE_TMPDIR
    while [ "$d" != / ] && [ "$d" != "${TMPDIR:-/tmp}" ]; do
      chmod o+x "$d"
      d=$(dirname "$d")
    done
    chmod o+x "$SRV_RUNDIR"
  fi
  srv_fcgiwrap || srv_failed
  # nginx's worker connects to fcgiwrap as its own user (spawn-fcgi -M).
  chmod 0666 "$SRV_RUNDIR/fcgiwrap.sock"
  srv_echo || srv_failed
  SRV_PORT=$(srv_free_port)
  srv_render "$SG_SRCDIR/examples/nginx-module/nginx.conf.in" "$SRV_RUNDIR/nginx.conf" ||
    srv_failed
  nm_pre
  srv_bg nginx "${NM_PRE[@]}" nginx -p "$SRV_RUNDIR" -e "$SRV_RUNDIR/error.log" \
    -c "$SRV_RUNDIR/nginx.conf" -g 'daemon off;'
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID" || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT
  make_expired
}

teardown_file() {
  srv_stop_all
  if [ -f "$BATS_FILE_TMPDIR/nm.user" ]; then
    local u
    u=$(cat "$BATS_FILE_TMPDIR/nm.user")
    userdel "$u" 2>/dev/null || userdel -f "$u" 2>/dev/null || true
    if getent group "$u" > /dev/null; then groupdel "$u" || true; fi
  fi
}

teardown() {
  stop_all
}

@test "nginx module: the packaged nginx loads it and its worker runs unprivileged" {
  req "$(srv_url /plain/)"
  expect_status 200
  run ! grep -E '\[(emerg|alert|crit)\]' "$SRV_RUNDIR/error.log"
  if [ "$(id -u)" = 0 ]; then
    run ps -o user= --ppid "$(cat "$SRV_RUNDIR/nginx.pid")"
    assert_output "$(cat "$BATS_FILE_TMPDIR/nm.user")"
    run stat -c '%G %a' "$SRV_STORE"
    assert_output "$(cat "$BATS_FILE_TMPDIR/nm.user") 660"
  fi
}

@test "nginx module: a live session reaches the FastCGI backend as SESSION_*" {
  chk_auth_session /app/
  req "$(srv_url /app/)" -H "Cookie: sessgate=$(new_session)"
  [[ $(body_var SESSION_CSRF) =~ ^[0-9a-f]{64}$ ]] || fail "no CSRF token: $BODY"
}

@test "nginx module: without a cookie the backend sees no session" {
  chk_auth_none /app/
}

@test "nginx module: the HTTP backend gets X-Session-* from the variables" {
  local id
  id=$(new_session --user alice --data '{"k":"v"}')
  req "$(srv_url /papp/x)" -H "Cookie: sessgate=$id"
  expect_status 200
  printf '%s\n' "$BODY" | grep -qx "X-Session-Id: $id" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx "X-Session-User: alice" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx 'X-Session-Data: {"k":"v"}' || fail "$BODY"
  # no session: proxy_set_header with an empty variable sends nothing
  req "$(srv_url /papp/x)"
  expect_status 200
  if printf '%s\n' "$BODY" | grep -i '^X-Session-'; then fail "headers without a session"; fi
}

@test "nginx module: forged, malformed, unknown and expired ids are never adopted" {
  local label val
  while read -r label val; do
    req "$(srv_url /app/)" -H "Cookie: sessgate=$val"
    expect_status 200
    [ -z "$(body_var SESSION_ID)" ] || fail "$label id gave a session: $BODY"
    [ -z "$(body_var SESSION_USER)" ] || fail "$label id gave a user: $BODY"
  done < <(strict_ids)
}

@test "nginx module: policy session: 401 without a live session, the backend with one" {
  req "$(srv_url /sess/)"
  expect_status 401
  header WWW-Authenticate | grep -q '^SessGate realm="sessgate"' || fail "$HDRS"
  if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "backend ran"; fi
  local id
  id=$(new_session)
  req "$(srv_url /sess/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "$BODY"
}

@test "nginx module: a logged-in user reaches /private/" {
  local id
  id=$(new_session --user alice)
  req "$(srv_url /private/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

@test "nginx module: no user on /private/ redirects to the login URL with next=" {
  local anon
  anon=$(new_session)
  req "$(srv_url '/private/a%20b?q=1&r=2')" -H "Cookie: sessgate=$anon"
  expect_status 302
  expect_login_location /login '/private/a%20b?q=1&r=2'
  if printf '%s\n' "$BODY" | grep -q '^whoami'; then fail "backend ran"; fi
  req "$(srv_url /private/x)"
  expect_status 302
}

@test "nginx module: forged, malformed, unknown and expired ids never pass /private/" {
  chk_strict_user /private/ 302
}

@test "nginx module: without a user /api/ answers 401 with WWW-Authenticate" {
  chk_strict_user /api/ 401
  req "$(srv_url /api/x)"
  expect_status 401
  header WWW-Authenticate | grep -q '^SessGate realm="sessgate"' || fail "$HDRS"
  local id
  id=$(new_session --user alice)
  req "$(srv_url /api/x)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

@test "nginx module: the spoof set never reaches the FastCGI or HTTP backend" {
  local id
  id=$(new_session --user alice)
  chk_spoof /app/
  chk_spoof /app/ "$id"
  chk_spoof /private/ "$id"
  chk_spoof /papp/x
  chk_spoof /papp/x "$id"
  # removed, not refused: the module serves the request without them
  req "$(srv_url /app/)" "${SPOOF[@]}" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  printf '%s\n' "$BODY" | grep -qx "HTTP_X_SESSION_ID=" && fail "an empty look-alike reached the backend"
  printf '%s\n' "$BODY" | grep -q '^HTTP_X_SESSION\|^HTTP_SESSION\|^HTTP_VARIABLE' &&
    fail "a look-alike reached the backend: $BODY"
  true
}

@test "nginx module: a session header spelled with any separator byte never reaches a backend" {
  local id
  id=$(new_session --user alice)
  chk_spoof_folded /app/
  chk_spoof_folded /app/ "$id"
  chk_spoof_folded /papp/x "$id"
}

@test "nginx module: duplicate and comma-joined session cookies never choose a session" {
  local a b
  a=$(new_session --user alice)
  b=$(new_session --user mallory)
  chk_cookie_copies /app/ "$a" "$b"
}

@test "nginx module: CR, LF, NUL and non-ASCII in session values never break a header" {
  chk_hostile_values /app/
  chk_hostile_values /papp/x
}

@test "nginx module: a 16 KB cookie and 1,000 cookies are handled without an error" {
  chk_big_cookies /app/
}

@test "nginx module: session data over the inject cap is left out and flagged, never a 500" {
  chk_truncated /app/
}

@test "nginx module: a POST is authorized and its body reaches the backend" {
  chk_auth_post /app/
}

@test "nginx module: a use of the session extends its idle window (touch)" {
  local id before after i
  # idle 20 s: touch interval 2 s
  id=$(new_session --user alice --idle 20)
  before=$(sessgatectl --store "$SRV_STORE" get "$id" | sed -n 's/.*"accessed": *\([0-9]*\).*/\1/p')
  [ -n "$before" ] || fail "no accessed field"
  sleep 3
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "$BODY"
  after=$(sessgatectl --store "$SRV_STORE" get "$id" | sed -n 's/.*"accessed": *\([0-9]*\).*/\1/p')
  [ "$after" -gt "$before" ] || fail "accessed not moved: $before -> $after"
}

@test "nginx module: the worker's kept copy never outlives a write: data, logout, a lock-holder's reads" {
  local id t0 ms
  id=$(new_session --user alice --data '{"k":"one"}')
  req "$(srv_url /papp/x)" -H "Cookie: sessgate=$id"
  printf '%s\n' "$BODY" | grep -qx 'X-Session-Data: {"k":"one"}' || fail "$BODY"
  # A save by another process is seen by the very next request ...
  sessgatectl --store "$SRV_STORE" set "$id" '{"k":"two"}' > /dev/null
  req "$(srv_url /papp/x)" -H "Cookie: sessgate=$id"
  printf '%s\n' "$BODY" | grep -qx 'X-Session-Data: {"k":"two"}' || fail "stale data: $BODY"
  # ... and a session kept but unchanged is served while another process
  # holds the lock (and writes nothing): no wait, no 503.
  t0=$(date +%s%N)
  req "$(srv_url /short/)" -H "Cookie: sessgate=$id"
  STORE=$SRV_STORE hold_store_lock -x 5
  req "$(srv_url /short/)" -H "Cookie: sessgate=$id"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  stop_pid "$HOLDER"
  # (the copy lives one second: on a machine too slow for that, it waited)
  if [ "$ms" -lt 800 ]; then
    expect_status 200
    [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  fi
  # A logout (delete) by another process: the next request has no session.
  req "$(srv_url /private/)" -H "Cookie: sessgate=$id"
  expect_status 200
  sessgatectl --store "$SRV_STORE" delete "$id" > /dev/null
  req "$(srv_url /private/)" -H "Cookie: sessgate=$id"
  expect_status 302
}

@test "nginx module: a lock held past sessgate_lock_timeout is 503, and the worker serves others meanwhile" {
  local id t0 t1 pid out=$BATS_TEST_TMPDIR/held.out
  id=$(new_session --user alice)
  STORE=$SRV_STORE hold_store_lock -x 6
  t0=$(date +%s%N)
  curl -s -o "$out" -w '%{http_code}\n' --max-time 20 -H "Cookie: sessgate=$id" \
    "$(srv_url /short/)" > "$out.status" 3>&- &
  pid=$!
  sleep 0.2
  # One worker: while that request waits, the same worker answers others.
  local i
  for i in 1 2 3; do
    t1=$(date +%s%N)
    req "$(srv_url /plain/)"
    expect_status 200
    [ $(( ($(date +%s%N) - t1) / 1000000 )) -lt 500 ] ||
      fail "a request without a session check took $(( ($(date +%s%N) - t1) / 1000000 )) ms"
    req "$(srv_url /app/)"        # a session check without a cookie
    expect_status 200
  done
  wait "$pid"
  [ "$(cat "$out.status")" = 503 ] || fail "held lock: HTTP $(cat "$out.status"), want 503"
  t1=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$t1" -ge 900 ] && [ "$t1" -lt 5000 ] || fail "503 after $t1 ms (timeout 1000 ms)"
  grep -q 'sessgate: store .*the lock was held by another process' "$SRV_RUNDIR/error.log" ||
    fail "no error log line: $(tail -n 5 "$SRV_RUNDIR/error.log")"
  stop_pid "$HOLDER"
  req "$(srv_url /short/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

@test "nginx module: a lock released before the timeout: the waiting request is served" {
  local id t0 ms
  id=$(new_session --user alice)
  STORE=$SRV_STORE hold_store_lock -x 30
  ( sleep 0.7; kill "$HOLDER" ) 3>&- &
  t0=$(date +%s%N)
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  wait
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  [ "$ms" -ge 400 ] || fail "served in $ms ms: the lock was not waited for"
}

@test "nginx module: a shared lock (another reader) does not hold a lookup up" {
  local id
  id=$(new_session --user alice)
  STORE=$SRV_STORE hold_store_lock -s 30
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

@test "nginx module: sessgate_csrf decides tests/unit/csrf_cases.txt as the gateway's --csrf" {
  local id tok expect method site origin host token code n=0 args
  id=$(new_session --user alice)
  req "$(srv_url /csrf/)" -H "Cookie: sessgate=$id"
  expect_status 200
  tok=$(body_var SESSION_CSRF)
  [[ $tok =~ ^[0-9a-f]{64}$ ]] || fail "no token: $BODY"
  while IFS=$'\t' read -r expect method site origin host token; do
    case $expect in allow|refuse) ;; *) continue ;; esac
    args=(-X "$method" -H "Host: $host")
    [ "$site" = - ] || args+=(-H "Sec-Fetch-Site: $site")
    [ "$origin" = - ] || args+=(-H "Origin: $origin")
    case $token in
      ok) args+=(-H "X-CSRF-Token: $tok") ;;
      wrong) args+=(-H "X-CSRF-Token: $(printf '%064d' 0)") ;;
    esac
    [ "$token" = nosession ] || args+=(-H "Cookie: sessgate=$id")
    [ "$method" != HEAD ] || args+=(-I)
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${args[@]}" "$(srv_url /csrf/)")
    if [ "$expect" = allow ]; then
      [ "$code" = 200 ] || fail "$method site=$site origin=$origin host=$host token=$token: $code, want 200"
    else
      [ "$code" = 403 ] || fail "$method site=$site origin=$origin host=$host token=$token: $code, want 403"
    fi
    n=$((n + 1))
  done < "$SG_SRCDIR/tests/unit/csrf_cases.txt"
  [ "$n" -ge 20 ] || fail "only $n cases read"
  grep -q 'sessgate: unsafe request without same-origin proof' "$SRV_RUNDIR/error.log" ||
    fail "no error log line"
  # off elsewhere: a POST without a token passes /app/
  req "$(srv_url /app/)" -X POST -H "Cookie: sessgate=$id" -H 'Origin: https://evil.example'
  expect_status 200
}

@test "nginx module: a Redis store or a policy without a store is refused at start" {
  nm_refused 'sessgate_store redis://127.0.0.1:6379/0;' 'GDBM stores only'
  nm_refused 'server { location / { sessgate_policy user; } }' 'no sessgate_store'
  nm_refused 'sessgate_cookie "a;b";' 'not a valid cookie name'
}

# The gateway's writes (issue #14): nginx.bats and auth.bats cases.

@test "nginx module: an anonymous session is created and its cookie sent (sessgate_anonymous)" {
  chk_anon_session /anon/ '; Path=/; HttpOnly; SameSite=Lax'
  req "$(srv_url /anon/)"
  header Cache-Control | grep -qx 'no-store' || fail "no Cache-Control: no-store: $HDRS"
  header Vary | grep -qx 'Cookie' || fail "no Vary: Cookie: $HDRS"
  # without sessgate_anonymous nothing is created
  req "$(srv_url /app/)"
  [ -z "$(set_cookie_id)" ] && [ -z "$(body_var SESSION_ID)" ] || fail "created on /app/: $HDRS $BODY"
}

@test "nginx module: forged ids are not adopted as anonymous sessions either" {
  chk_anon_strict /anon/
}

@test "nginx module: a request sent on to another location (try_files) gets one session, one cookie" {
  local n0 n1
  n0=$(sessgatectl --store "$SRV_STORE" count)
  req "$(srv_url /anon-redir/)"
  expect_status 200
  [ "$(header Set-Cookie | grep -c '^sessgate=')" = 1 ] || fail "$HDRS"
  [ "$(body_var SESSION_ID)" = "$(set_cookie_id)" ] && [ "$(body_var SESSION_NEW)" = 1 ] ||
    fail "$HDRS $BODY"
  n1=$(sessgatectl --store "$SRV_STORE" count)
  [ "$n1" = $((n0 + 1)) ] || fail "$n0 -> $n1 sessions"
}

@test "nginx module: sessgate_cookie attributes shape the Set-Cookie of a new session" {
  local id
  req "$(srv_url /attrs/)"
  expect_status 200
  id=$(header Set-Cookie | sed -n 's/^sid=\([^;]*\);.*/\1/p')
  [[ $id =~ ^$ID_RE$ ]] || fail "no cookie: $HDRS"
  header Set-Cookie | grep -qxF "sid=$id; Path=/attrs; HttpOnly; SameSite=Lax; Secure; Max-Age=600; Domain=example.org" ||
    fail "attributes: $(header Set-Cookie)"
  req "$(srv_url /attrs/)" -H "Cookie: sid=$id"
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "$BODY"
  [ -z "$(header Set-Cookie)" ] || fail "a second cookie: $HDRS"
}

@test "nginx module: a cookie naming no live session is expired, allowed or denied" {
  local label val
  while read -r label val; do
    [ "$label" = malformed ] || [ "$label" = unknown ] || [ "$label" = expired ] || continue
    req "$(srv_url /app/)" -H "Cookie: sessgate=$val"
    expect_status 200
    header Set-Cookie | grep -qxF 'sessgate=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0' ||
      fail "$label: not expired on a 200: $HDRS"
    req "$(srv_url /sess/)" -H "Cookie: sessgate=$val"
    expect_status 401
    header Set-Cookie | grep -q '^sessgate=; .*Max-Age=0' || fail "$label: not expired on a 401: $HDRS"
    req "$(srv_url /private/x)" -H "Cookie: sessgate=$val"
    expect_status 302
    header Set-Cookie | grep -q '^sessgate=; .*Max-Age=0' || fail "$label: not expired on a 302: $HDRS"
  done < <(strict_ids)
  # a live session, or no cookie at all: no Set-Cookie
  req "$(srv_url /app/)" -H "Cookie: sessgate=$(new_session)"
  [ -z "$(header Set-Cookie)" ] || fail "live: $HDRS"
  req "$(srv_url /app/)"
  [ -z "$(header Set-Cookie)" ] || fail "none: $HDRS"
}

@test "nginx module: sessgate_renew_interval gives a new id and cookie; the old id keeps the grace" {
  local id new anon
  id=$(new_session --user alice)
  anon=$(new_session)
  req "$(srv_url /renew/)" -H "Cookie: sessgate=$id"
  [ -z "$(set_cookie_id)" ] || fail "renewed a brand-new session: $HDRS"
  sleep 1.1
  req "$(srv_url /renew/)" -H "Cookie: sessgate=$id"
  expect_status 200
  new=$(set_cookie_id)
  [[ $new =~ ^$ID_RE$ ]] && [ "$new" != "$id" ] || fail "no renewal cookie: $HDRS"
  [ "$(body_var SESSION_ID)" = "$new" ] && [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  sessgatectl --store "$SRV_STORE" get "$new" > /dev/null || fail "the new id is not stored"
  # a request in flight with the old cookie still has the session
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  [ "$(body_var SESSION_USER)" = alice ] || fail "old id lost its grace: $BODY"
  # a denied request never renews (its 302 would strand the browser)
  req "$(srv_url /renew-user/)" -H "Cookie: sessgate=$anon"
  expect_status 302
  if header Set-Cookie | grep -q '^sessgate=[0-9a-f]'; then fail "renewed on a denial: $HDRS"; fi
  run sessgatectl --store "$SRV_STORE" get "$anon"
  assert_success
  assert_output --partial "\"id\":\"$anon\""
}

# flash_queue ID MESSAGE: queue a flash message for session ID.
flash_queue() {
  ID=$1 MSG=$2 "$SG_PYTHON" -c 'import os, sessgate
st = sessgate.Store(os.environ["SRV_STORE"])
s = st.get(os.environ["ID"])
s.flash(os.environ["MSG"])
s.save()'
}

@test "nginx module: sessgate_flash hands the FastCGI and HTTP backends the flash messages once" {
  local id
  id=$(new_session --user alice)
  flash_queue "$id" first
  # a location without sessgate_flash leaves them in the store
  req "$(srv_url /sess/)" -H "Cookie: sessgate=$id"
  expect_status 200
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [[ "$(body_var SESSION_FLASH)" == *'"message":"first"'* ]] || fail "$BODY"
  # consumed: the next page has none
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  [ -z "$(body_var SESSION_FLASH)" ] || fail "shown twice: $BODY"
  flash_queue "$id" second
  req "$(srv_url /papp/x)" -H "Cookie: sessgate=$id"
  expect_status 200
  printf '%s\n' "$BODY" | grep -q '^X-Session-Flash: .*"message":"second"' || fail "$BODY"
  # a client's look-alike never reaches the backend as the flash
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id" -H "X-Session-Flash: forged"
  expect_status 200
  [ -z "$(body_var SESSION_FLASH)" ] && [ -z "$(body_var HTTP_X_SESSION_FLASH)" ] || fail "$BODY"
}

@test "nginx module: a create under a held lock waits on a timer, 503 past the timeout" {
  local t0 ms pid out=$BATS_TEST_TMPDIR/held.out
  STORE=$SRV_STORE hold_store_lock -x 6
  curl -s -o "$out" -D "$out.hdrs" -w '%{http_code}\n' --max-time 20 \
    "$(srv_url /anon-short/)" > "$out.status" 3>&- &
  pid=$!
  sleep 0.2
  req "$(srv_url /plain/)"        # the worker is not asleep in flock()
  expect_status 200
  wait "$pid"
  [ "$(cat "$out.status")" = 503 ] || fail "held lock: HTTP $(cat "$out.status"), want 503"
  if grep -qi '^Set-Cookie' "$out.hdrs"; then fail "a cookie with the 503"; fi
  stop_pid "$HOLDER"
  # released before the timeout: the waiting request gets its session
  STORE=$SRV_STORE hold_store_lock -x 30
  ( sleep 0.5; kill "$HOLDER" ) 3>&- &
  t0=$(date +%s%N)
  req "$(srv_url /anon/)"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  wait
  expect_status 200
  [[ $(set_cookie_id) =~ ^$ID_RE$ ]] || fail "no cookie: $HDRS"
  [ "$(body_var SESSION_NEW)" = 1 ] || fail "$BODY"
  [ "$ms" -ge 300 ] || fail "served in $ms ms: the lock was not waited for"
}

@test "nginx module: a renewal under a lock held past the timeout is skipped, not a 503" {
  local id t0 ms
  id=$(new_session --user alice)
  sleep 1.1
  # Another reader's shared lock: the lookup reads, the renewal (a write)
  # finds the lock busy until the timeout, then the request goes on as is.
  STORE=$SRV_STORE hold_store_lock -s 6
  t0=$(date +%s%N)
  req "$(srv_url /renew-short/)" -H "Cookie: sessgate=$id"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  stop_pid "$HOLDER"
  expect_status 200
  [ "$(body_var SESSION_ID)" = "$id" ] || fail "$BODY"
  [ -z "$(header Set-Cookie)" ] || fail "a cookie without a renewal: $HDRS"
  [ "$ms" -ge 900 ] || fail "answered in $ms ms: the renewal did not wait"
  grep -q 'not renewing the session this time' "$SRV_RUNDIR/error.log" || fail "no log line"
  # free again: the next request renews
  req "$(srv_url /renew-short/)" -H "Cookie: sessgate=$id"
  [[ $(set_cookie_id) =~ ^$ID_RE$ ]] || fail "no renewal once free: $HDRS"
}

@test "nginx module: bad sessgate_cookie attributes are refused at start" {
  nm_refused 'sessgate_cookie s samesite=none;' 'needs secure=on'
  nm_refused 'sessgate_cookie __Host-s domain=example.org;' '__Host-'
  nm_refused 'sessgate_cookie s path=nope;' 'must start with /'
  nm_refused 'sessgate_cookie s colour=blue;' 'unknown parameter'
}

# Last.
@test "nginx module: no sanitizer report or crash in the server logs" {
  chk_logs_clean
  run ! grep -E '\[(alert|emerg)\]|signal [0-9]+' "$SRV_RUNDIR/error.log"
}
