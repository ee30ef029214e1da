#!/usr/bin/env bats
# tests/store/ownership.bats - no code path narrows the owner, group or
# mode of a store's existing files (DESIGN section 9).
#
# A deployment chowns the store to its service user (here nobody:nogroup)
# with mode 0660 or 0640 and then runs sessgatectl as root, or as another
# member of the group.  Every path that creates or replaces a store file
# (a write, the rebuild after a killed writer, check --repair with its
# checkpoint, import, a recreated PATH.lock, a store opened with or without
# --group) must leave every file with the owner, group and mode it had: a
# root-owned 0600 PATH.ckpt or rebuilt PATH locks the service out of its
# own store.  Not root, a process cannot give a file away: there the group
# and the mode must hold (the owner becomes the writer).
load ../helpers/common
load store

setup() {
  STORE="$BATS_TEST_TMPDIR/own/s.db"
  CTL="$SG_BUILDDIR/cli/sessgatectl"
  mkdir -p "$BATS_TEST_TMPDIR/own"
  # nobody must reach the test directory (x only) to reach a store in it.
  local d=$BATS_TEST_TMPDIR
  while [ "$d" != / ] && [ "$d" != "$(dirname "$BATS_RUN_TMPDIR")" ]; do
    chmod o+x "$d"
    d=$(dirname "$d")
  done
}

teardown() {
  stop_all
}

ctl() { "$CTL" --store "$STORE" "$@"; }

# raise_dirty: what a writer killed mid-change leaves (the dirty flag,
# offset 16 of the lock page): the next writer rebuilds PATH.
raise_dirty() {
  printf '\001\000\000\000' | dd of="$STORE.lock" bs=1 seek=16 conv=notrunc status=none
}

# assert_owned WHAT OWNER:GROUP MODE: every store file is so.
assert_owned() {
  local what=$1 want="$2 $3" f got
  for f in "$STORE" "$STORE.lock" "$STORE.wal" "$STORE.ckpt"; do
    [ -e "$f" ] || continue
    got=$(stat -c '%U:%G %a' "$f")
    [ "$got" = "$want" ] || fail "after $what: ${f##*/} is $got, want $want"
  done
  [ ! -e "$STORE.tmp" ] || fail "after $what: PATH.tmp left behind"
}

# as_root_keeps MODE: a store of nobody:nogroup with MODE, used by root.
as_root_keeps() {
  local mode=$1
  require_tool setpriv
  id nobody >/dev/null 2>&1 || skip "no user nobody"
  local grp
  grp=$(id -gn nobody)
  umask 077   # the narrowest umask root may have: it must not matter
  id=$(ctl create --data '{"v":1}')
  ctl check --repair >/dev/null     # a PATH.ckpt too
  chown "nobody:$grp" "$STORE" "$STORE".*
  chmod "$mode" "$STORE" "$STORE".*
  assert_owned "chown" "nobody:$grp" "$mode"

  run -0 ctl create --user alice
  assert_owned "a write as root" "nobody:$grp" "$mode"

  raise_dirty
  run -0 ctl set "$id" '{"v":2}'    # rebuilds PATH first
  run -0 ctl get "$id"
  assert_output --partial '"v":2'
  assert_owned "a rebuild after a killed writer" "nobody:$grp" "$mode"

  # A real kill -9 of a writer in the middle of its work.
  spawn "$BATS_TEST_TMPDIR/seed" "$TOOLS/churn" seed "$STORE" "$BATS_TEST_TMPDIR/state" 5000
  sleep 0.3
  kill -9 "$spawned" 2>/dev/null || true
  wait "$spawned" 2>/dev/null || true
  run -0 ctl create
  assert_owned "a kill -9 of a writer and the rebuild after it" "nobody:$grp" "$mode"

  run -0 ctl check --repair
  assert_owned "check --repair" "nobody:$grp" "$mode"

  ctl export > "$BATS_TEST_TMPDIR/all.jsonl"
  run -0 ctl purge
  run -0 ctl import < "$BATS_TEST_TMPDIR/all.jsonl"
  assert_owned "import" "nobody:$grp" "$mode"

  # A deleted lock file comes back as the store's, and so does a deleted
  # checkpoint (the next check --repair writes a new one).
  rm "$STORE.lock" "$STORE.ckpt"
  run -0 ctl create
  run -0 ctl check --repair
  [ -e "$STORE.lock" ] && [ -e "$STORE.ckpt" ]
  assert_owned "a new PATH.lock and PATH.ckpt" "nobody:$grp" "$mode"
}

