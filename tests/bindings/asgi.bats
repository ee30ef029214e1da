#!/usr/bin/env bats
# tests/bindings/asgi.bats - sessgate.asgi, the pure-ASGI middleware, under a
# real ASGI server (Debian's python3-uvicorn) with concurrent requests, and
# with Starlette (python3-starlette): sessions load and save off the event
# loop, so a request waiting for the store lock stalls no other request.
# backends: gdbm redis

load ../helpers/common
load bindings

setup() {
  require_bindings
  "$SG_PYTHON" -c 'import uvicorn' 2>/dev/null || skip "python3-uvicorn is not installed"
  setup_store
  export PYTHONPATH="$SG_BUILDDIR/bindings/python:$SG_SRCDIR/tests/bindings/fixtures"
}

teardown() {
  stop_all
}

# serve APP: uvicorn on a free port with fixtures/asgi_apps.py:APP; $PORT.
serve() {
  PORT=$(free_port)
  start_bg "$SG_PYTHON" -m uvicorn --no-access-log --log-level warning \
    --host 127.0.0.1 --port "$PORT" "asgi_apps:$1" 2>"$BATS_TEST_TMPDIR/uvicorn.log" >/dev/null
  wait_for_port "$PORT" || { cat "$BATS_TEST_TMPDIR/uvicorn.log"; return 1; }
  export PORT
}

# client CODE: Python with get(path, sid=None) -> (status, body, set-cookie
# value or None), over real HTTP to $PORT.
client() {
  "$SG_PYTHON" -c '
import os, sys, time, threading, http.client, sessgate
def get(path, sid=None, name="sessgate"):
    c = http.client.HTTPConnection("127.0.0.1", int(os.environ["PORT"]), timeout=30)
    c.request("GET", path, headers={"Cookie": f"{name}={sid}"} if sid else {})
    r = c.getresponse()
    body = r.read().decode().strip()
    sc = r.getheader("set-cookie")
    c.close()
    return r.status, body, sc
def sid_of(sc):
    return sc.split(";")[0].split("=", 1)[1] if sc else None
'"$1" "${@:2}"
}

@test "uvicorn: a session starts on the first write; the cookie carries only the id" {
  serve raw
  run -0 client '
st, body, sc = get("/peek")
assert sc is None and body == "n=0 user=-", (body, sc)
st, body, sc = get("/count")
sid = sid_of(sc)
assert sessgate.id_valid(sid) and "HttpOnly" in sc and "SameSite=Lax" in sc and "Path=/" in sc
for _ in range(2):
    st, body, sc2 = get("/count", sid)
    assert sc2 is None                      # same id: no new cookie
print(body)
print(sessgate.Store(os.environ["STORE"]).get(sid).data)'
  assert_line -n 0 "n=3 user=-"
  assert_line -n 1 "{'n': 3}"
}

@test "uvicorn: 40 clients at once each keep their own counter" {
  serve raw
  run -0 client '
sids, errors = [None] * 40, []
def worker(i):
    try:
        for _ in range(5):
            st, body, sc = get("/count", sids[i])
            sids[i] = sid_of(sc) or sids[i]
        assert body.startswith("n=5 "), body
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
[t.start() for t in ts]; [t.join() for t in ts]
assert not errors, errors[:3]
st = sessgate.Store(os.environ["STORE"])
assert len(set(sids)) == 40 and all(st.get(s).data == {"n": 5} for s in sids)
print(st.count())'
  assert_output 40
}

@test "uvicorn: concurrent requests of one client changing different keys keep every change" {
  serve raw
  run -0 client '
st, body, sc = get("/count")
sid = sid_of(sc)
ts = [threading.Thread(target=get, args=(f"/add?k=k{i}", sid)) for i in range(20)]
[t.start() for t in ts]; [t.join() for t in ts]
d = sessgate.Store(os.environ["STORE"]).get(sid).data
print(sorted(d) == sorted(["n"] + [f"k{i}" for i in range(20)]))'
  assert_output True
}

@test "uvicorn: login rotates the id, logout deletes the session and expires the cookie" {
  serve raw
  run -0 client '
st, body, sc = get("/count"); old = sid_of(sc)
st, body, sc = get("/login?user=alice", old); new = sid_of(sc)
assert new != old
store = sessgate.Store(os.environ["STORE"])
assert store.get(old) is None and store.get(new).user == "alice"
print(get("/peek", new)[1])
st, body, sc = get("/logout", new)
print(sc, store.count())
print(get("/peek", new)[1])'
  assert_line -n 0 "n=1 user=alice"
  assert_line -n 1 "sessgate=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax 0"
  assert_line -n 2 "n=0 user=-"
}

@test "uvicorn: a forged id is never adopted" {
  serve raw
  run -0 client '
forged = "0b5c1d2e-0000-4000-8000-000000000000"
st, body, sc = get("/count", forged)
assert sid_of(sc) != forged
print(body)'
  assert_output "n=1 user=-"
}

# bats test_tags=gdbm-only
@test "uvicorn: a request waiting for the store lock does not stall the event loop" {
  serve raw
  sid=$(client 'print(sid_of(get("/count")[2]))')
  hold_lease 3000                           # another process holds the lock
  run -0 client '
res = {}
def slow():
    t = time.monotonic(); res["slow"] = (get("/peek", sys.argv[1])[1], time.monotonic() - t)
th = threading.Thread(target=slow); th.start()
time.sleep(0.3)
t = time.monotonic(); body = get("/free")[1]; free = time.monotonic() - t
th.join()
print(body, free < 1.0, res["slow"][1] > 1.0, res["slow"][0])' "$sid"
  assert_output "free True True n=1 user=-"
}

@test "Starlette: request.session is the sessgate session" {
  "$SG_PYTHON" -c 'import starlette' 2>/dev/null || skip "python3-starlette is not installed"
  serve star
  run -0 client '
st, body, sc = get("/count"); sid = sid_of(sc)
print(get("/count", sid)[1], sessgate.Store(os.environ["STORE"]).get(sid).data)'
  assert_output "n=2 {'n': 2}"
}
