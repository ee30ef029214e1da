"""sessgate.django - Django's SESSION_ENGINE on a sessgate store.

    # settings.py
    SESSION_ENGINE = "sessgate.django"
    SESSGATE_STORE = "/var/lib/sessgate/sessions.db"   # else $SESSGATE_STORE
    SESSGATE_OPTIONS = {"lock_timeout_ms": 2000}        # Store() keywords
    SESSGATE_MAX_AGE = 0          # absolute lifetime, s (0: the store's)

The session's data is stored as plain JSON in the sessgate record (not
Django's signed blob), so the gateway, sessgatectl and the Lua binding read
and change the same session.  The rules of :mod:`sessgate._data` apply
(Django's own JSONSerializer refuses the same values, except that a
datetime given to ``set_expiry`` is kept as ISO text and read back).

Behaviour, as Django's own backends are tested for:

- ids are made by the store (128 random bits); a key the store does not
  know (guessed, expired, deleted) loads as an empty session and saving it
  creates a new key: a client never chooses its key;
- ``save(must_create=True)`` raises ``CreateError`` if the key exists;
  ``save()`` of a session deleted meanwhile raises ``UpdateError`` (Django's
  middleware answers SessionInterrupted), never resurrects it;
- the session's idle timeout is ``get_expiry_age()`` at save, so
  ``set_expiry(seconds | timedelta | datetime | None)`` and
  ``SESSION_COOKIE_AGE`` decide when the store forgets it; the window is
  extended by every request that reads it (sessgate's touch);
- ``cycle_key()`` moves the data to a new key and deletes the old one;
  ``flush()`` deletes it and starts a new empty one;
- ``clear_expired()`` is ``store.purge()``, so ``manage.py clearsessions``
  works.

Store calls are made under the store's lock, one at a time per process
(one Store per process and path, shared by the threads of the server).
"""

from __future__ import annotations

import datetime
import threading
from typing import Any, Dict, Optional

from django.conf import settings
from django.contrib.sessions.backends.base import (CreateError, SessionBase,
                                                   UpdateError)

from . import NotFound, Store

__all__ = ["SessionStore"]

_EXPIRY = "_session_expiry"
_stores: Dict[str, Store] = {}
_stores_lock = threading.Lock()


def _store() -> Store:
    """The process's Store for settings.SESSGATE_STORE (opened once)."""
    path = getattr(settings, "SESSGATE_STORE", None) or ""
    st = _stores.get(path)
    if st is None:
        with _stores_lock:
            st = _stores.get(path)
            if st is None:
                opts = dict(getattr(settings, "SESSGATE_OPTIONS", {}) or {})
                st = _stores[path] = Store(path or None, **opts)
    return st


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django session backed by a sessgate store."""

    _session_key: Optional[str]

    def __init__(self, session_key: Optional[str] = None) -> None:
        super().__init__(session_key)
        self._store = _store()

    # ------------------------------------------------------------ data
    @staticmethod
    def _to_stored(data: Dict[str, Any]) -> Dict[str, Any]:
        d = dict(data)
        exp = d.get(_EXPIRY)
        if isinstance(exp, datetime.datetime):
            d[_EXPIRY] = exp.isoformat()
        return d

    @staticmethod
    def _from_stored(data: Dict[str, Any]) -> Dict[str, Any]:
        d = dict(data)
        exp = d.get(_EXPIRY)
        if isinstance(exp, str):
            try:
                d[_EXPIRY] = datetime.datetime.fromisoformat(exp)
            except ValueError:
                del d[_EXPIRY]
        return d

    def load(self) -> Dict[str, Any]:
        s = self._store.get(self.session_key) if self.session_key else None
        if s is None:
            # Unknown, expired or malformed: a new, empty session whose key
            # will be made by the store (never the one the client sent).
            self._session_key = None
            return {}
        return self._from_stored(s.data)

    def exists(self, session_key: Optional[str]) -> bool:
        return bool(session_key) and \
            self._store.get(session_key, touch=False) is not None

    def _lifetimes(self) -> Dict[str, int]:
        age = self.get_expiry_age()
        return {"idle_timeout": max(int(age), 1),
                "max_age": int(getattr(settings, "SESSGATE_MAX_AGE", 0) or 0)}

    def create(self) -> None:
        data = self._session_cache if hasattr(self, "_session_cache") else {}
        lifetimes = self._lifetimes()
        s = self._store.create(data=self._to_stored(data),
                               idle_timeout=lifetimes["idle_timeout"],
                               max_age=lifetimes["max_age"])
        self._session_key = s.id
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        if must_create:
            if self.exists(self.session_key):
                raise CreateError
            return self.create()
        data = self._to_stored(self._get_session(no_load=False))
        lifetimes = self._lifetimes()
        try:
            with self._store.update(self.session_key) as s:
                s.data = data
                s.set_timeouts(lifetimes["idle_timeout"], lifetimes["max_age"])
        except NotFound:
            # Deleted (logged out) in another request meanwhile: do not
            # bring it back (Django's middleware reports the interruption).
            raise UpdateError
        return None

    def delete(self, session_key: Optional[str] = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        try:
            self._store.delete(session_key)
        except (NotFound, ValueError):
            pass

    @classmethod
    def clear_expired(cls) -> None:
        _store().purge()
