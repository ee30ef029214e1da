#!/usr/bin/env bash
# bench/record.bash - the record format against the one before it, in one
# run (issue #14): builds bench/core of the commit before record format 2
# side by side in a temporary directory, runs both cores alternately on
# fresh stores of their own format, and prints core `get` of each and the
# ratio (target: >= 2x).  Called by bench/run; runnable alone from the top
# of a built tree:
#
#   bench/record.bash
#
# BENCH_RECORD_BASE=REV picks the baseline commit (default: the parent of
# the commit that introduced format 2, found in the git history);
# BENCH_RECORD_ROUNDS (default 2) rounds, each figure the best of them;
# BENCH_CORE_SECONDS the length of each figure.  Outside a git checkout
# with that history the row is skipped, saying so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}" "${SG_BUILDDIR:=$SG_SRCDIR}"
core=$SG_BUILDDIR/bench/core
[ -x "$core" ] || { echo "record: $core is not built (make bench/core)"; exit 1; }
base=${BENCH_RECORD_BASE:-}
if [ -z "$base" ]; then
  intro=$(git -C "$SG_SRCDIR" log --format=%H --reverse -S'#define V2_MAGIC' \
            -- libcore/record.c 2>/dev/null | head -n 1 || true)
  [ -z "$intro" ] || base="$intro^"
fi
if [ -z "$base" ] || ! git -C "$SG_SRCDIR" rev-parse --verify -q "$base^{commit}" >/dev/null; then
  echo "record: skipped (no git history to build the previous format from; set BENCH_RECORD_BASE=REV)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src" "$tmp/old" "$tmp/new"
git -C "$SG_SRCDIR" archive "$base" | tar -x -C "$tmp/src"
if ! (cd "$tmp/src" && ./configure >"$tmp/build.log" 2>&1 &&
      make -j2 bench/core >>"$tmp/build.log" 2>&1); then
  echo "record: the baseline ($base) did not build:"; tail -n 20 "$tmp/build.log"; exit 1
fi
secs=${BENCH_CORE_SECONDS:-1}
# The "get (no touch due)" figure of one full core run on a fresh store.
get_rate() {
  rm -rf "$2"; mkdir -p "$2"
  "$1" --dir "$2" --seconds "$secs" | awk '/^get \(no touch due\)/ { print $5 }'
}
best_old=0 best_new=0
for _ in $(seq "${BENCH_RECORD_ROUNDS:-2}"); do
  o=$(get_rate "$tmp/src/bench/core" "$tmp/old")
  n=$(get_rate "$core" "$tmp/new")
  [ "${o:-0}" -gt "$best_old" ] && best_old=$o
  [ "${n:-0}" -gt "$best_new" ] && best_new=$n
done
printf '%-34s %12s\n' "core get, format 1 ($(git -C "$SG_SRCDIR" rev-parse --short "$base"))" "$best_old"
printf '%-34s %12s\n' "core get, format 2 (this tree)" "$best_new"
awk -v o="$best_old" -v n="$best_new" 'BEGIN {
  r = o > 0 ? n / o : 0
  printf "ratio format 2 / format 1: %.2fx  target >= 2x: %s\n", r, (r >= 2 ? "MET" : "MISSED") }'
