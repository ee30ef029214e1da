#!/usr/bin/env bats
# sessgate's command line: --help and the man page list the same options
# (both come from config.c's table), numbers are range-checked, bad
# combinations are usage errors (exit 2) and a bad store or socket fails at
# start-up (exit 1) rather than on every request.
# backends: gdbm redis
load ../helpers/common
load gateway

setup() { gw_setup; }
teardown() { gw_teardown; }

@test "--help and docs/sessgate.8 list exactly the same options" {
  run -0 "$SG_GATEWAY" --help
  help=$(printf '%s\n' "$output" | grep -oE '^  --[a-z-]+' | sed 's/^  //' | sort -u)
  # options of the man page: the .B/.BI line after each .TP
  man=$(awk 'prev ~ /^\.TP/ && /^\.BI? \\-\\-/ { print } { prev = $0 }' "$SG_SRCDIR/docs/sessgate.8" |
        grep -oE '^\.BI? \\-\\-[a-z\\-]+' | sed -e 's/^\.BI* //' -e 's/\\-/-/g' | sort -u)
  [ -n "$help" ] && [ -n "$man" ]
  [ "$(printf '%s\n' "$help" | wc -l)" -ge 25 ]
  diff <(printf '%s\n' "$help") <(printf '%s\n' "$man")
}

@test "--version names the gateway and the library" {
  run -0 "$SG_GATEWAY" --version
  assert_output --regexp '^sessgate [0-9]+\.[0-9]+\.[0-9]+ \(libsessgate [0-9.]+\)$'
}

@test "a number out of range is a usage error naming the range" {
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --workers 0
  assert_regex "$stderr" "--workers 0: expected a whole number in 1..256"
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --cgi-timeout 12x
  assert_regex "$stderr" "--cgi-timeout 12x"
  run -2 "$SG_GATEWAY" --store "$STORE" --inject-max -1
  run -2 "$SG_GATEWAY" --store "$STORE" --workers 99999999999999999999
}

@test "an unknown choice, option or argument is a usage error" {
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --mode proxy
  assert_regex "$stderr" "expected one of auth\|cgi"
  run -2 "$SG_GATEWAY" --store "$STORE" --policy everyone
  run -2 "$SG_GATEWAY" --store "$STORE" --inject some
  run -2 "$SG_GATEWAY" --store "$STORE" --no-such-option
  run -2 "$SG_GATEWAY" --store "$STORE" extra
}

@test "no store at all is a usage error; SESSGATE_STORE is honoured" {
  run -2 --separate-stderr "$SG_GATEWAY" --listen "unix:$GW_SOCK"
  assert_regex "$stderr" "no store"
  SESSGATE_STORE="$STORE" start_bg "$SG_GATEWAY" --listen "unix:$GW_SOCK" 2>>"$GW_ERR" >/dev/null
  wait_for_socket "$GW_SOCK" 5
  run -0 gw_req -p REQUEST_URI=/
  assert_line "Status: 200 OK"
}

@test "cookie attributes that could break a Set-Cookie line are refused" {
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-name 'a b'
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-name 'a;b'
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-path 'nopath'
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-path '/a;b'
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-domain 'ex ample.org'
  run -2 "$SG_GATEWAY" --store "$STORE" --login-url $'/login\r\nX: y'
  run -2 "$SG_GATEWAY" --store "$STORE" --login-redirect
}

@test "cookie policies browsers would reject are refused at start-up" {
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --cookie-samesite none
  assert_regex "$stderr" "--cookie-samesite none needs --cookie-secure on"
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-samesite none --cookie-secure auto
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-samesite sometimes
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --cookie-name __Host-sid --cookie-domain example.org
  assert_regex "$stderr" "__Host- cookie is always Secure, has Path=/ and no Domain"
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-name __Host-sid --cookie-path /app
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-name __Host-sid --cookie-secure off
  run -2 "$SG_GATEWAY" --store "$STORE" --cookie-name __Secure-sid --cookie-secure off
}

@test "cgi mode needs exactly one of --cgi-root and --cgi-program, and they need cgi mode" {
  mkdir -p "$BATS_TEST_TMPDIR/root"
  run -2 "$SG_GATEWAY" --store "$STORE" --mode cgi
  run -2 "$SG_GATEWAY" --store "$STORE" --mode cgi --cgi-root "$BATS_TEST_TMPDIR/root" --cgi-program /bin/true
  run -2 "$SG_GATEWAY" --store "$STORE" --cgi-root "$BATS_TEST_TMPDIR/root"
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --mode cgi --cgi-root "$BATS_TEST_TMPDIR/nope"
  assert_regex "$stderr" "cgi-root"
  run -2 "$SG_GATEWAY" --store "$STORE" --mode cgi --cgi-program "$BATS_TEST_TMPDIR/root"
}

