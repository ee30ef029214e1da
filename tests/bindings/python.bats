#!/usr/bin/env bats
# tests/bindings/python.bats - the Python package `sessgate` (SWIG module
# sessgate_core underneath, Pythonic layer on top): every method and every
# error path, against a real store: a file in the test's tmpdir, or in the
# Redis pass of tests/run a redis+unix: URI with a prefix of its own.
# backends: gdbm redis

load ../helpers/common
load bindings

setup() {
  require_bindings
  setup_store
  export SG_PY_PRELUDE
}

teardown() {
  stop_all
}

@test "import sessgate works from the build tree without installing" {
  cd "$SG_BUILDDIR"
  run env PYTHONPATH=bindings/python "$SG_PYTHON" -c 'import sessgate, sessgate.wsgi; print(sessgate.version())'
  assert_success
  assert_output --regexp '^[0-9]+\.[0-9]+\.[0-9]+$'
}

@test "a created session reads back with every JSON type intact" {
  run py '
data = {"s": "caf\u00e9 \u2603 \U0001F600 \"q\" \\ \n\t\u0001", "i": 42, "neg": -7,
        "big": 2**62, "f": 1.5, "one": 1.0, "tiny": 1e-300, "t": True, "fa": False,
        "none": None, "arr": [1, "two", 3.0, None, [], {}], "obj": {"a": {"b": [True]}},
        "empty_arr": [], "empty_obj": {}, "": "empty key"}
st = sessgate.Store(STORE)
sid = st.create(data=data).id
back = sessgate.Store(STORE).get(sid).data
assert back == data, back
assert type(back["one"]) is float and type(back["i"]) is int
print("ok", len(back))'
  assert_success
  assert_output "ok 15"
}

@test "session attributes describe the stored record" {
  run py '
st = sessgate.Store(STORE, idle_timeout=600, max_age=3600)
t0 = int(time.time())
s = st.create(user="alice", data={"k": 1})
assert sessgate.id_valid(s.id), s.id
assert s.user == "alice" and s.is_new is True
assert t0 <= s.created <= t0 + 2 and s.accessed >= s.created
assert s.expires == s.created + 3600, (s.expires, s.created)
assert s.idle_timeout == 600
g = st.get(s.id)
assert g.is_new is False and g.version == s.version and g.id == s.id
rec = json.loads(g.to_json())
assert rec["id"] == s.id and rec["user"] == "alice" and rec["data"] == {"k": 1}
v = g.version; g["k"] = 2; g.save()
assert g.version > v
print("ok")'
  assert_success
  assert_output "ok"
}

@test "get returns None for an unknown, malformed, None or empty id" {
  run py '
st = sessgate.Store(STORE)
st.create()
for sid in ["00000000-0000-4000-8000-000000000000", "nope", "", None,
            "00000000-0000-4000-8000-00000000000G", "../../etc/passwd",
            "00000000-0000-4000-8000-000000000000\u00e9"]:
    assert st.get(sid) is None, sid
try:
    st.get(b"bytes")
except TypeError:
    print("ok")'
  assert_success
  assert_output "ok"
}

@test "get matches the whole id: a NUL, a surrogate or more after a live id is no session" {
  run py '
class Sid(str):
    pass
st = sessgate.Store(STORE)
sid = st.create(data={"n": 1}).id
for bad in [sid + "\0", sid + "\0junk", sid[:-1] + "\0", sid + "\ud800",
            sid[:-1] + "\ud800", sid + " ", " " + sid, sid.upper()]:
    assert st.get(bad) is None, repr(bad)
    assert st.get(bad, touch=False) is None, repr(bad)
assert st.get(Sid(sid))["n"] == 1
assert st.get(sid)["n"] == 1
for bad in [b"x" * 36, 36, ["x"]]:
    try:
        st.get(bad)
        print("no TypeError for", repr(bad))
    except TypeError as e:
        assert "session id must be str" in str(e), e
print("ok")'
  assert_success
  assert_output "ok"
}

