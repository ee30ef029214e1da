--[[
sessgate_magnet.lua - the session check of sessgate's auth mode, inside
lighttpd (mod_magnet, Debian lighttpd-modules-lua, Lua 5.4), on the same
store, through the sessgate Lua binding.  What the FastCGI authorizer
cannot do on lighttpd, this can: set and refresh the session cookie
(lighttpd drops Set-Cookie from an authorizer's 200), and hand the session
to an HTTP backend (mod_proxy) as request headers.

A per-location script (see magnet-*.lua.in) calls it from the raw-url phase:

    magnet.attract-raw-url-to = ( "/etc/lighttpd/sessgate/private.lua" )
    -- private.lua:
    return require("sessgate_magnet").check(lighty.r, {
      store = "/var/lib/sessgate/sessions.db", policy = "user",
      login_url = "/login", login_redirect = true })

check(r, opts) does, in this order, what `sessgate --mode auth` does in the
AUTHORIZER role (sessgate(8), DESIGN §5):
 1. removes every request header that, folded the way lighttpd folds
    header names into CGI variables (each byte outside [A-Za-z0-9] -> "_"),
    looks like a name the gateway injects (X-Session-*, Session-*,
    Variable-*), and every SESSION_* request variable: only this script
    speaks for the session.  (The authorizer refuses such a request with
    403 because it cannot remove a header; here it is removed.)
 2. reads the session cookie by the gateway's rule (gateway/cookie.c,
    tests/unit/cookie_cases.txt): ';' and ',' separate, names match byte
    for byte, and several copies count only when all carry the same valid
    id; loads the session strictly (malformed, unknown, expired or damaged:
    no session) and touches it;
 3. with opts.anonymous, makes a session when there is none;
 4. applies the policy: "any" (default), "session" (a live session) or
    "user" (a logged-in user).  Refused: 302 to opts.login_url with
    next=<original URI> when opts.login_redirect, else 401 with
    WWW-Authenticate (and X-Session-Login-Url); a cookie that named no live
    session is expired;
 5. lets the request go on with SESSION_ID, SESSION_USER (percent-
    encoded), SESSION_DATA (compact ASCII JSON, opts.inject / inject_max as
    --inject / --inject-max; over the cap SESSION_DATA_TRUNCATED=1),
    SESSION_NEW and SESSION_CSRF in the request environment (mod_cgi,
    mod_fastcgi, mod_scgi backends), and with opts.headers = true also as
    X-Session-Id/-User/-Data/... request headers (mod_proxy backends);
 6. sets the cookie for a session made here, expires one that named no
    live session, and with opts.cookie_max_age refreshes it (a new
    Max-Age) whenever the check touched the session, so a persistent
    cookie lives as long as the session's idle window keeps moving.
A store failure is 503, never a pass.  An error inside the script makes
lighttpd answer 500: it fails closed.

BLOCKING: the store calls are ordinary blocking C calls inside lighttpd's
one event loop: while a flock() waits for a writer (up to lock_timeout_ms,
default here 200 ms), a touch writes, or GDBM reads the disk, every
connection of that lighttpd process waits.  Keep the store on local disk,
keep lock_timeout_ms short, and prefer GDBM (a Redis URI blocks on the
network the same way).  Where that is not acceptable, use the FastCGI
authorizer: it blocks its own processes, never lighttpd's.

Each lighttpd process opens its own store handle on its first request
(module state lives in package.loaded, which mod_magnet keeps per script
between requests; a script's globals do not survive a request).
]]

local sg = require "sessgate"

local M = {}
local stores = {}           -- this process's handles: store URI -> store

local ID_LEN = 36
-- Store:get options: a damaged record is no session (as the gateway reads
-- it), and by default (opts.memo ~= false) a session this process read
-- while nobody has written since is parsed from its copy, with no lock and
-- no syscall (SG_GET_MEMO: see libsessgate(3)).
local GET_MEMO = { damaged_absent = true, memo = true }
local GET_PLAIN = { damaged_absent = true }
local MAX_COOKIE = 64 * 1024        -- GW_MAX_COOKIE

--------------------------------------------------------------- pure parts

-- x without the spaces and tabs around it.
local function trim(x)
  local a, b = 1, #x
  while a <= b and (x:byte(a) == 32 or x:byte(a) == 9) do a = a + 1 end
  while b >= a and (x:byte(b) == 32 or x:byte(b) == 9) do b = b - 1 end
  return (a == 1 and b == #x) and x or x:sub(a, b)
end

--- The session cookie in a Cookie header value: "none", "bad" (malformed,
--- oversized or ambiguous: treated as no session) or "one" and the id.
function M.cookie_find(header, name)
  if header == nil or header == "" then return "none" end
  if #header > MAX_COOKIE then return "bad" end
  -- The usual header, one pair and no quotes, without the loop below (the
  -- same rule: it runs on every request).
  if not (header:find(";", 1, true) or header:find(",", 1, true) or
          header:find('"', 1, true)) then
    local p = trim(header)
    local eq = p:find("=", 1, true)
    if not eq or trim(p:sub(1, eq - 1)) ~= name then return "none" end
    local v = trim(p:sub(eq + 1))
    if #v ~= ID_LEN or not sg.id_valid(v) then return "bad" end
    return "one", v
  end
  local res, id = "none", nil
  for pair in (header .. ";"):gmatch("([^;,]*)[;,]") do
    local p = pair:match("^[ \t]*(.-)[ \t]*$")
    local eq = p:find("=", 1, true)
    if eq and (p:sub(1, eq - 1):gsub("[ \t]+$", "")) == name then
      local v = (p:sub(eq + 1):gsub("^[ \t]+", ""))
      if #v >= 2 and v:sub(1, 1) == '"' and v:sub(-1) == '"' then
        v = v:sub(2, -2)             -- RFC 6265 allows one pair of quotes
      end
      -- the id's exact shape is checked before the store sees it
      if #v ~= ID_LEN or not sg.id_valid(v) then return "bad" end
      if res == "one" and v ~= id then return "bad" end   -- no winner
      res, id = "one", v
    end
  end
  return res, id
end

local spoof_prefixes = { "X_SESSION", "SESSION", "VARIABLE" }

--- Whether a request header name imitates an injected one once folded as
--- lighttpd folds it (every byte outside [A-Za-z0-9] becomes "_").
function M.header_spoofs(name)
  -- every prefix starts with X, S or V: most names are out at the first byte
  local c = name:byte(1)
  if not c then return false end
  c = c & 0xDF                      -- ASCII upper case
  if c ~= 88 and c ~= 83 and c ~= 86 then return false end
  local f = (name:upper():gsub("[^%w]", "_"))
  for _, p in ipairs(spoof_prefixes) do
    if f == p or f:sub(1, #p + 1) == p .. "_" then return true end
  end
  return false
end

local function env_spoofs(name)
  local c = name:byte(1)
  if not c or (c & 0xDF) ~= 83 then return false end          -- "S"
  local f = (name:upper():gsub("[^%w]", "_"))
  return f == "SESSION" or f:sub(1, 8) == "SESSION_"
end

--- A user name for a header or variable: bytes outside 0x21..0x7e and
--- "%" become %XX (inject_user).
function M.encode_user(user)
  return (user:gsub("[\0-\32%%\127-\255]",
                    function(c) return string.format("%%%02X", c:byte()) end))
end

--- login_url with next=<uri> (RFC 3986 unreserved bytes kept, all else
--- %XX), as respond_login_url builds it.
function M.login_url(login_url, uri)
  if uri == nil or uri == "" then return login_url end
  local sep = login_url:find("?", 1, true) and "&next=" or "?next="
  return login_url .. sep ..
         uri:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
end

--- SESSION_DATA from the data's JSON text: the text, nil and a truncated
--- flag.  opts.inject: "all" (default), "none" or a list of keys;
--- opts.inject_max: byte cap (default 2048, the gateway's).
function M.inject_data(text, opts)
  local inject = opts.inject or "all"
  if inject == "none" or text == nil then return nil, false end
  if type(inject) == "table" then
    local data = sg.decode(text)
    if type(data) ~= "table" then return nil, true end
    local pick = sg.object{}
    for _, k in ipairs(inject) do pick[k] = data[k] end
    text = sg.encode(pick)
    if not text then return nil, true end
  end
  -- why: the value becomes an environment variable or a header line, so it
  -- must be one line of printable ASCII whatever the session holds
  text = text:gsub("\127", "\\u007f")
  if text:find("[^\32-\126]") then return nil, true end
  if #text > (opts.inject_max or 2048) then return nil, true end
  return text, false
end

--- The Set-Cookie value for id (nil: an expiring copy).
function M.cookie_value(opts, id, https)
  local c = { (opts.cookie or "sessgate") .. "=" .. (id or ""),
              "Path=" .. (opts.cookie_path or "/"), "HttpOnly",
              "SameSite=" .. (opts.cookie_samesite or "Lax") }
  local secure = opts.cookie_secure
  if secure == nil then secure = https end
  if secure then c[#c + 1] = "Secure" end
  if not id then
    c[#c + 1] = "Max-Age=0"
  elseif (opts.cookie_max_age or 0) > 0 then
    c[#c + 1] = "Max-Age=" .. math.floor(opts.cookie_max_age)
  end
  if opts.cookie_domain then c[#c + 1] = "Domain=" .. opts.cookie_domain end
  return table.concat(c, "; ")
end

--------------------------------------------------------- inside lighttpd

local function store_for(opts)
  local uri = opts.store or os.getenv("SESSGATE_STORE")
  local st = stores[uri or ""]
  if st then return st end
  if not uri then return nil, "no store given (opts.store or SESSGATE_STORE)" end
  local o = { lock_timeout_ms = 200 }
  for k, v in pairs(opts.store_options or {}) do o[k] = v end
  local err
  st, err = sg.open(uri, o)
  if not st then return nil, err end
  stores[uri] = st
  return st
end

-- Remove what a client could send in the session's name.
local function strip(r)
  local drop = {}
  for k in pairs(r.req_header) do
    if M.header_spoofs(k) then drop[#drop + 1] = k end
  end
  for _, k in ipairs(drop) do r.req_header[k] = nil end
  drop = {}
  for k in pairs(r.req_env) do
    if env_spoofs(k) then drop[#drop + 1] = k end
  end
  for _, k in ipairs(drop) do r.req_env[k] = nil end
end

local function set_cookie(r, opts, id, https)
  r.resp_header["Set-Cookie"] = M.cookie_value(opts, id, https)
  -- a response that sets or ends a session must not be cached for others
  r.resp_header["Cache-Control"] = "no-store"
  r.resp_header["Vary"] = "Cookie"
end

local function answer(r, status, text)
  r.resp_header["Content-Type"] = "text/plain; charset=us-ascii"
  r.resp_body:set(text)
  return status
end

local names_env = { id = "SESSION_ID", user = "SESSION_USER", data = "SESSION_DATA",
                    new = "SESSION_NEW", truncated = "SESSION_DATA_TRUNCATED",
                    csrf = "SESSION_CSRF" }
local names_header = { id = "X-Session-Id", user = "X-Session-User", data = "X-Session-Data",
                       new = "X-Session-New", truncated = "X-Session-Data-Truncated",
                       csrf = "X-Session-Csrf" }

-- The session into the request environment (and headers with opts.headers).
local function inject(r, opts, s, created)
  local v = { id = s.id }
  if s.user and s.user ~= "" then v.user = M.encode_user(s.user) end
  local data, truncated = M.inject_data(s:data_json(), opts)
  v.data = data
  if created then v.new = "1" end
  if truncated then v.truncated = "1" end
  if s.csrf_token and s.csrf_token ~= "" then v.csrf = s.csrf_token end
  for k, name in pairs(names_env) do
    if v[k] and v[k] ~= "" then r.req_env[name] = v[k] end
  end
  if opts.headers then
    for k, name in pairs(names_header) do
      if v[k] and v[k] ~= "" then r.req_header[name] = v[k] end
    end
  end
end

--- The check of request r (the script's lighty.r: mod_magnet gives it to
--- the script's own environment only); returns what a magnet script
--- returns (0: go on, or the status of the answer given).  See the top of
--- this file for opts.
function M.check(r, opts)
  opts = opts or {}
  strip(r)
  local https = r.req_attr["uri.scheme"] == "https"
  local st, err = store_for(opts)
  if not st then
    print("sessgate_magnet: store unavailable: " .. tostring(err))
    return answer(r, 503, "503 Service Unavailable: session store unavailable\n")
  end
  local found, id = M.cookie_find(r.req_header["Cookie"], opts.cookie or "sessgate")
  local s, code, created, touched
  if found == "one" then
    local t0 = os.time()
    s, err, code = st:get(id, opts.memo == false and GET_PLAIN or GET_MEMO)
    if not s and code ~= sg.NOTFOUND and code ~= sg.EXPIRED and code ~= sg.INVALID then
      print("sessgate_magnet: " .. tostring(err))     -- store trouble: fail closed
      return answer(r, 503, "503 Service Unavailable: session store unavailable\n")
    end
    -- touched by this get: accessed moved to now (a session made within
    -- this second has accessed == created and needs no refresh)
    touched = s and s.accessed >= t0 and s.accessed ~= s.created
  end
  if not s and opts.anonymous then
    s, err = st:create{}
    if not s then
      print("sessgate_magnet: " .. tostring(err))
      return answer(r, 503, "503 Service Unavailable: session store unavailable\n")
    end
    created = true
  end
  local policy = opts.policy or "any"
  local ok = policy == "any" or (policy == "session" and s ~= nil) or
             (policy == "user" and s ~= nil and s.user ~= nil)
  if not ok then
    local login = opts.login_url and M.login_url(opts.login_url, r.req_attr["request.uri"])
    if not s and found ~= "none" then set_cookie(r, opts, nil, https) end
    if login and opts.login_redirect then
      r.resp_header["Location"] = login
      return answer(r, 302, "302 Found: please log in\n")
    end
    r.resp_header["WWW-Authenticate"] = 'SessGate realm="sessgate"'
    if login then r.resp_header["X-Session-Login-Url"] = login end
    return answer(r, 401, policy == "user" and "401 Unauthorized: please log in\n"
                                            or "401 Unauthorized: no session\n")
  end
  if s then
    inject(r, opts, s, created)
    if created or (touched and (opts.cookie_max_age or 0) > 0) then
      set_cookie(r, opts, s.id, https)
    end
  elseif found ~= "none" then
    set_cookie(r, opts, nil, https)     -- it named no live session
  end
  return 0
end

return M
