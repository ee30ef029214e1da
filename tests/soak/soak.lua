-- tests/soak/soak.lua - the wrk script of the soak test (tests/soak/soak.bash).
--
--   wrk -s soak.lua URL -- IDS_FILE CUTOFF_EPOCH
--
-- Every request is drawn at random from the mix below.  IDS_FILE holds the
-- sessions soak.bash made beforehand ("counter K ID", "reader K ID",
-- "expired - ID").  From CUTOFF_EPOCH on, nothing that changes a session is
-- sent any more (increments, logins, logouts, rotations become reads), so
-- every change is answered before wrk stops and the final store can be
-- checked exactly against the access log.
--
-- Each thread keeps a pool of the sessions it logged in (from the login's
-- and rotation's Set-Cookie); logouts and rotations take a session out of
-- the pool when they are sent.  done() writes the pool (the sessions the
-- clients still hold, which must be exactly the live soaker-* sessions) to
-- $SOAK_WRK_OUT.  The counting itself is done from nginx's access log.

local POOL_MAX = 48

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
   table.insert(threads, thread)
end

local counters, readers, expired = {}, {}, {}
local cutoff = 0
local host = "127.0.0.1"
-- Globals, so that done() can read them with thread:get(): tid (set by
-- setup() before init runs) and the pool.
pool, pool_n = {}, 0

function init(args)
   tid = tonumber(tid) or 0
   math.randomseed(os.time() * 100 + tid)
   cutoff = tonumber(args[2]) or 0
   host = wrk.headers["Host"] or wrk.host
   for line in io.lines(args[1]) do
      local kind, k, id = line:match("^(%S+) (%S+) (%S+)$")
      if kind == "counter" then table.insert(counters, {k = k, id = id})
      elseif kind == "reader" then table.insert(readers, {k = k, id = id})
      elseif kind == "expired" then table.insert(expired, id)
      end
   end
   assert(#counters > 0 and #readers > 1 and #expired > 0, "soak.lua: bad ids file")
end

local function get(path, cookie)
   local h = {}
   if cookie then h["Cookie"] = cookie end
   return wrk.format("GET", path, h)
end

local hex = "0123456789abcdef"
local function random_id()
   local t = {}
   for i = 1, 36 do
      if i == 9 or i == 14 or i == 19 or i == 24 then t[i] = "-"
      else local r = math.random(16); t[i] = hex:sub(r, r) end
   end
   return table.concat(t)
end

local function pick(t) return t[math.random(#t)] end

-- Forged and malformed cookies.  None may select a session: kinds 5-7 and
-- 12 carry the ids of live sessions, in shapes that must not count.
local function forged(kind)
   local a, b = pick(readers).id, nil
   repeat b = pick(readers).id until b ~= a
   if kind == 1 then return "sessgate=" .. random_id()                   -- unknown id
   elseif kind == 2 then return "sessgate=" .. pick(expired)             -- expired id
   elseif kind == 3 then return "sessgate=" .. a:sub(1, 35)              -- one short
   elseif kind == 4 then return "sessgate=" .. a .. "0"                  -- one long
   elseif kind == 5 then return "sessgate=" .. a:upper()                 -- not lower-case
   elseif kind == 6 then return "sessgate=" .. a .. "; sessgate=" .. b   -- two live ids
   elseif kind == 7 then return "sessgate=" .. a .. ", sessgate=" .. random_id()
   elseif kind == 8 then return "xsessgate=" .. a .. "; sessgate_=" .. b -- other names
   elseif kind == 9 then return "sessgate=" .. a:sub(1, 35) .. "g"       -- not hex
   elseif kind == 10 then return "sessgate="                             -- empty
   elseif kind == 11 then return "sessgate=" .. string.rep("a", 3000)    -- oversized value
   else return nil end                                                    -- 12: two headers
end
local NFORGED = 12

local function forged_request(path, kind)
   local c = forged(kind)
   if c then return get(path .. "?f=" .. kind, c) end
   local a, b = pick(readers).id, nil
   repeat b = pick(readers).id until b ~= a
   return string.format("GET %s?f=%d HTTP/1.1\r\nHost: %s\r\nCookie: sessgate=%s\r\n" ..
                        "Cookie: sessgate=%s\r\n\r\n", path, kind, host, a, b)
end

local function take_from_pool()
   if pool_n == 0 then return nil end
   local i = math.random(pool_n)
   local id = pool[i]
   pool[i] = pool[pool_n]
   pool[pool_n] = nil
   pool_n = pool_n - 1
   return id
end

local function read_request()
   local r = pick(readers)
   return get("/auth/read?r=" .. r.k, "sessgate=" .. r.id)
end

function request()
   local x = math.random()
   local mutate = os.time() < cutoff
   if x < 0.35 then
      return read_request()
   elseif x < 0.60 then
      if not mutate then return read_request() end
      local c = pick(counters)
      return get("/cgi/incr?c=" .. c.k, "sessgate=" .. c.id)
   elseif x < 0.70 then
      return forged_request("/auth/forged", math.random(NFORGED))
   elseif x < 0.75 then
      return forged_request("/cgi/peek", math.random(NFORGED))
   elseif x < 0.82 then
      if pool_n == 0 then return read_request() end
      return get("/auth/mine", "sessgate=" .. pool[math.random(pool_n)])
   elseif x < 0.91 then
      if not mutate then return read_request() end
      if pool_n >= POOL_MAX then
         return get("/cgi/logout", "sessgate=" .. take_from_pool())
      end
      return get("/cgi/login?u=soaker-" .. tid .. "-" .. math.random(4))
   elseif x < 0.97 then
      if not mutate or pool_n == 0 then return read_request() end
      return get("/cgi/logout", "sessgate=" .. take_from_pool())
   else
      if not mutate or pool_n == 0 then return read_request() end
      return get("/cgi/rotate", "sessgate=" .. take_from_pool())
   end
end

function response(status, headers, body)
   if status ~= 200 or not body then return end
   if body:sub(1, 9) == "logged in" or body:sub(1, 7) == "rotated" then
      local c = headers["Set-Cookie"] or headers["set-cookie"] or ""
      local id = c:match("^sessgate=([0-9a-f%-]+);")
      if id then
         pool_n = pool_n + 1
         pool[pool_n] = id
      end
   end
end

function done(summary, latency, requests)
   local path = os.getenv("SOAK_WRK_OUT")
   if not path then return end
   local f = assert(io.open(path, "w"))
   for _, t in ipairs(threads) do
      local p = t:get("pool") or {}      -- wrk copies the thread's table here
      for _, id in pairs(p) do f:write("pool ", id, "\n") end
   end
   f:close()
end
