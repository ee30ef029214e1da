#!/usr/bin/env bats
# sessgatectl and the store lock: a held lock ends in a prompt, clear
# store error (exit 3) instead of a hang, readers share the lock, and the
# tool works again as soon as the lock is free.
# backends: gdbm redis
load ../helpers/common
load cli

# Redis readers take no lock (redis.bats checks that a get answers at once).
# bats test_tags=gdbm-only
@test "a held exclusive lock makes get fail fast with exit 3 naming the lock timeout" {
  id=$(ctl create)
  hold_store_lock -x
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
  hold_store_lock -x
  # A plain check only reads: GDBM reads under the shared lock, Redis
  # readers take none (redis.bats).  So does a purge that finds nothing
  # expired: it takes the exclusive lock only to delete (walk.c, "Walks").
  # check --repair rebuilds the file under the exclusive lock on a GDBM
  # store with no checkpoint yet; on Redis it only writes what is wrong
  # (below).
  local checks=()
  on_redis || checks+=("check --repair" check purge)
  for args in create "set $id {}" "delete $id" "rotate $id" "${checks[@]}"; do
    # shellcheck disable=SC2086
    run -3 --separate-stderr ctl --lock-timeout 100 $args
    assert_error_line 'lock timeout after 100 ms'
  done
  if on_redis; then
    # Redis has no file to rebuild, and a repair that finds the records and
    # per-user indexes sound writes nothing: no lease to wait for, so an
    # operator's check --repair does not stall behind a long writer.
    run -0 --separate-stderr ctl --lock-timeout 100 check --repair
    run -0 ctl get "$id"
  fi
}

# bats test_tags=gdbm-only
@test "readers share the lock: get works while another reader holds it" {
  id=$(ctl create --user shared)
  hold_store_lock -s
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
  hold_store_lock -x "$secs"
  run -3 ctl --lock-timeout 100 set "$id" '{"after":1}'
  for i in $(seq 200); do kill -0 "$HOLDER" 2>/dev/null || break; sleep 0.05; done
  ! kill -0 "$HOLDER" 2>/dev/null || fail "the holder did not end after $secs s"
  run -0 ctl --lock-timeout 100 set "$id" '{"after":1}'
  run -0 ctl get "$id"
  assert_output --partial '"after":1'
}

@test "a long enough --lock-timeout waits for the holder instead of failing" {
  id=$(ctl create)
  hold_store_lock -x 3
  t0=$(now_ms)
  run -0 ctl --lock-timeout 10000 set "$id" '{"waited":true}'
  ms=$(( $(now_ms) - t0 ))
  (( ms >= 1000 )) || fail "set returned after $ms ms while the lock was held for 3 s"
  run -0 ctl get "$id"
  assert_output --partial '"waited":true'
}