@test "the data decode gives json.loads's value and types, in C or through json.loads" {
  run py '
import json
calls = []
real = sessgate._loads
def counting(text):
    calls.append(text)
    return real(text)
sessgate._loads = counting
st = sessgate.Store(STORE)
def check(data, label, fallback=False):
    sid = st.create(data=data).id
    s = st.get(sid)
    n = len(calls)
    got = s.data
    want = real(s._text)
    # repr tells 1 from 1.0 and True, -0.0 from 0.0, and shows key order.
    assert repr(got) == repr(want) == repr(data), (label, got, want)
    assert json.dumps(got) == json.dumps(want), label
    assert (len(calls) > n) == fallback, (label, "fallback" if fallback else "C")
    assert not s.changed, label
    return sid
check({"s": "caf\u00e9 \u2603 \U0001F600 \"q\" \\ / \b\f\n\r\t\u0001\u007f", "e": ""},
      "escapes, BMP and astral characters")
check({"i": 42, "neg": -7, "z": 0, "f": 0.25, "nf": -0.0, "big": 10**18 - 1,
       "tiny": 1e-300, "pi": 3.141592653589793, "huge": 1.5e300, "t": True, "fa": False, "n": None},
      "numbers and literals")
check({"a": [[], {}, [1, [2, [3, {"x": [None]}]]]], "o": {"p": {"q": {}}}}, "nesting")
check({"k%d" % i: i for i in range(600)}, "600 keys: the key cache collides")
check({"k%d" % i: -i for i in reversed(range(600))}, "the same keys, other values and order")
check({"long key " * 8: 1, "x" * 5000: "y" * 5000}, "long keys and values")
check({"big": 2**62}, "19 digits: json.loads decides", fallback=True)
# Another writer changes a session this process decoded before: the new
# values come back, never the ones decoded earlier.
sid = check({"n": 1, "who": "me"}, "before")
other = sessgate.Store(STORE)
with other.update(sid) as s:
    s["n"] = 2
    s["who"] = "them"
assert st.get(sid).data == {"n": 2, "who": "them"}, st.get(sid).data
# What json.loads raises on the fallback path still propagates.
def boom(text):
    raise KeyError("boom")
sessgate._loads = boom
sid = st.create(data={"big": -2**62}).id
try:
    st.get(sid)["big"]
    print("no error")
except KeyError as e:
    print("raised", e)
print("ok")'
  assert_success
  assert_output $'raised \'boom\'\nok'
}

@test "get(memo=True) sees another process's save, logout and delete at once" {
  run py '
import subprocess, sys
st = sessgate.Store(STORE)
a = st.create(user="alice", data={"n": 1}).id
b = st.create(user="bob", data={"n": 1}).id
def other(code):
    subprocess.run([sys.executable, "-c", os.environ["SG_PY_PRELUDE"] + code], check=True)
for _ in range(3):                      # kept copies now, if the backend keeps any
    assert st.get(a, memo=True)["n"] == 1 and st.get(b, memo=True)["n"] == 1
other("""
s = sessgate.Store(STORE).get(%r)
s["n"] = 2
s.save()""" % a)
assert st.get(a, memo=True)["n"] == 2, "a save by another process"
assert st.get(b, memo=True)["n"] == 1
other("sessgate.Store(STORE).delete_user(\"bob\")")
assert st.get(b, memo=True) is None, "a logout everywhere by another process"
other("sessgate.Store(STORE).delete(%r)" % a)
assert st.get(a, memo=True) is None, "a delete by another process"
c = st.create(data={"n": 5}).id
assert st.get(c, memo=True)["n"] == 5
with sessgate.Store(STORE).update(c) as s:   # another handle of this process
    s["n"] = 6
assert st.get(c, memo=True)["n"] == 6
print("ok")' 
  assert_success
  assert_output "ok"
}

@test "expired sessions are invisible to get, count and sessions, and purge removes them" {
  run py '
st = sessgate.Store(STORE)
# live first: the count must come within the one second of short (a loaded
# machine once spent it on the second create).
live = st.create(user="u").id
short = st.create(user="u", idle_timeout=1).id
assert st.count() == 2
time.sleep(2.1)
assert st.get(short) is None
assert st.count() == 1 and st.count("u") == 1
assert [s.id for s in st.sessions()] == [live]
print(st.purge(), st.purge())'
  assert_success
  # Redis deleted the expired record itself (PEXPIREAT): purge finds none.
  if on_redis; then assert_output "0 0"; else assert_output "1 0"; fi
}

@test "a mutation of a nested value is saved by save()" {
  run py '
st = sessgate.Store(STORE)
s = st.create(data={"cart": [], "prefs": {"lang": "en"}})
s["cart"].append(42)
s["prefs"]["lang"] = "de"
s.save()
print(json.dumps(st.get(s.id).data, sort_keys=True))'
  assert_success
  assert_output '{"cart": [42], "prefs": {"lang": "de"}}'
}

