#!/usr/bin/env bats
# tests/store/stale_handle.bats - a handle kept open never serves stale data.
#
# A GDBM handle kept open does not see another process's writes, and
# recovery or reorganisation replaces the file by rename (DESIGN §4,
# reference/reliability.md §0.1-3).  Gateway workers and apps keep their
# store open for hours, so the library must notice every change made by
# others.  Process A is a long-running tests/tools/storesh holding one
# handle (fed through a fifo); process B is a fresh storesh per step.
load ../helpers/common
load store

setup() {
  STORE=$(make_store)
}

teardown() {
  exec 5>&- 2>/dev/null || true
  stop_all
}

# a_start: start process A on the store, commands through fd 5.
a_start() {
  A_OUT="$BATS_TEST_TMPDIR/a.out"
  mkfifo "$BATS_TEST_TMPDIR/a.in"
  : > "$A_OUT"
  # The redirections happen in the child before exec, so $! is storesh.
  "$TOOLS/storesh" "$STORE" <"$BATS_TEST_TMPDIR/a.in" >"$A_OUT" \
    2>"$A_OUT.err" 3>&- &
  echo "$!" >> "$(sg_pidfile)"
  exec 5>"$BATS_TEST_TMPDIR/a.in"
}

# a CMD...: send one command to A, wait (bounded) for its answer in $A.
a() {
  local before i
  before=$(wc -l < "$A_OUT")
  echo "$*" >&5
  for ((i = 0; i < 200; i++)); do
    [ "$(wc -l < "$A_OUT")" -gt "$before" ] && break
    sleep 0.025
  done
  [ "$(wc -l < "$A_OUT")" -gt "$before" ] || fail "A did not answer '$*'"
  A=$(tail -n 1 "$A_OUT")
}

# b CMD...: run commands in a fresh process B; answers in $output.
b() {
  run -0 "$TOOLS/storesh" "$STORE" < <(printf '%s\n' "$@")
}

@test "a kept handle sees every create, save, rotate and delete made by another process" {
  a_start
  a count
  [ "$A" = "ok 0" ]
  b 'create {"n":1}'
  id=${output#ok }
  a get "$id"
  assert_equal "${A#ok * }" '{"n":1}'
  a count
  [ "$A" = "ok 1" ]

  b "save $id {\"n\":2}"
  v2=${output#ok }
  a get "$id"
  assert_equal "$A" "ok $v2 {\"n\":2}"

  # A writes through its kept handle; B sees it and the file stays sound.
  a save "$id" '{"n":3}'
  [[ "$A" == "ok "* ]] || fail "A's save: $A"
  b "get $id"
  assert_output --regexp '^ok [0-9]+ \{"n":3\}$'

  b "rotate $id"
  new=${output#ok }
  a get "$id"
  [[ "$A" == "err "* ]] || fail "old id still served after rotate: $A"
  a get "$new"
  assert_equal "${A#ok * }" '{"n":3}'

  b "delete $new"
  a get "$new"
  [[ "$A" == "err "* ]] || fail "deleted session still served: $A"
  a count
  [ "$A" = "ok 0" ]
  b check
  assert_output --partial "bad=0"
}

@test "a kept handle reads correctly after another process recovered and replaced the store file" {
  b 'create {"n":1}'
  id=${output#ok }
  a_start
  a get "$id"
  assert_equal "${A#ok * }" '{"n":1}'
  ino=$(stat -c %i "$STORE")
  # Damage the file the way a writer killed while extending it does:
  # data past the header's end of file makes GDBM demand recovery.
  head -c 4096 /dev/zero >> "$STORE"
  b repair "save $id {\"n\":5}" recoveries
  note "B: $(echo $output)"
  assert_line --index 1 --regexp '^ok [0-9]+$'
  assert_line --index 2 --regexp '^ok [1-9]'
  # gdbm_recover rebuilt the file and renamed it over the old one.
  [ "$(stat -c %i "$STORE")" != "$ino" ] || fail "the store file was not replaced"
  a get "$id"
  assert_equal "${A#ok * }" '{"n":5}'
  # A also writes correctly into the new file, and does not recover it
  # again through its old view.
  a save "$id" '{"n":6}'
  [[ "$A" == "ok "* ]] || fail "A's save: $A"
  a recoveries
  [ "$A" = "ok 0" ]
  b "get $id" check
  assert_line --index 0 --regexp '^ok [0-9]+ \{"n":6\}$'
  assert_line --index 1 --partial "bad=0"
}

# The library compares the file's inode with its handle's before every
# write, and before a read at most once a second (libcore/backend_gdbm.c:
# a stat per read was judged too dear), so reads may lag a replacement made
# outside the library by up to a second, and writes never go astray.
@test "a kept handle notices a store file restored by rename under the lock: writes at once, reads within a second" {
  require_tool flock
  b 'create {"n":1}'
  id=${output#ok }
  cp "$STORE" "$BATS_TEST_TMPDIR/backup1.db"
  cp "$STORE" "$BATS_TEST_TMPDIR/backup2.db"
  b "save $id {\"n\":2}" 'create {"n":9}'
  id2=${lines[1]#ok }
  a_start
  a get "$id"
  assert_equal "${A#ok * }" '{"n":2}'
  a get "$id2"
  [[ "$A" == "ok "* ]]
  # An administrator restores a backup: rename under the exclusive lock,
  # no write through the library, so only the inode tells.
  flock -x "$STORE.lock" mv "$BATS_TEST_TMPDIR/backup1.db" "$STORE"
  # A's next write goes to the restored file, never to the unlinked one.
  # Its load may still come from the old view (reads check the inode at
  # most once a second), in which case the save must refuse with a
  # conflict (the restored file holds an older version) rather than write.
  a save "$id" '{"n":7}'
  case $A in
    "ok "*) want='\{"n":7\}' ;;
    "err conflict"*) want='\{"n":1\}' ;;
    *) fail "A's save after the restore: $A" ;;
  esac
  note "A's save right after the restore: ${A:0:40}"
  b "get $id" "get $id2"
  assert_line --index 0 --regexp "^ok [0-9]+ $want\$"
  assert_line --index 1 --regexp '^err '
  a get "$id2"
  [[ "$A" == "err "* ]] || fail "A still serves a session from the replaced file: $A"

  # Reads alone: restore again (the session is back to n=1) and poll A.
  flock -x "$STORE.lock" mv "$BATS_TEST_TMPDIR/backup2.db" "$STORE"
  local i
  for ((i = 0; i < 25; i++)); do
    a get "$id"
    [ "${A#ok * }" = '{"n":1}' ] && break
    sleep 0.1
  done
  assert_equal "${A#ok * }" '{"n":1}'
  note "reads saw the restored file after $((i * 100)) ms or less"
}
