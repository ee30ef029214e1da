#!/usr/bin/env bats
# tests/store/redis_persist.bats - Redis killed and restarted mid-run: the
# store reports errors while the server is down (never a false success),
# works again after the restart without any process reopening its store,
# and with Redis persistence on (AOF, appendfsync always) loses nothing it
# acknowledged.
#
# Each test starts its own redis-server (unix socket and AOF in the test's
# tmpdir) so that it can kill -9 and restart it on the same socket and
# directory; nothing here uses the Redis pass's shared server, so the file
# has no "backends:" line and runs once.  redis.bats already covers one
# kept handle (storesh) and sessgatectl against a killed server without
# persistence ("with Redis killed every command fails naming the URI");
# this file adds persistence, concurrent writers that log what was
# acknowledged, a lease held across the restart, and the gateway failing
# closed (503) and recovering without a restart of its own.
load ../helpers/common
load store
load ../bindings/bindings

setup() {
  require_tool redis-server redis-cli
  RDIR="$BATS_TEST_TMPDIR/redis"
  mkdir -p "$RDIR"
  REDIS_SOCK="$RDIR/redis.sock"
  STORE="redis+unix:$REDIS_SOCK?prefix=p$BATS_TEST_NUMBER:"
  export STORE
}

teardown() {
  stop_all
  [ -n "${REDIS_PID:-}" ] && stop_pid "$REDIS_PID"
  true
}

rcli() { redis-cli -s "$REDIS_SOCK" "$@"; }

# redis_up: start redis-server with AOF (fsync before every reply) on
# $REDIS_SOCK with its files in $RDIR, a child of the test's own shell (so
# kill -9 and wait reap it); PID in $REDIS_PID.  The same directory on a
# restart: the server loads the AOF it wrote before it was killed.
redis_up() {
  rm -f "$REDIS_SOCK"
  redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
    --dir "$RDIR" --save '' --appendonly yes --appendfsync always \
    --daemonize no --logfile "$RDIR/redis.log" 3>&- </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  local i
  for i in $(seq 200); do
    rcli ping 2>/dev/null | grep -q PONG && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 5 "$RDIR/redis.log" >&2
  fail "redis-server did not come up on $REDIS_SOCK"
}

# redis_kill: kill -9 the server (no shutdown, no final AOF flush beyond
# what appendfsync always already did) and make sure it no longer answers.
redis_kill() {
  kill -KILL "$REDIS_PID"
  { wait "$REDIS_PID"; } 2>/dev/null || true
  REDIS_PID=''
  ! rcli ping >/dev/null 2>&1 || fail "redis-server still answers after kill -9"
}

# now_us: wall-clock microseconds, the clock the writers stamp with.
now_us() { printf '%s\n' "${EPOCHREALTIME/./}"; }

