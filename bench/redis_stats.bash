#!/usr/bin/env bash
# bench/redis_stats.bash - `sessgatectl stats` on a Redis store of 1,000
# and of BENCH_REDIS_STATS_BIG (default 1,000,000) sessions (issue #16:
# within 2x of each other).  The Redis write scripts keep the figures
# (backend_redis.c "figures"), so stats reads two hashes and counts a
# sorted set's entries past their end: no SCAN.  Beside them, `stats
# --walk` (every record read) at 1,000 sessions, the cost avoided.
#
#   bench/redis_stats.bash          (bench/run calls it; BENCH_REDIS=0 skips)
#
# Stores are made with tests/tools/mkstore --single (one create script per
# session, as a site's creates), BENCH_REDIS_STATS_PROCS (default 4)
# processes at once, 1,000 users; the build time is printed.  Each stats
# figure is the best of 5 runs of the whole command (process start, open,
# connect, answer), 3 rounds interleaved.  One redis-server, unix socket,
# no persistence.  The big store needs about 1 GB of Redis memory per
# million sessions.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${BENCH_REDIS_STATS_BIG:=1000000}"
: "${BENCH_REDIS_STATS_PROCS:=4}"
ctl=$SG_BUILDDIR/cli/sessgatectl mk=$SG_BUILDDIR/tests/tools/mkstore

echo "== Redis stats at 1,000 and $BENCH_REDIS_STATS_BIG sessions (issue #16)"
if [ "${BENCH_REDIS:-1}" = 0 ]; then
  echo "skipped (BENCH_REDIS=0)"; exit 0
fi
for t in redis-server redis-cli; do
  command -v "$t" >/dev/null 2>&1 || { echo "skipped: $t is not installed"; exit 0; }
done
[ -x "$ctl" ] && [ -x "$mk" ] || { echo "skipped: build first (make)"; exit 0; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/sessgate-rstats.XXXXXX")
redis_pid=
cleanup() {
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sock=$dir/redis.sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir" \
  --save '' --appendonly no --daemonize no --logfile "$dir/redis.log" \
  </dev/null >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG || { echo "skipped: redis-server did not start"; exit 0; }

small="redis+unix:$sock?prefix=s:" big="redis+unix:$sock?prefix=b:"
# build URI N: N sessions from BENCH_REDIS_STATS_PROCS processes at once
build() {
  local uri=$1 n=$2 p=$BENCH_REDIS_STATS_PROCS i pids=() t0 each
  each=$(( (n + p - 1) / p ))
  t0=$(date +%s%N)
  for i in $(seq "$p"); do
    [ "$i" = "$p" ] && each=$(( n - (p - 1) * each ))
    "$mk" --single "$uri" "$each" 1000 > "$dir/mk.$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do
    wait "$i" || { echo "mkstore failed:"; cat "$dir"/mk.*; exit 1; }
  done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
build "$small" 1000 > /dev/null
ms=$(build "$big" "$BENCH_REDIS_STATS_BIG")
grep -q '^counted: kept$' <("$ctl" --store "$big" stats) ||
  { echo "bench/redis_stats: the big store's figures are not kept"; "$ctl" --store "$big" stats; exit 1; }
"$ctl" --store "$big" stats | grep -q "^sessions: $BENCH_REDIS_STATS_BIG$" ||
  { echo "bench/redis_stats: the big store does not hold $BENCH_REDIS_STATS_BIG sessions"; exit 1; }

best() {  # best RUNS URI ARGS...: the best wall time of `stats ARGS`, in ms
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
s= b=
for round in 1 2 3; do
  x=$(best 5 "$small") y=$(best 5 "$big")
  if [ -z "$s" ] || awk -v x="$x" -v y="$s" 'BEGIN { exit !(x < y) }'; then s=$x; fi
  if [ -z "$b" ] || awk -v x="$y" -v y="$b" 'BEGIN { exit !(x < y) }'; then b=$y; fi
done
walk=$(best 3 "$small" --walk)
echo "$(redis-server --version | awk '{print $3}'), unix socket, no persistence; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
printf '%-40s %10s\n' "build $BENCH_REDIS_STATS_BIG sessions ($BENCH_REDIS_STATS_PROCS procs)" "$ms ms"
printf '%-40s %10s ms\n' "stats, 1000 sessions" "$s"
printf '%-40s %10s ms\n' "stats, $BENCH_REDIS_STATS_BIG sessions" "$b"
printf '%-40s %10s ms\n' "stats --walk, 1000 sessions" "$walk"
printf '%-40s %10s\n' "redis used_memory, both stores" "$(redis-cli -s "$sock" info memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')"
awk -v a="$b" -v b="$s" -v n="$BENCH_REDIS_STATS_BIG" 'BEGIN {
  r = a / b; printf "%-40s %6.2f  (target <= 2) %s\n", "stats " n " / stats 1000", r, r <= 2 ? "ok" : "MISSED" }'
