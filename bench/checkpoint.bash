#!/usr/bin/env bash
# bench/checkpoint.bash - how long a GDBM checkpoint and a compaction keep
# writers waiting (issue 19: they run under the exclusive lock).  Called by
# bench/run; runnable alone from the top of a built tree:
#
#   BENCH_CKPT_SESSIONS=N bench/checkpoint.bash      (default 1,000,000)
#
# A store of N sessions is written with tests/tools/mkstore --raw (no log,
# no checkpoint, as an older version or a restored backup leaves it).
# Rows:
#   first checkpoint  the first writable open verifies every record and
#                     copies PATH to PATH.ckpt under the exclusive lock:
#                     the time of that `sessgatectl create` is the pause
#                     every writer sees (a checkpoint after the log
#                     outgrows PATH costs the same)
#   compact           `sessgatectl compact` (verify, rewrite, checkpoint)
#                     beside tests/tools/walkload (1 writer, create+delete
#                     0.5 ms apart, and 1 reader): its longest write is the
#                     writer stall
# Target (issue 19 item 2): no writer waits more than 100 ms.  Not met:
# both are O(store size); see the notes of issue 19.
set -u
: "${SG_BUILDDIR:?run through bench/run}"
tools=$SG_BUILDDIR/tests/tools
ctl=$SG_BUILDDIR/cli/sessgatectl
n=${BENCH_CKPT_SESSIONS:-1000000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/sessgate-ckpt.XXXXXX")
trap 'rm -rf "$dir"' EXIT
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n1; }
S=$dir/s.db
m=$("$tools/mkstore" --raw "$S" "$n" 1000) || { echo "checkpoint: mkstore failed"; exit 1; }
echo "checkpoint pauses on a store of $n sessions ($(stat -c %s "$S") bytes, written in $(field seconds "$m") s)"
t0=$(date +%s.%N)
"$ctl" --store "$S" create >/dev/null || { echo "checkpoint: create failed"; exit 1; }
t1=$(date +%s.%N)
awk -v t0="$t0" -v t1="$t1" 'BEGIN { d = (t1 - t0) * 1000
  printf "first checkpoint (verify + copy), writers wait: %10.0f ms  %s\n", d, d <= 100 ? "MET (<= 100 ms)" : "MISSED (<= 100 ms)" }'
rm -f "$dir/stop"
"$tools/walkload" "$S" "$dir/stop" 3600 1 1 500 >"$dir/load" 2>"$dir/load.err" &
load=$!
for _ in $(seq 200); do grep -q ready "$dir/load.err" 2>/dev/null && break; sleep 0.05; done
t0=$(date +%s.%N)
"$ctl" --store "$S" compact >"$dir/compact" 2>&1 || echo "checkpoint: compact failed: $(cat "$dir/compact")"
t1=$(date +%s.%N)
touch "$dir/stop"
wait "$load"
L=$(cat "$dir/load")
awk -v t0="$t0" -v t1="$t1" -v w="$(field write_max_ms "$L")" -v r="$(field read_max_ms "$L")" -v f="$(field failures "$L")" 'BEGIN {
  printf "compact (verify + rewrite + checkpoint) %.1f s: longest write %.0f ms, longest read %.0f ms, failures %d  %s\n",
         t1 - t0, w, r, f, w <= 100 && f == 0 ? "MET (<= 100 ms)" : "MISSED (<= 100 ms)" }'
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg))"
