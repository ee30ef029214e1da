# tests/helpers/servers.bash - run the example web-server configs for real.
#
# The server suites (tests/servers/*.bats), `examples/demo` and the gateway
# benchmark all start the SAME configs that examples/ ships, so what the tests
# prove is what a user copies.  This file renders a template (replacing every
# @NAME@ with the value of the shell variable SRV_NAME; a placeholder without
# a value is an error, never an empty string) into a run directory, then
# starts the web server and its helpers (sessgate, fcgiwrap, the echo backend)
# as the current user, listening on 127.0.0.1 or on unix sockets in that run
# directory.  Pid files, logs and temp files stay in it: the system's server
# config and services are never touched.
#
# It needs SG_SRCDIR (and SG_BUILDDIR, SG_PYTHON) and nothing from bats, so the
# demo can source it too.  Every process is recorded in RUNDIR/pids and
# stopped by PID with srv_stop_all.
#
#   srv_init RUNDIR STORE      start a run directory (sets SRV_RUNDIR, SRV_STORE)
#   srv_start nginx|lighttpd|lighttpd_magnet|apache
#                              srv_KIND_stack, retried once if it fails:
#     srv_nginx_stack          gateways + fcgiwrap + echo backend + nginx
#     srv_lighttpd_stack       lighttpd (starting its gateways via bin-path)
#     srv_lighttpd_magnet_stack  echo backend + lighttpd checking sessions
#                              itself (mod_magnet; SRV_MAGNET_USER: drop to it)
#     srv_apache_stack         gateways + echo backend + Apache httpd
#   srv_failed                 print the logs (setup_file: `srv_start x || srv_failed`)
#   srv_stop NAME / srv_stop_all   stop one helper / everything, newest first,
#                              with every process they started (by PID)
#   srv_url PATH               http://127.0.0.1:$SRV_PORT/PATH
: "${SG_SRCDIR:?SG_SRCDIR must name the source tree}"
: "${SG_BUILDDIR:=$SG_SRCDIR}"
: "${SG_PYTHON:=python3}"

SRV_ROOT=$(cd "$SG_SRCDIR" && pwd)
SRV_SESSGATE=$(cd "$SG_BUILDDIR" && pwd)/gateway/sessgate
SRV_APPS=$SRV_ROOT/examples/apps
SRV_LAST_PID=

# srv_init RUNDIR STORE: create the run directory (and its temp dirs, and
# the directory of a GDBM store; a redis:// or redis+unix: URI has none).
srv_init() {
  SRV_RUNDIR=$1
  SRV_STORE=$2
  mkdir -p "$SRV_RUNDIR/tmp"
  case $SRV_STORE in
    redis://*|redis+unix:*) ;;
    *) mkdir -p "$(dirname "$SRV_STORE")" ;;
  esac
  : >> "$SRV_RUNDIR/pids"
  # Root: let nginx workers keep root so they reach the sockets in RUNDIR
  # (a bats tmpdir is 0700); Apache refuses root workers, so it gets the
  # Debian web user, and RUNDIR is opened up for it to traverse.
  if [ "$(id -u)" = 0 ]; then
    SRV_USER_LINE="user root;"
    SRV_APACHE_USER=www-data SRV_APACHE_GROUP=www-data
  else
    SRV_USER_LINE=""
    SRV_APACHE_USER=$(id -un) SRV_APACHE_GROUP=$(id -gn)
  fi
}

