#!/usr/bin/env bats
# O(1) stats (issue 16): a store keeps its figures as it is written
# (by default; GDBM: libcore/counters.c, in the lock page; Redis: the write
# scripts, in sorted set PREFIXexp and hashes PREFIXucnt / PREFIXfigs), so
# `sessgatectl stats` reads no record; the figures are right after every
# kind of write, and after kill -9 they are either right or not used
# (stats walks and says so) until check --repair recounts.  Redis expires
# records inside the server: its figures count those as gone at once.
# backends: gdbm redis
load ../helpers/common
load ../cli/cli
load ../bindings/bindings

TOOLS="$SG_BUILDDIR/tests/tools"

# Every store of this file keeps its figures: the default.
setup() {
  STORE=$(make_store)
}

# fig KEY [ARGS]: one figure of `stats ARGS`
fig() { local k=$1; shift; ctl stats "$@" | sed -n "s/^$k: //p"; }

# same_as_walk: the kept figures equal a full read of the store (no
# expired records around, so live == sessions).
same_as_walk() {
  local kept walked
  kept=$(ctl stats | grep -E '^(sessions|users|anonymous):' | sort)
  walked=$(ctl stats --walk | grep -E '^(live|users|anonymous):' | sed 's/^live:/sessions:/' | sort)
  [ "$kept" = "$walked" ] || fail "kept: $kept / walked: $walked"
}

rec() {
  local now user
  now=$(date +%s)
  user=$([ -n "$2" ] && printf '"%s"' "$2" || echo null)
  printf '{"id":"%s","user":%s,"created":%d,"accessed":%d,"expires":%d,"idle":%d,"version":1,"data":{}}\n' \
    "$1" "$user" "$now" "$now" $((now + 86400)) 3600
}

@test "stats: kept figures after creates, deletes, rotations, imports and a cap" {
  for u in ann ann bob; do ctl create --user "$u" > /dev/null; done
  a=$(ctl create)
  ctl create > /dev/null
  ctl delete "$a"
  b=$(ctl create --user cid)
  ctl rotate "$b" > /dev/null
  ctl set "$(ctl create --user dee)" '{"x":1}'
  {
    rec 11111111-2222-4333-8444-000000000001 eve
    rec 11111111-2222-4333-8444-000000000002 ''
  } | ctl import > /dev/null
  # an import that replaces a session: same id, now another user
  rec 11111111-2222-4333-8444-000000000001 fay | ctl import > /dev/null
  for i in 1 2 3; do ctl --max-per-user 2 create --user gus > /dev/null; done
  run -0 ctl stats
  assert_line 'counted: kept'
  assert_line 'sessions: 10'
  assert_line 'anonymous: 2'
  assert_line 'users: 6'
  same_as_walk
}

# bats test_tags=gdbm-only
@test "stats: expired records removed by purge are counted, and leave the figures" {
  ctl create --idle 1 > /dev/null
  ctl create --user hal --ttl 1 > /dev/null
  ctl create --user hal > /dev/null
  sleep 2.1
  [ "$(fig sessions)" = 3 ]
  [ "$(ctl purge)" = 2 ]
  run -0 ctl stats
  assert_line 'sessions: 1'
  assert_line 'users: 1'
  assert_line 'anonymous: 0'
  assert_line 'expired_removed: 2'
  assert_line 'counted: kept'
}

@test "stats after kill -9 of writers: right or not used; check --repair recounts" {
  for u in 1 2 3; do ctl create --user "u$u" > /dev/null; done
  for cycle in $(seq 8); do
    "$TOOLS/storm" "$STORE" "$BATS_TEST_TMPDIR/ack" 2>/dev/null 3>&- </dev/null &
    pid=$!
    sleep "$(printf '0.%03d' $((RANDOM % 60 + 10)))"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    same_as_walk            # kept or walked, never wrong
  done
  run -0 ctl check --repair
  run -0 ctl stats
  assert_line 'counted: kept'
  same_as_walk
}

# bats test_tags=gdbm-only
@test "stale figures stay unused through later writes until check --repair" {
  ctl create --user ivy > /dev/null
  [ "$(fig counted)" = kept ]
  # a lock file made anew (deleted by a cleaner): its figures area is
  # empty, and the data it describes is older than it: not trusted
  rm "$STORE.lock"
  ctl create > /dev/null
  ctl create --user jon > /dev/null
  run -0 ctl stats
  assert_line 'counted: walk'
  assert_line 'sessions: 3'
  ctl check --repair > /dev/null
  run -0 ctl stats
  assert_line 'counted: kept'
  assert_line 'sessions: 3'
  assert_line 'users: 2'
  assert_line 'anonymous: 1'
}

@test "stats --json carries the kept figures and how they were counted" {
  ctl create --user kim > /dev/null
  run -0 ctl stats --json
  run "$SG_PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
print(o["sessions"], o["users"], o["anonymous"], o["counted"] in ("kept", "walk"))' "$output"
  assert_output "1 1 0 True"
}

@test "stats on 20,000 sessions reads no record (kept figures)" {
  "$TOOLS/mkstore" "$STORE" 20000 100 > /dev/null
  run -0 ctl stats
  assert_line 'sessions: 20000'
  assert_line 'users: 100'
  assert_line 'counted: kept'
}

