#!/usr/bin/env python3
"""wsgi_counter.py - a framework-free WSGI app using sessgate sessions.

Routes (plain-text answers, one line):

  /  or /count         add one to the session's counter: "n=3 user=alice"
  /peek                show the counter without writing: "n=3 user=alice"
                       (a request without a session creates none)
  /login?user=NAME     log in: set the user and rotate the session id
  /logout              delete the session and expire the cookie

How to run it:

  CGI (behind `sessgate --mode cgi --cgi-program .../wsgi_counter.py`, or any
  CGI server): started with GATEWAY_INTERFACE set, it runs under
  wsgiref.handlers.CGIHandler.  Behind the gateway or an nginx auth_request
  config it takes the session from SESSION_ID; otherwise from the cookie.

  Stand-alone:  wsgi_counter.py --serve PORT [--host 127.0.0.1] [--store PATH]
                [--group]
  (wsgiref.simple_server, one request at a time).

  In `make demo` (nginx + sessgate cgi mode, store var/sessions.db) it is
  http://127.0.0.1:PORT/cgi/wsgi_counter.py/ (and /login?user=NAME, ...),
  sharing its sessions with /cgi/counter.lua/.

The store is --store, else $SESSGATE_STORE, else var/sessions.db at the top
of the source tree (the path `make demo` uses).  CGI gateways pass only an
allow-listed environment, which is why the default is a fixed path.  The
sessgate package is imported from the installed location, else from
bindings/python of the source tree this file sits in.
"""

import os
import sys
from urllib.parse import parse_qs

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

try:
    import sessgate
except ImportError:
    sys.path.insert(0, os.path.join(TOP, "bindings", "python"))
    import sessgate
from sessgate.wsgi import SessionMiddleware


def counter_app(environ, start_response):
    """The application proper: it only sees environ["sessgate.session"]."""
    session = environ["sessgate.session"]
    path = environ.get("PATH_INFO") or "/"
    query = parse_qs(environ.get("QUERY_STRING", ""))
    status = "200 OK"
    if path in ("/", "/count"):
        session["n"] = session.get("n", 0) + 1
        body = f"n={session['n']} user={session.user or '-'}"
    elif path == "/peek":
        body = f"n={session.get('n', 0)} user={session.user or '-'}"
    elif path == "/login":
        user = (query.get("user") or [""])[0]
        if not user:
            status, body = "400 Bad Request", "login needs ?user=NAME"
        else:
            session.login(user)
            body = f"logged in as {user}"
    elif path == "/logout":
        session.logout()
        body = "logged out"
    else:
        status, body = "404 Not Found", "no such page"
    data = (body + "\n").encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def store_path(argv_store=None):
    return (argv_store or os.environ.get("SESSGATE_STORE")
            or os.path.join(TOP, "var", "sessions.db"))


def make_app(path=None, group=False):
    """The counter wrapped in the session middleware.  group: a store
    shared by a group (files 0660), as the gateway's --group."""
    return SessionMiddleware(counter_app,
                             store=sessgate.Store(store_path(path), group=group))


def main(argv):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", type=int, metavar="PORT",
                   help="run under wsgiref.simple_server on PORT")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--store", help="session store path")
    p.add_argument("--group", action="store_true",
                   help="share the store with the files' group (mode 0660)")
    args = p.parse_args(argv)
    if args.serve is None:
        if "GATEWAY_INTERFACE" in os.environ:
            from wsgiref.handlers import CGIHandler
            CGIHandler().run(make_app(args.store, args.group))
            return 0
        p.error("not a CGI request: give --serve PORT")
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, fmt, *a):     # one line per request on stderr
            sys.stderr.write("wsgi_counter: " + (fmt % a) + "\n")

    with make_server(args.host, args.serve, make_app(args.store, args.group),
                     handler_class=QuietHandler) as httpd:
        sys.stderr.write(f"wsgi_counter: http://{args.host}:{args.serve}/\n")
        httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
