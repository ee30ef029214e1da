#!/usr/bin/env bash
# bench/bindings.bash - Python and Lua binding throughput beside plain
# baselines measured in the same run on the same data.  Called by bench/run;
# runnable alone from the top of a built tree:
#
#   bench/bindings.bash [SESSIONS] [OPS]      (defaults 1000 100000)
#
# Python: sessgate.Store vs dbm.gnu + json opened once (bench/bindings_py.py).
# Lua: the sessgate module vs plain file I/O + the module's JSON codec
# (bench/bindings_lua.lua).  Prints one table; ratio = ours / baseline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SG_SRCDIR:=$(dirname "$here")}" "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=/usr/bin/python3}" "${SG_LUA:=lua5.4}"
export SG_BUILDDIR
sessions=${1:-1000} ops=${2:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/py" "$tmp/lua"

printf '%-8s %-13s %12s %12s %7s  %s\n' binding op "ours ops/s" "base ops/s" ratio baseline
if "$SG_PYTHON" -c 'import dbm.gnu' 2>/dev/null; then
  PYTHONPATH="$SG_BUILDDIR/bindings/python" "$SG_PYTHON" "$here/bindings_py.py" \
      "$tmp/py" "$sessions" "$ops" >"$tmp/py.out"
  while read -r name ours base ratio; do
    label="dbm.gnu + json, opened once"
    [ "$name" != datacheck ] || label="json.dumps of the same data"
    [[ "$name" != */memo ]] || label="$label; opt-in get(memo=True), not a target row"
    printf '%-8s %-13s %12s %12s %7s  %s\n' python "$name" "$ours" "$base" "$ratio" "$label"
  done <"$tmp/py.out"
  # Issue #14's targets for the record format that needs no JSON parse.
  awk '$1 == "get" { t = 1.0 } $1 == "get+data" { t = 0.8 }
       $1 == "get" || $1 == "get+data" {
         printf "target: python %s >= %.1fx dbm.gnu + json.loads: %.2fx  %s\n",
                $1, t, $4, ($4 >= t ? "MET" : "MISSED") }' "$tmp/py.out"
else
  echo "python   (skipped: dbm.gnu missing, install python3-gdbm)"
fi
LUA_PATH="$SG_SRCDIR/bindings/lua/?.lua;;" LUA_CPATH="$SG_BUILDDIR/bindings/lua/?.so;;" \
  "$SG_LUA" "$here/bindings_lua.lua" "$tmp/lua" "$sessions" "$((ops / 2))" |
  while read -r name ours base ratio; do
    printf '%-8s %-13s %12s %12s %7s  %s\n' lua "$name" "$ours" "$base" "$ratio" "file per session + same JSON codec"
  done
