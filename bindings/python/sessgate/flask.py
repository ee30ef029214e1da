"""sessgate.flask - flask.session kept in a sessgate store.

    import flask, sessgate.flask
    app = flask.Flask(__name__)
    app.config["SESSGATE_STORE"] = "/var/lib/sessgate/sessions.db"
    sessgate.flask.init_app(app)          # no SECRET_KEY needed for sessions

``flask.session`` is then server-side: the cookie carries only the session
id (made by the store, never chosen by the client), the data lives in the
store shared with the gateway, sessgatectl and the other languages.
Flask's own config names are honoured: ``SESSION_COOKIE_NAME``,
``SESSION_COOKIE_DOMAIN``, ``SESSION_COOKIE_PATH``,
``SESSION_COOKIE_HTTPONLY``, ``SESSION_COOKIE_SECURE``,
``SESSION_COOKIE_SAMESITE``, ``SESSION_REFRESH_EACH_REQUEST`` and
``PERMANENT_SESSION_LIFETIME``, which is also the stored session's idle
timeout (``session.permanent`` decides only whether the cookie outlives
the browser).  ``SESSGATE_OPTIONS`` (a dict) gives ``sessgate.Store``
keywords.

Behind the sessgate gateway (cgi mode, or an nginx auth_request config
that passes it), the session named by ``SESSION_ID`` in the WSGI environ is
used, as by :mod:`sessgate.wsgi` (``init_app(app, trust_gateway=False)``
to use the cookie only).

Differences from Flask's signed-cookie sessions: changes inside values
(``session["cart"].append(1)``) are saved without ``session.modified``
(the data is compared at the end of the request); values JSON cannot carry
unchanged (tuples, datetimes, bytes...) raise ``sessgate.NotSerializable``
(see :mod:`sessgate._data`); ``session.regenerate()`` gives the session a
new id (call it at login); ``session.clear()`` followed by no new data
deletes the stored session and expires the cookie.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from flask import Flask
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from . import NotFound, Store, id_valid
from .wsgi import parse_cookie_ids

__all__ = ["SessgateSession", "SessgateSessionInterface", "init_app"]


class SessgateSession(CallbackDict, SessionMixin):  # type: ignore[type-arg, misc]
    """flask.session: a dict of JSON data with the sessgate id."""

    def __init__(self, initial: Optional[Dict[str, Any]] = None,
                 sid: Optional[str] = None) -> None:
        def on_update(_: Any) -> None:
            self.modified = True
            self.accessed = True
        super().__init__(initial, on_update)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.accessed = False
        self._loaded = json.dumps(initial or {}, sort_keys=True)
        self._regenerate = False

    def regenerate(self) -> None:
        """Give the session a new id at the end of the request (call it on
        login or privilege change: no session fixation)."""
        self._regenerate = True
        self.modified = True

    def _changed(self) -> bool:
        try:
            now = json.dumps(dict(self), sort_keys=True)
        except (TypeError, ValueError):
            return True          # let the store's check name the value
        return self.modified or now != self._loaded


class SessgateSessionInterface(SessionInterface):
    """Flask SessionInterface over a sessgate Store (opened on first use
    from app.config["SESSGATE_STORE"] / $SESSGATE_STORE, or given)."""

    session_class = SessgateSession

    def __init__(self, store: Optional[Store] = None,
                 trust_gateway: bool = True) -> None:
        self._store = store
        self.trust_gateway = trust_gateway

    def store(self, app: Flask) -> Store:
        if self._store is None:
            self._store = Store(app.config.get("SESSGATE_STORE") or None,
                                **(app.config.get("SESSGATE_OPTIONS") or {}))
        return self._store

    def open_session(self, app: Flask, request: Any) -> SessgateSession:
        # As the WSGI middleware: the gateway's SESSION_ID first (cgi mode,
        # or an nginx auth_request config; no client header can produce
        # that environ key, headers arrive as HTTP_*), else the cookie.
        gw = request.environ.get("SESSION_ID") if self.trust_gateway else None
        if gw:
            sid = gw if id_valid(gw) else None
        else:
            sid = parse_cookie_ids(request.headers.get("Cookie"),
                                   self.get_cookie_name(app))
        s = self.store(app).get(sid) if sid else None
        if s is None:
            return SessgateSession()
        return SessgateSession(s.data, s.id)

    def save_session(self, app: Flask, session: SessionMixin,
                     response: Any) -> None:
        assert isinstance(session, SessgateSession)
        store = self.store(app)
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if session.accessed:
            response.vary.add("Cookie")
        old = session.sid
        if not session:
            # Emptied: forget the stored session and the cookie.
            if old is not None and session.modified:
                try:
                    store.delete(old)
                except NotFound:
                    pass
                session.sid = None
                response.delete_cookie(name, domain=domain, path=path,
                                       secure=self.get_cookie_secure(app),
                                       samesite=self.get_cookie_samesite(app),
                                       httponly=self.get_cookie_httponly(app))
            return
        lifetime = max(int(app.permanent_session_lifetime.total_seconds()), 1)
        if session._changed() or session.sid is None:
            data = dict(session)
            s = None
            if session.sid is not None:
                try:
                    with store.update(session.sid) as s:
                        s.data = data
                except NotFound:          # expired or deleted meanwhile
                    s = None
            if s is None:
                s = store.create(data=data, idle_timeout=lifetime)
            if session._regenerate:
                # A login Flask keeps in the data: the pre-login id must
                # die at once, with no grace window.
                s.rotate(grace=False)
                session._regenerate = False
            session.sid = s.id
        if session.sid != old or self.should_set_cookie(app, session):
            response.set_cookie(
                name, session.sid or "",
                expires=self.get_expiration_time(app, session),
                httponly=self.get_cookie_httponly(app), domain=domain,
                path=path, secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app))


def init_app(app: Flask, store: Optional[Store] = None,
             trust_gateway: bool = True) -> SessgateSessionInterface:
    """Make flask.session a sessgate session for this app.  With
    trust_gateway, the session named by the gateway's SESSION_ID (sessgate
    cgi mode) wins over the cookie."""
    iface = SessgateSessionInterface(store, trust_gateway)
    app.session_interface = iface
    return iface
