#!/usr/bin/env bats
# tests/bindings/lua.bats - the Lua module `sessgate` (SWIG module
# sessgate_core underneath, idiomatic layer and JSON codec on top): every
# method, every error path (nil, message, code) and the JSON type mapping,
# against a GDBM file and, in the Redis pass of tests/run, a Redis store.
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

@test "require \"sessgate\" works from the build tree without installing" {
  cd "$SG_BUILDDIR"
  cmod=bindings/lua; ! on_luajit || cmod=bindings/lua/luajit
  run env LUA_PATH='bindings/lua/?.lua;;' LUA_CPATH="$cmod/?.so;;" \
    "$SG_LUA" -e 'local sg = require "sessgate"; print(sg._VERSION, sg.CONFLICT)'
  assert_success
  assert_output --regexp '^[0-9]+\.[0-9]+\.[0-9]+	3$'
}

@test "a created session reads back with every JSON type intact" {
  ! on_luajit || skip "n/a on LuaJIT: one number type (no math.type, 1.0 == 1); see the LuaJIT test below"
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{data = {
  s = "caf\u{e9} \u{2603} \u{1F600} \"q\" \\ \n\t\1", i = 42, neg = -7,
  big = math.maxinteger, f = 1.5, one = 1.0, tiny = 1e-300, t = true, fa = false,
  none = sg.null, arr = {1, "two", 3.0, sg.null, sg.array{}, sg.object{}},
  obj = {a = {b = {true}}}, empty_arr = sg.array{}, empty_obj = {}, [""] = "empty key"}})
local d = assert(sg.open(STORE)):get(s.id).data
assert(d.s == "caf\u{e9} \u{2603} \u{1F600} \"q\" \\ \n\t\1")
assert(math.type(d.i) == "integer" and d.i == 42 and d.neg == -7)
assert(d.big == math.maxinteger and math.type(d.big) == "integer")
assert(math.type(d.f) == "float" and d.f == 1.5)
assert(math.type(d.one) == "float" and d.one == 1.0)
assert(d.tiny == 1e-300 and d.t == true and d.fa == false and d.none == sg.null)
assert(#d.arr == 6 and d.arr[2] == "two" and math.type(d.arr[3]) == "float" and d.arr[4] == sg.null)
assert(sg.is_array(d.arr[5]) and not sg.is_array(d.arr[6]))
assert(d.obj.a.b[1] == true and sg.is_array(d.empty_arr) and not sg.is_array(d.empty_obj))
assert(d[""] == "empty key")
print(sg.encode(d.arr), sg.encode(d.empty_arr), sg.encode(d.empty_obj))'
  assert_success
  assert_output '[1,"two",3.0,null,[],{}]	[]	{}'
}

@test "on LuaJIT, data reads back with every JSON type its numbers can hold" {
  on_luajit || skip "n/a on Lua 5.4: the test above checks the integer/float subtypes too"
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{data = {
  s = "caf\195\169 \226\152\131 \240\159\152\128 \"q\" \\ \n\t\1", i = 42, neg = -7,
  big = 2^53, f = 1.5, tiny = 1e-300, t = true, fa = false,
  none = sg.null, arr = {1, "two", 3.5, sg.null, sg.array{}, sg.object{}},
  obj = {a = {b = {true}}}, empty_arr = sg.array{}, empty_obj = {}, [""] = "empty key"}})
local d = assert(sg.open(STORE)):get(s.id).data
assert(d.s == "caf\195\169 \226\152\131 \240\159\152\128 \"q\" \\ \n\t\1")
assert(d.i == 42 and d.neg == -7 and d.big == 2^53 and d.f == 1.5 and d.tiny == 1e-300)
assert(d.t == true and d.fa == false and d.none == sg.null)
assert(#d.arr == 6 and d.arr[2] == "two" and d.arr[3] == 3.5 and d.arr[4] == sg.null)
assert(sg.is_array(d.arr[5]) and not sg.is_array(d.arr[6]))
assert(d.obj.a.b[1] == true and sg.is_array(d.empty_arr) and not sg.is_array(d.empty_obj))
assert(d[""] == "empty key")
print(sg.encode(d.arr), sg.encode(d.empty_arr), sg.encode(d.empty_obj), sg.encode(d.big))'
  assert_success
  assert_output '[1,"two",3.5,null,[],{}]	[]	{}	9007199254740992'
}

