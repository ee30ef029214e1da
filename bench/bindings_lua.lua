--[[
bench/bindings_lua.lua - Lua binding throughput beside a plain baseline.

  lua5.4 bindings_lua.lua DIR [SESSIONS] [OPS]

Creates SESSIONS sessions (default 1000) with ~200 bytes of data in a
fresh sessgate store under DIR, and the same records as one JSON file per
session under DIR/files, then times in this one process:

  get+data   store:get(id).data                vs  read the file, sg.decode
  save       s.data.n = i; s:save()             vs  sg.encode, write the file
  update     store:update(id, n + 1)            vs  read, decode, +1, encode, write

and prints one line per row: "name ours_ops_s baseline_ops_s ratio".  Both
sides use the same JSON codec (the module's), so the difference is the
store: locking, GDBM, the C record parse and the binding.  The baseline
has no locking, no expiry and no atomicity.  Times are CPU time of this
process (os.clock), the only clock Lua has; neither side waits for locks.
Each row runs in interleaved rounds and prints medians (see the loop at
the end).
]]

local sg = require "sessgate"

local dir, nsess, ops = arg[1], tonumber(arg[2] or 1000), tonumber(arg[3] or 50000)
local data = { cart = sg.array{101, 202, 303}, n = 0, theme = "dark",
               prefs = { lang = "en", tz = "Europe/Berlin", beta = false },
               csrf = "0123456789abcdef0123456789abcdef", ratio = 0.25 }
local st = assert(sg.open(dir .. "/bench.db", { idle_timeout = 3600 }))
os.execute("mkdir -p '" .. dir .. "/files'")
local ids, paths, sessions, records = {}, {}, {}, {}
for i = 1, nsess do
  local s = assert(st:create{ user = "user" .. (i % 50), data = data })
  ids[i] = s.id
  paths[i] = dir .. "/files/" .. s.id .. ".json"
  local f = assert(io.open(paths[i], "w"))
  f:write(assert(s:to_json()))
  f:close()
end
for i = 1, nsess do
  sessions[i] = assert(st:get(ids[i]))
  records[i] = assert(sg.decode(io.open(paths[i]):read("a")))
end

local function read_file(p)
  local f = assert(io.open(p))
  local t = f:read("a")
  f:close()
  return t
end

local function write_file(p, t)
  local f = assert(io.open(p, "w"))
  f:write(t)
  f:close()
end

local rows = {
  { "get+data",
    function(n) for i = 1, n do local _ = st:get(ids[i % nsess + 1]).data.n end end,
    function(n) for i = 1, n do local _ = sg.decode(read_file(paths[i % nsess + 1])).data.n end end,
    ops },
  { "save",
    function(n) for i = 1, n do local s = sessions[i % nsess + 1]; s.data.n = i; assert(s:save()) end end,
    function(n) for i = 1, n do local k = i % nsess + 1; records[k].data.n = i
                                 write_file(paths[k], sg.encode(records[k])) end end,
    ops // 4 },
  { "update",
    function(n) for i = 1, n do assert(st:update(ids[i % nsess + 1],
                                  function(s) s.data.n = s.data.n + 1 end)) end end,
    function(n) for i = 1, n do local k = i % nsess + 1
                                 local r = sg.decode(read_file(paths[k]))
                                 r.data.n = r.data.n + 1
                                 write_file(paths[k], sg.encode(r)) end end,
    ops // 4 },
}

local function rate(f, n)
  local t = os.clock()
  f(n)
  return n / (os.clock() - t)
end

local function median(t)
  table.sort(t)
  local k = #t
  if k % 2 == 1 then return t[(k + 1) // 2] end
  return (t[k // 2] + t[k // 2 + 1]) / 2
end

-- As bench/bindings_py.py: ROUNDS (env BENCH_LUA_ROUNDS, default 9)
-- interleaved rounds, base first in odd rounds and ours first in even
-- ones, each n / ROUNDS operations; medians of the rates and of the
-- per-round ratios, so a burst of load elsewhere tilts no ratio.
local rounds = math.max(tonumber(os.getenv("BENCH_LUA_ROUNDS") or "9") or 9, 1)
for _, row in ipairs(rows) do
  local name, ours, base, n = row[1], row[2], row[3], row[4]
  base(math.min(n, 1000)); ours(math.min(n, 1000))
  local per = math.max(n // rounds, 1)
  local os_, bs, rs = {}, {}, {}
  for r = 1, rounds do
    local b, o
    if r % 2 == 1 then
      b = rate(base, per); o = rate(ours, per)
    else
      o = rate(ours, per); b = rate(base, per)
    end
    os_[r], bs[r], rs[r] = o, b, o / b
  end
  print(("%s %.0f %.0f %.2f"):format(name, median(os_), median(bs), median(rs)))
end
st:close()
