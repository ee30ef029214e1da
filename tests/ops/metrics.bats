#!/usr/bin/env bats
# The gateway's metrics counters (issue 16), driven over FastCGI directly:
# each event the issue lists moves its counter, in every worker's sum.
# (tests/ops/prometheus.bats has the real Prometheus behind nginx.)
# backends: gdbm redis
load ../helpers/common
load ../gateway/gateway

setup() {
  gw_setup
  ROOT="$BATS_TEST_TMPDIR/cgi-bin"
  mkdir -p "$ROOT"
  script conflict.cgi <<'SH'
"$SG_CTL" --store "$SESSGATE_STORE" set "$SESSION_ID" '{"n":100}' > /dev/null
printf 'X-Session-Set: {"n":2}\r\nContent-Type: text/plain\r\n\r\nok\n'
SH
  script login.cgi <<'SH'
printf 'X-Session-Login: dora\r\nContent-Type: text/plain\r\n\r\nok\n'
SH
  script logout.cgi <<'SH'
printf 'X-Session-Logout: 1\r\nContent-Type: text/plain\r\n\r\nok\n'
SH
  script crash.cgi <<'SH'
kill -KILL $$
SH
  script slow.cgi <<'SH'
sleep 5
SH
  MPORT=$(free_port)
}

teardown() { gw_teardown; }

script() {
  { echo '#!/bin/sh'; echo "SG_CTL='$SG_CTL'"; cat; } > "$ROOT/$1"
  chmod +x "$ROOT/$1"
}

req() {
  local s=$1; shift
  gw_req -p REQUEST_METHOD=GET -p "REQUEST_URI=/cgi/$s" -p "SCRIPT_NAME=/cgi/$s" \
    -p "SCRIPT_FILENAME=$ROOT/$s" "$@"
}

metrics() { curl -sf "http://127.0.0.1:$MPORT/metrics"; }

# metric NAME{LABELS}: its value now
metric() { metrics | awk -v k="$1" '$1 == k { print $2 }'; }

@test "cgi mode: programs run, killed, timed out; sessions created, rotated, deleted; 409" {
  gw_start --mode cgi --cgi-root "$ROOT" --cgi-timeout 1 --anonymous --workers 2 \
    --metrics-listen "127.0.0.1:$MPORT"
  wait_for_port "$MPORT" 5
  req login.cgi > /dev/null     # no cookie: an anonymous session, created
  id=$(ctl create --data '{"n":1}')
  req conflict.cgi -p "HTTP_COOKIE=sessgate=$id" > /dev/null || true
  id2=$(ctl create --user erin)
  req login.cgi -p "HTTP_COOKIE=sessgate=$id2" > /dev/null     # login on a session: rotated
  id3=$(ctl create --user fred)
  req logout.cgi -p "HTTP_COOKIE=sessgate=$id3" > /dev/null
  req crash.cgi > /dev/null || true
  req slow.cgi > /dev/null || true
  [ "$(metric sessgate_cgi_programs_total)" = 6 ]
  [ "$(metric sessgate_cgi_killed_total)" = 1 ] || fail "$(metrics | grep -v "^#" | grep -v " 0$"; cat "$GW_ERR")"
  [ "$(metric sessgate_cgi_timeouts_total)" = 1 ]
  [ "$(metric sessgate_conflicts_total)" = 1 ]
  [ "$(metric sessgate_sessions_rotated_total)" = 1 ]
  [ "$(metric sessgate_sessions_deleted_total)" = 1 ]
  # anonymous sessions for the cookieless login, crash and slow requests
  [ "$(metric sessgate_sessions_created_total)" = 3 ]
  [ "$(metric 'sessgate_requests_total{mode="cgi",outcome="conflict"}')" = 1 ]
  [ "$(metric 'sessgate_requests_total{mode="cgi",outcome="error"}')" = 2 ]
  [ "$(metric 'sessgate_request_duration_seconds_count{mode="cgi"}')" = 6 ]
  metrics | promtool check metrics
}

@test "a held store lock: lock timeouts, store errors and 503s are counted" {
  gw_start --anonymous --lock-timeout 200 --metrics-listen "127.0.0.1:$MPORT"
  wait_for_port "$MPORT" 5
  hold_store_lock -x 3
  run -0 gw_req -p REQUEST_METHOD=GET -p REQUEST_URI=/x
  assert_line "Status: 503 Service Unavailable"
  [ "$(metric sessgate_lock_timeouts_total)" = 1 ]
  grep -E 'level=warn .*event=store_error .*lock timeout.*status=lock_timeout' "$GW_ERR"
  [ "$(metric sessgate_store_errors_total)" = 1 ]
  [ "$(metric 'sessgate_requests_total{mode="auth",outcome="unavailable"}')" = 1 ]
  [ "$(metric sessgate_lock_wait_seconds_count)" = 1 ]
  # the wait was about the lock timeout: in the 0.5 s bucket, not the 0.1 s one
  [ "$(metric 'sessgate_lock_wait_seconds_bucket{le="0.1"}')" = 0 ]
  [ "$(metric 'sessgate_lock_wait_seconds_bucket{le="0.5"}')" = 1 ]
}

@test "injected data over the cap and expired sessions are counted" {
  gw_start --inject-max 8 --metrics-listen "unix:$BATS_TEST_TMPDIR/m.sock"
  wait_for_socket "$BATS_TEST_TMPDIR/m.sock" 5
  id=$(ctl create --data '{"k":"0123456789"}')
  old=$(ctl create --ttl 1)
  gw_req -p "HTTP_COOKIE=sessgate=$id" > /dev/null
  sleep 2.1
  gw_req -p "HTTP_COOKIE=sessgate=$old" > /dev/null
  run curl -sf --unix-socket "$BATS_TEST_TMPDIR/m.sock" http://localhost/metrics
  assert_line 'sessgate_inject_truncated_total 1'
  if on_redis; then   # Redis drops an expired session itself (PEXPIREAT)
    assert_line 'sessgate_cookies_unknown_total 1'
  else
    assert_line 'sessgate_sessions_expired_on_read_total 1'
  fi
  [ "$(stat -c %a "$BATS_TEST_TMPDIR/m.sock")" = 660 ]
}

@test "--metrics-listen that cannot be bound fails at start-up" {
  run "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --metrics-listen nonsense
  assert_failure 1
  assert_output --partial "--metrics-listen nonsense: expected HOST:PORT or unix:PATH"
}
