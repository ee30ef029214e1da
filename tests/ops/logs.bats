#!/usr/bin/env bats
# The gateway's log (issue 16): one logfmt or JSON line per event, levels,
# --log-file reopened on SIGHUP, the events an operator looks for, and never
# a session id, token or cookie, only a keyed hash of the id.
# backends: gdbm redis
load ../helpers/common
load ../gateway/gateway

setup() {
  gw_setup
  ROOT="$BATS_TEST_TMPDIR/cgi-bin"
  mkdir -p "$ROOT"
  # conflict.cgi: another writer changes n while the program runs, then
  # the program's stale X-Session-Set must be refused (409).
  script conflict.cgi <<'SH'
"$SG_CTL" --store "$SESSGATE_STORE" set "$SESSION_ID" '{"n":100}' > /dev/null
printf 'X-Session-Set: {"n":2}\r\nContent-Type: text/plain\r\n\r\nok\n'
SH
  script big.cgi <<'SH'
printf 'Content-Type: text/plain\r\n\r\ntruncated=%s\n' "$SESSION_DATA_TRUNCATED"
SH
  script midbody.cgi <<'SH'
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst half\n'
sleep 0.2
kill -KILL $$
SH
}

teardown() { gw_teardown; }

script() {
  { echo '#!/bin/sh'; echo "SG_CTL='$SG_CTL'"; cat; } > "$ROOT/$1"
  chmod +x "$ROOT/$1"
}

req() {
  local s=$1; shift
  gw_req -p REQUEST_METHOD=GET -p "REQUEST_URI=/cgi/$s?x=1" -p "SCRIPT_NAME=/cgi/$s" \
    -p "SCRIPT_FILENAME=$ROOT/$s" "$@"
}

A=(-p REQUEST_METHOD=GET -p REQUEST_URI=/app/page)

@test "the log check finds an id in a log line (it is a real check)" {
  printf 'ts=x level=warn event=message msg="session %s"\n' \
    0b5c1a2e-3f4d-4a5b-8c6d-7E8F90A1B2C3 > "$BATS_TEST_TMPDIR/leaky.log"
  run sg_log_ids "$BATS_TEST_TMPDIR/leaky.log"
  assert_failure
  assert_output --partial "leaky.log:1:"
  printf 'ts=x level=warn event=conflict sid=0b5c1a2e3f4d\n' > "$BATS_TEST_TMPDIR/clean.log"
  run sg_log_ids "$BATS_TEST_TMPDIR/clean.log"
  assert_success
}

@test "a 409 conflict is logged with the id's hash, never the id" {
  gw_start --mode cgi --cgi-root "$ROOT" --log-level debug
  id=$(new_session --data '{"n":1}')
  run -0 req conflict.cgi -p "HTTP_COOKIE=sessgate=$id"
  assert_line "Status: 409 Conflict"
  run grep -c 'event=conflict' "$GW_ERR"
  assert_output 1
  run grep -F "$id" "$GW_ERR"
  assert_failure
  grep -E 'event=conflict .*sid=[0-9a-f]{12}( |$)' "$GW_ERR"
}

@test "lines about one session carry one hash; another session another" {
  gw_start --access-log
  a=$(new_session --user alice)
  b=$(new_session --user bob)
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$a" > /dev/null
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$a" > /dev/null
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$b" > /dev/null
  ha=$(grep 'user=alice' "$GW_ERR" | sed -n 's/.*sid=\([0-9a-f]*\).*/\1/p' | sort -u)
  hb=$(grep 'user=bob' "$GW_ERR" | sed -n 's/.*sid=\([0-9a-f]*\).*/\1/p' | sort -u)
  [ "$(echo "$ha" | wc -l)" = 1 ] && [ "${#ha}" = 12 ] || fail "alice: '$ha'"
  [ "${#hb}" = 12 ] && [ "$ha" != "$hb" ] || fail "bob: '$hb'"
}

@test "the access log: method, path without query, status, outcome, user, seconds, sid" {
  gw_start --access-log --policy user
  id=$(new_session --user 'al ice')
  gw_req -p REQUEST_METHOD=POST -p "REQUEST_URI=/p/q?token=$id" -p "HTTP_COOKIE=sessgate=$id" > /dev/null
  gw_req -p REQUEST_METHOD=GET -p "REQUEST_URI=/other" > /dev/null
  run grep 'event=access' "$GW_ERR"
  assert_line --regexp '^ts=[0-9T:.-]+Z level=info pid=[0-9]+ event=access mode=auth method=POST path=/p/q status=200 outcome=allowed user=al%20ice seconds=[0-9.]+ sid=[0-9a-f]{12}$'
  assert_line --regexp 'event=access mode=auth method=GET path=/other status=401 outcome=denied user=- seconds=[0-9.]+ sid=-$'
}

