#!/usr/bin/env bats
# tests/bindings/wsgi.bats - sessgate.wsgi.SessionMiddleware end to end:
# examples/apps/wsgi_counter.py under a real wsgiref server on a free port
# driven by curl, the same app as a CGI program (wsgiref CGIHandler) with the
# gateway's SESSION_ID, the middleware's edge cases called directly, and the
# other example apps (counter.lua as CGI, logout_everywhere.py).  Against a
# GDBM file and, in the Redis pass of tests/run, a Redis store.
# backends: gdbm redis

load ../helpers/common
load bindings

APPS="$SG_SRCDIR/examples/apps"

setup_file() {
  require_tool curl
  # make_store needs BATS_TEST_TMPDIR for a GDBM path, which setup_file
  # has not got: the file's own dir there, make_store's URI on Redis.
  if on_redis; then STORE=$(make_store wsgi); else STORE="$BATS_FILE_TMPDIR/wsgi.db"; fi
  export STORE
  PORT=$(free_port)
  export PORT
  start_bg "$SG_PYTHON" "$APPS/wsgi_counter.py" --serve "$PORT" --store "$STORE" \
    2>"$BATS_FILE_TMPDIR/server.log" >/dev/null
  wait_for_port "$PORT"
}

teardown_file() {
  stop_all
}

setup() {
  require_bindings
}

# fetch PATH [COOKIE-HEADER]: GET from the wsgiref server; sets BODY,
# HEADERS, and SETCOOKIE (the Set-Cookie value, empty if none).
fetch() {
  local args=(-s -D "$BATS_TEST_TMPDIR/h" -o "$BATS_TEST_TMPDIR/b" --max-time 10)
  [ -n "${2:-}" ] && args+=(-H "Cookie: $2")
  curl "${args[@]}" "http://127.0.0.1:$PORT$1"
  BODY=$(cat "$BATS_TEST_TMPDIR/b")
  HEADERS=$(tr -d '\r' < "$BATS_TEST_TMPDIR/h")
  SETCOOKIE=$(sed -n 's/^[Ss]et-[Cc]ookie: //p' <<<"$HEADERS")
}

# cookie_id: the id in SETCOOKIE.
cookie_id() { sed -n 's/^sessgate=\([^;]*\);.*/\1/p' <<<"$SETCOOKIE"; }

count() { py 'print(sessgate.Store(STORE).count())'; }

@test "the counter counts per session and the cookie has Path=/, HttpOnly, SameSite=Lax" {
  fetch /
  [ "$BODY" = "n=1 user=-" ]
  [[ "$SETCOOKIE" =~ ^sessgate=[0-9a-f-]{36}\;\ Path=/\;\ HttpOnly\;\ SameSite=Lax$ ]]
  id=$(cookie_id)
  fetch / "sessgate=$id"
  [ "$BODY" = "n=2 user=-" ]
  [ -z "$SETCOOKIE" ]
  fetch /count "sessgate=$id"
  [ "$BODY" = "n=3 user=-" ]
  fetch /
  [ "$BODY" = "n=1 user=-" ]
  [ "$(cookie_id)" != "$id" ]
}

@test "a request that only reads creates no session and sets no cookie" {
  before=$(count)
  fetch /peek
  [ "$BODY" = "n=0 user=-" ]
  [ -z "$SETCOOKIE" ]
  [ "$(count)" = "$before" ]
}

@test "login rotates the id and sets a new cookie; the old id stops working" {
  fetch /
  old=$(cookie_id)
  fetch / "sessgate=$old"
  fetch "/login?user=alice" "sessgate=$old"
  [ "$BODY" = "logged in as alice" ]
  new=$(cookie_id)
  [ -n "$new" ] && [ "$new" != "$old" ]
  fetch /peek "sessgate=$new"
  [ "$BODY" = "n=2 user=alice" ]
  fetch /peek "sessgate=$old"
  [ "$BODY" = "n=0 user=-" ]
}

