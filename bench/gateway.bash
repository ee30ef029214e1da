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
# The responders all get $BENCH_WORKERS processes.  The cases run as
# $BENCH_ROUNDS interleaved rounds (default 3) after a short warm-up
# (bench/lib.bash): every figure is the median over the rounds and every
# ratio the median of the per-round ratios, so a burst of load from
# elsewhere does not decide a ratio.  It prints req/s, p99 latency and
# nginx's CPU per request per case, then the ratios against the targets: auth >= 70% of the
# ceiling and >= 3x PHP; cgi within 10% of fcgiwrap; and (no target) each
# Redis auth row against the GDBM one.  Exit status 0 even when
# a target is missed (the table says so); 1 when a case could not run.
BENCH_NAME=gateway
. "$(dirname "$0")/lib.bash"
: "${BENCH_ROUNDS:=3}" "${BENCH_REDIS_URI:=}"

ctl=$SG_BUILDDIR/cli/sessgatectl
fmin=$SG_BUILDDIR/bench/fcgi_min
[ -x "$SRV_SESSGATE" ] || die "$SRV_SESSGATE is not built (make)"
[ -x "$ctl" ] || die "$ctl is not built (make)"
[ -x "$fmin" ] || die "$fmin is not built (make bench/fcgi_min)"
bench_need nginx wrk fcgiwrap php-cgi curl

bench_scratch
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

sid=$("$ctl" --store "$SRV_STORE" create --user alice) || die "sessgatectl create failed"
phpsid=$(curl -sS --max-time 10 -D - -o /dev/null "$(url php)" |
         tr -d '\r' | sed -n 's/^Set-Cookie: PHPSESSID=\([^;]*\).*/\1/Ip')
[ -n "$phpsid" ] || die "php-cgi gave no session cookie"
rsid=
if [ -n "$redis_unix" ]; then
  rsid=$("$ctl" --store "$redis_unix" create --user alice) || die "sessgatectl create on $redis_unix failed"
fi

# Each case must really do its work before it is timed.
check() { bench_check "$@"; }
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

# The CPU column: nginx's one worker (the responders' processes are not
# counted: they differ in kind from case to case).
worker=$(pgrep -P "$(cat "$run/nginx.pid")" | head -n 1)
[ -n "$worker" ] || die "no nginx worker process"
bench_case ceiling ceiling "$worker"
bench_case auth auth "$worker" -H "Cookie: sessgate=$sid"
bench_case auth+metrics auth-metrics "$worker" -H "Cookie: sessgate=$sid"
for c in "${redis_cases[@]}"; do bench_case "$c" "$c" "$worker" -H "Cookie: sessgate=$rsid"; done
bench_case php php "$worker" -H "Cookie: PHPSESSID=$phpsid"
bench_case cgi cgi "$worker"
bench_case fcgiwrap fcgiwrap "$worker"
bench_warm
bench_rounds "$BENCH_ROUNDS"

# The metrics gateway really counted what it answered.
counted=$(curl -sS --max-time 5 --unix-socket "$run/metrics.sock" http://localhost/metrics |
          sed -n 's/^sessgate_requests_total{mode="auth",outcome="allowed"} //p')
[ "${counted:-0}" -gt 0 ] || die "auth+metrics: the gateway counted no request"
echo "gateway benchmark: nginx on loopback, wrk -t$BENCH_THREADS -c$BENCH_CONNS" \
     "-d${BENCH_SECONDS}s, median of $BENCH_ROUNDS interleaved rounds, $BENCH_WORKERS worker processes" \
     "per responder, $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the end"
echo "cpu-us/req: the nginx worker's CPU per request (the responders' not counted)"
bench_table
[ -z "$redis_skip" ] || echo "$redis_skip"
bench_ratio "auth / ceiling" auth ceiling ">=" 0.70
bench_ratio "auth / php" auth php ">=" 3
bench_ratio "cgi / fcgiwrap" cgi fcgiwrap ">=" 0.90
# Metrics on (shared counters, one atomic add per event) against off.
bench_ratio "auth+metrics / auth" auth+metrics auth ">=" 0.90
for c in "${redis_cases[@]}"; do
  bench_ratio "$c / auth (gdbm): the store's share" "$c" auth none 0
done
