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

@test "delete --user ends every session of that user and no other" {
  a1=$(ctl create --user ann); a2=$(ctl create --user ann); a3=$(ctl create --user ann)
  b=$(ctl create --user bob); anon=$(ctl create)
  run -0 --separate-stderr ctl delete --user ann
  assert_output 3
  for id in "$a1" "$a2" "$a3"; do run -1 ctl get "$id"; done
  run -0 ctl get "$b"
  run -0 ctl get "$anon"
  run -0 ctl count --user ann
  assert_output 0
  run -0 ctl delete --user ann
  assert_output 0
  run -0 ctl delete --user nobody
  assert_output 0
}

@test "delete --all needs --yes, then empties the store" {
  ctl create --user ann >/dev/null; ctl create >/dev/null; ctl create --user bob >/dev/null
  run -2 --separate-stderr ctl delete --all
  assert_error_line 'add --yes to confirm'
  run -2 ctl delete --yes
  run -2 ctl delete --all --user ann --yes
  run -0 ctl count
  assert_output 3
  run -0 ctl delete --all --yes
  assert_output 3
  run -0 ctl count
  assert_output 0
  run -0 ctl count --user ann
  assert_output 0
  run -0 ctl create --user ann
  run -0 ctl count --user ann
  assert_output 1
}

@test "delete --user racing logins of that user leaves no session outside the index" {
  other=$(ctl create --user bob)
  for w in 1 2 3; do
    ( for i in $(seq 25); do "$SG_CTL" --store "$STORE" create --user ann > /dev/null || exit 1; done ) 3>&- &
  done
  for i in 1 2 3 4 5; do ctl delete --user ann > /dev/null; done
  wait
  # Every surviving session of ann is in her index (count --user uses it),
  # so one more delete --user ends all of them.
  walked=$(ctl export | grep -c '"user":"ann"' || true)
  run -0 ctl count --user ann
  assert_output "$walked"
  run -0 ctl delete --user ann
  assert_output "$walked"
  run -0 bash -c "\"$SG_CTL\" --store \"$STORE\" export | grep -c '\"user\":\"ann\"' || true"
  assert_output 0
  run -0 ctl get "$other"
}
