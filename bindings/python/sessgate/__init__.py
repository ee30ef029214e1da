"""sessgate - web sessions shared with the sessgate gateway, in Python.

The store is the same GDBM file the FastCGI gateway, ``sessgatectl`` and the
Lua binding use; every process coordinates through file locks, so a session
written here is seen at once by the others.  ::

    import sessgate
    store = sessgate.Store("sessions.db", idle_timeout=1800)
    s = store.create(user="alice", data={"cart": []})
    s = store.get(sid)               # None when unknown, expired or malformed
    s["cart"].append(42); s.save()   # raises sessgate.Conflict on a stale copy
    with store.update(sid) as s:     # atomic read-modify-write under the lock
        s["n"] = s.get("n", 0) + 1

This layer is written by hand over the raw SWIG module ``sessgate_core``
(generated from bindings/sessgate.i), which already turns C errors into the
exceptions of :mod:`sessgate.errors` and frees C objects with their Python
proxies.  Data crosses the boundary as compact ASCII JSON, serialised in
full at save time so that changes to nested values are never lost.

Threads: the C calls release the GIL (a call may wait up to the lock
timeout for another process), and each Store serialises its own calls with
a lock, so one Store may be shared by the threads of a server; an update()
block holds that lock throughout, so it stays atomic against the other
threads too.  A Session object should stay with one thread.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import threading
import time
from typing import (Any, Callable, ContextManager, Dict, Iterable, Iterator,
                    List, Mapping,
                    MutableMapping, Optional, Tuple, Type, TypeVar, Union,
                    overload)

# The raw SWIG module: flat C functions (its last lines bind them to the
# extension's own, one call less), SG_* constants, handle classes.
from . import sessgate_core as _c
from .errors import (Conflict, Error, Expired, InvalidArgument, InvalidId,
                     LockTimeout, NotFound, OutOfMemory, StoreError, TooBig)
from ._data import InvalidData, NotSerializable
from . import _data

__all__ = [
    "Store", "Session", "Error", "NotFound", "Expired", "Conflict",
    "InvalidArgument", "InvalidId", "LockTimeout", "StoreError",
    "OutOfMemory", "TooBig", "id_valid", "version", "__version__",
    "MAX_DEPTH", "NotSerializable", "InvalidData", "store_options",
]

__version__: str = _c.version()

JSONValue = Any
_T = TypeVar("_T")
_GET_NOTOUCH: int = _c.SG_GET_NOTOUCH
_GET_MEMO: int = _c.SG_GET_MEMO
#: Deepest nesting of session data a save accepts (the data dict is level
#: 1); the C library's SG_MAX_DEPTH, the same for every language.
MAX_DEPTH: int = _c.SG_MAX_DEPTH

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True,
                            allow_nan=False)
_dumps = _encoder.encode
_loads = json.loads
# The data of a session read is decoded in C (bindings/python/sgw_json.h,
# the stored compact ASCII form only, the values json.loads makes); any
# text that decoder does not take goes to json.loads, which decides.
# The lean read path (bindings/python/sessgate_core_python.i): Store.get
# in one C call (the store's mutex, the C get, None for "no such session",
# the Session made without running __init__), and a session's first data
# access in one more (the stored text decoded in C, json.loads deciding
# what that decoder does not take).
_py_store_get = _c.py_store_get
_py_session_load = _c.py_session_load
_session_save = _c.session_save
_session_set_data = _c.session_set_data
_session_data_json = _c.session_data_json


def version() -> str:
    """The version of the C library underneath."""
    return _c.version()


def id_valid(sid: Any) -> bool:
    """Whether sid has the shape of a session id (36-char lower-case UUID).
    Says nothing about whether such a session exists."""
    return isinstance(sid, str) and bool(_c.id_valid(sid))


def _check_user(user: Optional[str]) -> None:
    if user is not None and (not isinstance(user, str) or "\0" in user):
        raise InvalidArgument("user must be a str without NUL characters",
                              _c.SG_EINVAL)


def _dump_data(data: Mapping[str, JSONValue],
               default: "_data.JSONDefault" = None) -> str:
    """data as compact JSON, after sessgate._data's rules: NotSerializable
    (a TypeError) for what JSON would change, TooBig past MAX_DEPTH."""
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    data = _data.check(data, default)
    try:
        return _dumps(data)
    except (TypeError, ValueError) as e:      # not reached after check()
        raise NotSerializable(f"session data is not JSON: {e}",
                              _c.SG_EINVAL) from e


class Session(MutableMapping[str, JSONValue]):
    """One session: a mutable mapping over its JSON data, plus metadata.

    Changes (items, ``user``) stay in this copy until :meth:`save`.  The
    data is decoded on first use and serialised whole at save time, so
    ``s["cart"].append(42); s.save()`` keeps the append.
    """

    __slots__ = ("_store", "_raw", "_data", "_text")

    def __init__(self, store: "Store", raw: Any) -> None:
        self._store = store
        self._raw = raw            # owned sg_session proxy; freed with it
        self._data: Optional[Dict[str, JSONValue]] = None
        self._text: Optional[str] = None   # JSON the data was decoded from

    # ---------------------------------------------------------- metadata
    @property
    def id(self) -> str:
        """The session id (changes on :meth:`rotate`)."""
        return _c.session_id(self._raw)

    @property
    def user(self) -> Optional[str]:
        """The logged-in user, or None for an anonymous session.
        Assigning validates at once and is stored by :meth:`save`."""
        return _c.session_user(self._raw)

    @user.setter
    def user(self, user: Optional[str]) -> None:
        _check_user(user)
        _c.session_set_user(self._raw, user)

    @property
    def created(self) -> int:
        """Creation time, Unix seconds."""
        return _c.session_created(self._raw)

    @property
    def accessed(self) -> int:
        """Last use recorded in the store, Unix seconds."""
        return _c.session_accessed(self._raw)

    @property
    def expires(self) -> int:
        """Absolute end of the session (created + max age), Unix seconds."""
        return _c.session_expires(self._raw)

    @property
    def idle_timeout(self) -> int:
        """Seconds of inactivity after which the session expires."""
        return _c.session_idle_timeout(self._raw)

    @property
    def version(self) -> int:
        """Bumped by every save; a save from an older copy conflicts."""
        return _c.session_version(self._raw)

    @property
    def is_new(self) -> bool:
        """True when this copy was made by :meth:`Store.create`."""
        return bool(_c.session_is_new(self._raw))

    @property
    def store(self) -> "Store":
        """The store this session was loaded from."""
        return self._store

    # -------------------------------------------------------------- data
    @property
    def data(self) -> Dict[str, JSONValue]:
        """The session data as a dict (decoded on first use)."""
        d = self._data
        if d is None:
            d = _py_session_load(self, _loads)
        return d

    @data.setter
    def data(self, value: Mapping[str, JSONValue]) -> None:
        # Fail now, not at save time (see sessgate._data for the rules).
        if isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        self._data = dict(_data.check(value, self._store.json_default))
        if self._text is None:
            self._text = _session_data_json(self._raw)

    @property
    def changed(self) -> bool:
        """Whether the data differs from what was loaded or last saved
        (compared by value, nested changes included)."""
        if self._data is None:
            return False
        return (_dump_data(self._data, self._store.json_default)
                != _dumps(_loads(self._text or "{}")))

    def __getitem__(self, key: str) -> JSONValue:
        d = self._data
        if d is None:
            d = _py_session_load(self, _loads)
        return d[key]

    def __setitem__(self, key: str, value: JSONValue) -> None:
        # Checked at assignment (a tuple, an int key, NaN, a datetime raise
        # NotSerializable here); changes inside values are checked at save.
        if not isinstance(key, str):
            _data.check({key: value})             # raises, naming the key
        self.data[key] = _data.check({key: value}, self._store.json_default)[key]

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        # Why: a Mapping with no items is falsy, so `s = store.get(sid);
        # if s: ...` would treat a live session with empty data as missing.
        # store.get() answers None for "no session"; a session is truthy.
        return True

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: str, default: JSONValue = None) -> JSONValue:
        d = self._data
        if d is None:
            d = _py_session_load(self, _loads)
        return d.get(key, default)

    def __repr__(self) -> str:
        return (f"<sessgate.Session {self.id} user={self.user!r} "
                f"version={self.version}>")

    def to_json(self) -> str:
        """The whole stored record (as sessgatectl get prints it); unsaved
        data changes are not included."""
        text = _c.session_to_json(self._raw)
        if text is None:
            raise OutOfMemory("out of memory", _c.SG_ENOMEM)
        return text

    # ----------------------------------------------------------- actions
    def _push_data(self) -> None:
        if self._data is not None:
            store = self._store
            data = _data.check(self._data, store.json_default)
            if store.model is not None and data:
                _data.validate(store.model, data)
            text = _dumps(data)
            _session_set_data(self._raw, text)
            self._text = text

    # ----------------------------------------------------- typed models
    def to_model(self, cls: Type[_T]) -> _T:
        """The data as a new, validated instance of ``cls`` (a dataclass or
        a pydantic model); :class:`InvalidData` when it does not fit.
        Change the instance, then :meth:`from_model` and :meth:`save`."""
        return _data.to_model(cls, self.data)

    def from_model(self, obj: Any) -> None:
        """Replace the data with a model instance's fields (validated);
        stored by :meth:`save`."""
        self.data = _data.from_model(obj)

    # ---------------------------------------------------------- pickle
    def __reduce__(self) -> Tuple[Any, ...]:
        """A Session pickles to its store's path, id, version, user and
        data (unsaved changes included), not to the C handle.  Unpickling
        opens the store by path (once per process), loads the session and
        applies the pickled user and data as unsaved changes: NotFound when
        the session is gone, Conflict when it was saved since (its version
        moved), so a pickled copy never overwrites a newer one."""
        return (_unpickle_session, (self._store.path, self.id, self.version,
                                    self.user, dict(self.data)))

    def save(self) -> None:
        """Store data, user and lifetimes.  Raises :class:`Conflict` when
        the stored version moved since this copy was loaded or saved,
        :class:`TooBig` over the store's data cap."""
        self._push_data()
        store = self._store
        with store._mutex:
            _session_save(store._handle(), self._raw)

    def rotate(self, grace: bool = True) -> str:
        """Give the session a new id; pending changes are saved with it.
        The old id keeps resolving to the session for the store's
        ``rotate_grace`` (requests in flight keep it), unless the rotation
        changes the user (see :meth:`login`) or ``grace=False`` (the old id
        dies at once: use it when the app keeps its login in the data).
        Returns the new id."""
        self._push_data()
        store = self._store
        with store._mutex:
            _c.session_rotate_ex(store._handle(), self._raw,
                                 0 if grace else _c.SG_ROTATE_NOW)
        return self.id

    def login(self, user: str) -> str:
        """Set the user, save, and rotate the id (no session fixation).
        Returns the new id."""
        # One rotate carrying the user change: the library sees a login
        # and gives the old id no grace window (a save, then a plain
        # rotate, would let a fixated pre-login id live on).
        self.user = user
        return self.rotate()

    def delete(self) -> None:
        """Delete the session from the store.  Raises :class:`NotFound`
        when it is already gone."""
        store = self._store
        with store._mutex:
            _c.session_delete(store._handle(), self.id)

    # ------------------------------------------------------ csrf, flash
    @property
    def csrf_token(self) -> str:
        """The session's CSRF token (64 hex digits): put it in your forms
        (a hidden field) or in the X-CSRF-Token header of scripted
        requests.  It changes at login and survives :meth:`rotate`."""
        return _c.session_csrf_token(self._raw)

    def check_csrf(self, value: Any) -> bool:
        """Whether value is this session's CSRF token (constant-time
        comparison; False for anything that is not a str)."""
        if not isinstance(value, str) or "\0" in value:
            return False
        return bool(_c.session_check_csrf(self._raw, value))

    def flash(self, message: JSONValue, category: str = "message") -> None:
        """Queue a one-shot message for the next page; stored by
        :meth:`save` (or the end of an ``update()`` block)."""
        _c.session_flash_add(self._raw, _dumps({"message": message,
                                                "category": category}))

    def pop_flashes(self) -> List[Dict[str, Any]]:
        """Take the pending flash messages (a list of dicts with
        "message" and "category") out of the store, atomically: of two
        concurrent pops one gets them, the other []."""
        store = self._store
        with store._mutex:
            text = _c.session_flash_pop(store._handle(), self._raw)
        flashes: List[Dict[str, Any]] = _loads(text)
        return flashes

    def set_timeouts(self, idle_timeout: int = 0, max_age: int = 0) -> None:
        """Change this session's idle timeout and/or max age (seconds;
        0 keeps the current one).  Stored by :meth:`save`."""
        _c.session_set_timeouts(self._raw, int(idle_timeout), int(max_age))

    # ------------------------------------------ Django-style names
    @property
    def modified(self) -> bool:
        """Django's name for :attr:`changed`."""
        return self.changed

    def cycle_key(self) -> str:
        """Django's name for :meth:`rotate`: new id, same data.  Django's
        login() calls it, so the old id dies at once (no grace window)."""
        return self.rotate(grace=False)

    def flush(self) -> None:
        """Delete the session from the store (if still there) and empty
        this copy, as Django's ``flush()`` (logout) does."""
        try:
            self.delete()
        except NotFound:
            pass
        self._data = {}

    def set_expiry(self, value: Union[int, "datetime.timedelta",
                                      "datetime.datetime", None]) -> None:
        """Django's ``set_expiry``: seconds or a timedelta of inactivity
        (the idle timeout), a datetime (the absolute end: max age from
        creation), or None for the store's idle timeout.  0 (a browser-
        session cookie) is a cookie matter: the framework layers
        (sessgate.django, sessgate.flask) handle it.  Stored by save()."""
        if value is None:
            self.set_timeouts(idle_timeout=self._store._idle_timeout)
        elif isinstance(value, datetime.timedelta):
            self.set_timeouts(idle_timeout=max(int(value.total_seconds()), 1))
        elif isinstance(value, datetime.datetime):
            end = int(value.timestamp())
            if end <= self.created:
                raise InvalidArgument("set_expiry: the end is before the "
                                      "session was created", _c.SG_EINVAL)
            self.set_timeouts(max_age=end - self.created)
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            self.set_timeouts(idle_timeout=value)
        else:
            raise InvalidArgument(f"set_expiry: {value!r}: give seconds > 0, "
                                  "a timedelta, a datetime or None",
                                  _c.SG_EINVAL)

    def get_expiry_age(self) -> int:
        """Seconds until the session expires if left unused (the earlier of
        its idle window and its absolute end), 0 when past."""
        end = min(self.expires, self.accessed + self.idle_timeout)
        return max(0, end - int(time.time()))


