#!/usr/bin/env bats
# tests/bindings/mixed.bats - one store shared by C (sessgatectl and the
# incr tool), Python and Lua processes: what one writes the others read,
# concurrent atomic increments from all three add up exactly, a stale save
# conflicts whoever wrote in between, and a long run of binding calls keeps
# its memory flat.  Run against GDBM and, in the Redis pass of tests/run,
# against Redis (the exact total there is issue #5's acceptance test).
# backends: gdbm redis

load ../helpers/common
load bindings

INCR="$SG_BUILDDIR/tests/tools/incr"

setup() {
  require_bindings
  [ -x "$SG_CTL" ] || fail "sessgatectl is not built"
  setup_store
  export SG_CTL SG_LUA SG_PYTHON SG_LUA_PRELUDE SG_PY_PRELUDE
}

teardown() {
  stop_all
}

# bg CMD...: start CMD in the background (fd 3 closed), remember its PID in
# BG_PIDS for wait_all and in the stop_all list in case the test fails.
bg() {
  "$@" 3>&- </dev/null &
  BG_PIDS+=("$!")
  echo "$!" >> "$(sg_pidfile)"
}

# wait_all: wait for every bg process; fail if any exited non-zero.
wait_all() {
  local pid rc=0
  for pid in "${BG_PIDS[@]}"; do
    wait "$pid" || rc=$?
  done
  BG_PIDS=()
  return "$rc"
}

@test "a session created by sessgatectl reads in Python and Lua with user and typed data" {
  id=$(sessgatectl --store "$STORE" create --user alice --data '{"n":1,"f":2.5,"a":[1,null,"x"],"o":{}}')
  export ID=$id
  run py '
s = sessgate.Store(STORE).get(os.environ["ID"])
print(s.user, json.dumps(s.data, sort_keys=True), type(s["f"]).__name__)'
  assert_success
  assert_output 'alice {"a": [1, null, "x"], "f": 2.5, "n": 1, "o": {}} float'
  run lua_run '
local s = assert(assert(sg.open(STORE)):get(os.getenv("ID")))
print(s.user, sg.encode(s.data), math.type(s.data.n), math.type(s.data.f), s.data.a[2] == sg.null)'
  assert_success
  assert_output 'alice	{"a":[1,null,"x"],"f":2.5,"n":1,"o":{}}	integer	float	true'
}

@test "changes saved by Python, Lua and sessgatectl are seen by the others" {
  id=$(sessgatectl --store "$STORE" create --data '{"ctl":0}')
  export ID=$id
  py '
s = sessgate.Store(STORE).get(os.environ["ID"])
s["py"] = [1.5, "\u00e9"]; s.user = "pyuser"; s.save()'
  lua_run '
local s = assert(assert(sg.open(STORE)):get(os.getenv("ID")))
assert(s.user == "pyuser" and s.data.py[1] == 1.5 and s.data.py[2] == "\u{e9}")
s.data.lua = true
assert(s:save())'
  sessgatectl --store "$STORE" set "$ID" '{"ctl":2}'
  run sessgatectl --store "$STORE" get "$ID"
  assert_success
  assert_output --partial '"user":"pyuser"'
  assert_output --partial '"lua":true'
  assert_output --regexp '"py":\[1\.5,"\\u00[eE]9"\]'
  run py '
s = sessgate.Store(STORE).get(os.environ["ID"])
print(s["ctl"], s["lua"], s["py"])'
  assert_success
  assert_output "2 True [1.5, 'é']"
}

