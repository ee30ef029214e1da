# tests/helpers/common.bash - the sealed environment every suite loads.
#
#   load ../helpers/common
#
# Offers: sessgatectl (the built tool, under valgrind when SG_VALGRIND=1),
# make_store, free_port, start_bg (background process, PID recorded),
# stop_all (stop everything start_bg started, by PID), wait_for_socket,
# wait_for_port, require_tool, hold_lease and hold_store_lock (hold the
# store's lock from another process).  Everything lives under BATS_*_TMPDIR.
bats_require_minimum_version 1.5.0
load /usr/lib/bats/bats-support/load.bash
load /usr/lib/bats/bats-assert/load.bash

: "${SG_SRCDIR:?run the suites through make check or tests/run}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
source "$SG_SRCDIR/tests/helpers/logcheck.bash"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="${BATS_FILE_TMPDIR:-${BATS_TEST_TMPDIR:-/tmp}}"
export LC_ALL=C.UTF-8
unset SESSGATE_STORE
SG_CTL="$SG_BUILDDIR/cli/sessgatectl"
SG_GATEWAY="$SG_BUILDDIR/gateway/sessgate"
: "${SG_PYTHON:=python3}" "${SG_LUA:=lua5.4}"

# Under SG_VALGRIND=1 every C program of ours runs under valgrind and a
# memory error or a definite leak fails the command (exit 99).
sg_valgrind=()
if [ "${SG_VALGRIND:-0}" = 1 ]; then
  sg_valgrind=(valgrind -q --error-exitcode=99 --leak-check=full
               --errors-for-leak-kinds=definite --show-leak-kinds=definite)
fi

sessgatectl() { "${sg_valgrind[@]}" "$SG_CTL" "$@"; }

# make_store [NAME]: print the URI of a fresh, empty store: a path in the
# test's tmpdir, or in the Redis pass of tests/run (SG_STORE_BACKEND=redis)
# a redis+unix: URI on the run's server with a key prefix of its own, logged
# in as the pass's restricted ACL user.
# The prefix is unique per call (test number, name, the subshell's PID,
# the clock), so no test sees another's keys and none needs a FLUSHDB;
# it holds no ':' before the last byte, so no prefix starts another.
make_store() {
  if [ "${SG_STORE_BACKEND:-gdbm}" = redis ]; then
    : "${SG_TEST_REDIS_SOCK:?SG_STORE_BACKEND=redis needs SG_TEST_REDIS_SOCK (run through tests/run)}"
    # the pass's ACL user (tests/run), password from its file; prefix last
    printf 'redis+unix://sgtest@%s?password_file=%s&prefix=t%s.%s.%s.%s:\n' \
      "$SG_TEST_REDIS_SOCK" "${SG_TEST_REDIS_PWFILE:?run through tests/run}" \
      "${BATS_SUITE_TEST_NUMBER:-0}" "${1:-sessions}" "$BASHPID" "$(date +%s%N)"
    return
  fi
  local p="$BATS_TEST_TMPDIR/${1:-sessions}.db"
  rm -f "$p" "$p.lock"
  printf '%s\n' "$p"
}

# on_redis: true in the Redis pass of tests/run.
on_redis() { [ "${SG_STORE_BACKEND:-gdbm}" = redis ]; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  "$SG_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

sg_pidfile() { printf '%s\n' "${BATS_FILE_TMPDIR:-$BATS_TEST_TMPDIR}/bg.pids"; }

# start_bg CMD...: start CMD in the background (fd 3 closed, or bats
# hangs), record its PID for stop_all, print the PID.
start_bg() {
  "$@" 3>&- </dev/null &
  local pid=$!
  echo "$pid" >> "$(sg_pidfile)"
  printf '%s\n' "$pid"
}

# hold_lease MS: tests/tools/hold_lock takes $STORE's write lock through
# the library (sg_store_begin: flock on PATH.lock, or the Redis lease) for
# MS ms in the background; return once it holds it.  Its PID is in $HOLDER
# (a child of the test's shell, so `wait` works) and in the PID file.
hold_lease() {
  local out="$BATS_TEST_TMPDIR/hold.out" i
  "$SG_BUILDDIR/tests/tools/hold_lock" "$STORE" "$1" >"$out" 2>"$out.err" 3>&- </dev/null &
  HOLDER=$!
  echo "$HOLDER" >> "$(sg_pidfile)"
  for i in $(seq 200); do
    grep -q locked "$out" && return 0
    kill -0 "$HOLDER" 2>/dev/null || break
    sleep 0.025
  done
  fail "hold_lock never took the lock of $STORE: $(cat "$out.err")"
}

# hold_store_lock [-x|-s] [SECONDS]: hold $STORE's lock from outside the
# library for SECONDS (default 30; teardown's stop_all ends it sooner), as
# an administrator's tool or a stuck process would; return once it is held,
# the holder's PID in $HOLDER.  GDBM: util-linux flock on PATH.lock (-s
# shared), one process (bash execs sleep with the locked descriptor), so
# stopping it by PID releases the lock.  Redis has only the exclusive
# lease: hold_lease.
hold_store_lock() {
  local mode=${1:--x} secs=${2:-30} i
  if on_redis; then
    [ "$mode" = -x ] || fail "hold_store_lock $mode: Redis has only the exclusive lock"
    hold_lease $((secs * 1000))
    return
  fi
  require_tool flock
  # Not $(start_bg ...): the holder would keep that pipe open.
  start_bg bash -c 'exec 9>>"$1" && flock "$2" 9 && exec sleep "$3"' \
    _ "$STORE.lock" "$mode" "$secs" > "$BATS_TEST_TMPDIR/holder.pid"
  HOLDER=$(cat "$BATS_TEST_TMPDIR/holder.pid")
  for i in $(seq 200); do
    flock -n -x "$STORE.lock" true || return 0   # cannot get it: held
    sleep 0.02
  done
  fail "flock did not take $STORE.lock"
}

# stop_pid PID: TERM, wait up to 5 s, then KILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    # A zombie has stopped: an orphan waits for init to reap it (1.5 s
    # here), time a teardown need not spend.
    [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# stop_all: stop every process start_bg started in this file or test.
stop_all() {
  local f pid
  f=$(sg_pidfile)
  [ -f "$f" ] || return 0
  while read -r pid; do stop_pid "$pid"; done < "$f"
  rm -f "$f"
}

# wait_for_socket PATH [SECONDS]: until a unix socket exists (bounded).
wait_for_socket() {
  local i
  for i in $(seq $(( ${2:-10} * 20 ))); do
    [ -S "$1" ] && return 0
    sleep 0.05
  done
  echo "socket $1 did not appear" >&2
  return 1
}

# wait_for_port PORT [SECONDS]: until 127.0.0.1:PORT accepts (bounded).
wait_for_port() {
  local i
  for i in $(seq $(( ${2:-10} * 20 ))); do
    (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2
  return 1
}

# require_tool NAME...: skip the test when a tool is missing, or fail
# under SESSGATE_REQUIRE_ALL=1 (CI) so a missing tool cannot hide a suite.
require_tool() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 && continue
    if [ "${SESSGATE_REQUIRE_ALL:-0}" = 1 ]; then
      fail "$t is required (SESSGATE_REQUIRE_ALL=1) but not installed"
    fi
    skip "$t is not installed"
  done
}
