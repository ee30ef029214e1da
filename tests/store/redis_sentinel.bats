#!/usr/bin/env bats
# tests/store/redis_sentinel.bats - redis+sentinel:// URIs and failover, on
# real servers: a master and two replicas (redis-server) watched by three
# redis-sentinel processes, all on loopback ports chosen free at run time,
# each test's own, stopped by PID.
#
# The promise under test: a process keeps ONE store handle across a
# failover (no restart of any app or gateway); while the master is gone
# its writes fail with errors, never a false success; once the Sentinels
# promoted a replica they succeed again; and every write it was told
# succeeded is there afterwards.  With plain asynchronous replication that
# last part can fail (a write the old master acknowledged but had not yet
# sent is lost): the test prints the count.  With min_replicas=1 (each write
# waits for a replica's confirmation) it must be 0.
#
# A gateway started before the kill serves a session made on the new master
# afterwards, without a restart.
#
# Two replicas, not one: with min_replicas=1 the promoted replica needs a
# replica of its own before any write can succeed again, and the second
# one is that (the Sentinels re-point it).  Timing: down-after-milliseconds
# 1000, so a failover takes about 2-4 s; each test stays under 25 s.
load ../helpers/common
load ../bindings/bindings

MASTER=mymaster

setup() {
  require_tool redis-server redis-sentinel redis-cli
  D=$BATS_TEST_TMPDIR
  STOP=$D/stop
  export STOP
}

teardown() {
  stop_all
}

rcli() { redis-cli -p "$1" "${@:2}"; }

# wait_for WHAT SECS CMD...: until CMD succeeds, bounded.
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  fail "timed out after $secs s waiting for $what"
}

# redis_node NAME PORT [MASTER_PORT]: a redis-server (a replica of
# MASTER_PORT if given), no persistence; PID in $PID_NAME.
redis_node() {
  local name=$1 port=$2
  mkdir -p "$D/$name"
  start_bg redis-server --port "$port" --bind 127.0.0.1 --dir "$D/$name" \
    --save '' --appendonly no --daemonize no --logfile "$D/$name/redis.log" \
    ${3:+--replicaof 127.0.0.1 "$3"} > "$D/$name.pid"
  printf -v "PID_$name" '%s' "$(cat "$D/$name.pid")"
  wait_for "redis $name" 10 eval '[ "$(rcli "$port" ping 2>/dev/null)" = PONG ]'
}

# sentinel_node NAME PORT MASTER_PORT: a redis-sentinel watching it.
sentinel_node() {
  local name=$1 port=$2
  mkdir -p "$D/$name"
  cat > "$D/$name/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
daemonize no
dir $D/$name
logfile $D/$name/sentinel.log
sentinel monitor $MASTER 127.0.0.1 $3 2
sentinel down-after-milliseconds $MASTER 1000
sentinel failover-timeout $MASTER 10000
sentinel parallel-syncs $MASTER 2
EOF
  start_bg redis-sentinel "$D/$name/sentinel.conf" > "$D/$name.pid"
  printf -v "PID_$name" '%s' "$(cat "$D/$name.pid")"
}

# cluster_up: master m0, replicas r1 r2, Sentinels s1 s2 s3; $URI is the
# Sentinel URI (without options), $MPORT the master's port.
cluster_up() {
  MPORT=$(free_port) R1=$(free_port) R2=$(free_port)
  redis_node m0 "$MPORT"
  redis_node r1 "$R1" "$MPORT"
  redis_node r2 "$R2" "$MPORT"
  wait_for "2 replicas in sync" 15 eval \
    '[ "$(rcli "$MPORT" INFO replication | grep -c "^slave[0-9]*:.*state=online")" = 2 ]'
  local s ports=()
  for s in s1 s2 s3; do
    ports+=("$(free_port)")
    sentinel_node "$s" "${ports[-1]}" "$MPORT"
  done
  SPORTS=("${ports[@]}")
  URI="redis+sentinel://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}/$MASTER"
  # each Sentinel knows both replicas and the two other Sentinels
  for s in "${ports[@]}"; do
    wait_for "Sentinel $s ready" 15 eval \
      '[ "$(rcli "$s" SENTINEL master "$MASTER" | sed -n "/^num-other-sentinels$/{n;p}")" = 2 ] &&
       [ "$(rcli "$s" SENTINEL master "$MASTER" | sed -n "/^num-slaves$/{n;p}")" = 2 ]'
  done
}

