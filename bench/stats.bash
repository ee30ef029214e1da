#!/usr/bin/env bash
# bench/stats.bash - `sessgatectl stats` at 1,000 and at BENCH_STATS_BIG
# (default 1,000,000) sessions: with the figures the store keeps
# (libcore/counters.c) it reads no record, so the two must be within 2x
# of each other.  Beside them, `stats --walk` (every record read) at 1,000
# and at 100,000 sessions, the cost the kept figures avoid.  Stores are made
# with tests/tools/mkstore (1,000 users); each figure is the best of
# several runs of the whole command (process start, open, answer).
set -u
: "${SG_SRCDIR:?}" "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${BENCH_STATS_BIG:=1000000}"
ctl=$SG_BUILDDIR/cli/sessgatectl mk=$SG_BUILDDIR/tests/tools/mkstore
[ -x "$ctl" ] && [ -x "$mk" ] || { echo "bench/stats: build first (make)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/sessgate-statsbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT

best() {  # best RUNS STORE ARGS...: the best wall time of `stats ARGS`, in ms
  local runs=$1 store=$2 i t0 t best=
  shift 2
  for i in $(seq "$runs"); do
    t0=$(date +%s%N)
    "$ctl" --store "$store" stats "$@" > "$dir/out" || { echo "stats failed" >&2; exit 1; }
    t=$(( ($(date +%s%N) - t0) / 1000 ))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  awk -v us="$best" 'BEGIN { printf "%.2f", us / 1000 }'
}

for n in 1000 100000 "$BENCH_STATS_BIG"; do
  "$ctl" --store "$dir/s$n" stats --keep on > /dev/null &&      # the store keeps its figures
  "$mk" "$dir/s$n" "$n" 1000 > "$dir/mk$n" || { echo "mkstore $n failed" >&2; exit 1; }
done
grep -q '^counted: kept$' <("$ctl" --store "$dir/s$BENCH_STATS_BIG" stats) ||
  { echo "bench/stats: the big store's figures are not kept" >&2; exit 1; }
# Interleaved, best of 3 x 5 each: a loaded machine's noise (2 CPUs
# shared) is larger than the difference being measured.
small= big=
for round in 1 2 3; do
  a=$(best 5 "$dir/s1000") b=$(best 5 "$dir/s$BENCH_STATS_BIG")
  if [ -z "$small" ] || awk -v x="$a" -v y="$small" 'BEGIN { exit !(x < y) }'; then small=$a; fi
  if [ -z "$big" ] || awk -v x="$b" -v y="$big" 'BEGIN { exit !(x < y) }'; then big=$b; fi
done
walk_small=$(best 3 "$dir/s1000" --walk)
walk_mid=$(best 3 "$dir/s100000" --walk)
printf '%-34s %10s ms\n' "stats, 1000 sessions" "$small"
printf '%-34s %10s ms\n' "stats, $BENCH_STATS_BIG sessions" "$big"
printf '%-34s %10s ms\n' "stats --walk, 1000 sessions" "$walk_small"
printf '%-34s %10s ms\n' "stats --walk, 100000 sessions" "$walk_mid"
awk -v a="$big" -v b="$small" -v n="$BENCH_STATS_BIG" 'BEGIN {
  r = a / b; printf "%-34s %6.2f  (target <= 2) %s\n", "stats " n " / stats 1000", r, r <= 2 ? "ok" : "MISSED" }'
