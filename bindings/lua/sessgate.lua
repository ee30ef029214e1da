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
save time by the codec in sessgate_json.lua (which says how JSON maps onto
Lua: integers and floats kept apart, sg.null, sg.array{} and sg.object{}).
]]

local core = require "sessgate_core"

local M = {}

-- The JSON codec and the portable number helpers (Lua 5.1 syntax only,
-- for LuaJIT and OpenResty: no bitwise operators, no goto, no integer
-- division) live in sessgate_json.lua.
local json = require "sessgate_json"
local mtype, toint, table_kind = json.mtype, json.toint, json.table_kind
local fmt = string.format

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
local GET_DAMAGED_ABSENT = toint(core.SG_GET_DAMAGED_ABSENT)
local GET_MEMO = toint(core.SG_GET_MEMO)
-- Deepest nesting of session data a save accepts (the data table is level
-- 1): the C library's SG_MAX_DEPTH, the same in every language.
M.MAX_DEPTH = toint(core.SG_MAX_DEPTH)

--------------------------------------------------------------------- JSON

-- The codec (sessgate_json.lua), under the names users know.
M.null, M.array, M.object, M.is_array = json.null, json.array, json.object, json.is_array
M.encode, M.decode = json.encode, json.decode

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
function Session:rotate(opts)
  local st, msg, code = store_handle(self._store)
  if not st then return nil, msg, code end
  local ok
  ok, msg, code = push(self)
  if not ok then return nil, msg, code end
  local flags = (opts and opts.grace == false) and core.SG_ROTATE_NOW or 0
  ok, msg, code = core.session_rotate_ex(st, self._raw, flags)
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

--- The data as stored, compact ASCII JSON text, without decoding it (what
--- the gateway injects as SESSION_DATA; unsaved changes not included).
function Session:data_json()
  return core.session_data_json(self._raw)
end

--------------------------------------------------------------------- store

local Store = {}
Store.__index = Store
Store.__name = "sessgate.store"

--- The store options sg.open takes, from libsessgate's option table (the
--- one the gateway and sessgatectl use): a list of {name=, help=, min=,
--- max=, default=}; min and max are nil for an on/off flag, default is a
--- number, or the rule in words when it is derived.
function M.store_options()
  local rows, i = {}, 0
  while true do
    local r = core.option_at(i)
    if r == nil then return rows end
    i = i + 1
    if r.faces % (2 * core.SG_FACE_BINDINGS) >= core.SG_FACE_BINDINGS then
      local row = { name = r.name, help = r.help }
      if r.arg == nil then
        row.default = r.def_value ~= 0
      else
        row.min, row.max = r.min, r.max
        row.default = r.def_text or r.def_value
      end
      rows[#rows + 1] = row
    end
  end
end

-- name -> "number" | "boolean", for sg.open's checks.
local option_names = {}
for _, o in ipairs(M.store_options()) do
  option_names[o.name] = o.min and "number" or "boolean"
end

--- Open (or create) the store at path ($SESSGATE_STORE when nil).
--- opts: the names of sg.store_options() (0/nil = default; but
--- rotate_grace = 0 is no grace, as sessgate --rotate-grace 0).
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
    elseif k == "rotate_grace" and v == 0 then
      o[k] = core.SG_ROTATE_GRACE_NONE   -- the struct's 0 is the default
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
--- opts.damaged_absent=true: a damaged record is sg.NOTFOUND, not
--- sg.STORE (for request paths, as the gateway reads).  opts.memo=true:
--- a session this handle read while nobody has written to the store since
--- (under a second ago) is parsed from the handle's copy, with no lock and
--- no syscall (SG_GET_MEMO; GDBM only): for a check on every request.
function Store:get(id, opts)
  local st, msg, code = store_handle(self)
  if not st then return nil, msg, code end
  if type(id) ~= "string" then return nil, "session id must be a string", M.NOTFOUND end
  local flags = (opts and opts.touch == false) and GET_NOTOUCH or 0
  if opts and opts.damaged_absent then flags = flags + GET_DAMAGED_ABSENT end
  if opts and opts.memo then flags = flags + GET_MEMO end
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
