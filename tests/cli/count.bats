#!/usr/bin/env bats
# sessgatectl count: live sessions, all or per user.
# backends: gdbm redis
load ../helpers/common
load cli

@test "count follows creates and deletes" {
  id=$(ctl create); ctl delete "$id"
  run -0 ctl count
  assert_output 0
  a=$(ctl create); ctl create >/dev/null; ctl create >/dev/null
  run -0 ctl count
  assert_output 3
  ctl delete "$a"
  run -0 ctl count
  assert_output 2
}

@test "count --user counts one user's sessions" {
  ctl create --user alice >/dev/null; ctl create --user alice >/dev/null
  ctl create --user bob >/dev/null; ctl create >/dev/null
  run -0 ctl count --user alice
  assert_output 2
  run -0 ctl count --user bob
  assert_output 1
  run -0 ctl count --user nobody
  assert_output 0
}

@test "expired sessions are not counted, before or after purge" {
  ctl create --user alice --idle 1 >/dev/null
  ctl create --user alice >/dev/null
  sleep 2.1
  run -0 ctl count
  assert_output 1
  run -0 ctl count --user alice
  assert_output 1
}

@test "count rejects arguments" {
  run -2 --separate-stderr ctl count 5
  assert_error_line 'count: takes no arguments besides its options'
}
