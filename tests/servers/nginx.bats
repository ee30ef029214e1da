#!/usr/bin/env bats
# tests/servers/nginx.bats - sessgate behind a real nginx, configured exactly
# as examples/nginx/sessgate.conf.in: cgi mode (/cgi/), auth_request in front
# of a FastCGI backend (/app/, /anon/, /private/) and of an HTTP backend
# (/papp/, /private-http/).  One nginx for the whole file.
# backends: gdbm redis
load ../helpers/common
load ../helpers/servers
load ../helpers/server_checks
# Python queues flash messages (sets the module paths, ASan preload).
load ../bindings/bindings

setup_file() {
  require_tool nginx fcgiwrap curl
  [ -x "$SG_GATEWAY" ] || skip "gateway/sessgate is not built"
  # the file's one store: $BATS_FILE_TMPDIR/sessions.db, or a Redis prefix
  srv_init "$BATS_FILE_TMPDIR/run" "$(BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR make_store)"
  srv_start nginx || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT
  make_expired
}

teardown_file() {
  srv_stop_all
}

# The helpers' stop: fcgiwrap -c N's workers outlive their master's TERM;
# srv_stop_all stops them too, by PID (it used to leave them running).
# bats test_tags=gdbm-only
@test "srv_stop_all stops fcgiwrap -c 2 and its workers, by PID" {
  local kids kid state left=''
  kids=$(
    srv_init "$BATS_TEST_TMPDIR/fw" "$BATS_TEST_TMPDIR/fw/s.db"
    srv_fcgiwrap 2 >&2 || exit 1
    master=$(awk '$2 == "fcgiwrap" { print $1 }' "$SRV_RUNDIR/pids")
    for i in $(seq 100); do
      [ "$(pgrep -c -P "$master")" -ge 2 ] && break
      sleep 0.05
    done
    pgrep -P "$master"
    srv_stop_all
  ) || fail "fcgiwrap did not start"
  [ "$(wc -w <<<"$kids")" -ge 2 ] || fail "workers: $kids"
  for kid in $kids; do
    # (a zombie has stopped: init reaps orphans when it gets to them)
    state=$(sed 's/.*) //' "/proc/$kid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && left="$left $kid" && kill -KILL "$kid"
  done
  [ -z "$left" ] || fail "fcgiwrap workers left running:$left"
}

@test "nginx cgi mode: ?login= sets a session cookie and the next request carries the user" {
  chk_cgi_login /cgi/counter.sh
}

@test "nginx cgi mode: the Python app logs in the same way" {
  chk_cgi_login /cgi/counter.py
}

@test "nginx cgi mode: the counter increments across requests and is stored" {
  chk_counter /cgi/counter.sh
}

@test "nginx cgi mode: logout expires the cookie and the old id stops working" {
  chk_logout /cgi/counter.sh
}

@test "nginx cgi mode: login rotates the id, keeps the data and kills the old id" {
  chk_rotation /cgi/counter.py
}

@test "nginx cgi mode: forged, malformed, unknown and expired ids are never adopted" {
  chk_strict_cgi /cgi/counter.sh
}

@test "nginx cgi mode: the example apps refuse a user name that could split a header" {
  local app
  for app in counter.sh counter.py; do
    req "$(srv_url "/cgi/$app?login=eve%0d%0aX-Evil:%201")"
    expect_status 400
    if printf '%s\n' "$HDRS" | grep -i '^x-evil'; then fail "$app: header split"; fi
    [ -z "$(set_cookie_id)" ] || fail "$app: a session was made for a refused name"
  done
}

@test "nginx cgi mode: no URL runs a program outside the app directory" {
  local p
  for p in '/cgi/..%2f..%2f..%2f..%2f..%2fusr%2fbin%2fid' '/cgi/%2e%2e/%2e%2e/%2e%2e/%2e%2e/usr/bin/id' \
           '/cgi/..%252f..%252f..%252fusr%252fbin%252fid' '/cgi/nonexistent.cgi'; do
    req "$(srv_url "$p")" --path-as-is
    [ "$STATUS" != 200 ] || fail "$p: HTTP 200: $BODY"
    if printf '%s\n' "$BODY" | grep -q 'uid='; then fail "$p ran id"; fi
  done
}

@test "nginx auth_request: the FastCGI backend sees the stored session" {
  chk_auth_session /app/
}

@test "nginx auth_request: without a cookie the FastCGI backend sees no session" {
  chk_auth_none /app/
}

@test "nginx auth_request: the HTTP backend gets the gateway's X-Session-* headers" {
  chk_http_headers /papp/x
}

# flash_and_token ID MESSAGE: queue a flash message for session ID and
# print its CSRF token.
flash_and_token() {
  ID=$1 MSG=$2 "$SG_PYTHON" -c 'import os, sessgate
st = sessgate.Store(os.environ["SRV_STORE"])
s = st.get(os.environ["ID"])
s.flash(os.environ["MSG"])
s.save()
print(s.csrf_token)'
}

# Issue #12: the example snippets hand backends the gateway's CSRF token and
# the flash messages it took out of the store (lost for good otherwise).
@test "nginx auth_request: FastCGI and HTTP backends get the gateway's CSRF token and flash messages" {
  local id tok
  id=$(new_session --user alice)
  tok=$(flash_and_token "$id" first)
  [ "${#tok}" = 64 ] || fail "no token: $tok"
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  expect_status 200
  [ "$(body_var SESSION_CSRF)" = "$tok" ] || fail "$BODY"
  [ "$(body_var HTTP_X_SESSION_CSRF)" = "$tok" ] || fail "$BODY"
  [[ "$(body_var SESSION_FLASH)" == *'"message":"first"'* ]] || fail "$BODY"
  [[ "$(body_var HTTP_X_SESSION_FLASH)" == *'"message":"first"'* ]] || fail "$BODY"
  # consumed: the next page has none
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id"
  [ -z "$(body_var SESSION_FLASH)" ] && [ -z "$(body_var HTTP_X_SESSION_FLASH)" ] || fail "$BODY"
  flash_and_token "$id" second > /dev/null
  req "$(srv_url /papp/x)" -H "Cookie: sessgate=$id"
  expect_status 200
  printf '%s\n' "$BODY" | grep -qx "X-Session-Csrf: $tok" || fail "$BODY"
  printf '%s\n' "$BODY" | grep -q '^X-Session-Flash: .*"message":"second"' || fail "$BODY"
  # a client's look-alike is refused by the gateway before any backend
  req "$(srv_url /app/)" -H "Cookie: sessgate=$id" -H "X-Session-Flash: forged"
  expect_status 403
}

@test "nginx auth_request: an anonymous session is created and its cookie sent via add_header" {
  chk_anon_session /anon/ '; Path=/; HttpOnly; SameSite=Lax'
}

@test "nginx auth_request: a logged-in user reaches /private/" {
  chk_user_reaches /private/
}

@test "nginx auth_request: no user on /private/ redirects to the login URL with next=" {
  chk_login_redirect '/private/a%20b?q=1&r=2' /cgi/counter.sh
  req "$(srv_url /private-http/x)"
  expect_status 302
}

@test "nginx auth_request: forged, malformed, unknown and expired ids never pass /private/" {
  chk_strict_user /private/ 302
}

@test "nginx auth_request: without a user /api/ answers 401 with the gateway's WWW-Authenticate" {
  chk_user_401 /api/
}

@test "nginx auth_request: forged ids are not adopted as anonymous sessions either" {
  chk_anon_strict /anon/
}

@test "nginx auth_request: a POST is authorized without waiting and its body reaches the backend" {
  chk_auth_post /app/
}

@test "nginx: a session header spelled with any separator byte never reaches a backend (issue #17)" {
  chk_spoof_each chk_spoof_folded /app/ "/app/ /private/ /papp/x /cgi/whoami.cgi"
}

@test "nginx: the spoof set never reaches the FastCGI, HTTP or cgi-mode backends" {
  chk_spoof_each chk_spoof "/app/ /anon/ /papp/x /cgi/whoami.cgi" \
    "/app/ /private/ /papp/x /private-http/x /cgi/whoami.cgi"
}

@test "nginx: duplicate and comma-joined session cookies never choose a session" {
  chk_cookie_copies_each /app/ /cgi/whoami.cgi
}

@test "nginx: CR, LF, NUL and non-ASCII in session values never break a header" {
  chk_hostile_values /app/
  chk_hostile_values /papp/x
  chk_hostile_values /cgi/whoami.cgi
}

@test "nginx: a 16 KB cookie and 1,000 cookies are handled without an error" {
  chk_big_cookies /app/
  chk_big_cookies /cgi/whoami.cgi
}

@test "nginx: session data over the inject cap is left out and flagged, never a 500" {
  chk_truncated /app/
  chk_truncated /cgi/whoami.cgi
}

@test "nginx cgi mode: a 10 MB POST body reaches the app intact" {
  chk_post_body /cgi/whoami.cgi
}

# Keep these last: they stop gateways of the shared nginx.
@test "nginx: with the auth gateway down, nginx fails closed" {
  srv_stop gw-any
  srv_stop gw-user
  chk_closed /app/ /papp/x /private/
}

@test "nginx: with the cgi-mode gateway down, nginx answers 502" {
  srv_stop gw-cgi
  req "$(srv_url /cgi/whoami.cgi)"
  expect_status 502
}

# Last: after every other test (and the gateways stopped above) has run.
@test "nginx: no sanitizer report or crash in any gateway or server log" {
  chk_logs_clean
}
