# tests/helpers/storesh.bash - one long-running storesh (tests/tools/storesh:
# a kept store handle reading commands from stdin) per test, as process A.
#
#   load ../helpers/storesh
#   a_start            start A on $STORE; its commands go through fd 5
#   a CMD...           send one command, wait (bounded: 5 s) for the answer
#                      line, which lands in $A
#
# A's PID is in $A_PID and in the test's PID file, so stop_all stops it;
# teardown should close fd 5 (exec 5>&-).  Needs $TOOLS and $STORE.

a_start() {
  A_OUT="$BATS_TEST_TMPDIR/a.out"
  mkfifo "$BATS_TEST_TMPDIR/a.in"
  : > "$A_OUT"
  # The redirections happen in the child before exec, so $! is storesh.
  "$TOOLS/storesh" "$STORE" <"$BATS_TEST_TMPDIR/a.in" >"$A_OUT" \
    2>"$A_OUT.err" 3>&- &
  A_PID=$!
  echo "$A_PID" >> "$(sg_pidfile)"
  exec 5>"$BATS_TEST_TMPDIR/a.in"
}

a() {
  local before i
  before=$(wc -l < "$A_OUT")
  echo "$*" >&5
  for ((i = 0; i < 200; i++)); do
    [ "$(wc -l < "$A_OUT")" -gt "$before" ] && break
    sleep 0.025
  done
  [ "$(wc -l < "$A_OUT")" -gt "$before" ] ||
    fail "storesh A did not answer '$*' (crashed?): $(cat "$A_OUT.err")"
  A=$(tail -n 1 "$A_OUT")
}
