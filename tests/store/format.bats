#!/usr/bin/env bats
# The stored record format (issue #14): a store left in format 1 (the JSON
# object earlier versions stored; made by tests/tools/oldformat) is read
# as it is, each record is rewritten in format 2 by the next write of its
# session, and `sessgatectl check --repair` converts the rest without
# changing any session.  What `get` and `export` print stays JSON.
# backends: gdbm redis
load ../helpers/common
load ../cli/cli
load ../bindings/bindings   # SG_PYTHON through the ASan wrapper under make SANITIZE

OLDFORMAT="$SG_BUILDDIR/tests/tools/oldformat"
GDBM_GET="$SG_BUILDDIR/tests/tools/gdbm_get"

# raw KEY: the record as stored, behind the library's back.
raw() {
  if on_redis; then
    # a hash whose field d holds the record (backend_redis.c)
    redis-cli -s "$SG_TEST_REDIS_SOCK" HGET "${STORE##*prefix=}$1" d
  else
    "$GDBM_GET" "$STORE" "$1"
  fi
}

# old_store: two sessions (alice's with data, an anonymous one), then
# rewritten in format 1; sets A and B.
old_store() {
  [ -x "$OLDFORMAT" ] || fail "build tests/tools/oldformat (make tools)"
  A=$(ctl create --user alice --data '{"cart":[1,2],"name":"\u00e9"}')
  B=$(ctl create --data '{"n":1}')
  run -0 "$OLDFORMAT" "$STORE"
  assert_output 2
  run -0 raw "$A"
  assert_output --regexp '^\{"id":"'
}

@test "a store in the old format is read as it is, and check counts its records" {
  old_store
  run -0 ctl get "$A"
  assert_output --partial '"user":"alice"'
  assert_output --partial '"data":{"cart":[1,2],"name":"\u00E9"}'
  run -0 ctl list --user alice
  assert_output --partial "$A"
  run -0 ctl check
  assert_line 'old_format: 2 (check --repair converts)'
  run -0 raw "$B"
  assert_output --regexp '^\{"id":"'
}

@test "the next write of a session rewrites its record in the new format" {
  old_store
  run -0 ctl set "$A" '{"more":true}'
  run -0 raw "$A"
  assert_output --regexp '^SGR2 0{19}2 '
  run -0 ctl get "$A"
  assert_output --partial '"data":{"cart":[1,2],"name":"\u00E9","more":true}'
  assert_output --partial '"version":2'
  run -0 raw "$B"
  assert_output --regexp '^\{"id":"'
  run -0 ctl check
  assert_line 'old_format: 1 (check --repair converts)'
}

@test "check --repair converts the whole store and changes no session" {
  old_store
  before=$(ctl export | sort)
  run -0 ctl check --repair
  assert_line 'old_format: 2 (converted)'
  assert_line 'bad_records: 0'
  run -0 raw "$A"
  assert_output --regexp '^SGR2 0{19}1 '
  run -0 raw "$B"
  assert_output --regexp '^SGR2 '
  [ "$(ctl export | sort)" = "$before" ] || fail "export changed by the conversion"
  run -0 ctl check
  assert_line 'old_format: 0'
  run -0 ctl count --user alice
  assert_output 1
}

@test "a Python process reads a record in the old format, data decoded on first access" {
  old_store
  run -0 env PYTHONPATH="$SG_BUILDDIR/bindings/python" "$SG_PYTHON" -c '
import sys, sessgate
s = sessgate.Store(sys.argv[1]).get(sys.argv[2], touch=False)
print(s.user, s.version, s["cart"], s["name"])' "$STORE" "$A"
  assert_output "alice 1 [1, 2] é"
}

# mkstore --raw writes a GDBM file.
# bats test_tags=gdbm-only
@test "mkstore --raw writes records in the current format, --raw-json in format 1" {
  # The walk benches and walks.bats fill their big stores with
  # mkstore --raw; a store of old records is not what a site runs (every
  # read took the JSON path), so --raw writes format 2.
  local f="$BATS_TEST_TMPDIR/raw.db" j="$BATS_TEST_TMPDIR/json.db"
  run -0 "$SG_BUILDDIR/tests/tools/mkstore" --raw "$f" 200 5 10
  run -0 "$SG_BUILDDIR/cli/sessgatectl" --store "$f" check
  assert_line 'old_format: 0'
  assert_line 'records: 200'
  run -0 "$SG_BUILDDIR/cli/sessgatectl" --store "$f" count --user u3
  assert_output 40
  run -0 "$SG_BUILDDIR/tests/tools/mkstore" --raw-json "$j" 200 5 10
  run -0 "$SG_BUILDDIR/cli/sessgatectl" --store "$j" check
  assert_line --partial 'old_format: 200'
}
