#!/usr/bin/env bats
# tests/store/redis.bats - the Redis backend, driven through the real tools.
#
# One real redis-server per file (unix socket in the file's tmpdir, no
# persistence), and a unique key prefix per test so tests never see each
# other's keys.  Everything above the store layer is unchanged, so the
# same sessgatectl, helper programs (tests/tools) and gateway that the GDBM
# suites use must just work when given a redis+unix: URI: that is the
# point of these tests.  Redis-specific behaviour is checked with
# redis-cli: sessions expire inside Redis (no purge), the exclusive lock is
# a lease key, and a restarted server is picked up by a handle kept open.
load ../helpers/common
load ../helpers/storesh
load store
# The binding test below runs the real interpreters: bindings.bash sets
# their module paths and, under SANITIZE=address, the ASan preload wrapper.
load ../bindings/bindings

REDIS_SOCK="$BATS_FILE_TMPDIR/redis.sock"
REDIS_PIDFILE="$BATS_FILE_TMPDIR/redis.pid"

# redis_start: start redis-server on the socket, PID in $REDIS_PIDFILE
# (kept out of stop_all's list: per-test teardowns must not stop it).
redis_start() {
  rm -f "$REDIS_SOCK"
  start_bg redis-server --port 0 --unixsocket "$REDIS_SOCK" \
    --dir "$BATS_FILE_TMPDIR" --save '' --appendonly no --daemonize no \
    --logfile "$BATS_FILE_TMPDIR/redis.log" > "$REDIS_PIDFILE"
  sed -i "/^$(cat "$REDIS_PIDFILE")\$/d" "$(sg_pidfile)"
  wait_for_socket "$REDIS_SOCK" 10
  local i
  for i in $(seq 100); do
    redis-cli -s "$REDIS_SOCK" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  cat "$BATS_FILE_TMPDIR/redis.log" >&2
  return 1
}

setup_file() {
  command -v redis-server >/dev/null || return 0
  redis_start
}

teardown_file() {
  [ -f "$REDIS_PIDFILE" ] && stop_pid "$(cat "$REDIS_PIDFILE")"
  rm -f "$REDIS_PIDFILE"
}

setup() {
  require_tool redis-server redis-cli
  PREFIX="t$BATS_TEST_NUMBER-$$-$RANDOM:"
  STORE="redis+unix:$REDIS_SOCK?prefix=$PREFIX"
}

teardown() {
  exec 5>&- 2>/dev/null || true
  stop_all
}

ctl() { sessgatectl --store "$STORE" "$@"; }
rcli() { redis-cli -s "$REDIS_SOCK" "$@"; }

UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

@test "sessgatectl create, get, set, rotate and delete work on a redis+unix: store" {
  run -0 ctl create --user alice --data '{"cart":[1]}'
  assert_output --regexp "$UUID_RE"
  id=$output
  # The record is a plain Redis string under the prefix.
  [ "$(rcli EXISTS "$PREFIX$id")" = 1 ]
  run -0 ctl get "$id"
  assert_output --partial '"user":"alice"'
  assert_output --partial '"data":{"cart":[1]}'
  run -0 ctl set "$id" '{"n":2}'
  run -0 ctl get "$id"
  assert_output --partial '"data":{"cart":[1],"n":2}'
  run -0 ctl rotate "$id"
  new=$output
  [ "$new" != "$id" ]
  # the old id resolves to the new one for the default grace (issue #12)
  run -0 ctl get "$id"
  assert_output --partial "\"id\":\"$new\""
  run -0 ctl get "$new"
  assert_output --partial '"n":2'
  [ "$(rcli EXISTS "$PREFIX$id")" = 0 ]
  run -0 ctl delete "$new"
  run -1 ctl delete "$new"
  run -1 ctl get "$new"
  [ "$(rcli EXISTS "$PREFIX$new")" = 0 ]
}

@test "list, count, per-user list, stats, export and import work, and prefixes keep stores apart" {
  ctl create --user alice >/dev/null
  ctl create --user alice >/dev/null
  ctl create --user bob --data '{"b":1}' >/dev/null
  ctl create >/dev/null
  run -0 ctl count
  assert_output 4
  run -0 ctl list --user alice
  [ "${#lines[@]}" -eq 2 ]
  run -0 ctl list
  [ "${#lines[@]}" -eq 4 ]
  run -0 ctl stats --walk
  assert_line "live: 4"
  assert_line "users: 2"
  assert_line --regexp '^writes: [1-9]'
  # Another prefix in the same database is another store.
  OTHER="redis+unix:$REDIS_SOCK?prefix=${PREFIX}other:"
  run -0 sessgatectl --store "$OTHER" count
  assert_output 0
  ctl export > "$BATS_TEST_TMPDIR/dump.jsonl"
  [ "$(wc -l < "$BATS_TEST_TMPDIR/dump.jsonl")" -eq 4 ]
  run -0 --separate-stderr sessgatectl --store "$OTHER" import < "$BATS_TEST_TMPDIR/dump.jsonl"
  assert_output 'imported 4, skipped 0 (expired), rejected 0'
  diff <(sort "$BATS_TEST_TMPDIR/dump.jsonl") <(sessgatectl --store "$OTHER" export | sort)
  run -0 sessgatectl --store "$OTHER" count --user alice
  assert_output 2
  run -0 ctl purge
  assert_output 0
  run -0 ctl check
}

