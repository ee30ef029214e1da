#!/usr/bin/env bats
# tests/store/kill.bats - a write that returned success survives kill -9.
#
# DESIGN §4 promises that an acknowledged write survives `kill -9` of any
# process at any moment, and that a store left mid-write is recovered
# automatically on the next open.  GDBM's own test suite never kills a
# writer (reference/reliability.md §1.6), so we do: a writer storm
# (tests/tools/storm) is killed at a random instant 50 times; after each
# kill a fresh process must open the store (recovering it if needed) and
# find every acknowledged session with at least its acknowledged value.
load ../helpers/common
load store

setup() {
  STORE=$(make_store)
}

teardown() {
  stop_all
}

@test "kill -9 of a writer at 50 random instants loses no acknowledged write and the store always reopens" {
  run bash "$BATS_TEST_DIRNAME/kill_cycles.bash" "$TOOLS" "$STORE" "$BATS_TEST_TMPDIR" 50
  summary=${lines[${#lines[@]} - 1]}
  note "kill cycles: $(field cycles "$summary"), recovered: $(field recovered "$summary")"
  note "acknowledged writes checked: $(field acked "$summary"); cycles that lost some: $(field lossy "$summary")"
  [ "$status" -eq 0 ] || fail "$(printf '%s\n' "${lines[@]}" | head -n 5)"
  [ "$(field acked "$summary")" -gt 0 ]
  # Writes acknowledged in early cycles must also survive the later kills
  # and recoveries, and every record must still parse.
  run --separate-stderr "$TOOLS/verify" --check "$STORE" "$BATS_TEST_TMPDIR"/ack.*
  note "final verify: $output"
  [ "$status" -eq 0 ] || fail "final verify: $output $stderr"
}
