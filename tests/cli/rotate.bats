#!/usr/bin/env bats
# sessgatectl rotate: same session, new id; the old id dies at once.
# backends: gdbm redis
load ../helpers/common
load cli

@test "rotate prints a new id that carries the user and data" {
  old=$(ctl create --user erin --data '{"cart":[7]}')
  run -0 --separate-stderr ctl rotate "$old"
  assert_output --regexp "$UUID_RE"
  new=$output
  [ "$new" != "$old" ]
  rec=$(ctl get "$new")
  [ "$(jfield user <<<"$rec")" = erin ]
  [ "$(jfield data <<<"$rec")" = '{"cart":[7]}' ]
}

@test "the old id stops working at once" {
  old=$(ctl create --user erin)
  new=$(ctl rotate "$old")
  run -1 --separate-stderr ctl get "$old"
  assert_error_line "session $old: not found"
  run -1 ctl rotate "$old"
  run -1 ctl set "$old" '{"a":1}'
  run -0 ctl count --user erin
  assert_output 1
  run -0 ctl list --user erin --json
  [ "$(jfield id <<<"$output")" = "$new" ]
}

@test "rotating twice gives three distinct ids, only the last alive" {
  a=$(ctl create); b=$(ctl rotate "$a"); c=$(ctl rotate "$b")
  [ "$a" != "$b" ] && [ "$b" != "$c" ] && [ "$a" != "$c" ]
  run -1 ctl get "$a"
  run -1 ctl get "$b"
  run -0 ctl get "$c"
}

@test "rotate of an unknown, malformed or expired id is not found" {
  run -1 --separate-stderr ctl rotate 0b5c1d2e-0000-4000-8000-000000000000
  assert_error_line 'not found'
  run -1 --separate-stderr ctl rotate nope
  assert_error_line "session 'nope': not found"
  id=$(ctl create --idle 1)
  sleep 2.1
  run -1 --separate-stderr ctl rotate "$id"
  assert_error_line "session $id"
}

@test "rotate needs exactly one id" {
  run -2 --separate-stderr ctl rotate
  assert_error_line 'rotate: needs exactly one session id'
}