@test "a database number in the URI selects that Redis database" {
  STORE="redis+unix:$REDIS_SOCK?db=3&prefix=$PREFIX&timeout_ms=500"
  run -0 ctl create
  id=$output
  [ "$(rcli -n 3 EXISTS "$PREFIX$id")" = 1 ]
  [ "$(rcli -n 0 EXISTS "$PREFIX$id")" = 0 ]
  run -0 ctl get "$id"
}

@test "session keys carry a Redis expiry at the end of their idle window; index keys have none" {
  run -0 ctl create --user alice --idle 600
  id=$output
  ttl=$(rcli PTTL "$PREFIX$id")
  [ "$ttl" -gt 590000 ] && [ "$ttl" -le 600000 ] || fail "PTTL $ttl, expected about 600000"
  [ "$(rcli PTTL "${PREFIX}uidx:alice")" = -1 ]
  # A session whose absolute lifetime ends first expires then.
  run -0 ctl create --ttl 100 --idle 600
  ttl=$(rcli PTTL "$PREFIX$output")
  [ "$ttl" -gt 90000 ] && [ "$ttl" -le 100000 ] || fail "PTTL $ttl, expected about 100000"
}

@test "a rotation's grace alias carries a Redis expiry at the end of its window" {
  export STORE
  run -0 "$SG_PYTHON" -c '
import os, sessgate
st = sessgate.Store(os.environ["STORE"], rotate_grace=30)
s = st.create(user="alice")
old = s.id
s.rotate()
print(old)'
  ttl=$(rcli PTTL "${PREFIX}alias:$output")
  [ "$ttl" -gt 28000 ] && [ "$ttl" -le 31000 ] || fail "PTTL $ttl, expected about 30000"
}

@test "a session with --idle 2 vanishes from Redis by itself, without purge" {
  # Times are whole seconds, so the key lives 1 to 2 s: with --idle 1 it
  # could be gone before the first EXISTS on a busy machine.
  run -0 ctl create --idle 2
  id=$output
  [ "$(rcli EXISTS "$PREFIX$id")" = 1 ] || fail "not in Redis right after create"
  for i in $(seq 100); do
    [ "$(rcli EXISTS "$PREFIX$id")" = 0 ] && break
    sleep 0.05
  done
  [ "$(rcli EXISTS "$PREFIX$id")" = 0 ] || fail "still in Redis after 5 s"
  run -1 ctl get "$id"
  run -0 ctl purge
  assert_output 0
}

@test "no backend parses a session record: the expiry comes from the layer above (backend.h)" {
  # Issue #18: a second copy of the liveness rule in a backend drifts from
  # store.c's.  The backends must not call the record parser at all.
  local o
  for o in backend_redis backend_gdbm; do
    [ -f "$SG_BUILDDIR/libcore/$o.o" ] || skip "no $o.o in the build directory"
    run -0 nm -u "$SG_BUILDDIR/libcore/$o.o"
    refute_output --partial sgi_record_parse
  done
}

@test "eight processes doing 250 atomic increments each leave the counter at exactly 2000" {
  id=$("$TOOLS/counter" init "$STORE")
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  v0=$(field version "$output")
  pids=()
  for i in $(seq 8); do
    spawn "$BATS_TEST_TMPDIR/incr.$i" "$TOOLS/counter" incr "$STORE" "$id" 250
    pids+=("$spawned")
  done
  wait_pids 120 "${pids[@]}"
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  assert_output --regexp '^n=2000 '
  [ "$(field version "$output")" -eq $((v0 + 2000)) ]
  # Every holder released its lease.
  [ "$(rcli EXISTS "${PREFIX}lock")" = 0 ]
}

@test "a save from a copy loaded before another save fails with a conflict and keeps the first" {
  id=$("$TOOLS/counter" init "$STORE")
  run -0 --separate-stderr "$TOOLS/counter" stale "$STORE" "$id"
  assert_line --index 0 "first=0 second=3"
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  assert_output --regexp '^n=111 '
}

