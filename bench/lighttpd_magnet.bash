#!/usr/bin/env bash
# bench/lighttpd_magnet.bash - the session check inside lighttpd (mod_magnet
# + examples/lighttpd-magnet/sessgate_magnet.lua) beside lighttpd with no
# check and beside the FastCGI authorizer, in one run (issue #14 items 3-4).
#
#   bench/lighttpd_magnet.bash   (run by bench/run / `make bench`, or alone
#                                 after `make`)
#
# One lighttpd (bench/lighttpd-magnet-bench.conf.in, one process) on
# 127.0.0.1, driven by wrk (-t$BENCH_THREADS -c$BENCH_CONNS
# -d$BENCH_SECONDS, --latency).  Every case ends in the same static file:
#   plain    no session check
#   magnet   sessgate_magnet.check(lighty.r, {policy = "user"}), a live session cookie
#   auth     FastCGI authorizer `sessgate --mode auth --policy user`
#            ($BENCH_WORKERS worker processes), the same cookie
# Store: GDBM, $BENCH_LIGHTTPD_SESSIONS sessions (1,000 by default).  The
# cases run interleaved $BENCH_ROUNDS times after a warm-up; each keeps its
# best round.  Prints req/s and p99 per case, then the ratios: the target
# is magnet >= 1.5x auth.  Exit status 0 even when the target is missed
# (the table says so); 1 when a case could not run; 0 with a line saying
# why when lighttpd or mod_magnet is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=$(command -v python3)}"
export SG_SRCDIR SG_BUILDDIR SG_PYTHON
. "$SG_SRCDIR/tests/helpers/servers.bash"

: "${BENCH_THREADS:=2}" "${BENCH_CONNS:=32}" "${BENCH_SECONDS:=5}" "${BENCH_WORKERS:=2}"
: "${BENCH_ROUNDS:=2}" "${BENCH_LIGHTTPD_SESSIONS:=1000}"

die() { echo "bench/lighttpd_magnet: $*" >&2; exit 1; }
if ! command -v lighttpd >/dev/null || [ ! -f /usr/lib/lighttpd/mod_magnet.so ]; then
  echo "lighttpd magnet rows skipped: lighttpd or mod_magnet missing (apt-get install lighttpd lighttpd-modules-lua)"
  exit 0
fi
ctl=$SG_BUILDDIR/cli/sessgatectl
mkstore=$SG_BUILDDIR/tests/tools/mkstore
[ -x "$SRV_SESSGATE" ] || die "$SRV_SESSGATE is not built (make)"
[ -x "$ctl" ] || die "$ctl is not built (make)"
[ -x "$mkstore" ] || die "$mkstore is not built (make)"
[ -f "$SG_BUILDDIR/bindings/lua/sessgate_core.so" ] || die "the Lua binding is not built (make)"
for t in wrk curl; do
  command -v "$t" >/dev/null || die "$t is missing"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench-lighttpd.XXXXXX")
cleanup() { srv_stop_all; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
srv_init "$tmp/run" "$tmp/store/sessions.db"
run=$SRV_RUNDIR
for d in plain magnet auth; do
  mkdir -p "$run/www/$d"
  echo ok > "$run/www/$d/ok.txt"
done
"$mkstore" --raw "$SRV_STORE" "$BENCH_LIGHTTPD_SESSIONS" 1000 > "$tmp/mkstore.out" 2>&1 ||
  die "mkstore: $(cat "$tmp/mkstore.out")"
sid=$("$ctl" --store "$SRV_STORE" create --user alice --data '{"cart":[1,2,3]}') ||
  die "sessgatectl create failed"

cat > "$run/magnet-bench.lua" <<LUA
return require("sessgate_magnet").check(lighty.r, { store = "$SRV_STORE", policy = "user" })
LUA
SRV_PORT=$(srv_free_port)
srv_render "$SRV_ROOT/bench/lighttpd-magnet-bench.conf.in" "$run/lighttpd.conf" ||
  die "cannot render the config"
srv_gateway gw "unix:$run/gw.sock" --mode auth --policy user --workers "$BENCH_WORKERS" ||
  die "the gateway did not start: $(tail -n 5 "$run"/gw.log)"
srv_bg lighttpd env \
  LUA_PATH="$SRV_ROOT/bindings/lua/?.lua;$SRV_ROOT/examples/lighttpd-magnet/?.lua;;" \
  LUA_CPATH="$(cd "$SG_BUILDDIR" && pwd)/bindings/lua/?.so;;" \
  lighttpd -D -f "$run/lighttpd.conf"
srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID" || die "lighttpd did not start: $(tail -n 5 "$run"/*.log)"

# Each case must really do its work before it is timed: with the cookie it
# answers the file, without it the check refuses.
for c in plain magnet auth; do
  out=$(curl -sS --max-time 10 -H "Cookie: sessgate=$sid" "$(srv_url "$c/ok.txt")")
  [ "$out" = ok ] || die "/$c/ok.txt with the session answered: $out"
done
for c in magnet auth; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$(srv_url "$c/ok.txt")")
  [ "$code" = 401 ] || die "/$c/ok.txt without a session answered $code, not 401"
done

declare -A RPS P99
bench() {  # bench NAME: one wrk run on /NAME/ok.txt; keep it if the best so far
  local name=$1 out rps p99 bad
  out=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_SECONDS}s" --latency \
            -H "Cookie: sessgate=$sid" "$(srv_url "$name/ok.txt")" 2>&1) ||
    die "wrk failed for $name: $out"
  bad=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: *//p')
  [ -z "$bad" ] || die "$name: $bad non-2xx answers under load: $out"
  rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {print $2}')
  p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
  [ -n "$rps" ] || die "$name: no Requests/sec in: $out"
  if [ -z "${RPS[$name]:-}" ] || awk -v a="$rps" -v b="${RPS[$name]}" 'BEGIN { exit !(a > b) }'; then
    RPS[$name]=$rps P99[$name]=$p99
  fi
}
wrk -t1 -c4 -d1s "$(srv_url plain/ok.txt)" >/dev/null 2>&1     # warm-up
for round in $(seq "$BENCH_ROUNDS"); do
  bench plain
  bench magnet
  bench auth
done

echo "lighttpd benchmark: $(lighttpd -v 2>&1 | sed -n 's|^lighttpd/\([^ ]*\).*|lighttpd \1|p'), one process," \
     "loopback, wrk -t$BENCH_THREADS -c$BENCH_CONNS -d${BENCH_SECONDS}s, best of $BENCH_ROUNDS;" \
     "authorizer $BENCH_WORKERS worker processes; GDBM store of $BENCH_LIGHTTPD_SESSIONS sessions;" \
     "$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the end"
printf '%-14s %12s %10s\n' case req/s p99
for n in plain magnet auth; do
  printf '%-14s %12s %10s\n' "lighttpd-$n" "${RPS[$n]}" "${P99[$n]}"
done
ratio() {  # ratio NAME A B TARGET: A/B against TARGET
  awk -v n="$1" -v a="$2" -v b="$3" -v t="$4" 'BEGIN {
    r = a / b; ok = (r >= t); printf "%-34s %6.2f  (target >= %s) %s\n", n, r, t, ok ? "ok" : "MISSED" }'
}
ratio "lighttpd magnet / authorizer" "${RPS[magnet]}" "${RPS[auth]}" 1.5
ratio "lighttpd magnet / plain" "${RPS[magnet]}" "${RPS[plain]}" 0
