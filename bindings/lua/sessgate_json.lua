--[[
sessgate_json.lua - the JSON codec of the sessgate Lua binding
(sessgate.lua requires it; it works on its own as well).

    local json = require "sessgate_json"
    local text = assert(json.encode({n = 1, tags = json.array{}}))
    local v = assert(json.decode(text))

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

Why a file of its own: the codec is half of the binding and has nothing
to do with sessions; kept apart, each file can be read (and replaced, if
a codec that keeps types ever ships with Lua) without the other.
]]

local core = require "sessgate_core"

local J = {}

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
-- sessgate.lua needs the same two stand-ins.
J.mtype, J.toint = mtype, toint

-- Deepest nesting a write accepts (the data table is level 1): the C
-- library's SG_MAX_DEPTH; and the status codes encode returns.
local WRITE_DEPTH = toint(core.SG_MAX_DEPTH)
local TOOBIG, INVALID = toint(core.SG_ETOOBIG), toint(core.SG_EINVAL)

local null = setmetatable({}, {
  __name = "sessgate.null",
  __tostring = function() return "sg.null" end,
  __newindex = function() error("sg.null is read-only", 2) end,
})
J.null = null

local array_mt = { __name = "sessgate.array" }
local object_mt = { __name = "sessgate.object" }

--- Mark t (or a new table) as a JSON array; returns it.
function J.array(t) return setmetatable(t or {}, array_mt) end
--- Mark t (or a new table) as a JSON object; returns it.
function J.object(t) return setmetatable(t or {}, object_mt) end
--- Whether t was marked (or decoded) as an array.
function J.is_array(t) return getmetatable(t) == array_mt end

local MAX_DEPTH = 512          -- decoding; writes stop at WRITE_DEPTH
local TOO_DEEP = "nested deeper than the limit of " .. WRITE_DEPTH ..
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
-- sessgate.lua checks that session data is an object with it.
J.table_kind = table_kind

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
    if depth >= WRITE_DEPTH then error(TOO_DEEP, 0) end   -- also ends cycles
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
function J.encode(v)
  local out = {}
  local ok, err = pcall(encode_value, v, out, 0)
  if not ok then
    return nil, "JSON encode: " .. tostring(err), err == TOO_DEEP and TOOBIG or INVALID
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
function J.decode(s)
  if type(s) ~= "string" then return nil, "JSON decode: not a string" end
  local ok, v, pos = pcall(decode_value, s, 1, 0)
  if not ok then return nil, v end
  if skip_ws(s, pos) <= #s then return nil, fmt("JSON decode: trailing data at byte %d", pos) end
  return v
end

return J
