# bench/lib.bash - what the web-server benchmarks share (bench/gateway.bash,
# bench/nginx_module.bash, bench/lighttpd_magnet.bash): the prelude, the
# scratch directory, the wrk runs, and figures that a shared, loaded machine
# moves as little as possible.
#
#   . "$SG_SRCDIR/bench/lib.bash"      (after setting BENCH_NAME)
#
# Robust to load: the cases of a benchmark run as interleaved ROUNDS (each
# round runs every case once, starting one case later than the round before,
# so no case always follows the same one), and every figure printed is the
# MEDIAN over the rounds: req/s, p99 latency, and the server processes' CPU
# time per request (utime+stime of the PIDs a case names, read from /proc
# around its wrk run: what the check costs, which the load of the others
# moves far less than req/s).  A ratio is the median of the per-round
# ratios, so a baseline and its candidate are always compared with runs a
# few seconds apart, never with a run from a quieter minute.
#
# Environment: BENCH_THREADS (wrk -t, 2), BENCH_CONNS (wrk -c, 32),
# BENCH_SECONDS (each wrk run, 5), BENCH_WORKERS (processes per FastCGI
# responder, 2), BENCH_ROUNDS (interleaved rounds; each script sets its own
# default).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[1]:-$0}")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=$(command -v python3)}"
export SG_SRCDIR SG_BUILDDIR SG_PYTHON
. "$SG_SRCDIR/tests/helpers/servers.bash"

: "${BENCH_THREADS:=2}" "${BENCH_CONNS:=32}" "${BENCH_SECONDS:=5}" "${BENCH_WORKERS:=2}"
: "${BENCH_NAME:=bench}"

die() { echo "bench/$BENCH_NAME: $*" >&2; exit 1; }

# bench_need TOOL...: each must be on PATH.
bench_need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "$t is missing"
  done
}

# bench_scratch: a scratch directory in $tmp, removed with every server
# started through tests/helpers/servers.bash when the script ends.
bench_scratch() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench-$BENCH_NAME.XXXXXX")
  trap 'srv_stop_all; rm -rf "$tmp"' EXIT
  trap 'exit 1' INT TERM
}

url() { srv_url "$1"; }

# bench_check PATH WANT [curl args]: the case must really do its work
# before it is timed (WANT: a grep pattern of the response, headers included).
bench_check() {
  local path=$1 want=$2 out
  shift 2
  out=$(curl -sS -i --max-time 10 "$@" "$(srv_url "$path")" | tr -d '\r')
  printf '%s\n' "$out" | grep -q "$want" || die "/$path does not answer '$want': $out"
}

# bench_status PATH WANT [curl args]: the HTTP status must be WANT.
bench_status() {
  local path=$1 want=$2 code
  shift 2
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$(srv_url "$path")")
  [ "$code" = "$want" ] || die "/$path $* answered $code, not $want"
}

# bench_pids_of PID...: PID and its child processes (a master and its workers).
bench_pids_of() {
  local p
  for p in "$@"; do
    echo "$p"
    pgrep -P "$p" 2>/dev/null
  done | sort -u | tr '\n' ' '
}

# CPU ticks (utime+stime) of the processes listed.
bench_ticks() {
  local p sum=0 t
  for p in "$@"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

# Samples, one word per round: S_RPS[case], S_P99[case] (ms), S_CPU[case]
# (server CPU µs per request; "-" when the case names no PID).
declare -A S_RPS S_P99 S_CPU CASE_PATH CASE_ARGS CASE_PIDS
BENCH_CASES=()

# bench_case NAME PATH "PIDS" [wrk args]: declare a case.  PIDS: the
# server processes whose CPU time counts for it (may be "").
bench_case() {
  local name=$1 path=$2 pids=$3
  shift 3
  BENCH_CASES+=("$name")
  CASE_PATH[$name]=$path CASE_PIDS[$name]=$pids
  CASE_ARGS[$name]=
  [ $# -eq 0 ] || CASE_ARGS[$name]=$(printf '%q ' "$@")
}

# wrk's latency text (850.00us, 12.34ms, 1.02s, 2.00m) in ms.
bench_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

# bench_run NAME: one wrk run of a case; appends its samples.
bench_run() {
  local name=$1 out rps p99 bad t0 t1 n hz pids args
  eval "args=(${CASE_ARGS[$name]})"
  pids=${CASE_PIDS[$name]}
  # shellcheck disable=SC2086
  t0=$(bench_ticks $pids)
  out=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_SECONDS}s" --latency \
            "${args[@]}" "$(srv_url "${CASE_PATH[$name]}")" 2>&1) ||
    die "wrk failed for $name: $out"
  # shellcheck disable=SC2086
  t1=$(bench_ticks $pids)
  bad=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: *//p')
  [ -z "$bad" ] || die "$name: $bad non-2xx answers under load: $out"
  rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {print $2}')
  p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
  n=$(printf '%s\n' "$out" | awk '/requests in/ {print $1}')
  [ -n "$rps" ] && [ -n "$p99" ] || die "$name: no Requests/sec or p99 in: $out"
  S_RPS[$name]="${S_RPS[$name]:-} $rps"
  S_P99[$name]="${S_P99[$name]:-} $(bench_ms "$p99")"
  hz=$(getconf CLK_TCK)
  if [ -n "$pids" ] && [ "${n:-0}" -gt 0 ]; then
    S_CPU[$name]="${S_CPU[$name]:-} $(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$n" \
                                      'BEGIN { printf "%.2f", d * 1e6 / hz / n }')"
  else
    S_CPU[$name]="${S_CPU[$name]:-} -"
  fi
}

