#!/usr/bin/env bash
# bench/storesize.bash - "store size after N rewrites": how big a GDBM
# store's files get when a constant working set is rewritten with data of
# varying size (issue 19: the file grew by ~0.6 MB per 1,000 writes without
# end).  Called by bench/run; runnable alone from the top of a built tree:
#
#   bench/storesize.bash [OPS...]        (default 10000 20000 30000 200000)
#
# Ours: tests/tools/rewrite, 120 sessions through libsessgate (every file:
# PATH, .wal, .ckpt, .lock), against the baseline bench/gdbm_rewrite: the
# same sizes straight into one GDBM file with GDBM's defaults (the old write
# path; its PATH alone).  Also the same file with the options sessgate's
# writers now set, and the live data.  ratio = ours / baseline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}" "${SG_BUILDDIR:=$SG_SRCDIR}"
rw=$SG_BUILDDIR/tests/tools/rewrite base=$SG_BUILDDIR/bench/gdbm_rewrite
[ -x "$rw" ] && [ -x "$base" ] || { echo "storesize: build tests/tools/rewrite and bench/gdbm_rewrite first"; exit 1; }
[ $# -gt 0 ] || set -- 10000 20000 30000 200000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1e6 }'; }

printf '%-34s %12s %14s %14s %7s  %s\n' "store size after N rewrites" "live data" "ours (files)" "GDBM defaults" ratio "GDBM tuned, PATH"
for n in "$@"; do
  rm -f "$tmp"/s.db* "$tmp"/state*
  "$rw" seed "$tmp/s.db" "$tmp/state" 120
  line=$("$rw" run "$tmp/s.db" "$tmp/state" "$n" | tail -n1)
  ours=$(sed -n 's/.*files=\([0-9]*\).*/\1/p' <<<"$line")
  live=$(sed -n 's/.*live=\([0-9]*\).*/\1/p' <<<"$line")
  dflt=$("$base" "$tmp/g.db" "$n" "$n" default | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
  tuned=$("$base" "$tmp/g.db" "$n" "$n" tuned | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
  printf '%-34s %12s %14s %14s %7s  %s\n' "$n rewrites of 120 sessions" "$(mb "$live")" \
    "$(mb "$ours")" "$(mb "$dflt")" "$(awk -v a="$ours" -v b="$dflt" 'BEGIN { printf "%.3f", a / b }')" "$(mb "$tuned")"
done
