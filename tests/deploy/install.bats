#!/usr/bin/env bats
# tests/deploy/install.bats - `make install` as a distribution would: the
# prefix given to make install is what sessgate.pc and the units say, the
# nginx snippets and units land in their documented places, the live
# install runs ldconfig so a program linked against libsessgate starts at
# once, and `make uninstall` leaves nothing behind, directories included.
# Every unit shipped passes `systemd-analyze verify` (no systemd as PID 1
# needed: it loads the files and checks every setting and command).
load ../helpers/common
load deploy

setup() {
  DEST=$BATS_TEST_TMPDIR/dest
}

teardown() {
  stop_all
}

# mk TARGET VAR=VALUE...: make TARGET in the build tree, quietly.
mk() {
  make -s -C "$SG_BUILDDIR" "$@" >"$BATS_TEST_TMPDIR/make.log" 2>&1 ||
    { cat "$BATS_TEST_TMPDIR/make.log"; return 1; }
}

@test "make install prefix=/usr: sessgate.pc, units and snippets carry /usr; uninstall removes every file and directory" {
  mk install prefix=/usr DESTDIR="$DEST"
  run grep -E '^(prefix|libdir|includedir)=' "$DEST/usr/lib/pkgconfig/sessgate.pc"
  assert_line "prefix=/usr"
  assert_line "libdir=/usr/lib"
  assert_line "includedir=/usr/include"
  run grep -h '^ExecStart=' "$DEST"/usr/lib/systemd/system/sessgate-*.service
  assert_line --partial "ExecStart=/usr/sbin/sessgate --mode auth"
  assert_line --partial "ExecStart=/usr/sbin/sessgate --mode cgi"
  assert_line --partial "ExecStart=/usr/bin/sessgatectl --store /var/lib/sessgate/sessions.db --group purge"
  for f in lib/systemd/system/sessgate-auth.socket lib/systemd/system/sessgate-cgi.socket \
           lib/systemd/system/sessgate-purge.timer lib/sysusers.d/sessgate.conf \
           lib/tmpfiles.d/sessgate.conf share/sessgate/nginx/sessgate_params \
           share/sessgate/nginx/sessgate_proxy share/sessgate/examples/nginx-site.conf \
           share/sessgate/examples/wsgi_counter.py sbin/sessgate bin/sessgatectl; do
    [ -f "$DEST/usr/$f" ] || fail "missing /usr/$f"
  done
  # the snippets are complete, with no placeholder left
  run grep -l '@[A-Z_]*@' "$DEST"/usr/share/sessgate/nginx/* "$DEST"/usr/lib/systemd/system/*
  assert_failure
  # the site example includes the snippet where it is installed
  grep -q 'include /usr/share/sessgate/nginx/sessgate_proxy;' "$DEST/usr/share/sessgate/examples/nginx-site.conf"
  mk uninstall prefix=/usr DESTDIR="$DEST"
  run find "$DEST" -mindepth 1
  assert_output ""
}

@test "the .pc file follows the prefix given to make install, not configure's" {
  mk install prefix=/opt/sg DESTDIR="$DEST"
  run env PKG_CONFIG_SYSROOT_DIR= PKG_CONFIG_PATH="$DEST/opt/sg/lib/pkgconfig" pkg-config --variable=prefix sessgate
  assert_output "/opt/sg"
  run env PKG_CONFIG_PATH="$DEST/opt/sg/lib/pkgconfig" pkg-config --libs --cflags sessgate
  assert_output --partial "-I/opt/sg/include"
  assert_output --partial "-L/opt/sg/lib"
  mk uninstall prefix=/opt/sg DESTDIR="$DEST"
  run find "$DEST" -mindepth 1
  assert_output ""
}

@test "uninstall keeps directories that existed before install and files that are not ours" {
  mkdir -p "$DEST/usr/share/man/man1" "$DEST/usr/lib/systemd/system"
  echo other > "$DEST/usr/lib/systemd/system/other.service"
  mk install prefix=/usr DESTDIR="$DEST"
  mk uninstall prefix=/usr DESTDIR="$DEST"
  run bash -c 'find "$1" -mindepth 1 | LC_ALL=C sort' _ "$DEST"
  assert_output - <<EOF
$DEST/usr
$DEST/usr/lib
$DEST/usr/lib/systemd
$DEST/usr/lib/systemd/system
$DEST/usr/lib/systemd/system/other.service
$DEST/usr/share
$DEST/usr/share/man
$DEST/usr/share/man/man1
EOF
}

@test "every shipped unit passes systemd-analyze verify (commands and man pages resolved)" {
  require_tool systemd-analyze
  mk install prefix=/usr DESTDIR="$DEST"
  units=$BATS_TEST_TMPDIR/units
  mkdir "$units"
  # The commands as installed, found under DESTDIR (verify checks they exist).
  for f in "$DEST"/usr/lib/systemd/system/*; do
    sed -e "s|=/usr/sbin/sessgate |=$DEST/usr/sbin/sessgate |" \
        -e "s|=/usr/bin/sessgatectl |=$DEST/usr/bin/sessgatectl |" "$f" > "$units/${f##*/}"
  done
  [ "$(ls "$units" | wc -l)" -eq 6 ]
  cd "$units"
  run env MANPATH="$DEST/usr/share/man" systemd-analyze verify ./*.socket ./*.service ./*.timer
  assert_success
  assert_output ""     # warnings (an unknown key, a bad value) fail too
}

@test "make install to the live system runs ldconfig: the README's C example runs at once; uninstall leaves /usr/local as it was" {
  [ "$(id -u)" = 0 ] || skip "n/a when not root: installs to /usr/local"
  [[ "${SG_SANITIZE:-}" != *address* ]] ||
    skip "n/a under ASan: an instrumented libsessgate.so cannot load into a plain program (the plain make check runs it)"
  require_tool cc pkg-config flock
  # one live install at a time on this machine (CI's two passes, developers)
  exec 8>"${TMPDIR:-/tmp}/sessgate-live-install.lock"
  flock -w 120 8
  [ ! -e /usr/local/lib/libsessgate.so.0 ] || fail "libsessgate is already installed in /usr/local: not touching it"
  find /usr/local | sort > "$BATS_TEST_TMPDIR/before"
  mk install
  grep -q ldconfig "$BATS_TEST_TMPDIR/make.log"
  cat > "$BATS_TEST_TMPDIR/ex.c" <<'EOF'
#include <stdio.h>
#include <sessgate.h>
int main(int argc, char **argv)
{
    sg_store *st;
    sg_error err;
    if (sg_store_open(argv[1], NULL, &st, &err) != SG_OK) {
        fprintf(stderr, "%s\n", err.text);
        return 1;
    }
    printf("libsessgate %s\n", sg_version());
    sg_store_close(st);
    return argc > 2;
}
EOF
  rc=0
  cc -o "$BATS_TEST_TMPDIR/ex" "$BATS_TEST_TMPDIR/ex.c" $(pkg-config --cflags --libs sessgate) || rc=$?
  [ $rc -eq 0 ] && { run env -u LD_LIBRARY_PATH "$BATS_TEST_TMPDIR/ex" "$BATS_TEST_TMPDIR/s.db"; }
  out=$output st=$status
  mk uninstall
  find /usr/local | sort > "$BATS_TEST_TMPDIR/after"
  flock -u 8
  [ $rc -eq 0 ] || fail "the example did not build against the installed library"
  [ "$st" -eq 0 ] || fail "the example did not run: $out"
  [[ $out == "libsessgate "* ]]
  run diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
  assert_success
}
