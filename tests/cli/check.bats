#!/usr/bin/env bats
# sessgatectl check: figures for a healthy store, exit 3 for damage,
# --repair removing bad records and rebuilding a torn file, and a clear
# refusal for a file that is not a store at all.
# backends: gdbm redis
load ../helpers/common
load cli

GDBM_PUT="$SG_BUILDDIR/tests/tools/gdbm_put"

# put_raw KEY VALUE: write a record behind the library's back: into the
# GDBM file with gdbm_put, or into Redis under the store's key prefix.
put_raw() {
  if on_redis; then
    redis-cli -s "$SG_TEST_REDIS_SOCK" SET "${STORE##*prefix=}$1" "$2" >/dev/null
  else
    [ -x "$GDBM_PUT" ] || fail "build tests/tools/gdbm_put (make tools)"
    "$GDBM_PUT" "$STORE" "$1" "$2"
  fi
}

@test "check of a healthy store prints its figures and exits 0" {
  ctl create --user alice >/dev/null; ctl create >/dev/null; ctl create >/dev/null
  run -0 --separate-stderr ctl check
  assert_line "store: $STORE"
  assert_line 'records: 3'
  assert_line 'bad_records: 0'
  assert_line 'recovered: no'
  assert_line 'recovered_keys: 0'
  assert_line 'failed_keys: 0'
  assert_line 'old_format: 0'
  [ "${#lines[@]}" -eq 7 ]
  [ -z "$stderr" ]
}

@test "check --repair of a healthy store changes no session" {
  a=$(ctl create --user alice --data '{"k":1}'); b=$(ctl create)
  before=$(ctl export | sort)
  run -0 ctl check --repair
  assert_line 'bad_records: 0'
  [ "$(ctl export | sort)" = "$before" ]
  run -0 ctl count --user alice
  assert_output 1
}

@test "a record damaged behind the library's back is exit 3; --repair removes it and keeps the others" {
  a=$(ctl create --user alice --data '{"keep":"me"}'); b=$(ctl create)
  put_raw 0b5c1d2e-0000-4000-8000-000000000000 'this is not json'
  run -3 --separate-stderr ctl check
  assert_line 'records: 3'
  assert_line 'bad_records: 1 (run check --repair)'
  assert_error_line "store $(store_re): 1 damaged record\\(s\\) \\(run sessgatectl check --repair\\)"
  run -0 --separate-stderr ctl check --repair
  # GDBM rebuilds the file from the checkpoint and the write-ahead log,
  # which never held the damaged record; Redis has no file to rebuild, the
  # repair deletes the record and says so.
  if on_redis; then
    assert_line 'bad_records: 1 (removed)'
  else
    assert_line 'bad_records: 0'
    assert_line 'recovered: yes'
  fi
  run -0 ctl check
  assert_line 'records: 2'
  assert_line 'bad_records: 0'
  run -0 ctl get "$a"
  assert_output --partial '"data":{"keep":"me"}'
  run -0 ctl get "$b"
  run -1 ctl get 0b5c1d2e-0000-4000-8000-000000000000
}

# bats test_tags=gdbm-only
@test "a torn store file is exit 3; check --repair rebuilds it and keeps the sessions" {
  for i in 1 2 3 4 5 6; do
    ctl create --data "{\"k\":\"$(head -c 300 /dev/urandom | base64 -w0)\"}" >/dev/null
  done
  # overwrite 3 KB in the middle of the file, as a crash or bad disk might
  "$SG_PYTHON" -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(5000); f.write(b"\xff" * 3000)' "$STORE"
  run -3 --separate-stderr ctl check
  assert_error_line "store .*sessions\\.db"
  run -0 ctl check --repair
  assert_line 'recovered: yes'
  assert_line 'failed_keys: 0'
  run -0 ctl check
  assert_line 'records: 6'
  assert_line 'bad_records: 0'
  run -0 ctl count
  assert_output 6
}

# bats test_tags=gdbm-only
@test "a store file overwritten with garbage is rebuilt from its log on the next open" {
  id=$(ctl create --user alice --data '{"keep":"me"}')
  head -c 16384 /dev/urandom > "$STORE"
  run -0 --separate-stderr ctl check
  assert_line 'bad_records: 0'
  run -0 ctl get "$id"
  assert_output --partial '"data":{"keep":"me"}'
}

# bats test_tags=gdbm-only
@test "a garbage store file with no log or checkpoint is exit 3 naming the file, and left alone" {
  ctl create >/dev/null
  rm -f "$STORE.wal" "$STORE.ckpt"
  head -c 16384 /dev/urandom > "$STORE"
  cp "$STORE" "$BATS_TEST_TMPDIR/garbage.copy"
  run -3 --separate-stderr ctl check
  assert_error_line "store .*sessions\\.db: damaged, with no checkpoint or log"
  [ -z "$output" ]
  # nothing to rebuild from: --repair must not replace the file with an
  # empty store
  run -3 --separate-stderr ctl check --repair
  assert_error_line "store .*sessions\\.db: "
  cmp "$STORE" "$BATS_TEST_TMPDIR/garbage.copy"
  run -3 --separate-stderr ctl get 0b5c1d2e-0000-4000-8000-000000000000
  assert_error_line "store .*sessions\\.db"
  run -3 ctl create
}

@test "check rejects unknown options" {
  run -2 --separate-stderr ctl check --fix
  assert_error_line 'check: unknown option --fix'
}

@test "a damaged record does not stop list, count or export of the others" {
  a=$(ctl create --user alice); b=$(ctl create)
  put_raw 0b5c1d2e-0000-4000-8000-000000000000 'this is not json'
  run -0 ctl count
  assert_output 2
  run -0 ctl export
  [ "${#lines[@]}" -eq 2 ]
  assert_output --partial "$a"
  run -0 ctl list
  refute_output --partial 0b5c1d2e-0000-4000-8000-000000000000
  # check still reports it
  run -3 --separate-stderr ctl check
  assert_line 'bad_records: 1 (run check --repair)'
}

@test "compact keeps every session; on Redis it says there is nothing to do" {
  a=$(ctl create --user alice --data '{"k":1}'); b=$(ctl create)
  ctl delete "$b"
  run -0 --separate-stderr ctl compact
  assert_line "store: $STORE"
  if on_redis; then
    assert_line --partial 'compacted: no'
  else
    assert_line 'compacted: yes'
    assert_line --regexp '^records: [1-9][0-9]*$'   # the session and alice's index keys
  fi
  [ -z "$stderr" ]
  run -0 ctl get "$a"
  assert_output --partial '"data":{"k":1}'
  run -0 ctl list --user alice
  assert_output --partial "$a"
  run -2 --separate-stderr ctl compact --now
  assert_error_line 'compact: unknown option --now'
}

@test "checkpoint builds one only when due (or --force) and keeps every session; on Redis there is nothing to do" {
  a=$(ctl create --user alice --data '{"k":1}')
  run -0 --separate-stderr ctl checkpoint
  assert_line "store: $STORE"
  assert_line "due: no"
  assert_line "built: no"
  [ -z "$stderr" ]
  run -0 ctl checkpoint --force
  if on_redis; then
    assert_line "built: no"
  else
    assert_line "built: yes"
    [ "$(stat -c %s "$STORE.wal")" -eq 0 ] || fail "the log was not emptied"
  fi
  run -0 ctl get "$a"
  assert_output --partial '"data":{"k":1}'
  run -2 --separate-stderr ctl checkpoint now
  assert_error_line 'checkpoint: takes no arguments besides its options'
}
