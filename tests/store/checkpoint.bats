#!/usr/bin/env bats
# tests/store/checkpoint.bats - checkpoints and compactions keep no writer
# waiting, and a kill -9 anywhere in them loses no acknowledged write.
#
# A checkpoint used to verify PATH and copy it to PATH.ckpt under the
# exclusive lock, and `sessgatectl compact` rewrote the whole file there:
# on a store of 60,000 sessions here a writer beside a compact waited out
# the 5 s lock timeout and failed (issue 19; 1M sessions: 109 s, 42 failed
# writes).  Now both are built behind the lock from the old checkpoint and
# the log, and only the last records and the renames happen under it
# (libcore/gdbm_fuzzy.c).  walkload runs a writer (create + delete, 0.5 ms
# apart) and a gateway-like reader beside the compaction.  The longest
# wait must be a small part of the compaction's time (under a quarter: the
# old code kept writers waiting for all of it, whatever the machine's
# speed), and under WAIT_BOUND_MS (half the lock timeout; far above what
# this loaded shared machine adds by itself).  GDBM only: Redis has no
# checkpoint.
load ../helpers/common
load store

WAIT_BOUND_MS=2500

teardown() {
  stop_all
}

# big_store N: a store of N sessions written raw (mkstore --raw), then
# opened once writable, which takes its first checkpoint (a copy under
# the lock, once: there is no history to build one from).
big_store() {
  STORE="$BATS_TEST_TMPDIR/s.db"
  "$TOOLS/mkstore" --raw "$STORE" "$1" 100 >/dev/null
  run sessgatectl --store "$STORE" count
  [ "$status" -eq 0 ] && [ "$output" = "$1" ] || fail "count: $output"
  [ -e "$STORE.ckpt" ]
}

@test "sessgatectl compact of 60,000 sessions keeps no writer or reader waiting, and loses nothing" {
  big_store 60000
  local stop="$BATS_TEST_TMPDIR/stop" i t0 t1
  spawn "$BATS_TEST_TMPDIR/load" "$TOOLS/walkload" "$STORE" "$stop" 240 1 1 500
  local load=$spawned
  for ((i = 0; i < 200; i++)); do
    grep -q ready "$BATS_TEST_TMPDIR/load.err" 2>/dev/null && break
    sleep 0.05
  done
  t0=$(date +%s%N)
  run sessgatectl --store "$STORE" compact
  t1=$(date +%s%N)
  touch "$stop"
  wait_pids 60 "$load"
  [ "$status" -eq 0 ] || fail "compact: $output"
  assert_line "compacted: yes"
  LOAD=$(cat "$BATS_TEST_TMPDIR/load")
  note "compact took $(((t1 - t0) / 1000000)) ms; beside it: $LOAD"
  [ "$(field failures "$LOAD")" = 0 ] ||
    fail "a call failed during the compaction: $(cat "$BATS_TEST_TMPDIR/load.err")"
  local w r took=$(((t1 - t0) / 1000000))
  w=$(field write_max_ms "$LOAD"); r=$(field read_max_ms "$LOAD")
  [ "${w%.*}" -lt "$WAIT_BOUND_MS" ] || fail "a write waited $w ms"
  [ "${r%.*}" -lt "$WAIT_BOUND_MS" ] || fail "a read waited $r ms"
  [ $((${w%.*} * 4)) -lt "$took" ] ||
    fail "a write waited $w ms of the compaction's $took ms"
  [ $((${r%.*} * 4)) -lt "$took" ] ||
    fail "a read waited $r ms of the compaction's $took ms"
  [ "$(field writes "$LOAD")" -gt 0 ] || fail "no write went through: $LOAD"
  # Every session is still there (walkload's writer deletes its own), the
  # store checks clean, and the build left no file behind.
  run sessgatectl --store "$STORE" count
  [ "$output" -ge 60000 ] && [ "$output" -le 60002 ] || fail "count: $output"
  run sessgatectl --store "$STORE" check
  [ "$status" -eq 0 ] || fail "check: $output"
  [ ! -e "$STORE.new" ] && [ ! -e "$STORE.ckpt.new" ]
  # The checkpoint alone is a sound store with every session.
  cp "$STORE.ckpt" "$BATS_TEST_TMPDIR/alone.db"
  run sessgatectl --store "$BATS_TEST_TMPDIR/alone.db" count
  [ "$output" -ge 60000 ] || fail "the checkpoint alone counts $output"
}

@test "kill -9 of compactions and of writers building checkpoints, at random instants, loses no acknowledged write" {
  big_store 20000
  local cycle ack pid cpid rc out n acked=0 killed_mid=0
  for ((cycle = 1; cycle <= 12; cycle++)); do
    ack="$BATS_TEST_TMPDIR/ack.$cycle"
    : > "$ack"
    # storm writes pads of up to 3 KB: its log outgrows PATH within
    # seconds, so it builds checkpoints itself, and is killed in them too.
    "$TOOLS/storm" "$STORE" "$ack" 2>"$BATS_TEST_TMPDIR/storm.err" 3>&- </dev/null &
    pid=$!
    sleep "0.$((RANDOM % 3 + 1))"
    "$SG_CTL" --store "$STORE" compact >/dev/null 2>&1 3>&- </dev/null &
    cpid=$!
    sleep "$(printf '%d.%03d' $((RANDOM % 2)) $((RANDOM % 1000)))"
    if kill -KILL "$cpid" 2>/dev/null; then killed_mid=$((killed_mid + 1)); fi
    rc=0; { wait "$cpid" || rc=$?; } 2>/dev/null
    [ $((cycle % 3)) -eq 0 ] || sleep "0.$((RANDOM % 5))"
    kill -KILL "$pid" 2>/dev/null || true
    rc=0; { wait "$pid" || rc=$?; } 2>/dev/null
    [ "$rc" -eq 137 ] || fail "cycle $cycle: storm exited $rc: $(tail -n 3 "$BATS_TEST_TMPDIR/storm.err")"
    out=$("$TOOLS/verify" "$STORE" "$ack" 2>"$BATS_TEST_TMPDIR/verify.err") ||
      fail "cycle $cycle: $out $(head -n 3 "$BATS_TEST_TMPDIR/verify.err")"
    n=${out#acked=}
    acked=$((acked + ${n%% *}))
  done
  note "12 cycles, $killed_mid compactions killed mid-way, $acked acknowledged writes checked"
  [ "$acked" -gt 0 ]
  [ "$killed_mid" -gt 0 ] || fail "no compaction was killed mid-way"
  # Once more to the end: it removes what the killed builds left, and all
  # acknowledged writes of every cycle are still there.
  run sessgatectl --store "$STORE" compact
  [ "$status" -eq 0 ] || fail "compact: $output"
  [ ! -e "$STORE.new" ] && [ ! -e "$STORE.ckpt.new" ]
  run --separate-stderr "$TOOLS/verify" --check "$STORE" "$BATS_TEST_TMPDIR"/ack.*
  [ "$status" -eq 0 ] || fail "final verify: $output $stderr"
  run sessgatectl --store "$STORE" check
  [ "$status" -eq 0 ] || fail "check: $output"
}
