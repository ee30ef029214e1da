#!/usr/bin/python3
"""echo_http.py - a tiny HTTP backend that echoes the request it got.

    echo_http.py PORT

Listens on 127.0.0.1:PORT and answers every GET/POST with text/plain: the
request line, then every request header as "Name: value" in arrival order
(duplicates kept), then the body's length.  It stands for an HTTP app behind
nginx proxy_pass or Apache mod_proxy_http: tests send forged X-Session-*
headers and assert, from this output, that only the web server's own values
arrived.
"""
import http.server
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        lines = ["echo " + self.requestline]
        lines += ["%s: %s" % (k, v) for k, v in self.headers.items()]
        lines.append("body-length: %d" % len(body))
        out = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_HEAD = answer

    def log_message(self, fmt, *args):  # quiet: tests read stdout/stderr
        pass


def main():
    port = int(sys.argv[1])
    if not 0 < port < 65536:
        sys.exit("echo_http.py: port out of range")
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()


if __name__ == "__main__":
    main()
