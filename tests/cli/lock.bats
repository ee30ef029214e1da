#!/usr/bin/env bats
# sessgatectl and the store lock: a held lock ends in a prompt, clear
# store error (exit 3) instead of a hang, readers share the lock, and the
# tool works again as soon as the lock is free.
# backends: gdbm redis
load ../helpers/common
load cli

# hold_lock MODE [SECONDS]: hold the store's lock (MODE -x or -s) in the
# background for SECONDS (default 30: teardown stops it long before, and a
# loaded machine or valgrind cannot outlast it); return once it is held.
# GDBM: util-linux flock on PATH.lock, so an outside flock is what the
# tool must respect.  The holder is one process (bash execs sleep with the
# locked descriptor), so stopping it by PID releases the lock and leaves
# nothing behind.  Redis: tests/tools/hold_lock takes the lease through
# the library (there is no shared lock there: readers take none).
hold_lock() {
  local secs=${2:-30} i
  if on_redis; then
    [ "$1" = -x ] || fail "hold_lock $1: Redis has only the exclusive lock"
    start_bg "$SG_BUILDDIR/tests/tools/hold_lock" "$STORE" $((secs * 1000)) \
      > "$BATS_TEST_TMPDIR/holder.out"
    HOLDER=$(tail -n 1 "$(sg_pidfile)")
    for i in $(seq 200); do
      grep -q locked "$BATS_TEST_TMPDIR/holder.out" && return 0
      sleep 0.02
    done
    fail "hold_lock did not take the lease of $STORE"
  fi
  require_tool flock
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

# Redis readers take no lock (redis.bats checks that a get answers at once).
# bats test_tags=gdbm-only
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
  # A plain check only reads: GDBM reads under the shared lock, Redis
  # readers take none (redis.bats); check --repair writes on both.
  local checks=("check --repair")
  on_redis || checks+=(check)
  for args in create "set $id {}" "delete $id" "rotate $id" purge "${checks[@]}"; do
    # shellcheck disable=SC2086
    run -3 --separate-stderr ctl --lock-timeout 100 $args
    assert_error_line 'lock timeout after 100 ms'
  done
}

# bats test_tags=gdbm-only
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
  # The holder lets go by itself: a Redis lease of a killed holder would
  # only free when it runs out.
  secs=1
  slow && secs=5
  hold_lock -x "$secs"
  run -3 ctl --lock-timeout 100 set "$id" '{"after":1}'
  for i in $(seq 200); do kill -0 "$HOLDER" 2>/dev/null || break; sleep 0.05; done
  ! kill -0 "$HOLDER" 2>/dev/null || fail "the holder did not end after $secs s"
  run -0 ctl --lock-timeout 100 set "$id" '{"after":1}'
  run -0 ctl get "$id"
  assert_output --partial '"after":1'
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