@test "a session is a mapping: [], get, in, keys, items, len, del, update" {
  run py '
st = sessgate.Store(STORE)
s = st.create(data={"a": 1, "b": [2]})
assert s["a"] == 1 and s.get("zz", 7) == 7 and s.get("zz") is None
assert "a" in s and "zz" not in s and len(s) == 2
assert sorted(s.keys()) == ["a", "b"] and dict(s.items()) == {"a": 1, "b": [2]}
del s["a"]; s.update(c=3); s.setdefault("d", {})
try:
    s["missing"]
except KeyError:
    pass
s.save()
print(json.dumps(dict(st.get(s.id)), sort_keys=True))'
  assert_success
  assert_output '{"b": [2], "c": 3, "d": {}}'
}

@test "a stale save raises Conflict, an Error carrying code SG_ECONFLICT" {
  run py '
from sessgate import sessgate_core as core
st = sessgate.Store(STORE)
sid = st.create(data={"n": 0}).id
a, b = st.get(sid), st.get(sid)
a["n"] = 1; a.save()
b["n"] = 2
try:
    b.save()
except sessgate.Conflict as e:
    assert isinstance(e, sessgate.Error) and e.code == core.SG_ECONFLICT == 3
    assert "conflict" in str(e), str(e)
    print("conflict")
print(st.get(sid)["n"])'
  assert_success
  assert_output $'conflict\n1'
}

@test "update() is an atomic read-modify-write that saves on exit" {
  run py '
st = sessgate.Store(STORE)
sid = st.create(data={"n": 0}).id
for _ in range(5):
    with st.update(sid) as s:
        s["n"] = s.get("n", 0) + 1
other = sessgate.Store(STORE, lock_timeout_ms=200)
with st.update(sid) as s:
    try:
        other.create()
        print("other writer got in")
    except sessgate.LockTimeout as e:
        print("locked out:", e.code)
    s["n"] += 1
print(st.get(sid)["n"])'
  assert_success
  assert_output $'locked out: 5\n6'
}

@test "update() saves nothing when the block raises, and releases the lock" {
  run py '
st = sessgate.Store(STORE)
sid = st.create(data={"n": 0}).id
try:
    with st.update(sid) as s:
        s["n"] = 99
        raise RuntimeError("abandon")
except RuntimeError:
    pass
sessgate.Store(STORE, lock_timeout_ms=200).create()
print(st.get(sid)["n"])'
  assert_success
  assert_output "0"
}

@test "update() of an unknown or malformed id raises NotFound and releases the lock" {
  run py '
st = sessgate.Store(STORE)
for sid in ["00000000-0000-4000-8000-000000000000", "junk"]:
    try:
        with st.update(sid) as s:
            print("entered")
    except sessgate.NotFound as e:
        print("NotFound", e.code)
sessgate.Store(STORE, lock_timeout_ms=200).create()'
  assert_success
  assert_output $'NotFound 1\nNotFound 1'
}

@test "delete removes a session; again raises NotFound; a malformed id raises InvalidId" {
  run py '
st = sessgate.Store(STORE)
a, b = st.create(), st.create()
st.delete(a.id)
assert st.get(a.id) is None
try:
    st.delete(a.id)
except sessgate.NotFound as e:
    print("NotFound", e.code)
try:
    st.delete("not-an-id")
except sessgate.InvalidId as e:
    assert isinstance(e, sessgate.InvalidArgument) and isinstance(e, ValueError)
    print("InvalidId", e.code)
b.delete()
print(st.count())'
  assert_success
  assert_output $'NotFound 1\nInvalidId 4\n0'
}

@test "rotate gives a new id with the same data and pending changes; by default the old id resolves to it" {
  # Issue #12: the default grace (10 s) keeps the old id of a plain
  # rotate; grace=False and rotate_grace=0 kill it at once; a login never
  # leaves one.
  run py '
st = sessgate.Store(STORE)
s = st.create(user="alice", data={"k": "v"})
old = s.id
s["pending"] = 1
new = s.rotate()
assert new != old and new == s.id and sessgate.id_valid(new)
via_old = st.get(old)
assert via_old is not None and via_old.id == new, via_old
g = st.get(new)
print(g.user, json.dumps(g.data, sort_keys=True))
a = st.create()
pre = a.id
a.login("eve")
print(st.get(pre))
b = st.create(user="u")
o = b.id
b.rotate(grace=False)
print(st.get(o))
st0 = sessgate.Store(STORE, rotate_grace=0)
c = st0.create(user="u")
o = c.id
c.rotate()
print(st0.get(o), st.get(o))
print([r["default"] for r in sessgate.store_options() if r["name"] == "rotate_grace"])'
  assert_success
  assert_output $'alice {"k": "v", "pending": 1}\nNone\nNone\nNone None\n[10]'
}

