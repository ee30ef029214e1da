#!/usr/bin/env bash
# bench/redis_writes.bash - the Redis rows before and after issue #13, in
# one run on one redis-server: this tree's bench/core beside the same
# program built from a baseline commit in a scratch directory.
#
#   bench/redis_writes.bash          (bench/run calls it; BENCH_REDIS=0 skips)
#
# Why a second build: the before figures must come from the same machine,
# load and Redis as the after figures, or the ratio means nothing.  The
# baseline is BENCH_REDIS_BASE (a commit), by default the parent of the
# commit that made each single-session Redis write one EVALSHA script (the
# last one with the store-wide lease on every write).  Needs git (the tree
# must be a checkout); otherwise the rows are skipped with a line saying so.
# Prints, per operation and process count, base ops/s, new ops/s and
# new / base.  Issue #13's targets: writes (atomic update, create) from 8
# processes >= 4x the baseline, and 8 processes faster than 1; gets not
# slower.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
core=$SG_BUILDDIR/bench/core

echo "== Redis writes before/after (issue #13)"
if [ "${BENCH_REDIS:-1}" = 0 ]; then
  echo "skipped (BENCH_REDIS=0)"; exit 0
fi
for t in redis-server redis-cli git; do
  command -v "$t" >/dev/null 2>&1 || { echo "skipped: $t is not installed"; exit 0; }
done
[ -x "$core" ] || { echo "skipped: $core is not built"; exit 0; }
base=${BENCH_REDIS_BASE:-}
if [ -z "$base" ]; then
  c=$(git -C "$SG_SRCDIR" log -1 --format=%H \
        --grep='each single-session write is one EVALSHA script' 2>/dev/null)
  [ -n "$c" ] && base="$c^"
fi
if [ -z "$base" ] || ! git -C "$SG_SRCDIR" rev-parse --verify -q "$base^{commit}" >/dev/null; then
  echo "skipped: no baseline commit (set BENCH_REDIS_BASE)"; exit 0
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sessgate-rw.XXXXXX")
redis_pid=
cleanup() {
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$scratch/base" "$scratch/run-base" "$scratch/run-new"
if ! git -C "$SG_SRCDIR" archive "$base" | tar -x -C "$scratch/base" ||
   ! (cd "$scratch/base" && ./configure >"$scratch/build.log" 2>&1 &&
      make -j2 bench/core >>"$scratch/build.log" 2>&1); then
  tail -n 5 "$scratch/build.log"
  echo "skipped: the baseline $base did not build"; exit 0
fi

sock=$scratch/redis.sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$scratch" \
  --save '' --appendonly no --daemonize no --logfile "$scratch/redis.log" \
  </dev/null >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG || { echo "skipped: redis-server did not start"; exit 0; }

secs=${BENCH_CORE_SECONDS:-1}
# Interleaved: base, new, base, new... each keeping its best per row.
for round in $(seq "${BENCH_REDIS_ROUNDS:-2}"); do
  for which in base new; do
    prog=$core
    [ "$which" = base ] && prog=$scratch/base/bench/core
    "$prog" --dir "$scratch/run-$which" --seconds "$secs" --rounds 1 \
      --store "redis+unix:$sock?prefix=$which$round:" >"$scratch/$which.$round" 2>&1 ||
      { echo "bench/core ($which) failed:"; tail -n 5 "$scratch/$which.$round"; exit 1; }
  done
done

# The side-by-side table's rows: "operation (24 chars) procs gdbm redis ratio".
rows() {
  awk 'started && length($0) > 25 {
         name = substr($0, 1, 24); sub(/ +$/, "", name)
         split(substr($0, 25), f, " ")
         if (f[1] ~ /^[0-9]+$/ && f[3] ~ /^[0-9]+$/) print name "|" f[1] "|" f[3]
       }
       /^operation +procs/ { started = 1 }
       /^floor = / { started = 0 }' "$@"
}
rows "$scratch"/base.* | sort -t'|' -k1,2 > "$scratch/base.rows"
rows "$scratch"/new.* | sort -t'|' -k1,2 > "$scratch/new.rows"
echo "baseline $(git -C "$SG_SRCDIR" rev-parse --short "$base") (store-wide lease) vs this tree, $(redis-server --version | awk '{print $3}'), unix socket, no persistence; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
printf '%-24s %5s %11s %11s %8s\n' operation procs before after ratio
awk -F'|' '
  FNR == NR { k = $1 "|" $2; if ($3 > b[k]) b[k] = $3; next }
  { k = $1 "|" $2; if ($3 > a[k]) a[k] = $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, "|")
      if (b[k] > 0) printf "%-24s %5s %11d %11d %7.2fx\n", p[1], p[2], b[k], a[k], a[k] / b[k]
      else printf "%-24s %5s %11s %11d\n", p[1], p[2], "-", a[k]
    }
  }' "$scratch/base.rows" "$scratch/new.rows"
echo "targets (issue #13): atomic update and create at 8 procs >= 4x before, and above their 1-proc figure; gets >= 1x"
