#!/usr/bin/env bats
# tests/bindings/django.bats - SESSION_ENGINE = "sessgate.django" in a real
# Django project (Debian's python3-django, tests/bindings/fixtures/djangoproj)
# driven by Django's test client, and the SessionStore through the
# behaviours Django's own backends are tested for (create, must_create
# collisions, cycle_key, flush, set_expiry/get_expiry_age, clear_expired,
# exists, an unknown key loads as a new empty session), and clearsessions.
# backends: gdbm redis

load ../helpers/common
load bindings

setup() {
  require_bindings
  "$SG_PYTHON" -c 'import django' 2>/dev/null || skip "python3-django is not installed"
  setup_store
  export PYTHONPATH="$SG_BUILDDIR/bindings/python:$SG_SRCDIR/tests/bindings/fixtures/djangoproj"
  export DJANGO_SETTINGS_MODULE=settings
}

# dj CODE: Python with Django set up, a test client C and SessionStore.
dj() {
  "$SG_PYTHON" -c '
import os, sys, time, datetime, django
django.setup()
from django.test import Client
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from sessgate.django import SessionStore
import sessgate
C = Client()
'"$1" "${@:2}"
}

@test "the test client keeps a counter in the sessgate store; the cookie carries only the id" {
  run -0 dj '
for _ in range(3):
    r = C.get("/count")
print(r.content.decode())
key = C.cookies["sessionid"].value
assert sessgate.id_valid(key), key
print(sessgate.Store(os.environ["STORE"]).get(key).data)'
  assert_line -n 0 "n=3"
  assert_line -n 1 "{'n': 3}"
}

@test "the stored session is the one sessgatectl and other languages see" {
  run -0 dj '
C.get("/count")
print(C.cookies["sessionid"].value)'
  key=$output
  run -0 sessgatectl --store "$STORE" set "$key" '{"n":41}'
  run -0 dj '
C.cookies["sessionid"] = sys.argv[1]
print(C.get("/count").content.decode())' "$key"
  assert_output "n=42"
}

@test "an unknown or forged key gives a new empty session with a key made by the store" {
  run -0 dj '
forged = "0b5c1d2e-0000-4000-8000-000000000000"
C.cookies["sessionid"] = forged
print(C.get("/count").content.decode())
assert C.cookies["sessionid"].value not in (forged, "")
s = SessionStore(forged)
assert s.load() == {} and s.session_key is None
s["a"] = 1; s.save()
assert s.session_key != forged and sessgate.id_valid(s.session_key)
s2 = SessionStore("not-a-key"); assert s2.get("a") is None
print("ok")'
  assert_line -n 0 "n=1"
  assert_line -n 1 ok
}

@test "login cycles the key: the old key stops working, the data moves" {
  run -0 dj '
C.get("/count"); C.get("/count")
old = C.cookies["sessionid"].value
print(C.get("/login?user=alice").content.decode())
new = C.cookies["sessionid"].value
assert new != old
s = SessionStore()
assert not s.exists(old) and s.exists(new)
print(C.get("/peek").content.decode().split()[0], SessionStore(new).load())'
  assert_line -n 0 "user=alice"
  assert_line -n 1 "n=2 {'n': 2, 'user': 'alice'}"
}

@test "flush (logout) deletes the stored session; the next request starts anew" {
  run -0 dj '
C.get("/count")
old = C.cookies["sessionid"].value
C.get("/logout")
assert not SessionStore().exists(old)
print(C.get("/peek").content.decode().split()[0])
assert sessgate.Store(os.environ["STORE"]).count() == 0'
  assert_output "n=0"
}

@test "SessionStore: create, exists, must_create collisions, delete, save after delete" {
  run -0 dj '
s = SessionStore()
s["k"] = "v"
s.create()
key = s.session_key
assert s.exists(key) and not s.exists(None) and not s.exists("") and not s.exists("x")
t = SessionStore(key)
try:
    t.save(must_create=True)
except CreateError:
    print("collision refused")
u = SessionStore(key)
assert u["k"] == "v"
SessionStore().delete(key)
try:
    u["k"] = "w"; u.save()                  # deleted meanwhile: not resurrected
except UpdateError:
    print("update refused")
assert not s.exists(key)
v = SessionStore(); v.save(must_create=True); assert v.exists(v.session_key)'
  assert_line -n 0 "collision refused"
  assert_line -n 1 "update refused"
}

@test "SessionStore: cycle_key and flush keep Django semantics" {
  run -0 dj '
s = SessionStore(); s["a"] = 1; s["b"] = 2; s.save()
prev_key, prev_data = s.session_key, list(s.items())
s.cycle_key()
assert not s.exists(prev_key) and s.session_key != prev_key
assert list(s.items()) == prev_data
assert SessionStore(s.session_key).load() == {"a": 1, "b": 2}
key = s.session_key
s.flush()
assert s.modified and s.session_key is None and not s.exists(key) and dict(s) == {}
print("ok")'
  assert_output ok
}

@test "set_expiry / get_expiry_age decide the store's idle timeout, and expired sessions load empty" {
  run -0 dj '
s = SessionStore(); s["x"] = 1; s.save()
assert s.get_expiry_age() == settings.SESSION_COOKIE_AGE
st = sessgate.Store(os.environ["STORE"])
assert st.get(s.session_key).idle_timeout == settings.SESSION_COOKIE_AGE
s.set_expiry(300); s.save()
assert s.get_expiry_age() == 300 and st.get(s.session_key).idle_timeout == 300
s.set_expiry(datetime.timedelta(seconds=600)); s.save()
assert 598 <= s.get_expiry_age() <= 600
back = SessionStore(s.session_key)
assert isinstance(back.get("_session_expiry"), datetime.datetime)
assert 598 <= back.get_expiry_age() <= 600, back.get_expiry_age()
s.set_expiry(None); s.save()
assert s.get_expiry_age() == settings.SESSION_COOKIE_AGE
s.set_expiry(1); s.save()
time.sleep(2.2)
gone = SessionStore(s.session_key)
assert gone.load() == {} and gone.session_key is None
print(C.get("/expiry?s=120").content.decode())'
  assert_output "age=120"
}

@test "clear_expired and manage.py clearsessions purge expired sessions only" {
  run -0 dj '
a = SessionStore(); a["x"] = 1; a.set_expiry(1); a.save()
b = SessionStore(); b["y"] = 1; b.save()
time.sleep(2.2)
SessionStore.clear_expired()
print(sessgate.Store(os.environ["STORE"]).purge(), b.exists(b.session_key))
c = SessionStore(); c["z"] = 1; c.set_expiry(1); c.save()'
  assert_output "0 True"
  sleep 2.2
  run -0 "$SG_PYTHON" -m django clearsessions
  run -0 "$SG_PYTHON" -c 'import os, sessgate; print(sessgate.Store(os.environ["STORE"]).purge())'
  assert_output 0
  run -0 sessgatectl --store "$STORE" count
  assert_output 1
}