@test "login sets the user, saves and rotates the id" {
  run py '
st = sessgate.Store(STORE)
s = st.create(data={"cart": [1]})
old = s.id
new = s.login("bob")
assert new != old and st.get(old) is None
g = st.get(new)
print(g.user, g["cart"], st.count("bob"))'
  assert_success
  assert_output 'bob [1] 1'
}

@test "user can be set and cleared and is stored by save" {
  run py '
st = sessgate.Store(STORE)
s = st.create()
assert s.user is None
s.user = "carol"; s.save()
assert st.get(s.id).user == "carol"
s.user = None; s.save()
print(st.get(s.id).user)'
  assert_success
  assert_output "None"
}

@test "sessions(user) and count(user) cover the live sessions of a user" {
  run py '
st = sessgate.Store(STORE)
a1 = st.create(user="alice").id
b1 = st.create(user="bob").id
a2 = st.create(user="alice").id
anon = st.create().id
assert st.count() == 4 and st.count("alice") == 2 and st.count(user="nobody") == 0
assert sorted(s.id for s in st.sessions(user="alice")) == sorted([a1, a2])
assert sorted(s.id for s in st.sessions()) == sorted([a1, b1, a2, anon])
assert st.ids("bob") == [b1]
assert a1 in st and "junk" not in st
print("ok")'
  assert_success
  assert_output "ok"
}

@test "data that JSON cannot carry raises InvalidArgument and stores nothing" {
  run py '
st = sessgate.Store(STORE)
for bad in [{"s": {1, 2}}, {"f": float("nan")}, {"o": object()}, ["not", "a", "mapping"], "text"]:
    try:
        st.create(data=bad)
        print("accepted", bad)
    except sessgate.InvalidArgument as e:
        assert e.code == 4
s = st.create(data={"ok": 1})
try:
    s["bad"] = float("inf")             # refused at assignment
except sessgate.InvalidArgument:
    print("refused")
s["ok"] = [float("inf")][:0]
s["ok"].append(float("inf"))             # nested: refused at save
try:
    s.save()
except sessgate.InvalidArgument:
    print("refused at save")
print(st.count(), st.get(s.id).data)'
  assert_success
  assert_output $'refused\nrefused at save\n1 {\'ok\': 1}'
}

@test "a bad user name raises InvalidArgument" {
  run py '
st = sessgate.Store(STORE)
for bad in ["", "a\nb", "nul\0byte", "x" * 300, 42]:
    try:
        st.create(user=bad)
        print("accepted", repr(bad))
    except sessgate.InvalidArgument:
        pass
s = st.create()
try:
    s.user = "tab\there"
    print("accepted tab")
except sessgate.InvalidArgument:
    pass
print(st.count())'
  assert_success
  assert_output "1"
}

@test "data over the store's max_data raises TooBig" {
  run py '
st = sessgate.Store(STORE, max_data=1024)
try:
    st.create(data={"x": "y" * 2000})
except sessgate.TooBig as e:
    print("TooBig", e.code)
s = st.create(data={"x": "small"})
s["x"] = "y" * 2000
try:
    s.save()
except sessgate.TooBig:
    print("TooBig on save")
print(st.get(s.id)["x"])'
  assert_success
  assert_output $'TooBig 8\nTooBig on save\nsmall'
}

@test "max_per_user evicts the user's oldest sessions" {
  run py '
st = sessgate.Store(STORE, max_per_user=2)
ids = []
for _ in range(3):          # whole seconds apart: "oldest" is by created time
    ids.append(st.create(user="dave").id)
    time.sleep(1.05)
other = st.create(user="erin").id
print(st.count("dave"), st.get(ids[0]) is None, st.get(ids[2]) is not None, st.count("erin"))'
  assert_success
  assert_output "2 True True 1"
}