@test "a store that cannot be opened fails at start-up with exit 1 and the library's message" {
  if on_redis; then
    # a server that is down: the socket does not exist
    bad="redis+unix:$BATS_TEST_TMPDIR/no/such/dir/s.sock?prefix=x:"
    want="^sessgate: store redis\+unix:.*/s\.sock\?prefix=x:: cannot connect to Redis: "
  else
    bad="$BATS_TEST_TMPDIR/no/such/dir/s.db"
    want="^sessgate: .*s\.db"
  fi
  run -1 --separate-stderr "$SG_GATEWAY" --store "$bad" --listen "unix:$GW_SOCK"
  assert_regex "$stderr" "$want"
  [ ! -e "$GW_SOCK" ]
}

@test "without --listen, stdin must be a FastCGI socket" {
  run -1 --separate-stderr "$SG_GATEWAY" --store "$STORE"
  assert_regex "$stderr" "stdin is not a FastCGI socket"
}

@test "--listen refuses a bad address and a socket another gateway listens on" {
  run -1 "$SG_GATEWAY" --store "$STORE" --listen "nonsense"
  run -1 "$SG_GATEWAY" --store "$STORE" --listen "127.0.0.1:99999"
  run -1 "$SG_GATEWAY" --store "$STORE" --listen "unix:$BATS_TEST_TMPDIR/a:b"
  gw_start
  run -1 --separate-stderr "$SG_GATEWAY" --store "$STORE" --listen "unix:$GW_SOCK"
  assert_regex "$stderr" "another process listens"
  run -0 gw_req -p REQUEST_URI=/
  assert_line "Status: 200 OK"
}

@test "the socket is mode 0660; workers leave with a killed master; a stale socket is replaced" {
  gw_start
  [ "$(stat -c %a "$GW_SOCK")" = 660 ]
  workers=$(ps -o pid= --ppid "$GW_PID")
  [ -n "$workers" ]
  kill -KILL "$GW_PID"
  for i in $(seq 100); do
    alive=0
    for w in $workers; do kill -0 "$w" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.05
  done
  [ "$alive" = 0 ] || fail "workers $workers outlived their master"
  [ -S "$GW_SOCK" ]          # left behind by the killed gateway
  gw_start
  run -0 gw_req -p REQUEST_URI=/
  assert_line "Status: 200 OK"
}

@test "--listen HOST:PORT serves FastCGI over TCP" {
  port=$(free_port)
  start_bg "$SG_GATEWAY" --store "$STORE" --listen "127.0.0.1:$port" 2>>"$GW_ERR" >/dev/null
  wait_for_port "$port" 5
  run -0 "$FCGI_CLIENT" -s "127.0.0.1:$port" -p REQUEST_URI=/
  assert_line --partial "Status: 200 OK"
}

@test "store options take the ranges and defaults of the one table sessgatectl uses" {
  # libcore/options.c is the one definition: the gateway once stopped the
  # lock timeout at 600000 ms and the idle timeout at 10 years.
  run -0 "$SG_GATEWAY" --lock-timeout 3600000 --idle-timeout 3162240000 --help
  run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --lock-timeout 3600001
  assert_regex "$stderr" "--lock-timeout 3600001: expected a whole number in 1\.\.3600000"
  run -2 --separate-stderr sessgatectl --lock-timeout 3600001 count
  assert_regex "$stderr" "--lock-timeout: '3600001' is not a whole number from 1 to 3600000"
  for o in idle-timeout max-age touch-interval; do
    run -2 --separate-stderr "$SG_GATEWAY" --store "$STORE" --$o 3162240001
    assert_regex "$stderr" "in 1\.\.3162240000"
    run -2 --separate-stderr sessgatectl --$o 3162240001 count
    assert_regex "$stderr" "from 1 to 3162240000"
  done
  # the defaults in both --help texts are the library's
  run -0 "$SG_GATEWAY" --help
  assert_line --regexp '^  --lock-timeout MS .*\(default 5000\)$'
  assert_line --regexp '^  --idle-timeout S .*\(default 1800\)$'
  run -0 sessgatectl --help
  assert_line --regexp '^  --lock-timeout MS .*\(default 5000\)$'
  assert_line --regexp '^  --idle-timeout S .*\(default 1800\)$'
}