@test "load-modify-save loops in four processes retry their conflicts and lose no save" {
  id=$("$TOOLS/counter" init "$STORE")
  pids=()
  for i in 1 2 3 4; do
    spawn "$BATS_TEST_TMPDIR/cas.$i" "$TOOLS/counter" cas "$STORE" "$id" 250
    pids+=("$spawned")
  done
  wait_pids 120 "${pids[@]}"
  run -0 "$TOOLS/counter" get "$STORE" "$id"
  assert_output --regexp '^n=1000 '
}


@test "a held lease makes writers time out after the configured 300 ms with the standard message" {
  id=$(ctl create)
  hold_lease 10000
  [ "$(rcli EXISTS "${PREFIX}lock")" = 1 ]
  run -5 "$TOOLS/lock_probe" "$STORE" 300 create
  ms=$(field ms "${lines[0]}")
  [ "$ms" -ge 250 ] && [ "$ms" -le 2000 ] || fail "waited $ms ms"
  run -3 --separate-stderr sessgatectl --lock-timeout 300 --store "$STORE" set "$id" '{"a":1}'
  [[ "$stderr" =~ "store $STORE: lock timeout after 300 ms (another process holds ${PREFIX}lock; raise --lock-timeout)" ]] ||
    fail "unexpected message: $stderr"
  # Readers need no lock in Redis: a get still answers at once.
  run -0 ctl get "$id"
}

@test "a waiter gets the lease as soon as the holder releases it" {
  hold_lease 500
  run -0 "$TOOLS/lock_probe" "$STORE" 5000 create
  ms=$(field ms "${lines[0]}")
  [ "$ms" -le 3000 ] || fail "waited $ms ms"
}

@test "a killed lease holder cannot block others forever: the lease expires" {
  hold_lease 60000
  kill -KILL "$HOLDER"
  ttl=$(rcli PTTL "${PREFIX}lock")
  [ "$ttl" -gt 0 ] && [ "$ttl" -le 30000 ] || fail "lock PTTL $ttl, expected a lease of at most 30 s"
  # Shorten the lease to see the expiry without a 30 s wait.
  rcli PEXPIRE "${PREFIX}lock" 200 >/dev/null
  run -0 "$TOOLS/lock_probe" "$STORE" 3000 create
}

@test "URI mistakes are usage errors naming the URI; a server that is down is a store error naming it" {
  run -2 --separate-stderr sessgatectl --store "redis://127.0.0.1:99999/0" count
  [[ "$stderr" == *"store redis://127.0.0.1:99999/0: port must be 1..65535"* ]] || fail "$stderr"
  run -2 --separate-stderr sessgatectl --store "redis+unix:$REDIS_SOCK?colour=red" count
  [[ "$stderr" == *"unknown query parameter 'colour'"* ]] || fail "$stderr"
  run -2 --separate-stderr sessgatectl --store "redis+unix:$REDIS_SOCK?db=-1" count
  [[ "$stderr" == *"db must be"* ]] || fail "$stderr"
  run -2 --separate-stderr sessgatectl --store "redis+unix:relative.sock" count
  [[ "$stderr" == *"absolute socket path"* ]] || fail "$stderr"
  run -3 --separate-stderr sessgatectl --store "redis+unix:$BATS_TEST_TMPDIR/none.sock" create
  [ -z "$output" ]
  [[ "$stderr" == "sessgatectl: store redis+unix:$BATS_TEST_TMPDIR/none.sock: cannot connect to Redis: "*"(start redis-server or fix the URI)" ]] ||
    fail "$stderr"
}

@test "the gateway in auth mode answers for a session sessgatectl created in Redis" {
  load ../gateway/gateway
  id=$(ctl create --user alice --data '{"k":1}')
  GW_SOCK="$BATS_TEST_TMPDIR/gw.sock"
  GW_ERR="$BATS_TEST_TMPDIR/gw.err"
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --mode auth \
    2>>"$GW_ERR" > "$BATS_TEST_TMPDIR/gw.pid"
  wait_for_socket "$GW_SOCK" 5
  run -0 gw_req -p REQUEST_METHOD=GET -p REQUEST_URI=/app -p "HTTP_COOKIE=sessgate=$id"
  assert_line "Status: 200 OK"
  assert_line "X-Session-Id: $id"
  assert_line "X-Session-User: alice"
  assert_line 'X-Session-Data: {"k":1}'
  # A deleted session is gone for the gateway at once.
  ctl delete "$id"
  run gw_req -p REQUEST_METHOD=GET -p REQUEST_URI=/app -p "HTTP_COOKIE=sessgate=$id"
  refute_line "X-Session-Id: $id"
}

