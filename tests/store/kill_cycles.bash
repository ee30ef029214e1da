#!/usr/bin/env bash
# tests/store/kill_cycles.bash - the kill -9 loop of kill.bats, run as its
# own bash process: bats traces every command of a test (DEBUG trap), which
# made 50 cycles take ~50 s inside the test body; out here they take ~15.
#
#   kill_cycles.bash TOOLS STORE DIR CYCLES
#
# Per cycle: start TOOLS/storm on STORE (acknowledgements in DIR/ack.N),
# kill -9 it after a random 5..80 ms, then let TOOLS/verify open the store
# afresh (recovering it if needed) and check that cycle's acknowledgements.
# Every third cycle a second storm is killed after only 1..15 ms, before
# the verify: that kill tends to land while the store is being recovered
# (or checkpointed) after the first, and must not lose anything either.
# Prints one line per cycle that went wrong, then
#   "summary cycles=C recovered=R lossy=L acked=A"
# Exit 0 when every cycle reopened and lost nothing, 1 on a loss, 2 when
# the store did not open or the storm stopped by itself (a library error).
set -u
tools=$1 store=$2 dir=$3 cycles=$4
recovered=0 lossy=0 acked=0 ret=0
for ((cycle = 1; cycle <= cycles; cycle++)); do
  ack=$dir/ack.$cycle
  : > "$ack"
  "$tools/storm" "$store" "$ack" 2>"$dir/storm.err" 3>&- </dev/null &
  pid=$!
  delay=$(printf '0.%03d' $((RANDOM % 76 + 5)))
  sleep "$delay"
  kill -KILL "$pid" 2>/dev/null
  rc=0
  { wait "$pid" || rc=$?; } 2>/dev/null   # no "Killed" job notice
  if [ "$rc" -eq 137 ] && [ $((cycle % 3)) -eq 0 ]; then
    "$tools/storm" "$store" "$ack" 2>"$dir/storm.err" 3>&- </dev/null &
    pid=$!
    sleep "$(printf '0.%03d' $((RANDOM % 15 + 1)))"
    kill -KILL "$pid" 2>/dev/null
    rc=0
    { wait "$pid" || rc=$?; } 2>/dev/null
  fi
  # 137 = killed by SIGKILL; anything else: the storm hit a library error.
  if [ "$rc" -ne 137 ]; then
    echo "cycle $cycle: storm exited $rc before the kill: $(tail -n 3 "$dir/storm.err")"
    ret=2
    break
  fi
  out=$("$tools/verify" "$store" "$ack" 2>"$dir/verify.err")
  rc=$?
  if [ "$rc" -eq 2 ]; then
    echo "cycle $cycle: the store does not open: $(cat "$dir/verify.err")"
    ret=2
    break
  fi
  case $out in *recoveries=0*) ;; *) recovered=$((recovered + 1)) ;; esac
  n=${out#acked=}
  acked=$((acked + ${n%% *}))
  if [ "$rc" -ne 0 ]; then
    lossy=$((lossy + 1))
    echo "cycle $cycle (kill after $delay s): $out; $(head -n 3 "$dir/verify.err" | tr '\n' ' ')"
    ret=1
  fi
done
echo "summary cycles=$((cycle > cycles ? cycles : cycle)) recovered=$recovered lossy=$lossy acked=$acked"
exit "$ret"
