#!/bin/sh
# whoami.cgi - a CGI that prints what it was given, for spoofing tests and
# for looking at a web server's wiring by hand.
#
# It prints every SESSION_* variable, REMOTE_USER and every HTTP_* variable
# (sorted, one per line), then, when a body came with the request, its length
# and SHA-256 (so a test can prove a large body went through intact).  Tests
# assert on this output: a forged header that reached the app shows up here.
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\n'
printf 'whoami\n'
env | LC_ALL=C sort | grep -E '^(SESSION_|HTTP_|REMOTE_USER=|REQUEST_METHOD=|QUERY_STRING=)' || true
if [ -n "${CONTENT_LENGTH:-}" ] && [ "$CONTENT_LENGTH" -gt 0 ] 2>/dev/null; then
	sum=$(head -c "$CONTENT_LENGTH" | sha256sum | cut -d' ' -f1)
	printf 'BODY_SHA256=%s\n' "$sum"
fi
