#!/usr/bin/env bats
# tests/store/stale_handle.bats - a handle kept open never serves stale data.
#
# A GDBM handle kept open does not see another process's writes, and
# recovery or reorganisation replaces the file by rename (DESIGN §4,
# reference/reliability.md §0.1-3).  Gateway workers and apps keep their
# store open for hours, so the library must notice every change made by
# others.  Process A is a long-running tests/tools/storesh holding one
# handle (fed through a fifo); process B is a fresh storesh per step.
# Against Redis the same steps check that a kept connection serves every
# change at once (the backend caches nothing).
# backends: gdbm redis
load ../helpers/common
load ../helpers/storesh
load store

setup() {
  STORE=$(make_store)
}

teardown() {
  exec 5>&- 2>/dev/null || true
  stop_all
}



# b CMD...: run commands in a fresh process B; answers in $output.
b() {
  run -0 "$TOOLS/storesh" "$STORE" < <(printf '%s\n' "$@")
}

# backup_store NAME / restore_store NAME: what an administrator does
# behind the library's back.  GDBM: copy the file; restore it by rename
# under the exclusive lock, so only the inode tells.  Redis: copy every
# key of the store's prefix to NAME.PREFIXKEY (outside any store's
# prefix); restore by replacing the prefix's keys with them, in one script
# (atomic for every client, as the rename under the lock is).
REDIS_BACKUP='local n = 0
for _, k in ipairs(redis.call("keys", ARGV[1] .. "*")) do
  redis.call("copy", k, ARGV[2] .. k, "replace"); n = n + 1
end
return n'
REDIS_RESTORE='for _, k in ipairs(redis.call("keys", ARGV[1] .. "*")) do redis.call("del", k) end
local n = 0
for _, k in ipairs(redis.call("keys", ARGV[2] .. ARGV[1] .. "*")) do
  redis.call("rename", k, string.sub(k, #ARGV[2] + 1)); n = n + 1
end
return n'
redis_prefix() {
  local p=${STORE##*prefix=}
  [[ $p != *[][*?\\]* ]] || fail "prefix $p holds glob characters"
  printf '%s\n' "$p"
}
backup_store() {
  if on_redis; then
    run -0 redis-cli -s "$SG_TEST_REDIS_SOCK" EVAL "$REDIS_BACKUP" 0 "$(redis_prefix)" "$1."
    [ "$output" -gt 0 ] || fail "backup $1 copied no key: $output"
    return
  fi
  cp "$STORE" "$BATS_TEST_TMPDIR/$1.db"
}
restore_store() {
  if on_redis; then
    run -0 redis-cli -s "$SG_TEST_REDIS_SOCK" EVAL "$REDIS_RESTORE" 0 "$(redis_prefix)" "$1."
    [ "$output" -gt 0 ] || fail "restore $1 found no key: $output"
    return
  fi
  flock -x "$STORE.lock" mv "$BATS_TEST_TMPDIR/$1.db" "$STORE"
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
  b "get $new"
  vnew=$(awk '{ print $2 }' <<<"$output")
  # Within the default grace window (issue #12) the old id resolves to the
  # rotated session: A must serve its new version (B's rotation and grace
  # alias seen), never the record it read before the rotate.
  a get "$id"
  [[ "$A" == "ok $vnew "* ]] || fail "old id not resolved to the rotated session (version $vnew): $A"
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

# Apps that keep a handle run programs (a CGI, os.execute, subprocess
# with close_fds=False): those must not inherit the store's descriptors,
# least of all a Redis connection, which would bypass the socket's file
# permissions (README: the unix socket is the access control).
@test "every descriptor a kept handle holds is close-on-exec" {
  a_start
  a 'create {"n":1}'
  [[ "$A" == "ok "* ]] || fail "$A"
  id=${A#ok }
  a get "$id"
  n=0
  for fd in /proc/"$A_PID"/fd/*; do
    fd=${fd##*/}
    [ "$fd" -gt 2 ] || continue
    # inherited from this shell (bats keeps some), not the library's
    [ "$(readlink "/proc/$A_PID/fd/$fd")" != "$(readlink "/proc/$BASHPID/fd/$fd" 2>/dev/null)" ] || continue
    flags=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$A_PID/fdinfo/$fd")
    n=$((n + 1))
    # O_CLOEXEC is 02000000 (octal) in fdinfo's flags
    (( (8#$flags & 8#2000000) != 0 )) ||
      fail "fd $fd ($(readlink "/proc/$A_PID/fd/$fd")) is inherited across exec: flags $flags"
  done
  [ "$n" -gt 0 ] || fail "storesh holds no store descriptor"
}

# GDBM only: a damaged file, gdbm_recover and a replaced inode.
# bats test_tags=gdbm-only
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
# write, and before a read at most once a second (libcore/gdbm_refresh.c:
# a stat per read was judged too dear), so reads may lag a replacement made
# outside the library by up to a second, and writes never go astray.
# Redis keeps no view of its own: every read asks the server, so both see
# the restore at once.
@test "a kept handle notices a store restored from a backup behind its back: writes at once, reads within a second" {
  if on_redis; then require_tool redis-cli; else require_tool flock; fi
  b 'create {"n":1}'
  id=${output#ok }
  backup_store backup1
  backup_store backup2
  b "save $id {\"n\":2}" 'create {"n":9}'
  id2=${lines[1]#ok }
  a_start
  a get "$id"
  assert_equal "${A#ok * }" '{"n":2}'
  a get "$id2"
  [[ "$A" == "ok "* ]]
  # An administrator restores a backup, with no write through the library
  # (for GDBM only the inode tells).
  restore_store backup1
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
  restore_store backup2
  local i
  for ((i = 0; i < 25; i++)); do
    a get "$id"
    [ "${A#ok * }" = '{"n":1}' ] && break
    sleep 0.1
  done
  assert_equal "${A#ok * }" '{"n":1}'
  note "reads saw the restored store after $((i * 100)) ms or less"
  if on_redis; then
    [ "$i" -eq 0 ] || fail "a Redis read lagged the restore by $((i * 100)) ms"
  fi
}