# srv_free_port: a TCP port on 127.0.0.1 that nothing listens on right now
# and that this run has not handed out before (several are picked before any
# is bound, and the kernel may offer the same free port twice).
SRV_PORTS_USED=" "
srv_free_port() {
  local p i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    p=$("$SG_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    case $SRV_PORTS_USED in *" $p "*) continue ;; esac
    SRV_PORTS_USED="$SRV_PORTS_USED$p "
    printf '%s\n' "$p"
    return 0
  done
  return 1
}

# srv_failed: why the start failed, for a suite's setup_file: the tail of
# every log in RUNDIR, as TAP comments on fd 3 (bats shows nothing else
# of a failed setup_file) and on stderr.
srv_failed() {
  local f
  for f in "$SRV_RUNDIR"/*.log; do
    [ -s "$f" ] || continue
    echo "--- $f"
    tail -n 15 "$f"
  done | sed 's/^/# /' | tee /dev/stderr >&3 2>/dev/null || true
  return 1
}

# srv_url PATH: the URL of PATH on the running web server.
srv_url() { printf 'http://127.0.0.1:%s/%s\n' "$SRV_PORT" "${1#/}"; }

# srv_render TEMPLATE OUT: copy TEMPLATE to OUT with every @NAME@ replaced by
# $SRV_NAME.  Fails (and removes OUT) when a placeholder has no value.
srv_render() {
  local tpl=$1 out=$2 name var esc
  cp "$tpl" "$out.tmp" || return 1
  for name in $(grep -o '@[A-Z][A-Z0-9_]*@' "$tpl" | sort -u | tr -d @); do
    var=SRV_$name
    if [ -z "${!var+set}" ]; then
      echo "srv_render: $tpl: no value for @$name@ (set $var)" >&2
      rm -f "$out.tmp"
      return 1
    fi
    esc=$(printf '%s' "${!var}" | sed -e 's/[\\|&]/\\&/g')
    sed -i "s|@$name@|$esc|g" "$out.tmp"
  done
  mv "$out.tmp" "$out"
}

# srv_bg NAME CMD...: start CMD in the background (stdin /dev/null, fd 3
# closed for bats, output to RUNDIR/NAME.log), record its PID; SRV_LAST_PID.
srv_bg() {
  local name=$1
  shift
  "$@" 3>&- </dev/null >>"$SRV_RUNDIR/$name.log" 2>&1 &
  SRV_LAST_PID=$!
  echo "$SRV_LAST_PID $name" >> "$SRV_RUNDIR/pids"
  echo "$SRV_LAST_PID $name" >> "$SRV_RUNDIR/pids.all"   # kept, for checks
}

# srv_stop_pid PID: TERM, wait up to 5 s, then KILL.  (Like common.bash's
# stop_pid, repeated because examples/demo sources this file alone.)  A
# zombie is gone: an orphan (fcgiwrap's worker) waits for init to reap it,
# which here took 1.5 s.
srv_stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# srv_tree PID: "PID START" for each descendant of PID now (children
# first), START its start time (field 22 of /proc/PID/stat), so a PID
# reused later is not taken for it.
srv_tree() {
  local kid st
  for kid in $(pgrep -P "$1" 2>/dev/null); do
    st=$(sed 's/.*) //' "/proc/$kid/stat" 2>/dev/null | cut -d' ' -f20)
    if [ -n "$st" ]; then printf '%s %s\n' "$kid" "$st"; fi
    srv_tree "$kid"
  done
  return 0
}

# srv_stop_tree PID: srv_stop_pid PID, then, by PID, every process that
# was its descendant when the stop began and still is that process.  Why:
# fcgiwrap -c N's workers (and a CGI program fcgiwrap still runs) outlive
# their master's TERM, reparented to init, and stopping the recorded PID
# alone left them running after every run (bench/gateway.bash: d6d8224).
srv_stop_tree() {
  local kids kid st
  kids=$(srv_tree "$1")
  srv_stop_pid "$1"
  while read -r kid st; do
    [ -n "$kid" ] || continue
    if [ "$(sed 's/.*) //' "/proc/$kid/stat" 2>/dev/null | cut -d' ' -f20)" = "$st" ]; then
      srv_stop_pid "$kid"
    fi
  done <<<"$kids"
  return 0
}

# srv_stop NAME: stop the process(es) recorded under NAME, and what they
# started (srv_stop_tree).
srv_stop() {
  local pid name
  while read -r pid name; do
    if [ "$name" = "$1" ]; then srv_stop_tree "$pid"; fi
  done < "$SRV_RUNDIR/pids"
}

# srv_stop_all: stop everything srv_bg started, newest first, and what it
# started (srv_stop_tree).
srv_stop_all() {
  [ -n "${SRV_RUNDIR:-}" ] && [ -f "$SRV_RUNDIR/pids" ] || return 0
  local pid name
  while read -r pid name; do srv_stop_tree "$pid"; done < <(tac "$SRV_RUNDIR/pids")
  : > "$SRV_RUNDIR/pids"
  # The gateways' logs go to tests/run's check for session ids.
  if [ -f "$SRV_RUNDIR/gwlogs" ] && declare -F sg_log_keep > /dev/null; then
    sort -u "$SRV_RUNDIR/gwlogs" | while read -r f; do sg_log_keep "$f"; done
    : > "$SRV_RUNDIR/gwlogs"
  fi
}

# srv_wait_socket PATH [SECONDS [PID]] / srv_wait_port PORT [SECONDS [PID]]:
# bounded waits (30 s by default: a loaded 2-CPU machine can start Apache
# slowly); with PID, give up at once when that process has died.
srv_wait_socket() {
  srv_wait_until "socket $1 did not appear" "${2:-30}" "${3:-}" test -S "$1"
}
srv_wait_port() {
  srv_wait_until "port $1 did not open" "${2:-30}" "${3:-}" srv_port_open "$1"
}
srv_port_open() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# srv_wait_until MESSAGE SECONDS PID CMD...: run CMD every 50 ms until it
# succeeds (0), for at most SECONDS, or until process PID (when not empty)
# has died; then log MESSAGE and return 1.
srv_wait_until() {
  local msg=$1 secs=$2 pid=$3 i
  shift 3
  for i in $(seq $(( secs * 20 ))); do
    "$@" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "$msg" | tee -a "${SRV_RUNDIR:-/tmp}/start.log" >&2
  return 1
}

# srv_gateway NAME LISTEN ARGS...: run sessgate on LISTEN (unix:PATH or
# 127.0.0.1:PORT) with the run's store, and wait until it accepts.
srv_gateway() {
  local name=$1 listen=$2
  shift 2
  [ -x "$SRV_SESSGATE" ] || { echo "srv_gateway: $SRV_SESSGATE not built" >&2; return 1; }
  srv_bg "$name" "$SRV_SESSGATE" --store "$SRV_STORE" --listen "$listen" "$@"
  echo "$SRV_RUNDIR/$name.log" >> "$SRV_RUNDIR/gwlogs"   # for the id check
  case $listen in
    unix:*) srv_wait_socket "${listen#unix:}" 30 "$SRV_LAST_PID" ;;
    *) srv_wait_port "${listen##*:}" 30 "$SRV_LAST_PID" ;;
  esac
}

# srv_fcgiwrap: fcgiwrap on RUNDIR/fcgiwrap.sock with a clean environment
# (fcgiwrap hands its own environment to every CGI it runs).
srv_fcgiwrap() {
  rm -f "$SRV_RUNDIR/fcgiwrap.sock"
  srv_bg fcgiwrap env -i PATH=/usr/local/bin:/usr/bin:/bin \
    "$(command -v fcgiwrap)" ${1:+-c "$1"} -s "unix:$SRV_RUNDIR/fcgiwrap.sock"
  srv_wait_socket "$SRV_RUNDIR/fcgiwrap.sock" 30 "$SRV_LAST_PID"
}

# srv_echo: the echo HTTP backend on a free port (SRV_ECHO_PORT).
srv_echo() {
  SRV_ECHO_PORT=$(srv_free_port)
  srv_bg echo "$SG_PYTHON" "$SRV_APPS/echo_http.py" "$SRV_ECHO_PORT"
  srv_wait_port "$SRV_ECHO_PORT" 30 "$SRV_LAST_PID"
}

# The gateways the nginx example expects (see examples/nginx/sessgate.conf.in).
srv_nginx_gateways() {
  srv_gateway gw-any "unix:$SRV_RUNDIR/gw-any.sock" --mode auth --policy any &&
  srv_gateway gw-anon "unix:$SRV_RUNDIR/gw-anon.sock" --mode auth --policy any --anonymous &&
  srv_gateway gw-user "unix:$SRV_RUNDIR/gw-user.sock" --mode auth --policy user \
    --login-url /cgi/counter.sh &&
  srv_gateway gw-cgi "unix:$SRV_RUNDIR/gw-cgi.sock" --mode cgi --cgi-root "$SRV_APPS" \
    --cgi-timeout 20
}

# srv_nginx [TEMPLATE]: render and start nginx on a free port (SRV_PORT).
srv_nginx() {
  local tpl=${1:-$SRV_ROOT/examples/nginx/sessgate.conf.in} f
  SRV_PORT=$(srv_free_port)
  for f in sessgate_params sessgate_proxy; do
    srv_render "$SRV_ROOT/examples/nginx/$f.in" "$SRV_RUNDIR/$f" || return 1
  done
  srv_render "$tpl" "$SRV_RUNDIR/nginx.conf" || return 1
  srv_bg nginx nginx -p "$SRV_RUNDIR" -e "$SRV_RUNDIR/error.log" \
    -c "$SRV_RUNDIR/nginx.conf" -g 'daemon off;'
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID"
}

# srv_nginx_stack: everything examples/nginx/sessgate.conf.in needs, then nginx.
srv_nginx_stack() {
  srv_fcgiwrap && srv_echo && srv_nginx_gateways && srv_nginx
}

# srv_lighttpd: render examples/lighttpd/sessgate.conf.in and start lighttpd
# on a free port (SRV_PORT).  lighttpd starts its gateways itself (bin-path).
srv_lighttpd() {
  SRV_PORT=$(srv_free_port)
  srv_render "$SRV_ROOT/examples/lighttpd/sessgate.conf.in" "$SRV_RUNDIR/lighttpd.conf" || return 1
  srv_bg lighttpd lighttpd -D -f "$SRV_RUNDIR/lighttpd.conf"
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID"
}
srv_lighttpd_stack() { srv_lighttpd; }

# srv_lighttpd_magnet [USER]: render examples/lighttpd-magnet (the config and
# its per-location scripts) and start lighttpd on a free port (SRV_PORT),
# with the build tree's Lua binding and sessgate_magnet.lua on LUA_PATH and
# LUA_CPATH.  The check runs inside lighttpd: no gateway is started.  With
# USER (as root), lighttpd drops to USER after binding, so the magnet
# scripts, the binding and the store are used as that user, as on a Debian
# host (www-data); the run directory is opened up for it to traverse.
srv_lighttpd_magnet() {
  local f name
  SRV_PORT=$(srv_free_port)
  SRV_USER_LINES=""
  if [ -n "${1:-}" ]; then
    SRV_USER_LINES="server.username = \"$1\"  server.groupname = \"$(id -gn "$1")\""
    chmod o+x "$(dirname "$SRV_RUNDIR")"
    # lighttpd opens its logs and buffers request bodies as that user
    chown "$1" "$SRV_RUNDIR" "$SRV_RUNDIR/tmp"
  fi
  for f in "$SRV_ROOT"/examples/lighttpd-magnet/magnet-*.lua.in; do
    name=$(basename "$f" .in)
    srv_render "$f" "$SRV_RUNDIR/$name" || return 1
    chmod a+r "$SRV_RUNDIR/$name"
  done
  srv_render "$SRV_ROOT/examples/lighttpd-magnet/sessgate.conf.in" "$SRV_RUNDIR/lighttpd.conf" || return 1
  # Under make SANITIZE=address the binding carries ASan, whose runtime must
  # come first in lighttpd (as tests/bindings/openresty.bats does for nginx).
  local pre=()
  if [[ "${SG_SANITIZE:-}" == *address* ]]; then
    pre=(LD_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)"
         ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
  fi
  srv_bg lighttpd env "${pre[@]}" \
    LUA_PATH="$SRV_ROOT/bindings/lua/?.lua;$SRV_ROOT/examples/lighttpd-magnet/?.lua;;" \
    LUA_CPATH="$(cd "$SG_BUILDDIR" && pwd)/bindings/lua/?.so;;" \
    lighttpd -D -f "$SRV_RUNDIR/lighttpd.conf"
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID"
}
srv_lighttpd_magnet_stack() { srv_echo && srv_lighttpd_magnet "${SRV_MAGNET_USER:-}"; }

# The gateways the Apache example expects, on TCP (mod_authnz_fcgi speaks
# only fcgi://host:port/).  Sets SRV_GW_*_PORT and SRV_DOWN_PORT.
srv_apache_gateways() {
  SRV_GW_ANY_PORT=$(srv_free_port)
  SRV_GW_USER_PORT=$(srv_free_port)
  SRV_GW_CGI_PORT=$(srv_free_port)
  SRV_GW_RENEW_PORT=$(srv_free_port)
  SRV_DOWN_PORT=$(srv_free_port)
  srv_gateway gw-any "127.0.0.1:$SRV_GW_ANY_PORT" --mode auth --policy any &&
  srv_gateway gw-user "127.0.0.1:$SRV_GW_USER_PORT" --mode auth --policy user \
    --login-url /cgi/counter.sh --login-redirect &&
  srv_gateway gw-cgi "127.0.0.1:$SRV_GW_CGI_PORT" --mode cgi --cgi-root "$SRV_APPS" \
    --cgi-timeout 20 &&
  srv_gateway gw-renew "127.0.0.1:$SRV_GW_RENEW_PORT" --mode auth --policy any \
    --renew-interval 1 --rotate-grace 3
}

# srv_apache: render examples/apache/sessgate.conf.in and start httpd in the
# foreground on a free port (SRV_PORT).
srv_apache() {
  SRV_PORT=$(srv_free_port)
  SRV_MODULES=/usr/lib/apache2/modules
  srv_render "$SRV_ROOT/examples/apache/sessgate.conf.in" "$SRV_RUNDIR/apache.conf" || return 1
  # Root starts Apache's children as www-data: they must reach RUNDIR.
  [ "$(id -u)" = 0 ] && chmod o+x "$SRV_RUNDIR" "$(dirname "$SRV_RUNDIR")"
  # Its own session: on shutdown the prefork parent signals its whole process
  # group (killpg), which would otherwise include the caller (bats, demo).
  srv_bg apache setsid /usr/sbin/apache2 -f "$SRV_RUNDIR/apache.conf" -DFOREGROUND
  srv_wait_port "$SRV_PORT" 30 "$SRV_LAST_PID"
}

srv_apache_stack() { srv_echo && srv_apache_gateways && srv_apache; }

# srv_start STACK: run srv_STACK_stack, and once more after stopping what it
# started when it fails (a port picked by srv_free_port can be taken by
# another program before the server binds it).
srv_start() {
  "srv_$1_stack" && return 0
  echo "srv_start: $1 failed to start, retrying once" | tee -a "$SRV_RUNDIR/start.log" >&2
  srv_stop_all
  "srv_$1_stack"
}
