# tests/store/store.bash - helpers shared by the store's fault and
# concurrency suites (loaded after ../helpers/common).
#
#   TOOLS             the helper programs built from tests/tools/*.c
#   spawn OUT CMD...  run CMD in the background, stdout to OUT, stderr to
#                     OUT.err, fd 3 closed; PID in $spawned and recorded for
#                     stop_all.  (Not start_bg: we need the PID without a
#                     command substitution, and each process's own output.)
#   wait_pids SECS PID...  wait for the processes, bounded; fails on a hang
#                     or a nonzero exit (showing the process's stderr).
#   note TEXT         print "# TEXT" into the TAP stream (figures we report).
TOOLS="$SG_BUILDDIR/tests/tools"

spawn() {
  local out=$1
  shift
  "$@" >"$out" 2>"$out.err" 3>&- </dev/null &
  spawned=$!
  echo "$spawned" >> "$(sg_pidfile)"
}

wait_pids() {
  local secs=$1 pid i rc
  shift
  for pid in "$@"; do
    for ((i = 0; i < secs * 20; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      tail -n 5 "$BATS_TEST_TMPDIR"/*.err >&2 2>/dev/null || true
      fail "process $pid still running after ${secs} s (hung?)"
    fi
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ]; then
      tail -n 5 "$BATS_TEST_TMPDIR"/*.err >&2 2>/dev/null || true
      fail "process $pid exited $rc"
    fi
  done
}

note() { printf '# %s\n' "$*" >&3; }

# field NAME TEXT: the value of NAME=VALUE in TEXT.
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n1; }
