#!/usr/bin/env bats
# tests/bindings/pydata.bats - what Python session data may hold: values
# JSON would change (tuples, non-str keys, datetimes, NaN, sets, bytes)
# raise NotSerializable (a TypeError) at assignment or save, or go through
# the store's json_default hook; a Session pickles to id + data and
# unpickles only onto the version it was pickled from; typed models
# (dataclass, pydantic) validate on load and save.
# backends: gdbm redis

load ../helpers/common
load bindings

setup() {
  require_bindings
  setup_store
}

@test "values JSON would change raise NotSerializable (a TypeError) at assignment, naming the place" {
  run -0 py '
import datetime, decimal
st = sessgate.Store(STORE)
s = st.create(data={"keep": 1})
for key, value in [("t", (1, 2)), ("d", datetime.datetime(2024, 1, 2)),
                   ("n", float("nan")), ("i", float("inf")), ("set", {1}),
                   ("b", b"x"), ("dec", decimal.Decimal("1.5")),
                   ("deep", {"a": [1, {"b": (3,)}]}), ("k", {1: "one"})]:
    try:
        s[key] = value
    except TypeError as e:
        assert isinstance(e, sessgate.NotSerializable) and isinstance(e, sessgate.InvalidArgument)
        print(e)
    else:
        raise SystemExit("accepted %r" % (value,))
try:
    s[1] = "x"
except TypeError as e:
    print(e)
assert dict(s) == {"keep": 1}, dict(s)'
  assert_line "session data['t']: tuple not allowed: a tuple would come back as a list: store a list"
  assert_line --partial "session data['d']: datetime not allowed: JSON has no dates"
  assert_line --partial "session data['n']: float not allowed: nan is not valid JSON"
  assert_line --partial "session data['i']: float not allowed: inf is not valid JSON"
  assert_line --partial "session data['set']: set not allowed"
  assert_line --partial "session data['b']: bytes not allowed"
  assert_line --partial "session data['dec']: Decimal not allowed"
  assert_line --partial "session data['deep']['a'][1]['b']: tuple not allowed"
  assert_line --partial "session data['k']: key 1 is a int: JSON keys are strings"
  assert_line --partial "session data: key 1 is a int"
}

@test "a bad value put inside a nested value is refused at save, and nothing is stored" {
  run -0 py '
st = sessgate.Store(STORE)
s = st.create(data={"cart": [1]})
s["cart"].append((2, 3))
try:
    s.save()
except sessgate.NotSerializable as e:
    print(e)
s2 = st.get(s.id)
assert s2.data == {"cart": [1]} and s2.version == s.version
try:
    st.create(data={"when": __import__("datetime").date.today()})
except TypeError:
    print("create refused")
try:
    s.data = {3: 4}
except TypeError:
    print("data refused")'
  assert_line -n 0 "session data['cart'][1]: tuple not allowed: a tuple would come back as a list: store a list"
  assert_line -n 1 "create refused"
  assert_line -n 2 "data refused"
}

@test "every JSON type is accepted as before, subclasses of str and int included" {
  run -0 py '
import enum
class Color(str, enum.Enum):
    RED = "red"
st = sessgate.Store(STORE)
d = {"s": "x", "i": 1, "f": 1.5, "t": True, "n": None, "l": [1, [2, {}]], "o": {"a": {}},
     "e": Color.RED}
s = st.create(data=d)
print(st.get(s.id).data)'
  assert_output "{'s': 'x', 'i': 1, 'f': 1.5, 't': True, 'n': None, 'l': [1, [2, {}]], 'o': {'a': {}}, 'e': 'red'}"
}

@test "a json_default hook converts what JSON cannot carry, once and visibly" {
  run -0 py '
import datetime
def default(v):
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, (tuple, set)):
        return sorted(v)
    raise TypeError(f"cannot store {type(v).__name__}")
st = sessgate.Store(STORE, json_default=default)
s = st.create(data={"when": datetime.date(2024, 1, 2)})
s["pair"] = (2, 1)
s["nested"] = {"at": datetime.datetime(2024, 1, 2, 3, 4, 5)}
s.save()
print(sessgate.Store(STORE).get(s.id).data)
try:
    s["x"] = object()
except TypeError as e:
    print("hook refused:", e)'
  assert_line -n 0 "{'when': '2024-01-02', 'pair': [1, 2], 'nested': {'at': '2024-01-02T03:04:05'}}"
  assert_line -n 1 "hook refused: cannot store object"
}

@test "a Session pickles to id and data, and unpickles onto the same session" {
  run -0 py '
import pickle
st = sessgate.Store(STORE)
s = st.create(user="alice", data={"n": 1})
s["n"] = 2                                  # unsaved change travels too
blob = pickle.dumps(s)
assert b"SwigPyObject" not in blob
t = pickle.loads(blob)
assert isinstance(t, sessgate.Session) and t.id == s.id and t.user == "alice"
assert dict(t) == {"n": 2} and t.changed
t.save()
print(sessgate.Store(STORE).get(s.id).data)'
  assert_output "{'n': 2}"
}

