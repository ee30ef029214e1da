#!/usr/bin/env bats
# Hostile FastCGI clients and programs (issue #17): slow clients that would
# hold a worker (slowloris, a byte at a time), a full house of busy workers
# (bounded queue, fast 503), and a CGI program orphaned by a dying worker.
# Raw clients are small Python scripts speaking FastCGI on the socket; the
# normal traffic beside them is tests/tools/fcgi_client.
# backends: gdbm redis
load ../helpers/common
load gateway

setup() {
  gw_setup
  ROOT="$BATS_TEST_TMPDIR/cgi-bin"
  mkdir -p "$ROOT"
}
teardown() { gw_teardown; }

workers_of() { ps -o pid= --ppid "$1" | tr -d ' ' | sort -n; }
# first_worker: the gateway's worker, once forked (slow under ASan)
first_worker() {
  local i w
  for i in $(seq 100); do
    w=$(workers_of "$GW_PID" | head -1)
    [ -n "$w" ] && { echo "$w"; return 0; }
    sleep 0.05
  done
  return 1
}

# slow_client MODE: a raw FastCGI client on $GW_SOCK in the background.
#   stall  BEGIN_REQUEST and two bytes of a PARAMS header, then nothing
#   drip   BEGIN_REQUEST, then one byte of PARAMS every 0.3 s, for ever
# It stops when the gateway hangs up, and it writes
# "closed after N s" to $BATS_TEST_TMPDIR/slow.MODE.
slow_client() {
  cat > "$BATS_TEST_TMPDIR/slow.py" <<'PY'
import socket, sys, time
path, mode, out = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
t0 = time.time()
begin = bytes([1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
params = bytes([1, 4, 0, 1, 0, 200, 0, 0]) + b"\x0bREQUEST_URI" * 20
s.sendall(begin)
try:
    if mode == "stall":
        s.sendall(params[:2])
        s.settimeout(120)
        s.recv(1)
    else:
        s.settimeout(0.3)
        for b in params:
            s.sendall(bytes([b]))
            try:
                if s.recv(1) == b"":
                    break
            except socket.timeout:
                pass
except OSError:
    pass
with open(out, "a") as f:
    f.write("closed after %d s\n" % (time.time() - t0))
PY
  # not $(start_bg ...): the client would hold the substitution's pipe
  start_bg "$SG_PYTHON" "$BATS_TEST_TMPDIR/slow.py" "$GW_SOCK" "$1" \
    "$BATS_TEST_TMPDIR/slow.$1" > /dev/null
}

@test "a stalled client (slowloris) is dropped at --read-idle-timeout; normal traffic goes on beside it" {
  id=$(new_session --user alice)
  gw_start --workers 1 --read-idle-timeout 2 --read-timeout 30
  t0=$(date +%s)
  slow_client stall
  slow_client stall
  sleep 0.5
  # the one worker is held by the first slow client until the idle timeout;
  # then the next slow client; normal requests still get through in time
  for i in 1 2 3; do
    run -0 gw_req -t 15 -p "HTTP_COOKIE=sessgate=$id"
    assert_line "X-Session-User: alice"
  done
  [ $(( $(date +%s) - t0 )) -lt 12 ] || fail "normal traffic waited $(( $(date +%s) - t0 )) s"
  for i in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/slow.stall" ] && break; sleep 0.1; done
  run head -1 "$BATS_TEST_TMPDIR/slow.stall"
  assert_output --regexp '^closed after [0-9] s$'
  grep -q "connection_dropped" "$GW_ERR"
}

@test "a client dripping its request a byte at a time is dropped at --read-timeout" {
  id=$(new_session --user bob)
  gw_start --workers 1 --read-idle-timeout 5 --read-timeout 2
  t0=$(date +%s)
  slow_client drip
  sleep 0.3
  run -0 gw_req -t 15 -p "HTTP_COOKIE=sessgate=$id"
  assert_line "X-Session-User: bob"
  [ $(( $(date +%s) - t0 )) -lt 8 ] || fail "the request waited $(( $(date +%s) - t0 )) s"
  for i in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/slow.drip" ] && break; sleep 0.1; done
  run head -1 "$BATS_TEST_TMPDIR/slow.drip"
  assert_output --regexp '^closed after [2-4] s$'
}

@test "--queue-timeout: with every worker busy a waiting request gets 503 at once, not a long wait" {
  printf '#!/bin/sh\nsleep 4\nprintf "Content-Type: text/plain\\r\\n\\r\\nslow\\n"\n' > "$ROOT/slow.cgi"
  printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nquick\\n"\n' > "$ROOT/quick.cgi"
  chmod +x "$ROOT/slow.cgi" "$ROOT/quick.cgi"
  gw_start --mode cgi --cgi-root "$ROOT" --workers 1 --queue-timeout 300
  "$FCGI_CLIENT" -s "$GW_SOCK" -t 20 -p "SCRIPT_FILENAME=$ROOT/slow.cgi" \
    > "$BATS_TEST_TMPDIR/slow.out" 2>&1 3>&- &
  cpid=$!
  sleep 0.5
  t0=$(date +%s%N)
  run -0 gw_req -t 20 -p "SCRIPT_FILENAME=$ROOT/quick.cgi"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  assert_line "Status: 503 Service Unavailable"
  assert_line "Retry-After: 1"
  [ "$ms" -lt 2500 ] || fail "the 503 took $ms ms"
  wait "$cpid"
  grep -q "slow" "$BATS_TEST_TMPDIR/slow.out"
  # a free worker serves again at once
  run -0 gw_req -t 20 -p "SCRIPT_FILENAME=$ROOT/quick.cgi"
  assert_line "quick"
  grep -q "queue_full" "$GW_ERR"
}

@test "a CGI program whose worker dies is killed with its process group by the master" {
  printf '#!/bin/sh\necho $$ > "%s/orphan.pid"\nsleep 60 &\necho $! > "%s/orphan.child"\nwait\n' \
    "$ROOT" "$ROOT" > "$ROOT/orphan.cgi"
  chmod +x "$ROOT/orphan.cgi"
  gw_start --mode cgi --cgi-root "$ROOT" --cgi-timeout 60 --workers 1
  "$FCGI_CLIENT" -s "$GW_SOCK" -t 20 -p "SCRIPT_FILENAME=$ROOT/orphan.cgi" >/dev/null 2>&1 3>&- &
  cpid=$!
  for i in $(seq 100); do [ -s "$ROOT/orphan.child" ] && break; sleep 0.05; done
  [ -s "$ROOT/orphan.child" ] || fail "the program did not start"
  worker=$(workers_of "$GW_PID" | head -1)
  kill -KILL "$worker"                 # as the OOM killer would
  for i in $(seq 60); do
    ! kill -0 "$(cat "$ROOT/orphan.pid")" 2>/dev/null &&
      ! kill -0 "$(cat "$ROOT/orphan.child")" 2>/dev/null && break
    sleep 0.05
  done
  ! kill -0 "$(cat "$ROOT/orphan.pid")" 2>/dev/null || fail "the orphaned program still runs"
  ! kill -0 "$(cat "$ROOT/orphan.child")" 2>/dev/null || fail "its child still runs"
  # reaped, not a zombie of the master
  ! ps -o stat= -p "$(cat "$ROOT/orphan.pid")" 2>/dev/null | grep -q Z ||
    fail "the orphaned program is a zombie of the master"
  grep -q "cgi_orphan_killed" "$GW_ERR"
  wait "$cpid" || true
}

# keep_alive end|noend: two AUTHORIZER requests on one kept connection
# (FCGI_KEEP_CONN), the first with a 180 KB body the gateway never reads,
# ended or not; prints how each reply ended.
keep_alive() {
  "$SG_PYTHON" - "$GW_SOCK" "$1" <<'PY'
import socket, struct, sys
path, body_end = sys.argv[1], sys.argv[2] == "end"
def rec(t, b): return struct.pack('>BBHHBB', 1, t, 1, len(b), 0, 0) + b
def nv(n, v): return bytes([len(n), len(v)]) + n + v
def begin(): return rec(1, struct.pack('>HB5x', 2, 1))
def reply(s):
    buf, out = b'', b''
    s.settimeout(10)
    while True:
        while len(buf) < 8 or len(buf) < 8 + struct.unpack('>H', buf[4:6])[0] + buf[6]:
            d = s.recv(65536)
            if not d:
                return 'closed'
            buf += d
        t, l, p = buf[1], struct.unpack('>H', buf[4:6])[0], buf[6]
        out += buf[8:8 + l] if t == 6 else b''
        buf = buf[8 + l + p:]
        if t == 3:
            return out.split(b'\r\n')[0].decode()
s = socket.socket(socket.AF_UNIX)
s.connect(path)
p = nv(b'REQUEST_URI', b'/a') + nv(b'REQUEST_METHOD', b'POST') + nv(b'CONTENT_LENGTH', b'180000')
s.sendall(begin() + rec(4, p) + rec(4, b'') + b''.join(rec(5, b'x' * 60000) for _ in range(3))
          + (rec(5, b'') if body_end else b''))
print('first:', reply(s))
try:
    s.sendall(begin() + rec(4, nv(b'REQUEST_URI', b'/b')) + rec(4, b'') + rec(5, b''))
    print('second:', reply(s))
except OSError as e:
    print('second: closed')
PY
}

@test "authorizer on a kept connection: an unread body is drained so the next request is served" {
  gw_start --workers 1 --read-timeout 2
  run -0 keep_alive end
  assert_line "first: Status: 200 OK"
  assert_line "second: Status: 200 OK"
  # a body that never ends (Apache, lighttpd POST): answered, then the
  # connection is closed cleanly, and a new one is served
  run -0 keep_alive noend
  assert_line "first: Status: 200 OK"
  assert_line "second: closed"
  run -0 gw_req -r authorizer -p REQUEST_URI=/c
  assert_line "Status: 200 OK"
}

@test "the new refusals are counted in the metrics (spoof, damaged record, dropped connection)" {
  require_tool curl
  local port bad=0b5c1d2e-0000-4000-8000-00000000dead
  new_session >/dev/null
  if on_redis; then
    redis-cli -s "$SG_TEST_REDIS_SOCK" SET "${STORE##*prefix=}$bad" 'not json' >/dev/null
  else
    "$SG_BUILDDIR/tests/tools/gdbm_put" "$STORE" "$bad" 'not json'
  fi
  port=$(free_port)
  gw_start --workers 1 --read-idle-timeout 1 --metrics-listen "127.0.0.1:$port"
  wait_for_port "$port"
  run -0 gw_req -p REQUEST_URI=/ -p HTTP_X_SESSION.USER=forged
  assert_line "Status: 403 Forbidden"
  run -0 gw_req -p REQUEST_URI=/ -p "HTTP_COOKIE=sessgate=$bad"
  assert_line "Status: 200 OK"
  "$SG_PYTHON" -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(bytes([1, 1, 0, 1, 0, 8, 0, 0]))
time.sleep(2.5)' "$GW_SOCK"
  run -0 curl -sf "http://127.0.0.1:$port/metrics"
  assert_line "sessgate_spoof_refused_total 1"
  assert_line "sessgate_records_damaged_total 1"
  assert_line "sessgate_connections_dropped_total 1"
}

# raw_fcgi SCRIPT: run a raw FastCGI client on $GW_SOCK; SCRIPT is Python
# with these in scope: s (the connected socket), rec(type, body[, id]),
# nv(name, value) (a name-value pair with explicit 1- or 4-byte lengths),
# begin([role]), records() (the reply's records until END_REQUEST or
# close, as (type, content) pairs) and out(recs) (its FCGI_STDOUT, CR
# stripped).  Each test sends its bytes as a web server never would.
raw_fcgi() {
  "$SG_PYTHON" - "$GW_SOCK" "$1" <<'PY'
import socket, struct, sys
path, script = sys.argv[1], sys.argv[2]
def rec(t, b, rid=1): return struct.pack('>BBHHBB', 1, t, rid, len(b), 0, 0) + b
def ln(n): return bytes([n]) if n < 128 else struct.pack('>I', n | 0x80000000)
def nv(n, v): return ln(len(n)) + ln(len(v)) + n + v
def begin(role=1): return rec(1, struct.pack('>HB5x', role, 0))
def records():
    buf, got = b'', []
    s.settimeout(10)
    while True:
        while len(buf) < 8 or len(buf) < 8 + struct.unpack('>H', buf[4:6])[0] + buf[6]:
            try:
                d = s.recv(65536)
            except OSError:
                d = b''
            if not d:
                got.append(('closed', b''))
                return got
            buf += d
        t, l, p = buf[1], struct.unpack('>H', buf[4:6])[0], buf[6]
        got.append((t, buf[8:8 + l]))
        buf = buf[8 + l + p:]
        if t == 3:
            return got
def out(recs): return b''.join(c for t, c in recs if t == 6).decode('latin-1').replace('\r', '')
s = socket.socket(socket.AF_UNIX)
s.connect(path)
exec(script)
PY
}

# cookie_nul ID1 ID2: one HTTP_COOKIE param "sessgate=ID1; x=<NUL>; sessgate=ID2"
cookie_nul() {
  raw_fcgi "
p = nv(b'REQUEST_URI', b'/') + nv(b'HTTP_COOKIE', b'$1; x=\\x00; $2')
s.sendall(begin() + rec(4, p) + rec(4, b'') + rec(5, b''))
print(out(records()))"
}

@test "a NUL inside HTTP_COOKIE hides nothing: a second session cookie after it is seen (issue #17 7a)" {
  a=$(new_session --user alice)
  b=$(new_session --user bob)
  gw_start --workers 1
  # the same id twice around the NUL: one session
  run -0 cookie_nul "sessgate=$a" "sessgate=$a"
  assert_line "X-Session-User: alice"
  # two different ids around the NUL: ambiguous, no session at all
  run -0 cookie_nul "sessgate=$a" "sessgate=$b"
  refute_line "X-Session-User: alice"
  refute_line "X-Session-User: bob"
  grep -q "cookie_malformed" "$GW_ERR"
  # the only session cookie after the NUL is found
  run -0 cookie_nul "y=1" "sessgate=$b"
  assert_line "X-Session-User: bob"
}

@test "a PARAMS length near 2^31 drops the connection, never the worker (was: libfcgi assert, SIGABRT)" {
  gw_start --workers 1
  worker=$(first_worker)
  run -0 raw_fcgi "
huge = struct.pack('>II', 0xffffff00, 0xffffff00) + b'AB'
s.sendall(begin() + rec(4, huge) + rec(4, b'') + rec(5, b''))
print(records()[-1][0])"
  assert_output "closed"
  # a name or value longer than what the record stream holds, in pieces
  run -0 raw_fcgi "
p = nv(b'REQUEST_URI', b'/') + struct.pack('>II', 0x80000010, 0x80000001) + b'x' * 40
s.sendall(begin() + rec(4, p[:20]) + rec(4, p[20:]) + rec(4, b'') + rec(5, b''))
print(records()[-1][0])"
  assert_output "closed"
  run -0 gw_req -p REQUEST_URI=/
  assert_line "Status: 200 OK"
  [ "$(workers_of "$GW_PID" | head -1)" = "$worker" ] || fail "the worker died"
  ! grep -Ei 'assert|abort' "$GW_ERR"
}

@test "management records: GET_VALUES answered, unknown types answered and nothing leaks (was: 48 bytes each)" {
  gw_start --workers 1
  worker=$(first_worker)
  run -0 raw_fcgi "
s.sendall(rec(9, nv(b'FCGI_MPXS_CONNS', b'') + nv(b'FCGI_MAX_CONNS', b'') + nv(b'OTHER', b''), 0)
          + rec(42, b'', 0))
got = []
while len(got) < 2:
    r = records()
    got += r
    if r[-1][0] == 'closed': break
print(got[:2])"
  assert_output "[(10, b'\\x0f\\x01FCGI_MPXS_CONNS0\\x0e\\x01FCGI_MAX_CONNS1'), (11, b'*\\x00\\x00\\x00\\x00\\x00\\x00\\x00')]"
  rss0=$(ps -o rss= -p "$worker")
  # 100000 unknown-type records (800 KB) on one connection, then a request
  run -0 raw_fcgi "
import threading
n, seen = 100000, [0]
def drain():
    buf = b''
    while seen[0] < n:
        d = s.recv(65536)
        if not d: return
        buf += d
        k = len(buf) // 16
        seen[0] += k
        buf = buf[16 * k:]
t = threading.Thread(target=drain); t.start()
s.sendall(rec(99, b'', 0) * n)
t.join(30)
print(seen[0])"
  assert_output 100000
  run -0 gw_req -p REQUEST_URI=/
  assert_line "Status: 200 OK"
  rss1=$(ps -o rss= -p "$worker")
  # libfcgi 2.4.2 leaked 48 bytes a record: 4.8 MB here
  [ $((rss1 - rss0)) -lt 1500 ] || fail "the worker grew by $((rss1 - rss0)) KiB"
}

@test "FCGI_WEB_SERVER_ADDRS: a TCP connection from an address not listed is closed unread" {
  local port
  port=$(free_port)
  export FCGI_WEB_SERVER_ADDRS="127.0.0.2, 10.1.2.3"
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "127.0.0.1:$port" --workers 1 \
    2>>"$GW_ERR" > "$BATS_TEST_TMPDIR/gw.pid"
  wait_for_port "$port"
  run "$FCGI_CLIENT" -s "127.0.0.1:$port" -t 10 -p REQUEST_URI=/
  [ "$status" -eq 4 ] || fail "not closed unread (exit $status): $output"
  grep -q "peer_refused" "$GW_ERR"
  stop_all
  port=$(free_port)
  export FCGI_WEB_SERVER_ADDRS="10.1.2.3,127.0.0.1"
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "127.0.0.1:$port" --workers 1 \
    2>>"$GW_ERR" > "$BATS_TEST_TMPDIR/gw.pid"
  wait_for_port "$port"
  run -0 "$FCGI_CLIENT" -s "127.0.0.1:$port" -t 10 -p REQUEST_URI=/
  assert_line --partial "Status: 200 OK"
}

# The list is read and parsed once, at start-up (not per connection): an
# entry that is not an address stops the start (it used to match no peer,
# silently), and addresses compare as addresses, not text: a non-canonical
# IPv6 spelling matches, and an IPv4 peer on an IPv6 socket (dual stack,
# ::ffff:127.0.0.1) matches its IPv4 entry.  The socket comes from
# systemd-socket-activate, which binds [::] as PID 1 would.
# bats test_tags=gdbm-only
@test "FCGI_WEB_SERVER_ADDRS is parsed at start: a bad entry is a usage error; IPv6 and mapped IPv4 peers match by address" {
  local port
  run -2 timeout 10 env FCGI_WEB_SERVER_ADDRS="127.0.0.1, localhost" "$SG_GATEWAY" --store "$STORE" \
    --listen "127.0.0.1:$(free_port)"
  assert_output --partial "FCGI_WEB_SERVER_ADDRS: localhost: not an IPv4 or IPv6 address"
  run -2 timeout 10 env FCGI_WEB_SERVER_ADDRS=" , " "$SG_GATEWAY" --store "$STORE" --listen "127.0.0.1:$(free_port)"
  assert_output --partial "FCGI_WEB_SERVER_ADDRS lists no address"
  require_tool systemd-socket-activate
  [ -e /proc/net/if_inet6 ] || skip "no IPv6 on this machine"
  port=$(free_port)
  # listening on [::]:PORT (state 0A in /proc/net/tcp6), no probe connection
  listening6() {
    local i
    for i in $(seq 100); do
      grep -qE "^ *[0-9]+: 0{32}:$(printf %04X "$1") 0{32}:0000 0A" /proc/net/tcp6 && return 0
      sleep 0.05
    done
    fail "nothing listens on [::]:$1"
  }
  start_bg systemd-socket-activate -l "[::]:$port" \
    -E FCGI_WEB_SERVER_ADDRS="0:0:0:0:0:0:0:1,127.0.0.1" \
    "$SG_GATEWAY" --store "$STORE" 2>>"$GW_ERR" > "$BATS_TEST_TMPDIR/gw.pid"
  listening6 "$port"
  # it execs the gateway on the first connection
  run -0 "$FCGI_CLIENT" -s "::1:$port" -t 10 -p REQUEST_URI=/
  assert_line --partial "Status: 200 OK"
  run -0 "$FCGI_CLIENT" -s "127.0.0.1:$port" -t 10 -p REQUEST_URI=/
  assert_line --partial "Status: 200 OK"
  ! grep -q "peer_refused" "$GW_ERR" || fail "refused: $(cat "$GW_ERR")"
  stop_all
  port=$(free_port)
  start_bg systemd-socket-activate -l "[::]:$port" -E FCGI_WEB_SERVER_ADDRS="::2, 127.0.0.2" \
    "$SG_GATEWAY" --store "$STORE" 2>>"$GW_ERR" > "$BATS_TEST_TMPDIR/gw.pid"
  listening6 "$port"
  run "$FCGI_CLIENT" -s "::1:$port" -t 10 -p REQUEST_URI=/
  [ "$status" -eq 4 ] || fail "::1 not closed unread (exit $status): $output"
  run "$FCGI_CLIENT" -s "127.0.0.1:$port" -t 10 -p REQUEST_URI=/
  [ "$status" -eq 4 ] || fail "127.0.0.1 not closed unread (exit $status): $output"
  grep -q "peer_refused.*peer=::1" "$GW_ERR" || fail "$(cat "$GW_ERR")"
}
