#!/usr/bin/env bats
# tests/store/size.bats - a store that runs for years stays within a bound
# of its live data (issue 19, item 1).
#
# A constant working set of 120 sessions is rewritten 200,000 times with
# data of varying size (150 to 2,650 bytes), by tests/tools/rewrite runs
# that are killed with SIGKILL at random moments (mid-write, mid-rebuild,
# mid-checkpoint, mid-compaction).  The bound, checked after every run and
# at every figure a run prints: all the store's files together (PATH,
# PATH.wal, PATH.ckpt, PATH.lock and any PATH.tmp, PATH.ckpt.new or
# PATH.new a checkpoint is being built in) stay within
#     4 x live data + 1 MiB
# where the live data is what the sessions' records hold.  Before the fix
# the same workload grew the files by ~1.5 MB per 1,000 writes, linearly
# (issue 19: 17.3 MB PATH after 30,000 writes).  Every acknowledged write
# is checked after every kill.  Takes about a minute on an idle machine.
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

# acked: the acknowledged rewrites so far (each adds one to a session's v).
acked() {
  cat "$STATE" "$STATE.acks" 2>/dev/null | awk '
    NF == 2 && $1 ~ /-/ { v[NR] = $2; id[$1] = NR; n++; next }
    NF == 2 { i = $1 + 1; if ($2 > a[i]) a[i] = $2 }
    END { for (k in id) { x = v[id[k]]; j = id[k]; if (a[j] > x) x = a[j]; s += x } print s + 0 }'
}

# within_bound FILES LIVE WHERE: FILES <= 4 x LIVE + 1 MiB.
within_bound() {
  local bound=$(( 4 * $2 + 1048576 ))
  [ "$1" -le "$bound" ] || fail "$3: the store's files hold $1 bytes, over the bound $bound (live $2)"
}

# bats test_tags=gdbm-only
@test "120 sessions rewritten 200,000 times with kill -9s in between stay within 4 x live data + 1 MiB" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 120
  total=0 kills=0 peak=0 peak_live=0
  for ((seg = 0; seg < 120 && total < 200000; seg++)); do
    spawn "$BATS_TEST_TMPDIR/run.$seg" "$TOOLS/rewrite" run "$STORE" "$STATE" 12000 1000
    pid=$spawned
    # Killed after 0.2 to 1.6 s, or left to finish now and then.
    if (( seg % 4 != 3 )); then
      sleep "$(( (RANDOM % 15) / 10 )).$(( RANDOM % 10 ))2"
      kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
      wait "$pid" 2>/dev/null || true
    else
      wait_pids 120 "$pid"
    fi
    # Every figure the run printed is within the bound.
    while read -r line; do
      f=$(field files "$line") l=$(field live "$line")
      [ -n "$f" ] && [ -n "$l" ] || continue
      within_bound "$f" "$l" "segment $seg, $line"
      [ "$f" -gt "$peak" ] && peak=$f peak_live=$l
    done < "$BATS_TEST_TMPDIR/run.$seg"
    run "$TOOLS/rewrite" verify "$STORE" "$STATE"
    [ "$status" -eq 0 ] || fail "after segment $seg: $output"
    f=$(field files "$output") l=$(field live "$output")
    within_bound "$f" "$l" "after segment $seg"
    [ "$f" -gt "$peak" ] && peak=$f peak_live=$l
    total=$(acked)
  done
  [ "$total" -ge 200000 ] || fail "only $total rewrites in $seg segments"
  note "$total rewrites of 120 sessions, $kills kill -9s: peak $peak bytes of files for $peak_live live (bound $((4 * peak_live + 1048576))); now: $(ls -l "$STORE" "$STORE".* | awk '{printf "%s=%s ", $NF, $5}' | sed "s|$BATS_TEST_TMPDIR/||g")"
  run -0 "$CTL" --store "$STORE" check
  assert_line 'records: 120'
}

# bats test_tags=gdbm-only
@test "compact gives a bloated store's space back, keeps every session and its owner and mode" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 40
  "$TOOLS/rewrite" run "$STORE" "$STATE" 2000 >/dev/null
  # Bloat PATH the way purge of most of a store leaves it: 2,000 sessions
  # of 2 KB created and deleted again.
  pad=$(printf 'z%.0s' $(seq 2000))
  for i in $(seq 200); do echo "{\"pad\":\"$pad\"}"; done > "$BATS_TEST_TMPDIR/data"
  ids=()
  while read -r d; do ids+=("$("$CTL" --store "$STORE" create --data "$d")"); done < "$BATS_TEST_TMPDIR/data"
  for id in "${ids[@]}"; do "$CTL" --store "$STORE" delete "$id"; done
  chmod 0640 "$STORE" "$STORE".*
  chown nobody "$STORE" "$STORE".* 2>/dev/null || true
  want=$(stat -c '%U:%G %a' "$STORE")
  before=$(stat -c %s "$STORE")
  run -0 "$CTL" --store "$STORE" compact
  note "compact: $(tr '\n' ' ' <<<"$output")"
  assert_line 'compacted: yes'
  assert_line 'records: 40'
  after=$(stat -c %s "$STORE")
  [ "$after" -lt "$before" ] || fail "PATH $before -> $after bytes"
  live=$(field live_bytes "$(tr '\n' ' ' <<<"$output" | sed 's/: /=/g')")
  [ "$after" -le $(( 2 * live + 131072 )) ] || fail "PATH $after bytes for $live live"
  [ "$(stat -c %s "$STORE.wal")" -eq 0 ] || fail "the log was not emptied"
  [ ! -e "$STORE.tmp" ]
  for f in "$STORE" "$STORE".*; do
    [ "$(stat -c '%U:%G %a' "$f")" = "$want" ] || fail "$f: $(stat -c '%U:%G %a' "$f"), want $want"
  done
  run -0 "$TOOLS/rewrite" verify "$STORE" "$STATE"
  run -0 "$CTL" --store "$STORE" check
  run -2 --separate-stderr "$CTL" --store "$STORE" compact extra
}

# bats test_tags=gdbm-only
@test "check --repair compacts too: a store bloated by the old write path comes back to size" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 40
  pad=$(printf 'q%.0s' $(seq 3000))
  ids=()
  for i in $(seq 150); do ids+=("$("$CTL" --store "$STORE" create --data "{\"pad\":\"$pad\"}")"); done
  for id in "${ids[@]}"; do "$CTL" --store "$STORE" delete "$id"; done
  before=$(stat -c %s "$STORE")
  run -0 "$CTL" --store "$STORE" check --repair
  after=$(stat -c %s "$STORE")
  note "check --repair: PATH $before -> $after bytes"
  [ "$after" -lt "$before" ] || fail "PATH $before -> $after bytes"
  run -0 "$TOOLS/rewrite" verify "$STORE" "$STATE"
}
