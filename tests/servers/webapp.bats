#!/usr/bin/env bats
# tests/servers/webapp.bats - issue #12 through a real nginx: --csrf with
# the header sets a browser sends (same-origin form post, cross-site post,
# missing, wrong and pre-login tokens), in cgi mode and behind
# auth_request, and flash messages delivered once.  nginx runs
# tests/servers/webapp.conf.in, which uses the locations of the example
# config with gateways started with --csrf.
# backends: gdbm redis
load ../helpers/common
load ../helpers/servers

setup_file() {
  require_tool nginx curl
  [ -x "$SG_GATEWAY" ] || skip "gateway/sessgate is not built"
  srv_init "$BATS_FILE_TMPDIR/run" "$(BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR make_store)"
  mkdir -p "$SRV_RUNDIR/apps"
  # The app: shows its session (token, flash), logs in, queues a flash.
  cat > "$SRV_RUNDIR/apps/app.cgi" <<'SH'
#!/bin/sh
case "$QUERY_STRING" in
login=*) printf 'X-Session-Login: %s\r\n' "${QUERY_STRING#login=}" ;;
flash) printf 'X-Session-Flash: {"message":"Saved","category":"info"}\r\n' ;;
start) printf 'X-Session-Set: {"started":true}\r\n' ;;
esac
printf 'Content-Type: text/plain\r\n\r\n'
printf 'method=%s csrf=%s flash=%s\n' "$REQUEST_METHOD" "$SESSION_CSRF" "$SESSION_FLASH"
printf 'sid=%s user=%s\n' "$SESSION_ID" "$SESSION_USER"
SH
  chmod +x "$SRV_RUNDIR/apps/app.cgi"
  srv_echo || srv_failed
  srv_gateway gw-cgi "unix:$SRV_RUNDIR/gw-cgi.sock" --mode cgi --csrf \
    --cgi-root "$SRV_RUNDIR/apps" --workers 2 || srv_failed
  srv_gateway gw-auth "unix:$SRV_RUNDIR/gw-auth.sock" --mode auth --policy any --csrf \
    --workers 2 || srv_failed
  # --renew-interval with the DEFAULT --rotate-grace (10 s, issue #12)
  srv_gateway gw-renew "unix:$SRV_RUNDIR/gw-renew.sock" --mode cgi --renew-interval 1 \
    --cgi-root "$SRV_RUNDIR/apps" --workers 4 || srv_failed
  srv_nginx "$SG_SRCDIR/tests/servers/webapp.conf.in" || srv_failed
  export SRV_RUNDIR SRV_STORE SRV_PORT
}

teardown_file() {
  srv_stop_all
}

ORIGIN() { printf 'http://127.0.0.1:%s' "$SRV_PORT"; }

# hit METHOD PATH COOKIE-ID [curl args...]: sets STATUS, BODY, HDRS
hit() {
  local m=$1 p=$2 id=$3
  shift 3
  curl -s -o "$BATS_TEST_TMPDIR/b" -D "$BATS_TEST_TMPDIR/h" --max-time 10 -X "$m" \
    ${id:+-H "Cookie: sessgate=$id"} "$@" "$(srv_url "$p")" > /dev/null
  STATUS=$(head -1 "$BATS_TEST_TMPDIR/h" | cut -d' ' -f2)
  BODY=$(cat "$BATS_TEST_TMPDIR/b")
  HDRS=$(tr -d '\r' < "$BATS_TEST_TMPDIR/h")
}

# A browser's same-origin form post (the page's script adds the token).
same_origin() {
  printf '%s\n' -H "Origin: $(ORIGIN)" -H "Sec-Fetch-Site: same-origin" -H "Sec-Fetch-Mode: navigate" \
    -H "Sec-Fetch-Dest: document" -H "Content-Type: application/x-www-form-urlencoded" \
    --data "a=1"
}
# A page on another site posting a form here.
cross_site() {
  printf '%s\n' -H "Origin: https://evil.example" -H "Sec-Fetch-Site: cross-site" \
    -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Dest: document" \
    -H "Content-Type: application/x-www-form-urlencoded" --data "a=1"
}