class Store:
    """An open session store (a GDBM file shared with every other process).

    Keyword options are those of the C ``sg_options``; 0 means the default,
    but for ``rotate_grace``, whose default is None and whose 0 means no
    grace (the old id of a rotation dies at once), as ``--rotate-grace 0``.
    Their ranges and defaults come from libsessgate's option table, the
    one the gateway and ``sessgatectl`` use too (see :func:`store_options`):

    {options}

    With no path, ``$SESSGATE_STORE`` is used.
    ``json_default`` converts values JSON cannot carry; ``model`` (a
    dataclass or pydantic model) validates data on load and save (see
    :mod:`sessgate._data`).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]", None] = None, *,
                 idle_timeout: int = 0, max_age: int = 0,
                 touch_interval: int = 0, lock_timeout_ms: int = 0,
                 max_per_user: int = 0, max_data: int = 0,
                 sync: bool = False, group: bool = False,
                 readonly: bool = False, rotate_grace: Optional[int] = None,
                 json_default: Optional[Callable[[Any], Any]] = None,
                 model: Optional[type] = None) -> None:
        if path is None:
            path = os.environ.get("SESSGATE_STORE")
            if not path:
                raise InvalidArgument("no store path given and SESSGATE_STORE"
                                      " is not set", _c.SG_EINVAL)
        self._st: Any = None
        self._idle_timeout = idle_timeout or _c.SG_DEFAULT_IDLE_TIMEOUT
        #: Called with each value JSON cannot carry (datetime, tuple...) to
        #: get its JSON replacement, like json.dumps's default; None: such
        #: values raise NotSerializable.  See sessgate._data.
        self.json_default = json_default
        #: A dataclass or pydantic model every session's data must fit, on
        #: load (get) and save; empty data (a fresh session) is exempt.
        self.model = model
        # Serialises this handle's C calls between threads (re-entrant:
        # update() holds it around get and save).
        self._mutex = threading.RLock()
        numbers = {"idle_timeout": idle_timeout, "max_age": max_age,
                   "touch_interval": touch_interval,
                   "lock_timeout_ms": lock_timeout_ms,
                   "max_per_user": max_per_user, "max_data": max_data,
                   "rotate_grace": 0 if rotate_grace is None else rotate_grace}
        for name, value in numbers.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgument(f"store option {name} must be an int >= 0,"
                                      f" not {value!r}", _c.SG_EINVAL)
        opt = _c.options()
        for name, value in numbers.items():
            setattr(opt, name, value)
        if rotate_grace == 0:       # explicit: none (the struct's 0 is the default)
            opt.rotate_grace = _c.SG_ROTATE_GRACE_NONE
        opt.sync = int(bool(sync))
        opt.group = int(bool(group))
        opt.readonly = int(bool(readonly))
        self._st = _c.store_open(os.fspath(path), opt)   # owned proxy

    def _handle(self) -> Any:
        st = self._st
        if st is None:
            raise InvalidArgument("the store is closed", _c.SG_EINVAL)
        return st

    @property
    def path(self) -> str:
        """The store's path."""
        with self._mutex:
            return _c.store_path(self._handle())

    @property
    def closed(self) -> bool:
        return self._st is None

    def close(self) -> None:
        """Close the store (idempotent).  Sessions loaded from it stay
        readable but can no longer be saved."""
        with self._mutex:
            st, self._st = self._st, None
            if st is not None:
                _c.store_close(st)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._st is None else repr(self.path)
        return f"<sessgate.Store {state}>"

    # ----------------------------------------------------------- sessions
    def create(self, user: Optional[str] = None,
               data: Optional[Mapping[str, JSONValue]] = None, *,
               idle_timeout: int = 0, max_age: int = 0) -> Session:
        """Create and store a session with a fresh random id.  With a
        per-user cap, the user's oldest sessions beyond it are deleted."""
        _check_user(user)
        text = None if data is None else _dump_data(data, self.json_default)
        if data and self.model is not None:
            _data.validate(self.model, _loads(text or "{}"))
        with self._mutex:
            raw = _c.session_create(self._handle(), user, text,
                                    int(idle_timeout), int(max_age))
        return Session(self, raw)

    def get(self, sid: Optional[str], *, touch: bool = True,
            memo: bool = False) -> Optional[Session]:
        """The live session with this id, or None when the id is unknown,
        expired, malformed or None.  ``touch=False`` leaves the idle window
        alone (the read then never writes).

        ``memo=True`` (opt-in, GDBM only): a session this Store read while
        nobody has written to the store since, under a second ago, is
        parsed from the handle's kept copy, with no lock and no syscall
        (SG_GET_MEMO, as the nginx module and Lua's ``{memo = true}``).
        Any write by any process, to any session, retires every kept copy,
        so the answer is the one a locked read would give; a store file
        replaced behind the library's back (a restored backup) is noticed
        within that second."""
        # The hot path of every request: one C call (py_store_get in
        # sessgate_core_python.i) holds self._mutex around the C get,
        # raises "the store is closed" through _handle(), answers None for
        # a malformed, unknown or expired id, TypeError for an id that is
        # not a str, and makes the Session as Session(self, handle) would.
        if sid is None:
            return None
        flags = (0 if touch else _GET_NOTOUCH) | (_GET_MEMO if memo else 0)
        s: Optional[Session] = _py_store_get(self, sid, flags, Session)
        if s is None:
            return None
        if self.model is not None and s.data:
            _data.validate(self.model, s.data)    # InvalidData
        return s

    def delete(self, sid: str) -> None:
        """Delete the session with this id.  Raises :class:`InvalidId` for
        a malformed id and :class:`NotFound` when there is no such session."""
        if not id_valid(sid):
            raise InvalidId(f"session id {sid!r}: not a session id",
                            _c.SG_EINVAL)
        with self._mutex:
            _c.session_delete(self._handle(), sid)

    #: Runs of an update()'s function before it gives up with Conflict.
    UPDATE_TRIES = 100

    @overload
    def update(self, sid: str) -> ContextManager[Session]: ...

    @overload
    def update(self, sid: str, fn: Callable[[Session], Any]) -> bool: ...

    def update(self, sid: str, fn: Optional[Callable[[Session], Any]] = None
               ) -> Union[ContextManager[Session], bool]:
        """Atomic read-modify-write, in two forms.

        ``store.update(sid, fn)`` is optimistic: it loads the session, calls
        ``fn(session)`` with NO lock held, and saves only if nobody saved
        the session since the load; if someone did, it loads again and
        calls ``fn`` again (up to :attr:`UPDATE_TRIES` times, then raises
        :class:`Conflict`).  So ``fn`` MAY RUN MORE THAN ONCE: it must only
        change the session, not act on the world (send mail, charge a
        card) -- do that after update() returns.  A slow ``fn`` holds up no
        other reader or writer.  ``fn`` returning ``False`` abandons the
        change (update() then returns False); an exception in ``fn``
        abandons it and propagates.  Returns True once saved.

        ``with store.update(sid) as s:`` runs the block once, under the
        store's exclusive lock (a with-block cannot be run again), so no
        other writer (any process, any language) comes between the load
        and the save, but every other writer and GDBM reader waits for
        the block: keep it short, or use the function form.

        Both raise :class:`NotFound` when the session does not exist or
        has expired."""
        if fn is None:
            return self._update_locked(sid)
        delay = 0.0001
        for attempt in range(self.UPDATE_TRIES):
            s = self.get(sid, touch=False)
            if s is None:
                raise NotFound(f"session {sid}: not found or expired",
                               _c.SG_ENOTFOUND)
            if fn(s) is False:
                return False
            try:
                s.save()
                return True
            except Conflict:
                if attempt + 1 == self.UPDATE_TRIES:
                    raise
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.0128)
        return False  # not reached

    @contextlib.contextmanager
    def _update_locked(self, sid: str) -> Iterator[Session]:
        """The ``with store.update(sid) as s:`` form: hold the store's
        exclusive lock, load the session, let the block change it, save.  No other writer (any
        process, any language) comes between the load and the save.  If
        the block raises, nothing is saved.  Raises :class:`NotFound` when
        the session does not exist or has expired."""
        with self._mutex:
            st = self._handle()
            _c.store_begin(st)
            try:
                s = self.get(sid)
                if s is None:
                    raise NotFound(f"session {sid}: not found or expired",
                                   _c.SG_ENOTFOUND)
                yield s
                s.save()
            finally:
                _c.store_end(st)

    @contextlib.contextmanager
    def locked(self) -> Iterator["Store"]:
        """Hold the store's exclusive lock across the block (nests); other
        threads using this Store wait for the block to end."""
        with self._mutex:
            st = self._handle()
            _c.store_begin(st)
            try:
                yield self
            finally:
                _c.store_end(st)

    def ids(self, user: Optional[str] = None) -> List[str]:
        """Snapshot of the ids of live sessions (of one user), oldest first."""
        _check_user(user)
        with self._mutex:
            return _c.store_list(self._handle(), user)

    def sessions(self, user: Optional[str] = None) -> Iterator[Session]:
        """Iterate over live sessions (of one user), oldest first, from a
        snapshot of ids; sessions gone meanwhile are skipped.  Reading them
        does not extend their idle window."""
        for sid in self.ids(user):
            s = self.get(sid, touch=False)
            if s is not None:
                yield s

    def count(self, user: Optional[str] = None) -> int:
        """Number of live sessions (of one user)."""
        _check_user(user)
        with self._mutex:
            return _c.store_count(self._handle(), user)

    def purge(self) -> int:
        """Remove expired sessions; returns how many were removed."""
        with self._mutex:
            return _c.store_purge(self._handle())

    def delete_user(self, user: str) -> int:
        """Delete every session of ``user`` ("log out everywhere");
        returns how many.  Atomic with respect to a login of that user at
        the same moment, in any process: it comes wholly before (and is
        ended) or wholly after."""
        if user is None:
            raise InvalidArgument("delete_user needs a user name", _c.SG_EINVAL)
        _check_user(user)
        with self._mutex:
            return _c.store_delete_user(self._handle(), user)

    def clear(self) -> int:
        """Delete every session of the store; returns how many."""
        with self._mutex:
            return _c.store_clear(self._handle())

    def __iter__(self) -> Iterator[Session]:
        return self.sessions()

    def __contains__(self, sid: object) -> bool:
        return isinstance(sid, str) and self.get(sid, touch=False) is not None


