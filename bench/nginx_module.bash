#!/usr/bin/env bash
# bench/nginx_module.bash - the session check inside nginx
# (ngx_http_sessgate_module) beside nginx with no check and beside
# auth_request to the FastCGI gateway, in one run (issue #14 item 4).
#
#   bench/nginx_module.bash     (run by bench/run / `make bench`, or alone
#                                after `make`)
#
# One nginx (bench/nginx-module-bench.conf.in, one worker process) on
# 127.0.0.1, driven by wrk (-t$BENCH_THREADS -c$BENCH_CONNS
# -d$BENCH_SECONDS, --latency).  Every case ends in the same static file,
# so they differ only in the session check:
#   plain       no session check
#   module-1k   the module, policy user, a live session cookie, 1k store
#   module-1m   the same on a store of $BENCH_NGINX_BIG sessions (1M)
#   auth-1k     auth_request to `sessgate --mode auth --policy user`
#               ($BENCH_WORKERS workers), 1k store
#   auth-1m     the same on the big store
# The cases run as $BENCH_NGINX_ROUNDS interleaved rounds (default 5) after
# a one-second warm-up of each (bench/lib.bash); every figure is the median
# over the rounds, every ratio the median of the per-round ratios.  Prints
# req/s, p99 and the servers' CPU per request (the nginx worker; for the
# auth rows the gateway's processes too), then the ratios against the
# targets: module >= 2x auth_request, module >= 85% of no check (by req/s,
# and by the nginx worker's CPU time per request, which the load of a
# shared machine moves much less), and the big store within 10% of the
# small one.
#
# The big store is built with tests/tools/mkstore --raw (GDBM directly, the
# records as libsessgate writes them; 1,000 users): about 3 minutes and
# 400 MB for 1M sessions on this 2-CPU machine under load.  Its build time
# is printed; BENCH_NGINX_BIG=N shrinks it (the row is then named so).
# Exit status 0 even when a target is missed (the table says so); 1 when
# a case could not run; 0 with a line saying why when the module is not
# built (no nginx-dev).
BENCH_NAME=nginx_module
. "$(dirname "$0")/lib.bash"
: "${BENCH_NGINX_ROUNDS:=5}" "${BENCH_NGINX_SMALL:=1000}" "${BENCH_NGINX_BIG:=1000000}"

ctl=$SG_BUILDDIR/cli/sessgatectl
mkstore=$SG_BUILDDIR/tests/tools/mkstore
module=$SG_BUILDDIR/nginx/ngx_http_sessgate_module.so
if [ ! -f "$module" ]; then
  echo "nginx module rows skipped: $module is not built (Debian: apt-get install nginx-dev, then make)"
  exit 0
fi
[ -x "$SRV_SESSGATE" ] || die "$SRV_SESSGATE is not built (make)"
[ -x "$ctl" ] || die "$ctl is not built (make)"
[ -x "$mkstore" ] || die "$mkstore is not built (make)"
bench_need nginx wrk curl

bench_scratch
srv_init "$tmp/run" "$tmp/small/sessions.db"
run=$SRV_RUNDIR
mkdir -p "$tmp/small" "$tmp/big"
echo ok > "$run/ok.txt"

# label N: "1k", "1m", or the number itself.
label() {
  case $1 in 1000) echo 1k ;; 1000000) echo 1m ;; *) echo "$1" ;; esac
}
SMALL=$(label "$BENCH_NGINX_SMALL") BIG=$(label "$BENCH_NGINX_BIG")

fill() {  # fill PATH N: N sessions of 1,000 users, plus alice's; prints her id
  "$mkstore" --raw "$1" "$2" 1000 > "$tmp/mkstore.out" 2>&1 ||
    die "mkstore $1 $2: $(cat "$tmp/mkstore.out")"
  "$ctl" --store "$1" create --user alice --data '{"cart":[1,2,3]}' ||
    die "sessgatectl create on $1 failed"
}
sid_small=$(fill "$tmp/small/sessions.db" "$BENCH_NGINX_SMALL")
t0=$(date +%s)
sid_big=$(fill "$tmp/big/sessions.db" "$BENCH_NGINX_BIG")
big_secs=$(( $(date +%s) - t0 ))
big_mb=$(( $(stat -c %s "$tmp/big/sessions.db") / 1048576 ))

