#!/usr/bin/env bats
# sessgatectl and the store lock: a held lock ends in a prompt, clear
# store error (exit 3) instead of a hang, readers share the lock, and the
# tool works again as soon as the lock is free.
load ../helpers/common
load cli

# hold_lock MODE [SECONDS]: hold PATH.lock with util-linux flock (MODE -x
# or -s) in the background for SECONDS (default 30: teardown stops it
# long before, and a loaded machine or valgrind cannot outlast it); return
# once it is held.  The holder is one process (bash execs sleep with the
# locked descriptor), so stopping it by PID releases the lock and leaves
# nothing behind.
hold_lock() {
  require_tool flock
  local secs=${2:-30} i
  # not $(start_bg ...): the holder would keep that pipe open
  start_bg bash -c 'exec 9>>"$1" && flock "$2" 9 && exec sleep "$3"' \
    _ "$STORE.lock" "$1" "$secs" > "$BATS_TEST_TMPDIR/holder.pid"
  HOLDER=$(cat "$BATS_TEST_TMPDIR/holder.pid")
  for i in $(seq 200); do
    flock -n -x "$STORE.lock" true || return 0   # cannot get it: held
    sleep 0.02
  done
  fail "flock did not take $STORE.lock"
}

@test "a held exclusive lock makes get fail fast with exit 3 naming the lock timeout" {
  id=$(ctl create)
  hold_lock -x
  t0=$(now_ms)
  run -3 --separate-stderr ctl --lock-timeout 300 get "$id"
  ms=$(( $(now_ms) - t0 ))
  assert_error_line 'store .*sessions\.db: lock timeout after 300 ms \(another process holds .*sessions\.db\.lock; raise --lock-timeout\)'
  [ -z "$output" ]
  echo "# get gave up after $ms ms" >&3
  limit=1000
  slow && limit=2900
  [ "$ms" -ge 300 ] || fail "gave up after $ms ms, before the 300 ms timeout"
  [ "$ms" -lt "$limit" ] || fail "took $ms ms to give up"
}

@test "every writing command times out under a held lock" {
  id=$(ctl create)
  hold_lock -x
  for args in create "set $id {}" "delete $id" "rotate $id" purge "check"; do
    # shellcheck disable=SC2086
    run -3 --separate-stderr ctl --lock-timeout 100 $args
    assert_error_line 'lock timeout after 100 ms'
  done
}

@test "readers share the lock: get works while another reader holds it" {
  id=$(ctl create --user shared)
  hold_lock -s
  run -0 ctl --lock-timeout 300 get "$id"
  assert_output --partial '"user":"shared"'
  run -0 ctl --lock-timeout 300 count
  assert_output 1
  # a writer still has to wait
  run -3 --separate-stderr ctl --lock-timeout 200 create
  assert_error_line 'lock timeout'
}

@test "once the holder is gone the same command succeeds" {
  id=$(ctl create)
  hold_lock -x
  run -3 ctl --lock-timeout 100 get "$id"
  stop_pid "$HOLDER"
  run -0 ctl --lock-timeout 100 get "$id"
  assert_output --partial "\"id\":\"$id\""
}

@test "a long enough --lock-timeout waits for the holder instead of failing" {
  id=$(ctl create)
  hold_lock -x 3
  t0=$(now_ms)
  run -0 ctl --lock-timeout 10000 set "$id" '{"waited":true}'
  ms=$(( $(now_ms) - t0 ))
  (( ms >= 1000 )) || fail "set returned after $ms ms while the lock was held for 3 s"
  run -0 ctl get "$id"
  assert_output --partial '"waited":true'
}
