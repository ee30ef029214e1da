#!/usr/bin/env bats
# Lifetimes seen through sessgatectl: idle timeout, absolute lifetime,
# the touch interval, and the per-user cap.  Short timeouts (1-3 s) keep
# the waits short; every wait is bounded.
# backends: gdbm redis
load ../helpers/common
load cli

# wait_until EPOCH: sleep in small steps until the clock reads EPOCH.
wait_until() {
  local i
  for i in $(seq 100); do
    [ "$(date +%s)" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "clock did not reach $1"
}

@test "a session idle longer than --idle expires: get is exit 1 saying so" {
  # idle 2, not 1: times are whole seconds, so a session created at x.99
  # with idle 1 may be gone 10 ms later; valgrind needs longer still
  idle=2
  slow && idle=6
  id=$(ctl create --idle "$idle")
  run -0 ctl get "$id"
  sleep "$idle.1"
  run -1 --separate-stderr ctl get "$id"
  assert_error_line "session $id: $EXPIRED"
  [ -z "$output" ]
}

@test "the store's --idle-timeout applies to sessions created without --idle" {
  id=$(ctl --idle-timeout 1 create)
  keep=$(ctl create --idle 60)
  sleep 2.1
  run -1 ctl get "$id"
  run -0 ctl get "$keep"
}

@test "--ttl ends a session even while it is in use" {
  id=$(ctl --touch-interval 1 create --ttl 2 --idle 60)
  end=$(( $(date +%s) + 3 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    ctl --touch-interval 1 get --touch "$id" >/dev/null 2>&1 || break
    sleep 0.3
  done
  wait_until "$end"
  run -1 --separate-stderr ctl --touch-interval 1 get --touch "$id"
  assert_error_line "session $id: $EXPIRED"
}

@test "an expired session is gone for every command" {
  id=$(ctl create --user gone --idle 1)
  sleep 2.1
  run -1 ctl set "$id" '{"a":1}'
  run -1 ctl rotate "$id"
  run -1 ctl get --touch "$id"
  run -0 ctl count --user gone
  assert_output 0
  run -0 ctl export
  [ -z "$output" ]
}

@test "get --touch keeps a session alive; a plain get does not" {
  # idle 3 s, touch interval 1 s, a touch every ~0.5 s: the touched
  # session is never idle for 3 s (valgrind: ~3 s a round, so idle 8)
  idle=3 span=5
  slow && idle=8 span=11
  touched=$(ctl --touch-interval 1 create --idle "$idle")
  looked=$(ctl --touch-interval 1 create --idle "$idle")
  end=$(( $(date +%s) + span ))
  while [ "$(date +%s)" -lt "$end" ]; do
    ctl --touch-interval 1 get --touch "$touched" >/dev/null
    ctl --touch-interval 1 get "$looked" >/dev/null 2>&1 || true
    sleep 0.5
  done
  run -0 ctl get "$touched"
  run -1 --separate-stderr ctl get "$looked"
  assert_error_line "$EXPIRED"
}

@test "a touch within the touch interval writes nothing; after it, accessed moves and version does not" {
  id=$(ctl --touch-interval 2 create)
  rec=$(ctl get "$id")
  created=$(jfield created <<<"$rec")
  w() { ctl stats | sed -n 's/^writes: //p'; }
  w0=$(w)
  run -0 ctl --touch-interval 2 get --touch "$id"
  # still inside the interval (unless the clock already moved 2 s on)
  if [ "$(date +%s)" -lt $(( created + 2 )) ]; then
    [ "$(jfield accessed <<<"$output")" -eq "$created" ]
    [ "$(w)" -eq "$w0" ]
  fi
  wait_until $(( created + 2 ))
  ctl --touch-interval 2 get --touch "$id" >/dev/null
  rec=$(ctl get "$id")
  (( $(jfield accessed <<<"$rec") >= created + 2 ))
  [ "$(jfield version <<<"$rec")" = 1 ]
  [ "$(w)" -gt "$w0" ]
}

@test "--max-per-user evicts the user's oldest sessions, and only that user's" {
  bob=$(ctl --max-per-user 2 create --user bob)
  a1=$(ctl --max-per-user 2 create --user alice)
  sleep 1.1   # "oldest" is by creation second
  a2=$(ctl --max-per-user 2 create --user alice)
  sleep 1.1
  a3=$(ctl --max-per-user 2 create --user alice)
  run -1 ctl get "$a1"
  run -0 ctl get "$a2"
  run -0 ctl get "$a3"
  run -0 ctl get "$bob"
  run -0 ctl count --user alice
  assert_output 2
  anon1=$(ctl --max-per-user 1 create); anon2=$(ctl --max-per-user 1 create)
  run -0 ctl get "$anon1"   # anonymous sessions have no user to cap
  run -0 ctl get "$anon2"
}

@test "the session just created survives the cap, even within the same second" {
  for i in 1 2 3 4 5; do
    last=$(ctl --max-per-user 2 create --user quick)
    run -0 ctl get "$last"
  done
  run -0 ctl count --user quick
  assert_output 2
}

@test "without --max-per-user there is no cap" {
  for i in 1 2 3 4 5; do ctl create --user many >/dev/null; done
  run -0 ctl count --user many
  assert_output 5
}
