#!/usr/bin/env bats
# sessgatectl export and import: JSON lines out, JSON lines in, ids and
# everything else kept; bad lines reported by number without stopping.
# backends: gdbm redis
load ../helpers/common
load cli

setup() {
  STORE=$(make_store)
  OTHER=$(make_store other)
}

ctl2() { sessgatectl --store "$OTHER" "$@"; }

# record ID EXPIRES_OFFSET: a record as export writes it, made by hand.
record() {
  local now; now=$(date +%s)
  printf '{"id":"%s","user":"hand","created":%d,"accessed":%d,"expires":%d,"idle":1800,"version":4,"data":{"n":1}}\n' \
    "$1" "$((now - 10))" "$((now - 5))" "$((now + $2))"
}

@test "export | import into a second store reproduces every session exactly" {
  ctl create --user alice --data '{"cart":[1,2,{"x":null}],"t":"Ünïcode ☕"}' >/dev/null
  ctl create --user alice --ttl 3600 --idle 120 >/dev/null
  ctl create --user bob >/dev/null
  id=$(ctl create); ctl set "$id" '{"a":1}'; ctl set "$id" '{"b":2}'
  ctl create --idle 1 >/dev/null   # expired by export time: left out
  sleep 2.1
  ctl export > "$BATS_TEST_TMPDIR/dump.jsonl"
  [ "$(wc -l < "$BATS_TEST_TMPDIR/dump.jsonl")" -eq 4 ]
  run -0 --separate-stderr ctl2 import < "$BATS_TEST_TMPDIR/dump.jsonl"
  assert_output 'imported 4, skipped 0 (expired), rejected 0'
  [ -z "$stderr" ]
  diff <(sort "$BATS_TEST_TMPDIR/dump.jsonl") <(ctl2 export | sort)
  diff <(ctl list) <(ctl2 list)
}

@test "imported sessions work in the new store: get, set, rotate, per-user count" {
  id=$(ctl create --user carol --data '{"k":"v"}')
  ctl export | ctl2 import >/dev/null
  run -0 ctl2 get "$id"
  assert_output --partial '"user":"carol"'
  ctl2 set "$id" '{"k2":"v2"}'
  [ "$(ctl2 get "$id" | jfield data)" = '{"k":"v","k2":"v2"}' ]
  new=$(ctl2 --rotate-grace 0 rotate "$id")
  run -1 ctl2 get "$id"
  run -0 ctl2 count --user carol
  assert_output 1
  # the source store is untouched
  [ "$(ctl get "$id" | jfield data)" = '{"k":"v"}' ]
}

@test "export of an empty store prints nothing" {
  id=$(ctl create); ctl delete "$id"
  run -0 --separate-stderr ctl export
  [ -z "$output" ] && [ -z "$stderr" ]
}

@test "export does not touch the sessions it reads" {
  ctl create >/dev/null
  w0=$(ctl stats | sed -n 's/^writes: //p')
  ctl export >/dev/null
  [ "$(ctl stats | sed -n 's/^writes: //p')" = "$w0" ]
}

@test "import keeps ids, user, times and version of a hand-made record" {
  id=0b5c1d2e-1111-4000-8000-000000000001
  rec=$(record "$id" 3600)
  run -0 ctl import <<<"$rec"
  assert_output 'imported 1, skipped 0 (expired), rejected 0'
  [ "$(ctl get "$id")" = "$rec" ]
}

@test "import skips expired records without failing" {
  run -0 --separate-stderr ctl import <<EOF2
$(record 0b5c1d2e-1111-4000-8000-000000000001 3600)
$(record 0b5c1d2e-1111-4000-8000-000000000002 -1)
EOF2
  assert_output 'imported 1, skipped 1 (expired), rejected 0'
  [ -z "$stderr" ]
  run -1 ctl get 0b5c1d2e-1111-4000-8000-000000000002
}

