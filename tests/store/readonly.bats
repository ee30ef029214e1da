#!/usr/bin/env bats
# tests/store/readonly.bats - read-only commands after an incident, and
# errors that name their real cause (issue 19, item 4).
#
# An operator's first `sessgatectl list` after a crash refused ("a writer
# died mid-write ... open the store writable once") until some writable
# process came along; after PATH.lock was deleted, read-only commands said
# the store "does not exist"; running out of file descriptors (EMFILE) came
# with the fix "check the disk".  Now a read-only open has a short-lived
# writable handle do what only a writer may (rebuild, recreate the lock
# file), and says plainly when this user cannot write the store.
load ../helpers/common
load store

setup() {
  STORE="$BATS_TEST_TMPDIR/d/s.db"
  STATE="$BATS_TEST_TMPDIR/state"
  CTL="$SG_BUILDDIR/cli/sessgatectl"
  mkdir -p "$BATS_TEST_TMPDIR/d"
}

teardown() {
  stop_all
}

ctl() { "$CTL" --store "$STORE" "$@"; }

# raise_dirty: what a writer killed mid-change leaves (the dirty flag,
# offset 16 of the lock page).
raise_dirty() {
  printf '\001\000\000\000' | dd of="$STORE.lock" bs=1 seek=16 conv=notrunc status=none
}

# read_only_commands_work N: list, get, count and export (each a read-only
# open) see all N sessions of $STATE.
read_only_commands_work() {
  local id
  id=$(head -n1 "$STATE" | cut -d' ' -f1)
  run -0 --separate-stderr ctl count
  [ "$output" -eq "$1" ] || fail "count: $output, want $1"
  run -0 --separate-stderr ctl get "$id"
  assert_output --partial "\"id\":\"$id\""
  run -0 --separate-stderr ctl list
  [ "${#lines[@]}" -eq "$1" ] || fail "list: ${#lines[@]} lines, want $1"
  run -0 --separate-stderr ctl export
  [ "${#lines[@]}" -eq "$1" ] || fail "export: ${#lines[@]} lines, want $1"
}

# bats test_tags=gdbm-only
@test "after a writer died mid-write, list, get, count and export work at once, with no writable open first" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 30
  for cmd in count get list export; do
    raise_dirty
    case $cmd in
      get) run -0 --separate-stderr ctl get "$(head -n1 "$STATE" | cut -d' ' -f1)" ;;
      *) run -0 --separate-stderr ctl "$cmd" ;;
    esac
    [ -z "$stderr" ] || fail "$cmd: $stderr"
  done
  # A real kill -9 of a writer in the middle of its work, then only reads.
  for i in 1 2 3 4 5; do
    spawn "$BATS_TEST_TMPDIR/rw.$i" "$TOOLS/rewrite" run "$STORE" "$STATE" 100000
    sleep "0.$((RANDOM % 4 + 1))"
    kill -9 "$spawned" 2>/dev/null || true
    wait "$spawned" 2>/dev/null || true
    read_only_commands_work 30
    run -0 "$TOOLS/rewrite" verify "$STORE" "$STATE"
  done
}

# bats test_tags=gdbm-only
@test "after PATH.lock is deleted, read-only commands work and never say the store does not exist" {
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 12
  chown nobody "$STORE" "$STORE".* 2>/dev/null || true
  chmod 0640 "$STORE" "$STORE".*
  want=$(stat -c '%U:%G %a' "$STORE")
  rm "$STORE.lock"
  read_only_commands_work 12
  [ -f "$STORE.lock" ] || fail "no lock file made"
  [ "$(stat -c '%U:%G %a' "$STORE.lock")" = "$want" ] || fail "lock file $(stat -c '%U:%G %a' "$STORE.lock"), want $want"
  # One made by hand (touch) is set up too.
  rm "$STORE.lock"
  touch "$STORE.lock"
  read_only_commands_work 12
  # A store that really does not exist still says so.
  run -3 --separate-stderr "$CTL" --store "$BATS_TEST_TMPDIR/d/none.db" list
  [[ "$stderr" == *"does not exist"* ]] || fail "$stderr"
  [ ! -e "$BATS_TEST_TMPDIR/d/none.db.lock" ]
}