# bats test_tags=gdbm-only
@test "as root, every write path keeps a nobody:nogroup 0660 store nobody:nogroup 0660" {
  as_root_keeps 660
  # --group on a 0660 store changes nothing either.
  run -0 ctl --group create
  assert_owned "--group" "nobody:$(id -gn nobody)" 660
  note "0660: $(stat -c '%n %U:%G %a' "$STORE" "$STORE".* | sed 's|.*/||' | tr '\n' ';')"
}

# bats test_tags=gdbm-only
@test "as root, every write path keeps a nobody:nogroup 0640 store 0640; --group only widens it" {
  as_root_keeps 640
  # --group adds group write (what it asks for) and takes nothing away.
  chmod 0644 "$STORE" "$STORE".*
  run -0 ctl --group create
  run -0 ctl --group check --repair
  assert_owned "--group on 0644 files" "nobody:$(id -gn nobody)" 664
}

# bats test_tags=gdbm-only
@test "a user sharing the store through its group keeps the group and the mode through every write path" {
  require_tool setpriv
  id nobody >/dev/null 2>&1 || skip "no user nobody"
  getent group users >/dev/null || skip "no group users"
  # nobody, with users as a supplementary group, shares a root:users 0660
  # store in a root:users 2770 directory (the usual shared setup).
  as_member=(setpriv --reuid=nobody --regid="$(id -gn nobody)" --groups=users)
  "${as_member[@]}" true 2>/dev/null || skip "setpriv cannot switch to nobody here"
  chown root:users "$BATS_TEST_TMPDIR/own"
  chmod 2770 "$BATS_TEST_TMPDIR/own"
  umask 077
  id=$(ctl --group create --data '{"v":1}')
  ctl --group check --repair >/dev/null
  chown root:users "$STORE" "$STORE".*
  assert_owned "create as root with --group" root:users 660

  run -0 "${as_member[@]}" "$CTL" --store "$STORE" set "$id" '{"v":2}'
  assert_owned "a write by a member" root:users 660
  raise_dirty
  run -0 "${as_member[@]}" "$CTL" --store "$STORE" create
  run -0 "${as_member[@]}" "$CTL" --store "$STORE" get "$id"
  assert_output --partial '"v":2'
  # The rebuild replaced PATH: nobody cannot give it to root, but the
  # group and the mode hold, so root and the rest of the group still can.
  for f in "$STORE" "$STORE.lock" "$STORE.wal" "$STORE.ckpt"; do
    got=$(stat -c '%G %a' "$f")
    [ "$got" = "users 660" ] || fail "${f##*/} is $got after a member's rebuild"
  done
  run -0 "${as_member[@]}" "$CTL" --store "$STORE" check --repair
  rm "$STORE.lock"
  run -0 "${as_member[@]}" "$CTL" --store "$STORE" create
  for f in "$STORE" "$STORE.lock" "$STORE.wal" "$STORE.ckpt"; do
    got=$(stat -c '%G %a' "$f")
    [ "$got" = "users 660" ] || fail "${f##*/} is $got after a member's repair"
  done
  # And root, the other member, still reads and writes it.
  run -0 ctl set "$id" '{"v":3}'
  run -0 "${as_member[@]}" "$CTL" --store "$STORE" get "$id"
  assert_output --partial '"v":3'
}
