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

@test "flash messages popped by six processes while one queues them: each shown exactly once" {
  sid=$(py 'print(sessgate.Store(STORE).create().id)')
  export SID=$sid
  pids=()
  for i in $(seq 6); do
    spawn "$BATS_TEST_TMPDIR/pop.$i" "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
st = sessgate.Store(STORE, lock_timeout_ms=20000)
got, done = [], os.path.join(os.environ["BATS_TEST_TMPDIR"], "queued")
while True:
    last = os.path.exists(done)
    msgs = st.get(os.environ["SID"]).pop_flashes()
    got += [m["message"] for m in msgs]
    if last and not msgs:
        break
print(" ".join(map(str, got)))'
    pids+=("$spawned")
  done
  run -0 py '
st = sessgate.Store(STORE, lock_timeout_ms=20000)
for i in range(120):
    st.update(os.environ["SID"], lambda s, i=i: s.flash(i))
    if i % 3 == 0:
        time.sleep(0.002)
open(os.path.join(os.environ["BATS_TEST_TMPDIR"], "queued"), "w").close()'
  wait_pids 120 "${pids[@]}"
  # every message once: none shown twice (two pops of one copy), none
  # lost (a pop's save over a message queued after its load)
  cat "$BATS_TEST_TMPDIR"/pop.? | tr ' ' '\n' | sed '/^$/d' | sort -n > "$BATS_TEST_TMPDIR/all"
  seq 0 119 > "$BATS_TEST_TMPDIR/want"
  diff "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/all" > "$BATS_TEST_TMPDIR/diff" ||
    fail "messages popped (< missing, > shown twice): $(grep '^[<>]' "$BATS_TEST_TMPDIR/diff" | head -n 10 | tr '\n' ' ')"
  # and more than one process got some (the pops did race)
  [ "$(grep -l '[0-9]' "$BATS_TEST_TMPDIR"/pop.? | wc -l)" -ge 2 ]
}

@test "Redis: a flash pop and the end of an expired session take no store-wide lease" {
  on_redis || skip "n/a on GDBM: its writes take the lock file"
  require_tool redis-cli
  prefix=${STORE#*prefix=}
  # A session whose record outlived its end inside Redis (the server's
  # clock behind ours, say): a get sees it expired and ends it for good.
  run -0 py '
st = sessgate.Store(STORE)
s = st.create(user="ann", idle_timeout=3)
f = st.create(user="bob"); f.flash("hi"); f.save()
print(s.id, f.id)'
  read -r old fl <<<"$output"
  [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" PERSIST "$prefix$old")" = 1 ]
  sleep 3.2
  timeout 20 redis-cli -s "$SG_TEST_REDIS_SOCK" MONITOR > "$BATS_TEST_TMPDIR/monitor" 3>&- &
  mon=$!
  echo "$mon" >> "$(sg_pidfile)"
  for i in $(seq 100); do
    [ -s "$BATS_TEST_TMPDIR/monitor" ] && break
    sleep 0.05
  done
  export OLD=$old FL=$fl
  run -0 py '
st = sessgate.Store(STORE)
print(st.get(os.environ["OLD"]), st.get(os.environ["FL"]).pop_flashes())'
  assert_output "None [{'message': 'hi', 'category': 'message'}]"
  for i in $(seq 100); do
    [ "$(grep -c '"EVALSHA"' "$BATS_TEST_TMPDIR/monitor")" -ge 2 ] && break
    sleep 0.05
  done
  kill "$mon" 2>/dev/null || true
  sent=$(grep -v '\[[0-9]* lua\]' "$BATS_TEST_TMPDIR/monitor" | grep -F "$prefix" || true)
  if grep -qiE '"SET" "[^"]*lock"' <<<"$sent"; then
    fail "took the lease: $(grep -iE '"SET" "[^"]*lock"' <<<"$sent" | head -n 3)"
  fi
  # the end (one script) and the pop (one script, the conditional save)
  [ "$(grep -c '"EVALSHA"' <<<"$sent")" -eq 2 ] || fail "EVALSHA calls: $(grep -c '"EVALSHA"' <<<"$sent"): $sent"
  # ended: gone from Redis and from ann's index
  [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" EXISTS "$prefix$old")" = 0 ]
  [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" SISMEMBER "${prefix}uidx:ann" "$old")" = 0 ]
  run -0 py 'print(sessgate.Store(STORE).get(os.environ["FL"]).pop_flashes())'
  assert_output "[]"
}
