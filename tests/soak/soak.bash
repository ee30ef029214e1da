#!/usr/bin/env bash
# tests/soak/soak.bash - the real gateway under sustained mixed load.
#
#   tests/soak/soak.bash [SECONDS]      (`make soak SOAK_SECONDS=N`, default 120)
#
# Starts, all under one temp dir and stopped by PID at the end (trap):
#   nginx on 127.0.0.1:<free port>  (tests/soak/nginx.conf.in)
#   sessgate --mode auth --policy user --workers 2   behind auth_request,
#            in front of a static file (the tiny backend)
#   sessgate --mode cgi --workers 2 running tests/soak/incr.cgi
#   a loop of `sessgatectl create --ttl 1` + `sessgatectl purge` on the same
#   store, and a sampler of every sessgate process's VmRSS and open fds
# and drives it with wrk (tests/soak/soak.lua) for SECONDS: reads through auth
# mode with pre-made user sessions, counter increments through the CGI app
# on a fixed set of pre-made sessions, logins, logouts and rotations in cgi
# mode, reads with the sessions logged in, and forged or malformed cookies.
#
# How lost updates are counted: the CGI app answers an increment with 200
# only when it read {"n":N} and asked for {"n":N+1}; the gateway applies
# that or, when a concurrent request changed "n" meanwhile, answers 409
# and applies nothing.  So after the run, for every counter session, the
# stored n must equal the number of 200s nginx logged for that counter
# (increments stop a few seconds before wrk does, so none is left in
# flight; a request cut off anyway, status 499, is allowed either way).
#
# Pass criteria (each printed with its figures; exit 1 naming every one
# that failed):
#   5xx         no 5xx response, no wrk socket error or timeout
#   statuses    every class answers only what it may (read 200, incr 200 or
#               409, forged 401 or a CGI that got no session, ...)
#   forged      no forged or malformed cookie ever selected a session
#   updates     stored counter == acknowledged increments, per counter
#   sessions    the sessions the clients still hold are exactly the live
#               soaker-* sessions; readers and counters all still live; no
#               stray anonymous session; count == list == export == stats
#   check       `sessgatectl check` exits 0
#   purge       every purge run exited 0
#   workers     no gateway worker died or was replaced; no sanitizer report;
#               SIGTERM stops both gateways with exit status 0
#   memory      per worker, VmRSS growth after the first 20% of the run
#               < SOAK_RSS_KB (2048 KiB; 65536 under ASan, whose quarantine
#               and shadow memory grow for a while before they level off)
#   fds         per process, idle fd count after the run == before +-2, and
#               never more than idle + SOAK_FD_SLACK (8: a request's
#               FastCGI connection, CGI pipes, a store reopen or checkpoint copy) during it
#   nginx       no [error]/[crit]/[alert]/[emerg] line in nginx's error log
# No timing is asserted beyond those bounds: a busy 2-CPU machine only
# makes the run slower.  Environment: SOAK_THREADS (2), SOAK_CONNS (16),
# SOAK_RSS_KB, SOAK_FD_SLACK, SOAK_KEEP=1 (keep the temp dir; it is also
# kept, and named, when the run fails).
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

secs=${1:-${SOAK_SECONDS:-120}}
case $secs in
  '' | *[!0-9]*) echo "soak: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;;
esac
if [ "$secs" -lt 10 ]; then
  echo "soak: SECONDS must be at least 10" >&2
  exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(cd "$here/../.." && pwd)}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=$(command -v python3)}"
export SG_SRCDIR SG_BUILDDIR SG_PYTHON
. "$SG_SRCDIR/tests/helpers/servers.bash"

: "${SOAK_THREADS:=2}" "${SOAK_CONNS:=16}" "${SOAK_FD_SLACK:=8}"
NCOUNTERS=6 NREADERS=8 NEXPIRED=3