SRV_MODULE=$module SRV_SMALL_STORE=$tmp/small/sessions.db SRV_BIG_STORE=$tmp/big/sessions.db
start_all() {
  SRV_STORE=$SRV_SMALL_STORE srv_gateway gw-small "unix:$run/gw-small.sock" \
    --mode auth --policy user --workers "$BENCH_WORKERS" && gw_small=$SRV_LAST_PID &&
  SRV_STORE=$SRV_BIG_STORE srv_gateway gw-big "unix:$run/gw-big.sock" \
    --mode auth --policy user --workers "$BENCH_WORKERS" && gw_big=$SRV_LAST_PID &&
  srv_nginx "$SRV_ROOT/bench/nginx-module-bench.conf.in"
}
start_all || { tail -n 5 "$run"/*.log >&2; die "could not start the servers"; }

check() { bench_check "$@"; }
check plain '^ok'
for c in module auth; do
  check "$c-small" '^X-User: alice' -H "Cookie: sessgate=$sid_small"
  check "$c-big" '^X-User: alice' -H "Cookie: sessgate=$sid_big"
  # Without the cookie, and with the other store's id: refused, so the
  # row is not a no-op and each location reads its own store.
  bench_status "$c-small" 401
  bench_status "$c-big" 401 -H "Cookie: sessgate=$sid_small"
done

# The CPU column: nginx's one worker; for the auth rows the gateway's
# processes too (the whole price of a check).
worker=$(pgrep -P "$(cat "$run/nginx.pid")" | head -n 1)
[ -n "$worker" ] || die "no nginx worker process"
sleep 1     # the gateways' workers are up
bench_case plain plain "$worker"
bench_case "module-$SMALL" module-small "$worker" -H "Cookie: sessgate=$sid_small"
bench_case "module-$BIG" module-big "$worker" -H "Cookie: sessgate=$sid_big"
bench_case "auth-$SMALL" auth-small "$worker $(bench_pids_of "$gw_small")" -H "Cookie: sessgate=$sid_small"
bench_case "auth-$BIG" auth-big "$worker $(bench_pids_of "$gw_big")" -H "Cookie: sessgate=$sid_big"
bench_warm
bench_rounds "$BENCH_NGINX_ROUNDS"
if grep -E '\[(error|crit|alert|emerg)\]' "$run/error.log" | head -n 3 | grep .; then
  die "nginx logged errors during the run (above)"
fi

echo "nginx module benchmark: nginx $(nginx -v 2>&1 | sed 's|.*/||'), one worker process," \
     "loopback, wrk -t$BENCH_THREADS -c$BENCH_CONNS -d${BENCH_SECONDS}s, median of $BENCH_NGINX_ROUNDS" \
     "interleaved rounds; gateway $BENCH_WORKERS worker processes; $(nproc) CPUs, load average" \
     "$(cut -d' ' -f1 /proc/loadavg) at the end"
echo "stores: $BENCH_NGINX_SMALL and $BENCH_NGINX_BIG sessions (1,000 users);" \
     "the big one built in ${big_secs} s by mkstore --raw, ${big_mb} MB"
echo "cpu-us/req: CPU (utime+stime) per request of the nginx worker, plus the gateway's" \
     "processes for the auth rows"
bench_table
bench_ratio "module-$SMALL / auth-$SMALL" "module-$SMALL" "auth-$SMALL" ">=" 2
bench_ratio "module-$BIG / auth-$BIG" "module-$BIG" "auth-$BIG" ">=" 2
bench_ratio "module-$SMALL / auth-$SMALL" "module-$SMALL" "auth-$SMALL" ">=" 2 cpu
bench_ratio "module-$SMALL / plain" "module-$SMALL" plain ">=" 0.85
# The same target by CPU: the worker's throughput when it is the bottleneck.
bench_ratio "module-$SMALL / plain" "module-$SMALL" plain ">=" 0.85 cpu
bench_ratio "module-$BIG / module-$SMALL" "module-$BIG" "module-$SMALL" ">=" 0.90
bench_ratio "module-$BIG / module-$SMALL" "module-$BIG" "module-$SMALL" ">=" 0.90 cpu
bench_ratio "auth-$BIG / auth-$SMALL" "auth-$BIG" "auth-$SMALL" ">=" 0.90
