#!/usr/bin/env bats
# sessgate --workers: N pre-forked workers share the socket, a killed worker
# is replaced, SIGTERM stops everything with exit 0, and a worker busy with
# a request finishes it before leaving.
# backends: gdbm redis
load ../helpers/common
load gateway

setup() { gw_setup; }
teardown() { gw_teardown; }

workers_of() { ps -o pid= --ppid "$1" | tr -d ' ' | sort -n; }

@test "--workers 3 starts three workers that all answer" {
  id=$(new_session --user alice)
  gw_start --workers 3
  for i in $(seq 50); do [ "$(workers_of "$GW_PID" | wc -l)" = 3 ] && break; sleep 0.05; done
  [ "$(workers_of "$GW_PID" | wc -l)" = 3 ]
  for i in $(seq 10); do
    run -0 gw_req -p "HTTP_COOKIE=sessgate=$id"
    assert_line "X-Session-User: alice"
  done
}

# Sum of a process's voluntary context switches (its wakeups from sleep).
wakeups_of() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status"; }

@test "a new connection wakes one idle worker, not every worker (no thundering herd)" {
  gw_start --workers 3
  for i in $(seq 50); do [ "$(workers_of "$GW_PID" | wc -l)" = 3 ] && break; sleep 0.05; done
  ws=$(workers_of "$GW_PID")
  [ "$(wc -l <<<"$ws")" = 3 ] || fail "workers: $ws"
  run -0 gw_req -p REQUEST_URI=/       # every worker has opened its store
  sleep 0.2
  declare -A before
  for w in $ws; do before[$w]=$(wakeups_of "$w"); done
  for i in $(seq 30); do               # 30 requests, a new connection each
    run -0 gw_req -p REQUEST_URI=/
    assert_line "Status: 200 OK"
  done
  least=1000000 report=
  for w in $ws; do
    d=$(( $(wakeups_of "$w") - ${before[$w]} ))
    report="$report $w:+$d"
    [ "$d" -lt "$least" ] && least=$d
  done
  # Waiting in poll() on the shared socket, each of the 3 woke for each of
  # the 30 connections (30+ each); an exclusive wait wakes one of them.
  [ "$least" -lt 10 ] || fail "every worker woke for most connections:$report"
}

@test "a killed worker is restarted and the gateway keeps answering" {
  gw_start --workers 2
  for i in $(seq 50); do [ "$(workers_of "$GW_PID" | wc -l)" = 2 ] && break; sleep 0.05; done
  victim=$(workers_of "$GW_PID" | head -1)
  kill -KILL "$victim"
  for i in $(seq 100); do
    now=$(workers_of "$GW_PID")
    [ "$(wc -l <<<"$now")" = 2 ] && ! grep -qx "$victim" <<<"$now" && break
    sleep 0.05
  done
  [ "$(wc -l <<<"$now")" = 2 ] || fail "workers now: $now"
  ! grep -qx "$victim" <<<"$now" || fail "the killed worker $victim is still listed"
  run -0 gw_req -p REQUEST_URI=/
  assert_line "Status: 200 OK"
  run grep -c "killed by signal 9; restarting" "$GW_ERR"
  assert_output 1
}

@test "SIGTERM stops the master and every worker, exit 0, socket removed" {
  "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --workers 3 2>>"$GW_ERR" 3>&- &
  pid=$!
  echo "$pid" >> "$(sg_pidfile)"     # stop_all cleans up if the test fails
  wait_for_socket "$GW_SOCK" 5
  for i in $(seq 50); do [ "$(workers_of "$pid" | wc -l)" = 3 ] && break; sleep 0.05; done
  ws=$(workers_of "$pid")
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "exit status $rc"
  for w in $ws; do [ ! -e "/proc/$w" ] || fail "worker $w still there"; done
  [ ! -e "$GW_SOCK" ]
}

@test "a worker busy with a request finishes it before SIGTERM stops it" {
  root="$BATS_TEST_TMPDIR/root"
  mkdir -p "$root"
  printf '#!/bin/sh\nsleep 1\nprintf "Content-Type: text/plain\\r\\n\\r\\nfinished\\n"\n' > "$root/slow.cgi"
  chmod +x "$root/slow.cgi"
  "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --mode cgi --cgi-root "$root" \
    2>>"$GW_ERR" 3>&- &
  pid=$!
  echo "$pid" >> "$(sg_pidfile)"     # stop_all cleans up if the test fails
  wait_for_socket "$GW_SOCK" 5
  gw_req -p "SCRIPT_FILENAME=$root/slow.cgi" > "$BATS_TEST_TMPDIR/reply" &
  client=$!
  sleep 0.4
  kill -TERM "$pid"
  wait "$client"
  run cat "$BATS_TEST_TMPDIR/reply"
  assert_line "finished"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 0 ]
}

# The master asks the store once a second whether a checkpoint is due.  A
# store without checkpoints (Redis) answers SG_ENOTSUP and the master closes
# that handle and stops asking: it used to skip only URIs with "://", so on
# redis+unix:/SOCKET it held a Redis connection for good and asked once a
# second for a checkpoint Redis never has.
@test "on a redis+unix: store the master asks once, then holds no Redis connection" {
  on_redis || skip "n/a on GDBM: only Redis stores have no checkpoints"
  require_tool redis-cli
  # redis+unix:/SOCKET, the form without "://" (the default user: same password)
  STORE="redis+unix:$SG_TEST_REDIS_SOCK?password_file=$SG_TEST_REDIS_PWFILE&prefix=${STORE##*prefix=}"
  received() {
    redis-cli -s "$SG_TEST_REDIS_SOCK" INFO stats |
      sed -n 's/^total_connections_received://p' | tr -d '\r'
  }
  sockets_of() {
    local fd
    for fd in /proc/"$1"/fd/*; do
      [[ "$(readlink "$fd")" == socket:* ]] && echo "${fd##*/}"
    done
  }
  local t0 before
  t0=$(date +%s%N)
  gw_start --workers 1
  id=$(new_session --user ivy)
  run -0 gw_req -p "HTTP_COOKIE=sessgate=$id"
  assert_line "X-Session-User: ivy"
  # The master's first question comes a second after it starts (its tick).
  sleep "$("$SG_PYTHON" -c "print(max(0, 1.5 - ($(date +%s%N) - $t0) / 1e9))")"
  # Only the listening socket: no connection to Redis kept by the master.
  run sockets_of "$GW_PID"
  [ "${#lines[@]}" = 1 ] || fail "the master holds ${#lines[@]} sockets: $(ls -l /proc/"$GW_PID"/fd)"
  clients=$(redis-cli -s "$SG_TEST_REDIS_SOCK" CLIENT LIST | grep -v 'cmd=client')
  [ "$(wc -l <<<"$clients")" = 1 ] || fail "clients of the server (the worker only): $clients"
  # and it asks no more: the only new connection is redis-cli's own
  before=$(received)
  sleep 1.1
  [ "$(( $(received) - before ))" = 1 ] || fail "$(( $(received) - before - 1 )) new connections in 1.1 s"
}