# bats test_tags=gdbm-only
@test "a reader who may not write the store is told the real cause and who can fix it" {
  require_tool setpriv
  id nobody >/dev/null 2>&1 || skip "no user nobody"
  as_nobody=(setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups)
  "${as_nobody[@]}" true 2>/dev/null || skip "setpriv cannot switch to nobody here"
  local d=$BATS_TEST_TMPDIR
  while [ "$d" != / ] && [ "$d" != "$(dirname "$BATS_RUN_TMPDIR")" ]; do
    chmod o+x "$d"
    d=$(dirname "$d")
  done
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 5
  chmod 0755 "$BATS_TEST_TMPDIR/d"
  chmod 0644 "$STORE" "$STORE".*
  # Readable by nobody, writable by root only: reads work ...
  run -0 "${as_nobody[@]}" "$CTL" --store "$STORE" count
  assert_output 5
  # ... a dead writer's flag needs a writer ...
  raise_dirty
  run -3 --separate-stderr "${as_nobody[@]}" "$CTL" --store "$STORE" count
  [[ "$stderr" == *"a writer died mid-write"* ]] || fail "no cause: $stderr"
  [[ "$stderr" == *"cannot write the store (Permission denied)"* ]] || fail "no reason: $stderr"
  [[ "$stderr" == *"check --repair as its owner"* ]] || fail "no fix: $stderr"
  [[ "$stderr" != *"does not exist"* && "$stderr" != *"check the disk"* ]] || fail "misleading: $stderr"
  note "nobody, dead writer: $stderr"
  run -0 ctl count        # the owner's read fixes it
  run -0 "${as_nobody[@]}" "$CTL" --store "$STORE" count
  # ... and so does a deleted lock file.
  rm "$STORE.lock"
  run -3 --separate-stderr "${as_nobody[@]}" "$CTL" --store "$STORE" list
  [[ "$stderr" == *"lock file is missing"* ]] || fail "no cause: $stderr"
  [[ "$stderr" == *"Permission denied"* ]] || fail "no reason: $stderr"
  [[ "$stderr" != *"does not exist"* ]] || fail "misleading: $stderr"
  note "nobody, deleted lock file: $stderr"
}

# bats test_tags=gdbm-only
@test "too many open files is reported as such, never as a disk problem" {
  require_tool prlimit
  "$TOOLS/rewrite" seed "$STORE" "$STATE" 3
  seen=0
  # Each limit runs out at another open (lock file, log, GDBM file).
  for n in 4 5 6 7 8 9 10; do
    for cmd in count create; do
      status=0
      stderr=$(prlimit --nofile="$n:$n" "$CTL" --store "$STORE" "$cmd" 2>&1 >/dev/null 3>&-) || status=$?
      # 0: enough descriptors; 127: too few to even load the libraries.
      [ "$status" -eq 0 ] || [ "$status" -eq 127 ] && continue
      [ "$status" -eq 3 ] || fail "ulimit -n $n, $cmd: exit $status: $stderr"
      [[ "$stderr" == *"Too many open files"* ]] || fail "ulimit -n $n, $cmd: $stderr"
      [[ "$stderr" == *"ulimit -n"* ]] || fail "ulimit -n $n, $cmd: no fix: $stderr"
      [[ "$stderr" != *"check the disk"* && "$stderr" != *"does not exist"* ]] || fail "misleading: $stderr"
      seen=$((seen + 1))
      note "ulimit -n $n, $cmd: $stderr"
    done
  done
  [ "$seen" -ge 2 ] || fail "no limit was low enough to fail ($seen)"
  run -0 ctl count
}