@test "bad lines are reported by number, the rest still go in, exit 1" {
  good1=$(record 0b5c1d2e-1111-4000-8000-000000000001 3600)
  good2=$(record 0b5c1d2e-1111-4000-8000-000000000002 3600)
  bad_id=$(record NOT-A-VALID-ID 3600)
  run -1 --separate-stderr ctl import <<EOF2
$good1
this is not json
{"id":"0b5c1d2e-1111-4000-8000-000000000003"}
$bad_id
[1,2,3]
$good2
EOF2
  assert_output 'imported 2, skipped 0 (expired), rejected 4'
  [ "${#stderr_lines[@]}" -eq 4 ]
  for n in 2 3 4 5; do
    grep -q "^sessgatectl: import: line $n rejected: " <<<"$stderr" ||
      fail "no message for line $n: $stderr"
  done
  run -0 ctl get 0b5c1d2e-1111-4000-8000-000000000001
  run -0 ctl get 0b5c1d2e-1111-4000-8000-000000000002
  run -1 ctl get 0b5c1d2e-1111-4000-8000-000000000003
}

@test "blank lines are ignored and CRLF line ends accepted" {
  run -0 ctl import < <(printf '\n%s\r\n   \n\n%s\n' \
    "$(record 0b5c1d2e-1111-4000-8000-000000000001 3600)" \
    "$(record 0b5c1d2e-1111-4000-8000-000000000002 3600)")
  assert_output 'imported 2, skipped 0 (expired), rejected 0'
}

@test "a line with a NUL byte is rejected, not cut short" {
  run -1 --separate-stderr ctl import < <(printf '%s\n{"id":"x"\0}\n' \
    "$(record 0b5c1d2e-1111-4000-8000-000000000001 3600)")
  assert_output 'imported 1, skipped 0 (expired), rejected 1'
  assert_error_line 'import: line 2 rejected: a NUL byte in the line'
}

@test "import replaces a session with the same id" {
  id=$(ctl create --user before)
  ctl get "$id" | sed 's/"user":"before"/"user":"after"/' > "$BATS_TEST_TMPDIR/one.jsonl"
  run -0 ctl import < "$BATS_TEST_TMPDIR/one.jsonl"
  [ "$(ctl get "$id" | jfield user)" = after ]
  run -0 ctl count
  assert_output 1
  run -0 ctl count --user after
  assert_output 1
}

@test "after 20 rejected lines the rest are counted, not shown" {
  run -1 --separate-stderr ctl import < <(for i in $(seq 30); do echo "junk $i"; done)
  assert_output 'imported 0, skipped 0 (expired), rejected 30'
  [ "${#stderr_lines[@]}" -eq 21 ]
  assert_equal "${stderr_lines[20]}" 'sessgatectl: import: further rejected lines are counted, not shown'
}

@test "an empty input imports nothing, exit 0" {
  run -0 ctl import </dev/null
  assert_output 'imported 0, skipped 0 (expired), rejected 0'
}

@test "5,000 records import in one run, in batches under the lock" {
  n=5000
  slow && n=500
  "$SG_PYTHON" -c '
import json, sys, time, uuid
now = int(time.time())
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": str(uuid.uuid4()), "user": "u%d" % (i % 50),
                      "created": now, "accessed": now, "expires": now + 3600,
                      "idle": 1800, "version": 1, "data": {"i": i}},
                     separators=(",", ":")))' "$n" > "$BATS_TEST_TMPDIR/many.jsonl"
  t0=$(now_ms)
  run -0 ctl import < "$BATS_TEST_TMPDIR/many.jsonl"
  echo "# import of $n records: $(( $(now_ms) - t0 )) ms" >&3
  assert_output "imported $n, skipped 0 (expired), rejected 0"
  run -0 ctl count
  assert_output "$n"
  run -0 ctl count --user u7
  assert_output $(( n / 50 ))
}

@test "export and import take no arguments" {
  run -2 --separate-stderr ctl export out.jsonl
  assert_error_line 'export: takes no arguments'
  run -2 --separate-stderr ctl import in.jsonl
  assert_error_line 'import: takes no arguments'
}
