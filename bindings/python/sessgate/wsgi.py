"""sessgate.wsgi - sessions for any WSGI application.

:class:`SessionMiddleware` wraps an application, finds the request's
session and puts a :class:`RequestSession` in ``environ["sessgate.session"]``.
The session id comes from, in order:

1. ``SESSION_ID`` in the environ, when ``trust_gateway`` (the default):
   the sessgate gateway sets it in cgi mode, and the shipped web-server
   configs set it from an nginx ``auth_request`` / FastCGI authorizer.  No
   client header can produce that variable (headers arrive as ``HTTP_*``).
   An empty value means "no session" (nginx sends ``SESSION_ID=``).
2. the session cookie (``cookie_name``).  Several cookies of that name are
   used only if they all carry the same id: a client cannot choose which
   one wins.

Nothing is created for a request that only reads: the store is written on
the first change (lazy creation).  When the application calls
``start_response``, a changed session is saved and the cookie is set (new
or rotated id) or expired (logout); changes made later, while the body is
produced, are saved when the body is closed.  The cookie carries
``Path=/; HttpOnly; SameSite=Lax`` (``samesite=``) and ``Secure`` on HTTPS;
the ``__Host-`` and ``__Secure-`` name prefixes are honoured, and a
response that sets or expires the cookie gets ``Cache-Control: no-store``
(replacing the application's) and ``Vary: Cookie``, as with the gateway.

Works under any WSGI server, including ``wsgiref.simple_server`` and
``wsgiref.handlers.CGIHandler`` (CGI behind ``sessgate --mode cgi``).
"""

from __future__ import annotations

import io
import re
import urllib.parse
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    MutableMapping, Optional, Tuple)

from . import Session, Store, id_valid

__all__ = ["SessionMiddleware", "RequestSession", "parse_cookie_ids"]

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_COOKIE_SPLIT = re.compile(r"[;,]")
_MAX_FORM = 1 << 20     # form bodies read for the CSRF field, at most
_BLANKS = " \t"


_HOSTPORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]+)(?::([0-9]+))?\Z")


def _origin_matches(origin: str, host: str) -> bool:
    """Whether Origin (http[s]://host[:port], nothing more) names the
    request's Host (host[:port]; a Host without a port is compared by name
    only).  The gateway's rule (gateway/csrf.c); both are tested against
    tests/unit/csrf_cases.txt."""
    o, h = origin.lower(), host.lower()
    for scheme, default_port in (("https://", "443"), ("http://", "80")):
        if o.startswith(scheme):
            rest = o[len(scheme):]
            break
    else:
        return False                    # "null", other schemes
    if not h or any(c in rest for c in "/?@"):
        return False
    mo, mh = _HOSTPORT.match(rest), _HOSTPORT.match(h)
    if mo is None or mh is None or mo.group(1) != mh.group(1):
        return False
    return mh.group(2) is None or (mo.group(2) or default_port) == mh.group(2)


def parse_cookie_ids(header: Optional[str], name: str) -> Optional[str]:
    """The session id named by a Cookie header, or None.  Separators ``;``
    and ``,`` are both accepted (Apache joins repeated headers with a
    comma); the name matches byte for byte; several cookies with the name
    count only if they all carry the same valid id."""
    # The same rules as gateway/cookie.c, checked against one shared table
    # (tests/unit/cookie_cases.txt): blanks are SP and HTAB only (str.strip
    # would also drop \v, \f and U+00A0, which the C side keeps), the name
    # is trimmed on both sides, one pair of double quotes around the whole
    # value is accepted (RFC 6265) and is not part of the id.
    if not header:
        return None
    found: Optional[str] = None
    for part in _COOKIE_SPLIT.split(header):
        key, sep, value = part.strip(_BLANKS).partition("=")
        if not sep or key.rstrip(_BLANKS) != name:
            continue
        value = value.strip(_BLANKS)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not id_valid(value) or (found is not None and found != value):
            return None
        found = value
    return found


