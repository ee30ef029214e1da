#!/usr/bin/env bats
# tests/store/lockfile.bats - PATH.lock deleted, replaced or out of reach
# while processes use the store: a clear error or a correct new lock file,
# never two writers at once, never a crash (DESIGN §4).
#
# Every process serialises through flock() on PATH.lock.  Someone deleting
# it (by hand, or a cleaner of "stale" lock files) while a writer holds it
# is the dangerous case: the next process creates a new PATH.lock and locks
# that.  The library also locks PATH.wal for writes, which nobody replaces,
# and treats a new lock page as dirty (the deleted one may have carried the
# flag of a writer killed mid-change).  We run as root, so chmod 000 stops
# no one here: a directory stands in for an unusable lock file, and the
# permission cases run as nobody (setpriv).
load ../helpers/common
load ../helpers/storesh
load store

setup() {
  STORE="$BATS_TEST_TMPDIR/s.db"
  CTL="$SG_BUILDDIR/cli/sessgatectl"
}

teardown() {
  exec 5>&- 2>/dev/null || true
  stop_all
}



# one_line_naming PATH: after run --separate-stderr, stderr is one
# "sessgatectl: store ..." line that names PATH.
one_line_naming() {
  [ "${#stderr_lines[@]}" -eq 1 ] || fail "want one stderr line, got: $stderr"
  [[ "$stderr" == "sessgatectl: store $STORE: "* ]] || fail "not a store error: $stderr"
  [[ "$stderr" == *"$1"* ]] || fail "does not name $1: $stderr"
}

@test "deleting PATH.lock while a writer holds the store does not let a second writer in" {
  "$TOOLS/counter" init "$STORE" >/dev/null
  hold_lease 2500
  rm "$STORE.lock"
  # The second writer would create and lock a new PATH.lock at once; it
  # must wait for the first instead, and time out while it still holds.
  run -5 "$TOOLS/lock_probe" "$STORE" 400 create
  note "writer after the delete, first still holding: ${lines[0]}; ${lines[1]}"
  ms=$(field ms "${lines[0]}")
  [ "$ms" -ge 350 ] || fail "gave up after $ms ms, not after its timeout"
  assert_line --index 1 --regexp "lock timeout after 400 ms \(another process holds .*s\.db\.(wal|lock);"
  run -3 --separate-stderr "$CTL" --store "$STORE" --lock-timeout 300 create
  one_line_naming "lock timeout after 300 ms"
  # Once the holder lets go, writers get in, through a new lock file.
  wait_pids 10 "$HOLDER"
  run -0 "$TOOLS/lock_probe" "$STORE" 2000 create
  [ -f "$STORE.lock" ] && [ ! -L "$STORE.lock" ]
  run -0 "$CTL" --store "$STORE" count
  assert_output 2   # counter init's and the last probe's: the others timed out
}

@test "deleting PATH.lock ten times while slow incrementers run in many processes loses no increment" {
  id=$("$TOOLS/counter" init "$STORE")
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  v0=$(field version "$output")
  # Three incrementers that hold the lock 10 ms inside every increment,
  # so a delete nearly always lands while one of them holds it ...
  pids=()
  for i in 1 2 3; do
    spawn "$BATS_TEST_TMPDIR/slow.$i" "$TOOLS/counter" incr "$STORE" "$id" 40 10
    pids+=("$spawned")
  done
  # ... and after every delete a fresh process, which opens (and would
  # create and lock) a new PATH.lock while the holder still writes.  The
  # deletes come slower than a waiter's turn (about 11 x 10 ms): a lock
  # file that changes under every try is given up on, by design ("keeps
  # changing; is something deleting it?").
  for i in $(seq 10); do
    sleep 0.15
    rm -f "$STORE.lock"
    spawn "$BATS_TEST_TMPDIR/fresh.$i" "$TOOLS/counter" incr "$STORE" "$id" 2 10
    pids+=("$spawned")
  done
  # Every process finishes without an error (two writers at once show up
  # as a conflict, a lost increment, or a damaged store).
  wait_pids 60 "${pids[@]}"
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  note "after 10 deletes: $output (started at version $v0)"
  assert_output --regexp '^n=140 '
  [ "$(field version "$output")" -eq $((v0 + 140)) ]
  run -0 "$CTL" --store "$STORE" check
  assert_line 'bad_records: 0'
  [ -f "$STORE.lock" ]
}

