#!/usr/bin/env bats
# tests/store/truncate.bats - a truncated store file (an operator's
# mistake, a filesystem fault) is recognised on open like a garbage one and
# rebuilt from the checkpoint and the log, and is never checkpointed:
# every acknowledged session comes back (issue 19, item 0).
#
# GDBM 1.23 opens a file cut short as long as its header survives, serves
# what lies before the cut, and even takes writes; the unlock path then
# copied the damaged file to PATH.ckpt and emptied the log, and the
# history needed to rebuild was gone (count, export and check --repair
# failed from then on).  Each test brings the log close to its checkpoint
# threshold first (256 KiB and the size of PATH), so the writes after the
# cut do checkpoint.
load ../helpers/common
load store

setup() {
  STORE="$BATS_TEST_TMPDIR/s.db"
  STATE="$BATS_TEST_TMPDIR/state"
  CTL="$SG_BUILDDIR/cli/sessgatectl"
}

teardown() {
  stop_all
}

# near_checkpoint: 40 sessions, rewritten until the log is within ~40 KB
# of its checkpoint threshold, 256 KiB or the size of PATH (bounded).
near_checkpoint() {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 40
  local i wal thr
  for ((i = 0; i < 300; i++)); do
    wal=$(stat -c %s "$STORE.wal")
    thr=$(stat -c %s "$STORE")
    [ "$thr" -ge 262144 ] || thr=262144
    [ "$wal" -ge $((thr - 40000)) ] && return 0
    "$TOOLS/rewrite" run "$STORE" "$STATE" 10 >/dev/null
  done
  fail "the log never neared its threshold $thr (at $wal bytes)"
}

# ckpt_whole: PATH.ckpt, if there is one, is a sound store on its own.
ckpt_whole() {
  [ -e "$STORE.ckpt" ] || return 0
  local c="$BATS_TEST_TMPDIR/ckpt-copy.db"
  rm -f "$c" "$c".*
  cp "$STORE.ckpt" "$c"
  run "$CTL" --store "$c" check
  [ "$status" -eq 0 ] || fail "after a cut at $1: PATH.ckpt is damaged: $output"
}