@test "C, Python and Lua processes incrementing one session end at the exact total" {
  [ -x "$INCR" ] || fail "tests/tools/incr is not built"
  id=$(sessgatectl --store "$STORE" create --data '{"n":0}')
  export ID=$id N=200
  BG_PIDS=()
  for _ in 1 2 3; do
    bg "$INCR" "$STORE" "$ID" "$N"
    bg "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
st = sessgate.Store(STORE, lock_timeout_ms=20000)
for _ in range(int(os.environ["N"])):
    with st.update(os.environ["ID"]) as s:
        s["n"] = s["n"] + 1'
    bg "$SG_LUA" -e "$SG_LUA_PRELUDE"'
local st = assert(sg.open(STORE, {lock_timeout_ms = 20000}))
local id = os.getenv("ID")
for _ = 1, tonumber(os.getenv("N")) do
  assert(st:update(id, function(s) s.data.n = s.data.n + 1 end))
end'
  done
  wait_all
  run py 'print(sessgate.Store(STORE).get(os.environ["ID"])["n"])'
  assert_success
  assert_output "1800"
  # The Redis pass really shared one Redis store: its write counter saw
  # the create and all 1800 saves, and every holder released the lease.
  if on_redis && command -v redis-cli >/dev/null; then
    prefix=${STORE#*prefix=}
    writes=$(redis-cli -s "$SG_TEST_REDIS_SOCK" GET "${prefix}writes")
    [ "$writes" -ge 1801 ] || fail "Redis counted $writes writes under $prefix"
    [ "$(redis-cli -s "$SG_TEST_REDIS_SOCK" EXISTS "${prefix}lock")" = 0 ]
  fi
}

@test "a save from a stale copy conflicts whichever language wrote in between" {
  id=$(sessgatectl --store "$STORE" create --data '{"n":0}')
  export ID=$id
  # Python holds a copy while Lua saves: Python's save conflicts.
  run py '
import subprocess
st = sessgate.Store(STORE)
mine = st.get(os.environ["ID"])
subprocess.run([os.environ["SG_LUA"], "-e", os.environ["SG_LUA_PRELUDE"] + """
local s = assert(assert(sg.open(STORE)):get(os.getenv("ID")))
s.data.n = 1
assert(s:save())"""], check=True)
mine["n"] = 2
try:
    mine.save()
except sessgate.Conflict:
    print("python conflict")
print(st.get(os.environ["ID"])["n"])'
  assert_success
  assert_output $'python conflict\n1'
  # Lua holds a copy while Python and sessgatectl save: Lua's save conflicts.
  run lua_run '
local st = assert(sg.open(STORE))
local mine = assert(st:get(os.getenv("ID")))
assert(os.execute(os.getenv("SG_CTL") .. " --store \x27" .. STORE .. "\x27 set " .. os.getenv("ID") .. " \x27{\"n\":3}\x27"))
mine.data.n = 4
local ok, msg, code = mine:save()
print(ok, code == sg.CONFLICT, st:get(os.getenv("ID")).data.n)'
  assert_success
  assert_output "nil	true	3"
}

# Every Redis call is a round trip (about 12x a GDBM get), so the Redis pass
# makes a fifth of the calls: a leak of 10 bytes a call still shows as 2 MiB.
@test "a long run of Python binding calls keeps memory flat (1,000,000 gets + 100,000 saves + error paths; Redis: a fifth)" {
  skip_under_asan
  on_redis && export SG_LEAK_GETS=${SG_LEAK_GETS:-200000}
  run py '
def rss_kb():
    return int(open("/proc/self/statm").read().split()[1]) * 4
st = sessgate.Store(STORE)
sid = st.create(data={"n": 0, "cart": [1, 2, 3], "name": "caf\u00e9"}).id
GETS = int(os.environ.get("SG_LEAK_GETS", "1000000"))
marks = {}
s = st.get(sid)
stale = st.get(sid)
unknown = "00000000-0000-4000-8000-000000000000"
t0 = time.monotonic()
for i in range(GETS):
    g = st.get(sid)
    if i % 10 == 0:
        g.data                      # decode the data too, 1 call in 10
    if i % 10 == 1:
        s["n"] = i; s.save()        # 100,000 saves, through the binding
    if i % 10 == 2:
        assert st.get(unknown) is None          # the error path: NotFound
    if i % 100 == 3:
        try:
            stale.save()                        # the error path: Conflict
        except sessgate.Conflict:
            pass
    if i == GETS // 10:
        marks[10] = rss_kb()
marks[100] = rss_kb()
grow = marks[100] - marks[10]
print(f"rss at 10%: {marks[10]} KiB, at 100%: {marks[100]} KiB, growth {grow} KiB "
      f"(bound 2048 KiB), {time.monotonic() - t0:.1f} s")
assert st.get(sid)["n"] == GETS - 9
assert grow < 2048, grow'
  echo "# python: $output" >&3
  assert_success
}

@test "a long run of Lua binding calls keeps memory flat (300,000 gets + 30,000 saves + error paths; Redis: a fifth)" {
  skip_under_asan
  on_redis && export SG_LEAK_GETS_LUA=${SG_LEAK_GETS_LUA:-60000}
  run lua_run '
local function rss_kb()
  local f = io.open("/proc/self/statm"); local t = f:read("a"); f:close()
  return tonumber(t:match("^%d+%s+(%d+)")) * 4
end
local st = assert(sg.open(STORE))
local id = assert(st:create{data = {n = 0, cart = {1, 2, 3}, name = "caf\u{e9}"}}).id
local GETS = tonumber(os.getenv("SG_LEAK_GETS_LUA") or "300000")
local s = assert(st:get(id))
local stale = assert(st:get(id))
local at10
local t0 = os.time()
for i = 0, GETS - 1 do
  local g = assert(st:get(id))
  if i % 10 == 0 then local _ = g.data end
  if i % 10 == 1 then s.data.n = i; assert(s:save()) end
  if i % 10 == 2 then assert(st:get("00000000-0000-4000-8000-000000000000") == nil) end
  if i % 100 == 3 then assert(select(3, stale:save()) == sg.CONFLICT) end
  if i == GETS // 10 then collectgarbage(); at10 = rss_kb() end
end
collectgarbage()
local at100 = rss_kb()
print(("rss at 10%%: %d KiB, at 100%%: %d KiB, growth %d KiB (bound 2048 KiB), %d s"):format(
  at10, at100, at100 - at10, os.time() - t0))
assert(st:get(id).data.n == GETS - 9)
assert(at100 - at10 < 2048)'
  echo "# lua: $output" >&3
  assert_success
}