# py_writer NAME OUT SHARED: a long-lived Python process on ONE store
# handle until $STOP exists (or 60 s): creates sessions {"v":0} and
# increments data.v with update() on its own sessions and on the shared
# one.  After each success it appends "ID V" to OUT.ack (for verify) and
# "T0 T1 ok ID V" to OUT.ops; after each error "T0 T1 err CLASS MESSAGE"
# (T0/T1: wall-clock microseconds before and after the call).
py_writer() {
  py '
import random
name, out, shared = sys.argv[1:4]
stop = os.environ["STOP"]
ack = os.open(out + ".ack", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
ops = os.open(out + ".ops", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
def now():
    return time.time_ns() // 1000
def log(fd, text):
    os.write(fd, (text + "\n").encode())     # one write(2) per line
st = sessgate.Store(STORE, lock_timeout_ms=2000)
mine, i = [], 0
end = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < end:
    i += 1
    t0 = now()
    try:
        if not mine or i % 7 == 0:
            sid, v = st.create(data={"v": 0, "w": name}).id, 0
            mine.append(sid)
        else:
            sid = shared if i % 3 == 0 else random.choice(mine)
            with st.update(sid) as s:
                v = s["v"] + 1
                s["v"] = v
    except sessgate.Error as e:
        log(ops, "%d %d err %s %s" % (t0, now(), type(e).__name__, str(e).replace("\n", " ")))
        time.sleep(0.02)
        continue
    log(ack, "%s %d" % (sid, v))
    log(ops, "%d %d ok %s %d" % (t0, now(), sid, v))' "$@"
}

# ctl_writer NAME OUT: a loop of sessgatectl processes (a new connection
# each) until $STOP exists: create a session, then set its data.v to 1, 2,
# ... (a failed set is retried with the same value), a new session every
# 10.  Logs as py_writer; an error line is "T0 T1 err EXIT STDERR".
ctl_writer() {
  local name=$1 out=$2 id='' v=0 t0 t1 rc res
  while [ ! -e "$STOP" ]; do
    t0=$(now_us)
    if [ -z "$id" ] || [ "$v" -ge 10 ]; then
      rc=0
      res=$(sessgatectl --store "$STORE" create --data "{\"v\":0,\"w\":\"$name\"}" 2>"$out.stderr") || rc=$?
      t1=$(now_us)
      if [ "$rc" -eq 0 ]; then
        id=$res v=0
        printf '%s 0\n' "$id" >> "$out.ack"
        printf '%s %s ok %s 0 %s\n' "$t0" "$t1" "$id" "$res" >> "$out.ops"
        continue
      fi
    else
      rc=0
      res=$(sessgatectl --store "$STORE" set "$id" "{\"v\":$((v + 1))}" 2>"$out.stderr") || rc=$?
      t1=$(now_us)
      if [ "$rc" -eq 0 ]; then
        v=$((v + 1))
        printf '%s %s\n' "$id" "$v" >> "$out.ack"
        printf '%s %s ok %s %s %s\n' "$t0" "$t1" "$id" "$v" "$res" >> "$out.ops"
        continue
      fi
    fi
    printf '%s %s err %s %s\n' "$t0" "$t1" "$rc" "$(tr '\n' ' ' < "$out.stderr")" >> "$out.ops"
    sleep 0.02
  done
}

# wait_acks N SECS FROM FILE...: until every FILE.ops has N "ok" lines
# that started after FROM (microseconds), bounded by SECS.
wait_acks() {
  local n=$1 secs=$2 from=$3 f i ok
  shift 3
  for ((i = 0; i < secs * 20; i++)); do
    ok=1
    for f in "$@"; do
      [ "$(awk -v t="$from" '$3 == "ok" && $1 > t' "$f.ops" 2>/dev/null | wc -l)" -ge "$n" ] || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.05
  done
  for f in "$@"; do
    echo "# $f: $(awk -v t="$from" '$3 == "ok" && $1 > t' "$f.ops" 2>/dev/null | wc -l) acks since $from;" \
      "last: $(tail -n 1 "$f.ops" 2>/dev/null)" >&2
  done
  fail "writers did not reach $n acknowledged writes in $secs s"
}

@test "Redis killed -9 mid-run: writers get errors naming the URI while it is down and lose no acknowledged write after the restart" {
  redis_up
  [ "$(rcli CONFIG GET appendfsync | tail -n 1)" = always ]
  export STOP="$BATS_TEST_TMPDIR/stop"
  shared=$(sessgatectl --store "$STORE" create --data '{"v":0,"w":"shared"}')
  W="$BATS_TEST_TMPDIR/w"
  writers=("$W.py1" "$W.py2" "$W.ctl1" "$W.ctl2")
  pids=()
  for w in py1 py2; do
    spawn "$W.$w.out" py_writer "$w" "$W.$w" "$shared"
    pids+=("$spawned")
  done
  for w in ctl1 ctl2; do
    spawn "$W.$w.out" ctl_writer "$w" "$W.$w"
    pids+=("$spawned")
  done
  t_start=$(now_us)
  wait_acks 15 20 "$t_start" "${writers[@]}"

  # Mid-run: every writer is writing.  No shutdown, no goodbye.
  redis_kill
  t_dead=$(now_us)
  # Down for about a second; a fresh sessgatectl is refused too: exit 3,
  # nothing on stdout (no id of a session that does not exist), one line
  # naming the URI and the fix.
  run -3 --separate-stderr sessgatectl --store "$STORE" create
  [ -z "$output" ] || fail "create printed '$output' with Redis down"
  [[ "$stderr" == "sessgatectl: store $STORE: cannot connect to Redis: "*"(start redis-server or fix the URI)" ]] ||
    fail "stderr: $stderr"
  run -3 --separate-stderr sessgatectl --store "$STORE" get "$shared"
  [[ "$stderr" == "sessgatectl: store $STORE: "* ]] || fail "stderr: $stderr"
  sleep 1
  t_restart=$(now_us)
  redis_up
  t_up=$(now_us)
  # The same processes, the same handles: writing again.
  wait_acks 10 15 "$t_up" "${writers[@]}"
  touch "$STOP"
  wait_pids 30 "${pids[@]}"

  # No false success: no call that began after the server was dead and
  # ended before the restart began can have succeeded.  Every writer saw
  # errors in that window, and every error names the URI.
  false_ok=0 down_errs=0
  for w in "${writers[@]}"; do
    f=$(awk -v d="$t_dead" -v r="$t_restart" '$3 == "ok" && $1 > d && $2 < r' "$w.ops" | wc -l)
    e=$(awk -v d="$t_dead" -v r="$t_restart" '$3 == "err" && $1 > d && $2 < r' "$w.ops" | wc -l)
    [ "$f" -eq 0 ] || fail "${w##*/}: $f call(s) succeeded while Redis was down"
    [ "$e" -ge 1 ] || fail "${w##*/}: no error while Redis was down"
    false_ok=$((false_ok + f)) down_errs=$((down_errs + e))
    bad=$(awk '$3 == "err"' "$w.ops" | grep -vF "store $STORE: " | head -n 1)
    [ -z "$bad" ] || fail "${w##*/}: an error that does not name the URI: $bad"
  done
  # sessgatectl exits 3 (store error) on every failed call, never 1 or 0.
  bad=$(awk '$3 == "err" && $4 != 3' "$W.ctl1.ops" "$W.ctl2.ops" | head -n 1)
  [ -z "$bad" ] || fail "sessgatectl failed with another exit status: $bad"
  # The Python errors are StoreError (SG_ESTORE), not a lock timeout.
  classes=$(awk '$3 == "err" { print $4 }' "$W.py1.ops" "$W.py2.ops" | sort | uniq -c | tr -s ' \n' ' ')

  # Every acknowledged write is in the restarted server, with its value or
  # a later one (verify: missing=0 regressed=0): the AOF had it on disk
  # before Redis answered.
  acked=$(cat "${writers[@]/%/.ack}" | wc -l)
  run -0 "$TOOLS/verify" "$STORE" "${writers[@]/%/.ack}"
  assert_output --regexp 'missing=0 regressed=0'
  summary=$output
  # The shared counter never went backwards: at least every increment of
  # it that was acknowledged, by whichever writer.
  max_shared=$(awk -v id="$shared" '$1 == id && $2 > m { m = $2 } END { print m + 0 }' "${writers[@]/%/.ack}")
  v=$("$SG_PYTHON" -c "$SG_PY_PRELUDE"'print(sessgate.Store(STORE).get(sys.argv[1], touch=False)["v"])' "$shared")
  [ "$v" -ge "$max_shared" ] || fail "shared counter at $v, acknowledged up to $max_shared"
  note "acked=$acked lost=0 false_success=$false_ok errors_while_down=$down_errs" \
       "down=$(( (t_restart - t_dead) / 1000 )) ms python_errors:${classes}shared=$v (acked max $max_shared)"
  note "verify: $summary"
}

@test "a lease held when Redis is killed does not lock writers out after the restart, and its old holder cannot write" {
  redis_up
  export HELD="$BATS_TEST_TMPDIR/held" GO="$BATS_TEST_TMPDIR/go"
  # A holder in the middle of an update() when the server dies: the lease
  # is in the AOF, its holder has lost its connection.
  spawn "$BATS_TEST_TMPDIR/holder" "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
st = sessgate.Store(STORE)
with st.locked():
    open(os.environ["HELD"], "w").close()
    while not os.path.exists(os.environ["GO"]):
        time.sleep(0.02)
    try:
        st.create(data={"old": 1})
        print("the old holder wrote")
    except sessgate.StoreError as e:
        print("refused:", e)'
  holder=$spawned
  for _ in $(seq 200); do [ -e "$HELD" ] && break; sleep 0.02; done
  [ -e "$HELD" ] || fail "the holder never took the lock"
  redis_kill
  redis_up
  [ "$(rcli EXISTS "p${BATS_TEST_NUMBER}:lock")" = 1 ] ||
    fail "the AOF did not keep the lease (the premise of this test)"
  # Another writer takes the lock at once: the lease of the earlier run of
  # the server is broken, not waited out (up to 30 s).
  run -0 "$TOOLS/lock_probe" "$STORE" 3000 create
  ms=$(field ms "${lines[0]}")
  [ "$ms" -lt 1500 ] || fail "waited $ms ms for a lease of a dead server"
  # The old holder, reconnected, is refused rather than writing unlocked.
  touch "$GO"
  wait_pids 10 "$holder"
  run cat "$BATS_TEST_TMPDIR/holder"
  assert_output --partial "refused: store $STORE: write refused: this process lost the lock lease"
  run -0 sessgatectl --store "$STORE" count
  assert_output 1
  [ "$(rcli EXISTS "p${BATS_TEST_NUMBER}:lock")" = 0 ]
}

@test "the gateway answers 503 while Redis is down, lets nothing through, creates nothing, and serves again after the restart" {
  load ../gateway/gateway
  redis_up
  id=$(sessgatectl --store "$STORE" create --user alice --data '{"k":1}')
  GW_SOCK="$BATS_TEST_TMPDIR/gw.sock" GW_ERR="$BATS_TEST_TMPDIR/gw.err"
  : > "$GW_ERR"
  # Two workers, two kept store handles; --anonymous would create a
  # session for a request without one, --policy session denies none.
  gw_start --mode auth --workers 2 --anonymous --policy session
  A=(-p REQUEST_METHOD=GET -p REQUEST_URI=/app)
  run -0 gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$id"
  assert_line "Status: 200 OK"
  assert_line "X-Session-Id: $id"

  redis_kill
  for i in 1 2 3 4 5 6; do
    run -0 gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$id"
    assert_line --index 0 "Status: 503 Service Unavailable"
    refute_line --partial "X-Session-"
    run -0 gw_req "${A[@]}"
    assert_line --index 0 "Status: 503 Service Unavailable"
    refute_line --partial "Set-Cookie"
    refute_line --partial "X-Session-"
    run -0 gw_req -r authorizer "${A[@]}" -p "HTTP_COOKIE=sessgate=$id"
    assert_line --index 0 "Status: 503 Service Unavailable"
    refute_line --partial "Variable-SESSION"
  done
  kill -0 "$GW_PID"
  grep -qF "store $STORE: " "$GW_ERR" || fail "the gateway logged no store error naming the URI"

  # Back, with the session (AOF), through the same gateway and workers.
  redis_up
  for i in 1 2 3 4 5 6; do
    run -0 gw_req "${A[@]}" -p "HTTP_COOKIE=sessgate=$id"
    assert_line "Status: 200 OK"
    assert_line "X-Session-Id: $id"
    assert_line "X-Session-User: alice"
  done
  run -0 gw_req "${A[@]}"
  assert_line "Status: 200 OK"
  assert_line "X-Session-New: 1"
  assert_line --regexp '^Set-Cookie: sessgate=[0-9a-f-]{36};'
  # Exactly the session from before and the one just created: none was
  # made while Redis was down.
  run -0 sessgatectl --store "$STORE" count
  assert_output 2
  kill -0 "$GW_PID"
  ! grep -E 'restarting|AddressSanitizer|runtime error:' "$GW_ERR" ||
    fail "a gateway worker died"
  note "gateway: 18 requests while down, all 503; 7 after the restart, all served"
}
