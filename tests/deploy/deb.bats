#!/usr/bin/env bats
# tests/deploy/deb.bats - the Debian packages: `make deb` builds them (out of
# tree, lintian clean), dpkg installs them, and the README's walk-through
# runs against the installed files: /usr/sbin/sessgate started with the
# installed unit's command line and user, /usr/bin/sessgatectl, the Python
# module from /usr/lib/python3/dist-packages, the snippets and site example
# from /usr/share/sessgate, the store the postinst made in /var/lib/sessgate.
# Then the packages are purged and the machine is as before: the suite
# fails rather than touch a machine that already has sessgate installed,
# and it removes the user sessgate only if it created it.
load ../helpers/common
load deploy

PKGS="libsessgate0 libsessgate-dev sessgate python3-sessgate lua-sessgate libnginx-mod-http-sessgate"

deb_installed() { dpkg-query -W -f='${Status}\n' "$@" 2>/dev/null | grep -q 'ok installed'; }

setup_file() {
  [ "$(id -u)" = 0 ] || return 0
  [ -z "${SG_SANITIZE:-}" ] || return 0
  command -v dpkg-buildpackage >/dev/null || return 0
  # One deb pass at a time on this machine: dpkg and the user sessgate are global.
  exec 7>"${TMPDIR:-/tmp}/sessgate-deb-pass.lock"
  flock -w 900 7
  deploy_users_create
  local p
  for p in $PKGS; do
    if deb_installed "$p"; then
      echo "# $p is installed on this machine already: the deb pass does not touch it" >&3
      touch "$BATS_FILE_TMPDIR/preinstalled"
      return 0
    fi
  done
  getent passwd sessgate >/dev/null || touch "$BATS_FILE_TMPDIR/user-is-ours"
  t0=$(date +%s)
  DEB_BUILD_OPTIONS="parallel=2 noautodbgsym" make -s -C "$SG_BUILDDIR" deb DEB_OUT="$BATS_FILE_TMPDIR/debs" > "$BATS_FILE_TMPDIR/deb.log" 2>&1 ||
    { sed 's/^/# /' "$BATS_FILE_TMPDIR/deb.log" >&3; return 1; }
  echo "$(( $(date +%s) - t0 ))" > "$BATS_FILE_TMPDIR/deb.seconds"
  # As the README says: apt-get install ./…deb (dependencies from the archive)
  local debs=()
  for p in $PKGS; do debs+=("$BATS_FILE_TMPDIR/debs/${p}_"*.deb); done
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debs[@]}" > "$BATS_FILE_TMPDIR/dpkg.log" 2>&1 ||
    { sed 's/^/# /' "$BATS_FILE_TMPDIR/dpkg.log" >&3; return 1; }
}

teardown_file() {
  [ "$(id -u)" = 0 ] || return 0
  [ -z "${SG_SANITIZE:-}" ] || return 0
  deploy_ids
  if [ ! -e "$BATS_FILE_TMPDIR/preinstalled" ]; then
    # (normally done by the last test already)
    # shellcheck disable=SC2086
    dpkg --purge $PKGS > /dev/null 2>&1 || true
    if [ -e "$BATS_FILE_TMPDIR/user-is-ours" ]; then
      for p in $(pgrep -u sessgate); do kill -KILL "$p" 2>/dev/null; done
      userdel sessgate 2>/dev/null || true
      getent group sessgate >/dev/null && groupdel sessgate 2>/dev/null || true
    fi
  fi
  deploy_users_remove
  deploy_dirs_remove
}

setup() {
  deploy_require_root
  [ -z "${SG_SANITIZE:-}" ] ||
    skip "n/a under sanitizers: the .debs are built with Debian's flags, not this build's; the plain make check runs this pass"
  require_tool dpkg-buildpackage dh lintian nginx curl systemd-socket-activate
  [ ! -e "$BATS_FILE_TMPDIR/preinstalled" ] || fail "sessgate packages were installed before the suite: remove them first"
  deploy_ids
  deploy_dir
  F_UNITS=/lib/systemd/system
  F_SHARE=/usr/share/sessgate
  F_PY= F_LUA_PATH= F_LUA_CPATH=
  F_CTL=/usr/bin/sessgatectl
  F_SVC_USER=sessgate F_SVC_GROUP=sessgate
  F_STATE=/var/lib/sessgate
  F_RUN=$DDIR/run/sessgate
}

teardown() {
  stop_all
  [ -n "${BATS_TEST_COMPLETED:-}" ] || flow_logs
  flow_sanitizer_clean
}

@test "make deb builds the six packages out of tree, lintian reports no error" {
  run ls "$BATS_FILE_TMPDIR/debs"
  for p in $PKGS; do assert_line --regexp "^${p}_0\.1\.0_.*\.deb$"; done
  run grep '^make deb: lintian:' "$BATS_FILE_TMPDIR/deb.log"
  assert_output --regexp '^make deb: lintian: 0 errors'
  echo "# $output; dpkg-buildpackage + lintian: $(cat "$BATS_FILE_TMPDIR/deb.seconds") s" >&3
  # the source tree stayed clean: no debian/ build products in it
  run find "$SG_SRCDIR/debian" -mindepth 1 -maxdepth 1 \( -name .debhelper -o -name tmp -o -name files -o -name '*.substvars' -o -name sessgate \)
  assert_output ""
}