@test "a store lock held by another process gives LockTimeout after lock_timeout_ms" {
  py 'sessgate.Store(STORE).create()'
  export HELD="$BATS_TEST_TMPDIR/held"
  start_bg "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
with sessgate.Store(STORE).locked():
    open(os.environ["HELD"], "w").close()
    time.sleep(30)' >/dev/null
  for _ in $(seq 100); do [ -e "$HELD" ] && break; sleep 0.05; done
  [ -e "$HELD" ]
  run py '
t0 = time.monotonic()
try:
    sessgate.Store(STORE, lock_timeout_ms=300).create()
except sessgate.LockTimeout as e:
    assert isinstance(e, TimeoutError) and e.code == 5
    print("LockTimeout after", "short" if time.monotonic() - t0 < 3 else "long")
    print(str(e))'
  assert_success
  assert_line --index 0 "LockTimeout after short"
  assert_line --index 1 --partial "lock"
}

@test "opening a store in a missing directory raises StoreError with errno" {
  run py '
try:
    sessgate.Store(sys.argv[1])
except sessgate.StoreError as e:
    import errno
    print(e.code, e.errno == errno.ENOENT, sys.argv[1] in str(e))' "$(unreachable_store)"
  assert_success
  # Redis: errno stays 0 by design (backend_redis.c conn_up: a missing
  # socket is a server that is down, not a missing store).
  if on_redis; then assert_output "6 False True"; else assert_output "6 True True"; fi
}

@test "Store is a context manager; a closed store refuses calls and close is idempotent" {
  run py '
with sessgate.Store(STORE) as st:
    s = st.create(data={"a": 1})
assert st.closed
st.close()
try:
    st.get(s.id)
except sessgate.InvalidArgument as e:
    print("closed:", e)
try:
    s.save()
except sessgate.Error:
    print("save refused")
print(s["a"])'
  assert_success
  assert_output $'closed: the store is closed\nsave refused\n1'
}

@test "Store() without a path opens \$SESSGATE_STORE" {
  run env SESSGATE_STORE="$STORE" "$SG_PYTHON" -c "$SG_PY_PRELUDE"'
sid = sessgate.Store().create().id
print(sessgate.Store(STORE).get(sid) is not None)'
  assert_success
  assert_output "True"
  run py 'sessgate.Store()'
  assert_failure
  assert_output --partial "SESSGATE_STORE"
}

@test "a readonly store reads but refuses to write" {
  py 'sessgate.Store(STORE).create(data={"a": 1})'
  run py '
st = sessgate.Store(STORE, readonly=True)
assert st.count() == 1
s = next(st.sessions())
assert s["a"] == 1
try:
    st.create()
    print("created")
except sessgate.Error as e:
    print("refused")
print(st.count())'
  assert_success
  assert_output $'refused\n1'
}

@test "get(touch=False) leaves the idle window alone; get() extends it" {
  run py '
st = sessgate.Store(STORE, touch_interval=1)
s = st.create()
time.sleep(1.6)
a = st.get(s.id, touch=False).accessed
b = st.get(s.id).accessed
print(a == s.accessed, b > s.accessed, st.get(s.id).version == s.version)'
  assert_success
  assert_output "True True True"
}

@test "a session with its own short idle timeout stays alive while read every second" {
  # Issue #12: the touch interval followed the store's idle (1800 s ->
  # 60 s), so `accessed` of a session with idle 4 s was never rewritten.
  run py '
st = sessgate.Store(STORE)
sid = st.create(user="u", idle_timeout=4).id
t0 = time.time()
alive = True
while time.time() - t0 < 6.5:
    time.sleep(1)
    if st.get(sid) is None:
        alive = False
        break
print("alive" if alive else "expired after %.1f s" % (time.time() - t0))'
  assert_success
  assert_output "alive"
}

@test "a session is truthy even with empty data; get() gives None for no session" {
  run py '
st = sessgate.Store(STORE)
s = st.get(st.create().id)
assert len(s) == 0 and s.data == {}
print(bool(s), "yes" if s else "no", st.get("00000000-0000-4000-8000-000000000000") is None)'
  assert_success
  assert_output "True yes True"
}

@test "set_timeouts changes a session's lifetimes when saved" {
  run py '
st = sessgate.Store(STORE)
s = st.create()
s.set_timeouts(idle_timeout=50, max_age=100)
s.save()
g = st.get(s.id)
print(g.idle_timeout, g.expires - g.created)'
  assert_success
  assert_output "50 100"
}

