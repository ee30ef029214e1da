#!/usr/bin/env bats
# sessgatectl create: ids, user, data, lifetimes, input checking, and the
# mode of a store it creates.
# backends: gdbm redis
load ../helpers/common
load cli

@test "create prints one lower-case UUID and nothing else" {
  run -0 --separate-stderr ctl create
  assert_output --regexp "$UUID_RE"
  [ "${#lines[@]}" -eq 1 ]
  [ -z "$stderr" ]
}

@test "every create gets a different id" {
  a=$(ctl create); b=$(ctl create); c=$(ctl create)
  [ "$a" != "$b" ] && [ "$b" != "$c" ] && [ "$a" != "$c" ]
  run -0 ctl count
  assert_output 3
}

@test "create stores the user and the data, version 1" {
  id=$(ctl create --user alice --data '{"cart":[1,2],"name":"caf\u00e9 ☕"}')
  rec=$(ctl get "$id")
  [ "$(jfield id <<<"$rec")" = "$id" ]
  [ "$(jfield user <<<"$rec")" = alice ]
  [ "$(jfield data <<<"$rec")" = '{"cart":[1,2],"name":"café ☕"}' ]
  [ "$(jfield version <<<"$rec")" = 1 ]
}

@test "create without --user makes an anonymous session with empty data" {
  id=$(ctl create)
  rec=$(ctl get "$id")
  [ "$(jfield user <<<"$rec")" = null ]
  [ "$(jfield data <<<"$rec")" = '{}' ]
}

@test "the store defaults give created + 7 days and idle 1800" {
  id=$(ctl create)
  rec=$(ctl get "$id")
  created=$(jfield created <<<"$rec")
  [ "$(jfield expires <<<"$rec")" -eq $(( created + 604800 )) ]
  [ "$(jfield accessed <<<"$rec")" -eq "$created" ]
  now=$(date +%s)
  (( created <= now && created >= now - 5 ))
}

@test "--ttl sets the absolute lifetime" {
  id=$(ctl create --ttl 3600)
  rec=$(ctl get "$id")
  [ "$(jfield expires <<<"$rec")" -eq $(( $(jfield created <<<"$rec") + 3600 )) ]
}

@test "--max-age sets the store's default lifetime" {
  id=$(ctl --max-age 120 create)
  rec=$(ctl get "$id")
  [ "$(jfield expires <<<"$rec")" -eq $(( $(jfield created <<<"$rec") + 120 )) ]
}

@test "--idle sets the session's idle timeout" {
  id=$(ctl create --idle 77)
  run -0 ctl get "$id"
  assert_output --partial '"idle":77'
  id=$(ctl --idle-timeout 66 create)
  run -0 ctl get "$id"
  assert_output --partial '"idle":66'
}

@test "malformed --data is a usage error naming the position, and stores nothing" {
  run -2 --separate-stderr ctl create --data '{"a":'
  assert_error_line 'create: --data is not valid JSON: .* at character [0-9]+'
  [ -z "$output" ]
  run -2 --separate-stderr ctl create --data '{"a":1,"a":2}'
  assert_error_line 'create: --data is not valid JSON: duplicate object key'
  run -2 --separate-stderr ctl create --data '[1,2]'
  assert_error_line 'create: --data must be a JSON object'
  run -2 --separate-stderr ctl create --data '"text"'
  assert_error_line 'must be a JSON object'
  # checked before the store is opened: not even a store was created
  [ ! -e "$STORE" ]
}

@test "--data over the store's cap is a usage error, and --max-data raises it" {
  big=$("$SG_PYTHON" -c 'print("{\"pad\":\"" + "x" * 70000 + "\"}")')
  run -2 --separate-stderr ctl create --data "$big"
  assert_error_line 'over the store.s cap of 65536'
  run -0 ctl --max-data 100000 create --data "$big"
  assert_output --regexp "$UUID_RE"
  run -2 --separate-stderr ctl --max-data 10 create --data '{"abcdefgh":1}'
  assert_error_line 'over the store.s cap of 10'
}

@test "an invalid user name is a usage error" {
  run -2 --separate-stderr ctl create --user ''
  assert_error_line 'user'
  run -2 --separate-stderr ctl create --user $'ali\nce'
  assert_error_line 'user'
  run -2 --separate-stderr ctl create --user "$(printf 'u%.0s' $(seq 257))"
  assert_error_line 'user'
  run -0 ctl count
  assert_output 0
}

@test "--ttl and --idle must be whole positive numbers" {
  for bad in 0 -5 1h 1.5 abc '' 99999999999999999999; do
    run -2 --separate-stderr ctl create --ttl "$bad"
    assert_error_line "create: --ttl: '.*' is not a whole number from 1 to [0-9]+ \\(see sessgatectl create --help\\)"
    run -2 --separate-stderr ctl create --idle "$bad"
    assert_error_line "create: --idle: '.*' is not a whole number"
  done
}

@test "create takes no positional arguments" {
  run -2 --separate-stderr ctl create alice
  assert_error_line 'create: takes no arguments besides its options'
}

# assert_store_modes MODE: the store, its lock file and every other file
# beside it (log, checkpoint) have MODE.
assert_store_modes() {
  local f n=0
  for f in "$STORE" "$STORE".*; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    [ "$(stat -c %a "$f")" = "$1" ] || fail "$f is $(stat -c %a "$f"), not $1"
  done
  [ "$n" -ge 2 ] || fail "expected the store and its lock file, found $n file(s)"
}

# bats test_tags=gdbm-only
@test "a new store and the files beside it are mode 0600" {
  umask 022
  ctl create >/dev/null
  assert_store_modes 600
}

# bats test_tags=gdbm-only
@test "with --group a new store and the files beside it are mode 0660, even under umask 022" {
  umask 022
  ctl --group create >/dev/null
  assert_store_modes 660
}

@test "--sync still stores the session" {
  id=$(ctl --sync create --user synced)
  run -0 ctl get "$id"
  assert_output --partial '"user":"synced"'
}

# Issue #17: jansson refuses 1e400 (overflow) but stored 1e-400 silently as 0.0.
@test "a real number that underflows is refused like one that overflows, and stores nothing" {
  run -2 --separate-stderr ctl create --data '{"x":1e400}'
  assert_error_line 'overflow'
  for d in '{"x":1e-400}' '{"x":-2.5e-320}' '{"a":[1,{"b":1E-999}]}'; do
    run -2 --separate-stderr ctl create --data "$d"
    assert_error_line 'underflows'
  done
  [ "$(ctl count 2>/dev/null || echo 0)" = 0 ]
  # ordinary reals, and the same text inside a string, are kept as given
  id=$(ctl create --data '{"x":1.5e-300,"y":0.0,"s":"1e-400"}')
  run -0 ctl get "$id"
  assert_output --partial '"s":"1e-400"'
  assert_output --partial '"x":1.5'
  run -2 --separate-stderr ctl set "$id" '{"x":1e-400}'
  run -0 ctl get "$id"
  assert_output --partial '"x":1.5'
}
