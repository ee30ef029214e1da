#!/usr/bin/env bats
# sessgatectl rotate: same session, new id; the old id resolves to it for
# the grace window (default 10 s, the store-option table's), with
# --rotate-grace 0 it dies at once.
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

@test "by default the old id resolves to the new one for the grace window, then dies" {
  old=$(ctl create --user erin --data '{"k":1}')
  new=$(ctl rotate "$old")
  [ "$new" != "$old" ]
  run -0 --separate-stderr ctl get "$old"
  [ "$(jfield id <<<"$output")" = "$new" ]
  [ "$(jfield data <<<"$output")" = '{"k":1}' ]
  run -0 ctl count --user erin
  assert_output 1
  # the window's end, with a short grace (the default's is 10 s); under
  # valgrind a command takes about a second to start, longer than 1 s of
  # grace leaves between the rotate and the get
  local grace=1
  slow && grace=4
  old=$(ctl create --user erin)
  new=$(ctl --rotate-grace "$grace" rotate "$old")
  run -0 ctl get "$old"
  sleep "$grace.1"
  run -1 --separate-stderr ctl get "$old"
  assert_error_line "session $old: not found"
  run -0 ctl get "$new"
}

@test "--help names the grace and its default" {
  run -0 ctl --help
  assert_output --partial '--rotate-grace'
  assert_output --regexp 'rotate-grace S.*default 10'
}

@test "--rotate-grace 0: the old id stops working at once" {
  old=$(ctl create --user erin)
  new=$(ctl --rotate-grace 0 rotate "$old")
  run -1 --separate-stderr ctl get "$old"
  assert_error_line "session $old: not found"
  run -1 ctl rotate "$old"
  run -1 ctl set "$old" '{"a":1}'
  run -0 ctl count --user erin
  assert_output 1
  run -0 ctl list --user erin --json
  [ "$(jfield id <<<"$output")" = "$new" ]
}

@test "rotating twice gives three distinct ids, only the last alive (--rotate-grace 0)" {
  a=$(ctl create); b=$(ctl --rotate-grace 0 rotate "$a"); c=$(ctl --rotate-grace 0 rotate "$b")
  [ "$a" != "$b" ] && [ "$b" != "$c" ] && [ "$a" != "$c" ]
  run -1 ctl get "$a"
  run -1 ctl get "$b"
  run -0 ctl get "$c"
}

@test "rotating twice within the default grace: both old ids resolve to the last" {
  a=$(ctl create); b=$(ctl rotate "$a"); c=$(ctl rotate "$b")
  [ "$a" != "$b" ] && [ "$b" != "$c" ] && [ "$a" != "$c" ]
  run -0 ctl get "$a"
  [ "$(jfield id <<<"$output")" = "$c" ]
  run -0 ctl get "$b"
  [ "$(jfield id <<<"$output")" = "$c" ]
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
