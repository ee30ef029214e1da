#!/usr/bin/env bats
# sessgatectl stats: the store's figures as key: value lines.
# backends: gdbm redis
load ../helpers/common
load cli

@test "stats --walk prints every exact figure as a key: value line" {
  ctl create --user alice >/dev/null
  ctl create --user alice >/dev/null
  ctl create --user bob >/dev/null
  ctl create >/dev/null
  ctl create --idle 1 >/dev/null
  sleep 2.1
  run -0 --separate-stderr ctl stats --walk
  assert_line "store: $STORE"
  # GDBM keeps the expired record until purge; Redis has deleted it.
  if on_redis; then
    assert_line 'sessions: 4'
    assert_line 'expired: 0'
  else
    assert_line 'sessions: 5'
    assert_line 'expired: 1'
  fi
  assert_line 'live: 4'
  assert_line 'users: 2'
  assert_line 'anonymous: 1'
  assert_line --regexp '^file_bytes: [1-9][0-9]*$'
  assert_line --regexp '^writes: [1-9][0-9]*$'
  [ "${#lines[@]}" -eq 8 ]
  [ -z "$stderr" ]
}

# bats test_tags=gdbm-only
@test "file_bytes is the size of the store file" {
  ctl create >/dev/null
  run -0 ctl stats
  assert_line "file_bytes: $(stat -c %s "$STORE")"
}

@test "the write counter moves with every write and only then" {
  id=$(ctl create)
  w() { ctl stats | sed -n 's/^writes: //p'; }
  w1=$(w)
  ctl get "$id" >/dev/null
  ctl count >/dev/null
  [ "$(w)" -eq "$w1" ]
  ctl set "$id" '{"a":1}'
  [ "$(w)" -gt "$w1" ]
}

@test "stats takes no arguments" {
  run -2 --separate-stderr ctl stats all
  assert_error_line 'stats: takes no arguments'
}