@test "a lock file deleted after a writer died mid-change still makes the next writer rebuild the store" {
  [ -x "$TOOLS/gdbm_put" ] || fail "build tests/tools/gdbm_put"
  for i in 1 2 3; do
    "$CTL" --store "$STORE" create --data "{\"v\":$i}" >/dev/null
  done
  # A writer killed halfway: GDBM holds a change the log does not (here a
  # record written behind the library's back) and the dirty flag (offset
  # 16 of the lock page) is up ...
  "$TOOLS/gdbm_put" "$STORE" 0b5c1d2e-0000-4000-8000-000000000000 'half-written'
  printf '\001\000\000\000' | dd of="$STORE.lock" bs=1 seek=16 conv=notrunc status=none
  # ... and then someone removes the "stale" lock file, flag and all.
  rm "$STORE.lock"
  # The next writer must still rebuild from the checkpoint and the log,
  # which drops what the dead writer left half done.
  run -0 --separate-stderr "$CTL" --store "$STORE" check
  note "check after the lock file was lost: $(echo "$output" | tr '\n' ' ')"
  assert_line 'records: 3'
  assert_line 'bad_records: 0'
  assert_line 'recovered: yes (when the store was opened)'
  run -0 "$CTL" --store "$STORE" count
  assert_output 3
}

@test "a directory in place of PATH.lock gives every command one clear error, and the store works again once it is gone" {
  a=$("$CTL" --store "$STORE" create --user alice --data '{"v":1}')
  "$CTL" --store "$STORE" create >/dev/null
  a_start
  a count
  [ "$A" = "ok 2" ]
  rm "$STORE.lock"
  mkdir "$STORE.lock"
  for cmd in "create" "get $a" "get --touch $a" "set $a {\"v\":2}" "rotate $a" \
             "delete $a" "list" "count" "export" "stats" "purge" "check" \
             "check --repair"; do
    # shellcheck disable=SC2086
    run -3 --separate-stderr "$CTL" --store "$STORE" $cmd
    one_line_naming "$STORE.lock"
  done
  note "sessgatectl with a directory for a lock file: $stderr"
  # A handle opened before: its next write finds the lock path changed,
  # cannot open what is there now, and says so instead of crashing or
  # writing under no lock at all.
  a create '{"during":"dir"}'
  [[ "$A" == "err store error: store $STORE: "*"$STORE.lock"* ]] || fail "kept handle: $A"
  note "kept handle: $A"
  rmdir "$STORE.lock"
  a create '{"after":"dir"}'
  [[ "$A" == "ok "* ]] || fail "kept handle after the fix: $A"
  a count
  [ "$A" = "ok 3" ]
  run -0 "$CTL" --store "$STORE" get "$a"
  assert_output --partial '"data":{"v":1}'
  run -0 "$CTL" --store "$STORE" check
  assert_line 'records: 3'
}

@test "a lock file the user may not open is a clear permission error, never a crash or an unlocked write" {
  require_tool setpriv
  id nobody >/dev/null 2>&1 || skip "no user nobody"
  as_nobody=(setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups)
  "${as_nobody[@]}" true 2>/dev/null || skip "setpriv cannot switch to nobody here"
  # nobody must reach the test directory (x only) to reach a store in it.
  local d=$BATS_TEST_TMPDIR
  while [ "$d" != / ] && [ "$d" != "$(dirname "$BATS_RUN_TMPDIR")" ]; do
    chmod o+x "$d"
    d=$(dirname "$d")
  done
  mkdir "$BATS_TEST_TMPDIR/own"
  chown nobody "$BATS_TEST_TMPDIR/own"
  STORE="$BATS_TEST_TMPDIR/own/s.db"
  run -0 "${as_nobody[@]}" "$CTL" --store "$STORE" create --data '{"v":1}'
  id=$output
  # The lock file made unusable for its owner.
  chmod 000 "$STORE.lock"
  for cmd in "create" "get $id" "count" "check --repair"; do
    # shellcheck disable=SC2086
    run -3 --separate-stderr "${as_nobody[@]}" "$CTL" --store "$STORE" $cmd
    one_line_naming "$STORE.lock"
    [[ "$stderr" == *"Permission denied"* ]] || fail "no cause: $stderr"
  done
  note "nobody, lock file mode 000: $stderr"
  chmod 600 "$STORE.lock"
  run -0 "${as_nobody[@]}" "$CTL" --store "$STORE" get "$id"
  assert_output --partial '"data":{"v":1}'
  # A store in a directory nobody cannot enter: the same kind of error.
  mkdir -m 0700 "$BATS_TEST_TMPDIR/closed"
  STORE="$BATS_TEST_TMPDIR/closed/s.db"
  run -3 --separate-stderr "${as_nobody[@]}" "$CTL" --store "$STORE" create
  one_line_naming "$STORE.lock"
  [[ "$stderr" == *"Permission denied"* ]] || fail "no cause: $stderr"
  [ ! -e "$STORE" ]
}