@test "logout deletes the session and expires the cookie" {
  fetch /
  id=$(cookie_id)
  fetch /logout "sessgate=$id"
  [ "$BODY" = "logged out" ]
  [ "$SETCOOKIE" = "sessgate=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" ]
  run py 'print(sessgate.Store(STORE).get(sys.argv[1]))' "$id"
  assert_output "None"
  fetch /peek "sessgate=$id"
  [ "$BODY" = "n=0 user=-" ]
}

@test "malformed, unknown and disagreeing duplicate cookies select no session" {
  fetch /
  a=$(cookie_id)
  fetch /
  b=$(cookie_id)
  fetch / "sessgate=$a"                                   # a: n=2
  for c in "sessgate=junk" "sessgate=00000000-0000-4000-8000-000000000000" \
           "sessgate=$a; sessgate=$b" "sessgate=$b, sessgate=$a" "Sessgate=$a" \
           "xsessgate=$a" "sessgate=${a^^}"; do
    fetch /peek "$c"
    [ "$BODY" = "n=0 user=-" ] || fail "cookie '$c' selected a session: $BODY"
  done
  fetch /peek "other=1; sessgate=$a; sessgate=$a, x=y"
  [ "$BODY" = "n=2 user=-" ]
}

# Issue #17: the C parser and this one agree on one shared table of cases
# (quoted values, blanks, look-alike whitespace, duplicates).
@test "parse_cookie_ids agrees with the gateway's parser on every case of the shared table" {
  run -0 "$SG_PYTHON" - "$SG_SRCDIR/tests/unit/cookie_cases.txt" <<'PY'
import codecs, sys
from sessgate.wsgi import parse_cookie_ids
ids = {"ID1": "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3", "ID2": "11111111-2222-4333-8444-555555555555"}
n = bad = 0
for line in open(sys.argv[1], encoding="ascii"):
    if line.startswith("#") or "\t" not in line:
        continue
    want, hdr = line.rstrip("\n").split("\t", 1)
    hdr = codecs.decode(hdr, "unicode_escape")
    for k, v in ids.items():
        hdr = hdr.replace(k, v)
    got = parse_cookie_ids(hdr, "sessgate")
    n += 1
    if got != ids.get(want):
        bad += 1
        print("case %r: want %s, got %r" % (hdr, want, got))
print("%d cases, %d wrong" % (n, bad))
sys.exit(1 if bad or n < 30 else 0)
PY
  assert_output --partial ", 0 wrong"
}

# Issue #18 item 6: the gateway's Set-Cookie rule and this one agree on one
# shared table (attributes compared as a set; tests/unit/test_set_cookie.c
# checks the gateway against the same file).
@test "cookie_header agrees with the gateway's Set-Cookie on every case of the shared table" {
  run -0 "$SG_PYTHON" - "$SG_SRCDIR/tests/unit/set_cookie_cases.txt" "$STORE" <<'PY'
import sys, sessgate
from sessgate.wsgi import SessionMiddleware
ID = "0b5c1a2e-3f4d-4a5b-8c6d-7e8f90a1b2c3"
store = sessgate.Store(sys.argv[2])
n = bad = 0
for line in open(sys.argv[1], encoding="ascii"):
    if line.startswith("#") or "\t" not in line:
        continue
    opts, want = line.rstrip("\n").split("\t", 1)
    o = dict(kv.split("=", 1) for kv in opts.split(" "))
    secure = {"auto": None, "on": True, "off": False}[o["secure"]]
    mw = SessionMiddleware(lambda e, s: [], store, o["name"], cookie_path=o["path"],
                           cookie_domain=o.get("domain"), secure=secure,
                           max_age=int(o["max_age"]) if "max_age" in o else None,
                           samesite=o["samesite"])
    environ = {"wsgi.url_scheme": "https" if o["https"] == "1" else "http"}
    name, value = mw.cookie_header(environ, None if o["id"] == "-" else ID)
    got = sorted(a.strip() for a in value.split(";"))
    exp = sorted(a.strip() for a in want.replace("=ID", "=" + ID, 1).split(";"))
    n += 1
    if name != "Set-Cookie" or got != exp:
        bad += 1
        print("case [%s]: got %r, want %r" % (opts, value, want))
print("%d cases, %d wrong" % (n, bad))
sys.exit(1 if bad or n < 10 else 0)
PY
  assert_output --partial ", 0 wrong"
}

