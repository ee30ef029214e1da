#!/usr/bin/env bats
# sessgatectl delete: the id stops working at once; other sessions stay.
# backends: gdbm redis
load ../helpers/common
load cli

@test "delete ends the session and nothing else" {
  a=$(ctl create --user a); b=$(ctl create --user b)
  run -0 --separate-stderr ctl delete "$a"
  [ -z "$output" ] && [ -z "$stderr" ]
  run -1 ctl get "$a"
  run -0 ctl get "$b"
  run -0 ctl count
  assert_output 1
}

@test "deleting twice: the second time is not found" {
  id=$(ctl create)
  ctl delete "$id"
  run -1 --separate-stderr ctl delete "$id"
  assert_error_line "session $id: not found"
}

@test "delete of an unknown or malformed id is not found, not a usage error" {
  ctl create >/dev/null
  run -1 --separate-stderr ctl delete 0b5c1d2e-0000-4000-8000-000000000000
  assert_error_line 'not found'
  for bad in x "0B5C1D2E-0000-4000-8000-000000000000" '../x' ''; do
    run -1 --separate-stderr ctl delete "$bad"
    assert_error_line 'not found \(a session id is a 36-character lower-case UUID\)'
  done
  run -0 ctl count
  assert_output 1
}

@test "delete removes the session from its user's list and count" {
  a=$(ctl create --user dora); b=$(ctl create --user dora)
  ctl delete "$a"
  run -0 ctl count --user dora
  assert_output 1
  run -0 ctl list --user dora --json
  [ "${#lines[@]}" -eq 1 ]
  [ "$(jfield id <<<"$output")" = "$b" ]
}

@test "delete needs exactly one id" {
  run -2 --separate-stderr ctl delete
  assert_error_line 'delete: needs exactly one session id'
  run -2 --separate-stderr ctl delete a b
  assert_error_line 'delete: needs exactly one session id'
}