# bats test_tags=gdbm-only
@test "PATH truncated at any of 40 offsets, then written: rebuilt, never checkpointed damaged, nothing acknowledged lost" {
  near_checkpoint
  wal0=$(stat -c %s "$STORE.wal")
  mkdir "$BATS_TEST_TMPDIR/pristine"
  cp -p "$STORE" "$STORE".* "$STATE" "$BATS_TEST_TMPDIR/pristine/"
  size=$(stat -c %s "$STORE")
  # Offsets: inside the header, at and around block edges, fractions of
  # the file, and a spread of others; every one of them bounded by size.
  offsets=(0 1 20 39 40 100 4095 4096 4097 8191 8192 12288
           $((size / 8)) $((size / 4)) $((size / 3)) $((size / 2))
           $((size * 2 / 3)) $((size * 3 / 4)) $((size - 4096))
           $((size - 4097)) $((size - 512)) $((size - 1)))
  for ((i = 0; ${#offsets[@]} < 40; i++)); do
    offsets+=($(( (i * 7919 * 4093 + 12345) % size )))
  done
  checkpointed=0
  for off in "${offsets[@]}"; do
    rm -f "$STORE" "$STORE".* "$STATE" "$STATE".*
    cp -p "$BATS_TEST_TMPDIR/pristine/"* "$BATS_TEST_TMPDIR/"
    truncate -s "$off" "$STORE"
    # Enough writes to cross the checkpoint threshold (~130 KB of log).
    run "$TOOLS/rewrite" run "$STORE" "$STATE" 100
    [ "$status" -eq 0 ] || fail "writes after a cut at $off failed: $output"
    [ "$(stat -c %s "$STORE.wal")" -lt "$wal0" ] && checkpointed=$((checkpointed + 1))
    ckpt_whole "$off"
    run "$TOOLS/rewrite" verify "$STORE" "$STATE"
    [ "$status" -eq 0 ] || fail "after a cut at $off: $output"
    assert_output --regexp '^ok 40 '
    run -0 "$CTL" --store "$STORE" count
    [ "$output" -ge 40 ] || fail "after a cut at $off: count $output"
  done
  note "40 cuts of a $size-byte PATH, $checkpointed of them followed by a checkpoint: all 40 sessions whole each time"
  [ "$checkpointed" -ge 30 ] || fail "only $checkpointed runs checkpointed: the test tests too little"
}

# bats test_tags=gdbm-only
@test "PATH truncated under a kept handle: its writes go on, the checkpoint is never of the damaged file" {
  near_checkpoint
  size=$(stat -c %s "$STORE")
  id=$(head -n1 "$STATE" | cut -d' ' -f1)
  coproc SH { "$TOOLS/storesh" "$STORE" 2>&1; }
  echo "$SH_PID" >> "$(sg_pidfile)"
  echo "get $id" >&"${SH[1]}"
  read -r -t 10 A <&"${SH[0]}"
  [[ "$A" == "ok "* ]] || fail "storesh: $A"
  truncate -s $((size / 2)) "$STORE"
  pad=$(printf 'y%.0s' $(seq 1500))
  for ((i = 1; i <= 200; i++)); do
    echo "save $id {\"v\":$i,\"pad\":\"$pad\"}" >&"${SH[1]}"
    read -r -t 10 A <&"${SH[0]}"
    [[ "$A" == "ok "* ]] || fail "save $i through the kept handle: $A"
  done
  echo "recoveries" >&"${SH[1]}"
  read -r -t 10 A <&"${SH[0]}"
  note "kept handle after a cut to half and 200 saves: recoveries $A, log $(stat -c %s "$STORE.wal") bytes"
  exec {SH[1]}>&-
  wait "$SH_PID" || true
  ckpt_whole "$((size / 2))"
  # Every other session is as acknowledged, and the saved one at v 200.
  grep -v "^$id " "$STATE" > "$STATE.others"
  run "$TOOLS/rewrite" verify "$STORE" "$STATE.others"
  [ "$status" -eq 0 ] || fail "$output"
  run -0 "$CTL" --store "$STORE" get "$id"
  assert_output --partial '"v":200'
  run -0 "$CTL" --store "$STORE" check
}

# bats test_tags=gdbm-only
@test "a truncated PATH with no checkpoint or log says truncated and that check --repair can salvage" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 40
  # A store as an older sessgate (or a restore) left it: no history.
  rm -f "$STORE.wal" "$STORE.ckpt" "$STORE.lock"
  truncate -s $(( $(stat -c %s "$STORE") - 4096 )) "$STORE"
  run -3 --separate-stderr "$CTL" --store "$STORE" create
  [[ "$stderr" == *"truncated"* ]] || fail "no cause: $stderr"
  [[ "$stderr" == *"check --repair"* ]] || fail "no fix: $stderr"
  run "$CTL" --store "$STORE" check --repair
  note "repair of a truncated store without history: exit $status: $output"
  run -0 "$CTL" --store "$STORE" create
}

# bats test_tags=gdbm-only
@test "PATH truncated under a kept reader handle: its reads go on, no crash, the store is rebuilt" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 40
  "$TOOLS/rewrite" run "$STORE" "$STATE" 300 >/dev/null
  size=$(stat -c %s "$STORE")
  # A reader keeps GDBM's mmap of PATH; reading through it after a cut
  # faulted (SIGBUS) and killed the process.
  {
    cut -d' ' -f1 "$STATE" | sed 's/^/get /'
    sleep 0.5
    truncate -s $((size / 3)) "$STORE"
    cut -d' ' -f1 "$STATE" | sed 's/^/get /'
    echo recoveries
  } | "$TOOLS/storesh" "$STORE" > "$BATS_TEST_TMPDIR/sh.out" 2>&1 || fail "storesh died: exit $? ($(tail -n 2 "$BATS_TEST_TMPDIR/sh.out"))"
  [ "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/sh.out")" -eq 81 ] || fail "$(grep -v '^ok ' "$BATS_TEST_TMPDIR/sh.out" | head -n 3)"
  tail -n 1 "$BATS_TEST_TMPDIR/sh.out" | grep -q '^ok [1-9]' || fail "no recovery: $(tail -n 1 "$BATS_TEST_TMPDIR/sh.out")"
  run -0 "$TOOLS/rewrite" verify "$STORE" "$STATE"
}
