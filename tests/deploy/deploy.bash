# tests/deploy/deploy.bash - users, groups and directories for the deploy
# suites, which run every part as the user a real host runs it as.
#
# Only what must runs as root here: creating and removing the test's system
# users, nginx's master (binding, then workers as www-data), and the
# gateway's start when it drops privileges itself (--user).  Everything else
# goes through `as USER CMD...` (setpriv: real/effective/saved uid and gid,
# the user's supplementary groups, no_new_privs).
#
# The users' names carry a per-file id, so two runs on one machine (CI's
# two passes, a developer beside the lead) never share or delete each
# other's users:
#   $DU_GW   the gateway's user        (groups: $DG_STORE)
#   $DU_APP  the web application's user (groups: $DG_STORE)
#   $DU_CTL  the administrator's user   (groups: $DG_STORE), runs sessgatectl
#   $DG_STORE  the group that shares the store
# www-data (nginx's workers) is Debian's and is never changed.
#
#   deploy_require_root     skip (n/a) unless root: users cannot be made otherwise
#   deploy_users_create     make the users and group (setup_file)
#   deploy_users_remove     remove them again (teardown_file); idempotent
#   deploy_dir              a fresh 0755 directory others can traverse: $DDIR
#   deploy_stage            `make install DESTDIR=$DDIR/root prefix=/usr`: the
#                           programs and modules where other users can read them
#   as USER CMD...          run CMD as USER (with USER's groups)
#   as_prefix USER          AS=(that prefix), for start_bg
#   file_stat PATH...       "owner:group mode name" per file, for assertions

deploy_require_root() {
  [ "$(id -u)" = 0 ] ||
    skip "n/a when not root: the deploy suite creates system users (CI runs as root)"
  require_tool setpriv useradd userdel groupadd groupdel
}

deploy_ids() {
  # Short, the same in every test of this file's run, unique to it (from
  # the run's tmpdir name, which mktemp made unique).
  local id
  id=$(printf '%s' "$BATS_FILE_TMPDIR" | cksum | awk '{ printf "%06x", $1 % 16777216 }')
  DG_STORE=sgst$id DU_GW=sggw$id DU_APP=sgap$id DU_CTL=sgct$id
  export DG_STORE DU_GW DU_APP DU_CTL
}

deploy_users_create() {
  deploy_ids
  deploy_users_remove
  groupadd --system "$DG_STORE"
  local u
  for u in "$DU_GW" "$DU_APP" "$DU_CTL"; do
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group --groups "$DG_STORE" "$u"
  done
  printf '%s\n' "$DG_STORE" "$DU_GW" "$DU_APP" "$DU_CTL" > "$BATS_FILE_TMPDIR/deploy.users"
}

deploy_users_remove() {
  local u p
  for u in "$DU_GW" "$DU_APP" "$DU_CTL"; do
    if id "$u" >/dev/null 2>&1; then
      # A process of this run's own user that a test left behind (stop_all
      # stops what start_bg recorded; this is the safety net): by PID.
      for p in $(pgrep -u "$u"); do kill -KILL "$p" 2>/dev/null; done
      # (a process of the user still running, stopped by PID in teardown
      # normally, would make plain userdel fail: -f then)
      userdel "$u" 2>/dev/null || userdel -f "$u" 2>/dev/null || true
    fi
    getent group "$u" >/dev/null && groupdel "$u" 2>/dev/null
  done
  if getent group "$DG_STORE" >/dev/null; then groupdel "$DG_STORE" || true; fi
}

deploy_dir() {
  DDIR=$(mktemp -d "${TMPDIR:-/tmp}/sessgate-deploy.XXXXXX")
  chmod 0755 "$DDIR"
  echo "$DDIR" >> "$BATS_FILE_TMPDIR/deploy.dirs"
  export DDIR
}

deploy_dirs_remove() {
  local d
  [ -f "$BATS_FILE_TMPDIR/deploy.dirs" ] || return 0
  while read -r d; do
    case $d in */sessgate-deploy.*) rm -rf "$d" ;; esac
  done < "$BATS_FILE_TMPDIR/deploy.dirs"
  rm -f "$BATS_FILE_TMPDIR/deploy.dirs"
}

