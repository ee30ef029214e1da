#!/usr/bin/env bats
# tests/bindings/pip.bats - the Python package installs with pip, offline,
# the way a Python developer on Debian 12 installs it: into a virtualenv
# made by Debian's python3 -m venv, from bindings/python (pyproject.toml,
# setup.py), with nothing but Debian packages (the setuptools and wheel
# wheels of python3-setuptools-whl / python3-wheel-whl, swig, the -dev
# headers).  pip wheel builds a wheel that installs where there is no
# source tree; the installed package is typed (py.typed, stubs) and an
# example app passes mypy --strict against it.

load ../helpers/common
load bindings

PY=/usr/bin/python3
WHEELS=/usr/share/python-wheels

setup_file() {
  [ -x "$PY" ] && "$PY" -c 'import ensurepip' 2>/dev/null ||
    skip "python3-venv is not installed"
  compgen -G "$WHEELS/wheel-*.whl" >/dev/null || skip "python3-wheel-whl is not installed"
  # Sealed pip: no user or site config, no index, no cache of ours.
  export PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
  unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL
  export SESSGATE_BUILD_BASE="$BATS_FILE_TMPDIR/build"
  VENV="$BATS_FILE_TMPDIR/venv"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "$SG_SRCDIR/bindings/python" \
    >"$BATS_FILE_TMPDIR/pip.log" 2>&1 || { cat "$BATS_FILE_TMPDIR/pip.log" >&3; return 1; }
  export VENV
}

setup() {
  export PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1
  unset PIP_FIND_LINKS PYTHONPATH
  setup_store
  cd "$BATS_TEST_TMPDIR"
}

@test "pip installs the package into a fresh venv offline, and import sessgate works there" {
  run -0 "$VENV/bin/python" -c '
import os, sys, sessgate, sessgate.wsgi
assert sys.prefix != sys.base_prefix, "not in a venv"
print(sessgate.__file__.startswith(sys.prefix), sessgate.version())
s = sessgate.Store(os.environ["STORE"]).create(user="alice", data={"k": [1]})
print(s.id)'
  assert_line -n 0 "True $(sessgatectl --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' || echo 0.1.0)"
  id=${lines[1]}
  # The same store, read by the C tool: one store for every process.
  run -0 sessgatectl --store "$STORE" get "$id"
  assert_output --partial '"user":"alice"'
  assert_output --partial '"data":{"k":[1]}'
}

@test "the build leaves nothing in the source tree when SESSGATE_BUILD_BASE is set" {
  [ ! -e "$SG_SRCDIR/bindings/python/build" ] || [ -n "$(git -C "$SG_SRCDIR" check-ignore bindings/python/build)" ]
  [ -d "$SESSGATE_BUILD_BASE" ]
  run git -C "$SG_SRCDIR" status --porcelain --ignored -- bindings/python/sessgate.egg-info
  assert_output ''
}

@test "pip wheel builds a wheel that installs and works where there is no source tree" {
  run -0 "$VENV/bin/pip" wheel -q --no-index --find-links "$WHEELS" --no-deps \
    -w "$BATS_TEST_TMPDIR/dist" "$SG_SRCDIR/bindings/python"
  whl=$(compgen -G "$BATS_TEST_TMPDIR/dist/sessgate-*.whl")
  run -0 "$PY" -m zipfile -l "$whl"
  for f in sessgate/__init__.py sessgate/wsgi.py sessgate/sessgate_core.py \
           sessgate/py.typed sessgate/_sessgate_core.pyi sessgate/_sessgate_core.cpython; do
    assert_output --partial "$f"
  done
  # A second venv, the wheel only: the extension carries libsessgate.
  "$PY" -m venv "$BATS_TEST_TMPDIR/v2"
  run -0 "$BATS_TEST_TMPDIR/v2/bin/pip" install -q --no-index "$whl"
  run -0 "$BATS_TEST_TMPDIR/v2/bin/python" -c '
import os, sessgate
st = sessgate.Store(os.environ["STORE"])
print(st.get(st.create(data={"a": 1}).id).data)'
  assert_output "{'a': 1}"
}

@test "without build isolation, a venv with system site packages builds it too" {
  "$PY" -m venv --system-site-packages "$BATS_TEST_TMPDIR/v3"
  run -0 "$BATS_TEST_TMPDIR/v3/bin/pip" install -q --no-index --no-build-isolation \
    "$SG_SRCDIR/bindings/python"
  run -0 "$BATS_TEST_TMPDIR/v3/bin/python" -c 'import sys, sessgate; print(sessgate.__file__.startswith(sys.prefix))'
  assert_output True
}

@test "mypy --strict passes on the typed example app against the installed package" {
  command -v mypy >/dev/null || skip "mypy is not installed (Debian: mypy)"
  run -0 mypy --strict --no-incremental --cache-dir=/dev/null \
    --python-executable "$VENV/bin/python" "$SG_SRCDIR/examples/apps/typed_app.py"
  assert_output --partial "Success: no issues found"
}

@test "mypy sees the package's types: a misuse of the API is reported" {
  command -v mypy >/dev/null || skip "mypy is not installed (Debian: mypy)"
  cat > bad.py <<'EOF'
import sessgate
store = sessgate.Store("x.db")
s: sessgate.Session = store.get("id")      # Optional[Session]
n: int = s.user                            # Optional[str]
store.create(user=5)                       # user is Optional[str]
EOF
  run -1 mypy --strict --no-incremental --cache-dir=/dev/null \
    --python-executable "$VENV/bin/python" bad.py
  assert_output --partial 'bad.py:3: error: Incompatible types in assignment'
  assert_output --partial 'bad.py:4: error: Incompatible types in assignment'
  assert_output --partial 'bad.py:5: error: Argument "user"'
}

@test "mypy --strict passes on the package itself" {
  command -v mypy >/dev/null || skip "mypy is not installed (Debian: mypy)"
  run -0 mypy --config-file "$SG_SRCDIR/bindings/python/pyproject.toml" --no-incremental \
    --cache-dir=/dev/null --python-executable "$VENV/bin/python" -p sessgate
  assert_output --partial "Success: no issues found"
}

@test "a python3 other than Debian's (pyenv, self-built) builds and imports it too" {
  local other=${SG_OTHER_PYTHON:-}
  if [ -z "$other" ]; then
    for other in /root/.pyenv/versions/*/bin/python3 /usr/local/bin/python3 /opt/python*/bin/python3; do
      [ -x "$other" ] && [ "$(readlink -f "$other")" != "$(readlink -f "$PY")" ] && break
      other=
    done
  fi
  [ -n "$other" ] || skip "n/a: no python3 but Debian's on this machine (set SG_OTHER_PYTHON)"
  "$other" -c 'import ensurepip, sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' ||
    skip "n/a: $other has no venv support or no Python.h"
  "$other" -m venv "$BATS_TEST_TMPDIR/vo"
  # Debian's setuptools wheel reads Debian-only install options; setup.py
  # defaults them, or this build fails with AttributeError: install_layout.
  run -0 "$BATS_TEST_TMPDIR/vo/bin/pip" install -q --no-index --find-links "$WHEELS" \
    "$SG_SRCDIR/bindings/python"
  run -0 "$BATS_TEST_TMPDIR/vo/bin/python" -c '
import os, sys, sessgate
st = sessgate.Store(os.environ["STORE"])
print(sys.executable != "/usr/bin/python3", st.get(st.create(data={"a": 1}).id).data)'
  assert_output "True {'a': 1}"
}
