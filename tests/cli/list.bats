#!/usr/bin/env bats
# sessgatectl list: fixed columns for people, JSON lines for scripts,
# live sessions only, oldest first.
# backends: gdbm redis
load ../helpers/common
load cli

TIME_RE='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'

@test "list prints one fixed-column line per live session" {
  a=$(ctl create --user alice --ttl 3600)
  b=$(ctl create)
  run -0 --separate-stderr ctl list
  [ "${#lines[@]}" -eq 2 ]
  assert_line --regexp "^$a  alice {11}  $TIME_RE  $TIME_RE  $TIME_RE  1\$"
  assert_line --regexp "^$b  - {15}  $TIME_RE  $TIME_RE  $TIME_RE  1\$"
  [ -z "$stderr" ]
}

@test "list times are the record's, in UTC" {
  id=$(ctl create --ttl 3600)
  rec=$(ctl get "$id")
  c=$(date -u -d "@$(jfield created <<<"$rec")" +%Y-%m-%dT%H:%M:%SZ)
  e=$(date -u -d "@$(jfield expires <<<"$rec")" +%Y-%m-%dT%H:%M:%SZ)
  run -0 ctl list
  assert_output "$id  -                 $c  $c  $e  1"
}

@test "the version column follows writes" {
  id=$(ctl create)
  ctl set "$id" '{"a":1}'
  ctl set "$id" '{"a":2}'
  run -0 ctl list
  assert_output --regexp '  3$'
}

@test "list is oldest first" {
  a=$(ctl create)
  sleep 1.1
  b=$(ctl create)
  run -0 ctl list
  [ "${lines[0]%% *}" = "$a" ]
  [ "${lines[1]%% *}" = "$b" ]
}

@test "--user lists only that user's sessions" {
  a1=$(ctl create --user alice); ctl create --user bob >/dev/null
  a2=$(ctl create --user alice); ctl create >/dev/null
  run -0 ctl list --user alice
  [ "${#lines[@]}" -eq 2 ]
  assert_line --partial "$a1  alice"
  assert_line --partial "$a2  alice"
  run -0 ctl list --user nobody
  [ -z "$output" ]
}

@test "--json prints each full record as one JSON line, equal to get" {
  a=$(ctl create --user alice --data '{"x":[1,{"y":null}]}')
  b=$(ctl create)
  run -0 ctl list --json
  [ "${#lines[@]}" -eq 2 ]
  for l in "${lines[@]}"; do
    id=$(jfield id <<<"$l")
    [ "$l" = "$(ctl get "$id")" ]
  done
}

@test "expired and deleted sessions are not listed" {
  ctl create --idle 1 >/dev/null
  d=$(ctl create); ctl delete "$d"
  keep=$(ctl create)
  sleep 2.1
  run -0 ctl list
  [ "${#lines[@]}" -eq 1 ]
  [ "${lines[0]%% *}" = "$keep" ]
}

@test "listing does not touch sessions" {
  id=$(ctl create)
  w0=$(ctl stats | sed -n 's/^writes: //p')
  ctl list >/dev/null
  ctl list --json >/dev/null
  [ "$(ctl stats | sed -n 's/^writes: //p')" = "$w0" ]
}

@test "an empty store lists nothing" {
  id=$(ctl create); ctl delete "$id"
  run -0 --separate-stderr ctl list
  [ -z "$output" ] && [ -z "$stderr" ]
}

@test "list rejects unknown options and arguments" {
  run -2 --separate-stderr ctl list --long
  assert_error_line 'list: unknown option --long'
  run -2 --separate-stderr ctl list alice
  assert_error_line 'list: takes no arguments besides its options'
}
