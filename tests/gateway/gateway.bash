# tests/gateway/gateway.bash - helpers for the gateway suites, which drive
# gateway/sessgate directly over FastCGI (tests/tools/fcgi_client, or
# cgi-fcgi from libfcgi-bin), without a web server.
#
#   gw_setup            a fresh store ($STORE) and socket path ($GW_SOCK)
#   gw_start ARGS...    start the gateway on $GW_SOCK with ARGS; $GW_PID
#   gw_req ARGS...      one request (fcgi_client ARGS); prints the reply with
#                       CR stripped, keeps the raw bytes in $BATS_TEST_TMPDIR/raw
#   ctl ARGS...         sessgatectl on $STORE
#   new_session ARGS... create a session (sessgatectl create ARGS), print its id
#   header NAME         the value of header NAME in the last gw_req reply
#   gw_teardown         stop everything; fail if the gateway's log shows a
#                       sanitizer report (make SANITIZE=address,undefined)
#                       or a session id (logcheck.bash)
FCGI_CLIENT="$SG_BUILDDIR/tests/tools/fcgi_client"

gw_setup() {
  STORE=$(make_store)
  GW_SOCK="$BATS_TEST_TMPDIR/gw.sock"
  GW_ERR="$BATS_TEST_TMPDIR/gw.err"
  : > "$GW_ERR"
}

gw_start() {
  # not $(start_bg ...): the gateway would hold the substitution's pipe
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK" "$@" \
    2>>"$GW_ERR" > "$BATS_TEST_TMPDIR/gw.pid"
  GW_PID=$(cat "$BATS_TEST_TMPDIR/gw.pid")
  wait_for_socket "$GW_SOCK" 5
}

gw_req() {
  local rc=0
  "$FCGI_CLIENT" -s "$GW_SOCK" -t "${GW_REQ_TIMEOUT:-10}" "$@" > "$BATS_TEST_TMPDIR/raw" || rc=$?
  tr -d '\r' < "$BATS_TEST_TMPDIR/raw"
  return $rc
}

ctl() { "$SG_CTL" --store "$STORE" "$@"; }

new_session() { ctl create "$@"; }


# header NAME: value of NAME in the last reply's header block (first one)
header() {
  tr -d '\r' < "$BATS_TEST_TMPDIR/raw" | sed -n '/^$/q; p' |
    sed -n "s/^$1: //p" | head -1
}

# headers_only: the header block of the last reply, CR stripped
headers_only() {
  tr -d '\r' < "$BATS_TEST_TMPDIR/raw" | sed -n '/^$/q; p'
}

# raw_header_bytes_clean: every header line of the last reply is printable
# ASCII ending in CR LF (no bare CR, LF, NUL or 8-bit byte anywhere)
raw_header_bytes_clean() {
  "$SG_PYTHON" - "$BATS_TEST_TMPDIR/raw" <<'PY'
import sys
raw = open(sys.argv[1], 'rb').read()
head = raw.split(b'\r\n\r\n', 1)[0]
for line in head.split(b'\r\n'):
    bad = [b for b in line if b < 0x20 or b > 0x7e]
    if bad:
        print('bad bytes %r in header line %r' % (bytes(bad), line))
        sys.exit(1)
PY
}

gw_teardown() {
  stop_all
  sg_log_keep "${GW_ERR:-/dev/null}"
  if ! sg_log_ids "${GW_ERR:-/dev/null}" >&2; then
    echo "# a session id in the gateway's log (see above)" >&2
    return 1
  fi
  if [ -s "${GW_ERR:-/dev/null}" ] &&
     grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$GW_ERR"; then
    echo "# sanitizer report in the gateway's log" >&2
    return 1
  fi
}
