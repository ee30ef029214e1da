#!/usr/bin/env bats
# tests/store/lock.bats - a held lock ends in SG_ELOCKTIMEOUT, never a hang.
#
# The store serialises writers (GDBM: flock() on PATH.lock; Redis: the
# lease key PREFIXlock) and waits with a deadline
# (DESIGN §4): a process stuck while holding the lock (here hold_lock, which
# keeps an sg_store_begin open) must make others fail with a clear lock
# timeout after the configured time, and a waiter must get in as soon as
# the holder lets go.  lock_probe prints "status=NAME ms=ELAPSED" and exits
# with the sg_status code (SG_ELOCKTIMEOUT is 5, never renumbered).
# backends: gdbm redis
load ../helpers/common
load store

setup() {
  STORE=$(make_store)
  # Create the store (and its lock file) before anyone holds the lock.
  ID=$("$TOOLS/counter" init "$STORE")
}

teardown() {
  stop_all
}


# elapsed_between LO HI: the ms= figure of $output lies in [LO, HI].
elapsed_between() {
  local ms
  ms=$(field ms "${lines[0]}")
  [ "$ms" -ge "$1" ] && [ "$ms" -le "$2" ] ||
    fail "waited $ms ms, expected $1..$2 ms"
}

@test "a writer gives up with a lock timeout after the configured 300 ms while another process holds the lock" {
  hold_lease 10000
  run -5 "$TOOLS/lock_probe" "$STORE" 300 create
  note "create under a held lock: ${lines[0]}"
  elapsed_between 250 2000
  # The message is for users: one line that names the lock.
  assert_line --index 1 --partial lock
}

# Redis readers take no lock (redis.bats checks that a get answers at once
# under a held lease).
# bats test_tags=gdbm-only
@test "a reader also gives up after its lock timeout instead of hanging" {
  hold_lease 10000
  run -5 "$TOOLS/lock_probe" "$STORE" 300 get "$ID"
  elapsed_between 250 2000
}

@test "sg_store_begin on a second handle times out while the first holds it" {
  hold_lease 10000
  run -5 "$TOOLS/lock_probe" "$STORE" 300 begin
  elapsed_between 250 2000
}

@test "a waiting writer gets in as soon as the holder releases the lock" {
  hold_lease 1500
  run -0 "$TOOLS/lock_probe" "$STORE" 10000 create
  # It waited for the holder (not an immediate success; the slack is for
  # a slow start of lock_probe on a loaded machine) and got in long before
  # its own 10 s timeout.
  elapsed_between 300 5000
  wait_pids 5 "$HOLDER"
}

@test "an administrator's lock taken outside the library is honoured by it" {
  if on_redis; then
    # The lease is a plain key (README "Choosing a store"): one set with
    # redis-cli, as an administrator would for maintenance, stops writers.
    require_tool redis-cli
    lock_key="${STORE##*prefix=}lock"
    run -0 redis-cli -s "$SG_TEST_REDIS_SOCK" SET "$lock_key" admin NX PX 10000
    assert_output OK
    run -5 "$TOOLS/lock_probe" "$STORE" 300 create
    elapsed_between 250 2000
    # ... and is left alone: the library never releases someone else's lease
    [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" GET "$lock_key")" = admin ]
    redis-cli -s "$SG_TEST_REDIS_SOCK" DEL "$lock_key" > /dev/null
    run -0 "$TOOLS/lock_probe" "$STORE" 300 create
    return
  fi
  require_tool flock
  # flock -o: the lock lives in the flock process, not in sleep.
  spawn "$BATS_TEST_TMPDIR/flock.out" flock -o -x "$STORE.lock" \
    sh -c 'echo locked $$; exec sleep 10'
  local i
  for i in $(seq 100); do
    grep -q locked "$BATS_TEST_TMPDIR/flock.out" && break
    sleep 0.05
  done
  # The sleeping child (sh's PID, kept by exec) is stopped by stop_all too.
  field locked "$(sed 's/ /=/' "$BATS_TEST_TMPDIR/flock.out")" >> "$(sg_pidfile)"
  run -5 "$TOOLS/lock_probe" "$STORE" 300 create
  elapsed_between 250 2000
}
