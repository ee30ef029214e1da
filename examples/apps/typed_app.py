#!/usr/bin/env python3
"""typed_app.py - a small WSGI app using sessgate, fully typed.

It is checked with `mypy --strict` against the installed package (which
ships py.typed and stubs for its C parts) by tests/bindings/pip.bats, so
it doubles as an example of what a type checker sees: ``Store.get`` is
``Optional[Session]``, ``Session.user`` is ``Optional[str]``, data values
are JSON (``Any``).

    SESSGATE_STORE=var/sessions.db python3 typed_app.py --serve 8080
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterable, List, Optional, Tuple

import sessgate
from sessgate.wsgi import RequestSession, SessionMiddleware

Environ = dict
StartResponse = Callable[[str, List[Tuple[str, str]]], object]


def visits(store: sessgate.Store, sid: Optional[str]) -> int:
    """Add one to a session's counter atomically; 0 if there is none."""
    if sid is None or store.get(sid, touch=False) is None:
        return 0
    with store.update(sid) as s:
        n = int(s.get("n", 0)) + 1
        s["n"] = n
    return n


def app(environ: "Environ[str, object]",
        start_response: StartResponse) -> Iterable[bytes]:
    session = environ["sessgate.session"]
    assert isinstance(session, RequestSession)
    count: int = int(session.get("n", 0)) + 1
    session["n"] = count
    user: Optional[str] = session.user
    body = f"n={count} user={user or '-'}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def make_app(path: Optional[str] = None) -> SessionMiddleware:
    store = sessgate.Store(path or os.environ.get("SESSGATE_STORE"))
    return SessionMiddleware(app, store=store)


def main(argv: List[str]) -> int:
    if len(argv) != 2 or argv[0] != "--serve":
        print("usage: typed_app.py --serve PORT", file=sys.stderr)
        return 2
    from wsgiref.simple_server import make_server
    with make_server("127.0.0.1", int(argv[1]), make_app()) as httpd:
        httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