deploy_stage() {
  make -s -C "$SG_BUILDDIR" install prefix=/usr DESTDIR="$DDIR/root" \
    > "$DDIR/install.log" 2>&1 || { cat "$DDIR/install.log"; return 1; }
  STAGE_SBIN=$DDIR/root/usr/sbin STAGE_BIN=$DDIR/root/usr/bin
  STAGE_PY=$DDIR/root/usr/lib/python3/dist-packages
  export STAGE_SBIN STAGE_BIN STAGE_PY
}

# as_prefix USER: AS=(the command prefix that runs a command as USER).  For
# start_bg, which must get the program itself (its PID is what stop_all
# kills): `as_prefix U; start_bg "${AS[@]}" CMD...` (setpriv and env exec).
as_prefix() {
  AS=(setpriv --reuid="$1" --regid="$(id -gn "$1")" --init-groups --no-new-privs
      --reset-env -- env HOME=/nonexistent)
}

as() {
  local u=$1
  shift
  as_prefix "$u"
  "${AS[@]}" "$@"
}

file_stat() { stat -c '%U:%G %a %n' "$@"; }

# ------------------------------------------------------------------ the flow
# The README's "Deploying on Debian" walk-through, run for real, once from
# the build tree (a staged `make install`) and once from the installed .debs.
# The caller sets:
#   F_UNITS   directory of the installed units (sessgate-auth.socket/.service)
#   F_SHARE   PREFIX/share/sessgate (nginx snippets, examples)
#   F_PY      PYTHONPATH for the installed module ("" when on the default path)
#   F_LUA_PATH F_LUA_CPATH  the same for the Lua module
#   F_SVC_USER F_SVC_GROUP  who the units' User=/Group=/SocketUser= "sessgate" is here
#   F_STATE   the store directory (/var/lib/sessgate on a host)
#   F_RUN     the socket directory (/run/sessgate on a host)
# What a host has and a test cannot use is substituted, nothing else:
# /run/sessgate -> $F_RUN (and /var/lib/sessgate -> $F_STATE for the build
# tree), nginx's "listen 80" -> a free port on 127.0.0.1, the app's port
# 8000 -> a free port.

# Under make SANITIZE=address,... the staged Python and Lua modules carry
# ASan, which must be loaded first: PYENV holds the env words the
# interpreters need.
PYENV=()
if [[ "${SG_SANITIZE:-}" == *address* ]]; then
  PYENV=(LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0)
fi

# unit_get FILE KEY: the last KEY= value in a unit file
unit_get() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# map_user NAME: the units say "sessgate"; here that is $F_SVC_USER/GROUP
map_user() { [ "$1" = sessgate ] && echo "$F_SVC_USER" || echo "$1"; }
map_group() { [ "$1" = sessgate ] && echo "$F_SVC_GROUP" || echo "$1"; }