# bench_warm: one short run of every case (caches, first touches).
bench_warm() {
  local name args
  for name in "${BENCH_CASES[@]}"; do
    eval "args=(${CASE_ARGS[$name]})"
    wrk -t1 -c4 -d1s "${args[@]}" "$(srv_url "${CASE_PATH[$name]}")" >/dev/null 2>&1
  done
}

# bench_rounds N: N interleaved rounds of every declared case, each round
# starting one case further on.
bench_rounds() {
  local rounds=$1 r i k=${#BENCH_CASES[@]}
  for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < k; i++)); do
      bench_run "${BENCH_CASES[$(( (i + r) % k ))]}"
    done
  done
}

# bench_median WORDS...: the median ("-" when a word is "-" or none given).
bench_median() {
  printf '%s\n' "$@" | awk 'NF { if ($1 == "-") bad = 1; v[n++] = $1 + 0 }
    END { if (!n || bad) { print "-"; exit }
          asort_n(v, n)
          m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
          printf "%.2f\n", m }
    function asort_n(a, n,   i, j, t) {
      for (i = 1; i < n; i++) for (j = i; j > 0 && a[j - 1] > a[j]; j--) {
        t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }'
}

# bench_table LABEL-PREFIX: the cases' medians: req/s, p99 (ms), server
# CPU µs per request, and every round's req/s (to see the spread).
bench_table() {
  local prefix=${1:-} name
  printf '%-18s %10s %10s %12s   %s\n' case req/s p99-ms 'cpu-us/req' 'req/s per round'
  for name in "${BENCH_CASES[@]}"; do
    # shellcheck disable=SC2086
    printf '%-18s %10s %10s %12s   %s\n' "$prefix$name" \
      "$(bench_median ${S_RPS[$name]})" "$(bench_median ${S_P99[$name]})" \
      "$(bench_median ${S_CPU[$name]})" "$(echo ${S_RPS[$name]})"
  done
}

# bench_ratio LABEL A B OP TARGET [rps|cpu]: the median over the rounds of
# A's req/s / B's (rps, default), or of B's CPU per request / A's (cpu: the
# same direction, higher is better for A), against OP TARGET (">=", or
# "none" for a ratio with no target).
bench_ratio() {
  local label=$1 a=$2 b=$3 op=$4 target=$5 kind=${6:-rps} ra rb
  if [ "$kind" = cpu ]; then ra=${S_CPU[$b]:-} rb=${S_CPU[$a]:-}
  else ra=${S_RPS[$a]:-} rb=${S_RPS[$b]:-}; fi
  # shellcheck disable=SC2086
  paste -d' ' <(printf '%s\n' $ra) <(printf '%s\n' $rb) |
    awk -v l="$label" -v op="$op" -v t="$target" -v k="$kind" '
      $1 == "-" || $2 == "-" || $2 + 0 == 0 { bad = 1; next }
      { r[n++] = $1 / $2 }
      END {
        if (bad || !n) { printf "%-40s      -  (no figures)\n", l; exit }
        for (i = 1; i < n; i++) for (j = i; j > 0 && r[j - 1] > r[j]; j--) {
          x = r[j]; r[j] = r[j - 1]; r[j - 1] = x }
        m = (n % 2) ? r[int(n / 2)] : (r[n / 2 - 1] + r[n / 2]) / 2
        tag = (k == "cpu") ? " by CPU/req" : ""
        if (op == "none") { printf "%-40s %6.2f  (median of %d rounds%s; no target)\n", l, m, n, tag; exit }
        ok = (op == ">=") ? (m >= t) : (m <= t)
        printf "%-40s %6.2f  (median of %d rounds%s; target %s %s) %s\n", l, m, n, tag, op, t,
               ok ? "ok" : "MISSED" }'
}
