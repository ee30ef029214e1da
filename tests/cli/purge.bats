#!/usr/bin/env bats
# sessgatectl purge: removes expired records, reports how many, keeps the
# live ones.
# backends: gdbm redis
load ../helpers/common
load cli

# Redis deletes expired sessions itself, leaving purge nothing to count
# (redis.bats: "vanishes from Redis by itself, without purge").
# bats test_tags=gdbm-only
@test "purge removes only expired sessions and prints how many" {
  ctl create --idle 1 >/dev/null
  ctl create --user alice --ttl 1 >/dev/null
  keep=$(ctl create --user bob)
  sleep 2.1
  run -0 ctl stats --walk
  assert_line 'sessions: 3'
  assert_line 'expired: 2'
  run -0 --separate-stderr ctl purge
  assert_output 2
  [ -z "$stderr" ]
  run -0 ctl stats --walk
  assert_line 'sessions: 1'
  assert_line 'expired: 0'
  run -0 ctl get "$keep"
}

# bats test_tags=gdbm-only
@test "a second purge finds nothing" {
  ctl create --idle 1 >/dev/null
  sleep 2.1
  run -0 ctl purge
  assert_output 1
  run -0 ctl purge
  assert_output 0
}

@test "purge of a store with only live sessions removes nothing" {
  ctl create >/dev/null; ctl create >/dev/null
  run -0 ctl purge
  assert_output 0
  run -0 ctl count
  assert_output 2
}

@test "purge takes no arguments" {
  run -2 --separate-stderr ctl purge --all
  assert_error_line 'purge: unknown option --all'
}