_unpickle_stores: Dict[str, Store] = {}     # one per path, for the process


def _unpickle_session(path: str, sid: str, version: int,
                      user: Optional[str], data: Dict[str, Any]) -> Session:
    """Rebuild a pickled Session (see Session.__reduce__)."""
    store = _unpickle_stores.get(path)
    if store is None:
        store = Store(path)
        _unpickle_stores[path] = store
    s = store.get(sid, touch=False)
    if s is None:
        raise NotFound(f"unpickling session {sid}: not found or expired in "
                       f"{path}", _c.SG_ENOTFOUND)
    if s.version != version:
        raise Conflict(f"unpickling session {sid}: saved since it was "
                       f"pickled (version {version}, now {s.version})",
                       _c.SG_ECONFLICT)
    if s.user != user:
        s.user = user
    s.data = data
    return s


def store_options() -> List[Dict[str, Any]]:
    """The store options the bindings take, from libsessgate's table:
    ``name``, ``min``, ``max``, ``default`` (a number, or the rule in
    words when it is derived), ``help``; ``min``/``max`` are None for an
    on/off flag."""
    rows: List[Dict[str, Any]] = []
    i = 0
    while True:
        r = _c.option_at(i)
        if r is None:
            return rows
        i += 1
        if not r.faces & _c.SG_FACE_BINDINGS:
            continue
        flag = r.arg is None
        rows.append({"name": r.name, "help": r.help,
                     "min": None if flag else r.min,
                     "max": None if flag else r.max,
                     "default": r.def_text or (bool(r.def_value) if flag
                                               else r.def_value)})


def _options_doc() -> str:
    lines = []
    for o in store_options():
        if o["min"] is None:
            lines.append(f"- ``{o['name']}``: {o['help']} (default off)")
        else:
            lines.append(f"- ``{o['name']}``: {o['help']} ({o['min']} to "
                         f"{o['max']}; default {o['default']})")
    return "\n    ".join(lines)


if Store.__doc__:       # None under python -OO
    Store.__doc__ = Store.__doc__.replace("{options}", _options_doc())