@test "install: user and group sessgate, /var/lib/sessgate 2770 with the store 0660, the auth socket and the timer enabled" {
  run getent passwd sessgate
  assert_output --regexp '^sessgate:x:[0-9]+:[0-9]+:[^:]*:/var/lib/sessgate:/usr/sbin/nologin$'
  run stat -c '%U:%G %a' /var/lib/sessgate /var/lib/sessgate/sessions.db
  assert_line "sessgate:sessgate 2770"
  assert_line "sessgate:sessgate 660"
  [ -L /etc/systemd/system/sockets.target.wants/sessgate-auth.socket ]
  [ -L /etc/systemd/system/timers.target.wants/sessgate-purge.timer ]
  [ ! -e /etc/systemd/system/sockets.target.wants/sessgate-cgi.socket ]
  [ -x /usr/sbin/sessgate ] && [ -x /usr/bin/sessgatectl ]
  run python3 -c 'import sessgate; print(sessgate.__file__)'
  assert_output "/usr/lib/python3/dist-packages/sessgate/__init__.py"
  run lua5.4 -e 'local sg = require "sessgate"; print(type(sg.open))'
  assert_output "function"
  if command -v luajit >/dev/null; then
    run luajit -e 'local sg = require "sessgate"; print(type(sg.open))'
    assert_output "function"
  fi
  run pkg-config --variable=prefix sessgate
  assert_output "/usr"
}

@test "installed: Debian's nginx loads the module package from modules-available; its worker checks sessions in the installed store" {
  run dpkg-query -W -f='${Depends}' libnginx-mod-http-sessgate
  assert_output --partial "nginx-abi-"
  [ -f /usr/lib/nginx/modules/ngx_http_sessgate_module.so ]
  # Not enabled on install: no nginx on the host loads it unasked.
  run find /etc/nginx/modules-enabled -name '*sessgate*'
  assert_output ""
  usermod -aG sessgate "$DU_APP"     # the worker's user, in the store's group
  local d=$DDIR/ngx port id
  mkdir -p "$d/tmp"
  echo ok > "$d/ok.txt"
  # (a user of its own: the walk-through below counts alice's sessions)
  id=$(/usr/bin/sessgatectl --store /var/lib/sessgate/sessions.db create --user ngxmod)
  port=$(free_port)
  cat > "$d/nginx.conf" <<EOF
include /usr/share/nginx/modules-available/mod-http-sessgate.conf;
user $DU_APP;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
    sessgate_store /var/lib/sessgate/sessions.db;
    server {
        listen 127.0.0.1:$port;
        location = /app {
            sessgate_policy user;
            add_header X-User \$sessgate_user;
            alias $d/ok.txt;
        }
    }
}
EOF
  start_bg nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;' > /dev/null
  wait_for_port "$port" 10 || { cat "$d/error.log"; fail "nginx did not start"; }
  run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/app"
  assert_output 401
  run curl -s -D - -o /dev/null -H "Cookie: sessgate=$id" "http://127.0.0.1:$port/app"
  /usr/bin/sessgatectl --store /var/lib/sessgate/sessions.db delete "$id"
  assert_line --partial "200 OK"
  assert_line --partial "X-User: ngxmod"
  run ps -o user= --ppid "$(cat "$d/nginx.pid")"
  assert_output "$DU_APP"
}

@test "installed units pass systemd-analyze verify as installed" {
  cd /lib/systemd/system
  run systemd-analyze verify sessgate-auth.socket sessgate-auth.service sessgate-cgi.socket \
    sessgate-cgi.service sessgate-purge.service sessgate-purge.timer
  assert_success
  assert_output ""
}

@test "installed: the README walk-through as written: login, count, logout through nginx" {
  # README: "add the users of your web applications to the group sessgate"
  usermod -aG sessgate "$DU_APP"
  usermod -aG sessgate "$DU_CTL"
  flow_gateway
  flow_app
  flow_nginx
  flow_login_count_logout alice
  [ "$(ps -o user= -p "$(cat "$DDIR/gateway.pid")")" = sessgate ]
  grep -q '^gateway: /usr/sbin/sessgate --mode auth --store /var/lib/sessgate/sessions.db' "$DDIR/flow.log"
}

@test "installed: a writer killed mid-write, rebuilt by another user: group and mode kept, every user reads and writes" {
  flow_gateway
  flow_app
  flow_nginx
  flow_crash_rebuild
  sed 's/^/# /' "$DDIR/ls-after-rebuild" >&3
}

@test "purge leaves the machine as before: no files, no store, no unit links" {
  # shellcheck disable=SC2086
  dpkg --purge $PKGS > "$DDIR/purge.log" 2>&1 || fail "$(cat "$DDIR/purge.log")"
  for p in $PKGS; do ! deb_installed "$p" || fail "$p still installed"; done
  [ ! -e /var/lib/sessgate ]
  [ ! -e /usr/share/sessgate ]
  [ ! -e /etc/default/sessgate ]
  run bash -c 'ls /lib/systemd/system/sessgate* /etc/systemd/system/*/sessgate* /usr/lib/python3/dist-packages/sessgate 2>/dev/null'
  assert_output ""
}