@test "every C status maps to its exception class" {
  run py '
from sessgate import sessgate_core as core, errors
expect = {"SG_ENOTFOUND": "NotFound", "SG_EEXPIRED": "Expired", "SG_ECONFLICT": "Conflict",
          "SG_EINVAL": "InvalidArgument", "SG_ELOCKTIMEOUT": "LockTimeout",
          "SG_ESTORE": "StoreError", "SG_ENOMEM": "OutOfMemory", "SG_ETOOBIG": "TooBig"}
for name, cls in expect.items():
    e = errors._from_core(getattr(core, name), "t", 0)
    assert type(e).__name__ == cls and e.code == getattr(core, name), (name, e)
    assert type(e) is getattr(sessgate, cls)
assert issubclass(sessgate.Expired, sessgate.NotFound)
assert type(errors._from_core(99, "t", 0)) is sessgate.Error
print("ok")'
  assert_success
  assert_output "ok"
}

@test "sessions and stores are freed with their Python objects" {
  skip_under_asan
  run py '
import gc, resource
st = sessgate.Store(STORE)
sid = st.create(data={"pad": "x" * 4000}).id
def rss():
    return int(open("/proc/self/statm").read().split()[1])
for _ in range(2000): st.get(sid).data
before = rss()
for _ in range(20000): st.get(sid).data
for _ in range(200): sessgate.Store(STORE).close(); sessgate.Store(STORE)
gc.collect()
grow_kb = (rss() - before) * 4
print("grew", grow_kb, "KiB")
assert grow_kb < 2048, grow_kb'
  assert_success
}