@test "the C unit tests of the Redis backend pass against this server" {
  run -0 "${sg_valgrind[@]}" "$SG_BUILDDIR/tests/unit/test_redis" "$BATS_TEST_TMPDIR" "$REDIS_SOCK" "$PREFIX"
  refute_output --partial 'not ok'
}

@test "the Python and Lua bindings open a redis+unix: URI and update() is atomic across processes" {
  export STORE
  run -0 "$SG_PYTHON" -c '
import os, sessgate
store = sessgate.Store(os.environ["STORE"])
s = store.create(user="alice", data={"n": 0})
print(s.id)'
  export ID=$output
  pids=()
  for i in 1 2; do
    spawn "$BATS_TEST_TMPDIR/py.$i" "$SG_PYTHON" -c '
import os, sys, sessgate
store = sessgate.Store(os.environ["STORE"])
for _ in range(100):
    with store.update(sys.argv[1]) as s:
        s["n"] = s["n"] + 1' "$ID"
    pids+=("$spawned")
    spawn "$BATS_TEST_TMPDIR/lua.$i" "$SG_LUA" -e '
local sg = require "sessgate"
local store = assert(sg.open(os.getenv("STORE")))
for _ = 1, 100 do
  assert(store:update(os.getenv("ID"), function(s) s.data.n = s.data.n + 1 end))
end'
    pids+=("$spawned")
  done
  wait_pids 60 "${pids[@]}"
  run -0 ctl get "$ID"
  assert_output --partial '"data":{"n":400}'
}

@test "a server that stops answering is an error after timeout_ms, never a hang" {
  id=$(ctl create)
  pid=$(cat "$REDIS_PIDFILE")
  # SIGSTOP: the kernel still accepts connections, nothing answers.
  kill -STOP "$pid"
  t0=$(date +%s%N)
  run --separate-stderr sessgatectl --store "$STORE&timeout_ms=200" get "$id"
  t1=$(date +%s%N)
  kill -CONT "$pid"
  [ "$status" -eq 3 ] || fail "exit $status: $stderr"
  ms=$(( (t1 - t0) / 1000000 ))
  [ "$ms" -lt 3000 ] || fail "took $ms ms"
  [[ "$stderr" == "sessgatectl: store $STORE&timeout_ms=200: "* ]] || fail "$stderr"
  run -0 ctl get "$id"
}



# Last in the file: it stops and restarts the server the others share.
@test "with Redis killed every command fails naming the URI; after a restart a kept handle works again" {
  a_start
  a 'create {"n":1}'
  [[ "$A" == "ok "* ]] || fail "$A"
  id=${A#ok }
  # KILL, not TERM: no goodbye to clients.  Writes to the dead socket
  # raise SIGPIPE, which the library must not let kill storesh.
  kill -KILL "$(cat "$REDIS_PIDFILE")"
  for i in $(seq 100); do
    rcli ping >/dev/null 2>&1 || break
    sleep 0.05
  done
  ! rcli ping >/dev/null 2>&1 || fail "redis-server still answers"
  # Never a false success: no id printed, exit 3, one line naming the URI.
  run -3 --separate-stderr ctl create
  [ -z "$output" ]
  [[ "$stderr" == "sessgatectl: store $STORE: "* ]] || fail "$stderr"
  run -3 --separate-stderr ctl get "$id"
  [[ "$stderr" == "sessgatectl: store $STORE: "* ]] || fail "$stderr"
  a get "$id"
  [[ "$A" == "err store error: store $STORE: "* ]] || fail "$A"
  a 'create {"n":2}'
  [[ "$A" == "err store error: store $STORE: "* ]] || fail "$A"
  redis_start
  # The same handle reconnects at its next lock(); the old data is gone
  # with the server (this one has no persistence).
  a count
  [ "$A" = "ok 0" ] || fail "$A"
  a 'create {"n":3}'
  [[ "$A" == "ok "* ]] || fail "$A"
  id=${A#ok }
  a get "$id"
  [[ "$A" == "ok 1 "*'"n":3'* ]] || fail "$A"
  run -0 ctl get "$id"
  # A restart the handle never saw fail: its very next read and write
  # reconnect and succeed (reads are repeated once, the lock retries).
  stop_pid "$(cat "$REDIS_PIDFILE")"
  redis_start
  a count
  [ "$A" = "ok 0" ] || fail "$A"
  stop_pid "$(cat "$REDIS_PIDFILE")"
  redis_start
  a 'create {"n":4}'
  [[ "$A" == "ok "* ]] || fail "$A"
}