@test "figures are kept by default: --keep off stops, --keep on counts again" {
  S2=$(make_store plain)
  sessgatectl --store "$S2" create --user lee > /dev/null
  sessgatectl --store "$S2" create > /dev/null
  run -0 sessgatectl --store "$S2" stats
  assert_line 'sessions: 2'
  assert_line 'users: 1'
  assert_line 'counted: kept'
  run -0 sessgatectl --store "$S2" stats --keep off
  assert_line 'counted: walk'
  assert_line 'sessions: 2'
  sessgatectl --store "$S2" create --user lee > /dev/null
  [ "$(sessgatectl --store "$S2" stats | sed -n 's/^counted: //p')" = walk ]
  run -0 sessgatectl --store "$S2" stats --keep on
  assert_line 'counted: kept'
  assert_line 'sessions: 3'
  assert_line 'users: 1'
  sessgatectl --store "$S2" create --user mo > /dev/null
  run -0 sessgatectl --store "$S2" stats
  assert_line 'counted: kept'
  assert_line 'users: 2'
}

# bats test_tags=gdbm-only
@test "a compaction (which moves the write counter, not the records) keeps the figures" {
  "$TOOLS/mkstore" "$STORE" 2000 20 > /dev/null
  ctl compact > /dev/null
  run -0 ctl stats
  assert_line 'counted: kept'
  assert_line 'sessions: 2000'
  assert_line 'users: 20'
}

# --- Redis: the write scripts keep the figures (backend_redis.c "figures")

redis() { redis-cli -s "$SG_TEST_REDIS_SOCK" "$@"; }

@test "Redis: sessions Redis expires leave the figures at once, as do records past their end; purge moves no figure again" {
  on_redis || skip "n/a on GDBM: its records stay until purge (test above)"
  prefix=${STORE#*prefix=}
  ctl create --idle 3 > /dev/null
  ctl create --user hal --idle 3 > /dev/null
  ctl create --user hal > /dev/null
  ctl create --user ida --idle 3 > /dev/null
  last=$(ctl create --user joe --idle 3)
  # one record outlives its end inside Redis (the server's clock behind ours)
  [ "$(redis PERSIST "$prefix$last")" = 1 ]
  [ "$(fig sessions)" = 5 ]
  sleep 4.1
  # dropped by Redis itself, unseen by any write: read-only stats counts
  # them gone at once, and so the one past its end that Redis still holds
  run -0 ctl stats
  assert_line 'sessions: 1'
  assert_line 'users: 1'
  assert_line 'anonymous: 0'
  assert_line 'expired_removed: 4'
  assert_line 'counted: kept'
  same_as_walk
  # purge removes the record that outlived its end: no figure moves again
  [ "$(ctl purge)" = 1 ]
  run -0 ctl stats
  assert_line 'sessions: 1'
  assert_line 'users: 1'
  assert_line 'expired_removed: 4'
  assert_line 'counted: kept'
  same_as_walk
  # a create trims the entries of dropped sessions; the figures stay
  ctl create > /dev/null
  [ "$(redis ZCARD "${prefix}exp")" = 2 ]
  run -0 ctl stats
  assert_line 'sessions: 2'
  assert_line 'expired_removed: 4'
}

@test "Redis: a writer that does not keep the figures (an older version) makes them unused until check --repair" {
  on_redis || skip "n/a on GDBM: see the lock file test above"
  prefix=${STORE#*prefix=}
  ctl create --user kay > /dev/null
  ctl create > /dev/null
  [ "$(fig counted)" = kept ]
  # an older sessgate writes a session and counts the write, moving no
  # figure: made here as this version writes one, with its figures undone
  id=$(ctl create --user lou)
  redis ZREM "${prefix}exp" "${id}lou" > /dev/null
  redis HDEL "${prefix}ucnt" lou > /dev/null
  redis HINCRBY "${prefix}figs" at -1 > /dev/null
  run -0 ctl stats
  assert_line 'counted: walk'
  ctl create --user kay > /dev/null
  [ "$(fig counted)" = walk ]
  ctl check --repair > /dev/null
  run -0 ctl stats
  assert_line 'counted: kept'
  assert_line 'sessions: 4'
  assert_line 'users: 2'
  assert_line 'anonymous: 1'
}

@test "Redis: figures stay right under concurrent creates, logins, rotations and deletes from many processes" {
  on_redis || skip "n/a on GDBM: its writes take the lock file"
  require_bindings
  export STORE
  pids=()
  for i in $(seq 6); do
    "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
import random
st = sessgate.Store(STORE, max_per_user=3, lock_timeout_ms=20000)
mine = []
def step():
    op = random.random()
    if op < 0.4 or not mine:
        mine.append(st.create(user=random.choice([None, "a", "b", "c"])).id)
    elif op < 0.6:
        s = st.get(random.choice(mine))
        if s: s.login(random.choice(["a", "b", "d"])); mine.append(s.id)
    elif op < 0.8:
        s = st.get(random.choice(mine))
        if s: s.rotate(); mine.append(s.id)
    else:
        st.delete(mine.pop(random.randrange(len(mine))))
for n in range(60):
    try: step()
    except sessgate.Error: pass   # evicted by the cap in another process' 3>&- &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  run -0 ctl stats
  assert_line 'counted: kept'
  same_as_walk
}
