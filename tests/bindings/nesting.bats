#!/usr/bin/env bats
# tests/bindings/nesting.bats - one nesting limit for session data
# (SG_MAX_DEPTH, 64 levels, the data object being level 1), enforced by
# the library at write time, the same through sessgatectl, Python and Lua:
# data at the limit is stored and every language reads it back; one level
# more is refused with "too big" and nothing is saved.
# backends: gdbm redis

load ../helpers/common
load bindings

setup() {
  require_bindings
  setup_store
}

teardown() {
  stop_all
}

# deep N: a data object nested N levels deep ({"a":{"a":...{}}}).
deep() {
  local n=$1 open='' close='' i
  for ((i = 1; i < n; i++)); do open+='{"a":' close+='}'; done
  printf '%s{}%s\n' "$open" "$close"
}

ctl() { sessgatectl --store "$STORE" "$@"; }

# depth_in_py ID / depth_in_lua ID: the depth of the session's data as the
# language reads it.
depth_in_py() {
  py '
d, n = sessgate.Store(STORE).get(sys.argv[1]).data, 1
while d: d, n = d["a"], n + 1
print(n)' "$1"
}
depth_in_lua() {
  SID=$1 lua_run '
local d, n = assert(assert(sg.open(STORE)):get(os.getenv("SID"))).data, 1
while next(d) do d, n = d.a, n + 1 end
print(n)'
}

@test "the limit is 64 levels in the C header, Python and Lua alike" {
  grep -Eq '^#define SG_MAX_DEPTH +64\b' "$SG_SRCDIR/libcore/sessgate.h"
  run -0 py 'print(sessgate.MAX_DEPTH)'
  assert_output 64
  run -0 lua_run 'print(sg.MAX_DEPTH, math.type(sg.MAX_DEPTH))'
  assert_output $'64\tinteger'
}

@test "sessgatectl stores data at the limit and every language reads it back" {
  id=$(ctl create)
  run -0 ctl set "$id" "$(deep 64)"
  run -0 depth_in_py "$id"
  assert_output 64
  run -0 depth_in_lua "$id"
  assert_output 64
  run -0 ctl get "$id"
  assert_output --partial "$(deep 64)"
}

@test "sessgatectl refuses data one level past the limit, and far past it, saving nothing" {
  id=$(ctl create --data '{"keep":1}')
  for n in 65 1500; do
    run -2 --separate-stderr ctl set "$id" "{\"x\":$(deep $((n - 1)))}"
    assert_equal "$stderr" "sessgatectl: session data: nested deeper than the limit of 64 levels (SG_MAX_DEPTH; the data object is level 1)"
  done
  run -2 --separate-stderr ctl create --data "$(deep 65)"
  [[ "$stderr" == *"nested deeper than the limit of 64 levels"* ]]
  run -0 ctl get "$id"
  assert_output --partial '"data":{"keep":1}'
  [ "$(ctl count)" = 1 ]
}

@test "sessgatectl import refuses a record whose data is past the limit" {
  id=$(ctl create --data '{"keep":1}')
  rec=$(ctl get "$id")
  ctl delete "$id"
  bad=${rec/\"data\":\{\"keep\":1\}/\"data\":$(deep 65)}
  [ "$bad" != "$rec" ]
  run ctl import <<<"$bad"
  assert_failure
  [ "$(ctl count)" = 0 ]
  run -0 ctl import <<<"${rec/\"data\":\{\"keep\":1\}/\"data\":$(deep 64)}"
  run -0 depth_in_py "$id"
  assert_output 64
}

@test "Python saves data at the limit and refuses one level more with TooBig, saving nothing" {
  run -0 py '
def deep(n):
    d = {}
    for _ in range(n - 1): d = {"a": d}
    return d
st = sessgate.Store(STORE)
s = st.create(data=deep(64))
assert st.get(s.id).data == deep(64)
s["b"] = 1; s.save()
v = s.version
for n in (65, 1500):
    try:                        # refused at assignment already
        s["a"] = deep(n - 1)
    except sessgate.TooBig as e:
        print(e)
    else:
        raise SystemExit("accepted %d levels" % n)
s["a"] = deep(63)
s["a"]["a"] = deep(63)          # grown in place: refused at save
try:
    s.save()
except sessgate.TooBig as e:
    print("at save")
else:
    raise SystemExit("saved 65 levels")
s["a"] = deep(63)
back = st.get(s.id)
assert back.version == v and back.data == dict(deep(64), b=1), back.data
try:
    st.create(data=deep(65))
except sessgate.TooBig:
    pass
assert st.count() == 1
print("ok")'
  assert_line -n 0 "session data: nested deeper than the limit of 64 levels (sessgate.MAX_DEPTH; the data object is level 1)"
  assert_line -n 2 "at save"
  assert_line -n 3 ok
}

@test "a list counts as a level in Python as in C" {
  run -0 py '
d = []
for _ in range(62): d = [d]
st = sessgate.Store(STORE)
s = st.create(data={"l": d})          # 1 + 63 levels
try:
    s["l"] = [d]
except sessgate.TooBig:
    print("refused")'
  assert_output refused
}

@test "Lua saves data at the limit and refuses one level more with sg.TOOBIG, saving nothing" {
  run -0 lua_run '
local function deep(n)
  local d = {}
  for _ = 1, n - 1 do d = {a = d} end
  return d
end
local st = assert(sg.open(STORE))
local s = assert(st:create{data = deep(64)})
local v = s.version
for _, n in ipairs{65, 1500} do
  s.data = {a = deep(n - 1)}
  local ok, msg, code = s:save()
  assert(ok == nil and code == sg.TOOBIG, tostring(msg))
  print(msg)
end
local back = assert(st:get(s.id))
assert(back.version == v)
local ok, msg, code = st:create{data = deep(65)}
assert(ok == nil and code == sg.TOOBIG)
print(st:count())'
  assert_line -n 0 --partial "nested deeper than the limit of 64 levels (sg.MAX_DEPTH"
  assert_line -n 2 1
  run -0 depth_in_py "$(lua_run 'print(assert(sg.open(STORE)):ids()[1])')"
  assert_output 64
}
