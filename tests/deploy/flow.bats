#!/usr/bin/env bats
# tests/deploy/flow.bats - the README's "Deploying on Debian" walk-through
# from this build tree (a staged `make install prefix=/usr`), with every
# part as its own user: nginx's workers as www-data, the gateway as the
# service user (started the way systemd starts the shipped units, through
# systemd-socket-activate), the example WSGI app as an app user in the
# store's group, sessgatectl as an admin user in that group.  Root only
# creates the users, binds the socket and runs nginx's master.
# tests/deploy/deb.bats runs the same flow from the installed .debs.
load ../helpers/common
load deploy

setup_file() {
  [ "$(id -u)" = 0 ] || return 0
  deploy_users_create
}

teardown_file() {
  [ "$(id -u)" = 0 ] || return 0
  deploy_ids
  deploy_users_remove
  deploy_dirs_remove
}

setup() {
  deploy_require_root
  require_tool nginx curl systemd-socket-activate python3
  deploy_ids
  deploy_dir
  deploy_stage
  F_UNITS=$DDIR/root/usr/lib/systemd/system
  F_SHARE=$DDIR/root/usr/share/sessgate
  F_PY=$STAGE_PY
  F_LUA_PATH="$DDIR/root/usr/share/lua/5.4/?.lua" F_LUA_CPATH="$DDIR/root/usr/lib/lua/5.4/?.so"
  F_CTL=$STAGE_BIN/sessgatectl
  F_SVC_USER=$DU_GW F_SVC_GROUP=$DG_STORE
  F_STATE=$DDIR/var/lib/sessgate
  F_RUN=$DDIR/run/sessgate
  # What the package's postinst does (README: after `make install`):
  install -d -o "$F_SVC_USER" -g "$F_SVC_GROUP" -m 2770 "$F_STATE"
  as "$F_SVC_USER" "$F_CTL" --store "$F_STATE/sessions.db" --group purge > /dev/null
  # The units' commands, as installed (with the staged prefix).
  sed -i -e "s|=/usr/sbin/sessgate |=$STAGE_SBIN/sessgate |" \
    -e "s|=/usr/bin/sessgatectl |=$STAGE_BIN/sessgatectl |" "$F_UNITS"/*.service
}

teardown() {
  stop_all
  [ -n "${BATS_TEST_COMPLETED:-}" ] || flow_logs
  flow_sanitizer_clean
}

@test "build tree: nginx (www-data) -> socket-activated gateway (its user) -> WSGI app (app user): login, count, logout" {
  flow_gateway
  flow_app
  flow_nginx
  flow_login_count_logout alice
  # the processes run as the users a host has
  [ "$(ps -o user= -p "$(cat "$DDIR/gateway.pid")")" = "$F_SVC_USER" ]
  run ps -o user= --ppid "$(cat "$DDIR/nginx/nginx.pid")"
  assert_output "www-data"
  run store_files
  assert_line "$F_SVC_USER:$F_SVC_GROUP 660 sessions.db"
}

@test "build tree: a writer killed mid-write, the rebuild by another user: group and mode kept, every user reads and writes" {
  flow_gateway
  flow_app
  flow_nginx
  flow_login_count_logout alice
  flow_crash_rebuild
  sed 's/^/# /' "$DDIR/ls-after-rebuild" >&3
}