@test "unpickling refuses a session saved since (Conflict) or gone (NotFound)" {
  run -0 py '
import pickle
st = sessgate.Store(STORE)
s = st.create(data={"n": 1})
blob = pickle.dumps(s)
s["n"] = 5; s.save()
try:
    pickle.loads(blob)
except sessgate.Conflict as e:
    print("conflict:", e)
s.delete()
try:
    pickle.loads(pickle.dumps(s))
except sessgate.NotFound as e:
    print("gone:", e)'
  assert_line -n 0 --regexp '^conflict: unpickling session [0-9a-f-]{36}: saved since it was pickled \(version 1, now 2\)$'
  assert_line -n 1 --regexp '^gone: unpickling session [0-9a-f-]{36}: not found or expired'
}

@test "a dataclass model gives typed access and validates on load and save" {
  run -0 py '
import dataclasses
from typing import List, Optional
@dataclasses.dataclass
class Address:
    city: str
@dataclasses.dataclass
class Cart:
    items: List[int] = dataclasses.field(default_factory=list)
    note: Optional[str] = None
    ship_to: Optional[Address] = None
st = sessgate.Store(STORE, model=Cart)
s = st.create()                             # empty data: not validated yet
cart = s.to_model(Cart)
cart.items.append(3); cart.ship_to = Address("Oslo")
s.from_model(cart); s.save()
back = st.get(s.id).to_model(Cart)
assert isinstance(back.ship_to, Address) and back.items == [3], back
print(back)
for bad in ({"items": ["x"]}, {"items": [], "colour": 1}, {"ship_to": {}}):
    s.data = bad
    try:
        s.save()
    except sessgate.InvalidData as e:
        print(e)
# Data that does not fit (written by another process) fails on load.
plain = sessgate.Store(STORE); p = plain.get(s.id); p["note"] = 5; p.save()
try:
    st.get(s.id)
except sessgate.InvalidData as e:
    print("load:", e)'
  assert_line -n 0 "Cart(items=[3], note=None, ship_to=Address(city='Oslo'))"
  assert_line -n 1 "session data['items'][0]: 'x' is not int"
  assert_line -n 2 "session data['colour']: not a field of Cart"
  assert_line -n 3 "session data['ship_to']['city']: missing (a required field of Address)"
  assert_line -n 4 "load: session data['note']: 5 is not str"
}

@test "a pydantic model validates on load and save where pydantic is installed" {
  "$SG_PYTHON" -c 'import pydantic' 2>/dev/null || skip "python3-pydantic is not installed"
  run -0 py '
from typing import List
import pydantic
class Prefs(pydantic.BaseModel):
    theme: str = "light"
    volume: int = 5
    tags: List[str] = []
st = sessgate.Store(STORE, model=Prefs)
s = st.create(data={"theme": "dark"})
p = s.to_model(Prefs)
assert isinstance(p, Prefs) and p.theme == "dark" and p.volume == 5
p.volume = 7
s.from_model(p); s.save()
print(st.get(s.id).data)
s["volume"] = "loud"
try:
    s.save()
except sessgate.InvalidData as e:
    print(str(e).splitlines()[0])'
  assert_line -n 0 "{'theme': 'dark', 'volume': 7, 'tags': []}"
  assert_line -n 1 "session data does not fit Prefs: 1 validation error for Prefs"
}

@test "Django-style names on Session: modified, cycle_key, flush, set_expiry, get_expiry_age" {
  run -0 py '
import datetime
st = sessgate.Store(STORE, idle_timeout=100)
s = st.create(data={"a": 1})
assert s.modified is False and 98 <= s.get_expiry_age() <= 100
s["b"] = 2
assert s.modified is True
s.set_expiry(50); s.save()
assert st.get(s.id).idle_timeout == 50 and 48 <= s.get_expiry_age() <= 50
s.set_expiry(datetime.timedelta(seconds=70)); s.save()
assert st.get(s.id).idle_timeout == 70
s.set_expiry(None); s.save()
assert st.get(s.id).idle_timeout == 100
s.set_expiry(datetime.datetime.now() + datetime.timedelta(seconds=30)); s.save()
assert 28 <= s.get_expiry_age() <= 30, s.get_expiry_age()
for bad in (0, -1, "x", True):
    try:
        s.set_expiry(bad)
    except sessgate.InvalidArgument:
        pass
    else:
        raise SystemExit("accepted %r" % (bad,))
old = s.id
new = s.cycle_key()
assert new != old and st.get(old) is None and st.get(new)["b"] == 2
s.flush()
assert st.get(new) is None and dict(s) == {}
s.flush()                                  # twice: no error
print("ok")'
  assert_output ok
}
