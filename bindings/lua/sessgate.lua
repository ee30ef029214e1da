--[[
sessgate.lua - web sessions shared with the sessgate gateway, in Lua 5.4
and LuaJIT (OpenResty).

    local sg = require "sessgate"
    local store = assert(sg.open("sessions.db", {idle_timeout = 1800}))
    local s = assert(store:create{user = "alice", data = {cart = sg.array{}}})
    s = store:get(id)                      -- nil, message, code when absent
    s.data.cart[#s.data.cart + 1] = 42
    local ok, err, code = s:save()         -- code == sg.CONFLICT when stale
    store:update(id, function(s) s.data.n = (s.data.n or 0) + 1 end)

The store is the GDBM file that the gateway, sessgatectl and the Python
binding use; processes coordinate through file locks.  This layer is
written by hand over the raw SWIG module sessgate_core (generated from
bindings/sessgate.i), which already returns nil, message, code for every C
error and frees C objects from __gc.  Every function here follows the same
rule: a failure returns nil, message, code (the SG_* numbers, also
available as sg.NOTFOUND, sg.CONFLICT, ...).  Programming errors (wrong
argument types) raise.

Session data crosses the boundary as compact ASCII JSON, encoded whole at
save time.  JSON maps onto Lua without losing types: integers stay
integers and floats stay floats (1.0 is written "1.0"), null is the
sentinel sg.null, and decoded arrays and objects carry metatables so that
empty ones survive a round trip.  For tables you build, an empty table is
an object unless made with sg.array{}; sg.object{} marks the other case.
A table with keys 1..n is an array; holes must be filled with sg.null.

Why this codec and not lua-cjson (Debian's 2.1.0, the one OpenResty uses
too): cjson turns every integer into a float on Lua 5.4, writes at most
14 significant digits (2^53 becomes 9.007199254741e+15), and decodes [] and
{} to the same table, so a save would silently change data that the
gateway and the other languages share.  This one keeps types, rejects what
it cannot represent, and runs unchanged on Lua 5.4 and LuaJIT.
]]

local core = require "sessgate_core"

local M = {}

-- Lua 5.1 syntax only (LuaJIT, OpenResty): no bitwise operators, no goto,
-- no integer division; the 5.3+ library functions used below have
-- portable stand-ins.  On LuaJIT every number is a double: an integral
-- value is written as an integer (1.0 is saved as 1), which is all its
-- number type can tell.
local mtype = math.type or function(v)
  if type(v) ~= "number" then return nil end
  if v == 0 and 1 / v < 0 then return "float" end       -- -0.0
  if v == math.floor(v) and v >= -2^53 and v <= 2^53 then return "integer" end
  return "float"
end
local toint = math.tointeger or function(v)
  if mtype(v) == "integer" then return v end
  return nil
end

M._VERSION = core.version()

-- Status codes, as integers (SWIG's constants are Lua floats).
M.OK = toint(core.SG_OK)
M.NOTFOUND = toint(core.SG_ENOTFOUND)
M.EXPIRED = toint(core.SG_EEXPIRED)
M.CONFLICT = toint(core.SG_ECONFLICT)
M.INVALID = toint(core.SG_EINVAL)
M.LOCKTIMEOUT = toint(core.SG_ELOCKTIMEOUT)
M.STORE = toint(core.SG_ESTORE)
M.NOMEM = toint(core.SG_ENOMEM)
M.TOOBIG = toint(core.SG_ETOOBIG)

local GET_NOTOUCH = toint(core.SG_GET_NOTOUCH)
-- Deepest nesting of session data a save accepts (the data table is level
-- 1): the C library's SG_MAX_DEPTH, the same in every language.
M.MAX_DEPTH = toint(core.SG_MAX_DEPTH)

--------------------------------------------------------------------- JSON

local null = setmetatable({}, {
  __name = "sessgate.null",
  __tostring = function() return "sg.null" end,
  __newindex = function() error("sg.null is read-only", 2) end,
})
M.null = null

local array_mt = { __name = "sessgate.array" }
local object_mt = { __name = "sessgate.object" }

--- Mark t (or a new table) as a JSON array; returns it.
function M.array(t) return setmetatable(t or {}, array_mt) end
--- Mark t (or a new table) as a JSON object; returns it.
function M.object(t) return setmetatable(t or {}, object_mt) end
--- Whether t was marked (or decoded) as an array.
function M.is_array(t) return getmetatable(t) == array_mt end

local MAX_DEPTH = 512          -- decoding; writes stop at M.MAX_DEPTH
local TOO_DEEP = "nested deeper than the limit of " .. M.MAX_DEPTH ..
  " levels (sg.MAX_DEPTH; the data table is level 1)"
local fmt, byte, char, concat = string.format, string.byte, string.char, table.concat

-- UTF-8: the utf8 library of Lua 5.3+, or the same three functions in
-- plain Lua (strict: no overlongs, no surrogates, nothing past U+10FFFF).
local utf8_len, utf8_codes, utf8_char
if utf8 then
  utf8_len, utf8_codes, utf8_char = utf8.len, utf8.codes, utf8.char
else
  local function decode_at(s, i)          -- code point, next index | nil
    local c = byte(s, i)
    if c < 0x80 then return c, i + 1 end
    local n, cp, min
    if c >= 0xc2 and c <= 0xdf then n, cp, min = 1, c - 0xc0, 0x80
    elseif c >= 0xe0 and c <= 0xef then n, cp, min = 2, c - 0xe0, 0x800
    elseif c >= 0xf0 and c <= 0xf4 then n, cp, min = 3, c - 0xf0, 0x10000
    else return nil end
    for k = 1, n do
      local b = byte(s, i + k)
      if not b or b < 0x80 or b > 0xbf then return nil end
      cp = cp * 64 + (b - 0x80)
    end
    if cp < min or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff) then return nil end
    return cp, i + n + 1
  end
  utf8_len = function(s)
    local i, n = 1, 0
    while i <= #s do
      local cp, nxt = decode_at(s, i)
      if not cp then return nil, i end
      i, n = nxt, n + 1
    end
    return n
  end
  utf8_codes = function(s)
    local i = 1
    return function()
      if i > #s then return nil end
      local at = i
      local cp, nxt = decode_at(s, i)
      if not cp then error("invalid UTF-8 code", 2) end
      i = nxt
      return at, cp
    end
  end
  utf8_char = function(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then
      return char(0xc0 + math.floor(cp / 64), 0x80 + cp % 64)
    end
    if cp < 0x10000 then
      return char(0xe0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64,
                  0x80 + cp % 64)
    end
    return char(0xf0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
end

local short_escapes = {
  [0x22] = '\\"', [0x5c] = "\\\\", [0x08] = "\\b", [0x0c] = "\\f",
  [0x0a] = "\\n", [0x0d] = "\\r", [0x09] = "\\t",
}

local function encode_string(s, out)
  -- Fast path: printable ASCII without quote or backslash.
  if not s:find('[%z\1-\31"\\\127-\255]') then
    out[#out + 1] = '"' .. s .. '"'
    return
  end
  if not utf8_len(s) then error("string is not valid UTF-8", 0) end
  local buf = { '"' }
  for _, c in utf8_codes(s) do
    local e = short_escapes[c]
    if e then
      buf[#buf + 1] = e
    elseif c < 0x20 or c == 0x7f then
      buf[#buf + 1] = fmt("\\u%04x", c)
    elseif c < 0x80 then
      buf[#buf + 1] = char(c)
    elseif c < 0x10000 then
      buf[#buf + 1] = fmt("\\u%04x", c)
    else
      c = c - 0x10000
      buf[#buf + 1] = fmt("\\u%04x\\u%04x", 0xd800 + math.floor(c / 1024), 0xdc00 + c % 1024)
    end
  end
  buf[#buf + 1] = '"'
  out[#out + 1] = concat(buf)
end

local function encode_number(v, out)
  if mtype(v) == "integer" then
    out[#out + 1] = fmt("%d", v)
    return
  end
  if v ~= v or v == math.huge or v == -math.huge then
    error("cannot encode " .. tostring(v) .. " in JSON", 0)
  end
  local s
  for p = 15, 17 do          -- shortest text that reads back the same
    s = fmt("%." .. p .. "g", v)
    if tonumber(s) == v then break end
  end
  if not s:find("[.eEn]") then s = s .. ".0" end   -- stays a float
  out[#out + 1] = s
end

local encode_value

-- "array" or "object" for a table, or an error for mixed/sparse keys.
local function table_kind(t)
  local mt = getmetatable(t)
  if mt == array_mt then return "array" end
  if mt == object_mt then return "object" end
  if mt ~= nil then error("cannot encode a table with a foreign metatable", 0) end
  local n, max, strings = 0, 0, false
  for k in pairs(t) do
    if type(k) == "string" then
      strings = true
    elseif mtype(k) == "integer" and k > 0 then
      n = n + 1
      if k > max then max = k end
    else
      error("cannot encode a table key of type " .. (mtype(k) or type(k)), 0)
    end
    if strings and n > 0 then error("table mixes array and object keys", 0) end
  end
  if n > 0 then
    if max ~= n then error("array has holes (use sg.null)", 0) end
    return "array"
  end
  return "object"
end

function encode_value(v, out, depth)
  local tv = type(v)
  if tv == "string" then
    encode_string(v, out)
  elseif tv == "number" then
    encode_number(v, out)
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == null then
    out[#out + 1] = "null"
  elseif tv == "table" then
    if depth >= M.MAX_DEPTH then error(TOO_DEEP, 0) end   -- also ends cycles
    if table_kind(v) == "array" then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("object key is not a string", 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode_string(k, out)
        out[#out + 1] = ":"
        encode_value(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. tv .. " in JSON", 0)
  end
end

--- Encode v as compact ASCII JSON.  Returns the text, or nil, message,
--- code (sg.TOOBIG when nested deeper than sg.MAX_DEPTH, else sg.INVALID).
function M.encode(v)
  local out = {}
  local ok, err = pcall(encode_value, v, out, 0)
  if not ok then
    return nil, "JSON encode: " .. tostring(err), err == TOO_DEEP and M.TOOBIG or M.INVALID
  end
  return concat(out)
end

-- Decoder: strict RFC 8259, one value, nothing after it.
local decode_value

local function derr(s, pos, what)
  error(fmt("JSON decode: %s at byte %d", what, pos), 0)
end

local function skip_ws(s, pos)
  return s:find("[^ \t\r\n]", pos) or #s + 1
end

local unescape = { [0x22] = '"', [0x5c] = "\\", [0x2f] = "/", [0x62] = "\b",
                   [0x66] = "\f", [0x6e] = "\n", [0x72] = "\r", [0x74] = "\t" }

local function decode_string(s, pos)      -- pos at the opening quote
  local buf, i = {}, pos + 1
  while true do
    local j = s:find('["\\%z\1-\31]', i)
    if not j then derr(s, pos, "unterminated string") end
    if j > i then buf[#buf + 1] = s:sub(i, j - 1) end
    local c = byte(s, j)
    if c == 0x22 then
      local str = concat(buf)
      if not utf8_len(str) then derr(s, pos, "invalid UTF-8 in string") end
      return str, j + 1
    elseif c == 0x5c then
      local e = byte(s, j + 1)
      if e == 0x75 then
        local hex = s:match("^%x%x%x%x", j + 2)
        if not hex then derr(s, j, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        i = j + 6
        if cp >= 0xd800 and cp <= 0xdbff then
          local lo = s:match("^\\u(%x%x%x%x)", i)
          lo = lo and tonumber(lo, 16)
          if not lo or lo < 0xdc00 or lo > 0xdfff then derr(s, j, "lone surrogate") end
          cp = 0x10000 + (cp - 0xd800) * 1024 + (lo - 0xdc00)
          i = i + 6
        elseif cp >= 0xdc00 and cp <= 0xdfff then
          derr(s, j, "lone surrogate")
        end
        buf[#buf + 1] = utf8_char(cp)
      else
        local u = e and unescape[e]
        if not u then derr(s, j, "bad escape") end
        buf[#buf + 1] = u
        i = j + 2
      end
    else
      derr(s, j, "control character in string")
    end
  end
end

local function decode_number(s, pos)
  local int = s:match("^-?0", pos) or s:match("^-?[1-9]%d*", pos)
  if not int then derr(s, pos, "unexpected character") end
  local e = pos + #int
  local frac = s:match("^%.%d+", e)
  if frac then e = e + #frac end
  local exp = s:match("^[eE][+-]?%d+", e)
  if exp then e = e + #exp end
  if s:find("^[%.eE]", e) then derr(s, e, "bad number") end
  local text = s:sub(pos, e - 1)
  local v
  if frac or exp then
    v = tonumber(text) + 0.0
  else
    v = toint(tonumber(text)) or tonumber(text)   -- beyond int64: float
  end
  return v, e
end

function decode_value(s, pos, depth)
  pos = skip_ws(s, pos)
  local c = byte(s, pos)
  if c == 0x7b then                                   -- {
    if depth > MAX_DEPTH then derr(s, pos, "nesting too deep") end
    local obj = setmetatable({}, object_mt)
    pos = skip_ws(s, pos + 1)
    if byte(s, pos) == 0x7d then return obj, pos + 1 end
    while true do
      if byte(s, pos) ~= 0x22 then derr(s, pos, "expected a key") end
      local k
      k, pos = decode_string(s, pos)
      if rawget(obj, k) ~= nil then derr(s, pos, "duplicate key " .. fmt("%q", k)) end
      pos = skip_ws(s, pos)
      if byte(s, pos) ~= 0x3a then derr(s, pos, "expected ':'") end
      obj[k], pos = decode_value(s, pos + 1, depth + 1)
      pos = skip_ws(s, pos)
      c = byte(s, pos)
      if c == 0x7d then return obj, pos + 1 end
      if c ~= 0x2c then derr(s, pos, "expected ',' or '}'") end
      pos = skip_ws(s, pos + 1)
    end
  elseif c == 0x5b then                               -- [
    if depth > MAX_DEPTH then derr(s, pos, "nesting too deep") end
    local arr, n = setmetatable({}, array_mt), 0
    pos = skip_ws(s, pos + 1)
    if byte(s, pos) == 0x5d then return arr, pos + 1 end
    while true do
      n = n + 1
      arr[n], pos = decode_value(s, pos, depth + 1)
      pos = skip_ws(s, pos)
      c = byte(s, pos)
      if c == 0x5d then return arr, pos + 1 end
      if c ~= 0x2c then derr(s, pos, "expected ',' or ']'") end
      pos = pos + 1
    end
  elseif c == 0x22 then
    return decode_string(s, pos)
  elseif c == 0x74 and s:sub(pos, pos + 3) == "true" then
    return true, pos + 4
  elseif c == 0x66 and s:sub(pos, pos + 4) == "false" then
    return false, pos + 5
  elseif c == 0x6e and s:sub(pos, pos + 3) == "null" then
    return null, pos + 4
  elseif c == nil then
    derr(s, pos, "unexpected end")
  end
  return decode_number(s, pos)
end

--- Decode JSON text.  Returns the value, or nil, message.
function M.decode(s)
  if type(s) ~= "string" then return nil, "JSON decode: not a string" end
  local ok, v, pos = pcall(decode_value, s, 1, 0)
  if not ok then return nil, v end
  if skip_ws(s, pos) <= #s then return nil, fmt("JSON decode: trailing data at byte %d", pos) end
  return v
end

------------------------------------------------------------------ sessions

local Session = {}
local session_mt = { __name = "sessgate.session" }

-- Fields of a session table, refreshed from the C copy after each call.
local function refresh(s)
  local raw = rawget(s, "_raw")
  rawset(s, "id", core.session_id(raw))
  rawset(s, "user", core.session_user(raw))
  rawset(s, "_user", rawget(s, "user"))
  rawset(s, "created", core.session_created(raw))
  rawset(s, "accessed", core.session_accessed(raw))
  rawset(s, "expires", core.session_expires(raw))
  rawset(s, "idle_timeout", core.session_idle_timeout(raw))
  rawset(s, "version", core.session_version(raw))
  rawset(s, "is_new", core.session_is_new(raw) ~= 0)
  rawset(s, "csrf_token", core.session_csrf_token(raw))
  return s
end

local function new_session(store, raw)
  return refresh(setmetatable({ _raw = raw, _store = store }, session_mt))
end

session_mt.__index = function(s, k)
  local m = Session[k]
  if m ~= nil then return m end
  if k == "data" then          -- decoded on first use
    local text = core.session_data_json(rawget(s, "_raw"))
    local d, err = M.decode(text or "")
    if d == nil then error("session data: " .. tostring(err), 2) end
    rawset(s, "data", d)
    return d
  end
end

session_mt.__tostring = function(s)
  return fmt("sessgate.session %s (user %s, version %d)", s.id,
             tostring(s.user), s.version)
end

-- Copy the table's user and data into the C copy before a write.
local function push(s)
  local raw = rawget(s, "_raw")
  local user = rawget(s, "user")
  if user ~= rawget(s, "_user") then
    if user ~= nil and type(user) ~= "string" then
      return nil, "session user must be a string or nil", M.INVALID
    end
    local ok, msg, code = core.session_set_user(raw, user)
    if not ok then return nil, msg, code end
    rawset(s, "_user", user)
  end
  local data = rawget(s, "data")
  if data ~= nil then
    if type(data) ~= "table" or table_kind(data) ~= "object" then
      return nil, "session data must be a table (a JSON object)", M.INVALID
    end
    local text, err, ecode = M.encode(data)
    if not text then return nil, err, ecode end
    local ok, msg, code = core.session_set_data(raw, text)
    if not ok then return nil, msg, code end
  end
  return true
end

local function store_handle(store)
  local st = rawget(store, "_st")
  if st == nil then return nil, "the store is closed", M.INVALID end
  return st
end

--- Store data and user.  Returns true, or nil, message, code
--- (code sg.CONFLICT when someone saved since this copy was loaded).
function Session:save()
  local st, msg, code = store_handle(self._store)
  if not st then return nil, msg, code end
  local ok
  ok, msg, code = push(self)
  if not ok then return nil, msg, code end
  ok, msg, code = core.session_save(st, self._raw)
  if not ok then return nil, msg, code end
  refresh(self)
  return true
end

--- New id for the session (the old one stops working); pending changes
--- are saved with it.  Returns the new id.
function Session:rotate()
  local st, msg, code = store_handle(self._store)
  if not st then return nil, msg, code end
  local ok
  ok, msg, code = push(self)
  if not ok then return nil, msg, code end
  ok, msg, code = core.session_rotate(st, self._raw)
  if not ok then return nil, msg, code end
  refresh(self)
  return self.id
end

--- Set the user, save, rotate the id.  Returns the new id.
function Session:login(user)
  if type(user) ~= "string" then error("login: user must be a string", 2) end
  rawset(self, "user", user)
  -- one rotate carrying the user change: no grace window for a login
  return self:rotate()
end

--- Delete the session from the store.
function Session:delete()
  return self._store:delete(self.id)
end

--- Change the idle timeout and/or max age (seconds; 0 keeps); saved by save().
function Session:set_timeouts(idle_timeout, max_age)
  return core.session_set_timeouts(self._raw, idle_timeout or 0, max_age or 0)
end

--- Whether v is the session's CSRF token (constant-time comparison).
function Session:check_csrf(v)
  if type(v) ~= "string" or v:find("\0", 1, true) then return false end
  return core.session_check_csrf(self._raw, v) ~= 0
end

--- Queue a one-shot message for the next page; stored by save().
function Session:flash(message, category)
  local text, err, ecode = M.encode({ message = message, category = category or "message" })
  if not text then return nil, err, ecode end
  return core.session_flash_add(self._raw, text)
end

--- Take the pending flash messages out of the store, atomically: of two
--- concurrent pops one gets them.  Returns an array of
--- {message=, category=} tables.
function Session:pop_flashes()
  local st, msg, code = store_handle(self._store)
  if not st then return nil, msg, code end
  local text
  text, msg, code = core.session_flash_pop(st, self._raw)
  if not text then return nil, msg, code end
  refresh(self)
  return M.decode(text)
end

--- The whole stored record as JSON text (unsaved changes not included).
function Session:to_json()
  return core.session_to_json(self._raw)
end

--------------------------------------------------------------------- store

local Store = {}
Store.__index = Store
Store.__name = "sessgate.store"

local option_names = {
  idle_timeout = "number", max_age = "number", touch_interval = "number",
  rotate_grace = "number",
  lock_timeout_ms = "number", max_per_user = "number", max_data = "number",
  sync = "boolean", group = "boolean", readonly = "boolean",
}

--- Open (or create) the store at path ($SESSGATE_STORE when nil).
--- opts: idle_timeout, max_age, touch_interval, lock_timeout_ms,
--- max_per_user, max_data, sync, group, readonly (0/nil = default).
function M.open(path, opts)
  path = path or os.getenv("SESSGATE_STORE")
  if type(path) ~= "string" or path == "" then
    return nil, "no store path given and SESSGATE_STORE is not set", M.INVALID
  end
  local o = core.options()
  for k, v in pairs(opts or {}) do
    local want = option_names[k]
    if not want then return nil, "unknown store option " .. tostring(k), M.INVALID end
    if want == "boolean" then
      o[k] = v and 1 or 0
    elseif mtype(v) ~= "integer" or v < 0 then
      return nil, "store option " .. k .. " must be a non-negative integer", M.INVALID
    else
      o[k] = v
    end
  end
  local st, msg, code = core.store_open(path, o)
  if not st then return nil, msg, code end
  return setmetatable({ _st = st, path = path }, Store)
end

--- Close the store (idempotent).  Also runs for `local store <close>`.
function Store:close()
  local st = rawget(self, "_st")
  self._st = nil
  if st ~= nil then core.store_close(st) end
  return true
end
Store.__close = Store.close

--- Create a session: {user=, data=, idle_timeout=, max_age=}.
function Store:create(args)
  args = args or {}
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  local text
  if args.data ~= nil then
    if type(args.data) ~= "table" or table_kind(args.data) ~= "object" then
      return nil, "session data must be a table (a JSON object)", M.INVALID
    end
    text, msg, code = M.encode(args.data)
    if not text then return nil, msg, code end
  end
  local raw
  raw, msg, code = core.session_create(st, args.user, text,
                                       args.idle_timeout or 0, args.max_age or 0)
  if not raw then return nil, msg, code end
  return new_session(self, raw)
end

--- The live session with this id, or nil, message, code (sg.NOTFOUND for
--- an unknown or malformed id, sg.EXPIRED).  opts.touch=false: no write.
function Store:get(id, opts)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  if type(id) ~= "string" then return nil, "session id must be a string", M.NOTFOUND end
  local flags = (opts and opts.touch == false) and GET_NOTOUCH or 0
  local raw
  raw, msg, code = core.session_get(st, id, flags)
  if not raw then return nil, msg, code end
  return new_session(self, raw)
end

--- Delete the session with this id: true, or nil, message, code.
function Store:delete(id)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  if type(id) ~= "string" then return nil, "session id must be a string", M.INVALID end
  return core.session_delete(st, id)
end

--- Atomic read-modify-write, optimistic: load id, call fn(session) with NO
--- lock held, save only if nobody saved the session since the load; if
--- someone did, load again and call fn again (up to UPDATE_TRIES times,
--- then nil, message, sg.CONFLICT).  So fn MAY RUN MORE THAN ONCE: it must
--- only change the session, not act on the world (send mail, charge a
--- card); do that once update() returned true.  A slow fn holds up no
--- other reader or writer.  fn returning false abandons the change (the
--- call then returns false); an error in fn abandons it and is re-raised.
--- Returns true, or nil, message, code.
local UPDATE_TRIES = 100
M.UPDATE_TRIES = UPDATE_TRIES
function Store:update(id, fn)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  for _ = 1, UPDATE_TRIES do
    local s
    s, msg, code = self:get(id, { touch = false })
    if not s then return nil, msg, code end
    local pok, r = pcall(fn, s)
    if not pok then error(r, 0) end
    if r == false then return false end
    local ok
    ok, msg, code = s:save()
    if ok then return true end
    if code ~= M.CONFLICT then return nil, msg, code end
  end
  return nil, msg, code
end

local function user_arg(arg)
  if type(arg) == "table" then return arg.user end
  return arg
end

--- Ids of live sessions ({user=} or a user name), oldest first.
function Store:ids(arg)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  return core.store_list(st, user_arg(arg))
end

--- Live sessions ({user=} or a user name), oldest first, as an array.
--- Loading them does not extend their idle window.
function Store:sessions(arg)
  local ids, msg, code = self:ids(arg)
  if not ids then return nil, msg, code end
  local out = {}
  for _, id in ipairs(ids) do
    local s = self:get(id, { touch = false })
    if s then out[#out + 1] = s end     -- gone meanwhile: skipped
  end
  return out
end

--- Number of live sessions ({user=} or a user name).
function Store:count(arg)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  return core.store_count(st, user_arg(arg))
end

--- Remove expired sessions; returns how many.
function Store:purge()
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  return core.store_purge(st)
end

--- Delete every session of a user ("log out everywhere"); returns how
--- many.  Atomic with respect to a login of that user at the same moment.
function Store:delete_user(user)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  if type(user) ~= "string" then
    return nil, "delete_user needs a user name (a string)", M.INVALID
  end
  return core.store_delete_user(st, user)
end

--- Delete every session of the store; returns how many.
function Store:clear()
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  return core.store_clear(st)
end

--- Whether text has the shape of a session id.
function M.id_valid(text)
  return type(text) == "string" and core.id_valid(text) ~= 0
end

--- A static English name for a status code.
function M.strerror(code)
  return core.strerror(code)
end

return M
