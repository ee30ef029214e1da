#!/usr/bin/env bats
# tests/store/concurrency.bats - many processes on one store: no lost
# updates, stale saves refused, readers and writers stay consistent.
#
# Every process serialises its writes through the store's lock (GDBM: the
# lock file, no daemon; Redis: the lease key, the server being shared).
# These tests drive the library from several processes at full speed with
# the helper programs of tests/tools (counter, mixed, verify) and then check
# totals that any lost or doubled write would break.
# backends: gdbm redis
load ../helpers/common
load store

setup() {
  STORE=$(make_store)
}

teardown() {
  stop_all
}

@test "eight processes doing 250 atomic increments each leave the counter at exactly 2000" {
  id=$("$TOOLS/counter" init "$STORE")
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  v0=$(field version "$output")
  pids=()
  for i in $(seq 8); do
    spawn "$BATS_TEST_TMPDIR/incr.$i" "$TOOLS/counter" incr "$STORE" "$id" 250
    pids+=("$spawned")
  done
  wait_pids 120 "${pids[@]}"
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  assert_output --regexp '^n=2000 '
  # Every increment is one save: the version moved by exactly 2000 too.
  [ "$(field version "$output")" -eq $((v0 + 2000)) ]
}

@test "a save from a copy loaded before another save fails with a conflict and keeps the first" {
  id=$("$TOOLS/counter" init "$STORE")
  run -0 --separate-stderr "$TOOLS/counter" stale "$STORE" "$id"
  # Status codes: SG_OK 0, SG_ECONFLICT 3.
  assert_line --index 0 "first=0 second=3"
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  assert_output --regexp '^n=111 '
}

@test "load-modify-save loops in four processes retry their conflicts and lose no save" {
  id=$("$TOOLS/counter" init "$STORE")
  pids=()
  for i in 1 2 3 4; do
    spawn "$BATS_TEST_TMPDIR/cas.$i" "$TOOLS/counter" cas "$STORE" "$id" 1000
    pids+=("$spawned")
  done
  wait_pids 120 "${pids[@]}"
  saves=0 conflicts=0
  for i in 1 2 3 4; do
    out=$(cat "$BATS_TEST_TMPDIR/cas.$i")
    saves=$((saves + $(field saves "$out")))
    conflicts=$((conflicts + $(field conflicts "$out")))
  done
  note "optimistic saves: $saves, conflicts retried: $conflicts"
  [ "$saves" -eq 4000 ]
  # The stored value is exactly the number of saves that reported success.
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  assert_output --regexp '^n=4000 '
}

@test "four readers and four writers for five seconds leave every acknowledged write in a clean store" {
  pids=()
  for i in 1 2 3 4; do
    spawn "$BATS_TEST_TMPDIR/w.$i" "$TOOLS/mixed" writer "$STORE" 5 "$BATS_TEST_TMPDIR/ack.$i"
    pids+=("$spawned")
    spawn "$BATS_TEST_TMPDIR/r.$i" "$TOOLS/mixed" reader "$STORE" 5
    pids+=("$spawned")
  done
  wait_pids 60 "${pids[@]}"
  reads=0 creates=0 updates=0 saves=0 conflicts=0
  for i in 1 2 3 4; do
    w=$(cat "$BATS_TEST_TMPDIR/w.$i") r=$(cat "$BATS_TEST_TMPDIR/r.$i")
    reads=$((reads + $(field reads "$r")))
    creates=$((creates + $(field creates "$w")))
    updates=$((updates + $(field updates "$w")))
    saves=$((saves + $(field saves "$w")))
    conflicts=$((conflicts + $(field conflicts "$w")))
  done
  note "readers: $reads reads; writers: $creates creates, $updates atomic updates, $saves saves, $conflicts conflicts"
  [ "$creates" -gt 0 ] && [ "$updates" -gt 0 ] && [ "$reads" -gt 0 ]
  # Exact: each session's counter equals its acknowledged increments, the
  # live count equals the sessions created, and every record parses.
  run -0 "$TOOLS/verify" --exact --check "$STORE" "$BATS_TEST_TMPDIR"/ack.*
  note "verify: $output"
  assert_output --partial "missing=0 regressed=0 wrong=0"
  assert_output --partial "bad=0"
}
