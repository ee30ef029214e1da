#!/usr/bin/env bats
# tests/store/redis_tls.bats - README "Redis over TLS": Debian 12's hiredis
# 0.14 has no TLS, so the store reaches a remote Redis through a stunnel
# hop on loopback.  Here both ends run on this host, each a real stunnel
# (Debian stunnel4): the store's URI names the client end; between the two
# stunnels only TLS flows, checked against a certificate made for the test.
load ../helpers/common

setup() {
  require_tool redis-server redis-cli stunnel openssl
  D=$BATS_TEST_TMPDIR
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/key.pem" -out "$D/cert.pem" \
    -days 1 -subj /CN=redis.test -addext subjectAltName=DNS:redis.test 2>/dev/null
  PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  (umask 077 && printf '%s\n' "$PW" > "$D/redis.pw")
  printf 'user default on #%s ~* &* +@all\n' "$(printf '%s' "$PW" | sha256sum | cut -d' ' -f1)" > "$D/users.acl"
  RPORT=$(free_port) TPORT=$(free_port) CPORT=$(free_port)
  start_bg redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --aclfile "$D/users.acl" --daemonize no --logfile "$D/redis.log" > /dev/null
  # the Redis host's end: TLS in on TPORT, plain Redis out to RPORT
  stunnel_conf server "accept = 127.0.0.1:$TPORT
connect = 127.0.0.1:$RPORT
cert = $D/cert.pem
key = $D/key.pem"
  start_bg stunnel "$D/server.conf" > /dev/null
  wait_port "$TPORT"
  wait_port "$RPORT"
}

teardown() {
  stop_all
}

# stunnel_conf NAME SERVICE-LINES: $D/NAME.conf, in the foreground
stunnel_conf() {
  printf 'foreground = yes\npid =\noutput = %s\n[redis]\n%s\n' "$D/$1.log" "$2" > "$D/$1.conf"
}

wait_port() {
  local i
  for i in $(seq 100); do
    (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  fail "nothing listens on port $1"
}

# client_end CHECKHOST: the web host's end on CPORT, verifying the server
client_end() {
  stunnel_conf client "client = yes
accept = 127.0.0.1:$CPORT
connect = 127.0.0.1:$TPORT
verifyChain = yes
CAfile = $D/cert.pem
checkHost = $1"
  start_bg stunnel "$D/client.conf" > /dev/null
  wait_port "$CPORT"
}

@test "the store works through a stunnel hop, authenticated, and only TLS crosses the tunnel" {
  client_end redis.test
  S="redis://127.0.0.1:$CPORT/0?prefix=tls:&password_file=$D/redis.pw"
  run -0 sessgatectl --store "$S" create --user alice --data '{"k":1}'
  id=$output
  run -0 sessgatectl --store "$S" get "$id"
  assert_output --partial '"user":"alice"'
  [ "$(REDISCLI_AUTH=$PW redis-cli --no-auth-warning -p "$RPORT" EXISTS "tls:$id")" = 1 ]
  # the tunnel's middle speaks TLS, with the test's certificate, not Redis
  run redis-cli -p "$TPORT" PING
  refute_output PONG
  run openssl s_client -connect "127.0.0.1:$TPORT" -servername redis.test </dev/null
  assert_output --partial "subject=CN = redis.test"
}

@test "a client end that cannot verify the server's name refuses the hop: a store error, exit 3" {
  client_end wrong.example
  run -3 --separate-stderr sessgatectl --store "redis://127.0.0.1:$CPORT/0?prefix=tls:&password_file=$D/redis.pw&timeout_ms=2000" create
  [[ "$stderr" == "sessgatectl: store redis://127.0.0.1:$CPORT/0?prefix=tls:&password_file=$D/redis.pw&timeout_ms=2000: "* ]] ||
    fail "$stderr"
  ! grep -qF "$PW" <<<"$stderr"
}
