#!/usr/bin/env bats
# Metrics (issue 16): a real Prometheus scrapes the gateway's metrics behind
# a real nginx; known traffic is driven through nginx and every count is
# read back through Prometheus's HTTP API; promtool finds no problem in
# the exposition.  The counters are shared by all workers (--workers 3).
# backends: gdbm redis
load ../helpers/common
load ../helpers/servers

setup_file() {
  require_tool nginx curl prometheus promtool
  srv_init "$BATS_FILE_TMPDIR/run" "$(BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR make_store)"
  SRV_METRICS_PORT=$(srv_free_port)
  # --renew-interval: an hour, so only the session the renewal test makes
  # an hour old is renewed (the counts of the other tests stay as they are)
  srv_gateway gw "unix:$SRV_RUNDIR/gw.sock" --mode auth --policy session --workers 3 \
    --renew-interval 3600 --rotate-grace 30 \
    --metrics-listen "127.0.0.1:$SRV_METRICS_PORT" || srv_failed
  srv_wait_port "$SRV_METRICS_PORT" 30 || srv_failed
  SRV_PORT=$(srv_free_port)
  mkdir -p "$SRV_RUNDIR/www" && echo app > "$SRV_RUNDIR/www/x"
  srv_render "$SG_SRCDIR/tests/ops/nginx-metrics.conf.in" "$SRV_RUNDIR/nginx.conf" || srv_failed
  srv_bg nginx nginx -p "$SRV_RUNDIR" -e "$SRV_RUNDIR/error.log" -c "$SRV_RUNDIR/nginx.conf" \
    -g 'daemon off;'
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID" || srv_failed
  PROM_PORT=$(srv_free_port)
  cat > "$SRV_RUNDIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sessgate
    metrics_path: /sessgate-metrics
    static_configs:
      - targets: ['127.0.0.1:$SRV_PORT']
YML
  srv_bg prometheus prometheus --config.file "$SRV_RUNDIR/prometheus.yml" \
    --storage.tsdb.path "$SRV_RUNDIR/tsdb" --web.listen-address "127.0.0.1:$PROM_PORT"
  srv_wait_port "$PROM_PORT" 60 "$SRV_LAST_PID" || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT SRV_METRICS_PORT PROM_PORT
}

teardown_file() { srv_stop_all; }

# promq EXPR: the value of an instant query (one series), or empty.
promq() {
  curl -sf --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    "$SG_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")'
}

# prom_wait EXPR WANT: wait (30 s at most) until Prometheus has scraped WANT.
prom_wait() {
  local i got=
  for i in $(seq 60); do
    got=$(promq "$1")
    [ "$got" = "$2" ] && return 0
    sleep 0.5
  done
  echo "# $1: Prometheus says '$got', want '$2'" >&2
  return 1
}

ctl() { "$SG_CTL" --store "$SRV_STORE" "$@"; }

@test "Prometheus scrapes the gateway behind nginx and reads back known traffic" {
  id=$(ctl create --user alice)
  ctl create --user bob > /dev/null
  ctl create --user bob > /dev/null
  for i in $(seq 7); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -b "sessgate=$id" "$(srv_url /app/x)")" = 200 ]
  done
  for i in $(seq 4); do
    code=$(curl -s -o /dev/null -w "%{http_code}" "$(srv_url /app/x)"); [ "$code" = 401 ] || fail "no cookie: $code $(cat $SRV_RUNDIR/error.log)"
  done
  for i in $(seq 5); do
    curl -s -o /dev/null -b "sessgate=$(printf '%08x-0000-4000-8000-000000000000' "$i")" "$(srv_url /app/x)"
  done
  curl -s -o /dev/null -b 'sessgate=../../etc/passwd' "$(srv_url /app/x)"
  prom_wait 'sessgate_requests_total{mode="auth",outcome="allowed"}' 7
  prom_wait 'sessgate_requests_total{mode="auth",outcome="denied"}' 10
  prom_wait 'sessgate_cookies_unknown_total' 5
  prom_wait 'sessgate_cookies_malformed_total' 1
  prom_wait 'sessgate_request_duration_seconds_count{mode="auth"}' 17
  prom_wait 'sessgate_request_duration_seconds_bucket{mode="auth",le="+Inf"}' 17
  prom_wait 'sessgate_workers' 3
  prom_wait 'sessgate_sessions' 3
  prom_wait 'sessgate_users' 2
  prom_wait 'sessgate_build_info{version!=""}' 1
  prom_wait 'up{job="sessgate"}' 1
}

@test "a renewal (--renew-interval) is counted in sessgate_sessions_renewed_total" {
  prom_wait 'sessgate_sessions_renewed_total' 0
  now=$(date +%s)
  id=11111111-2222-4333-8444-00000000aaaa
  # a session whose id was given an hour and a half ago: due for renewal
  printf '{"id":"%s","user":"ren","created":%d,"accessed":%d,"expires":%d,"idle":3600,"version":1,"rotated":%d,"data":{}}\n' \
    "$id" $((now - 5400)) "$now" $((now + 86400)) $((now - 5400)) | ctl import > /dev/null
  [ "$(curl -s -o /dev/null -w '%{http_code}' -b "sessgate=$id" "$(srv_url /app/x)")" = 200 ]
  # the session now lives under a new id; the old one still works (grace)
  run -0 ctl list --user ren
  assert_output --regexp '^[0-9a-f-]{36}  ren '
  refute_output --partial "$id"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -b "sessgate=$id" "$(srv_url /app/x)")" = 200 ]
  prom_wait 'sessgate_sessions_renewed_total' 1
}

@test "promtool check metrics finds no problem in the exposition" {
  curl -sf "http://127.0.0.1:$SRV_PORT/sessgate-metrics" > "$BATS_TEST_TMPDIR/m"
  grep -q '^sessgate_requests_total{mode="auth",outcome="allowed"}' "$BATS_TEST_TMPDIR/m"
  run promtool check metrics < "$BATS_TEST_TMPDIR/m"
  assert_success
  assert_output ''
}

@test "the metrics endpoint answers /metrics only, and is not the FastCGI socket" {
  run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SRV_METRICS_PORT/other"
  assert_output 404
  run curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$SRV_METRICS_PORT/metrics"
  assert_output 405
  run curl -s -o /dev/null -w '%{http_code}' "$(srv_url /_sessgate)"
  assert_output 404
}

@test "a killed worker's counts stay; the restart is counted" {
  before=$(curl -sf "http://127.0.0.1:$SRV_METRICS_PORT/metrics" |
           sed -n 's/^sessgate_requests_total{mode="auth",outcome="allowed"} //p')
  master=$(awk '$2 == "gw" { print $1 }' "$SRV_RUNDIR/pids.all" | tail -1)
  worker=$(ps -o pid= --ppid "$master" | head -1 | tr -d ' ')
  kill -KILL "$worker"
  for i in $(seq 50); do
    curl -sf "http://127.0.0.1:$SRV_METRICS_PORT/metrics" | grep -q '^sessgate_worker_restarts_total 1$' && break
    sleep 0.1
  done
  run curl -sf "http://127.0.0.1:$SRV_METRICS_PORT/metrics"
  assert_line 'sessgate_worker_restarts_total 1'
  assert_line "sessgate_requests_total{mode=\"auth\",outcome=\"allowed\"} $before"
}
