#!/usr/bin/python3
"""counter.py - the counter app of counter.sh, as a Python CGI for `sessgate --mode cgi`.

The session arrives in the environment (SESSION_ID, SESSION_USER, SESSION_DATA
as compact ASCII JSON, SESSION_NEW, SESSION_DATA_TRUNCATED).  The app changes it
only through reply headers, which the gateway applies and strips:
X-Session-Set (merge JSON), X-Session-Login (user + new id), X-Session-Logout.

  ?login=NAME   log in as NAME (printable ASCII, no spaces: it goes into a header)
  ?logout=1     end the session
  (otherwise)   count this visit in the session ("n")
"""
import json
import os
import re
import sys
from urllib.parse import parse_qs


def main():
    query = parse_qs(os.environ.get("QUERY_STRING", ""))
    try:
        data = json.loads(os.environ.get("SESSION_DATA") or "{}")
    except ValueError:
        data = {}
    n = data.get("n", 0) if isinstance(data, dict) else 0
    if not isinstance(n, int):
        n = 0

    status, headers = "200 OK", []
    if query.get("logout") == ["1"]:
        headers.append(("X-Session-Logout", "1"))
        msg = "logged out"
    elif "login" in query:
        name = query["login"][0]
        # The name becomes a header value: refuse anything that could split it.
        if not re.fullmatch(r"[\x21-\x7e]{1,64}", name):
            status, msg = "400 Bad Request", "bad user name"
        else:
            headers.append(("X-Session-Login", name))
            msg = "logged in as " + name
    else:
        n += 1
        # ensure_ascii (the default) keeps the header value 7-bit clean.
        headers.append(("X-Session-Set", json.dumps({"n": n}, separators=(",", ":"))))
        msg = "count=%d" % n

    out = ["Status: " + status, "Content-Type: text/plain", "Cache-Control: no-store"]
    out += ["%s: %s" % h for h in headers]
    body = [msg] + ["%s=%s" % (k, os.environ.get(k, "")) for k in
                    ("SESSION_ID", "SESSION_USER", "SESSION_DATA", "SESSION_NEW",
                     "SESSION_DATA_TRUNCATED")]
    sys.stdout.write("\r\n".join(out) + "\r\n\r\n" + "\n".join(body) + "\n")


if __name__ == "__main__":
    main()
