#!/usr/bin/env bats
# tests/store/writes.bats - single-session writes from many processes
# (issue #13).  On Redis each create, save, rotate and delete is one
# server-side script with no store-wide lease; the per-user index and the
# user cap must still come out exact when many processes race.  The same
# tests hold for GDBM, whose writes take the lock file.
# backends: gdbm redis
load ../helpers/common
load store
load ../bindings/bindings

setup() {
  require_bindings
  STORE=$(make_store)
  export STORE
}

teardown() {
  stop_all
}

@test "eight processes creating sessions for one capped user end at exactly the cap, index included" {
  pids=()
  for i in $(seq 8); do
    spawn "$BATS_TEST_TMPDIR/create.$i" "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
st = sessgate.Store(STORE, max_per_user=5, lock_timeout_ms=20000)
for _ in range(25):
    st.create(user="capped", data={"p": os.getpid()})
other = st.create()'
    pids+=("$spawned")
  done
  wait_pids 120 "${pids[@]}"
  run -0 py '
st = sessgate.Store(STORE)
print(st.count(user="capped"), len(st.ids(user="capped")), st.count())'
  assert_output "5 5 13"
  if on_redis; then
    prefix=${STORE#*prefix=}
    [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" SCARD "${prefix}uidx:capped")" = 5 ]
  fi
}

@test "logins of many sessions into one capped user from four processes end at exactly the cap" {
  pids=()
  for i in 1 2 3 4; do
    spawn "$BATS_TEST_TMPDIR/login.$i" "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
st = sessgate.Store(STORE, max_per_user=3, lock_timeout_ms=20000)
for _ in range(10):
    s = st.create()
    s.login("bob")'
    pids+=("$spawned")
  done
  wait_pids 120 "${pids[@]}"
  run -0 py '
st = sessgate.Store(STORE)
print(st.count(user="bob"), len(st.ids(user="bob")), st.count())'
  assert_output "3 3 3"
}

@test "Redis: create, save, rotate, touch and delete of one session take no store-wide lease, one round trip each" {
  on_redis || skip "n/a on GDBM: its writes take the lock file"
  require_tool redis-cli
  prefix=${STORE#*prefix=}
  timeout 20 redis-cli -s "$SG_TEST_REDIS_SOCK" MONITOR > "$BATS_TEST_TMPDIR/monitor" 3>&- &
  mon=$!
  echo "$mon" >> "$(sg_pidfile)"
  for i in $(seq 100); do
    [ -s "$BATS_TEST_TMPDIR/monitor" ] && break
    sleep 0.05
  done
  run -0 py '
st = sessgate.Store(STORE, touch_interval=1)
s = st.create(user="alice", data={"n": 1})
s["n"] = 2; s.save()
s.rotate()
time.sleep(1.1)
assert st.get(s.id)["n"] == 2
st.delete(s.id)
print("done")'
  for i in $(seq 100); do
    grep -q '"EVALSHA"' "$BATS_TEST_TMPDIR/monitor" && [ "$(grep -c '"EVALSHA"' "$BATS_TEST_TMPDIR/monitor")" -ge 5 ] && break
    sleep 0.05
  done
  kill "$mon" 2>/dev/null || true
  # Commands the client sent (not those scripts ran: "[0 lua]").
  sent=$(grep -v '\[[0-9]* lua\]' "$BATS_TEST_TMPDIR/monitor" | grep -F "$prefix" || true)
  if grep -qiE '"SET" "[^"]*lock"' <<<"$sent"; then
    fail "a single-session write took the lease: $(grep -iE '"SET" "[^"]*lock"' <<<"$sent" | head -n 3)"
  fi
  # create, save, rotate, touch, delete: five scripts.
  [ "$(grep -c '"EVALSHA"' <<<"$sent")" -eq 5 ] || fail "EVALSHA calls: $(grep -c '"EVALSHA"' <<<"$sent")"
}