# Issue #18 item 6: csrf=True decides every case of the table the gateway's
# --csrf is tested on (tests/unit/test_csrf_rule.c).
@test "csrf_refusal agrees with the gateway's --csrf on every case of the shared table" {
  run -0 "$SG_PYTHON" - "$SG_SRCDIR/tests/unit/csrf_cases.txt" "$STORE" <<'PY'
import sys, sessgate
from sessgate.wsgi import SessionMiddleware
store = sessgate.Store(sys.argv[2])
s = store.create(user="alice")
mw = SessionMiddleware(lambda e, r: [], store, csrf=True)
n = bad = 0
names = ["REQUEST_METHOD", "HTTP_SEC_FETCH_SITE", "HTTP_ORIGIN", "HTTP_HOST"]
for line in open(sys.argv[1], encoding="ascii"):
    if line.startswith("#") or "\t" not in line:
        continue
    col = line.rstrip("\n").split("\t")
    environ = {k: v for k, v in zip(names, col[1:5]) if v != "-"}
    tok = col[5]
    if tok == "ok":
        environ["HTTP_X_CSRF_TOKEN"] = s.csrf_token
    elif tok == "wrong":
        environ["HTTP_X_CSRF_TOKEN"] = "0" * 64
    why = mw.csrf_refusal(environ, None if tok == "nosession" else s)
    n += 1
    if (why is not None) != (col[0] == "refuse"):
        bad += 1
        print("case [%s]: want %s, got %r" % (" | ".join(col[1:]), col[0], why))
print("%d cases, %d wrong" % (n, bad))
sys.exit(1 if bad or n < 20 else 0)
PY
  assert_output --partial ", 0 wrong"
}

