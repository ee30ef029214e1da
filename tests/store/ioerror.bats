#!/usr/bin/env bats
# tests/store/ioerror.bats - write errors during save, rotate, purge and
# recovery (issue #6): the failing command exits 3 with one line naming
# the store and the fix, every earlier session reads back as it was, no
# change is half made, and with room again the same command succeeds and
# the store passes check (DESIGN §4, README "A full disk").
#
# Two ways to run out of room, as in diskfull.bats: a 1 MiB tmpfs filled
# up with a filler file (ENOSPC; needs root to mount, skipped otherwise)
# and a file size limit (ulimit -f in a subshell with SIGXFSZ ignored, so
# writes past it fail with EFBIG).  Every test starts from a copy of one
# template store made once per file: live sessions (some with users), 30
# sessions already expired, and a log well past the size of the GDBM file.
# Snapshots are `sessgatectl export` (every live session, its data and its
# version), so a lost, changed or extra session shows as a difference.
load ../helpers/common
load store

setup_file() {
  local t="$BATS_FILE_TMPDIR/tpl" i u pad
  mkdir "$t"
  pad=$(printf '%0300d' 0)
  for i in $(seq 12); do
    u=(); [ $((i % 3)) = 0 ] && u=(--user "u$((i % 2))")
    "$SG_CTL" --store "$t/s.db" create "${u[@]}" \
      --data "{\"n\":$i,\"p\":\"${pad:0:$((i * 23))}\"}" >> "$t/live"
  done
  for i in $(seq 30); do
    u=(); [ $((i % 2)) = 0 ] && u=(--user "e$((i % 3))")
    "$SG_CTL" --store "$t/s.db" create "${u[@]}" --idle 1 \
      --data "{\"e\":$i,\"p\":\"$pad\"}" >/dev/null
  done
  # Updates grow the log (not the file) to about twice the file's size.
  pad=$(printf '%0900d' 0)
  for i in $(seq 40); do
    "$SG_CTL" --store "$t/s.db" set "$(sed -n 1p "$t/live")" "{\"k\":$i,\"b\":\"$pad\"}"
  done
  sleep 1.2   # the 30 --idle 1 sessions are now expired for good
}

teardown() {
  stop_all
  if [ -n "${MOUNTED:-}" ]; then
    umount "$MOUNTED" || umount -l "$MOUNTED" || true
  fi
}

# use_store DIR: a copy of the template in DIR; sets S (the store), LIVE
# (ids of the live sessions: the first is align_log's filler; those at
# 2, 5, 8 and 11 have a user, the others none).
use_store() {
  cp "$BATS_FILE_TMPDIR/tpl/s.db" "$BATS_FILE_TMPDIR/tpl/s.db.lock" \
     "$BATS_FILE_TMPDIR/tpl/s.db.wal" "$1/"
  S="$1/s.db"
  mapfile -t LIVE < "$BATS_FILE_TMPDIR/tpl/live"
}

# small_fs: a 1 MiB tmpfs in DIR, or skip; the store copied into it.
small_fs() {
  [ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root"
  DIR="$BATS_TEST_TMPDIR/small"
  mkdir "$DIR"
  mount -t tmpfs -o size=1m,mode=0700 sgtest "$DIR" 2>/dev/null ||
    skip "mount -t tmpfs refused here (the ulimit tests cover EFBIG)"
  MOUNTED=$DIR
  use_store "$DIR"
}

plain_dir() {
  DIR="$BATS_TEST_TMPDIR/plain"
  mkdir "$DIR"
  use_store "$DIR"
}

# fill_disk: no free page left on the tmpfs.  free_disk: room again.
fill_disk() {
  dd if=/dev/zero of="$DIR/filler" bs=4k 2>/dev/null || true
  [ "$(df --output=avail -k "$DIR" | tail -n1 | tr -d ' ')" -eq 0 ]
}
free_disk() { rm -f "$DIR/filler"; }

# limited KIB CMD...: CMD with a file size limit of KIB KiB, SIGXFSZ
# ignored (an ignored signal stays ignored across exec).
limited() {
  local kib=$1
  shift
  ( trap '' XFSZ; ulimit -f "$kib"; "$@" )
}

size_of() { stat -c %s "$1"; }
kib_above() { echo $(( ($(size_of "$1") + 1023) / 1024 )); }

snapshot() { sessgatectl --store "$S" export | sort; }

# align_log ROOM MOD: set the filler session (LIVE[0]) twice so that the
# log ends ROOM bytes below a multiple of MOD: then a limit or a full last
# page leaves exactly ROOM bytes for the next append.
align_log() {
  local room=$1 mod=$2 w0 w1 c a
  w0=$(size_of "$S.wal")
  sessgatectl --store "$S" set "${LIVE[0]}" '{"f":"x"}'
  w1=$(size_of "$S.wal")
  c=$((w1 - w0 - 1))
  a=$(( ((-(w1 + c + room)) % mod + 2 * mod) % mod ))
  [ "$a" -ge 1 ] || a=$mod
  sessgatectl --store "$S" set "${LIVE[0]}" "{\"f\":\"$(printf "%0${a}d" 0)\"}"
  [ $(( ($(size_of "$S.wal") + room) % mod )) -eq 0 ]
}

# failed_cleanly: the command just run (run --separate-stderr) exited 3
# with one line on stderr naming the store and what to do.
failed_cleanly() {
  note "${stderr:-}"
  [ "$status" -eq 3 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ "$stderr" =~ ^sessgatectl:\ store\ "$S":\ .*\((free\ disk\ space|raise\ the\ file\ size\ limit\ \(ulimit\ -f\)),\ then\ retry\)$ ]]
}