@test "the JSON codec is strict: malformed text and unencodable values give nil, message" {
  run lua_run '
local bad_text = {"", "{", "[1,]", "{\"a\":1,}", "{a:1}", "[01]", "[1.]", "[.5]", "[1e]",
  "[\"\\ud800\"]", "[\"\\udc00x\"]", "[\"\\x\"]", "\"a\nb\"", "[\"\255\"]", "{\"a\":1,\"a\":2}",
  "[NaN]", "[Infinity]", "nul", "[1] x", "\"unterminated"}
for _, t in ipairs(bad_text) do
  local v, err = sg.decode(t)
  if v ~= nil or not err:find("JSON decode") then print("accepted", t) end
end
local cyc = {}; cyc.self = cyc
local bad_values = {{[1] = 1, [3] = 3}, {1, x = 2}, {f = print}, {n = 0/0}, {n = math.huge},
  {s = "\255"}, cyc, {[1.5] = 1}, setmetatable({}, {})}
for i, v in ipairs(bad_values) do
  local t, err = sg.encode(v)
  if t ~= nil or not err:find("JSON encode") then print("encoded", i, t) end
end
print(sg.decode(" {\"a\" : [ 1 , -0.5e2 , \"\\u00e9\\ud83d\\ude00\\/\" ] } ").a[3])
print(sg.encode({a = {1, 2}, b = -0.0, c = 1e300, d = 0.1}))'
  assert_success
  assert_output $'é😀/\n{"a":[1,2],"b":-0.0,"c":1e+300,"d":0.1}'
}

@test "data_json gives the stored data text without decoding; damaged_absent reads like the gateway" {
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{data = {k = "a b", n = 1}})
local again = assert(st:get(s.id, { damaged_absent = true, touch = false }))
local text = again:data_json()
assert(text == [[{"k":"a b","n":1}]] or text == [[{"n":1,"k":"a b"}]], text)
assert(rawget(again, "data") == nil, "data was decoded")
local none, msg, code = st:get("00000000-0000-4000-8000-000000000000", { damaged_absent = true })
print(none, code == sg.NOTFOUND)'
  assert_success
  assert_output "nil	true"
}

@test "session fields describe the stored record, as Lua integers" {
  ! on_luajit || skip "n/a on LuaJIT: one number type (no integer subtype)"
  run lua_run '
local st = assert(sg.open(STORE, {idle_timeout = 600, max_age = 3600}))
local t0 = os.time()
local s = assert(st:create{user = "alice", data = {k = 1}})
assert(sg.id_valid(s.id) and s.user == "alice" and s.is_new == true)
assert(math.type(s.created) == "integer" and s.created >= t0 and s.created <= t0 + 2)
assert(s.expires == s.created + 3600 and s.idle_timeout == 600)
local g = assert(st:get(s.id))
assert(g.is_new == false and g.version == s.version and math.type(g.version) == "integer")
local rec = sg.decode(g:to_json())
assert(rec.id == s.id and rec.user == "alice" and rec.data.k == 1)
local v = g.version
g.data.k = 2
assert(g:save() == true and g.version > v)
print("ok")'
  assert_success
  assert_output "ok"
}

@test "get of an unknown or malformed id returns nil, message, sg.NOTFOUND" {
  run lua_run '
local st = assert(sg.open(STORE))
for _, id in ipairs{"00000000-0000-4000-8000-000000000000", "nope", "", "../../x"} do
  local s, msg, code = st:get(id)
  assert(s == nil and type(msg) == "string" and code == sg.NOTFOUND, id)
end
local s, msg, code = st:get(nil)
print(s, code == sg.NOTFOUND)'
  assert_success
  assert_output "nil	true"
}

@test "expired sessions are invisible and purge removes them" {
  run lua_run '
local st = assert(sg.open(STORE))
local short = assert(st:create{user = "u", idle_timeout = 1}).id
local live = assert(st:create{user = "u"}).id
assert(st:count() == 2)
os.execute("sleep 2.1")
local s, msg, code = st:get(short)
assert(s == nil and (code == sg.EXPIRED or code == sg.NOTFOUND), msg)
assert(st:count() == 1 and st:count{user = "u"} == 1 and st:count("u") == 1)
local all = st:sessions()
assert(#all == 1 and all[1].id == live)
print(st:purge(), st:purge())'
  assert_success
  # Redis deleted the expired record itself (PEXPIREAT): purge finds none.
  if on_redis; then assert_output "0	0"; else assert_output "1	0"; fi
}

@test "a mutation of a nested table is saved by save()" {
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{data = {cart = sg.array{}, prefs = {lang = "en"}}})
table.insert(s.data.cart, 42)
s.data.prefs.lang = "de"
assert(s:save())
print(sg.encode(st:get(s.id).data))'
  assert_success
  assert_output '{"cart":[42],"prefs":{"lang":"de"}}'
}