# flow_gateway: do what systemd does for sessgate-auth.socket + .service:
# bind the socket (DirectoryMode, SocketUser/Group/Mode) as root, start the
# service's ExecStart (its Environment= default for SESSGATE_AUTH_OPTS) with
# UMask=, as User=/Group= with NoNewPrivileges, on the first connection.
flow_gateway() {
  local svc=$F_UNITS/sessgate-auth.service sock_unit=$F_UNITS/sessgate-auth.socket
  local exec opts listen user group umask
  exec=$(unit_get "$svc" ExecStart)
  opts=$(sed -n 's/^Environment="SESSGATE_AUTH_OPTS=\(.*\)"$/\1/p' "$svc")
  exec=${exec//\$SESSGATE_AUTH_OPTS/$opts}
  exec=${exec//\/var\/lib\/sessgate/$F_STATE}
  listen=$(unit_get "$sock_unit" ListenStream)
  F_SOCK=${listen/\/run\/sessgate/$F_RUN}
  user=$(map_user "$(unit_get "$svc" User)")
  group=$(map_group "$(unit_get "$svc" Group)")
  umask=$(unit_get "$svc" UMask)
  install -d -m "$(unit_get "$sock_unit" DirectoryMode)" "$F_RUN"
  echo "gateway: $exec (as $user:$group, umask $umask) on $F_SOCK" >> "$DDIR/flow.log"
  # shellcheck disable=SC2086 # ExecStart is split into words, as systemd does
  start_bg systemd-socket-activate -l "$F_SOCK" \
    setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- \
    sh -c 'umask "$0"; exec "$@"' "$umask" $exec 2>>"$DDIR/gateway.log" > "$DDIR/gateway.pid"
  wait_for_socket "$F_SOCK" 5
  chown "$(map_user "$(unit_get "$sock_unit" SocketUser)"):$(map_group "$(unit_get "$sock_unit" SocketGroup)")" "$F_SOCK"
  chmod "$(unit_get "$sock_unit" SocketMode)" "$F_SOCK"
}

# flow_app: the example WSGI app as the app user, on 127.0.0.1:$F_APP_PORT
flow_app() {
  F_APP_PORT=$(free_port)
  as_prefix "$DU_APP"
  start_bg "${AS[@]}" ${F_PY:+PYTHONPATH="$F_PY"} "${PYENV[@]}" /usr/bin/python3 "$F_SHARE/examples/wsgi_counter.py" \
    --serve "$F_APP_PORT" --store "$F_STATE/sessions.db" --group \
    2>>"$DDIR/app.log" > /dev/null
  wait_for_port "$F_APP_PORT" 10
}

# flow_nginx: the shipped site config in an nginx whose workers are www-data
flow_nginx() {
  local n=$DDIR/nginx
  F_PORT=$(free_port)
  mkdir -p "$n/tmp"
  chown www-data "$n/tmp"
  sed -e "s|listen 80;|listen 127.0.0.1:$F_PORT;|" \
      -e "s|unix:/run/sessgate/|unix:$F_RUN/|" \
      -e "s|/usr/share/sessgate/nginx/|$F_SHARE/nginx/|" \
      -e "s|127.0.0.1:8000|127.0.0.1:$F_APP_PORT|" \
      "$F_SHARE/examples/nginx-site.conf" > "$n/site.conf"
  cat > "$n/nginx.conf" <<NGX
user www-data;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 64; }
http {
    access_log $n/access.log;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    include $n/site.conf;
}
NGX
  start_bg nginx -p "$n/" -e "$n/error.log" -c "$n/nginx.conf" -g 'daemon off;' \
    2>>"$n/error.log" > /dev/null
  wait_for_port "$F_PORT" 10
}

# get PATH: one request through nginx with the test's cookie jar; prints
# "CODE BODY"
get() {
  local body
  body=$(curl -s -o - -w ' %{http_code}' -b "$DDIR/jar" -c "$DDIR/jar" \
    "http://127.0.0.1:$F_PORT$1")
  printf '%s %s\n' "${body##* }" "${body% *}"
}

# flow_login_count_logout USER: the walk-through's browser part
flow_login_count_logout() {
  rm -f "$DDIR/jar"
  run get /app/count
  assert_output --regexp '^401 '
  run get "/account/login?user=$1"
  assert_output "200 logged in as $1"
  run get /app/count
  assert_output "200 n=1 user=$1"
  run get /app/count
  assert_output "200 n=2 user=$1"
  run as "$DU_CTL" "$F_CTL" --store "$F_STATE/sessions.db" --group count --user "$1"
  assert_output "1"
  run get /account/logout
  assert_output "200 logged out"
  run get /app/count
  assert_output --regexp '^401 '
}

# store_files: "owner:group mode name" of every store file, sorted
store_files() { (cd "$F_STATE" && stat -c '%U:%G %a %n' sessions.db*) | sort -k3; }

# flow_crash_rebuild: a Python writer of the app user killed with SIGKILL
# in the middle of its writes; the store is then rebuilt by the admin user
# (sessgatectl check --repair) and once more by root.  Every file keeps its
# group and mode; a rebuild by a non-root user makes the files it replaced
# its own (no one but root can give a file away), root's rebuild changes no
# owner; every user can still read and write.
flow_crash_rebuild() {
  local before after pid i
  before=$(store_files)
  as_prefix "$DU_APP"
  start_bg "${AS[@]}" ${F_PY:+PYTHONPATH="$F_PY"} "${PYENV[@]}" /usr/bin/python3 -c '
import itertools, sys, sessgate
st = sessgate.Store(sys.argv[1], group=True)
print("writing", flush=True)
for i in itertools.count():
    st.create(user="w%d" % (i % 7), data={"i": i, "pad": "x" * 3000})
' "$F_STATE/sessions.db" > "$DDIR/writer.out" 2>"$DDIR/writer.err"
  pid=$(tail -n 1 "$(sg_pidfile)")
  for i in $(seq 100); do grep -q writing "$DDIR/writer.out" && break; sleep 0.05; done
  sleep "0.$((RANDOM % 4 + 2))"
  kill -0 "$pid" || fail "the writer stopped by itself: $(cat "$DDIR/writer.err")"
  kill -KILL "$pid"
  run as "$DU_CTL" "$F_CTL" --store "$F_STATE/sessions.db" --group check --repair
  assert_success
  after=$(store_files)
  printf 'before the crash:\n%s\nafter the rebuild by %s:\n%s\n' "$before" "$DU_CTL" "$after" >> "$DDIR/flow.log"
  (cd "$F_STATE" && ls -l) > "$DDIR/ls-after-rebuild"
  # group and mode of every file as before (the new ones: the store's)
  while read -r og mode name; do
    [ "${og#*:}" = "$F_SVC_GROUP" ] || fail "$name: group ${og#*:}, not $F_SVC_GROUP"
    [ "$mode" = 660 ] || fail "$name: mode $mode, not 660"
  done <<<"$after"
  # root's rebuild keeps every owner (no root-owned file appears)
  before=$(store_files)
  "$F_CTL" --store "$F_STATE/sessions.db" check --repair > /dev/null
  after=$(store_files)
  [ "$before" = "$after" ] || fail "root's check --repair changed: $before -> $after"
  # every user still reads and writes
  run as "$DU_CTL" "$F_CTL" --store "$F_STATE/sessions.db" create --user admin-check
  assert_success
  run as "$F_SVC_USER" "$F_CTL" --store "$F_STATE/sessions.db" create --user gw-check
  assert_success
  run as "$DU_APP" ${F_PY:+PYTHONPATH="$F_PY"} "${PYENV[@]}" /usr/bin/python3 -c '
import sys, sessgate
st = sessgate.Store(sys.argv[1], group=True)
s = st.create(user="app-check"); print(st.get(s.id).user, st.count(user="admin-check"))
' "$F_STATE/sessions.db"
  assert_output "app-check 1"
  # and a Lua app, as the app user too
  cat > "$DDIR/check.lua" <<'LUA'
local sg = require "sessgate"
local st = assert(sg.open(arg[1], {group = true}))
local s = assert(st:create{user = "lua-check"})
print(assert(st:get(s.id)).user .. " " .. st:count("app-check"))
LUA
  chmod 644 "$DDIR/check.lua"
  run as "$DU_APP" ${F_LUA_PATH:+LUA_PATH="$F_LUA_PATH"} ${F_LUA_CPATH:+LUA_CPATH="$F_LUA_CPATH"} \
    "${PYENV[@]}" lua5.4 "$DDIR/check.lua" "$F_STATE/sessions.db"
  assert_output "lua-check 1"
  flow_login_count_logout bob
}

# flow_sanitizer_clean: no sanitizer report in the gateway's log (under
# make SANITIZE=address,undefined check); prints it and fails otherwise
flow_sanitizer_clean() {
  [ -n "${DDIR:-}" ] && [ -f "$DDIR/gateway.log" ] || return 0
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$DDIR/gateway.log"; then
    echo "sanitizer report in the gateway's log:"
    head -n 40 "$DDIR/gateway.log"
    return 1
  fi
}

# flow_logs: the tail of every log of the flow (for a failed test)
flow_logs() {
  local f
  [ -n "${DDIR:-}" ] || return 0
  for f in "$DDIR"/flow.log "$DDIR"/gateway.log "$DDIR"/app.log "$DDIR"/nginx/error.log "$DDIR"/writer.err; do
    [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
  done
  return 0
}
