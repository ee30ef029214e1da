#!/usr/bin/env bats
# sessgatectl stats --json, --by-user, --ages (issue 16): what an app owner
# asks, from one walk over the live sessions.
# backends: gdbm redis
load ../helpers/common
load ../cli/cli

# rec ID USER CREATED_AGO ACCESSED_AGO: an import line for a live session
rec() {
  local now user
  now=$(date +%s)
  user=$([ -n "$2" ] && printf '"%s"' "$2" || echo null)
  printf '{"id":"%s","user":%s,"created":%d,"accessed":%d,"expires":%d,"idle":%d,"version":1,"data":{}}\n' \
    "$1" "$user" $((now - $3)) $((now - $4)) $((now + 864000)) 864000
}

@test "stats --walk --json: the exact figures as one JSON object" {
  ctl create --user alice > /dev/null
  ctl create > /dev/null
  run -0 --separate-stderr ctl stats --walk --json
  [ "${#lines[@]}" -eq 1 ]
  run "$SG_PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["live"] == 2 and o["users"] == 1 and o["anonymous"] == 1, o
assert set(o) == {"store", "sessions", "live", "expired", "users", "anonymous", "file_bytes", "writes"}, o
print("ok")' "$output"
  assert_output ok
}

@test "stats --by-user: sessions per user, most first, top N" {
  for i in 1 2 3 4; do ctl create --user carol > /dev/null; done
  for i in 1 2; do ctl create --user 'dave smith' > /dev/null; done
  for i in 1 2; do ctl create --user ann > /dev/null; done
  ctl create --user bob > /dev/null
  ctl create > /dev/null
  run -0 ctl stats --by-user
  assert_line 'walked: 10'
  [ "$(printf '%s\n' "$output" | grep '^user: ')" = "$(printf '%s\n' \
    'user: 4 carol' 'user: 2 ann' 'user: 2 dave smith' 'user: 1 bob')" ]
  run -0 ctl stats --by-user --top 1
  [ "$(printf '%s\n' "$output" | grep -c '^user: ')" = 1 ]
  assert_line 'user: 4 carol'
  run -0 ctl stats --json --by-user --top 2
  run "$SG_PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
print(o["by_user"], o["walked_users"], o["walked_anonymous"])' "$output"
  assert_output "[{'user': 'carol', 'sessions': 4}, {'user': 'ann', 'sessions': 2}] 4 1"
}

@test "stats --ages: age and idle histograms from one walk" {
  {
    rec 11111111-2222-4333-8444-000000000001 ann 30 10          # 1m / 1m
    rec 11111111-2222-4333-8444-000000000002 ann 7200 3000      # 6h / 1h
    rec 11111111-2222-4333-8444-000000000003 '' 200000 100000   # 7d / 7d
    rec 11111111-2222-4333-8444-000000000004 bob 900000 5000    # inf / 6h
  } | ctl import > /dev/null
  run -0 ctl stats --ages
  assert_line 'walked: 4'
  assert_line 'age_le_1m: 1'
  assert_line 'age_le_6h: 1'
  assert_line 'age_le_7d: 1'
  assert_line 'age_le_inf: 1'
  assert_line 'idle_le_1m: 1'
  assert_line 'idle_le_1h: 1'
  assert_line 'idle_le_6h: 1'
  assert_line 'idle_le_7d: 1'
  assert_line 'idle_le_10m: 0'
  run -0 ctl stats --json --ages
  run "$SG_PYTHON" -c '
import json, sys
o = json.loads(sys.argv[1])
print(sum(o["age_seconds"].values()), o["idle_seconds"]["7d"])' "$output"
  assert_output "4 1"
}

@test "stats: bad options are usage errors" {
  run -2 ctl stats --top 0 --by-user
  run -2 ctl stats --bogus
  run -2 ctl stats extra
}