# passes_check: the store is whole (check exits 0 and reads every record).
passes_check() {
  run -0 sessgatectl --store "$S" check
  assert_line 'bad_records: 0'
}

# raise_dirty: what a writer killed mid-change leaves (the dirty flag,
# offset 16 of the lock page): the next writer must rebuild first.
raise_dirty() {
  printf '\001\000\000\000' | dd of="$S.lock" bs=1 seek=16 conv=notrunc status=none
}

big() { printf '{"x":"%0*d"}' "$1" 0; }

# ---------------------------------------------------------------- save

@test "ENOSPC during set and save: an error, the session as it was, then the same change succeeds" {
  small_fs
  before=$(snapshot)
  fill_disk
  id=${LIVE[1]}
  run --separate-stderr sessgatectl --store "$S" set "$id" "$(big 3000)"
  failed_cleanly
  # The same through sg_session_save (load, change, save with the version).
  run -0 "$TOOLS/storesh" "$S" <<<"save $id $(big 3000)"
  assert_output --regexp "^err .*: store $S: .*\(free disk space, then retry\)\$"
  [ "$(snapshot)" = "$before" ]
  passes_check
  free_disk
  run -0 sessgatectl --store "$S" set "$id" "$(big 3000)"
  run -0 sessgatectl --store "$S" get "$id"
  assert_output --partial '"version":2,'
  x=$(big 3000)
  assert_output --partial "${x:1:-1}}"
  passes_check
}

@test "EFBIG during set, the log at the limit: an error, the session as it was, then it succeeds" {
  plain_dir
  before=$(snapshot)
  id=${LIVE[1]}
  run --separate-stderr limited "$(kib_above "$S.wal")" \
    sessgatectl --store "$S" set "$id" "$(big 3000)"
  failed_cleanly
  assert_equal "$(snapshot)" "$before"
  passes_check
  run -0 sessgatectl --store "$S" set "$id" "$(big 3000)"
  run -0 sessgatectl --store "$S" get "$id"
  assert_output --partial '"version":2,'
  passes_check
}

@test "EFBIG during set, the GDBM file at the limit: never a store cut short" {
  plain_dir
  # A log next to empty: the GDBM file meets the limit first.  GDBM writes the
  # new record past the end, then the bucket and the header, and last
  # pads the file to a whole block: a limit inside that block failed the
  # padding after the change was whole, and cutting the file back made
  # every later read fail ("Malformed hash table").
  run -0 sessgatectl --store "$S" check --repair
  [ "$(size_of "$S.wal")" -lt 4096 ]
  db=$(( $(size_of "$S") / 1024 ))
  id=${LIVE[1]}
  mkdir "$BATS_TEST_TMPDIR/base"
  cp "$S" "$S.lock" "$S.wal" "$S.ckpt" "$BATS_TEST_TMPDIR/base/"
  before=$(snapshot)
  for extra in 1 2 3 4 5 6 7 8 9 10 11 12; do
    cp "$BATS_TEST_TMPDIR/base"/s.db* "$DIR/"
    run --separate-stderr limited $((db + extra)) \
      sessgatectl --store "$S" set "$id" "$(big 5000)"
    note "limit file+$extra KiB: exit $status ${stderr:-}"
    if [ "$status" -ne 0 ]; then
      failed_cleanly
      assert_equal "$(snapshot)" "$before"
    fi
    passes_check
    run -0 sessgatectl --store "$S" set "$id" "$(big 5000)"
    run -0 sessgatectl --store "$S" count
    assert_output "${#LIVE[@]}"
  done
}

