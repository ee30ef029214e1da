#!/usr/bin/env bats
# sessgatectl get: the record, strict lookups (malformed, unknown and
# random ids are never found), and reading without touching.
# backends: gdbm redis
load ../helpers/common
load cli

@test "get prints the whole record as one line of JSON" {
  id=$(ctl create --user bob --data '{"k":"v"}')
  run -0 --separate-stderr ctl get "$id"
  [ "${#lines[@]}" -eq 1 ]
  "$SG_PYTHON" -c '
import json, sys
r = json.loads(sys.argv[1])
want = {"id", "user", "created", "accessed", "expires", "version", "data"}
assert want <= set(r), sorted(r)
assert r["id"] == sys.argv[2] and r["user"] == "bob" and r["data"] == {"k": "v"}
' "$output" "$id"
  [ -z "$stderr" ]
}

@test "get output is ASCII-only JSON even for non-ASCII data" {
  id=$(ctl create --user 'zoë' --data '{"t":"日本"}')
  run -0 ctl get "$id"
  ! LC_ALL=C grep -q '[^ -~]' <<<"$output"
  [ "$(jfield user <<<"$output")" = 'zoë' ]
  [ "$(jfield data.t <<<"$output")" = '日本' ]
}

@test "get of an unknown id is exit 1 with one line on stderr and nothing on stdout" {
  ctl create >/dev/null
  run -1 --separate-stderr ctl get 0b5c1d2e-0000-4000-8000-000000000000
  assert_error_line 'session 0b5c1d2e-0000-4000-8000-000000000000: not found'
  [ -z "$output" ]
}

@test "get of a malformed id is not found (exit 1), never a usage error" {
  id=$(ctl create)
  upper=$(tr a-f A-F <<<"$id")
  for bad in "" x "$upper" "${id}0" "${id:0:35}" "{$id}" " $id" "$id " \
             "${id//-/}" "../../etc/passwd" "${id:0:8}_${id:9}" \
             "$(printf '%s' "${id:0:35}g")" "$id"$'\n'; do
    run -1 --separate-stderr ctl get "$bad"
    assert_error_line 'not found \(a session id is a 36-character lower-case UUID\)'
    [ -z "$output" ]
  done
  run -0 ctl get "$id"
}

@test "1,000 random UUIDs are never found, in one run beside a live id" {
  for i in 1 2 3; do ctl create --user "u$i" >/dev/null; done
  live=$(ctl create --user live)
  mapfile -t ids < <("$SG_PYTHON" -c 'import uuid
print("\n".join(str(uuid.uuid4()) for _ in range(1000)))')
  [ "${#ids[@]}" -eq 1000 ]
  t0=$(now_ms)
  run -1 --separate-stderr ctl get "${ids[@]:0:500}" "$live" "${ids[@]:500}"
  echo "# one get of 1000 random ids and a live one: $(( $(now_ms) - t0 )) ms" >&3
  # the live session is found, in the same run, and nothing else is
  [ "${#lines[@]}" -eq 1 ]
  [ "$(jfield id <<<"$output")" = "$live" ]
  [ "${#stderr_lines[@]}" -eq 1000 ]
  [ "$(grep -c '^sessgatectl: session [0-9a-f-]\{36\}: not found$' <<<"$stderr")" -eq 1000 ]
  run -0 ctl count
  assert_output 4
}

@test "random UUIDs are never found, one process per id" {
  # each process costs ~15-30 ms here (and ~1 s under valgrind), so this
  # loop takes 100 ids; the 1,000-id check above runs them in one process
  n=100
  slow && n=10
  live=$(ctl create)
  ids=$("$SG_PYTHON" -c 'import sys, uuid
print("\n".join(str(uuid.uuid4()) for _ in range(int(sys.argv[1]))))' "$n")
  t0=$(now_ms)
  found=0 other=0
  while read -r id; do
    rc=0
    sessgatectl --store "$STORE" get "$id" >/dev/null 2>&1 || rc=$?
    case $rc in 1) ;; 0) found=$((found + 1)) ;; *) other=$((other + 1)) ;; esac
  done <<<"$ids"
  echo "# $n processes: $(( $(now_ms) - t0 )) ms" >&3
  [ "$found" -eq 0 ] || fail "$found random ids were found"
  [ "$other" -eq 0 ] || fail "$other gets failed with an exit status other than 1"
  run -0 ctl get "$live"
}

@test "with several ids the found ones print in order and the missing make exit 1" {
  a=$(ctl create --user a); b=$(ctl create --user b)
  run -0 ctl get "$b" "$a"
  [ "${#lines[@]}" -eq 2 ]
  [ "$(jfield user <<<"${lines[0]}")" = b ]
  [ "$(jfield user <<<"${lines[1]}")" = a ]
  run -1 --separate-stderr ctl get "$a" not-an-id "$b"
  [ "${#lines[@]}" -eq 2 ]
  assert_error_line "session 'not-an-id': not found"
}

@test "get does not touch: accessed and version stay, and no write is made" {
  id=$(ctl create)
  before=$(ctl get "$id")
  w0=$(ctl stats | sed -n 's/^writes: //p')
  sleep 1.1
  after=$(ctl get "$id")
  [ "$before" = "$after" ]
  [ "$(ctl stats | sed -n 's/^writes: //p')" = "$w0" ]
}

@test "get needs an id" {
  run -2 --separate-stderr ctl get
  assert_error_line 'get: needs a session id \(see sessgatectl get --help\)'
}

@test "a deleted session is not found" {
  id=$(ctl create)
  ctl delete "$id"
  run -1 --separate-stderr ctl get "$id"
  assert_error_line "session $id: not found"
}

@test "a malformed id is rejected before the store is opened" {
  run -1 --separate-stderr ctl get not-an-id
  assert_error_line "session 'not-an-id': not found"
  [ ! -e "$STORE" ] && [ ! -e "$STORE.lock" ]
  for c in set delete rotate; do
    args=(not-an-id); [ "$c" = set ] && args+=('{}')
    run -1 --separate-stderr ctl "$c" "${args[@]}"
    assert_error_line "session 'not-an-id': not found"
  done
  [ ! -e "$STORE" ] && [ ! -e "$STORE.lock" ]
}
