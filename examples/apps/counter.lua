#!/usr/bin/env lua5.4
--[[
counter.lua - a Lua CGI program using sessgate sessions (the Lua twin of
wsgi_counter.py, same routes and answers):

  /  or /count         add one to the session's counter: "n=3 user=alice"
  /peek                show the counter without writing (creates nothing)
  /login?user=NAME     log in: set the user and rotate the session id
  /logout              delete the session and expire the cookie

Run it as a CGI program: behind `sessgate --mode cgi` (or nginx
auth_request) it takes the session from SESSION_ID, otherwise from the
sessgate cookie.  The store is $SESSGATE_STORE, else var/sessions.db at the
top of the source tree (the store `make demo` uses: there it answers at
/cgi/counter.lua/ and shares sessions with /cgi/wsgi_counter.py/).  The
sessgate module is loaded from the installed location, else from
bindings/lua of the source tree this file sits in.
]]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local top = here .. "/../.."
local found = pcall(require, "sessgate")
if not found then
  package.path = top .. "/bindings/lua/?.lua;" .. package.path
  package.cpath = top .. "/bindings/lua/?.so;" .. package.cpath
end
local sg = require "sessgate"

local COOKIE = "sessgate"

-- The id named by the Cookie header: every cookie of our name must carry
-- the same valid id, or none is used (a client cannot pick which wins).
local function cookie_id(header)
  local found
  for part in (header or ""):gmatch("[^;,]+") do
    local k, v = part:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if k == COOKIE then
      if not sg.id_valid(v) or (found and found ~= v) then return nil end
      found = v
    end
  end
  return found
end

local function cookie_header(id)
  local parts = { COOKIE .. "=" .. (id or ""), "Path=/" }
  if not id then parts[#parts + 1] = "Max-Age=0" end
  parts[#parts + 1] = "HttpOnly"
  parts[#parts + 1] = "SameSite=Lax"
  if (os.getenv("HTTPS") or ""):lower() == "on" then parts[#parts + 1] = "Secure" end
  return "Set-Cookie: " .. table.concat(parts, "; ")
end

local function reply(status, body, headers)
  io.write("Status: ", status, "\r\n",
           "Content-Type: text/plain; charset=utf-8\r\n",
           "Cache-Control: no-store\r\n")
  for _, h in ipairs(headers or {}) do io.write(h, "\r\n") end
  io.write("\r\n", body, "\n")
end

local function main()
  local store, err = sg.open(os.getenv("SESSGATE_STORE") or (top .. "/var/sessions.db"))
  if not store then return reply("503 Service Unavailable", "store: " .. err) end

  local sid = os.getenv("SESSION_ID")
  if not sid or sid == "" then sid = cookie_id(os.getenv("HTTP_COOKIE")) end
  local s = sid and store:get(sid) or nil
  local incoming = s and s.id
  local path = os.getenv("PATH_INFO")
  if not path or path == "" then path = "/" end
  local query = os.getenv("QUERY_STRING") or ""
  local headers, status, body = {}, "200 OK", nil

  local function ensure()
    if not s then s = assert(store:create{}) end
    return s
  end

  if path == "/" or path == "/count" then
    -- Atomic increment, so parallel requests never lose a count.
    ensure()
    local n
    local ok, msg = store:update(s.id, function(u)
      u.data.n = (u.data.n or 0) + 1
      n = u.data.n
    end)
    if not ok then return reply("503 Service Unavailable", msg) end
    body = ("n=%d user=%s"):format(n, s.user or "-")
  elseif path == "/peek" then
    body = ("n=%d user=%s"):format(s and s.data.n or 0, s and s.user or "-")
  elseif path == "/login" then
    local user = query:match("^user=([^&]+)") or query:match("&user=([^&]+)")
    if not user then
      status, body = "400 Bad Request", "login needs ?user=NAME"
    else
      user = user:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      local ok, msg = ensure():login(user)
      if not ok then return reply("400 Bad Request", msg) end
      body = "logged in as " .. user
    end
  elseif path == "/logout" then
    if s then s:delete(); s = nil end
    if incoming then headers[#headers + 1] = cookie_header(nil) end
    body = "logged out"
  else
    status, body = "404 Not Found", "no such page"
  end
  if s and s.id ~= incoming then headers[#headers + 1] = cookie_header(s.id) end
  store:close()
  reply(status, body, headers)
end

main()
