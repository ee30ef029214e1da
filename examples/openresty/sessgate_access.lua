--[[
sessgate_access.lua - session checks inside nginx (OpenResty style), with
Debian's libnginx-mod-http-lua and the sessgate Lua module on LuaJIT.

    access_by_lua_block {
      require("sessgate_access").check{ store = "/var/lib/sessgate/sessions.db",
                                        require_user = true }
    }

check() reads the session cookie, loads the session from the store (the
same GDBM file the gateway, sessgatectl and the other languages use) and:
 - with no live session (or, with require_user, no logged-in user): ends
   the request with 401 (or a redirect to opts.login_url);
 - else: puts the session in ngx.ctx.session and sets the request headers
   X-Session-Id / X-Session-User for the content phase or an upstream,
   after removing any the client sent (a client never injects identity).

Each nginx worker opens its own store handle, lazily, after the fork (a
GDBM handle and its locks must not cross fork()).

BLOCKING CAVEAT: the store calls are ordinary blocking C calls.  While one
runs (a flock() that waits for a writer, up to lock_timeout_ms; GDBM file
I/O; a touch write), the whole nginx worker and every request it carries
waits.  Keep the store on local disk, keep lock_timeout_ms short (default
here: 200 ms), prefer read-mostly checks (reads take a shared lock; the
idle-window touch writes at most once per touch interval), and run enough
workers.  Where that is not acceptable (many writers, slow disks), use the
sessgate FastCGI gateway with auth_request instead: it blocks its own
processes, never nginx's.  A Redis store URI works too but blocks on the
network the same way (cosockets are not used).
]]

local sg = require "sessgate"

local M = {}
local stores = {}           -- per worker: uri -> store handle

local function store_for(uri, opts)
  local st = stores[uri]
  if st then return st end
  local err, code
  st, err, code = sg.open(uri, { lock_timeout_ms = opts.lock_timeout_ms or 200 })
  if not st then return nil, err, code end
  stores[uri] = st
  return st
end

local function deny(opts, status)
  if opts.login_url then
    return ngx.redirect(opts.login_url .. "?next=" .. ngx.escape_uri(ngx.var.request_uri))
  end
  return ngx.exit(status)
end

--- Check the request's session (see the header).  opts: store (URI;
--- default $SESSGATE_STORE), cookie (name, default "sessgate"),
--- require_user, login_url, lock_timeout_ms.
function M.check(opts)
  opts = opts or {}
  ngx.req.clear_header("X-Session-Id")
  ngx.req.clear_header("X-Session-User")
  local uri = opts.store or os.getenv("SESSGATE_STORE")
  local st, err = store_for(uri, opts)
  if not st then
    ngx.log(ngx.ERR, "sessgate: ", err)
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
  end
  local sid = ngx.var["cookie_" .. (opts.cookie or "sessgate")]
  local s, msg, code = nil, nil, nil
  if sid and sg.id_valid(sid) then
    s, msg, code = st:get(sid)
  end
  if not s then
    if code and code ~= sg.NOTFOUND and code ~= sg.EXPIRED then
      ngx.log(ngx.ERR, "sessgate: ", msg)       -- store trouble: fail closed
      return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
    return deny(opts, ngx.HTTP_UNAUTHORIZED)
  end
  if opts.require_user and not s.user then
    return deny(opts, ngx.HTTP_UNAUTHORIZED)
  end
  ngx.ctx.session = s
  ngx.req.set_header("X-Session-Id", s.id)
  if s.user then ngx.req.set_header("X-Session-User", s.user) end
end

return M
