#!/usr/bin/env bats
# tests/servers/apache.bats - sessgate behind a real Apache httpd 2.4,
# configured exactly as examples/apache/sessgate.conf.in: mod_authnz_fcgi on
# the check_authn hook guards mod_cgi (/app/, /private/) and mod_proxy_http
# (/papp/); cgi mode runs through mod_proxy_fcgi (/cgi/).  The gateways run
# on TCP (mod_authnz_fcgi supports nothing else).  One Apache for the file.
# backends: gdbm redis
load ../helpers/common
load ../helpers/servers
load ../helpers/server_checks

setup_file() {
  require_tool curl
  [ -x /usr/sbin/apache2 ] || skip "apache2 is not installed"
  [ -x "$SG_GATEWAY" ] || skip "gateway/sessgate is not built"
  # the file's one store: $BATS_FILE_TMPDIR/sessions.db, or a Redis prefix
  srv_init "$BATS_FILE_TMPDIR/run" "$(BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR make_store)"
  srv_start apache || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT
  make_expired
}

teardown_file() {
  srv_stop_all
}

@test "apache cgi mode: ?login= sets a session cookie and the next request carries the user" {
  chk_cgi_login /cgi/counter.py
}

@test "apache cgi mode: the counter increments across requests and is stored" {
  chk_counter /cgi/counter.sh
}

@test "apache cgi mode: logout expires the cookie and the old id stops working" {
  chk_logout /cgi/counter.py
}

@test "apache cgi mode: login rotates the id, keeps the data and kills the old id" {
  chk_rotation /cgi/counter.sh
}

@test "apache cgi mode: forged, malformed, unknown and expired ids are never adopted" {
  chk_strict_cgi /cgi/counter.sh
}

@test "apache check_authn: the CGI backend sees the stored session as SESSION_*" {
  chk_auth_session /app/whoami.cgi
  [ "$(body_var REMOTE_USER)" = alice ] || fail "REMOTE_USER: $BODY"
}

@test "apache check_authn: without a cookie the CGI backend sees no session" {
  chk_auth_none /app/whoami.cgi
  [ "$(body_var REMOTE_USER)" = -anonymous- ] || fail "REMOTE_USER: $BODY"
}

@test "apache check_authn: the HTTP backend gets the gateway's X-Session-* headers" {
  chk_http_headers /papp/x
  # and the gateway's answer does not leak to the browser
  if printf '%s\n' "$HDRS" | grep -i -e '^x-session-' -e '^variable-'; then fail "leak"; fi
}

# Issue #12: Apache copies the authorizer's Set-Cookie to the browser, so
# the gateway renews there (it never does behind lighttpd's authorizer).
@test "apache check_authn --renew-interval: the renewed id's cookie reaches the browser" {
  local id new
  id=$(new_session --user alice)
  sleep 1.2
  req "$(srv_url /rapp/whoami.cgi)" -H "Cookie: sessgate=$id"
  expect_status 200
  new=$(set_cookie_id)
  [[ $new =~ ^$ID_RE$ ]] && [ "$new" != "$id" ] || fail "no renewed cookie: $HDRS"
  [ "$(body_var SESSION_ID)" = "$new" ] || fail "$BODY"
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
  req "$(srv_url /rapp/whoami.cgi)" -H "Cookie: sessgate=$new"
  expect_status 200
  [ "$(body_var SESSION_USER)" = alice ] || fail "$BODY"
}

@test "apache check_authn: a logged-in user reaches /private/" {
  chk_user_reaches /private/whoami.cgi
}

@test "apache check_authn: no user on /private/ gets the gateway's 302 to the login page" {
  chk_login_redirect '/private/whoami.cgi?q=1&r=a%20b' /cgi/counter.sh
}

@test "apache check_authn: forged, malformed, unknown and expired ids never pass /private/" {
  chk_strict_user /private/whoami.cgi 302
}

@test "apache check_authn: a POST is authorized without waiting and its body reaches the backend" {
  chk_auth_post /app/whoami.cgi
}

@test "apache: a session header spelled with any separator byte never reaches a backend (issue #17)" {
  chk_spoof_each chk_spoof_folded /app/whoami.cgi \
    "/app/whoami.cgi /private/whoami.cgi /papp/x /cgi/whoami.cgi"
}

@test "apache: the spoof set never reaches the CGI, HTTP or cgi-mode backends" {
  chk_spoof_each chk_spoof "/app/whoami.cgi /papp/x /cgi/whoami.cgi" \
    "/app/whoami.cgi /private/whoami.cgi /papp/x /cgi/whoami.cgi"
}

# Issue #17: mod_proxy_fcgi streams the body, so a client that declares
# 100000 bytes, sends 10 and hangs up reached the program, whose session
# change was applied.  Driven by a raw socket (curl would not lie).
@test "apache cgi mode: a POST cut short by its client changes no session" {
  local id
  id=$(new_session --data '{"n":5}')
  run -0 "$SG_PYTHON" - "$SRV_PORT" "$id" <<'PY'
import socket, sys, time
port, sid = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("POST /cgi/counter.sh HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Cookie: sessgate=%s\r\nContent-Type: application/octet-stream\r\n"
           "Content-Length: 100000\r\n\r\n0123456789" % sid).encode())
time.sleep(1)
s.close()
PY
  # whatever Apache and the gateway did with it, give them time to do it
  sleep 2
  run -0 sessgatectl --store "$SRV_STORE" get "$id"
  assert_output --partial '"n":5'
  # the same POST in full does count
  req "$(srv_url /cgi/counter.sh)" -H "Cookie: sessgate=$id" --data-binary @<(head -c 100000 /dev/zero)
  expect_status 200
  run -0 sessgatectl --store "$SRV_STORE" get "$id"
  assert_output --partial '"n":6'
}

@test "apache: duplicate and comma-joined session cookies never choose a session" {
  chk_cookie_copies_each /app/whoami.cgi /cgi/whoami.cgi
}

@test "apache: CR, LF, NUL and non-ASCII in session values never break a header" {
  chk_hostile_values /app/whoami.cgi
  chk_hostile_values /papp/x
  chk_hostile_values /cgi/whoami.cgi
}

@test "apache: a 16 KB cookie and 1,000 cookies are handled without an error" {
  # mod_authnz_fcgi and mod_proxy_fcgi cannot encode a param over 16 KB and
  # leave it out (AH02499, AH02536).
  chk_big_cookies /app/whoami.cgi drops-big-params
  chk_big_cookies /cgi/whoami.cgi drops-big-params
}

@test "apache: session data over the inject cap is left out and flagged, never a 500" {
  chk_truncated /app/whoami.cgi
  chk_truncated /cgi/whoami.cgi
}

@test "apache cgi mode: a 10 MB POST body reaches the app intact" {
  chk_post_body /cgi/whoami.cgi
}

@test "apache: a check_authn provider whose gateway is not running fails closed" {
  chk_closed /down/whoami.cgi
}

# Keep last: it stops the shared gateways.
@test "apache: with the real gateways stopped, Apache fails closed" {
  srv_stop gw-any
  srv_stop gw-cgi
  chk_closed /app/whoami.cgi /papp/x
  req "$(srv_url /cgi/whoami.cgi)"
  expect_closed
}

# Last: after every other test (and the gateways stopped above) has run.
@test "apache: no sanitizer report or crash in any gateway or server log" {
  chk_logs_clean
}
