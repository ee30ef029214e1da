#!/usr/bin/env bats
# sessgatectl set: merging into the data, atomically, with strict ids and
# checked JSON.
# backends: gdbm redis
load ../helpers/common
load cli

@test "set merges top-level keys and bumps the version by one" {
  id=$(ctl create --data '{"a":1,"b":{"x":1}}')
  run -0 --separate-stderr ctl set "$id" '{"b":{"y":2},"c":[3]}'
  [ -z "$output" ] && [ -z "$stderr" ]
  rec=$(ctl get "$id")
  [ "$(jfield data <<<"$rec")" = '{"a":1,"b":{"y":2},"c":[3]}' ]
  [ "$(jfield version <<<"$rec")" = 2 ]
}

@test "a null value deletes its key" {
  id=$(ctl create --data '{"a":1,"b":2}')
  ctl set "$id" '{"a":null}'
  [ "$(ctl get "$id" | jfield data)" = '{"b":2}' ]
}

@test "set keeps the user, id and creation time" {
  id=$(ctl create --user carol --data '{}')
  before=$(ctl get "$id")
  ctl set "$id" '{"k":"v"}'
  after=$(ctl get "$id")
  for f in id user created expires; do
    [ "$(jfield $f <<<"$before")" = "$(jfield $f <<<"$after")" ]
  done
}

@test "malformed JSON is a usage error, even for an unknown id" {
  id=$(ctl create --data '{"keep":1}')
  run -2 --separate-stderr ctl set "$id" '{"a":'
  assert_error_line 'set: JSON is not valid JSON: .* at character'
  run -2 --separate-stderr ctl set 0b5c1d2e-0000-4000-8000-000000000000 'nope'
  assert_error_line 'set: JSON is not valid JSON'
  run -2 --separate-stderr ctl set "$id" '[1]'
  assert_error_line 'set: JSON must be a JSON object'
  run -2 --separate-stderr ctl set "$id" '{"a":1,"a":2}'
  assert_error_line 'duplicate object key'
  rec=$(ctl get "$id")
  [ "$(jfield data <<<"$rec")" = '{"keep":1}' ]
  [ "$(jfield version <<<"$rec")" = 1 ]
}

@test "data merged over the store's cap is refused and the session is unchanged" {
  id=$(ctl --max-data 100 create --data '{"a":"0123456789012345678901234567890123456789"}')
  run -2 --separate-stderr ctl --max-data 100 set "$id" '{"b":"0123456789012345678901234567890123456789012345678901234567890123456789"}'
  assert_error_line 'over the store.s cap of 100'
  [ "$(ctl get "$id" | jfield version)" = 1 ]
}

@test "set on an unknown, malformed or deleted id is not found" {
  run -1 --separate-stderr ctl set 0b5c1d2e-0000-4000-8000-000000000000 '{}'
  assert_error_line 'not found'
  run -1 --separate-stderr ctl set 'BAD-ID' '{}'
  assert_error_line "session 'BAD-ID': not found"
  id=$(ctl create)
  ctl delete "$id"
  run -1 --separate-stderr ctl set "$id" '{"a":1}'
  assert_error_line "session $id: not found"
}

@test "set needs exactly an id and a JSON object" {
  run -2 --separate-stderr ctl set
  assert_error_line 'set: needs a session id and a JSON object'
  id=$(ctl create)
  run -2 --separate-stderr ctl set "$id"
  assert_error_line 'set: needs a session id and a JSON object'
  run -2 --separate-stderr ctl set "$id" '{}' '{}'
  assert_error_line 'set: needs a session id and a JSON object'
}

@test "concurrent sets lose no update" {
  id=$(ctl create --data '{}')
  n=12
  pids=()
  for i in $(seq $n); do
    ctl set "$id" "{\"k$i\":$i}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  rec=$(ctl get "$id")
  "$SG_PYTHON" -c '
import json, sys
r = json.loads(sys.argv[1]); n = int(sys.argv[2])
assert r["data"] == {"k%d" % i: i for i in range(1, n + 1)}, r["data"]
assert r["version"] == n + 1, r["version"]
' "$rec" "$n"
}
