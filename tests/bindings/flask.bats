#!/usr/bin/env bats
# tests/bindings/flask.bats - sessgate.flask: flask.session kept in the
# sessgate store (Debian's python3-flask, driven by Flask's test client):
# server-side, the cookie carries only the store-made id, Flask's config
# names are honoured, no SECRET_KEY is needed.
# backends: gdbm redis

load ../helpers/common
load bindings

setup() {
  require_bindings
  "$SG_PYTHON" -c 'import flask' 2>/dev/null || skip "python3-flask is not installed"
  setup_store
}

# fl CODE: Python with a Flask app using sessgate.flask (app, C = client).
fl() {
  "$SG_PYTHON" -c '
import os, sys, datetime, flask, sessgate, sessgate.flask
from flask import session
app = flask.Flask("t")
app.config["SESSGATE_STORE"] = os.environ["STORE"]
app.config.update(__import__("json").loads(os.environ.get("FLASK_CONF", "{}")))
sessgate.flask.init_app(app)
@app.route("/count")
def count():
    session["n"] = session.get("n", 0) + 1
    return "n=%s" % session["n"]
@app.route("/append")
def append():
    session.setdefault("l", [])
    session["l"].append(len(session["l"]))     # nested: no session.modified
    return str(session["l"])
@app.route("/peek")
def peek():
    return "n=%s" % session.get("n", 0)
@app.route("/login/<user>")
def login(user):
    session["user"] = user
    session.regenerate()
    return user
@app.route("/logout")
def logout():
    session.clear()
    return "bye"
@app.route("/perm")
def perm():
    session.permanent = True
    session["p"] = 1
    return "p"
STORE = sessgate.Store(os.environ["STORE"])
C = app.test_client()
def cookie(r):
    return [v for k, v in r.headers.items() if k == "Set-Cookie"]
'"$1" "${@:2}"
}

@test "flask.session lives in the store without a SECRET_KEY; the cookie carries only the id" {
  run -0 fl '
assert app.secret_key is None
for _ in range(3):
    r = C.get("/count")
print(r.get_data(as_text=True))
sid = C.get_cookie("session").value if hasattr(C, "get_cookie") else C.cookie_jar._cookies["localhost.local"]["/"]["session"].value
assert sessgate.id_valid(sid), sid
print(STORE.get(sid).data)'
  assert_line -n 0 "n=3"
  assert_line -n 1 "{'n': 3}"
}

@test "Flask's cookie config names shape the cookie" {
  FLASK_CONF='{"SESSION_COOKIE_NAME": "sid", "SESSION_COOKIE_PATH": "/app", "SESSION_COOKIE_DOMAIN": "example.test", "SESSION_COOKIE_SECURE": true, "SESSION_COOKIE_SAMESITE": "Strict"}' \
  run -0 fl '
r = C.get("/count", base_url="https://example.test/")
print(cookie(r)[0])'
  assert_output --regexp '^sid=[0-9a-f-]{36}; Domain=example.test; Secure; HttpOnly; Path=/app; SameSite=Strict$'
}

@test "a read-only request creates nothing and sets no cookie" {
  run -0 fl '
r = C.get("/peek")
print(r.get_data(as_text=True), cookie(r), STORE.count())'
  assert_output "n=0 [] 0"
}

@test "nested changes are saved without session.modified" {
  run -0 fl '
C.get("/append"); C.get("/append")
print(C.get("/append").get_data(as_text=True))'
  assert_output "[0, 1, 2]"
}

@test "regenerate() gives a new id at login; the old id stops working" {
  run -0 fl '
C.get("/count")
old = cookie(C.get("/count"))
sid_old = STORE.ids()[0]
r = C.get("/login/alice")
new = cookie(r)[0].split(";")[0].split("=")[1]
assert new != sid_old and STORE.get(sid_old) is None
print(STORE.get(new).data)'
  assert_output "{'n': 2, 'user': 'alice'}"
}

@test "session.clear() deletes the stored session and expires the cookie" {
  run -0 fl '
C.get("/count")
r = C.get("/logout")
print(cookie(r)[0].split(";")[0], "Expires=Thu, 01 Jan 1970" in cookie(r)[0], STORE.count())
print(C.get("/peek").get_data(as_text=True))'
  assert_line -n 0 "session= True 0"
  assert_line -n 1 "n=0"
}

@test "PERMANENT_SESSION_LIFETIME is the idle timeout; a permanent session's cookie gets Expires" {
  FLASK_CONF='{"PERMANENT_SESSION_LIFETIME": 600}' run -0 fl '
r = C.get("/perm")
sid = STORE.ids()[0]
print(STORE.get(sid).idle_timeout, "Expires=" in cookie(r)[0])
r = C.get("/count")
print("Expires=" in cookie(r)[0])'
  assert_line -n 0 "600 True"
  assert_line -n 1 "True"
}

@test "a forged or unknown cookie is never adopted" {
  run -0 fl '
C.set_cookie("localhost", "session", "0b5c1d2e-0000-4000-8000-000000000000")
r = C.get("/count")
sid = cookie(r)[0].split(";")[0].split("=")[1]
assert sid != "0b5c1d2e-0000-4000-8000-000000000000" and sessgate.id_valid(sid)
print(r.get_data(as_text=True))'
  assert_output "n=1"
}

@test "a value JSON cannot carry is refused, not changed" {
  run -0 fl '
@app.route("/bad")
def bad():
    session["t"] = (1, 2)
    return "?"
app.config["PROPAGATE_EXCEPTIONS"] = True
try:
    C.get("/bad")
except TypeError as e:
    print(type(e).__name__, e)'
  assert_output --partial "NotSerializable session data['t']: tuple not allowed"
}

@test "behind the gateway, SESSION_ID in the environ names the session; a bad one none" {
  run -0 fl '
sid = STORE.create(data={"n": 10}).id
r = C.get("/count", environ_base={"SESSION_ID": sid})
print(r.get_data(as_text=True), STORE.get(sid).data)
r = C.get("/peek", environ_base={"SESSION_ID": "forged"})
print(r.get_data(as_text=True))
r = app.test_client().get("/peek", headers={"Session-Id": sid})   # HTTP_SESSION_ID
print(r.get_data(as_text=True))'
  assert_line -n 0 "n=11 {'n': 11}"
  assert_line -n 1 "n=0"
  assert_line -n 2 "n=0"
}
