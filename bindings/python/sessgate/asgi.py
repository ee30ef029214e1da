"""sessgate.asgi - sessions for any ASGI application, off the event loop.

:class:`SessionMiddleware` wraps an ASGI app (pure ASGI: no framework
needed; Starlette, FastAPI and others work on top) and gives every HTTP
request ``scope["session"]`` (what Starlette's ``request.session`` reads)
and ``scope["sessgate.session"]``, an :class:`AsyncSession`: a mutable
mapping of the session's data, like the WSGI middleware's.

Every store call runs in a worker thread (``asyncio.to_thread``), never on
the event loop: a store call may wait up to the lock timeout for another
process, and that must not stall the other requests of the server.  So
the session is loaded before the app runs, and changes are applied when
the response starts, in one thread call:

- reads touch nothing (no session is created for a request that only
  reads);
- changed keys are merged into the stored session under its lock
  (``Store.update``), so concurrent requests of one client changing
  different keys all keep their changes, and the last writer of one key
  wins, as with Django's and Flask's stores;
- ``login(user)`` sets the user and rotates the id, ``rotate()`` rotates,
  ``logout()`` deletes the session, all at response start, and the cookie
  follows (set, or expired).

The id comes from the cookie (``cookie_name``), or, with ``trust_gateway``,
from a ``session-id`` value the gateway injected (cgi mode does not apply
to ASGI; an nginx ``auth_request`` config can pass ``X-Session-Id`` to the
app, which it strips from client requests: set ``gateway_header`` to that
name only behind such a config).
"""

from __future__ import annotations

import asyncio
from typing import (Any, Awaitable, Callable, Dict, Iterator, List,
                    MutableMapping, Optional, Set, Tuple)

from . import NotFound, Session, Store, _data, id_valid
from .wsgi import parse_cookie_ids

__all__ = ["SessionMiddleware", "AsyncSession"]

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MISSING = object()


class AsyncSession(MutableMapping[str, Any]):
    """The session of one ASGI request: the data loaded before the app ran,
    with its changes kept here until the response starts."""

    def __init__(self, store: Store, sid: Optional[str],
                 data: Optional[Dict[str, Any]], user: Optional[str]) -> None:
        self._store = store
        self._incoming_id = sid
        self.id: Optional[str] = sid
        self._data: Dict[str, Any] = dict(data or {})
        self._user = user
        self._set: Set[str] = set()        # keys changed or deleted here
        self._login: Optional[str] = None
        self._rotate = False
        self._logout = False
        self._snapshot = _data.check(dict(self._data))

    @property
    def user(self) -> Optional[str]:
        return self._login if self._login is not None else self._user

    @property
    def is_new(self) -> bool:
        return self._incoming_id is None

    # -------------------------------------------------------- mapping
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = _data.check({key: value}, self._store.json_default)[key]
        self._set.add(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._set.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._set.update(self._data)
        self._data.clear()

    # -------------------------------------------------------- actions
    def login(self, user: str) -> None:
        """At response start: set the user, save, rotate the id."""
        self._login = user
        self._logout = False

    def rotate(self) -> None:
        """At response start: give the session a new id."""
        self._rotate = True

    def logout(self) -> None:
        """At response start: delete the session and expire the cookie."""
        self._logout = True
        self._login = None
        self._data.clear()
        self._set.clear()

    def _changed_keys(self) -> Set[str]:
        # Keys assigned, deleted, or changed in place (a list appended to).
        keys = set(self._set)
        for k, v in self._data.items():
            if k not in keys and self._snapshot.get(k, _MISSING) != v:
                keys.add(k)
        return keys

    def _commit(self) -> Optional[str]:
        """Apply the changes to the store (in a worker thread).  Returns
        'set', 'clear' or None for the cookie."""
        store = self._store
        if self._logout:
            if self._incoming_id is not None:
                try:
                    store.delete(self._incoming_id)
                except NotFound:
                    pass
                self.id = None
                return "clear"
            return None
        keys = self._changed_keys()
        if not keys and self._login is None and not self._rotate:
            return None
        s: Optional[Session] = None
        if self.id is not None:
            try:
                with store.update(self.id) as s:
                    for k in keys:
                        if k in self._data:
                            s[k] = self._data[k]
                        elif k in s:
                            del s[k]
            except NotFound:
                s = None            # expired or deleted meanwhile: anew
        if s is None:
            if not self._data and self._login is None:
                return None
            s = store.create(data=self._data)
        if self._login is not None:
            s.login(self._login)
        elif self._rotate:
            s.rotate()
        self.id = s.id
        return "set" if self.id != self._incoming_id else None


class SessionMiddleware:
    """Pure ASGI middleware: ``scope["session"]`` (and
    ``scope["sessgate.session"]``) for every HTTP request.

    ``store`` is an open :class:`sessgate.Store` or a path.  Cookie
    attributes as the WSGI middleware: ``Path=/; HttpOnly; SameSite=Lax``,
    ``Secure`` on https (or as ``secure`` says), ``Max-Age`` when
    ``max_age`` is given.
    """

    def __init__(self, app: ASGIApp, store: Any = None,
                 cookie_name: str = "sessgate", *, cookie_path: str = "/",
                 cookie_domain: Optional[str] = None,
                 secure: Optional[bool] = None, max_age: Optional[int] = None,
                 gateway_header: Optional[str] = None) -> None:
        self.app = app
        self.store = store if isinstance(store, Store) else Store(store)
        self.cookie_name = cookie_name
        self.cookie_path = cookie_path
        self.cookie_domain = cookie_domain
        self.secure = secure
        self.max_age = max_age
        self.gateway_header = gateway_header.lower().encode() \
            if gateway_header else None

    def _session_id(self, scope: Scope) -> Optional[str]:
        cookies: List[str] = []
        for name, value in scope.get("headers") or ():
            if self.gateway_header is not None and name == self.gateway_header:
                sid = value.decode("latin-1")
                return sid if id_valid(sid) else None
            if name == b"cookie":
                cookies.append(value.decode("latin-1"))
        return parse_cookie_ids("; ".join(cookies), self.cookie_name)

    def _load(self, sid: Optional[str]) -> Tuple[Optional[str], Optional[Dict[str, Any]], Optional[str]]:
        s = self.store.get(sid) if sid else None
        if s is None:
            return None, None, None
        return s.id, dict(s.data), s.user

    def cookie_header(self, scope: Scope, sid: Optional[str]) -> Tuple[bytes, bytes]:
        parts = [f"{self.cookie_name}={sid or ''}", f"Path={self.cookie_path}"]
        if self.cookie_domain:
            parts.append(f"Domain={self.cookie_domain}")
        if sid is None:
            parts.append("Max-Age=0")
        elif self.max_age is not None:
            parts.append(f"Max-Age={int(self.max_age)}")
        parts += ["HttpOnly", "SameSite=Lax"]
        secure = scope.get("scheme") in ("https", "wss") \
            if self.secure is None else self.secure
        if secure:
            parts.append("Secure")
        return b"set-cookie", "; ".join(parts).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sid, data, user = await asyncio.to_thread(self._load,
                                                  self._session_id(scope))
        session = AsyncSession(self.store, sid, data, user)
        scope["session"] = session
        scope["sessgate.session"] = session
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)      # read-only there
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                action = await asyncio.to_thread(session._commit)
                if action is not None:
                    headers = list(message.get("headers") or [])
                    headers.append(self.cookie_header(
                        scope, session.id if action == "set" else None))
                    message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_wrapper)