# master_port: the port the Sentinels name as the master now.
master_port() { rcli "${SPORTS[0]}" SENTINEL get-master-addr-by-name "$MASTER" | sed -n 2p; }

# writer OUT: ONE store handle ($STORE) until $STOP exists (or 40 s):
# creates {"v":0} and increments data.v of its sessions.  After each
# success "ID V" goes to OUT.ack (tests/tools/verify's format) and
# "T ok" to OUT.ops, "T ID V" to OUT.tack; after each failure "T err
# MESSAGE" to OUT.ops (T: wall-clock ms when the call returned).
WRITER_PY='
import random
out = sys.argv[1]
ack = os.open(out + ".ack", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
ops = os.open(out + ".ops", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
tack = os.open(out + ".tack", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
def log(fd, text):
    os.write(fd, (text + "\n").encode())     # one write(2) per line
st = sessgate.Store(STORE, lock_timeout_ms=1000)
mine, i = [], 0
end = time.monotonic() + 40
while not os.path.exists(os.environ["STOP"]) and time.monotonic() < end:
    i += 1
    try:
        if not mine or i % 5 == 0:
            sid, v = st.create(data={"v": 0}).id, 0
            mine.append(sid)
        else:
            sid, box = random.choice(mine), {}
            def inc(s):
                s["v"] = box["v"] = s["v"] + 1
            if not st.update(sid, inc):
                raise sessgate.Error("session %s vanished" % sid)
            v = box["v"]
    except sessgate.Error as e:
        log(ops, "%d err %s" % (time.time_ns() // 1000000, str(e).replace("\n", " ")))
        time.sleep(0.01)
        continue
    t = time.time_ns() // 1000000
    log(ack, "%s %d" % (sid, v))
    log(tack, "%d %s %d" % (t, sid, v))
    log(ops, "%d ok" % t)'
writer() {
  start_bg "$SG_PYTHON" -c "$SG_PY_PRELUDE$WRITER_PY" "$1" > "$1.pid"
}

# oks_after OPS T: how many successes started after wall-clock ms T
oks_after() { awk -v t="$2" '$1 > t && $2 == "ok"' "$1" 2>/dev/null | wc -l; }

# failover_run OPTIONS: the whole scenario; prints the figures line and
# leaves LOST (acknowledged writes missing or regressed afterwards).
failover_run() {
  cluster_up
  STORE="$URI?prefix=fo:&timeout_ms=500${1:+&$1}"
  export STORE
  rm -f "$STOP"
  writer "$D/w"
  # a gateway started before the failover, never restarted
  GW_SOCK="$D/gw.sock"
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --mode auth \
    2>>"$D/gw.err" > "$D/gw.pid"
  wait_for_socket "$GW_SOCK" 5
  wait_for "100 writes before the kill" 15 eval '[ "$(oks_after "$D/w.ops" 0)" -ge 100 ]'
  local t_kill t_back old=$MPORT
  t_kill=$(( ${EPOCHREALTIME/./} / 1000 ))
  kill -KILL "$PID_m0"
  wait_for "a new master" 20 eval '[ -n "$(master_port)" ] && [ "$(master_port)" != "$old" ]'
  wait_for "100 writes on the new master" 20 eval '[ "$(oks_after "$D/w.ops" "$t_kill")" -ge 100 ]'
  touch "$STOP"
  wait_for "the writer to stop" 10 eval '! kill -0 "$(cat "$D/w.pid")" 2>/dev/null'
  # the same gateway serves a session created on the new master (its
  # workers' first request may still fail once: bounded retries)
  local gid
  gid=$(sessgatectl --store "$STORE" create --user fo-user)
  wait_for "the gateway to serve from the new master" 10 eval \
    '"$SG_BUILDDIR/tests/tools/fcgi_client" -s "$GW_SOCK" -t 5 -p REQUEST_METHOD=GET -p REQUEST_URI=/x -p "HTTP_COOKIE=sessgate=$gid" 2>/dev/null | tr -d "\r" | grep -qx "X-Session-User: fo-user"'
  # back: the first success after the first failure that followed the kill
  t_back=$(awk -v t="$t_kill" '$1 > t && $2 == "err" { e = 1 } e && $2 == "ok" { print $1; exit }' "$D/w.ops")
  ERRS=$(awk -v t="$t_kill" '$1 > t && $2 == "err"' "$D/w.ops" | wc -l)
  ACKED=$(wc -l < "$D/w.ack")
  run "$SG_BUILDDIR/tests/tools/verify" "$STORE" "$D/w.ack"
  VERIFY=$output
  MISSING=$(sed -n 's/.*missing=\([0-9]*\).*/\1/p' <<<"$output")
  REGRESSED=$(sed -n 's/.*regressed=\([0-9]*\).*/\1/p' <<<"$output")
  LOST=$((MISSING + REGRESSED))
  echo "# ${1:-async}: acked=$ACKED lost=$LOST (missing=$MISSING regressed=$REGRESSED) errors_after_kill=$ERRS writes_back=$((t_back - t_kill)) ms_after_kill new_master=$(master_port) (was $old)" >&3
}

@test "a Sentinel URI finds the master; the store works through it; a wrong master name is a clear error" {
  cluster_up
  run -0 sessgatectl --store "$URI?prefix=s1:" create --user alice
  id=$output
  [ "$(rcli "$MPORT" EXISTS "s1:$id")" = 1 ]
  run -0 sessgatectl --store "$URI?prefix=s1:" get "$id"
  assert_output --partial '"user":"alice"'
  run -3 --separate-stderr sessgatectl --store "${URI%/*}/nosuchmaster?prefix=s1:" count
  [[ "$stderr" == *"no Sentinel gave the address of master nosuchmaster"*"does not know this master name"* ]] ||
    fail "$stderr"
}

@test "kill -9 of the master under write load, async replication: writes fail with errors, then resume on the promoted replica in the same process" {
  failover_run ""
  [ "$ERRS" -ge 1 ] || fail "no write failed while the master was gone"
  [ -n "$(grep ' err ' "$D/w.ops" | head -1)" ]
  # every failure is an error naming the URI, no crash of the writer
  ! grep ' err ' "$D/w.ops" | grep -v "store $STORE" | grep -q . ||
    fail "$(grep ' err ' "$D/w.ops" | grep -v "store $STORE" | head -3)"
  # losses are possible here (asynchronous replication): reported above, not judged
}

@test "kill -9 of the master under write load with min_replicas=1: 0 acknowledged writes lost" {
  failover_run "min_replicas=1"
  [ "$ERRS" -ge 1 ] || fail "no write failed while the master was gone"
  [ "$LOST" -eq 0 ] || fail "lost $LOST acknowledged writes: $VERIFY"
}

@test "a manual SENTINEL FAILOVER (old master alive, demoted later) is followed by a kept handle" {
  # The old master keeps accepting writes until the Sentinels demote it
  # (Redis Sentinel's two-master window): what the handle wrote there is
  # lost when it resyncs from the new master.  Reported, not judged; what
  # must hold is that the handle follows, and keeps what it writes after.
  cluster_up
  STORE="$URI?prefix=mf:&timeout_ms=500"
  export STORE
  rm -f "$STOP"
  writer "$D/w"
  wait_for "50 writes" 15 eval '[ "$(oks_after "$D/w.ops" 0)" -ge 50 ]'
  t0=$(( ${EPOCHREALTIME/./} / 1000 ))
  old=$MPORT
  rcli "${SPORTS[0]}" SENTINEL FAILOVER "$MASTER" > /dev/null
  wait_for "a new master" 20 eval '[ "$(master_port)" != "$old" ]'
  wait_for "the old master to be a replica" 30 eval \
    '[ "$(rcli "$old" ROLE | head -1)" = slave ]'
  t_demoted=$(( ${EPOCHREALTIME/./} / 1000 ))
  wait_for "50 writes after the demotion" 20 eval '[ "$(oks_after "$D/w.ops" "$t_demoted")" -ge 50 ]'
  touch "$STOP"
  wait_for "the writer to stop" 10 eval '! kill -0 "$(cat "$D/w.pid")" 2>/dev/null'
  port=$(master_port)
  [ "$(rcli "$port" ROLE | head -1)" = master ]
  run "$SG_BUILDDIR/tests/tools/verify" "$STORE" "$D/w.ack"
  echo "# manual failover, whole run: ${lines[-1]}; demoted $((t_demoted - t0)) ms after SENTINEL FAILOVER; errors=$(grep -c ' err ' "$D/w.ops")" >&3
  # every write acknowledged after the demotion is on the new master
  awk -v t="$t_demoted" '$1 > t { print $2, $3 }' "$D/w.tack" > "$D/after.ack"
  [ -s "$D/after.ack" ]
  run "$SG_BUILDDIR/tests/tools/verify" "$STORE" "$D/after.ack"
  [ "$status" -eq 0 ] || fail "writes after the switch lost: ${lines[-1]}"
}