# new_app_session: a session made through nginx (GET ?start): its id and token
new_app_session() {
  hit GET "/cgi/app.cgi?start" ""
  [ "$STATUS" = 200 ] || fail "start: $STATUS $BODY"
  ID=$(sed -n 's/^Set-Cookie: sessgate=\([^;]*\);.*/\1/p' <<<"$HDRS")
  hit GET /cgi/app.cgi "$ID"
  TOKEN=$(sed -n 's/.* csrf=\([0-9a-f]*\) .*/\1/p' <<<"$BODY")
  [ -n "$ID" ] && [ "${#TOKEN}" = 64 ] || fail "no session or token: $HDRS $BODY"
}

@test "nginx cgi --csrf: a same-origin form post with the token passes" {
  new_app_session
  mapfile -t h < <(same_origin)
  hit POST /cgi/app.cgi "$ID" "${h[@]}" -H "X-CSRF-Token: $TOKEN"
  [ "$STATUS" = 200 ] || fail "$STATUS $BODY"
  [[ "$BODY" == "method=POST csrf=$TOKEN"* ]]
}

@test "nginx cgi --csrf: cross-site, missing and wrong tokens get 403 and never reach the app" {
  new_app_session
  mapfile -t x < <(cross_site)
  hit POST /cgi/app.cgi "$ID" "${x[@]}"
  [ "$STATUS" = 403 ] || fail "cross-site: $STATUS"
  hit POST /cgi/app.cgi "$ID" "${x[@]}" -H "X-CSRF-Token: $TOKEN"
  [ "$STATUS" = 403 ] || fail "cross-site with a stolen token: $STATUS"
  mapfile -t h < <(same_origin)
  hit POST /cgi/app.cgi "$ID" "${h[@]}"
  [ "$STATUS" = 403 ] || fail "missing token: $STATUS"
  hit POST /cgi/app.cgi "$ID" "${h[@]}" -H "X-CSRF-Token: ${TOKEN//[0-9a-f]/0}"
  [ "$STATUS" = 403 ] || fail "wrong token: $STATUS"
  [[ "$BODY" != *"method=POST"* ]]
  for m in PUT PATCH DELETE; do
    hit "$m" /cgi/app.cgi "$ID" -H "Origin: $(ORIGIN)"
    [ "$STATUS" = 403 ] || fail "$m without a token: $STATUS"
  done
}

@test "nginx cgi --csrf: a GET is never refused, even cross-site" {
  new_app_session
  hit GET /cgi/app.cgi "$ID" -H "Sec-Fetch-Site: cross-site" -H "Origin: https://evil.example"
  [ "$STATUS" = 200 ]
  run curl -s -o /dev/null -w '%{http_code}' --max-time 10 -I -H "Cookie: sessgate=$ID" \
    -H "Sec-Fetch-Site: cross-site" "$(srv_url /cgi/app.cgi)"
  [ "$output" = 200 ]
}

@test "nginx cgi --csrf: the token from before a login is refused after it" {
  new_app_session
  old=$TOKEN
  hit GET "/cgi/app.cgi?login=ann" "$ID"
  [ "$STATUS" = 200 ]
  ID=$(sed -n 's/^Set-Cookie: sessgate=\([^;]*\);.*/\1/p' <<<"$HDRS")
  mapfile -t h < <(same_origin)
  hit POST /cgi/app.cgi "$ID" "${h[@]}" -H "X-CSRF-Token: $old"
  [ "$STATUS" = 403 ] || fail "stale token: $STATUS"
  hit GET /cgi/app.cgi "$ID"
  TOKEN=$(sed -n 's/.* csrf=\([0-9a-f]*\) .*/\1/p' <<<"$BODY")
  [ "$TOKEN" != "$old" ]
  hit POST /cgi/app.cgi "$ID" "${h[@]}" -H "X-CSRF-Token: $TOKEN"
  [ "$STATUS" = 200 ] || fail "new token: $STATUS"
}