@test "a stale save returns nil, message, sg.CONFLICT and changes nothing" {
  run lua_run '
local st = assert(sg.open(STORE))
local id = assert(st:create{data = {n = 0}}).id
local a, b = st:get(id), st:get(id)
a.data.n = 1; assert(a:save())
b.data.n = 2
local ok, msg, code = b:save()
print(ok, code == sg.CONFLICT, code, msg:find("conflict") ~= nil, st:get(id).data.n)'
  assert_success
  assert_output "nil	true	3	true	1"
}

@test "update runs the function with no lock held and saves (issue #13: another writer is not held up)" {
  run lua_run '
local st = assert(sg.open(STORE))
local id = assert(st:create{data = {n = 0}}).id
for _ = 1, 5 do
  assert(st:update(id, function(s) s.data.n = s.data.n + 1 end) == true)
end
local other = assert(sg.open(STORE, {lock_timeout_ms = 200}))
local r1, r2, r3
assert(st:update(id, function(s)
  r1, r2, r3 = other:create{}
  s.data.n = s.data.n + 1
end))
print(r1 ~= nil, r3 == nil, st:get(id).data.n)'
  assert_success
  assert_output "true	true	6"
}

@test "update abandons the change when the function errors (re-raised) or returns false" {
  run lua_run '
local st = assert(sg.open(STORE, {lock_timeout_ms = 200}))
local id = assert(st:create{data = {n = 0}}).id
local ok, err = pcall(st.update, st, id, function(s) s.data.n = 99; error("boom", 0) end)
print(ok, err)
print(st:update(id, function(s) s.data.n = 98; return false end))
assert(assert(sg.open(STORE, {lock_timeout_ms = 200})):create{})
print(st:get(id).data.n)
local r, msg, code = st:update("00000000-0000-4000-8000-000000000000", function() end)
print(r, code == sg.NOTFOUND)'
  assert_success
  assert_output $'false\tboom\nfalse\n0\nnil\ttrue'
}

@test "delete removes a session; again gives sg.NOTFOUND; a malformed id sg.INVALID" {
  run lua_run '
local st = assert(sg.open(STORE))
local a, b = assert(st:create{}), assert(st:create{})
print(st:delete(a.id))
print(st:get(a.id) == nil, select(3, st:delete(a.id)) == sg.NOTFOUND)
print(select(3, st:delete("junk")) == sg.INVALID)
print(b:delete(), st:count())'
  assert_success
  assert_output $'true\ntrue\ttrue\ntrue\ntrue\t0'
}

@test "rotate and login give a new id, keep the data; the old id of a rotate resolves for the default grace, a login's dies at once" {
  # Issue #12: a plain rotate leaves the default grace window (10 s), a
  # login (user change) none, nor rotate{grace = false} or rotate_grace = 0.
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{data = {k = "v"}})
local old = s.id
s.data.pending = 1
local new = assert(s:rotate())
assert(new ~= old and new == s.id)
local via_old = assert(st:get(old), "the old id resolves within the grace")
assert(via_old.id == new)
local before = s.id
local id2 = assert(s:login("bob"))
assert(id2 ~= before and st:get(before) == nil, "a login leaves no grace")
local g = assert(st:get(id2))
print(g.user, g.data.k, g.data.pending, st:count{user = "bob"})
local b = assert(st:create{user = "u"})
local o = b.id
assert(b:rotate{grace = false})
print(st:get(o))
local st0 = assert(sg.open(STORE, {rotate_grace = 0}))
local c = assert(st0:create{user = "u"})
o = c.id
assert(c:rotate())
print(st0:get(o) == nil, st:get(o) == nil)
for _, r in ipairs(sg.store_options()) do
  if r.name == "rotate_grace" then print(r.min, r.max, r.default) end
end'
  assert_success
  assert_line --index 0 "bob	v	1	1"
  assert_line --index 1 --regexp "^nil	session .*: not found	1$"
  assert_line --index 2 "true	true"
  assert_line --index 3 "0	300	10"
}

@test "the user field is stored by save and can be cleared" {
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{})
assert(s.user == nil)
s.user = "carol"; assert(s:save())
assert(st:get(s.id).user == "carol")
s.user = nil; assert(s:save())
print(st:get(s.id).user)
s.user = "bad\nname"
local ok, msg, code = s:save()
print(ok, code == sg.INVALID)'
  assert_success
  assert_output $'nil\nnil\ttrue'
}

