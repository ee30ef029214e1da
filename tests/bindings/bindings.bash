# tests/bindings/bindings.bash - shared by the binding suites (python, lua,
# mixed, wsgi): run snippets against the modules of this build, without
# installing them.
#
#   py 'python code'          $SG_PYTHON -c with PYTHONPATH set; env STORE
#   lua_run 'lua code'        lua5.4 -e with LUA_PATH/LUA_CPATH set
#
# Both see $STORE (a fresh store path per test, from setup_store) and the
# helper preludes below, so snippets stay short and read as the behaviour
# they check.

export PYTHONPATH="$SG_BUILDDIR/bindings/python"
export LUA_PATH="$SG_SRCDIR/bindings/lua/?.lua;;"
export LUA_CPATH="$SG_BUILDDIR/bindings/lua/?.so;;"
export PYTHONDONTWRITEBYTECODE=1

# luajit.bats is lua.bats again (a symlink) under LuaJIT, with the module
# built against LuaJIT's headers: the same behaviour on both, except where
# a test says "n/a on LuaJIT" (one number type: 1.0 and 1 are one value).
if [ "$(basename "${BATS_TEST_FILENAME:-}")" = luajit.bats ]; then
  SG_LUA=${SG_LUAJIT:-luajit}
  export LUA_CPATH="$SG_BUILDDIR/bindings/lua/luajit/?.so;;"
fi
on_luajit() { [ "$(basename "${BATS_TEST_FILENAME:-}")" = luajit.bats ]; }

# Under make SANITIZE=address,... the modules carry ASan, which must be the
# first library of the process: the interpreters run through wrappers that
# preload it.  Interpreters keep memory until exit by design, so ASan's own
# leak report is off there; the RSS checks (skipped under ASan, whose
# quarantine grows RSS on purpose) and valgrind cover leaks instead.
if [[ "${SG_SANITIZE:-}" == *address* ]]; then
  sg_wrapdir="${BATS_FILE_TMPDIR:-${BATS_TEST_TMPDIR:-/tmp}}/sanwrap"
  mkdir -p "$sg_wrapdir"
  for sg_i in python lua; do
    if [ "$sg_i" = python ]; then sg_real=$SG_PYTHON; else sg_real=$SG_LUA; fi
    [[ "$sg_real" == "$sg_wrapdir"/* ]] && continue
    printf '#!/bin/sh\nLD_PRELOAD="%s" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" exec "%s" "$@"\n' \
      "$(${CC:-gcc} -print-file-name=libasan.so)" "$(command -v "$sg_real")" > "$sg_wrapdir/$sg_i"
    chmod +x "$sg_wrapdir/$sg_i"
  done
  SG_PYTHON="$sg_wrapdir/python" SG_LUA="$sg_wrapdir/lua"
fi

# skip_under_asan: for RSS measurements, meaningless under ASan.
skip_under_asan() {
  [[ "${SG_SANITIZE:-}" != *address* ]] || skip "n/a under ASan: RSS growth is not a leak signal (quarantine)"
}

# Python prelude: the module, the store path, a Store opened on it.
SG_PY_PRELUDE='import os, sys, json, time, sessgate
STORE = os.environ["STORE"]
'

# Lua prelude: the module and the store path.
SG_LUA_PRELUDE='local sg = require "sessgate"
local STORE = os.getenv("STORE")
'

setup_store() {
  STORE=$(make_store "${1:-sessions}")
  export STORE
}

# unreachable_store: a store that cannot be opened, on this pass's backend:
# a file in a missing directory (GDBM), a socket in a missing directory
# that no server listens on (Redis).
unreachable_store() {
  if on_redis; then
    printf 'redis+unix:%s/missing/redis.sock?prefix=t:\n' "$BATS_TEST_TMPDIR"
  else
    printf '%s.d/missing/sessions.db\n' "$STORE"
  fi
}

require_bindings() {
  [ -f "$SG_BUILDDIR/bindings/lua/sessgate_core.so" ] ||
    fail "the Lua module is not built (make bindings)"
  compgen -G "$SG_BUILDDIR/bindings/python/sessgate/_sessgate_core*.so" >/dev/null ||
    fail "the Python module is not built (make bindings)"
}

py() { "$SG_PYTHON" -c "$SG_PY_PRELUDE$1" "${@:2}"; }
lua_run() { "$SG_LUA" -e "$SG_LUA_PRELUDE$1" "${@:2}"; }
