#!/usr/bin/env bash
# bench/stats.bash - `sessgatectl stats` at 1,000 and at BENCH_STATS_BIG
# (default 1,000,000) sessions: with the figures the store keeps
# (libcore/counters.c) it reads no record, so the two must be within 2x
# of each other.  Beside them, `stats --walk` (every record read) at 1,000
# and at 100,000 sessions, the cost the kept figures avoid.  Stores are made
# with tests/tools/mkstore (1,000 users); each figure is the best of
# several runs of the whole command (process start, open, answer).
# Then what keeping the figures (the default) costs a write: creates (a
# lock hold each, as a site's creates), anonymous and with 100 users, and
# atomic updates (load, change, save under the lock), each on a store that
# keeps its figures beside one told `stats --keep off`, in one run, rounds
# interleaved, the best of each; the ratio kept / off is the price.
set -u
: "${SG_SRCDIR:?}" "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${BENCH_STATS_BIG:=1000000}"
ctl=$SG_BUILDDIR/cli/sessgatectl mk=$SG_BUILDDIR/tests/tools/mkstore
counter=$SG_BUILDDIR/tests/tools/counter
: "${BENCH_STATS_WRITES:=3000}"
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

# ---- the write cost of keeping the figures
# rate_create STORE [USERS]: creates/s of BENCH_STATS_WRITES one-hold creates
rate_create() {
  "$mk" --single "$1" "$BENCH_STATS_WRITES" ${2:+"$2"} | sed -n 's/.*rate=\([0-9]*\).*/\1/p'
}
# rate_update STORE ID: atomic updates/s of BENCH_STATS_WRITES increments
rate_update() {
  local t0 t
  t0=$(date +%s%N)
  "$counter" incr "$1" "$2" "$BENCH_STATS_WRITES" > /dev/null || { echo "counter failed" >&2; exit 1; }
  t=$(( ($(date +%s%N) - t0) / 1000 ))
  awk -v us="$t" -v n="$BENCH_STATS_WRITES" 'BEGIN { printf "%d", n * 1e6 / us }'
}
max() { awk -v a="${1:-0}" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }
declare -A best
for round in 1 2 3 4 5; do
  for mode in kept off; do
    for kind in anon user; do
      s="$dir/w-$mode-$kind-$round"
      [ "$mode" = off ] && "$ctl" --store "$s" stats --keep off > /dev/null
      r=$(rate_create "$s" "$([ "$kind" = user ] && echo 100)")
      best[$mode-$kind]=$(max "${best[$mode-$kind]:-}" "$r")
    done
    s="$dir/u-$mode-$round"
    [ "$mode" = off ] && "$ctl" --store "$s" stats --keep off > /dev/null
    id=$("$counter" init "$s")
    best[$mode-update]=$(max "${best[$mode-update]:-}" "$(rate_update "$s" "$id")")
  done
  rm -f "$dir"/w-* "$dir"/u-*
done
for kind in anon user update; do
  case $kind in
    anon) what="creates/s, anonymous" ;; user) what="creates/s, 100 users" ;;
    update) what="atomic updates/s" ;;
  esac
  printf '%-34s %10s /s  figures off\n' "$what" "${best[off-$kind]}"
  printf '%-34s %10s /s  figures kept (default)\n' "$what" "${best[kept-$kind]}"
  awk -v a="${best[kept-$kind]}" -v b="${best[off-$kind]}" -v w="$what" 'BEGIN {
    r = a / b; printf "%-34s %6.2f  (target > 0.5: not half) %s\n", w " kept / off", r, (r > 0.5 ? "ok" : "MISSED") }'
done