@test "nginx auth_request --csrf: the gateway's 403 stops a cross-site post; the token passes" {
  new_app_session
  mapfile -t x < <(cross_site)
  hit POST /papp/x "$ID" "${x[@]}"
  [ "$STATUS" = 403 ] || fail "cross-site: $STATUS"
  [[ "$BODY" != *"echo POST"* ]]
  mapfile -t h < <(same_origin)
  hit POST /papp/x "$ID" "${h[@]}"
  [ "$STATUS" = 403 ] || fail "no token: $STATUS"
  hit POST /papp/x "$ID" "${h[@]}" -H "X-CSRF-Token: $TOKEN"
  [ "$STATUS" = 200 ] || fail "token: $STATUS"
  [[ "$BODY" == *"echo POST /papp/x"* ]]
  # the backend got the token from the gateway, not from the client
  grep -q "^X-Session-Csrf: $TOKEN$" <<<"$BODY"
  hit GET /papp/y "$ID" -H "Sec-Fetch-Site: cross-site"
  [ "$STATUS" = 200 ]
}

@test "nginx cgi: a flash message reaches the next page once, and only one of 10 parallel pages" {
  new_app_session
  hit GET "/cgi/app.cgi?flash" "$ID"
  hit GET /cgi/app.cgi "$ID"
  [[ "$BODY" == *'flash=[{"message":"Saved","category":"info"}]'* ]] || fail "$BODY"
  hit GET /cgi/app.cgi "$ID"
  grep -q 'flash=$' <<<"$BODY" || fail "shown twice: $BODY"
  hit GET "/cgi/app.cgi?flash" "$ID"
  local pids=() i
  for i in $(seq 10); do
    curl -s --max-time 10 -H "Cookie: sessgate=$ID" "$(srv_url /cgi/app.cgi)" \
      > "$BATS_TEST_TMPDIR/par.$i" 3>&- &
    pids+=($!)
  done
  wait "${pids[@]}"
  n=$(cat "$BATS_TEST_TMPDIR"/par.* | grep -c 'flash=\[{"message":"Saved"' || true)
  [ "$n" = 1 ] || fail "$n pages showed the message"
}

@test "nginx, default --rotate-grace: a login leaves no grace to the pre-login id" {
  hit GET "/rcgi/app.cgi?start" ""
  pre=$(sed -n 's/^Set-Cookie: sessgate=\([^;]*\);.*/\1/p' <<<"$HDRS")
  [ -n "$pre" ]
  hit GET "/rcgi/app.cgi?login=eve" "$pre"
  [ "$STATUS" = 200 ]
  hit GET /rcgi/app.cgi "$pre"
  [[ "$BODY" == *"sid= user="* ]] || fail "the pre-login id still works: $BODY"
}

# Issue #12: a page's 20 parallel requests carry the old cookie while one
# of them renews the id; the grace window must cover every one of them.
@test "nginx --renew-interval, default --rotate-grace: 20 concurrent requests racing a renewal all keep the session" {
  hit GET "/rcgi/app.cgi?login=ann" ""
  old=$(sed -n 's/^Set-Cookie: sessgate=\([^;]*\);.*/\1/p' <<<"$HDRS")
  [ -n "$old" ] || fail "login: $HDRS $BODY"
  sleep 1.2
  local pids=() i
  for i in $(seq 20); do
    curl -s --max-time 10 -D "$BATS_TEST_TMPDIR/ren.$i.h" -H "Cookie: sessgate=$old" \
      "$(srv_url /rcgi/app.cgi)" > "$BATS_TEST_TMPDIR/ren.$i" 3>&- &
    pids+=($!)
  done
  wait "${pids[@]}"
  n=$(cat "$BATS_TEST_TMPDIR"/ren.? "$BATS_TEST_TMPDIR"/ren.?? | grep -c 'user=ann$' || true)
  [ "$n" = 20 ] || fail "$n of 20 kept the session: $(cat "$BATS_TEST_TMPDIR"/ren.*)"
  # and the id was renewed on the way
  grep -qh '^Set-Cookie: sessgate=' "$BATS_TEST_TMPDIR"/ren.*.h || fail "no renewal cookie"
}
