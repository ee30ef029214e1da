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
# Prints, per operation and process count, the median base ops/s, new
# ops/s and the median of the per-round ratios new / base (see below).
# BENCH_REDIS_ROUNDS (default 5) rounds.  Issue #13's targets: writes (atomic update, create) from 8
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
  [ -n "${BENCH_KEEP_SCRATCH:-}" ] && echo "scratch kept: $scratch" || rm -rf "$scratch"
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
rounds=${BENCH_REDIS_ROUNDS:-5}
# Rounds alternate the two builds and their order (base, new; new, base;
# ...), each round on fresh keys, so a load that comes and goes on a shared
# machine hits both builds alike.  Each round gives one ratio per row;
# the table shows the MEDIAN of those ratios (one loaded round cannot move
# it) beside the median ops/s of each build.  The two "floor" rows run the
# same raw hiredis code in both builds: their ratios should be 1.00x, and
# how far they stray (min..max) is the noise of this run.
#
# Then, on the store each build just made, BENCH_REDIS_CPU_GETS gets
# (bench/core --get-loop) timed in CPU, not wall clock: gets per CPU second
# of the client process and of redis-server.  CPU time barely depends on
# how many other processes wait for the CPUs, so these rows answer "reads
# unchanged or better" where the wall-clock rows of a loaded machine
# cannot (10 ms clock ticks: about +-2 % at the default count).
cpu_run() {  # cpu_run PROG URI N: "client_s server_ticks" of one get loop
  local s0 s1 c
  s0=$(awk '{ print $14 + $15 }' "/proc/$redis_pid/stat")
  c=$(/usr/bin/time -f '%U %S' "$1" --get-loop "$2" "$3" 2>&1 >/dev/null | tail -n 1)
  s1=$(awk '{ print $14 + $15 }' "/proc/$redis_pid/stat")
  awk -v c="$c" -v d=$((s1 - s0)) 'BEGIN { split(c, t, " "); print t[1] + t[2], d }'
}
# The loop first lists the store (open, connect, SCAN and, since walks
# verify what they list, a read of each session): a run of 0 gets is
# subtracted.
cpu_gets() {  # cpu_gets PROG URI N: "client server" gets per CPU second
  local z g
  z=$(cpu_run "$1" "$2" 0) g=$(cpu_run "$1" "$2" "$3")
  awk -v z="$z" -v g="$g" -v n="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(z, a, " "); split(g, b, " "); cs = b[1] - a[1]; d = b[2] - a[2]
    printf "%d %d\n", (cs > 0 ? n / cs : 0), (d > 0 ? n * hz / d : 0) }'
}
cpu_n=${BENCH_REDIS_CPU_GETS:-100000}
for round in $(seq "$rounds"); do
  order="base new"
  [ $((round % 2)) = 0 ] && order="new base"
  for which in $order; do
    prog=$core
    [ "$which" = base ] && prog=$scratch/base/bench/core
    uri="redis+unix:$sock?prefix=$which$round:"
    "$prog" --dir "$scratch/run-$which" --seconds "$secs" --rounds 1 \
      --store "$uri" >"$scratch/$which.$round" 2>&1 ||
      { echo "bench/core ($which) failed:"; tail -n 5 "$scratch/$which.$round"; exit 1; }
    if [ -x /usr/bin/time ] && [ "$cpu_n" -gt 0 ]; then
      read -r cc cs <<<"$(cpu_gets "$prog" "$uri" "$cpu_n")"
      printf '%s|1|%s\n' "gets/CPU s: client" "$cc" "gets/CPU s: redis-server" "$cs" \
        > "$scratch/$which.$round.cpu"
    fi
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
for which in base new; do
  for round in $(seq "$rounds"); do
    { rows "$scratch/$which.$round"; cat "$scratch/$which.$round.cpu" 2>/dev/null; } |
      sed "s/^/$round|/"
  done > "$scratch/$which.rows"
done
label=" (store-wide lease)"
[ -n "${BENCH_REDIS_BASE:-}" ] && label=" (BENCH_REDIS_BASE)"
echo "baseline $(git -C "$SG_SRCDIR" rev-parse --short "$base")$label vs this tree, $(redis-server --version | awk '{print $3}'), unix socket, no persistence; $rounds alternating rounds, ${secs} s per figure; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
printf '%-24s %5s %11s %11s %8s %15s\n' operation procs before after ratio "ratio min..max"
awk -F'|' '
  # median of the n values in v[1..n] (sorted in place)
  function median(v, n,    i, j, t) {
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  FNR == NR { b[$2 "|" $3 "|" $1] = $4; next }
  {
    k = $2 "|" $3
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    a[k "|" $1] = $4; rounds[k] = rounds[k] " " $1
  }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, "|"); split(rounds[k], rs, " ")
      m = 0; delete r; delete bv; delete av
      for (j in rs) {
        kr = k "|" rs[j]
        if (b[kr] > 0 && a[kr] > 0) { m++; r[m] = a[kr] / b[kr]; bv[m] = b[kr]; av[m] = a[kr] }
      }
      if (m == 0) { printf "%-24s %5s %11s %11s\n", p[1], p[2], "-", "-"; continue }
      lo = r[1]; hi = r[1]
      for (j = 2; j <= m; j++) { if (r[j] < lo) lo = r[j]; if (r[j] > hi) hi = r[j] }
      printf "%-24s %5s %11d %11d %7.2fx %7.2f..%.2f\n", p[1], p[2], median(bv, m), median(av, m), median(r, m), lo, hi
    }
  }' "$scratch/base.rows" "$scratch/new.rows"
echo "targets (issue #13): atomic update and create at 8 procs >= 4x before, and above their 1-proc figure; gets >= 1x (gets/CPU s: the load-independent reading)"
echo "ratio = median over the rounds of (after / before) of the same round; the floor rows (identical code) show this run's noise"
