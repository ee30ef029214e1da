#!/usr/bin/env bash
# bench/gateway.bash - what the gateway costs, measured behind a real nginx.
#
#   bench/gateway.bash          (run by bench/run / `make bench`, or alone
#                                after `make && make bench/fcgi_min`)
#
# Every case runs behind the SAME nginx on 127.0.0.1, driven by wrk
# (-t$BENCH_THREADS -c$BENCH_CONNS -d$BENCH_SECONDS, --latency):
#   ceiling   auth_request to bench/fcgi_min, a FastCGI responder doing nothing
#   auth      auth_request to `sessgate --mode auth`, with a live session cookie
#   auth+metrics  the same with --metrics-listen: the counters cost (ratio)
#   auth-redis      the same gateway on a Redis store: redis+unix: socket
#   auth-redis-tcp  the same on the same Redis over 127.0.0.1 TCP (as a web
#             host reaching a shared Redis would); both rows only when
#             BENCH_REDIS_URI names a redis+unix: store (bench/run starts a
#             throw-away redis-server and sets it), else skipped with a line
#   php       php-cgi running session_start() on the "files" handler (the
#             usual way a PHP app gets its session), with its session cookie
#   cgi       `sessgate --mode cgi` running bench/cgi/hello.cgi
#   fcgiwrap  fcgiwrap running the same hello.cgi
# The responders all get $BENCH_WORKERS processes.  The cases run
# interleaved $BENCH_ROUNDS times after a short warm-up and each keeps its
# best round, so a burst of load from elsewhere does not decide a ratio.  It prints req/s and p99
# latency per case, then the ratios against the targets: auth >= 70% of the
# ceiling and >= 3x PHP; cgi within 10% of fcgiwrap; and (no target) each
# Redis auth row against the GDBM one.  Exit status 0 even when
# a target is missed (the table says so); 1 when a case could not run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=$(command -v python3)}"
export SG_SRCDIR SG_BUILDDIR SG_PYTHON
. "$SG_SRCDIR/tests/helpers/servers.bash"

: "${BENCH_THREADS:=2}" "${BENCH_CONNS:=32}" "${BENCH_SECONDS:=5}" "${BENCH_WORKERS:=2}"
: "${BENCH_ROUNDS:=2}" "${BENCH_REDIS_URI:=}"

die() { echo "bench/gateway: $*" >&2; exit 1; }
ctl=$SG_BUILDDIR/cli/sessgatectl
fmin=$SG_BUILDDIR/bench/fcgi_min
[ -x "$SRV_SESSGATE" ] || die "$SRV_SESSGATE is not built (make)"
[ -x "$ctl" ] || die "$ctl is not built (make)"
[ -x "$fmin" ] || die "$fmin is not built (make bench/fcgi_min)"
for t in nginx wrk fcgiwrap php-cgi curl; do
  command -v "$t" >/dev/null || die "$t is missing"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench.XXXXXX")