@test "one Store shared by threads: updates stay atomic and a lock wait releases the GIL" {
  run py '
import threading
st = sessgate.Store(STORE, lock_timeout_ms=20000)
sid = st.create(data={"n": 0}).id
def work():
    for _ in range(100):
        with st.update(sid) as s:
            s["n"] += 1
        st.get(sid)
ts = [threading.Thread(target=work) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print(st.get(sid)["n"])
# A thread waiting for a lock held by another process must not stop the others.
import subprocess
holder = subprocess.Popen([sys.executable, "-c", os.environ["SG_PY_PRELUDE"] +
    "\nwith sessgate.Store(STORE).locked():\n    print(1, flush=True)\n    time.sleep(1.5)"],
    stdout=subprocess.PIPE)
holder.stdout.readline()
gap, last = 0.0, time.monotonic()
done = threading.Event()
def waiter():
    try:
        sessgate.Store(STORE, lock_timeout_ms=1000).create()
    except sessgate.LockTimeout:
        pass
    done.set()
t = threading.Thread(target=waiter); t.start()
while not done.is_set():      # the longest stall of this thread
    now = time.monotonic()
    gap, last = max(gap, now - last), now
t.join(); holder.wait()
print("others ran" if gap < 0.5 else f"others starved for {gap:.2f} s")'
  assert_success
  assert_output $'800\nothers ran'
}

@test "bad store options raise InvalidArgument before anything is opened" {
  run py '
for bad in [{"idle_timeout": -1}, {"max_data": "x"}, {"lock_timeout_ms": 1.5}, {"max_per_user": True}]:
    try:
        sessgate.Store(STORE, **bad)
        print("accepted", bad)
    except sessgate.InvalidArgument as e:
        assert e.code == 4
try:
    sessgate.Store(STORE, idle_timeot=5)
except TypeError:
    print("TypeError for an unknown option")
print(os.path.exists(STORE))'
  assert_success
  assert_output $'TypeError for an unknown option\nFalse'
}

@test "assigning data replaces it whole; changed tracks value changes, nested included" {
  run py '
st = sessgate.Store(STORE)
s = st.create(data={"a": 1, "b": {"c": [1]}})
g = st.get(s.id)
assert g.changed is False
g["b"]["c"].append(2)
assert g.changed is True
g.save()
assert g.changed is False
g.data = {"only": True}
assert g.changed is True
g.save()
try:
    g.data = ["not", "a", "mapping"]
except sessgate.InvalidArgument:
    print("refused a list")
print(json.dumps(st.get(s.id).data))'
  assert_success
  assert_output $'refused a list\n{"only": true}'
}

@test "delete_user logs one user out everywhere; clear empties the store" {
  run py '
st = sessgate.Store(STORE)
a = [st.create(user="ann").id for _ in range(3)]
b = st.create(user="bob").id
anon = st.create().id
print(st.delete_user("ann"), [st.get(x) for x in a], st.get(b) is not None, st.get(anon) is not None)
print(st.delete_user("ann"), st.count("ann"))
for bad in (None, "", "a\tb"):
    try:
        st.delete_user(bad)
        print("accepted", repr(bad))
    except sessgate.InvalidArgument:
        pass
print(st.clear(), st.count(), st.get(b))
st.create(user="ann")
print(st.count("ann"))'
  assert_success
  assert_line --index 0 "3 [None, None, None] True True"
  assert_line --index 1 "0 0"
  assert_line --index 2 "2 0 None"
  assert_line --index 3 "1"
}

@test "csrf_token and check_csrf: one token per session, new at login, kept by rotate" {
  run py '
st = sessgate.Store(STORE)
s = st.create()
t = s.csrf_token
print(len(t), s.check_csrf(t), s.check_csrf(t[:-1] + ("0" if t[-1] != "0" else "1")), s.check_csrf(None), s.check_csrf(b"x"))
s.rotate()
print(s.csrf_token == t, st.get(s.id).csrf_token == t)
s.login("ann")
print(s.csrf_token != t, st.get(s.id).check_csrf(t))'
  assert_success
  assert_line --index 0 "64 True False False False"
  assert_line --index 1 "True True"
  assert_line --index 2 "True False"
}

@test "flash queues messages; pop_flashes takes them once, also across threads" {
  run py '
import threading
st = sessgate.Store(STORE)
s = st.create()
s.flash("Saved", category="info"); s.flash({"n": 1}); s.save()
g = st.get(s.id)
print(g.pop_flashes())
print(g.pop_flashes())
g["k"] = 1; g.save()                       # the popping copy still saves
s2 = st.get(s.id); s2.flash("again"); s2.save()
got = []
def pop():
    got.append(st.get(s.id).pop_flashes())
ts = [threading.Thread(target=pop) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(1 for x in got if x), sum(len(x) for x in got))'
  assert_success
  assert_line --index 0 "[{'message': 'Saved', 'category': 'info'}, {'message': {'n': 1}, 'category': 'message'}]"
  assert_line --index 1 "[]"
  assert_line --index 2 "1 1"
}

@test "Store(rotate_grace=): the old id of a rotate resolves for the window; a login leaves none" {
  run py '
st = sessgate.Store(STORE, rotate_grace=2)
s = st.create(user="bob")
old = s.id
s.rotate()
print(st.get(old).id == s.id)
a = st.create()
pre = a.id
a.login("eve")
print(st.get(pre))
time.sleep(3)
print(st.get(old))'
  assert_success
  assert_output $'True\nNone\nNone'
}

@test "Store(rotate_grace=1): the window is a whole second even when the rotate is late in a second" {
  # Rotate at .90-.95 of a second and look 0.5 s later, past the next
  # second boundary: a window counted in whole seconds had closed there.
  run py '
st = sessgate.Store(STORE, rotate_grace=1)
s = st.create(user="bob")
old = s.id
for _ in range(40):
    f = time.time() % 1
    if 0.90 <= f < 0.95:
        break
    time.sleep((0.90 - f) % 1)
s.rotate()
t = time.time()
time.sleep(0.5)
g = st.get(old)
print(g is not None and g.id == s.id, time.time() - t < 0.95)
time.sleep(1.1 - (time.time() - t))
print(st.get(old))'
  assert_success
  assert_output $'True True\nNone'
}

@test "Store's docstring and store_options() come from the library's option table" {
  run py '
names = [o["name"] for o in sessgate.store_options()]
print(names)
doc = sessgate.Store.__doc__
for o in sessgate.store_options():
    assert "``%s``" % o["name"] in doc, o
print([o for o in sessgate.store_options() if o["name"] == "lock_timeout_ms"][0]["max"])
assert "(1 to 3600000; default 5000)" in doc
assert "{options}" not in doc
for bad in [{"lock_timeout_ms": 3600001}, {"rotate_grace": 301}, {"max_data": 1}]:
    try:
        sessgate.Store(STORE, **bad)
        print("accepted", bad)
    except sessgate.InvalidArgument as e:
        assert "store option" in str(e), e'
  assert_success
  assert_output "['lock_timeout_ms', 'idle_timeout', 'max_age', 'touch_interval', 'max_per_user', 'max_data', 'rotate_grace', 'sync', 'group', 'readonly']
3600000"
}