@test "no access lines without --access-log; --log-level warn drops info events" {
  gw_start --log-level warn
  id=$(new_session)
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$id" > /dev/null
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=00000000-0000-4000-8000-000000000000" > /dev/null
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=../x" > /dev/null
  run grep -c . "$GW_ERR"
  assert_output 1
  run grep -c 'level=warn pid=[0-9]* event=cookie_malformed' "$GW_ERR"
  assert_output 1
}

@test "--log-format json: every line is one JSON object with the documented fields" {
  gw_start --log-format json --access-log
  id=$(new_session --user carol)
  gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$id" > /dev/null
  gw_req "${A[@]}" -p 'HTTP_COOKIE=sessgate="x\"y' > /dev/null
  run "$SG_PYTHON" - "$GW_ERR" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert isinstance(o["ts"], str) and o["ts"].endswith("Z"), o
    assert o["level"] in ("error", "warn", "info", "debug"), o
    assert isinstance(o["pid"], int), o
    assert isinstance(o["event"], str), o
    if o["event"] == "access":
        assert set(o) >= {"method", "path", "status", "outcome", "user", "seconds", "sid"}, o
    n += 1
print(n)
PY
  assert_success
  assert_output 3
}

@test "a stream of forged ids is logged once and summarised, not once per request" {
  gw_start
  for i in $(seq 40); do
    gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$(printf '%08x-0000-4000-8000-000000000000' "$i")" > /dev/null
  done
  run grep -c 'event=cookie_unknown' "$GW_ERR"
  assert_output 1
  sleep 10.2      # the rate-limit window
  gw_req "${A[@]}" > /dev/null
  run grep 'event=suppressed' "$GW_ERR"
  assert_output --partial 'of=cookie_unknown count=39 window_seconds=10'
}

@test "injected data cut at --inject-max is logged" {
  gw_start --mode cgi --cgi-root "$ROOT" --inject-max 16
  id=$(new_session --data '{"k":"0123456789012345678901234567890123456789"}')
  run -0 req big.cgi -p "HTTP_COOKIE=sessgate=$id"
  assert_line "truncated=1"
  grep -E 'level=info .*event=inject_truncated .*sid=[0-9a-f]{12} bytes=[0-9]+ cap=16' "$GW_ERR"
}

@test "a CGI program killed mid-body: logged, and the FastCGI request is cut, not ended" {
  gw_start --mode cgi --cgi-root "$ROOT"
  run req midbody.cgi
  # fcgi_client exits 4 when the connection closes before FCGI_END_REQUEST
  assert_failure 4
  assert_output --partial "connection closed before END_REQUEST"
  assert_output --partial "first half"
  grep -E 'level=warn .*event=cgi_killed .*signal=9 phase=body' "$GW_ERR"
}

@test "--log-file is reopened on SIGHUP (logrotate), by every worker" {
  log="$BATS_TEST_TMPDIR/gw.log"
  gw_start --log-file "$log" --access-log --workers 2
  for i in 1 2 3 4; do gw_req "${A[@]}" > /dev/null; done
  [ "$(grep -c event=access "$log")" = 4 ]
  mv "$log" "$log.1"
  kill -HUP "$GW_PID"
  sleep 0.3
  kill -0 "$GW_PID"
  for i in 1 2 3 4 5 6; do gw_req "${A[@]}" > /dev/null; done
  [ "$(grep -c event=access "$log.1")" = 4 ]
  [ "$(grep -c event=access "$log")" = 6 ]
  # both workers answered and wrote to the new file
  [ "$(grep event=access "$log" | sed 's/.*pid=\([0-9]*\).*/\1/' | sort -u | wc -l)" -ge 1 ]
  sg_log_keep "$log" "$log.1"
  sg_log_ids "$log" "$log.1"
}

@test "--log-file that cannot be opened fails at start-up with a clear message" {
  run "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --log-file /nonexistent/dir/x.log
  assert_failure 1
  assert_output --partial "--log-file /nonexistent/dir/x.log: No such file or directory"
}