cleanup() { srv_stop_all; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
srv_init "$tmp/run" "$tmp/sessions.db"
run=$SRV_RUNDIR

# The Redis cases: the same store reached over the unix socket and over
# TCP (redis-server listens on both when bench/run started it).
redis_cases=() redis_unix='' redis_tcp='' redis_skip=''
if [ -n "$BENCH_REDIS_URI" ]; then
  redis_unix=$BENCH_REDIS_URI
  rsock=${redis_unix#redis+unix:}; rsock=${rsock%%\?*}
  rprefix=$(printf '%s\n' "$redis_unix" | sed -n 's/.*[?&]prefix=\([^&]*\).*/\1/p')
  rport=$(redis-cli -s "$rsock" CONFIG GET port 2>/dev/null | sed -n 2p)
  redis_cases=(auth-redis)
  if [ -n "$rport" ] && [ "$rport" != 0 ]; then
    redis_tcp="redis://127.0.0.1:$rport/0?prefix=${rprefix:-sessgate:}"
    redis_cases+=(auth-redis-tcp)
  fi
else
  redis_skip="auth-redis: skipped (no BENCH_REDIS_URI: run through bench/run with redis-server installed)"
fi
echo ok > "$run/ok.txt"
mkdir -p "$run/phpsess"

start_all() {
  srv_bg fcgi_min "$fmin" "unix:$run/fcgi_min.sock" "$BENCH_WORKERS" &&
  srv_wait_socket "$run/fcgi_min.sock" &&
  srv_gateway gw-auth "unix:$run/gw-auth.sock" --mode auth --policy user \
    --workers "$BENCH_WORKERS" &&
  { [ -z "$redis_unix" ] ||
    SRV_STORE=$redis_unix srv_gateway gw-auth-redis "unix:$run/gw-auth-redis.sock" \
      --mode auth --policy user --workers "$BENCH_WORKERS"; } &&
  { [ -z "$redis_tcp" ] ||
    SRV_STORE=$redis_tcp srv_gateway gw-auth-redis-tcp "unix:$run/gw-auth-redis-tcp.sock" \
      --mode auth --policy user --workers "$BENCH_WORKERS"; } &&
  srv_gateway gw-auth-metrics "unix:$run/gw-auth-metrics.sock" --mode auth --policy user \
    --workers "$BENCH_WORKERS" --metrics-listen "unix:$run/metrics.sock" &&
  srv_gateway gw-cgi "unix:$run/gw-cgi.sock" --mode cgi \
    --cgi-root "$SRV_ROOT/bench/cgi" --workers "$BENCH_WORKERS" &&
  srv_fcgiwrap "$BENCH_WORKERS" &&
  srv_bg php env PHP_FCGI_CHILDREN="$BENCH_WORKERS" PHP_FCGI_MAX_REQUESTS=0 \
    php-cgi -b "$run/php.sock" -d session.save_handler=files \
    -d "session.save_path=$run/phpsess" -d session.use_strict_mode=1 &&
  srv_wait_socket "$run/php.sock" &&
  srv_nginx "$SRV_ROOT/bench/nginx-bench.conf.in"
}
start_all || { tail -n 5 "$run"/*.log >&2; die "could not start the servers"; }

url() { srv_url "$1"; }
sid=$("$ctl" --store "$SRV_STORE" create --user alice) || die "sessgatectl create failed"
phpsid=$(curl -sS --max-time 10 -D - -o /dev/null "$(url php)" |
         tr -d '\r' | sed -n 's/^Set-Cookie: PHPSESSID=\([^;]*\).*/\1/Ip')
[ -n "$phpsid" ] || die "php-cgi gave no session cookie"
rsid=
if [ -n "$redis_unix" ]; then
  rsid=$("$ctl" --store "$redis_unix" create --user alice) || die "sessgatectl create on $redis_unix failed"
fi

# Each case must really do its work before it is timed.
check() {  # check PATH WANT-IN-RESPONSE [curl args]
  local path=$1 want=$2 out
  shift 2
  out=$(curl -sS -i --max-time 10 "$@" "$(url "$path")" | tr -d '\r')
  printf '%s\n' "$out" | grep -q "$want" || die "/$path does not answer '$want': $out"
}
check ceiling '^ok'
check auth '^X-User: alice' -H "Cookie: sessgate=$sid"
check auth-metrics '^X-User: alice' -H "Cookie: sessgate=$sid"
for c in "${redis_cases[@]}"; do
  check "$c" '^X-User: alice' -H "Cookie: sessgate=$rsid"
  # A GDBM session is unknown to the Redis store: proves which store answers.
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H "Cookie: sessgate=$sid" "$(url "$c")")
  [ "$code" = 401 ] || die "/$c with a GDBM-only session answered $code, not 401"
done
check php '^ok alice' -H "Cookie: PHPSESSID=$phpsid"
check cgi '^ok'
check fcgiwrap '^ok'
# Without the cookie the auth case must refuse: proves it is not a no-op.
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$(url auth)")
[ "$code" = 401 ] || die "/auth without a session answered $code, not 401"

declare -A RPS P99
bench() {  # bench NAME PATH [wrk args]: one wrk run; keep it if the best so far
  local name=$1 path=$2 out rps p99 bad
  shift 2
  out=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_SECONDS}s" --latency \
            "$@" "$(url "$path")" 2>&1) || die "wrk failed for $name: $out"
  bad=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: *//p')
  [ -z "$bad" ] || die "$name: $bad non-2xx answers under load: $out"
  rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {print $2}')
  p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
  [ -n "$rps" ] || die "$name: no Requests/sec in: $out"
  if [ -z "${RPS[$name]:-}" ] || awk -v a="$rps" -v b="${RPS[$name]}" 'BEGIN { exit !(a > b) }'; then
    RPS[$name]=$rps P99[$name]=$p99
  fi
}
wrk -t1 -c4 -d1s "$(url ceiling)" >/dev/null 2>&1   # warm-up: nginx, caches
for round in $(seq "$BENCH_ROUNDS"); do
  bench ceiling ceiling
  bench auth auth -H "Cookie: sessgate=$sid"
  bench auth+metrics auth-metrics -H "Cookie: sessgate=$sid"
  for c in "${redis_cases[@]}"; do bench "$c" "$c" -H "Cookie: sessgate=$rsid"; done
  bench php php -H "Cookie: PHPSESSID=$phpsid"
  bench cgi cgi
  bench fcgiwrap fcgiwrap
done

# The metrics gateway really counted what it answered.
counted=$(curl -sS --max-time 5 --unix-socket "$run/metrics.sock" http://localhost/metrics |
          sed -n 's/^sessgate_requests_total{mode="auth",outcome="allowed"} //p')
[ "${counted:-0}" -gt 0 ] || die "auth+metrics: the gateway counted no request"
echo "gateway benchmark: nginx on loopback, wrk -t$BENCH_THREADS -c$BENCH_CONNS" \
     "-d${BENCH_SECONDS}s, best of $BENCH_ROUNDS, $BENCH_WORKERS worker processes per responder," \
     "$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the end"
printf '%-14s %12s %10s\n' case req/s p99
for n in ceiling auth auth+metrics "${redis_cases[@]}" php cgi fcgiwrap; do
  printf '%-14s %12s %10s\n' "$n" "${RPS[$n]}" "${P99[$n]}"
done
[ -z "$redis_skip" ] || echo "$redis_skip"
ratio() {  # ratio NAME A B OP TARGET: A/B against TARGET
  awk -v n="$1" -v a="$2" -v b="$3" -v op="$4" -v t="$5" 'BEGIN {
    r = a / b; ok = (op == ">=") ? (r >= t) : (r <= t)
    printf "%-34s %6.2f  (target %s %s) %s\n", n, r, op, t, ok ? "ok" : "MISSED" }'
}
ratio "auth / ceiling" "${RPS[auth]}" "${RPS[ceiling]}" ">=" 0.70
ratio "auth / php" "${RPS[auth]}" "${RPS[php]}" ">=" 3
ratio "cgi / fcgiwrap" "${RPS[cgi]}" "${RPS[fcgiwrap]}" ">=" 0.90
# Metrics on (shared counters, one atomic add per event) against off.
ratio "auth+metrics / auth" "${RPS[auth+metrics]}" "${RPS[auth]}" ">=" 0.90
for c in "${redis_cases[@]}"; do
  awk -v n="$c / auth (gdbm)" -v a="${RPS[$c]}" -v b="${RPS[auth]}" \
    'BEGIN { printf "%-34s %6.2f  (no target: the store'"'"'s share of a request)\n", n, a / b }'
done