die() { echo "soak: $*" >&2; exit 1; }
ctl=$SG_BUILDDIR/cli/sessgatectl
[ -x "$SRV_SESSGATE" ] || die "$SRV_SESSGATE is not built (make)"
[ -x "$ctl" ] || die "$ctl is not built (make)"
for t in nginx wrk curl; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install $t)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sg-soak.XXXXXX") || die "mktemp failed"
run=$tmp/run
store=$tmp/sessions.db
bg_pids=()          # our own loops (sampler, purger), stopped by PID
failed=()
cleanup() {
  local pid i
  : > "$tmp/stop"
  for pid in "${bg_pids[@]}"; do
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$pid" 2>/dev/null
  done
  srv_stop_all
  if [ "${#failed[@]}" -gt 0 ] || [ "${SOAK_KEEP:-0}" = 1 ] || [ "${soak_done:-0}" != 1 ]; then
    echo "soak: logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run copies: a rebuild in the tree during the run (make in another
# terminal) must not swap the programs under it.  Both link libsessgate
# statically.
mkdir -p "$tmp/bin" && cp "$SRV_SESSGATE" "$ctl" "$tmp/bin/" || die "cannot copy the programs"
SRV_SESSGATE=$tmp/bin/sessgate ctl=$tmp/bin/sessgatectl

# Under AddressSanitizer RSS is no leak signal until the quarantine is full;
# a smaller quarantine makes it level off sooner, and the bound is wider.
asan=0
if grep -q __asan_init "$SRV_SESSGATE" 2>/dev/null || [[ "${SG_SANITIZE:-}" == *address* ]]; then
  asan=1
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
fi
: "${SOAK_RSS_KB:=$([ "$asan" = 1 ] && echo 65536 || echo 2048)}"

srv_init "$run" "$store"
echo ok > "$run/ok.txt"
SRV_SOAKDIR=$here

# ------------------------------------------------------------ servers
start_all() {
  srv_gateway gw-auth "unix:$run/gw-auth.sock" --mode auth --policy user --workers 2 &&
  gw_auth=$SRV_LAST_PID &&
  srv_gateway gw-cgi "unix:$run/gw-cgi.sock" --mode cgi --cgi-root "$here" \
    --cgi-timeout 20 --workers 2 &&
  gw_cgi=$SRV_LAST_PID &&
  srv_nginx "$here/nginx.conf.in"
}
if ! start_all; then
  # A port picked free can be taken before nginx binds it: once more.
  srv_stop_all
  rm -f "$run"/*.sock
  start_all || { tail -n 5 "$run"/*.log >&2; die "could not start the servers"; }
fi
url() { srv_url "$1"; }

# ------------------------------------------------------------ sessions
ids=$tmp/ids
: > "$ids"
for k in $(seq "$NCOUNTERS"); do
  id=$("$ctl" --store "$store" create --data '{"n":0}') || die "sessgatectl create failed"
  echo "counter $k $id" >> "$ids"
done
for k in $(seq "$NREADERS"); do
  id=$("$ctl" --store "$store" create --user "reader-$k") || die "sessgatectl create failed"
  echo "reader $k $id" >> "$ids"
done
for k in $(seq "$NEXPIRED"); do
  id=$("$ctl" --store "$store" create --ttl 1) || die "sessgatectl create failed"
  echo "expired - $id" >> "$ids"
done
idof() { awk -v k="$1" -v n="$2" '$1 == k && $2 == n { print $3 }' "$ids"; }

# The expired ones must really be expired before they are used as forgeries.
for i in $(seq 100); do
  live=0
  for id in $(awk '$1 == "expired" { print $3 }' "$ids"); do
    "$ctl" --store "$store" get "$id" >/dev/null 2>&1 && live=1
  done
  [ "$live" = 0 ] && break
  sleep 0.1
done
[ "$live" = 0 ] || die "the --ttl 1 sessions did not expire within 10 s"

# ------------------------------------------------------------ smoke test
# Every path must work once before the load, or the figures mean nothing.
hget() {  # hget PATH [COOKIE]: "STATUS" line, then headers and body
  curl -sS -i --max-time 20 ${2:+-H "Cookie: $2"} "$(url "$1")" | tr -d '\r'
}
expect() {  # expect WHAT OUTPUT PATTERN
  printf '%s\n' "$2" | grep -q -- "$3" || die "smoke test: $1: no '$3' in: $2"
}
c1=$(idof counter 1) r1=$(idof reader 1)
for k in $(seq "$NCOUNTERS"); do
  out=$(hget "/cgi/incr?c=$k" "sessgate=$(idof counter "$k")")
  expect "increment of counter $k" "$out" '^applied n=1$'
done
out=$(hget "/auth/read?r=1" "sessgate=$r1");        expect "read" "$out" '^X-Soak-User: reader-1$'
out=$(hget "/auth/forged?f=0" "sessgate=${r1^^}");  expect "forged" "$out" '^HTTP/1.1 401'
out=$(hget "/cgi/peek?f=0" "sessgate=$r1; sessgate=$c1"); expect "forged cgi" "$out" '^X-Soak-Sid: -$'
out=$(hget "/cgi/login?u=smoke")
expect "login" "$out" '^logged in$'
sid=$(printf '%s\n' "$out" | sed -n 's/^Set-Cookie: sessgate=\([0-9a-f-]\{36\}\);.*/\1/p')
[ -n "$sid" ] || die "smoke test: login set no session cookie: $out"
out=$(hget /auth/mine "sessgate=$sid");   expect "read after login" "$out" '^X-Soak-User: smoke$'
out=$(hget /cgi/rotate "sessgate=$sid");  expect "rotate" "$out" '^rotated$'
sid2=$(printf '%s\n' "$out" | sed -n 's/^Set-Cookie: sessgate=\([0-9a-f-]\{36\}\);.*/\1/p')
[ -n "$sid2" ] && [ "$sid2" != "$sid" ] || die "smoke test: rotation gave no new id: $out"
# a plain rotation leaves the default grace window (10 s, issue #12)
out=$(hget /auth/mine "sessgate=$sid");   expect "old id within the rotation grace" "$out" '^X-Soak-User: smoke$'
out=$(hget /cgi/logout "sessgate=$sid2"); expect "logout" "$out" '^logged out$'
out=$(hget /auth/mine "sessgate=$sid2");  expect "read after logout" "$out" '^HTTP/1.1 401'

# ------------------------------------------------------------ sampler
gw_pids() {  # every sessgate process: "label pid" lines (masters, workers)
  local m label c
  for m in "$gw_auth:auth" "$gw_cgi:cgi"; do
    label=${m#*:} m=${m%%:*}
    echo "$label-master $m"
    c=$(cat "/proc/$m/task/$m/children" 2>/dev/null) ||
      c=$(ps -o pid= --ppid "$m" 2>/dev/null)
    for c in $c; do
      # Only the workers (sessgate), not a CGI program of theirs.
      [ "$(cat "/proc/$c/comm" 2>/dev/null)" = sessgate ] && echo "$label-worker $c"
    done
  done
}
sample() {  # sample TAG: one "TAG t label pid rss_kb nfd" line per process
  local t label pid rss nfd
  t=$(( $(date +%s%N) / 1000000 - t0_ms ))
  while read -r label pid; do
    rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" 2>/dev/null)
    nfd=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    [ -n "$rss" ] && echo "$1 $t $label $pid $rss $nfd"
  done < <(gw_pids)
}
samples=$tmp/samples
t0_ms=$(( $(date +%s%N) / 1000000 ))
sleep 0.5            # let the last smoke request finish everywhere
sample idle0 > "$samples"
gw_pids | sort > "$tmp/pids.before"
[ "$(grep -c worker "$tmp/pids.before")" = 4 ] || die "expected 4 gateway workers: $(cat "$tmp/pids.before")"

# ------------------------------------------------------------ load
quiet=$(( secs / 10 )); [ "$quiet" -lt 3 ] && quiet=3; [ "$quiet" -gt 10 ] && quiet=10
t_start=$(date +%s)
cutoff=$(( t_start + secs - quiet ))
t0_ms=$(( $(date +%s%N) / 1000000 ))

(  # the sampler: every 2 s, bounded in count
  for i in $(seq $(( secs / 2 + 30 ))); do
    [ -e "$tmp/stop" ] && break
    sample load
    sleep 2
  done >> "$samples"
) 3>&- </dev/null &
bg_pids+=($!)

(  # the purge loop: short-lived sessions for it to find, then purge
  for i in $(seq $(( secs * 2 + 10 ))); do
    [ -e "$tmp/stop" ] && break
    [ "$(date +%s)" -ge "$cutoff" ] && break
    "$ctl" --store "$store" create --ttl 1 >/dev/null 2>>"$tmp/purge.err" ||
      echo "create-failed $?" >> "$tmp/purge.out"
    if n=$("$ctl" --store "$store" purge 2>>"$tmp/purge.err"); then
      echo "purged $n" >> "$tmp/purge.out"
    else
      echo "purge-failed $?" >> "$tmp/purge.out"
    fi
    sleep 0.5
  done
) 3>&- </dev/null &
bg_pids+=($!)

smoke_n=$(wc -l < "$run/access.log")
echo "soak: ${secs}s of mixed load: wrk -t$SOAK_THREADS -c$SOAK_CONNS on $(url /)" \
     "($(nproc) CPUs$([ "$asan" = 1 ] && echo ', ASan build'))"
SOAK_WRK_OUT=$tmp/wrk.pool timeout $(( secs + 120 )) \
  wrk -t"$SOAK_THREADS" -c"$SOAK_CONNS" -d"${secs}s" --timeout 30s \
      -s "$here/soak.lua" "$(url /)" -- "$ids" "$cutoff" > "$tmp/wrk.out" 2>&1
wrk_rc=$?
t_load=$(( $(date +%s) - t_start ))
: > "$tmp/stop"
for pid in "${bg_pids[@]}"; do    # both loops end within a few seconds
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
sleep 2            # every --ttl 1 session has expired; workers are idle
sample idle1 >> "$samples"
gw_pids | sort > "$tmp/pids.after"
# Stop the gateways now, so that what they say on the way out (a sanitizer's
# leak report at exit, a worker that would not stop) is in their logs, and
# their exit status is known: SIGTERM must stop them with status 0.
gw_exit=""
for m in "$gw_auth" "$gw_cgi"; do
  srv_stop_pid "$m"
  wait "$m" 2>/dev/null
  gw_exit="$gw_exit $?"
done
gw_exit=${gw_exit# }
# srv_stop_all must not signal those PIDs again (they may be reused).
awk -v a="$gw_auth" -v c="$gw_cgi" '$1 != a && $1 != c' "$run/pids" > "$run/pids.new" &&
  mv "$run/pids.new" "$run/pids"

# ------------------------------------------------------------ figures
fail() { failed+=("$*"); }
[ "$wrk_rc" = 0 ] || fail "wrk: exit status $wrk_rc: $(tail -n 3 "$tmp/wrk.out")"
log=$run/access.log
total=$(wc -l < "$log")
rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
sockerr=$(sed -n 's/^ *Socket errors: *//p' "$tmp/wrk.out")

# Per class and status.
declare -A CNT
while read -r cls st n; do CNT[$cls.$st]=$n; done < <(
  awk '{ n[$2 " " $1]++ } END { for (k in n) print k, n[k] }' "$log")
classes="read mine forged peek incr login logout rotate"
n5xx=$(awk '$1 >= 500 { n++ } END { print n + 0 }' "$log")
[ "$n5xx" = 0 ] || fail "5xx: $n5xx responses with status >= 500"
[ -z "$sockerr" ] || fail "5xx: wrk socket errors: $sockerr"

# What each class may answer (499: wrk hung up at the very end).
bad_status=$(awk '
  { ok = 0 }
  $1 == 499 { ok = 1 }
  $2 == "read"   && $1 == 200 { ok = 1 }
  $2 == "mine"   && ($1 == 200 || $1 == 401) { ok = 1 }
  $2 == "forged" && $1 == 401 { ok = 1 }
  $2 == "peek"   && $1 == 200 { ok = 1 }
  $2 == "incr"   && ($1 == 200 || $1 == 409) { ok = 1 }
  ($2 == "login" || $2 == "logout" || $2 == "rotate") && $1 == 200 { ok = 1 }
  !ok { n++; if (n <= 5) ex = ex " [" $0 "]" }
  END { if (n) print n ex }' "$log")
[ -z "$bad_status" ] || fail "statuses: unexpected answers: $bad_status"

# Forged cookies: never a 200 through auth mode, never a session in the CGI.
forged_in=$(awk '($2 == "forged" && ($1 == 200 || ($6 != "user=" && $6 != "user=-"))) ||
                 ($2 == "peek" && $7 != "sid=-") { n++ } END { print n + 0 }' "$log")
forged_total=$(awk '$2 == "forged" || $2 == "peek" { n++ } END { print n + 0 }' "$log")
[ "$forged_in" = 0 ] || fail "forged: $forged_in forged or malformed cookies selected a session"
# Reads must see their own reader; an increment must run in its counter.
wrong_sess=$(awk -v ids="$ids" '
  BEGIN { while ((getline l < ids) > 0) { split(l, f, " "); id[f[1] f[2]] = f[3] } }
  $2 == "read" && $1 == 200 { split($4, r, "="); if ($6 != "user=reader-" r[2]) n++ }
  $2 == "incr" && $1 == 200 { split($3, c, "="); if ($7 != "sid=" id["counter" c[2]]) n++ }
  $2 == "mine" && $1 == 200 && $6 !~ /^user=(soaker-[0-9]+-[0-9]+|smoke)$/ { n++ }
  END { print n + 0 }' "$log")
[ "$wrong_sess" = 0 ] || fail "forged: $wrong_sess reads or increments ran in the wrong session"

# Lost updates: per counter, stored n against the 200s in the log.
upd_report=""
acked_sum=0 stored_sum=0 conflicts=${CNT[incr.409]:-0}
for k in $(seq "$NCOUNTERS"); do
  id=$(idof counter "$k")
  acked=$(awk -v c="c=$k" '$2 == "incr" && $3 == c && $1 == 200 { n++ } END { print n + 0 }' "$log")
  cut=$(awk -v c="c=$k" '$2 == "incr" && $3 == c && $1 == 499 { n++ } END { print n + 0 }' "$log")
  rec=$("$ctl" --store "$store" get "$id" 2>&1)
  stored=$(printf '%s\n' "$rec" | sed -n 's/.*"data":{"n":\([0-9]*\)}.*/\1/p')
  if [ -z "$stored" ]; then
    fail "updates: counter $k ($id) is gone or has no n: $rec"
    stored=0
  elif [ "$stored" -lt "$acked" ]; then
    fail "updates: counter $k lost $(( acked - stored )) increments (acked $acked, stored $stored)"
  elif [ "$stored" -gt $(( acked + cut )) ]; then
    fail "updates: counter $k holds $(( stored - acked )) increments nobody was told of (acked $acked, stored $stored, cut off $cut)"
  fi
  acked_sum=$(( acked_sum + acked )) stored_sum=$(( stored_sum + stored ))
  upd_report="$upd_report $acked/$stored"
done

# Sessions: what the clients hold against what the store has.
"$ctl" --store "$store" list > "$tmp/list" 2>"$tmp/list.err" || fail "sessions: sessgatectl list failed: $(cat "$tmp/list.err")"
count=$("$ctl" --store "$store" count 2>&1) || fail "sessions: sessgatectl count failed: $count"
nexport=$("$ctl" --store "$store" export 2>/dev/null | wc -l)
stats_live=$("$ctl" --store "$store" stats --walk 2>/dev/null | awk '$1 == "live:" { print $2 }')
nlist=$(wc -l < "$tmp/list")
awk '$2 ~ /^soaker-/ { print $1 }' "$tmp/list" | sort > "$tmp/live.login"
awk '$1 == "pool" { print $2 }' "$tmp/wrk.pool" 2>/dev/null | sort > "$tmp/held"
held=$(wc -l < "$tmp/held")
live_login=$(wc -l < "$tmp/live.login")
held_gone=$(comm -23 "$tmp/held" "$tmp/live.login" | wc -l)
stray=$(comm -13 "$tmp/held" "$tmp/live.login" | wc -l)
cut_login=$(awk '($2 == "login" || $2 == "rotate" || $2 == "logout") && $1 == 499 { n++ } END { print n + 0 }' "$log")
live_readers=$(awk '$2 ~ /^reader-/' "$tmp/list" | wc -l)
live_anon=$(awk '$2 == "-"' "$tmp/list" | wc -l)
[ -s "$tmp/wrk.pool" ] || [ "${CNT[login.200]:-0}" = 0 ] || fail "sessions: wrk wrote no pool ($tmp/wrk.pool)"
[ "$held_gone" = 0 ] || fail "sessions: $held_gone sessions the clients still hold are gone from the store"
[ "$stray" -le "$cut_login" ] || fail "sessions: $stray live soaker sessions no client holds (logins or rotations that left a session behind; $cut_login cut off)"
[ "$live_readers" = "$NREADERS" ] || fail "sessions: $live_readers of $NREADERS reader sessions are live"
[ "$live_anon" = "$NCOUNTERS" ] || fail "sessions: $live_anon anonymous live sessions, expected the $NCOUNTERS counters"
[ "$count" = "$nlist" ] && [ "$count" = "$nexport" ] && [ "$count" = "$stats_live" ] ||
  fail "sessions: count $count, list $nlist, export $nexport, stats live $stats_live disagree"
[ "$count" = $(( NCOUNTERS + NREADERS + live_login )) ] ||
  fail "sessions: count $count is not $NCOUNTERS counters + $NREADERS readers + $live_login logins"

check_out=$("$ctl" --store "$store" check 2>&1)
check_rc=$?
[ "$check_rc" = 0 ] || fail "check: sessgatectl check exited $check_rc: $check_out"

purge_runs=$(grep -c '^purged ' "$tmp/purge.out" 2>/dev/null); purge_runs=${purge_runs:-0}
purged=$(awk '$1 == "purged" { n += $2 } END { print n + 0 }' "$tmp/purge.out" 2>/dev/null)
purge_bad=$(grep -c 'failed' "$tmp/purge.out" 2>/dev/null); purge_bad=${purge_bad:-0}
[ "$purge_bad" = 0 ] || fail "purge: $purge_bad sessgatectl runs failed: $(head -n 3 "$tmp/purge.err")"
[ "$purge_runs" -gt 0 ] || fail "purge: the purge loop never ran"

# Workers: the same processes before and after, no crash, no sanitizer.
cmp -s "$tmp/pids.before" "$tmp/pids.after" ||
  fail "workers: gateway processes changed: before $(tr '\n' ' ' < "$tmp/pids.before"), after $(tr '\n' ' ' < "$tmp/pids.after")"
gw_bad=$(grep -hE 'killed by signal|exited with status|restarting|Sanitizer|runtime error|out of memory' \
         "$run"/gw-*.log | head -n 3)
[ -z "$gw_bad" ] || fail "workers: $gw_bad"
[ "$gw_exit" = "0 0" ] || fail "workers: the gateways exited with status $gw_exit after SIGTERM, not 0 0"

# Memory and fds, per process.
flat=$(awk -v secs="$secs" -v rssmax="$SOAK_RSS_KB" -v slack="$SOAK_FD_SLACK" '
  $1 == "idle0" { fd0[$4] = $6; rss0[$4] = $5; label[$4] = $3; order[++np] = $4 }
  $1 == "idle1" { fd1[$4] = $6; rss1[$4] = $5 }
  $1 == "load" {
    p = $4
    if (!(p in fdmax) || $6 > fdmax[p]) fdmax[p] = $6
    if (!(p in rssmax_) || $5 > rssmax_[p]) rssmax_[p] = $5
    if ($2 >= secs * 200 && !(p in base)) base[p] = $5        # 20% of the run, in ms
    if (p in base && (!(p in after) || $5 > after[p])) after[p] = $5
  }
  END {
    for (i = 1; i <= np; i++) {
      p = order[i]
      g = (p in base) ? after[p] - base[p] : 0
      bad = ""
      if (!(p in base)) bad = bad " no-samples"
      if (label[p] ~ /worker/ && g >= rssmax) bad = bad " rss+" g "KiB"
      if (!(p in fd1)) bad = bad " gone"
      else if (fd1[p] - fd0[p] > 2 || fd0[p] - fd1[p] > 2) bad = bad " fd" fd0[p] "->" fd1[p]
      if (fdmax[p] > fd0[p] + slack) bad = bad " fdmax" fdmax[p]
      printf "  %-12s %7d  rss KiB start %6d  at20%% %6d  max %6d  end %6d  growth %5d   fds idle %3d -> %3d  max %3d  %s\n",
        label[p], p, rss0[p], base[p], rssmax_[p], rss1[p], g, fd0[p], fd1[p], fdmax[p],
        bad == "" ? "ok" : "BAD" bad
    }
  }' "$samples")
while read -r line; do
  case $line in
    *"BAD "*rss*) fail "memory: $line" ;;
  esac
  case $line in
    *"BAD "*fd* | *"BAD "*gone* | *"BAD "*no-samples*) fail "fds: $line" ;;
  esac
done <<< "$flat"

nginx_bad=$(grep -E '\[(error|crit|alert|emerg)\]' "$run/error.log" | head -n 3)
[ -z "$nginx_bad" ] || fail "nginx: $nginx_bad"

# ------------------------------------------------------------ summary
st_of() {  # st_of CLASS: "200:N 409:M ..."
  local k out=""
  for k in "${!CNT[@]}"; do
    [ "${k%%.*}" = "$1" ] && out="$out ${k#*.}:${CNT[$k]}"
  done
  printf '%s' "$(tr ' ' '\n' <<< "$out" | sort | tr '\n' ' ')"
}
echo "================ soak summary ================"
printf 'load             %ss (%ss with mutations), wrk -t%s -c%s, %s CPUs, load avg %s\n' \
  "$t_load" "$(( secs - quiet ))" "$SOAK_THREADS" "$SOAK_CONNS" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
printf 'requests         %s logged by nginx (incl. %s smoke), %s req/s (wrk), 5xx %s, wrk socket errors %s\n' \
  "$total" "$smoke_n" "${rps:-?}" "$n5xx" "${sockerr:-none}"
for c in $classes; do
  printf '  %-14s %s\n' "$c" "$(st_of "$c")"
done
printf 'forged cookies   %s sent, %s let in\n' "$forged_total" "$forged_in"
printf 'increments       %s acked (200), %s stored, %s conflicts (409); per counter acked/stored:%s\n' \
  "$acked_sum" "$stored_sum" "$conflicts" "$upd_report"
printf 'sessions         live %s (count) / %s (list) / %s (export) / %s (stats): %s counters, %s readers, %s logins; clients hold %s, gone %s, stray %s\n' \
  "$count" "$nlist" "$nexport" "$stats_live" "$live_anon" "$live_readers" "$live_login" "$held" "$held_gone" "$stray"
printf 'purge            %s runs, %s sessions removed, %s failed\n' "$purge_runs" "$purged" "$purge_bad"
printf 'check            exit %s (%s)\n' "$check_rc" "$(tr '\n' ' ' <<< "$check_out" | cut -c1-100)"
printf 'gateway procs    bound: worker RSS growth after 20%% < %s KiB, idle fds +-2, fds under load <= idle + %s\n' \
  "$SOAK_RSS_KB" "$SOAK_FD_SLACK"
printf '%s\n' "$flat"
printf 'logs             gateway exit after SIGTERM %s, gateway log lines %s (409 notes %s), nginx error.log lines %s\n' \
  "$gw_exit" "$(cat "$run"/gw-*.log | wc -l)" "$(grep -ch 'not applied, 409' "$run/gw-cgi.log")" "$(wc -l < "$run/error.log")"
echo "=============================================="
soak_done=1
if [ "${#failed[@]}" -gt 0 ]; then
  for f in "${failed[@]}"; do echo "soak: FAIL: $f" >&2; done
  exit 1
fi
echo "soak: PASS"