# cgi PATH [VAR=VALUE...]: run wsgi_counter.py as a CGI program.
cgi() {
  local path=$1; shift
  run env -i PATH="$PATH" PYTHONPATH="$PYTHONPATH" SESSGATE_STORE="$STORE" \
    GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET SERVER_NAME=localhost SERVER_PORT=80 \
    SERVER_PROTOCOL=HTTP/1.1 SCRIPT_NAME=/app PATH_INFO="${path%%\?*}" \
    QUERY_STRING="$( [[ $path == *\?* ]] && echo "${path#*\?}" )" "$@" \
    "$SG_PYTHON" "$APPS/wsgi_counter.py"
}

@test "as a CGI program it takes the session from the gateway's SESSION_ID" {
  id=$(py 'print(sessgate.Store(STORE).create(data={"n": 41}).id)')
  cgi / SESSION_ID="$id" HTTP_COOKIE="sessgate=junk"
  assert_success
  assert_line --index 0 $'Status: 200 OK\r'
  assert_output --partial "n=42 user=-"
  refute_output --partial "Set-Cookie"
  cgi /login?user=bob SESSION_ID="$id" HTTPS=on
  assert_output --partial "logged in as bob"
  assert_output --regexp $'Set-Cookie: sessgate=[0-9a-f-]{36}; Path=/; HttpOnly; SameSite=Lax; Secure\r'
  refute_output --partial "sessgate=$id"
}

@test "as a CGI program an empty SESSION_ID falls back to the cookie and a bad one selects nothing" {
  id=$(py 'print(sessgate.Store(STORE).create(data={"n": 7}).id)')
  cgi /peek SESSION_ID= HTTP_COOKIE="sessgate=$id"
  assert_output --partial "n=7 user=-"
  cgi /peek SESSION_ID=forged HTTP_COOKIE="sessgate=$id"
  assert_output --partial "n=0 user=-"
}

@test "the middleware saves changes made while the body is produced and leaves unchanged sessions alone" {
  run py '
from wsgiref.util import setup_testing_defaults
from sessgate.wsgi import SessionMiddleware
st = sessgate.Store(STORE)
sid = st.create(data={"n": 1, "list": [1]}).id
v0 = st.get(sid).version
def reader(environ, start_response):
    start_response("200 OK", [])
    return [str(environ["sessgate.session"]["n"]).encode()]
def late_writer(environ, start_response):
    start_response("200 OK", [])
    yield b"x"
    environ["sessgate.session"]["list"].append(2)       # nested, after headers
def call(app, cookie):
    env = {}
    setup_testing_defaults(env)
    env["HTTP_COOKIE"] = cookie
    out = []
    body = SessionMiddleware(app, st)(env, lambda s, h, e=None: out.extend(h))
    b"".join(body); body.close()
    return out
assert call(reader, "sessgate=" + sid) == []
assert st.get(sid).version == v0, "a read-only request wrote"
call(late_writer, "sessgate=" + sid)
print(st.get(sid)["list"], st.get(sid).version > v0)'
  assert_success
  assert_output "[1, 2] True"
}

@test "the middleware marks the cookie Secure on HTTPS and honours max_age and domain" {
  run py '
from wsgiref.util import setup_testing_defaults
from sessgate.wsgi import SessionMiddleware
def app(environ, start_response):
    environ["sessgate.session"]["k"] = 1
    start_response("200 OK", [])
    return [b""]
def cookie(mw, **env):
    e = {}
    setup_testing_defaults(e)
    e.update(env)
    hs = []
    mw(e, lambda s, h, x=None: hs.extend(h))
    return [v for k, v in hs if k == "Set-Cookie"][0].split("; ", 1)[1]
st = sessgate.Store(STORE)
print(cookie(SessionMiddleware(app, st), **{"wsgi.url_scheme": "https"}))
print(cookie(SessionMiddleware(app, st, max_age=60, cookie_domain="example.org")))
print(cookie(SessionMiddleware(app, st, "sid", secure=False), HTTPS="on"))'
  assert_success
  assert_line --index 0 "Path=/; HttpOnly; SameSite=Lax; Secure"
  assert_line --index 1 "Path=/; Domain=example.org; Max-Age=60; HttpOnly; SameSite=Lax"
  assert_line --index 2 "Path=/; HttpOnly; SameSite=Lax"
}

@test "the middleware honours samesite and the __Host-/__Secure- prefixes, refuses contradictions" {
  run py '
from wsgiref.util import setup_testing_defaults
from sessgate.wsgi import SessionMiddleware
def app(environ, start_response):
    environ["sessgate.session"]["k"] = 1
    start_response("200 OK", [])
    return [b""]
def cookie(mw, **env):
    e = {}
    setup_testing_defaults(e)
    e.update(env)
    hs = []
    mw(e, lambda s, h, x=None: hs.extend(h))
    return [v for k, v in hs if k == "Set-Cookie"][0]
st = sessgate.Store(STORE)
print(cookie(SessionMiddleware(app, st, samesite="strict")).split("; ", 1)[1])
print(cookie(SessionMiddleware(app, st, samesite="None", secure=True)).split("; ", 1)[1])
print(cookie(SessionMiddleware(app, st, "__Host-sid")).split("; ", 1)[1])
print(cookie(SessionMiddleware(app, st, "__Secure-sid", cookie_path="/a")).split("; ", 1)[1])
for kw in [dict(samesite="None"), dict(samesite="None", secure=None), dict(samesite="bogus"),
           dict(cookie_name="__Host-x", cookie_domain="example.org"),
           dict(cookie_name="__Host-x", cookie_path="/app"),
           dict(cookie_name="__Host-x", secure=False),
           dict(cookie_name="__Secure-x", secure=False)]:
    try:
        SessionMiddleware(app, st, **kw)
        print("accepted", kw)
    except ValueError:
        pass
print("done")'
  assert_success
  assert_line --index 0 "Path=/; HttpOnly; SameSite=Strict"
  assert_line --index 1 "Path=/; HttpOnly; SameSite=None; Secure"
  assert_line --index 2 "Path=/; HttpOnly; SameSite=Lax; Secure"
  assert_line --index 3 "Path=/a; HttpOnly; SameSite=Lax; Secure"
  assert_line --index 4 "done"
}

@test "a response that sets or expires the cookie gets Cache-Control: no-store and Vary: Cookie" {
  run py '
from wsgiref.util import setup_testing_defaults
from sessgate.wsgi import SessionMiddleware
def app(environ, start_response):
    rs = environ["sessgate.session"]
    q = environ.get("QUERY_STRING")
    if q == "set": rs["k"] = 1
    if q == "logout": rs.logout()
    start_response("200 OK", [("Cache-Control", "public, max-age=60")])
    return [b""]
st = sessgate.Store(STORE)
mw = SessionMiddleware(app, st)
def call(q, cookie=None):
    e = {}
    setup_testing_defaults(e)
    e["QUERY_STRING"] = q
    if cookie: e["HTTP_COOKIE"] = cookie
    hs = []
    mw(e, lambda s, h, x=None: hs.extend(h))
    return hs
hs = call("set")
print([v for k, v in hs if k == "Cache-Control"], [v for k, v in hs if k == "Vary"])
sid = [v for k, v in hs if k == "Set-Cookie"][0].split(";")[0]
print([v for k, v in call("", sid) if k == "Cache-Control"])
hs = call("logout", sid)
print([v for k, v in hs if k == "Cache-Control"], "Max-Age=0" in [v for k, v in hs if k == "Set-Cookie"][0])'
  assert_success
  assert_line --index 0 "['no-store'] ['Cookie']"
  assert_line --index 1 "['public, max-age=60']"
  assert_line --index 2 "['no-store'] True"
}

@test "counter.lua counts, logs in and logs out as a CGI program" {
  lcgi() {
    local path=$1; shift
    run env -i PATH="$PATH" LUA_PATH="$LUA_PATH" LUA_CPATH="$LUA_CPATH" SESSGATE_STORE="$STORE" \
      GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET PATH_INFO="${path%%\?*}" \
      QUERY_STRING="$( [[ $path == *\?* ]] && echo "${path#*\?}" )" "$@" \
      "$SG_LUA" "$APPS/counter.lua"
  }
  lcgi /
  assert_line --index 0 $'Status: 200 OK\r'
  assert_output --partial "n=1 user=-"
  id=$(sed -n 's/^Set-Cookie: sessgate=\([^;]*\);.*/\1/p' <<<"$output")
  [ -n "$id" ]
  assert_output --regexp "Set-Cookie: sessgate=$id; Path=/; HttpOnly; SameSite=Lax"$'\r'
  lcgi / HTTP_COOKIE="sessgate=$id"
  assert_output --partial "n=2 user=-"
  refute_output --partial "Set-Cookie"
  lcgi / SESSION_ID="$id" HTTP_COOKIE="sessgate=junk"
  assert_output --partial "n=3 user=-"
  lcgi /peek HTTP_COOKIE="sessgate=$id; sessgate=00000000-0000-4000-8000-000000000000"
  assert_output --partial "n=0 user=-"
  lcgi "/login?user=al%20ice" HTTP_COOKIE="sessgate=$id" HTTPS=on
  assert_output --partial "logged in as al ice"
  new=$(sed -n 's/^Set-Cookie: sessgate=\([^;]*\);.*Secure.*/\1/p' <<<"$output")
  [ -n "$new" ] && [ "$new" != "$id" ]
  lcgi /peek HTTP_COOKIE="sessgate=$new"
  assert_output --partial "n=3 user=al ice"
  lcgi /logout HTTP_COOKIE="sessgate=$new"
  assert_output --partial "Set-Cookie: sessgate=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
  lcgi /peek HTTP_COOKIE="sessgate=$new"
  assert_output --partial "n=0 user=-"
}

@test "logout_everywhere.py deletes every session of one user and no other" {
  STORE=$(make_store le)
  export STORE
  py '
st = sessgate.Store(STORE)
for _ in range(3): st.create(user="mallory")
st.create(user="trent"); st.create()'
  run "$SG_PYTHON" "$APPS/logout_everywhere.py" --store "$STORE" --dry-run mallory
  assert_success
  assert_line --index 3 "would delete 3 session(s) of mallory"
  run "$SG_PYTHON" "$APPS/logout_everywhere.py" --store "$STORE" mallory
  assert_success
  assert_line --index 3 "deleted 3 session(s) of mallory"
  run py 'st = sessgate.Store(STORE); print(st.count("mallory"), st.count("trent"), st.count())'
  assert_output "0 1 2"
  run "$SG_PYTHON" "$APPS/logout_everywhere.py" mallory
  assert_failure 2
}

# gw_app: wrap wsgi_counter.py for the gateway's cgi mode.  The gateway
# hands CGI programs an allow-listed environment without the store path, so
# a two-line wrapper supplies it (see the report: SESSGATE_STORE could be
# passed by the gateway itself).
gw_app() {
  GW_SOCK="$BATS_TEST_TMPDIR/gw.sock"
  printf '#!/bin/sh\nSESSGATE_STORE="%s" PYTHONPATH="%s" exec "%s" "%s"\n' \
    "$STORE" "$PYTHONPATH" "$SG_PYTHON" "$APPS/wsgi_counter.py" > "$BATS_TEST_TMPDIR/app.cgi"
  chmod +x "$BATS_TEST_TMPDIR/app.cgi"
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" --mode cgi \
    --cgi-program "$BATS_TEST_TMPDIR/app.cgi" "$@" 2>>"$BATS_TEST_TMPDIR/gw.err" >/dev/null
  wait_for_socket "$GW_SOCK" 10
}

# gw_get PATH [COOKIE]: one request through the gateway; REPLY (CR
# stripped) and SETCOOKIES (every Set-Cookie value, one a line).
gw_get() {
  local q=""
  [[ $1 == *\?* ]] && q=${1#*\?}
  local args=(-s "$GW_SOCK" -t 20 -p REQUEST_METHOD=GET -p "REQUEST_URI=$1"
              -p "PATH_INFO=${1%%\?*}" -p "QUERY_STRING=$q" -p SERVER_NAME=localhost
              -p SERVER_PORT=80 -p SERVER_PROTOCOL=HTTP/1.1 -p GATEWAY_INTERFACE=CGI/1.1)
  [ -n "${2:-}" ] && args+=(-p "HTTP_COOKIE=$2")
  REPLY=$("$SG_BUILDDIR/tests/tools/fcgi_client" "${args[@]}" | tr -d '\r')
  SETCOOKIES=$(sed -n '/^$/q; s/^[Ss]et-[Cc]ookie: //p' <<<"$REPLY")
}

@test "behind sessgate --mode cgi the app uses the gateway's session and its own cookie on login" {
  [ -x "$SG_GATEWAY" ] || skip "the gateway is not built"
  STORE=$(make_store gw)
  export STORE
  gw_app --anonymous
  gw_get /
  [[ "$REPLY" == *"n=1 user=-"* ]] || fail "first reply: $REPLY"
  [ "$(wc -l <<<"$SETCOOKIES")" = 1 ]                  # the gateway's cookie only
  id=$(sed -n 's/^sessgate=\([^;]*\);.*/\1/p' <<<"$SETCOOKIES")
  [ -n "$id" ]
  gw_get / "sessgate=$id"
  [[ "$REPLY" == *"n=2 user=-"* ]] || fail "second reply: $REPLY"
  [ -z "$SETCOOKIES" ]
  gw_get "/login?user=alice" "sessgate=$id"
  [[ "$REPLY" == *"logged in as alice"* ]] || fail "login reply: $REPLY"
  new=$(sed -n 's/^sessgate=\([^;]*\);.*/\1/p' <<<"$SETCOOKIES")
  [ -n "$new" ] && [ "$new" != "$id" ]
  gw_get /peek "sessgate=$new"
  [[ "$REPLY" == *"n=2 user=alice"* ]] || fail "after login: $REPLY"
  gw_get /peek "sessgate=$id"
  [[ "$REPLY" != *"user=alice"* ]] || fail "the old id still works: $REPLY"
  ! grep -E 'AddressSanitizer|runtime error:' "$BATS_TEST_TMPDIR/gw.err"
}

@test "behind sessgate --mode cgi without --anonymous the app creates the session on first write" {
  [ -x "$SG_GATEWAY" ] || skip "the gateway is not built"
  STORE=$(make_store gw)
  export STORE
  gw_app
  gw_get /peek
  [[ "$REPLY" == *"n=0 user=-"* ]] && [ -z "$SETCOOKIES" ]
  gw_get /
  [[ "$REPLY" == *"n=1 user=-"* ]] || fail "reply: $REPLY"
  id=$(sed -n 's/^sessgate=\([^;]*\);.*/\1/p' <<<"$SETCOOKIES")
  [ -n "$id" ]
  gw_get / "sessgate=$id"
  [[ "$REPLY" == *"n=2 user=-"* ]] || fail "reply: $REPLY"
  run py 'print(sessgate.Store(STORE).count())'
  assert_output "1"
}

@test "the middleware with csrf=True checks the form field or header of unsafe requests" {
  run py '
import io
from wsgiref.util import setup_testing_defaults
from sessgate.wsgi import SessionMiddleware
def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [])
    return [b"app saw " + body]
st = sessgate.Store(STORE)
s = st.create()
mw = SessionMiddleware(app, st, csrf=True)
def call(method, body=b"", **env):
    e = {}
    setup_testing_defaults(e)
    e.update(REQUEST_METHOD=method, HTTP_COOKIE="sessgate=" + s.id, HTTP_HOST="127.0.0.1",
             CONTENT_TYPE="application/x-www-form-urlencoded", CONTENT_LENGTH=str(len(body)),
             **env)
    e["wsgi.input"] = io.BytesIO(body)
    e["wsgi.errors"] = io.StringIO()
    out = []
    r = b"".join(mw(e, lambda st_, h, x=None: out.append(st_)))
    return out[0].split()[0] + " " + r.decode().strip()
tok = s.csrf_token
print(call("GET", HTTP_SEC_FETCH_SITE="cross-site"))
print(call("POST", ("a=1&csrf_token=" + tok).encode(), HTTP_ORIGIN="http://127.0.0.1:8080"))
print(call("POST", b"a=1"))
print(call("POST", b"a=1&csrf_token=" + b"0" * 64))
print(call("POST", b"a=1", HTTP_X_CSRF_TOKEN=tok))
print(call("POST", ("csrf_token=" + tok).encode(), HTTP_SEC_FETCH_SITE="cross-site"))
print(call("POST", ("csrf_token=" + tok).encode(), HTTP_ORIGIN="https://evil.example"))'
  assert_success
  assert_line --index 0 "200 app saw"
  assert_line --index 1 --partial "200 app saw a=1&csrf_token="
  assert_line --index 2 --partial "403"
  assert_line --index 3 --partial "403"
  assert_line --index 4 "200 app saw a=1"
  assert_line --index 5 --partial "403"
  assert_line --index 6 --partial "403"
}
