#!/usr/bin/env bash
# bench/fcgi_reader.bash - the gateway's own FastCGI reader (issue #17,
# gateway/fcgi.c) against libfcgi's, which it replaced: the CPU a worker
# spends per request, the baseline gateway and this one side by side.
#
#   bench/fcgi_reader.bash      (run by bench/run / `make bench`, or alone
#                                after `make`)
#
# The baseline is the commit before gateway/fcgi.c came (found in the git
# history; BENCH_FCGI_BASE=REV picks another), built in a scratch
# directory.  Each gateway runs `--mode auth --workers 1` on a fresh GDBM
# store with one logged-in session; a Python client sends N authorizer
# requests (BENCH_FCGI_REQUESTS, 5000) with the session cookie and 20
# other params, reading each reply before the next, two ways:
#   kept   all on one FCGI_KEEP_CONN connection (the record reader alone)
#   fresh  one connection per request (accept, read, reply, close)
# The figure is the worker's own CPU time (/proc/PID/schedstat) per
# request, which the load of other processes moves far less than a rate;
# the client's CPU is not counted.  BENCH_FCGI_ROUNDS (5) interleaved
# rounds, baseline and candidate a few seconds apart; printed are the
# medians and the median of the per-round ratios (new/old: below 1.00 is
# cheaper).  Outside a git checkout it says so and is skipped.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}" "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=$(command -v python3)}"
: "${BENCH_FCGI_REQUESTS:=5000}" "${BENCH_FCGI_ROUNDS:=5}"
gw_new=$SG_BUILDDIR/gateway/sessgate ctl=$SG_BUILDDIR/cli/sessgatectl
[ -x "$gw_new" ] && [ -x "$ctl" ] || { echo "fcgi_reader: build first (make)"; exit 1; }
base=${BENCH_FCGI_BASE:-}
if [ -z "$base" ]; then
  intro=$(git -C "$SG_SRCDIR" log --format=%H --reverse --diff-filter=A \
            -- gateway/fcgi.c 2>/dev/null | head -n 1 || true)
  [ -z "$intro" ] || base="$intro^"
fi
if [ -z "$base" ] || ! git -C "$SG_SRCDIR" rev-parse --verify -q "$base^{commit}" >/dev/null; then
  echo "fcgi_reader: skipped (no git history to build libfcgi's gateway from; set BENCH_FCGI_BASE=REV)"
  exit 0
fi
tmp=$(mktemp -d)
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$tmp/src"
git -C "$SG_SRCDIR" archive "$base" | tar -x -C "$tmp/src"
if ! (cd "$tmp/src" && ./configure >"$tmp/build.log" 2>&1 &&
      make -j2 gateway/sessgate >>"$tmp/build.log" 2>&1); then
  echo "fcgi_reader: the baseline ($base) did not build:"; tail -n 20 "$tmp/build.log"; exit 1
fi
gw_old=$tmp/src/gateway/sessgate

# start NAME BINARY VAR: a gateway on $tmp/NAME.sock; its worker's PID in
# VAR (not printed: a $(...) would run this in a subshell, and the PID
# list the exit trap stops would lose the gateway)
start() {
  local sock=$tmp/$1.sock i w
  setsid "$2" --store "$tmp/sessions.db" --listen "unix:$sock" --mode auth --workers 1 \
    >/dev/null 2>>"$tmp/$1.err" &
  pids+=($!)
  for i in $(seq 200); do
    w=$(ps -o pid= --ppid "$!" | tr -d ' ' | head -1)
    if [ -S "$sock" ] && [ -n "$w" ]; then printf -v "$3" '%s' "$w"; return 0; fi
    sleep 0.05
  done
  echo "fcgi_reader: $1 did not start" >&2; exit 1
}
"$ctl" --store "$tmp/sessions.db" create --user bench > "$tmp/id"
id=$(cat "$tmp/id")
start old "$gw_old" w_old
start new "$gw_new" w_new

cat > "$tmp/client.py" <<'PY'
import socket, struct, sys
path, sid, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def rec(t, b): return struct.pack('>BBHHBB', 1, t, 1, len(b), 0, 0) + b
def nv(k, v): return bytes([len(k), len(v)]) + k + v
params = nv(b'HTTP_COOKIE', b'theme=dark; sessgate=' + sid.encode() + b'; lang=en')
params += nv(b'REQUEST_URI', b'/app/page?x=1') + nv(b'REQUEST_METHOD', b'GET')
for i in range(18):
    params += nv(b'HTTP_X_BENCH_%02d' % i, b'v' * 40)
keep = 1 if mode == 'kept' else 0
req = (rec(1, struct.pack('>HB5x', 2, keep)) + rec(4, params) + rec(4, b'') + rec(5, b''))
def one(s):
    buf = b''
    while True:
        while len(buf) < 8 or len(buf) < 8 + struct.unpack('>H', buf[4:6])[0] + buf[6]:
            d = s.recv(65536)
            if not d: raise SystemExit('closed early')
            buf += d
        t, l, p = buf[1], struct.unpack('>H', buf[4:6])[0], buf[6]
        if t == 6 and not buf[8:8 + l].startswith(b'Status: 200') and l:
            if b'Status:' in buf[8:8 + l][:8]: raise SystemExit(buf[8:8 + l][:60])
        buf = buf[8 + l + p:]
        if t == 3: return
s = None
for i in range(n):
    if s is None:
        s = socket.socket(socket.AF_UNIX); s.connect(path)
    s.sendall(req)
    one(s)
    if not keep:
        s.close(); s = None
PY

cpu() { awk '{ print $1 }' "/proc/$1/schedstat"; }       # ns on a CPU
# run NAME WORKER MODE: microseconds of the worker's CPU per request
run() {
  local a b
  a=$(cpu "$2")
  "$SG_PYTHON" "$tmp/client.py" "$tmp/$1.sock" "$id" "$BENCH_FCGI_REQUESTS" "$3" ||
    { echo "fcgi_reader: the $1 gateway failed a request" >&2; exit 1; }
  b=$(cpu "$2")
  awk -v a="$a" -v b="$b" -v n="$BENCH_FCGI_REQUESTS" 'BEGIN { printf "%.1f", (b - a) / 1000 / n }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "fcgi_reader: worker CPU per auth request, libfcgi's reader ($(git -C "$SG_SRCDIR" rev-parse --short "$base")) vs the gateway's own," \
     "$BENCH_FCGI_REQUESTS requests x $BENCH_FCGI_ROUNDS interleaved rounds, load average $(cut -d' ' -f1 /proc/loadavg)"
printf '%-8s %14s %14s %10s   %s\n' case old-us/req new-us/req new/old "ratios per round"
for mode in kept fresh; do
  olds=() news=() ratios=()
  for r in $(seq "$BENCH_FCGI_ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then o=$(run old "$w_old" "$mode"); n=$(run new "$w_new" "$mode")
    else n=$(run new "$w_new" "$mode"); o=$(run old "$w_old" "$mode"); fi
    olds+=("$o") news+=("$n")
    ratios+=("$(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
  done
  printf '%-8s %14s %14s %10s   %s\n' "$mode" \
    "$(printf '%s\n' "${olds[@]}" | median)" "$(printf '%s\n' "${news[@]}" | median)" \
    "$(printf '%s\n' "${ratios[@]}" | median)" "${ratios[*]}"
done