class RequestSession(MutableMapping[str, Any]):
    """The session of one request, as the application sees it.

    Reads never touch the store beyond the initial load: with no session,
    it reads as an empty mapping with ``id`` None.  The first write (an
    item, :meth:`login`, ``user``) creates the session.
    """

    def __init__(self, store: Store, session: Optional[Session],
                 create_opts: Mapping[str, Any]) -> None:
        self._store = store
        self._session = session
        self._create_opts = dict(create_opts)
        self._incoming_id = session.id if session is not None else None
        self._user_changed = False
        self._logged_out = False
        self._headers_id: Optional[str] = None   # id when headers left

    # --------------------------------------------------------- state
    @property
    def session(self) -> Optional[Session]:
        """The underlying :class:`sessgate.Session`, or None."""
        return self._session

    @property
    def exists(self) -> bool:
        """Whether a stored session backs this request (now)."""
        return self._session is not None

    @property
    def id(self) -> Optional[str]:
        return self._session.id if self._session is not None else None

    @property
    def user(self) -> Optional[str]:
        return self._session.user if self._session is not None else None

    @user.setter
    def user(self, user: Optional[str]) -> None:
        self._ensure().user = user
        self._user_changed = True

    @property
    def is_new(self) -> bool:
        return self._session is not None and self._incoming_id is None

    def _ensure(self) -> Session:
        if self._session is None:
            self._session = self._store.create(**self._create_opts)
            self._logged_out = False
        return self._session

    # -------------------------------------------------------- mapping
    def __getitem__(self, key: str) -> Any:
        if self._session is None:
            raise KeyError(key)
        return self._session[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._ensure()[key] = value

    def __delitem__(self, key: str) -> None:
        if self._session is None:
            raise KeyError(key)
        del self._session[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._session) if self._session is not None else iter(())

    def __len__(self) -> int:
        return len(self._session) if self._session is not None else 0

    def __contains__(self, key: object) -> bool:
        return self._session is not None and key in self._session

    def get(self, key: str, default: Any = None) -> Any:
        return self._session.get(key, default) if self._session is not None else default

    # -------------------------------------------------------- actions
    def login(self, user: str) -> None:
        """Log the user in: set the user, save and rotate the id (the
        cookie follows the new id)."""
        self._ensure().login(user)
        self._user_changed = False

    def rotate(self) -> None:
        """Give the session a new id (saving pending changes)."""
        if self._session is not None:
            self._session.rotate()

    def logout(self) -> None:
        """Delete the session and expire the cookie."""
        if self._session is not None:
            try:
                self._session.delete()
            except LookupError:
                pass                    # already gone: same outcome
            self._session = None
        self._logged_out = True
        self._user_changed = False

    def _save_if_changed(self) -> None:
        s = self._session
        if s is not None and (self._user_changed or s.changed):
            s.save()
            self._user_changed = False

    def _cookie_action(self) -> Optional[str]:
        """'set', 'clear' or None for the response."""
        if self._session is not None:
            return "set" if self._session.id != self._incoming_id else None
        if self._logged_out and self._incoming_id is not None:
            return "clear"
        return None


class SessionMiddleware:
    """WSGI middleware giving every request ``environ[environ_key]``, a
    :class:`RequestSession`.

    ``store`` is an open :class:`sessgate.Store`, or a path (opened once,
    here).  ``secure`` None means: Secure on HTTPS requests.  ``max_age``
    None gives a browser-session cookie.  ``idle_timeout`` / ``max_age``
    of new sessions come from the store unless ``session_idle_timeout`` /
    ``session_max_age`` are given.  ``samesite`` is "Lax" (default),
    "Strict" or "None"; "None" needs ``secure=True``.  A ``__Host-`` name
    forces Secure, Path=/ and no Domain, a ``__Secure-`` name Secure;
    options that contradict them raise ValueError here, as the gateway
    refuses them at start-up.
    """

    def __init__(self, app: WSGIApp, store: Any = None,
                 cookie_name: str = "sessgate", *,
                 cookie_path: str = "/", cookie_domain: Optional[str] = None,
                 secure: Optional[bool] = None, max_age: Optional[int] = None,
                 trust_gateway: bool = True,
                 environ_key: str = "sessgate.session",
                 session_idle_timeout: int = 0,
                 session_max_age: int = 0,
                 samesite: str = "Lax",
                 csrf: bool = False,
                 csrf_field: str = "csrf_token") -> None:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", cookie_name):
            raise ValueError(f"invalid cookie name {cookie_name!r}")
        ss = {"lax": "Lax", "strict": "Strict", "none": "None"}.get(
            str(samesite).lower())
        if ss is None:
            raise ValueError(f"samesite must be Lax, Strict or None, not {samesite!r}")
        # Browsers refuse these cookies: refuse the configuration instead of
        # silently losing every session.
        if ss == "None" and secure is not True:
            raise ValueError("samesite=None needs secure=True (browsers drop "
                             "SameSite=None cookies without Secure)")
        lname = cookie_name.lower()
        if lname.startswith("__host-"):
            if secure is False or cookie_domain or cookie_path != "/":
                raise ValueError(f"{cookie_name}: a __Host- cookie is always "
                                 "Secure, has Path=/ and no Domain")
            secure = True
        elif lname.startswith("__secure-"):
            if secure is False:
                raise ValueError(f"{cookie_name}: a __Secure- cookie is always Secure")
            secure = True
        self.samesite = ss
        self.csrf = csrf
        self.csrf_field = csrf_field
        self.app = app
        self.store = store if isinstance(store, Store) else Store(store)
        self.cookie_name = cookie_name
        self.cookie_path = cookie_path
        self.cookie_domain = cookie_domain
        self.secure = secure
        self.max_age = max_age
        self.trust_gateway = trust_gateway
        self.environ_key = environ_key
        self._create_opts = {"idle_timeout": session_idle_timeout,
                             "max_age": session_max_age}

    def session_id(self, environ: Environ) -> Optional[str]:
        """The id this request names (gateway variable, else cookie)."""
        if self.trust_gateway:
            sid = environ.get("SESSION_ID")
            if sid:
                return sid if id_valid(sid) else None
        return parse_cookie_ids(environ.get("HTTP_COOKIE"), self.cookie_name)

    def _is_https(self, environ: Environ) -> bool:
        return (environ.get("wsgi.url_scheme") == "https"
                or str(environ.get("HTTPS", "")).lower() in ("on", "1"))

    def cookie_header(self, environ: Environ, sid: Optional[str]) -> Tuple[str, str]:
        """The Set-Cookie header for sid (None: expire the cookie)."""
        parts = [f"{self.cookie_name}={sid or ''}", f"Path={self.cookie_path}"]
        if self.cookie_domain:
            parts.append(f"Domain={self.cookie_domain}")
        if sid is None:
            parts.append("Max-Age=0")
        elif self.max_age is not None:
            parts.append(f"Max-Age={int(self.max_age)}")
        parts += ["HttpOnly", f"SameSite={self.samesite}"]
        secure = self._is_https(environ) if self.secure is None else self.secure
        if secure:
            parts.append("Secure")
        return ("Set-Cookie", "; ".join(parts))

    def csrf_refusal(self, environ: Environ, session: Optional[Session]) -> Optional[str]:
        """Why an unsafe request lacks same-origin proof, or None (the
        gateway's --csrf rules, plus the form field ``csrf_field`` of an
        application/x-www-form-urlencoded body, which is read here and
        handed on to the application unchanged)."""
        if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return None
        if str(environ.get("HTTP_SEC_FETCH_SITE", "")).lower() == "cross-site":
            return "Sec-Fetch-Site: cross-site"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and not _origin_matches(str(origin),
                                                      str(environ.get("HTTP_HOST", ""))):
            return "Origin does not name this host"
        if session is None:
            return "no session (so no CSRF token)"
        token = environ.get("HTTP_X_CSRF_TOKEN")
        if not token and str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip() \
                == "application/x-www-form-urlencoded":
            try:
                n = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                n = 0
            if 0 < n <= _MAX_FORM:
                body = environ["wsgi.input"].read(n)
                environ["wsgi.input"] = io.BytesIO(body)
                vals = urllib.parse.parse_qs(body.decode("latin-1")).get(self.csrf_field)
                token = vals[0] if vals and len(vals) == 1 else None
        if not token:
            return "no CSRF token (header X-CSRF-Token or form field)"
        if not session.check_csrf(token):
            return "CSRF token does not match the session's"
        return None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session = self.store.get(self.session_id(environ))
        if self.csrf:
            why = self.csrf_refusal(environ, session)
            if why is not None:
                err = environ.get("wsgi.errors")
                if err is not None:
                    err.write(f"sessgate.wsgi: CSRF check failed ({why}); 403\n")
                start_response("403 Forbidden", [("Content-Type", "text/plain"),
                                                 ("Cache-Control", "no-store")])
                return [b"403 Forbidden: cross-site request refused (CSRF check failed)\n"]
        rs = RequestSession(self.store, session, self._create_opts)
        environ[self.environ_key] = rs

        def sr(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            rs._save_if_changed()
            action = rs._cookie_action()
            rs._headers_id = rs.id
            if action is not None:
                # A response that sets or ends the session must never be
                # served to another client from a cache.
                headers = [h for h in headers
                           if h[0].lower() != "cache-control"]
                headers.append(self.cookie_header(
                    environ, rs.id if action == "set" else None))
                headers.append(("Cache-Control", "no-store"))
                headers.append(("Vary", "Cookie"))
            return start_response(status, headers, exc_info) if exc_info \
                else start_response(status, headers)

        return _ClosingIterable(self.app(environ, sr), rs, environ)


class _ClosingIterable:
    """Passes the body through; on close, saves changes made while it was
    produced (the cookie has left by then, so a session created this late
    is reported on wsgi.errors)."""

    def __init__(self, body: Iterable[bytes], rs: RequestSession,
                 environ: Environ) -> None:
        self._body = body
        self._rs = rs
        self._environ = environ

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            rs = self._rs
            rs._save_if_changed()
            if rs.id is not None and rs.id != rs._headers_id \
                    and rs.id != rs._incoming_id:
                err = self._environ.get("wsgi.errors")
                if err is not None:
                    err.write("sessgate.wsgi: session created after "
                              "start_response; its cookie was not sent\n")