# -------------------------------------------------------------- rotate

# rotated_cleanly OLD: after a failed rotate, the old id works, nothing
# was added, and with room the rotate succeeds: the new id has the data at
# the next version, the old one resolves to it for the default grace (one
# more rotate with --rotate-grace 0 leaves a dead id), nothing counts twice.
rotated_cleanly() {
  local old=$1 n=${#LIVE[@]} new newer
  run -0 sessgatectl --store "$S" get "$old"
  run -0 sessgatectl --store "$S" count
  assert_output "$n"
  passes_check
  free_disk   # (nothing to free under a file size limit)
  run -0 sessgatectl --store "$S" rotate "$old"
  new=$output
  run -0 sessgatectl --store "$S" get "$new"
  assert_output --partial '"version":2,'
  # by default (issue #12) the old id resolves to the new one for a while
  run -0 sessgatectl --store "$S" get "$old"
  assert_output --partial "\"id\":\"$new\""
  # with no grace the id a rotate leaves dies at once
  run -0 sessgatectl --store "$S" --rotate-grace 0 rotate "$new"
  newer=$output
  run -1 sessgatectl --store "$S" get "$new"
  run -0 sessgatectl --store "$S" get "$newer"
  assert_output --partial '"version":3,'
  run -0 sessgatectl --store "$S" count
  assert_output "$n"
  passes_check
}

@test "ENOSPC during rotate of a user's session: an error, the old id works and no new one exists" {
  small_fs
  old=${LIVE[2]}     # a session with a user: the index is written first
  align_log 0 4096   # the log's last page full, then the disk
  before=$(snapshot)
  fill_disk
  run --separate-stderr sessgatectl --store "$S" rotate "$old"
  failed_cleanly
  assert_equal "$(snapshot)" "$before"
  rotated_cleanly "$old"
}

# The rotate logs the record under the new id (52 bytes of header and id,
# then the record as get prints it), then a 52-byte delete of the old id.
# room_for_new_not_delete OLD MOD: leave room in the log for the first and
# 20 bytes of the second, below a multiple of MOD.
room_for_new_not_delete() {
  run -0 sessgatectl --store "$S" get "$1"
  align_log $(( 52 + ${#output} + 20 )) "$2"
}

@test "ENOSPC during rotate with room for the new record but not the delete: never both ids" {
  small_fs
  old=${LIVE[10]}    # no user: no index record in the log
  room_for_new_not_delete "$old" 4096
  before=$(snapshot)
  fill_disk
  run --separate-stderr sessgatectl --store "$S" rotate "$old"
  failed_cleanly
  # Both ids working is a fixation hole, the new one known to no one.
  assert_equal "$(snapshot)" "$before"
  rotated_cleanly "$old"
}

@test "EFBIG during rotate with room for the new record but not the delete: never both ids" {
  plain_dir
  old=${LIVE[10]}
  room_for_new_not_delete "$old" 1024
  before=$(snapshot)
  run --separate-stderr limited $(( ($(size_of "$S.wal") + 1023) / 1024 )) \
    sessgatectl --store "$S" rotate "$old"
  failed_cleanly
  assert_equal "$(snapshot)" "$before"
  rotated_cleanly "$old"
}

@test "EFBIG during rotate of a user's session, the log at the limit: an error, the old id works" {
  plain_dir
  old=${LIVE[2]}
  align_log 0 1024
  before=$(snapshot)
  run --separate-stderr limited $(( $(size_of "$S.wal") / 1024 )) \
    sessgatectl --store "$S" rotate "$old"
  failed_cleanly
  assert_equal "$(snapshot)" "$before"
  rotated_cleanly "$old"
}

# --------------------------------------------------------------- purge

# purged_after_room: live sessions untouched by the failed purge; with
# room the purge removes the rest and the store holds only live ones.
purged_after_room() {
  assert_equal "$(snapshot)" "$before"
  run -0 sessgatectl --store "$S" stats --walk
  assert_line "live: ${#LIVE[@]}"
  passes_check
  free_disk   # (nothing to free under a file size limit)
  run -0 sessgatectl --store "$S" purge
  note "the purge with room removed $output"
  [ "$output" -gt 0 ]
  run -0 sessgatectl --store "$S" stats --walk
  assert_line "sessions: ${#LIVE[@]}"
  assert_line 'expired: 0'
  assert_equal "$(snapshot)" "$before"
  passes_check
}

@test "ENOSPC during purge: stops with an error, no live session touched, purges once there is room" {
  small_fs
  # Room in the log's last page for a few deletes, not for 30.
  align_log 600 4096
  before=$(snapshot)
  fill_disk
  run --separate-stderr sessgatectl --store "$S" purge
  failed_cleanly
  purged_after_room
}

@test "EFBIG during purge: stops with an error, no live session touched, purges without the limit" {
  plain_dir
  align_log 600 1024
  before=$(snapshot)
  run --separate-stderr limited $(( ($(size_of "$S.wal") + 1023) / 1024 )) \
    sessgatectl --store "$S" purge
  failed_cleanly
  purged_after_room
}

# ------------------------------------------------------------- recover

# readable_as_before: every live session reads back through a read-only
# handle (sessgatectl get) and a writable one (storesh) as it was.
readable_as_before() {
  local id
  assert_equal "$(snapshot)" "$before"
  for id in "${LIVE[@]}"; do
    run -0 sessgatectl --store "$S" get "$id"
    assert_output "$(grep -F "\"id\":\"$id\"" <<<"$before")"
  done
  run -0 "$TOOLS/storesh" "$S" <<<'count'
  assert_output "ok ${#LIVE[@]}"
}

@test "ENOSPC during the recovery a killed writer left: writes fail clearly, reads go on, recovery once there is room" {
  small_fs
  before=$(snapshot)
  raise_dirty
  fill_disk
  run --separate-stderr sessgatectl --store "$S" set "${LIVE[1]}" '{"during":"full"}'
  failed_cleanly
  run --separate-stderr sessgatectl --store "$S" check --repair
  failed_cleanly
  readable_as_before
  free_disk
  run -0 sessgatectl --store "$S" set "${LIVE[1]}" '{"after":"full"}'
  passes_check
  run -0 sessgatectl --store "$S" get "${LIVE[1]}"
  assert_output --partial '"after":"full"}'
}

@test "EFBIG during the recovery a killed writer left: writes fail clearly, reads go on, recovery without the limit" {
  plain_dir
  before=$(snapshot)
  raise_dirty
  # Half the file it replaces: too small for the rebuilt file.
  kib=$(( $(size_of "$S") / 2048 ))
  run --separate-stderr limited "$kib" \
    sessgatectl --store "$S" set "${LIVE[1]}" '{"during":"limit"}'
  failed_cleanly
  run --separate-stderr limited "$kib" sessgatectl --store "$S" check --repair
  failed_cleanly
  [ ! -e "$S.tmp" ]
  readable_as_before
  run -0 sessgatectl --store "$S" set "${LIVE[1]}" '{"after":"limit"}'
  passes_check
  run -0 sessgatectl --store "$S" get "${LIVE[1]}"
  assert_output --partial '"after":"limit"}'
}

@test "ENOSPC during check --repair of a sound store: an error, the store still sound and writable" {
  small_fs
  before=$(snapshot)
  fill_disk
  run --separate-stderr sessgatectl --store "$S" check --repair
  failed_cleanly
  [ ! -e "$S.tmp" ]
  readable_as_before
  passes_check
  free_disk
  run -0 sessgatectl --store "$S" check --repair
  assert_line 'recovered: yes'
  assert_equal "$(snapshot)" "$before"
  passes_check
}

@test "EFBIG during check --repair of a sound store: an error, the store still sound and writable" {
  plain_dir
  before=$(snapshot)
  run --separate-stderr limited $(( $(size_of "$S") / 2048 )) \
    sessgatectl --store "$S" check --repair
  failed_cleanly
  [ ! -e "$S.tmp" ]
  readable_as_before
  passes_check
  run -0 sessgatectl --store "$S" check --repair
  assert_line 'recovered: yes'
  assert_equal "$(snapshot)" "$before"
  passes_check
}
