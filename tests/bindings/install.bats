#!/usr/bin/env bats
# tests/bindings/install.bats - `make install DESTDIR=...` puts the Python
# package and the Lua module where the interpreters look without any
# setting, complete (generated and hand-written parts), and `make
# uninstall` removes them again.

load ../helpers/common
load bindings

setup_file() {
  export DEST="$BATS_FILE_TMPDIR/dest"
}

setup() {
  require_bindings
  local d
  for d in sessgatectl.1 libsessgate.3 sessgate.8; do
    [ -f "$SG_SRCDIR/docs/$d" ] || skip "docs/$d is not written yet (make install needs it)"
  done
}

# mk PREFIX TARGET: make TARGET into $DEST/PREFIX-named tree.
mk() {
  make -s -C "$SG_BUILDDIR" "$2" prefix="$1" DESTDIR="$DEST" >"$BATS_TEST_TMPDIR/make.log" 2>&1 ||
    { cat "$BATS_TEST_TMPDIR/make.log"; return 1; }
}

@test "make install (prefix /usr/local) puts the bindings on the interpreters' default paths" {
  mk /usr/local install
  pydir=$("$SG_PYTHON" -c 'import sys; print("/usr/local/lib/python%d.%d/dist-packages" % sys.version_info[:2])')
  for f in __init__.py errors.py wsgi.py sessgate_core.py py.typed _sessgate_core.pyi; do
    [ -f "$DEST$pydir/sessgate/$f" ] || fail "missing $pydir/sessgate/$f"
  done
  compgen -G "$DEST$pydir/sessgate/_sessgate_core*.so" >/dev/null
  [ -f "$DEST/usr/local/lib/lua/5.4/sessgate_core.so" ]
  [ -f "$DEST/usr/local/share/lua/5.4/sessgate.lua" ]
  # Those directories are where the interpreters look by default.
  run "$SG_PYTHON" -c 'import sys; print("\n".join(sys.path))'
  assert_line "$pydir"
  run "$SG_LUA" -e 'print(package.cpath); print(package.path)'
  assert_output --partial "/usr/local/lib/lua/5.4/?.so"
  assert_output --partial "/usr/local/share/lua/5.4/?.lua"
  # And the installed copies work on their own (away from the build tree).
  setup_store
  cd "$BATS_TEST_TMPDIR"
  run env -u PYTHONPATH PYTHONPATH="$DEST$pydir" "$SG_PYTHON" -c \
    'import os, sessgate, sessgate.wsgi; print(sessgate.__file__.startswith(os.environ["PYTHONPATH"]), sessgate.Store(os.environ["STORE"]).create().is_new)'
  assert_success
  assert_output "True True"
  run env LUA_PATH="$DEST/usr/local/share/lua/5.4/?.lua" LUA_CPATH="$DEST/usr/local/lib/lua/5.4/?.so" \
    "$SG_LUA" -e 'local sg = require "sessgate"; print(assert(sg.open(os.getenv("STORE"))):count())'
  assert_success
  assert_output "1"
}

@test "make install puts the LuaJIT module where LuaJIT and OpenResty look" {
  [ -f "$SG_BUILDDIR/bindings/lua/luajit/sessgate_core.so" ] ||
    skip "the LuaJIT module is not built (libluajit2-5.1-dev)"
  mk /usr/local install
  [ -f "$DEST/usr/local/lib/lua/5.1/sessgate_core.so" ]
  [ -f "$DEST/usr/local/share/lua/5.1/sessgate.lua" ]
  run luajit -e 'print(package.cpath); print(package.path)'
  assert_output --partial "/usr/local/lib/lua/5.1/?.so"
  assert_output --partial "/usr/local/share/lua/5.1/?.lua"
  setup_store
  cd "$BATS_TEST_TMPDIR"
  local pre=()       # an ASan-built module needs the ASan runtime first
  [[ "${SG_SANITIZE:-}" != *address* ]] ||
    pre=(LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0)
  run env "${pre[@]}" LUA_PATH="$DEST/usr/local/share/lua/5.1/?.lua" LUA_CPATH="$DEST/usr/local/lib/lua/5.1/?.so" \
    luajit -e 'local sg = require "sessgate"; local st = assert(sg.open(os.getenv("STORE"))); assert(st:create{}); print(st:count())'
  assert_success
  assert_output "1"
  mk /usr/local uninstall
  [ ! -e "$DEST/usr/local/lib/lua/5.1/sessgate_core.so" ]
  [ ! -e "$DEST/usr/local/share/lua/5.1/sessgate.lua" ]
}

@test "make install with prefix /usr uses Debian's dist-packages and lua directories; uninstall removes them" {
  mk /usr install
  [ -f "$DEST/usr/lib/python3/dist-packages/sessgate/__init__.py" ]
  [ -f "$DEST/usr/lib/lua/5.4/sessgate_core.so" ]
  [ -f "$DEST/usr/share/lua/5.4/sessgate.lua" ]
  mk /usr uninstall
  [ ! -e "$DEST/usr/lib/python3/dist-packages/sessgate" ]
  [ ! -e "$DEST/usr/lib/lua/5.4/sessgate_core.so" ]
  [ ! -e "$DEST/usr/share/lua/5.4/sessgate.lua" ]
}
