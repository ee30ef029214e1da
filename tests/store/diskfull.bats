#!/usr/bin/env bats
# tests/store/diskfull.bats - a full disk gives an error, never a false
# success, and loses no earlier session (DESIGN §4).
#
# Two ways to run out of room: a 256 KiB tmpfs (ENOSPC; needs root to
# mount, skipped otherwise) and a file size limit (ulimit -f with SIGXFSZ
# ignored, so writes fail with EFBIG; works for anyone).  tests/tools/fill
# creates 1 KB sessions until a call fails, acknowledging each SG_OK in a
# file on another filesystem; verify then finds every acknowledged session.
# Write errors during set, rotate, purge and recovery: ioerror.bats.
load ../helpers/common
load store

teardown() {
  stop_all
  if [ -n "${MOUNTED:-}" ]; then
    umount "$MOUNTED" || umount -l "$MOUNTED" || true
  fi
}

# check_fill STORE: the fill just run failed cleanly and lost nothing.
check_fill() {
  local store=$1 acked
  acked=$(field acked "${lines[0]}")
  note "disk full after $acked sessions: ${lines[0]#*status=}; ${lines[1]:-}"
  # The disk was not full from the start.  (fill exits 0 only when a call
  # returned an error; a false success would be an acknowledged session
  # that verify cannot find.)
  [ "$acked" -ge 10 ]
  # Every acknowledged session is there, every record parses, and the
  # store opens again (verify opens it afresh).
  run -0 "$TOOLS/verify" --check "$store" "$BATS_TEST_TMPDIR/ack"
  note "after: $output"
  [ "$(field sessions "$output")" -eq "$acked" ]
}

@test "on a full tmpfs the failing create returns an error and every earlier session survives" {
  [ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root"
  dir="$BATS_TEST_TMPDIR/small"
  mkdir "$dir"
  mount -t tmpfs -o size=256k,mode=0700 sgtest "$dir" 2>/dev/null ||
    skip "mount -t tmpfs refused here (the ulimit test covers disk full)"
  MOUNTED=$dir
  # Ballast to delete afterwards, to show the store works again with room.
  head -c 32768 /dev/zero > "$dir/ballast"
  run -0 "$TOOLS/fill" "$dir/s.db" "$BATS_TEST_TMPDIR/ack"
  check_fill "$dir/s.db"
  rm "$dir/ballast"
  run -0 "$TOOLS/storesh" "$dir/s.db" <<<'create {"after":"full"}'
  assert_output --regexp '^ok [0-9a-f-]{36}$'
}

@test "past the file size limit the failing create returns an error and every earlier session survives" {
  store=$(make_store)
  # 256 blocks of 1 KiB; SIGXFSZ ignored so write() fails with EFBIG
  # (an ignored signal stays ignored across exec).
  run -0 bash -c 'ulimit -f 256; trap "" XFSZ; exec "$@"' fill \
    "$TOOLS/fill" "$store" "$BATS_TEST_TMPDIR/ack"
  check_fill "$store"
  # Without the limit, the same store takes new sessions again.
  run -0 "$TOOLS/storesh" "$store" <<<'create {"after":"full"}'
  assert_output --regexp '^ok [0-9a-f-]{36}$'
}

@test "a writer that died on a full disk: reads go on from the file, writes wait for space and then rebuild" {
  [ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root"
  dir="$BATS_TEST_TMPDIR/small"
  mkdir "$dir"
  mount -t tmpfs -o size=256k,mode=0700 sgtest "$dir" 2>/dev/null ||
    skip "mount -t tmpfs refused here"
  MOUNTED=$dir
  # A big ballast: deleting it must leave room for a whole rebuild.
  head -c 163840 /dev/zero > "$dir/ballast"
  run -0 "$TOOLS/fill" "$dir/s.db" "$BATS_TEST_TMPDIR/ack"
  acked=$(field acked "${lines[0]}")
  [ "$acked" -ge 10 ]
  # A writer killed mid-change leaves the dirty flag (offset 16 of the lock
  # page) raised; the rebuild it calls for needs room the disk lacks.
  printf '\001\000\000\000' | dd of="$dir/s.db.lock" bs=1 seek=16 conv=notrunc status=none
  run -0 "$TOOLS/verify" "$dir/s.db" "$BATS_TEST_TMPDIR/ack"
  note "full disk, dirty store: $output"
  [ "$(field sessions "$output")" -eq "$acked" ]
  # A write cannot rebuild yet: an error, never a false success.
  run "$TOOLS/storesh" "$dir/s.db" <<<'create {"during":"full"}'
  refute_output --regexp '^ok [0-9a-f-]{36}$'
  # With room again, the next writer rebuilds and everything is there.
  rm "$dir/ballast"
  run -0 "$TOOLS/storesh" "$dir/s.db" <<<'create {"after":"full"}'
  assert_output --regexp '^ok [0-9a-f-]{36}$'
  run -0 "$TOOLS/verify" --check "$dir/s.db" "$BATS_TEST_TMPDIR/ack"
  [ "$(field sessions "$output")" -ge "$acked" ]
}