@test "sessions, ids and count cover the live sessions of a user" {
  run lua_run '
local st = assert(sg.open(STORE))
local a1 = st:create{user = "alice"}.id
local b1 = st:create{user = "bob"}.id
local a2 = st:create{user = "alice"}.id
st:create{}
local al = st:sessions{user = "alice"}
local got = {al[1].id, al[2].id}; table.sort(got)
local want = {a1, a2}; table.sort(want)
assert(#al == 2 and got[1] == want[1] and got[2] == want[2])
assert(#st:sessions() == 4 and st:ids("bob")[1] == b1 and #st:ids{user = "nobody"} == 0)
print(st:count(), st:count{user = "alice"}, st:count("nobody"))'
  assert_success
  assert_output "4	2	0"
}

@test "bad data, bad users and oversized data return nil, message, code" {
  run lua_run '
local st = assert(sg.open(STORE, {max_data = 1024}))
local function code(...) return (select(3, ...)) end
assert(code(st:create{data = {1, 2}}) == sg.INVALID)
assert(code(st:create{data = "text"}) == sg.INVALID)
assert(code(st:create{data = {f = print}}) == sg.INVALID)
assert(code(st:create{user = ""}) == sg.INVALID)
assert(code(st:create{user = ("x"):rep(300)}) == sg.INVALID)
assert(code(st:create{data = {x = ("y"):rep(2000)}}) == sg.TOOBIG)
local s = assert(st:create{data = {x = "small"}})
s.data.x = ("y"):rep(2000)
assert(code(s:save()) == sg.TOOBIG)
s.data = {x = 0/0}
assert(code(s:save()) == sg.INVALID)
print(st:count(), st:get(s.id).data.x)'
  assert_success
  assert_output "1	small"
}

@test "open reports a missing directory, a bad option and a missing path as nil, message, code" {
  MISSING=$(unreachable_store)
  export MISSING
  run lua_run '
local st, msg, code = sg.open(os.getenv("MISSING"))
print(st, code == sg.STORE, msg:find(os.getenv("MISSING"), 1, true) ~= nil)
print(select(3, sg.open(STORE, {idle_timeot = 5})) == sg.INVALID)
print(select(3, sg.open(STORE, {idle_timeout = -5})) == sg.INVALID)
print(select(3, sg.open(nil)) == sg.INVALID)'
  assert_success
  assert_output $'nil\ttrue\ttrue\ntrue\ntrue\ntrue'
}

@test "get with memo = true sees every write of another handle at once (SG_GET_MEMO)" {
  run lua_run '
local a, b = assert(sg.open(STORE)), assert(sg.open(STORE))
local s = assert(a:create{user = "alice", data = {k = 1}})
local M = {memo = true, damaged_absent = true}
assert(b:get(s.id, M).data.k == 1)
assert(b:get(s.id, M).data.k == 1)           -- (the kept copy, on GDBM)
s.data = {k = 2}; assert(s:save())
print(b:get(s.id, M).data.k)
assert(a:delete(s.id))
local g, _, code = b:get(s.id, M)
print(g, code == sg.NOTFOUND)'
  assert_success
  assert_output $'2\nnil\ttrue'
}

@test "a store lock held by another process gives sg.LOCKTIMEOUT" {
  export HELD="$BATS_TEST_TMPDIR/held"
  start_bg "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
with sessgate.Store(STORE).locked():
    open(os.environ["HELD"], "w").close()
    time.sleep(30)' >/dev/null
  for _ in $(seq 100); do [ -e "$HELD" ] && break; sleep 0.05; done
  [ -e "$HELD" ]
  run lua_run '
local st, msg, code = sg.open(STORE, {lock_timeout_ms = 300})
if st then st, msg, code = st:create{} end
print(st, code == sg.LOCKTIMEOUT, msg:find("lock") ~= nil)'
  assert_success
  assert_output "nil	true	true"
}

@test "a closed store refuses calls; close is idempotent and runs for <close>" {
  ! on_luajit || skip "n/a on LuaJIT: <close> is Lua 5.4 syntax (close is tested elsewhere)"
  run lua_run '
local keep
do
  local st <close> = assert(sg.open(STORE))
  keep = st
  assert(st:create{})
end
print(keep:get("00000000-0000-4000-8000-000000000000"))
print(keep:close(), keep:count())
print(assert(sg.open(STORE)):count())'
  assert_success
  assert_output $'nil\tthe store is closed\t4\ntrue\tnil\tthe store is closed\t4\n1'
}

@test "SESSGATE_STORE is used when no path is given" {
  run env SESSGATE_STORE="$STORE" "$SG_LUA" -e "$SG_LUA_PRELUDE"'
local id = assert(assert(sg.open()):create{}).id
print(assert(sg.open(STORE)):get(id) ~= nil)'
  assert_success
  assert_output "true"
}

@test "sessions and stores are collected with their Lua values" {
  skip_under_asan
  run lua_run '
local st = assert(sg.open(STORE))
local id = assert(st:create{data = {pad = ("x"):rep(400), list = {1, 2.5, "three"}}}).id
local function rss()
  local f = io.open("/proc/self/statm"); local t = f:read("a"); f:close()
  return tonumber(t:match("^%d+%s+(%d+)"))
end
for _ = 1, 2000 do local _ = st:get(id).data end
collectgarbage()
local before = rss()
for _ = 1, 10000 do local _ = st:get(id).data end
for _ = 1, 100 do assert(sg.open(STORE)):close(); sg.open(STORE) end
collectgarbage(); collectgarbage()
local grow = (rss() - before) * 4
print("grew " .. grow .. " KiB")
assert(grow < 2048, grow)'
  assert_success
}

@test "assigning s.data replaces the data whole; sg.object and sg.array mark empty tables" {
  run lua_run '
local st = assert(sg.open(STORE))
local s = assert(st:create{data = {a = 1}})
s.data = {list = sg.array(), map = sg.object(), plain = {}, nested = {sg.array{}, {}}}
assert(s:save())
print(sg.encode(st:get(s.id).data))
s.data = {1, 2}
print(select(3, s:save()) == sg.INVALID)'
  assert_success
  assert_output $'{"list":[],"map":{},"nested":[[],{}],"plain":{}}\ntrue'
}

@test "store:delete_user logs one user out everywhere; store:clear empties the store" {
  run lua_run '
local store = assert(sg.open(STORE))
local a = {}
for i = 1, 3 do a[i] = assert(store:create{user = "ann"}).id end
local b = assert(store:create{user = "bob"}).id
print(store:delete_user("ann"), store:get(a[1]) == nil, store:get(b) ~= nil)
print(store:delete_user("ann"), store:count("ann"))
local n, msg, code = store:delete_user(nil)
print(n, code == sg.INVALID)
n, msg, code = store:delete_user("a\tb")
print(n, code == sg.INVALID)
print(store:clear(), store:count(), store:get(b) == nil)'
  assert_success
  assert_line --index 0 "3	true	true"
  assert_line --index 1 "0	0"
  assert_line --index 2 "nil	true"
  assert_line --index 3 "nil	true"
  assert_line --index 4 "1	0	true"
}

@test "csrf_token, check_csrf, flash and pop_flashes" {
  run lua_run '
local store = assert(sg.open(STORE))
local s = assert(store:create{})
local t = s.csrf_token
print(#t, s:check_csrf(t), s:check_csrf("x"), s:check_csrf(nil))
assert(s:flash("Saved", "info"))
assert(s:save())
local g = assert(store:get(s.id))
local f = assert(g:pop_flashes())
print(#f, f[1].message, f[1].category)
print(#assert(g:pop_flashes()))
assert(g:login("ann"))
print(g.csrf_token ~= t, g:check_csrf(t))'
  assert_success
  assert_line --index 0 "64	true	false	false"
  assert_line --index 1 "1	Saved	info"
  assert_line --index 2 "0"
  assert_line --index 3 "true	false"
}

@test "sg.store_options() is the library's option table, and sg.open checks by it" {
  run lua_run '
local names = {}
for _, o in ipairs(sg.store_options()) do names[#names + 1] = o.name end
print(table.concat(names, " "))
for _, o in ipairs(sg.store_options()) do
  if o.name == "lock_timeout_ms" then print(o.min, o.max, o.default) end
  if o.name == "sync" then print(o.min, o.default) end
end
local st, msg, code = sg.open(STORE, {lock_timeout_ms = 3600001})
print(st, code == sg.INVALID, msg:find("store option lock_timeout_ms") ~= nil)
print(sg.open(STORE, {bogus = 1}))'
  assert_success
  assert_output "lock_timeout_ms idle_timeout max_age touch_interval max_per_user max_data rotate_grace sync group readonly
1	3600000	5000
nil	false
nil	true	true
nil	unknown store option bogus	$(lua_run 'print(sg.INVALID)')"
}
