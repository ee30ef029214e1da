#!/usr/bin/env bats
# tests/store/index.bats - the per-user index costs O(1) per create and
# delete, on both backends, and a store whose index is in the old format
# (one JSON array of every id under "user:NAME", rewritten whole by each
# create: quadratic in a user's session count) still works and is
# converted, on the next write to that user or by check --repair.
# backends: gdbm redis
load ../helpers/common
load store

setup() {
  STORE=$(make_store)
}

teardown() {
  stop_all
}

ctl() { sessgatectl --store "$STORE" "$@"; }

# put_raw KEY VALUE: write a key behind the library's back, as the old
# version of the library wrote its index.
put_raw() {
  if on_redis; then
    redis-cli -s "$SG_TEST_REDIS_SOCK" SET "${STORE##*prefix=}$1" "$2" >/dev/null
  else
    "$TOOLS/gdbm_put" "$STORE" "$1" "$2"
  fi
}

# has_raw KEY: whether KEY exists, read behind the library's back.
has_raw() {
  if on_redis; then
    [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" EXISTS "${STORE##*prefix=}$1")" = 1 ]
  else
    "$TOOLS/gdbm_get" "$STORE" "$1" >/dev/null
  fi
}

# old_store USER N: make $STORE a store in the old index format holding N
# live sessions of USER (records written as the library writes them, made
# in a scratch store) plus a stale id in the array; ids in $OLD_IDS.
old_store() {
  local user=$1 n=$2 scratch i id ids='' rec
  scratch=$(make_store scratch)
  OLD_IDS=()
  for ((i = 0; i < n; i++)); do
    id=$(sessgatectl --store "$scratch" create --user "$user" --data "{\"n\":$i}")
    rec=$(sessgatectl --store "$scratch" get "$id")
    put_raw "$id" "$rec"
    OLD_IDS+=("$id")
    ids+="\"$id\","
  done
  # An id whose session is long gone: the old index was a superset too.
  put_raw "user:$user" "[${ids}\"00000000-0000-4000-8000-000000000000\"]"
  # Opened once writable (as the old version's first process did), which
  # creates PATH.lock; a purge of nothing writes nothing.
  run -0 ctl purge
  assert_output 0
}

@test "each session of a user is listed once, and a delete takes it out of the index" {
  a=$(ctl create --user alice); b=$(ctl create --user alice); c=$(ctl create --user alice)
  ctl create --user bob >/dev/null
  run -0 ctl list --user alice
  assert_equal "${#lines[@]}" 3
  run -0 ctl delete "$b"
  run -0 ctl count --user alice
  assert_output 2
  run -0 ctl list --user alice
  assert_line --partial "$a"
  assert_line --partial "$c"
  refute_line --partial "$b"
  run -0 ctl rotate "$a"
  new=$output
  run -0 ctl list --user alice
  assert_equal "${#lines[@]}" 2
  assert_line --partial "$new"
  refute_line --partial "$a"
}

# bats test_tags=gdbm-only
@test "a create and a delete for a user with 2,000 sessions log no more than for a user with one" {
  run -0 "$TOOLS/mkstore" "$STORE" 1 1        # user u0: one session
  logged() {  # bytes the log grows by over five creates and five deletes of u0
    local before after i ids=()
    before=$(stat -c %s "$STORE.wal")
    for i in 1 2 3 4 5; do ids+=("$(ctl create --user u0)"); done
    for i in "${ids[@]}"; do ctl delete "$i"; done
    after=$(stat -c %s "$STORE.wal")
    [ "$after" -gt "$before" ] || fail "the log was cut meanwhile ($before -> $after)"
    echo $((after - before))
  }
  small=$(logged)
  run -0 "$TOOLS/mkstore" "$STORE" 2000 1     # u0 now has 2,001
  big=$(logged)
  note "log bytes for 5 creates + 5 deletes: user with 1 session $small, with 2,001: $big"
  # The old format rewrote the whole id array (2,001 x 39 bytes) each time.
  [ "$big" -le $((small + small / 10)) ] || fail "$big bytes with 2,001 sessions, $small with 1"
}

@test "a store with an old-format index: the index is read, converted on the next create, and caps still hold" {
  old_store carol 3
  run -0 ctl count --user carol
  assert_output 3
  run -0 ctl list --user carol
  for id in "${OLD_IDS[@]}"; do assert_line --partial "$id"; done
  run -0 ctl create --user carol
  fourth=$output
  ! has_raw "user:carol" || fail "the old index key is still there after a write"
  run -0 ctl list --user carol
  assert_equal "${#lines[@]}" 4
  assert_line --partial "$fourth"
  for id in "${OLD_IDS[@]}"; do assert_line --partial "$id"; done
  # The cap counts every converted session: two evicted, the new one kept.
  run -0 ctl --max-per-user 3 create --user carol
  fifth=$output
  run -0 ctl count --user carol
  assert_output 3
  run -0 ctl list --user carol
  assert_line --partial "$fifth"
}

@test "check --repair converts an old-format index and drops ids that are not the user's" {
  old_store dave 2
  other=$(ctl create --user erin)
  put_raw "user:frank" "[\"$other\"]"     # erin's session in frank's old index
  run -0 ctl check --repair
  ! has_raw "user:dave" || fail "user:dave survived check --repair"
  ! has_raw "user:frank" || fail "user:frank survived check --repair"
  run -0 ctl list --user dave
  assert_equal "${#lines[@]}" 2
  for id in "${OLD_IDS[@]}"; do assert_line --partial "$id"; done
  run -0 ctl count --user frank
  assert_output 0
  run -0 ctl stats --walk
  assert_line 'users: 2'
  run -0 ctl delete "${OLD_IDS[0]}"
  run -0 ctl count --user dave
  assert_output 1
}

@test "a delete of a session in an old-format index converts it and keeps the others" {
  old_store gina 3
  run -0 ctl delete "${OLD_IDS[1]}"
  ! has_raw "user:gina" || fail "user:gina survived the delete"
  run -0 ctl list --user gina
  assert_equal "${#lines[@]}" 2
  assert_line --partial "${OLD_IDS[0]}"
  assert_line --partial "${OLD_IDS[2]}"
}

# bats test_tags=gdbm-only
@test "deletes compact a user's index: it stays within about twice the user's sessions" {
  ids=()
  for i in $(seq 40); do ids+=("$(ctl create --user hank)"); done
  "$TOOLS/gdbm_get" "$STORE" "us:0:39:hank" >/dev/null || fail "no slot 39 after 40 creates"
  for i in $(seq 0 34); do ctl delete "${ids[$i]}"; done
  # More than half the slots went stale: rewritten as a new generation
  # holding the 5 left, the old slots deleted.
  run -0 "$TOOLS/gdbm_get" "$STORE" "ugen:hank"
  gen=${output%% *}
  [ "$gen" -ge 1 ] || fail "never compacted: ugen:hank is '$output'"
  ! "$TOOLS/gdbm_get" "$STORE" "us:0:39:hank" >/dev/null || fail "old slots left behind"
  ! "$TOOLS/gdbm_get" "$STORE" "us:$gen:20:hank" >/dev/null || fail "the new generation is too long"
  run -0 ctl count --user hank
  assert_output 5
  run -0 ctl list --user hank
  for i in $(seq 35 39); do assert_line --partial "${ids[$i]}"; done
}

@test "a user whose every session is deleted leaves no index key behind" {
  local ids=() i
  for i in 1 2 3; do ids+=("$(ctl create --user gone)"); done
  for i in "${ids[@]}"; do run -0 ctl delete "$i"; done
  run -0 ctl list --user gone
  assert_output ''
  if on_redis; then
    ! has_raw "uidx:gone" || fail "uidx:gone left behind"
  else
    # The array's generation record and every slot of the generations
    # it went through: a store must not keep a key per user it ever saw.
    ! has_raw "ugen:gone" || fail "ugen:gone left behind"
    for k in us:0:0:gone us:0:1:gone us:0:2:gone us:1:0:gone us:2:0:gone; do
      ! has_raw "$k" || fail "$k left behind"
    done
  fi
  # And a new session for the same user is indexed again.
  id=$(ctl create --user gone)
  run -0 ctl list --user gone
  assert_output --partial "$id"
}

# check --repair rebuilt every user's index even when it was right: a put
# and a delete per session, a log the size of the store written under
# writers' feet (at 200,000 sessions: 18 MB of log and checkpoint builds
# that kept a writer waiting 0.9 s, a reader 1.4 s).  An index that holds
# exactly the user's sessions is left as it is.
# bats test_tags=gdbm-only
@test "check --repair of a sound store with per-user indexes writes nothing to the log" {
  run -0 "$TOOLS/mkstore" "$STORE" 2000 20
  run -0 sessgatectl --store "$STORE" check --repair
  local wal
  wal=$(stat -c %s "$STORE.wal")
  [ "$wal" -lt 8192 ] || fail "the repair of a sound store logged $wal bytes"
  run -0 sessgatectl --store "$STORE" count --user u7
  assert_output 100
}
