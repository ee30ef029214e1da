#!/usr/bin/env bats
# tests/servers/lighttpd.bats - sessgate behind a real lighttpd 1.4, configured
# exactly as examples/lighttpd/sessgate.conf.in: lighttpd starts the gateways
# itself (bin-path), the AUTHORIZER role guards mod_cgi (/app/, /private/),
# and cgi mode runs through mod_fastcgi (/cgi/).  One lighttpd for the file.
# (lighttpd cannot hand the session to a mod_proxy HTTP backend without
# mod_magnet, see shared/reference/web-servers.md §3.5, so no HTTP case.)
# backends: gdbm redis
load ../helpers/common
load ../helpers/servers
load ../helpers/server_checks

setup_file() {
  require_tool lighttpd curl
  [ -x "$SG_GATEWAY" ] || skip "gateway/sessgate is not built"
  # the file's one store: $BATS_FILE_TMPDIR/sessions.db, or a Redis prefix
  srv_init "$BATS_FILE_TMPDIR/run" "$(BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR make_store)"
  srv_start lighttpd || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT
  make_expired
}

teardown_file() {
  srv_stop_all
}

@test "lighttpd cgi mode: ?login= sets a session cookie and the next request carries the user" {
  chk_cgi_login /cgi/counter.sh
}

@test "lighttpd cgi mode: the counter increments across requests and is stored" {
  chk_counter /cgi/counter.py
}

@test "lighttpd cgi mode: logout expires the cookie and the old id stops working" {
  chk_logout /cgi/counter.sh
}

@test "lighttpd cgi mode: login rotates the id, keeps the data and kills the old id" {
  chk_rotation /cgi/counter.sh
}

@test "lighttpd cgi mode: forged, malformed, unknown and expired ids are never adopted" {
  chk_strict_cgi /cgi/counter.py
}

@test "lighttpd authorizer: the CGI backend sees the stored session as SESSION_*" {
  chk_auth_session /app/whoami.cgi
}

@test "lighttpd authorizer: without a cookie the CGI backend sees no session" {
  chk_auth_none /app/whoami.cgi
}

@test "lighttpd authorizer: a logged-in user reaches /private/" {
  chk_user_reaches /private/whoami.cgi
}

@test "lighttpd authorizer: no user on /private/ gets the gateway's 302 to the login page" {
  chk_login_redirect '/private/whoami.cgi?q=1&r=a%20b' /cgi/counter.sh
}

@test "lighttpd authorizer: forged, malformed, unknown and expired ids never pass /private/" {
  chk_strict_user /private/whoami.cgi 302
}

@test "lighttpd authorizer: a POST is authorized without waiting and its body reaches the backend" {
  chk_auth_post /app/whoami.cgi
}

@test "lighttpd: a session header spelled with any separator byte never reaches a backend (issue #17)" {
  chk_spoof_each chk_spoof_folded "/app/whoami.cgi /cgi/whoami.cgi" \
    "/app/whoami.cgi /private/whoami.cgi /cgi/whoami.cgi"
}

@test "lighttpd: the spoof set never reaches the CGI backend in either mode" {
  chk_spoof_each chk_spoof "/app/whoami.cgi /cgi/whoami.cgi" \
    "/app/whoami.cgi /private/whoami.cgi /cgi/whoami.cgi"
}

@test "lighttpd: duplicate and comma-joined session cookies never choose a session" {
  chk_cookie_copies_each /app/whoami.cgi /cgi/whoami.cgi
}

@test "lighttpd: CR, LF, NUL and non-ASCII in session values never break a header" {
  chk_hostile_values /app/whoami.cgi
  chk_hostile_values /cgi/whoami.cgi
}

@test "lighttpd: a 16 KB cookie and 1,000 cookies are handled without an error" {
  chk_big_cookies /app/whoami.cgi
  chk_big_cookies /cgi/whoami.cgi
}

@test "lighttpd: session data over the inject cap is left out and flagged, never a 500" {
  chk_truncated /app/whoami.cgi
  chk_truncated /cgi/whoami.cgi
}

@test "lighttpd cgi mode: a 10 MB POST body reaches the app intact" {
  chk_post_body /cgi/whoami.cgi
}

@test "lighttpd: a killed gateway is restarted by lighttpd and never lets a request through meanwhile" {
  local id lpid gw i ok=0
  id=$(new_session --user alice)
  lpid=$(awk '$2 == "lighttpd" {print $1}' "$SRV_RUNDIR/pids")
  # the authorizer lighttpd spawned for /private/ (bin-path), by its socket
  gw=$(pgrep -P "$lpid" -f 'policy user' | head -n 1)
  [ -n "$gw" ] || fail "no gateway child of lighttpd $lpid"
  kill -KILL "$gw"
  for i in 1 2 3 4 5 6 7 8 9 10; do
    req "$(srv_url /private/whoami.cgi)" -H "Cookie: sessgate=$id"
    if [ "$STATUS" = 200 ]; then ok=1; break; fi
    expect_closed
    sleep 0.3
  done
  [ "$ok" = 1 ] || fail "the gateway was not restarted (last HTTP $STATUS)"
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  req "$(srv_url /private/whoami.cgi)"
  expect_status 302
}

@test "lighttpd: an authorizer whose gateway is not running fails closed (503)" {
  chk_closed /down/whoami.cgi
  expect_status 503
}

# Last: after every other test (and the gateways stopped above) has run.
@test "lighttpd: no sanitizer report or crash in any gateway or server log" {
  chk_logs_clean
}
